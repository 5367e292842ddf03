//! What the GCKS engine puts on the wire, checked against RFC 9838's MUSTs
//! by a member written here from the RFC, not by the crate's GM: it unwraps
//! keys with the key-wrap primitive directly and opens GSA_REKEY messages
//! with the keys it derived itself.

mod common;

use std::collections::HashMap;

use common::{IKE_KWA, PRF, Sim, config, group_id, receiver, sender_config, through_wire};
use gikev2::crypto::{
    EncrAlg, IntegAlg, KeyWrapAlg, Secret, SeededRng, SkProtection, default_kwk, split_rekey_keymat,
};
use gikev2::gcks::{Gcks, GcksAction, MemberId, Registration};
use gikev2::iana::{
    EncrId, ExchangeType, GcauthId, IntegId, KwaId, NotifyType, SnId, TransformType,
};
use gikev2::ike_sa::IkeKeys;
use gikev2::policy::{Delivery, IdentityPattern, KeyManagement, RekeyAuth};
use gikev2::rekey_message::{self, RekeyVerifier};
use gikev2::wire::{Delete, GroupId, Gsa, GsaPolicy, Kd, Notify, Payload, RekeySpi, SaRef};

const LKH2: KeyManagement = KeyManagement::Lkh { degree: 2 };

fn gsa(p: &[Payload]) -> &Gsa {
    p.iter()
        .find_map(|p| match p {
            Payload::Gsa(g) => Some(g),
            _ => None,
        })
        .expect("GSA payload")
}

fn kd(p: &[Payload]) -> &Kd {
    p.iter()
        .find_map(|p| match p {
            Payload::Kd(k) => Some(k),
            _ => None,
        })
        .expect("KD payload")
}

/// A member as RFC 9838 §3.3 describes it, keeping every key it learns by
/// ID; ID 0 stands for the default KWK of the channel at hand.
struct ModelGm {
    keys: HashMap<u32, Secret>,
    kwa: KeyWrapAlg,
}

