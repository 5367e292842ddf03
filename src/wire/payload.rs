//! Generic payload chaining (RFC 7296 §3.2) and the small payloads G-IKEv2
//! uses as they are: IDg, Notify, Delete, AUTH and the Encrypted payload.

use super::DecodeError;
use super::codec::{Codec, Reader};
use super::gsa::{Gsa, SaRef};
use super::header::RekeySpi;
use super::kd::Kd;
use super::sa::SaPayload;
use crate::iana::{
    AuthMethod, GENERIC_PAYLOAD_HEADER_LEN, IdType, NotifyType, PAYLOAD_CRITICAL, PayloadType,
    ProtocolId,
};

/// The Group Identification payload (§4.2): the IKEv2 ID payload format.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupId {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

impl Codec for GroupId {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.id_type.0, 0, 0, 0]);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id_type = IdType(r.u8("IDg ID Type")?);
        r.take(3, "IDg RESERVED")?;
        let data = r.rest().to_vec();
        let want = match id_type {
            IdType::ID_IPV4_ADDR => Some(4),
            IdType::ID_IPV6_ADDR => Some(16),
            IdType::ID_KEY_ID
            | IdType::ID_FQDN
            | IdType::ID_RFC822_ADDR
            | IdType::ID_DER_ASN1_DN
            | IdType::ID_DER_ASN1_GN => None,
            _ => {
                return Err(DecodeError::BadValue {
                    what: "IDg ID Type",
                    value: id_type.0.into(),
                    reason: "not an identification type (§4.2)",
                });
            }
        };
        if data.is_empty() || want.is_some_and(|n| n != data.len()) {
            return Err(DecodeError::BadLength {
                what: "IDg Identification Data",
                len: data.len(),
                reason: "empty, or wrong size for the ID type",
            });
        }
        Ok(Self { id_type, data })
    }
}

/// A Notify payload (RFC 7296 §3.10).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notify {
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub ty: NotifyType,
    pub data: Vec<u8>,
}

impl Notify {
    /// A notification with no SPI and no data, as G-IKEv2's error
    /// notifications are (§4.7).
    pub fn plain(ty: NotifyType) -> Self {
        Self {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            ty,
            data: Vec::new(),
        }
    }

    /// GROUP_SENDER with the count of Sender-IDs requested (§4.7.4: four
    /// octets, always).
    pub fn group_sender(count: u32) -> Self {
        Self {
            data: count.to_be_bytes().to_vec(),
            ..Self::plain(NotifyType::GROUP_SENDER)
        }
    }

    /// The count of a GROUP_SENDER notification (the decoder admits no
    /// other length than four octets); None for any other notification.
    pub fn sender_id_count(&self) -> Option<u32> {
        if self.ty != NotifyType::GROUP_SENDER {
            return None;
        }
        self.data.as_slice().try_into().ok().map(u32::from_be_bytes)
    }

    /// Error notifications are those below 16384 (RFC 7296 §3.10.1).
    pub fn is_error(&self) -> bool {
        self.ty.0 < 16384
    }

    /// SKIPPED_MESSAGE_IDS naming the first Message ID skipped.
    pub fn skipped_message_ids(first: u32) -> Self {
        Self {
            data: first.to_be_bytes().to_vec(),
            ..Self::plain(NotifyType::SKIPPED_MESSAGE_IDS)
        }
    }

    /// The first Message ID skipped, if this is a well-formed
    /// SKIPPED_MESSAGE_IDS (no SPI, four octets of data).
    pub fn skipped_from(&self) -> Option<u32> {
        if self.ty != NotifyType::SKIPPED_MESSAGE_IDS || !self.spi.is_empty() {
            return None;
        }
        Some(u32::from_be_bytes(self.data.as_slice().try_into().ok()?))
    }
}

impl Codec for Notify {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.protocol.0);
        out.push(u8::try_from(self.spi.len()).expect("SPI longer than 255 octets"));
        out.extend_from_slice(&self.ty.0.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId(r.u8("Notify Protocol ID")?);
        let spi_size = r.u8("Notify SPI Size")?;
        let ty = NotifyType(r.u16("Notify Message Type")?);
        let spi = r.take(spi_size.into(), "Notify SPI")?.to_vec();
        let data = r.rest().to_vec();
        let n = Self {
            protocol,
            spi,
            ty,
            data,
        };
        match ty {
            NotifyType::INVALID_GROUP_ID
            | NotifyType::AUTHORIZATION_FAILED
            | NotifyType::REGISTRATION_FAILED
            | NotifyType::GROUP_SENDER
                if protocol != ProtocolId::NONE || spi_size != 0 =>
            {
                Err(DecodeError::BadValue {
                    what: "Notify Protocol ID / SPI Size",
                    value: protocol.0.into(),
                    reason: "MUST be zero for G-IKEv2 notifications (§4.7)",
                })
            }
            NotifyType::GROUP_SENDER if n.data.len() != 4 => Err(DecodeError::BadLength {
                what: "GROUP_SENDER count",
                len: n.data.len(),
                reason: "MUST be 4 octets (§4.7.4)",
            }),
            _ => Ok(n),
        }
    }
}

