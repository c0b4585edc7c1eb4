//! `Signer::from_aws_config` against the real AWS default chain, with the process environment
//! pointed at a loopback container-credentials endpoint (the ECS / EKS Pod Identity protocol).
//! Environment variables are process-global, so this file holds a single test, and sets them
//! only while no runtime is running.
//!
//! No request leaves the machine: IMDS is disabled, every AWS endpoint is pinned to loopback,
//! and the profile files point at paths that do not exist.

use rds_iam_signer::{CredentialOptions, Signer, SignerError, TokenRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Lifetime of the credentials the fake endpoint hands out: short, so renewal happens in-test.
const CREDS_LIFETIME: Duration = Duration::from_secs(9);
const AUTH: &str = "test-container-auth-token";

fn isolate_environment() {
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_DEFAULT_REGION",
    ] {
        std::env::remove_var(var);
    }
    let nowhere = std::env::temp_dir().join(format!("rds-iam-signer-test-{}", std::process::id()));
    std::env::set_var("AWS_CONFIG_FILE", nowhere.join("config"));
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", nowhere.join("credentials"));
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    std::env::set_var("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9");
    std::env::set_var("AWS_REGION", "eu-west-1");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn req() -> TokenRequest {
    TokenRequest::new(
        "db.cluster-abc.eu-west-1.rds.amazonaws.com",
        5432,
        "iam_user",
        "eu-west-1",
    )
}

fn key_id(token: &str) -> String {
    let cred = token.split("X-Amz-Credential=").nth(1).unwrap();
    cred.split("%2F").next().unwrap().to_string()
}

/// Serves container credentials; each response has new keys and a short expiry.
async fn serve(listener: TcpListener, hits: Arc<AtomicUsize>) {
    loop {
        let (mut sock, _) = listener.accept().await.unwrap();
        let hits = hits.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
            let (status, body) = if head.starts_with("get /creds ")
                && head.contains(&format!("authorization: {}", AUTH.to_ascii_lowercase()))
            {
                let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
                let expiry = (OffsetDateTime::now_utc() + CREDS_LIFETIME)
                    .replace_nanosecond(0)
                    .unwrap()
                    .format(&Rfc3339)
                    .unwrap();
                let body = format!(
                    r#"{{"AccessKeyId":"ASIACONTAINER{n:04}","SecretAccessKey":"containerSecret{n:04}","Token":"containerSession{n:04}","Expiration":"{expiry}"}}"#
                );
                ("200 OK", body)
            } else {
                ("403 Forbidden", r#"{"message":"bad request"}"#.to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[test]
fn default_chain_from_environment() {
    isolate_environment();

    // Phase 1: nothing configured. Building works; minting names every place looked.
    runtime().block_on(async {
        let signer = Signer::from_aws_config(CredentialOptions::default())
            .await
            .unwrap();
        assert_eq!(signer.default_region().await.as_deref(), Some("eu-west-1"));
        let err = signer.token(&req()).await.unwrap_err();
        assert!(matches!(err, SignerError::NoCredentials { .. }), "{err:?}");
        assert!(err.is_credentials());
        let msg = err.to_string();
        for needle in [
            "environment",
            "profile",
            "web identity",
            "IRSA",
            "container",
            "IMDS",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
        assert!(!signer.status().can_mint);
    });

    // Phase 2: a container credentials endpoint on loopback, handing out short-lived keys.
    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::env::set_var(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("http://127.0.0.1:{port}/creds"),
    );
    std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN", AUTH);
    let hits = Arc::new(AtomicUsize::new(0));
    rt.spawn(serve(listener, hits.clone()));
    rt.block_on(async {
        let opts = CredentialOptions {
            region: Some("us-west-2".into()),
            ..CredentialOptions::default()
        };
        let signer = Signer::from_aws_config(opts).await.unwrap();
        assert_eq!(signer.default_region().await.as_deref(), Some("us-west-2"));
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "building the chain fetches nothing"
        );

        let first = signer.token(&req()).await.unwrap();
        assert_eq!(key_id(first.expose()), "ASIACONTAINER0001");
        assert!(first
            .expose()
            .contains("X-Amz-Security-Token=containerSession0001&"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // As the proxy does once the database accepted it: keep this key fresh.
        signer.confirm(&req());
        // Cached: no more fetches while the credentials are young.
        assert_eq!(signer.token(&req()).await.unwrap(), first);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let expiry = signer
            .status()
            .credentials_expiry
            .expect("container creds expire");
        assert!(signer.status().tokens[0].expires_at <= expiry);

        // Without any caller, the background task renews the credentials before they expire
        // and re-mints the token with them.
        let deadline = Instant::now() + CREDS_LIFETIME + Duration::from_secs(5);
        loop {
            let st = signer.status();
            if hits.load(Ordering::SeqCst) >= 2 && st.credentials_expiry.is_some_and(|e| e > expiry)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "credentials were not renewed: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            std::time::SystemTime::now() < expiry,
            "renewed only after expiry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let renewed = signer.token(&req()).await.unwrap();
        assert_eq!(key_id(renewed.expose()), "ASIACONTAINER0002");
        let st = signer.status();
        assert_eq!(st.credential_fetches_failed, 0);
        assert!(st.mints_ok >= 2);
    });
}
