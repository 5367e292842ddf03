//! Whole groups in one process: a GCKS engine and GM engines on a virtual
//! clock, their payloads crossing the wire codec, each GM's kernel SA table
//! modelled from the engine's install and delete actions.

mod common;

use common::{Sim, config, group_id, receiver, sender, sender_config};
use gikev2::crypto::{
    CryptoError, EncrAlg, IntegAlg, KeyWrapAlg, Secret, SeededRng, SkProtection, rekey_keymat_len,
};
use gikev2::gcks::{Gcks, MemberId};
use gikev2::gm::{Gm, GmAction, GmError, MembershipConfig, ReregisterReason, Role, SaDirection};
use gikev2::iana::{EncrId, ExchangeType, IntegId, KwaId, NotifyType, SnId};
use gikev2::policy::RekeyAuth;
use gikev2::policy::{Delivery, KeyManagement};
use gikev2::rekey_message::RekeyError;
use gikev2::rekey_message::{self, RekeySigner};
use gikev2::wire::{
    GroupKeyBag, GroupPolicy, Gsa, GsaAttr, GsaPolicy, Kd, KeyBag, Payload, RekeySpi, SaRef,
    TrafficSelector, Transform, WrappedKey,
};

const LKH4: KeyManagement = KeyManagement::Lkh { degree: 4 };

/// The Data-Security SAs every listed member has inbound, which must agree.
fn common_tek(sim: &Sim, who: impl Iterator<Item = usize>) -> Vec<(SaRef, Vec<u8>)> {
    let mut agreed: Option<Vec<(SaRef, Vec<u8>)>> = None;
    for i in who {
        let mine = sim.inbound(i);
        match &agreed {
            None => agreed = Some(mine),
            Some(a) => assert_eq!(&mine, a, "member {i} disagrees"),
        }
    }
    agreed.unwrap()
}

#[test]
fn thousand_members_follow_rekeys_and_lose_an_excluded_one() {
    let mut sim = Sim::new(config(LKH4, 2000), 1);
    for i in 0..1000 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    // The join flush moves everyone to the Rekey SA joiners were given.
    sim.advance(2_000);
    let before = common_tek(&sim, 0..1000);
    assert_eq!(before.len(), 1, "one TEK, installed inbound everywhere");
    assert_eq!(before[0].1.len(), 36, "AES-GCM-256 key and 4-octet salt");
    let status = &sim.gcks.status(sim.now)[0];
    assert_eq!(status.members.len(), 1000);
    assert!(sim.members.iter().all(|m| m.rekey_errors.is_empty()));

    let excluded = 500;
    let sent_before = sim.sent.len();
    sim.gcks
        .exclude(sim.now, &group_id(), sim.members[excluded].id)
        .unwrap();
    sim.pump();
    // Two messages (§3.2.1): the new KEK on the old one, then the new TEK
    // on the new KEK only.
    assert_eq!(sim.sent.len() - sent_before, 2);
    sim.advance(10_000); // past ATD and DTD, retransmissions included

    let others = (0..1000).filter(|&i| i != excluded);
    let after = common_tek(&sim, others.clone());
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].0, before[0].0, "a new TEK SPI");
    assert_ne!(after[0].1, before[0].1, "new TEK keys");
    let x = &sim.members[excluded];
    assert!(!x.kernel.keys().any(|(sa, _)| *sa == after[0].0));
    assert!(
        !x.rekey_errors.is_empty(),
        "the excluded GM could not follow"
    );
    assert!(x.reregister.contains(&ReregisterReason::Excluded));
    assert!(
        others
            .clone()
            .all(|i| sim.members[i].rekey_errors.is_empty())
    );

    // A following TEK rekey: everyone but the excluded member installs it.
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(10_000);
    let next = common_tek(&sim, others.clone());
    assert_ne!(next[0].0, after[0].0);
    assert!(
        !sim.members[excluded]
            .kernel
            .keys()
            .any(|(sa, _)| *sa == next[0].0)
    );
    assert!(
        others
            .clone()
            .all(|i| sim.members[i].rekey_errors.is_empty())
    );

    // The exclusion sticks: registering again is refused until the
    // operator readmits the identity.
    let err = sim
        .register(excluded, ExchangeType::GSA_AUTH)
        .expect_err("an excluded member is refused");
    assert!(
        matches!(err, GmError::Refused(NotifyType::AUTHORIZATION_FAILED)),
        "{err:?}"
    );
    let identity = sim.members[excluded].identity.clone();
    assert_eq!(sim.gcks.status(sim.now)[0].excluded, [identity.as_str()]);
    sim.gcks.readmit(&group_id(), &identity).unwrap();
    sim.register(excluded, ExchangeType::GSA_AUTH).unwrap();
    assert!(sim.gcks.status(sim.now)[0].excluded.is_empty());
}

#[test]
fn exclusion_rekey_grows_with_log_n() {
    let d = 4;
    let mut counts = Vec::new();
    for n in [16usize, 256, 2048] {
        let mut sim = Sim::new(config(LKH4, n as u32), 2);
        for i in 0..n {
            sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
        }
        sim.advance(2_000);
        sim.gcks
            .exclude(sim.now, &group_id(), sim.members[n / 3].id)
            .unwrap();
        let rekeys = &sim.gcks.status(sim.now)[0].recent_rekeys;
        // The exclusion message is the one before the TEK rekey.
        let exclusion = rekeys[rekeys.len() - 2];
        let levels = (n as f64).log(d as f64).ceil() as usize;
        // d·log_d N tree keys plus the new SA key under each top key.
        assert!(
            exclusion.wrapped_keys <= d * levels + d,
            "N={n}: {} wrapped keys",
            exclusion.wrapped_keys
        );
        counts.push(exclusion.wrapped_keys);
    }
    assert!(
        counts[0] < counts[1] && counts[1] < counts[2],
        "not growing with N: {counts:?}"
    );
}

