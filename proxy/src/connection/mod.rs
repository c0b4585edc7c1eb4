//! One client connection: startup handshake, connect upstream, then the splice.

mod client_auth;
mod handshake;
mod prefixed;
mod reply;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

pub use handshake::{read_client_start, ClientStart};
pub use reply::send_error;

use crate::client_tls::ALPN_POSTGRESQL;
use crate::context::{SharedContext, TargetContext};
use crate::error::ClientError;
use crate::metrics::{ResultLabel, TargetLabel};
use crate::passthrough::{splice_metered, SpliceEnd, Transferred};
use crate::route::Route;
use prefixed::Prefixed;

/// Per-connection facts for the close log line.
#[derive(Debug, Default)]
struct Session {
    user: String,
    database: String,
    /// Once bytes are spliced the proxy no longer knows message boundaries, so it can no
    /// longer send an ErrorResponse of its own.
    spliced: bool,
    moved: Transferred,
    /// Whether the client connected with local TLS.
    tls: bool,
}

/// Whether a connection fits under `max_connections`.
#[derive(Debug)]
pub enum Admission {
    /// Admitted; holds its slot (if there is a limit) until the connection ends.
    Admitted(Option<OwnedSemaphorePermit>),
    /// Over the limit: the client is told so once it has said who it is.
    OverLimit,
}

/// Serves one accepted client connection to completion.
pub async fn serve<S>(
    stream: S,
    client: String,
    route: Arc<Route>,
    shared: Arc<SharedContext>,
    admission: Admission,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let target = route.target.clone();
    let span = tracing::info_span!("conn", target = %target.name, client = %client);
    async move {
        let started = Instant::now();
        let active = shared
            .metrics
            .connections_active
            .get_or_create(&TargetLabel {
                target: target.name.clone(),
            })
            .clone();
        active.inc();
        let mut session = Session::default();
        let conn = Conn {
            route: &route,
            shared: &shared,
            admitted: matches!(admission, Admission::Admitted(_)),
            // Startup, local TLS and the client password all count against one deadline.
            deadline: tokio::time::Instant::now() + shared.startup_timeout,
        };
        let result = run_plain(stream, &conn, &mut session).await;
        active.dec();
        drop(admission);
        let outcome = match &result {
            Ok(outcome) => *outcome,
            Err(e) => e.outcome(),
        };
        record(&shared, &target, outcome);
        tracing::info!(
            user = %session.user,
            database = %session.database,
            tls = session.tls,
            duration_ms = started.elapsed().as_millis() as u64,
            bytes_in = session.moved.client_to_server,
            bytes_out = session.moved.server_to_client,
            outcome,
            error = result.as_ref().err().map(tracing::field::display),
            "connection closed"
        );
    }
    .instrument(span)
    .await
}

/// What every phase of one connection needs.
struct Conn<'a> {
    route: &'a Route,
    shared: &'a SharedContext,
    admitted: bool,
    deadline: tokio::time::Instant,
}

/// Where the plain-text phase leaves the connection.
enum Step {
    Done(&'static str),
    /// Continue inside TLS; `replay` holds bytes of a direct-TLS ClientHello already read.
    Tls {
        replay: BytesMut,
        direct: bool,
    },
}

/// The connection on the socket as accepted; upgrades to local TLS when the client asks.
async fn run_plain<S>(
    mut stream: S,
    conn: &Conn<'_>,
    session: &mut Session,
) -> Result<&'static str, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let acceptor = conn.route.client.tls.clone();
    let (replay, direct) = match guarded(&mut stream, conn, session, acceptor.is_some()).await? {
        Step::Done(outcome) => return Ok(outcome),
        Step::Tls { replay, direct } => (replay, direct),
    };
    let acceptor = acceptor.ok_or(ClientError::DirectTlsRefused)?;
    let handshake = acceptor.accept(Prefixed::new(replay, stream));
    let mut tls = tokio::time::timeout_at(conn.deadline, handshake)
        .await
        .map_err(|_| ClientError::StartupTimeout(conn.shared.startup_timeout))?
        .map_err(ClientError::ClientTls)?;
    session.tls = true;
    // PostgreSQL 17 refuses direct TLS without ALPN, so a client cannot be talked into
    // sending its startup to a TLS endpoint meant for another protocol.
    if direct && tls.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
        let e = ClientError::DirectTlsNoAlpn;
        send_error(&mut tls, &e).await;
        return Err(e);
    }
    match guarded(&mut tls, conn, session, false).await? {
        Step::Done(outcome) => Ok(outcome),
        // Not offered inside TLS, so the startup loop cannot ask for it again.
        Step::Tls { .. } => Err(ClientError::DirectTlsRefused),
    }
}

