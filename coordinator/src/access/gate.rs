//! The gate every call passes before its handler: it names the caller from the bearer token
//! ([`TokenBook`]), refuses a caller whose role may not make this RPC ([`super::RPC_ROLES`]),
//! and hands the [`Caller`] to the handler in the request's extensions. A tower layer, so
//! that it sees the RPC's path, which a tonic interceptor does not.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::Status;
use tower::{Layer, Service};

use super::required_role;
use super::tokens::{Caller, TokenBook};

/// Wraps the coordinator's services in an [`AccessGate`].
#[derive(Clone, Debug)]
pub struct AccessLayer {
    book: TokenBook,
}

impl AccessLayer {
    pub fn new(book: TokenBook) -> Self {
        Self { book }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessGate { inner, book: self.book.clone() }
    }
}

/// The service an [`AccessLayer`] makes.
#[derive(Clone, Debug)]
pub struct AccessGate<S> {
    inner: S,
    book: TokenBook,
}

impl<S> AccessGate<S> {
    /// The caller of `request`, if it may make this call.
    fn admit(&self, request: &http::Request<Body>) -> Result<Caller, Status> {
        let path = request.uri().path();
        let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        let caller = self.book.resolve(authorization)?;
        let Some(needed) = required_role(path) else {
            return Err(Status::unimplemented(format!("no such RPC: {}", cut(path))));
        };
        if !caller.role.permits(needed) {
            return Err(Status::permission_denied(format!(
                "{path} needs the {needed} role (or admin); this token has the {} role",
                caller.role
            )));
        }
        Ok(caller)
    }
}

/// A caller's path in an error, cut to a sane length.
fn cut(path: &str) -> &str {
    let end = (0..=path.len().min(128)).rev().find(|&i| path.is_char_boundary(i)).unwrap_or(0);
    &path[..end]
}

impl<S> Service<http::Request<Body>> for AccessGate<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        if super::OPEN_RPCS.contains(&request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        match self.admit(&request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}