/// Two GCKS engines with the same seed and the same inputs hold the same
/// Rekey SA keys; only their signing keys differ. A rekey from the second
/// is a perfect forgery but for the signature.
#[test]
fn replays_tampering_and_forged_signatures_change_nothing() {
    let mut sim = Sim::new(config(LKH4, 16), 3);
    for i in 0..3 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    sim.advance(2_000);
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.pump();
    let genuine = sim.sent.last().unwrap().clone();
    sim.advance(10_000);
    let snapshot = |sim: &Sim| {
        sim.members
            .iter()
            .map(|m| (m.gm.status(sim.now), m.kernel.clone()))
            .collect::<Vec<_>>()
    };

    let before = snapshot(&sim);
    let gm = &mut sim.members[0].gm;
    // Replay: the same Message ID again (M109).
    let err = gm.handle_rekey(sim.now, &genuine).unwrap_err();
    assert!(matches!(err, GmError::Replay { .. }), "{err}");
    // Any flipped bit: header, SK header, IV, ciphertext or ICV.
    for bit in [0, 130, 200, 259, 300, genuine.len() * 8 - 1] {
        let mut bad = genuine.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(gm.handle_rekey(sim.now, &bad).is_err(), "bit {bit}");
    }
    assert!(gm.poll_action().is_none(), "nothing to install or delete");
    assert_eq!(snapshot(&sim), before);

    // A rekey the GM has not seen yet, but with an older Message ID than
    // the last it took: rejected before any crypto.
    let older = sim.sent[sim.sent.len() - 4].clone();
    let err = sim.members[1].gm.handle_rekey(sim.now, &older).unwrap_err();
    assert!(
        matches!(err, GmError::Replay { .. } | GmError::UnknownRekeySa(_)),
        "{err}"
    );

    // The forger: same seed, same history, another signing key.
    let mut forger = Gcks::new(Box::new(SeededRng::from_u64(3)));
    forger.add_group(0, config(LKH4, 16)).unwrap();
    let mut fsim = Sim::new(config(LKH4, 16), 3);
    fsim.gcks = forger;
    for i in 0..3 {
        fsim.join(&format!("gm{i}@example.com"), receiver())
            .unwrap();
    }
    fsim.advance(2_000);
    fsim.gcks.rekey(fsim.now, &group_id()).unwrap();
    fsim.pump();
    fsim.advance(10_000);
    fsim.gcks.rekey(fsim.now, &group_id()).unwrap();
    fsim.pump();
    let forged = fsim.sent.last().unwrap().clone();
    assert_eq!(forged.len(), genuine.len(), "same layout, same keys");
    let before = snapshot(&sim);
    let err = sim.members[2]
        .gm
        .handle_rekey(sim.now, &forged)
        .unwrap_err();
    assert!(
        matches!(
            err,
            GmError::Rekey(RekeyError::Crypto(CryptoError::BadSignature))
        ),
        "{err}"
    );
    assert!(sim.members[2].gm.poll_action().is_none());
    assert_eq!(snapshot(&sim), before);
}

/// Issue 15, item 3: senders of a counter-mode cipher never share an SA.
/// Each of twenty senders gets an SA of its own (its own SPI and keys, the
/// source selector narrowed to its address, 32-bit sequential numbers) and
/// sends on it alone; every member receives on all twenty; Sender-IDs are
/// still handed out and never repeat (§2.5.1).
#[test]
fn senders_never_share_an_sa_or_a_sender_id() {
    let mut sim = Sim::new(sender_config(LKH4, 64), 4);
    for i in 0..20 {
        sim.join(&format!("sender{i}@example.com"), sender())
            .unwrap();
    }
    sim.join("gm@example.com", receiver()).unwrap();
    sim.advance(5_000);
    let mut own = Vec::new();
    for (i, m) in sim.members[..20].iter().enumerate() {
        let outbound: Vec<_> = m
            .kernel
            .iter()
            .filter(|((_, d), _)| *d == SaDirection::Outbound)
            .collect();
        assert_eq!(outbound.len(), 1, "{} sends on one SA", m.identity);
        let ((sa, _), t) = outbound[0];
        assert_eq!(t.src.single_addr(), Some(Sim::addr_of(i)), "narrowed to it");
        own.push((*sa, t.encr_key.expose().to_vec()));
    }
    let mut spis: Vec<_> = own.iter().map(|(sa, _)| *sa).collect();
    spis.sort();
    spis.dedup();
    assert_eq!(spis.len(), 20, "twenty SAs");
    let mut keys: Vec<_> = own.iter().map(|(_, k)| k.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 20, "twenty keys");
    // Everyone receives on every sender's SA, with a replay window.
    for m in &sim.members {
        for (sa, _) in &own {
            let t = m
                .kernel
                .get(&(*sa, SaDirection::Inbound))
                .unwrap_or_else(|| panic!("{} receives {sa:?}", m.identity));
            assert_eq!(t.replay_window, 32);
        }
    }
    let ids: Vec<u32> = sim.members[..20]
        .iter()
        .flat_map(|m| m.gm.status(sim.now).sender_ids)
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "{ids:?}");
    // Registering again hands out fresh IDs, never reused, and keeps its SA.
    sim.register(0, ExchangeType::GSA_REGISTRATION).unwrap();
    let again = sim.members[0].gm.status(sim.now).sender_ids[0];
    assert!(!ids.contains(&again));
    assert!(
        sim.members[0]
            .kernel
            .contains_key(&(own[0].0, SaDirection::Outbound))
    );
    // The receiver installs nothing outbound.
    assert!(
        sim.members[20]
            .kernel
            .keys()
            .all(|(_, d)| *d == SaDirection::Inbound)
    );
    assert!(sim.members.iter().all(|m| m.rekey_errors.is_empty()));
}

/// The life of a per-sender SA: announced to members already there when
/// its sender joins (after the pending join flush, so that joiners holding
/// only the joiners' Rekey SA hear of it too), rekeyed on its own lifetime
/// with its sender kept, replaced when its sender comes back from another
/// address, and deleted when its sender leaves.
#[test]
fn a_per_sender_sa_follows_its_sender() {
    let mut cfg = sender_config(LKH4, 16);
    cfg.teks[0].lifetime_secs = 600;
    let mut sim = Sim::new(cfg, 35);
    sim.join("gm0@example.com", receiver()).unwrap();
    // gm1 joins while the flush for gm0 is pending: holds the joiners' SA.
    sim.join("gm1@example.com", receiver()).unwrap();
    let s = sim.join("sender0@example.com", sender()).unwrap();
    sim.advance(5_000);
    let held = common_tek(&sim, 0..3);
    assert_eq!(held.len(), 1, "the sender's SA, at every member");
    let first = held[0].0;
    assert!(
        sim.members[s]
            .kernel
            .contains_key(&(first, SaDirection::Outbound))
    );
    for m in &sim.members {
        assert!(
            m.rekey_errors.is_empty(),
            "{}: {:?}",
            m.identity,
            m.rekey_errors
        );
    }

    // Its lifetime: replaced for the same sender, everyone follows.
    sim.advance(600_000);
    let rekeyed = common_tek(&sim, 0..3);
    assert_eq!(rekeyed.len(), 1);
    assert_ne!(rekeyed[0].0, first);
    assert!(
        sim.members[s]
            .kernel
            .contains_key(&(rekeyed[0].0, SaDirection::Outbound))
    );

    // It comes back from another address: a new SA, the old one deleted.
    let moved = std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 9, 9));
    sim.members[s].addr = moved;
    sim.members[s].gm.set_local_address(Some(moved));
    sim.register(s, ExchangeType::GSA_REGISTRATION).unwrap();
    sim.advance(10_000);
    let now_held = common_tek(&sim, 0..3);
    assert_eq!(now_held.len(), 1, "{now_held:?}");
    assert_ne!(now_held[0].0, rekeyed[0].0);
    let out: Vec<_> = sim.members[s]
        .kernel
        .iter()
        .filter(|((_, d), _)| *d == SaDirection::Outbound)
        .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.src.single_addr(), Some(moved));

    // It leaves: its SA is deleted at every member, after DTD.
    let leave = common::through_wire(
        &sim.members[s]
            .gm
            .leave_payloads(NotifyType::REGISTRATION_FAILED),
    );
    let m = &sim.members[s];
    sim.gcks.handle_registration(
        sim.now,
        &gikev2::gcks::Registration {
            member: m.id,
            identities: &["sender0@example.com"],
            peer: Some(m.addr),
            exchange: ExchangeType::GSA_REGISTRATION,
            payloads: &leave,
            ike: Sim::ike(&m.sk_d.clone()),
        },
    );
    sim.pump();
    sim.advance(10_000);
    assert!(sim.inbound(0).is_empty() && sim.inbound(1).is_empty());
    assert!(sim.gcks.status(sim.now)[0].teks.is_empty());
    // (the one that left cannot follow the key tree any more)
    assert!(sim.members[..s].iter().all(|m| m.rekey_errors.is_empty()));
}

