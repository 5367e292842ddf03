//! The decoders of the crypto layer: key unwrapping (every KWA and RFC
//! 3394), RFC 7427 Authentication Data, AlgorithmIdentifiers and
//! SubjectPublicKeyInfo (AUTH_KEY), and the strongSwan settings a group
//! and a membership are read from.

use gikev2::config::{
    group_from_settings, kwa_keyword, membership_from_settings, parse_duration, parse_group_id,
    parse_ts,
};
use gikev2::crypto::{
    KeyWrapAlg, SigAlg, SigningKey, VerifyingKey, aes_kw_unwrap, aes_kw_wrap, parse_auth_data,
};

use std::sync::OnceLock;

use super::input::Input;
use super::world::signing_key;

/// Unwrap under a fixed or fuzzer-chosen KEK; whatever unwraps must wrap
/// back to exactly the input (both algorithms are deterministic), and
/// whatever is wrapped must unwrap to itself.
pub fn keywrap(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let alg = KeyWrapAlg::ALL[usize::from(sel & 3)];
    let fixed = vec![0x5a; alg.key_len()];
    // Mostly the right length; sometimes any length, to test the check.
    let kek = match sel >> 2 & 3 {
        0 => inp.bytes(alg.key_len()).to_vec(),
        1 => {
            let n = usize::from(inp.u8() % 40);
            inp.bytes(n).to_vec()
        }
        _ => fixed,
    };
    let payload = inp.rest();
    if sel & 0x10 != 0 {
        // RFC 3394 without padding, 16/24/32-octet KEKs.
        if let Ok(k) = aes_kw_unwrap(&kek, payload) {
            let again = aes_kw_wrap(&kek, k.expose()).expect("unwrapped data wraps");
            assert_eq!(again, payload);
        }
        if let Ok(w) = aes_kw_wrap(&kek, payload) {
            let k = aes_kw_unwrap(&kek, &w).expect("RFC 3394 round trip");
            assert_eq!(k.expose(), payload);
        }
        return;
    }
    match alg.unwrap(&kek, payload) {
        Ok(k) => {
            assert!(!k.is_empty() || alg == KeyWrapAlg::Arx);
            let again = alg.wrap(&kek, k.expose());
            if !k.is_empty() {
                assert_eq!(again.expect("unwrapped key wraps"), payload);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(w) = alg.wrap(&kek, payload) {
        assert_eq!(w.len(), alg.wrapped_len(payload.len()));
        let k = alg.unwrap(&kek, &w).expect("wrap/unwrap round trip");
        assert_eq!(k.expose(), payload);
    }
}

/// RFC 7427 Authentication Data, AlgorithmIdentifiers, SPKI (AUTH_KEY)
/// and private keys (the GCKS's rekey.key file), then a verification.
pub fn der(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let alg = SigAlg::ALL[usize::from(sel) % SigAlg::ALL.len()];
    match sel >> 4 {
        0..=3 => {
            if let Ok((a, sig)) = parse_auth_data(inp.rest()) {
                assert!(!sig.is_empty());
                assert_eq!(
                    SigAlg::from_algorithm_identifier(a.algorithm_identifier()).ok(),
                    Some(a)
                );
            }
        }
        4..=5 => {
            if let Ok(a) = SigAlg::from_algorithm_identifier(inp.rest()) {
                assert_eq!(a.algorithm_identifier().len(), data.len() - 1);
            }
        }
        6..=11 => {
            let spki = inp.segment();
            let sig = inp.rest();
            if let Ok(k) = VerifyingKey::from_spki_der(spki, alg) {
                assert_eq!(k.spki_der(), spki);
                let _ = k.verify(b"GSA_REKEY", sig);
            }
        }
        12..=13 => {
            // An Ed25519 key is always there to verify against. Kept once:
            // verifying_key() decodes the SPKI with OpenSSL 3's key decoder,
            // a millisecond a call, which would halve the rate at which
            // hostile signatures are tried.
            static KEY: OnceLock<VerifyingKey> = OnceLock::new();
            let k = KEY.get_or_init(|| signing_key().verifying_key().expect("public key"));
            let _ = k.verify(inp.segment(), inp.rest());
        }
        _ => {
            let der = inp.rest();
            let k = SigningKey::from_der(der).or_else(|_| SigningKey::from_pem(der));
            if let Ok(k) = k {
                let _ = k.with_alg(alg);
            }
        }
    }
}

/// strongSwan settings as `key=value` lines; the first octet picks what
/// reads them.
pub fn config(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let file = inp.segment().to_vec();
    let text = String::from_utf8_lossy(inp.rest()).into_owned();
    match sel % 6 {
        0 | 1 => {
            let pairs = text.lines().filter_map(|l| l.split_once('='));
            let read_file = |_: &str| -> Result<Vec<u8>, String> {
                if file.is_empty() {
                    Err("no such file".into())
                } else {
                    Ok(file.clone())
                }
            };
            if let Ok(g) = group_from_settings(pairs, &read_file) {
                assert!(g.validate().is_ok());
            }
        }
        2 => {
            let pairs = text.lines().filter_map(|l| l.split_once('='));
            let _ = membership_from_settings(pairs);
        }
        3 => {
            let _ = parse_duration(&text);
            let _ = kwa_keyword(&text);
        }
        4 => {
            let _ = parse_group_id(&text);
        }
        _ => {
            let _ = parse_ts(&text);
        }
    }
}
