//! One client connection, stage by stage:
//!
//! 1. [`handshake`]: SSLRequest/GSSENCRequest, local TLS, until a StartupMessage or a
//!    CancelRequest (forwarded by [`cancel`]);
//! 2. admit: over `max_connections` the client is refused now that it has said who it is;
//! 3. authenticate: the forced user and default database, the client password if set;
//! 4. a [`ServerSession`] from `upstream::open`, its greeting relayed to the client;
//! 5. [`splice`] until the server closes or a side fails (a pooled session: until the client
//!    is done, following message boundaries to know whether it ended clean);
//! 6. the server session handed back with `upstream::release`: kept for the next client if it
//!    is pooled and ended clean, else closed.

mod bounds;
mod cancel;
mod client_auth;
mod error;
mod handshake;
mod log_text;
mod outcome;
mod prefixed;
mod reply;
mod route;
mod shared;
mod splice;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rds_iam_protocol::StartupMessage;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

pub(crate) use handshake::ALPN_POSTGRESQL;
pub(crate) use route::{ClientPolicy, LocalTls, Route};
pub(crate) use shared::{Admission, Shared};
pub(crate) use stream::ClientIo;

use self::bounds::StartupBounds;
use self::cancel::CancelGuard;
use self::error::ClientError;
use self::handshake::{handshake, Handshake};
use self::log_text::LogText;
use self::outcome::Outcome;
use self::reply::refuse;
use self::splice::{splice, Raw, Side, SpliceEnd, Tracked, Transferred, Watch};
use self::stream::ClientStream;
use crate::metrics::ByteCounters;
use crate::upstream::{self, Ending, ServerSession};

/// Facts for the close log line, filled in as the stages pass.
#[derive(Debug, Default)]
struct SessionLog {
    user: String,
    database: String,
    tls: bool,
    moved: Transferred,
    /// The server connection was reused from the pool, and was kept for the next client.
    reused: bool,
    kept: bool,
}

/// Who connected: the address for the log, and whether it came over a unix socket (which
/// only local processes the socket's mode lets in can reach, and where libpq never offers
/// TLS).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub addr: String,
    pub unix: bool,
}

/// Serves one accepted client connection to completion.
pub(crate) async fn serve<S: ClientIo>(
    socket: S,
    peer: Peer,
    route: Arc<Route>,
    shared: Arc<Shared>,
    admission: Admission,
) {
    let target = &route.target.name;
    let span = tracing::info_span!("conn", target = %target, client = %peer.addr);
    async {
        let started = Instant::now();
        let active = shared.metrics.connection_opened(target);
        let mut log = SessionLog::default();
        let result = pipeline(socket, &route, &shared, admission, peer.unix, &mut log).await;
        drop(active);
        let outcome = match &result {
            Ok(outcome) => *outcome,
            Err(e) => e.outcome(),
        };
        shared
            .metrics
            .connection_closed(target, outcome.label(), outcome == Outcome::AuthFailed);
        if outcome == Outcome::Cancel {
            // Its one DEBUG line was written where it was handled.
            return;
        }
        tracing::info!(
            user = %LogText(&log.user),
            database = %LogText(&log.database),
            tls = log.tls,
            duration_ms = started.elapsed().as_millis() as u64,
            bytes_in = log.moved.client_to_server,
            bytes_out = log.moved.server_to_client,
            server_reused = log.reused,
            server_kept = log.kept,
            outcome = outcome.label(),
            error = result.as_ref().err().map(tracing::field::display),
            "connection closed"
        );
    }
    .instrument(span)
    .await
}

/// The whole startup phase of a client over `max_connections`.
const OVER_LIMIT_STARTUP_TIMEOUT: Duration = Duration::from_secs(1);

/// What the stages of one connection read.
struct Stages<'a> {
    route: &'a Route,
    shared: &'a Shared,
    bounds: StartupBounds<'a>,
    /// The client came over a unix socket.
    unix: bool,
}

