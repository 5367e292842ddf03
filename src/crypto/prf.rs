//! The IKEv2 pseudorandom function and prf+ (RFC 7296 §2.13), and the
//! default Key Wrap Key of a unicast IKE SA (RFC 9838 §3.1.1).

use super::keywrap::KeyWrapAlg;
use super::{CryptoError, Result, Secret};
use crate::iana::{KWK_LABEL, PrfId};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use zeroize::Zeroizing;

/// A negotiated PRF transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    /// PRF_HMAC_SHA1 (RFC 2104); kept for peers that still negotiate it.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (RFC 4868).
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (RFC 4868).
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (RFC 4868).
    HmacSha512,
}

impl PrfAlg {
    /// The PRF for a Transform Type 2 ID.
    pub fn from_id(id: PrfId) -> Result<Self> {
        match id {
            PrfId::PRF_HMAC_SHA1 => Ok(Self::HmacSha1),
            PrfId::PRF_HMAC_SHA2_256 => Ok(Self::HmacSha256),
            PrfId::PRF_HMAC_SHA2_384 => Ok(Self::HmacSha384),
            PrfId::PRF_HMAC_SHA2_512 => Ok(Self::HmacSha512),
            other => Err(CryptoError::UnsupportedTransform {
                transform: "PRF",
                id: other.0,
            }),
        }
    }

    /// The Transform Type 2 ID.
    pub fn id(self) -> PrfId {
        match self {
            Self::HmacSha1 => PrfId::PRF_HMAC_SHA1,
            Self::HmacSha256 => PrfId::PRF_HMAC_SHA2_256,
            Self::HmacSha384 => PrfId::PRF_HMAC_SHA2_384,
            Self::HmacSha512 => PrfId::PRF_HMAC_SHA2_512,
        }
    }

    /// Output length in octets (also the preferred key length, RFC 4868 §2.1.2).
    pub fn output_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
            Self::HmacSha384 => 48,
            Self::HmacSha512 => 64,
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Self::HmacSha1 => MessageDigest::sha1(),
            Self::HmacSha256 => MessageDigest::sha256(),
            Self::HmacSha384 => MessageDigest::sha384(),
            Self::HmacSha512 => MessageDigest::sha512(),
        }
    }
}

/// HMAC over the concatenation of `parts`.
pub(crate) fn hmac(md: MessageDigest, key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>> {
    // OpenSSL 3 refuses an empty HMAC key; HMAC pads short keys with zero
    // octets to the block size, so one zero octet is the same key.
    let pkey = PKey::hmac(if key.is_empty() { &[0] } else { key })?;
    let mut signer = Signer::new(md, &pkey)?;
    for part in parts {
        signer.update(part)?;
    }
    Ok(Zeroizing::new(signer.sign_to_vec()?))
}

/// `prf(key, data)`.
pub fn prf(alg: PrfAlg, key: &[u8], data: &[u8]) -> Result<Secret> {
    let mut out = hmac(alg.digest(), key, &[data])?;
    Ok(Secret::new(core::mem::take(&mut *out)))
}

/// `prf+(key, seed)` truncated to `len` octets (RFC 7296 §2.13):
/// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), at most 255 blocks.
pub fn prf_plus(alg: PrfAlg, key: &[u8], seed: &[u8], len: usize) -> Result<Secret> {
    let block = alg.output_len();
    let max = 255 * block;
    if len > max {
        return Err(CryptoError::TooLong {
            what: "prf+ output",
            max,
            got: len,
        });
    }
    let mut out = Vec::with_capacity(len.div_ceil(block) * block);
    let mut prev: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let mut n: u8 = 1;
    while out.len() < len {
        let t = hmac(alg.digest(), key, &[&prev, seed, &[n]])?;
        out.extend_from_slice(&t);
        prev = t;
        n = n.wrapping_add(1);
    }
    // The truncated tail stays within the capacity, which Secret wipes on drop.
    out.truncate(len);
    Ok(Secret::new(out))
}

/// The default KWK of a unicast IKE SA (RFC 9838 §3.1.1):
/// GSK_w = prf+(SK_d, "Key Wrap for G-IKEv2"), as long as the key wrap
/// algorithm's key.
pub fn default_kwk(alg: PrfAlg, sk_d: &Secret, kwa: KeyWrapAlg) -> Result<Secret> {
    prf_plus(alg, sk_d.expose(), KWK_LABEL, kwa.key_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ids_round_trip() {
        for alg in [
            PrfAlg::HmacSha1,
            PrfAlg::HmacSha256,
            PrfAlg::HmacSha384,
            PrfAlg::HmacSha512,
        ] {
            assert_eq!(PrfAlg::from_id(alg.id()).unwrap(), alg);
        }
        assert!(PrfAlg::from_id(PrfId(1)).is_err());
    }

    // RFC 2202 §3, test cases 1 and 2 (HMAC-SHA-1).
    #[test]
    fn rfc2202_hmac_sha1() {
        let out = prf(PrfAlg::HmacSha1, &[0x0b; 20], b"Hi There").unwrap();
        assert_eq!(out.expose(), h("b617318655057264e28bc0b6fb378c8ef146be00"));
        let out = prf(PrfAlg::HmacSha1, b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(out.expose(), h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"));
    }

    #[test]
    fn prf_plus_lengths() {
        for len in [0, 1, 31, 32, 33, 64, 100] {
            let out = prf_plus(PrfAlg::HmacSha256, b"k", b"s", len).unwrap();
            assert_eq!(out.len(), len);
        }
        // Prefixes agree: truncation never changes earlier octets.
        let long = prf_plus(PrfAlg::HmacSha384, b"key", b"seed", 200).unwrap();
        let short = prf_plus(PrfAlg::HmacSha384, b"key", b"seed", 77).unwrap();
        assert_eq!(&long.expose()[..77], short.expose());
        assert!(prf_plus(PrfAlg::HmacSha256, b"k", b"s", 255 * 32).is_ok());
        assert!(matches!(
            prf_plus(PrfAlg::HmacSha256, b"k", b"s", 255 * 32 + 1),
            Err(CryptoError::TooLong { .. })
        ));
    }

    #[test]
    fn default_kwk_has_the_kwa_key_length() {
        let sk_d = Secret::from_slice(&[1u8; 32]);
        for kwa in [
            KeyWrapAlg::Kw5649_128,
            KeyWrapAlg::Kw5649_192,
            KeyWrapAlg::Kw5649_256,
            KeyWrapAlg::Arx,
        ] {
            let k = default_kwk(PrfAlg::HmacSha256, &sk_d, kwa).unwrap();
            assert_eq!(k.len(), kwa.key_len());
            let full = prf_plus(
                PrfAlg::HmacSha256,
                sk_d.expose(),
                b"Key Wrap for G-IKEv2",
                32,
            )
            .unwrap();
            assert_eq!(k.expose(), &full.expose()[..kwa.key_len()]);
        }
    }

    // HMAC_SHA256("", "") as listed in the examples of the Wikipedia HMAC
    // article; OpenSSL 3 cannot take an empty key directly.
    #[test]
    fn empty_hmac_key_works() {
        let out = prf(PrfAlg::HmacSha256, b"", b"").unwrap();
        assert_eq!(
            out.expose(),
            h("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
        );
    }
}
