//! Every length the proxy accepts before the splice, named in one place.

/// PostgreSQL's own `MAX_STARTUP_PACKET_LENGTH` (pqcomm.h): applies to
/// StartupMessage, SSLRequest, GSSENCRequest and CancelRequest.
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

/// Length word (4) + request code (4): the smallest untyped packet.
pub const MIN_STARTUP_PACKET_LEN: usize = 8;

/// Largest backend frame (type byte excluded, length word included) accepted
/// before the first ReadyForQuery. libpq refuses non-"long" messages
/// (ParameterStatus, BackendKeyData, Authentication...) over 30,000 bytes,
/// so 64 KiB accepts everything libpq would, leaves room for long
/// ErrorResponse/NoticeResponse detail text, and caps the memory one
/// half-open connection can pin before the splice.
pub const MAX_BACKEND_STARTUP_MESSAGE_LEN: usize = 64 * 1024;

/// Cancel key bounds: protocol 3.0 keys are 4 bytes, 3.2 keys 4..=256.
pub const MIN_CANCEL_KEY_LEN: usize = 4;
pub const MAX_CANCEL_KEY_LEN: usize = 256;

/// Largest password-family (`p`) frame the proxy reads from a client, e.g.
/// SASLInitialResponse/SASLResponse in [`crate::scram`]. Same bound
/// PostgreSQL applies to pre-auth packets.
pub const MAX_PASSWORD_MESSAGE_LEN: usize = 10_000;
