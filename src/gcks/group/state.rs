//! A group's state in the GCKS's state file (`crate::persist`): what a
//! restarted GCKS needs to continue the same group, so that its members
//! keep following rekeys without registering again.
//!
//! Saved: the configuration's identity (to refuse a file written for a
//! group configured differently), the Rekey SA (SPI, keys, expiry, next
//! Message ID, reserved next SPI) and the one joiners already hold, the
//! Data-Security SAs, the LKH key tree, the multicast members with their
//! leaves and Sender-IDs, the Sender-ID counter, the excluded identities,
//! a pending join flush and the recent rekeys shown to the operator.
//!
//! Not saved: queued retransmissions (GMs that miss a GSA_REKEY register
//! again), and members rekeyed inband — their IKE SAs were the old
//! charon's and are gone, so they must register again anyway; they are
//! dropped without a rekey, as they were not excluded.
//!
//! # Times
//!
//! The engine's clock is the host's monotonic milliseconds, whose origin
//! changes with a restart (charon's is the boot time). Every deadline is
//! therefore saved as the time left at the save, together with the wall
//! clock of the save. A restore subtracts the wall-clock time that passed
//! (none if the wall clock went backwards) and adds what is left to the new
//! monotonic `now`: the SAs members hold expire in real time while the
//! GCKS is down, and the GCKS must not believe they have longer. An SA
//! that expired meanwhile is due at once (one millisecond after the
//! restore, so the timer replaces it with a GSA_REKEY rather than dropping
//! it unannounced).
//!
//! # Message IDs and Sender-IDs are never reused
//!
//! The host saves a group's state before anything it produced leaves the
//! GCKS (before a registration response is answered and before a queued
//! GSA_REKEY is handed out), so a crash cannot lose the record of a
//! Message ID or Sender-ID that went out. Two cases remain: a save that
//! failed while the GCKS kept serving (disk full: the host logs it and
//! sends anyway, as a silent group is worse), and storage that lost a
//! write it had acknowledged. For these a restore skips ahead:
//!
//! - the current Rekey SA's next Message ID moves up by
//!   [`MESSAGE_ID_RESERVE`]: a reused ID would be dropped as a replay by
//!   every GM that saw the first one, losing the rekey. A gap is what a GM
//!   takes for a lost message (§2.4.1.3: IDs go up by one), after which
//!   it registers again; so the next GSA_REKEY on that Rekey SA names the
//!   first ID skipped (the saved next ID) in a SKIPPED_MESSAGE_IDS
//!   notification, and a GM that took every message before it sees no
//!   gap. The mark is saved until that message is sent: a second restart
//!   before it keeps the first skipped ID. Later joiners learn the new
//!   value from GSA_INITIAL_MESSAGE_ID. GMs of other implementations
//!   ignore the notification (an unknown status type) and may register
//!   again once. 1024 restarts use up 2^-22 of the 32-bit space;
//! - the Sender-ID counter moves up by the most Sender-IDs one
//!   registration gets (`max_sender_ids`), within the configured
//!   Sender-ID bits. A registration whose state could not be saved is
//!   refused by the host, so more is not needed, and the space may be
//!   small (8 bits). Reusing a Sender-ID would repeat counter-mode nonces.
//!
//! After a restart the first GSA_REKEY on the current Rekey SA thus has a
//! Message ID of at least 1024 even if none was sent before; §2.4.1.3's
//! "first message ... MUST use Message ID of 0" yields to never reusing
//! one, which is what the rule protects.
//!
//! The notification names where the skip began, not how long it is, so
//! GMs depend on no constant of this GCKS. It cannot hide a real loss
//! but in one case: messages that went out after a failed save, which a
//! GM then missed, fall inside the range named as skipped.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::IpAddr;

use zeroize::Zeroizing;

