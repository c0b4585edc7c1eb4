//! Token cache and background refresh under tokio's paused clock, with a counting fake
//! credentials provider.

mod common;

use common::{amz_date, concurrently, key_id, pass, req, setup, S};
use rds_iam_signer::{Clock, SignerError, TokenRequest};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[tokio::test(start_paused = true)]
async fn reuses_token_within_its_lifetime() {
    let (signer, fake, _) = setup(None);
    let first = signer.token(&req("u")).await.unwrap();
    for _ in 0..5 {
        pass(S(100)).await; // up to 500 s: still before the 560 s re-mint point
        assert_eq!(signer.token(&req("u")).await.unwrap(), first);
    }
    assert_eq!(fake.calls(), 1);
    assert_eq!(signer.status().mints_ok, 1);
    // Another user is another key: another token, same credentials.
    let other = signer.token(&req("v")).await.unwrap();
    assert_ne!(other, first);
    assert_eq!(fake.calls(), 1);
    assert_eq!(signer.status().tokens.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn background_remints_before_expiry_without_a_caller() {
    let (signer, fake, clock) = setup(None);
    let t0 = clock.now();
    let first = signer.token(&req("u")).await.unwrap();
    signer.confirm(&req("u"));
    let st = signer.status();
    let signed = st.tokens[0].signed_at;
    assert!(signed >= t0 && signed < t0 + S(1));
    assert_eq!(st.tokens[0].expires_at, signed + S(840));
    assert_eq!(st.tokens[0].refresh_at, signed + S(560));

    pass(S(559)).await;
    assert_eq!(
        signer.status().mints_ok,
        1,
        "no re-mint before the refresh point"
    );
    pass(S(3)).await;
    // Nobody called token(): the background task re-minted on its own.
    let st = signer.status();
    assert_eq!(st.mints_ok, 2);
    assert!(st.tokens[0].signed_at >= t0 + S(560));
    assert_eq!(st.tokens[0].expires_at, st.tokens[0].signed_at + S(840));
    // The caller now gets the new token straight from the cache.
    let second = signer.token(&req("u")).await.unwrap();
    assert_ne!(second, first);
    assert_ne!(amz_date(second.expose()), amz_date(first.expose()));
    assert_eq!(signer.status().mints_ok, 2);
    assert_eq!(fake.calls(), 1, "static credentials are not re-fetched");
}

#[tokio::test(start_paused = true)]
async fn token_lifetime_is_cut_short_by_expiring_credentials() {
    let (signer, fake, clock) = setup(Some(S(300)));
    let t0 = clock.now();
    let first = signer.token(&req("u")).await.unwrap();
    signer.confirm(&req("u"));
    let creds_expiry = signer.status().credentials_expiry.unwrap();
    assert_eq!(creds_expiry, t0 + S(300));
    // min(900 s, 300 s) minus a 60 s margin.
    assert_eq!(signer.status().tokens[0].expires_at, t0 + S(240));
    assert_eq!(key_id(first.expose()), "AKIDFAKE0001");

    // Credentials are renewed 100 s (a third of 300 s) before expiry, and the token re-minted
    // with them because its credentials identity changed.
    pass(S(205)).await;
    assert_eq!(fake.calls(), 2);
    let st = signer.status();
    assert!(st.credentials_expiry.unwrap() > creds_expiry);
    let tok = signer.token(&req("u")).await.unwrap();
    assert_eq!(key_id(tok.expose()), "AKIDFAKE0002");
    assert!(st.tokens[0].expires_at <= st.credentials_expiry.unwrap());
}

#[tokio::test(start_paused = true)]
async fn no_token_is_served_past_credentials_expiry() {
    let (signer, fake, clock) = setup(Some(S(300)));
    let t0 = clock.now();
    signer.token(&req("u")).await.unwrap();
    fake.fail.store(true, Ordering::SeqCst); // renewal will fail from now on
    let mut served_until = t0;
    let mut calls_before_expiry = 0;
    while clock.now() < t0 + S(320) {
        let now = clock.now();
        if now < t0 + S(300) {
            calls_before_expiry = fake.calls();
        }
        match signer.token(&req("u")).await {
            Ok(_) => {
                let st = signer.status();
                assert!(
                    st.tokens[0].expires_at <= t0 + S(300),
                    "token outlives its credentials"
                );
                assert!(now < st.tokens[0].expires_at);
                served_until = now;
            }
            Err(err) => assert!(err.is_credentials(), "{err}"),
        }
        pass(S(1)).await;
    }
    assert!(
        served_until > t0 + S(240),
        "old credentials keep working while renewal fails"
    );
    // Renewal from t0+200 backs off (5, 10, 20, 40, 60 s) rather than calling every second.
    assert!(
        (3..=8).contains(&calls_before_expiry),
        "renewal attempts before expiry: {calls_before_expiry}"
    );
    assert!(served_until < t0 + S(300));
    let err = signer.token(&req("u")).await.unwrap_err();
    assert!(err.is_credentials(), "{err}");
    assert!(!signer.status().can_mint);
}

#[tokio::test(start_paused = true)]
async fn one_mint_for_100_concurrent_callers() {
    let (signer, fake, _) = setup(Some(S(3600)));
    let tokens: Vec<_> = concurrently(&signer, 100, |s| async move { s.token(&req("u")).await })
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(fake.calls(), 1);
    assert_eq!(signer.status().mints_ok, 1);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

#[tokio::test(start_paused = true)]
async fn failing_credentials_are_fetched_once_for_concurrent_callers() {
    let (signer, fake, _) = setup(None);
    fake.fail.store(true, Ordering::SeqCst);
    for r in concurrently(&signer, 100, |s| async move { s.token(&req("u")).await }).await {
        assert!(matches!(r, Err(SignerError::NoCredentials { .. })));
    }
    assert_eq!(fake.calls(), 1);
    assert_eq!(signer.status().mints_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn forced_refresh_gets_new_credentials_and_token() {
    let (signer, fake, _) = setup(Some(S(3600)));
    let first = signer.token(&req("u")).await.unwrap();
    let forced = signer.refresh_token(&req("u")).await.unwrap();
    assert_ne!(forced, first);
    assert_eq!(fake.calls(), 2);
    assert_eq!(key_id(forced.expose()), "AKIDFAKE0002");
    assert_eq!(signer.token(&req("u")).await.unwrap(), forced);

    // Ten connections rejected at once: one more fetch, one more mint.
    let mints = signer.status().mints_ok;
    let tokens: Vec<_> = concurrently(
        &signer,
        10,
        |s| async move { s.refresh_token(&req("u")).await },
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(key_id(tokens[0].expose()), "AKIDFAKE0003");
    assert_eq!(fake.calls(), 3);
    assert_eq!(signer.status().mints_ok, mints + 1);
}

#[tokio::test(start_paused = true)]
async fn other_keys_are_reminted_after_credentials_change() {
    let (signer, _fake, _) = setup(None);
    let a = signer.token(&req("a")).await.unwrap();
    signer.token(&req("b")).await.unwrap();
    signer.confirm(&req("b"));
    signer.refresh_token(&req("a")).await.unwrap();
    pass(S(2)).await;
    let b = signer.token(&req("b")).await.unwrap();
    assert_eq!(
        key_id(b.expose()),
        "AKIDFAKE0002",
        "b re-minted with the new identity"
    );
    assert_ne!(key_id(a.expose()), key_id(b.expose()));
}

#[tokio::test(start_paused = true)]
async fn no_credentials_error_names_the_sources() {
    let (signer, fake, _) = setup(None);
    fake.fail.store(true, Ordering::SeqCst);
    let err = signer.token(&req("u")).await.unwrap_err();
    assert!(err.is_credentials());
    let msg = err.to_string();
    for needle in [
        "no AWS credentials",
        "environment",
        "profile",
        "web identity",
        "IRSA",
        "ECS",
        "EKS",
        "container",
        "IMDS",
        "no providers in chain provided credentials",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from {msg}");
    }
    let st = signer.status();
    assert_eq!(st.last_error.as_deref(), Some(msg.as_str()));
    assert!(!st.can_mint && !st.healthy());
    assert_eq!(st.mints_failed, 1);

    // A client retrying at once gets the same answer without another provider call...
    assert_eq!(signer.token(&req("u")).await.unwrap_err(), err);
    assert_eq!(fake.calls(), 1);
    // ...and once credentials appear, the next call after a moment works.
    fake.fail.store(false, Ordering::SeqCst);
    pass(S(2)).await;
    signer.token(&req("u")).await.unwrap();
    assert!(signer.status().can_mint);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_stop_being_refreshed() {
    let (signer, _fake, _) = setup(None);
    signer.token(&req("u")).await.unwrap();
    signer.confirm(&req("u"));
    pass(S(3600 + 900)).await;
    let mints = signer.status().mints_ok;
    assert!(
        (6..=8).contains(&mints),
        "refreshed while recently used: {mints}"
    );
    pass(S(3600)).await;
    let st = signer.status();
    assert_eq!(st.mints_ok, mints, "idle key still being refreshed");
    assert!(
        st.tokens.is_empty(),
        "idle key with a lapsed token is dropped"
    );
    // Using it again mints on demand.
    signer.token(&req("u")).await.unwrap();
    assert_eq!(signer.status().mints_ok, mints + 1);
}

#[tokio::test(start_paused = true)]
async fn background_task_ends_with_the_last_clone() {
    let (signer, fake, _) = setup(None);
    let metrics = tokio::runtime::Handle::current().metrics();
    let clone = signer.clone();
    clone.token(&req("u")).await.unwrap();
    assert_eq!(metrics.num_alive_tasks(), 1);
    drop(signer);
    pass(S(1)).await;
    assert_eq!(metrics.num_alive_tasks(), 1, "a clone is still alive");
    drop(clone);
    pass(S(1)).await;
    assert_eq!(metrics.num_alive_tasks(), 0);
    // The provider (held only by the signer) was released too.
    assert_eq!(Arc::strong_count(&fake.calls), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_background_task() {
    let (signer, _fake, _) = setup(None);
    let metrics = tokio::runtime::Handle::current().metrics();
    signer.token(&req("u")).await.unwrap();
    signer.confirm(&req("u"));
    signer.shutdown();
    pass(S(1)).await;
    assert_eq!(metrics.num_alive_tasks(), 0);
    pass(S(600)).await;
    assert_eq!(
        signer.status().mints_ok,
        1,
        "no background re-mint after shutdown"
    );
    // Still usable on demand.
    signer.token(&req("u")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn status_reports_expiries() {
    let (signer, _fake, clock) = setup(Some(S(7200)));
    let t0 = clock.now();
    let st = signer.status();
    assert!(!st.credentials_loaded && !st.can_mint && st.tokens.is_empty());
    signer.token(&req("a")).await.unwrap();
    pass(S(10)).await;
    signer.token(&req("b")).await.unwrap();
    let st = signer.status();
    assert!(st.credentials_loaded && st.can_mint && st.healthy());
    assert_eq!(st.credentials_expiry, Some(t0 + S(7200)));
    assert_eq!(st.tokens.len(), 2);
    let first_signed = st.tokens.iter().map(|t| t.signed_at).min().unwrap();
    assert_eq!(st.earliest_token_expiry, Some(first_signed + S(840)));
    assert_eq!((st.mints_ok, st.mints_failed), (2, 0));
    assert_eq!(st.credential_fetches_ok, 1);
    let dbg = format!("{st:?}");
    assert!(
        !dbg.contains("fakeSecretKey")
            && !dbg.contains("fakeSessionToken")
            && !dbg.contains("X-Amz-Signature")
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_requests_fail_without_fetching() {
    let (signer, fake, _) = setup(None);
    let err = signer
        .token(&TokenRequest::new("bad host", 5432, "u", "us-east-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, SignerError::InvalidRequest { .. }));
    assert!(!err.is_credentials());
    let _ = fake;
}
