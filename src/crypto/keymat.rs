//! What the downloaded keying material of an SA means: the cipher and
//! integrity transforms with their key and salt lengths, and the split of
//! KEYMAT into keys — GSK_e | GSK_a | GSK_w for a Rekey SA (RFC 9838 §3.4)
//! and encryption key then integrity key for a Data-Security SA (RFC 7296
//! §2.17). The sizes must add up exactly (RFC 9838 §4.5.2.1).

use super::keywrap::KeyWrapAlg;
use super::{CryptoError, Result, Secret};
use crate::iana::{EncrId, IntegId};

/// An encryption transform with its key size resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncrAlg {
    id: EncrId,
    key_len: usize,
}

impl EncrAlg {
    /// The transform for `id` with the Key Length attribute `key_bits`
    /// (required for the AES transforms, forbidden for the others).
    pub fn new(id: EncrId, key_bits: Option<u16>) -> Result<Self> {
        let key_len = match id {
            EncrId::ENCR_AES_CBC
            | EncrId::ENCR_AES_CTR
            | EncrId::ENCR_AES_CCM_8
            | EncrId::ENCR_AES_CCM_12
            | EncrId::ENCR_AES_CCM_16
            | EncrId::ENCR_AES_GCM_8
            | EncrId::ENCR_AES_GCM_12
            | EncrId::ENCR_AES_GCM_16
            | EncrId::ENCR_NULL_AUTH_AES_GMAC => match key_bits {
                Some(bits @ (128 | 192 | 256)) => usize::from(bits / 8),
                Some(_) => {
                    return Err(CryptoError::Malformed(
                        "AES key length must be 128, 192 or 256 bits",
                    ));
                }
                None => {
                    return Err(CryptoError::Malformed(
                        "AES transform without a Key Length attribute",
                    ));
                }
            },
            EncrId::ENCR_CHACHA20_POLY1305 | EncrId::ENCR_NULL => {
                if key_bits.is_some() {
                    return Err(CryptoError::Malformed(
                        "Key Length attribute on a fixed-length transform",
                    ));
                }
                if id == EncrId::ENCR_NULL { 0 } else { 32 }
            }
            EncrId::ENCR_AES_CCM_8_IIV
            | EncrId::ENCR_AES_GCM_16_IIV
            | EncrId::ENCR_CHACHA20_POLY1305_IIV => {
                return Err(CryptoError::Unsupported(
                    "implicit-IV transforms MUST NOT be used in G-IKEv2 (RFC 9838 §2.7)",
                ));
            }
            _ => {
                return Err(CryptoError::UnsupportedTransform {
                    transform: "ENCR",
                    id: id.0,
                });
            }
        };
        Ok(Self { id, key_len })
    }

    /// The Transform Type 1 ID.
    pub fn id(&self) -> EncrId {
        self.id
    }

    /// The Key Length attribute to send with this transform, if any.
    pub fn key_bits(&self) -> Option<u16> {
        match self.id {
            EncrId::ENCR_CHACHA20_POLY1305 | EncrId::ENCR_NULL => None,
            _ => Some((self.key_len * 8) as u16),
        }
    }

    /// Cipher key length in octets, without the salt.
    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// Salt (nonce) octets taken from the keying material after the key:
    /// 4 for CTR (RFC 3686), GCM (RFC 4106), GMAC (RFC 4543) and
    /// ChaCha20-Poly1305 (RFC 7634), 3 for CCM (RFC 4309).
    pub fn salt_len(&self) -> usize {
        match self.id {
            EncrId::ENCR_AES_CTR
            | EncrId::ENCR_AES_GCM_8
            | EncrId::ENCR_AES_GCM_12
            | EncrId::ENCR_AES_GCM_16
            | EncrId::ENCR_NULL_AUTH_AES_GMAC
            | EncrId::ENCR_CHACHA20_POLY1305 => 4,
            EncrId::ENCR_AES_CCM_8 | EncrId::ENCR_AES_CCM_12 | EncrId::ENCR_AES_CCM_16 => 3,
            _ => 0,
        }
    }

    /// Octets of keying material this transform takes: key then salt.
    pub fn keymat_len(&self) -> usize {
        self.key_len + self.salt_len()
    }

