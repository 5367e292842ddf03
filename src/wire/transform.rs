//! Transform substructures (RFC 7296 §3.3.2) with the attributes RFC 9838
//! adds, shared by SAg proposals and GSA policies.

use super::DecodeError;
use super::attr::{RawAttr, once};
use super::codec::{Codec, Reader, len16_placeholder, patch_len16};
use crate::iana::{
    EncrId, GcauthId, IntegId, KwaId, LAST_SUBSTRUC_LAST, LAST_SUBSTRUC_MORE_TRANSFORMS, SnId,
    TransformAttrType, TransformType,
};

/// A transform attribute, typed where the registry says what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TransformAttr {
    /// Key Length in bits (TV).
    KeyLength(u16),
    /// DER AlgorithmIdentifier of the GCKS's signature (TLV, §4.4.2.1.1).
    SignatureAlgorithmId(Vec<u8>),
    /// An attribute this implementation does not interpret.
    Other(RawAttr),
}

impl TransformAttr {
    fn to_raw(&self) -> RawAttr {
        match self {
            Self::KeyLength(v) => RawAttr::tv(TransformAttrType::KEY_LENGTH.0, *v),
            Self::SignatureAlgorithmId(v) => RawAttr::tlv(
                TransformAttrType::SIGNATURE_ALGORITHM_IDENTIFIER.0,
                v.clone(),
            ),
            Self::Other(raw) => raw.clone(),
        }
    }
}

/// One transform: its type, its ID in that type's registry, and attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transform {
    pub ty: TransformType,
    pub id: u16,
    pub attrs: Vec<TransformAttr>,
}

impl Transform {
    pub fn new(ty: TransformType, id: u16) -> Self {
        Self {
            ty,
            id,
            attrs: Vec::new(),
        }
    }

    pub fn encr(id: EncrId, key_bits: Option<u16>) -> Self {
        let mut t = Self::new(TransformType::ENCR, id.0);
        if let Some(bits) = key_bits {
            t.attrs.push(TransformAttr::KeyLength(bits));
        }
        t
    }

    pub fn integ(id: IntegId) -> Self {
        Self::new(TransformType::INTEG, id.0)
    }

    pub fn sn(id: SnId) -> Self {
        Self::new(TransformType::SN, id.0)
    }

    pub fn kwa(id: KwaId) -> Self {
        Self::new(TransformType::KWA, id.0)
    }

    pub fn gcauth_implicit() -> Self {
        Self::new(TransformType::GCAUTH, GcauthId::IMPLICIT.0)
    }

    /// Digital Signature with the DER AlgorithmIdentifier of the signature.
    pub fn gcauth_signature(algorithm_id: Vec<u8>) -> Self {
        let mut t = Self::new(TransformType::GCAUTH, GcauthId::DIGITAL_SIGNATURE.0);
        t.attrs
            .push(TransformAttr::SignatureAlgorithmId(algorithm_id));
        t
    }

    pub fn key_length(&self) -> Option<u16> {
        self.attrs.iter().find_map(|a| match a {
            TransformAttr::KeyLength(v) => Some(*v),
            _ => None,
        })
    }