use super::{
    Group, Kek, Member, NEXT_SPI_DEPTH, RECENT_REKEYS, RekeySummary, SenderSa, Tek,
    reserve_rekey_spis,
};
use crate::crypto::{Rng, Secret, SkProtection, split_rekey_keymat};
use crate::gcks::{GcksError, MemberId, Millis};
use crate::lkh::{LkhTree, MemberSlot};
use crate::persist::{Dec, Enc, Opened, StateError, corrupt};
use crate::policy::{GroupConfig, KeyManagement, RekeyAuth, TekProtocol};
use crate::wire::{Codec, RekeySpi, SaRef};

/// A member as saved: ID, identity, sender, Sender-IDs, leaf.
type SavedMember = (u64, String, bool, Vec<u32>, Option<MemberSlot>);

/// Message IDs a restored Rekey SA skips (see the module documentation).
pub const MESSAGE_ID_RESERVE: u32 = 1024;

/// Members restored from a state file get IDs from here up: above every
/// IKE SA unique ID (charon's are 32-bit), so the new charon's IKE SAs
/// never collide with the old charon's members.
pub const RESTORED_MEMBER_BASE: u64 = 1 << 32;

/// The settings a group's saved keys and members depend on, each encoded
/// canonically under a name for the error message. Lifetimes, margins,
/// ATD/DTD, authorization and the Sender-ID count may change across a
/// restart; these may not: members hold SAs, keys, selectors and Sender-IDs
/// made under them, and would silently stop following the group.
fn config_identity(cfg: &GroupConfig) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut id = Vec::new();
    cfg.id.encode(&mut id);
    out.push(("id", id));
    let mut rekey = Vec::new();
    if let Some(r) = &cfg.rekey {
        rekey.extend_from_slice(r.dst.to_string().as_bytes());
        rekey.push(b'|');
        rekey.extend_from_slice(r.src.map(|s| s.to_string()).unwrap_or_default().as_bytes());
        rekey.push(b'|');
        rekey.extend_from_slice(&r.encr.0.0.to_be_bytes());
        rekey.extend_from_slice(&r.encr.1.unwrap_or(0).to_be_bytes());
        rekey.extend_from_slice(&r.integ.0.to_be_bytes());
        rekey.extend_from_slice(&r.kwa.0.to_be_bytes());
    }
    out.push(("rekey (address, source, proposal)", rekey));
    let auth = match cfg.rekey.as_ref().map(|r| &r.auth) {
        None => Vec::new(),
        Some(RekeyAuth::Implicit) => vec![0],
        Some(RekeyAuth::Signature(k)) => {
            let mut v = vec![1];
            v.extend_from_slice(k.public_key_der());
            v
        }
    };
    out.push(("rekey.auth (or its signing key)", auth));
    let km = match cfg.key_management {
        KeyManagement::Flat => vec![0],
        KeyManagement::Lkh { degree } => {
            let mut v = vec![1];
            v.extend_from_slice(&degree.to_be_bytes());
            // The tree's shape follows the member limit.
            v.extend_from_slice(&cfg.member_limit.to_be_bytes());
            v
        }
    };
    out.push(("key_management (or an LKH group's member limit)", km));
    let mut teks = Vec::new();
    for t in &cfg.teks {
        teks.push(match t.protocol {
            TekProtocol::Esp => 50,
            TekProtocol::Ah => 51,
        });
        let (encr, bits) = t.encr.map_or((0, 0), |(e, b)| (e.0, b.unwrap_or(0)));
        teks.extend_from_slice(&encr.to_be_bytes());
        teks.extend_from_slice(&bits.to_be_bytes());
        teks.extend_from_slice(&t.integ.0.to_be_bytes());
        // 0 shared, 1 single sender, 2 per sender (older files: 0 or 1)
        teks.push(if t.per_sender {
            2
        } else {
            u8::from(t.single_sender)
        });
        t.src.encode(&mut teks);
        t.dst.encode(&mut teks);
    }
    out.push(("tek (number, proposals, selectors)", teks));
    let mut sid = cfg
        .group_wide
        .sender_id_bits
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec();
    sid.push(cfg.mode as u8);
    out.push(("sender_id_bits or mode", sid));
    out
}

fn remaining(now: Millis, at: Millis) -> u64 {
    at.saturating_sub(now)
}