impl ModelGm {
    /// Unwraps whatever it can reach, repeatedly; returns the SA key of
    /// `sa` if reached.
    fn learn(
        &mut self,
        kd: &Kd,
        default: &Secret,
        default_kwa: KeyWrapAlg,
        sa: SaRef,
    ) -> Option<Secret> {
        let wraps = kd
            .member_bag()
            .map(|m| m.wrap_keys.clone())
            .unwrap_or_default();
        loop {
            let mut progress = false;
            for w in &wraps {
                if self.keys.contains_key(&w.key_id) {
                    continue;
                }
                let key = if w.kwk_id == 0 {
                    default_kwa.unwrap(default.expose(), &w.encrypted).ok()
                } else {
                    self.keys
                        .get(&w.kwk_id)
                        .and_then(|k| self.kwa.unwrap(k.expose(), &w.encrypted).ok())
                };
                if let Some(k) = key {
                    self.keys.insert(w.key_id, k);
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        let bag = kd.bag_for(&sa)?;
        bag.sa_keys.iter().find_map(|w| {
            if w.kwk_id == 0 {
                default_kwa.unwrap(default.expose(), &w.encrypted).ok()
            } else {
                let k = self.keys.get(&w.kwk_id)?;
                self.kwa.unwrap(k.expose(), &w.encrypted).ok()
            }
        })
    }
}

struct Registered {
    response: Vec<Payload>,
    gsk_w: Secret,
}

fn register(
    gcks: &mut Gcks,
    now: u64,
    member: u64,
    identity: &str,
    extra: Vec<Payload>,
) -> Registered {
    register_as(gcks, now, member, &[identity], extra)
}

/// A registration of a peer charon authenticated as `identities`.
fn register_as(
    gcks: &mut Gcks,
    now: u64,
    member: u64,
    identities: &[&str],
    extra: Vec<Payload>,
) -> Registered {
    let sk_d = Secret::new(vec![member as u8; 32]);
    let mut request = vec![Payload::Idg(group_id())];
    request.extend(extra);
    let request = through_wire(&request);
    let ike = IkeKeys {
        sk_d: &sk_d,
        prf: PRF,
        kwa: IKE_KWA,
    };
    let response = gcks.handle_registration(
        now,
        &Registration {
            member: MemberId(member),
            identities,
            peer: Some(Sim::addr_of(member as usize)),
            exchange: ExchangeType::GSA_AUTH,
            payloads: &request,
            ike,
        },
    );
    Registered {
        response: through_wire(&response),
        gsk_w: default_kwk(PRF, &sk_d, IKE_KWA).unwrap(),
    }
}

/// The SK protection of the Rekey SA `kek` a registered member learned.
fn rekey_sk(r: &Registered, kek: &GsaPolicy) -> SkProtection {
    let mut gm = ModelGm {
        keys: HashMap::new(),
        kwa: KeyWrapAlg::Kw5649_256,
    };
    let keymat = gm
        .learn(kd(&r.response), &r.gsk_w, IKE_KWA, kek.sa)
        .unwrap();
    sk_of(kek, &keymat).0
}

fn sk_of(kek: &GsaPolicy, keymat: &Secret) -> (SkProtection, Secret) {
    let e = kek.transform(TransformType::ENCR).unwrap();
    let encr = EncrAlg::new(EncrId(e.id), e.key_length()).unwrap();
    let integ = kek
        .transform(TransformType::INTEG)
        .map_or(IntegAlg::NONE, |t| IntegAlg::new(IntegId(t.id)).unwrap());
    let kwa = KeyWrapAlg::from_id(KwaId(kek.transform(TransformType::KWA).unwrap().id)).unwrap();
    let keys = split_rekey_keymat(encr, integ, kwa, keymat).unwrap();
    (
        SkProtection::new(encr, integ, &keys.gsk_e, &keys.gsk_a).unwrap(),
        keys.gsk_w,
    )
}

fn multicasts(gcks: &mut Gcks) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(a) = gcks.poll_action() {
        if let GcksAction::Multicast { datagram, .. } = a {
            out.push(datagram);
        }
    }
    out
}

/// M034, M052, M053, M063, M080, M088: what a registration response holds.
#[test]
fn registration_response_carries_every_mandatory_item() {
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(1)));
    let cfg = config(LKH2, 8);
    let RekeyAuth::Signature(signer) = cfg.rekey.as_ref().unwrap().auth.clone() else {
        unreachable!()
    };
    gcks.add_group(0, cfg).unwrap();
    let r = register(&mut gcks, 0, 1, "gm1@example.com", vec![]);
    let g = gsa(&r.response);
    let kek = g.kek().expect("a KEK policy (multicast rekey)");
    // M088: the KWA transform; §4.4.2.1.1: GCAUTH at registration, with
    // the Signature Algorithm Identifier (M053).
    assert!(kek.transform(TransformType::KWA).is_some());
    let gcauth = kek.transform(TransformType::GCAUTH).unwrap();
    assert_eq!(GcauthId(gcauth.id), GcauthId::DIGITAL_SIGNATURE);
    assert_eq!(
        gcauth.signature_algorithm_id(),
        Some(signer.alg().algorithm_identifier())
    );
    // M052, M080: AUTH_KEY as SubjectPublicKeyInfo DER.
    let mb = kd(&r.response).member_bag().unwrap();
    assert_eq!(mb.auth_key.as_deref(), Some(signer.public_key_der()));
    // M063: a single GSA_KEY_LIFETIME in every policy with multicast rekey.
    for p in g.sa_policies() {
        assert!(p.key_lifetime().is_some(), "{:?}", p.sa);
    }
    // M034 and M061: SN in every Data-Security SA, 32-bit unspecified for
    // the multi-sender group of this config.
    for t in g.teks() {
        let sn = t.transform(TransformType::SN).unwrap();
        assert_eq!(SnId(sn.id), SnId::UNSPECIFIED32);
    }
    // M071: exactly one SA_KEY with zero Key ID and KWK ID for each TEK.
    for t in g.teks() {
        let bag = kd(&r.response).bag_for(&t.sa).unwrap();
        assert_eq!(bag.sa_keys.len(), 1);
        assert_eq!((bag.sa_keys[0].key_id, bag.sa_keys[0].kwk_id), (0, 0));
    }
    // No sender asked: no Sender-ID items (§5 note 1).
    assert!(mb.sender_ids.is_empty());
    assert!(g.group_wide().is_none_or(|gw| gw.sender_id_bits.is_none()));
}

