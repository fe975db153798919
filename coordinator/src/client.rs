//! Connecting to a coordinator from the CLI: the address, the token, clear errors.

use allsweep_proto::v1::user_service_client::UserServiceClient;
use anyhow::Context;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Token(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Token {
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let value = match token.filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(format!("Bearer {t}").parse().context("the token must be plain ASCII")?),
        };
        Ok(Self(value))
    }
}

pub type UserClient = UserServiceClient<InterceptedService<Channel, Token>>;

/// A user-API client for `address` (`http://host:port`).
pub async fn user(address: &str, token: Option<&str>) -> anyhow::Result<UserClient> {
    let channel = tonic::transport::Endpoint::from_shared(address.to_string())
        .with_context(|| format!("bad coordinator address {address:?}"))?
        .connect()
        .await
        .with_context(|| {
            format!("cannot reach the coordinator at {address} (is `allsweep serve` running? set ALLSWEEP_COORDINATOR)")
        })?;
    Ok(UserServiceClient::with_interceptor(channel, Token::new(token)?))
}

/// A tonic status as a one-line error for people.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{} ({:?})", status.message(), status.code())
}