/// Runs the startup and the session, closing on shutdown, and tells the client why it
/// failed while the protocol still allows it.
async fn guarded<S>(
    stream: &mut S,
    conn: &Conn<'_>,
    session: &mut Session,
    offer_tls: bool,
) -> Result<Step, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let result = tokio::select! {
        r = run(stream, conn, session, offer_tls) => r,
        () = conn.shared.close_all.cancelled() => Err(ClientError::ShuttingDown),
    };
    if let Err(e) = &result {
        if !session.spliced
            && !matches!(
                e,
                ClientError::ClientGone | ClientError::DirectTlsRefused | ClientError::ClientTls(_)
            )
        {
            send_error(stream, e).await;
        }
    }
    result
}

fn record(shared: &SharedContext, target: &TargetContext, outcome: &str) {
    let m = &shared.metrics;
    m.connections_total
        .get_or_create(&ResultLabel {
            target: target.name.clone(),
            result: outcome.to_owned(),
        })
        .inc();
    if outcome == "auth_failed" {
        m.auth_failures_total
            .get_or_create(&TargetLabel {
                target: target.name.clone(),
            })
            .inc();
    }
}

async fn run<S>(
    stream: &mut S,
    conn: &Conn<'_>,
    session: &mut Session,
    offer_tls: bool,
) -> Result<Step, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (target, shared) = (&conn.route.target, conn.shared);
    let timed_out = |_| ClientError::StartupTimeout(shared.startup_timeout);
    let start = tokio::time::timeout_at(conn.deadline, read_client_start(stream, offer_tls))
        .await
        .map_err(timed_out)??;
    let (mut message, mut leftover) = match start {
        ClientStart::Startup { message, leftover } => (message, leftover),
        ClientStart::Cancel(request) => {
            match shared.cancel.forward(&request).await {
                Ok(true) => tracing::info!(pid = request.pid, "cancel request forwarded"),
                Ok(false) => tracing::info!(
                    pid = request.pid,
                    "cancel request for an unknown session ignored"
                ),
                Err(e) => {
                    tracing::warn!(pid = request.pid, error = %e, "cancel request could not be forwarded")
                }
            }
            return Ok(Step::Done("cancel"));
        }
        ClientStart::Tls => {
            return Ok(Step::Tls {
                replay: BytesMut::new(),
                direct: false,
            })
        }
        ClientStart::DirectTls { read } => {
            return Ok(Step::Tls {
                replay: read,
                direct: true,
            })
        }
    };
    if !conn.admitted {
        let limit = shared.connection_limit.as_ref().map_or(0, |(_, n)| *n);
        return Err(ClientError::TooManyConnections(limit));
    }
    if let Some(user) = &target.forced_user {
        message.set("user", user);
    }
    let user = message
        .user()
        .map(str::to_owned)
        .ok_or(ClientError::NoUser)?;
    if let Some(secret) = &conn.route.client.password {
        let exchange = client_auth::authenticate(stream, secret, &user, leftover);
        leftover = tokio::time::timeout_at(conn.deadline, exchange)
            .await
            .map_err(timed_out)??;
    }
    if message.get("database").is_none() {
        if let Some(db) = &target.database {
            message.set("database", db);
        }
    }
    session.user.clone_from(&user);
    session.database = message.database().unwrap_or(&user).to_owned();
    tracing::info!(user = %session.user, database = %session.database, "connection opened");

    let connect_started = Instant::now();
    let upstream = crate::upstream::connect(target, &message, &user).await?;
    shared
        .metrics
        .upstream_connect_seconds
        .observe(connect_started.elapsed().as_secs_f64());
    let mut server = upstream.stream;
    let _cancel_guard = upstream
        .backend_key
        .map(|key| shared.cancel.register(key, upstream.addr, target.clone()));

    stream.write_all(&upstream.to_client).await?;
    stream.flush().await?;
    if !leftover.is_empty() {
        server.write_all(&leftover).await?;
    }
    drop(leftover);
    let _: BytesMut = upstream.to_client;

    session.spliced = true;
    let meters = shared.metrics.byte_counters(&target.name);
    let (moved, end) = splice_metered(stream, &mut server, Some(&meters)).await;
    session.moved = moved;
    Ok(Step::Done(match end {
        SpliceEnd::ServerClosed => "ok",
        SpliceEnd::Failed(e) => {
            tracing::debug!(side = %e.side(), error = %e, "splice ended");
            match e.side() {
                crate::passthrough::Side::Client => "client_error",
                crate::passthrough::Side::Server => "server_error",
            }
        }
    }))
}
