//! Cryptography of G-IKEv2 on OpenSSL: prf+ and key derivation, splitting
//! downloaded keying material, the Encrypted (SK) payload of GSA_REKEY,
//! key wrapping (RFC 5649 and ARX-KW-8-2-4-GX) and GSA_REKEY signatures.
//!
//! Everything secret is a [`Secret`], wiped when dropped; randomness comes
//! in through [`Rng`] so the protocol engines stay deterministic in tests.
//! Transform numbers come from [`crate::iana`]; this module only gives them
//! meaning.

mod arx;
mod der;
mod error;
mod keymat;
mod keywrap;
mod prf;
mod rng;
mod secret;
mod sign;
mod sk;

pub use error::CryptoError;
pub use keymat::{
    DataSaKeys, EncrAlg, IntegAlg, RekeySaKeys, data_keymat_len, rekey_keymat_len,
    split_data_keymat, split_rekey_keymat,
};
pub use keywrap::{KeyWrapAlg, aes_kw_unwrap, aes_kw_wrap};
pub use prf::{PrfAlg, default_kwk, prf, prf_plus};
pub use rng::{OsRng, Rng, SeededRng};
pub use secret::Secret;
pub use sign::{SigAlg, SigningKey, VerifyingKey, auth_data, parse_auth_data};
pub use sk::SkProtection;

/// Result of every fallible operation in this module.
pub type Result<T> = core::result::Result<T, CryptoError>;