async fn pipeline<S: ClientIo>(
    socket: S,
    route: &Route,
    shared: &Shared,
    admission: Admission,
    unix: bool,
    log: &mut SessionLog,
) -> Result<Outcome, ClientError> {
    // A client over max_connections holds a descriptor while it is told so: it gets a short
    // deadline and no TLS (`N`), and its refusal comes in reply to the StartupMessage.
    let over_limit = matches!(admission, Admission::OverLimit(_));
    let (timeout, tls) = if over_limit {
        (shared.startup_timeout.min(OVER_LIMIT_STARTUP_TIMEOUT), None)
    } else {
        (
            shared.startup_timeout,
            route.client.tls.as_ref().map(|t| &t.acceptor),
        )
    };
    let cx = Stages {
        route,
        shared,
        bounds: StartupBounds::new(timeout, &shared.close_all),
        unix,
    };
    let (mut client, startup, leftover) = match handshake(socket, tls, &cx.bounds).await? {
        Handshake::Cancel(request) => {
            let result = shared.cancel.handle(&request).await;
            shared
                .metrics
                .cancel_request(&route.target.name, result.label());
            return Ok(Outcome::Cancel);
        }
        Handshake::Startup {
            stream,
            message,
            leftover,
        } => (stream, message, leftover),
    };
    log.tls = client.is_tls();
    let (mut server, cancel_key, leftover) =
        prepare(&mut client, &cx, &admission, startup, leftover, log).await?;
    log.reused = server.reused;
    let (outcome, ending) = relay(&mut client, &mut server, leftover, &cx, log).await?;
    // Unregistered before the connection can reach its next client, who registers the same key.
    drop(cancel_key);
    log.kept = upstream::release(server, ending);
    Ok(outcome)
}

/// Stages 2 to 4 (see [`setup`]), cut short by the end of the drain; a failure is told to the
/// client, which is still in the startup phase.
async fn prepare<S: ClientIo>(
    client: &mut ClientStream<S>,
    cx: &Stages<'_>,
    admission: &Admission,
    startup: StartupMessage,
    leftover: BytesMut,
    log: &mut SessionLog,
) -> Result<(ServerSession, Option<CancelGuard>, BytesMut), ClientError> {
    let ready = tokio::select! {
        r = setup(client, cx, admission, startup, leftover, log) => r,
        () = cx.shared.close_all.cancelled() => Err(ClientError::ShuttingDown),
    };
    if let Err(e) = &ready {
        refuse(client, e).await;
    }
    ready
}

/// Stage 5: the splice, until the server closes, a side fails, or the drain ends; for a
/// pooled session until the client is done. Starts with what the client sent ahead of the
/// greeting. Also returns how it ended for its server connection.
async fn relay<S: ClientIo>(
    client: &mut ClientStream<S>,
    server: &mut ServerSession,
    leftover: BytesMut,
    cx: &Stages<'_>,
    log: &mut SessionLog,
) -> Result<(Outcome, Ending), ClientError> {
    let meters = cx.shared.metrics.byte_counters(&cx.route.target.name);
    let (end, ending) = if server.is_pooled() {
        let mut watch = Tracked::default();
        let end = splice_from(client, server, leftover, cx, &meters, &mut watch, log).await?;
        let state = &watch.state;
        let ending = match end {
            SpliceEnd::ClientLeft if state.is_idle() => Ending::Clean {
                reported: state.parameters_reported(),
            },
            // An orderly Terminate goes on to the server, which finishes what it was sent first,
            // as it would without a pool.
            SpliceEnd::ClientLeft if watch.terminated => Ending::Dirty,
            _ if state.is_busy() => Ending::Busy,
            _ => Ending::Dirty,
        };
        (end, ending)
    } else {
        let end = splice_from(client, server, leftover, cx, &meters, &mut Raw, log).await?;
        (end, Ending::Dirty)
    };
    let outcome = match end {
        SpliceEnd::ServerClosed | SpliceEnd::ClientLeft => Outcome::Ok,
        SpliceEnd::Failed(e) => {
            tracing::debug!(side = %e.side(), error = %e, "splice ended");
            match e.side() {
                Side::Client => Outcome::ClientError,
                Side::Server => Outcome::ServerError,
            }
        }
    };
    Ok((outcome, ending))
}

/// The client's early bytes, then the splice with `watch`.
async fn splice_from<S: ClientIo, W: Watch>(
    client: &mut ClientStream<S>,
    server: &mut ServerSession,
    leftover: BytesMut,
    cx: &Stages<'_>,
    meters: &ByteCounters,
    watch: &mut W,
    log: &mut SessionLog,
) -> Result<SpliceEnd, ClientError> {
    if !leftover.is_empty() {
        let keep = watch.client_sent(&leftover);
        server.stream.write_all(&leftover[..keep]).await?;
        if keep < leftover.len() {
            return Ok(SpliceEnd::ClientLeft);
        }
    }
    let superseded = async {
        match server.instance.as_mut() {
            Some(instance) => instance.superseded().await,
            None => std::future::pending().await,
        }
    };
    let (moved, end) = tokio::select! {
        ended = splice(client, &mut server.stream, Some(meters), watch) => ended,
        () = cx.shared.close_all.cancelled() => return Err(ClientError::ShuttingDown),
        () = superseded => return Err(ClientError::WriterChanged),
    };
    log.moved = moved;
    Ok(end)
}

