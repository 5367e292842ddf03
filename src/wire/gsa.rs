//! The GSA payload (§4.4): group policies for the Rekey SA (KEK), the
//! Data-Security SAs (TEKs) and the group as a whole.

use super::DecodeError;
use super::attr::{RawAttr, once, read_all};
use super::codec::{Codec, Reader, len16_placeholder, patch_len16};
use super::header::RekeySpi;
use super::transform::{self, Transform};
use super::ts::TrafficSelector;
use crate::iana::{
    DATA_SPI_LEN, EncrId, GcauthId, GsaAttrType, GwpAttrType, IPPROTO_UDP, IntegId, ProtocolId,
    REKEY_SPI_LEN, SnId, TransformType,
};

/// A group SA named by protocol and SPI, as GSA policies, key bags and
/// Delete payloads name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaRef {
    /// The Rekey SA (GIKE_UPDATE).
    Rekey(RekeySpi),
    Esp(u32),
    Ah(u32),
}

impl SaRef {
    pub fn protocol(&self) -> ProtocolId {
        match self {
            Self::Rekey(_) => ProtocolId::GIKE_UPDATE,
            Self::Esp(_) => ProtocolId::ESP,
            Self::Ah(_) => ProtocolId::AH,
        }
    }

    /// The SPI as it appears on the network.
    pub fn spi_bytes(&self) -> Vec<u8> {
        match self {
            Self::Rekey(s) => s.0.to_vec(),
            Self::Esp(s) | Self::Ah(s) => s.to_be_bytes().to_vec(),
        }
    }

    /// SPI size a protocol uses in GSA policies and group key bags.
    pub fn spi_size(protocol: ProtocolId) -> Option<usize> {
        match protocol {
            ProtocolId::GIKE_UPDATE => Some(REKEY_SPI_LEN),
            ProtocolId::ESP | ProtocolId::AH => Some(DATA_SPI_LEN),
            _ => None,
        }
    }

    /// Reads Protocol, SPI Size (already read) and SPI into an SA reference.
    pub(crate) fn from_parts(
        protocol: ProtocolId,
        spi_size: u8,
        spi: &[u8],
    ) -> Result<Self, DecodeError> {
        let want = Self::spi_size(protocol).ok_or(DecodeError::BadValue {
            what: "Protocol",
            value: protocol.0.into(),
            reason: "group SAs are GIKE_UPDATE, ESP or AH",
        })?;
        if usize::from(spi_size) != want || spi.len() != want {
            return Err(DecodeError::BadValue {
                what: "SPI Size",
                value: spi_size.into(),
                reason: "GIKE_UPDATE SPIs are 16 octets, ESP and AH SPIs 4",
            });
        }
        Ok(match protocol {
            ProtocolId::GIKE_UPDATE => {
                Self::Rekey(RekeySpi(spi.try_into().expect("length checked")))
            }
            p => {
                let v = u32::from_be_bytes(spi.try_into().expect("length checked"));
                if p == ProtocolId::ESP {
                    Self::Esp(v)
                } else {
                    Self::Ah(v)
                }
            }
        })
    }

    pub(crate) fn encode_head(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.push(self.protocol().0);
        let spi = self.spi_bytes();
        out.push(spi.len() as u8);
        let at = len16_placeholder(out);
        out.extend_from_slice(&spi);
        debug_assert_eq!(at, start + 2);
        start
    }
}

/// Reads the common head of GSA policies and group key bags after their
/// Protocol octet: SPI Size, Length and SPI. Returns the SA and the rest of
/// the substructure.
pub(crate) fn read_sa_head<'a>(
    protocol: ProtocolId,
    r: &mut Reader<'a>,
    what: &'static str,
) -> Result<(SaRef, Reader<'a>), DecodeError> {
    let spi_size = r.u8("SPI Size")?;
    let len = r.u16(what)?;
    let mut body = r.body(len, 4, what)?;
    let spi = body.take(spi_size.into(), "SPI")?;
    Ok((SaRef::from_parts(protocol, spi_size, spi)?, body))
}

/// A GSA attribute (§4.4.2.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GsaAttr {
    /// Seconds the SA is valid.
    KeyLifetime(u32),
    /// First Message ID of GSA_REKEY messages on this Rekey SA.
    InitialMessageId(u32),
    /// An SPI reserved for a replacement SA, as it appears on the network.
    NextSpi(Vec<u8>),
    Other(RawAttr),
}

