//! Hook secrets: where they come from, how they are compared, and that they never leak.
//!
//! A [`Secret`] has no `Display`, and its `Debug` prints `Secret(<redacted>)`, so a secret
//! cannot end up in a log line or an error message by accident.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A shared secret. Compared in constant time; never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// Whether `offered` equals this secret. The comparison hashes both sides first, so its
    /// time depends neither on where they differ nor on the secret's length.
    pub fn matches(&self, offered: &[u8]) -> bool {
        let a = Sha256::digest(&self.0);
        let b = Sha256::digest(offered);
        a.ct_eq(&b).into()
    }

    /// The raw bytes, for keyed use (HMAC) by a source. Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether the secret is empty (which the config refuses).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_bytes() {
        let s = Secret::new("s3cret");
        assert!(s.matches(b"s3cret"));
        assert!(!s.matches(b"s3cre"));
        assert!(!s.matches(b"s3cret "));
        assert!(!s.matches(b""));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }
}