    /// Length of the explicit IV in each packet or SK payload.
    pub fn iv_len(&self) -> usize {
        match self.id {
            EncrId::ENCR_NULL => 0,
            EncrId::ENCR_AES_CBC => 16,
            _ => 8,
        }
    }

    /// ICV length of a combined-mode transform (0 for the others).
    pub fn icv_len(&self) -> usize {
        match self.id {
            EncrId::ENCR_AES_CCM_8 | EncrId::ENCR_AES_GCM_8 => 8,
            EncrId::ENCR_AES_CCM_12 | EncrId::ENCR_AES_GCM_12 => 12,
            EncrId::ENCR_AES_CCM_16
            | EncrId::ENCR_AES_GCM_16
            | EncrId::ENCR_NULL_AUTH_AES_GMAC
            | EncrId::ENCR_CHACHA20_POLY1305 => 16,
            _ => 0,
        }
    }

    /// Combined-mode (AEAD) transforms carry their own integrity.
    pub fn is_aead(&self) -> bool {
        self.icv_len() > 0
    }

    /// Counter-based modes, which need Sender-IDs in a group (RFC 9838 §2.5):
    /// CTR, GCM, CCM, GMAC and ChaCha20-Poly1305.
    pub fn is_counter_mode(&self) -> bool {
        !matches!(self.id, EncrId::ENCR_AES_CBC | EncrId::ENCR_NULL)
    }
}

/// An integrity transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntegAlg {
    id: IntegId,
}

impl IntegAlg {
    /// "No separate integrity" (with AEAD ciphers).
    pub const NONE: IntegAlg = IntegAlg { id: IntegId::NONE };

    /// The transform for `id`.
    pub fn new(id: IntegId) -> Result<Self> {
        match id {
            IntegId::NONE
            | IntegId::AUTH_HMAC_SHA1_96
            | IntegId::AUTH_AES_XCBC_96
            | IntegId::AUTH_AES_128_GMAC
            | IntegId::AUTH_AES_192_GMAC
            | IntegId::AUTH_AES_256_GMAC
            | IntegId::AUTH_HMAC_SHA2_256_128
            | IntegId::AUTH_HMAC_SHA2_384_192
            | IntegId::AUTH_HMAC_SHA2_512_256 => Ok(Self { id }),
            other => Err(CryptoError::UnsupportedTransform {
                transform: "INTEG",
                id: other.0,
            }),
        }
    }

    /// The Transform Type 3 ID.
    pub fn id(&self) -> IntegId {
        self.id
    }

    /// Key length in octets, without a salt.
    pub fn key_len(&self) -> usize {
        match self.id {
            IntegId::AUTH_HMAC_SHA1_96 => 20,
            IntegId::AUTH_AES_XCBC_96 | IntegId::AUTH_AES_128_GMAC => 16,
            IntegId::AUTH_AES_192_GMAC => 24,
            IntegId::AUTH_AES_256_GMAC | IntegId::AUTH_HMAC_SHA2_256_128 => 32,
            IntegId::AUTH_HMAC_SHA2_384_192 => 48,
            IntegId::AUTH_HMAC_SHA2_512_256 => 64,
            _ => 0,
        }
    }

    /// Salt octets after the key (4 for AES-GMAC in AH, RFC 4543).
    pub fn salt_len(&self) -> usize {
        match self.id {
            IntegId::AUTH_AES_128_GMAC
            | IntegId::AUTH_AES_192_GMAC
            | IntegId::AUTH_AES_256_GMAC => 4,
            _ => 0,
        }
    }

    /// Octets of keying material this transform takes.
    pub fn keymat_len(&self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// Length of the (truncated) ICV.
    pub fn icv_len(&self) -> usize {
        match self.id {
            IntegId::AUTH_HMAC_SHA1_96 | IntegId::AUTH_AES_XCBC_96 => 12,
            IntegId::AUTH_AES_128_GMAC
            | IntegId::AUTH_AES_192_GMAC
            | IntegId::AUTH_AES_256_GMAC
            | IntegId::AUTH_HMAC_SHA2_256_128 => 16,
            IntegId::AUTH_HMAC_SHA2_384_192 => 24,
            IntegId::AUTH_HMAC_SHA2_512_256 => 32,
            _ => 0,
        }
    }

    /// Whether this is "no integrity".
    pub fn is_none(&self) -> bool {
        self.id == IntegId::NONE
    }
}

/// Keys of a Rekey SA: GSK_e | GSK_a | GSK_w = KEYMAT (RFC 9838 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeySaKeys {
    /// Encryption key followed by its salt, if the cipher has one.
    pub gsk_e: Secret,
    /// Integrity key; empty with an AEAD cipher.
    pub gsk_a: Secret,
    /// Default Key Wrap Key of the Rekey SA.
    pub gsk_w: Secret,
}

