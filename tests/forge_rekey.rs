//! The forge_rekey example's messages against GM engines: a GSA_REKEY
//! encrypted and integrity-protected with the real Rekey SA keys (as read
//! from a GM's Wireshark key table) but signed with a fresh key is refused
//! and changes nothing, while the GCKS's own rekey is taken; the same
//! forgery signed with the GCKS's key would be taken, so the signature is
//! all that stops it. Hostile variants (implicit, wrong SPI, truncated,
//! flipped bit, wrong algorithm) are refused too.

mod common;
#[path = "../examples/forge_rekey/forge.rs"]
mod forge;

use common::{Sim, config, group_id, receiver};
use forge::{Forgery, KeyLine, Signature, Tamper};
use gikev2::config::parse_ts;
use gikev2::crypto::{CryptoError, EncrAlg, IntegAlg, SeededRng, SigAlg, SigningKey};
use gikev2::gm::{GmError, RekeySaSecrets};
use gikev2::iana::{EncrId, IntegId};
use gikev2::policy::{KeyManagement, RekeyAuth};
use gikev2::rekey_message::{self, RekeyError, RekeyVerifier};
use gikev2::wire::{RekeySpi, SaRef};

const TEK_SPI: u32 = 0x0bad_f00d;

type Snapshot = (
    gikev2::gm::GmStatus,
    std::collections::BTreeMap<(SaRef, gikev2::gm::SaDirection), gikev2::gm::TekInstall>,
    Vec<RekeySpi>,
);

fn snapshot(sim: &Sim) -> Vec<Snapshot> {
    sim.members
        .iter()
        .map(|m| (m.gm.status(sim.now), m.kernel.clone(), m.listening.clone()))
        .collect()
}

/// A group signing its rekeys with Ed25519, two receivers; the GCKS's key.
fn group() -> (Sim, SigningKey) {
    let cfg = config(KeyManagement::Flat, 8);
    let RekeyAuth::Signature(key) = &cfg.rekey.as_ref().unwrap().auth else {
        panic!("the common group signs its rekeys");
    };
    let key = key.clone();
    let mut sim = Sim::new(cfg, 41);
    sim.join("gm1@example.com", receiver()).unwrap();
    sim.join("gm2@example.com", receiver()).unwrap();
    sim.advance(1_000);
    (sim, key)
}

/// The key table line the plugin writes for `s`, read back as forge_rekey
/// reads it.
fn table_line(s: &RekeySaSecrets) -> KeyLine {
    let line = KeyLine {
        spi: s.spi,
        encr: s.encr,
        integ: s.integ,
        sk_e: s.gsk_e.clone(),
        sk_a: s.gsk_a.clone(),
    }
    .to_line()
    .unwrap();
    KeyLine::parse(&line).unwrap()
}

fn forgery<'a>(spi: RekeySpi, auth: Signature<'a>, tamper: Tamper) -> Forgery<'a> {
    Forgery {
        spi,
        message_id: 0x7fff_ffff,
        tek_spi: TEK_SPI,
        tek_src: parse_ts("10.1.0.0/16").unwrap(),
        tek_dst: parse_ts("239.1.1.1[udp/5000]").unwrap(),
        tek_encr: (EncrId::ENCR_AES_GCM_16, Some(256)),
        tek_integ: IntegId::NONE,
        lifetime_secs: 3600,
        kwk: None,
        auth,
        tamper,
    }
}

