//! The cache bound and confirmation: client-chosen user names must not grow the cache or the
//! background work without bound (tokio's paused clock, counting fake provider).

#[allow(dead_code)] // shared with tests/cache.rs, which uses the rest
mod common;

use common::{pass, req, setup, S};
use rds_iam_signer::policy::MAX_TOKEN_KEYS;
use rds_iam_signer::{Clock, SignerStatus, TokenStatus};
use std::sync::atomic::Ordering;
use std::time::Duration;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn token_of<'a>(st: &'a SignerStatus, user: &str) -> Option<&'a TokenStatus> {
    st.tokens.iter().find(|t| t.user == user)
}

#[tokio::test(start_paused = true)]
async fn cache_holds_at_most_max_token_keys_evicting_the_least_recently_used() {
    let (signer, _fake, _) = setup(None);
    signer.token(&req("oldest")).await.unwrap();
    pass(MS(1)).await;
    let kept = signer.token(&req("kept")).await.unwrap();
    pass(MS(1)).await;
    for i in 0..MAX_TOKEN_KEYS - 2 {
        signer.token(&req(&format!("u{i}"))).await.unwrap();
    }
    assert_eq!(signer.status().tokens.len(), MAX_TOKEN_KEYS);
    pass(MS(1)).await;
    // A cache hit counts as use: "kept" is now the most recently used.
    assert_eq!(signer.token(&req("kept")).await.unwrap(), kept);

    for i in 0..100 {
        signer.token(&req(&format!("new{i}"))).await.unwrap();
    }
    let st = signer.status();
    assert_eq!(st.tokens.len(), MAX_TOKEN_KEYS);
    assert_eq!(st.mints_ok, MAX_TOKEN_KEYS as u64 + 100);
    assert!(
        token_of(&st, "oldest").is_none(),
        "least recently used evicted"
    );
    assert!(token_of(&st, "new99").is_some());
    // The recently used key survived with its token: no re-mint.
    assert_eq!(signer.token(&req("kept")).await.unwrap(), kept);
    assert_eq!(signer.status().mints_ok, st.mints_ok);
    // An evicted key is simply minted again on demand.
    signer.token(&req("oldest")).await.unwrap();
    assert_eq!(signer.status().mints_ok, st.mints_ok + 1);
    assert_eq!(signer.status().tokens.len(), MAX_TOKEN_KEYS);
}

#[tokio::test(start_paused = true)]
async fn only_confirmed_keys_are_reminted_in_the_background() {
    let (signer, _fake, clock) = setup(None);
    let t0 = clock.now();
    signer.token(&req("a")).await.unwrap();
    let b = signer.token(&req("b")).await.unwrap();
    signer.confirm(&req("a"));

    pass(S(600)).await; // past the 560 s re-mint point, before the 840 s expiry
    let st = signer.status();
    assert_eq!(st.mints_ok, 3, "only the confirmed key was re-minted");
    let a_st = token_of(&st, "a").unwrap();
    assert!(a_st.confirmed && a_st.signed_at >= t0 + S(560));
    let b_st = token_of(&st, "b").unwrap();
    assert!(!b_st.confirmed && b_st.signed_at < t0 + S(1));
    // The unconfirmed token is still served until it lapses...
    assert_eq!(signer.token(&req("b")).await.unwrap(), b);

    pass(S(300)).await; // b's token lapsed
    let st = signer.status();
    assert_eq!(st.mints_ok, 3);
    assert!(
        token_of(&st, "b").is_none(),
        "lapsed unconfirmed key dropped"
    );
    assert!(token_of(&st, "a").is_some_and(|t| clock.now() < t.expires_at));
    // ...and then minted again on demand.
    assert_ne!(signer.token(&req("b")).await.unwrap(), b);
    assert_eq!(signer.status().mints_ok, 4);
}

#[tokio::test(start_paused = true)]
async fn rejected_token_withdraws_the_confirmation() {
    let (signer, _fake, _) = setup(None);
    signer.token(&req("u")).await.unwrap();
    signer.confirm(&req("u"));
    signer.refresh_token(&req("u")).await.unwrap();
    assert!(!signer.status().tokens[0].confirmed);
    pass(S(600)).await;
    assert_eq!(signer.status().mints_ok, 2, "rejected key not re-minted");
    // Accepted again: re-minted at once, as it is past its re-mint point.
    signer.confirm(&req("u"));
    pass(S(1)).await;
    let st = signer.status();
    assert_eq!(st.mints_ok, 3);
    assert!(st.tokens[0].confirmed);
}

#[tokio::test(start_paused = true)]
async fn unconfirmed_key_whose_mint_failed_is_not_retried_in_the_background() {
    let (signer, fake, _) = setup(None);
    fake.fail.store(true, Ordering::SeqCst);
    signer.token(&req("u")).await.unwrap_err();
    fake.fail.store(false, Ordering::SeqCst);
    pass(S(120)).await;
    let st = signer.status();
    assert_eq!((st.mints_ok, st.mints_failed), (0, 1));
    assert_eq!(fake.calls(), 1);
    signer.token(&req("u")).await.unwrap();
    assert_eq!(signer.status().mints_ok, 1, "minted on demand");
}

#[tokio::test(start_paused = true)]
async fn background_retries_a_confirmed_key_whose_remint_failed() {
    let (signer, fake, clock) = setup(Some(S(300)));
    signer.token(&req("u")).await.unwrap();
    signer.token(&req("v")).await.unwrap();
    signer.confirm(&req("u"));
    fake.fail.store(true, Ordering::SeqCst);
    pass(S(400)).await; // credentials expired; re-mints of u failing
    let st = signer.status();
    assert!(st.mints_failed > 0 && !st.can_mint);
    let mints = st.mints_ok;
    fake.fail.store(false, Ordering::SeqCst);
    pass(S(130)).await; // longer than the longest back-off
    let st = signer.status();
    assert!(st.mints_ok > mints, "retried without a caller");
    let u = token_of(&st, "u").unwrap();
    assert!(clock.now() < u.expires_at);
    assert!(token_of(&st, "v").is_none(), "unconfirmed key dropped");
}

#[tokio::test(start_paused = true)]
async fn status_hides_lapsed_unconfirmed_tokens() {
    let (signer, _fake, clock) = setup(None);
    signer.confirm(&req("a")); // not cached yet: no effect
    signer.token(&req("a")).await.unwrap();
    signer.token(&req("b")).await.unwrap();
    assert!(signer.status().tokens.iter().all(|t| !t.confirmed));
    signer.confirm(&req("a"));
    signer.shutdown(); // nothing re-mints or drops keys from here on
    pass(S(900)).await;
    let st = signer.status();
    assert_eq!(st.tokens.len(), 1, "{:?}", st.tokens);
    // A lapsed confirmed token stays visible: its renewal is failing.
    assert!(st.tokens[0].confirmed && st.tokens[0].expires_at < clock.now());
    assert_eq!(st.earliest_token_expiry, Some(st.tokens[0].expires_at));
    assert!(st.can_mint, "static credentials still usable");
}