/// Keys of a Data-Security SA, in RFC 7296 §2.17 order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSaKeys {
    /// Encryption key and salt (empty for AH).
    pub encr: Secret,
    /// Integrity key and salt (empty with an AEAD cipher).
    pub integ: Secret,
}

/// The Rekey SA protects the SK payload: it needs a real cipher, and
/// integrity from exactly one of the cipher or the integrity transform.
fn check_rekey(encr: EncrAlg, integ: IntegAlg) -> Result<()> {
    if encr.id == EncrId::ENCR_NULL || encr.id == EncrId::ENCR_NULL_AUTH_AES_GMAC {
        return Err(CryptoError::BadCombination(
            "a Rekey SA needs an encrypting cipher",
        ));
    }
    check_integrity(Some(encr), integ)
}

fn check_integrity(encr: Option<EncrAlg>, integ: IntegAlg) -> Result<()> {
    match encr {
        Some(e) if e.is_aead() && !integ.is_none() => Err(CryptoError::BadCombination(
            "an AEAD cipher takes no separate integrity transform",
        )),
        Some(e) if e.id == EncrId::ENCR_NULL && integ.is_none() => Err(
            CryptoError::BadCombination("ENCR_NULL without integrity protects nothing"),
        ),
        None if integ.is_none() => Err(CryptoError::BadCombination(
            "AH needs an integrity transform",
        )),
        _ => Ok(()),
    }
}

/// Total KEYMAT length of a Rekey SA.
pub fn rekey_keymat_len(encr: EncrAlg, integ: IntegAlg, kwa: KeyWrapAlg) -> Result<usize> {
    check_rekey(encr, integ)?;
    if !encr.is_aead() && integ.is_none() {
        return Err(CryptoError::BadCombination(
            "a Rekey SA needs integrity protection",
        ));
    }
    Ok(encr.keymat_len() + integ.keymat_len() + kwa.key_len())
}

/// Splits a Rekey SA's KEYMAT into GSK_e | GSK_a | GSK_w; its length must
/// be exactly [`rekey_keymat_len`].
pub fn split_rekey_keymat(
    encr: EncrAlg,
    integ: IntegAlg,
    kwa: KeyWrapAlg,
    keymat: &Secret,
) -> Result<RekeySaKeys> {
    let expected = rekey_keymat_len(encr, integ, kwa)?;
    if keymat.len() != expected {
        return Err(CryptoError::KeyLength {
            what: "Rekey SA keying material",
            expected,
            got: keymat.len(),
        });
    }
    let k = keymat.expose();
    let (e, rest) = k.split_at(encr.keymat_len());
    let (a, w) = rest.split_at(integ.keymat_len());
    Ok(RekeySaKeys {
        gsk_e: Secret::from_slice(e),
        gsk_a: Secret::from_slice(a),
        gsk_w: Secret::from_slice(w),
    })
}

/// Total KEYMAT length of a Data-Security SA (`encr` is `None` for AH).
pub fn data_keymat_len(encr: Option<EncrAlg>, integ: IntegAlg) -> Result<usize> {
    check_integrity(encr, integ)?;
    Ok(encr.map_or(0, |e| e.keymat_len()) + integ.keymat_len())
}