/// Turns saved remaining times into deadlines on the new clock.
struct Clock {
    now: Millis,
    elapsed: u64,
}

impl Clock {
    /// A deadline `rem` after the save.
    fn at(&self, rem: u64) -> Millis {
        self.now.saturating_add(rem.saturating_sub(self.elapsed))
    }

    /// An expiry: never before `now + 1`, so the timer replaces an SA that
    /// expired while the GCKS was down rather than dropping it.
    fn expiry(&self, rem: u64) -> Millis {
        self.at(rem).max(self.now.saturating_add(1))
    }
}

impl Group {
    /// Whether `id` is a member rekeyed inband (whose IKE SA matters).
    pub(in crate::gcks) fn has_inband_member(&self, id: MemberId) -> bool {
        self.inband.contains(&id)
    }

    pub(in crate::gcks) fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The group's state body (see `crate::persist` for the envelope).
    pub(in crate::gcks) fn save_state(&self, now: Millis, wall_ms: u64) -> Zeroizing<Vec<u8>> {
        let mut e = Enc::with_capacity(
            4096 + self.members.len() * 64 + self.lkh.as_ref().map_or(0, LkhTree::heap_bytes),
        );
        e.u64(wall_ms);
        let identity = config_identity(&self.cfg);
        e.count(identity.len());
        for (name, value) in &identity {
            e.str(name);
            e.bytes(value);
        }
        for kek in [&self.kek, &self.kek_next] {
            e.opt(kek.as_ref(), |e, k| {
                e.raw(&k.spi.0);
                e.bytes(k.keymat.expose());
                e.u64(remaining(now, k.expires));
                e.u32(k.next_message_id);
                e.raw(&k.next_spis[0].0);
                e.opt(k.skipped_from, |e, f| e.u32(f));
                e.count(k.next_spis.len() - 1);
                for s in &k.next_spis[1..] {
                    e.raw(&s.0);
                }
            });
        }
        e.count(self.teks.len());
        for t in &self.teks {
            e.u16(t.policy as u16);
            e.u32(t.spi);
            e.bytes(t.keymat.expose());
            e.u64(remaining(now, t.expires));
            e.u32(t.next_spi);
            e.opt(t.retire_at, |e, r| e.u64(remaining(now, r)));
            e.opt(t.sender.as_ref(), |e, s| {
                e.str(&s.identity);
                match s.addr {
                    IpAddr::V4(a) => e.bytes(&a.octets()),
                    IpAddr::V6(a) => e.bytes(&a.octets()),
                }
            });
        }
        e.opt(self.lkh.as_ref(), |e, t| t.encode_state(e));
        let mut members: Vec<(&MemberId, &Member)> =
            self.members.iter().filter(|(_, m)| !m.inband).collect();
        members.sort_by_key(|(id, _)| **id);
        e.count(members.len());
        for (id, m) in members {
            e.u64(id.0);
            e.str(&m.identity);
            e.bool(m.sender);
            e.count(m.sender_ids.len());
            for s in &m.sender_ids {
                e.u32(*s);
            }
            e.opt(m.slot, |e, s| {
                let (leaf, key) = s.parts();
                e.u32(leaf);
                e.u32(key);
            });
        }
        e.u32(self.next_sender_id);
        e.opt(self.join_flush_at, |e, at| e.u64(remaining(now, at)));
        e.count(self.recent_rekeys.len());
        for r in &self.recent_rekeys {
            e.u32(r.message_id);
            e.u64(r.wrapped_keys as u64);
            e.u64(r.bytes as u64);
        }
        e.count(self.excluded.len());
        for x in &self.excluded {
            e.str(x);
        }
        e.count(self.unannounced.len());
        for spi in &self.unannounced {
            e.u32(*spi);
        }
        e.finish()
    }

