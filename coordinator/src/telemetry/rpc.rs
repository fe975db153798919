//! Counting and timing every gRPC call, by method and status code: a tower layer outside
//! the access gate, so refused calls are counted too.
//!
//! The code is read from the response headers: tonic answers an error as a trailers-only
//! response (`grpc-status` in the headers), and a success carries no status there, so the
//! call counts as `Ok`. A stream that fails after its first message counts as `Ok` (its
//! status travels in trailers this layer does not wait for).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::body::Body;
use tower::{Layer, Service};

use super::Telemetry;

/// The method label of a path: a known RPC's path, or `other` (a caller's path is not
/// trusted to name a label: it would grow the series without bound).
fn method_label(path: &str) -> &'static str {
    crate::access::RPC_ROLES
        .iter()
        .map(|(p, _)| *p)
        .chain(crate::access::OPEN_RPCS.iter().copied())
        .find(|p| path == *p)
        .unwrap_or("other")
}

/// Wraps the gRPC services in an [`RpcMetrics`] service.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    telemetry: Telemetry,
}

impl RpcMetricsLayer {
    pub fn new(telemetry: Telemetry) -> Self {
        Self { telemetry }
    }
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner, telemetry: self.telemetry.clone() }
    }
}

/// The service an [`RpcMetricsLayer`] makes.
#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    telemetry: Telemetry,
}

impl<S> Service<http::Request<Body>> for RpcMetrics<S>
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

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = method_label(request.uri().path());
        let telemetry = self.telemetry.clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unknown,
            };
            telemetry.rpc_answered(method, &format!("{code:?}"), started.elapsed().as_secs_f64());
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;

    #[test]
    fn only_known_paths_name_a_method() {
        assert_eq!(method_label("/allsweep.v1.UserService/Submit"), "/allsweep.v1.UserService/Submit");
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(method_label("/allsweep.v1.UserService/Submit2"), "other");
        assert_eq!(method_label("/x/../../etc/passwd"), "other");
    }
}
