//! `client_password`: the client proves it with SCRAM-SHA-256 (-PLUS over TLS) before the proxy connects
//! upstream. The database's own AuthenticationOk follows later, as usual.

use bytes::{Buf, BytesMut};
use rds_iam_protocol::scram::{
    decode_password_frame, server_nonce_from_random, ScramSecret, ScramServer, ScramStep,
    SERVER_NONCE_RANDOM_LEN,
};
use rds_iam_protocol::Decoded;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::bounds::StartupBounds;
use super::error::ClientError;
use crate::targets::crypto_provider;

/// Runs the exchange on `stream`. `buffered` holds bytes the client sent after its
/// StartupMessage; what is left after the exchange is returned for the upstream.
/// `end_point`: the TLS certificate's `tls-server-end-point` data when the client is on TLS,
/// which offers SCRAM-SHA-256-PLUS (so `channel_binding=require` clients work).
pub(crate) async fn authenticate<S>(
    stream: &mut S,
    secret: &ScramSecret,
    end_point: Option<&[u8]>,
    user: &str,
    mut buffered: BytesMut,
    bounds: &StartupBounds<'_>,
) -> Result<BytesMut, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut random = [0u8; SERVER_NONCE_RANDOM_LEN];
    crypto_provider()
        .secure_random
        .fill(&mut random)
        .map_err(|_| ClientError::Io(std::io::Error::other("no secure random source")))?;
    let mut server = ScramServer::with_channel_binding(
        secret.clone(),
        &server_nonce_from_random(&random),
        end_point.map(<[u8]>::to_vec),
    );

    let mut out = BytesMut::with_capacity(256);
    // The offer and the exchange come from one server: a client that saw PLUS offered and
    // then claims the server cannot bind (`y`) is refused as a downgrade.
    server.encode_authentication_sasl(&mut out);
    loop {
        stream.write_all(&out).await?;
        stream.flush().await?;
        out.clear();
        let body = loop {
            match decode_password_frame(&buffered)? {
                Decoded::Complete { value, consumed } => {
                    buffered.advance(consumed);
                    break value;
                }
                Decoded::Incomplete => bounds.read(stream, &mut buffered).await?,
            }
        };
        let step = server
            .on_password_message(&body, &mut out)
            .map_err(|source| ClientError::ClientAuth {
                user: user.to_owned(),
                source,
            })?;
        if step == ScramStep::Authenticated {
            // SASLFinal; the database's AuthenticationOk comes with the upstream handshake.
            stream.write_all(&out).await?;
            stream.flush().await?;
            return Ok(buffered);
        }
    }
}
