//! GCKS restart continuity: a GCKS restored from its saved state continues
//! the same group — members registered before the restart follow its
//! rekeys without registering again, no Message ID or Sender-ID is reused,
//! exclusions stick — and a corrupt, truncated, foreign-version or
//! mismatched state is refused with a typed error, never a panic.

mod common;

use common::{Sim, config, group_id, receiver, sender, sender_config};
use gikev2::crypto::{SeededRng, SkProtection, VerifyingKey};
use gikev2::gcks::{Gcks, MESSAGE_ID_RESERVE, MemberId, RESTORED_MEMBER_BASE, Registration};
use gikev2::gm::ReregisterReason;
use gikev2::iana::{ExchangeType, NotifyType};
use gikev2::persist::{STATE_VERSION, StateError, read_file, write_file_atomic};
use gikev2::policy::RekeyAuth;
use gikev2::policy::{GroupConfig, KeyManagement};
use gikev2::rekey_message::{self, RekeySigner, RekeyVerifier};
use gikev2::wire::{Payload, RekeySpi, SaRef, TrafficSelector};

const LKH4: KeyManagement = KeyManagement::Lkh { degree: 4 };
const WALL: u64 = 1_790_000_000_000;

/// The Message ID of a GSA_REKEY datagram (IKE header octets 20..24).
fn message_id(datagram: &[u8]) -> u32 {
    u32::from_be_bytes(datagram[20..24].try_into().unwrap())
}

fn tek_spis(sim: &Sim, i: usize) -> Vec<SaRef> {
    sim.inbound(i).into_iter().map(|(sa, _)| sa).collect()
}

/// A group of two receivers and a sender past its join flush, and its
/// configuration (one signing key: the restored GCKS must have the same).
fn running_group() -> (Sim, GroupConfig) {
    let cfg = sender_config(LKH4, 100);
    let mut sim = Sim::new(cfg.clone(), 3);
    sim.join("gm1@example.com", receiver()).unwrap();
    sim.join("gm2@example.com", receiver()).unwrap();
    sim.join("sender1@example.com", sender()).unwrap();
    sim.advance(5_000);
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(10_000);
    assert!(sim.members.iter().all(|m| m.rekey_errors.is_empty()));
    (sim, cfg)
}

/// Replaces the sim's GCKS by one restored from `state`, `down_ms` of wall
/// clock later, on a monotonic clock that restarted at `mono`.
fn restart(sim: &mut Sim, cfg: &GroupConfig, state: &[u8], mono: u64, down_ms: u64) {
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(77)));
    gcks.restore_group(mono, WALL + down_ms, cfg.clone(), state)
        .unwrap();
    assert_eq!(gcks.dirty_groups(), vec![group_id()]);
    sim.gcks = gcks;
}

fn member_id(sim: &Sim, identity: &str) -> MemberId {
    let st = &sim.gcks.status(sim.now)[0];
    MemberId(
        st.members
            .iter()
            .find(|(_, who, _)| who == identity)
            .unwrap_or_else(|| panic!("{identity} is a member"))
            .0,
    )
}

