//! The token cache: one entry per `TokenRequest`, each with its current token and a mint lock
//! so concurrent misses mint once. At most `max_keys` entries: a new key evicts the least
//! recently used, so client-chosen user names cannot grow it without bound.

use crate::error::SignerError;
use crate::token::{AuthToken, TokenRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

/// A token plus the times that govern it.
#[derive(Debug, Clone)]
pub(crate) struct Minted {
    pub token: AuthToken,
    pub signed_at: SystemTime,
    pub valid_until: SystemTime,
    pub refresh_at: SystemTime,
    /// The credentials identity it was signed with; a different current one means re-mint.
    pub access_key_id: String,
}

#[derive(Debug, Default)]
pub(crate) struct EntryState {
    pub minted: Option<Minted>,
    /// Finished mint attempts, and the error of the last one: callers that queued behind a
    /// failing mint get its error instead of each retrying in turn.
    pub attempts: u64,
    pub last_error: Option<SignerError>,
    /// Finished forced refreshes, so concurrent forced refreshes coalesce.
    pub forced: u64,
    /// Consecutive background failures, and when the background may try again.
    pub failures: u32,
    pub retry_at: Option<SystemTime>,
}

pub(crate) struct Entry {
    state: Mutex<EntryState>,
    pub mint_lock: tokio::sync::Mutex<()>,
    /// Milliseconds since the Unix epoch of the last `token()` call for this key.
    last_used_ms: AtomicU64,
    /// The database accepted a token for this key (`Signer::confirm`); only such keys are
    /// re-minted in the background.
    confirmed: AtomicBool,
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Entry {
    fn new(now: SystemTime) -> Self {
        Self {
            state: Mutex::new(EntryState::default()),
            mint_lock: tokio::sync::Mutex::new(()),
            last_used_ms: AtomicU64::new(epoch_ms(now)),
            confirmed: AtomicBool::new(false),
        }
    }

    pub fn confirmed(&self) -> bool {
        self.confirmed.load(Ordering::Acquire)
    }

    /// Sets or clears the confirmation; `true` when it was not set before.
    pub fn set_confirmed(&self, confirmed: bool) -> bool {
        !self.confirmed.swap(confirmed, Ordering::AcqRel)
    }

    pub fn state(&self) -> MutexGuard<'_, EntryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn touch(&self, now: SystemTime) {
        self.last_used_ms.store(epoch_ms(now), Ordering::Relaxed);
    }

    pub fn idle_for(&self, now: SystemTime) -> Duration {
        Duration::from_millis(
            epoch_ms(now).saturating_sub(self.last_used_ms.load(Ordering::Relaxed)),
        )
    }

    /// The current token if it is still within its usable life.
    pub fn valid_token(&self, now: SystemTime) -> Option<AuthToken> {
        self.state()
            .minted
            .as_ref()
            .filter(|m| now < m.valid_until)
            .map(|m| m.token.clone())
    }
}

pub(crate) struct TokenCache {
    map: RwLock<HashMap<TokenRequest, Arc<Entry>>>,
    max_keys: usize,
}

impl TokenCache {
    /// A cache holding at most `max_keys` (at least 1) keys.
    pub fn new(max_keys: usize) -> Self {
        Self {
            map: RwLock::default(),
            max_keys: max_keys.max(1),
        }
    }

    /// Fast path: a valid token for `req`, touching its entry. No allocation.
    pub fn lookup(&self, req: &TokenRequest, now: SystemTime) -> Option<AuthToken> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let entry = map.get(req)?;
        entry.touch(now);
        entry.valid_token(now)
    }

    /// The entry for `req`, created if missing (evicting the least recently used entries when
    /// full); `true` when it was created. A mint still holding an evicted entry completes and
    /// its caller gets the token, but it is not cached: the next call creates a new entry.
    pub fn entry(&self, req: &TokenRequest, now: SystemTime) -> (Arc<Entry>, bool) {
        if let Some(entry) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(req)
        {
            entry.touch(now);
            return (entry.clone(), false);
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(req) {
            self.make_room(&mut map);
        }
        let mut created = false;
        let entry = map
            .entry(req.clone())
            .or_insert_with(|| {
                created = true;
                Arc::new(Entry::new(now))
            })
            .clone();
        entry.touch(now);
        (entry, created)
    }

    /// Evicts least recently used entries until one more fits. O(n), but only when a new key
    /// arrives at a full cache, and n is bounded.
    fn make_room(&self, map: &mut HashMap<TokenRequest, Arc<Entry>>) {
        while map.len() >= self.max_keys {
            // Unconfirmed keys go first: a flood of made-up user names must not push out the
            // users the database accepted.
            let Some(lru) = map
                .iter()
                .min_by_key(|(_, e)| (e.confirmed(), e.last_used_ms.load(Ordering::Relaxed)))
                .map(|(k, _)| k.clone())
            else {
                return;
            };
            map.remove(&lru);
            tracing::debug!(host = %lru.host, port = lru.port, user = ?lru.user, "evicted least recently used token key");
        }
    }

    /// Marks `req` confirmed; `true` when it is cached and was not confirmed before.
    pub fn confirm(&self, req: &TokenRequest) -> bool {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(req)
            .is_some_and(|e| e.set_confirmed(true))
    }

    pub fn snapshot(&self) -> Vec<(TokenRequest, Arc<Entry>)> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Drops `req` if its entry is still `entry` (not replaced meanwhile).
    pub fn remove(&self, req: &TokenRequest, entry: &Arc<Entry>) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.get(req).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(req);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_900_000_000_000 + ms)
    }

    fn req(user: &str) -> TokenRequest {
        TokenRequest::new(
            "db.example.us-east-1.rds.amazonaws.com",
            5432,
            user,
            "us-east-1",
        )
    }

    fn users(cache: &TokenCache) -> Vec<String> {
        let mut users: Vec<_> = cache.snapshot().into_iter().map(|(r, _)| r.user).collect();
        users.sort();
        users
    }

    #[test]
    fn evicts_least_recently_used_beyond_the_bound() {
        let cache = TokenCache::new(3);
        let (a, _) = cache.entry(&req("a"), at(0));
        let (b, _) = cache.entry(&req("b"), at(1));
        cache.entry(&req("c"), at(2));
        // Using `a` again (even without a token) makes `b` the least recently used.
        assert!(cache.lookup(&req("a"), at(3)).is_none());
        // An existing key never evicts.
        assert!(!cache.entry(&req("a"), at(4)).1);
        assert_eq!(users(&cache), ["a", "b", "c"]);

        assert!(cache.entry(&req("d"), at(5)).1);
        assert_eq!(users(&cache), ["a", "c", "d"]);
        assert!(cache.entry(&req("e"), at(6)).1);
        assert_eq!(users(&cache), ["a", "d", "e"]);
        assert!(Arc::ptr_eq(&cache.entry(&req("a"), at(7)).0, &a));

        // The evicted entry still works for whoever holds it; it is just no longer cached.
        b.state().attempts += 1;
        assert!(!cache.confirm(&req("b")));
        let (b2, created) = cache.entry(&req("b"), at(8));
        assert!(created && !Arc::ptr_eq(&b, &b2));
        assert_eq!(b2.state().attempts, 0);
        assert_eq!(users(&cache), ["a", "b", "e"]);
    }

    #[test]
    fn a_flood_of_unconfirmed_keys_does_not_evict_confirmed_ones() {
        let cache = TokenCache::new(3);
        cache.entry(&req("accepted"), at(0));
        assert!(cache.confirm(&req("accepted")));
        for (i, name) in ["x1", "x2", "x3", "x4", "x5"].iter().enumerate() {
            cache.entry(&req(name), at(10 + i as u64));
        }
        assert_eq!(users(&cache), ["accepted", "x4", "x5"]);
    }

    #[test]
    fn confirm_reports_the_first_confirmation_only() {
        let cache = TokenCache::new(2);
        assert!(!cache.confirm(&req("a")), "unknown key");
        let (a, _) = cache.entry(&req("a"), at(0));
        assert!(!a.confirmed());
        assert!(cache.confirm(&req("a")));
        assert!(!cache.confirm(&req("a")));
        assert!(a.confirmed());
    }
}
