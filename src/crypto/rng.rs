//! Randomness is injected through [`Rng`] so that the protocol engines are
//! deterministic under test: production code passes [`OsRng`], tests and
//! simulations pass a [`SeededRng`] and can replay a whole run.

use super::{CryptoError, Result};
use core::fmt;
use zeroize::Zeroize;

/// A source of random octets.
pub trait Rng {
    /// Fills `out` entirely with random octets, or fails without a partial
    /// result the caller could mistake for randomness.
    fn fill(&mut self, out: &mut [u8]) -> Result<()>;
}

impl<R: Rng + ?Sized> Rng for &mut R {
    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        (**self).fill(out)
    }
}

/// OpenSSL's CSPRNG (`RAND_bytes`): the generator for production use.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        openssl::rand::rand_bytes(out).map_err(|e| {
            out.zeroize();
            CryptoError::from(e)
        })
    }
}

/// A deterministic generator for tests and simulations ONLY: its output is
/// fully determined by the seed, so it provides no secrecy at all.
///
/// Block `i` of the stream is SHA-256(SHA-256(seed) | i as 64-bit
/// big-endian); the stream does not depend on how it is split into calls.
#[derive(Clone)]
pub struct SeededRng {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: &[u8]) -> Self {
        Self {
            key: openssl::sha::sha256(seed),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    /// Convenience for numeric seeds.
    pub fn from_u64(seed: u64) -> Self {
        Self::new(&seed.to_be_bytes())
    }

    fn refill(&mut self) {
        let mut h = openssl::sha::Sha256::new();
        h.update(&self.key);
        h.update(&self.counter.to_be_bytes());
        self.block = h.finish();
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        for b in out.iter_mut() {
            if self.used == self.block.len() {
                self.refill();
            }
            *b = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl fmt::Debug for SeededRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeededRng").finish_non_exhaustive()
    }
}

impl Drop for SeededRng {
    fn drop(&mut self) {
        self.key.zeroize();
        self.block.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_reproducible_and_split_independent() {
        let mut a = SeededRng::new(b"seed");
        let mut b = SeededRng::new(b"seed");
        let mut one = [0u8; 100];
        a.fill(&mut one).unwrap();
        let mut two = [0u8; 100];
        let (x, y) = two.split_at_mut(33);
        b.fill(x).unwrap();
        b.fill(y).unwrap();
        assert_eq!(one, two);
        // First block is SHA-256(SHA-256("seed") | 0u64), computed independently.
        let mut h = openssl::sha::Sha256::new();
        h.update(&openssl::sha::sha256(b"seed"));
        h.update(&[0u8; 8]);
        assert_eq!(one[..32], h.finish());
        let mut c = SeededRng::from_u64(1);
        let mut three = [0u8; 100];
        c.fill(&mut three).unwrap();
        assert_ne!(one, three);
    }

    #[test]
    fn os_rng_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRng.fill(&mut a).unwrap();
        fn fill_with<R: Rng>(mut rng: R, out: &mut [u8]) {
            rng.fill(out).unwrap();
        }
        fill_with(&mut OsRng, &mut b); // through the blanket impl for &mut R
        assert_ne!(a, b);
    }

    #[test]
    fn debug_hides_state() {
        assert_eq!(format!("{:?}", SeededRng::new(b"x")), "SeededRng { .. }");
    }
}