/// M061: an SA announced as 32-bit sequential has exactly one sender; a
/// second sender is refused with a notification and a reason for the log,
/// the first one coming back is not.
#[test]
fn a_single_sender_sa_refuses_a_second_sender() {
    let mut cfg = sender_config(LKH4, 16);
    cfg.teks[0].per_sender = false;
    cfg.teks[0].single_sender = true;
    let mut sim = Sim::new(cfg, 36);
    sim.join("sender0@example.com", sender()).unwrap();
    let second = sim.add("sender1@example.com", sender());
    let request = common::through_wire(&sim.members[second].gm.registration_payloads());
    let m = &sim.members[second];
    let (answer, why) = sim.gcks.answer_registration(
        sim.now,
        &gikev2::gcks::Registration {
            member: m.id,
            identities: &["sender1@example.com"],
            peer: Some(m.addr),
            exchange: ExchangeType::GSA_AUTH,
            payloads: &request,
            ike: Sim::ike(&m.sk_d.clone()),
        },
    );
    assert!(
        matches!(answer.as_slice(), [Payload::Notify(n)] if n.ty == NotifyType::REGISTRATION_FAILED),
        "{answer:?}"
    );
    let why = why.unwrap();
    assert!(
        why.contains("single sender") && why.contains("sender0@example.com"),
        "{why}"
    );
    // A receiver, and the sender itself again, are welcome.
    sim.join("gm@example.com", receiver()).unwrap();
    sim.register(0, ExchangeType::GSA_REGISTRATION).unwrap();
    let status = &sim.gcks.status(sim.now)[0];
    assert_eq!(status.members.len(), 2);
}

/// When the Sender-IDs run out the GCKS excludes every member and starts
/// over (§2.5.1 item 5, M032): the sender that ran them out registers
/// under new SAs with Sender-IDs from zero, everyone else is told to
/// register again, and once they have, the group shares the new SAs and no
/// two senders share a Sender-ID.
#[test]
fn exhausted_sender_ids_exclude_everyone_and_start_over() {
    let mut cfg = sender_config(LKH4, 16);
    cfg.group_wide.sender_id_bits = Some(2);
    let mut sim = Sim::new(cfg, 32);
    sim.join("gm0@example.com", receiver()).unwrap();
    for i in 0..4 {
        sim.join(&format!("sender{i}@example.com"), sender())
            .unwrap();
    }
    sim.advance(5_000);
    // Four senders, four SAs, which every member holds.
    let old: Vec<SaRef> = common_tek(&sim, 0..5)
        .into_iter()
        .map(|(sa, _)| sa)
        .collect();
    assert_eq!(old.len(), 4);
    let sender_id = |sim: &Sim, i: usize| {
        let ids = sim.members[i].gm.status(sim.now).sender_ids;
        assert_eq!(ids.len(), 1, "{}: {ids:?}", sim.members[i].identity);
        ids[0]
    };
    let mut ids: Vec<u32> = (1..5).map(|i| sender_id(&sim, i)).collect();
    ids.sort();
    assert_eq!(ids, [0, 1, 2, 3], "all of the 2-bit space");

    // A fifth sender needs a Sender-ID there is none of.
    let fifth = sim.join("sender4@example.com", sender()).unwrap();
    assert_eq!(sender_id(&sim, fifth), 0, "counted from zero again");
    let new = common_tek(&sim, [fifth].into_iter());
    assert_eq!(new.len(), 1, "its own SA only");
    assert!(!old.contains(&new[0].0), "under new SAs");
    let status = &sim.gcks.status(sim.now)[0];
    assert_eq!(status.members.len(), 1, "{:?}", status.members);
    sim.advance(30_000);
    for i in 0..5 {
        let m = &sim.members[i];
        assert_eq!(m.reregister, [ReregisterReason::Excluded], "{}", m.identity);
        assert!(
            m.kernel.keys().all(|(sa, _)| !old.contains(sa)),
            "{}: the old SAs are deleted",
            m.identity
        );
    }

    // The receiver and three of the senders register again.
    for i in 0..4 {
        sim.register(i, ExchangeType::GSA_AUTH).unwrap();
    }
    sim.advance(5_000);
    let now_held = common_tek(&sim, [0, 1, 2, 3, fifth].into_iter());
    assert_eq!(now_held.len(), 4, "the SAs of four senders");
    assert!(now_held.contains(&new[0]));
    assert!(now_held.iter().all(|(sa, _)| !old.contains(sa)));
    let mut ids: Vec<u32> = [1, 2, 3, fifth]
        .iter()
        .map(|&i| sender_id(&sim, i))
        .collect();
    ids.sort();
    assert_eq!(ids, [0, 1, 2, 3], "no Sender-ID shared under the new SAs");
    assert!(sim.members.iter().all(|m| m.rekey_errors.is_empty()));
}

/// The same over kept IKE SAs: each inband member gets the exclusion by
/// GSA_INBAND_REKEY and registers again.
#[test]
fn exhausted_sender_ids_exclude_inband_members_too() {
    let mut cfg = sender_config(KeyManagement::Flat, 8);
    cfg.rekey = None;
    cfg.delivery = Delivery::Inband;
    cfg.group_wide.sender_id_bits = Some(1);
    let mut sim = Sim::new(cfg, 34);
    // No SA to give a receiver before a sender registered (§4.4.1).
    let early = sim.join("gm0@example.com", receiver()).unwrap_err();
    assert!(matches!(early, GmError::Refused(n) if n == NotifyType::REGISTRATION_FAILED));
    sim.join("sender0@example.com", sender()).unwrap();
    sim.register(0, ExchangeType::GSA_AUTH).unwrap();
    sim.join("sender1@example.com", sender()).unwrap();
    // sender1's SA reached the two members already there, inband.
    let told: Vec<MemberId> = std::mem::take(&mut sim.inband)
        .iter()
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(told, [sim.members[0].id, sim.members[1].id]);
    let old: Vec<SaRef> = common_tek(&sim, [0].into_iter())
        .into_iter()
        .map(|(sa, _)| sa)
        .collect();
    let third = sim.join("sender2@example.com", sender()).unwrap();
    let told: Vec<MemberId> = sim.inband.iter().map(|(m, _)| *m).collect();
    assert_eq!(
        told,
        [sim.members[0].id, sim.members[1].id, sim.members[2].id]
    );
    for (member, payloads) in std::mem::take(&mut sim.inband) {
        let payloads = common::through_wire(&payloads);
        let m = sim.members.iter_mut().find(|m| m.id == member).unwrap();
        m.gm.handle_inband_rekey(sim.now, &payloads, Sim::ike(&m.sk_d))
            .unwrap();
    }
    sim.advance(30_000);
    for i in 0..3 {
        let m = &sim.members[i];
        assert_eq!(m.reregister, [ReregisterReason::Excluded], "{}", m.identity);
        assert!(
            m.kernel.keys().all(|(sa, _)| !old.contains(sa)),
            "{}",
            m.identity
        );
    }
    assert!(!old.contains(&common_tek(&sim, [third].into_iter())[0].0));
}

