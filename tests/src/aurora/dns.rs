//! A stand-in for an Aurora endpoint's DNS name: a TCP forwarder on 127.0.0.1 that sends each
//! new connection to the instance the name currently points at. After a failover it can keep
//! pointing at the old writer for a while, as the real cluster endpoint's DNS does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::runtime::Background;

/// Running forwarder; stops when dropped (connections it opened are cut).
pub struct StaleDns {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    background: Background,
}

impl StaleDns {
    pub fn start(name: &str, target: SocketAddr) -> std::io::Result<StaleDns> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let target = Arc::new(Mutex::new(target));
        let background = Background::new(name)?;
        let current = target.clone();
        background.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((mut client, _)) = listener.accept().await {
                let to = *current.lock().unwrap_or_else(|e| e.into_inner());
                tokio::spawn(async move {
                    // A target that is down refuses, as the real name's stale address would.
                    if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(StaleDns {
            addr,
            target,
            background,
        })
    }

    /// Where clients connect: what the name resolves to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The instance new connections reach now.
    pub fn target(&self) -> SocketAddr {
        *self.target.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Points the name at `to` after `delay` (at once for zero).
    pub fn point_at_after(&self, to: SocketAddr, delay: Duration) {
        let target = self.target.clone();
        self.background.spawn(async move {
            tokio::time::sleep(delay).await;
            *target.lock().unwrap_or_else(|e| e.into_inner()) = to;
        });
    }
}
