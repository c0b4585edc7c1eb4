//! Client startup phase: one loop over what a client sends first, answering SSL/GSS requests,
//! until it sends a StartupMessage or a CancelRequest.

use bytes::{Buf, BytesMut};
use rds_iam_protocol::{
    decode_frontend_startup, encode_ssl_response, CancelRequest, Decoded, FrontendStartup,
    StartupMessage,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::ClientError;

/// What the client wants.
#[derive(Debug)]
pub enum ClientStart {
    /// A session: the startup message, and any bytes the client sent after it.
    Startup {
        message: StartupMessage,
        leftover: BytesMut,
    },
    Cancel(CancelRequest),
    /// The client asked for TLS (we answered `S`) and must now handshake.
    Tls,
    /// The client opened with a TLS ClientHello (direct TLS); the bytes read so far must be
    /// replayed into the TLS acceptor.
    DirectTls {
        read: BytesMut,
    },
}

/// Runs the startup loop. `offer_tls` is whether local TLS is configured and not yet in use.
/// Reads are bounded by the decoder's limits; the caller bounds the time.
pub async fn read_client_start<S>(
    stream: &mut S,
    offer_tls: bool,
) -> Result<ClientStart, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let (request, consumed) = match decode_frontend_startup(&buf)? {
            Decoded::Complete { value, consumed } => (value, consumed),
            Decoded::Incomplete => {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(ClientError::ClientGone);
                }
                continue;
            }
        };
        buf.advance(consumed);
        match request {
            FrontendStartup::SslRequest => {
                // Bytes pipelined after SSLRequest would be read as if inside TLS
                // (CVE-2021-23222): refuse them.
                if offer_tls && !buf.is_empty() {
                    return Err(ClientError::Protocol(
                        rds_iam_protocol::ProtocolError::MalformedStartup(
                            "data received after SSLRequest before the TLS handshake".into(),
                        ),
                    ));
                }
                reply_byte(stream, offer_tls).await?;
                if offer_tls {
                    return Ok(ClientStart::Tls);
                }
            }
            // GSSAPI encryption is never offered; the client falls back to its next option.
            FrontendStartup::GssEncRequest => reply_byte(stream, false).await?,
            FrontendStartup::Cancel(request) => return Ok(ClientStart::Cancel(request)),
            FrontendStartup::Startup(message) => {
                return Ok(ClientStart::Startup {
                    message,
                    leftover: buf,
                })
            }
            FrontendStartup::DirectTls => {
                if !offer_tls {
                    return Err(ClientError::DirectTlsRefused);
                }
                return Ok(ClientStart::DirectTls { read: buf });
            }
        }
    }
}

async fn reply_byte<S: AsyncWrite + Unpin>(
    stream: &mut S,
    accept: bool,
) -> Result<(), ClientError> {
    let mut out = BytesMut::with_capacity(1);
    encode_ssl_response(accept, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(())
}
