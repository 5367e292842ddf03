//! ARX-KW-8-2-4-GX (Satō Shinichi, "ARX-KW, a family of key wrapping
//! constructions using SipHash and ChaCha", IACR ePrint 2020/059), the
//! KW_ARX key wrap of RFC 9838. OpenSSL has neither ChaCha8 nor SipHash-128,
//! so the three small primitives it needs live here:
//!
//! * SipHash-2-4 with 128-bit output (Aumasson–Bernstein),
//! * ChaCha8 with Bernstein's 64-bit counter and 64-bit nonce,
//! * HChaCha8, which with ChaCha8 makes XChaCha8.
//!
//! GX: (K1 | K2) = ChaCha8(K, nonce 0, counter 0) first 48 octets;
//! T = SipHash-2-4-128(K1, P); C = P xor XChaCha8(K2, "arbitrGX" | T);
//! the wrapped key is T | C.

use super::{CryptoError, Result, Secret};
use zeroize::{Zeroize, Zeroizing};

/// Key length of ARX-KW-8-2-4-GX.
pub(crate) const KEY_LEN: usize = 32;
/// Length of the authentication tag prepended to the ciphertext.
pub(crate) const TAG_LEN: usize = 16;
const NONCE_PREFIX: &[u8; 8] = b"arbitrGX";
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// The ChaCha permutation (`rounds` rounds) of the state built from the
/// constants, `key` and the four words of `input` (counter and nonce, or
/// the HChaCha input). Returns (initial state, permuted state).
fn permute(key: &[u8; 32], input: [u32; 4], rounds: usize) -> ([u32; 16], [u32; 16]) {
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&SIGMA);
    for (w, chunk) in init[4..12].iter_mut().zip(key.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    init[12..].copy_from_slice(&input);
    let mut s = init;
    for _ in 0..rounds / 2 {
        quarter(&mut s, 0, 4, 8, 12);
        quarter(&mut s, 1, 5, 9, 13);
        quarter(&mut s, 2, 6, 10, 14);
        quarter(&mut s, 3, 7, 11, 15);
        quarter(&mut s, 0, 5, 10, 15);
        quarter(&mut s, 1, 6, 11, 12);
        quarter(&mut s, 2, 7, 8, 13);
        quarter(&mut s, 3, 4, 9, 14);
    }
    (init, s)
}

/// One 64-octet ChaCha block for the given state words 12..16.
pub(crate) fn chacha_block(key: &[u8; 32], input: [u32; 4], rounds: usize) -> [u8; 64] {
    let (mut init, mut s) = permute(key, input, rounds);
    let mut out = [0u8; 64];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&s[i].wrapping_add(init[i]).to_le_bytes());
    }
    init.zeroize();
    s.zeroize();
    out
}

/// HChaCha: the permutation without feed-forward, words 0..4 and 12..16.
pub(crate) fn hchacha(key: &[u8; 32], input: &[u8; 16], rounds: usize) -> [u8; 32] {
    let mut words = [0u32; 4];
    for (w, chunk) in words.iter_mut().zip(input.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let (mut init, mut s) = permute(key, words, rounds);
    let mut out = [0u8; 32];
    for (i, &w) in s[..4].iter().chain(&s[12..]).enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    init.zeroize();
    s.zeroize();
    out
}

/// XORs `data` with the ChaCha keystream for `key` and 64-bit `nonce`,
/// starting at block counter 0 (Bernstein's original layout: 64-bit counter
/// in words 12-13, nonce in words 14-15).
pub(crate) fn chacha_xor(key: &[u8; 32], nonce: &[u8; 8], rounds: usize, data: &mut [u8]) {
    let n0 = u32::from_le_bytes([nonce[0], nonce[1], nonce[2], nonce[3]]);
    let n1 = u32::from_le_bytes([nonce[4], nonce[5], nonce[6], nonce[7]]);
    for (counter, chunk) in (0u64..).zip(data.chunks_mut(64)) {
        let mut ks = chacha_block(
            key,
            [counter as u32, (counter >> 32) as u32, n0, n1],
            rounds,
        );
        for (d, k) in chunk.iter_mut().zip(ks.iter()) {
            *d ^= k;
        }
        ks.zeroize();
    }
}

/// XChaCha8: HChaCha8 on the first 16 nonce octets gives the key for
/// ChaCha8 with the last 8 nonce octets.
fn xchacha8_xor(key: &[u8; 32], nonce: &[u8; 24], data: &mut [u8]) {
    let mut head = [0u8; 16];
    head.copy_from_slice(&nonce[..16]);
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&nonce[16..]);
    let mut subkey = hchacha(key, &head, 8);
    chacha_xor(&subkey, &tail, 8, data);
    subkey.zeroize();
}

