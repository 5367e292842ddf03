//! GSA_REKEY authentication with digital signatures (RFC 9838 §2.4.1.1):
//! the AUTH payload carries the RFC 7427 §3 Authentication Data — the
//! AlgorithmIdentifier of the signature scheme, then the signature — and
//! the GM learns the GCKS's public key as a SubjectPublicKeyInfo whose
//! algorithm must match that identifier (RFC 9838 §4.5.3.2).
//!
//! The AlgorithmIdentifiers are the exact DER of RFC 7427 Appendix A (and
//! RFC 8420 for Ed25519); unknown encodings are refused rather than parsed.
//! An ECDSA identifier names only the hash, so each ECDSA variant here is
//! tied to the curve of matching strength (P-256/SHA-256 and so on).

use super::der::{self, TAG_BIT_STRING, TAG_SEQUENCE};
use super::{CryptoError, Result, Secret};
use core::fmt;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: u32 = 2048;

/// A signature scheme for GSA_REKEY messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// ecdsa-with-SHA256 on P-256.
    EcdsaP256Sha256,
    /// ecdsa-with-SHA384 on P-384.
    EcdsaP384Sha384,
    /// ecdsa-with-SHA512 on P-521.
    EcdsaP521Sha512,
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-octet salt.
    RsaPssSha256,
    /// RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-octet salt.
    RsaPssSha384,
    /// RSASSA-PSS, SHA-512, MGF1-SHA-512, 64-octet salt.
    RsaPssSha512,
    /// sha256WithRSAEncryption (PKCS #1 v1.5).
    RsaPkcs1Sha256,
    /// sha384WithRSAEncryption (PKCS #1 v1.5).
    RsaPkcs1Sha384,
    /// sha512WithRSAEncryption (PKCS #1 v1.5).
    RsaPkcs1Sha512,
    /// Ed25519, pure (RFC 8420).
    Ed25519,
}

// RFC 7427 A.3.2-A.3.4 (ecdsa-with-SHA256/384/512).
const ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ECDSA_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
const ECDSA_SHA512: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
];
// RFC 7427 A.1.2-A.1.4 (shaNNNWithRSAEncryption, NULL parameters).
const PKCS1_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
const PKCS1_SHA384: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
const PKCS1_SHA512: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];
/// id-RSASSA-PSS with RSASSA-PSS-params { hash, MGF1(hash), saltLength }
/// as in RFC 7427 A.4.3 (SHA-256); SHA-384/512 follow the same pattern.
macro_rules! pss_alg_id {
    ($h:expr, $salt:expr) => {
        &[
            0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30,
            0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
            0x02, $h, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
            0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
            0x04, 0x02, $h, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, $salt,
        ]
    };
}
const PSS_SHA256: &[u8] = pss_alg_id!(0x01, 0x20);
const PSS_SHA384: &[u8] = pss_alg_id!(0x02, 0x30);
const PSS_SHA512: &[u8] = pss_alg_id!(0x03, 0x40);
// RFC 8420 §2 (id-Ed25519, no parameters); also its SPKI algorithm.
const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

// SubjectPublicKeyInfo algorithms (RFC 5480, RFC 3279).
const SPKI_P256: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
const SPKI_P384: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x22,
];
const SPKI_P521: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x23,
];
const SPKI_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

impl SigAlg {
    /// Every supported scheme.
    pub const ALL: [SigAlg; 10] = [
        SigAlg::EcdsaP256Sha256,
        SigAlg::EcdsaP384Sha384,
        SigAlg::EcdsaP521Sha512,
        SigAlg::RsaPssSha256,
        SigAlg::RsaPssSha384,
        SigAlg::RsaPssSha512,
        SigAlg::RsaPkcs1Sha256,
        SigAlg::RsaPkcs1Sha384,
        SigAlg::RsaPkcs1Sha512,
        SigAlg::Ed25519,
    ];

