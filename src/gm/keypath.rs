//! The GM side of key management (§3.3): unwrapping SA keys through the
//! chain of key wrap keys, and keeping the Working Key Path.
//!
//! The GM does not know how the GCKS manages keys; it only follows Key IDs:
//! KWK ID 0 is the default KWK of the channel the keys came over, any other
//! ID is a key from a WRAP_KEY attribute, received now or before.

use crate::crypto::{CryptoError, KeyWrapAlg, Secret};
use crate::wire::WrappedKey;

/// Longest chain of WRAP_KEYs followed from an SA_KEY: a tree of degree 2
/// holding 2^32 members is 32 deep, so this bounds work on hostile input.
const MAX_DEPTH: usize = 40;

/// The keys a GM holds in one group, top of the tree first (next to the
/// SA), its own leaf key last.
#[derive(Default, Clone)]
pub struct WorkingKeyPath {
    keys: Vec<(u32, Secret)>,
}

impl core::fmt::Debug for WorkingKeyPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ids: Vec<u32> = self.keys.iter().map(|(id, _)| *id).collect();
        write!(f, "WorkingKeyPath({ids:?})")
    }
}

/// The key wrap keys one message can be unwrapped with.
pub struct Unwrapper<'a> {
    /// The channel's default KWK (GSK_w of the IKE SA or Rekey SA) and the
    /// algorithm it goes with.
    pub default: (&'a Secret, KeyWrapAlg),
    /// The algorithm of key-tree keys: the Rekey SA's KWA.
    pub tree_kwa: Option<KeyWrapAlg>,
    /// WRAP_KEY attributes of this message.
    pub wrap_keys: &'a [WrappedKey],
}

/// Where an unwrapped SA key's chain ended.
#[derive(Debug)]
pub struct Unwrapped {
    pub keymat: Secret,
    /// Keys unwrapped on the way, nearest the SA first.
    new_path: Vec<(u32, Secret)>,
    /// The Working Key Path entry (or `None` for the default KWK) the chain
    /// ended at.
    anchor: Option<u32>,
}

