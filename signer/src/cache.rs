//! The token cache: one entry per `TokenRequest`, each with its current token and a mint lock
//! so concurrent misses mint once.

use crate::error::SignerError;
use crate::token::{AuthToken, TokenRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
        }
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

#[derive(Default)]
pub(crate) struct TokenCache {
    map: RwLock<HashMap<TokenRequest, Arc<Entry>>>,
}

impl TokenCache {
    /// Fast path: a valid token for `req`, touching its entry. No allocation.
    pub fn lookup(&self, req: &TokenRequest, now: SystemTime) -> Option<AuthToken> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let entry = map.get(req)?;
        entry.touch(now);
        entry.valid_token(now)
    }

    /// The entry for `req`, created if missing; `true` when it was created.
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
