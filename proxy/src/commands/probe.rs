//! `rds-iam-proxy probe ENDPOINT`: asks the admin endpoint on loopback and exits 0 on 200, 1
//! otherwise. The admin endpoint listens on loopback unless `allow_remote`; a Kubernetes
//! `exec` probe runs this inside the pod's network namespace, where loopback reaches it, so
//! probes need no remote listener (and the image needs no shell or curl).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A probe that takes longer than this has failed; kubelet's own default timeout is 1 s.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The endpoints answer a line or two (metrics are not probed).
const MAX_REPLY_BYTES: usize = 64 * 1024;

#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// startup, liveness or readiness.
    #[arg(value_parser = ["startup", "liveness", "readiness"])]
    pub endpoint: String,
    /// The proxy's admin address (its `--admin-listen`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9801")]
    pub admin: SocketAddr,
}

/// Exit code 0 when the endpoint says 200, 1 otherwise; its text goes to stdout.
pub(crate) async fn probe(args: &ProbeArgs) -> u8 {
    let path = format!("/{}", args.endpoint);
    match tokio::time::timeout(PROBE_TIMEOUT, ask(args.admin, &path)).await {
        Ok(Ok((200, body))) => {
            print!("{body}");
            0
        }
        Ok(Ok((status, body))) => {
            print!("{status} {body}");
            1
        }
        Ok(Err(e)) => {
            eprintln!("rds-iam-proxy: probe {}{path}: {e}", args.admin);
            1
        }
        Err(_) => {
            eprintln!(
                "rds-iam-proxy: probe {}{path}: no answer within {PROBE_TIMEOUT:?}",
                args.admin
            );
            1
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn ask(addr: SocketAddr, path: &str) -> Result<(u16, String), BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
        .collect()
        .await?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