#[test]
fn unauthorized_and_unknown_groups_are_refused() {
    let mut sim = Sim::new(config(LKH4, 2), 5);
    let err = sim.join("mallory@example.org", receiver()).unwrap_err();
    assert!(
        matches!(err, GmError::Refused(n) if n == gikev2::iana::NotifyType::AUTHORIZATION_FAILED)
    );
    // A receiver identity asking to send is refused too.
    let err = sim.join("gm@example.com", sender()).unwrap_err();
    assert!(
        matches!(err, GmError::Refused(n) if n == gikev2::iana::NotifyType::AUTHORIZATION_FAILED)
    );
    sim.join("gm1@example.com", receiver()).unwrap();
    sim.join("gm2@example.com", receiver()).unwrap();
    // The member limit.
    let err = sim.join("gm3@example.com", receiver()).unwrap_err();
    assert!(
        matches!(err, GmError::Refused(n) if n == gikev2::iana::NotifyType::REGISTRATION_FAILED)
    );
    assert!(sim.members[..2].iter().all(|m| m.kernel.is_empty()));
}

/// Two registrations in parallel (M011, M012): a response whose
/// GSA_INITIAL_MESSAGE_ID is older than a GSA_REKEY the GM has since taken
/// must not reopen the Message IDs in between to replay.
#[test]
fn stale_initial_message_id_does_not_reopen_replays() {
    let mut sim = Sim::new(config(KeyManagement::Flat, 8), 11);
    let idx = sim.join("gm0@example.com", receiver()).unwrap();
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(1_000);

    // A second registration's response is made now, and delivered late.
    let stale = sim.registration_response(idx, ExchangeType::GSA_REGISTRATION);
    let initial = stale
        .iter()
        .find_map(|p| match p {
            Payload::Gsa(g) => g.policies.iter().find_map(|p| match p {
                GroupPolicy::Sa(p) if matches!(p.sa, SaRef::Rekey(_)) => {
                    Some(p.initial_message_id().unwrap_or(0))
                }
                _ => None,
            }),
            _ => None,
        })
        .expect("a KEK policy");

    // Meanwhile a GSA_REKEY reaches the member.
    let sent = sim.sent.len();
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(1_000);
    // (Copies of the earlier message may be among them: retransmissions.)
    let (message_id, rekey) = sim.sent[sent..]
        .iter()
        .map(|d| (gikev2::rekey_message::peek(d).unwrap().1, d.clone()))
        .max()
        .expect("a GSA_REKEY");
    assert!(message_id >= initial, "{message_id} < {initial}");
    assert!(sim.members[idx].rekey_errors.is_empty());

    let m = &mut sim.members[idx];
    m.gm.handle_registration_response(
        sim.now,
        ExchangeType::GSA_REGISTRATION,
        &stale,
        Sim::ike(&m.sk_d),
    )
    .unwrap();
    let err = m.gm.handle_rekey(sim.now, &rekey).unwrap_err();
    assert!(matches!(err, GmError::Replay { .. }), "{err}");
}

/// A Sender-ID that does not fit GWP_SENDER_ID_BITS is fatal: the response
/// is refused, the GM keeps what it held and registers again (M033).
#[test]
fn sender_id_wider_than_its_bits_is_refused_and_registers_again() {
    let mut sim = Sim::new(sender_config(LKH4, 8), 33);
    let idx = sim.join("sender1@example.com", sender()).unwrap();
    let before = sim.members[idx].kernel.clone();
    assert!(!before.is_empty());

    let mut response = sim.registration_response(idx, ExchangeType::GSA_REGISTRATION);
    let mut widened = 0;
    for p in &mut response {
        if let Payload::Kd(kd) = p {
            for bag in &mut kd.bags {
                if let KeyBag::Member(b) = bag {
                    // The group's Sender-IDs are 8 bits wide (common::config).
                    assert!(b.sender_ids.iter().all(|id| id >> 8 == 0));
                    b.sender_ids = vec![0x100];
                    widened += 1;
                }
            }
        }
    }
    assert_eq!(widened, 1, "a sender's response has a member key bag");

    let m = &mut sim.members[idx];
    let err =
        m.gm.handle_registration_response(
            sim.now,
            ExchangeType::GSA_REGISTRATION,
            &response,
            Sim::ike(&m.sk_d),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            GmError::Unacceptable("Sender-ID wider than GWP_SENDER_ID_BITS")
        ),
        "{err}"
    );
    sim.advance(1);
    let m = &sim.members[idx];
    assert!(m.reregister.contains(&ReregisterReason::SenderIdTooWide));
    assert_eq!(m.kernel, before, "the refused response installed nothing");
}

/// A sender holding no Sender-ID that is handed a counter-mode TEK must not
/// install it and must ask to register again (M025, M026).
/// The GSA and KD of a GSA_INBAND_REKEY that a GCKS (played here) sends
/// on the IKE SA of `sk_d`: AES-GCM SA `sa`, shared by senders (32-bit
/// unspecified numbers), its keys under that IKE SA's GSK_w.
fn shared_gcm_tek(sk_d: &Secret, sa: SaRef, bits: u16) -> Vec<Payload> {
    let gsk_w = Sim::ike(sk_d).default_kwk().unwrap();
    let gcm = EncrAlg::new(EncrId::ENCR_AES_GCM_16, Some(bits)).unwrap();
    let len = gikev2::crypto::data_keymat_len(Some(gcm), IntegAlg::NONE).unwrap();
    let keymat = Secret::new(vec![9; len]);
    vec![
        Payload::Gsa(Gsa {
            policies: vec![GroupPolicy::Sa(GsaPolicy {
                sa,
                src: common::config(LKH4, 1).teks[0].src,
                dst: common::config(LKH4, 1).teks[0].dst,
                transforms: vec![
                    Transform::encr(EncrId::ENCR_AES_GCM_16, Some(bits)),
                    Transform::sn(SnId::UNSPECIFIED32),
                ],
                attrs: vec![],
            })],
        }),
        Payload::Kd(Kd {
            bags: vec![KeyBag::Group(GroupKeyBag {
                sa,
                sa_keys: vec![WrappedKey {
                    key_id: 0,
                    kwk_id: 0,
                    encrypted: KeyWrapAlg::Kw5649_256
                        .wrap(gsk_w.expose(), keymat.expose())
                        .unwrap(),
                }],
                other: vec![],
            })],
        }),
    ]
}