/// M019, M050: implicit GCAUTH sends no AUTH_KEY; M018/M051: and its
/// GSA_REKEY messages carry no AUTH payload.
#[test]
fn implicit_authentication_sends_no_auth_key_and_no_auth() {
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(2)));
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.rekey.as_mut().unwrap().auth = RekeyAuth::Implicit;
    gcks.add_group(0, cfg).unwrap();
    let r = register(&mut gcks, 0, 1, "gm1@example.com", vec![]);
    assert!(
        kd(&r.response)
            .member_bag()
            .is_none_or(|m| m.auth_key.is_none())
    );
    let kek = gsa(&r.response).kek().unwrap().clone();
    assert_eq!(
        GcauthId(kek.transform(TransformType::GCAUTH).unwrap().id),
        GcauthId::IMPLICIT
    );
    let sk = rekey_sk(&r, &kek);
    multicasts(&mut gcks);
    gcks.rekey(1000, &group_id()).unwrap();
    let sent = multicasts(&mut gcks);
    let opened = rekey_message::open(&sent[0], &sk, RekeyVerifier::Implicit).unwrap();
    assert!(
        !opened
            .payloads
            .iter()
            .any(|p| matches!(p, Payload::Auth(_)))
    );
}

/// M022: the first message over a new Rekey SA has Message ID 0, IDs then
/// grow by one; M023: retransmissions are bitwise identical; M028: the old
/// TEK is named in a Delete; M017/M086: no GM_SENDER_ID in rekeys.
#[test]
fn rekey_messages_number_from_zero_and_retransmit_identically() {
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(3)));
    let mut cfg = sender_config(KeyManagement::Flat, 8);
    cfg.rekey.as_mut().unwrap().auth = RekeyAuth::Implicit;
    gcks.add_group(0, cfg).unwrap();
    let r = register(
        &mut gcks,
        0,
        1,
        "sender1@example.com",
        vec![Payload::Notify(Notify::group_sender(1))],
    );
    let kek = gsa(&r.response).kek().unwrap().clone();
    let old_tek = gsa(&r.response).teks().next().unwrap().sa;
    let sk = rekey_sk(&r, &kek);
    // The sender's own SA goes to the group: the first message, with its
    // two copies.
    let announced = multicasts(&mut gcks);
    assert_eq!(announced.len(), 1);
    gcks.handle_timeout(5000);
    assert_eq!(
        multicasts(&mut gcks),
        [announced[0].clone(), announced[0].clone()]
    );
    let mut ids = vec![
        rekey_message::open(&announced[0], &sk, RekeyVerifier::Implicit)
            .unwrap()
            .message_id,
    ];

    for round in 0..3 {
        let now = 10_000 + round * 10_000;
        gcks.rekey(now, &group_id()).unwrap();
        let first = multicasts(&mut gcks);
        assert_eq!(first.len(), 1);
        gcks.handle_timeout(now + 5000);
        let copies = multicasts(&mut gcks);
        assert_eq!(copies.len(), 2, "two retransmissions");
        assert!(copies.iter().all(|c| *c == first[0]), "bitwise identical");
        let opened = rekey_message::open(&first[0], &sk, RekeyVerifier::Implicit).unwrap();
        ids.push(opened.message_id);
        if round == 0 {
            let deletes: Vec<&Delete> = opened
                .payloads
                .iter()
                .filter_map(|p| match p {
                    Payload::Delete(d) => Some(d),
                    _ => None,
                })
                .collect();
            assert_eq!(
                deletes,
                Delete::for_sas(&[old_tek]).iter().collect::<Vec<_>>()
            );
        }
        assert!(
            kd(&opened.payloads)
                .member_bag()
                .is_none_or(|m| m.sender_ids.is_empty())
        );
    }
    assert_eq!(ids, [0, 1, 2, 3]);
}

