//! The GCKS (group controller / key server) as a sans-I/O engine.
//!
//! The host (charon's plugin, or a test) feeds it registrations, operator
//! commands and the current time in milliseconds; it answers registrations
//! directly and queues [`GcksAction`]s: GSA_REKEY datagrams to multicast,
//! GSA_INBAND_REKEY payloads for a member's IKE SA, IKE SAs to close.
//! Randomness is injected, so a whole group's life replays in a test.

mod group;
mod sag;

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use log::{debug, info, warn};

use crate::crypto::Rng;
use crate::iana::{ExchangeType, NotifyType};
pub use crate::ike_sa::{IkeKeys, Millis};
use crate::persist::{self, StateError};
use crate::policy::{GroupConfig, PolicyError};
use crate::wire::{GroupId, Notify, Payload, SaRef};

use group::Group;
pub use group::{GroupStatus, MESSAGE_ID_RESERVE, RESTORED_MEMBER_BASE, RekeySummary};

/// The host's handle for a member: one per IKE SA (charon's unique ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

/// A GSA_AUTH or GSA_REGISTRATION request, after charon authenticated the
/// peer (for GSA_AUTH) and decrypted the message.
#[derive(Clone, Copy, Debug)]
pub struct Registration<'a> {
    pub member: MemberId,
    /// The identities charon authenticated, as it prints them: one per
    /// authentication round (RFC 4739), the EAP identity of an EAP round,
    /// never an identity the peer merely claimed. Each is a proof, so the
    /// group admits the member if any of them is allowed (`members`,
    /// `senders`) and refuses it if any is excluded; the first allowed one
    /// names the member. Empty: nothing authenticated, refused.
    pub identities: &'a [&'a str],
    /// The peer's address (its IKE SA's), which a per-sender SA's source
    /// selector is narrowed to; None where the host does not know it.
    pub peer: Option<IpAddr>,
    pub exchange: ExchangeType,
    /// The request's payloads inside SK: IDg, SAg, notifications.
    pub payloads: &'a [Payload],
    pub ike: IkeKeys<'a>,
}

impl Registration<'_> {
    /// The identity to name the peer by in a log line.
    pub fn who(&self) -> &str {
        self.identities
            .first()
            .copied()
            .unwrap_or("(unauthenticated)")
    }
}

/// Something the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcksAction {
    /// Send a GSA_REKEY datagram (already sealed) to the group.
    Multicast {
        group: GroupId,
        dst: SocketAddr,
        src: Option<SocketAddr>,
        datagram: Vec<u8>,
    },
    /// Run a GSA_INBAND_REKEY exchange with these payloads on the member's
    /// IKE SA.
    InbandRekey {
        member: MemberId,
        payloads: Vec<Payload>,
    },
    /// The member's IKE SA is no longer needed (§2.3.4: the GCKS closes it).
    CloseIkeSa { member: MemberId },
}

/// Why an operator command failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcksError {
    Policy(PolicyError),
    UnknownGroup,
    DuplicateGroup,
    UnknownMember,
    /// A multicast member of a flat-keyed group cannot be excluded: every
    /// key it would need to lose is shared with the whole group.
    ExclusionNeedsLkh,
    /// The group has no Rekey SA (it is rekeyed only inband).
    NoRekeySa,
    /// Key generation or wrapping failed.
    Crypto(String),
}

impl core::fmt::Display for GcksError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Policy(e) => write!(f, "group policy: {e}"),
            Self::UnknownGroup => f.write_str("no such group"),
            Self::DuplicateGroup => f.write_str("group already configured"),
            Self::UnknownMember => f.write_str("no such member"),
            Self::ExclusionNeedsLkh => {
                f.write_str("excluding a multicast member needs LKH key management")
            }
            Self::NoRekeySa => f.write_str("the group has no Rekey SA (inband rekeys only)"),
            Self::Crypto(e) => write!(f, "cryptography: {e}"),
        }
    }
}

impl std::error::Error for GcksError {}

impl From<crate::crypto::CryptoError> for GcksError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::Crypto(e.to_string())
    }
}

/// The key server of any number of groups.
pub struct Gcks {
    groups: Vec<Group>,
    rng: Box<dyn Rng + Send>,
    actions: VecDeque<GcksAction>,
    /// Groups changed since their state was last saved.
    dirty: HashSet<GroupId>,
}

impl core::fmt::Debug for Gcks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gcks")
            .field("groups", &self.groups.len())
            .field("actions", &self.actions.len())
            .finish()
    }
}

impl Gcks {
    pub fn new(rng: Box<dyn Rng + Send>) -> Self {
        Self {
            groups: Vec::new(),
            rng,
            actions: VecDeque::new(),
            dirty: HashSet::new(),
        }
    }

