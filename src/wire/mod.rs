//! The G-IKEv2 wire format: every payload and substructure of RFC 9838 as
//! typed values with `encode` and a strict `read`.
//!
//! Decoders check every length, count, attribute format and presence rule
//! and fail with a [`DecodeError`] naming the field; they never panic.
//! Reserved fields are written as zero and ignored on receipt, as RFC 7296
//! and RFC 9838 require.

mod attr;
mod codec;
mod error;
mod gsa;
mod header;
mod kd;
mod message;
mod payload;
mod rules;
mod sa;
mod transform;
mod ts;

pub use attr::{AttrValue, RawAttr};
pub use codec::{Codec, Reader};
pub use error::DecodeError;
pub use gsa::{GroupPolicy, Gsa, GsaAttr, GsaPolicy, GwPolicy, SaRef};
pub use header::{IkeHeader, RekeySpi};
pub use kd::{GroupKeyBag, Kd, KeyBag, MemberKeyBag, WrappedKey};
pub use message::Message;
pub use payload::{
    Auth, Delete, Encrypted, EncryptedFragment, GroupId, Notify, Payload, chain_spans,
    encode_chain, read_chain,
};
pub use rules::{Direction, check_exchange};
pub use sa::{Proposal, SaPayload};
pub use transform::{Transform, TransformAttr};
pub use ts::{AddrRange, TrafficSelector};