#[derive(Zeroize)]
struct Sip {
    v: [u64; 4],
}

impl Sip {
    fn round(&mut self) {
        let v = &mut self.v;
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.round();
        self.round();
        self.v[0] ^= m;
    }
}

/// Up to 8 octets as a little-endian integer.
fn le64(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

/// SipHash-2-4 with 128-bit output, as in the SipHash reference code.
pub(crate) fn siphash24_128(key: &[u8; 16], msg: &[u8]) -> [u8; 16] {
    let (k0, k1) = (le64(&key[..8]), le64(&key[8..]));
    let mut st = Sip {
        v: [
            k0 ^ 0x736f_6d65_7073_6575,
            // 0x646f72616e646f6d with the 128-bit-output tweak 0xee.
            k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
            k0 ^ 0x6c79_6765_6e65_7261,
            k1 ^ 0x7465_6462_7974_6573,
        ],
    };
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        st.compress(le64(c));
    }
    // The last word: the remaining octets, the length mod 256 on top.
    st.compress(le64(chunks.remainder()) | (msg.len() as u64) << 56);
    st.v[2] ^= 0xee;
    for _ in 0..4 {
        st.round();
    }
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(st.v[0] ^ st.v[1] ^ st.v[2] ^ st.v[3]).to_le_bytes());
    st.v[1] ^= 0xdd;
    for _ in 0..4 {
        st.round();
    }
    out[8..].copy_from_slice(&(st.v[0] ^ st.v[1] ^ st.v[2] ^ st.v[3]).to_le_bytes());
    st.zeroize();
    out
}

/// K1 (SipHash key) and K2 (XChaCha8 key) from the 32-octet KEK.
fn subkeys(kek: &[u8; 32]) -> (Zeroizing<[u8; 16]>, Zeroizing<[u8; 32]>) {
    let mut g = Zeroizing::new([0u8; 48]);
    chacha_xor(kek, &[0u8; 8], 8, &mut g[..]);
    let mut k1 = Zeroizing::new([0u8; 16]);
    let mut k2 = Zeroizing::new([0u8; 32]);
    k1.copy_from_slice(&g[..16]);
    k2.copy_from_slice(&g[16..]);
    (k1, k2)
}

fn nonce(tag: &[u8; 16]) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(NONCE_PREFIX);
    n[8..].copy_from_slice(tag);
    n
}