    /// The DER AlgorithmIdentifier: the content of the Signature Algorithm
    /// Identifier attribute and of the AUTH payload.
    pub fn algorithm_identifier(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256Sha256 => ECDSA_SHA256,
            Self::EcdsaP384Sha384 => ECDSA_SHA384,
            Self::EcdsaP521Sha512 => ECDSA_SHA512,
            Self::RsaPssSha256 => PSS_SHA256,
            Self::RsaPssSha384 => PSS_SHA384,
            Self::RsaPssSha512 => PSS_SHA512,
            Self::RsaPkcs1Sha256 => PKCS1_SHA256,
            Self::RsaPkcs1Sha384 => PKCS1_SHA384,
            Self::RsaPkcs1Sha512 => PKCS1_SHA512,
            Self::Ed25519 => ED25519,
        }
    }

    /// The scheme whose AlgorithmIdentifier is exactly `der`.
    pub fn from_algorithm_identifier(der: &[u8]) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.algorithm_identifier() == der)
            .ok_or(CryptoError::BadAlgorithmIdentifier)
    }

    /// The algorithm a SubjectPublicKeyInfo for this scheme must carry.
    fn spki_algorithm(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256Sha256 => SPKI_P256,
            Self::EcdsaP384Sha384 => SPKI_P384,
            Self::EcdsaP521Sha512 => SPKI_P521,
            Self::RsaPkcs1Sha256 | Self::RsaPkcs1Sha384 | Self::RsaPkcs1Sha512 => SPKI_RSA,
            // RFC 9838 §4.5.3.2: id-RSASSA-PSS with the full parameters.
            Self::RsaPssSha256 | Self::RsaPssSha384 | Self::RsaPssSha512 => {
                self.algorithm_identifier()
            }
            Self::Ed25519 => ED25519,
        }
    }

    fn digest(self) -> Option<MessageDigest> {
        match self {
            Self::EcdsaP256Sha256 | Self::RsaPssSha256 | Self::RsaPkcs1Sha256 => {
                Some(MessageDigest::sha256())
            }
            Self::EcdsaP384Sha384 | Self::RsaPssSha384 | Self::RsaPkcs1Sha384 => {
                Some(MessageDigest::sha384())
            }
            Self::EcdsaP521Sha512 | Self::RsaPssSha512 | Self::RsaPkcs1Sha512 => {
                Some(MessageDigest::sha512())
            }
            Self::Ed25519 => None,
        }
    }

    fn curve(self) -> Option<Nid> {
        match self {
            Self::EcdsaP256Sha256 => Some(Nid::X9_62_PRIME256V1),
            Self::EcdsaP384Sha384 => Some(Nid::SECP384R1),
            Self::EcdsaP521Sha512 => Some(Nid::SECP521R1),
            _ => None,
        }
    }

    fn is_pss(self) -> bool {
        matches!(
            self,
            Self::RsaPssSha256 | Self::RsaPssSha384 | Self::RsaPssSha512
        )
    }

    fn is_rsa(self) -> bool {
        self.is_pss()
            || matches!(
                self,
                Self::RsaPkcs1Sha256 | Self::RsaPkcs1Sha384 | Self::RsaPkcs1Sha512
            )
    }

    /// Whether `key` is of the kind (and size) this scheme needs.
    fn accepts<T: HasPublic>(self, key: &PKeyRef<T>) -> Result<()> {
        let wrong = CryptoError::BadAlgorithmIdentifier;
        if let Some(curve) = self.curve() {
            if key.id() != Id::EC || key.ec_key()?.group().curve_name() != Some(curve) {
                return Err(wrong);
            }
        } else if self.is_rsa() {
            let id_ok = key.id() == Id::RSA || (self.is_pss() && key.id() == Id::RSA_PSS);
            if !id_ok {
                return Err(wrong);
            }
            if key.bits() < MIN_RSA_BITS {
                return Err(CryptoError::Unsupported("RSA keys shorter than 2048 bits"));
            }
        } else if key.id() != Id::ED25519 {
            return Err(wrong);
        }
        Ok(())
    }
}

