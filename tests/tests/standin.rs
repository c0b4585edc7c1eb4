//! The stand-in behaves like Aurora with IAM auth: TLS only, tokens for `rds_iam` members
//! (asked as a cleartext password), SCRAM for everyone else.

use std::time::{Duration, Instant, SystemTime};

use standin::{sign_for_test, Credentials, Refusal, StandIn, StandInOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

async fn start() -> StandIn {
    let started = Instant::now();
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    eprintln!("stand-in started in {:?}", started.elapsed());
    standin
}

/// A direct session to the `postgres` database.
async fn connect(
    standin: &StandIn,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    standin.connect_direct(user, "postgres", password).await
}

/// The error of a session as `app` whose TLS verification must fail.
async fn tls_failure(standin: &StandIn, tls: MakeRustlsConnect) -> tokio_postgres::Error {
    standin
        .client_config("app", "postgres")
        .password("s3cret")
        .connect(tls)
        .await
        .err()
        .expect("TLS verification must fail")
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.code()
}

async fn current_user(client: &tokio_postgres::Client) -> String {
    client
        .query_one(
            "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map(|row| {
            assert!(row.get::<_, bool>(1), "session is not TLS");
            row.get(0)
        })
        .unwrap()
}

#[tokio::test]
async fn stand_in_starts_with_endpoint_ca_and_credentials_env() {
    let standin = start().await;
    assert_eq!(standin.host(), standin::DEFAULT_HOST);
    assert_eq!(standin.advertised_port(), 5432);
    assert!(standin.addr().ip().is_loopback());
    assert_ne!(standin.addr().port(), 5432);
    assert!(std::fs::read_to_string(standin.ca_file())
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let env = standin.credentials_env();
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("AWS_EC2_METADATA_DISABLED"), Some("true"));
    assert_eq!(get("AWS_REGION"), Some("us-east-1"));
    assert!(get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    let args = standin.proxy_args("iam_user", "demo");
    assert_eq!(
        args[0],
        format!("postgres://iam_user@{}:5432/demo", standin.host())
    );
    let rows = standin
        .superuser_client()
        .await
        .unwrap()
        .query(
            "SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam' AND NOT rolcanlogin",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    standin.stop().await.unwrap();
}

#[tokio::test]
async fn iam_user_logs_in_with_a_valid_token_and_is_refused_a_wrong_one() {
    let standin = start().await;
    standin.create_iam_user("iam_user").await.unwrap();

    let token = standin.sign_token("iam_user");
    let client = connect(&standin, "iam_user", &token).await.unwrap();
    assert_eq!(current_user(&client).await, "iam_user");

    // Same token again: 3 logins, 1 distinct token.
    for _ in 0..2 {
        connect(&standin, "iam_user", &token).await.unwrap();
    }
    let mut wrong = token.clone();
    wrong.replace_range(wrong.len() - 4.., "0000");
    let err = connect(&standin, "iam_user", &wrong).await.unwrap_err();
    assert_eq!(
        sqlstate(&err),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{err}"
    );

    let stats = standin.token_stats();
    assert_eq!((stats.accepted, stats.refused), (3, 1), "{stats:?}");
    assert_eq!(stats.distinct_tokens, 2);
    assert_eq!(stats.per_user["iam_user"], 4);
    assert_eq!(stats.refusals, vec![Refusal::BadSignature]);
}

#[tokio::test]
async fn token_over_one_kilobyte_from_session_credentials_logs_in() {
    let standin = start().await;
    standin.create_iam_user("iam_user").await.unwrap();
    let session = standin.aws().create_session(Duration::from_secs(600));
    let token = sign_for_test(
        standin.host(),
        5432,
        standin.region(),
        "iam_user",
        &session,
        SystemTime::now(),
    );
    assert!(token.len() > 1024);
    connect(&standin, "iam_user", &token).await.unwrap();
}

#[tokio::test]
async fn token_for_another_user_or_port_is_refused() {
    let standin = start().await;
    standin.create_iam_user("alice").await.unwrap();
    standin.create_iam_user("bob").await.unwrap();
    let for_bob = standin.sign_token("bob");
    let err = connect(&standin, "alice", &for_bob).await.unwrap_err();
    assert_eq!(
        sqlstate(&err),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );

    let key = standin.aws().create_access_key();
    let real_port = standin.addr().port();
    let for_real_port = sign_for_test(
        standin.host(),
        real_port,
        standin.region(),
        "alice",
        &key,
        SystemTime::now(),
    );
    let err = connect(&standin, "alice", &for_real_port)
        .await
        .unwrap_err();
    assert_eq!(
        sqlstate(&err),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    let refusals = standin.token_stats().refusals;
    assert!(
        matches!(refusals[0], Refusal::UserMismatch { .. }),
        "{refusals:?}"
    );
    assert!(
        matches!(refusals[1], Refusal::WrongEndpoint { .. }),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn plaintext_connections_are_refused() {
    let standin = start().await;
    standin.create_password_user("app", "s3cret").await.unwrap();
    let err = standin
        .client_config("app", "postgres")
        .password("s3cret")
        .ssl_mode(tokio_postgres::config::SslMode::Disable)
        .connect(tokio_postgres::NoTls)
        .await
        .err()
        .expect("plaintext must be refused");
    assert_eq!(
        sqlstate(&err),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{err}"
    );
    let message = err.as_db_error().unwrap().message();
    assert!(message.contains("no encryption"), "{message}");
}

#[tokio::test]
async fn scram_user_logs_in_with_its_password_and_iam_user_is_asked_for_cleartext() {
    let standin = start().await;
    standin.create_password_user("app", "s3cret").await.unwrap();
    standin.create_iam_user("iam_user").await.unwrap();

    let client = connect(&standin, "app", "s3cret").await.unwrap();
    assert_eq!(current_user(&client).await, "app");
    let err = connect(&standin, "app", "wrong").await.unwrap_err();
    assert_eq!(sqlstate(&err), Some(&SqlState::INVALID_PASSWORD), "{err}");

    // AuthenticationCleartextPassword (3) for rds_iam members, SASL (10) for the others.
    assert_eq!(standin.auth_request_code("iam_user").await.unwrap(), 3);
    assert_eq!(standin.auth_request_code("app").await.unwrap(), 10);
    // The SCRAM user's login never reached the token checker.
    assert_eq!(standin.token_stats().checks, 0);
}

#[tokio::test]
async fn wrong_ca_and_wrong_hostname_fail_tls_verification() {
    let standin = start().await;
    standin.create_password_user("app", "s3cret").await.unwrap();

    let wrong_ca = standin.write_wrong_ca_file().unwrap();
    let config = standin::tls::client_config_from_pem_file(&wrong_ca).unwrap();
    let err = tls_failure(&standin, MakeRustlsConnect::new(config)).await;
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    // The right CA file, but the server now presents a certificate for another host.
    let config = standin::tls::client_config_from_pem_file(standin.ca_file()).unwrap();
    standin
        .use_server_cert_for(&["elsewhere.example.com"])
        .await
        .unwrap();
    let err = tls_failure(&standin, MakeRustlsConnect::new(config)).await;
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
}

#[tokio::test]
async fn restart_cuts_sessions_and_comes_back_on_the_same_port() {
    let standin = start().await;
    standin.create_iam_user("iam_user").await.unwrap();
    let client = connect(&standin, "iam_user", &standin.sign_token("iam_user"))
        .await
        .unwrap();
    let addr = standin.addr();

    standin.restart().await.unwrap();
    assert!(client.simple_query("SELECT 1").await.is_err());
    let client = connect(&standin, "iam_user", &standin.sign_token("iam_user"))
        .await
        .unwrap();
    client.simple_query("SELECT 1").await.unwrap();
    assert_eq!(standin.addr(), addr);

    standin.stop_database().await.unwrap();
    assert!(connect(&standin, "iam_user", "x").await.is_err());
    standin.start_database().await.unwrap();
    connect(&standin, "iam_user", &standin.sign_token("iam_user"))
        .await
        .unwrap();
}

/// GET on the container endpoint with an optional Authorization header: (status, body).
async fn get_credentials(url: &str, authorization: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test]
async fn container_endpoint_mints_session_credentials_that_sign_valid_tokens() {
    let standin = StandIn::start(StandInOptions {
        session_lifetime: Duration::from_secs(60),
        container_authorization: Some("pod-identity-token".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    standin.create_iam_user("iam_user").await.unwrap();
    let url = standin.container_url();
    let env = standin.credentials_env();
    assert!(env.contains(&(
        "AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
        "pod-identity-token".into()
    )));

    assert_eq!(get_credentials(&url, None).await.0, 401);
    let (status, body) = get_credentials(&url, Some("pod-identity-token")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let expiration = humantime::parse_rfc3339(json["Expiration"].as_str().unwrap()).unwrap();
    let lifetime = expiration.duration_since(SystemTime::now()).unwrap();
    assert!(lifetime <= Duration::from_secs(60) && lifetime > Duration::from_secs(50));
    assert!(json["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));

    let creds = Credentials::temporary(
        json["AccessKeyId"].as_str().unwrap(),
        json["SecretAccessKey"].as_str().unwrap(),
        json["Token"].as_str().unwrap(),
        expiration,
    );
    assert_eq!(standin.aws().last_issued(), Some(creds.clone()));
    let token = sign_for_test(
        standin.host(),
        5432,
        standin.region(),
        "iam_user",
        &creds,
        SystemTime::now(),
    );
    connect(&standin, "iam_user", &token).await.unwrap();

    standin.aws().set_container_failing(true);
    assert_eq!(
        get_credentials(&url, Some("pod-identity-token")).await.0,
        503
    );
    standin.aws().set_container_failing(false);
    assert_eq!(
        get_credentials(&url, Some("pod-identity-token")).await.0,
        200
    );
    assert_eq!(standin.aws().container_calls(), 4);
}

#[test]
fn cluster_is_stopped_and_removed_when_a_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let cluster = standin::PgCluster::create(Default::default())
                .await
                .unwrap();
            let pid_file = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid"));
            tx.send((cluster.data_dir(), pid_file.unwrap())).unwrap();
            panic!("test failure while the cluster runs");
        })
    })
    .join();
    assert!(outcome.is_err());
    let (data_dir, pid_file) = rx.recv().unwrap();
    assert!(!data_dir.exists(), "{} left behind", data_dir.display());
    let pid = pid_file.lines().next().unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "postmaster {pid} alive"
    );
}
