//! The GCKS's Logical Key Hierarchy (RFC 9838 §3, Appendix A): a key tree
//! whose root is the Rekey SA, so that excluding a member costs about
//! d·log_d N wrapped keys instead of one per remaining member.
//!
//! The tree is an implicit complete d-ary tree sized by the group's member
//! limit: a node is a (level, index) pair, never a heap object. Each level
//! keeps its Key IDs in one vector and its keys in one buffer, grown only as
//! far as the highest leaf ever used, so an empty tree of 10^6 places costs
//! nothing and a full one about (d/(d-1))·(4 + key length) octets a member.
//! Joins take the lowest free leaf, which keeps the tree dense. Key IDs are
//! handed out sequentially from 1 and never reused, because a GM names keys
//! only by ID.
//!
//! Every key this module sends is arranged so that a GM running the §3.3
//! procedure — one key path from an SA_KEY attribute down to its Working
//! Key Path, whose head it then replaces — ends up holding the current key
//! of every node on its path, whichever path it finds. That is why a node
//! replaced at a join is wrapped under its children, not under its old key,
//! whenever a member could otherwise skip past a replaced key below it.

use core::fmt;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{CryptoError, KeyWrapAlg, Rng, Secret};
use crate::wire::WrappedKey;

/// Saving and restoring a tree with the GCKS's state (`crate::persist`).
mod state;

/// Why a key tree operation was refused. Nothing is changed when one is
/// returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LkhError {
    /// A tree needs degree 2 or more.
    BadDegree(u16),
    /// A tree needs room for at least one member.
    ZeroCapacity,
    /// Every leaf is taken: the group is at its member limit.
    Full,
    /// The slot is not (or no longer) a member of this tree.
    UnknownMember,
    /// Members joined since the last [`LkhTree::take_join_refresh`]: a new
    /// SA key wrapped now would lock out the members that have not yet
    /// learned their refreshed keys.
    RefreshPending,
    /// All 2^32 - 1 Key IDs have been used; IDs are never reused.
    KeyIdsExhausted,
    /// Key generation or wrapping failed.
    Crypto(CryptoError),
}

impl fmt::Display for LkhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadDegree(d) => write!(f, "LKH tree degree {d}: must be 2 or more"),
            Self::ZeroCapacity => f.write_str("LKH tree capacity must be at least 1"),
            Self::Full => f.write_str("LKH tree full: group at its member limit"),
            Self::UnknownMember => f.write_str("not a member of this LKH tree"),
            Self::RefreshPending => {
                f.write_str("join refresh pending: take_join_refresh before wrapping an SA key")
            }
            Self::KeyIdsExhausted => f.write_str("LKH Key IDs exhausted"),
            Self::Crypto(e) => write!(f, "LKH: {e}"),
        }
    }
}

impl std::error::Error for LkhError {}

impl From<CryptoError> for LkhError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

/// A member's place in the tree. It names the leaf and the leaf key's ID,
/// so a slot kept after its member was excluded is refused even once a new
/// member holds that leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberSlot {
    leaf: u32,
    id: u32,
}

/// A tree key lent out with its Key ID; `Debug` shows only the length.
#[derive(Clone, Copy)]
pub struct KeyRef<'a>(&'a [u8]);

impl<'a> KeyRef<'a> {
    /// The key octets. Keep what you do with them short-lived.
    pub fn expose(&self) -> &'a [u8] {
        self.0
    }

    /// Length in octets (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key has no octets (never, for a tree key).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for KeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRef({} bytes)", self.0.len())
    }
}

/// Grows `v` to hold `need` elements: doubling, but never past `max`, so a
/// level that reaches its full size carries no slack.
fn reserve_capped<T>(v: &mut Vec<T>, need: usize, max: usize) {
    if need > v.capacity() {
        let target = v.capacity().saturating_mul(2).max(16).min(max).max(need);
        v.reserve_exact(target - v.len());
    }
}

/// Key octets of many nodes in one allocation. Growing copies into a new
/// allocation and wipes the old one (a plain `Vec` would leave the old keys
/// in freed memory); dropping wipes it too.
#[derive(Default)]
struct KeyBuf(Vec<u8>);

impl KeyBuf {
    /// Extends with zero octets to `len`, growing by doubling up to `max`.
    fn grow_to(&mut self, len: usize, max: usize) {
        if len <= self.0.len() {
            return;
        }
        if len > self.0.capacity() {
            let cap = self
                .0
                .capacity()
                .saturating_mul(2)
                .max(16)
                .min(max)
                .max(len);
            let mut fresh = Vec::with_capacity(cap);
            fresh.extend_from_slice(&self.0);
            self.0.zeroize();
            self.0 = fresh;
        }
        self.0.resize(len, 0);
    }
}

impl Drop for KeyBuf {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// One bit per node.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    fn set(&mut self, i: u32, on: bool, max_nodes: u32) {
        let w = i as usize / 64;
        if w >= self.0.len() {
            if !on {
                return;
            }
            reserve_capped(&mut self.0, w + 1, (max_nodes as usize).div_ceil(64));
            self.0.resize(w + 1, 0);
        }
        if on {
            self.0[w] |= 1 << (i % 64);
        } else {
            self.0[w] &= !(1 << (i % 64));
        }
    }
}

/// All nodes of one depth.
struct Level {
    /// Leaves under each node of this level: d^(leaf depth - depth).
    span: u64,
    /// Node positions at this level: ceil(capacity / span).
    max: u32,
    /// Key ID of each node; 0 for an absent node.
    ids: Vec<u32>,
    /// `key_len` octets per node, zeros for an absent node.
    keys: KeyBuf,
    /// Created by a join in the current window (all its members hold the
    /// keys above it: no wrap under it is needed).
    created: Bits,
    /// Given a new key by a join in the current window.
    refreshed: Bits,
}

impl Level {
    fn id(&self, i: u32) -> u32 {
        self.ids.get(i as usize).copied().unwrap_or(0)
    }

    fn present(&self, i: u32) -> bool {
        self.id(i) != 0
    }

    fn key(&self, i: u32, key_len: usize) -> &[u8] {
        let at = i as usize * key_len;
        &self.keys.0[at..at + key_len]
    }

