//! RFC 3986 percent-encoding as botocore's `percent_encode` does it: only `A-Za-z0-9-._~` stay.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `input` percent-encoded (UTF-8 bytes, upper-case hex) to `out`.
pub(crate) fn encode_into(out: &mut String, input: &str) {
    for &b in input.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
    }
}

/// Percent-encodes `input` keeping only RFC 3986 unreserved characters.
pub fn rfc3986(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    encode_into(&mut out, input);
    out
}

#[cfg(test)]
mod tests {
    use super::rfc3986;

    #[test]
    fn keeps_unreserved_only() {
        assert_eq!(rfc3986("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(rfc3986("a@b+c d%/=&?"), "a%40b%2Bc%20d%25%2F%3D%26%3F");
        assert_eq!(rfc3986("é"), "%C3%A9");
        assert_eq!(rfc3986(""), "");
    }
}
