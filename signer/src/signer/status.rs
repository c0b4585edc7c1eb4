//! What the signer holds, for health checks and metrics: [`SignerStatus`] and one
//! [`TokenStatus`] per cached token.

use super::Signer;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::SystemTime;

/// A point-in-time view for health checks and metrics. Holds no secrets.
#[derive(Debug, Clone)]
pub struct SignerStatus {
    /// Whether credentials have been fetched at least once.
    pub credentials_loaded: bool,
    /// Expiry of the credentials held (`None`: none held, or they never expire).
    pub credentials_expiry: Option<SystemTime>,
    /// Every cached token, with when it stops being served; unconfirmed ones only until they
    /// lapse, as nothing renews them (so a lapsed one here means a confirmed key's renewal
    /// is failing).
    pub tokens: Vec<TokenStatus>,
    /// The soonest `expires_at` among `tokens`.
    pub earliest_token_expiry: Option<SystemTime>,
    pub mints_ok: u64,
    pub mints_failed: u64,
    pub credential_fetches_ok: u64,
    pub credential_fetches_failed: u64,
    /// Message of the most recent failure (mint or credentials), and when.
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// A currently valid token (confirmed or not) or unexpired credentials are held.
    pub can_mint: bool,
}

impl SignerStatus {
    /// Same as `can_mint`: what readiness should report.
    pub fn healthy(&self) -> bool {
        self.can_mint
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub region: String,
    pub signed_at: SystemTime,
    /// When the cache stops handing it out (before its real end, see `policy`).
    pub expires_at: SystemTime,
    /// When the background task re-mints it, if `confirmed`.
    pub refresh_at: SystemTime,
    /// The database accepted a token for this key ([`Signer::confirm`]), so it is kept fresh.
    pub confirmed: bool,
}

impl Signer {
    pub fn status(&self) -> SignerStatus {
        let inner = &self.inner;
        let now = inner.clock.now();
        let held = inner.creds.peek();
        let tokens = self.token_statuses(now);
        let earliest_token_expiry = tokens.iter().map(|t| t.expires_at).min();
        let token_valid = tokens.iter().any(|t| now < t.expires_at);
        let creds_valid = held.as_ref().is_some_and(|h| h.usable(now));
        let last_error = inner
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        SignerStatus {
            credentials_loaded: held.is_some(),
            credentials_expiry: held.as_ref().and_then(|h| h.creds.expiry()),
            tokens,
            earliest_token_expiry,
            mints_ok: inner.mints_ok.load(Ordering::Relaxed),
            mints_failed: inner.mints_failed.load(Ordering::Relaxed),
            credential_fetches_ok: inner.creds.fetches_ok.load(Ordering::Relaxed),
            credential_fetches_failed: inner.creds.fetches_failed.load(Ordering::Relaxed),
            last_error_at: last_error.as_ref().map(|(at, _)| *at),
            last_error: last_error.map(|(_, msg)| msg),
            can_mint: token_valid || creds_valid,
        }
    }

    /// Every cached key that holds a token, except unconfirmed ones whose token lapsed (the
    /// background task drops those), sorted by host, port, user and region.
    fn token_statuses(&self, now: SystemTime) -> Vec<TokenStatus> {
        let mut tokens: Vec<TokenStatus> = self
            .inner
            .cache
            .snapshot()
            .into_iter()
            .filter_map(|(req, entry)| {
                let confirmed = entry.confirmed();
                let state = entry.state();
                let m = state
                    .minted
                    .as_ref()
                    .filter(|m| confirmed || now < m.valid_until)?;
                Some(TokenStatus {
                    host: req.host,
                    port: req.port,
                    user: req.user,
                    region: req.region,
                    signed_at: m.signed_at,
                    expires_at: m.valid_until,
                    refresh_at: m.refresh_at,
                    confirmed,
                })
            })
            .collect();
        tokens.sort_by(|a, b| {
            (&a.host, a.port, &a.user, &a.region).cmp(&(&b.host, b.port, &b.user, &b.region))
        });
        tokens
    }
}
