//! Connecting to a coordinator from the CLI: the address, the token, clear errors.

use allsweep_proto::auth::BearerToken;
use allsweep_proto::v1::user_service_client::UserServiceClient;
use anyhow::Context;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The largest message the CLI sends or accepts: above any coordinator's default.
pub const MAX_REPLY_BYTES: usize = 64 << 20;

pub type UserClient = UserServiceClient<InterceptedService<Channel, BearerToken>>;

/// A user-API client for `address` (`http://host:port`).
pub async fn user(address: &str, token: Option<&str>) -> anyhow::Result<UserClient> {
    let channel = tonic::transport::Endpoint::from_shared(address.to_string())
        .with_context(|| format!("bad coordinator address {address:?}"))?
        .connect()
        .await
        .with_context(|| {
            format!("cannot reach the coordinator at {address} (is `allsweep serve` running? set ALLSWEEP_COORDINATOR)")
        })?;
    let client = UserServiceClient::with_interceptor(channel, BearerToken::new(token)?);
    Ok(client.max_decoding_message_size(MAX_REPLY_BYTES).max_encoding_message_size(MAX_REPLY_BYTES))
}

/// A tonic status as a one-line error for people.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{} ({:?})", status.message(), status.code())
}