    fn set(&mut self, i: u32, id: u32, key: &[u8]) {
        let (i, kl, max) = (i as usize, key.len(), self.max as usize);
        if i >= self.ids.len() {
            reserve_capped(&mut self.ids, i + 1, max);
            self.ids.resize(i + 1, 0);
            self.keys.grow_to((i + 1) * kl, max * kl);
        }
        self.ids[i] = id;
        self.keys.0[i * kl..(i + 1) * kl].copy_from_slice(key);
    }

    fn remove(&mut self, i: u32, key_len: usize) {
        let i = i as usize;
        self.ids[i] = 0;
        self.keys.0[i * key_len..(i + 1) * key_len].zeroize();
    }
}

/// An internal node that a join created or refreshed since the last
/// broadcast of the tree's keys.
struct Fresh {
    level: u8,
    index: u32,
    /// The Key ID it had before the join; 0 if the join created it.
    old_id: u32,
    /// Where its previous key is in `window_keys` (refreshed nodes only).
    old_key: u32,
}

/// What a join does at one level of the new member's path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JoinStep {
    Create,
    Refresh,
    Keep,
}

/// The GCKS's LKH key tree for one group.
pub struct LkhTree {
    degree: u16,
    capacity: u32,
    kwa: KeyWrapAlg,
    key_len: usize,
    /// `levels[0]` holds the top keys (the Rekey SA's children), the last
    /// level the members' leaves.
    levels: Vec<Level>,
    members: u32,
    /// Leaves from here on were never used.
    next_leaf: u32,
    /// Leaves freed by exclusions, lowest first.
    free: BinaryHeap<Reverse<u32>>,
    /// The next Key ID to hand out (u64: u32::MAX itself is a valid ID).
    next_id: u64,
    /// Internal nodes created or refreshed by joins since the last
    /// broadcast (`take_join_refresh` or `exclude`). A join does not
    /// refresh such a node again: its key has only gone to members joining
    /// in this window, in registrations wrapping keys every joiner gets.
    window: Vec<Fresh>,
    /// The previous keys of the refreshed nodes in `window`.
    window_keys: KeyBuf,
}

impl fmt::Debug for LkhTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LkhTree")
            .field("degree", &self.degree)
            .field("capacity", &self.capacity)
            .field("depth", &self.levels.len())
            .field("members", &self.members)
            .field("kwa", &self.kwa)
            .field("next_key_id", &self.next_id)
            .field("pending_join_nodes", &self.window.len())
            .finish_non_exhaustive()
    }
}

impl LkhTree {
    /// An empty tree for up to `capacity` members (the group's member
    /// limit), `degree` children a node, keys of `kwa.key_len()` octets.
    /// Its depth is the least that gives `capacity` leaves; nothing is
    /// allocated per member until members join.
    pub fn new(degree: u16, capacity: u32, kwa: KeyWrapAlg) -> Result<Self, LkhError> {
        if degree < 2 {
            return Err(LkhError::BadDegree(degree));
        }
        if capacity == 0 {
            return Err(LkhError::ZeroCapacity);
        }
        let d = u64::from(degree);
        // At least one level: a tree of leaves only has them as top keys.
        let mut spans = vec![1u64];
        while spans[0] * d < u64::from(capacity) {
            spans.insert(0, spans[0] * d);
        }
        let levels = spans
            .into_iter()
            .map(|span| Level {
                span,
                max: u64::from(capacity).div_ceil(span) as u32,
                ids: Vec::new(),
                keys: KeyBuf::default(),
                created: Bits::default(),
                refreshed: Bits::default(),
            })
            .collect();
        Ok(Self {
            degree,
            capacity,
            kwa,
            key_len: kwa.key_len(),
            levels,
            members: 0,
            next_leaf: 0,
            free: BinaryHeap::new(),
            next_id: 1,
            window: Vec::new(),
            window_keys: KeyBuf::default(),
        })
    }

    /// Children a node has at most.
    pub fn degree(&self) -> u16 {
        self.degree
    }

    /// Members the tree has room for.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Keys on every member's path, leaf and top key included: the number
    /// of WRAP_KEY attributes in a registration.
    pub fn depth(&self) -> usize {
        self.levels.len()
    }

    /// Current members.
    pub fn members(&self) -> u32 {
        self.members
    }

    /// The key wrap algorithm of the tree's keys (the Rekey SA's).
    pub fn kwa(&self) -> KeyWrapAlg {
        self.kwa
    }

    fn leaf_level(&self) -> usize {
        self.levels.len() - 1
    }

    /// Index at `level` of the node above `leaf`.
    fn node_of(&self, level: usize, leaf: u32) -> u32 {
        (u64::from(leaf) / self.levels[level].span) as u32
    }

    /// Indices (at `level + 1`) of the children node `i` of `level` may
    /// have; only those within the allocated part of the level.
    fn children(&self, level: usize, i: u32) -> Range<u32> {
        let first = u64::from(i) * u64::from(self.degree);
        let end = (first + u64::from(self.degree)).min(self.levels[level + 1].ids.len() as u64);
        first as u32..(end.max(first)) as u32
    }

    fn key(&self, level: usize, i: u32) -> &[u8] {
        self.levels[level].key(i, self.key_len)
    }

    fn check(&self, slot: MemberSlot) -> Result<(), LkhError> {
        let leaves = &self.levels[self.leaf_level()];
        if slot.id != 0 && leaves.id(slot.leaf) == slot.id {
            Ok(())
        } else {
            Err(LkhError::UnknownMember)
        }
    }

    /// The first of `n` fresh Key IDs, without using them up.
    fn peek_ids(&self, n: usize) -> Result<u32, LkhError> {
        if self.next_id + n as u64 > u64::from(u32::MAX) + 1 {
            return Err(LkhError::KeyIdsExhausted);
        }
        Ok(self.next_id as u32)
    }

    /// `n` fresh keys, back to back.
    fn fresh_keys(&self, n: usize, rng: &mut dyn Rng) -> Result<Zeroizing<Vec<u8>>, LkhError> {
        let mut keys = Zeroizing::new(vec![0u8; n * self.key_len]);
        rng.fill(&mut keys)?;
        Ok(keys)
    }

    fn wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, LkhError> {
        Ok(self.kwa.wrap(kek, key)?)
    }