#[test]
fn restored_gcks_continues_the_group() {
    let (mut sim, cfg) = running_group();
    let before = sim.gcks.status(sim.now)[0].clone();
    let max_mid = sim.sent.iter().map(|d| message_id(d)).max().unwrap();
    let tek_before = tek_spis(&sim, 0);
    let sids_before = sim.members[2].gm.status(sim.now).sender_ids.clone();
    assert!(!sids_before.is_empty(), "the sender has Sender-IDs");
    let state = sim.gcks.save_group(&group_id(), sim.now, WALL).unwrap();

    let now = sim.now;
    restart(&mut sim, &cfg, &state, now, 0);
    let after = sim.gcks.status(sim.now)[0].clone();
    assert_eq!(after.rekey_spi, before.rekey_spi, "same Rekey SA");
    assert_eq!(
        after.next_message_id,
        Some(before.next_message_id.unwrap() + MESSAGE_ID_RESERVE)
    );
    let names = |s: &gikev2::gcks::GroupStatus| {
        s.members
            .iter()
            .map(|(_, who, role)| (who.clone(), *role))
            .collect::<Vec<_>>()
    };
    let mut a = names(&after);
    let mut b = names(&before);
    a.sort();
    b.sort();
    assert_eq!(a, b, "same members and roles");
    assert!(
        after
            .members
            .iter()
            .all(|(id, _, _)| *id > RESTORED_MEMBER_BASE),
        "restored members cannot collide with the new host's IKE SAs"
    );

    // An operator rekey after the restart: every member installs the new
    // TEK without registering again; its Message ID is above all before.
    let sent = sim.sent.len();
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(10_000);
    assert!(sim.sent.len() > sent);
    assert!(sim.sent[sent..].iter().all(|d| message_id(d) > max_mid));
    for i in 0..3 {
        let m = &sim.members[i];
        assert!(
            m.rekey_errors.is_empty(),
            "{}: {:?}",
            m.identity,
            m.rekey_errors
        );
        assert!(m.reregister.is_empty(), "{} registered again", m.identity);
        assert_ne!(
            tek_spis(&sim, i),
            tek_before,
            "{} has the new TEK",
            m.identity
        );
    }
    let now_teks: Vec<u32> = sim.gcks.status(sim.now)[0]
        .teks
        .iter()
        .map(|t| t.1)
        .collect();
    for i in 0..3 {
        assert!(
            tek_spis(&sim, i)
                .iter()
                .any(|sa| matches!(sa, SaRef::Esp(s) if now_teks.contains(s)))
        );
    }

    // The restored key tree excludes: gm2 loses the group, the others stay.
    let gm2 = member_id(&sim, "gm2@example.com");
    sim.gcks.exclude(sim.now, &group_id(), gm2).unwrap();
    sim.pump();
    sim.advance(10_000);
    assert!(sim.members[0].rekey_errors.is_empty());
    assert!(sim.members[2].rekey_errors.is_empty());
    assert!(!sim.members[1].rekey_errors.is_empty(), "gm2 cannot follow");
    assert_eq!(tek_spis(&sim, 0), tek_spis(&sim, 2));

    // A sender registering again gets Sender-IDs never handed out before.
    sim.register(2, ExchangeType::GSA_AUTH).unwrap();
    let sids_after = sim.members[2].gm.status(sim.now).sender_ids.clone();
    assert!(
        sids_after
            .iter()
            .all(|s| s > sids_before.iter().max().unwrap())
    );
}

/// The Message IDs a restore skips are no lost rekey (issue 14). The first
/// GSA_REKEY after a restart names where the skip began, so the members
/// follow it without registering again, also after two restarts with
/// nothing sent between them. A member that missed a message before the
/// restart still notices. And a member given that same message without
/// the notification reads the skip as a loss: GMs rely on what the GCKS
/// says, not on this GCKS's MESSAGE_ID_RESERVE.
#[test]
fn skipped_message_ids_are_named_and_no_member_registers_again() {
    let (mut sim, cfg) = running_group();
    let gm3 = sim.join("gm3@example.com", receiver()).unwrap();
    sim.advance(5_000);
    // gm2 misses a rekey before the restart.
    sim.dropped.push(1);
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(5_000);
    sim.dropped.clear();
    let next = sim.gcks.status(sim.now)[0].next_message_id.unwrap();

    let now = sim.now;
    let state = sim.gcks.save_group(&group_id(), now, WALL).unwrap();
    restart(&mut sim, &cfg, &state, now, 0);
    let state = sim.gcks.save_group(&group_id(), now, WALL).unwrap();
    restart(&mut sim, &cfg, &state, now, 0);
    let skipped_to = next + 2 * MESSAGE_ID_RESERVE;
    assert_eq!(
        sim.gcks.status(sim.now)[0].next_message_id,
        Some(skipped_to)
    );

    let sent = sim.sent.len();
    sim.dropped.push(gm3);
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.advance(5_000);
    let first = sim.sent[sent].clone();
    assert_eq!(message_id(&first), skipped_to);
    // What it says, read with a member's Rekey SA keys and the GCKS's key.
    let spi = RekeySpi(first[..16].try_into().unwrap());
    let keys = sim.members[0].gm.rekey_sa_keys(spi).unwrap();
    let sk = SkProtection::new(keys.encr, keys.integ, &keys.gsk_e, &keys.gsk_a).unwrap();
    let RekeyAuth::Signature(signer) = &cfg.rekey.as_ref().unwrap().auth else {
        panic!("the common group signs its rekeys");
    };
    let vk = VerifyingKey::from_spki_der(signer.public_key_der(), signer.alg()).unwrap();
    let opened = rekey_message::open(&first, &sk, RekeyVerifier::DigitalSignature(&vk)).unwrap();
    let named: Vec<u32> = opened
        .payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => n.skipped_from(),
            _ => None,
        })
        .collect();
    assert_eq!(named, [next], "the skip is named from the first ID skipped");

    for i in [0, 2] {
        let m = &sim.members[i];
        assert!(
            m.rekey_errors.is_empty(),
            "{}: {:?}",
            m.identity,
            m.rekey_errors
        );
        assert!(m.reregister.is_empty(), "{} registered again", m.identity);
    }
    assert_eq!(
        sim.members[1].reregister,
        [ReregisterReason::LostRekey],
        "gm2 missed a message before the restart"
    );
    // The next rekey follows on without a notification.
    let sent = sim.sent.len();
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.pump();
    let second = sim.sent[sent].clone();
    assert_eq!(message_id(&second), skipped_to + 1);
    let opened = rekey_message::open(&second, &sk, RekeyVerifier::DigitalSignature(&vk)).unwrap();
    assert!(
        !opened
            .payloads
            .iter()
            .any(|p| matches!(p, Payload::Notify(_)))
    );

    // gm3 gets the first message without the notification, sealed as the
    // GCKS sealed it.
    let stripped = inner_without_notify(&first, &sk, &vk);
    let forged = rekey_message::seal(
        spi,
        skipped_to,
        &stripped,
        RekeySigner::DigitalSignature(signer),
        &sk,
        &mut SeededRng::from_u64(5),
    )
    .unwrap();
    let m = &mut sim.members[gm3];
    m.gm.handle_rekey(sim.now, &forged).unwrap();
    sim.dropped.clear();
    sim.advance(5_000);
    assert_eq!(sim.members[gm3].reregister, [ReregisterReason::LostRekey]);
    assert!(sim.members[0].reregister.is_empty());
}

