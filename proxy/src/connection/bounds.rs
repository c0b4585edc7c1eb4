//! The startup phase's limits: one deadline for the startup packet, local TLS and the client
//! password together, and the end of the drain, which closes clients still starting up.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::ClientError;

pub(crate) struct StartupBounds<'a> {
    deadline: Instant,
    timeout: Duration,
    close_all: &'a CancellationToken,
}

impl<'a> StartupBounds<'a> {
    pub fn new(timeout: Duration, close_all: &'a CancellationToken) -> Self {
        StartupBounds {
            deadline: Instant::now() + timeout,
            timeout,
            close_all,
        }
    }

    /// Runs one step of the startup phase within the bounds.
    pub async fn within<T>(
        &self,
        step: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::select! {
            r = tokio::time::timeout_at(self.deadline, step) => {
                r.unwrap_or(Err(ClientError::StartupTimeout(self.timeout)))
            }
            () = self.close_all.cancelled() => Err(ClientError::ShuttingDown),
        }
    }

    /// Reads more of what the client sends into `buf`; its end is [`ClientError::ClientGone`].
    /// How much a frame may hold is the decoders' business (`protocol/src/limits.rs`).
    pub async fn read<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        buf: &mut BytesMut,
    ) -> Result<(), ClientError> {
        self.within(async {
            match stream.read_buf(buf).await? {
                0 => Err(ClientError::ClientGone),
                _ => Ok(()),
            }
        })
        .await
    }
}
