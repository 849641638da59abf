//! Secrets handed to people and programs: API tokens, runner tokens, webhook URL secrets.

/// A new random secret: 32 bytes from the thread's CSPRNG, as 64 hex characters. Only its
/// hash is ever stored.
pub fn generate() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_64_hex_and_differ() {
        let (a, b) = (super::generate(), super::generate());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