    /// The group `save_state` wrote, served under `cfg` from `now` on.
    /// `used` are the SPIs of the other groups; `rng` only fills the
    /// fields that are replaced.
    pub(in crate::gcks) fn restore_state(
        now: Millis,
        wall_ms: u64,
        cfg: GroupConfig,
        state: Opened<'_>,
        used: &[SaRef],
        rng: &mut dyn Rng,
    ) -> Result<Self, StateError> {
        let mut d = Dec::new(state.body);
        let saved_wall = d.u64("save time")?;
        let clock = Clock {
            now,
            elapsed: wall_ms.saturating_sub(saved_wall),
        };
        let n = d.count(8, "configuration")?;
        let mut saved = Vec::with_capacity(n);
        for _ in 0..n {
            saved.push((d.string("setting name")?, d.bytes("setting")?.to_vec()));
        }
        let current = config_identity(&cfg);
        if saved.len() != current.len() {
            return Err(corrupt("configuration identity of another layout"));
        }
        for ((name, value), (cur_name, cur_value)) in saved.iter().zip(&current) {
            if name != cur_name {
                return Err(corrupt("configuration identity of another layout"));
            }
            if value != cur_value {
                return Err(StateError::GroupMismatch {
                    what: (*cur_name).to_owned(),
                });
            }
        }

        let mut g =
            Group::new(now, cfg, used, rng).map_err(|e| StateError::Group(e.to_string()))?;
        let v = state.version;
        let kek = d.opt("Rekey SA", |d| g.decode_kek(d, &clock, v))?;
        let kek_next = d.opt("joiners' Rekey SA", |d| g.decode_kek(d, &clock, v))?;
        if kek.is_some() != g.cfg.rekey.is_some() {
            return Err(corrupt(
                "Rekey SA present without a rekey policy or missing",
            ));
        }
        g.kek = kek.map(|mut k| {
            // Named in the next GSA_REKEY; kept from an earlier restart
            // that sent nothing since.
            k.skipped_from.get_or_insert(k.next_message_id);
            k.next_message_id = k.next_message_id.saturating_add(MESSAGE_ID_RESERVE);
            k
        });
        g.kek_next = kek_next;
        if v < 2 {
            g.reserve_next_spis(used, rng)?;
        }
        let n = d.count(23, "Data-Security SAs")?;
        g.teks = (0..n)
            .map(|_| g.decode_tek(&mut d, &clock, v))
            .collect::<Result<_, _>>()?;
        g.lkh = match (
            d.opt("key tree", |d| {
                let (degree, kwa) = match (g.cfg.key_management, &g.cfg.rekey) {
                    (KeyManagement::Lkh { degree }, Some(r)) => (degree, r.kwa_alg()),
                    _ => return Err(corrupt("key tree in a group without LKH")),
                };
                LkhTree::decode_state(d, degree, g.cfg.member_limit, kwa)
            })?,
            &g.lkh,
        ) {
            (Some(t), Some(_)) => Some(t),
            (None, None) => None,
            _ => return Err(corrupt("key tree missing")),
        };
        let n = d.count(18, "members")?;
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            let id = d.u64("member ID")?;
            let identity = d.string("member identity")?;
            let sender = d.bool("member role")?;
            let sids = d.count(4, "Sender-IDs")?;
            let sender_ids = (0..sids)
                .map(|_| d.u32("Sender-ID"))
                .collect::<Result<Vec<_>, _>>()?;
            let slot = d.opt("member leaf", |d| {
                Ok(MemberSlot::from_parts(
                    d.u32("leaf")?,
                    d.u32("leaf Key ID")?,
                ))
            })?;
            members.push((id, identity, sender, sender_ids, slot));
        }
        g.next_sender_id = d.u32("Sender-ID counter")?;
        g.join_flush_at = d.opt("join flush", |d| Ok(clock.at(d.u64("join flush")?)))?;
        let n = d.count(20, "recent rekeys")?;
        if n > RECENT_REKEYS {
            return Err(corrupt("more recent rekeys than are kept"));
        }
        g.recent_rekeys = (0..n)
            .map(|_| {
                Ok(RekeySummary {
                    message_id: d.u32("rekey message ID")?,
                    wrapped_keys: usize::try_from(d.u64("rekey keys")?)
                        .map_err(|_| corrupt("rekey keys"))?,
                    bytes: usize::try_from(d.u64("rekey size")?)
                        .map_err(|_| corrupt("rekey size"))?,
                })
            })
            .collect::<Result<VecDeque<_>, StateError>>()?;
        let n = d.count(4, "excluded identities")?;
        g.excluded = (0..n)
            .map(|_| d.string("excluded identity"))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if v >= 2 {
            let n = d.count(4, "unannounced sender SAs")?;
            g.unannounced = (0..n)
                .map(|_| d.u32("unannounced sender SA"))
                .collect::<Result<_, _>>()?;
        }
        d.end()?;