    /// Adds a member with a fresh leaf key and returns its slot.
    ///
    /// For backward access control the keys on its path are replaced by
    /// fresh keys with fresh IDs — except nodes already replaced (or
    /// created) by a join since the last broadcast: their keys have
    /// protected nothing but registrations of keys this member gets too.
    /// Existing members learn the replacements from
    /// [`take_join_refresh`](Self::take_join_refresh), which must come
    /// before the next SA key is wrapped.
    pub fn join(&mut self, rng: &mut dyn Rng) -> Result<MemberSlot, LkhError> {
        let leaf = match self.free.peek() {
            Some(&Reverse(leaf)) => leaf,
            None if self.next_leaf < self.capacity => self.next_leaf,
            None => return Err(LkhError::Full),
        };
        let leaf_level = self.leaf_level();
        let steps: Vec<JoinStep> = (0..leaf_level)
            .map(|l| {
                let (lv, i) = (&self.levels[l], self.node_of(l, leaf));
                if !lv.present(i) {
                    JoinStep::Create
                } else if lv.created.get(i) || lv.refreshed.get(i) {
                    JoinStep::Keep
                } else {
                    JoinStep::Refresh
                }
            })
            .collect();
        let n = 1 + steps.iter().filter(|&&s| s != JoinStep::Keep).count();
        // IDs go top-down, the leaf's last.
        let mut ids = u64::from(self.peek_ids(n)?)..;
        let key_bytes = self.fresh_keys(n, rng)?;
        // Nothing below can fail.
        let mut keys = key_bytes.chunks_exact(self.key_len);
        let kl = self.key_len;
        for (l, step) in steps.into_iter().enumerate() {
            let i = self.node_of(l, leaf);
            let lv = &mut self.levels[l];
            let (old_id, old_key) = match step {
                JoinStep::Keep => continue,
                JoinStep::Create => {
                    lv.created.set(i, true, lv.max);
                    (0, 0)
                }
                JoinStep::Refresh => {
                    lv.refreshed.set(i, true, lv.max);
                    let at = self.window_keys.0.len();
                    self.window_keys.grow_to(at + kl, usize::MAX);
                    self.window_keys.0[at..].copy_from_slice(lv.key(i, kl));
                    (lv.id(i), (at / kl) as u32)
                }
            };
            self.window.push(Fresh {
                level: l as u8,
                index: i,
                old_id,
                old_key,
            });
            let id = ids.next().expect("unbounded") as u32;
            lv.set(i, id, keys.next().expect("one key a step"));
        }
        let id = ids.next().expect("unbounded") as u32;
        let slot = MemberSlot { leaf, id };
        self.levels[leaf_level].set(leaf, id, keys.next().expect("the leaf key"));
        self.next_id += n as u64;
        if self.free.pop().is_none() {
            self.next_leaf += 1;
        }
        self.members += 1;
        Ok(slot)
    }

    /// The WRAP_KEY attributes of a member's registration (Figure 23), leaf
    /// first: its leaf key under `default_kwk` (the GSK_w of its IKE SA, for
    /// which `default_kwa` is that SA's key wrap algorithm; KWK ID 0), then
    /// each key of its path under the key below it. With the SA key wrapped
    /// under [`top_key_of`](Self::top_key_of) they give the member its
    /// Working Key Path.
    pub fn registration_keys(
        &self,
        slot: MemberSlot,
        default_kwk: &Secret,
        default_kwa: KeyWrapAlg,
    ) -> Result<Vec<WrappedKey>, LkhError> {
        self.check(slot)?;
        let leaf_level = self.leaf_level();
        let mut out = Vec::with_capacity(self.levels.len());
        out.push(WrappedKey {
            key_id: slot.id,
            kwk_id: 0,
            encrypted: default_kwa.wrap(default_kwk.expose(), self.key(leaf_level, slot.leaf))?,
        });
        for l in (0..leaf_level).rev() {
            let (i, below) = (self.node_of(l, slot.leaf), self.node_of(l + 1, slot.leaf));
            out.push(WrappedKey {
                key_id: self.levels[l].id(i),
                kwk_id: self.levels[l + 1].id(below),
                encrypted: self.wrap(self.key(l + 1, below), self.key(l, i))?,
            });
        }
        Ok(out)
    }

    /// The member's top key and its ID: a registering member gets the
    /// current SA key wrapped under it (SA_KEY attribute, KWK ID = the ID).
    pub fn top_key_of(&self, slot: MemberSlot) -> Result<(u32, KeyRef<'_>), LkhError> {
        self.check(slot)?;
        let i = self.node_of(0, slot.leaf);
        Ok((self.levels[0].id(i), KeyRef(self.key(0, i))))
    }