/// The scheme a key is used with unless told otherwise.
fn default_alg(key: &PKey<Private>) -> Result<SigAlg> {
    match key.id() {
        Id::EC => match key.ec_key()?.group().curve_name() {
            Some(Nid::X9_62_PRIME256V1) => Ok(SigAlg::EcdsaP256Sha256),
            Some(Nid::SECP384R1) => Ok(SigAlg::EcdsaP384Sha384),
            Some(Nid::SECP521R1) => Ok(SigAlg::EcdsaP521Sha512),
            _ => Err(CryptoError::Unsupported("this elliptic curve")),
        },
        Id::RSA | Id::RSA_PSS => Ok(SigAlg::RsaPssSha256),
        Id::ED25519 => Ok(SigAlg::Ed25519),
        _ => Err(CryptoError::Unsupported("this kind of private key")),
    }
}

/// Configures a signer or verifier context for `alg` (padding for RSA).
macro_rules! configure {
    ($ctx:expr, $alg:expr) => {{
        if $alg.is_pss() {
            let md = $alg.digest().unwrap_or_else(MessageDigest::sha256);
            $ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
            $ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
            $ctx.set_rsa_mgf1_md(md)?;
        } else if $alg.is_rsa() {
            $ctx.set_rsa_padding(Padding::PKCS1)?;
        }
    }};
}

/// The GCKS's private key for signing GSA_REKEY messages.
#[derive(Clone)]
pub struct SigningKey {
    alg: SigAlg,
    key: PKey<Private>,
    spki: Vec<u8>,
}

impl SigningKey {
    /// A fresh key for `alg` from OpenSSL's generator (RSA: 2048 bits for
    /// the SHA-256 schemes, 3072 otherwise).
    pub fn generate(alg: SigAlg) -> Result<Self> {
        let key = if let Some(curve) = alg.curve() {
            let group = EcGroup::from_curve_name(curve)?;
            PKey::from_ec_key(EcKey::generate(&group)?)?
        } else if alg.is_rsa() {
            let bits = match alg {
                SigAlg::RsaPssSha256 | SigAlg::RsaPkcs1Sha256 => 2048,
                _ => 3072,
            };
            PKey::from_rsa(Rsa::generate(bits)?)?
        } else {
            PKey::generate_ed25519()?
        };
        Self::from_pkey(alg, key)
    }

    /// Loads a DER private key (PKCS #8, or the traditional RSA/EC forms).
    /// The scheme follows from the key: ECDSA with the hash of its curve's
    /// strength, Ed25519, or RSASSA-PSS with SHA-256 for RSA keys (pick
    /// another RSA scheme with [`with_alg`](Self::with_alg)).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let key = PKey::private_key_from_der(der)
            .map_err(|_| CryptoError::Malformed("not a DER private key"))?;
        Self::from_pkey(default_alg(&key)?, key)
    }

    /// Loads a PEM private key; the scheme is chosen as by
    /// [`from_der`](Self::from_der).
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let key = PKey::private_key_from_pem(pem)
            .map_err(|_| CryptoError::Malformed("not a PEM private key"))?;
        Self::from_pkey(default_alg(&key)?, key)
    }

    /// The same key used with another scheme it suits (for RSA keys: PSS
    /// or PKCS #1 v1.5, and the hash).
    pub fn with_alg(self, alg: SigAlg) -> Result<Self> {
        Self::from_pkey(alg, self.key)
    }

    fn from_pkey(alg: SigAlg, key: PKey<Private>) -> Result<Self> {
        alg.accepts(&key)?;
        let spki = if alg.is_pss() {
            let rsa_public = key.rsa()?.public_key_to_der_pkcs1()?;
            let mut bits = Vec::with_capacity(rsa_public.len() + 1);
            bits.push(0); // no unused bits
            bits.extend_from_slice(&rsa_public);
            let mut content = alg.algorithm_identifier().to_vec();
            der::write_tlv(&mut content, TAG_BIT_STRING, &bits);
            let mut spki = Vec::with_capacity(content.len() + 4);
            der::write_tlv(&mut spki, TAG_SEQUENCE, &content);
            spki
        } else {
            key.public_key_to_der()?
        };
        // What a GM will be given must read back as this scheme's key (an
        // EC key with explicit curve parameters would not, for instance).
        VerifyingKey::from_spki_der(&spki, alg)?;
        Ok(Self { alg, key, spki })
    }

    /// The private key as PKCS #8 DER, for storage.
    pub fn to_pkcs8_der(&self) -> Result<Secret> {
        Ok(Secret::new(self.key.private_key_to_pkcs8()?))
    }

    /// The signature scheme.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }

    /// The length of this key's signatures: the modulus length for RSA, 64
    /// for Ed25519, and for ECDSA the longest DER Ecdsa-Sig-Value (72, 104
    /// or 139 octets), which about one signature in four has; shorter ones
    /// occur too.
    pub fn signature_len(&self) -> usize {
        match self.alg {
            SigAlg::EcdsaP256Sha256 => 72,
            SigAlg::EcdsaP384Sha384 => 104,
            SigAlg::EcdsaP521Sha512 => 139,
            SigAlg::Ed25519 => 64,
            _ => self.key.size(),
        }
    }

    /// Signs `data`: DER Ecdsa-Sig-Value for ECDSA (RFC 7427 §3), the
    /// modulus-sized octet string for RSA, 64 octets for Ed25519.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        match self.alg.digest() {
            Some(md) => {
                let mut signer = Signer::new(md, &self.key)?;
                configure!(signer, self.alg);
                signer.update(data)?;
                Ok(signer.sign_to_vec()?)
            }
            None => Ok(Signer::new_without_digest(&self.key)?.sign_oneshot_to_vec(data)?),
        }
    }

    /// The public key as DER SubjectPublicKeyInfo, for the AUTH_KEY
    /// attribute. For RSASSA-PSS its algorithm is id-RSASSA-PSS with the
    /// same parameters as the signature (RFC 9838 §4.5.3.2).
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_spki_der(&self.spki, self.alg)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The GCKS's public key, as a GM holds it.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: SigAlg,
    key: PKey<Public>,
    spki: Vec<u8>,
}