/// A Delete payload (RFC 7296 §3.11, RFC 9838 §4.6). One payload names
/// SAs of one protocol; SPI zero stands for all SAs of it (§2.4.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Delete {
    /// Protocol zero: the whole group SA, all Data-Security SAs and the
    /// Rekey SA.
    WholeGroup,
    Rekey(Vec<RekeySpi>),
    Esp(Vec<u32>),
    Ah(Vec<u32>),
}

impl Delete {
    /// Delete payloads for `sas`, one per protocol present.
    pub fn for_sas(sas: &[SaRef]) -> Vec<Self> {
        let (mut rekey, mut esp, mut ah) = (Vec::new(), Vec::new(), Vec::new());
        for sa in sas {
            match *sa {
                SaRef::Rekey(s) => rekey.push(s),
                SaRef::Esp(s) => esp.push(s),
                SaRef::Ah(s) => ah.push(s),
            }
        }
        let mut out = Vec::new();
        if !rekey.is_empty() {
            out.push(Self::Rekey(rekey));
        }
        if !esp.is_empty() {
            out.push(Self::Esp(esp));
        }
        if !ah.is_empty() {
            out.push(Self::Ah(ah));
        }
        out
    }

    /// The SAs named (none for `WholeGroup`).
    pub fn sas(&self) -> Vec<SaRef> {
        match self {
            Self::WholeGroup => Vec::new(),
            Self::Rekey(l) => l.iter().map(|s| SaRef::Rekey(*s)).collect(),
            Self::Esp(l) => l.iter().map(|s| SaRef::Esp(*s)).collect(),
            Self::Ah(l) => l.iter().map(|s| SaRef::Ah(*s)).collect(),
        }
    }
}

impl Codec for Delete {
    fn encode(&self, out: &mut Vec<u8>) {
        let (protocol, sas) = match self {
            Self::WholeGroup => {
                out.extend_from_slice(&[ProtocolId::NONE.0, 0, 0, 0]);
                return;
            }
            Self::Rekey(_) => (ProtocolId::GIKE_UPDATE, self.sas()),
            Self::Esp(_) => (ProtocolId::ESP, self.sas()),
            Self::Ah(_) => (ProtocolId::AH, self.sas()),
        };
        out.push(protocol.0);
        out.push(SaRef::spi_size(protocol).expect("group SA protocol") as u8);
        // An empty list encodes as zero SPIs, which decoders refuse: never
        // as protocol zero, which would delete the whole group.
        let n = u16::try_from(sas.len()).expect("more than 65535 SPIs");
        out.extend_from_slice(&n.to_be_bytes());
        for s in sas {
            out.extend_from_slice(&s.spi_bytes());
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol = ProtocolId(r.u8("Delete Protocol ID")?);
        let spi_size = r.u8("Delete SPI Size")?;
        let count = r.u16("Delete Num of SPIs")?;
        if protocol == ProtocolId::NONE {
            if spi_size != 0 || count != 0 {
                return Err(DecodeError::BadValue {
                    what: "Delete SPI Size / Num of SPIs",
                    value: spi_size.into(),
                    reason: "a whole-group Delete carries no SPI",
                });
            }
            return Ok(Self::WholeGroup);
        }
        if count == 0 {
            return Err(DecodeError::Missing {
                what: "Delete SPIs",
            });
        }
        // Bound the allocation by what the octets can hold.
        let fits = r.left() / usize::from(spi_size.max(1));
        let mut list = Vec::with_capacity(usize::from(count).min(fits));
        for _ in 0..count {
            let spi = r.take(spi_size.into(), "Delete SPI")?;
            list.push(SaRef::from_parts(protocol, spi_size, spi)?);
        }
        let mut out = Self::for_sas(&list);
        Ok(out.pop().expect("one protocol, at least one SPI"))
    }
}

/// The Authentication payload (RFC 7296 §3.8).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Auth {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl Codec for Auth {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.method.0, 0, 0, 0]);
        out.extend_from_slice(&self.data);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let method = AuthMethod(r.u8("Auth Method")?);
        r.take(3, "AUTH RESERVED")?;
        let data = r.rest().to_vec();
        if data.is_empty() {
            return Err(DecodeError::Missing {
                what: "Authentication Data",
            });
        }
        Ok(Self { method, data })
    }
}