    /// Every current top key with its ID. To send a new SA key to the whole
    /// group use [`wrap_sa_key`](Self::wrap_sa_key), which also checks that
    /// no join refresh is pending.
    pub fn top_keys(&self) -> impl Iterator<Item = (u32, KeyRef<'_>)> + '_ {
        let top = &self.levels[0];
        (0..top.ids.len() as u32)
            .filter(|&i| top.present(i))
            .map(move |i| (top.id(i), KeyRef(top.key(i, self.key_len))))
    }

    /// The SA_KEY attributes of a new Rekey SA: `keymat` (Key ID 0) wrapped
    /// under every top key (KWK ID = its ID), in tree order. Refused with
    /// [`LkhError::RefreshPending`] after joins until
    /// [`take_join_refresh`](Self::take_join_refresh): members who have not
    /// followed the refresh would be locked out.
    pub fn wrap_sa_key(&self, keymat: &Secret) -> Result<Vec<WrappedKey>, LkhError> {
        if !self.window.is_empty() {
            return Err(LkhError::RefreshPending);
        }
        self.top_keys()
            .map(|(id, key)| {
                Ok(WrappedKey {
                    key_id: 0,
                    kwk_id: id,
                    encrypted: self.wrap(key.expose(), keymat.expose())?,
                })
            })
            .collect()
    }

    /// The WRAP_KEY attributes that let members follow the keys joins have
    /// replaced since the last broadcast; to be sent (with the new SA key
    /// from [`wrap_sa_key`](Self::wrap_sa_key)) to the whole group. Each
    /// node is sent once, however many joins passed it. A replaced node
    /// goes under its previous key if none of its children was replaced
    /// (everyone who held that key keeps its path below), else under the
    /// current key of each child that existed before the window — so a GM
    /// cannot take a shortcut past a replaced child key it needs later.
    pub fn take_join_refresh(&mut self) -> Result<Vec<WrappedKey>, LkhError> {
        let out = self.refresh_wraps(None)?;
        self.close_window();
        Ok(out)
    }

    /// The join-refresh wraps of the current window, leaving out nodes on
    /// the path of leaf `skip` (an exclusion replaces those anyway).
    fn refresh_wraps(&self, skip: Option<u32>) -> Result<Vec<WrappedKey>, LkhError> {
        let mut out = Vec::new();
        for f in self.window.iter().filter(|f| f.old_id != 0) {
            let (l, i) = (usize::from(f.level), f.index);
            if skip.is_some_and(|leaf| self.node_of(l, leaf) == i) || !self.levels[l].present(i) {
                continue;
            }
            let (id, key) = (self.levels[l].id(i), self.key(l, i));
            let below = &self.levels[l + 1];
            let kids = self.children(l, i);
            if !kids
                .clone()
                .any(|c| below.present(c) && below.refreshed.get(c))
            {
                let at = f.old_key as usize * self.key_len;
                out.push(WrappedKey {
                    key_id: id,
                    kwk_id: f.old_id,
                    encrypted: self.wrap(&self.window_keys.0[at..at + self.key_len], key)?,
                });
                continue;
            }
            for c in kids.filter(|&c| below.present(c) && !below.created.get(c)) {
                out.push(WrappedKey {
                    key_id: id,
                    kwk_id: below.id(c),
                    encrypted: self.wrap(below.key(c, self.key_len), key)?,
                });
            }
        }
        Ok(out)
    }

    /// Ends the join window: the keys it made are about to protect
    /// something broadcast, so the next join must replace them again.
    fn close_window(&mut self) {
        for f in self.window.drain(..) {
            let lv = &mut self.levels[usize::from(f.level)];
            lv.created.set(f.index, false, lv.max);
            lv.refreshed.set(f.index, false, lv.max);
        }
        self.window.shrink_to(64);
        self.window_keys = KeyBuf::default();
    }

    /// Removes a member (forward access control): every key on its path is
    /// replaced by a fresh key with a fresh ID, and nodes left without
    /// members are dropped. Returns the WRAP_KEY attributes every remaining
    /// member needs, for the whole group: first any pending join refresh
    /// (so this also does [`take_join_refresh`](Self::take_join_refresh)),
    /// then bottom-up each new path key under the current key of each
    /// remaining child. Follow with [`wrap_sa_key`](Self::wrap_sa_key).
    pub fn exclude(
        &mut self,
        slot: MemberSlot,
        rng: &mut dyn Rng,
    ) -> Result<Vec<WrappedKey>, LkhError> {
        self.check(slot)?;
        let leaf = slot.leaf;
        let leaf_level = self.leaf_level();
        // keep[l]: the path node at level l still has members (gets a new key).
        let mut keep = vec![false; leaf_level];
        let mut below_kept = false;
        for l in (0..leaf_level).rev() {
            let (i, on_path) = (self.node_of(l, leaf), self.node_of(l + 1, leaf));
            let below = &self.levels[l + 1];
            keep[l] = self
                .children(l, i)
                .any(|c| below.present(c) && (c != on_path || below_kept));
            below_kept = keep[l];
        }
        let n = keep.iter().filter(|&&k| k).count();
        let first_id = self.peek_ids(n)?;
        let keys = self.fresh_keys(n, rng)?;
        // New IDs and keys go bottom-up: the k-th kept node (from the leaf) gets
        // first_id + k and the k-th key.
        let mut new: Vec<Option<(u32, &[u8])>> = vec![None; leaf_level + 1];
        let mut fresh = keys.chunks_exact(self.key_len).zip(u64::from(first_id)..);
        for l in (0..leaf_level).rev().filter(|&l| keep[l]) {
            let (key, id) = fresh.next().expect("one key per kept node");
            new[l] = Some((id as u32, key));
        }
        let mut out = self.refresh_wraps(Some(leaf))?;
        for l in (0..leaf_level).rev() {
            let Some((id, key)) = new[l] else { continue };
            let on_path = self.node_of(l + 1, leaf);
            let below = &self.levels[l + 1];
            for c in self.children(l, self.node_of(l, leaf)) {
                let kek = if c == on_path {
                    match new[l + 1] {
                        Some(k) => k,
                        None => continue, // the leaf, or a dropped node
                    }
                } else if below.present(c) {
                    (below.id(c), below.key(c, self.key_len))
                } else {
                    continue;
                };
                out.push(WrappedKey {
                    key_id: id,
                    kwk_id: kek.0,
                    encrypted: self.wrap(kek.1, key)?,
                });
            }
        }
        // Commit: nothing below can fail.
        self.close_window();
        let kl = self.key_len;
        self.levels[leaf_level].remove(leaf, kl);
        for (l, k) in new.iter().enumerate().take(leaf_level) {
            let i = self.node_of(l, leaf);
            match k {
                Some((id, key)) => self.levels[l].set(i, *id, key),
                None => self.levels[l].remove(i, kl),
            }
        }
        self.next_id += n as u64;
        self.free.push(Reverse(leaf));
        self.members -= 1;
        Ok(out)
    }

    /// Approximate heap octets held, for memory figures.
    /// Nodes whose new keys the next [`take_join_refresh`] sends; each
    /// costs at most `degree` WRAP_KEYs. Lets the caller flush before the
    /// refresh outgrows one message.
    ///
    /// [`take_join_refresh`]: Self::take_join_refresh
    pub fn pending_refresh_nodes(&self) -> usize {
        self.window.len()
    }

    pub fn heap_bytes(&self) -> usize {
        let levels: usize = self
            .levels
            .iter()
            .map(|lv| {
                lv.ids.capacity() * 4
                    + lv.keys.0.capacity()
                    + (lv.created.0.capacity() + lv.refreshed.0.capacity()) * 8
            })
            .sum();
        levels
            + self.levels.capacity() * size_of::<Level>()
            + self.free.capacity() * size_of::<Reverse<u32>>()
            + self.window.capacity() * size_of::<Fresh>()
            + self.window_keys.0.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Rng, SeededRng};
    use proptest::prelude::{ProptestConfig, any, prop, prop_assert_eq, proptest};
    use std::collections::{HashMap, HashSet};

    const KWA: KeyWrapAlg = KeyWrapAlg::Kw5649_256;

    /// Keys a GM holds, by Key ID; ID 0 is its default KWK (GSK_w).
    type Keys = HashMap<u32, Vec<u8>>;
    /// A Working Key Path, top first.
    type Path = Vec<(u32, Vec<u8>)>;

    fn unwrap(kek: &[u8], w: &WrappedKey) -> Vec<u8> {
        KWA.unwrap(kek, &w.encrypted)
            .expect("a key wrapped under a known ID unwraps")
            .expose()
            .to_vec()
    }

    /// Greedy GM, independent of the tree: unwraps every WRAP_KEY it can,
    /// again and again, keeping every key it ever learned (the strongest
    /// excluded member). Returns the IDs it learned.
    fn learn(known: &mut Keys, wraps: &[WrappedKey]) -> Vec<u32> {
        let mut learned = Vec::new();
        loop {
            let before = learned.len();
            for w in wraps.iter().filter(|w| w.key_id != 0) {
                if known.contains_key(&w.key_id) {
                    continue;
                }
                // KWK ID 0 is each member's own GSK_w: another member's
                // registration does not open with ours.
                let key = match known.get(&w.kwk_id) {
                    Some(kek) if w.kwk_id == 0 => match KWA.unwrap(kek, &w.encrypted) {
                        Ok(key) => key.expose().to_vec(),
                        Err(_) => continue,
                    },
                    Some(kek) => unwrap(kek, w),
                    None => continue,
                };
                known.insert(w.key_id, key);
                learned.push(w.key_id);
            }
            if learned.len() == before {
                return learned;
            }
        }
    }

    /// The SA key of SA_KEY attributes, if one is under a key it holds.
    fn open_sa(known: &Keys, sa: &[WrappedKey]) -> Option<Vec<u8>> {
        sa.iter()
            .find_map(|w| known.get(&w.kwk_id).map(|kek| unwrap(kek, w)))
    }

    enum End {
        GskW,
        Wkp(usize),
    }

    /// A GM following RFC 9838 §3.3 to the letter: it only builds key paths
    /// from an SA_KEY attribute down to its Working Key Path (or GSK_w) and
    /// then replaces the head of its Working Key Path with the new path.
    struct WkpGm {
        gsk_w: Vec<u8>,
        wkp: Path,
    }

    impl WkpGm {
        /// Every way to get key `id`: (key, new path top first, where it ends).
        fn resolve(
            &self,
            id: u32,
            wraps: &[WrappedKey],
            depth: usize,
        ) -> Vec<(Vec<u8>, Path, End)> {
            if id == 0 {
                return vec![(self.gsk_w.clone(), Vec::new(), End::GskW)];
            }
            if let Some(i) = self.wkp.iter().position(|(k, _)| *k == id) {
                return vec![(self.wkp[i].1.clone(), Vec::new(), End::Wkp(i))];
            }
            let mut out = Vec::new();
            for w in wraps.iter().filter(|w| w.key_id == id && depth > 0) {
                for (kek, below, end) in self.resolve(w.kwk_id, wraps, depth - 1) {
                    let key = unwrap(&kek, w);
                    let mut path = vec![(id, key.clone())];
                    path.extend(below);
                    out.push((key, path, end));
                }
            }
            out
        }

        /// Every outcome the §3.3 procedure can reach, whichever key path it
        /// happens to find: (SA key, new Working Key Path).
        fn outcomes(&self, wraps: &[WrappedKey], sa: &[WrappedKey]) -> Vec<(Vec<u8>, Path)> {
            let mut out = Vec::new();
            for s in sa {
                for (kek, path, end) in self.resolve(s.kwk_id, wraps, 64) {
                    let wkp = match end {
                        _ if path.is_empty() => self.wkp.clone(),
                        End::GskW => path,
                        End::Wkp(i) => path
                            .into_iter()
                            .chain(self.wkp[i..].iter().cloned())
                            .collect(),
                    };
                    out.push((unwrap(&kek, s), wkp));
                }
            }
            out
        }
    }

    /// The tree's own view of a member's path, top first (test oracle).
    fn path_keys(tree: &LkhTree, slot: MemberSlot) -> Path {
        (0..tree.depth())
            .map(|l| {
                let i = tree.node_of(l, slot.leaf);
                (tree.levels[l].id(i), tree.key(l, i).to_vec())
            })
            .collect()
    }

    fn random(rng: &mut SeededRng, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        rng.fill(&mut v).unwrap();
        v
    }

    struct Gm {
        slot: MemberSlot,
        greedy: Keys,
        rfc: WkpGm,
    }

    /// A GCKS's tree with model GMs around it.
    struct Harness {
        tree: LkhTree,
        rng: SeededRng,
        sa: Vec<u8>,
        members: Vec<Gm>,
        excluded: Vec<Keys>,
        /// Every WrappedKey ever produced: broadcasts and registrations.
        history: Vec<WrappedKey>,
        seen_ids: HashSet<u32>,
    }

    impl Harness {
        fn new(degree: u16, capacity: u32, seed: u64) -> Self {
            let mut rng = SeededRng::from_u64(seed);
            Self {
                tree: LkhTree::new(degree, capacity, KWA).unwrap(),
                sa: random(&mut rng, 48),
                rng,
                members: Vec::new(),
                excluded: Vec::new(),
                history: Vec::new(),
                seen_ids: HashSet::new(),
            }
        }

        fn record(&mut self, wraps: &[WrappedKey]) {
            for w in wraps {
                self.seen_ids.extend([w.key_id, w.kwk_id]);
            }
            self.history.extend_from_slice(wraps);
        }

        /// Registers a new member and checks what it can learn. `None` when full.
        fn join(&mut self) -> Option<usize> {
            let slot = match self.tree.join(&mut self.rng) {
                Ok(slot) => slot,
                Err(LkhError::Full) => {
                    assert_eq!(self.tree.members(), self.tree.capacity());
                    return None;
                }
                Err(e) => panic!("join: {e}"),
            };
            let gsk = random(&mut self.rng, KWA.key_len());
            let reg = self
                .tree
                .registration_keys(slot, &Secret::from_slice(&gsk), KWA)
                .unwrap();
            let (top_id, top) = self.tree.top_key_of(slot).unwrap();
            let sa_attr = WrappedKey {
                key_id: 0,
                kwk_id: top_id,
                encrypted: KWA.wrap(top.expose(), &self.sa).unwrap(),
            };
            // Figure 23: GSK_w{leaf}, leaf{..}, .., {top}, each under the one before.
            assert_eq!(reg.len(), self.tree.depth());
            assert_eq!((reg[0].key_id, reg[0].kwk_id), (slot.id, 0));
            for pair in reg.windows(2) {
                assert_eq!(pair[1].kwk_id, pair[0].key_id);
            }
            assert_eq!(reg.last().unwrap().key_id, top_id);
            assert!(!self.seen_ids.contains(&slot.id), "leaf Key ID reused");
            let reg_ids: HashSet<u32> = reg.iter().map(|w| w.key_id).collect();

            // Backward access: everything ever sent before, plus its own
            // registration, teaches it nothing but its registration keys and
            // the current SA key.
            let mut spy: Keys = HashMap::from([(0, gsk.clone())]);
            let mut all = self.history.clone();
            all.extend(reg.iter().cloned());
            for id in learn(&mut spy, &all) {
                assert!(reg_ids.contains(&id), "joiner learned pre-join key {id}");
            }
            for w in self.history.iter().filter(|w| w.key_id == 0) {
                if let Some(kek) = spy.get(&w.kwk_id).filter(|_| w.kwk_id != 0) {
                    assert_eq!(unwrap(kek, w), self.sa, "joiner opened an old SA key");
                }
            }

            let mut greedy: Keys = HashMap::from([(0, gsk.clone())]);
            assert_eq!(learn(&mut greedy, &reg).len(), self.tree.depth());
            assert_eq!(
                open_sa(&greedy, core::slice::from_ref(&sa_attr)).as_ref(),
                Some(&self.sa)
            );
            let mut rfc = WkpGm {
                gsk_w: gsk,
                wkp: Vec::new(),
            };
            let outcomes = rfc.outcomes(&reg, core::slice::from_ref(&sa_attr));
            assert_eq!(outcomes.len(), 1);
            assert_eq!(outcomes[0].0, self.sa);
            rfc.wkp = outcomes[0].1.clone();
            assert_eq!(rfc.wkp, path_keys(&self.tree, slot));
            self.record(&reg);
            self.record(&[sa_attr]);
            self.members.push(Gm { slot, greedy, rfc });
            Some(self.members.len() - 1)
        }

        /// Sends `wraps` and a new SA key to everyone; checks who gets it.
        /// Returns the SA_KEY attributes.
        fn broadcast(&mut self, wraps: &[WrappedKey]) -> Vec<WrappedKey> {
            self.sa = random(&mut self.rng, 48);
            let sa = self
                .tree
                .wrap_sa_key(&Secret::from_slice(&self.sa))
                .unwrap();
            assert_eq!(sa.len(), self.tree.top_keys().count());
            for gm in &mut self.members {
                learn(&mut gm.greedy, wraps);
                assert_eq!(open_sa(&gm.greedy, &sa).as_ref(), Some(&self.sa));
                let outcomes = gm.rfc.outcomes(wraps, &sa);
                assert!(!outcomes.is_empty(), "§3.3 GM found no key path");
                let path = path_keys(&self.tree, gm.slot);
                for (key, wkp) in &outcomes {
                    assert_eq!(key, &self.sa);
                    for node in &path {
                        assert!(wkp.contains(node), "§3.3 GM misses key {}", node.0);
                    }
                }
                gm.rfc.wkp = outcomes[0].1.clone();
            }
            for known in &mut self.excluded {
                assert_eq!(
                    learn(known, wraps),
                    Vec::<u32>::new(),
                    "excluded GM learned keys"
                );
                assert_eq!(open_sa(known, &sa), None, "excluded GM opened the SA key");
            }
            self.record(wraps);
            self.record(&sa);
            sa
        }

        fn rekey(&mut self) -> (Vec<WrappedKey>, Vec<WrappedKey>) {
            let wraps = self.tree.take_join_refresh().unwrap();
            let sa = self.broadcast(&wraps);
            (wraps, sa)
        }

        fn exclude(&mut self, member: usize) -> (Vec<WrappedKey>, Vec<WrappedKey>) {
            let gm = self.members.swap_remove(member);
            let wraps = self.tree.exclude(gm.slot, &mut self.rng).unwrap();
            assert_eq!(self.tree.check(gm.slot), Err(LkhError::UnknownMember));
            self.excluded.push(gm.greedy);
            let sa = self.broadcast(&wraps);
            (wraps, sa)
        }
    }

    fn ids(wraps: &[WrappedKey]) -> Vec<(u32, u32)> {
        wraps.iter().map(|w| (w.key_id, w.kwk_id)).collect()
    }

    #[test]
    fn appendix_a_tree_and_exclusion_of_f() {
        let mut h = Harness::new(2, 8, 1);
        for _ in 0..8 {
            h.join().unwrap();
        }
        assert_eq!(h.tree.depth(), 3);
        assert_eq!(h.join(), None);
        // Building the tree replaced no key anyone held.
        assert_eq!(h.rekey().0, Vec::new());
        let path = |h: &Harness, m: usize| path_keys(&h.tree, h.members[m].slot);
        let (a, e, f, g) = (path(&h, 0), path(&h, 4), h.members[5].slot, path(&h, 6));
        assert_ne!(a[0].0, e[0].0);
        let before: HashSet<u32> = h.seen_ids.clone();
        let max_before = *before.iter().max().unwrap();

        // Exclude F (members are in leaf order A..H).
        let (wraps, sa) = h.exclude(5);
        let e2 = path(&h, 4);
        // Figure 26: MP(11{16}, 16{15}, 6{15}) here bottom-up, GP(1{K}, 15{K}).
        assert_eq!(
            ids(&wraps),
            vec![(e2[1].0, e[2].0), (e2[0].0, e2[1].0), (e2[0].0, g[1].0)]
        );
        assert_eq!(ids(&sa), vec![(0, a[0].0), (0, e2[0].0)]);
        for new in [e2[0].0, e2[1].0] {
            assert!(
                !before.contains(&new) && new > max_before,
                "Key ID {new} reused"
            );
        }
        assert_eq!(e2[2], e[2]);
        assert_eq!(path(&h, 0), a, "A, B, C, D keep their paths");
        assert_eq!(h.tree.members(), 7);
        assert!(!ids(&wraps).iter().any(|&(k, w)| k == f.id || w == f.id));
        assert_eq!(
            h.tree
                .registration_keys(f, &Secret::from_slice(&[0; 32]), KWA),
            Err(LkhError::UnknownMember)
        );
        // F's leaf is free again: the next member gets it, with a new Key ID.
        let n = h.join().unwrap();
        assert_eq!(h.members[n].slot.leaf, f.leaf);
        assert_ne!(h.members[n].slot.id, f.id);
        h.rekey();
    }

    #[test]
    fn exclusion_cost_grows_with_log_n() {
        let d = 4u32;
        let mut counts = Vec::new();
        for n in [16u32, 256, 4096, 65536] {
            let mut tree = LkhTree::new(d as u16, n, KWA).unwrap();
            let mut rng = SeededRng::from_u64(u64::from(n));
            let slots: Vec<MemberSlot> = (0..n).map(|_| tree.join(&mut rng).unwrap()).collect();
            assert_eq!(tree.join(&mut rng), Err(LkhError::Full));
            assert!(tree.take_join_refresh().unwrap().is_empty());
            let out = tree.exclude(slots[n as usize / 3], &mut rng).unwrap();
            let sa = tree.wrap_sa_key(&Secret::from_slice(&[7; 32])).unwrap();
            let log = n.ilog(d) + u32::from(d.pow(n.ilog(d)) < n);
            assert!(
                out.len() <= (d * log) as usize,
                "N={n}: {} wraps",
                out.len()
            );
            assert!(out.len() + sa.len() <= (d * log) as usize);
            counts.push(out.len());
        }
        // (d-1) + d·(log_d N - 2): 3, 11, 19, 27.
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
        assert_eq!(counts, [3, 11, 19, 27]);
    }

    #[test]
    fn joiners_learn_nothing_old_and_members_follow_join_refresh() {
        let mut h = Harness::new(3, 27, 7);
        for _ in 0..10 {
            h.join().unwrap();
        }
        h.rekey();
        h.exclude(2);
        h.exclude(5);
        h.rekey();
        // Several joins in one window: each is checked against every key
        // sent before it, including the registrations of this window.
        for _ in 0..4 {
            h.join().unwrap();
        }
        let (refresh, _) = h.rekey();
        assert!(!refresh.is_empty(), "existing members needed the new keys");
        // Coalesced: each node's new key appears under any KWK at most once.
        let pairs: HashSet<(u32, u32)> = ids(&refresh).into_iter().collect();
        assert_eq!(pairs.len(), refresh.len());
        // A join right after a broadcast refreshes again.
        let top_before = h.tree.top_keys().map(|(id, _)| id).collect::<Vec<_>>();
        h.join().unwrap();
        let top_after = h.tree.top_keys().map(|(id, _)| id).collect::<Vec<_>>();
        assert_ne!(top_before, top_after);
        assert_eq!(
            h.tree.wrap_sa_key(&Secret::from_slice(&[1; 48])),
            Err(LkhError::RefreshPending)
        );
        // An exclusion flushes pending joins itself.
        h.join().unwrap();
        h.exclude(0);
        h.rekey();
    }

    #[test]
    fn refresh_without_changed_children_uses_the_old_key() {
        // Degree 4, leaves 0..2 present: a join at leaf 3 refreshes only the
        // top key, whose children (leaves) are unchanged: one wrap, under the
        // old top key.
        let mut h = Harness::new(4, 16, 3);
        for _ in 0..3 {
            h.join().unwrap();
        }
        h.rekey();
        let old_top = path_keys(&h.tree, h.members[0].slot)[0].0;
        h.join().unwrap();
        let (refresh, _) = h.rekey();
        let new_top = path_keys(&h.tree, h.members[0].slot)[0].0;
        assert_eq!(ids(&refresh), vec![(new_top, old_top)]);
    }

    /// With every refreshed key sent only under its previous key, member A
    /// below (paths X->Y->A) would follow X's new key straight from its old
    /// one, never learn Y's, and be locked out when D (under Z) leaves and
    /// X's next key goes under Y's and Z's current keys.
    #[test]
    fn a_section_3_3_gm_survives_join_refresh_then_exclusion() {
        // Degree 2, leaves A=0 B=1 under Y, C=2 D=3 under Z, X over Y and Z.
        let mut h = Harness::new(2, 8, 11);
        for _ in 0..4 {
            h.join().unwrap();
        }
        h.rekey();
        h.exclude(1);
        h.join().unwrap(); // into B's leaf: refreshes Y and X
        let (refresh, _) = h.rekey();
        let a = path_keys(&h.tree, h.members[0].slot);
        // X's new key under Y's new key and Z's key; Y's under its old key.
        assert_eq!(refresh.len(), 3);
        assert!(ids(&refresh).contains(&(a[0].0, a[1].0)));
        assert_eq!(h.members[0].rfc.wkp[..2], a[..2]);
        let d = h.members.iter().position(|g| g.slot.leaf == 3).unwrap();
        h.exclude(d);
        h.rekey();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn random_operations_keep_members_in_and_excluded_out(
            degree in 2u16..=4,
            capacity in 1u32..=30,
            ops in prop::collection::vec((0u8..6, any::<u32>()), 1..45),
            seed in any::<u64>(),
        ) {
            let mut h = Harness::new(degree, capacity, seed);
            for (op, x) in ops {
                match op {
                    0..=2 => {
                        h.join();
                    }
                    3 | 4 if !h.members.is_empty() => {
                        let m = x as usize % h.members.len();
                        h.exclude(m);
                    }
                    _ => {
                        h.rekey();
                    }
                }
                prop_assert_eq!(h.tree.members() as usize, h.members.len());
            }
        }
    }

    #[test]
    fn capacity_and_slots_are_checked() {
        let mut rng = SeededRng::from_u64(9);
        assert_eq!(LkhTree::new(1, 8, KWA).unwrap_err(), LkhError::BadDegree(1));
        assert_eq!(LkhTree::new(2, 0, KWA).unwrap_err(), LkhError::ZeroCapacity);
        let mut t = LkhTree::new(3, 2, KWA).unwrap();
        assert_eq!(t.depth(), 1);
        let a = t.join(&mut rng).unwrap();
        let b = t.join(&mut rng).unwrap();
        assert_eq!(t.join(&mut rng), Err(LkhError::Full));
        assert_eq!(t.top_keys().count(), 2);
        t.take_join_refresh().unwrap();
        // With the leaves as top keys an exclusion sends no WRAP_KEY.
        assert_eq!(t.exclude(a, &mut rng).unwrap(), Vec::new());
        assert_eq!(t.exclude(a, &mut rng), Err(LkhError::UnknownMember));
        assert_eq!(t.top_key_of(a).unwrap_err(), LkhError::UnknownMember);
        let c = t.join(&mut rng).unwrap();
        assert_eq!(c.leaf, a.leaf);
        assert_eq!(t.exclude(a, &mut rng), Err(LkhError::UnknownMember));
        assert_eq!(t.members(), 2);
        let other = LkhTree::new(3, 2, KWA).unwrap();
        assert_eq!(other.top_key_of(b).unwrap_err(), LkhError::UnknownMember);
        t.exclude(b, &mut rng).unwrap();
        t.exclude(c, &mut rng).unwrap();
        assert_eq!(t.members(), 0);
        assert_eq!(
            t.wrap_sa_key(&Secret::from_slice(&[1; 32])).unwrap(),
            Vec::new()
        );
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let mut rng = SeededRng::from_u64(4);
        let mut t = LkhTree::new(2, 4, KeyWrapAlg::Kw5649_128).unwrap();
        let s = t.join(&mut rng).unwrap();
        let (_, top) = t.top_key_of(s).unwrap();
        let hex: String = top.expose().iter().map(|b| format!("{b:02x}")).collect();
        let bytes = format!("{:?}", top.expose());
        assert_eq!(format!("{top:?}"), "KeyRef(16 bytes)");
        for shown in [format!("{t:?}"), format!("{t:#?}"), format!("{s:?}")] {
            assert!(
                !shown.contains(&hex) && !shown.contains(&bytes[1..9]),
                "{shown}"
            );
        }
        assert!(format!("{t:?}").starts_with("LkhTree { degree: 2"));
    }

    #[test]
    fn registration_uses_the_ike_sas_key_wrap_algorithm() {
        let mut rng = SeededRng::from_u64(5);
        let mut t = LkhTree::new(2, 4, KWA).unwrap();
        let s = t.join(&mut rng).unwrap();
        let gsk = Secret::from_slice(&[3; 16]);
        let reg = t
            .registration_keys(s, &gsk, KeyWrapAlg::Kw5649_128)
            .unwrap();
        let leaf = KeyWrapAlg::Kw5649_128
            .unwrap(gsk.expose(), &reg[0].encrypted)
            .unwrap();
        assert_eq!(leaf.expose(), path_keys(&t, s)[1].1);
        assert!(matches!(
            t.registration_keys(s, &gsk, KWA),
            Err(LkhError::Crypto(CryptoError::KeyLength { .. }))
        ));
    }

    struct NoRandomness;

    impl Rng for NoRandomness {
        fn fill(&mut self, _: &mut [u8]) -> crate::crypto::Result<()> {
            Err(CryptoError::Unsupported("no randomness"))
        }
    }

    #[test]
    fn failures_change_nothing() {
        let mut rng = SeededRng::from_u64(6);
        let mut t = LkhTree::new(2, 8, KWA).unwrap();
        let a = t.join(&mut rng).unwrap();
        let b = t.join(&mut rng).unwrap();
        t.take_join_refresh().unwrap();
        let before = (path_keys(&t, a), path_keys(&t, b), t.next_id);
        assert!(matches!(
            t.join(&mut NoRandomness),
            Err(LkhError::Crypto(_))
        ));
        assert!(matches!(
            t.exclude(a, &mut NoRandomness),
            Err(LkhError::Crypto(_))
        ));
        assert_eq!((path_keys(&t, a), path_keys(&t, b), t.next_id), before);
        // A join needs a leaf ID plus one per replaced path node.
        t.next_id = u64::from(u32::MAX);
        assert_eq!(t.join(&mut rng), Err(LkhError::KeyIdsExhausted));
        assert_eq!(t.members(), 2);
        let c = t.exclude(a, &mut rng);
        assert_eq!(c, Err(LkhError::KeyIdsExhausted));
        t.next_id = u64::from(u32::MAX) - 1;
        t.exclude(a, &mut rng).unwrap();
        assert_eq!(path_keys(&t, b)[0].0, u32::MAX);
        assert_eq!(t.join(&mut rng), Err(LkhError::KeyIdsExhausted));
    }

    #[test]
    fn memory_is_small_and_creation_cheap() {
        let t = LkhTree::new(4, 1_000_000, KWA).unwrap();
        assert!(t.heap_bytes() < 4096, "{}", t.heap_bytes());
        let mut rng = SeededRng::from_u64(8);
        let n = 100_000;
        let mut t = LkhTree::new(4, n, KWA).unwrap();
        for _ in 0..n {
            t.join(&mut rng).unwrap();
        }
        t.take_join_refresh().unwrap();
        let per_member = t.heap_bytes() / n as usize;
        // (4 + 32) octets a node, 4/3 nodes a member, plus flag bits.
        assert!(per_member <= 52, "{per_member} octets a member");
    }

    /// Figures for the report: `cargo test --release --lib lkh::tests::figures -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn figures() {
        use std::time::Instant;
        for (d, n) in [
            (4u16, 100_000u32),
            (4, 1_000_000),
            (8, 1_000_000),
            (16, 1_000_000),
        ] {
            let mut rng = SeededRng::from_u64(1);
            let mut t = LkhTree::new(d, n, KWA).unwrap();
            let start = Instant::now();
            let slots: Vec<MemberSlot> = (0..n).map(|_| t.join(&mut rng).unwrap()).collect();
            let join = start.elapsed();
            t.take_join_refresh().unwrap();
            let bytes = t.heap_bytes();
            let start = Instant::now();
            let mut wraps = 0;
            let rounds = 1000;
            for k in 0..rounds {
                wraps += t
                    .exclude(slots[k * 997 % n as usize], &mut rng)
                    .unwrap()
                    .len();
            }
            let exclude = start.elapsed() / rounds as u32;
            let start = Instant::now();
            for _ in 0..rounds {
                t.join(&mut rng).unwrap();
                t.take_join_refresh().unwrap();
            }
            let rejoin = start.elapsed() / rounds as u32;
            println!(
                "d={d} N={n}: depth {}, {:.1} B/member, {} joins in {join:?}, exclude {exclude:?} ({} wraps avg), join+refresh {rejoin:?}",
                t.depth(),
                bytes as f64 / f64::from(n),
                n,
                wraps / rounds,
            );
        }
    }
}
