//! GSA_REKEY protection under attack: any single flipped bit, a forged
//! message from an insider who knows the KEK, the wrong signing key, and
//! AUTH present or absent against the group's GCAUTH (§2.4.1, M018).

use gikev2::crypto::{
    CryptoError, EncrAlg, IntegAlg, Secret, SeededRng, SigAlg, SigningKey, SkProtection,
};
use gikev2::iana::{EncrId, IntegId, SnId};
use gikev2::rekey_message::{self, RekeyError, RekeySigner, RekeyVerifier};
use gikev2::wire::{
    GroupKeyBag, GroupPolicy, Gsa, GsaAttr, GsaPolicy, Kd, KeyBag, Payload, RekeySpi, SaRef,
    TrafficSelector, Transform, WrappedKey,
};

fn inner(lifetime: u32) -> Vec<Payload> {
    let sa = SaRef::Esp(0x1000_0001);
    vec![
        Payload::Gsa(Gsa {
            policies: vec![GroupPolicy::Sa(GsaPolicy {
                sa,
                src: TrafficSelector::addr("10.0.0.1".parse().unwrap()),
                dst: TrafficSelector::addr("239.1.1.1".parse().unwrap()),
                transforms: vec![
                    Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128)),
                    Transform::sn(SnId::SEQ32),
                ],
                attrs: vec![GsaAttr::KeyLifetime(lifetime)],
            })],
        }),
        Payload::Kd(Kd {
            bags: vec![KeyBag::Group(GroupKeyBag {
                sa,
                sa_keys: vec![WrappedKey {
                    key_id: 0,
                    kwk_id: 0,
                    encrypted: vec![7; 32],
                }],
                other: vec![],
            })],
        }),
    ]
}

