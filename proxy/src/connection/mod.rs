//! One client connection, stage by stage:
//!
//! 1. [`handshake`]: SSLRequest/GSSENCRequest, local TLS, until a StartupMessage or a
//!    CancelRequest (forwarded by [`cancel`]);
//! 2. admit: over `max_connections` the client is refused now that it has said who it is;
//! 3. authenticate: the forced user and default database, the client password if set;
//! 4. a [`ServerSession`] from `upstream::open`, its greeting relayed to the client;
//! 5. [`splice`] until the server closes or a side fails;
//! 6. the server session handed back with `upstream::release`.

mod bounds;
mod cancel;
mod client_auth;
mod error;
mod handshake;
mod outcome;
mod prefixed;
mod reply;
mod route;
mod shared;
mod splice;
mod stream;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rds_iam_protocol::StartupMessage;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

pub(crate) use handshake::ALPN_POSTGRESQL;
pub(crate) use route::{ClientPolicy, Route};
pub(crate) use shared::{Admission, Shared};
pub(crate) use stream::ClientIo;

use self::bounds::StartupBounds;
use self::cancel::CancelGuard;
use self::error::ClientError;
use self::handshake::{handshake, Handshake};
use self::outcome::Outcome;
use self::reply::refuse;
use self::splice::{splice, Side, SpliceEnd, Transferred};
use self::stream::ClientStream;
use crate::upstream::{self, ServerSession};

/// Facts for the close log line, filled in as the stages pass.
#[derive(Debug, Default)]
struct SessionLog {
    user: String,
    database: String,
    tls: bool,
    moved: Transferred,
}

/// Serves one accepted client connection to completion.
pub(crate) async fn serve<S: ClientIo>(
    socket: S,
    peer: String,
    route: Arc<Route>,
    shared: Arc<Shared>,
    admission: Admission,
) {
    let target = &route.target.name;
    let span = tracing::info_span!("conn", target = %target, client = %peer);
    async {
        let started = Instant::now();
        let active = shared.metrics.connection_opened(target);
        let mut log = SessionLog::default();
        let result = pipeline(socket, &route, &shared, admission, &mut log).await;
        drop(active);
        let outcome = match &result {
            Ok(outcome) => *outcome,
            Err(e) => e.outcome(),
        };
        shared
            .metrics
            .connection_closed(target, outcome.label(), outcome == Outcome::AuthFailed);
        tracing::info!(
            user = %log.user,
            database = %log.database,
            tls = log.tls,
            duration_ms = started.elapsed().as_millis() as u64,
            bytes_in = log.moved.client_to_server,
            bytes_out = log.moved.server_to_client,
            outcome = outcome.label(),
            error = result.as_ref().err().map(tracing::field::display),
            "connection closed"
        );
    }
    .instrument(span)
    .await
}

/// What the stages of one connection read.
struct Stages<'a> {
    route: &'a Route,
    shared: &'a Shared,
    bounds: StartupBounds<'a>,
}

async fn pipeline<S: ClientIo>(
    socket: S,
    route: &Route,
    shared: &Shared,
    admission: Admission,
    log: &mut SessionLog,
) -> Result<Outcome, ClientError> {
    let cx = Stages {
        route,
        shared,
        bounds: StartupBounds::new(shared.startup_timeout, &shared.close_all),
    };
    let (mut client, startup, leftover) =
        match handshake(socket, route.client.tls.as_ref(), &cx.bounds).await? {
            Handshake::Cancel(request) => return Ok(shared.cancel.handle(&request).await),
            Handshake::Startup {
                stream,
                message,
                leftover,
            } => (stream, message, leftover),
        };
    log.tls = client.is_tls();
    let (mut server, _cancel_key) =
        prepare(&mut client, &cx, &admission, startup, leftover, log).await?;
    let outcome = relay(&mut client, &mut server, &cx, log).await?;
    upstream::release(server);
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
) -> Result<(ServerSession, Option<CancelGuard>), ClientError> {
    let ready = tokio::select! {
        r = setup(client, cx, admission, startup, leftover, log) => r,
        () = cx.shared.close_all.cancelled() => Err(ClientError::ShuttingDown),
    };
    if let Err(e) = &ready {
        refuse(client, e).await;
    }
    ready
}

/// Stage 5: the splice, until the server closes, a side fails, or the drain ends.
async fn relay<S: ClientIo>(
    client: &mut ClientStream<S>,
    server: &mut ServerSession,
    cx: &Stages<'_>,
    log: &mut SessionLog,
) -> Result<Outcome, ClientError> {
    let meters = cx.shared.metrics.byte_counters(&cx.route.target.name);
    let (moved, end) = tokio::select! {
        ended = splice(client, &mut server.stream, Some(&meters)) => ended,
        () = cx.shared.close_all.cancelled() => return Err(ClientError::ShuttingDown),
    };
    log.moved = moved;
    Ok(match end {
        SpliceEnd::ServerClosed => Outcome::Ok,
        SpliceEnd::Failed(e) => {
            tracing::debug!(side = %e.side(), error = %e, "splice ended");
            match e.side() {
                Side::Client => Outcome::ClientError,
                Side::Server => Outcome::ServerError,
            }
        }
    })
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
) -> Result<(ServerSession, Option<CancelGuard>), ClientError> {
    admit(admission)?;
    let user = identify(&mut startup, cx, log)?;
    let leftover = authenticate(client, cx, &user, leftover).await?;
    tracing::info!(user = %log.user, database = %log.database, "connection opened");
    let mut server = server_session(cx, &startup, &user).await?;
    let target = &cx.route.target;
    let cancel_key = server
        .backend_key
        .take()
        .map(|key| cx.shared.cancel.register(key, server.addr, target));
    greet(client, &mut server, leftover).await?;
    Ok((server, cancel_key))
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
            let exchange = client_auth::authenticate(client, secret, user, leftover, &cx.bounds);
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
    let server = upstream::open(&cx.route.target, startup, user).await?;
    cx.shared
        .metrics
        .upstream_connect_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(server)
}

/// Relays the server's AuthenticationOk … ReadyForQuery to the client, and what the client
/// sent ahead of time to the server.
async fn greet<S: ClientIo>(
    client: &mut ClientStream<S>,
    server: &mut ServerSession,
    leftover: BytesMut,
) -> Result<(), ClientError> {
    client.write_all(&server.to_client).await?;
    client.flush().await?;
    server.to_client = BytesMut::new();
    if !leftover.is_empty() {
        server.stream.write_all(&leftover).await?;
    }
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
