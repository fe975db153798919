//! Who a caller is. The bearer token a client puts on every call (`authorization: Bearer
//! TOKEN`): one interceptor for the CLI and for workers, and one way to read a token from a
//! file, so that it need not stand on a command line, where every user of the machine can read
//! it. And a worker's identity (its id and the key `Register` gave it), which every worker call
//! carries so that the coordinator can tie each write to the worker holding the lease.

use std::path::Path;
use std::sync::{Arc, RwLock};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Status};

/// Adds `authorization: Bearer TOKEN` to every call; adds nothing without a token.
#[derive(Clone, Debug, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

/// A token that cannot travel in a gRPC header.
#[derive(Debug, thiserror::Error)]
#[error("the token must be plain printable ASCII")]
pub struct InvalidToken;

/// A token file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the token file {path} is empty")]
    Empty { path: String },
}

/// The token to use: the first line of `file` (trimmed) when one is given, else `flag` (from
/// `--token` or `ALLSWEEP_TOKEN`).
pub fn resolve_token(flag: Option<String>, file: Option<&Path>) -> Result<Option<String>, TokenFileError> {
    let Some(file) = file else { return Ok(flag) };
    let path = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| TokenFileError::Read { path: path.clone(), source })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty { path });
    }
    Ok(Some(token.to_string()))
}

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

/// The metadata key of a worker's id on its calls.
pub const WORKER_ID_HEADER: &str = "x-allsweep-worker-id";
/// The metadata key of a worker's key on its calls.
pub const WORKER_KEY_HEADER: &str = "x-allsweep-worker-key";

/// A worker's id and key, as metadata values.
#[derive(Clone, Debug)]
struct Identity {
    id: MetadataValue<Ascii>,
    key: MetadataValue<Ascii>,
}

/// What a worker puts on every call: the bearer token, and, once registered, its identity.
/// Clones share the identity, so the agent sets it once after `Register` and every client
/// built from this value carries it.
#[derive(Clone, Debug, Default)]
pub struct WorkerCredentials {
    token: BearerToken,
    identity: Arc<RwLock<Option<Identity>>>,
}

impl WorkerCredentials {
    pub fn new(token: BearerToken) -> Self {
        Self { token, identity: Arc::default() }
    }

    /// From now on, calls carry this worker id and key.
    pub fn set_identity(&self, worker_id: &str, key: &str) -> Result<(), InvalidToken> {
        let identity =
            Identity { id: worker_id.parse().map_err(|_| InvalidToken)?, key: key.parse().map_err(|_| InvalidToken)? };
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = Some(identity);
        Ok(())
    }

    /// Whether a key is set (the worker registered at least once).
    pub fn has_identity(&self) -> bool {
        self.identity.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

impl tonic::service::Interceptor for WorkerCredentials {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let mut request = self.token.call(request)?;
        if let Some(identity) = &*self.identity.read().unwrap_or_else(|e| e.into_inner()) {
            request.metadata_mut().insert(WORKER_ID_HEADER, identity.id.clone());
            request.metadata_mut().insert(WORKER_KEY_HEADER, identity.key.clone());
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

    #[test]
    fn worker_credentials_carry_the_identity_once_set_to_every_clone() {
        let credentials = WorkerCredentials::new(BearerToken::new(Some("t")).expect("token"));
        let mut clone = credentials.clone();
        let before = clone.call(Request::new(())).expect("passes");
        assert!(before.metadata().get(WORKER_ID_HEADER).is_none());
        credentials.set_identity("w-1", "k3y").expect("ASCII");
        let after = clone.call(Request::new(())).expect("passes");
        assert_eq!(after.metadata().get(WORKER_ID_HEADER).and_then(|v| v.to_str().ok()), Some("w-1"));
        assert_eq!(after.metadata().get(WORKER_KEY_HEADER).and_then(|v| v.to_str().ok()), Some("k3y"));
        assert_eq!(after.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer t"));
    }

    #[test]
    fn a_token_file_gives_its_first_line_and_an_empty_or_missing_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("allsweep-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").expect("write the token");
        assert_eq!(resolve_token(Some("flag".into()), Some(&file)).expect("read").as_deref(), Some("s3cret"));
        assert_eq!(resolve_token(Some("flag".into()), None).expect("no file").as_deref(), Some("flag"));
        std::fs::write(&file, "\n").expect("write");
        assert!(resolve_token(None, Some(&file)).expect_err("empty").to_string().contains("is empty"));
        let missing = dir.join("missing");
        assert!(resolve_token(None, Some(&missing)).expect_err("missing").to_string().contains("cannot read"));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
