//! The SAg payload (§4.3): the IKEv2 SA payload format, listing what a GM
//! will accept for the Rekey SA (GIKE_UPDATE) and Data-Security SAs.

use super::DecodeError;
use super::codec::{Codec, Reader, len16_placeholder, patch_len16};
use super::transform::{self, Transform};
use crate::iana::{LAST_SUBSTRUC_LAST, LAST_SUBSTRUC_MORE_PROPOSALS, ProtocolId};

/// One proposal. In an SAg the SPI is empty (§2.3.3); proposals of
/// different protocols sharing a `num` form a set the GCKS must honour.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    pub num: u8,
    pub protocol: ProtocolId,
    /// Kept as received: a GCKS MUST NOT use it (§2.3.3, M006).
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// The SA payload body as a GM sends it in GSA_AUTH or GSA_REGISTRATION.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SaPayload {
    pub proposals: Vec<Proposal>,
}

impl Codec for SaPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        for (i, p) in self.proposals.iter().enumerate() {
            let start = out.len();
            out.push(if i + 1 == self.proposals.len() {
                LAST_SUBSTRUC_LAST
            } else {
                LAST_SUBSTRUC_MORE_PROPOSALS
            });
            out.push(0);
            let at = len16_placeholder(out);
            out.push(p.num);
            out.push(p.protocol.0);
            out.push(u8::try_from(p.spi.len()).expect("SPI longer than 255 octets"));
            out.push(u8::try_from(p.transforms.len()).expect("more than 255 transforms"));
            out.extend_from_slice(&p.spi);
            transform::encode_list(&p.transforms, out);
            patch_len16(out, at, start);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut proposals: Vec<Proposal> = Vec::new();
        loop {
            let last = match r.u8("Proposal Last Substruc")? {
                LAST_SUBSTRUC_LAST => true,
                LAST_SUBSTRUC_MORE_PROPOSALS => false,
                v => {
                    return Err(DecodeError::BadValue {
                        what: "Proposal Last Substruc",
                        value: v.into(),
                        reason: "must be 0 or 2",
                    });
                }
            };
            r.u8("Proposal RESERVED")?;
            let len = r.u16("Proposal Length")?;
            let mut body = r.body(len, 4, "Proposal Length")?;
            let num = body.u8("Proposal Num")?;
            let expected = proposals
                .last()
                .map_or(1..=1, |p| p.num..=p.num.saturating_add(1));
            if !expected.contains(&num) {
                return Err(DecodeError::BadValue {
                    what: "Proposal Num",
                    value: num.into(),
                    reason: "must start at 1 and grow by at most one",
                });
            }
            let protocol = ProtocolId(body.u8("Protocol ID")?);
            if ![ProtocolId::AH, ProtocolId::ESP, ProtocolId::GIKE_UPDATE].contains(&protocol) {
                return Err(DecodeError::BadValue {
                    what: "Protocol ID",
                    value: protocol.0.into(),
                    reason: "an SAg proposes only AH, ESP or GIKE_UPDATE",
                });
            }
            let spi_size = body.u8("SPI Size")?;
            let count = body.u8("Num Transforms")?;
            if count == 0 {
                return Err(DecodeError::Missing {
                    what: "transforms of a proposal",
                });
            }
            let spi = body.take(spi_size.into(), "SPI")?.to_vec();
            let transforms = transform::read_counted(&mut body, count)?;
            body.finish("Proposal")?;
            proposals.push(Proposal {
                num,
                protocol,
                spi,
                transforms,
            });
            if last {
                break;
            }
        }
        Ok(Self { proposals })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iana::{EncrId, SnId};

    #[test]
    fn proposal_layout_per_rfc7296() {
        let sa = SaPayload {
            proposals: vec![Proposal {
                num: 1,
                protocol: ProtocolId::ESP,
                spi: vec![],
                transforms: vec![
                    Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128)),
                    Transform::sn(SnId::SEQ32),
                ],
            }],
        };
        let b = sa.to_bytes();
        assert_eq!(
            b,
            [
                0, 0, 0, 28, 1, 3, 0, 2, // proposal header
                3, 0, 0, 12, 1, 0, 0, 20, 0x80, 14, 0, 128, // ENCR
                0, 0, 0, 8, 5, 0, 0, 0, // SN
            ]
        );
        assert_eq!(SaPayload::from_bytes(&b).unwrap(), sa);
    }

    #[test]
    fn proposal_numbers_must_start_at_one() {
        let mut b = SaPayload {
            proposals: vec![Proposal {
                num: 1,
                protocol: ProtocolId::AH,
                spi: vec![],
                transforms: vec![Transform::sn(SnId::SEQ32)],
            }],
        }
        .to_bytes();
        b[4] = 2;
        assert!(SaPayload::from_bytes(&b).is_err());
    }
}
