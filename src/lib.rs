//! G-IKEv2 (RFC 9838) core: wire format, cryptography and, in later parts,
//! the GCKS and GM protocol engines behind a C ABI for strongSwan's charon.
#![deny(unsafe_code)]

pub mod config;
pub mod crypto;
pub mod ffi;
pub mod gcks;
pub mod gm;
pub mod iana;
pub mod ike_sa;
pub mod lkh;
pub mod node;
pub mod persist;
pub mod policy;
pub mod rekey_message;
pub mod wire;
