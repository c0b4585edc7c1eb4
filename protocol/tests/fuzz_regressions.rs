//! Inputs found by the fuzz targets in fuzz/ (scripts/fuzz), each replayed through the same
//! path the target drives, with the property it broke.

use bytes::BytesMut;
use rds_iam_protocol::{
    decode_backend_message, BackendMessage, Decoded, HandshakeError, ProtocolVersion,
    StartupMessage, UpstreamHandshake,
};

/// Decodes `input` frame by frame into a fresh upstream handshake, returning each step.
fn drive_handshake(
    input: &[u8],
) -> (
    UpstreamHandshake,
    Vec<Result<rds_iam_protocol::HandshakeStep, HandshakeError>>,
) {
    let startup = StartupMessage::new(
        ProtocolVersion::V3_0,
        vec![("user".into(), "iam_user".into())],
    );
    let mut handshake = UpstreamHandshake::new(&startup, &mut BytesMut::new());
    let mut steps = Vec::new();
    let mut rest = input;
    while let Ok(Decoded::Complete { value, consumed }) = decode_backend_message(rest) {
        steps.push(handshake.on_message(&value));
        rest = &rest[consumed..];
    }
    (handshake, steps)
}

/// backend_handshake: AuthenticationOk, then a message the handshake refuses. The error put
/// the state machine in `Failed` and `is_authenticated()` ("whether AuthenticationOk has been
/// seen") turned false again, so an error after authentication (PostgreSQL's 53300 comes
/// there) looked like one before it.
#[test]
fn authenticated_stays_true_after_a_later_error() {
    let input = b"R\0\0\0\x08\0\0\0\0~\0\0\0\x05\0";
    let (handshake, steps) = drive_handshake(input);
    assert_eq!(steps.len(), 2);
    assert!(steps[0].is_ok());
    assert_eq!(
        steps[1],
        Err(HandshakeError::UnexpectedMessage { tag: b'~' })
    );
    assert!(handshake.is_authenticated());
    assert!(!handshake.is_ready());

    // The same with the server's own error after AuthenticationOk.
    let mut input = b"R\0\0\0\x08\0\0\0\0".to_vec();
    let error = BackendMessage::ErrorResponse(rds_iam_protocol::ErrorFields {
        severity: "FATAL".into(),
        code: "53300".into(),
        message: "sorry, too many clients already".into(),
        ..Default::default()
    });
    let mut frame = BytesMut::new();
    error.encode(&mut frame);
    input.extend_from_slice(&frame);
    let (handshake, steps) = drive_handshake(&input);
    assert!(matches!(steps[1], Err(HandshakeError::Rejected(_))));
    assert!(handshake.is_authenticated());

    // Before AuthenticationOk it stays false.
    let (handshake, _) = drive_handshake(b"R\0\0\0\x08\0\0\0\x03~\0\0\0\x04");
    assert!(!handshake.is_authenticated());
}
