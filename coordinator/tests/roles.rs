//! Roles and worker identity, through the real gRPC server: every RPC of the role table is
//! called with each role's token (and with none, and with a revoked one), and a worker may not
//! write for another worker's lease or take over its id (issue 9, defect 3).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use allsweep_coordinator::access::{Role, RPC_ROLES};
use allsweep_proto::auth::{WORKER_ID_HEADER, WORKER_KEY_HEADER};
use allsweep_proto::v1::{self as pb, admin_service_client::AdminServiceClient};
use allsweep_testkit::SyntheticSpec;
use common::in_process::{lease_one, registration, InProcess};
use tonic::metadata::MetadataValue;
use tonic::Code;

const BOOTSTRAP: &str = "bootstrap-admin-token";

/// Calls `path` with an empty message and these headers; the status it ends with (OK when the
/// reply, or the first message of a stream, arrives).
async fn call(address: &str, path: &'static str, headers: &[(&'static str, String)]) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(address.to_string()).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(futures::stream::iter(vec![Vec::<u8>::new()]));
    for (key, value) in headers {
        request.metadata_mut().insert(*key, MetadataValue::try_from(value.as_str()).unwrap());
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    match grpc.streaming(request, path, common::raw::RawBytes).await {
        Ok(response) => match response.into_inner().message().await {
            Ok(_) => tonic::Status::ok(""),
            Err(status) => status,
        },
        Err(status) => status,
    }
}

fn bearer(secret: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {secret}"))
}

async fn admin(address: &str) -> AdminServiceClient<tonic::transport::Channel> {
    AdminServiceClient::connect(address.to_string()).await.unwrap()
}

fn with_token<T>(message: T, secret: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
    request
}