#[test]
fn forged_signature_is_refused_and_the_gcks_rekey_taken() {
    let (mut sim, gcks_key) = group();
    let spi = *sim.members[0].listening.last().unwrap();
    let secrets = sim.members[0].gm.rekey_sa_keys(spi).unwrap();
    assert_eq!(
        Some(&secrets),
        sim.members[1].gm.rekey_sa_keys(spi).as_ref(),
        "one Rekey SA for the group"
    );
    assert_eq!(
        secrets.encr,
        EncrAlg::new(EncrId::ENCR_AES_GCM_16, Some(256)).unwrap()
    );
    assert_eq!(secrets.integ, IntegAlg::NONE);
    assert_eq!(secrets.gsk_e.len(), 36, "AES-256 key and 4-octet salt");
    assert!(secrets.gsk_a.is_empty());
    assert!(sim.members[0].gm.rekey_sa_keys(RekeySpi([1; 16])).is_none());
    let key = table_line(&secrets);
    assert_eq!(key.spi, spi);
    let sk = key.sk().unwrap();
    let mut rng = SeededRng::from_u64(5);

    // Forged: right SPI, right KEK, fresh Ed25519 key; also with the TEK's
    // keys wrapped under the real GSK_w (an insider's perfect forgery).
    let before = snapshot(&sim);
    for kwk in [None, Some((&secrets.gsk_w, secrets.kwa))] {
        let mut f = forgery(spi, Signature::Fresh(SigAlg::Ed25519), Tamper::None);
        f.kwk = kwk;
        let forged = forge::forge(&f, &sk, &mut rng).unwrap();
        assert_ne!(forged.signer.as_ref().unwrap().1, gcks_key.public_key_der());
        // It decrypts with the table's keys: only the signature is wrong.
        let opened = rekey_message::open(
            &forged.datagram,
            &sk,
            RekeyVerifier::DigitalSignature(&gcks_key.verifying_key().unwrap()),
        );
        assert!(
            matches!(opened, Err(RekeyError::Crypto(CryptoError::BadSignature))),
            "{opened:?}"
        );
        sim.deliver(&forged.datagram, |_| true);
        for m in &mut sim.members {
            let err = m.rekey_errors.pop().expect("refused");
            assert!(err.contains("signature"), "{err}");
            let again = m.gm.handle_rekey(sim.now, &forged.datagram).unwrap_err();
            assert!(
                matches!(
                    again,
                    GmError::Rekey(RekeyError::Crypto(CryptoError::BadSignature))
                ),
                "{again}"
            );
            assert!(m.gm.poll_action().is_none());
        }
        assert_eq!(snapshot(&sim), before, "nothing changed");
    }

    // The GCKS's own rekey (lower Message ID than the forgery's) is taken,
    // and it decrypts with the key table line (as Wireshark would).
    let tek_before = sim.inbound(0);
    sim.gcks.rekey(sim.now, &group_id()).unwrap();
    sim.pump();
    let genuine = sim.sent.last().unwrap().clone();
    rekey_message::open(
        &genuine,
        &sk,
        RekeyVerifier::DigitalSignature(&gcks_key.verifying_key().unwrap()),
    )
    .unwrap();
    sim.advance(10_000);
    for i in 0..2 {
        assert!(sim.members[i].rekey_errors.is_empty());
        let after = sim.inbound(i);
        assert_eq!(after.len(), 1);
        assert_ne!(after, tek_before, "gm{} took the GCKS's TEK", i + 1);
    }

    // The same forgery signed with the GCKS's key would have been taken:
    // the signature alone stops it.
    let mut f = forgery(spi, Signature::Key(&gcks_key), Tamper::None);
    f.kwk = Some((&secrets.gsk_w, secrets.kwa));
    let control = forge::forge(&f, &sk, &mut rng).unwrap();
    sim.members[1]
        .gm
        .handle_rekey(sim.now, &control.datagram)
        .unwrap();
    sim.pump();
    assert!(
        sim.inbound(1)
            .iter()
            .any(|(sa, _)| *sa == SaRef::Esp(TEK_SPI)),
        "{:?}",
        sim.inbound(1)
    );
    assert!(
        !sim.inbound(0)
            .iter()
            .any(|(sa, _)| *sa == SaRef::Esp(TEK_SPI))
    );
}

