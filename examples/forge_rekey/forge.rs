//! Forged GSA_REKEY messages for hostile-input tests: encrypted and
//! integrity-protected with a Rekey SA's real keys (as an insider who holds
//! the KEK, or anyone with a GM's Wireshark key table, could), but signed
//! with a key that is not the GCKS's, or tampered with on the way.
//!
//! Shared by `examples/forge_rekey.rs` (which sends them) and
//! `tests/forge_rekey.rs` (which shows GMs refuse them).

#![allow(dead_code)]

use gikev2::crypto::{
    EncrAlg, IntegAlg, KeyWrapAlg, Rng, Secret, SigAlg, SigningKey, SkProtection, data_keymat_len,
};
use gikev2::iana::{EncrId, IntegId, SnId};
use gikev2::rekey_message::{self, RekeySigner};
use gikev2::wire::{
    GroupKeyBag, GroupPolicy, Gsa, GsaAttr, GsaPolicy, GwPolicy, Kd, KeyBag, Payload, RekeySpi,
    SaRef, TrafficSelector, Transform, WrappedKey,
};

/// Wireshark's names of IKEv2 encryption algorithms (as strongSwan's
/// save-keys plugin and the gikev2 plugin's wireshark_keys write them).
const WIRESHARK_ENCR: &[(&str, EncrId, u16)] = &[
    ("AES-CBC-128 [RFC3602]", EncrId::ENCR_AES_CBC, 128),
    ("AES-CBC-192 [RFC3602]", EncrId::ENCR_AES_CBC, 192),
    ("AES-CBC-256 [RFC3602]", EncrId::ENCR_AES_CBC, 256),
    ("AES-CTR-128 [RFC5930]", EncrId::ENCR_AES_CTR, 128),
    ("AES-CTR-192 [RFC5930]", EncrId::ENCR_AES_CTR, 192),
    ("AES-CTR-256 [RFC5930]", EncrId::ENCR_AES_CTR, 256),
    (
        "AES-GCM-128 with 8 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_8,
        128,
    ),
    (
        "AES-GCM-192 with 8 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_8,
        192,
    ),
    (
        "AES-GCM-256 with 8 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_8,
        256,
    ),
    (
        "AES-GCM-128 with 12 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_12,
        128,
    ),
    (
        "AES-GCM-192 with 12 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_12,
        192,
    ),
    (
        "AES-GCM-256 with 12 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_12,
        256,
    ),
    (
        "AES-GCM-128 with 16 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_16,
        128,
    ),
    (
        "AES-GCM-192 with 16 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_16,
        192,
    ),
    (
        "AES-GCM-256 with 16 octet ICV [RFC5282]",
        EncrId::ENCR_AES_GCM_16,
        256,
    ),
    (
        "AES-CCM-128 with 8 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_8,
        128,
    ),
    (
        "AES-CCM-192 with 8 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_8,
        192,
    ),
    (
        "AES-CCM-256 with 8 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_8,
        256,
    ),
    (
        "AES-CCM-128 with 12 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_12,
        128,
    ),
    (
        "AES-CCM-192 with 12 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_12,
        192,
    ),
    (
        "AES-CCM-256 with 12 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_12,
        256,
    ),
    (
        "AES-CCM-128 with 16 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_16,
        128,
    ),
    (
        "AES-CCM-192 with 16 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_16,
        192,
    ),
    (
        "AES-CCM-256 with 16 octet ICV [RFC5282]",
        EncrId::ENCR_AES_CCM_16,
        256,
    ),
];

/// Wireshark's names of IKEv2 integrity algorithms.
const WIRESHARK_INTEG: &[(&str, IntegId)] = &[
    ("HMAC_SHA1_96 [RFC2404]", IntegId::AUTH_HMAC_SHA1_96),
    (
        "HMAC_SHA2_256_128 [RFC4868]",
        IntegId::AUTH_HMAC_SHA2_256_128,
    ),
    (
        "HMAC_SHA2_384_192 [RFC4868]",
        IntegId::AUTH_HMAC_SHA2_384_192,
    ),
    (
        "HMAC_SHA2_512_256 [RFC4868]",
        IntegId::AUTH_HMAC_SHA2_512_256,
    ),
    ("NONE [RFC4306]", IntegId::NONE),
];

