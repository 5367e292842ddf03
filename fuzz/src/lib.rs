//! Fuzz target bodies for the gikev2 crate, shared by the libFuzzer
//! binaries in `fuzz_targets/` and by the top-level `tests/fuzz_corpus.rs`,
//! which runs them over the committed corpus and regressions. See
//! docs/fuzzing.md.

#[path = "crypto.rs"]
mod crypto;
#[path = "engines.rs"]
mod engines;
#[path = "input.rs"]
mod input;
#[path = "wire.rs"]
mod wire;
#[path = "world.rs"]
pub mod world;

pub use crypto::{config, der, keywrap};
pub use engines::{gcks_registration, gm_inband, gm_registration, gm_rekey, rekey_open};
pub use wire::{wire_chain, wire_message, wire_payloads};

use gikev2::crypto::SigAlg;
use gikev2::iana::ExchangeType;
use gikev2::rekey_message;
use gikev2::wire::{Codec, IkeHeader, KeyBag, Message, Payload, RawAttr, encode_chain};

use input::push_segment;
use world::{Keyring, Kind, Scenario, signing_key};

/// A target: its name (the directory of its corpus) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order docs/fuzzing.md lists them.
pub const TARGETS: [Target; 11] = [
    ("wire_message", wire_message),
    ("wire_chain", wire_chain),
    ("wire_payloads", wire_payloads),
    ("keywrap", keywrap),
    ("der", der),
    ("config", config),
    ("rekey_open", rekey_open),
    ("gm_rekey", gm_rekey),
    ("gm_registration", gm_registration),
    ("gm_inband", gm_inband),
    ("gcks_registration", gcks_registration),
];

fn chain_bytes(payloads: &[Payload]) -> Vec<u8> {
    let mut b = Vec::new();
    encode_chain(payloads, &mut b);
    b
}

/// first type | chain, as wire_chain and the engine ops read chains.
fn typed_chain(payloads: &[Payload]) -> Vec<u8> {
    let mut b = vec![payloads.first().map_or(0, |p| p.ty().0)];
    b.extend_from_slice(&chain_bytes(payloads));
    b
}

/// The plaintext payloads of each real GSA_REKEY the harness can open,
/// with AUTH removed and keys unwrapped, and its Message ID.
fn rekey_plaintexts(scn: &Scenario) -> Vec<(u32, Vec<Payload>)> {
    let (Some(kek), Some(ring)) = (&scn.kek, keyring(scn)) else {
        return Vec::new();
    };
    let verifier = match &scn.verifier {
        Some(k) => rekey_message::RekeyVerifier::DigitalSignature(k),
        None => rekey_message::RekeyVerifier::Implicit,
    };
    scn.rekeys
        .iter()
        .filter_map(|d| rekey_message::open(d, &kek.sk, verifier).ok())
        .map(|o| {
            let mut p: Vec<Payload> = o
                .payloads
                .into_iter()
                .filter(|p| !matches!(p, Payload::Auth(_)))
                .collect();
            ring.unwrap_all(&mut p);
            (o.message_id, p)
        })
        .collect()
}

fn keyring(scn: &Scenario) -> Option<Keyring<'_>> {
    let kek = scn.kek.as_ref()?;
    Some(Keyring {
        default: (&kek.gsk_w, kek.kwa),
        tree_kwa: scn.tree_kwa,
        known: &scn.tree_keys,
    })
}

fn ike_plain(scn: &Scenario, payloads: &[Payload], known: bool) -> Vec<Payload> {
    let mut p = payloads.to_vec();
    Keyring {
        default: (&scn.ike_kwk, world::IKE_KWA),
        tree_kwa: scn.tree_kwa,
        known: if known { &scn.tree_keys } else { &[] },
    }
    .unwrap_all(&mut p);
    p
}

/// Every chain the scenarios produced: requests, responses, rekeys.
fn real_chains() -> Vec<Vec<Payload>> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let scn = Scenario::get(kind);
        out.push(scn.response.clone());
        out.push(scn.fresh_gm(0).registration_payloads());
        out.extend(scn.inband.iter().cloned());
        out.extend(rekey_plaintexts(scn).into_iter().map(|(_, p)| p));
    }
    out
}

