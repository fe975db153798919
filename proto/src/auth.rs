//! The bearer token a client puts on every call (`authorization: Bearer TOKEN`): one
//! interceptor for the CLI and for workers.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Status};

/// Adds `authorization: Bearer TOKEN` to every call; adds nothing without a token.
#[derive(Clone, Debug, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

/// A token that cannot travel in a gRPC header.
#[derive(Debug, thiserror::Error)]
#[error("the token must be plain printable ASCII")]
pub struct InvalidToken;

impl BearerToken {
    /// `None` or an empty token: calls go without one.
    pub fn new(token: Option<&str>) -> Result<Self, InvalidToken> {
        match token.filter(|t| !t.is_empty()) {
            None => Ok(Self(None)),
            Some(t) => Ok(Self(Some(format!("Bearer {t}").parse().map_err(|_| InvalidToken)?))),
        }
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn the_token_goes_on_every_call_and_only_when_set() {
        let mut with = BearerToken::new(Some("s3cret")).expect("an ASCII token");
        let request = with.call(Request::new(())).expect("the interceptor never refuses");
        assert_eq!(request.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer s3cret"));
        for none in [None, Some("")] {
            let mut without = BearerToken::new(none).expect("no token");
            assert!(without.call(Request::new(())).expect("passes").metadata().get("authorization").is_none());
        }
        assert!(BearerToken::new(Some("line\nbreak")).is_err());
    }
}
