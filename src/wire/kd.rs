//! The Key Download payload (§4.5): group key bags, member key bags and
//! the wrapped key format of §4.5.4.

use super::DecodeError;
use super::attr::{RawAttr, once, read_all};
use super::codec::{Codec, Reader, len16_placeholder, patch_len16};
use super::gsa::{SaRef, read_sa_head};
use crate::iana::{GroupKeyBagAttrType, MemberKeyBagAttrType, ProtocolId, WRAPPED_KEY_HEADER_LEN};

/// A key encrypted under a key wrap key (§4.5.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WrappedKey {
    /// Zero for SA keying material, otherwise an intermediate key's ID.
    pub key_id: u32,
    /// Zero when the default KWK (GSK_w) wrapped it.
    pub kwk_id: u32,
    pub encrypted: Vec<u8>,
}

impl WrappedKey {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(WRAPPED_KEY_HEADER_LEN + self.encrypted.len());
        out.extend_from_slice(&self.key_id.to_be_bytes());
        out.extend_from_slice(&self.kwk_id.to_be_bytes());
        out.extend_from_slice(&self.encrypted);
        out
    }

    fn parse(v: &[u8], what: &'static str) -> Result<Self, DecodeError> {
        let mut r = Reader::new(v);
        let key_id = r.u32(what)?;
        let kwk_id = r.u32(what)?;
        let encrypted = r.rest().to_vec();
        if encrypted.is_empty() {
            return Err(DecodeError::Missing { what });
        }
        Ok(Self {
            key_id,
            kwk_id,
            encrypted,
        })
    }
}

/// Keys of one group SA (§4.5.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKeyBag {
    pub sa: SaRef,
    /// SA_KEY attributes: the same keying material under different KWKs.
    pub sa_keys: Vec<WrappedKey>,
    pub other: Vec<RawAttr>,
}

/// Keys and parameters of one member (§4.5.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct MemberKeyBag {
    /// Intermediate KWKs (LKH), each with a non-zero Key ID.
    pub wrap_keys: Vec<WrappedKey>,
    /// DER SubjectPublicKeyInfo of the GCKS's rekey signing key.
    pub auth_key: Option<Vec<u8>>,
    pub sender_ids: Vec<u32>,
    pub other: Vec<RawAttr>,
}

/// One key bag; the first octet tells which kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyBag {
    Group(GroupKeyBag),
    Member(MemberKeyBag),
}

/// The KD payload body.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Kd {
    pub bags: Vec<KeyBag>,
}

impl Kd {
    pub fn group_bags(&self) -> impl Iterator<Item = &GroupKeyBag> {
        self.bags.iter().filter_map(|b| match b {
            KeyBag::Group(g) => Some(g),
            KeyBag::Member(_) => None,
        })
    }

    pub fn member_bag(&self) -> Option<&MemberKeyBag> {
        self.bags.iter().find_map(|b| match b {
            KeyBag::Member(m) => Some(m),
            KeyBag::Group(_) => None,
        })
    }

    /// The key bag of one SA.
    pub fn bag_for(&self, sa: &SaRef) -> Option<&GroupKeyBag> {
        self.group_bags().find(|b| b.sa == *sa)
    }
}

impl GroupKeyBag {
    fn encode(&self, out: &mut Vec<u8>) {
        let start = self.sa.encode_head(out);
        for k in &self.sa_keys {
            RawAttr::tlv(GroupKeyBagAttrType::SA_KEY.0, k.to_bytes()).encode(out);
        }
        for a in &self.other {
            a.encode(out);
        }
        patch_len16(out, start + 2, start);
    }

    fn read(protocol: ProtocolId, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (sa, mut body) = read_sa_head(protocol, r, "Group Key Bag Length")?;
        let mut bag = Self {
            sa,
            sa_keys: Vec::new(),
            other: Vec::new(),
        };
        for raw in read_all(&mut body)? {
            if GroupKeyBagAttrType(raw.ty) != GroupKeyBagAttrType::SA_KEY {
                bag.other.push(raw);
                continue;
            }
            let k = WrappedKey::parse(raw.expect_tlv("SA_KEY")?, "SA_KEY")?;
            if k.key_id != 0 {
                return Err(DecodeError::BadValue {
                    what: "SA_KEY Key ID",
                    value: k.key_id.into(),
                    reason: "MUST be zero (§4.5.2.1)",
                });
            }
            if !matches!(sa, SaRef::Rekey(_)) && k.kwk_id != 0 {
                return Err(DecodeError::BadValue {
                    what: "SA_KEY KWK ID",
                    value: k.kwk_id.into(),
                    reason: "Data-Security SA keys are wrapped with the default KWK",
                });
            }
            bag.sa_keys.push(k);
        }
        match (&bag.sa, bag.sa_keys.len()) {
            (_, 0) => Err(DecodeError::Missing { what: "SA_KEY" }),
            (SaRef::Esp(_) | SaRef::Ah(_), 2..) => Err(DecodeError::Duplicate {
                what: "SA_KEY of a Data-Security SA",
            }),
            _ => Ok(bag),
        }
    }
}

