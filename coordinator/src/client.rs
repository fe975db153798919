//! Connecting to a coordinator from the CLI: the address, TLS, the token, clear errors.

use allsweep_proto::auth::BearerToken;
use allsweep_proto::tls::{self, ClientTls};
use allsweep_proto::v1::admin_service_client::AdminServiceClient;
use allsweep_proto::v1::user_service_client::UserServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The largest message the CLI sends or accepts: above any coordinator's default.
pub const MAX_REPLY_BYTES: usize = 64 << 20;

pub type UserClient = UserServiceClient<InterceptedService<Channel, BearerToken>>;
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, BearerToken>>;

/// A user-API client for `address` (`http://host:port`, or `https://host:port` checked against
/// the system's trusted certificates).
pub async fn user(address: &str, token: Option<&str>) -> anyhow::Result<UserClient> {
    user_with_tls(address, token, &ClientTls::default()).await
}

/// A user-API client for `address`, with the TLS files of `--tls-ca`, `--tls-cert` and
/// `--tls-key`.
pub async fn user_with_tls(address: &str, token: Option<&str>, tls: &ClientTls) -> anyhow::Result<UserClient> {
    let client = UserServiceClient::with_interceptor(channel(address, tls).await?, BearerToken::new(token)?);
    Ok(client.max_decoding_message_size(MAX_REPLY_BYTES).max_encoding_message_size(MAX_REPLY_BYTES))
}

/// An admin-API client (token management) for `address`.
pub async fn admin_with_tls(address: &str, token: Option<&str>, tls: &ClientTls) -> anyhow::Result<AdminClient> {
    Ok(AdminServiceClient::with_interceptor(channel(address, tls).await?, BearerToken::new(token)?))
}

async fn channel(address: &str, tls: &ClientTls) -> anyhow::Result<Channel> {
    tls::endpoint(address, tls)?.connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the coordinator at {address}: {} (is `allsweep serve` running? set ALLSWEEP_COORDINATOR)",
            tls::error_chain(&e)
        )
    })
}

/// A tonic status as a one-line error for people, with its causes (a call that failed on the
/// connection says why only there).
pub fn explain(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{} ({:?})", tls::status_reason(&status), status.code())
}