/// Seeds for a target's corpus: real traffic of the scenarios in the
/// form the target reads. `tests/fuzz_corpus.rs` runs them and writes
/// them to fuzz/corpus/ on request.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    match target {
        "wire_message" => {
            for kind in Kind::ALL {
                out.extend(Scenario::get(kind).rekeys.iter().cloned());
            }
            for (i, c) in real_chains().into_iter().enumerate() {
                let mut header = IkeHeader::rekey(Default::default(), i as u32);
                header.exchange = ExchangeType::GSA_AUTH;
                out.push(
                    Message {
                        header,
                        payloads: c,
                    }
                    .to_bytes(),
                );
            }
        }
        "wire_chain" => out.extend(real_chains().iter().map(|c| typed_chain(c))),
        "wire_payloads" => {
            for c in real_chains() {
                for p in &c {
                    let (sel, body) = match p {
                        Payload::Sag(x) => (1, x.to_bytes()),
                        Payload::Idg(x) => (2, x.to_bytes()),
                        Payload::Gsa(x) => (3, x.to_bytes()),
                        Payload::Kd(x) => (4, x.to_bytes()),
                        Payload::Notify(x) => (5, x.to_bytes()),
                        Payload::Delete(x) => (6, x.to_bytes()),
                        Payload::Auth(x) => (7, x.to_bytes()),
                        _ => continue,
                    };
                    out.push([vec![sel], body].concat());
                    if let Payload::Gsa(g) = p {
                        for pol in g.sa_policies() {
                            out.push([vec![8], pol.src.to_bytes()].concat());
                            out.push([vec![8], pol.dst.to_bytes()].concat());
                        }
                    }
                    if let Payload::Kd(k) = p {
                        for b in &k.bags {
                            if let KeyBag::Member(m) = b {
                                for a in &m.other {
                                    out.push([vec![10], a.to_bytes()].concat());
                                }
                            }
                        }
                    }
                }
            }
            out.push([vec![0], IkeHeader::rekey(Default::default(), 1).to_bytes()].concat());
            out.push([vec![9], RawAttr::tv(14, 256).to_bytes()].concat());
            out.push([vec![10], RawAttr::tlv(1, vec![0, 0, 0, 60]).to_bytes()].concat());
        }
        "keywrap" => {
            for (i, alg) in gikev2::crypto::KeyWrapAlg::ALL.iter().enumerate() {
                let kek = vec![0x5a; alg.key_len()];
                for len in [16usize, 32, 44] {
                    let w = alg.wrap(&kek, &vec![0x33; len]).expect("wrap");
                    out.push([vec![i as u8 | 8], w].concat());
                }
            }
            let w = gikev2::crypto::aes_kw_wrap(&[0x5a; 32], &[7; 32]).expect("wrap");
            out.push([vec![0x1a], w].concat());
        }
        "der" => {
            let k = signing_key();
            let sig = k.sign(b"GSA_REKEY").expect("sign");
            let ad = gikev2::crypto::auth_data(SigAlg::Ed25519, &sig);
            out.push([vec![0], ad].concat());
            for a in SigAlg::ALL {
                out.push([vec![0x40], a.algorithm_identifier().to_vec()].concat());
            }
            let i = SigAlg::ALL
                .iter()
                .position(|a| *a == SigAlg::Ed25519)
                .unwrap() as u8;
            let mut s = vec![0x60 | i];
            push_segment(&mut s, k.public_key_der());
            s.extend_from_slice(&sig);
            out.push(s);
            let mut s = vec![0xc0];
            push_segment(&mut s, b"GSA_REKEY");
            s.extend_from_slice(&sig);
            out.push(s);
            out.push([vec![0xf0], k.to_pkcs8_der().expect("der").expose().to_vec()].concat());
        }
        "config" => {
            let group = "id=market-data\nmembers=*@example.com\nsenders=feed*@example.com\n\
                key_management=lkh\nlkh_degree=4\natd=2s\ndtd=5s\nsender_id_bits=8\n\
                rekey.address=239.1.1.2:848\nrekey.proposal=aes256gcm16-kwaes256\n\
                rekey.auth=signature\nrekey.key=/etc/gcks.pem\nrekey.lifetime=2h\n\
                tek.feed.protocol=esp\ntek.feed.proposal=aes256gcm16\n\
                tek.feed.source=10.1.0.0/16\ntek.feed.destination=239.1.1.1[udp/5000]\n\
                tek.feed.lifetime=1h\n";
            let mut s = vec![0];
            push_segment(&mut s, signing_key().to_pkcs8_der().expect("der").expose());
            s.extend_from_slice(group.as_bytes());
            out.push(s);
            let member = "id=market-data\nrole=receiver\naccept.esp=aes256gcm16\n\
                accept.rekey=aes256gcm16-kwaes256\n";
            out.push([&[2u8, 0, 0][..], member.as_bytes()].concat());
            for (sel, text) in [
                (3u8, "90s"),
                (3, "kwaes256"),
                (4, "fqdn:example.com"),
                (5, "239.1.1.1[udp/5000]"),
            ] {
                out.push([&[sel, 0, 0][..], text.as_bytes()].concat());
            }
        }
        "rekey_open" => {
            for (sel, kind) in [(0u8, Kind::SignedLkh), (1, Kind::ImplicitFlat)] {
                let scn = Scenario::get(kind);
                for d in &scn.rekeys {
                    out.push([vec![sel], d.clone()].concat());
                }
                out.push(vec![sel | 2]);
                for (mid, p) in rekey_plaintexts(scn) {
                    let mut s = vec![sel | 4];
                    s.extend_from_slice(&mid.to_be_bytes());
                    s.extend_from_slice(&typed_chain(&p));
                    out.push(s);
                    let mut s = vec![sel | 6];
                    s.extend_from_slice(&mid.to_be_bytes());
                    s.push(0);
                    s.extend_from_slice(&typed_chain(&p));
                    out.push(s);
                }
            }
        }
        "gm_rekey" => {
            for (sel, kind) in [(0u8, Kind::SignedLkh), (1, Kind::ImplicitFlat)] {
                let scn = Scenario::get(kind);
                let mut s = vec![sel];
                for (mid, p) in rekey_plaintexts(scn) {
                    s.push(0); // Forge
                    s.extend_from_slice(&mid.to_be_bytes());
                    s.push(0);
                    let c = typed_chain(&p);
                    s.push(c[0]);
                    push_segment(&mut s, &c[1..]);
                    out.push(s.clone());
                }
                for i in 0..scn.rekeys.len() {
                    out.push(vec![sel, 2, i as u8, 0, 0]); // MutateReal, no edits
                }
                out.push([&[sel, 4, 0x20, 0][..], &s[1..]].concat()); // Time first
            }
        }
        "gm_inband" => {
            let scn = Scenario::get(Kind::Inband);
            let mut s = vec![2];
            for p in &scn.inband {
                s.push(0); // Inband
                s.push(0);
                let c = typed_chain(&ike_plain(scn, p, true));
                s.push(c[0]);
                push_segment(&mut s, &c[1..]);
                out.push(s.clone());
            }
            for i in 0..scn.inband.len() {
                out.push(vec![2, 1, i as u8, 0, 0]); // InbandReal
            }
            out.push([s, vec![2, 0x40, 0]].concat()); // then time
        }
        "gm_registration" => {
            for (i, kind) in Kind::ALL.iter().enumerate() {
                let scn = Scenario::get(*kind);
                let c = typed_chain(&ike_plain(scn, &scn.response, false));
                for reg in [0u8, 0x10, 0x20] {
                    let mut s = vec![i as u8 | reg, 0, c[0]];
                    push_segment(&mut s, &c[1..]);
                    out.push(s.clone());
                    // Then the real rekeys and a while.
                    for j in 0..scn.rekeys.len() {
                        s.extend_from_slice(&[2, j as u8, 0, 0]);
                    }
                    s.extend_from_slice(&[4, 0x10, 0]);
                    out.push(s);
                }
            }
        }
        "gcks_registration" => {
            for (i, kind) in Kind::ALL.iter().enumerate() {
                let req = Scenario::get(*kind).fresh_gm(0).registration_payloads();
                let c = typed_chain(&req);
                let mut s = vec![i as u8];
                // Raw request from the GM, as sender1 (identity 0).
                s.extend_from_slice(&[0, 0, 0, 0, 0, c[0]]);
                push_segment(&mut s, &c[1..]);
                // Structured requests from other members, a timer, a
                // rekey, an exclusion, an IKE SA down.
                s.extend_from_slice(&[2, 1, 1, 0, 0, 0]);
                s.extend_from_slice(&[2, 2, 2, 1, 0, 0x04]);
                s.extend_from_slice(&[6, 0, 0x01, 0x00]);
                s.extend_from_slice(&[5, 0]);
                s.extend_from_slice(&[4, 1]);
                s.extend_from_slice(&[7, 0]);
                out.push(s);
            }
        }
        _ => panic!("no target {target}"),
    }
    out
}
