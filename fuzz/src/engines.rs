//! The protocol engines fed hostile but authentic-looking input.
//!
//! GM targets start from a GM that took a real registration, then run a
//! sequence of operations chosen by the input: GSA_REKEY messages whose
//! plaintext the fuzzer writes and the harness seals with the real Rekey
//! SA keys (and signs, for a signed group), with the fuzzer's plaintext
//! keys wrapped under the real KWKs; raw datagrams; real datagrams with
//! flipped octets; GSA_INBAND_REKEY payloads; registration responses; and
//! the passing of time. The GCKS target runs registrations with hostile
//! requests, exclusions, rekeys and timers, and checks that everything the
//! GCKS sends is well-formed.

use gikev2::crypto::{KeyWrapAlg, PrfAlg, Secret, SeededRng};
use gikev2::gcks::{Gcks, GcksAction, MemberId, Registration};
use gikev2::gm::{Gm, GmAction, GmError, MembershipConfig, Role};
use gikev2::iana::{ExchangeType, KwaId, NotifyType, PayloadType, TransformType};
use gikev2::ike_sa::{IkeKeys, Millis};
use gikev2::rekey_message::{self, RekeySigner, RekeyVerifier};
use gikev2::wire::{
    Codec, Direction, GroupId, IkeHeader, Notify, Payload, Reader, SaPayload, check_exchange,
    encode_chain, read_chain,
};

use super::input::Input;
use super::world::{
    GM_IDENTITY, IKE_KWA, KekKeys, Keyring, Kind, Scenario, config, group_id, ike, sk_d,
    through_wire,
};

/// Octets of the IKE header and the SK payload header.
const A_LEN: usize = 32;
/// Operations per input, to bound the time one input takes.
const MAX_OPS: usize = 12;

/// Decodes a payload chain written as first type | chain.
fn chain(first: u8, b: &[u8]) -> Option<Vec<Payload>> {
    read_chain(PayloadType(first), &mut Reader::new(b)).ok()
}

/// Seals `plain` (any octets) as the Encrypted payload of a GSA_REKEY on
/// the real Rekey SA.
pub fn seal_raw(kek: &KekKeys, message_id: u32, first: u8, plain: &[u8], seed: u64) -> Vec<u8> {
    let plain = &plain[..plain.len().min(60_000)];
    let total = A_LEN + kek.sk.sealed_len(plain.len());
    let mut h = IkeHeader::rekey(kek.spi, message_id);
    h.length = total as u32;
    let mut msg = h.to_bytes();
    msg.push(first);
    msg.push(0);
    msg.extend_from_slice(&((total - 28) as u16).to_be_bytes());
    let body = kek
        .sk
        .seal(&msg, plain, &mut SeededRng::from_u64(seed))
        .expect("sealing with the real keys");
    msg.extend_from_slice(&body);
    msg
}

/// Seals payloads as the GCKS would: signed when the group signs.
pub fn forge(scn: &Scenario, message_id: u32, payloads: &[Payload], seed: u64) -> Option<Vec<u8>> {
    let kek = scn.kek.as_ref()?;
    let signer = match &scn.signer {
        Some(k) => RekeySigner::DigitalSignature(k),
        None => RekeySigner::Implicit,
    };
    let mut b = Vec::new();
    encode_chain(payloads, &mut b);
    if b.len() > 60_000 {
        return None;
    }
    rekey_message::seal(
        kek.spi,
        message_id,
        payloads,
        signer,
        &kek.sk,
        &mut SeededRng::from_u64(seed),
    )
    .ok()
}

fn verifier(scn: &Scenario) -> RekeyVerifier<'_> {
    match &scn.verifier {
        Some(k) => RekeyVerifier::DigitalSignature(k),
        None => RekeyVerifier::Implicit,
    }
}

/// Applies (offset, xor) edits to a copy of `base`.
fn mutate(base: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    if out.is_empty() {
        return out;
    }
    for e in edits.chunks_exact(3) {
        let at = usize::from(u16::from_be_bytes([e[0], e[1]])) % out.len();
        out[at] ^= e[2];
    }
    out
}