    /// Starts serving a group: creates its Rekey SA and Data-Security SAs.
    pub fn add_group(&mut self, now: Millis, cfg: GroupConfig) -> Result<(), GcksError> {
        cfg.validate().map_err(GcksError::Policy)?;
        if self.group_index(&cfg.id).is_some() {
            return Err(GcksError::DuplicateGroup);
        }
        let used = self.used_spis();
        let group = Group::new(now, cfg, &used, &mut *self.rng)?;
        info!("group {} ready", group.name());
        self.dirty.insert(group.id().clone());
        self.groups.push(group);
        Ok(())
    }

    /// Stops serving a group; members keep their SAs until they expire.
    pub fn remove_group(&mut self, id: &GroupId) -> Result<(), GcksError> {
        let i = self.group_index(id).ok_or(GcksError::UnknownGroup)?;
        self.groups.remove(i);
        self.dirty.remove(id);
        Ok(())
    }

    /// Answers a registration request: the response's payloads inside SK
    /// (GSA, KD and notifications, or one error notification).
    pub fn handle_registration(&mut self, now: Millis, req: &Registration<'_>) -> Vec<Payload> {
        self.answer_registration(now, req).0
    }

    /// As `handle_registration`, with the reason of a refusal for the
    /// operator's log (None when the member was not refused). The engine
    /// logs refusals only at debug level: the host logs the one line.
    pub fn answer_registration(
        &mut self,
        now: Millis,
        req: &Registration<'_>,
    ) -> (Vec<Payload>, Option<String>) {
        let refused = |n: NotifyType, why: String| {
            debug!("registration of {} refused with {n}: {why}", req.who());
            (vec![Payload::Notify(Notify::plain(n))], Some(why))
        };
        let idg = req.payloads.iter().find_map(|p| match p {
            Payload::Idg(g) => Some(g),
            _ => None,
        });
        let Some(idg) = idg else {
            return refused(NotifyType::INVALID_SYNTAX, "no IDg payload".into());
        };
        let Some(i) = self.group_index(idg) else {
            return refused(
                NotifyType::INVALID_GROUP_ID,
                format!("no group {}", String::from_utf8_lossy(&idg.data)),
            );
        };
        let used = self.used_spis();
        self.dirty.insert(idg.clone());
        let group = &mut self.groups[i];
        match group.register(now, req, &used, &mut *self.rng, &mut self.actions) {
            Ok(payloads) => (payloads, None),
            Err(r) => refused(r.notify, r.why),
        }
    }

    /// Excludes a member with forward access control (§3.2.1); its identity
    /// is refused from then on, until `readmit`.
    pub fn exclude(
        &mut self,
        now: Millis,
        group: &GroupId,
        member: MemberId,
    ) -> Result<(), GcksError> {
        let i = self.group_index(group).ok_or(GcksError::UnknownGroup)?;
        let used = self.used_spis();
        self.dirty.insert(group.clone());
        self.groups[i].exclude(now, member, &used, &mut *self.rng, &mut self.actions)
    }

    /// Lets an identity excluded from a group register again.
    pub fn readmit(&mut self, group: &GroupId, identity: &str) -> Result<(), GcksError> {
        let i = self.group_index(group).ok_or(GcksError::UnknownGroup)?;
        if self.groups[i].readmit(identity) {
            self.dirty.insert(group.clone());
            Ok(())
        } else {
            Err(GcksError::UnknownMember)
        }
    }

    /// Rekeys a group's Data-Security SAs now (operator command).
    pub fn rekey(&mut self, now: Millis, group: &GroupId) -> Result<(), GcksError> {
        let i = self.group_index(group).ok_or(GcksError::UnknownGroup)?;
        let used = self.used_spis();
        self.dirty.insert(group.clone());
        self.groups[i].rekey_teks(now, &used, &mut *self.rng, &mut self.actions)
    }

    /// Replaces a group's Rekey SA now (operator command). Fails with
    /// `NoRekeySa` for a group rekeyed only inband.
    pub fn rekey_kek(&mut self, now: Millis, group: &GroupId) -> Result<(), GcksError> {
        let i = self.group_index(group).ok_or(GcksError::UnknownGroup)?;
        let used = self.used_spis();
        self.dirty.insert(group.clone());
        self.groups[i].rekey_kek(now, &used, &mut *self.rng, &mut self.actions)
    }

    /// A member's IKE SA went away. Inband members lose their channel and
    /// leave the group; multicast members stay.
    pub fn ike_sa_down(&mut self, now: Millis, member: MemberId) {
        for i in 0..self.groups.len() {
            let used = self.used_spis();
            if self.groups[i].has_inband_member(member) {
                self.dirty.insert(self.groups[i].id().clone());
            }
            self.groups[i].ike_sa_down(now, member, &used, &mut *self.rng, &mut self.actions);
        }
    }