/// The algorithms of a key table line by their Wireshark names, as
/// strongSwan's save-keys plugin writes them for IKE SAs too.
pub fn wireshark_algs(encr_name: &str, integ_name: &str) -> Result<(EncrAlg, IntegAlg), String> {
    let (_, id, bits) = WIRESHARK_ENCR
        .iter()
        .find(|(n, ..)| *n == encr_name)
        .ok_or_else(|| format!("unknown encryption algorithm '{encr_name}'"))?;
    let (_, integ) = WIRESHARK_INTEG
        .iter()
        .find(|(n, _)| *n == integ_name)
        .ok_or_else(|| format!("unknown integrity algorithm '{integ_name}'"))?;
    let encr = EncrAlg::new(*id, Some(*bits)).map_err(|e| e.to_string())?;
    let integ = IntegAlg::new(*integ).map_err(|e| e.to_string())?;
    Ok((encr, integ))
}

/// A Rekey SA as one line of Wireshark's `ikev2_decryption_table`:
/// `SPIi,SPIr,SK_ei,SK_er,"encr",SK_ai,SK_ar,"integ"` (hex, the SPIs the
/// two halves of the 16-octet Rekey SA SPI).
pub struct KeyLine {
    pub spi: RekeySpi,
    pub encr: EncrAlg,
    pub integ: IntegAlg,
    /// GSK_e with its salt (AEAD ciphers).
    pub sk_e: Secret,
    /// GSK_a; empty with AEAD ciphers.
    pub sk_a: Secret,
}

pub fn unhex(what: &str, s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim().trim_start_matches("0x");
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{what}: not an even number of hex digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("{what}: {e}")))
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl KeyLine {
    /// Reads one line of an `ikev2_decryption_table`.
    pub fn parse(line: &str) -> Result<Self, String> {
        let f: Vec<&str> = line.trim().split(',').map(str::trim).collect();
        if f.len() != 8 {
            return Err(format!("{} fields, expected 8", f.len()));
        }
        let spi_i = unhex("SPIi", f[0])?;
        let spi_r = unhex("SPIr", f[1])?;
        let (Ok(spi_i), Ok(spi_r)) = (<[u8; 8]>::try_from(spi_i), <[u8; 8]>::try_from(spi_r))
        else {
            return Err("SPIs must be 8 octets each".into());
        };
        let name = |s: &str| s.trim_matches('"').to_owned();
        let (encr_name, integ_name) = (name(f[4]), name(f[7]));
        let (_, id, bits) = WIRESHARK_ENCR
            .iter()
            .find(|(n, ..)| *n == encr_name)
            .ok_or_else(|| format!("unknown encryption algorithm '{encr_name}'"))?;
        let (_, integ) = WIRESHARK_INTEG
            .iter()
            .find(|(n, _)| *n == integ_name)
            .ok_or_else(|| format!("unknown integrity algorithm '{integ_name}'"))?;
        let encr = EncrAlg::new(*id, Some(*bits)).map_err(|e| e.to_string())?;
        let integ = IntegAlg::new(*integ).map_err(|e| e.to_string())?;
        let sk_e = Secret::new(unhex("SK_ei", f[2])?);
        let sk_a = Secret::new(unhex("SK_ai", f[5])?);
        if unhex("SK_er", f[3])? != sk_e.expose() || unhex("SK_ar", f[6])? != sk_a.expose() {
            return Err(
                "a Rekey SA has one key per direction: SK_ei = SK_er, SK_ai = SK_ar".into(),
            );
        }
        if sk_e.len() != encr.keymat_len() || sk_a.len() != integ.keymat_len() {
            return Err(format!(
                "key lengths {}/{} do not fit the algorithms ({}/{})",
                sk_e.len(),
                sk_a.len(),
                encr.keymat_len(),
                integ.keymat_len()
            ));
        }
        Ok(Self {
            spi: RekeySpi::from_halves(spi_i, spi_r),
            encr,
            integ,
            sk_e,
            sk_a,
        })
    }

    /// The line as the gikev2 plugin writes it (without the newline).
    pub fn to_line(&self) -> Result<String, String> {
        let (encr_name, ..) = WIRESHARK_ENCR
            .iter()
            .find(|(_, id, bits)| *id == self.encr.id() && Some(*bits) == self.encr.key_bits())
            .ok_or("no Wireshark name for the cipher")?;
        let (integ_name, _) = WIRESHARK_INTEG
            .iter()
            .find(|(_, id)| *id == self.integ.id())
            .ok_or("no Wireshark name for the integrity algorithm")?;
        let (e, a) = (hex(self.sk_e.expose()), hex(self.sk_a.expose()));
        Ok(format!(
            "{},{},{e},{e},\"{encr_name}\",{a},{a},\"{integ_name}\"",
            hex(&self.spi.spi_i()),
            hex(&self.spi.spi_r())
        ))
    }

    /// The SK payload protection of the Rekey SA.
    pub fn sk(&self) -> Result<SkProtection, String> {
        SkProtection::new(self.encr, self.integ, &self.sk_e, &self.sk_a).map_err(|e| e.to_string())
    }
}

