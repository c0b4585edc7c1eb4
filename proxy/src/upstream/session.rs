//! Where a connection gets its server session, and where it gives it back. With a pool (the
//! target's `pool_mode = "session"`) a session may be a reused connection, and giving back a
//! clean one keeps it for the next client; otherwise every session is a new connection (DNS,
//! TCP, TLS, IAM auth) and giving it back closes it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rds_iam_protocol::StartupMessage;
use rds_iam_signer::AuthToken;
use tokio::time::Instant;

use super::auth::{authenticate, Authenticated};
use super::dial::dial;
use super::pool::{Lease, Pool, PoolKey};
use super::tls::start_tls;
use super::topology::{Follow, InstanceSession, Pick};
use super::{UpstreamError, UpstreamStream};
use crate::targets::{Endpoint, Role, ServerTrust, TargetContext};

/// After an instance could not be reached, the pause before the topology is asked again.
const UNREACHABLE_PAUSE: Duration = Duration::from_millis(20);
/// One connection attempt to an instance the topology picked: an instance that does not
/// answer by then (a dead host, a black hole) is passed over rather than waited for.
const INSTANCE_ATTEMPT: Duration = Duration::from_secs(5);

/// An authenticated server session, ready to splice.
pub(crate) struct ServerSession {
    pub stream: UpstreamStream,
    pub addr: SocketAddr,
    /// How the server was verified, for cancel requests to it.
    pub trust: Arc<ServerTrust>,
    /// The Aurora instance it is on, when the topology chose it.
    pub instance: Option<InstanceSession>,
    /// What the client must be sent before the splice: the server's frames from
    /// AuthenticationOk to ReadyForQuery, and any bytes that followed.
    pub to_client: BytesMut,
    /// BackendKeyData (pid, secret), for routing CancelRequests.
    pub backend_key: Option<(u32, Bytes)>,
    /// The ParameterStatus values and NegotiateProtocolVersion frame of a new connection's
    /// startup.
    pub params: Vec<(String, String)>,
    pub negotiated: Option<Bytes>,
    /// Taken from the pool rather than opened for this client.
    pub reused: bool,
    /// Set when the session may go back to a pool.
    pub lease: Option<Lease>,
}

impl ServerSession {
    /// Whether the session is pooled, so its splice must follow message boundaries.
    pub fn is_pooled(&self) -> bool {
        self.lease.is_some()
    }
}

/// A server session for `startup` as `user`, within the target's connect timeout: from
/// `pool` when it holds an idle connection with the same key, else a new connection. With
/// `topology`, to the instance it picks (waiting for one during a failover; an instance that
/// cannot be reached is reported and another asked for). A rejected token is refreshed (new
/// credentials, new token) and tried once more before the error reaches the client.
pub(crate) async fn open(
    target: &TargetContext,
    pool: Option<&Arc<Pool>>,
    topology: Option<&Follow>,
    startup: &StartupMessage,
    user: &str,
) -> Result<ServerSession, UpstreamError> {
    let cx = Opening {
        target,
        pool,
        startup,
        user,
        deadline: Instant::now() + target.connect_timeout,
    };
    // Whether the time ran out waiting for the topology to offer an instance.
    let waiting = AtomicBool::new(false);
    let get = async {
        match topology {
            None => open_at(&cx, &target.endpoint).await,
            Some(follow) => open_following(&cx, follow, &waiting).await,
        }
    };
    match tokio::time::timeout_at(cx.deadline, get).await {
        Ok(result) => result,
        Err(_) => Err(match topology {
            Some(follow) if waiting.load(Ordering::Relaxed) => UpstreamError::NoInstance {
                cluster: follow.cluster.shared.name.clone(),
                role: follow.role.label(),
            },
            _ => UpstreamError::Timeout(target.connect_timeout),
        }),
    }
}

/// What opening one session needs.
struct Opening<'a> {
    target: &'a TargetContext,
    pool: Option<&'a Arc<Pool>>,
    startup: &'a StartupMessage,
    user: &'a str,
    deadline: Instant,
}