/// The Encrypted payload as it travels: the type of the first inner
/// payload and IV | ciphertext | ICV. `crate::rekey` opens and seals it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Encrypted {
    pub first_inner: PayloadType,
    pub body: Vec<u8>,
}

/// An Encrypted Fragment payload (RFC 7383 §2.5), which GSA_REKEY may use
/// (§2.4.1.2). The first fragment names the first inner payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EncryptedFragment {
    pub first_inner: PayloadType,
    pub number: u16,
    pub total: u16,
    /// IV | ciphertext | ICV of this fragment.
    pub body: Vec<u8>,
}

/// Any payload of a G-IKEv2 message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    /// SAg (type 33).
    Sag(SaPayload),
    Idg(GroupId),
    Gsa(Gsa),
    Kd(Kd),
    Notify(Notify),
    Delete(Delete),
    Auth(Auth),
    Encrypted(Encrypted),
    EncryptedFragment(EncryptedFragment),
    /// A payload this layer carries without interpreting: IDi, IDr, CERT
    /// and the rest are charon's, unknown non-critical ones are skipped.
    Opaque {
        ty: PayloadType,
        critical: bool,
        body: Vec<u8>,
    },
}

impl Payload {
    pub fn ty(&self) -> PayloadType {
        match self {
            Self::Sag(_) => PayloadType::SA,
            Self::Idg(_) => PayloadType::IDG,
            Self::Gsa(_) => PayloadType::GSA,
            Self::Kd(_) => PayloadType::KD,
            Self::Notify(_) => PayloadType::NOTIFY,
            Self::Delete(_) => PayloadType::DELETE,
            Self::Auth(_) => PayloadType::AUTH,
            Self::Encrypted(_) => PayloadType::SK,
            Self::EncryptedFragment(_) => PayloadType::SKF,
            Self::Opaque { ty, .. } => *ty,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Self::Sag(p) => p.encode(out),
            Self::Idg(p) => p.encode(out),
            Self::Gsa(p) => p.encode(out),
            Self::Kd(p) => p.encode(out),
            Self::Notify(p) => p.encode(out),
            Self::Delete(p) => p.encode(out),
            Self::Auth(p) => p.encode(out),
            Self::Encrypted(p) => out.extend_from_slice(&p.body),
            Self::EncryptedFragment(p) => {
                out.extend_from_slice(&p.number.to_be_bytes());
                out.extend_from_slice(&p.total.to_be_bytes());
                out.extend_from_slice(&p.body);
            }
            Self::Opaque { body, .. } => out.extend_from_slice(body),
        }
    }

    fn decode_body(ty: PayloadType, critical: bool, body: &[u8]) -> Result<Self, DecodeError> {
        match ty {
            PayloadType::SA => SaPayload::from_bytes(body).map(Self::Sag),
            PayloadType::IDG => GroupId::from_bytes(body).map(Self::Idg),
            PayloadType::GSA => Gsa::from_bytes(body).map(Self::Gsa),
            PayloadType::KD => Kd::from_bytes(body).map(Self::Kd),
            PayloadType::NOTIFY => Notify::from_bytes(body).map(Self::Notify),
            PayloadType::DELETE => Delete::from_bytes(body).map(Self::Delete),
            PayloadType::AUTH => Auth::from_bytes(body).map(Self::Auth),
            t if t.name().is_none() && critical => Err(DecodeError::UnsupportedCritical(t)),
            t => Ok(Self::Opaque {
                ty: t,
                critical: critical && t.name().is_none(),
                body: body.to_vec(),
            }),
        }
    }
}

