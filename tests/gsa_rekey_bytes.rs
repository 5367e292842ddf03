//! One complete GSA_REKEY message, byte for byte.
//!
//! The expected octets are written out field by field from the figures of
//! RFC 9838 (Figures 9, 10, 14–21) and RFC 7296 (§3.1, §3.2, §3.3.2,
//! §3.3.5, §3.13.1, §3.14); the ciphertext, ICV and signature are checked
//! with OpenSSL called directly, not through the crate.

use gikev2::crypto::{EncrAlg, IntegAlg, Secret, SeededRng, SigningKey, SkProtection};
use gikev2::iana::{EncrId, IntegId, SnId};
use gikev2::rekey_message::{self, RekeySigner, RekeyVerifier};
use gikev2::wire::{
    Auth, GroupKeyBag, GroupPolicy, Gsa, GsaAttr, GsaPolicy, GwPolicy, Kd, KeyBag, Payload,
    RekeySpi, SaRef, TrafficSelector, Transform, WrappedKey,
};
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey};
use openssl::sign::{Signer, Verifier};
use openssl::symm::{Cipher, Crypter, Mode};

/// RFC 8032 §7.1 TEST 1 secret key: a fixed Ed25519 key, so the signature
/// is deterministic.
const ED25519_SECRET: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

const SPI: [u8; 16] = [
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
];
const MESSAGE_ID: u32 = 1;
const TEK_SPI: u32 = 0x0a0b_0c0d;
const GSK_E: [u8; 32] = [0x4e; 32];
const GSK_A: [u8; 32] = [0x4a; 32];
const WRAPPED: [u8; 48] = [0x5a; 48];

fn inner_payloads() -> Vec<Payload> {
    let tek = GsaPolicy {
        sa: SaRef::Esp(TEK_SPI),
        src: TrafficSelector::addr("192.0.2.1".parse().unwrap()),
        dst: TrafficSelector::host("239.192.0.1".parse().unwrap(), 17, 5000),
        transforms: vec![
            Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
            Transform::sn(SnId::UNSPECIFIED32),
        ],
        attrs: vec![GsaAttr::KeyLifetime(3600)],
    };
    let gw = GwPolicy {
        atd: Some(10),
        dtd: Some(30),
        ..Default::default()
    };
    let kd = Kd {
        bags: vec![KeyBag::Group(GroupKeyBag {
            sa: SaRef::Esp(TEK_SPI),
            sa_keys: vec![WrappedKey {
                key_id: 0,
                kwk_id: 0,
                encrypted: WRAPPED.to_vec(),
            }],
            other: vec![],
        })],
    };
    vec![
        Payload::Gsa(Gsa {
            policies: vec![GroupPolicy::Sa(tek), GroupPolicy::GroupWide(gw)],
        }),
        Payload::Kd(kd),
    ]
}

