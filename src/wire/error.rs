//! Decode errors: each names the field at fault and why.

use core::fmt;

use crate::iana::{ExchangeType, NotifyType, PayloadType};

/// Why some octets are not a valid G-IKEv2 message, payload or substructure.
///
/// `what` always names the field or structure, as the RFC names it, so a
/// single log line says enough to find the fault.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer octets than the field needs.
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A length field disagrees with the structure or the octets around it.
    BadLength {
        what: &'static str,
        len: usize,
        reason: &'static str,
    },
    /// Octets left over after a structure that must consume them all.
    TrailingData { what: &'static str, extra: usize },
    /// A field holds a value the RFC rules out here.
    BadValue {
        what: &'static str,
        value: u64,
        reason: &'static str,
    },
    /// An attribute in TV format where TLV is required, or the reverse.
    AttrFormat {
        what: &'static str,
        attr: u16,
        expected_tv: bool,
    },
    /// A single-valued item appears more than once.
    Duplicate { what: &'static str },
    /// A mandatory item is absent.
    Missing { what: &'static str },
    /// An item appears where this exchange or structure forbids it.
    NotAllowed {
        what: &'static str,
        reason: &'static str,
    },
    /// A critical payload this implementation does not understand.
    UnsupportedCritical(PayloadType),
    /// The header's exchange type is not one this decoder handles.
    UnexpectedExchange(ExchangeType),
}

impl DecodeError {
    /// The error notification a responder returns for this failure
    /// (RFC 7296 §2.21: syntax errors are INVALID_SYNTAX).
    pub fn notify_type(&self) -> NotifyType {
        match self {
            Self::UnsupportedCritical(_) => NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
            _ => NotifyType::INVALID_SYNTAX,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { what, need, have } => {
                write!(f, "{what}: truncated, need {need} octets, have {have}")
            }
            Self::BadLength { what, len, reason } => {
                write!(f, "{what}: bad length {len}: {reason}")
            }
            Self::TrailingData { what, extra } => {
                write!(f, "{what}: {extra} trailing octets")
            }
            Self::BadValue {
                what,
                value,
                reason,
            } => write!(f, "{what}: value {value} not allowed: {reason}"),
            Self::AttrFormat {
                what,
                attr,
                expected_tv,
            } => write!(
                f,
                "{what}: attribute {attr} must use {} format",
                if *expected_tv { "TV" } else { "TLV" }
            ),
            Self::Duplicate { what } => write!(f, "{what}: appears more than once"),
            Self::Missing { what } => write!(f, "{what}: missing"),
            Self::NotAllowed { what, reason } => write!(f, "{what}: not allowed: {reason}"),
            Self::UnsupportedCritical(t) => write!(f, "unsupported critical payload {t}"),
            Self::UnexpectedExchange(t) => write!(f, "unexpected exchange type {t}"),
        }
    }
}

impl std::error::Error for DecodeError {}
