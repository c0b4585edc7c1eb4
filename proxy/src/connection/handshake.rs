//! The client's startup phase: one loop over what a client sends first. It answers SSLRequest
//! and GSSENCRequest, takes the connection into local TLS inside the loop (after answering `S`,
//! or at once for direct TLS), and ends with the client's StartupMessage or CancelRequest.
//! Failures are answered here, on the stream the loop owns, while the protocol allows it.

use bytes::{Buf, BytesMut};
use rds_iam_protocol::{
    decode_frontend_startup, encode_ssl_response, CancelRequest, Decoded, FrontendStartup,
    ProtocolError, StartupMessage,
};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;

use super::bounds::StartupBounds;
use super::error::ClientError;
use super::prefixed::Prefixed;
use super::reply::refuse;
use super::stream::{ClientIo, ClientStream};

/// The only ALPN protocol PostgreSQL speaks; direct TLS requires it.
pub(crate) const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// What the client wants.
pub(crate) enum Handshake<S> {
    /// A session: the stream (plain or TLS), its StartupMessage, and any bytes it sent after.
    Startup {
        stream: ClientStream<S>,
        message: StartupMessage,
        leftover: BytesMut,
    },
    Cancel(CancelRequest),
}

/// Runs the startup loop on an accepted socket. `tls` is local TLS, when configured.
pub(crate) async fn handshake<S: ClientIo>(
    socket: S,
    tls: Option<&TlsAcceptor>,
    bounds: &StartupBounds<'_>,
) -> Result<Handshake<S>, ClientError> {
    let mut stream = ClientStream::Plain(socket);
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let request = match decode_frontend_startup(&buf) {
            Ok(Decoded::Complete { value, consumed }) => {
                buf.advance(consumed);
                value
            }
            Ok(Decoded::Incomplete) => match bounds.read(&mut stream, &mut buf).await {
                Ok(()) => continue,
                Err(e) => return fail(stream, e).await,
            },
            Err(e) => return fail(stream, e.into()).await,
        };
        // Offered once, and only on the plain socket.
        let offer = tls.filter(|_| !stream.is_tls());
        stream = match request {
            FrontendStartup::SslRequest => {
                // Bytes pipelined after SSLRequest would be read as if inside TLS
                // (CVE-2021-23222): refuse them.
                if offer.is_some() && !buf.is_empty() {
                    let e = ProtocolError::MalformedStartup(
                        "data received after SSLRequest before the TLS handshake".into(),
                    );
                    return fail(stream, e.into()).await;
                }
                if let Err(e) = reply_byte(&mut stream, offer.is_some()).await {
                    return fail(stream, e).await;
                }
                match offer {
                    Some(acceptor) => upgrade(stream, acceptor, BytesMut::new(), bounds).await?,
                    None => stream,
                }
            }
            // GSSAPI encryption is never offered; the client falls back to its next option.
            FrontendStartup::GssEncRequest => match reply_byte(&mut stream, false).await {
                Ok(()) => stream,
                Err(e) => return fail(stream, e).await,
            },
            FrontendStartup::Cancel(request) => return Ok(Handshake::Cancel(request)),
            FrontendStartup::Startup(message) => {
                return Ok(Handshake::Startup {
                    stream,
                    message,
                    leftover: buf,
                })
            }
            FrontendStartup::DirectTls => {
                let Some(acceptor) = offer else {
                    return Err(ClientError::DirectTlsRefused);
                };
                let stream = upgrade(stream, acceptor, std::mem::take(&mut buf), bounds).await?;
                // PostgreSQL 17 refuses direct TLS without ALPN, so a client cannot be talked
                // into sending its startup to a TLS endpoint meant for another protocol.
                if alpn(&stream) != Some(ALPN_POSTGRESQL) {
                    return fail(stream, ClientError::DirectTlsNoAlpn).await;
                }
                stream
            }
        };
    }
}

/// The TLS handshake on the plain socket; `replay` holds ClientHello bytes already read.
async fn upgrade<S: ClientIo>(
    stream: ClientStream<S>,
    acceptor: &TlsAcceptor,
    replay: BytesMut,
    bounds: &StartupBounds<'_>,
) -> Result<ClientStream<S>, ClientError> {
    let ClientStream::Plain(socket) = stream else {
        // Never offered inside TLS (see `offer`).
        return Err(ClientError::DirectTlsRefused);
    };
    let accept = async {
        acceptor
            .accept(Prefixed::new(replay, socket))
            .await
            .map_err(ClientError::ClientTls)
    };
    Ok(ClientStream::Tls(Box::new(bounds.within(accept).await?)))
}

fn alpn<S>(stream: &ClientStream<S>) -> Option<&[u8]> {
    match stream {
        ClientStream::Tls(tls) => tls.get_ref().1.alpn_protocol(),
        ClientStream::Plain(_) => None,
    }
}

async fn fail<S: ClientIo, T>(
    mut stream: ClientStream<S>,
    e: ClientError,
) -> Result<T, ClientError> {
    refuse(&mut stream, &e).await;
    Err(e)
}

async fn reply_byte<S: ClientIo>(
    stream: &mut ClientStream<S>,
    accept: bool,
) -> Result<(), ClientError> {
    let mut out = BytesMut::with_capacity(1);
    encode_ssl_response(accept, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(())
}