impl GsaAttr {
    fn to_raw(&self) -> RawAttr {
        match self {
            Self::KeyLifetime(v) => {
                RawAttr::tlv(GsaAttrType::GSA_KEY_LIFETIME.0, v.to_be_bytes().to_vec())
            }
            Self::InitialMessageId(v) => RawAttr::tlv(
                GsaAttrType::GSA_INITIAL_MESSAGE_ID.0,
                v.to_be_bytes().to_vec(),
            ),
            Self::NextSpi(v) => RawAttr::tlv(GsaAttrType::GSA_NEXT_SPI.0, v.clone()),
            Self::Other(raw) => raw.clone(),
        }
    }
}

/// A GSA policy substructure (§4.4.2): one Rekey SA or Data-Security SA.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GsaPolicy {
    pub sa: SaRef,
    pub src: TrafficSelector,
    pub dst: TrafficSelector,
    pub transforms: Vec<Transform>,
    pub attrs: Vec<GsaAttr>,
}

impl GsaPolicy {
    /// The ID of the first transform of type `ty`.
    pub fn transform(&self, ty: TransformType) -> Option<&Transform> {
        self.transforms.iter().find(|t| t.ty == ty)
    }

    pub fn key_lifetime(&self) -> Option<u32> {
        self.attrs.iter().find_map(|a| match a {
            GsaAttr::KeyLifetime(v) => Some(*v),
            _ => None,
        })
    }

    pub fn initial_message_id(&self) -> Option<u32> {
        self.attrs.iter().find_map(|a| match a {
            GsaAttr::InitialMessageId(v) => Some(*v),
            _ => None,
        })
    }