/// The SK suites GSA_REKEY supports, with keys of the right size.
fn suites() -> Vec<SkProtection> {
    let cases = [
        (
            EncrId::ENCR_AES_CBC,
            Some(128),
            IntegId::AUTH_HMAC_SHA2_256_128,
        ),
        (
            EncrId::ENCR_AES_CBC,
            Some(256),
            IntegId::AUTH_HMAC_SHA2_512_256,
        ),
        (EncrId::ENCR_AES_GCM_16, Some(256), IntegId::NONE),
        (EncrId::ENCR_CHACHA20_POLY1305, None, IntegId::NONE),
    ];
    cases
        .into_iter()
        .map(|(e, bits, i)| {
            let encr = EncrAlg::new(e, bits).unwrap();
            let integ = IntegAlg::new(i).unwrap();
            SkProtection::new(
                encr,
                integ,
                &Secret::new(vec![0x11; encr.keymat_len()]),
                &Secret::new(vec![0x22; integ.keymat_len()]),
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn every_flipped_bit_is_rejected() {
    let spi = RekeySpi([9; 16]);
    let signer = SigningKey::generate(SigAlg::EcdsaP256Sha256).unwrap();
    let verifier = signer.verifying_key().unwrap();
    for sk in suites() {
        for (seal_with, open_with) in [
            (RekeySigner::Implicit, RekeyVerifier::Implicit),
            (
                RekeySigner::DigitalSignature(&signer),
                RekeyVerifier::DigitalSignature(&verifier),
            ),
        ] {
            let mut rng = SeededRng::from_u64(7);
            let msg = rekey_message::seal(spi, 3, &inner(60), seal_with, &sk, &mut rng).unwrap();
            assert!(rekey_message::open(&msg, &sk, open_with).is_ok());
            for bit in 0..msg.len() * 8 {
                let mut bad = msg.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    rekey_message::open(&bad, &sk, open_with).is_err(),
                    "bit {bit} of {sk:?} accepted"
                );
            }
        }
    }
}

#[test]
fn insider_forgery_fails_the_signature() {
    // A member knows the KEK, so it can decrypt, change the policy and
    // re-encrypt with a valid ICV; only the GCKS's signature stops it.
    let sk = &suites()[0];
    let spi = RekeySpi([3; 16]);
    for alg in [
        SigAlg::Ed25519,
        SigAlg::EcdsaP384Sha384,
        SigAlg::RsaPssSha256,
    ] {
        let gcks = SigningKey::generate(alg).unwrap();
        let verifier = gcks.verifying_key().unwrap();
        let mut rng = SeededRng::from_u64(1);
        let msg = rekey_message::seal(
            spi,
            5,
            &inner(60),
            RekeySigner::DigitalSignature(&gcks),
            sk,
            &mut rng,
        )
        .unwrap();
        let opened =
            rekey_message::open(&msg, sk, RekeyVerifier::DigitalSignature(&verifier)).unwrap();
        let auth = opened.payloads.last().unwrap().clone();
        assert!(matches!(auth, Payload::Auth(_)));

        let mut forged = inner(86_400);
        forged.push(auth);
        let forged =
            rekey_message::seal(spi, 5, &forged, RekeySigner::Implicit, sk, &mut rng).unwrap();
        let err = rekey_message::open(&forged, sk, RekeyVerifier::DigitalSignature(&verifier))
            .unwrap_err();
        assert!(
            matches!(err, RekeyError::Crypto(CryptoError::BadSignature)),
            "{alg:?}: {err}"
        );
    }
}

#[test]
fn wrong_signing_key_is_rejected() {
    let sk = &suites()[2];
    let gcks = SigningKey::generate(SigAlg::EcdsaP256Sha256).unwrap();
    let impostor = SigningKey::generate(SigAlg::EcdsaP256Sha256).unwrap();
    let msg = rekey_message::seal(
        RekeySpi([1; 16]),
        0,
        &inner(60),
        RekeySigner::DigitalSignature(&impostor),
        sk,
        &mut SeededRng::from_u64(2),
    )
    .unwrap();
    let err = rekey_message::open(
        &msg,
        sk,
        RekeyVerifier::DigitalSignature(&gcks.verifying_key().unwrap()),
    )
    .unwrap_err();
    assert!(matches!(err, RekeyError::Crypto(CryptoError::BadSignature)));

    // A signature of another algorithm than the group's is refused before
    // any verification (§4.4.2.1.1: the AlgorithmIdentifier must match).
    let ed = SigningKey::generate(SigAlg::Ed25519).unwrap();
    let msg = rekey_message::seal(
        RekeySpi([1; 16]),
        0,
        &inner(60),
        RekeySigner::DigitalSignature(&ed),
        sk,
        &mut SeededRng::from_u64(2),
    )
    .unwrap();
    let err = rekey_message::open(
        &msg,
        sk,
        RekeyVerifier::DigitalSignature(&gcks.verifying_key().unwrap()),
    )
    .unwrap_err();
    assert!(matches!(err, RekeyError::AuthAlgorithm(_)));
}

#[test]
fn auth_presence_follows_gcauth() {
    let sk = &suites()[3];
    let gcks = SigningKey::generate(SigAlg::Ed25519).unwrap();
    let verifier = gcks.verifying_key().unwrap();
    let mut rng = SeededRng::from_u64(3);
    let spi = RekeySpi([5; 16]);
    // M018: AUTH is required with signatures...
    let implicit =
        rekey_message::seal(spi, 1, &inner(60), RekeySigner::Implicit, sk, &mut rng).unwrap();
    assert!(matches!(
        rekey_message::open(&implicit, sk, RekeyVerifier::DigitalSignature(&verifier)),
        Err(RekeyError::AuthPresence { expected: true })
    ));
    // ...and refused when authentication is implicit.
    let signed = rekey_message::seal(
        spi,
        1,
        &inner(60),
        RekeySigner::DigitalSignature(&gcks),
        sk,
        &mut rng,
    )
    .unwrap();
    assert!(matches!(
        rekey_message::open(&signed, sk, RekeyVerifier::Implicit),
        Err(RekeyError::AuthPresence { expected: false })
    ));
}

#[test]
fn retransmissions_are_bitwise_identical() {
    // M023: sealing is deterministic given the injected randomness, so the
    // GCKS keeps one encoding and resends it.
    let sk = &suites()[1];
    let gcks = SigningKey::generate(SigAlg::Ed25519).unwrap();
    let seal = || {
        rekey_message::seal(
            RekeySpi([8; 16]),
            2,
            &inner(60),
            RekeySigner::DigitalSignature(&gcks),
            sk,
            &mut SeededRng::from_u64(4),
        )
        .unwrap()
    };
    assert_eq!(seal(), seal());
}