/// A state file of format 1, written by the build before format 2 (from
/// `config(LKH4, 100)` with implicit GCAUTH, members gm1 and gm2, next
/// Message ID 1; tests/data/state-v1-lkh-implicit.bin), is still served
/// after an upgrade: the members and Message IDs are restored, and the
/// first rekey names the IDs skipped from the saved next one.
#[test]
fn a_format_1_state_is_restored_after_an_upgrade() {
    let mut cfg = config(LKH4, 100);
    cfg.rekey.as_mut().unwrap().auth = RekeyAuth::Implicit;
    // the source selector of the build that wrote it
    cfg.teks[0].src = TrafficSelector::addr("10.1.0.0".parse().unwrap());
    let state = include_bytes!("data/state-v1-lkh-implicit.bin");
    assert_eq!(gikev2::persist::open(state).unwrap().version, 1);
    let mut sim = Sim::new(cfg.clone(), 5);
    restart(&mut sim, &cfg, state, 0, 60_000);
    let st = &sim.gcks.status(sim.now)[0];
    assert_eq!(st.members.len(), 2);
    assert_eq!(st.next_message_id, Some(1 + MESSAGE_ID_RESERVE));

    // gm1 comes back (its place in the tree kept: no join flush) and holds
    // the current Rekey SA; the operator's rekey names the skip.
    let gm1 = sim.add("gm1@example.com", receiver());
    sim.register(gm1, ExchangeType::GSA_AUTH).unwrap();
    let sent = sim.sent.len();
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.pump();
    let first = &sim.sent[sent];
    assert_eq!(message_id(first), 1 + MESSAGE_ID_RESERVE);
    let spi = RekeySpi(first[..16].try_into().unwrap());
    let keys = sim.members[gm1]
        .gm
        .rekey_sa_keys(spi)
        .expect("gm1 holds it");
    let sk = SkProtection::new(keys.encr, keys.integ, &keys.gsk_e, &keys.gsk_a).unwrap();
    let opened = rekey_message::open(first, &sk, RekeyVerifier::Implicit).unwrap();
    assert!(
        opened
            .payloads
            .iter()
            .any(|p| matches!(p, Payload::Notify(n) if n.skipped_from() == Some(1)))
    );
    assert!(sim.members[gm1].rekey_errors.is_empty());
    assert!(sim.members[gm1].reregister.is_empty());
}

/// The inner payloads of a GSA_REKEY but its AUTH and Notify payloads.
fn inner_without_notify(d: &[u8], sk: &SkProtection, vk: &VerifyingKey) -> Vec<Payload> {
    rekey_message::open(d, sk, RekeyVerifier::DigitalSignature(vk))
        .unwrap()
        .payloads
        .into_iter()
        .filter(|p| !matches!(p, Payload::Auth(_) | Payload::Notify(_)))
        .collect()
}