/// The keys a GSA_REKEY's wrapped keys may use: the Rekey SA's default
/// KWK and the key-tree keys the GM holds.
fn rekey_keyring(scn: &Scenario) -> Option<Keyring<'_>> {
    let kek = scn.kek.as_ref()?;
    Some(Keyring {
        default: (&kek.gsk_w, kek.kwa),
        tree_kwa: scn.tree_kwa,
        known: &scn.tree_keys,
    })
}

/// The keys of a registration response or GSA_INBAND_REKEY: the IKE SA's
/// GSK_w; tree keys use the KWA of the message's Rekey SA, if any.
fn ike_keyring<'a>(scn: &'a Scenario, payloads: &[Payload], known: bool) -> Keyring<'a> {
    let kwa = payloads
        .iter()
        .find_map(|p| match p {
            Payload::Gsa(g) => g.kek(),
            _ => None,
        })
        .and_then(|k| k.transform(TransformType::KWA))
        .and_then(|t| KeyWrapAlg::from_id(KwaId(t.id)).ok())
        .or(scn.tree_kwa);
    Keyring {
        default: (&scn.ike_kwk, IKE_KWA),
        tree_kwa: kwa,
        known: if known { &scn.tree_keys } else { &[] },
    }
}

/// What the GM must never do with a message it refused: install, delete
/// or change its keys.
fn refused_cleanly(gm: &mut Gm, before: &gikev2::gm::GmStatus, now: Millis) {
    let after = gm.status(now);
    assert_eq!(after.teks, before.teks, "refused message changed the TEKs");
    assert_eq!(after.key_path, before.key_path);
    assert_eq!(after.sender_ids, before.sender_ids);
    if let Some(a) = gm.poll_action() {
        assert!(
            matches!(a, GmAction::Reregister { .. }),
            "refused message queued {a:?}"
        );
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Fuzzer-written payloads sealed (and signed) with the real KEK.
    Forge,
    /// Fuzzer-written plaintext octets sealed with the real KEK.
    SealRaw,
    /// A real GSA_REKEY with octets flipped.
    MutateReal,
    /// A datagram as the fuzzer wrote it.
    Raw,
    Time,
    /// Fuzzer-written GSA_INBAND_REKEY payloads, keys wrapped for real.
    Inband,
    /// A real GSA_INBAND_REKEY re-encoded with octets flipped.
    InbandReal,
    /// A registration response again (GSA_REGISTRATION).
    Register,
}

const REKEY_OPS: [Op; 5] = [Op::Forge, Op::SealRaw, Op::MutateReal, Op::Raw, Op::Time];
const INBAND_OPS: [Op; 3] = [Op::Inband, Op::InbandReal, Op::Time];
const ALL_OPS: [Op; 8] = [
    Op::Forge,
    Op::SealRaw,
    Op::MutateReal,
    Op::Raw,
    Op::Time,
    Op::Inband,
    Op::InbandReal,
    Op::Register,
];

fn run_gm_ops(scn: &Scenario, gm: &mut Gm, inp: &mut Input<'_>, ops: &[Op], mut now: Millis) {
    for n in 0..MAX_OPS {
        if inp.is_empty() {
            break;
        }
        let op = ops[inp.below(ops.len())];
        let before = gm.status(now);
        let seed = n as u64;
        let r: Result<(), GmError> = match op {
            Op::Forge | Op::SealRaw => {
                let Some(kek) = scn.kek.as_ref() else {
                    continue;
                };
                let message_id = inp.u32();
                let flags = inp.u8();
                let first = inp.u8();
                let body = inp.segment();
                let d = if op == Op::Forge {
                    let Some(mut p) = chain(first, body) else {
                        continue;
                    };
                    if flags & 1 == 0
                        && let Some(k) = rekey_keyring(scn)
                    {
                        k.wrap_all(&mut p);
                    }
                    let Some(d) = forge(scn, message_id, &p, seed) else {
                        continue;
                    };
                    d
                } else {
                    seal_raw(kek, message_id, first, body, seed)
                };
                gm.handle_rekey(now, &d)
            }
            Op::MutateReal => {
                if scn.rekeys.is_empty() {
                    continue;
                }
                let base = &scn.rekeys[inp.below(scn.rekeys.len())];
                let d = mutate(base, inp.segment());
                gm.handle_rekey(now, &d)
            }
            Op::Raw => gm.handle_rekey(now, inp.segment()),
            Op::Time => {
                now += Millis::from(inp.u16()) * 100;
                gm.handle_timeout(now);
                while gm.poll_action().is_some() {}
                continue;
            }
            Op::Inband | Op::InbandReal => {
                let payloads = if op == Op::Inband {
                    let flags = inp.u8();
                    let first = inp.u8();
                    let Some(mut p) = chain(first, inp.segment()) else {
                        continue;
                    };
                    if flags & 1 == 0 {
                        ike_keyring(scn, &p, true).wrap_all(&mut p);
                    }
                    p
                } else {
                    let Some(base) = scn.inband.get(inp.below(scn.inband.len().max(1))) else {
                        continue;
                    };
                    let mut b = Vec::new();
                    encode_chain(base, &mut b);
                    let Some(p) = chain(base[0].ty().0, &mutate(&b, inp.segment())) else {
                        continue;
                    };
                    p
                };
                gm.handle_inband_rekey(now, &payloads, ike(&scn.sk_d))
            }
            Op::Register => {
                let flags = inp.u8();
                let first = inp.u8();
                let Some(mut p) = chain(first, inp.segment()) else {
                    continue;
                };
                if flags & 1 == 0 {
                    ike_keyring(scn, &p, false).wrap_all(&mut p);
                }
                gm.handle_registration_response(
                    now,
                    ExchangeType::GSA_REGISTRATION,
                    &p,
                    ike(&scn.sk_d),
                )
            }
        };
        match r {
            Ok(()) => while gm.poll_action().is_some() {},
            Err(e) => {
                let _ = e.to_string();
                refused_cleanly(gm, &before, now);
                while gm.poll_action().is_some() {}
            }
        }
        let _ = gm.poll_timeout();
    }
}

fn multicast_kind(sel: u8) -> Kind {
    if sel & 1 == 0 {
        Kind::SignedLkh
    } else {
        Kind::ImplicitFlat
    }
}

/// `rekey_message::peek` and `open` with the real Rekey SA keys: raw
/// datagrams, real ones with flipped octets, fuzzer plaintext sealed with
/// the real keys, and fuzzer payloads sealed and signed as the GCKS does
/// (which must open to the same payloads).
pub fn rekey_open(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let scn = Scenario::get(multicast_kind(sel));
    let kek = scn.kek.as_ref().expect("multicast scenario");
    let implicit = RekeyVerifier::Implicit;
    match (sel >> 1) % 4 {
        0 => {
            let d = inp.rest();
            let _ = rekey_message::peek(d);
            let _ = rekey_message::open(d, &kek.sk, verifier(scn));
            let _ = rekey_message::open(d, &kek.sk, implicit);
        }
        1 => {
            let base = &scn.rekeys[inp.below(scn.rekeys.len())];
            let d = mutate(base, inp.rest());
            let _ = rekey_message::peek(&d);
            let _ = rekey_message::open(&d, &kek.sk, verifier(scn));
        }
        2 => {
            let message_id = inp.u32();
            let first = inp.u8();
            let plain = inp.rest();
            let d = seal_raw(kek, message_id, first, plain, 1);
            assert_eq!(
                rekey_message::peek(&d).expect("own header"),
                (kek.spi, message_id)
            );
            let opened = rekey_message::open(&d, &kek.sk, implicit);
            if let Ok(o) = &opened {
                let p = chain(first, plain).expect("opened means decoded");
                assert_eq!(o.payloads, p);
            }
            let _ = rekey_message::open(&d, &kek.sk, verifier(scn));
        }
        _ => {
            let message_id = inp.u32();
            let flags = inp.u8();
            let first = inp.u8();
            let Some(mut p) = chain(first, inp.rest()) else {
                return;
            };
            if flags & 1 == 0
                && let Some(k) = rekey_keyring(scn)
            {
                k.wrap_all(&mut p);
            }
            // AUTH is the sealer's to add; a chain with one of its own is
            // sealed but not expected back as written.
            let own_auth = p.iter().any(|x| matches!(x, Payload::Auth(_)));
            let Some(d) = forge(scn, message_id, &p, 2) else {
                return;
            };
            if own_auth {
                let _ = rekey_message::open(&d, &kek.sk, verifier(scn));
            } else {
                let o = rekey_message::open(&d, &kek.sk, verifier(scn))
                    .unwrap_or_else(|e| panic!("a sealed GSA_REKEY does not open: {e}"));
                assert_eq!((o.spi, o.message_id), (kek.spi, message_id));
                let without_auth: Vec<Payload> = o
                    .payloads
                    .into_iter()
                    .filter(|x| scn.signer.is_none() || !matches!(x, Payload::Auth(_)))
                    .collect();
                assert_eq!(without_auth, p);
            }
        }
    }
}

/// A registered GM's `handle_rekey` (and timers) over a sequence of
/// GSA_REKEY messages.
pub fn gm_rekey(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let scn = Scenario::get(multicast_kind(sel));
    let mut gm = scn.fresh_gm(u64::from(sel));
    run_gm_ops(scn, &mut gm, &mut inp, &REKEY_OPS, 0);
}

/// A registered GM's `handle_inband_rekey` (and timers).
pub fn gm_inband(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let kind = match sel % 4 {
        0 => Kind::SignedLkh,
        1 => Kind::ImplicitFlat,
        _ => Kind::Inband,
    };
    let scn = Scenario::get(kind);
    let mut gm = scn.fresh_gm(u64::from(sel));
    run_gm_ops(scn, &mut gm, &mut inp, &INBAND_OPS, 0);
}

/// `handle_registration_response` with a hostile response whose keys are
/// wrapped under the real IKE SA key, by a new or an already registered
/// GM; then anything else.
pub fn gm_registration(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let scn = Scenario::get(Kind::ALL[usize::from(sel % 3)]);
    let registered = sel & 0x10 != 0;
    let mut gm = if registered {
        scn.fresh_gm(u64::from(sel))
    } else {
        Gm::new(scn.membership(), Box::new(SeededRng::from_u64(9)))
    };
    let exchange = if sel & 0x20 != 0 {
        ExchangeType::GSA_REGISTRATION
    } else {
        ExchangeType::GSA_AUTH
    };
    let flags = inp.u8();
    let first = inp.u8();
    if let Some(mut p) = chain(first, inp.segment()) {
        if flags & 1 == 0 {
            ike_keyring(scn, &p, false).wrap_all(&mut p);
        }
        let before = gm.status(0);
        match gm.handle_registration_response(0, exchange, &p, ike(&scn.sk_d)) {
            Ok(()) => while gm.poll_action().is_some() {},
            Err(_) => refused_cleanly(&mut gm, &before, 0),
        }
    }
    run_gm_ops(scn, &mut gm, &mut inp, &ALL_OPS, 0);
}

const IDENTITIES: [&str; 6] = [
    GM_IDENTITY,
    "member7@example.com",
    "sender2@example.com",
    "mallory@example.org",
    "",
    "*@example.com",
];

const EXCHANGES: [ExchangeType; 4] = [
    ExchangeType::GSA_AUTH,
    ExchangeType::GSA_REGISTRATION,
    ExchangeType::GSA_INBAND_REKEY,
    ExchangeType::IKE_AUTH,
];

/// Everything the GCKS sends must be well-formed.
fn check_gcks_actions(gcks: &mut Gcks) {
    while let Some(a) = gcks.poll_action() {
        match a {
            GcksAction::Multicast { datagram, .. } => {
                rekey_message::peek(&datagram).expect("GSA_REKEY header");
            }
            GcksAction::InbandRekey { payloads, .. } => {
                let p = through_wire(&payloads);
                check_exchange(ExchangeType::GSA_INBAND_REKEY, Direction::Request, &p)
                    .unwrap_or_else(|e| panic!("GCKS sent a bad GSA_INBAND_REKEY: {e}"));
            }
            GcksAction::CloseIkeSa { .. } => {}
        }
    }
}

/// The GCKS engine: registrations with hostile requests from members with
/// any identity and IKE SA keys, mixed with exclusions, rekeys, IKE SAs
/// going down and timers. Every response must pass the exchange rules,
/// and a response that hands out keys must be usable by a real GM.
pub fn gcks_registration(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let kind = Kind::ALL[usize::from(sel % 3)];
    let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(u64::from(sel))));
    gcks.add_group(0, config(kind)).expect("valid group");
    let mut now: Millis = 0;
    for _ in 0..MAX_OPS {
        if inp.is_empty() {
            break;
        }
        let op = inp.u8();
        let member = MemberId(u64::from(inp.u8() % 8) + 1);
        match op % 8 {
            0..=3 => {
                let identity = IDENTITIES[inp.below(IDENTITIES.len())];
                let exchange = EXCHANGES[inp.below(EXCHANGES.len())];
                let keys = inp.u8();
                let payloads = if op % 8 < 2 {
                    let first = inp.u8();
                    let Some(p) = chain(first, inp.segment()) else {
                        continue;
                    };
                    p
                } else {
                    structured_request(&mut inp)
                };
                let sk = if keys & 0x80 != 0 {
                    Secret::new(inp.segment().to_vec())
                } else {
                    sk_d(member.0)
                };
                let prf = [PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512]
                    [usize::from(keys & 3) % 3];
                let kwa = KeyWrapAlg::ALL[usize::from(keys >> 2 & 3)];
                let ike_keys = IkeKeys {
                    sk_d: &sk,
                    prf,
                    kwa,
                };
                let response = gcks.handle_registration(
                    now,
                    &Registration {
                        member,
                        identities: &[identity],
                        peer: Some(super::world::peer_of(member.0)),
                        exchange,
                        payloads: &payloads,
                        ike: ike_keys,
                    },
                );
                check_response(exchange, identity, &response, ike_keys, now);
            }
            4 => {
                let _ = gcks.exclude(now, &group_id(), member);
            }
            5 => {
                let _ = gcks.rekey(now, &group_id());
            }
            6 => {
                now += Millis::from(inp.u16()) * 10;
                gcks.handle_timeout(now);
            }
            _ => gcks.ike_sa_down(now, member),
        }
        check_gcks_actions(&mut gcks);
        let _ = gcks.poll_timeout();
        let _ = gcks.status(now);
    }
}

