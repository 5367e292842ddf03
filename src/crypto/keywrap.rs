//! Key wrapping (RFC 9838 §4.5.4): every key G-IKEv2 sends is wrapped under
//! a Key Wrap Key with the negotiated Key Wrap Algorithm — AES Key Wrap
//! with Padding (RFC 5649) or ARX-KW-8-2-4-GX. RFC 3394 (AES Key Wrap
//! without padding) is exposed too: RFC 5649 is built on it.
//!
//! The AES variants run on single-block AES-ECB from OpenSSL, which keeps
//! every check (and its failure) in our hands. Not on OpenSSL's own key
//! wrap mode (AES-*-WRAP): OpenSSL 3.0 runs it on its table-based
//! AES_encrypt, without AES-NI and not constant-time; a GCKS's whole
//! exclusion rekey took 2.7 times the instructions with it (callgrind,
//! bench/profile). The ECB ciphers are fetched once (see [`aes_ecb`]).

use std::sync::OnceLock;

use super::{CryptoError, Result, Secret, arx};
use crate::iana::KwaId;
use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::symm::Mode;
use zeroize::{Zeroize, Zeroizing};

/// RFC 3394 §2.2.3.1 default initial value.
const DEFAULT_IV: [u8; 8] = [0xa6; 8];
/// RFC 5649 §3 alternative initial value prefix (followed by the 32-bit MLI).
const AIV_PREFIX: [u8; 4] = [0xa6, 0x59, 0x59, 0xa6];

/// A Key Wrap Algorithm transform (Transform Type 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyWrapAlg {
    /// KW_5649_128: RFC 5649 with a 128-bit KEK.
    Kw5649_128,
    /// KW_5649_192: RFC 5649 with a 192-bit KEK.
    Kw5649_192,
    /// KW_5649_256: RFC 5649 with a 256-bit KEK.
    Kw5649_256,
    /// KW_ARX: ARX-KW-8-2-4-GX with a 256-bit KEK.
    Arx,
}

impl KeyWrapAlg {
    /// Every key wrap algorithm, for iteration in tests and policy.
    pub const ALL: [KeyWrapAlg; 4] = [
        KeyWrapAlg::Kw5649_128,
        KeyWrapAlg::Kw5649_192,
        KeyWrapAlg::Kw5649_256,
        KeyWrapAlg::Arx,
    ];

    /// The algorithm for a Transform Type 13 ID.
    pub fn from_id(id: KwaId) -> Result<Self> {
        match id {
            KwaId::KW_5649_128 => Ok(Self::Kw5649_128),
            KwaId::KW_5649_192 => Ok(Self::Kw5649_192),
            KwaId::KW_5649_256 => Ok(Self::Kw5649_256),
            KwaId::KW_ARX => Ok(Self::Arx),
            other => Err(CryptoError::UnsupportedTransform {
                transform: "KWA",
                id: other.0,
            }),
        }
    }

    /// The Transform Type 13 ID.
    pub fn id(self) -> KwaId {
        match self {
            Self::Kw5649_128 => KwaId::KW_5649_128,
            Self::Kw5649_192 => KwaId::KW_5649_192,
            Self::Kw5649_256 => KwaId::KW_5649_256,
            Self::Arx => KwaId::KW_ARX,
        }
    }

    /// Length of the Key Wrap Key in octets.
    pub fn key_len(self) -> usize {
        match self {
            Self::Kw5649_128 => 16,
            Self::Kw5649_192 => 24,
            Self::Kw5649_256 => 32,
            Self::Arx => arx::KEY_LEN,
        }
    }

    /// Length of the wrapped form of `plain_len` octets of key material.
    pub fn wrapped_len(self, plain_len: usize) -> usize {
        match self {
            Self::Arx => arx::TAG_LEN + plain_len,
            _ => 8 + plain_len.div_ceil(8).max(1) * 8,
        }
    }