/// A GM never sends on a counter-mode SA several senders share (SN
/// UNSPECIFIED32, as another GCKS may hand out): Linux cannot put its
/// Sender-ID into the IVs. It receives on it, and keeps sending on its own.
#[test]
fn a_sender_does_not_send_on_a_shared_counter_mode_sa() {
    let mut cfg = sender_config(KeyManagement::Flat, 8);
    cfg.rekey = None;
    cfg.delivery = Delivery::Inband;
    let mut sim = Sim::new(cfg, 37);
    let idx = sim.join("sender1@example.com", sender()).unwrap();
    let m = &mut sim.members[idx];
    assert!(
        !m.gm.status(sim.now).sender_ids.is_empty(),
        "it has a Sender-ID"
    );
    let own: Vec<SaRef> = m
        .kernel
        .keys()
        .filter(|(_, d)| *d == SaDirection::Outbound)
        .map(|(sa, _)| *sa)
        .collect();
    assert_eq!(own.len(), 1);

    let shared = SaRef::Esp(0x5a5a_0001);
    let payloads = shared_gcm_tek(&m.sk_d, shared, 256);
    m.gm.handle_inband_rekey(sim.now, &payloads, Sim::ike(&m.sk_d))
        .unwrap();
    sim.pump();
    sim.advance(5_000);
    let m = &sim.members[idx];
    assert!(m.kernel.contains_key(&(shared, SaDirection::Inbound)));
    assert!(!m.kernel.contains_key(&(shared, SaDirection::Outbound)));
    assert!(
        m.kernel.contains_key(&(own[0], SaDirection::Outbound)),
        "its own"
    );
    assert!(m.reregister.is_empty());
}

#[test]
fn sender_without_sender_id_does_not_install_counter_mode_tek() {
    // An inband group with AES-CBC: no Sender-IDs are handed out.
    let mut cfg = sender_config(KeyManagement::Flat, 8);
    cfg.teks[0].per_sender = false;
    cfg.rekey = None;
    cfg.delivery = Delivery::Inband;
    cfg.teks[0].encr = Some((EncrId::ENCR_AES_CBC, Some(128)));
    cfg.teks[0].integ = IntegId::AUTH_HMAC_SHA2_256_128;
    cfg.group_wide.sender_id_bits = None;
    let mut sim = Sim::new(cfg, 6);
    let idx = sim.join("sender1@example.com", sender()).unwrap();
    let m = &mut sim.members[idx];
    assert!(
        m.kernel
            .contains_key(&(m.kernel.keys().next().unwrap().0, SaDirection::Outbound))
    );

    // The GCKS (played here) moves the group to AES-GCM by inband rekey.
    let sa = SaRef::Esp(0x4242_4242);
    let payloads = shared_gcm_tek(&m.sk_d, sa, 128);
    m.gm.handle_inband_rekey(sim.now, &payloads, Sim::ike(&m.sk_d))
        .unwrap();
    sim.pump();
    sim.advance(1);
    let m = &sim.members[idx];
    // M025: none of it, in either direction; M026: it registers again.
    assert!(!m.kernel.contains_key(&(sa, SaDirection::Inbound)));
    assert!(!m.kernel.contains_key(&(sa, SaDirection::Outbound)));
    assert!(m.reregister.contains(&ReregisterReason::NoSenderId));
}

/// A GSA_REKEY's keys are unwrapped with the KWA of the Rekey SA it came
/// on. Here a message on Rekey SA A (KW-AES-256) announces Rekey SA B,
/// whose policy names KW-AES-128; a later message on A still wraps under
/// A's GSK_w with A's KWA, and the GM must take it (the GCKS of this test
/// is played by hand, with the group's signing key).
#[test]
fn rekey_keys_are_unwrapped_with_the_receiving_rekey_sa_kwa() {
    let cfg = config(KeyManagement::Flat, 8);
    let RekeyAuth::Signature(signer) = cfg.rekey.as_ref().unwrap().auth.clone() else {
        panic!("the common group signs its rekeys");
    };
    let mut sim = Sim::new(cfg.clone(), 31);
    let idx = sim.join("gm1@example.com", receiver()).unwrap();
    let a = sim.gcks.status(sim.now)[0].rekey_spi.unwrap();
    let keys = sim.members[idx].gm.rekey_sa_keys(a).unwrap();
    assert_eq!(keys.kwa, KeyWrapAlg::Kw5649_256);
    let sk = SkProtection::new(keys.encr, keys.integ, &keys.gsk_e, &keys.gsk_a).unwrap();
    let wrap_a = |keymat: &Secret| WrappedKey {
        key_id: 0,
        kwk_id: 0,
        encrypted: keys.kwa.wrap(keys.gsk_w.expose(), keymat.expose()).unwrap(),
    };
    let seal = |id: u32, payloads: &[Payload]| {
        rekey_message::seal(
            a,
            id,
            payloads,
            RekeySigner::DigitalSignature(&signer),
            &sk,
            &mut SeededRng::from_u64(u64::from(id) + 1),
        )
        .unwrap()
    };
    let r = cfg.rekey.as_ref().unwrap();

    // Message 0 on A: Rekey SA B, whose policy names KW-AES-128.
    let b = RekeySpi([0x5b; 16]);
    let b_keymat = Secret::new(vec![
        0x42;
        rekey_keymat_len(
            r.encr_alg(),
            r.integ_alg(),
            KeyWrapAlg::Kw5649_128
        )
        .unwrap()
    ]);
    let kek_b = GsaPolicy {
        sa: SaRef::Rekey(b),
        src: TrafficSelector::host(r.src.unwrap().ip(), 17, 848),
        dst: TrafficSelector::host(r.dst.ip(), 17, r.dst.port()),
        transforms: vec![
            Transform::encr(r.encr.0, r.encr.1),
            Transform::kwa(KwaId::KW_5649_128),
        ],
        attrs: vec![GsaAttr::KeyLifetime(3600)],
    };
    let first = seal(
        0,
        &[
            Payload::Gsa(Gsa {
                policies: vec![GroupPolicy::Sa(kek_b)],
            }),
            Payload::Kd(Kd {
                bags: vec![KeyBag::Group(GroupKeyBag {
                    sa: SaRef::Rekey(b),
                    sa_keys: vec![wrap_a(&b_keymat)],
                    other: vec![],
                })],
            }),
        ],
    );
    let m = &mut sim.members[idx];
    m.gm.handle_rekey(sim.now, &first).unwrap();
    assert!(m.gm.rekey_sa_keys(b).is_some(), "B installed");

    // Message 1 on A: a new TEK, under A's GSK_w and A's KWA.
    let tek = &cfg.teks[0];
    let tek_sa = SaRef::Esp(0x0c0f_fee0);
    let tek_keymat = Secret::new(vec![0x17; tek.keymat_len()]);
    let second = seal(
        1,
        &[
            Payload::Gsa(Gsa {
                policies: vec![GroupPolicy::Sa(GsaPolicy {
                    sa: tek_sa,
                    src: tek.src,
                    dst: tek.dst,
                    transforms: tek.transforms(),
                    attrs: vec![GsaAttr::KeyLifetime(3600)],
                })],
            }),
            Payload::Kd(Kd {
                bags: vec![KeyBag::Group(GroupKeyBag {
                    sa: tek_sa,
                    sa_keys: vec![wrap_a(&tek_keymat)],
                    other: vec![],
                })],
            }),
        ],
    );
    m.gm.handle_rekey(sim.now, &second).unwrap();
    sim.pump();
    let installed = &sim.members[idx].kernel[&(tek_sa, SaDirection::Inbound)];
    assert_eq!(
        [installed.encr_key.expose(), installed.integ_key.expose()].concat(),
        tek_keymat.expose()
    );
}