#[test]
fn exclusions_survive_a_restart() {
    let (mut sim, cfg) = running_group();
    let gm2 = member_id(&sim, "gm2@example.com");
    sim.gcks.exclude(sim.now, &group_id(), gm2).unwrap();
    sim.advance(10_000);
    let state = sim.gcks.save_group(&group_id(), sim.now, WALL).unwrap();
    restart(&mut sim, &cfg, &state, 42, 1_000);
    assert_eq!(
        sim.gcks.status(sim.now)[0].excluded,
        vec!["gm2@example.com".to_owned()]
    );
    let refused = sim.gcks.handle_registration(
        sim.now,
        &Registration {
            member: MemberId(9),
            identities: &["gm2@example.com"],
            peer: None,
            exchange: ExchangeType::GSA_AUTH,
            payloads: &[Payload::Idg(group_id())],
            ike: Sim::ike(&sim.members[1].sk_d),
        },
    );
    assert!(matches!(
        refused.as_slice(),
        [Payload::Notify(n)] if n.ty == NotifyType::AUTHORIZATION_FAILED
    ));
}

#[test]
fn deadlines_lose_the_downtime_on_a_new_clock() {
    let (sim, cfg) = running_group();
    let before = sim.gcks.status(sim.now)[0].clone();
    let state = sim.gcks.save_group(&group_id(), sim.now, WALL).unwrap();
    // charon restarted: its monotonic clock is near zero, 10 minutes passed.
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(5)));
    gcks.restore_group(2_000, WALL + 600_000, cfg.clone(), &state)
        .unwrap();
    let after = gcks.status(2_000)[0].clone();
    assert_eq!(
        after.rekey_expires_in.unwrap(),
        before.rekey_expires_in.unwrap() - 600_000
    );
    let tek = |s: &gikev2::gcks::GroupStatus| s.teks.iter().map(|t| t.2).max().unwrap();
    assert_eq!(tek(&after), tek(&before) - 600_000);
    // Down longer than the TEK lives: it is replaced at once, announced.
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(6)));
    gcks.restore_group(2_000, WALL + 3 * 3_600_000, cfg, &state)
        .unwrap();
    assert!(gcks.poll_timeout().unwrap() <= 2_001);
    gcks.handle_timeout(2_001);
    assert!(gcks.poll_action().is_some(), "a GSA_REKEY with the new SAs");
}

#[test]
fn bad_states_are_refused_without_panic() {
    let (sim, cfg) = running_group();
    let state = sim.gcks.save_group(&group_id(), sim.now, WALL).unwrap();
    let try_restore = |bytes: &[u8]| {
        let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(1)));
        let r = gcks.restore_group(0, WALL, cfg.clone(), bytes);
        if r.is_err() {
            assert!(gcks.status(0).is_empty(), "nothing served after a refusal");
        }
        r
    };
    try_restore(&state).unwrap();

    // Every truncation.
    for len in 0..state.len() {
        assert!(
            matches!(try_restore(&state[..len]), Err(StateError::Corrupt(_))),
            "truncated to {len}"
        );
    }
    // A bit flip in every octet (a different bit each time).
    for i in 0..state.len() {
        let mut v = state.to_vec();
        v[i] ^= 1 << (i % 8);
        let r = try_restore(&v);
        assert!(
            matches!(r, Err(StateError::Corrupt(_) | StateError::Version { .. })),
            "flip in octet {i}: {r:?}"
        );
    }
    // Another format version.
    let mut v = state.to_vec();
    v[8..10].copy_from_slice(&(STATE_VERSION + 1).to_be_bytes());
    assert_eq!(
        try_restore(&v),
        Err(StateError::Version {
            found: STATE_VERSION + 1,
            expected: STATE_VERSION
        })
    );
    // Garbage of every small length, and a body that fits the envelope
    // but not the layout.
    for n in 0..64 {
        assert!(try_restore(&vec![0xa5; n]).is_err());
    }
    let forged = gikev2::persist::seal(b"not a group").unwrap();
    assert!(matches!(try_restore(&forged), Err(StateError::Corrupt(_))));
}

/// Past the checksum: a body that is damaged but correctly sealed (a bug,
/// or a file written by hand) is refused or restored into a group that
/// works — never a panic, now or in the operations that follow.
#[test]
fn damaged_bodies_never_panic() {
    let (sim, cfg) = running_group();
    let state = sim.gcks.save_group(&group_id(), sim.now, WALL).unwrap();
    let body = gikev2::persist::open(&state).unwrap().body.to_vec();
    let mut restored = 0;
    for i in 0..body.len() {
        for bit in [0, 7] {
            let mut b = body.clone();
            b[i] ^= 1 << bit;
            let sealed = gikev2::persist::seal(&b).unwrap();
            let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(i as u64)));
            if gcks
                .restore_group(1_000, WALL, cfg.clone(), &sealed)
                .is_err()
            {
                continue;
            }
            restored += 1;
            let _ = gcks.rekey(1_000, &group_id());
            let _ = gcks.rekey_kek(1_000, &group_id());
            if let Some((id, _, _)) = gcks.status(1_000)[0].members.first().cloned() {
                let _ = gcks.exclude(1_000, &group_id(), MemberId(id));
            }
            let sk_d = gikev2::crypto::Secret::new(vec![1; 32]);
            gcks.handle_registration(
                1_000,
                &Registration {
                    member: MemberId(5),
                    identities: &["gm9@example.com"],
                    peer: None,
                    exchange: ExchangeType::GSA_AUTH,
                    payloads: &[Payload::Idg(group_id())],
                    ike: Sim::ike(&sk_d),
                },
            );
            gcks.handle_timeout(100_000_000);
            while gcks.poll_action().is_some() {}
        }
    }
    assert!(restored > 0, "flips in keys are not detectable and restore");
}

