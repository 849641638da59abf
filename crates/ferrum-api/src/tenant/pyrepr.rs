//! Undoing the Python 3 client's upload bug (contract §3.2 C2, Appendix A).
//!
//! `iron_worker.py` builds its multipart body with `str(file_contents)`, so on Python 3 the
//! `file` part is the text of the bytes' `repr()` — `b'PK\x03\x04…'` — not the zip. Without
//! decoding it, every code the official client uploads would be a corrupt zip. Other clients
//! (and Python 2) send raw bytes, which pass through unchanged.

/// The upload's zip bytes: a decoded Python bytes literal, or the part as it came.
/// `Err` names the malformed escape.
pub fn decode_file_part(part: &[u8]) -> Result<Vec<u8>, String> {
    match literal_body(part) {
        Some(body) => decode_literal(body),
        None => Ok(part.to_vec()),
    }
}

/// The bytes between the quotes when `part` looks like `b'…'` or `b"…"`.
fn literal_body(part: &[u8]) -> Option<&[u8]> {
    match part {
        [b'b', q @ (b'\'' | b'"'), body @ .., last] if last == q => Some(body),
        _ => None,
    }
}

/// Decodes the only escapes Python's `repr()` of bytes produces.
fn decode_literal(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut bytes = body.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let decoded = match bytes.next() {
            Some(b'\\') => b'\\',
            Some(b'\'') => b'\'',
            Some(b'"') => b'"',
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'x') => {
                let hi = bytes.next().and_then(hex_digit);
                let lo = bytes.next().and_then(hex_digit);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => (hi << 4) | lo,
                    _ => return Err("a \\x escape without two hex digits".into()),
                }
            }
            Some(other) => return Err(format!("the unknown escape \\{}", other as char)),
            None => return Err("a trailing backslash".into()),
        };
        out.push(decoded);
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's `repr()` of bytes, per Appendix A, to round-trip against.
    fn python_repr(data: &[u8]) -> Vec<u8> {
        let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
            b'"'
        } else {
            b'\''
        };
        let mut out = vec![b'b', quote];
        for &b in data {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ if b == quote => out.extend_from_slice(&[b'\\', quote]),
                0x20..=0x7e => out.push(b),
                _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        out.push(quote);
        out
    }

    #[test]
    fn decodes_what_the_python_client_sends() {
        let part = br#"b'PK\x03\x04\x14\x00hello.pyprint "HELLO WORLD"\nPK'"#;
        let zip = decode_file_part(part).unwrap();
        assert_eq!(&zip[..6], b"PK\x03\x04\x14\x00");
        assert!(zip.ends_with(b"\"HELLO WORLD\"\nPK"));
    }

    #[test]
    fn round_trips_every_byte_and_both_quotes() {
        let all: Vec<u8> = (0..=255).collect();
        for data in [
            all.clone(),
            b"it's".to_vec(),
            b"both ' and \"".to_vec(),
            vec![],
        ] {
            assert_eq!(decode_file_part(&python_repr(&data)).unwrap(), data);
        }
    }

    #[test]
    fn raw_bytes_pass_through_and_bad_escapes_are_refused() {
        assert_eq!(
            decode_file_part(b"PK\x03\x04raw").unwrap(),
            b"PK\x03\x04raw"
        );
        assert!(decode_file_part(br"b'\q'").is_err());
        assert!(decode_file_part(br"b'\x4'").is_err());
    }
}