/// §2.4.1.1: a Rekey SA on port 4500 carries the non-ESP marker (four zero
/// octets) before each GSA_REKEY, outside the signed part; members drop it
/// and follow the rekey. No Rekey SA SPI starts with four zero octets.
#[test]
fn gsa_rekey_on_port_4500_carries_the_non_esp_marker() {
    let mut cfg = config(LKH4, 8);
    cfg.rekey.as_mut().unwrap().dst = "239.1.1.2:4500".parse().unwrap();
    let mut sim = Sim::new(cfg, 33);
    for i in 0..3 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    sim.advance(5_000);
    let before = common_tek(&sim, 0..3);
    let sent = sim.sent.len();
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(5_000);
    assert!(sim.sent.len() > sent);
    for d in &sim.sent {
        assert_eq!(d[..4], [0, 0, 0, 0], "the marker");
        assert_ne!(d[4..8], [0, 0, 0, 0], "an SPI never starts like the marker");
        gikev2::rekey_message::peek(&d[4..]).unwrap();
    }
    let after = common_tek(&sim, 0..3);
    assert_ne!(after, before, "every member took the rekey");
    assert!(sim.members.iter().all(|m| m.rekey_errors.is_empty()));
}

#[test]
fn gm_reports_what_it_holds() {
    let mut sim = Sim::new(config(LKH4, 8), 7);
    sim.join("gm1@example.com", receiver()).unwrap();
    let status = sim.members[0].gm.status(sim.now);
    assert!(status.registered);
    assert_eq!(status.rekey_spis.len(), 1);
    assert_eq!(
        status.key_path.len(),
        2,
        "leaf and top key for 8 members, d=4"
    );
    let _ = (
        Gm::new(
            MembershipConfig {
                group: group_id(),
                role: Role {
                    receive: true,
                    send: false,
                },
                sender_ids: 1,
                offer: None,
            },
            Box::new(SeededRng::from_u64(0)),
        ),
        GmAction::Reregister {
            reason: ReregisterReason::Expiring,
        },
    );
}

/// Joins into freed, scattered places of a big tree refresh many nodes; a
/// burst of them must still fit GSA_REKEY's 64 KiB, and members follow.
#[test]
fn a_burst_of_joins_into_a_sparse_tree_fits_in_gsa_rekey() {
    let mut sim = Sim::new(config(LKH4, 20_000), 8);
    for i in 0..3 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    for m in 0..4000 {
        sim.register_silent(1000 + m, &format!("bulk{m}@example.com"));
    }
    sim.advance(2_000);
    for m in (0..4000).step_by(13) {
        sim.gcks
            .exclude(sim.now, &group_id(), gikev2::gcks::MemberId(1000 + m))
            .unwrap();
    }
    sim.pump();
    let before = sim.sent.len();
    for m in 0..400 {
        sim.register_silent(100_000 + m, &format!("late{m}@example.com"));
    }
    sim.advance(10_000); // the flushes, then DTD for the old Rekey SAs
    assert!(sim.sent.len() > before, "joins were flushed");
    let biggest = sim.sent.iter().map(Vec::len).max().unwrap();
    assert!(biggest < 65_535, "{biggest} octets");
    assert!(sim.members.iter().all(|m| m.rekey_errors.is_empty()));
    let kek = sim.gcks.status(sim.now)[0].rekey_spi.unwrap();
    assert!(sim.members.iter().all(|m| m.listening == [kek]));
    common_tek(&sim, 0..3);
}

/// A GM that missed the message moving the group to a new Rekey SA sees
/// the next one arrive on the SPI announced in GSA_NEXT_SPI, asks to
/// register again (§4.4.2.2.3), and is back in step afterwards.
#[test]
fn lost_rekey_is_noticed_through_gsa_next_spi() {
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.rekey.as_mut().unwrap().lifetime_secs = 600;
    cfg.teks[0].lifetime_secs = 10_000;
    let mut sim = Sim::new(cfg, 9);
    for i in 0..3 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    sim.dropped.push(1);
    sim.advance(560_000); // the Rekey SA is replaced 60 s before expiry
    sim.dropped.clear();
    assert!(sim.members[1].reregister.is_empty());
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.pump();
    assert!(sim.members[1].reregister.is_empty(), "not at once");
    sim.advance(5_000); // the random wait
    assert_eq!(sim.members[1].reregister, [ReregisterReason::LostRekey]);
    assert!(sim.members[0].reregister.is_empty());

    sim.register(1, ExchangeType::GSA_REGISTRATION).unwrap();
    sim.advance(10_000);
    common_tek(&sim, 0..3);
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(10_000);
    common_tek(&sim, 0..3);
    assert!(sim.members.iter().all(|m| m.rekey_errors.is_empty()));
}