/// Stages 2 to 4: from the StartupMessage to a server session the client has been greeted
/// with. Any error here can still be told to the client.
async fn setup<S: ClientIo>(
    client: &mut ClientStream<S>,
    cx: &Stages<'_>,
    admission: &Admission,
    mut startup: StartupMessage,
    leftover: BytesMut,
    log: &mut SessionLog,
) -> Result<(ServerSession, Option<CancelGuard>, BytesMut), ClientError> {
    admit(admission)?;
    let user = identify(&mut startup, cx, log)?;
    // Before the password exchange, which a passive listener would otherwise see. A unix
    // socket never leaves the host (and libpq never offers TLS on one).
    if cx.route.client.require_tls && !client.is_tls() && !cx.unix {
        return Err(ClientError::TlsRequired);
    }
    let leftover = authenticate(client, cx, &user, leftover).await?;
    tracing::info!(
        user = %LogText(&log.user),
        database = %LogText(&log.database),
        "connection opened"
    );
    let mut server = server_session(cx, &startup, &user).await?;
    let target = &cx.route.target;
    let cancel_key = server.backend_key.take().map(|key| {
        cx.shared
            .cancel
            .register(key, server.addr, &server.trust, target)
    });
    greet(client, &mut server).await?;
    Ok((server, cancel_key, leftover))
}

/// The client password, when one is set; returns what the client sent after the exchange.
async fn authenticate<S: ClientIo>(
    client: &mut ClientStream<S>,
    cx: &Stages<'_>,
    user: &str,
    leftover: BytesMut,
) -> Result<BytesMut, ClientError> {
    match &cx.route.client.password {
        Some(secret) => {
            let tls = cx.route.client.tls.as_ref().filter(|_| client.is_tls());
            let end_point = tls.and_then(|t| t.end_point.as_deref());
            let exchange =
                client_auth::authenticate(client, secret, end_point, user, leftover, &cx.bounds);
            cx.bounds.within(exchange).await
        }
        None => Ok(leftover),
    }
}

/// A server session from the one place they come from, timed for the histogram.
async fn server_session(
    cx: &Stages<'_>,
    startup: &StartupMessage,
    user: &str,
) -> Result<ServerSession, ClientError> {
    let started = Instant::now();
    let target = &cx.route.target;
    let route = cx.route;
    let server = upstream::open(
        target,
        route.pool.as_ref(),
        route.topology.as_deref(),
        startup,
        user,
    )
    .await?;
    let metrics = &cx.shared.metrics;
    metrics.server_session(&target.name, server.reused);
    if !server.reused {
        metrics
            .upstream_connect_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(server)
}

/// Relays the server's AuthenticationOk … ReadyForQuery to the client (for a reused
/// connection, the pool's equivalent of it).
async fn greet<S: ClientIo>(
    client: &mut ClientStream<S>,
    server: &mut ServerSession,
) -> Result<(), ClientError> {
    client.write_all(&server.to_client).await?;
    client.flush().await?;
    server.to_client = BytesMut::new();
    Ok(())
}

/// Over `max_connections`, the client is refused now that it has said who it is (libpq hides
/// an error sent in reply to SSLRequest).
fn admit(admission: &Admission) -> Result<(), ClientError> {
    match admission {
        Admission::OverLimit(limit) => Err(ClientError::TooManyConnections(*limit)),
        Admission::Admitted { .. } => Ok(()),
    }
}

/// Applies the target's forced user and default database; returns the user.
fn identify(
    startup: &mut StartupMessage,
    cx: &Stages<'_>,
    log: &mut SessionLog,
) -> Result<String, ClientError> {
    let target = &cx.route.target;
    if let Some(user) = &target.forced_user {
        startup.set("user", user);
    }
    let user = startup
        .user()
        .map(str::to_owned)
        .ok_or(ClientError::NoUser)?;
    if startup.get("database").is_none() {
        if let Some(db) = &target.database {
            startup.set("database", db);
        }
    }
    log.user.clone_from(&user);
    log.database = startup.database().unwrap_or(&user).to_owned();
    Ok(user)
}