    /// Wraps `key` (1 octet or more; RFC 9838 needs up to 256) under `kek`.
    pub fn wrap(self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>> {
        self.check_kek(kek)?;
        if key.is_empty() {
            return Err(CryptoError::Malformed("no key data to wrap"));
        }
        match self {
            Self::Arx => arx::wrap(kek, key),
            _ => kwp_wrap(kek, key),
        }
    }

    /// Unwraps `wrapped` under `kek`. A wrong KEK or any change to the
    /// input gives [`CryptoError::UnwrapFailed`]; an impossible length
    /// gives [`CryptoError::Malformed`].
    pub fn unwrap(self, kek: &[u8], wrapped: &[u8]) -> Result<Secret> {
        self.check_kek(kek)?;
        match self {
            Self::Arx => arx::unwrap(kek, wrapped),
            _ => kwp_unwrap(kek, wrapped),
        }
    }

    fn check_kek(self, kek: &[u8]) -> Result<()> {
        if kek.len() != self.key_len() {
            return Err(CryptoError::KeyLength {
                what: "key wrap key",
                expected: self.key_len(),
                got: kek.len(),
            });
        }
        Ok(())
    }
}

/// AES-ECB for a KEK of `kek_len` octets, fetched from OpenSSL's provider
/// once. Initialising a context with the legacy `EVP_aes_*_ecb()` makes
/// OpenSSL 3 fetch the implementation by name every time, which cost more
/// than the key schedule (callgrind: about 2,600 of the 5,800 instructions
/// of each context set-up; a GCKS sets up one per key it wraps).
fn aes_ecb(kek_len: usize) -> Result<&'static CipherRef> {
    static FETCHED: [OnceLock<core::result::Result<Cipher, String>>; 3] =
        [const { OnceLock::new() }; 3];
    let (i, name) = match kek_len {
        16 => (0, "AES-128-ECB"),
        24 => (1, "AES-192-ECB"),
        32 => (2, "AES-256-ECB"),
        n => {
            return Err(CryptoError::KeyLength {
                what: "AES KEK (16, 24 or 32 octets)",
                expected: 16,
                got: n,
            });
        }
    };
    match FETCHED[i].get_or_init(|| Cipher::fetch(None, name, None).map_err(|e| e.to_string())) {
        Ok(c) => Ok(c),
        Err(e) => Err(CryptoError::Openssl(e.clone())),
    }
}

/// Single-block AES with the key schedule kept in one OpenSSL context
/// (which OpenSSL wipes when it is freed).
struct Aes {
    ctx: CipherCtx,
    scratch: Zeroizing<[u8; 32]>,
}

impl Aes {
    fn new(kek: &[u8], mode: Mode) -> Result<Self> {
        let cipher = aes_ecb(kek.len())?;
        let mut ctx = CipherCtx::new()?;
        match mode {
            Mode::Encrypt => ctx.encrypt_init(Some(cipher), Some(kek), None)?,
            Mode::Decrypt => ctx.decrypt_init(Some(cipher), Some(kek), None)?,
        }
        ctx.set_padding(false);
        Ok(Self {
            ctx,
            scratch: Zeroizing::new([0; 32]),
        })
    }

    /// Runs the cipher on the 16-octet `block` in place.
    fn block(&mut self, block: &mut [u8; 16]) -> Result<()> {
        let n = self.ctx.cipher_update(block, Some(&mut self.scratch[..]))?;
        if n != 16 {
            return Err(CryptoError::Openssl(
                "AES-ECB returned a short block".into(),
            ));
        }
        block.copy_from_slice(&self.scratch[..16]);
        Ok(())
    }
}

