//! Payload records: how payloads cross the ABI.
//!
//! A record list is a byte string of records, each
//! `type (1) | flags (1, 0x80 = critical) | length (2, big endian) | body`,
//! where `length` counts the body only and the body is exactly an IKE
//! payload's body (what follows the generic payload header), as charon's
//! payload objects hold it. Records in are read by building the generic
//! payload chain they stand for and reading it with the wire codec, so
//! their checks are the codec's; records out are the codec's encoding with
//! the Next Payload field replaced by the payload's own type.

use super::{GIKEV2_RECORD_CRITICAL, GIKEV2_RECORD_HEADER_LEN};
use crate::iana::{GENERIC_PAYLOAD_HEADER_LEN, PayloadType};
use crate::wire::{DecodeError, Payload, Reader, encode_chain, read_chain};

/// Reads a record list into payloads (in order).
pub(crate) fn payloads_from_records(buf: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    let mut r = Reader::new(buf);
    let mut recs: Vec<(PayloadType, u8, &[u8])> = Vec::new();
    while !r.is_empty() {
        let ty = PayloadType(r.u8("record type")?);
        let flags = r.u8("record flags")?;
        let len = r.u16("record length")?;
        let body = r.take(len.into(), "record body")?;
        match ty {
            PayloadType::NONE => {
                return Err(DecodeError::BadValue {
                    what: "record type",
                    value: 0,
                    reason: "0 is no payload type",
                });
            }
            PayloadType::SK => {
                return Err(DecodeError::NotAllowed {
                    what: "Encrypted payload record",
                    reason: "records carry the payloads inside SK",
                });
            }
            _ => {}
        }
        if body.len() + GENERIC_PAYLOAD_HEADER_LEN > usize::from(u16::MAX) {
            return Err(DecodeError::BadLength {
                what: "record length",
                len: body.len(),
                reason: "longer than a payload body can be",
            });
        }
        recs.push((ty, flags & GIKEV2_RECORD_CRITICAL, body));
    }
    let Some(&(first, _, _)) = recs.first() else {
        return Ok(Vec::new());
    };
    let mut chain = Vec::with_capacity(buf.len());
    for (i, (_, flags, body)) in recs.iter().enumerate() {
        let next = recs.get(i + 1).map_or(PayloadType::NONE, |r| r.0);
        let len = u16::try_from(body.len() + GENERIC_PAYLOAD_HEADER_LEN).expect("checked above");
        chain.push(next.0);
        chain.push(*flags);
        chain.extend_from_slice(&len.to_be_bytes());
        chain.extend_from_slice(body);
    }
    read_chain(first, &mut Reader::new(&chain))
}

/// Writes payloads as a record list.
pub(crate) fn records_from_payloads(payloads: &[Payload]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut one = Vec::new();
    for p in payloads {
        one.clear();
        encode_chain(std::slice::from_ref(p), &mut one);
        // one = Next Payload | flags | length | body
        out.push(p.ty().0);
        out.push(one[1]);
        let body = &one[GENERIC_PAYLOAD_HEADER_LEN..];
        let len = u16::try_from(body.len()).expect("a payload's length fits 16 bits");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(body);
    }
    debug_assert!(out.len() >= payloads.len() * GIKEV2_RECORD_HEADER_LEN);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iana::{IdType, NotifyType};
    use crate::wire::{GroupId, Notify};

    fn sample() -> Vec<Payload> {
        vec![
            Payload::Idg(GroupId {
                id_type: IdType::ID_KEY_ID,
                data: b"grp".to_vec(),
            }),
            Payload::Notify(Notify::group_sender(2)),
            Payload::Opaque {
                ty: PayloadType(200),
                critical: false,
                body: vec![1, 2, 3],
            },
        ]
    }

    #[test]
    fn round_trip_and_layout() {
        let recs = records_from_payloads(&sample());
        assert_eq!(&recs[..8], [50, 0, 0, 7, 11, 0, 0, 0]);
        assert_eq!(&recs[8..11], b"grp");
        assert_eq!(payloads_from_records(&recs).unwrap(), sample());
        assert!(payloads_from_records(&[]).unwrap().is_empty());
    }

    #[test]
    fn malformed_records_are_decode_errors() {
        let recs = records_from_payloads(&sample());
        for cut in 1..recs.len() {
            // Every truncation either ends mid-record or drops a payload
            // whose absence still leaves valid records: never a panic.
            let _ = payloads_from_records(&recs[..cut]);
        }
        assert!(payloads_from_records(&recs[..recs.len() - 1]).is_err());
        assert!(payloads_from_records(&[50, 0, 0]).is_err());
        assert!(payloads_from_records(&[0, 0, 0, 0]).is_err());
        assert!(payloads_from_records(&[46, 0, 0, 0]).is_err());
        // An unknown critical payload is refused, as in a message.
        assert_eq!(
            payloads_from_records(&[200, 0x80, 0, 1, 9]),
            Err(DecodeError::UnsupportedCritical(PayloadType(200)))
        );
        // A Notify body the codec refuses.
        let mut bad =
            records_from_payloads(&[Payload::Notify(Notify::plain(NotifyType::INVALID_GROUP_ID))]);
        bad[4] = 3; // Protocol ID must be zero for G-IKEv2 notifications
        assert!(payloads_from_records(&bad).is_err());
    }
}