/// P of Figure 10, with the signature value zeroed: the inner payloads.
fn expected_p() -> Vec<u8> {
    let mut p = Vec::new();
    // GSA payload (Figure 14): Next Payload = KD (52), C/RESERVED, Length 84.
    p.extend([52, 0x00, 0x00, 84]);
    //   GSA policy (Figure 15): Protocol ESP (3), SPI Size 4, Length 68, SPI.
    p.extend([3, 4, 0x00, 68, 0x0a, 0x0b, 0x0c, 0x0d]);
    //   Source TS (RFC 7296 §3.13.1): TS_IPV4_ADDR_RANGE, any protocol,
    //   length 16, ports 0-65535, 192.0.2.1-192.0.2.1.
    p.extend([7, 0, 0x00, 16, 0x00, 0x00, 0xff, 0xff]);
    p.extend([192, 0, 2, 1, 192, 0, 2, 1]);
    //   Destination TS: UDP (17), port 5000 (0x1388), 239.192.0.1.
    p.extend([7, 17, 0x00, 16, 0x13, 0x88, 0x13, 0x88]);
    p.extend([239, 192, 0, 1, 239, 192, 0, 1]);
    //   Transform (RFC 7296 §3.3.2): more follow (3), length 12, ENCR (1),
    //   ENCR_AES_GCM_16 (20), Key Length TV (0x800e) = 256.
    p.extend([3, 0, 0x00, 12, 1, 0, 0x00, 20, 0x80, 0x0e, 0x01, 0x00]);
    //   Transform: last (0), length 8, SN (5), 32-bit Unspecified Numbers (2).
    p.extend([0, 0, 0x00, 8, 5, 0, 0x00, 2]);
    //   GSA_KEY_LIFETIME (TLV type 1, length 4) = 3600 s.
    p.extend([0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x0e, 0x10]);
    //   GW policy (Figure 17): Protocol 0, RESERVED, Length 12,
    //   GWP_ATD (TV 1) = 10, GWP_DTD (TV 2) = 30.
    p.extend([0, 0, 0x00, 12, 0x80, 0x01, 0x00, 10, 0x80, 0x02, 0x00, 30]);
    // KD payload (Figure 18): Next Payload = AUTH (39), Length 72.
    p.extend([39, 0x00, 0x00, 72]);
    //   Group Key Bag (Figure 19): ESP, SPI Size 4, Length 68, SPI.
    p.extend([3, 4, 0x00, 68, 0x0a, 0x0b, 0x0c, 0x0d]);
    //   SA_KEY (TLV type 1, length 56): Key ID 0, KWK ID 0 (Figure 21),
    //   then the 48 octets of the wrapped key.
    p.extend([0x00, 0x01, 0x00, 56, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend(WRAPPED);
    // AUTH payload (RFC 7296 §3.8): Next Payload none, Length 80,
    // Auth Method 14 (Digital Signature), RESERVED.
    p.extend([0, 0x00, 0x00, 80, 14, 0, 0, 0]);
    //   RFC 7427 §3: ASN.1 Length 7, AlgorithmIdentifier of Ed25519
    //   (RFC 8420 §2), then the 64-octet signature, zeroed for signing.
    p.extend([7, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]);
    p.extend([0; 64]);
    assert_eq!(p.len(), 236);
    p
}

/// The IKE header and SK payload header (RFC 7296 §3.1, §3.14) with the
/// given total message length.
fn expected_a(total: u32) -> Vec<u8> {
    let mut a = SPI.to_vec();
    // Next Payload SK (46), Version 2.0, GSA_REKEY (41), Flags: Initiator.
    a.extend([46, 0x20, 41, 0x08]);
    a.extend(MESSAGE_ID.to_be_bytes());
    a.extend(total.to_be_bytes());
    // SK header: first inner payload GSA (51), Length = total - 28.
    a.extend([51, 0]);
    a.extend(u16::try_from(total - 28).unwrap().to_be_bytes());
    a
}

fn signing_key() -> (SigningKey, PKey<openssl::pkey::Private>) {
    let pkey = PKey::private_key_from_raw_bytes(&ED25519_SECRET, Id::ED25519).unwrap();
    let der = pkey.private_key_to_pkcs8().unwrap();
    (SigningKey::from_der(&der).unwrap(), pkey)
}

fn protection() -> SkProtection {
    SkProtection::new(
        EncrAlg::new(EncrId::ENCR_AES_CBC, Some(256)).unwrap(),
        IntegAlg::new(IntegId::AUTH_HMAC_SHA2_256_128).unwrap(),
        &Secret::from_slice(&GSK_E),
        &Secret::from_slice(&GSK_A),
    )
    .unwrap()
}

#[test]
fn gsa_rekey_message_is_byte_exact() {
    let (key, pkey) = signing_key();
    let msg = rekey_message::seal(
        RekeySpi(SPI),
        MESSAGE_ID,
        &inner_payloads(),
        RekeySigner::DigitalSignature(&key),
        &protection(),
        &mut SeededRng::from_u64(1),
    )
    .unwrap();

    // P is 236 octets; AES-CBC pads P | Pad Length to 240 with the fewest
    // octets (3); IV 16 and ICV 16 (RFC 4868) make the SK payload
    // 4 + 16 + 240 + 16 = 276 and the message 28 + 276 = 304 octets.
    assert_eq!(msg.len(), 304);
    assert_eq!(&msg[..32], expected_a(304).as_slice());

    // ICV: HMAC-SHA2-256 over everything up to it, truncated to 128 bits.
    let hmac_key = PKey::hmac(&GSK_A).unwrap();
    let mut mac = Signer::new(MessageDigest::sha256(), &hmac_key).unwrap();
    mac.update(&msg[..288]).unwrap();
    assert_eq!(&mac.sign_to_vec().unwrap()[..16], &msg[288..]);

    // Decrypt with OpenSSL directly.
    let iv = &msg[32..48];
    let mut dec = Crypter::new(Cipher::aes_256_cbc(), Mode::Decrypt, &GSK_E, Some(iv)).unwrap();
    dec.pad(false);
    let mut plain = vec![0; 240 + 16];
    let mut n = dec.update(&msg[48..288], &mut plain).unwrap();
    n += dec.finalize(&mut plain[n..]).unwrap();
    plain.truncate(n);
    assert_eq!(plain.len(), 240);
    assert_eq!(plain[239], 3, "Pad Length");

    // The inner payloads are P with the signature in place.
    let mut p = expected_p();
    assert_eq!(&plain[..236 - 64], &p[..236 - 64]);
    let sig = plain[236 - 64..236].to_vec();

    // §2.4.1.1: the signature covers A | P with AdjustedLen = 268
    // (28 + 4 + 236) and AdjustedPldLen = 240, the signature zeroed.
    let mut signed = expected_a(268);
    signed.extend_from_slice(&p);
    let mut v = Verifier::new_without_digest(&pkey).unwrap();
    assert!(v.verify_oneshot(&sig, &signed).unwrap());
    // Ed25519 is deterministic: OpenSSL signing the hand-built A | P gives
    // exactly the signature in the message.
    let mut s = Signer::new_without_digest(&pkey).unwrap();
    assert_eq!(s.sign_oneshot_to_vec(&signed).unwrap(), sig);

    // And the crate opens what it sealed, AUTH payload included.
    let opened = rekey_message::open(
        &msg,
        &protection(),
        RekeyVerifier::DigitalSignature(&key.verifying_key().unwrap()),
    )
    .unwrap();
    assert_eq!(opened.spi, RekeySpi(SPI));
    assert_eq!(opened.message_id, MESSAGE_ID);
    p[236 - 64..].copy_from_slice(&sig);
    let mut want = inner_payloads();
    want.push(Payload::Auth(Auth {
        method: gikev2::iana::AuthMethod::DIGITAL_SIGNATURE,
        data: p[236 - 72..].to_vec(),
    }));
    assert_eq!(opened.payloads, want);
}
