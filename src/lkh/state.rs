//! A key tree in the GCKS's state file: every node's Key ID and key, the
//! free leaves, the next Key ID and the pending join window, so that a
//! restored tree continues exactly where the saved one stopped (no Key ID
//! is handed out twice, members keep their paths).
//!
//! Decoding validates the structure fully: a restored tree never panics
//! in a later operation, whatever the file said.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use super::{Fresh, KeyBuf, LkhTree, MemberSlot};
use crate::crypto::KeyWrapAlg;
use crate::persist::{Dec, Enc, StateError, corrupt};

impl MemberSlot {
    /// The leaf index and the leaf key's ID.
    pub(crate) fn parts(self) -> (u32, u32) {
        (self.leaf, self.id)
    }

    pub(crate) fn from_parts(leaf: u32, id: u32) -> Self {
        Self { leaf, id }
    }
}

impl LkhTree {
    /// Whether `slot` is a current member of this tree.
    pub(crate) fn holds(&self, slot: MemberSlot) -> bool {
        self.check(slot).is_ok()
    }

    pub(crate) fn encode_state(&self, e: &mut Enc) {
        e.u16(self.degree);
        e.u32(self.capacity);
        e.count(self.levels.len());
        for lv in &self.levels {
            e.count(lv.ids.len());
            for id in &lv.ids {
                e.u32(*id);
            }
            e.raw(&lv.keys.0[..lv.ids.len() * self.key_len]);
            for bits in [&lv.created, &lv.refreshed] {
                e.count(bits.0.len());
                for w in &bits.0 {
                    e.u64(*w);
                }
            }
        }
        e.u32(self.members);
        e.u32(self.next_leaf);
        let mut free: Vec<u32> = self.free.iter().map(|r| r.0).collect();
        free.sort_unstable();
        e.count(free.len());
        for leaf in free {
            e.u32(leaf);
        }
        e.u64(self.next_id);
        e.count(self.window.len());
        for f in &self.window {
            e.u8(f.level);
            e.u32(f.index);
            e.u32(f.old_id);
            e.u32(f.old_key);
        }
        e.bytes(&self.window_keys.0);
    }

    /// The tree `encode_state` wrote, for a group configured with this
    /// degree, member limit and key wrap algorithm.
    pub(crate) fn decode_state(
        d: &mut Dec<'_>,
        degree: u16,
        capacity: u32,
        kwa: KeyWrapAlg,
    ) -> Result<Self, StateError> {
        let mut t = Self::new(degree, capacity, kwa)
            .map_err(|e| StateError::Group(format!("key tree: {e}")))?;
        let (found_degree, found_capacity) = (d.u16("tree degree")?, d.u32("tree capacity")?);
        if (found_degree, found_capacity) != (degree, capacity) {
            return Err(StateError::GroupMismatch {
                what: "key tree degree or member limit".into(),
            });
        }
        let kl = t.key_len;
        if d.count(4, "tree levels")? != t.levels.len() {
            return Err(corrupt("tree depth differs from its degree and capacity"));
        }
        for lv in &mut t.levels {
            let n = d.count(4 + kl, "tree level")?;
            if n > lv.max as usize {
                return Err(corrupt("tree level wider than the tree"));
            }
            lv.ids = (0..n).map(|_| d.u32("Key ID")).collect::<Result<_, _>>()?;
            lv.keys = KeyBuf(d.raw(n * kl, "tree keys")?.to_vec());
            let words = (lv.max as usize).div_ceil(64);
            for bits in [&mut lv.created, &mut lv.refreshed] {
                let w = d.count(8, "tree node flags")?;
                if w > words {
                    return Err(corrupt("tree node flags wider than the tree"));
                }
                bits.0 = (0..w)
                    .map(|_| d.u64("tree node flags"))
                    .collect::<Result<_, _>>()?;
            }
        }
        t.members = d.u32("tree members")?;
        t.next_leaf = d.u32("next leaf")?;
        let free = d.count(4, "free leaves")?;
        let free: Vec<u32> = (0..free)
            .map(|_| d.u32("free leaf"))
            .collect::<Result<_, _>>()?;
        t.next_id = d.u64("next Key ID")?;
        let n = d.count(13, "join window")?;
        for _ in 0..n {
            t.window.push(Fresh {
                level: d.u8("window level")?,
                index: d.u32("window node")?,
                old_id: d.u32("window Key ID")?,
                old_key: d.u32("window key")?,
            });
        }
        t.window_keys = KeyBuf(d.bytes("window keys")?.to_vec());
        t.free = free.iter().map(|&l| Reverse(l)).collect::<BinaryHeap<_>>();
        t.validate(&free)?;
        Ok(t)
    }