impl MemberKeyBag {
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(ProtocolId::NONE.0);
        out.push(0);
        let at = len16_placeholder(out);
        for k in &self.wrap_keys {
            RawAttr::tlv(MemberKeyBagAttrType::WRAP_KEY.0, k.to_bytes()).encode(out);
        }
        if let Some(a) = &self.auth_key {
            RawAttr::tlv(MemberKeyBagAttrType::AUTH_KEY.0, a.clone()).encode(out);
        }
        for id in &self.sender_ids {
            RawAttr::tlv(
                MemberKeyBagAttrType::GM_SENDER_ID.0,
                id.to_be_bytes().to_vec(),
            )
            .encode(out);
        }
        for a in &self.other {
            a.encode(out);
        }
        patch_len16(out, at, start);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // RESERVED: zero on transmission, ignored on receipt (§4.5.3).
        r.u8("Member Key Bag RESERVED")?;
        let len = r.u16("Member Key Bag Length")?;
        let mut body = r.body(len, 4, "Member Key Bag Length")?;
        let mut bag = Self::default();
        let mut auth = false;
        for raw in read_all(&mut body)? {
            match MemberKeyBagAttrType(raw.ty) {
                MemberKeyBagAttrType::WRAP_KEY => {
                    let k = WrappedKey::parse(raw.expect_tlv("WRAP_KEY")?, "WRAP_KEY")?;
                    if k.key_id == 0 {
                        return Err(DecodeError::BadValue {
                            what: "WRAP_KEY Key ID",
                            value: 0,
                            reason: "MUST NOT be zero (§4.5.3.1)",
                        });
                    }
                    bag.wrap_keys.push(k);
                }
                MemberKeyBagAttrType::AUTH_KEY => {
                    once(&mut auth, "AUTH_KEY")?;
                    let v = raw.expect_tlv("AUTH_KEY")?;
                    if v.is_empty() {
                        return Err(DecodeError::Missing {
                            what: "AUTH_KEY value",
                        });
                    }
                    bag.auth_key = Some(v.to_vec());
                }
                MemberKeyBagAttrType::GM_SENDER_ID => {
                    // The RFC gives no size; like GDOI's SENDER-ID (RFC
                    // 6407 §5.5.3) it is four octets, big-endian.
                    bag.sender_ids.push(raw.expect_u32("GM_SENDER_ID")?);
                }
                _ => bag.other.push(raw),
            }
        }
        Ok(bag)
    }
}

impl Codec for Kd {
    fn encode(&self, out: &mut Vec<u8>) {
        for b in &self.bags {
            match b {
                KeyBag::Group(g) => g.encode(out),
                KeyBag::Member(m) => m.encode(out),
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut bags = Vec::new();
        let mut member = false;
        let mut seen: Vec<SaRef> = Vec::new();
        while !r.is_empty() {
            let protocol = ProtocolId(r.u8("Key Bag Protocol")?);
            bags.push(if protocol == ProtocolId::NONE {
                once(&mut member, "Member Key Bag")?;
                KeyBag::Member(MemberKeyBag::read(r)?)
            } else {
                let g = GroupKeyBag::read(protocol, r)?;
                if seen.contains(&g.sa) {
                    return Err(DecodeError::Duplicate {
                        what: "Group Key Bag for one SA",
                    });
                }
                seen.push(g.sa);
                KeyBag::Group(g)
            });
        }
        if bags.is_empty() {
            return Err(DecodeError::Missing { what: "key bags" });
        }
        Ok(Self { bags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_key_bag_layout() {
        let kd = Kd {
            bags: vec![KeyBag::Group(GroupKeyBag {
                sa: SaRef::Esp(0x01020304),
                sa_keys: vec![WrappedKey {
                    key_id: 0,
                    kwk_id: 0,
                    encrypted: vec![0xaa; 24],
                }],
                other: vec![],
            })],
        };
        let b = kd.to_bytes();
        let mut want = vec![3, 4, 0, 44, 1, 2, 3, 4, 0, 1, 0, 32];
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0xaa; 24]);
        assert_eq!(b, want);
        assert_eq!(Kd::from_bytes(&b).unwrap(), kd);
    }

    #[test]
    fn wrap_key_id_must_not_be_zero() {
        let mut b = vec![0, 0, 0, 24, 0, 1, 0, 16];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[1; 8]);
        assert!(matches!(
            Kd::from_bytes(&b),
            Err(DecodeError::BadValue {
                what: "WRAP_KEY Key ID",
                ..
            })
        ));
    }
}
