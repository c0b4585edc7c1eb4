//! When tokens and credentials count as good and when they are renewed. All in one place so
//! the numbers can be read together.
//!
//! Token: usable until `min(signed + 900 s, credentials expiry) - margin`, where the margin is
//! 60 s (clock skew between us and RDS plus connect time) or a quarter of the lifetime when
//! that is shorter. The background task re-mints at two thirds of the usable life: 560 s after
//! signing for a full-length token, i.e. with about 5 minutes still left, so a connection never
//! waits for signing or STS even when one re-mint attempt fails and is retried. Only keys the
//! database accepted a token for (`Signer::confirm`) are re-minted so; others are minted on
//! demand, so names that never log in cost no background work.
//!
//! Credentials: re-fetched in the background `min(lifetime / 3, 5 min)` before they expire,
//! where lifetime is counted from when we fetched them. Credentials without an expiry (static
//! keys) are only re-fetched when a caller forces it.

use std::time::{Duration, SystemTime};

/// Longest safety margin cut off the end of a token's life.
pub const TOKEN_SAFETY_MARGIN: Duration = Duration::from_secs(60);
/// Longest lead time for re-fetching expiring credentials.
pub const CREDENTIALS_REFRESH_LEAD: Duration = Duration::from_secs(5 * 60);
/// A key nobody asked for in this long is no longer refreshed, and dropped once its token lapses.
pub const IDLE_AFTER: Duration = Duration::from_secs(60 * 60);
/// Most keys (host, port, user, region) one signer caches; a new key beyond it evicts the least
/// recently used. The user name comes from the client, so without a bound every distinct name
/// would stay cached. A sidecar serves a handful of real users; 1024 leaves ample room while
/// capping memory (a few MB of tokens) and the background task's per-pass scan.
pub const MAX_TOKEN_KEYS: usize = 1024;
/// Longest the background task sleeps, so a wall-clock jump is noticed within this.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Shortest background sleep, so a persistent failure cannot spin.
pub(crate) const MIN_SLEEP: Duration = Duration::from_secs(1);
/// How long a credentials failure is repeated to callers, when nothing usable is held,
/// before the provider is asked again (a client retrying in a loop must not hammer STS).
pub const NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// First retry delay after a failed background re-mint; doubles up to `MAX_SLEEP`.
pub(crate) const RETRY_BASE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenTimes {
    pub valid_until: SystemTime,
    pub refresh_at: SystemTime,
}

/// Lifetime of a token signed at `signed_at` with credentials expiring at `creds_expiry`;
/// `None` when the credentials leave no usable lifetime at all.
pub(crate) fn token_times(
    signed_at: SystemTime,
    creds_expiry: Option<SystemTime>,
    token_lifetime: Duration,
) -> Option<TokenTimes> {
    let mut hard_end = signed_at + token_lifetime;
    if let Some(exp) = creds_expiry {
        hard_end = hard_end.min(exp);
    }
    let life = hard_end.duration_since(signed_at).ok()?;
    let usable = life - TOKEN_SAFETY_MARGIN.min(life / 4);
    if usable < Duration::from_secs(1) {
        return None;
    }
    Some(TokenTimes {
        valid_until: signed_at + usable,
        refresh_at: signed_at + usable * 2 / 3,
    })
}

/// When credentials fetched at `fetched_at` should be re-fetched; `None` = never by itself.
pub(crate) fn credentials_refresh_at(
    fetched_at: SystemTime,
    expiry: Option<SystemTime>,
) -> Option<SystemTime> {
    let expiry = expiry?;
    let life = expiry.duration_since(fetched_at).unwrap_or_default();
    Some(expiry - CREDENTIALS_REFRESH_LEAD.min(life / 3))
}

/// Delay before retry number `failures` (1-based) of a failed background re-mint.
pub(crate) fn retry_delay(failures: u32) -> Duration {
    RETRY_BASE
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(MAX_SLEEP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TOKEN_LIFETIME;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn full_length_token() {
        let times = token_times(t(0), None, TOKEN_LIFETIME).unwrap();
        assert_eq!(times.valid_until, t(840));
        assert_eq!(times.refresh_at, t(560));
        // Long-lived credentials do not shorten it.
        assert_eq!(
            token_times(t(0), Some(t(3600)), TOKEN_LIFETIME),
            Some(times)
        );
    }

    #[test]
    fn credentials_cut_token_short() {
        let times = token_times(t(0), Some(t(300)), TOKEN_LIFETIME).unwrap();
        assert_eq!(times.valid_until, t(240));
        assert_eq!(times.refresh_at, t(160));
        let short = token_times(t(0), Some(t(20)), TOKEN_LIFETIME).unwrap();
        assert_eq!(short.valid_until, t(15));
        assert_eq!(token_times(t(0), Some(t(1)), TOKEN_LIFETIME), None);
        assert_eq!(token_times(t(10), Some(t(5)), TOKEN_LIFETIME), None);
    }

    #[test]
    fn credentials_refresh() {
        assert_eq!(credentials_refresh_at(t(0), None), None);
        assert_eq!(credentials_refresh_at(t(0), Some(t(3600))), Some(t(3300)));
        assert_eq!(credentials_refresh_at(t(0), Some(t(30))), Some(t(20)));
        assert_eq!(credentials_refresh_at(t(50), Some(t(30))), Some(t(30)));
    }

    #[test]
    fn retry_backoff() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(10));
        assert_eq!(retry_delay(30), MAX_SLEEP);
    }
}
