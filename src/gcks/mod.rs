//! The GCKS (group controller / key server) as a sans-I/O engine.
//!
//! The host (charon's plugin, or a test) feeds it registrations, operator
//! commands and the current time in milliseconds; it answers registrations
//! directly and queues [`GcksAction`]s: GSA_REKEY datagrams to multicast,
//! GSA_INBAND_REKEY payloads for a member's IKE SA, IKE SAs to close.
//! Randomness is injected, so a whole group's life replays in a test.

mod group;
mod sag;

use std::collections::VecDeque;
use std::net::SocketAddr;

use log::{info, warn};

use crate::crypto::Rng;
use crate::iana::{ExchangeType, NotifyType};
pub use crate::ike_sa::{IkeKeys, Millis};
use crate::policy::{GroupConfig, PolicyError};
use crate::wire::{GroupId, Notify, Payload, SaRef};

use group::Group;
pub use group::{GroupStatus, RekeySummary};

/// The host's handle for a member: one per IKE SA (charon's unique ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

/// A GSA_AUTH or GSA_REGISTRATION request, after charon authenticated the
/// peer (for GSA_AUTH) and decrypted the message.
#[derive(Clone, Copy, Debug)]
pub struct Registration<'a> {
    pub member: MemberId,
    /// The peer's authenticated identity as charon prints it.
    pub identity: &'a str,
    pub exchange: ExchangeType,
    /// The request's payloads inside SK: IDg, SAg, notifications.
    pub payloads: &'a [Payload],
    pub ike: IkeKeys<'a>,
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
        self.groups.push(group);
        Ok(())
    }

    /// Stops serving a group; members keep their SAs until they expire.
    pub fn remove_group(&mut self, id: &GroupId) -> Result<(), GcksError> {
        let i = self.group_index(id).ok_or(GcksError::UnknownGroup)?;
        self.groups.remove(i);
        Ok(())
    }

    /// Answers a registration request: the response's payloads inside SK
    /// (GSA, KD and notifications, or one error notification).
    pub fn handle_registration(&mut self, now: Millis, req: &Registration<'_>) -> Vec<Payload> {
        let idg = req.payloads.iter().find_map(|p| match p {
            Payload::Idg(g) => Some(g),
            _ => None,
        });
        let Some(idg) = idg else {
            warn!("registration from {} without IDg", req.identity);
            return vec![Payload::Notify(Notify::plain(NotifyType::INVALID_SYNTAX))];
        };
        let Some(i) = self.group_index(idg) else {
            info!("{} asked for unknown group {:?}", req.identity, idg);
            return vec![Payload::Notify(Notify::plain(NotifyType::INVALID_GROUP_ID))];
        };
        let used = self.used_spis();
        let group = &mut self.groups[i];
        match group.register(now, req, &used, &mut *self.rng, &mut self.actions) {
            Ok(payloads) => payloads,
            Err(notify) => {
                info!(
                    "registration of {} to {} refused: {}",
                    req.identity,
                    group.name(),
                    notify
                );
                vec![Payload::Notify(Notify::plain(notify))]
            }
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
        self.groups[i].exclude(now, member, &used, &mut *self.rng, &mut self.actions)
    }

    /// Lets an identity excluded from a group register again.
    pub fn readmit(&mut self, group: &GroupId, identity: &str) -> Result<(), GcksError> {
        let i = self.group_index(group).ok_or(GcksError::UnknownGroup)?;
        if self.groups[i].readmit(identity) {
            Ok(())
        } else {
            Err(GcksError::UnknownMember)
        }
    }

    /// Rekeys a group's Data-Security SAs now (operator command).
    pub fn rekey(&mut self, now: Millis, group: &GroupId) -> Result<(), GcksError> {
        let i = self.group_index(group).ok_or(GcksError::UnknownGroup)?;
        let used = self.used_spis();
        self.groups[i].rekey_teks(now, &used, &mut *self.rng, &mut self.actions)
    }

    /// Replaces a group's Rekey SA now (operator command). Fails with
    /// `NoRekeySa` for a group rekeyed only inband.
    pub fn rekey_kek(&mut self, now: Millis, group: &GroupId) -> Result<(), GcksError> {
        let i = self.group_index(group).ok_or(GcksError::UnknownGroup)?;
        let used = self.used_spis();
        self.groups[i].rekey_kek(now, &used, &mut *self.rng, &mut self.actions)
    }

    /// A member's IKE SA went away. Inband members lose their channel and
    /// leave the group; multicast members stay.
    pub fn ike_sa_down(&mut self, now: Millis, member: MemberId) {
        for i in 0..self.groups.len() {
            let used = self.used_spis();
            self.groups[i].ike_sa_down(now, member, &used, &mut *self.rng, &mut self.actions);
        }
    }

    /// The earliest time `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.groups.iter().filter_map(Group::next_deadline).min()
    }

    /// Runs the rekeys, retransmissions and retirements that are due.
    pub fn handle_timeout(&mut self, now: Millis) {
        for i in 0..self.groups.len() {
            let used = self.used_spis();
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

    fn group_index(&self, id: &GroupId) -> Option<usize> {
        self.groups.iter().position(|g| g.id() == id)
    }

    /// Every SPI in use by any group, so new ones never collide.
    fn used_spis(&self) -> Vec<SaRef> {
        self.groups.iter().flat_map(Group::spis).collect()
    }
}
