//! `allsweep token create|list|revoke`: tokens with roles, made and revoked through a running
//! coordinator by an admin (the `serve --token` bootstrap token, or an admin token).

use allsweep_proto::v1 as pb;
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::Connection;
use allsweep_coordinator::client::{self, explain, AdminClient};

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Makes a token and prints its secret once (on stdout; the coordinator keeps only a hash).
    Create {
        /// worker: register, lease, report its own trials; user: submit, watch, cancel, read;
        /// admin: everything, and tokens.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Who or what holds it, e.g. alice or gpu-nodes.
        #[arg(long)]
        name: String,
    },
    /// Every token: id, name, role, when made and revoked.
    List,
    /// Revokes a token by id: refused from the next call on.
    Revoke { token_id: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Worker,
    User,
    Admin,
}

impl From<RoleArg> for pb::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Worker => pb::Role::Worker,
            RoleArg::User => pb::Role::User,
            RoleArg::Admin => pb::Role::Admin,
        }
    }
}

async fn connect(c: &Connection) -> anyhow::Result<AdminClient> {
    let token = allsweep_proto::auth::resolve_token(c.token.clone(), c.token_file.as_deref())?;
    client::admin_with_tls(&c.coordinator, token.as_deref(), &c.tls()).await
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let mut admin = connect(&args.connection).await?;
    match args.action {
        TokenAction::Create { role, name } => {
            let request = pb::CreateTokenRequest { name, role: pb::Role::from(role) as i32 };
            let r = admin.create_token(request).await.map_err(explain)?.into_inner();
            let info = r.token.unwrap_or_default();
            eprintln!(
                "token {} ({}, {}) created; its secret follows, shown this once: keep it in a file (--token-file)",
                info.token_id,
                info.name,
                role_name(info.role)
            );
            println!("{}", r.secret);
        }
        TokenAction::List => {
            let tokens = admin.list_tokens(pb::ListTokensRequest {}).await.map_err(explain)?.into_inner().tokens;
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header(["token", "name", "role", "created", "revoked"]);
            for t in tokens {
                let revoked = t.revoked_at_ms.map(ago).unwrap_or_default();
                table.add_row([t.token_id, t.name, role_name(t.role).into(), ago(t.created_at_ms), revoked]);
            }
            println!("{table}");
        }
        TokenAction::Revoke { token_id } => {
            let info = admin.revoke_token(pb::RevokeTokenRequest { token_id }).await.map_err(explain)?.into_inner();
            eprintln!("token {} ({}) revoked", info.token_id, info.name);
        }
    }
    Ok(())
}

fn role_name(role: i32) -> &'static str {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Worker) => "worker",
        Ok(pb::Role::User) => "user",
        Ok(pb::Role::Admin) => "admin",
        _ => "unknown",
    }
}

/// How long ago a time in milliseconds since the Unix epoch was, for people.
fn ago(ms: i64) -> String {
    let seconds = (allsweep_coordinator::store::now_ms() - ms).max(0) / 1000;
    match seconds {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}
