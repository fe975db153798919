//! Tokens and the roles they carry. A token's secret is shown once, when it is made; the
//! database keeps only its SHA-256, and the coordinator keeps the live (unrevoked) hashes in
//! memory ([`TokenBook`]), so checking a call costs one hash and one map lookup. The book is
//! reloaded from the database when a token is made or revoked here, and every few seconds (a
//! revocation made through another coordinator of the same database, or in SQL, takes effect
//! within that period).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::TryRngCore;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tonic::Status;

use super::Role;
use crate::store::{Store, StoreError, TokenRow};

/// Who made a call, as the gate found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// The token's id; `None` for the bootstrap token and on an open coordinator.
    pub token_id: Option<String>,
}

/// The bearer tokens the coordinator accepts.
#[derive(Clone, Debug, Default)]
pub struct TokenBook {
    inner: Arc<RwLock<Book>>,
}

#[derive(Debug, Default)]
struct Book {
    /// The SHA-256 of `serve --token`: an admin token that lives outside the database.
    bootstrap: Option<String>,
    /// Unrevoked tokens by the SHA-256 of their secret.
    live: HashMap<String, Caller>,
}

/// A new token secret: 192 random bits from the operating system's generator, hex, with a
/// prefix that says what it is when it turns up in a file or a log.
pub fn new_secret() -> String {
    let mut bytes = [0_u8; 24];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).expect("the operating system's random generator");
    format!("asw_{}", hex::encode(bytes))
}

/// A new token id: short, random, safe in a URL and a log.
pub fn new_token_id() -> String {
    let mut bytes = [0_u8; 6];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).expect("the operating system's random generator");
    format!("tok-{}", hex::encode(bytes))
}

/// The SHA-256 of a secret, hex: what the database keeps.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl TokenBook {
    /// A book with the bootstrap token (`serve --token`), if any, and no database tokens yet.
    pub fn new(bootstrap: Option<&str>) -> Self {
        let bootstrap = bootstrap.filter(|t| !t.is_empty()).map(hash);
        Self { inner: Arc::new(RwLock::new(Book { bootstrap, live: HashMap::new() })) }
    }

    /// Replaces the database tokens with the unrevoked ones of `rows`.
    pub fn load(&self, rows: &[TokenRow]) {
        let live = rows
            .iter()
            .filter(|t| t.revoked_at.is_none())
            .map(|t| (t.hash.clone(), Caller { role: t.role, token_id: Some(t.id.clone()) }))
            .collect();
        self.inner.write().unwrap_or_else(|e| e.into_inner()).live = live;
    }

    /// Reads the tokens from the database again.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let rows = store.tokens().await?;
        self.load(&rows);
        Ok(())
    }

    /// Whether calls need no token: no bootstrap token and no live database token.
    pub fn is_open(&self) -> bool {
        let book = self.inner.read().unwrap_or_else(|e| e.into_inner());
        book.bootstrap.is_none() && book.live.is_empty()
    }

    /// The caller of a call carrying this `authorization` header value, or UNAUTHENTICATED.
    pub fn resolve(&self, authorization: Option<&str>) -> Result<Caller, Status> {
        let book = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if book.bootstrap.is_none() && book.live.is_empty() {
            return Ok(Caller { role: Role::Admin, token_id: None });
        }
        let Some(header) = authorization else {
            return Err(Status::unauthenticated(
                "this coordinator requires a token: set ALLSWEEP_TOKEN_FILE (or ALLSWEEP_TOKEN, --token-file)",
            ));
        };
        let secret = header.strip_prefix("Bearer ").unwrap_or("");
        let presented = hash(secret);
        if book.bootstrap.as_deref() == Some(presented.as_str()) {
            return Ok(Caller { role: Role::Admin, token_id: None });
        }
        book.live.get(&presented).cloned().ok_or_else(|| {
            Status::unauthenticated(
                "unknown or revoked token: ask the coordinator's admin for a token (allsweep token create)",
            )
        })
    }
}

/// Reloads the book from the database every `period` until `shutdown`; a failed read keeps
/// the tokens already known and is logged.
pub async fn refresh(book: TokenBook, store: Arc<dyn Store>, period: Duration, shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopped = async move {
        let mut shutdown = shutdown;
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(error) = book.reload(&*store).await {
                    tracing::warn!(%error, "cannot reload the tokens; keeping those known");
                }
            }
            () = &mut stopped => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, secret: &str, role: Role, revoked: bool) -> TokenRow {
        TokenRow {
            id: id.into(),
            name: "n".into(),
            role,
            hash: hash(secret),
            created_at: 1,
            revoked_at: revoked.then_some(2),
        }
    }

    #[test]
    fn an_open_coordinator_admits_everyone_as_admin_until_a_token_exists() {
        let book = TokenBook::new(None);
        assert!(book.is_open());
        assert_eq!(book.resolve(None).expect("open").role, Role::Admin);
        book.load(&[row("tok-1", "s1", Role::User, false)]);
        assert!(!book.is_open());
        assert_eq!(book.resolve(None).expect_err("closed now").code(), tonic::Code::Unauthenticated);
        let caller = book.resolve(Some("Bearer s1")).expect("known");
        assert_eq!(caller, Caller { role: Role::User, token_id: Some("tok-1".into()) });
    }

    #[test]
    fn revoked_and_unknown_tokens_are_refused_and_the_bootstrap_token_is_an_admin() {
        let book = TokenBook::new(Some("boot"));
        book.load(&[row("tok-1", "s1", Role::Worker, true), row("tok-2", "s2", Role::Worker, false)]);
        assert_eq!(book.resolve(Some("Bearer boot")).expect("bootstrap").role, Role::Admin);
        assert!(book.resolve(Some("Bearer s1")).is_err(), "revoked");
        assert!(book.resolve(Some("Bearer nope")).is_err(), "unknown");
        assert!(book.resolve(Some("s2")).is_err(), "not a bearer header");
        assert_eq!(book.resolve(Some("Bearer s2")).expect("live").role, Role::Worker);
    }

    #[test]
    fn secrets_are_long_random_and_distinct() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("asw_") && a.len() == 4 + 48);
        assert_eq!(hash(&a).len(), 64);
        assert!(new_token_id().starts_with("tok-"));
    }
}