/// A session on the instance the topology picks. An instance that refuses the connection,
/// or does not answer within [`INSTANCE_ATTEMPT`], is reported (so the monitor looks now)
/// and the topology asked again.
async fn open_following(
    cx: &Opening<'_>,
    follow: &Follow,
    waiting: &AtomicBool,
) -> Result<ServerSession, UpstreamError> {
    loop {
        waiting.store(true, Ordering::Relaxed);
        let pick = follow.pick(cx.deadline).await?;
        waiting.store(false, Ordering::Relaxed);
        let endpoint = match pick {
            Pick::Instance(endpoint) => endpoint,
            Pick::Endpoint => cx.target.endpoint.clone(),
        };
        if let (Some(pool), Role::Writer) = (cx.pool, follow.role) {
            if let Some(writer) = follow.cluster.shared.current_writer() {
                pool.follow_writer(&writer);
            }
        }
        let result = if endpoint.instance.is_some() {
            let limit = cx.deadline.min(Instant::now() + INSTANCE_ATTEMPT);
            tokio::time::timeout_at(limit, open_at(cx, &endpoint))
                .await
                .unwrap_or(Err(UpstreamError::Timeout(INSTANCE_ATTEMPT)))
        } else {
            open_at(cx, &endpoint).await
        };
        match result {
            Err(e) if endpoint.instance.is_some() && e.is_unreachable() => {
                tracing::info!(host = %endpoint.host, error = %e, "Aurora instance unreachable; asking the topology again");
                follow.cluster.unreachable(&endpoint);
                tokio::time::sleep(UNREACHABLE_PAUSE).await;
            }
            Err(e) => return Err(e),
            Ok(mut session) => {
                follow.authenticated(cx.startup, cx.user);
                session.instance =
                    follow
                        .cluster
                        .shared
                        .opened(follow.role, &endpoint, &cx.target.name);
                return Ok(session);
            }
        }
    }
}

/// A session at `endpoint`: pooled under a key that names its instance, else new.
async fn open_at(cx: &Opening<'_>, endpoint: &Endpoint) -> Result<ServerSession, UpstreamError> {
    let pooled = cx.pool.and_then(|p| {
        PoolKey::of(cx.startup).map(|key| (p, key.on_instance(endpoint.instance.clone())))
    });
    if let Some((pool, key)) = &pooled {
        if let Some(session) = pool.reuse(key, cx.startup.get("application_name")).await {
            return Ok(session);
        }
    }
    let mut session =
        connect_with_retry(cx.target, endpoint, cx.startup, cx.user, cx.deadline).await?;
    if let Some((pool, key)) = pooled {
        session.lease = Some(pool.lease(key, &session));
    }
    Ok(session)
}

/// How a client's session ended, as far as its server connection is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Idle and quiet (pooled sessions only): the connection may be kept. `reported`: the
    /// server reported parameter changes during the session, so re-read them after the reset.
    Clean { reported: bool },
    /// The client vanished while the server was still working on what it sent: cancel that.
    Busy,
    /// Anything else (in a transaction, in COPY, half a message, a Terminate while busy, a
    /// side failed): close with Terminate; the server finishes or rolls back as without a pool.
    Dirty,
}

/// Hands a session back once its client is done with it. A pooled session that ended clean
/// is reset and kept; anything else is closed (a pooled one whose client vanished mid-query
/// is also cancelled, so its locks go now; the raw splice already passed the client's
/// Terminate on).
/// Returns whether it was kept.
pub(crate) fn release(session: ServerSession, ending: Ending) -> bool {
    let ServerSession { stream, lease, .. } = session;
    match (lease, ending) {
        (Some(Lease { pool, conn }), Ending::Clean { reported }) => {
            pool.check_in(stream, conn, reported);
            true
        }
        (Some(Lease { pool, conn }), ending) => {
            pool.abandon(stream, &conn, ending == Ending::Busy);
            false
        }
        (None, _) => false,
    }
}

/// A new connection to `endpoint`, with a token for its name; a rejected token is refreshed
/// and tried once more.
pub(super) async fn connect_with_retry(
    target: &TargetContext,
    endpoint: &Endpoint,
    startup: &StartupMessage,
    user: &str,
    deadline: Instant,
) -> Result<ServerSession, UpstreamError> {
    let request = target.token_request_for(endpoint, user);
    // The permit comes before the token: a flood of startups waits here instead of minting
    // (and keeping) a token each.
    target.rate.acquire(deadline).await?;
    let token = target.signer.token(&request).await?;
    let session = match attempt(endpoint, startup, &token, user).await {
        Err(UpstreamError::TokenRejected { fields, .. }) => {
            tracing::warn!(
                code = %fields.code,
                "database rejected the IAM token; refreshing credentials and retrying once"
            );
            target.rate.acquire(deadline).await?;
            let token = target.signer.refresh_token(&request).await?;
            attempt(endpoint, startup, &token, user).await
        }
        other => other,
    }?;
    // Only a token the database accepted is kept fresh in the background.
    target.signer.confirm(&request);
    Ok(session)
}

async fn attempt(
    endpoint: &Endpoint,
    startup: &StartupMessage,
    token: &AuthToken,
    user: &str,
) -> Result<ServerSession, UpstreamError> {
    let (tcp, addr) = dial(&endpoint.dial.0, endpoint.dial.1).await?;
    let mut stream = start_tls(tcp, addr, &endpoint.trust).await?;
    let Authenticated {
        to_client,
        backend_key,
        params,
        negotiated,
    } = authenticate(&mut stream, addr, startup, token, user).await?;
    Ok(ServerSession {
        stream,
        addr,
        trust: endpoint.trust.clone(),
        instance: None,
        to_client,
        backend_key,
        params,
        negotiated,
        reused: false,
        lease: None,
    })
}
