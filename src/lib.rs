//! G-IKEv2 (RFC 9838) core: wire format, cryptography and, in later parts,
//! the GCKS and GM protocol engines behind a C ABI for strongSwan's charon.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod iana;
pub mod rekey_message;
pub mod wire;