/// Splits a Data-Security SA's KEYMAT: the encryption key (and salt) from
/// the leftmost octets, then the integrity key. Its length must be exactly
/// [`data_keymat_len`].
pub fn split_data_keymat(
    encr: Option<EncrAlg>,
    integ: IntegAlg,
    keymat: &Secret,
) -> Result<DataSaKeys> {
    let expected = data_keymat_len(encr, integ)?;
    if keymat.len() != expected {
        return Err(CryptoError::KeyLength {
            what: "Data-Security SA keying material",
            expected,
            got: keymat.len(),
        });
    }
    let (e, a) = keymat.expose().split_at(encr.map_or(0, |e| e.keymat_len()));
    Ok(DataSaKeys {
        encr: Secret::from_slice(e),
        integ: Secret::from_slice(a),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encr(id: EncrId, bits: Option<u16>) -> EncrAlg {
        EncrAlg::new(id, bits).unwrap()
    }

    fn integ(id: IntegId) -> IntegAlg {
        IntegAlg::new(id).unwrap()
    }

    #[test]
    fn encr_lengths() {
        let cases = [
            (EncrId::ENCR_AES_CBC, Some(128), 16, 0, false, false),
            (EncrId::ENCR_AES_CBC, Some(256), 32, 0, false, false),
            (EncrId::ENCR_AES_CTR, Some(192), 24, 4, false, true),
            (EncrId::ENCR_AES_GCM_16, Some(128), 16, 4, true, true),
            (EncrId::ENCR_AES_GCM_8, Some(256), 32, 4, true, true),
            (EncrId::ENCR_AES_CCM_12, Some(192), 24, 3, true, true),
            (
                EncrId::ENCR_NULL_AUTH_AES_GMAC,
                Some(256),
                32,
                4,
                true,
                true,
            ),
            (EncrId::ENCR_CHACHA20_POLY1305, None, 32, 4, true, true),
            (EncrId::ENCR_NULL, None, 0, 0, false, false),
        ];
        for (id, bits, key, salt, aead, ctr) in cases {
            let e = encr(id, bits);
            assert_eq!((e.key_len(), e.salt_len()), (key, salt), "{id:?}");
            assert_eq!(e.keymat_len(), key + salt);
            assert_eq!(e.is_aead(), aead, "{id:?}");
            assert_eq!(e.is_counter_mode(), ctr, "{id:?}");
            assert_eq!(e.key_bits(), bits);
            assert_eq!(e.id(), id);
        }
        assert_eq!(encr(EncrId::ENCR_AES_GCM_12, Some(128)).icv_len(), 12);
        assert_eq!(encr(EncrId::ENCR_AES_CBC, Some(128)).iv_len(), 16);
        assert_eq!(encr(EncrId::ENCR_CHACHA20_POLY1305, None).iv_len(), 8);
    }

    #[test]
    fn encr_rejects_bad_ids_and_lengths() {
        for id in [
            EncrId::ENCR_AES_CCM_8_IIV,
            EncrId::ENCR_AES_GCM_16_IIV,
            EncrId::ENCR_CHACHA20_POLY1305_IIV,
        ] {
            let err = EncrAlg::new(id, Some(128)).unwrap_err();
            assert!(err.to_string().contains("§2.7"), "{err}");
            assert!(EncrAlg::new(id, None).is_err());
        }
        assert!(EncrAlg::new(EncrId::ENCR_AES_CBC, None).is_err());
        assert!(EncrAlg::new(EncrId::ENCR_AES_CBC, Some(64)).is_err());
        assert!(EncrAlg::new(EncrId::ENCR_CHACHA20_POLY1305, Some(256)).is_err());
        assert!(EncrAlg::new(EncrId::ENCR_3DES, None).is_err());
        assert!(EncrAlg::new(EncrId(9999), None).is_err());
    }

    #[test]
    fn integ_lengths() {
        let cases = [
            (IntegId::NONE, 0, 0, 0),
            (IntegId::AUTH_HMAC_SHA1_96, 20, 0, 12),
            (IntegId::AUTH_AES_XCBC_96, 16, 0, 12),
            (IntegId::AUTH_AES_128_GMAC, 16, 4, 16),
            (IntegId::AUTH_AES_192_GMAC, 24, 4, 16),
            (IntegId::AUTH_AES_256_GMAC, 32, 4, 16),
            (IntegId::AUTH_HMAC_SHA2_256_128, 32, 0, 16),
            (IntegId::AUTH_HMAC_SHA2_384_192, 48, 0, 24),
            (IntegId::AUTH_HMAC_SHA2_512_256, 64, 0, 32),
        ];
        for (id, key, salt, icv) in cases {
            let i = integ(id);
            assert_eq!(
                (i.key_len(), i.salt_len(), i.icv_len()),
                (key, salt, icv),
                "{id:?}"
            );
            assert_eq!(i.keymat_len(), key + salt);
        }
        assert!(IntegAlg::new(IntegId(1)).is_err());
        assert_eq!(IntegAlg::NONE, integ(IntegId::NONE));
    }

    #[test]
    fn rekey_split_cbc_hmac() {
        let e = encr(EncrId::ENCR_AES_CBC, Some(256));
        let i = integ(IntegId::AUTH_HMAC_SHA2_256_128);
        let len = rekey_keymat_len(e, i, KeyWrapAlg::Kw5649_256).unwrap();
        assert_eq!(len, 32 + 32 + 32);
        let km: Vec<u8> = (0..len as u8).collect();
        let keys =
            split_rekey_keymat(e, i, KeyWrapAlg::Kw5649_256, &Secret::new(km.clone())).unwrap();
        assert_eq!(keys.gsk_e.expose(), &km[..32]);
        assert_eq!(keys.gsk_a.expose(), &km[32..64]);
        assert_eq!(keys.gsk_w.expose(), &km[64..]);
    }

    #[test]
    fn rekey_split_aead_has_empty_gsk_a() {
        let e = encr(EncrId::ENCR_AES_GCM_16, Some(128));
        let len = rekey_keymat_len(e, IntegAlg::NONE, KeyWrapAlg::Arx).unwrap();
        assert_eq!(len, 16 + 4 + 32);
        let km: Vec<u8> = (0..len as u8).collect();
        let keys = split_rekey_keymat(e, IntegAlg::NONE, KeyWrapAlg::Arx, &Secret::new(km.clone()))
            .unwrap();
        assert_eq!(keys.gsk_e.expose(), &km[..20]);
        assert!(keys.gsk_a.is_empty());
        assert_eq!(keys.gsk_w.expose(), &km[20..]);
    }

    #[test]
    fn rekey_rejects_wrong_sizes_and_combinations() {
        let e = encr(EncrId::ENCR_AES_GCM_16, Some(256));
        let i = integ(IntegId::AUTH_HMAC_SHA2_256_128);
        assert!(matches!(
            rekey_keymat_len(e, i, KeyWrapAlg::Arx),
            Err(CryptoError::BadCombination(_))
        ));
        let cbc = encr(EncrId::ENCR_AES_CBC, Some(128));
        assert!(rekey_keymat_len(cbc, IntegAlg::NONE, KeyWrapAlg::Arx).is_err());
        assert!(rekey_keymat_len(encr(EncrId::ENCR_NULL, None), i, KeyWrapAlg::Arx).is_err());
        for delta in [-1i64, 1] {
            let len = (16 + 32 + 16) as i64 + delta;
            let km = Secret::new(vec![0; len as usize]);
            assert!(matches!(
                split_rekey_keymat(cbc, i, KeyWrapAlg::Kw5649_128, &km),
                Err(CryptoError::KeyLength { expected: 64, .. })
            ));
        }
    }

    #[test]
    fn data_split_esp_and_ah() {
        let e = encr(EncrId::ENCR_AES_CBC, Some(128));
        let i = integ(IntegId::AUTH_HMAC_SHA2_512_256);
        let km: Vec<u8> = (0..80).collect();
        let keys = split_data_keymat(Some(e), i, &Secret::new(km.clone())).unwrap();
        assert_eq!(keys.encr.expose(), &km[..16]);
        assert_eq!(keys.integ.expose(), &km[16..]);

        let gcm = encr(EncrId::ENCR_AES_GCM_16, Some(256));
        assert_eq!(data_keymat_len(Some(gcm), IntegAlg::NONE).unwrap(), 36);

        let gmac = integ(IntegId::AUTH_AES_192_GMAC);
        assert_eq!(data_keymat_len(None, gmac).unwrap(), 28);
        let keys = split_data_keymat(None, gmac, &Secret::new(vec![5; 28])).unwrap();
        assert!(keys.encr.is_empty());
        assert_eq!(keys.integ.len(), 28);

        assert!(data_keymat_len(None, IntegAlg::NONE).is_err());
        assert!(data_keymat_len(Some(gcm), i).is_err());
        assert!(data_keymat_len(Some(encr(EncrId::ENCR_NULL, None)), IntegAlg::NONE).is_err());
        assert_eq!(data_keymat_len(Some(e), IntegAlg::NONE).unwrap(), 16);
        assert!(split_data_keymat(Some(e), i, &Secret::new(vec![0; 79])).is_err());
    }
}
