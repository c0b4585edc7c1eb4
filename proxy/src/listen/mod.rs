//! The client-facing side: sockets, local TLS, the client policy, and [`Listeners`], the one owner of every accept loop. Start-up and reload tell it what to
//! add, remove or re-route; it alone starts and stops accept loops.

mod accept;
mod accept_errors;
mod client_tls;
mod end_point;
mod policy;
mod socket;
mod unix_socket;

use std::collections::HashMap;
use std::sync::Arc;

use rds_iam_config::ListenAddr;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(crate) use accept_errors::{AcceptErrors, ACCEPT_ERROR_BACKOFF};
pub(crate) use policy::{client_policy, ClientPolicyError};
pub(crate) use socket::{bind_addr, ListenError, Listener};
pub(crate) use unix_socket::set_mode as set_unix_socket_mode;

use crate::connection::{Route, Shared};
use policy::RouteHandle;

/// What the owner is told to do.
enum Command {
    /// Start accepting on a bound listener.
    Add {
        addr: ListenAddr,
        listener: Listener,
        route: Arc<Route>,
    },
    /// Stop accepting there; its open connections stay.
    Remove(ListenAddr),
    /// New connections there get this route.
    Replace { addr: ListenAddr, route: Arc<Route> },
}

/// Sends commands to the owner; cheap to clone (start-up and the reloader each hold one).
#[derive(Clone)]
pub(crate) struct ListenerControl(mpsc::UnboundedSender<Command>);

impl ListenerControl {
    pub fn add(&self, addr: ListenAddr, listener: Listener, route: Arc<Route>) {
        self.send(Command::Add {
            addr,
            listener,
            route,
        });
    }

    pub fn remove(&self, addr: ListenAddr) {
        self.send(Command::Remove(addr));
    }

    pub fn replace(&self, addr: ListenAddr, route: Arc<Route>) {
        self.send(Command::Replace { addr, route });
    }

    fn send(&self, command: Command) {
        // The owner outlives every control until `Listeners::stop`, after which there is
        // nothing left to change.
        let _ = self.0.send(command);
    }
}

/// The owner of every accept loop.
pub(crate) struct Listeners {
    control: ListenerControl,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Listeners {
    pub fn start(shared: Arc<Shared>) -> Listeners {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(own(rx, shared, stop.clone()));
        Listeners {
            control: ListenerControl(tx),
            stop,
            task,
        }
    }

    pub fn control(&self) -> ListenerControl {
        self.control.clone()
    }

    /// Stops every accept loop and waits until each has closed its socket.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "listener owner failed");
        }
    }
}

/// One address in service.
struct Running {
    route: watch::Sender<Arc<Route>>,
    stop: CancellationToken,
}

async fn own(
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut running: HashMap<ListenAddr, Running> = HashMap::new();
    let mut loops = JoinSet::new();
    loop {
        let command = tokio::select! {
            () = stop.cancelled() => break,
            Some(command) = commands.recv() => command,
        };
        match command {
            Command::Add {
                addr,
                listener,
                route,
            } => {
                let (tx, handle) = RouteHandle::new(route);
                let own_stop = stop.child_token();
                loops.spawn(accept::accept_loop(
                    listener,
                    handle,
                    shared.clone(),
                    own_stop.clone(),
                ));
                let replaced = running.insert(
                    addr,
                    Running {
                        route: tx,
                        stop: own_stop,
                    },
                );
                if let Some(old) = replaced {
                    old.stop.cancel();
                }
            }
            Command::Remove(addr) => {
                // The accept loop logs "stopped listening" once the socket is closed.
                if let Some(r) = running.remove(&addr) {
                    r.stop.cancel();
                }
            }
            Command::Replace { addr, route } => {
                if let Some(r) = running.get(&addr) {
                    r.route.send_replace(route);
                }
            }
        }
        // Reap loops that ended (removed listeners) so the set does not grow.
        while loops.try_join_next().is_some() {}
    }
    while loops.join_next().await.is_some() {}
}