/// How the forged message is authenticated.
pub enum Signature<'a> {
    /// A freshly generated key of the group's algorithm: the forgery.
    Fresh(SigAlg),
    /// A given key (the GCKS's own, for a control that must be accepted).
    Key(&'a SigningKey),
    /// No AUTH payload, as under implicit GCAUTH.
    Implicit,
}

/// Damage done to the sealed datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    None,
    /// Keep only the first N octets.
    Truncate(usize),
    /// Flip bit N (bit 0 is the most significant bit of octet 0).
    FlipBit(usize),
}

/// What to forge.
pub struct Forgery<'a> {
    /// The Rekey SA SPI in the IKE header (a wrong one to test lookups).
    pub spi: RekeySpi,
    pub message_id: u32,
    /// The new TEK: ESP SPI, selectors, cipher, integrity, lifetime.
    pub tek_spi: u32,
    pub tek_src: TrafficSelector,
    pub tek_dst: TrafficSelector,
    pub tek_encr: (EncrId, Option<u16>),
    pub tek_integ: IntegId,
    pub lifetime_secs: u32,
    /// The Rekey SA's GSK_w and KWA to wrap the TEK's keys under; `None`
    /// (a forger without GSK_w): random octets of the wrapped length.
    pub kwk: Option<(&'a Secret, KeyWrapAlg)>,
    pub auth: Signature<'a>,
    pub tamper: Tamper,
}

/// A forged datagram and what it claims.
pub struct Forged {
    pub datagram: Vec<u8>,
    pub payloads: Vec<Payload>,
    /// The algorithm and public key (SubjectPublicKeyInfo) it was signed
    /// with, if signed.
    pub signer: Option<(SigAlg, Vec<u8>)>,
}

/// The inner payloads: GSA with the new TEK's policy and group-wide ATD/DTD,
/// KD with its keying material.
pub fn payloads(f: &Forgery<'_>, rng: &mut dyn Rng) -> Result<Vec<Payload>, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let encr = EncrAlg::new(f.tek_encr.0, f.tek_encr.1).map_err(|e| err(&e))?;
    let integ = IntegAlg::new(f.tek_integ).map_err(|e| err(&e))?;
    let mut keymat = vec![0; data_keymat_len(Some(encr), integ).map_err(|e| err(&e))?];
    rng.fill(&mut keymat).map_err(|e| err(&e))?;
    let keymat = Secret::new(keymat);
    let encrypted = match f.kwk {
        Some((kwk, kwa)) => kwa
            .wrap(kwk.expose(), keymat.expose())
            .map_err(|e| err(&e))?,
        None => {
            let mut v = vec![0; KeyWrapAlg::Kw5649_256.wrapped_len(keymat.len())];
            rng.fill(&mut v).map_err(|e| err(&e))?;
            v
        }
    };
    let mut next = [0; 4];
    rng.fill(&mut next).map_err(|e| err(&e))?;
    let sa = SaRef::Esp(f.tek_spi);
    let mut transforms = vec![Transform::encr(f.tek_encr.0, f.tek_encr.1)];
    if f.tek_integ != IntegId::NONE {
        transforms.push(Transform::integ(f.tek_integ));
    }
    transforms.push(Transform::sn(SnId::SEQ32));
    Ok(vec![
        Payload::Gsa(Gsa {
            policies: vec![
                GroupPolicy::Sa(GsaPolicy {
                    sa,
                    src: f.tek_src,
                    dst: f.tek_dst,
                    transforms,
                    attrs: vec![
                        GsaAttr::KeyLifetime(f.lifetime_secs),
                        GsaAttr::NextSpi(next.to_vec()),
                    ],
                }),
                GroupPolicy::GroupWide(GwPolicy {
                    atd: Some(2),
                    dtd: Some(5),
                    sender_id_bits: None,
                    other: Vec::new(),
                }),
            ],
        }),
        Payload::Kd(Kd {
            bags: vec![KeyBag::Group(GroupKeyBag {
                sa,
                sa_keys: vec![WrappedKey {
                    key_id: 0,
                    kwk_id: 0,
                    encrypted,
                }],
                other: Vec::new(),
            })],
        }),
    ])
}