/// M109 from the sender's side: a GM discards any GSA_REKEY whose Message
/// ID is not above the last it took, so the copies of a message must never
/// follow a later one. Two rekeys half a second apart: the second goes out
/// after one more copy of the first, and only its own copies follow.
#[test]
fn retransmissions_never_follow_a_later_message() {
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(5)));
    let mut cfg = config(KeyManagement::Flat, 8);
    cfg.rekey.as_mut().unwrap().auth = RekeyAuth::Implicit;
    gcks.add_group(0, cfg).unwrap();
    let r = register(&mut gcks, 0, 1, "gm1@example.com", vec![]);
    let kek = gsa(&r.response).kek().unwrap().clone();
    let sk = rekey_sk(&r, &kek);
    multicasts(&mut gcks);
    let id = |d: &[u8]| {
        rekey_message::open(d, &sk, RekeyVerifier::Implicit)
            .unwrap()
            .message_id
    };

    gcks.rekey(1000, &group_id()).unwrap();
    let first = multicasts(&mut gcks);
    assert_eq!(first.len(), 1);
    gcks.rekey(1500, &group_id()).unwrap();
    let second = multicasts(&mut gcks);
    assert_eq!(second.len(), 2, "a copy of the first, then the second");
    assert_eq!(second[0], first[0], "the copy is bitwise identical");
    let mut stream: Vec<u32> = first.iter().chain(&second).map(|d| id(d)).collect();
    for now in [2000, 2500, 3000, 3500, 4000, 10_000] {
        gcks.handle_timeout(now);
        stream.extend(multicasts(&mut gcks).iter().map(|d| id(d)));
    }
    // The GM's view: every message taken once, none lost to a replay.
    let mut last = None;
    let mut taken = Vec::new();
    for m in &stream {
        if last.is_none_or(|l| *m > l) {
            taken.push(*m);
            last = Some(*m);
        }
    }
    assert_eq!(taken, [0, 1], "stream {stream:?}");
    assert!(stream.is_sorted(), "IDs never go back: {stream:?}");
    assert_eq!(
        stream.len(),
        5,
        "0, its copy, 1 and its two copies: {stream:?}"
    );

    // Copies on two Rekey SAs keep their own times: an LKH join flush (on
    // the first KEK) at 1000, a TEK rekey (on the next) at 1500; at 2600
    // both first copies are due.
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(6)));
    let mut cfg = config(LKH2, 8);
    cfg.rekey.as_mut().unwrap().auth = RekeyAuth::Implicit;
    gcks.add_group(0, cfg).unwrap();
    register(&mut gcks, 0, 1, "gm1@example.com", vec![]);
    multicasts(&mut gcks);
    gcks.handle_timeout(1000);
    let flush = multicasts(&mut gcks);
    assert_eq!(flush.len(), 1, "the join flush");
    gcks.rekey(1500, &group_id()).unwrap();
    let tek = multicasts(&mut gcks);
    assert_eq!(
        tek.len(),
        1,
        "the TEK rekey, on another Rekey SA: no copy first"
    );
    gcks.handle_timeout(2600);
    assert_eq!(multicasts(&mut gcks), [flush[0].clone(), tek[0].clone()]);
}

