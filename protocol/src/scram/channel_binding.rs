//! SCRAM-SHA-256-PLUS with `tls-server-end-point` (RFC 5802 §6, RFC 5929 §4), checked the way
//! PostgreSQL's auth-scram.c does: which mechanism the client selected, its GS2 channel-binding
//! flag, and the `c=` attribute of its client-final-message. The binding data (the hash of the
//! proxy's certificate) is the caller's to compute.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::{ScramError, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};

/// The only channel-binding type offered (as in PostgreSQL).
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// The client's channel-binding choice, once checked against the mechanism and the offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gs2 {
    /// `n,,`: the client does not bind.
    No,
    /// `y,,`: the client could bind but thinks the server cannot.
    ClientCapable,
    /// `p=tls-server-end-point,,` under SCRAM-SHA-256-PLUS.
    TlsServerEndPoint,
}

impl Gs2 {
    fn header(self) -> &'static str {
        match self {
            Gs2::No => "n,,",
            Gs2::ClientCapable => "y,,",
            Gs2::TlsServerEndPoint => "p=tls-server-end-point,,",
        }
    }
}

/// Whether the selected mechanism is `-PLUS`. `binding_offered`: the server has
/// `tls-server-end-point` data, so it listed SCRAM-SHA-256-PLUS.
pub(super) fn select_mechanism(
    mechanism: &[u8],
    binding_offered: bool,
) -> Result<bool, ScramError> {
    if mechanism == SCRAM_SHA_256.as_bytes() {
        Ok(false)
    } else if mechanism == SCRAM_SHA_256_PLUS.as_bytes() {
        if binding_offered {
            Ok(true)
        } else {
            Err(ScramError::ChannelBindingUnavailable)
        }
    } else {
        Err(ScramError::UnsupportedMechanism(
            String::from_utf8_lossy(mechanism).into_owned(),
        ))
    }
}

/// The gs2-cbind-flag of the client-first-message (the text before its first comma).
pub(super) fn check_flag(flag: &str, plus: bool, binding_offered: bool) -> Result<Gs2, ScramError> {
    match flag {
        "n" | "y" if plus => Err(ScramError::MissingChannelBinding),
        "n" => Ok(Gs2::No),
        // Downgrade protection (RFC 5802 §6): we did offer -PLUS, so something between
        // the client and us removed it from the list.
        "y" if binding_offered => Err(ScramError::ChannelBindingDowngrade),
        "y" => Ok(Gs2::ClientCapable),
        _ => match flag.strip_prefix("p=") {
            Some(_) if !plus => Err(ScramError::ChannelBindingNotSelected),
            Some(TLS_SERVER_END_POINT) => Ok(Gs2::TlsServerEndPoint),
            Some(other) => Err(ScramError::UnsupportedChannelBindingType(other.to_string())),
            None => Err(ScramError::Malformed("bad channel binding flag")),
        },
    }
}

/// Checks the client-final-message's `c=` value: base64(gs2 header + cbind data), where the
/// cbind data is the server certificate hash under `-PLUS` and empty otherwise.
pub(super) fn check_cbind_attr(
    c: &str,
    gs2: Gs2,
    end_point: Option<&[u8]>,
) -> Result<(), ScramError> {
    let mut input = gs2.header().as_bytes().to_vec();
    if gs2 == Gs2::TlsServerEndPoint {
        // select_mechanism only lets -PLUS through with data.
        input.extend_from_slice(end_point.ok_or(ScramError::ChannelBindingUnavailable)?);
    }
    if c == B64.encode(input) {
        Ok(())
    } else if gs2 == Gs2::TlsServerEndPoint {
        Err(ScramError::ChannelBindingMismatch)
    } else {
        Err(ScramError::Malformed("channel binding data does not match"))
    }
}