/// Seals the forgery with the Rekey SA's protection `sk`, then tampers.
pub fn forge(f: &Forgery<'_>, sk: &SkProtection, rng: &mut dyn Rng) -> Result<Forged, String> {
    let payloads = payloads(f, rng)?;
    let fresh;
    let (signer, key) = match &f.auth {
        Signature::Fresh(alg) => {
            fresh = SigningKey::generate(*alg).map_err(|e| e.to_string())?;
            (RekeySigner::DigitalSignature(&fresh), Some(&fresh))
        }
        Signature::Key(k) => (RekeySigner::DigitalSignature(k), Some(*k)),
        Signature::Implicit => (RekeySigner::Implicit, None),
    };
    let mut datagram = rekey_message::seal(f.spi, f.message_id, &payloads, signer, sk, rng)
        .map_err(|e| e.to_string())?;
    match f.tamper {
        Tamper::None => {}
        Tamper::Truncate(n) => datagram.truncate(n),
        Tamper::FlipBit(bit) => {
            let octet = datagram
                .get_mut(bit / 8)
                .ok_or_else(|| format!("bit {bit} is past the message's end"))?;
            *octet ^= 0x80 >> (bit % 8);
        }
    }
    Ok(Forged {
        datagram,
        payloads,
        signer: key.map(|k| (k.alg(), k.public_key_der().to_vec())),
    })
}

/// A signature algorithm by a short name: ecdsa-256, ecdsa-384, ecdsa-521,
/// ed25519, rsa-pss-256/384/512, rsa-256/384/512 (PKCS #1 v1.5).
pub fn sig_alg(name: &str) -> Result<SigAlg, String> {
    Ok(match name {
        "ecdsa-256" | "ecdsa" => SigAlg::EcdsaP256Sha256,
        "ecdsa-384" => SigAlg::EcdsaP384Sha384,
        "ecdsa-521" => SigAlg::EcdsaP521Sha512,
        "ed25519" => SigAlg::Ed25519,
        "rsa-pss-256" => SigAlg::RsaPssSha256,
        "rsa-pss-384" => SigAlg::RsaPssSha384,
        "rsa-pss-512" => SigAlg::RsaPssSha512,
        "rsa-256" => SigAlg::RsaPkcs1Sha256,
        "rsa-384" => SigAlg::RsaPkcs1Sha384,
        "rsa-512" => SigAlg::RsaPkcs1Sha512,
        _ => return Err(format!("unknown signature algorithm '{name}'")),
    })
}

/// A TEK proposal by strongSwan keyword: aes{128,192,256}gcm16 or
/// aes{128,192,256}-sha{256,384,512}.
pub fn tek_proposal(p: &str) -> Result<((EncrId, Option<u16>), IntegId), String> {
    let bits = |s: &str| -> Result<u16, String> {
        match s {
            "128" | "192" | "256" => Ok(s.parse().expect("digits")),
            _ => Err(format!("bad AES key size in '{p}'")),
        }
    };
    if let Some(b) = p.strip_prefix("aes").and_then(|r| r.strip_suffix("gcm16")) {
        return Ok(((EncrId::ENCR_AES_GCM_16, Some(bits(b)?)), IntegId::NONE));
    }
    let (e, i) = p
        .split_once('-')
        .ok_or_else(|| format!("unknown TEK proposal '{p}'"))?;
    let b = e
        .strip_prefix("aes")
        .ok_or_else(|| format!("unknown TEK cipher '{e}'"))?;
    let integ = match i {
        "sha256" => IntegId::AUTH_HMAC_SHA2_256_128,
        "sha384" => IntegId::AUTH_HMAC_SHA2_384_192,
        "sha512" => IntegId::AUTH_HMAC_SHA2_512_256,
        _ => return Err(format!("unknown TEK integrity '{i}'")),
    };
    Ok(((EncrId::ENCR_AES_CBC, Some(bits(b)?)), integ))
}