/// RFC 3394 §2.2.1 W (index form): `r` holds n >= 1 semiblocks; returns
/// A | R1 | ... | Rn.
fn w(kek: &[u8], iv: [u8; 8], r: &[u8]) -> Result<Vec<u8>> {
    let n = r.len() / 8;
    let mut aes = Aes::new(kek, Mode::Encrypt)?;
    let mut out = Vec::with_capacity(8 + r.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(r);
    let mut b = Zeroizing::new([0u8; 16]);
    for j in 0..6u64 {
        for i in 1..=n {
            b[..8].copy_from_slice(&out[..8]);
            b[8..].copy_from_slice(&out[8 * i..8 * i + 8]);
            aes.block(&mut b)?;
            let t = (n as u64) * j + i as u64;
            for (o, (x, y)) in out[..8].iter_mut().zip(b[..8].iter().zip(t.to_be_bytes())) {
                *o = x ^ y;
            }
            out[8 * i..8 * i + 8].copy_from_slice(&b[8..]);
        }
    }
    Ok(out)
}

/// RFC 3394 §2.2.2 W^-1: returns A and R1 | ... | Rn.
fn w_inv(kek: &[u8], c: &[u8]) -> Result<([u8; 8], Zeroizing<Vec<u8>>)> {
    let n = c.len() / 8 - 1;
    let mut aes = Aes::new(kek, Mode::Decrypt)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    let mut r = Zeroizing::new(c[8..].to_vec());
    let mut b = Zeroizing::new([0u8; 16]);
    for j in (0..6u64).rev() {
        for i in (1..=n).rev() {
            let t = (n as u64) * j + i as u64;
            for (x, (y, z)) in b[..8].iter_mut().zip(a.iter().zip(t.to_be_bytes())) {
                *x = y ^ z;
            }
            b[8..].copy_from_slice(&r[8 * (i - 1)..8 * i]);
            aes.block(&mut b)?;
            a.copy_from_slice(&b[..8]);
            r[8 * (i - 1)..8 * i].copy_from_slice(&b[8..]);
        }
    }
    Ok((a, r))
}

/// RFC 3394 AES Key Wrap: `plain` is at least two 64-bit semiblocks.
pub fn aes_kw_wrap(kek: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    if plain.len() < 16 || plain.len() % 8 != 0 {
        return Err(CryptoError::Malformed(
            "RFC 3394 key data must be a multiple of 8 octets, at least 16",
        ));
    }
    w(kek, DEFAULT_IV, plain)
}

/// RFC 3394 AES Key Unwrap with the default initial value check.
pub fn aes_kw_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Secret> {
    if wrapped.len() < 24 || wrapped.len() % 8 != 0 {
        return Err(CryptoError::Malformed(
            "RFC 3394 wrapped key must be a multiple of 8 octets, at least 24",
        ));
    }
    let (a, mut r) = w_inv(kek, wrapped)?;
    if !openssl::memcmp::eq(&a, &DEFAULT_IV) {
        return Err(CryptoError::UnwrapFailed);
    }
    Ok(Secret::new(core::mem::take(&mut *r)))
}

/// RFC 5649 §4.1 wrap.
fn kwp_wrap(kek: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let mli = u32::try_from(plain.len()).map_err(|_| CryptoError::TooLong {
        what: "RFC 5649 key data",
        max: u32::MAX as usize,
        got: plain.len(),
    })?;
    let mut aiv = [0u8; 8];
    aiv[..4].copy_from_slice(&AIV_PREFIX);
    aiv[4..].copy_from_slice(&mli.to_be_bytes());
    let mut padded = Zeroizing::new(vec![0u8; plain.len().div_ceil(8) * 8]);
    padded[..plain.len()].copy_from_slice(plain);
    if padded.len() == 8 {
        let mut b = Zeroizing::new([0u8; 16]);
        b[..8].copy_from_slice(&aiv);
        b[8..].copy_from_slice(&padded);
        Aes::new(kek, Mode::Encrypt)?.block(&mut b)?;
        return Ok(b.to_vec());
    }
    w(kek, aiv, &padded)
}

/// RFC 5649 §4.2 unwrap with the §3 AIV, MLI and padding checks.
fn kwp_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Secret> {
    if wrapped.len() < 16 || wrapped.len() % 8 != 0 {
        return Err(CryptoError::Malformed(
            "RFC 5649 wrapped key must be a multiple of 8 octets, at least 16",
        ));
    }
    let (a, mut p) = if wrapped.len() == 16 {
        let mut b = Zeroizing::new([0u8; 16]);
        b.copy_from_slice(wrapped);
        Aes::new(kek, Mode::Decrypt)?.block(&mut b)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        (a, Zeroizing::new(b[8..].to_vec()))
    } else {
        w_inv(kek, wrapped)?
    };
    let mli = u32::from_be_bytes([a[4], a[5], a[6], a[7]]) as usize;
    let prefix_ok = openssl::memcmp::eq(&a[..4], &AIV_PREFIX);
    let len_ok = mli <= p.len() && mli + 8 > p.len();
    let pad_ok = len_ok && p[mli..].iter().fold(0u8, |acc, &x| acc | x) == 0;
    if !(prefix_ok & len_ok & pad_ok) {
        p.zeroize();
        return Err(CryptoError::UnwrapFailed);
    }
    p.truncate(mli);
    Ok(Secret::new(core::mem::take(&mut *p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for alg in KeyWrapAlg::ALL {
            assert_eq!(KeyWrapAlg::from_id(alg.id()).unwrap(), alg);
        }
        assert!(KeyWrapAlg::from_id(KwaId(0)).is_err());
        assert!(KeyWrapAlg::from_id(KwaId(1024)).is_err());
    }

    #[test]
    fn wrapped_len_matches_wrap() {
        for alg in KeyWrapAlg::ALL {
            let kek = vec![9u8; alg.key_len()];
            for len in 1..=40 {
                let w = alg.wrap(&kek, &vec![1u8; len]).unwrap();
                assert_eq!(w.len(), alg.wrapped_len(len), "{alg:?} {len}");
            }
        }
    }

    // Cross-check of RFC 3394 against OpenSSL's own AES_wrap_key, an
    // independent implementation (no published vector is needed here).
    #[test]
    fn rfc3394_matches_openssl_aes_wrap_key() {
        for kek_len in [16usize, 24, 32] {
            let kek: Vec<u8> = (0..kek_len as u8).collect();
            for blocks in 2..=33usize {
                let plain: Vec<u8> = (0..8 * blocks).map(|i| (i * 7) as u8).collect();
                let ours = aes_kw_wrap(&kek, &plain).unwrap();
                let key = openssl::aes::AesKey::new_encrypt(&kek).unwrap();
                let mut theirs = vec![0u8; plain.len() + 8];
                openssl::aes::wrap_key(&key, None, &mut theirs, &plain).unwrap();
                assert_eq!(ours, theirs);
                assert_eq!(aes_kw_unwrap(&kek, &ours).unwrap().expose(), plain);
            }
        }
    }

    #[test]
    fn bad_lengths_are_malformed_not_panics() {
        let kek = [0u8; 16];
        for len in [0usize, 8, 15, 17, 23] {
            assert!(matches!(
                KeyWrapAlg::Kw5649_128.unwrap(&kek, &vec![0; len]),
                Err(CryptoError::Malformed(_))
            ));
        }
        assert!(matches!(
            aes_kw_unwrap(&kek, &[0; 16]),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            aes_kw_wrap(&kek, &[0; 8]),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            KeyWrapAlg::Kw5649_256.wrap(&kek, b"k"),
            Err(CryptoError::KeyLength { .. })
        ));
        assert!(KeyWrapAlg::Arx.wrap(&[0; 32], b"").is_err());
    }

    #[test]
    fn rfc5649_rejects_wrong_mli_and_nonzero_padding() {
        // Build wrapped values with a bad AIV using the raw W function.
        let kek = [3u8; 24];
        let mut aiv = [0u8; 8];
        aiv[..4].copy_from_slice(&AIV_PREFIX);
        aiv[4..].copy_from_slice(&9u32.to_be_bytes()); // 9 octets claimed, 24 present
        let bad_len = w(&kek, aiv, &[1u8; 24]).unwrap();
        assert_eq!(kwp_unwrap(&kek, &bad_len), Err(CryptoError::UnwrapFailed));
        aiv[4..].copy_from_slice(&20u32.to_be_bytes());
        let mut padded = [0u8; 24];
        padded[23] = 1; // non-zero padding
        let bad_pad = w(&kek, aiv, &padded).unwrap();
        assert_eq!(kwp_unwrap(&kek, &bad_pad), Err(CryptoError::UnwrapFailed));
        padded[23] = 0;
        let good = w(&kek, aiv, &padded).unwrap();
        assert_eq!(kwp_unwrap(&kek, &good).unwrap().expose(), &[0u8; 20]);
    }
}
