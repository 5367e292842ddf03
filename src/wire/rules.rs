//! Which payloads and attributes each G-IKEv2 exchange may carry: the
//! message layouts of §2.3–§2.4 and Tables 2 and 3 of §5.

use super::DecodeError;
use super::gsa::{Gsa, SaRef};
use super::kd::Kd;
use super::payload::Payload;
use crate::iana::{ExchangeType, GcauthId, NotifyType, PayloadType, TransformType};

/// Whether a message is a request or a response of its exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

/// Checks the decrypted payloads of a G-IKEv2 message against the rules of
/// its exchange. IKE payloads charon owns (IDi, CERT, AUTH of GSA_AUTH…)
/// pass through unchecked.
pub fn check_exchange(
    exchange: ExchangeType,
    dir: Direction,
    payloads: &[Payload],
) -> Result<(), DecodeError> {
    let count = |ty: PayloadType| payloads.iter().filter(|p| p.ty() == ty).count();
    let at_most_one = |ty: PayloadType, what: &'static str| match count(ty) {
        0 | 1 => Ok(()),
        _ => Err(DecodeError::Duplicate { what }),
    };
    let none_of = |ty: PayloadType, what: &'static str, reason: &'static str| match count(ty) {
        0 => Ok(()),
        _ => Err(DecodeError::NotAllowed { what, reason }),
    };
    let gsa = payloads.iter().find_map(|p| match p {
        Payload::Gsa(g) => Some(g),
        _ => None,
    });
    let kd = payloads.iter().find_map(|p| match p {
        Payload::Kd(k) => Some(k),
        _ => None,
    });
    none_of(PayloadType::SK, "Encrypted payload", "nested inside SK")?;
    none_of(
        PayloadType::SKF,
        "Encrypted Fragment payload",
        "nested inside SK",
    )?;
    at_most_one(PayloadType::GSA, "GSA payload")?;
    at_most_one(PayloadType::KD, "KD payload")?;
    if gsa.is_some() != kd.is_some() {
        return Err(DecodeError::Missing {
            what: "GSA and KD payloads travel together",
        });
    }
    let registration = [ExchangeType::GSA_AUTH, ExchangeType::GSA_REGISTRATION];

    match (exchange, dir) {
        (e, Direction::Request) if registration.contains(&e) => {
            if count(PayloadType::IDG) != 1 {
                return Err(DecodeError::Missing {
                    what: "exactly one IDg payload in a registration request",
                });
            }
            at_most_one(PayloadType::SA, "SAg payload")?;
            let senders = payloads
                .iter()
                .filter(|p| matches!(p, Payload::Notify(n) if n.ty == NotifyType::GROUP_SENDER))
                .count();
            if senders > 1 {
                return Err(DecodeError::Duplicate {
                    what: "GROUP_SENDER notification",
                });
            }
            none_of(PayloadType::GSA, "GSA payload", "sent only by the GCKS")?;
            none_of(
                PayloadType::DELETE,
                "Delete payload",
                "not part of a registration",
            )
        }
        (e, Direction::Response) if registration.contains(&e) => {
            none_of(PayloadType::IDG, "IDg payload", "sent only by the GM")?;
            none_of(PayloadType::SA, "SAg payload", "sent only by the GM")?;
            none_of(
                PayloadType::DELETE,
                "Delete payload",
                "not part of a registration",
            )?;
            let error = payloads
                .iter()
                .any(|p| matches!(p, Payload::Notify(n) if n.is_error()));
            match (gsa, kd) {
                (Some(_), _) if error => Err(DecodeError::NotAllowed {
                    what: "GSA and KD payloads",
                    reason: "an error response carries none (§2.3.1)",
                }),
                (Some(g), Some(k)) => check_registration_policy(g, k),
                _ => Ok(()),
            }
        }
        (ExchangeType::GSA_REKEY, Direction::Request) => {
            none_of(PayloadType::IDG, "IDg payload", "not part of GSA_REKEY")?;
            none_of(PayloadType::SA, "SAg payload", "not part of GSA_REKEY")?;
            at_most_one(PayloadType::AUTH, "AUTH payload")?;
            if gsa.is_none() && count(PayloadType::DELETE) == 0 {
                return Err(DecodeError::Missing {
                    what: "GSA and KD, or Delete, in GSA_REKEY",
                });
            }
            match (gsa, kd) {
                (Some(g), Some(k)) => check_rekey_policy(g, k, true),
                _ => Ok(()),
            }
        }
        (ExchangeType::GSA_INBAND_REKEY, Direction::Request) => {
            none_of(
                PayloadType::IDG,
                "IDg payload",
                "not part of GSA_INBAND_REKEY",
            )?;
            none_of(
                PayloadType::SA,
                "SAg payload",
                "not part of GSA_INBAND_REKEY",
            )?;
            none_of(
                PayloadType::AUTH,
                "AUTH payload",
                "not part of GSA_INBAND_REKEY",
            )?;
            if gsa.is_none() && count(PayloadType::DELETE) == 0 {
                return Err(DecodeError::Missing {
                    what: "GSA and KD, or Delete, in GSA_INBAND_REKEY",
                });
            }
            match (gsa, kd) {
                (Some(g), Some(k)) => check_rekey_policy(g, k, false),
                _ => Ok(()),
            }
        }
        (ExchangeType::GSA_INBAND_REKEY, Direction::Response) => {
            if payloads.iter().any(|p| !matches!(p, Payload::Notify(_))) {
                return Err(DecodeError::NotAllowed {
                    what: "GSA_INBAND_REKEY response payloads",
                    reason: "the response is empty but for notifications (§2.4.2)",
                });
            }
            Ok(())
        }
        (e, _) => Err(DecodeError::UnexpectedExchange(e)),
    }
}