#[test]
fn incompatible_configuration_is_refused_compatible_accepted() {
    let (sim, cfg) = running_group();
    let state = sim.gcks.save_group(&group_id(), sim.now, WALL).unwrap();
    let restore = |c: GroupConfig| {
        Gcks::new(Box::new(SeededRng::from_u64(1))).restore_group(0, WALL, c, &state)
    };
    // Lifetimes and authorization may change.
    let mut c = cfg.clone();
    c.teks[0].lifetime_secs = 600;
    c.rekey.as_mut().unwrap().lifetime_secs = 900;
    c.authorization
        .members
        .push(gikev2::policy::IdentityPattern("*@example.org".into()));
    restore(c).unwrap();
    // Another TEK cipher, another signing key, another tree: refused.
    let mut c = cfg.clone();
    c.teks[0].encr = Some((gikev2::iana::EncrId::ENCR_AES_GCM_16, Some(128)));
    assert!(
        matches!(restore(c), Err(StateError::GroupMismatch { what }) if what.starts_with("tek"))
    );
    let c = config(LKH4, 100);
    assert!(
        matches!(restore(c), Err(StateError::GroupMismatch { what }) if what.starts_with("rekey.auth"))
    );
    let mut c = cfg.clone();
    c.member_limit = 200;
    assert!(
        matches!(restore(c), Err(StateError::GroupMismatch { what }) if what.starts_with("key_management"))
    );
    let mut c = cfg;
    c.id.data = b"other".to_vec();
    assert!(matches!(restore(c), Err(StateError::GroupMismatch { what }) if what == "id"));
}

#[test]
fn state_file_round_trip_on_disk() {
    let (sim, cfg) = running_group();
    let dir = std::env::temp_dir().join(format!("gikev2-restart-{}", std::process::id()));
    let path = dir.join("market.state");
    let state = sim.gcks.save_group(&group_id(), sim.now, WALL).unwrap();
    write_file_atomic(&path, &state).unwrap();
    let read = read_file(&path).unwrap().unwrap();
    assert_eq!(read.as_slice(), state.as_slice());
    Gcks::new(Box::new(SeededRng::from_u64(1)))
        .restore_group(0, WALL, cfg, &read)
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Cost of a save: 10^3 members here; `GIKEV2_SAVE_COST_MEMBERS=100000
/// cargo test --release --test gcks_restart save_cost -- --nocapture` for
/// other sizes. Prints the state's size, the time to serialize and seal
/// it, and the time to write it atomically (with both fsyncs).
#[test]
fn save_cost() {
    let n: u64 = std::env::var("GIKEV2_SAVE_COST_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let cfg = config(LKH4, n as u32 * 2);
    let mut sim = Sim::new(cfg.clone(), 8);
    for i in 0..n {
        sim.register_silent(i + 1, &format!("gm{i}@example.com"));
    }
    sim.advance(2_000);
    let t = std::time::Instant::now();
    let state = sim.gcks.save_group(&group_id(), sim.now, WALL).unwrap();
    let sealed = t.elapsed();
    let dir = std::env::temp_dir().join(format!("gikev2-cost-{}", std::process::id()));
    let t = std::time::Instant::now();
    write_file_atomic(&dir.join("g.state"), &state).unwrap();
    let written = t.elapsed();
    std::fs::remove_dir_all(&dir).unwrap();
    let t = std::time::Instant::now();
    Gcks::new(Box::new(SeededRng::from_u64(1)))
        .restore_group(0, WALL, cfg, &state)
        .unwrap();
    let restored = t.elapsed();
    eprintln!(
        "state of {n} members: {} octets, serialized and sealed in {sealed:?}, \
         written and fsynced in {written:?}, restored in {restored:?}",
        state.len()
    );
    assert!(state.len() < 200 * n as usize + 4096);
}
