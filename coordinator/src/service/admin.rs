//! The admin API: tokens with roles. A new token's secret travels once, in the reply to
//! `CreateToken`; the database keeps its SHA-256. Making or revoking a token reloads the
//! gate's book at once.

use allsweep_proto::v1::{self as pb, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use super::{fields, status, Shared};
use crate::access::tokens::{hash, new_secret, new_token_id};
use crate::access::{Caller, Role};
use crate::store::{now_ms, Drain, TokenRow};

pub struct AdminApi {
    pub shared: Shared,
}

impl AdminApi {
    async fn reload(&self) -> Result<(), Status> {
        self.shared.tokens.reload(&*self.shared.store).await.map_err(status)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let by = request.extensions().get::<Caller>().and_then(|c| c.token_id.clone());
        let r = request.into_inner();
        fields::text("name", &r.name, fields::MAX_LABEL_BYTES)?;
        if r.name.trim().is_empty() {
            return Err(Status::invalid_argument("name: say who or what holds the token (e.g. alice, gpu-nodes)"));
        }
        let role = role_of(r.role)?;
        let secret = new_secret();
        let row = TokenRow {
            id: new_token_id(),
            name: r.name,
            role,
            hash: hash(&secret),
            created_at: now_ms(),
            revoked_at: None,
        };
        self.shared.store.insert_token(&row).await.map_err(status)?;
        self.reload().await?;
        tracing::info!(token = %row.id, name = %row.name, %role, by = ?by, "token created");
        Ok(Response::new(pb::CreateTokenResponse { token: Some(info(&row)), secret }))
    }

    async fn list_tokens(&self, _: Request<pb::ListTokensRequest>) -> Result<Response<pb::ListTokensResponse>, Status> {
        let rows = self.shared.store.tokens().await.map_err(status)?;
        Ok(Response::new(pb::ListTokensResponse { tokens: rows.iter().map(info).collect() }))
    }

    async fn revoke_token(&self, request: Request<pb::RevokeTokenRequest>) -> Result<Response<pb::TokenInfo>, Status> {
        let id = request.into_inner().token_id;
        fields::id("token_id", &id)?;
        let row = self.shared.store.revoke_token(&id, now_ms()).await.map_err(status)?;
        let row = row.ok_or_else(|| Status::not_found(format!("token_id: no token {id} (allsweep token list)")))?;
        self.reload().await?;
        tracing::info!(token = %row.id, name = %row.name, "token revoked");
        Ok(Response::new(info(&row)))
    }

    async fn drain_worker(&self, request: Request<pb::DrainWorkerRequest>) -> Result<Response<pb::WorkerInfo>, Status> {
        let by = request.extensions().get::<Caller>().and_then(|c| c.token_id.clone());
        let r = request.into_inner();
        fields::id("worker_id", &r.worker_id)?;
        let drain = if r.now { Drain::Now } else { Drain::Finish };
        let row = self.shared.store.drain_worker(&r.worker_id, drain).await.map_err(status)?;
        let row =
            row.ok_or_else(|| Status::not_found(format!("worker_id: no worker {} (allsweep workers)", r.worker_id)))?;
        tracing::info!(worker = %row.id, drain = drain.as_str(), by = ?by, "worker asked to leave");
        Ok(Response::new(super::user::worker_info(row, &self.shared.clocks, now_ms())))
    }
}

/// The domain role of a wire role; unspecified or unknown ones are refused.
fn role_of(wire: i32) -> Result<Role, Status> {
    match pb::Role::try_from(wire) {
        Ok(pb::Role::Worker) => Ok(Role::Worker),
        Ok(pb::Role::User) => Ok(Role::User),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        _ => Err(Status::invalid_argument(format!("role: {wire} is not a role; use worker, user or admin"))),
    }
}

fn info(row: &TokenRow) -> pb::TokenInfo {
    let role = match row.role {
        Role::Worker => pb::Role::Worker,
        Role::User => pb::Role::User,
        Role::Admin => pb::Role::Admin,
    };
    pb::TokenInfo {
        token_id: row.id.clone(),
        name: row.name.clone(),
        role: role as i32,
        created_at_ms: row.created_at,
        revoked_at_ms: row.revoked_at,
    }
}