/// The registration storm of issue 14: answers built before a TEK rekey
/// reach their members only after the rekey and its copies have gone. They
/// hold the joiners' Rekey SA, on which the rekey was Message ID 0, and
/// take ID 1 (the next join flush) as if nothing was missing. Each must
/// notice the gap in the Message IDs and register again after a random
/// wait, each its own, and end up with the group's current TEK.
#[test]
fn answers_taken_after_a_rekey_notice_the_gap_and_register_again() {
    let mut cfg = config(LKH4, 100);
    cfg.teks[0].lifetime_secs = 10_000;
    let mut sim = Sim::new(cfg, 29);
    for i in 0..3 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    sim.advance(10_000);
    // Four answers are built while a join flush is pending...
    let late: Vec<usize> = (3..7)
        .map(|i| sim.add(&format!("gm{i}@example.com"), receiver()))
        .collect();
    let answers: Vec<_> = late
        .iter()
        .map(|&i| sim.registration_response(i, ExchangeType::GSA_AUTH))
        .collect();
    // ...then the operator rekeys: the flush moves the group to the
    // joiners' Rekey SA, whose Message ID 0 carries the new TEK.
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(5_000);
    let rekeyed = common_tek(&sim, 0..3);
    // The answers arrive after the last copy.
    for (&i, answer) in late.iter().zip(&answers) {
        let m = &mut sim.members[i];
        m.gm.handle_registration_response(
            sim.now,
            ExchangeType::GSA_AUTH,
            answer,
            Sim::ike(&m.sk_d),
        )
        .unwrap();
    }
    sim.pump();
    let kek = sim.gcks.status(sim.now)[0].rekey_spi.unwrap();
    for &i in &late {
        assert_eq!(
            sim.members[i].listening,
            [kek],
            "gm{i} on the current Rekey SA"
        );
        assert_ne!(sim.inbound(i), rekeyed, "gm{i} cannot hold the new TEK yet");
    }
    // The next message on that Rekey SA: a join flush.
    let sent = sim.sent.len();
    sim.join("gm7@example.com", receiver()).unwrap();
    sim.advance(1_000);
    assert!(
        sim.sent[sent..].iter().any(|d| d[..16] == kek.0),
        "a message on the same SA"
    );
    assert!(late.iter().all(|&i| sim.members[i].rekey_errors.is_empty()));
    // Each asks to register again, within the random wait, not all at once.
    let mut asked = Vec::new();
    for step in 0..=50 {
        for &i in &late {
            if !sim.members[i].reregister.is_empty() && !asked.iter().any(|(j, _)| *j == i) {
                asked.push((i, step));
            }
        }
        sim.advance(100);
    }
    assert_eq!(
        asked.len(),
        late.len(),
        "every late member noticed: {asked:?}"
    );
    assert!(
        late.iter()
            .all(|&i| sim.members[i].reregister == [ReregisterReason::LostRekey])
    );
    let mut steps: Vec<_> = asked.iter().map(|(_, s)| *s).collect();
    steps.dedup();
    assert!(steps.len() > 1, "all asked at once: {asked:?}");
    // Those who took every message ask nothing.
    assert!((0..3).all(|i| sim.members[i].reregister.is_empty()));

    for &i in &late {
        sim.register(i, ExchangeType::GSA_REGISTRATION).unwrap();
    }
    sim.advance(10_000);
    let now_held = common_tek(&sim, 0..8);
    assert!(
        rekeyed.iter().all(|t| now_held.contains(t)),
        "the rekey's TEK"
    );
    assert!(sim.members.iter().all(|m| m.rekey_errors.is_empty()));
}

/// A registration answer that reaches its member several changes of the
/// Rekey SA late (a storm of joins, a flush every second, a slow member):
/// the member holds a Rekey SA that is long gone. The GCKS announces the
/// next eight Rekey SA SPIs, so the next GSA_REKEY, on an SPI among them,
/// tells the member it missed something, and it registers again.
#[test]
fn an_answer_several_rekey_sas_late_is_noticed() {
    let mut cfg = config(LKH4, 100);
    cfg.teks[0].lifetime_secs = 10_000;
    let mut sim = Sim::new(cfg, 38);
    for i in 0..3 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    sim.advance(5_000);
    let late = sim.add("late@example.com", receiver());
    let answer = sim.registration_response(late, ExchangeType::GSA_AUTH);
    // Four join flushes go by: four new Rekey SAs.
    for i in 0..4 {
        sim.join(&format!("j{i}@example.com"), receiver()).unwrap();
        sim.advance(3_000);
    }
    let m = &mut sim.members[late];
    m.gm.handle_registration_response(sim.now, ExchangeType::GSA_AUTH, &answer, Sim::ike(&m.sk_d))
        .unwrap();
    sim.pump();
    let current = sim.gcks.status(sim.now)[0].rekey_spi.unwrap();
    assert!(
        !sim.members[late].listening.contains(&current),
        "a stale Rekey SA"
    );
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(5_000);
    assert_eq!(sim.members[late].reregister, [ReregisterReason::LostRekey]);
    sim.register(late, ExchangeType::GSA_REGISTRATION).unwrap();
    sim.advance(5_000);
    common_tek(&sim, 0..sim.members.len());
}

/// An operator's KEK rekey replaces the Rekey SA at once; a member that
/// missed it notices at the next rekey, on the announced SPI.
#[test]
fn operator_kek_rekey_moves_the_group_and_a_miss_is_noticed() {
    let mut cfg = config(LKH4, 8);
    cfg.teks[0].lifetime_secs = 10_000;
    let mut sim = Sim::new(cfg, 19);
    for i in 0..3 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    sim.advance(10_000);
    let before = sim.gcks.status(sim.now)[0].rekey_spi;
    sim.dropped.push(2);
    sim.gcks.rekey_kek(sim.now, &group_id()).unwrap();
    sim.pump();
    sim.dropped.clear();
    let after = sim.gcks.status(sim.now)[0].rekey_spi;
    assert!(after.is_some() && after != before, "a new Rekey SA");
    assert!(sim.members[2].reregister.is_empty());
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.pump();
    sim.advance(5_000); // the random wait
    assert_eq!(sim.members[2].reregister, [ReregisterReason::LostRekey]);
    assert!(sim.members[0].reregister.is_empty() && sim.members[1].reregister.is_empty());
    common_tek(&sim, 0..2);
    assert!(sim.members[..2].iter().all(|m| m.rekey_errors.is_empty()));
}

/// A member that registers again on a new IKE SA (after a lost rekey or a
/// restart) replaces its old record: it is counted once, keeps its place
/// in the key tree, and can still be excluded.
#[test]
fn registering_again_on_a_new_ike_sa_replaces_the_member() {
    let mut sim = Sim::new(config(LKH4, 100), 21);
    for i in 0..3 {
        sim.join(&format!("gm{i}@example.com"), receiver()).unwrap();
    }
    sim.advance(10_000);
    sim.members[1].id = gikev2::gcks::MemberId(777);
    sim.register(1, ExchangeType::GSA_AUTH).unwrap();
    sim.advance(10_000);
    let status = &sim.gcks.status(sim.now)[0];
    let ids: Vec<_> = status.members.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(status.members.len(), 3, "{:?}", status.members);
    assert!(ids.contains(&777));
    common_tek(&sim, 0..3);

    sim.gcks
        .exclude(sim.now, &group_id(), gikev2::gcks::MemberId(777))
        .unwrap();
    sim.advance(10_000);
    let after = common_tek(&sim, [0, 2].into_iter());
    assert!(
        !sim.members[1]
            .kernel
            .keys()
            .any(|(sa, _)| *sa == after[0].0),
        "the excluded member cannot follow"
    );
    assert!(sim.members[0].rekey_errors.is_empty() && sim.members[2].rekey_errors.is_empty());
}

/// With the GCKS gone, a GM asks to register again before its SAs expire
/// (§2.4.1.4) and deletes them when they do (M062).
#[test]
fn expiring_sas_without_replacement_ask_for_registration() {
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.teks[0].lifetime_secs = 300;
    let mut sim = Sim::new(cfg, 10);
    sim.join("gm1@example.com", receiver()).unwrap();
    sim.gcks_down = true;
    sim.advance(260_000);
    assert!(sim.members[0].reregister.is_empty());
    sim.advance(20_000); // within 30 s of expiry
    assert_eq!(sim.members[0].reregister[0], ReregisterReason::Expiring);
    assert!(!sim.members[0].kernel.is_empty());
    sim.advance(30_000); // past expiry
    assert!(sim.members[0].kernel.is_empty(), "expired SAs are deleted");
    // Each failed attempt is retried, not lost.
    assert!(sim.members[0].reregister.len() >= 2);
}