/// M038, M039, M041, M073: an exclusion sends the new KEK alone (no TEK) on
/// the old KEK — several SA_KEYs, one keying material — then the new TEKs
/// on the new KEK, whose first Message ID is 0.
#[test]
fn exclusion_separates_kek_and_tek_and_locks_out_the_excluded() {
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(4)));
    let mut cfg = config(LKH2, 8);
    cfg.rekey.as_mut().unwrap().auth = RekeyAuth::Implicit;
    gcks.add_group(0, cfg).unwrap();
    let mut members = Vec::new();
    // Eight members fill both halves of a degree-2 tree of capacity 8.
    for m in 1..=8u64 {
        let r = register(&mut gcks, 0, m, &format!("gm{m}@example.com"), vec![]);
        let kek = gsa(&r.response).kek().unwrap().clone();
        let mut gm = ModelGm {
            keys: HashMap::new(),
            kwa: KeyWrapAlg::Kw5649_256,
        };
        let keymat = gm
            .learn(kd(&r.response), &r.gsk_w, IKE_KWA, kek.sa)
            .unwrap();
        members.push((gm, kek, keymat));
    }
    multicasts(&mut gcks);
    // Joiners are handed the Rekey SA the join flush then moves the group
    // to, so they never hold a KEK that protected earlier messages.
    gcks.handle_timeout(1500);
    assert_eq!(multicasts(&mut gcks).len(), 1, "one join flush");
    let spi = gcks.status(1500)[0].rekey_spi.unwrap();
    let current: Vec<(GsaPolicy, Secret)> = members
        .iter()
        .map(|(_, kek, keymat)| (kek.clone(), keymat.clone()))
        .collect();
    assert!(current.iter().all(|(k, _)| k.sa == SaRef::Rekey(spi)));
    assert!(
        current.windows(2).all(|w| w[0].1 == w[1].1),
        "one KEK for all"
    );

    gcks.exclude(2000, &group_id(), MemberId(2)).unwrap();
    let sent = multicasts(&mut gcks);
    assert_eq!(sent.len(), 2);
    let (kek, keymat) = &current[0];
    let (sk, gsk_w) = sk_of(kek, keymat);
    let first = rekey_message::open(&sent[0], &sk, RekeyVerifier::Implicit).unwrap();
    let g = gsa(&first.payloads);
    assert!(g.kek().is_some());
    assert_eq!(g.teks().count(), 0, "M038: no TEK with a membership change");
    let new_kek = g.kek().unwrap().clone();
    let sa_keys = &kd(&first.payloads).bag_for(&new_kek.sa).unwrap().sa_keys;
    assert!(sa_keys.len() > 1, "LKH sends the SA key under several keys");

    let mut followed = 0;
    for (i, (gm, _, _)) in members.iter_mut().enumerate() {
        let got = gm.learn(
            kd(&first.payloads),
            &gsk_w,
            KeyWrapAlg::Kw5649_256,
            new_kek.sa,
        );
        if i == 1 {
            assert!(got.is_none(), "the excluded member reaches no key");
            continue;
        }
        let km = got.expect("the others follow");
        // M041: every SA_KEY holds the same keying material.
        for w in sa_keys {
            if let Some(k) = gm.keys.get(&w.kwk_id) {
                assert_eq!(
                    KeyWrapAlg::Kw5649_256
                        .unwrap(k.expose(), &w.encrypted)
                        .unwrap(),
                    km
                );
            }
        }
        let (sk2, _) = sk_of(&new_kek, &km);
        let second = rekey_message::open(&sent[1], &sk2, RekeyVerifier::Implicit).unwrap();
        assert_eq!(second.message_id, 0, "M022");
        assert!(gsa(&second.payloads).teks().count() >= 1);
        followed += 1;
    }
    assert_eq!(followed, 7);
    // The second message does not open under the old KEK.
    assert!(rekey_message::open(&sent[1], &sk, RekeyVerifier::Implicit).is_err());
}

/// M004: a GM that reports NO_PROPOSAL_CHOSEN in GSA_REGISTRATION is
/// removed; M007: SAg sets are honoured (NO_PROPOSAL_CHOSEN otherwise);
/// M085: never more Sender-IDs than asked.
#[test]
fn leaving_sag_and_sender_id_counts() {
    let mut sim = Sim::new(config(LKH2, 8), 5);
    sim.join("gm1@example.com", receiver()).unwrap();
    assert_eq!(sim.gcks.status(0)[0].members.len(), 1);
    let leave = through_wire(
        &sim.members[0]
            .gm
            .leave_payloads(NotifyType::NO_PROPOSAL_CHOSEN),
    );
    let sk_d = sim.members[0].sk_d.clone();
    let resp = sim.gcks.handle_registration(
        0,
        &Registration {
            member: sim.members[0].id,
            identities: &["gm1@example.com"],
            peer: None,
            exchange: ExchangeType::GSA_REGISTRATION,
            payloads: &leave,
            ike: Sim::ike(&sk_d),
        },
    );
    assert!(resp.is_empty(), "Figure 8: an empty response");
    assert!(sim.gcks.status(0)[0].members.is_empty());

    // An SAg that does not list the group's cipher.
    let sag = gikev2::config::membership_from_settings([
        ("id", "market-data"),
        ("accept.esp", "aes128gcm16"),
    ])
    .unwrap()
    .offer
    .unwrap();
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(6)));
    gcks.add_group(0, sender_config(LKH2, 8)).unwrap();
    let r = register(&mut gcks, 0, 9, "gm9@example.com", vec![Payload::Sag(sag)]);
    assert_eq!(
        r.response,
        [Payload::Notify(Notify::plain(
            NotifyType::NO_PROPOSAL_CHOSEN
        ))]
    );

    // Sender-IDs: asked 3 of a maximum 4 → 3; asked 9 → 4.
    for (ask, want) in [(3, 3), (9, 4)] {
        let r = register(
            &mut gcks,
            0,
            20 + ask as u64,
            &format!("sender{ask}@example.com"),
            vec![Payload::Notify(Notify::group_sender(ask))],
        );
        let ids = &kd(&r.response).member_bag().unwrap().sender_ids;
        assert_eq!(ids.len(), want);
        assert_eq!(
            gsa(&r.response).group_wide().unwrap().sender_id_bits,
            Some(8),
            "M068: Sender-ID bits with counter mode and senders"
        );
    }
}

