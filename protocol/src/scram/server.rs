//! The server's side of one SCRAM exchange: SASLInitialResponse, then SASLResponse.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use sha2::{Digest, Sha256};

use super::channel_binding::{check_cbind_attr, check_flag, select_mechanism, Gs2};
use super::{
    constant_time_eq, hmac, is_printable_nonce, put_mechanisms, ScramError, ScramSecret, KEY_LEN,
    SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use crate::backend::auth_code;
use crate::wire::{put_frame, take_cstr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramStep {
    /// SASLContinue written to `out`; wait for the next `p` frame.
    Continue,
    /// SASLFinal written to `out`: the client proved the password. The
    /// caller then sends (or relays) AuthenticationOk.
    Authenticated,
}

enum State {
    Initial,
    /// client-first-message-bare + "," + server-first-message, the nonce and
    /// the client's channel-binding choice.
    SentFirst {
        auth_prefix: String,
        nonce: String,
        gs2: Gs2,
    },
    Done,
}

pub struct ScramServer {
    secret: ScramSecret,
    server_nonce: String,
    /// `tls-server-end-point` data; `Some` (never empty) means -PLUS is offered.
    end_point: Option<Vec<u8>>,
    state: State,
}

impl ScramServer {
    /// An exchange without channel binding (SCRAM-SHA-256 only, e.g. no TLS).
    /// `server_nonce`: printable, comma-free; normally
    /// `server_nonce_from_random(&[u8; SERVER_NONCE_RANDOM_LEN])`.
    pub fn new(secret: ScramSecret, server_nonce: &str) -> Self {
        Self::with_channel_binding(secret, server_nonce, None)
    }

    /// `tls_server_end_point`: the RFC 5929 hash of the certificate the proxy presented
    /// on this client connection, or `None` without TLS (or for a certificate whose
    /// signature has no single hash, e.g. Ed25519). With data, SCRAM-SHA-256-PLUS is
    /// offered first and a `y` flag is a downgrade; empty data counts as `None`. Offer
    /// with [`ScramServer::encode_authentication_sasl`] so the list matches.
    pub fn with_channel_binding(
        secret: ScramSecret,
        server_nonce: &str,
        tls_server_end_point: Option<Vec<u8>>,
    ) -> Self {
        ScramServer {
            secret,
            server_nonce: server_nonce.to_string(),
            end_point: tls_server_end_point.filter(|d| !d.is_empty()),
            state: State::Initial,
        }
    }

    /// Whether SCRAM-SHA-256-PLUS is offered.
    pub fn channel_binding_offered(&self) -> bool {
        self.end_point.is_some()
    }

    /// The mechanisms offered, in PostgreSQL's order.
    pub fn mechanisms(&self) -> &'static [&'static str] {
        if self.channel_binding_offered() {
            &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
        } else {
            &[SCRAM_SHA_256]
        }
    }

    /// AuthenticationSASL listing [`ScramServer::mechanisms`].
    pub fn encode_authentication_sasl(&self, out: &mut BytesMut) {
        put_mechanisms(out, self.mechanisms());
    }

    /// Handles one `p` frame body. Any error ends the exchange.
    pub fn on_password_message(
        &mut self,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<ScramStep, ScramError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Initial => {
                let (plus, data) = parse_initial_response(body, self.channel_binding_offered())?;
                let first = self.client_first(data, plus)?;
                put_frame(out, b'R', |b| {
                    b.put_u32(auth_code::SASL_CONTINUE);
                    b.put_slice(first.server_first.as_bytes());
                });
                self.state = State::SentFirst {
                    auth_prefix: format!("{},{}", first.client_first_bare, first.server_first),
                    nonce: first.nonce,
                    gs2: first.gs2,
                };
                Ok(ScramStep::Continue)
            }
            State::SentFirst {
                auth_prefix,
                nonce,
                gs2,
            } => {
                let signature = self.finish(body, &auth_prefix, &nonce, gs2)?;
                put_frame(out, b'R', |b| {
                    b.put_u32(auth_code::SASL_FINAL);
                    b.put_slice(b"v=");
                    b.put_slice(B64.encode(signature).as_bytes());
                });
                Ok(ScramStep::Authenticated)
            }
            State::Done => Err(ScramError::Finished),
        }
    }
}

struct FirstExchange {
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2: Gs2,
}

impl ScramServer {
    /// client-first-message: `gs2-cbind-flag,[authzid],n=user,r=nonce[,ext]`.
    /// PostgreSQL ignores the user name here (the StartupMessage's counts).
    fn client_first(&self, data: &[u8], plus: bool) -> Result<FirstExchange, ScramError> {
        let msg = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (flag, rest) = msg
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        let gs2 = check_flag(flag, plus, self.channel_binding_offered())?;
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("no GS2 header"))?;
        if !authzid.is_empty() {
            return Err(ScramError::Malformed(
                "authorization identity not supported",
            ));
        }
        let mut attrs = bare.split(',');
        let user = attrs.next().unwrap_or_default();
        if !user.starts_with("n=") {
            return Err(ScramError::Malformed("expected n= attribute"));
        }
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected r= attribute"))?;
        if client_nonce.is_empty() || !is_printable_nonce(client_nonce) {
            return Err(ScramError::Malformed("bad client nonce"));
        }
        if !is_printable_nonce(&self.server_nonce) || self.server_nonce.is_empty() {
            return Err(ScramError::Malformed("bad server nonce"));
        }
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&self.secret.salt),
            self.secret.iterations
        );
        Ok(FirstExchange {
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
            gs2,
        })
    }

    /// client-final-message: `c=base64(gs2 header + cbind data),r=nonce[,ext],p=proof`.
    /// Returns the ServerSignature once the binding and the proof check out.
    fn finish(
        &self,
        data: &[u8],
        auth_prefix: &str,
        nonce: &str,
        gs2: Gs2,
    ) -> Result<[u8; KEY_LEN], ScramError> {
        let msg = std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("missing proof"))?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("expected c= attribute"))?;
        check_cbind_attr(cbind, gs2, self.end_point.as_deref())?;
        let r = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("expected r= attribute"))?;
        if r != nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof: [u8; KEY_LEN] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("bad proof"))?;
        let auth_message = format!("{auth_prefix},{without_proof}");
        let client_signature = hmac(&self.secret.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; KEY_LEN];
        for (k, (p, s)) in client_key
            .iter_mut()
            .zip(proof.iter().zip(client_signature))
        {
            *k = p ^ s;
        }
        let computed: [u8; KEY_LEN] = Sha256::digest(client_key).into();
        if !constant_time_eq(&computed, &self.secret.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        Ok(hmac(&self.secret.server_key, auth_message.as_bytes()))
    }
}

/// SASLInitialResponse body: mechanism, Int32 length (-1: none), data. Returns whether
/// the mechanism is -PLUS, and the data.
fn parse_initial_response(body: &[u8], binding_offered: bool) -> Result<(bool, &[u8]), ScramError> {
    let (mechanism, rest) = take_cstr(body).ok_or(ScramError::Malformed("no mechanism"))?;
    let plus = select_mechanism(mechanism, binding_offered)?;
    let len = rest
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(ScramError::Malformed("no data length"))?;
    let data = &rest[4..];
    if usize::try_from(len).ok() != Some(data.len()) {
        return Err(ScramError::Malformed("data length mismatch"));
    }
    Ok((plus, data))
}
