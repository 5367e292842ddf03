//! Evaluating a GM's SAg against the group's policy (§2.3.3, §2.3.4):
//! proposals sharing a Proposal Num form a set, and the group's transforms
//! must all come from one set (M007). The SPI fields are never used (M006).

use crate::iana::ProtocolId;
use crate::wire::{SaPayload, Transform};

/// The transforms the group uses for one protocol.
pub(crate) struct Offer<'a> {
    pub protocol: ProtocolId,
    pub transforms: &'a [Transform],
}

/// Whether the GM that sent `sag` can use every SA in `offers`.
///
/// A protocol the SAg says nothing about is taken as unrestricted: the GM
/// only alerts the GCKS to restrictions it has (§2.3.3).
pub(crate) fn acceptable(sag: &SaPayload, offers: &[Offer<'_>]) -> bool {
    let mut nums: Vec<u8> = sag.proposals.iter().map(|p| p.num).collect();
    nums.dedup();
    nums.into_iter().any(|num| {
        offers.iter().all(|offer| {
            let mut same_protocol = sag
                .proposals
                .iter()
                .filter(|p| p.protocol == offer.protocol)
                .peekable();
            if same_protocol.peek().is_none() {
                return true;
            }
            same_protocol
                .filter(|p| p.num == num)
                .any(|p| offer.transforms.iter().all(|t| supports(&p.transforms, t)))
        })
    })
}

/// A proposal supports a transform when it lists the same type and ID and,
/// for ciphers with a key length, the same key length. A type the proposal
/// lists nothing of is not restricted: the GM only alerts the GCKS to its
/// restrictions (§2.3.3), it may list nothing but its key wrap algorithms
/// (M089), and it cannot choose some types at all (GCAUTH).
fn supports(proposal: &[Transform], want: &Transform) -> bool {
    !proposal.iter().any(|t| t.ty == want.ty)
        || proposal
            .iter()
            .any(|t| t.ty == want.ty && t.id == want.id && t.key_length() == want.key_length())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iana::{EncrId, KwaId, SnId};
    use crate::wire::Proposal;

    fn proposal(num: u8, protocol: ProtocolId, transforms: Vec<Transform>) -> Proposal {
        Proposal {
            num,
            protocol,
            spi: vec![],
            transforms,
        }
    }

    #[test]
    fn proposal_num_groups_protocols() {
        let x = Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128));
        let y = Transform::encr(EncrId::ENCR_CHACHA20_POLY1305, None);
        let kwa = Transform::kwa(KwaId::KW_5649_128);
        let sn = Transform::sn(SnId::UNSPECIFIED32);
        // X with X, or Y with Y (the example of §2.3.3).
        let sag = SaPayload {
            proposals: vec![
                proposal(1, ProtocolId::GIKE_UPDATE, vec![x.clone(), kwa.clone()]),
                proposal(1, ProtocolId::ESP, vec![x.clone(), sn.clone()]),
                proposal(2, ProtocolId::GIKE_UPDATE, vec![y.clone(), kwa.clone()]),
                proposal(2, ProtocolId::ESP, vec![y.clone(), sn.clone()]),
            ],
        };
        let kek_x = [x.clone(), kwa.clone()];
        let kek_y = [y.clone(), kwa.clone()];
        let tek_x = [x.clone(), sn.clone()];
        let tek_y = [y.clone(), sn.clone()];
        let offer = |k: &'static str| {
            let (kek, tek) = match k {
                "xx" => (&kek_x, &tek_x),
                "yy" => (&kek_y, &tek_y),
                "xy" => (&kek_x, &tek_y),
                _ => unreachable!(),
            };
            acceptable(
                &sag,
                &[
                    Offer {
                        protocol: ProtocolId::GIKE_UPDATE,
                        transforms: kek,
                    },
                    Offer {
                        protocol: ProtocolId::ESP,
                        transforms: tek,
                    },
                ],
            )
        };
        assert!(offer("xx"));
        assert!(offer("yy"));
        assert!(!offer("xy"), "mixing sets 1 and 2 violates M007");
    }

    #[test]
    fn types_not_listed_are_not_restricted() {
        let kwa = |id| Transform::kwa(id);
        let sag = SaPayload {
            proposals: vec![proposal(
                1,
                ProtocolId::GIKE_UPDATE,
                vec![kwa(KwaId::KW_5649_256)],
            )],
        };
        let kek = |k| {
            [
                Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
                kwa(k),
                Transform::gcauth_implicit(),
            ]
        };
        let ok = |want: &[Transform]| {
            acceptable(
                &sag,
                &[Offer {
                    protocol: ProtocolId::GIKE_UPDATE,
                    transforms: want,
                }],
            )
        };
        assert!(ok(&kek(KwaId::KW_5649_256)));
        assert!(!ok(&kek(KwaId::KW_5649_128)));
    }

    #[test]
    fn key_length_must_match() {
        let sag = SaPayload {
            proposals: vec![proposal(
                1,
                ProtocolId::ESP,
                vec![Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128))],
            )],
        };
        let want = [Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256))];
        assert!(!acceptable(
            &sag,
            &[Offer {
                protocol: ProtocolId::ESP,
                transforms: &want
            }]
        ));
    }
}