async fn create(address: &str, by: &str, role: pb::Role, name: &str) -> Result<pb::CreateTokenResponse, tonic::Status> {
    let mut client = admin(address).await;
    let request = pb::CreateTokenRequest { name: name.into(), role: role as i32 };
    client.create_token(with_token(request, by)).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_each_role_as_the_table_says() {
    let spec = SyntheticSpec::new("roles");
    let c = InProcess::start_with(Duration::from_secs(60), &spec, |o| o.token = Some(BOOTSTRAP.into())).await;
    let mut secrets = Vec::new();
    for (role, wire) in [(Role::Worker, pb::Role::Worker), (Role::User, pb::Role::User), (Role::Admin, pb::Role::Admin)]
    {
        let made = create(&c.address, BOOTSTRAP, wire, role.as_str()).await.expect("the bootstrap token is an admin");
        assert!(made.secret.starts_with("asw_"), "a secret is returned once");
        secrets.push((role, made.secret));
    }
    // A registered worker's identity goes on every call, so that worker calls made with a
    // permitted role reach their handler rather than stopping at the identity check.
    let identity = {
        let (mut client, _) = c.unregistered().await;
        let reply = client.register(with_token(registration("h", 1), &secrets[0].1)).await.expect("register");
        let reply = reply.into_inner();
        [(WORKER_ID_HEADER, reply.worker_id), (WORKER_KEY_HEADER, reply.worker_key)]
    };

    let mut checked = 0;
    for &(path, needed) in RPC_ROLES {
        for (role, secret) in &secrets {
            let mut headers = vec![bearer(secret)];
            headers.extend(identity.iter().cloned());
            let status = call(&c.address, path, &headers).await;
            let refused_by_role = status.code() == Code::PermissionDenied && status.message().contains("role");
            if role.permits(needed) {
                assert!(!refused_by_role, "{role} may call {path}: {status:?}");
                assert_ne!(status.code(), Code::Unauthenticated, "{role} calling {path}: {status:?}");
            } else {
                assert!(refused_by_role, "{role} may not call {path}: {status:?}");
                assert!(status.message().contains(&format!("needs the {needed} role")), "{}", status.message());
            }
            checked += 1;
        }
        let anonymous = call(&c.address, path, &identity).await;
        assert_eq!(anonymous.code(), Code::Unauthenticated, "no token, {path}: {anonymous:?}");
        let wrong = call(&c.address, path, &[bearer("not-a-token")]).await;
        assert_eq!(wrong.code(), Code::Unauthenticated, "a wrong token, {path}: {wrong:?}");
    }
    assert_eq!(checked, RPC_ROLES.len() * 3);
    let unknown = call(&c.address, "/allsweep.v1.UserService/DropEverything", &[bearer(BOOTSTRAP)]).await;
    assert_eq!(unknown.code(), Code::Unimplemented, "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_made_listed_and_revoked_by_admins_only() {
    let spec = SyntheticSpec::new("tokens");
    let c = InProcess::start_with(Duration::from_secs(60), &spec, |o| o.token = Some(BOOTSTRAP.into())).await;
    let user = create(&c.address, BOOTSTRAP, pb::Role::User, "alice").await.expect("create");
    let refused =
        create(&c.address, &user.secret, pb::Role::Admin, "mallory").await.expect_err("a user makes no tokens");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = create(&c.address, BOOTSTRAP, pb::Role::Unspecified, "x").await.expect_err("no role");
    assert!(bad.message().starts_with("role: "), "{}", bad.message());
    let unnamed = create(&c.address, BOOTSTRAP, pb::Role::User, " ").await.expect_err("no name");
    assert!(unnamed.message().starts_with("name: "), "{}", unnamed.message());

    let status = call(&c.address, "/allsweep.v1.UserService/ListSweeps", &[bearer(&user.secret)]).await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    let tokens = c.store.tokens().await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_ne!(tokens[0].hash, user.secret, "only a hash is stored");
    assert!(!tokens.iter().any(|t| t.hash.contains(&user.secret)));

    let mut client = admin(&c.address).await;
    let listed = client.list_tokens(with_token(pb::ListTokensRequest {}, BOOTSTRAP)).await.unwrap().into_inner();
    assert_eq!(listed.tokens.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["alice"]);
    let id = user.token.unwrap().token_id;
    let revoked = client.revoke_token(with_token(pb::RevokeTokenRequest { token_id: id.clone() }, BOOTSTRAP)).await;
    assert!(revoked.unwrap().into_inner().revoked_at_ms.is_some());
    let after = call(&c.address, "/allsweep.v1.UserService/ListSweeps", &[bearer(&user.secret)]).await;
    assert_eq!(after.code(), Code::Unauthenticated, "a revoked token is refused at once: {after:?}");
    let missing =
        client.revoke_token(with_token(pb::RevokeTokenRequest { token_id: "tok-nope".into() }, BOOTSTRAP)).await;
    assert_eq!(missing.expect_err("no such token").code(), Code::NotFound);
    let hostile = client.revoke_token(with_token(pb::RevokeTokenRequest { token_id: "../x".into() }, BOOTSTRAP)).await;
    assert!(hostile.expect_err("a bad id").message().starts_with("token_id: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_coordinator_closes_once_a_token_exists() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("open")).await;
    let open = call(&c.address, "/allsweep.v1.UserService/ListSweeps", &[]).await;
    assert_eq!(open.code(), Code::Ok, "no token at all: open, as under allsweep run");
    let mut client = AdminServiceClient::connect(c.address.clone()).await.unwrap();
    let request = pb::CreateTokenRequest { name: "lab".into(), role: pb::Role::Admin as i32 };
    let made = client.create_token(request).await.unwrap().into_inner();
    let closed = call(&c.address, "/allsweep.v1.UserService/ListSweeps", &[]).await;
    assert_eq!(closed.code(), Code::Unauthenticated, "{closed:?}");
    let with = call(&c.address, "/allsweep.v1.UserService/ListSweeps", &[bearer(&made.secret)]).await;
    assert_eq!(with.code(), Code::Ok, "{with:?}");
}

/// Regression (issue 9, defect 3): worker A streamed metrics for, and completed, worker B's
/// current attempt; `Register` with B's id took B's id over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_writes_only_for_its_own_leases_and_keeps_its_id() {
    let c = InProcess::start(Duration::from_secs(60), &SyntheticSpec::new("identity")).await;
    let (mut b, b_id) = c.worker("b", 1).await;
    let trial = lease_one(&mut b, &b_id).await;
    let (mut a, a_id) = c.worker("a", 1).await;

    let batch = pb::MetricBatch {
        trial_id: trial.trial_id.clone(),
        attempt: trial.attempt,
        points: vec![pb::MetricPoint { epoch: 1, name: "train_loss".into(), value: 0.5 }],
    };
    let refused = a.stream_metrics(futures::stream::iter(vec![batch])).await.expect_err("A writes for B");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("leased to another worker"), "{}", refused.message());
    let complete = pb::CompleteRequest {
        trial_id: trial.trial_id.clone(),
        attempt: trial.attempt,
        test: Some(pb::Metrics {
            jaccard: 0.5,
            dice: 0.6,
            precision: 0.5,
            recall: 0.5,
            tnr: 0.9,
            accuracy: 0.9,
            auc: None,
        }),
        roc: Vec::new(),
        split: "test".into(),
        epochs: 1,
        parameters: 10,
        test_keras: None,
        selected_epoch: 1,
    };
    assert_eq!(a.complete(complete.clone()).await.expect_err("A completes B's").code(), Code::PermissionDenied);
    let fail = pb::FailRequest { trial_id: trial.trial_id.clone(), attempt: trial.attempt, error: "x".into(), kind: 2 };
    assert_eq!(a.fail(fail).await.expect_err("A fails B's").code(), Code::PermissionDenied);
    let release = pb::ReleaseRequest {
        worker_id: b_id.clone(),
        trials: vec![pb::TrialProgress { trial_id: trial.trial_id.clone(), attempt: trial.attempt, epoch: 0 }],
    };
    assert_eq!(a.release(release).await.expect_err("A releases as B").code(), Code::PermissionDenied);
    let lease_as_b =
        a.lease(pb::LeaseRequest { worker_id: b_id.clone(), free_slots: 1, free_memory_bytes: 0, fuse: 0 }).await;
    assert_eq!(lease_as_b.expect_err("A leases as B").code(), Code::PermissionDenied);
    let download = a.download_checkpoint(pb::CheckpointRequest { trial_id: trial.trial_id.clone(), attempt: 1 }).await;
    assert_eq!(download.err().map(|s| s.code()), Some(Code::PermissionDenied), "A reads B's checkpoint");
    assert!(c.store.metric_points(&trial.trial_id).await.unwrap().is_empty(), "nothing written");
    let row = c.store.trial(&trial.trial_id).await.unwrap().unwrap();
    assert_eq!(row.worker_id.as_deref(), Some(b_id.as_str()), "B still holds it");

    // Taking over B's id: without B's key, and with A's key.
    let (mut stranger, _) = c.unregistered().await;
    let takeover = pb::RegisterRequest { worker_id: b_id.clone(), ..registration("thief", 64) };
    let refused = stranger.register(takeover.clone()).await.expect_err("no key");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = a.register(takeover).await.expect_err("A's key is not B's");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let workers = c.store.workers().await.unwrap();
    let stored_b = workers.iter().find(|w| w.id == b_id).unwrap();
    assert_eq!((stored_b.host.as_str(), stored_b.slots), ("b", 1), "B's registration is unchanged");

    // Calls without an identity, or with a wrong key, are refused.
    let (mut anonymous, credentials) = c.unregistered().await;
    let status = anonymous
        .lease(pb::LeaseRequest { worker_id: a_id.clone(), free_slots: 1, free_memory_bytes: 0, fuse: 0 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    credentials.set_identity(&b_id, "guessed").unwrap();
    let status = anonymous.complete(complete.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // B itself still works: it re-registers with its key (keeping its id) and completes.
    let again = b.register(pb::RegisterRequest { worker_id: b_id.clone(), ..registration("b", 1) }).await.unwrap();
    assert_eq!((again.get_ref().worker_id.as_str(), again.get_ref().worker_key.as_str()), (b_id.as_str(), ""));
    b.complete(complete).await.expect("the holder completes");
}