/// `members` and `senders` are matched against what charon authenticated:
/// one identity per round (the EAP identity of an EAP round), each a
/// proof. Nothing authenticated is refused; any allowed identity admits,
/// and names the member; any excluded identity refuses.
#[test]
fn authorization_uses_every_authenticated_identity() {
    let refused = [Payload::Notify(Notify::plain(
        NotifyType::AUTHORIZATION_FAILED,
    ))];
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(10)));
    gcks.add_group(0, sender_config(LKH2, 8)).unwrap();
    assert_eq!(register_as(&mut gcks, 0, 1, &[], vec![]).response, refused);
    // EAP: the EAP identity is what was proven, not IDi.
    let r = register_as(&mut gcks, 0, 2, &["mallory@attacker.test"], vec![]);
    assert_eq!(r.response, refused);
    // Two rounds: a certificate, then EAP as a user the group does not list.
    let r = register_as(
        &mut gcks,
        0,
        3,
        &["host3.example.net", "gm3@example.com"],
        vec![],
    );
    assert!(r.response.iter().any(|p| matches!(p, Payload::Gsa(_))));
    let members = &gcks.status(0)[0].members;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].1, "gm3@example.com", "named by the allowed one");
    // A sender needs an identity `senders` allows, in any round.
    let ask = || vec![Payload::Notify(Notify::group_sender(1))];
    let r = register_as(&mut gcks, 0, 4, &["gm4@example.com"], ask());
    assert_eq!(r.response, refused);
    let r = register_as(
        &mut gcks,
        0,
        5,
        &["gm5@example.com", "sender5@example.com"],
        ask(),
    );
    assert!(!kd(&r.response).member_bag().unwrap().sender_ids.is_empty());
    // Excluded under one identity, refused under all.
    gcks.exclude(0, &group_id(), MemberId(3)).unwrap();
    let r = register_as(
        &mut gcks,
        0,
        6,
        &["gm6@example.com", "gm3@example.com"],
        vec![],
    );
    assert_eq!(r.response, refused);
}

/// M065, the GCKS side: a member rekeyed inband gets no GSA_NEXT_SPI (nor
/// GSA_INITIAL_MESSAGE_ID, §4.4.2.2.2), neither in its registration
/// response nor in its GSA_INBAND_REKEY; multicast members of a mixed
/// group get them in both.
#[test]
fn inband_members_get_no_next_spi() {
    let mut cfg = config(LKH2, 8);
    cfg.delivery = Delivery::Mixed {
        inband: vec![IdentityPattern("inband*@example.com".into())],
    };
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(11)));
    gcks.add_group(0, cfg).unwrap();
    let next_spi_in = |p: &[Payload]| {
        gsa(p)
            .sa_policies()
            .any(|p| p.next_spis().next().is_some() || p.initial_message_id().is_some())
    };
    let inband = register(&mut gcks, 0, 1, "inband1@example.com", vec![]);
    assert!(gsa(&inband.response).sa_policies().count() > 0);
    assert!(!next_spi_in(&inband.response), "registration, inband");
    let multicast = register(&mut gcks, 0, 2, "gm2@example.com", vec![]);
    assert!(next_spi_in(&multicast.response), "registration, multicast");
    gcks.rekey(0, &group_id()).unwrap();
    let mut inband_rekeys = 0;
    while let Some(a) = gcks.poll_action() {
        if let GcksAction::InbandRekey { member, payloads } = a {
            assert_eq!(member, MemberId(1));
            assert!(!next_spi_in(&payloads), "GSA_INBAND_REKEY");
            inband_rekeys += 1;
        }
    }
    assert_eq!(inband_rekeys, 1);
}