impl WorkingKeyPath {
    pub fn ids(&self) -> Vec<u32> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, id: u32) -> Option<&Secret> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, s)| s)
    }

    /// Unwraps the first of `candidates` (SA_KEY attributes holding the same
    /// keying material, §3.3) that a chain of known keys reaches.
    ///
    /// The message's WRAP_KEYs are resolved breadth-first from the keys
    /// already held, each tried at most once per round, so hostile input
    /// (cycles, repeated IDs) costs at most quadratic work in its size.
    pub fn unwrap_sa_key(
        &self,
        candidates: &[WrappedKey],
        u: &Unwrapper<'_>,
    ) -> Result<Unwrapped, CryptoError> {
        // id -> (key, the KWK ID it was unwrapped with)
        let mut learned: Vec<(u32, Secret, u32)> = Vec::new();
        let mut tried = vec![false; u.wrap_keys.len()];
        let mut last_err = CryptoError::UnwrapFailed;
        loop {
            let mut progress = false;
            for (i, w) in u.wrap_keys.iter().enumerate() {
                if tried[i] || w.key_id == 0 || learned.iter().any(|(id, ..)| *id == w.key_id) {
                    continue;
                }
                let Some((kwk, kwa)) = self.kwk(w.kwk_id, &learned, u) else {
                    continue;
                };
                tried[i] = true;
                // §4.5.3.1: a WRAP_KEY is a key of the Rekey SA's KWA, of
                // exactly its key size; any other is not a key to follow.
                let Some(tree_kwa) = u.tree_kwa else {
                    continue;
                };
                let Ok(key) = kwa.unwrap(kwk.expose(), &w.encrypted) else {
                    continue;
                };
                let expected = tree_kwa.key_len();
                if key.len() != expected {
                    last_err = CryptoError::KeyLength {
                        what: "WRAP_KEY",
                        expected,
                        got: key.len(),
                    };
                    continue;
                }
                learned.push((w.key_id, key, w.kwk_id));
                progress = true;
            }
            if !progress {
                break;
            }
        }
        for c in candidates {
            let Some((kwk, kwa)) = self.kwk(c.kwk_id, &learned, u) else {
                continue;
            };
            match kwa.unwrap(kwk.expose(), &c.encrypted) {
                Ok(keymat) => {
                    let (new_path, anchor) = Self::chain(c.kwk_id, &learned, self);
                    return Ok(Unwrapped {
                        keymat,
                        new_path,
                        anchor,
                    });
                }
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// The key with ID `id` and its algorithm, if held or learned.
    fn kwk<'k>(
        &'k self,
        id: u32,
        learned: &'k [(u32, Secret, u32)],
        u: &'k Unwrapper<'_>,
    ) -> Option<(&'k Secret, KeyWrapAlg)> {
        if id == 0 {
            return Some(u.default);
        }
        let kwa = u.tree_kwa?;
        learned
            .iter()
            .find(|(k, ..)| *k == id)
            .map(|(_, s, _)| s)
            .or_else(|| self.get(id))
            .map(|s| (s, kwa))
    }

    /// Walks from key `id` down the KWK IDs it was unwrapped with: the new
    /// keys (nearest the SA first) and where the walk ended.
    fn chain(
        mut id: u32,
        learned: &[(u32, Secret, u32)],
        path: &Self,
    ) -> (Vec<(u32, Secret)>, Option<u32>) {
        let mut out = Vec::new();
        loop {
            if id == 0 {
                return (out, None);
            }
            match learned.iter().find(|(k, ..)| *k == id) {
                Some((k, key, via)) if out.len() <= MAX_DEPTH => {
                    out.push((*k, key.clone()));
                    id = *via;
                }
                Some(_) => return (out, None),
                None => {
                    debug_assert!(path.get(id).is_some());
                    return (out, Some(id));
                }
            }
        }
    }

    /// Takes in the chain an SA key was reached through (§3.3): a chain that
    /// ends at the default KWK becomes the whole path (registration); one
    /// that ends inside the path replaces the part above that key.
    pub fn update(&mut self, u: Unwrapped) -> Secret {
        if !u.new_path.is_empty() {
            match u.anchor {
                None => self.keys = u.new_path,
                Some(anchor) => {
                    let at = self
                        .keys
                        .iter()
                        .position(|(id, _)| *id == anchor)
                        .unwrap_or(0);
                    let mut keys = u.new_path;
                    keys.extend(self.keys.drain(at..));
                    self.keys = keys;
                }
            }
        }
        u.keymat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Secret {
        Secret::new(vec![b; 16])
    }

    fn wrap(id: u32, kwk_id: u32, kwk: &Secret, k: &Secret) -> WrappedKey {
        WrappedKey {
            key_id: id,
            kwk_id,
            encrypted: KeyWrapAlg::Kw5649_128
                .wrap(kwk.expose(), k.expose())
                .unwrap(),
        }
    }

    /// RFC 9838 Appendix A: GM A registers with KD(GP(SA1)(1{K_sa1}),
    /// MP(3{1},7{3},GSK_w{7})), then sees the exclusion of F.
    #[test]
    fn appendix_a_member_a_and_e() {
        let gsk_w = key(0xee);
        let k: Vec<Secret> = (0..=16).map(|i| key(i as u8)).collect();
        let ksa1 = key(0xa1);
        let kwa = KeyWrapAlg::Kw5649_128;

        let mp = vec![
            wrap(1, 3, &k[3], &k[1]),
            wrap(3, 7, &k[7], &k[3]),
            wrap(7, 0, &gsk_w, &k[7]),
        ];
        let u = Unwrapper {
            default: (&gsk_w, kwa),
            tree_kwa: Some(kwa),
            wrap_keys: &mp,
        };
        let mut a = WorkingKeyPath::default();
        let got = a.unwrap_sa_key(&[wrap(0, 1, &k[1], &ksa1)], &u).unwrap();
        assert_eq!(a.update(got), ksa1);
        assert_eq!(a.ids(), [1, 3, 7]);

        // GM E's path 2->5->11, registered the same way.
        let mp = vec![
            wrap(2, 5, &k[5], &k[2]),
            wrap(5, 11, &k[11], &k[5]),
            wrap(11, 0, &gsk_w, &k[11]),
        ];
        let u = Unwrapper {
            wrap_keys: &mp,
            ..u
        };
        let mut e = WorkingKeyPath::default();
        let got = e.unwrap_sa_key(&[wrap(0, 2, &k[2], &ksa1)], &u).unwrap();
        e.update(got);
        assert_eq!(e.ids(), [2, 5, 11]);

        // A.4: KD(GP(SA3)(1{K_sa3},15{K_sa3}),MP(6{15},16{15},11{16})).
        let ksa3 = key(0xa3);
        let gp = [wrap(0, 1, &k[1], &ksa3), wrap(0, 15, &k[15], &ksa3)];
        let mp = vec![
            wrap(15, 6, &k[6], &k[15]),
            wrap(15, 16, &k[16], &k[15]),
            wrap(16, 11, &k[11], &k[16]),
        ];
        let rekey_kwk = key(0x77);
        let u = Unwrapper {
            default: (&rekey_kwk, kwa),
            tree_kwa: Some(kwa),
            wrap_keys: &mp,
        };
        let got = a.unwrap_sa_key(&gp, &u).unwrap();
        assert_eq!(a.update(got), ksa3);
        assert_eq!(a.ids(), [1, 3, 7], "A's path is unchanged");
        let got = e.unwrap_sa_key(&gp, &u).unwrap();
        assert_eq!(e.update(got), ksa3);
        assert_eq!(e.ids(), [15, 16, 11], "E's path as in A.4");

        // F (path 2->5->12) reaches nothing.
        let mut f = WorkingKeyPath {
            keys: vec![(2, k[2].clone()), (5, k[5].clone()), (12, k[12].clone())],
        };
        assert!(f.unwrap_sa_key(&gp, &u).is_err());
        assert_eq!(f.ids(), [2, 5, 12]);
        f.keys.clear();
    }

    /// M079: a WRAP_KEY whose key is not the size of the tree's KWA key is
    /// not followed, even though it unwraps.
    #[test]
    fn wrap_key_of_another_size_is_not_followed() {
        let gsk_w = key(0xee);
        let k1 = key(1);
        let ksa = key(0xa1);
        let kwa = KeyWrapAlg::Kw5649_128;
        let long = Secret::new(vec![7; 32]);
        for (k7, ok) in [(key(7), true), (long, false)] {
            // Key 1 under key 7, with the AES of key 7's size.
            let alg = if ok { kwa } else { KeyWrapAlg::Kw5649_256 };
            let w1 = WrappedKey {
                key_id: 1,
                kwk_id: 7,
                encrypted: alg.wrap(k7.expose(), k1.expose()).unwrap(),
            };
            let mp = vec![w1, wrap(7, 0, &gsk_w, &k7)];
            let u = Unwrapper {
                default: (&gsk_w, kwa),
                tree_kwa: Some(kwa),
                wrap_keys: &mp,
            };
            let got = WorkingKeyPath::default().unwrap_sa_key(&[wrap(0, 1, &k1, &ksa)], &u);
            if ok {
                assert_eq!(got.unwrap().keymat, ksa);
            } else {
                assert_eq!(
                    got.unwrap_err(),
                    CryptoError::KeyLength {
                        what: "WRAP_KEY",
                        expected: 16,
                        got: 32
                    }
                );
            }
        }
    }

    #[test]
    fn cyclic_wrap_keys_terminate() {
        let x = key(1);
        let mp = vec![wrap(5, 6, &x, &x), wrap(6, 5, &x, &x)];
        let u = Unwrapper {
            default: (&x, KeyWrapAlg::Kw5649_128),
            tree_kwa: Some(KeyWrapAlg::Kw5649_128),
            wrap_keys: &mp,
        };
        let path = WorkingKeyPath::default();
        assert!(path.unwrap_sa_key(&[wrap(0, 5, &x, &x)], &u).is_err());
    }
}