fn kek_array(kek: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    if kek.len() != KEY_LEN {
        return Err(CryptoError::KeyLength {
            what: "ARX-KW key wrap key",
            expected: KEY_LEN,
            got: kek.len(),
        });
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(kek);
    Ok(k)
}

/// Wraps `plain` under `kek`: returns T | C.
pub(crate) fn wrap(kek: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let kek = kek_array(kek)?;
    let (k1, k2) = subkeys(&kek);
    let tag = siphash24_128(&k1, plain);
    let mut out = Vec::with_capacity(TAG_LEN + plain.len());
    out.extend_from_slice(&tag);
    out.extend_from_slice(plain);
    xchacha8_xor(&k2, &nonce(&tag), &mut out[TAG_LEN..]);
    Ok(out)
}

/// Unwraps T | C, checking T in constant time before releasing the key.
pub(crate) fn unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Secret> {
    let kek = kek_array(kek)?;
    if wrapped.len() <= TAG_LEN {
        return Err(CryptoError::Malformed(
            "ARX-KW wrapped key shorter than its tag",
        ));
    }
    let (k1, k2) = subkeys(&kek);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&wrapped[..TAG_LEN]);
    let mut buf = Zeroizing::new(wrapped[TAG_LEN..].to_vec());
    xchacha8_xor(&k2, &nonce(&tag), &mut buf);
    let check = Zeroizing::new(siphash24_128(&k1, &buf));
    if !openssl::memcmp::eq(&check[..], &tag) {
        return Err(CryptoError::UnwrapFailed); // buf is wiped on drop
    }
    Ok(Secret::new(core::mem::take(&mut *buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 8439 §2.3.2: the ChaCha20 block function test vector (IETF layout:
    // counter 1, nonce 00:00:00:09:00:00:00:4a:00:00:00:00). It checks the
    // round function and state layout that ChaCha8 shares with ChaCha20.
    #[test]
    fn rfc8439_block_function() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let out = chacha_block(&key, [1, 0x0900_0000, 0x4a00_0000, 0], 20);
        assert_eq!(
            out.to_vec(),
            h(
                "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e
               d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
            )
        );
    }

    // draft-irtf-cfrg-xchacha-03 §2.2.1: HChaCha20 test vector.
    #[test]
    fn hchacha20_draft_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let input: [u8; 16] = h("000000090000004a0000000031415927").try_into().unwrap();
        assert_eq!(
            hchacha(&key, &input, 20).to_vec(),
            h("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
        );
    }

    // draft-strombergson-chacha-test-vectors-01, 256-bit key, 8 rounds,
    // two keystream blocks each (TC1 all zero, TC7 sequence patterns,
    // TC8 random key and IV).
    #[test]
    fn chacha8_strombergson_vectors() {
        let cases = [
            (
                "0000000000000000000000000000000000000000000000000000000000000000",
                "0000000000000000",
                "3e00ef2f895f40d67f5bb8e81f09a5a12c840ec3ce9a7f3b181be188ef711a1e
                 984ce172b9216f419f445367456d5619314a42a3da86b001387bfdb80e0cfe42
                 d2aefa0deaa5c151bf0adb6c01f2a5adc0fd581259f9a2aadcf20f8fd566a26b
                 5032ec38bbc5da98ee0c6f568b872a65a08abf251deb21bb4b56e5d8821e68aa",
            ),
            (
                "00112233445566778899aabbccddeeffffeeddccbbaa99887766554433221100",
                "0f1e2d3c4b596877",
                "60fdedbd1a280cb741d0593b6ea0309010acf18e1471f68968f4c9e311dca149
                 b8e027b47c81e0353db013891aa5f68ea3b13dd2f3b8dd0873bf3746e7d6c567
                 fe882395601ce8aded444867fe62ed8741420002e5d28bb573113a418c1f4008
                 e954c188f38ec4f26bb8555e2b7c92bf4380e2ea9e553187fdd42821794416de",
            ),
            (
                "c46ec1b18ce8a878725a37e780dfb7351f68ed2e194c79fbc6aebee1a667975d",
                "1ada31d5cf688221",
                "838751b42d8ddd8a3d77f48825a2ba752cf4047cb308a5978ef274973be374c9
                 6ad848065871417b08f034e681fe46a93f7d5c61d1306614d4aaf257a7cff08b
                 16f2fda170cc18a4b58a2667ed962774af792a6e7f3c77992540711a7a136d7e
                 8a2f8d3f93816709d45a3fa5f8ce72fde15be7b841acba3a2abd557228d9fe4f",
            ),
        ];
        for (key, iv, stream) in cases {
            let key: [u8; 32] = h(key).try_into().unwrap();
            let iv: [u8; 8] = h(iv).try_into().unwrap();
            let mut buf = vec![0u8; 128];
            chacha_xor(&key, &iv, 8, &mut buf);
            assert_eq!(buf, h(stream));
        }
    }

    // SipHash reference implementation (github.com/veorq/SipHash,
    // vectors.h, vectors_sip128): key 00..0f, message 00 01 .. (i-1).
    #[test]
    fn siphash128_reference_vectors() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let expected = [
            (0, "a3817f04ba25a8e66df67214c7550293"),
            (1, "da87c1d86b99af44347659119b22fc45"),
            (7, "a1f1ebbed8dbc153c0b84aa61ff08239"),
            (8, "3b62a9ba6258f5610f83e264f31497b4"),
            (9, "264499060ad9baabc47f8b02bb6d71ed"),
            (15, "5493e99933b0a8117e08ec0f97cfc3d9"),
            (16, "6ee2a4ca67b054bbfd3315bf85230577"),
            (63, "5150d1772f50834a503e069a973fbd7c"),
        ];
        let msg: Vec<u8> = (0..64).collect();
        for (len, tag) in expected {
            assert_eq!(
                siphash24_128(&key, &msg[..len]).to_vec(),
                h(tag),
                "length {len}"
            );
        }
    }

    #[test]
    fn wrap_unwrap_round_trip_and_rejects_tampering() {
        let kek = [0x42u8; 32];
        for len in [1usize, 15, 16, 63, 64, 65, 200, 256] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let w = wrap(&kek, &plain).unwrap();
            assert_eq!(w.len(), len + TAG_LEN);
            assert_eq!(unwrap(&kek, &w).unwrap().expose(), plain);
            let mut bad = w.clone();
            bad[len / 2 + TAG_LEN] ^= 1;
            assert_eq!(unwrap(&kek, &bad), Err(CryptoError::UnwrapFailed));
        }
        assert!(matches!(
            unwrap(&kek, &[0u8; 16]),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            wrap(&kek[..16], b"x"),
            Err(CryptoError::KeyLength { .. })
        ));
    }
}
