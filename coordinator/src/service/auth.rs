//! Shared-token authentication: when the coordinator has a token, every call must carry
//! `authorization: Bearer TOKEN`, or it gets UNAUTHENTICATED.

use tonic::{Request, Status};

/// A tonic interceptor comparing the bearer token.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<String>,
}

impl TokenCheck {
    pub fn new(token: Option<String>) -> Self {
        Self { expected: token.filter(|t| !t.is_empty()).map(|t| format!("Bearer {t}")) }
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else { return Ok(request) };
        match request.metadata().get("authorization").and_then(|v| v.to_str().ok()) {
            Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong token: set ALLSWEEP_TOKEN to the coordinator's token")),
            None => Err(Status::unauthenticated("this coordinator requires a token: set ALLSWEEP_TOKEN (or --token)")),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