/// Every key bag names a policy of the same message; when `all_keyed`,
/// every SA policy also has its key bag.
fn check_bags_match(gsa: &Gsa, kd: &Kd, all_keyed: bool) -> Result<(), DecodeError> {
    let policies: Vec<SaRef> = gsa.sa_policies().map(|p| p.sa).collect();
    if kd.group_bags().any(|b| !policies.contains(&b.sa)) {
        return Err(DecodeError::NotAllowed {
            what: "Group Key Bag",
            reason: "its SA has no policy in the GSA payload",
        });
    }
    if all_keyed && policies.iter().any(|sa| kd.bag_for(sa).is_none()) {
        return Err(DecodeError::Missing {
            what: "Group Key Bag for a GSA policy",
        });
    }
    Ok(())
}

/// A registration response: Table 2 if it sets up a Rekey SA (multicast
/// rekey), Table 3 otherwise (inband rekey).
fn check_registration_policy(gsa: &Gsa, kd: &Kd) -> Result<(), DecodeError> {
    check_bags_match(gsa, kd, true)?;
    let member = kd.member_bag();
    let auth_key = member.is_some_and(|m| m.auth_key.is_some());
    let sender_ids = member.is_some_and(|m| !m.sender_ids.is_empty());
    let bits = gsa.group_wide().is_some_and(|g| g.sender_id_bits.is_some());
    if bits != sender_ids {
        return Err(DecodeError::NotAllowed {
            what: "GWP_SENDER_ID_BITS / GM_SENDER_ID",
            reason: "each MUST be present exactly when the other is (§5 note 1)",
        });
    }
    if kd.group_bags().any(|b| b.sa_keys.len() != 1) {
        return Err(DecodeError::Duplicate {
            what: "SA_KEY in a registration key bag",
        });
    }
    match gsa.kek() {
        Some(kek) => {
            if gsa.sa_policies().any(|p| p.key_lifetime().is_none()) {
                return Err(DecodeError::Missing {
                    what: "GSA_KEY_LIFETIME (Table 2)",
                });
            }
            let gcauth = kek
                .transform(TransformType::GCAUTH)
                .ok_or(DecodeError::Missing {
                    what: "GCAUTH transform of the Rekey SA at registration",
                })?;
            let signed = GcauthId(gcauth.id) == GcauthId::DIGITAL_SIGNATURE;
            if signed != auth_key {
                return Err(DecodeError::NotAllowed {
                    what: "AUTH_KEY",
                    reason: "present exactly when GCAUTH is Digital Signature (§5 note 4)",
                });
            }
            Ok(())
        }
        None => {
            if gsa.sa_policies().any(|p| p.next_spis().next().is_some()) {
                return Err(DecodeError::NotAllowed {
                    what: "GSA_NEXT_SPI",
                    reason: "not used with inband rekey (Table 3)",
                });
            }
            if member.is_some_and(|m| !m.wrap_keys.is_empty() || m.auth_key.is_some()) {
                return Err(DecodeError::NotAllowed {
                    what: "WRAP_KEY / AUTH_KEY",
                    reason: "not used with inband rekey (Table 3)",
                });
            }
            Ok(())
        }
    }
}

/// GSA_REKEY (Table 2, `multicast`) or GSA_INBAND_REKEY (Table 3).
fn check_rekey_policy(gsa: &Gsa, kd: &Kd, multicast: bool) -> Result<(), DecodeError> {
    check_bags_match(gsa, kd, !multicast)?;
    if gsa
        .sa_policies()
        .any(|p| p.transform(TransformType::GCAUTH).is_some())
    {
        return Err(DecodeError::NotAllowed {
            what: "GCAUTH transform",
            reason: "appears only at registration (§4.4.2.1.1)",
        });
    }
    if gsa.group_wide().is_some_and(|g| g.sender_id_bits.is_some()) {
        return Err(DecodeError::NotAllowed {
            what: "GWP_SENDER_ID_BITS",
            reason: "not part of rekey operations (§5)",
        });
    }
    if let Some(m) = kd.member_bag() {
        // A rekey's Member Key Bag may carry only WRAP_KEY and AUTH_KEY:
        // nothing specific to one GM (§2.4.1, M017; see docs/conformance.md
        // for how M076 is read).
        if !m.sender_ids.is_empty() {
            return Err(DecodeError::NotAllowed {
                what: "GM_SENDER_ID",
                reason: "MUST NOT appear in rekey operations (§4.5.3.3)",
            });
        }
        if !multicast && (!m.wrap_keys.is_empty() || m.auth_key.is_some()) {
            return Err(DecodeError::NotAllowed {
                what: "WRAP_KEY / AUTH_KEY",
                reason: "not used with inband rekey (Table 3)",
            });
        }
    }
    if multicast {
        if gsa.sa_policies().any(|p| p.key_lifetime().is_none()) {
            return Err(DecodeError::Missing {
                what: "GSA_KEY_LIFETIME (Table 2)",
            });
        }
    } else {
        if gsa
            .sa_policies()
            .any(|p| p.next_spis().next().is_some() || p.initial_message_id().is_some())
        {
            return Err(DecodeError::NotAllowed {
                what: "GSA_NEXT_SPI / GSA_INITIAL_MESSAGE_ID",
                reason: "not used with inband rekey (Table 3)",
            });
        }
        if kd.group_bags().any(|b| b.sa_keys.len() != 1) {
            return Err(DecodeError::Duplicate {
                what: "SA_KEY in a GSA_INBAND_REKEY key bag",
            });
        }
    }
    Ok(())
}