    pub fn next_spis(&self) -> impl Iterator<Item = &[u8]> {
        self.attrs.iter().filter_map(|a| match a {
            GsaAttr::NextSpi(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    /// The encryption transform's ID, if any.
    pub fn encr(&self) -> Option<EncrId> {
        self.transform(TransformType::ENCR).map(|t| EncrId(t.id))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let start = self.sa.encode_head(out);
        self.src.encode(out);
        self.dst.encode(out);
        transform::encode_list(&self.transforms, out);
        for a in &self.attrs {
            a.to_raw().encode(out);
        }
        patch_len16(out, start + 2, start);
    }

    fn read(protocol: ProtocolId, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (sa, mut body) = read_sa_head(protocol, r, "GSA policy Length")?;
        let src = TrafficSelector::read(&mut body)?;
        let dst = TrafficSelector::read(&mut body)?;
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(DecodeError::BadValue {
                what: "GSA policy traffic selectors",
                value: 0,
                reason: "source and destination are of different address families",
            });
        }
        let transforms = transform::read_until_last(&mut body)?;
        let attrs = read_gsa_attrs(&sa, &mut body)?;
        let policy = Self {
            sa,
            src,
            dst,
            transforms,
            attrs,
        };
        policy.check_transforms()?;
        if let SaRef::Rekey(_) = policy.sa {
            policy.check_rekey_selectors()?;
        }
        Ok(policy)
    }

    /// Figure 16 and its notes: which transform types each protocol takes.
    /// GCAUTH's dependence on the exchange is checked with the message.
    fn check_transforms(&self) -> Result<(), DecodeError> {
        use TransformType as T;
        let (mandatory, optional): (&[T], &[T]) = match self.sa {
            SaRef::Rekey(_) => (&[T::ENCR, T::KWA], &[T::INTEG, T::GCAUTH]),
            SaRef::Esp(_) => (&[T::ENCR, T::SN], &[T::INTEG]),
            SaRef::Ah(_) => (&[T::INTEG, T::SN], &[]),
        };
        let mut seen: Vec<T> = Vec::new();
        for t in &self.transforms {
            if !mandatory.contains(&t.ty) && !optional.contains(&t.ty) {
                return Err(DecodeError::NotAllowed {
                    what: "GSA transform type",
                    reason: "not valid for this protocol (Figure 16)",
                });
            }
            if seen.contains(&t.ty) {
                return Err(DecodeError::Duplicate {
                    what: "GSA transform type",
                });
            }
            seen.push(t.ty);
        }
        if mandatory.iter().any(|m| !seen.contains(m)) {
            return Err(DecodeError::Missing {
                what: "mandatory GSA transform (Figure 16)",
            });
        }
        // M053: the GCKS names its signature algorithm (an SAg need not).
        if let Some(g) = self.transform(T::GCAUTH)
            && GcauthId(g.id) == GcauthId::DIGITAL_SIGNATURE
            && g.signature_algorithm_id().is_none()
        {
            return Err(DecodeError::Missing {
                what: "Signature Algorithm Identifier of GCAUTH Digital Signature",
            });
        }
        if let Some(encr) = self.encr() {
            if encr == EncrId::ENCR_NULL
                && self
                    .transform(T::INTEG)
                    .is_none_or(|t| IntegId(t.id) == IntegId::NONE)
            {
                return Err(DecodeError::NotAllowed {
                    what: "ENCR_NULL without integrity",
                    reason: "ESP must protect something (RFC 4303 §3.2)",
                });
            }
            if encr.is_implicit_iv() {
                return Err(DecodeError::BadValue {
                    what: "ENCR transform",
                    value: encr.0.into(),
                    reason: "implicit-IV transforms MUST NOT be used (§2.7)",
                });
            }
            let integ = self.transform(T::INTEG).map(|t| IntegId(t.id));
            let has_integ = integ.is_some_and(|i| i != IntegId::NONE);
            if encr.is_aead() && has_integ {
                return Err(DecodeError::NotAllowed {
                    what: "INTEG transform",
                    reason: "an AEAD cipher takes no integrity algorithm",
                });
            }
            if matches!(self.sa, SaRef::Rekey(_)) && !encr.is_aead() && !has_integ {
                return Err(DecodeError::Missing {
                    what: "INTEG transform of a non-AEAD Rekey SA",
                });
            }
        }
        if let SaRef::Ah(_) = self.sa
            && self.transform(T::INTEG).map(|t| IntegId(t.id)) == Some(IntegId::NONE)
        {
            return Err(DecodeError::BadValue {
                what: "AH INTEG transform",
                value: 0,
                reason: "AH needs an integrity algorithm",
            });
        }
        if self.transform(T::SN).map(|t| SnId(t.id)) == Some(SnId::ESN) {
            return Err(DecodeError::BadValue {
                what: "SN transform",
                value: SnId::ESN.0.into(),
                reason: "ESN MUST NOT be used for multicast Data-Security SAs (§4.4.2.1.3)",
            });
        }
        Ok(())
    }

    /// §4.4.2: the Rekey SA's destination is a single multicast address,
    /// UDP, and a single port.
    fn check_rekey_selectors(&self) -> Result<(), DecodeError> {
        let dst = &self.dst;
        let ok = dst.single_addr().is_some_and(|a| a.is_multicast())
            && dst.ip_protocol == IPPROTO_UDP
            && dst.single_port().is_some();
        if !ok {
            return Err(DecodeError::NotAllowed {
                what: "Rekey SA destination traffic selector",
                reason: "must be one multicast address, UDP and one port",
            });
        }
        Ok(())
    }
}

fn read_gsa_attrs(sa: &SaRef, r: &mut Reader<'_>) -> Result<Vec<GsaAttr>, DecodeError> {
    let (mut lifetime, mut initial) = (false, false);
    let mut out = Vec::new();
    for raw in read_all(r)? {
        out.push(match GsaAttrType(raw.ty) {
            GsaAttrType::GSA_KEY_LIFETIME => {
                once(&mut lifetime, "GSA_KEY_LIFETIME")?;
                GsaAttr::KeyLifetime(raw.expect_u32("GSA_KEY_LIFETIME")?)
            }
            GsaAttrType::GSA_INITIAL_MESSAGE_ID => {
                once(&mut initial, "GSA_INITIAL_MESSAGE_ID")?;
                if !matches!(sa, SaRef::Rekey(_)) {
                    return Err(DecodeError::NotAllowed {
                        what: "GSA_INITIAL_MESSAGE_ID",
                        reason: "used only in GIKE_UPDATE policies",
                    });
                }
                GsaAttr::InitialMessageId(raw.expect_u32("GSA_INITIAL_MESSAGE_ID")?)
            }
            GsaAttrType::GSA_NEXT_SPI => {
                let v = raw.expect_tlv("GSA_NEXT_SPI")?;
                if v.len() != sa.spi_bytes().len() {
                    return Err(DecodeError::BadLength {
                        what: "GSA_NEXT_SPI",
                        len: v.len(),
                        reason: "must equal the policy's SPI Size",
                    });
                }
                GsaAttr::NextSpi(v.to_vec())
            }
            _ => GsaAttr::Other(raw),
        });
    }
    Ok(out)
}

/// The group-wide policy substructure (§4.4.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct GwPolicy {
    /// Activation Time Delay, seconds.
    pub atd: Option<u16>,
    /// Deactivation Time Delay, seconds.
    pub dtd: Option<u16>,
    /// Bits of the IV taken by the Sender-ID.
    pub sender_id_bits: Option<u16>,
    pub other: Vec<RawAttr>,
}

impl GwPolicy {
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(ProtocolId::NONE.0);
        out.push(0);
        let at = len16_placeholder(out);
        let typed = [
            (GwpAttrType::GWP_ATD, self.atd),
            (GwpAttrType::GWP_DTD, self.dtd),
            (GwpAttrType::GWP_SENDER_ID_BITS, self.sender_id_bits),
        ];
        for (ty, v) in typed {
            if let Some(v) = v {
                RawAttr::tv(ty.0, v).encode(out);
            }
        }
        for a in &self.other {
            a.encode(out);
        }
        patch_len16(out, at, start);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // RESERVED: zero on transmission, ignored on receipt (§4.4.3).
        r.u8("GW policy RESERVED")?;
        let len = r.u16("GW policy Length")?;
        let mut body = r.body(len, 4, "GW policy Length")?;
        let mut gw = Self::default();
        for raw in read_all(&mut body)? {
            let slot = match GwpAttrType(raw.ty) {
                GwpAttrType::GWP_ATD => (&mut gw.atd, "GWP_ATD"),
                GwpAttrType::GWP_DTD => (&mut gw.dtd, "GWP_DTD"),
                GwpAttrType::GWP_SENDER_ID_BITS => (&mut gw.sender_id_bits, "GWP_SENDER_ID_BITS"),
                _ => {
                    gw.other.push(raw);
                    continue;
                }
            };
            let (field, what) = slot;
            if field.is_some() {
                return Err(DecodeError::Duplicate { what });
            }
            *field = Some(raw.expect_tv(what)?);
        }
        Ok(gw)
    }
}

/// One policy of a GSA payload; the first octet tells which.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupPolicy {
    Sa(GsaPolicy),
    GroupWide(GwPolicy),
}

