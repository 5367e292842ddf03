//! Published known-answer vectors and properties for `gikev2::crypto`.
//! Every vector names its source; none was produced by this code.

use gikev2::crypto::{
    CryptoError, EncrAlg, IntegAlg, KeyWrapAlg, PrfAlg, Rng, Secret, SeededRng, SigAlg, SigningKey,
    SkProtection, VerifyingKey, aes_kw_unwrap, aes_kw_wrap, auth_data, parse_auth_data, prf,
    prf_plus,
};
use gikev2::iana::{EncrId, IntegId};
use proptest::prelude::*;
use std::sync::OnceLock;

fn h(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len() % 2 == 0, "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------
// RFC 3394 §4.1-4.6: AES Key Wrap.

#[test]
fn rfc3394_section4_vectors() {
    let kek128 = "000102030405060708090A0B0C0D0E0F";
    let kek192 = "000102030405060708090A0B0C0D0E0F1011121314151617";
    let kek256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
    let key128 = "00112233445566778899AABBCCDDEEFF";
    let key192 = "00112233445566778899AABBCCDDEEFF0001020304050607";
    let key256 = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F";
    let cases = [
        (
            "4.1",
            kek128,
            key128,
            "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5",
        ),
        (
            "4.2",
            kek192,
            key128,
            "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D",
        ),
        (
            "4.3",
            kek256,
            key128,
            "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7",
        ),
        (
            "4.4",
            kek192,
            key192,
            "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2",
        ),
        (
            "4.5",
            kek256,
            key192,
            "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1",
        ),
        (
            "4.6",
            kek256,
            key256,
            "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21",
        ),
    ];
    for (section, kek, key, wrapped) in cases {
        let (kek, key, wrapped) = (h(kek), h(key), h(wrapped));
        assert_eq!(
            aes_kw_wrap(&kek, &key).unwrap(),
            wrapped,
            "RFC 3394 §{section}"
        );
        assert_eq!(
            aes_kw_unwrap(&kek, &wrapped).unwrap().expose(),
            key,
            "RFC 3394 §{section}"
        );
        let mut bad = wrapped.clone();
        bad[0] ^= 0x80;
        assert_eq!(aes_kw_unwrap(&kek, &bad), Err(CryptoError::UnwrapFailed));
    }
}

// ---------------------------------------------------------------------------
// RFC 5649 §6: AES Key Wrap with Padding, 192-bit KEK.

#[test]
fn rfc5649_section6_vectors() {
    let kek = h("5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8");
    let cases = [
        (
            "c37b7e6492584340 bed1220780894115 5068f738",
            "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a",
        ),
        ("466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"),
    ];
    for (key, wrapped) in cases {
        let (key, wrapped) = (h(key), h(wrapped));
        let alg = KeyWrapAlg::Kw5649_192;
        assert_eq!(alg.wrap(&kek, &key).unwrap(), wrapped);
        assert_eq!(alg.wrapped_len(key.len()), wrapped.len());
        assert_eq!(alg.unwrap(&kek, &wrapped).unwrap().expose(), key);
    }
}

// ---------------------------------------------------------------------------
// ARX-KW-8-2-4-GX test vector from the ARX-KW paper (IACR ePrint 2020/059),
// as reproduced in the arx-kw crate (github.com/mcaveniathor/arx-kw,
// src/gx.rs tests and README): T | C for a 32-octet key.

#[test]
fn arx_kw_gx_paper_vector() {
    let kek = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let key = h("deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef");
    let wrapped = h("016325cf6a3c4b2e3b039675e1ccbc65
                     2f83f391c97f3606ccd5709c6ee15d66cd7e65a2aeb7dc3066636e8f6b0d39c3");
    assert_eq!(KeyWrapAlg::Arx.wrap(&kek, &key).unwrap(), wrapped);
    assert_eq!(
        KeyWrapAlg::Arx.unwrap(&kek, &wrapped).unwrap().expose(),
        key
    );
}

// ---------------------------------------------------------------------------
// RFC 4231 §4: HMAC-SHA-256/384/512 test cases, through prf().

#[test]
fn rfc4231_hmac_sha2_through_prf() {
    let key6 = vec![0xaa; 131];
    let data7: &[u8] = b"This is a test using a larger than block-size key and a larger \
than block-size data. The key needs to be hashed before being used by the HMAC algorithm.";
    let key4: Vec<u8> = (1..=0x19).collect();
    // (case, key, data, [HMAC-SHA-256, HMAC-SHA-384, HMAC-SHA-512])
    type Case = (&'static str, Vec<u8>, Vec<u8>, [&'static str; 3]);
    let cases: [Case; 6] = [
        (
            "1",
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            [
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c
                 faea9ea9076ede7f4af152e8b2fa9cb6",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ],
        ),
        (
            "2",
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            [
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
                 8e2240ca5e69e2c78b3239ecfab21649",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ],
        ),
        (
            "3",
            vec![0xaa; 20],
            vec![0xdd; 50],
            [
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b
                 2a5ab39dc13814b94e3ab6e101a34f27",
                "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39
                 bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
            ],
        ),
        (
            "4",
            key4,
            vec![0xcd; 50],
            [
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e
                 6801dd23c4a7d679ccf8a386c674cffb",
                "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db
                 a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
            ],
        ),
        (
            "6",
            key6.clone(),
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            [
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6
                 0c2ef6ab4030fe8296248df163f44952",
                "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352
                 6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
            ],
        ),
        (
            "7",
            key6,
            data7.to_vec(),
            [
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
                "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5
                 a678cc31e799176d3860e6110c46523e",
                "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944
                 b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
            ],
        ),
    ];
    let algs = [PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512];
    for (case, key, data, expected) in cases {
        for (alg, want) in algs.into_iter().zip(expected) {
            let got = prf(alg, &key, &data).unwrap();
            assert_eq!(got.expose(), h(want), "RFC 4231 case {case} {alg:?}");
            assert_eq!(got.len(), alg.output_len());
        }
    }
    // Case 5: output truncated to 128 bits.
    let trunc = [
        "a3b6167473100ee06e0c796c2955552b",
        "3abf34c3503b2a23a46efc619baef897",
        "415fad6271580a531d4179bc891d87a6",
    ];
    for (alg, want) in algs.into_iter().zip(trunc) {
        let got = prf(alg, &[0x0c; 20], b"Test With Truncation").unwrap();
        assert_eq!(&got.expose()[..16], h(want), "RFC 4231 case 5 {alg:?}");
    }
}

/// HMAC computed with OpenSSL directly, independent of `prf`.
fn openssl_hmac(md: openssl::hash::MessageDigest, key: &[u8], data: &[u8]) -> Vec<u8> {
    let pkey = openssl::pkey::PKey::hmac(key).unwrap();
    let mut s = openssl::sign::Signer::new(md, &pkey).unwrap();
    s.update(data).unwrap();
    s.sign_to_vec().unwrap()
}

// RFC 7296 §2.13: prf+ = T1 | T2 | ..., T1 = prf(K, S | 0x01),
// Tn = prf(K, Tn-1 | S | n); rebuilt here from OpenSSL's HMAC.
#[test]
fn prf_plus_is_the_rfc7296_construction() {
    let key = b"SK_d of some IKE SA, 32 octets!!";
    let seed = b"Key Wrap for G-IKEv2";
    let md = openssl::hash::MessageDigest::sha256();
    let t1 = openssl_hmac(md, key, &[&seed[..], &[1]].concat());
    let t2 = openssl_hmac(md, key, &[&t1[..], seed, &[2]].concat());
    let t3 = openssl_hmac(md, key, &[&t2[..], seed, &[3]].concat());
    let expected = [t1, t2, t3].concat();
    for len in [1usize, 32, 33, 64, 70, 96] {
        let got = prf_plus(PrfAlg::HmacSha256, key, seed, len).unwrap();
        assert_eq!(got.expose(), &expected[..len]);
    }
    let kwk = gikev2::crypto::default_kwk(
        PrfAlg::HmacSha256,
        &Secret::from_slice(key),
        KeyWrapAlg::Kw5649_128,
    )
    .unwrap();
    assert_eq!(kwk.expose(), &expected[..16]);
    // 255 blocks at most.
    assert!(prf_plus(PrfAlg::HmacSha512, key, seed, 255 * 64).is_ok());
    assert!(prf_plus(PrfAlg::HmacSha512, key, seed, 255 * 64 + 1).is_err());
}

// ---------------------------------------------------------------------------
// AEAD vectors through the SK payload layout: the keying material is
// key | salt, the body is IV | ciphertext | ICV, and assoc is the AAD. The
// published plaintexts end in an octet that, read as the Pad Length, strips
// that many octets plus itself, so open() returns a prefix.

fn open_published(
    encr: EncrAlg,
    (key, salt): (&str, &str),
    iv: &str,
    aad: &str,
    plain: &[u8],
    ct: &str,
    tag: &str,
) {
    let gsk_e = Secret::new([h(key), h(salt)].concat());
    let sk = SkProtection::new(encr, IntegAlg::NONE, &gsk_e, &Secret::default()).unwrap();
    let body = [h(iv), h(ct), h(tag)].concat();
    let pad = usize::from(*plain.last().unwrap());
    let inner = &plain[..plain.len() - pad - 1];
    assert_eq!(sk.open(&h(aad), &body).unwrap(), inner);
    let mut bad = body.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(
        sk.open(&h(aad), &bad),
        Err(CryptoError::IntegrityCheckFailed)
    );
}

const SUNSCREEN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you \
only one tip for the future, sunscreen would be it.";

// RFC 8439 §2.8.2 (AEAD_CHACHA20_POLY1305): constant 07000000 is the salt,
// IV 4041424344454647 (RFC 7634 nonce layout).
#[test]
fn rfc8439_2_8_2_through_sk_chacha20_poly1305() {
    open_published(
        EncrAlg::new(EncrId::ENCR_CHACHA20_POLY1305, None).unwrap(),
        (
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
            "07000000",
        ),
        "4041424344454647",
        "50515253c0c1c2c3c4c5c6c7",
        SUNSCREEN,
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
         3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
         92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
         3ff4def08e4b7a9de576d26586cec64b6116",
        "1ae10b594f09e26a7e902ecbd0600691",
    );
}

// RFC 8439 / RFC 7539 §A.5 (ChaCha20-Poly1305 AEAD decryption): nonce
// 00000000 | 0102030405060708.
#[test]
fn rfc8439_a5_through_sk_chacha20_poly1305() {
    let plain = h(
        "496e7465726e65742d4472616674732061726520647261667420646f63756d656e
                   74732076616c696420666f722061206d6178696d756d206f6620736978206d6f6e
                   74687320616e64206d617920626520757064617465642c207265706c616365642c
                   206f72206f62736f6c65746564206279206f7468657220646f63756d656e747320
                   617420616e792074696d652e20497420697320696e617070726f70726961746520
                   746f2075736520496e7465726e65742d447261667473206173207265666572656e
                   6365206d6174657269616c206f7220746f2063697465207468656d206f74686572
                   207468616e206173202fe2809c776f726b20696e2070726f67726573732e2fe2809d",
    );
    open_published(
        EncrAlg::new(EncrId::ENCR_CHACHA20_POLY1305, None).unwrap(),
        (
            "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
            "00000000",
        ),
        "0102030405060708",
        "f33388860000000000004e91",
        &plain,
        "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2
         4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf
         332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855
         9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4
         b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e
         af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a
         0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10
         49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29
         a6ad5cb4022b02709b",
        "eead9d67890cbb22392336fea1851f38",
    );
}

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases
// 4 (AES-128) and 16 (AES-256): IV cafebabe facedbaddecaf888 is salt | IV
// (RFC 4106 / RFC 5282 nonce layout).
#[test]
fn gcm_spec_cases_4_and_16_through_sk_aes_gcm_16() {
    let plain = h(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    open_published(
        EncrAlg::new(EncrId::ENCR_AES_GCM_16, Some(128)).unwrap(),
        ("feffe9928665731c6d6a8f9467308308", "cafebabe"),
        "facedbaddecaf888",
        aad,
        &plain,
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    );
    open_published(
        EncrAlg::new(EncrId::ENCR_AES_GCM_16, Some(256)).unwrap(),
        (
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "cafebabe",
        ),
        "facedbaddecaf888",
        aad,
        &plain,
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    );
}

// ---------------------------------------------------------------------------
// AlgorithmIdentifiers: RFC 7427 Appendix A (A.1.2-A.1.4 PKCS #1 v1.5,
// A.3.2-A.3.4 ECDSA, A.4.3 RSASSA-PSS with SHA-256) and RFC 8420 §2
// (Ed25519). RFC 7427 lists no RSASSA-PSS identifier for SHA-384 or
// SHA-512; those two are the ones printed in draft-ietf-lamps-pq-composite-
// sigs (RSASSA-PSS AlgorithmIdentifiers of its RSA-PSS components).

#[test]
fn algorithm_identifiers_are_the_published_der() {
    let cases = [
        (
            SigAlg::RsaPkcs1Sha256,
            "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00",
        ),
        (
            SigAlg::RsaPkcs1Sha384,
            "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0c 05 00",
        ),
        (
            SigAlg::RsaPkcs1Sha512,
            "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0d 05 00",
        ),
        (
            SigAlg::EcdsaP256Sha256,
            "30 0a 06 08 2a 86 48 ce 3d 04 03 02",
        ),
        (
            SigAlg::EcdsaP384Sha384,
            "30 0a 06 08 2a 86 48 ce 3d 04 03 03",
        ),
        (
            SigAlg::EcdsaP521Sha512,
            "30 0a 06 08 2a 86 48 ce 3d 04 03 04",
        ),
        (
            SigAlg::RsaPssSha256,
            "30 41 06 09 2a 86 48 86 f7 0d 01 01 0a 30 34 a0 0f 30 0d 06 09 60 86 48 01 65
             03 04 02 01 05 00 a1 1c 30 1a 06 09 2a 86 48 86 f7 0d 01 01 08 30 0d 06 09 60
             86 48 01 65 03 04 02 01 05 00 a2 03 02 01 20",
        ),
        (
            SigAlg::RsaPssSha384,
            "30 41 06 09 2A 86 48 86 F7 0D 01 01 0A 30 34 A0 0F 30 0D 06 09 60 86 48 01 65
             03 04 02 02 05 00 A1 1C 30 1A 06 09 2A 86 48 86 F7 0D 01 01 08 30 0D 06 09 60
             86 48 01 65 03 04 02 02 05 00 A2 03 02 01 30",
        ),
        (
            SigAlg::RsaPssSha512,
            "30 41 06 09 2A 86 48 86 F7 0D 01 01 0A 30 34 A0 0F 30 0D 06 09 60 86 48 01 65
             03 04 02 03 05 00 A1 1C 30 1A 06 09 2A 86 48 86 F7 0D 01 01 08 30 0D 06 09 60
             86 48 01 65 03 04 02 03 05 00 A2 03 02 01 40",
        ),
        (SigAlg::Ed25519, "30 05 06 03 2b 65 70"),
    ];
    assert_eq!(cases.len(), SigAlg::ALL.len());
    for (alg, der) in cases {
        let der = h(der);
        assert_eq!(alg.algorithm_identifier(), &der[..], "{alg:?}");
        assert_eq!(SigAlg::from_algorithm_identifier(&der).unwrap(), alg);
        let mut other = der.clone();
        *other.last_mut().unwrap() ^= 0x40;
        assert!(SigAlg::from_algorithm_identifier(&other).is_err());
    }
    // RFC 7427 A.4.1/A.4.2 forms (no or default parameters) are not ours.
    assert!(SigAlg::from_algorithm_identifier(&h("300b06092a864886f70d01010a")).is_err());
}

// RFC 8032 §7.1 TEST 1 and TEST 2 (Ed25519): the secret key wrapped as
// PKCS #8 and the public key as SubjectPublicKeyInfo (RFC 8410 §7 layouts).
#[test]
fn rfc8032_ed25519_through_signing_and_verifying_keys() {
    let cases = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
    ];
    for (secret, public, msg, sig) in cases {
        let pkcs8 = [h("302e020100300506032b657004220420"), h(secret)].concat();
        let spki = [h("302a300506032b6570032100"), h(public)].concat();
        let key = SigningKey::from_der(&pkcs8).unwrap();
        assert_eq!(key.alg(), SigAlg::Ed25519);
        assert_eq!(key.public_key_der(), &spki[..]);
        assert_eq!(key.sign(&h(msg)).unwrap(), h(sig));
        let vk = VerifyingKey::from_spki_der(&spki, SigAlg::Ed25519).unwrap();
        vk.verify(&h(msg), &h(sig)).unwrap();
        // RFC 7427 §3 Authentication Data: length, identifier, signature.
        let sig = h(sig);
        let data = auth_data(SigAlg::Ed25519, &sig);
        assert_eq!(data, [h("07 300506032b6570"), sig.clone()].concat());
        assert_eq!(parse_auth_data(&data).unwrap(), (SigAlg::Ed25519, &sig[..]));
    }
}

// ---------------------------------------------------------------------------
// Debug output never carries key bytes.

#[test]
fn debug_never_shows_key_bytes() {
    let secret = Secret::new(vec![0xa5; 32]);
    let shown = format!("{secret:?} {secret:#?}");
    assert!(!shown.contains("a5") && !shown.contains("165"), "{shown}");
    for alg in [SigAlg::Ed25519, SigAlg::EcdsaP256Sha256] {
        let key = SigningKey::generate(alg).unwrap();
        let shown = format!("{key:?} {key:#?}");
        let der = key.to_pkcs8_der().unwrap();
        let private_tail: String = der.expose()[der.len() - 8..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.contains(&private_tail));
        assert!(!shown.contains('['), "{shown}"); // no byte arrays of any kind
    }
    let e = EncrAlg::new(EncrId::ENCR_AES_GCM_16, Some(128)).unwrap();
    let sk = SkProtection::new(
        e,
        IntegAlg::NONE,
        &Secret::new(vec![0xa5; 20]),
        &Secret::default(),
    )
    .unwrap();
    assert!(!format!("{sk:?}").contains("a5"));
}

// ---------------------------------------------------------------------------
// Key wrap properties.

#[test]
fn every_kwa_wraps_every_length_up_to_256() {
    let mut rng = SeededRng::new(b"kwa lengths");
    for alg in KeyWrapAlg::ALL {
        let mut kek = vec![0; alg.key_len()];
        rng.fill(&mut kek).unwrap();
        for len in 1..=256 {
            let mut key = vec![0; len];
            rng.fill(&mut key).unwrap();
            let wrapped = alg.wrap(&kek, &key).unwrap();
            assert_eq!(wrapped.len(), alg.wrapped_len(len));
            assert_eq!(
                alg.unwrap(&kek, &wrapped).unwrap().expose(),
                key,
                "{alg:?} {len}"
            );
        }
    }
}

fn kwa() -> impl Strategy<Value = KeyWrapAlg> {
    prop::sample::select(KeyWrapAlg::ALL.to_vec())
}

proptest! {
    #[test]
    fn kwa_round_trip(alg in kwa(), seed in any::<u64>(), key in prop::collection::vec(any::<u8>(), 1..=256)) {
        let mut kek = vec![0; alg.key_len()];
        SeededRng::from_u64(seed).fill(&mut kek).unwrap();
        let wrapped = alg.wrap(&kek, &key).unwrap();
        let unwrapped = alg.unwrap(&kek, &wrapped).unwrap();
        prop_assert_eq!(unwrapped.expose(), &key[..]);
    }

    #[test]
    fn kwa_wrong_kek_fails(alg in kwa(), seed in any::<u64>(), key in prop::collection::vec(any::<u8>(), 1..=256), flip in any::<prop::sample::Index>()) {
        let mut kek = vec![0; alg.key_len()];
        SeededRng::from_u64(seed).fill(&mut kek).unwrap();
        let wrapped = alg.wrap(&kek, &key).unwrap();
        let bit = flip.index(kek.len() * 8);
        kek[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(alg.unwrap(&kek, &wrapped), Err(CryptoError::UnwrapFailed));
    }

    #[test]
    fn kwa_any_flipped_bit_fails(alg in kwa(), seed in any::<u64>(), key in prop::collection::vec(any::<u8>(), 1..=256), flip in any::<prop::sample::Index>()) {
        let mut kek = vec![0; alg.key_len()];
        SeededRng::from_u64(seed).fill(&mut kek).unwrap();
        let mut wrapped = alg.wrap(&kek, &key).unwrap();
        let bit = flip.index(wrapped.len() * 8);
        wrapped[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(alg.unwrap(&kek, &wrapped), Err(CryptoError::UnwrapFailed));
    }

    #[test]
    fn kwa_unwrap_of_junk_never_panics(alg in kwa(), junk in prop::collection::vec(any::<u8>(), 0..300)) {
        let kek = vec![7; alg.key_len()];
        prop_assert!(alg.unwrap(&kek, &junk).is_err());
    }
}

// ---------------------------------------------------------------------------
// SK payload properties.

fn sk_suites() -> Vec<(EncrAlg, IntegAlg)> {
    let mut out = Vec::new();
    for bits in [128, 192, 256] {
        let cbc = EncrAlg::new(EncrId::ENCR_AES_CBC, Some(bits)).unwrap();
        for integ in [
            IntegId::AUTH_HMAC_SHA1_96,
            IntegId::AUTH_HMAC_SHA2_256_128,
            IntegId::AUTH_HMAC_SHA2_384_192,
            IntegId::AUTH_HMAC_SHA2_512_256,
        ] {
            out.push((cbc, IntegAlg::new(integ).unwrap()));
        }
        for gcm in [
            EncrId::ENCR_AES_GCM_8,
            EncrId::ENCR_AES_GCM_12,
            EncrId::ENCR_AES_GCM_16,
        ] {
            out.push((EncrAlg::new(gcm, Some(bits)).unwrap(), IntegAlg::NONE));
        }
    }
    out.push((
        EncrAlg::new(EncrId::ENCR_CHACHA20_POLY1305, None).unwrap(),
        IntegAlg::NONE,
    ));
    out
}

fn sk_for(index: prop::sample::Index, seed: u64) -> SkProtection {
    let suites = sk_suites();
    let (encr, integ) = suites[index.index(suites.len())];
    let mut rng = SeededRng::from_u64(seed);
    let mut e = vec![0; encr.keymat_len()];
    let mut a = vec![0; integ.keymat_len()];
    rng.fill(&mut e).unwrap();
    rng.fill(&mut a).unwrap();
    SkProtection::new(encr, integ, &Secret::new(e), &Secret::new(a)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sk_seal_open_round_trip(suite in any::<prop::sample::Index>(), seed in any::<u64>(),
                               assoc in prop::collection::vec(any::<u8>(), 0..64),
                               plain in prop::collection::vec(any::<u8>(), 0..1500)) {
        let sk = sk_for(suite, seed);
        let body = sk.seal(&assoc, &plain, &mut SeededRng::from_u64(seed ^ 1)).unwrap();
        prop_assert_eq!(body.len(), sk.sealed_len(plain.len()));
        prop_assert_eq!(sk.open(&assoc, &body).unwrap(), plain);
    }

    #[test]
    fn sk_any_flipped_bit_fails(suite in any::<prop::sample::Index>(), seed in any::<u64>(),
                                assoc in prop::collection::vec(any::<u8>(), 1..64),
                                plain in prop::collection::vec(any::<u8>(), 0..300),
                                flip in any::<prop::sample::Index>()) {
        let sk = sk_for(suite, seed);
        let body = sk.seal(&assoc, &plain, &mut SeededRng::from_u64(seed ^ 1)).unwrap();
        let mut all = [assoc.clone(), body].concat();
        let bit = flip.index(all.len() * 8);
        all[bit / 8] ^= 1 << (bit % 8);
        let (assoc, body) = all.split_at(assoc.len());
        prop_assert_eq!(sk.open(assoc, body), Err(CryptoError::IntegrityCheckFailed));
    }

    #[test]
    fn sk_open_of_junk_never_panics(suite in any::<prop::sample::Index>(), seed in any::<u64>(),
                                    junk in prop::collection::vec(any::<u8>(), 0..200)) {
        let sk = sk_for(suite, seed);
        prop_assert!(sk.open(b"assoc", &junk).is_err());
    }
}

// ---------------------------------------------------------------------------
// Signature properties; one key per scheme (RSA keys are slow to make).

fn signing_keys() -> &'static [(SigningKey, SigningKey)] {
    static KEYS: OnceLock<Vec<(SigningKey, SigningKey)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        SigAlg::ALL
            .iter()
            .map(|&alg| {
                (
                    SigningKey::generate(alg).unwrap(),
                    SigningKey::generate(alg).unwrap(),
                )
            })
            .collect()
    })
}

fn key_pair(index: prop::sample::Index) -> &'static (SigningKey, SigningKey) {
    let keys = signing_keys();
    &keys[index.index(keys.len())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sign_verify_round_trip(which in any::<prop::sample::Index>(), data in prop::collection::vec(any::<u8>(), 0..512)) {
        let (key, _) = key_pair(which);
        let sig = key.sign(&data).unwrap();
        let vk = VerifyingKey::from_spki_der(key.public_key_der(), key.alg()).unwrap();
        prop_assert_eq!(&vk, &key.verifying_key().unwrap());
        prop_assert!(vk.verify(&data, &sig).is_ok());
        let data_out = auth_data(key.alg(), &sig);
        let (alg, parsed) = parse_auth_data(&data_out).unwrap();
        prop_assert_eq!(alg, key.alg());
        prop_assert!(vk.verify(&data, parsed).is_ok());
    }

    #[test]
    fn flipped_bit_in_data_or_signature_fails(which in any::<prop::sample::Index>(),
                                              data in prop::collection::vec(any::<u8>(), 1..256),
                                              flip in any::<prop::sample::Index>()) {
        let (key, _) = key_pair(which);
        let sig = key.sign(&data).unwrap();
        let vk = key.verifying_key().unwrap();
        let mut all = [data.clone(), sig].concat();
        let bit = flip.index(all.len() * 8);
        all[bit / 8] ^= 1 << (bit % 8);
        let (data, sig) = all.split_at(data.len());
        prop_assert_eq!(vk.verify(data, sig), Err(CryptoError::BadSignature));
    }

    #[test]
    fn signature_by_another_key_fails(which in any::<prop::sample::Index>(), data in prop::collection::vec(any::<u8>(), 0..256)) {
        let (key, other) = key_pair(which);
        let sig = other.sign(&data).unwrap();
        prop_assert_eq!(key.verifying_key().unwrap().verify(&data, &sig), Err(CryptoError::BadSignature));
    }
}