impl VerifyingKey {
    /// Parses a DER SubjectPublicKeyInfo (the AUTH_KEY attribute) and checks
    /// that its algorithm matches `alg`, the negotiated Signature Algorithm
    /// Identifier (RFC 9838 §4.5.3.2).
    pub fn from_spki_der(der: &[u8], alg: SigAlg) -> Result<Self> {
        let outer = der::read_only(der, TAG_SEQUENCE)?;
        let (algorithm, rest) = der::read_tlv(outer.content)?;
        let bits = der::read_only(rest, TAG_BIT_STRING)?;
        if algorithm.tag != TAG_SEQUENCE {
            return Err(CryptoError::Malformed("SubjectPublicKeyInfo algorithm"));
        }
        let key_bytes = match bits.content.split_first() {
            Some((0, key)) if !key.is_empty() => key,
            _ => return Err(CryptoError::Malformed("SubjectPublicKeyInfo key bits")),
        };
        if algorithm.whole != alg.spki_algorithm() {
            return Err(CryptoError::BadAlgorithmIdentifier);
        }
        let bad_key = |_| CryptoError::Malformed("public key");
        let key = if alg.is_pss() {
            let rsa = Rsa::public_key_from_der_pkcs1(key_bytes).map_err(bad_key)?;
            if rsa.public_key_to_der_pkcs1()? != key_bytes {
                return Err(CryptoError::Malformed("RSAPublicKey is not DER"));
            }
            PKey::from_rsa(rsa)?
        } else if alg == SigAlg::Ed25519 {
            PKey::public_key_from_raw_bytes(key_bytes, Id::ED25519).map_err(bad_key)?
        } else {
            PKey::public_key_from_der(der).map_err(bad_key)?
        };
        alg.accepts(&key)?;
        Ok(Self {
            alg,
            key,
            spki: der.to_vec(),
        })
    }

    /// The signature scheme.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }

    /// The SubjectPublicKeyInfo this key was read from.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Checks `sig` over `data`; any failure is [`CryptoError::BadSignature`].
    pub fn verify(&self, data: &[u8], sig: &[u8]) -> Result<()> {
        let ok = match self.alg.digest() {
            Some(md) => (|| -> core::result::Result<bool, openssl::error::ErrorStack> {
                let mut verifier = Verifier::new(md, &self.key)?;
                configure!(verifier, self.alg);
                verifier.update(data)?;
                verifier.verify(sig)
            })(),
            None => Verifier::new_without_digest(&self.key)
                .and_then(|mut v| v.verify_oneshot(sig, data)),
        };
        match ok {
            Ok(true) => Ok(()),
            _ => Err(CryptoError::BadSignature),
        }
    }
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.alg == other.alg && self.spki == other.spki
    }
}

impl Eq for VerifyingKey {}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// RFC 7427 §3 Authentication Data: ASN.1 Length (one octet) |
/// AlgorithmIdentifier | Signature Value.
pub fn auth_data(alg: SigAlg, sig: &[u8]) -> Vec<u8> {
    let id = alg.algorithm_identifier();
    let mut out = Vec::with_capacity(1 + id.len() + sig.len());
    out.push(id.len() as u8); // every identifier above is shorter than 256 octets
    out.extend_from_slice(id);
    out.extend_from_slice(sig);
    out
}

