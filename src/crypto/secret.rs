//! Owned secret bytes that are wiped when dropped and never printed, so a
//! key cannot leak through a `{:?}` in a log line or linger in freed memory.

use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Secret key material: zeroized on drop, compared in constant time, and
/// shown by `Debug` only as its length.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of `bytes` (no copy is left behind).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies `bytes`; the caller remains responsible for its own copy.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// The secret bytes. Keep what you do with them short-lived.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in octets (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret has no octets.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl PartialEq for Secret {
    /// Constant time in the contents; only the lengths (not secret) may
    /// make it return early.
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && openssl::memcmp::eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_length() {
        let s = Secret::new(vec![0xde, 0xad, 0xbe, 0xef]);
        let shown = format!("{s:?}");
        assert_eq!(shown, "Secret(4 bytes)");
        assert!(!shown.to_lowercase().contains("de"));
        assert!(!format!("{s:#?}").contains("222"));
    }

    #[test]
    fn equality_compares_contents_and_length() {
        assert_eq!(Secret::from_slice(b"abc"), Secret::new(b"abc".to_vec()));
        assert_ne!(Secret::from_slice(b"abc"), Secret::from_slice(b"abd"));
        assert_ne!(Secret::from_slice(b"abc"), Secret::from_slice(b"abcd"));
        assert_eq!(Secret::default(), Secret::new(Vec::new()));
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut s = Secret::from_slice(&[7u8; 16]);
        s.zeroize();
        assert!(s.is_empty());
    }
}
