//! The few form encodings the dashboard reads and writes by hand: `serde_urlencoded` (behind
//! `axum::Form`) cannot take a field repeated once per selected row (`ids=…&ids=…`).

/// Percent-encodes a query value.
pub fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The name-value pairs of an `application/x-www-form-urlencoded` body, in order, repeated
/// names kept.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (urldecode(k), urldecode(v))
        })
        .collect()
}

pub fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            // Two hex digits, read as bytes: slicing the `str` could split a character (a
            // panic) and `from_str_radix` would take a sign (`%+1`).
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII");
                out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::urldecode;

    #[test]
    fn urldecode_takes_only_two_hex_digits_and_never_splits_a_character() {
        assert_eq!(urldecode("a%20b+c%2Fd"), "a b c/d");
        assert_eq!(urldecode("%aé"), "%aé");
        assert_eq!(
            urldecode("%+1"),
            "% 1",
            "a sign is no hex digit; + is a space"
        );
        assert_eq!(urldecode("100%"), "100%");
        assert_eq!(urldecode("%C3%A9"), "é");
    }
}