#[test]
fn hostile_variants_are_refused_and_change_nothing() {
    let (mut sim, _) = group();
    let spi = *sim.members[0].listening.last().unwrap();
    let secrets = sim.members[0].gm.rekey_sa_keys(spi).unwrap();
    let key = table_line(&secrets);
    let sk = key.sk().unwrap();
    let mut rng = SeededRng::from_u64(6);
    let before = snapshot(&sim);
    let len = forge::forge(
        &forgery(spi, Signature::Fresh(SigAlg::Ed25519), Tamper::None),
        &sk,
        &mut rng,
    )
    .unwrap()
    .datagram
    .len();
    let cases: Vec<(Forgery<'_>, &str)> = vec![
        (
            forgery(spi, Signature::Implicit, Tamper::None),
            "lacks the AUTH payload",
        ),
        (
            forgery(spi, Signature::Fresh(SigAlg::EcdsaP256Sha256), Tamper::None),
            "AlgorithmIdentifier differs",
        ),
        (
            forgery(
                RekeySpi(spi.0.map(|b| !b)),
                Signature::Fresh(SigAlg::Ed25519),
                Tamper::None,
            ),
            "unknown Rekey SA",
        ),
        (
            forgery(
                spi,
                Signature::Fresh(SigAlg::Ed25519),
                Tamper::Truncate(100),
            ),
            "malformed",
        ),
        (
            forgery(spi, Signature::Fresh(SigAlg::Ed25519), Tamper::Truncate(20)),
            "malformed",
        ),
        (
            forgery(
                spi,
                Signature::Fresh(SigAlg::Ed25519),
                Tamper::FlipBit(8 * 40),
            ),
            "GSA_REKEY protection",
        ),
        (
            forgery(
                spi,
                Signature::Fresh(SigAlg::Ed25519),
                Tamper::FlipBit(8 * len - 1),
            ),
            "GSA_REKEY protection",
        ),
    ];
    for (f, why) in cases {
        let forged = forge::forge(&f, &sk, &mut rng).unwrap();
        for m in &mut sim.members {
            let err = m.gm.handle_rekey(sim.now, &forged.datagram).unwrap_err();
            assert!(err.to_string().contains(why), "{err} (expected: {why})");
            assert!(m.gm.poll_action().is_none());
        }
        assert_eq!(snapshot(&sim), before);
    }
}

#[test]
fn key_table_lines_round_trip_and_bad_ones_are_refused() {
    let (sim, _) = group();
    let spi = *sim.members[0].listening.last().unwrap();
    let s = sim.members[0].gm.rekey_sa_keys(spi).unwrap();
    let line = table_line(&s).to_line().unwrap();
    let hex_spi = forge::hex(&spi.0);
    assert!(
        line.starts_with(&format!("{},{},", &hex_spi[..16], &hex_spi[16..])),
        "{line}"
    );
    assert!(line.ends_with(",\"AES-GCM-256 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\""));
    // CBC with HMAC, as a save-keys line would carry it.
    let cbc = format!(
        "0011223344556677,8899aabbccddeeff,{k},{k},\"AES-CBC-128 [RFC3602]\",{a},{a},\"HMAC_SHA2_256_128 [RFC4868]\"",
        k = "11".repeat(16),
        a = "22".repeat(32)
    );
    let k = KeyLine::parse(&cbc).unwrap();
    assert_eq!(k.to_line().unwrap(), cbc);
    assert!(k.sk().is_ok());
    for bad in [
        "",
        "0011,8899aabbccddeeff,,,\"AES-CBC-128 [RFC3602]\",,,\"NONE [RFC4306]\"",
        &cbc.replace("AES-CBC-128", "ChaCha20-Poly1305"),
        &cbc.replacen(&"11".repeat(16), &"11".repeat(15), 1),
        &cbc.replacen(&"22".repeat(32), &"33".repeat(32), 1),
    ] {
        assert!(KeyLine::parse(bad).is_err(), "{bad}");
    }
}