        g.restore_members(members)?;
        g.reserve_sender_ids();
        g.check_spis(used)?;
        Ok(g)
    }

    /// A format 1 state reserved one next Rekey SA SPI: reserve the rest,
    /// the current Rekey SA's announcing the joiners' one's.
    fn reserve_next_spis(&mut self, used: &[SaRef], rng: &mut dyn Rng) -> Result<(), StateError> {
        let mut taken = used.to_vec();
        taken.extend(self.spis());
        let fail = |e: GcksError| StateError::Group(e.to_string());
        if let Some(next) = &mut self.kek_next {
            reserve_rekey_spis(&mut next.next_spis, &mut taken, rng).map_err(fail)?;
        }
        if let Some(kek) = &mut self.kek {
            match &self.kek_next {
                Some(next) if kek.next_spis[0] == next.spi => {
                    kek.next_spis.truncate(1);
                    kek.next_spis.extend(&next.next_spis[..NEXT_SPI_DEPTH - 1]);
                }
                _ => reserve_rekey_spis(&mut kek.next_spis, &mut taken, rng).map_err(fail)?,
            }
        }
        Ok(())
    }

    fn decode_kek(&self, d: &mut Dec<'_>, clock: &Clock, version: u16) -> Result<Kek, StateError> {
        let r = self
            .cfg
            .rekey
            .as_ref()
            .ok_or_else(|| corrupt("Rekey SA in a group without one"))?;
        let spi = RekeySpi(d.array("Rekey SA SPI")?);
        let keymat = Secret::from_slice(d.bytes("Rekey SA keys")?);
        let expires = clock.expiry(d.u64("Rekey SA expiry")?);
        let next_message_id = d.u32("next Message ID")?;
        let next_spi = RekeySpi(d.array("next Rekey SA SPI")?);
        let mut next_spis = vec![next_spi];
        let skipped_from = if version >= 2 {
            let skipped = d.opt("skipped Message IDs", |d| d.u32("first skipped Message ID"))?;
            let n = d.count(16, "reserved Rekey SA SPIs")?;
            for _ in 0..n {
                next_spis.push(RekeySpi(d.array("reserved Rekey SA SPI")?));
            }
            skipped
        } else {
            None
        };
        if skipped_from.is_some_and(|f| f > next_message_id) {
            return Err(corrupt("skipped Message IDs above the next one"));
        }
        let (encr, integ, kwa) = (r.encr_alg(), r.integ_alg(), r.kwa_alg());
        let keys = split_rekey_keymat(encr, integ, kwa, &keymat)
            .map_err(|e| corrupt(format!("Rekey SA keys: {e}")))?;
        let sk = SkProtection::new(encr, integ, &keys.gsk_e, &keys.gsk_a)
            .map_err(|e| corrupt(format!("Rekey SA keys: {e}")))?;
        if spi.0 == [0; 16] || next_spis.iter().any(|s| s.0 == [0; 16]) {
            return Err(corrupt("zero Rekey SA SPI"));
        }
        Ok(Kek {
            spi,
            keymat,
            sk,
            gsk_w: keys.gsk_w,
            expires,
            next_message_id,
            next_spis,
            skipped_from,
        })
    }

    fn decode_tek(&self, d: &mut Dec<'_>, clock: &Clock, version: u16) -> Result<Tek, StateError> {
        let policy = usize::from(d.u16("Data-Security SA policy")?);
        let spi = d.u32("Data-Security SA SPI")?;
        let keymat = Secret::from_slice(d.bytes("Data-Security SA keys")?);
        let expires = clock.expiry(d.u64("Data-Security SA expiry")?);
        let next_spi = d.u32("next Data-Security SA SPI")?;
        let retire_at = d.opt("retirement", |d| Ok(clock.at(d.u64("retirement")?)))?;
        let sender = if version >= 2 {
            d.opt("sender of the SA", |d| {
                let identity = d.string("sender identity")?;
                let addr = match d.bytes("sender address")? {
                    b if b.len() == 4 => IpAddr::from(<[u8; 4]>::try_from(b).expect("4")),
                    b if b.len() == 16 => IpAddr::from(<[u8; 16]>::try_from(b).expect("16")),
                    _ => return Err(corrupt("sender address of another length")),
                };
                Ok(SenderSa { identity, addr })
            })?
        } else {
            None
        };
        let p = self
            .cfg
            .teks
            .get(policy)
            .ok_or_else(|| corrupt("Data-Security SA of no configured policy"))?;
        if keymat.len() != p.keymat_len() {
            return Err(corrupt("Data-Security SA keys of the wrong length"));
        }
        if spi <= 255 || next_spi <= 255 {
            return Err(corrupt("reserved Data-Security SA SPI"));
        }
        if sender.is_some() != p.per_sender {
            return Err(corrupt(
                "a sender where the policy has none, or none where it has",
            ));
        }
        Ok(Tek {
            policy,
            spi,
            keymat,
            expires,
            next_spi,
            retire_at,
            sender,
        })
    }

    /// Adds the saved members under IDs the new host's IKE SAs cannot
    /// take (see [`RESTORED_MEMBER_BASE`]).
    fn restore_members(&mut self, members: Vec<SavedMember>) -> Result<(), StateError> {
        self.members.clear();
        self.by_identity.clear();
        self.inband.clear();
        let mut next = members
            .iter()
            .map(|m| m.0)
            .filter(|&id| id > RESTORED_MEMBER_BASE)
            .max()
            .unwrap_or(RESTORED_MEMBER_BASE);
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        let mut slots = HashSet::new();
        for (id, identity, sender, sender_ids, slot) in members {
            let id = if id > RESTORED_MEMBER_BASE {
                id
            } else {
                next += 1;
                next
            };
            if !ids.insert(id) || !names.insert(identity.clone()) {
                return Err(corrupt("a member saved twice"));
            }
            if sender_ids.iter().any(|&s| s >= self.next_sender_id) {
                return Err(corrupt("Sender-ID beyond the counter"));
            }
            match (slot, &self.lkh) {
                (Some(s), Some(tree)) if tree.holds(s) && slots.insert(s.parts()) => {}
                (None, None) => {}
                _ => return Err(corrupt("member leaf not in the key tree")),
            }
            self.add_member(
                MemberId(id),
                Member {
                    identity,
                    inband: false,
                    sender,
                    sender_ids,
                    slot,
                    ike_kwk: None,
                },
            );
        }
        Ok(())
    }

    /// Skips the Sender-IDs one registration could have taken (see the
    /// module documentation), within the configured bits.
    fn reserve_sender_ids(&mut self) {
        let bits = self.cfg.group_wide.sender_id_bits.unwrap_or(32);
        let limit = if bits >= 32 {
            u64::from(u32::MAX)
        } else {
            1u64 << bits
        };
        let next = u64::from(self.next_sender_id) + u64::from(self.cfg.max_sender_ids);
        self.next_sender_id = next.min(limit) as u32;
    }

    /// Refuses SPIs another group holds.
    fn check_spis(&self, used: &[SaRef]) -> Result<(), StateError> {
        match self.spis().into_iter().find(|s| used.contains(s)) {
            Some(s) => Err(StateError::Group(format!(
                "SPI {s:?} is taken by another group"
            ))),
            None => Ok(()),
        }
    }
}