    pub fn signature_algorithm_id(&self) -> Option<&[u8]> {
        self.attrs.iter().find_map(|a| match a {
            TransformAttr::SignatureAlgorithmId(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    fn encode_with(&self, last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(if last {
            LAST_SUBSTRUC_LAST
        } else {
            LAST_SUBSTRUC_MORE_TRANSFORMS
        });
        out.push(0);
        let at = len16_placeholder(out);
        out.push(self.ty.0);
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        for a in &self.attrs {
            a.to_raw().encode(out);
        }
        patch_len16(out, at, start);
    }

    /// Reads one transform; returns it and whether it was the last one.
    fn read_one(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let last = match r.u8("Transform Last Substruc")? {
            LAST_SUBSTRUC_LAST => true,
            LAST_SUBSTRUC_MORE_TRANSFORMS => false,
            v => {
                return Err(DecodeError::BadValue {
                    what: "Transform Last Substruc",
                    value: v.into(),
                    reason: "must be 0 or 3",
                });
            }
        };
        r.u8("Transform RESERVED")?;
        let len = r.u16("Transform Length")?;
        let mut body = r.body(len, 4, "Transform Length")?;
        let ty = TransformType(body.u8("Transform Type")?);
        body.u8("Transform RESERVED")?;
        let id = body.u16("Transform ID")?;
        let mut attrs = Vec::new();
        let (mut key_len, mut sig_alg) = (false, false);
        while !body.is_empty() {
            let raw = RawAttr::read(&mut body)?;
            attrs.push(match TransformAttrType(raw.ty) {
                TransformAttrType::KEY_LENGTH => {
                    once(&mut key_len, "Key Length attribute")?;
                    if ty != TransformType::ENCR {
                        return Err(DecodeError::NotAllowed {
                            what: "Key Length attribute",
                            reason: "only encryption transforms take a key length",
                        });
                    }
                    TransformAttr::KeyLength(raw.expect_tv("Key Length attribute")?)
                }
                TransformAttrType::SIGNATURE_ALGORITHM_IDENTIFIER => {
                    once(&mut sig_alg, "Signature Algorithm Identifier attribute")?;
                    if (ty, id) != (TransformType::GCAUTH, GcauthId::DIGITAL_SIGNATURE.0) {
                        return Err(DecodeError::NotAllowed {
                            what: "Signature Algorithm Identifier attribute",
                            reason: "only meaningful for GCAUTH Digital Signature (§4.4.2.1.1)",
                        });
                    }
                    let v = raw.expect_tlv("Signature Algorithm Identifier attribute")?;
                    TransformAttr::SignatureAlgorithmId(v.to_vec())
                }
                _ => TransformAttr::Other(raw),
            });
        }
        Ok((Self { ty, id, attrs }, last))
    }
}

/// Encodes a transform list with Last Substruc 3 on all but the last.
pub fn encode_list(list: &[Transform], out: &mut Vec<u8>) {
    for (i, t) in list.iter().enumerate() {
        t.encode_with(i + 1 == list.len(), out);
    }
}

/// Reads transforms until one marked last (GSA policies, §4.4.2).
pub fn read_until_last(r: &mut Reader<'_>) -> Result<Vec<Transform>, DecodeError> {
    let mut out = Vec::new();
    loop {
        let (t, last) = Transform::read_one(r)?;
        out.push(t);
        if last {
            return Ok(out);
        }
    }
}

/// Reads exactly `count` transforms, the last and only the last marked so
/// (SA proposals, RFC 7296 §3.3.1).
pub fn read_counted(r: &mut Reader<'_>, count: u8) -> Result<Vec<Transform>, DecodeError> {
    let mut out = Vec::with_capacity(count.into());
    for i in 0..count {
        let (t, last) = Transform::read_one(r)?;
        if last != (i + 1 == count) {
            return Err(DecodeError::BadValue {
                what: "Transform Last Substruc",
                value: last.into(),
                reason: "disagrees with the proposal's Num Transforms",
            });
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_cbc_256_layout_per_rfc7296() {
        let mut out = Vec::new();
        encode_list(
            &[Transform::encr(EncrId::ENCR_AES_CBC, Some(256))],
            &mut out,
        );
        assert_eq!(out, [0, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 1, 0]);
    }

    #[test]
    fn key_length_must_be_tv_and_single() {
        // Key Length sent as TLV.
        let b = [0, 0, 0, 14, 1, 0, 0, 12, 0, 14, 0, 2, 1, 0];
        assert!(matches!(
            read_until_last(&mut Reader::new(&b)),
            Err(DecodeError::AttrFormat { .. })
        ));
        let b = [0, 0, 0, 16, 1, 0, 0, 12, 0x80, 14, 1, 0, 0x80, 14, 1, 0];
        assert!(matches!(
            read_until_last(&mut Reader::new(&b)),
            Err(DecodeError::Duplicate { .. })
        ));
    }
}