    /// Checks everything later operations rely on.
    fn validate(&self, free: &[u32]) -> Result<(), StateError> {
        let kl = self.key_len;
        let leaf_level = self.leaf_level();
        if self.next_leaf > self.capacity {
            return Err(corrupt("next leaf beyond the tree"));
        }
        if self.next_id == 0 || self.next_id > u64::from(u32::MAX) + 1 {
            return Err(corrupt("next Key ID out of range"));
        }
        let mut seen = HashSet::new();
        for lv in &self.levels {
            for &id in lv.ids.iter().filter(|&&id| id != 0) {
                if u64::from(id) >= self.next_id || !seen.insert(id) {
                    return Err(corrupt("Key ID not unique or not yet handed out"));
                }
            }
        }
        let leaves = &self.levels[leaf_level];
        if leaves.ids.len() > self.next_leaf as usize {
            return Err(corrupt("member leaf beyond the next leaf"));
        }
        let mut members = 0u32;
        for leaf in 0..leaves.ids.len() as u32 {
            if !leaves.present(leaf) {
                continue;
            }
            members += 1;
            // Every node above a member exists: its paths are walked.
            for l in 0..leaf_level {
                let i = self.node_of(l, leaf);
                if !self.levels[l].present(i) {
                    return Err(corrupt("a member's path has a missing node"));
                }
            }
        }
        if members != self.members {
            return Err(corrupt("member count differs from the tree's leaves"));
        }
        let mut free_seen = HashSet::new();
        for &leaf in free {
            if leaf >= self.next_leaf || leaves.present(leaf) || !free_seen.insert(leaf) {
                return Err(corrupt("bad free leaf"));
            }
        }
        if self.window_keys.0.len() % kl != 0 {
            return Err(corrupt("join window keys not whole keys"));
        }
        let old_keys = self.window_keys.0.len() / kl;
        for f in &self.window {
            let l = usize::from(f.level);
            if l >= leaf_level || f.index as usize >= self.levels[l].ids.len() {
                return Err(corrupt("join window names no inner node"));
            }
            if f.old_id != 0 && f.old_key as usize >= old_keys {
                return Err(corrupt("join window key missing"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SeededRng;

    const KWA: KeyWrapAlg = KeyWrapAlg::Kw5649_256;

    fn round_trip(t: &LkhTree) -> LkhTree {
        let mut e = Enc::new();
        t.encode_state(&mut e);
        let b = e.finish();
        let mut d = Dec::new(&b);
        let r = LkhTree::decode_state(&mut d, t.degree, t.capacity, KWA).unwrap();
        d.end().unwrap();
        r
    }

    #[test]
    fn restored_tree_continues_identically() {
        let mut rng = SeededRng::from_u64(9);
        let mut t = LkhTree::new(3, 50, KWA).unwrap();
        let slots: Vec<_> = (0..20).map(|_| t.join(&mut rng).unwrap()).collect();
        t.take_join_refresh().unwrap();
        t.exclude(slots[4], &mut rng).unwrap();
        // Joins pending in the window are saved too.
        let s = t.join(&mut rng).unwrap();
        let mut r = round_trip(&t);
        assert!(r.holds(s) && !r.holds(slots[4]));
        let mut rng2 = rng.clone();
        assert_eq!(
            t.take_join_refresh().unwrap(),
            r.take_join_refresh().unwrap()
        );
        assert_eq!(
            t.exclude(slots[7], &mut rng).unwrap(),
            r.exclude(slots[7], &mut rng2).unwrap()
        );
        assert_eq!(t.join(&mut rng).unwrap(), r.join(&mut rng2).unwrap());
        let top: Vec<_> = t
            .top_keys()
            .map(|(i, k)| (i, k.expose().to_vec()))
            .collect();
        let top_r: Vec<_> = r
            .top_keys()
            .map(|(i, k)| (i, k.expose().to_vec()))
            .collect();
        assert_eq!(top, top_r);
    }

    #[test]
    fn mismatched_shape_is_refused() {
        let t = LkhTree::new(4, 16, KWA).unwrap();
        let mut e = Enc::new();
        t.encode_state(&mut e);
        let b = e.finish();
        assert!(matches!(
            LkhTree::decode_state(&mut Dec::new(&b), 4, 17, KWA),
            Err(StateError::GroupMismatch { .. })
        ));
    }
}