/// With the GCKS gone, failed registrations are retried with a backoff
/// that doubles up to five minutes, with jitter; the GM keeps its SAs
/// meanwhile and registers again when the GCKS returns.
#[test]
fn failed_registrations_back_off_and_recover() {
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.teks[0].lifetime_secs = 7200;
    let mut sim = Sim::new(cfg, 12);
    sim.join("gm1@example.com", receiver()).unwrap();
    let held = sim.inbound(0);
    sim.gcks_down = true;
    // Lost rekeys are not seen by the GM; it asks when the TEK nears expiry.
    sim.advance(7_200_000 - 25_000);
    assert_eq!(sim.members[0].reregister[0], ReregisterReason::Expiring);
    sim.advance(20_000);
    assert_eq!(sim.inbound(0), held, "SAs are kept until they expire");
    sim.advance(3_600_000);
    let d = &sim.members[0].retry_delays;
    assert!(
        d.len() >= 10,
        "retries go on: {d:?} {:?}",
        sim.members[0].reregister
    );
    // Each wait lies in [cap/2, cap], the cap doubling from 5 s to 300 s.
    for (i, w) in d.iter().enumerate() {
        let cap = (5_000u64 << i.min(16)).min(300_000);
        assert!((cap / 2..=cap).contains(w), "retry {i}: {w} ms, cap {cap}");
    }
    assert!(d[1..].iter().any(|&w| w != d[1]), "jittered: {d:?}");
    assert!(
        sim.members[0].reregister[1..]
            .iter()
            .all(|r| *r == ReregisterReason::Retry)
    );
    assert_eq!(sim.members[0].gm.failures() as usize, d.len());

    // The GCKS returns: the next attempt succeeds and resets the backoff.
    sim.gcks_down = false;
    sim.advance(1_000); // its timers catch up: fresh keys
    sim.register(0, ExchangeType::GSA_AUTH).unwrap();
    assert_eq!(sim.members[0].gm.failures(), 0);
    assert!(!sim.inbound(0).is_empty());
    assert!(sim.inbound(0).iter().all(|sa| !held.contains(sa)));
}

/// A small group rekeyed over kept IKE SAs (§2.4.2): the member installs
/// the new TEK and deletes the old one after DTD, though inband SAs carry
/// no lifetime (Table 3).
#[test]
fn inband_rekey_replaces_and_deletes_the_old_tek() {
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.rekey = None;
    cfg.delivery = Delivery::Inband;
    let mut sim = Sim::new(cfg, 11);
    sim.join("gm1@example.com", receiver()).unwrap();
    let before = sim.inbound(0);
    assert_eq!(before.len(), 1);
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.pump();
    let (member, payloads) = sim.inband.pop().expect("an inband rekey");
    assert_eq!(member, sim.members[0].id);
    let payloads = common::through_wire(&payloads);
    let m = &mut sim.members[0];
    m.gm.handle_inband_rekey(sim.now, &payloads, Sim::ike(&m.sk_d))
        .unwrap();
    sim.pump();
    assert_eq!(sim.inbound(0).len(), 2, "old and new during DTD");
    sim.advance(10_000);
    let after = sim.inbound(0);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
}

/// An inband member's IKE SA is rekeyed (new SK_d, new unique ID): its
/// inband rekeys go to the new IKE SA, wrapped under the new IKE SA's
/// GSK_w (RFC 9838 §3.1.1), which the GM unwraps with the new SK_d only.
#[test]
fn inband_rekey_after_the_ike_sa_is_rekeyed_uses_the_new_sk_d() {
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.rekey = None;
    cfg.delivery = Delivery::Inband;
    let mut sim = Sim::new(cfg, 12);
    sim.join("gm1@example.com", receiver()).unwrap();
    let old_id = sim.members[0].id;
    let new_id = MemberId(77);
    let new_sk_d = Secret::new(vec![0xa7; 32]);
    sim.gcks
        .ike_sa_rekeyed(old_id, new_id, Sim::ike(&new_sk_d))
        .unwrap();
    let members = &sim.gcks.status(sim.now)[0].members;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].0, 77, "the member goes on as the new IKE SA");
    // An IKE SA that is no member changes nothing.
    sim.gcks
        .ike_sa_rekeyed(MemberId(5), MemberId(6), Sim::ike(&new_sk_d))
        .unwrap();
    assert_eq!(sim.gcks.status(sim.now)[0].members.len(), 1);

    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.pump();
    let (member, payloads) = sim.inband.pop().expect("an inband rekey");
    assert_eq!(member, new_id);
    let payloads = common::through_wire(&payloads);
    let m = &mut sim.members[0];
    let old_sk_d = m.sk_d.clone();
    assert!(
        m.gm.handle_inband_rekey(sim.now, &payloads, Sim::ike(&old_sk_d))
            .is_err(),
        "not under the old IKE SA's key"
    );
    m.gm.handle_inband_rekey(sim.now, &payloads, Sim::ike(&new_sk_d))
        .unwrap();
    sim.pump();
    assert_eq!(sim.inbound(0).len(), 2, "old and new during DTD");
}

/// An inband member whose IKE SA goes down has lost its only channel and
/// registers again within seconds; a multicast member needs no IKE SA.
#[test]
fn losing_the_ike_sa_reregisters_inband_members_only() {
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.rekey = None;
    cfg.delivery = Delivery::Inband;
    let mut sim = Sim::new(cfg, 13);
    sim.join("gm1@example.com", receiver()).unwrap();
    let held = sim.inbound(0);
    assert!(sim.members[0].gm.ike_sa_down(sim.now));
    assert!(!sim.members[0].gm.ike_sa_down(sim.now), "asked once");
    sim.advance(2_000);
    assert!(sim.members[0].reregister.is_empty(), "not before 2.5 s");
    sim.advance(3_000);
    assert_eq!(sim.members[0].reregister, [ReregisterReason::IkeSaLost]);
    assert_eq!(sim.inbound(0), held, "SAs kept meanwhile");

    let mut sim = Sim::new(config(KeyManagement::Flat, 8), 14);
    sim.join("gm1@example.com", receiver()).unwrap();
    assert!(
        !sim.members[0].gm.ike_sa_down(sim.now),
        "multicast: no need"
    );
    sim.advance(60_000);
    assert!(sim.members[0].reregister.is_empty());
}

/// The GM's soft lifetime leaves room for the GCKS's own rekey ahead of
/// expiry even with short lifetimes: no needless re-registration.
#[test]
fn short_lifetimes_rekey_without_reregistration() {
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.teks[0].lifetime_secs = 40;
    cfg.rekey.as_mut().unwrap().lifetime_secs = 60;
    cfg.rekey_margin_secs = 8;
    let mut sim = Sim::new(cfg, 12);
    sim.join("gm1@example.com", receiver()).unwrap();
    sim.advance(200_000);
    assert!(
        sim.members[0].reregister.is_empty(),
        "{:?}",
        sim.members[0].reregister
    );
    assert!(sim.members[0].rekey_errors.is_empty());
    assert_eq!(sim.inbound(0).len(), 1);
}