/// Unknown groups get INVALID_GROUP_ID.
#[test]
fn unknown_group_is_invalid() {
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(7)));
    gcks.add_group(0, config(LKH2, 8)).unwrap();
    let sk_d = Secret::new(vec![1; 32]);
    let req = through_wire(&[Payload::Idg(GroupId {
        id_type: gikev2::iana::IdType::ID_KEY_ID,
        data: b"video".to_vec(),
    })]);
    let resp = gcks.handle_registration(
        0,
        &Registration {
            member: MemberId(1),
            identities: &["gm1@example.com"],
            peer: None,
            exchange: ExchangeType::GSA_AUTH,
            payloads: &req,
            ike: IkeKeys {
                sk_d: &sk_d,
                prf: PRF,
                kwa: IKE_KWA,
            },
        },
    );
    assert_eq!(
        resp,
        [Payload::Notify(Notify::plain(NotifyType::INVALID_GROUP_ID))]
    );
    let _ = RekeySpi::default();
}

/// M008: IPCOMP_SUPPORTED in a registration request is ignored, its CPI
/// whatever it is: the member is registered as without it, and nothing in
/// the response speaks of IPComp.
#[test]
fn ipcomp_supported_and_its_cpi_are_ignored() {
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(8)));
    gcks.add_group(0, config(LKH2, 8)).unwrap();
    let plain = register(&mut gcks, 0, 1, "gm1@example.com", vec![]);
    for (member, cpi) in [(2, [0, 0]), (3, [0x12, 0x34])] {
        let ipcomp = Notify {
            // CPI, then Transform ID 2 (IPCOMP_DEFLATE), RFC 7296 §3.10.1.
            data: vec![cpi[0], cpi[1], 2],
            ..Notify::plain(NotifyType::IPCOMP_SUPPORTED)
        };
        let r = register(
            &mut gcks,
            0,
            member,
            "gm@example.com",
            vec![Payload::Notify(ipcomp)],
        );
        assert_eq!(gsa(&r.response), gsa(&plain.response), "CPI {cpi:?}");
        assert!(!kd(&r.response).bags.is_empty());
        assert!(
            !r.response
                .iter()
                .any(|p| matches!(p, Payload::Notify(n) if n.ty == NotifyType::IPCOMP_SUPPORTED)),
            "CPI {cpi:?}: {:?}",
            r.response
        );
    }
}

/// An SAg only alerts the GCKS to restrictions (§2.3.3): a GM that lists
/// the group's algorithms is registered, whatever transform types it does
/// not mention (GCAUTH, which a GM cannot choose; INTEG with AEAD), and one
/// that lists only other key wrap algorithms is refused. Every SAg the
/// membership settings build says which KWAs the GM supports (M089).
#[test]
fn sag_restricts_what_it_lists_and_always_names_key_wraps() {
    let sag = |accept: &[(&'static str, &'static str)]| {
        let mut s = vec![("id", "market-data")];
        s.extend_from_slice(accept);
        gikev2::config::membership_from_settings(s)
            .unwrap()
            .offer
            .unwrap()
    };
    let cases = [
        (vec![("accept.rekey", "aes256gcm16-kwaes256")], true),
        (vec![("accept.rekey", "aes256gcm16")], true),
        (vec![("accept.esp", "aes256gcm16")], true),
        (
            vec![
                ("accept.rekey", "aes256gcm16-kwaes256"),
                ("accept.esp", "aes256gcm16, aes128gcm16"),
            ],
            true,
        ),
        (vec![("accept.rekey", "aes256gcm16-kwaes128")], false),
        (vec![("accept.rekey", "aes128gcm16-kwaes256")], false),
    ];
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(9)));
    gcks.add_group(0, config(LKH2, 8)).unwrap();
    for (i, (accept, ok)) in cases.into_iter().enumerate() {
        let sag = sag(&accept);
        let rekey: Vec<_> = sag
            .proposals
            .iter()
            .filter(|p| p.protocol == gikev2::iana::ProtocolId::GIKE_UPDATE)
            .collect();
        assert!(!rekey.is_empty(), "{accept:?}: M089");
        assert!(
            rekey
                .iter()
                .all(|p| p.transforms.iter().any(|t| t.ty == TransformType::KWA)),
            "{accept:?}: M089"
        );
        let r = register(
            &mut gcks,
            0,
            30 + i as u64,
            "gm@example.com",
            vec![Payload::Sag(sag)],
        );
        let refused = r.response
            == [Payload::Notify(Notify::plain(
                NotifyType::NO_PROPOSAL_CHOSEN,
            ))];
        assert_eq!(!refused, ok, "{accept:?}: {:?}", r.response);
    }
}
