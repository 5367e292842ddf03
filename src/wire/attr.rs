//! Data attributes in the RFC 7296 §3.3.5 format, shared by transform,
//! GSA, group-wide policy and key bag attributes.

use super::DecodeError;
use super::codec::{Codec, Reader};
use crate::iana::ATTR_FORMAT_TV;

/// An attribute's value: TV carries two octets inline, TLV a length and data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttrValue {
    Tv(u16),
    Tlv(Vec<u8>),
}

/// One attribute as it is on the wire, before its registry gives it meaning.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttr {
    /// Attribute type with the AF bit removed (15 bits).
    pub ty: u16,
    pub value: AttrValue,
}

impl RawAttr {
    pub fn tv(ty: u16, v: u16) -> Self {
        Self {
            ty,
            value: AttrValue::Tv(v),
        }
    }

    pub fn tlv(ty: u16, v: Vec<u8>) -> Self {
        Self {
            ty,
            value: AttrValue::Tlv(v),
        }
    }

    /// The value of an attribute whose registry requires TV format.
    pub fn expect_tv(&self, what: &'static str) -> Result<u16, DecodeError> {
        match self.value {
            AttrValue::Tv(v) => Ok(v),
            AttrValue::Tlv(_) => Err(DecodeError::AttrFormat {
                what,
                attr: self.ty,
                expected_tv: true,
            }),
        }
    }

    /// The value of an attribute whose registry requires TLV format.
    pub fn expect_tlv(&self, what: &'static str) -> Result<&[u8], DecodeError> {
        match &self.value {
            AttrValue::Tlv(v) => Ok(v),
            AttrValue::Tv(_) => Err(DecodeError::AttrFormat {
                what,
                attr: self.ty,
                expected_tv: false,
            }),
        }
    }

    /// A TLV value that must be exactly four octets (lifetimes, IDs).
    pub fn expect_u32(&self, what: &'static str) -> Result<u32, DecodeError> {
        let v = self.expect_tlv(what)?;
        let arr: [u8; 4] = v.try_into().map_err(|_| DecodeError::BadLength {
            what,
            len: v.len(),
            reason: "must be 4 octets",
        })?;
        Ok(u32::from_be_bytes(arr))
    }
}

impl Codec for RawAttr {
    fn encode(&self, out: &mut Vec<u8>) {
        let ty = self.ty & !ATTR_FORMAT_TV;
        match &self.value {
            AttrValue::Tv(v) => {
                out.extend_from_slice(&(ty | ATTR_FORMAT_TV).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttrValue::Tlv(data) => {
                out.extend_from_slice(&ty.to_be_bytes());
                let len = u16::try_from(data.len()).expect("attribute longer than 65535 octets");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(data);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let raw = r.u16("attribute type")?;
        let ty = raw & !ATTR_FORMAT_TV;
        let value = if raw & ATTR_FORMAT_TV != 0 {
            AttrValue::Tv(r.u16("attribute value")?)
        } else {
            let len = r.u16("attribute length")?;
            AttrValue::Tlv(r.take(usize::from(len), "attribute value")?.to_vec())
        };
        Ok(Self { ty, value })
    }
}

/// Reads attributes until the reader is exhausted.
pub fn read_all(r: &mut Reader<'_>) -> Result<Vec<RawAttr>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(RawAttr::read(r)?);
    }
    Ok(out)
}

/// Fails if `seen` is already set; sets it otherwise. Used for the
/// single-valued attributes of every registry.
pub(crate) fn once(seen: &mut bool, what: &'static str) -> Result<(), DecodeError> {
    if std::mem::replace(seen, true) {
        return Err(DecodeError::Duplicate { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv_and_tlv_layouts() {
        // RFC 7296 §3.3.5: AF bit set, type 14 (Key Length), value 256.
        assert_eq!(RawAttr::tv(14, 256).to_bytes(), [0x80, 0x0e, 0x01, 0x00]);
        assert_eq!(
            RawAttr::tlv(1, vec![0, 0, 0, 60]).to_bytes(),
            [0x00, 0x01, 0x00, 0x04, 0, 0, 0, 60]
        );
        assert!(RawAttr::from_bytes(&[0x00, 0x01, 0x00, 0x05, 0, 0, 0, 60]).is_err());
    }
}
