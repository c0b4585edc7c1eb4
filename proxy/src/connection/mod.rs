//! One client connection: startup handshake, connect upstream, then the splice.

mod handshake;
mod reply;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

pub use handshake::{read_client_start, ClientStart};
pub use reply::send_error;

use crate::context::{SharedContext, TargetContext};
use crate::error::ClientError;
use crate::metrics::{DirectionLabel, ResultLabel, TargetLabel};
use crate::passthrough::{splice, SpliceEnd, Transferred};

/// Per-connection facts for the close log line.
#[derive(Debug, Default)]
struct Session {
    user: String,
    database: String,
    /// Once bytes are spliced the proxy no longer knows message boundaries, so it can no
    /// longer send an ErrorResponse of its own.
    spliced: bool,
    moved: Transferred,
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
    mut stream: S,
    client: String,
    target: Arc<TargetContext>,
    shared: Arc<SharedContext>,
    admission: Admission,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::info_span!("conn", target = %target.name, client = %client);
    async move {
        let started = Instant::now();
        let active = shared.metrics.connections_active.get_or_create(&TargetLabel {
            target: target.name.clone(),
        }).clone();
        active.inc();
        let mut session = Session::default();
        let result = tokio::select! {
            r = run(&mut stream, &target, &shared, matches!(admission, Admission::Admitted(_)), &mut session) => r,
            () = shared.close_all.cancelled() => Err(ClientError::ShuttingDown),
        };
        active.dec();
        drop(admission);
        let outcome = match &result {
            Ok(outcome) => *outcome,
            Err(e) => e.outcome(),
        };
        record(&shared, &target, outcome, &session);
        if let Err(e) = &result {
            if !session.spliced
                && !matches!(e, ClientError::ClientGone | ClientError::DirectTlsRefused)
            {
                send_error(&mut stream, e).await;
            }
        }
        tracing::info!(
            user = %session.user,
            database = %session.database,
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

fn record(shared: &SharedContext, target: &TargetContext, outcome: &str, session: &Session) {
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
    for (direction, n) in [
        ("client_to_server", session.moved.client_to_server),
        ("server_to_client", session.moved.server_to_client),
    ] {
        if n > 0 {
            m.bytes_total
                .get_or_create(&DirectionLabel {
                    target: target.name.clone(),
                    direction: direction.to_owned(),
                })
                .inc_by(n);
        }
    }
}

async fn run<S>(
    stream: &mut S,
    target: &Arc<TargetContext>,
    shared: &SharedContext,
    admitted: bool,
    session: &mut Session,
) -> Result<&'static str, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let start = tokio::time::timeout(shared.startup_timeout, read_client_start(stream, false))
        .await
        .map_err(|_| ClientError::StartupTimeout(shared.startup_timeout))??;
    let (mut message, leftover) = match start {
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
            return Ok("cancel");
        }
        // Local TLS is not offered on this path, so neither can happen.
        ClientStart::Tls | ClientStart::DirectTls { .. } => {
            return Err(ClientError::DirectTlsRefused)
        }
    };
    if !admitted {
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
    let (moved, end) = splice(stream, &mut server).await;
    session.moved = moved;
    match end {
        SpliceEnd::ServerClosed => Ok("ok"),
        SpliceEnd::Failed(e) => {
            tracing::debug!(side = %e.side(), error = %e, "splice ended");
            Ok(match e.side() {
                crate::passthrough::Side::Client => "client_error",
                crate::passthrough::Side::Server => "server_error",
            })
        }
    }
}
