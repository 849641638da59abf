//! Ferrum identifiers: 24 lowercase hex characters shaped like a MongoDB ObjectId (contract §2).
//!
//! Layout: 4 bytes of big-endian Unix seconds, 5 random bytes chosen once per process, and a
//! 3-byte counter. IDs therefore sort by creation time, which list endpoints rely on (newest
//! first), and two processes never collide in practice.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 12-byte identifier, printed as 24 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id([u8; 12]);

static PROCESS_BYTES: OnceLock<[u8; 5]> = OnceLock::new();
static COUNTER: OnceLock<AtomicU32> = OnceLock::new();

impl Id {
    /// A fresh id for the current second.
    pub fn generate() -> Self {
        let secs = chrono::Utc::now().timestamp() as u32;
        let process = PROCESS_BYTES.get_or_init(rand::random);
        let counter = COUNTER
            .get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff))
            .fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(process);
        bytes[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
        Id(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

/// The text was not 24 lowercase (or uppercase) hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {0:?}: expected 24 hex characters")]
pub struct InvalidId(pub String);

impl FromStr for Id {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = s.as_bytes();
        if raw.len() != 24 {
            return Err(InvalidId(s.to_owned()));
        }
        let mut bytes = [0u8; 12];
        for (i, pair) in raw.chunks(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| InvalidId(s.to_owned()))?;
            let lo = hex_value(pair[1]).ok_or_else(|| InvalidId(s.to_owned()))?;
            bytes[i] = (hi << 4) | lo;
        }
        Ok(Id(bytes))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_lowercase_hex_and_round_trip() {
        let id = Id::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 24);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(text.parse::<Id>().unwrap(), id);
    }

    #[test]
    fn ids_generated_later_sort_later() {
        let ids: Vec<Id> = (0..1000).map(|_| Id::generate()).collect();
        assert!(ids
            .windows(2)
            .all(|w| w[0] < w[1] || w[0].0[..4] < w[1].0[..4]));
    }

    #[test]
    fn bad_ids_are_rejected() {
        for bad in [
            "",
            "abc",
            "zzzzzzzzzzzzzzzzzzzzzzzz",
            "0123456789abcdef012345678",
        ] {
            assert!(bad.parse::<Id>().is_err(), "{bad}");
        }
    }
}
