//! A DataRow frame, as `rds-iam-proxy check` reads the server's answer to `SELECT 1`: an
//! accepted row re-encodes to the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_iam_protocol::decode_data_row;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = decode_data_row(data) else {
        return;
    };
    assert_eq!(data[0], b'D');
    let mut body = (values.len() as u16).to_be_bytes().to_vec();
    for value in &values {
        match value {
            None => body.extend_from_slice(&u32::MAX.to_be_bytes()),
            Some(v) => {
                body.extend_from_slice(&(v.len() as u32).to_be_bytes());
                body.extend_from_slice(v);
            }
        }
    }
    assert_eq!(&data[5..], &body[..], "DataRow re-encodes differently");
});