/// Encodes a payload chain. `Encrypted`, if present, must be last; its
/// Next Payload names its first inner payload (RFC 7296 §3.14).
pub fn encode_chain(payloads: &[Payload], out: &mut Vec<u8>) {
    for (i, p) in payloads.iter().enumerate() {
        let next = match p {
            Payload::Encrypted(e) => e.first_inner,
            Payload::EncryptedFragment(e) => e.first_inner,
            _ => payloads.get(i + 1).map_or(PayloadType::NONE, Payload::ty),
        };
        let start = out.len();
        out.push(next.0);
        out.push(match p {
            Payload::Opaque { critical: true, .. } => PAYLOAD_CRITICAL,
            _ => 0,
        });
        out.extend_from_slice(&[0, 0]);
        p.encode_body(out);
        let len = u16::try_from(out.len() - start).expect("payload longer than 65535 octets");
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// Reads a payload chain starting with type `first` until Next Payload is
/// zero or an Encrypted payload ends it; the reader must then be empty.
pub fn read_chain(first: PayloadType, r: &mut Reader<'_>) -> Result<Vec<Payload>, DecodeError> {
    let mut out = Vec::new();
    let mut ty = first;
    while ty != PayloadType::NONE {
        let next = PayloadType(r.u8("Next Payload")?);
        // C bit; the other seven bits are RESERVED and ignored on receipt.
        let critical = r.u8("Payload flags")? & PAYLOAD_CRITICAL != 0;
        let len = r.u16("Payload Length")?;
        let body = r
            .body(len, GENERIC_PAYLOAD_HEADER_LEN, "Payload Length")?
            .rest();
        if ty == PayloadType::SK {
            out.push(Payload::Encrypted(Encrypted {
                first_inner: next,
                body: body.to_vec(),
            }));
            break;
        }
        if ty == PayloadType::SKF {
            let mut f = Reader::new(body);
            let number = f.u16("Fragment Number")?;
            let total = f.u16("Total Fragments")?;
            if number == 0 || number > total {
                return Err(DecodeError::BadValue {
                    what: "Fragment Number",
                    value: number.into(),
                    reason: "must be 1 to Total Fragments (RFC 7383)",
                });
            }
            out.push(Payload::EncryptedFragment(EncryptedFragment {
                first_inner: next,
                number,
                total,
                body: f.rest().to_vec(),
            }));
            break;
        }
        out.push(Payload::decode_body(ty, critical, body)?);
        ty = next;
    }
    r.finish("payload chain")?;
    Ok(out)
}

/// Where each payload of an encoded chain sits: its type and the range of
/// its octets, generic header included. Needed where a signature covers
/// the encoding as received (GSA_REKEY's AUTH, §2.4.1.1).
pub fn chain_spans(
    first: PayloadType,
    buf: &[u8],
) -> Result<Vec<(PayloadType, core::ops::Range<usize>)>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    let mut ty = first;
    while ty != PayloadType::NONE && ty != PayloadType::SK && ty != PayloadType::SKF {
        let start = r.position();
        let next = PayloadType(r.u8("Next Payload")?);
        r.u8("Payload flags")?;
        let len = r.u16("Payload Length")?;
        r.body(len, GENERIC_PAYLOAD_HEADER_LEN, "Payload Length")?;
        out.push((ty, start..r.position()));
        ty = next;
    }
    r.finish("payload chain")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idg_key_id_layout() {
        let p = vec![Payload::Idg(GroupId {
            id_type: IdType::ID_KEY_ID,
            data: b"grp".to_vec(),
        })];
        let mut out = Vec::new();
        encode_chain(&p, &mut out);
        assert_eq!(out, [0, 0, 0, 11, 11, 0, 0, 0, b'g', b'r', b'p']);
        assert_eq!(
            read_chain(PayloadType::IDG, &mut Reader::new(&out)).unwrap(),
            p
        );
    }

    #[test]
    fn unknown_critical_payload_is_refused_and_non_critical_kept() {
        let b = [0, 0x80, 0, 5, 9];
        assert_eq!(
            read_chain(PayloadType(200), &mut Reader::new(&b)),
            Err(DecodeError::UnsupportedCritical(PayloadType(200)))
        );
        let b = [0, 0, 0, 5, 9];
        assert!(read_chain(PayloadType(200), &mut Reader::new(&b)).is_ok());
    }

    #[test]
    fn group_sender_count_is_four_octets() {
        let n = Notify::group_sender(3);
        assert_eq!(n.to_bytes(), [0, 0, 0x40, 0x2d, 0, 0, 0, 3]);
        assert_eq!(
            Notify::from_bytes(&n.to_bytes()).unwrap().sender_id_count(),
            Some(3)
        );
        assert!(Notify::from_bytes(&[0, 0, 0x40, 0x2d, 0, 3]).is_err());
        // M096: no count is no GROUP_SENDER (the GM always sends one).
        assert!(Notify::from_bytes(&[0, 0, 0x40, 0x2d]).is_err());
    }
}