    /// A member's IKE SA was rekeyed (RFC 7296 §2.18): the member goes on
    /// as `new`, and inband rekeys wrap under the new IKE SA's GSK_w
    /// (§3.1.1: every IKE SA has its own), derived from `ike`, the SK_d in
    /// force on it. Nothing happens for an ID that is no member.
    pub fn ike_sa_rekeyed(
        &mut self,
        old: MemberId,
        new: MemberId,
        ike: IkeKeys<'_>,
    ) -> Result<(), GcksError> {
        let gsk_w = ike.default_kwk()?;
        for g in &mut self.groups {
            if g.member_rekeyed(old, new, (&gsk_w, ike.kwa)) {
                self.dirty.insert(g.id().clone());
            }
        }
        Ok(())
    }

    /// The earliest time `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.groups.iter().filter_map(Group::next_deadline).min()
    }

    /// Runs the rekeys, retransmissions and retirements that are due.
    pub fn handle_timeout(&mut self, now: Millis) {
        for i in 0..self.groups.len() {
            let used = self.used_spis();
            if self.groups[i].next_deadline().is_some_and(|t| t <= now) {
                self.dirty.insert(self.groups[i].id().clone());
            }
            if let Err(e) = self.groups[i].on_timer(now, &used, &mut *self.rng, &mut self.actions) {
                warn!("group {}: timer work failed: {e}", self.groups[i].name());
            }
        }
    }

    /// The next action for the host.
    pub fn poll_action(&mut self) -> Option<GcksAction> {
        self.actions.pop_front()
    }

    /// What an operator sees of each group.
    pub fn status(&self, now: Millis) -> Vec<GroupStatus> {
        self.groups.iter().map(|g| g.status(now)).collect()
    }

    // ---- persistence (crate::persist; times and reservations: group/state.rs) ----

    /// Starts serving a group from the state `save_group` wrote (a whole
    /// state file), so its members keep following its rekeys. `wall_ms` is
    /// the wall clock (milliseconds since the Unix epoch) next to the
    /// monotonic `now`: deadlines lose the time the GCKS was down. Refused
    /// without any change if the state is corrupt, from another format
    /// version, or written for a group configured differently.
    pub fn restore_group(
        &mut self,
        now: Millis,
        wall_ms: u64,
        cfg: GroupConfig,
        state: &[u8],
    ) -> Result<(), StateError> {
        cfg.validate()
            .map_err(|e| StateError::Group(GcksError::Policy(e).to_string()))?;
        if self.group_index(&cfg.id).is_some() {
            return Err(StateError::Group(GcksError::DuplicateGroup.to_string()));
        }
        let opened = persist::open(state)?;
        let used = self.used_spis();
        let group = Group::restore_state(now, wall_ms, cfg, opened, &used, &mut *self.rng)?;
        info!(
            "group {} restored: {} member(s), next Message ID {}",
            group.name(),
            group.member_count(),
            group
                .status(now)
                .next_message_id
                .map_or_else(|| "-".to_owned(), |m| m.to_string())
        );
        // Saved again at the next chance, with its new reservations.
        self.dirty.insert(group.id().clone());
        self.groups.push(group);
        Ok(())
    }

    /// A group's whole state as a state file's contents (keys included:
    /// store it like a private key). `wall_ms` as for `restore_group`.
    pub fn save_group(
        &self,
        id: &GroupId,
        now: Millis,
        wall_ms: u64,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, GcksError> {
        let i = self.group_index(id).ok_or(GcksError::UnknownGroup)?;
        let body = self.groups[i].save_state(now, wall_ms);
        persist::seal(&body).map_err(|e| GcksError::Crypto(e.to_string()))
    }

    /// Groups changed since `mark_saved`: their state must be saved before
    /// anything they queued (or a registration answer) leaves the host.
    pub fn dirty_groups(&self) -> Vec<GroupId> {
        let mut v: Vec<GroupId> = self.dirty.iter().cloned().collect();
        v.sort_by(|a, b| a.data.cmp(&b.data));
        v
    }

    /// The host stored the group's state from `save_group`.
    pub fn mark_saved(&mut self, id: &GroupId) {
        self.dirty.remove(id);
    }

    fn group_index(&self, id: &GroupId) -> Option<usize> {
        self.groups.iter().position(|g| g.id() == id)
    }

    /// Every SPI in use by any group, so new ones never collide.
    fn used_spis(&self) -> Vec<SaRef> {
        self.groups.iter().flat_map(Group::spis).collect()
    }
}
