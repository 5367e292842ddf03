//! One error type for the crypto layer, so callers can map a failure to what
//! goes on the wire (an integrity failure is silently dropped, a bad
//! signature is AUTHENTICATION_FAILED, ...) without matching on strings.

use core::fmt;

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// The ICV (or AEAD tag) of protected data did not verify.
    IntegrityCheckFailed,
    /// A wrapped key did not unwrap: wrong KEK or tampered input.
    UnwrapFailed,
    /// A signature did not verify.
    BadSignature,
    /// A key or keying material has the wrong length.
    KeyLength {
        /// What the key is for.
        what: &'static str,
        /// The length this algorithm needs.
        expected: usize,
        /// The length we were given.
        got: usize,
    },
    /// An input or output is longer than the algorithm allows.
    TooLong {
        /// What is too long.
        what: &'static str,
        /// The largest length allowed.
        max: usize,
        /// The length asked for.
        got: usize,
    },
    /// A transform ID this implementation does not (or must not) use.
    UnsupportedTransform {
        /// The transform type, e.g. "ENCR".
        transform: &'static str,
        /// The transform ID.
        id: u16,
    },
    /// Something this implementation does not support, and why.
    Unsupported(&'static str),
    /// Transforms that cannot be used together, e.g. an AEAD cipher with a
    /// separate integrity algorithm.
    BadCombination(&'static str),
    /// A DER AlgorithmIdentifier we do not know, or one that does not match
    /// what was negotiated.
    BadAlgorithmIdentifier,
    /// Input that is not well formed, and what was wrong with it.
    Malformed(&'static str),
    /// OpenSSL reported an error.
    Openssl(String),
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IntegrityCheckFailed => f.write_str("integrity check failed"),
            Self::UnwrapFailed => f.write_str("key unwrap failed"),
            Self::BadSignature => f.write_str("signature verification failed"),
            Self::KeyLength {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected} octets, got {got}"),
            Self::TooLong { what, max, got } => {
                write!(f, "{what}: {got} octets, at most {max} allowed")
            }
            Self::UnsupportedTransform { transform, id } => {
                write!(f, "unsupported {transform} transform ID {id}")
            }
            Self::Unsupported(what) => write!(f, "unsupported: {what}"),
            Self::BadCombination(what) => write!(f, "bad transform combination: {what}"),
            Self::BadAlgorithmIdentifier => {
                f.write_str("unknown or mismatched AlgorithmIdentifier")
            }
            Self::Malformed(what) => write!(f, "malformed input: {what}"),
            Self::Openssl(msg) => write!(f, "OpenSSL error: {msg}"),
        }
    }
}

impl std::error::Error for CryptoError {}

impl From<openssl::error::ErrorStack> for CryptoError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Openssl(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_problem() {
        let e = CryptoError::KeyLength {
            what: "GSK_w",
            expected: 32,
            got: 16,
        };
        assert_eq!(e.to_string(), "GSK_w: expected 32 octets, got 16");
        let e = CryptoError::UnsupportedTransform {
            transform: "ENCR",
            id: 3,
        };
        assert_eq!(e.to_string(), "unsupported ENCR transform ID 3");
    }
}