/// Splits RFC 7427 §3 Authentication Data into the scheme and the
/// signature. The identifier must be one we know, byte for byte, and a
/// signature must follow it.
pub fn parse_auth_data(data: &[u8]) -> Result<(SigAlg, &[u8])> {
    let (&len, rest) = data
        .split_first()
        .ok_or(CryptoError::Malformed("empty Authentication Data"))?;
    let len = usize::from(len);
    if rest.len() <= len {
        return Err(CryptoError::Malformed(
            "Authentication Data has no room for its signature",
        ));
    }
    let (id, sig) = rest.split_at(len);
    Ok((SigAlg::from_algorithm_identifier(id)?, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_well_formed_der() {
        for alg in SigAlg::ALL {
            let id = alg.algorithm_identifier();
            let tlv = der::read_only(id, TAG_SEQUENCE).unwrap();
            assert_eq!(tlv.whole.len(), id.len());
            assert_eq!(SigAlg::from_algorithm_identifier(id).unwrap(), alg);
            der::read_only(alg.spki_algorithm(), TAG_SEQUENCE).unwrap();
        }
        assert_eq!(
            SigAlg::from_algorithm_identifier(&[0x30, 0x00]),
            Err(CryptoError::BadAlgorithmIdentifier)
        );
    }

    #[test]
    fn auth_data_round_trip_and_strictness() {
        let data = auth_data(SigAlg::Ed25519, &[9; 64]);
        assert_eq!(data[0], 7);
        let (alg, sig) = parse_auth_data(&data).unwrap();
        assert_eq!((alg, sig), (SigAlg::Ed25519, &[9u8; 64][..]));
        assert!(parse_auth_data(&[]).is_err());
        assert!(parse_auth_data(&data[..8]).is_err()); // no signature
        assert!(parse_auth_data(&[200, 1, 2]).is_err()); // length past the end
        let mut bad = data.clone();
        bad[0] = 6; // identifier cut short
        assert_eq!(
            parse_auth_data(&bad),
            Err(CryptoError::BadAlgorithmIdentifier)
        );
    }

    #[test]
    fn pss_spki_carries_the_signature_parameters() {
        let key = SigningKey::generate(SigAlg::RsaPssSha256).unwrap();
        let spki = key.public_key_der();
        let outer = der::read_only(spki, TAG_SEQUENCE).unwrap();
        let (algorithm, _) = der::read_tlv(outer.content).unwrap();
        assert_eq!(algorithm.whole, SigAlg::RsaPssSha256.algorithm_identifier());
        // A PKCS #1 v1.5 scheme must not accept this key, nor a PSS scheme
        // with another hash.
        assert!(VerifyingKey::from_spki_der(spki, SigAlg::RsaPkcs1Sha256).is_err());
        assert!(VerifyingKey::from_spki_der(spki, SigAlg::RsaPssSha384).is_err());
        // OpenSSL itself reads our SubjectPublicKeyInfo as an RSA-PSS key.
        let parsed = PKey::public_key_from_der(spki).unwrap();
        assert_eq!(parsed.id(), Id::RSA_PSS);
    }

    #[test]
    fn spki_algorithm_must_match() {
        let ec = SigningKey::generate(SigAlg::EcdsaP256Sha256).unwrap();
        let ed = SigningKey::generate(SigAlg::Ed25519).unwrap();
        assert!(VerifyingKey::from_spki_der(ec.public_key_der(), SigAlg::EcdsaP384Sha384).is_err());
        assert!(VerifyingKey::from_spki_der(ec.public_key_der(), SigAlg::Ed25519).is_err());
        assert!(VerifyingKey::from_spki_der(ed.public_key_der(), SigAlg::EcdsaP256Sha256).is_err());
        let mut trailing = ed.public_key_der().to_vec();
        trailing.push(0);
        assert!(VerifyingKey::from_spki_der(&trailing, SigAlg::Ed25519).is_err());
        assert!(VerifyingKey::from_spki_der(&[], SigAlg::Ed25519).is_err());
    }

    #[test]
    fn keys_load_with_the_scheme_they_suit() {
        let ec = SigningKey::generate(SigAlg::EcdsaP384Sha384).unwrap();
        let der = ec.to_pkcs8_der().unwrap();
        let again = SigningKey::from_der(der.expose()).unwrap();
        assert_eq!(again.alg(), SigAlg::EcdsaP384Sha384);
        assert_eq!(again.public_key_der(), ec.public_key_der());
        assert!(again.clone().with_alg(SigAlg::EcdsaP256Sha256).is_err());
        assert!(again.with_alg(SigAlg::RsaPssSha256).is_err());
        assert!(SigningKey::from_der(b"junk").is_err());
        let pem = ec.key.private_key_to_pem_pkcs8().unwrap();
        assert_eq!(
            SigningKey::from_pem(&pem).unwrap().alg(),
            SigAlg::EcdsaP384Sha384
        );

        let rsa = SigningKey::generate(SigAlg::RsaPkcs1Sha256).unwrap();
        let rsa = SigningKey::from_der(rsa.to_pkcs8_der().unwrap().expose()).unwrap();
        assert_eq!(rsa.alg(), SigAlg::RsaPssSha256);
        let rsa = rsa.with_alg(SigAlg::RsaPkcs1Sha512).unwrap();
        assert_eq!(rsa.alg(), SigAlg::RsaPkcs1Sha512);
        assert_eq!(rsa.signature_len(), 256);
        let sig = rsa.sign(b"x").unwrap();
        rsa.verifying_key().unwrap().verify(b"x", &sig).unwrap();

        let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        let small = small.private_key_to_pkcs8().unwrap();
        assert!(matches!(
            SigningKey::from_der(&small),
            Err(CryptoError::Unsupported(_))
        ));
        let brainpool = EcGroup::from_curve_name(Nid::BRAINPOOL_P256R1).unwrap();
        let bp = PKey::from_ec_key(EcKey::generate(&brainpool).unwrap()).unwrap();
        assert!(SigningKey::from_der(&bp.private_key_to_pkcs8().unwrap()).is_err());
    }

    #[test]
    fn signature_len_bounds_every_signature() {
        for alg in [
            SigAlg::EcdsaP256Sha256,
            SigAlg::EcdsaP384Sha384,
            SigAlg::EcdsaP521Sha512,
            SigAlg::Ed25519,
        ] {
            let key = SigningKey::generate(alg).unwrap();
            let lens: Vec<usize> = (0..40u8).map(|i| key.sign(&[i]).unwrap().len()).collect();
            assert!(
                lens.iter().all(|&l| l <= key.signature_len()),
                "{alg:?} {lens:?}"
            );
            assert!(lens.contains(&key.signature_len()), "{alg:?} {lens:?}");
        }
    }

    #[test]
    fn debug_hides_key_material() {
        let key = SigningKey::generate(SigAlg::Ed25519).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey { alg: Ed25519, .. }");
        let vk = key.verifying_key().unwrap();
        assert_eq!(format!("{vk:?}"), "VerifyingKey { alg: Ed25519, .. }");
    }
}