/// A request as a GM builds it, with fuzzer-chosen parts: IDg (the group
/// or another), an SAg, GROUP_SENDER with any count, another notification.
fn structured_request(inp: &mut Input<'_>) -> Vec<Payload> {
    let shape = inp.u8();
    let mut out = Vec::new();
    if shape & 1 == 0 {
        out.push(Payload::Idg(group_id()));
    } else {
        let data = inp.segment();
        let id = GroupId::from_bytes(data).unwrap_or(GroupId {
            id_type: gikev2::iana::IdType::ID_KEY_ID,
            data: data.to_vec(),
        });
        if !id.data.is_empty() {
            out.push(Payload::Idg(id));
        }
    }
    if shape & 2 != 0
        && let Ok(sag) = SaPayload::from_bytes(inp.segment())
    {
        out.push(Payload::Sag(sag));
    }
    if shape & 4 != 0 {
        let count = if shape & 8 != 0 { inp.u32() } else { 1 };
        out.push(Payload::Notify(Notify::group_sender(count)));
    }
    if shape & 0x10 != 0 {
        out.push(Payload::Notify(Notify::plain(NotifyType(inp.u16()))));
    }
    if shape & 0x20 != 0 {
        out.reverse();
    }
    out
}

/// The GCKS's answer follows the exchange rules and survives the wire;
/// keys it hands out, a GM with the same IKE SA can take.
fn check_response(
    exchange: ExchangeType,
    identity: &str,
    response: &[Payload],
    ike_keys: IkeKeys<'_>,
    now: Millis,
) {
    let response = through_wire(response);
    if !matches!(
        exchange,
        ExchangeType::GSA_AUTH | ExchangeType::GSA_REGISTRATION
    ) {
        return;
    }
    check_exchange(exchange, Direction::Response, &response)
        .unwrap_or_else(|e| panic!("GCKS response breaks the exchange rules: {e}"));
    if !response.iter().any(|p| matches!(p, Payload::Gsa(_))) {
        return;
    }
    let role = Role {
        receive: true,
        send: identity.starts_with("sender"),
    };
    let mut gm = Gm::new(
        MembershipConfig {
            group: group_id(),
            role,
            sender_ids: 1,
            offer: None,
        },
        Box::new(SeededRng::from_u64(3)),
    );
    if let Err(e) = gm.handle_registration_response(now, exchange, &response, ike_keys) {
        // Sender-IDs beyond what a GM asked for are still its own; only a
        // malformed or unusable response is a fault.
        panic!("a real GM refuses the GCKS's response: {e}");
    }
}
