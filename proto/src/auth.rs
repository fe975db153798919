//! The bearer token a client puts on every call (`authorization: Bearer TOKEN`): one
//! interceptor for the CLI and for workers, and one way to read a token from a file, so that
//! it need not stand on a command line, where every user of the machine can read it.

use std::path::Path;

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