/// The GSA payload body.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Gsa {
    pub policies: Vec<GroupPolicy>,
}

impl Gsa {
    pub fn sa_policies(&self) -> impl Iterator<Item = &GsaPolicy> {
        self.policies.iter().filter_map(|p| match p {
            GroupPolicy::Sa(s) => Some(s),
            GroupPolicy::GroupWide(_) => None,
        })
    }

    /// The Rekey SA (KEK) policy, if present.
    pub fn kek(&self) -> Option<&GsaPolicy> {
        self.sa_policies().find(|p| matches!(p.sa, SaRef::Rekey(_)))
    }

    /// Data-Security SA (TEK) policies.
    pub fn teks(&self) -> impl Iterator<Item = &GsaPolicy> {
        self.sa_policies()
            .filter(|p| !matches!(p.sa, SaRef::Rekey(_)))
    }

    pub fn group_wide(&self) -> Option<&GwPolicy> {
        self.policies.iter().find_map(|p| match p {
            GroupPolicy::GroupWide(g) => Some(g),
            GroupPolicy::Sa(_) => None,
        })
    }
}

impl Codec for Gsa {
    fn encode(&self, out: &mut Vec<u8>) {
        for p in &self.policies {
            match p {
                GroupPolicy::Sa(s) => s.encode(out),
                GroupPolicy::GroupWide(g) => g.encode(out),
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut policies = Vec::new();
        let (mut kek, mut gw) = (false, false);
        while !r.is_empty() {
            let protocol = ProtocolId(r.u8("GSA policy Protocol")?);
            policies.push(if protocol == ProtocolId::NONE {
                once(&mut gw, "GW policy")?;
                GroupPolicy::GroupWide(GwPolicy::read(r)?)
            } else {
                if protocol == ProtocolId::GIKE_UPDATE {
                    once(&mut kek, "GSA KEK policy")?;
                }
                GroupPolicy::Sa(GsaPolicy::read(protocol, r)?)
            });
        }
        let gsa = Self { policies };
        if gsa.sa_policies().next().is_none() {
            return Err(DecodeError::Missing {
                what: "GSA KEK or TEK policy (§4.4.1)",
            });
        }
        // §4.4.2: never both ESP and AH for the same traffic selectors.
        let teks: Vec<&GsaPolicy> = gsa.teks().collect();
        for (i, a) in teks.iter().enumerate() {
            for b in &teks[i + 1..] {
                if a.sa.protocol() != b.sa.protocol() && (a.src, a.dst) == (b.src, b.dst) {
                    return Err(DecodeError::NotAllowed {
                        what: "GSA TEK policies",
                        reason: "both ESP and AH for the same traffic selectors",
                    });
                }
            }
        }
        Ok(gsa)
    }
}
