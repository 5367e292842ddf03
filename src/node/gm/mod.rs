//! The GM node: every membership of one charon.
//!
//! Inputs are charon's events, keyed by IKE SA unique id and connection
//! name: an IKE_SA_INIT sent to register, the GCKS's GSA_AUTH answer, the
//! IKE SA up, down, rekeyed or destroyed, GSA_REGISTRATION and
//! GSA_INBAND_REKEY messages, GSA_REKEY datagrams, a settings reload, the
//! time. Outputs are [`GmNodeAction`]s: SAs and drop policies for the
//! kernel, rekey sockets, connections to initiate, exchanges to run on an
//! IKE SA, IKE SAs to close.

mod membership;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use log::{debug, info};

pub use self::membership::Selectors;
use self::membership::{Answer, Leave, Membership};
use super::IkeSaId;
use crate::config::ConfigError;
use crate::crypto::Rng;
use crate::gm::{GmError, GmStatus, SaDirection, TekInstall};
use crate::iana::{ExchangeType, NotifyType};
use crate::ike_sa::{IkeKeys, Millis};
use crate::wire::{Payload, RekeySpi, SaRef};

/// A membership, for the life of one configuration of it: a reload that
/// changes its settings makes a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MembershipId(pub u64);

/// A membership as configured (`charon.plugins.gikev2.memberships.<name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipDef {
    pub name: String,
    /// The connection (peer config) that registers it.
    pub connection: String,
    /// Its other settings, keys relative to its section.
    pub settings: Vec<(String, String)>,
}

impl MembershipDef {
    /// Same connection and settings, in any order.
    fn same_as(&self, other: &Self) -> bool {
        let sorted = |d: &Self| {
            let mut s = d.settings.clone();
            s.sort();
            s
        };
        self.connection == other.connection && sorted(self) == sorted(other)
    }
}

/// A membership whose settings are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefError {
    pub name: String,
    pub error: ConfigError,
}

/// Something the plugin does for the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GmNodeAction {
    /// Install a Data-Security SA and its policy; an outbound SA leaves
    /// from `local`.
    Install {
        membership: MembershipId,
        tek: TekInstall,
        local: Option<IpAddr>,
    },
    /// Remove an SA and its policy.
    Delete {
        membership: MembershipId,
        sa: SaRef,
        direction: SaDirection,
    },
    /// A fallback policy dropping traffic with these selectors, below the
    /// SAs' policies (fail_mode = closed).
    AddDrop(Selectors),
    RemoveDrop(Selectors),
    /// Receive GSA_REKEY on `dst` (joined on the interface of `local`) and
    /// hand each datagram to [`GmNode::rekey_datagram`].
    ListenRekey {
        membership: MembershipId,
        spi: RekeySpi,
        dst: SocketAddr,
        local: Option<IpAddr>,
    },
    StopRekey {
        membership: MembershipId,
        spi: RekeySpi,
    },
    /// Initiate the connection: IKE_SA_INIT, then GSA_AUTH. The plugin
    /// reports a connection charon does not know with
    /// [`GmNode::connection_unknown`].
    Initiate {
        connection: String,
    },
    /// Run a GSA_REGISTRATION for the membership on the IKE SA
    /// ([`GmNode::registration_request`], then
    /// [`GmNode::registration_response`]).
    Register {
        membership: MembershipId,
        ike_sa: IkeSaId,
    },
    /// Run the GSA_REGISTRATION that leaves the group with `why`
    /// ([`GmNode::leave_request`], then [`GmNode::leave_response`]).
    Leave {
        membership: MembershipId,
        ike_sa: IkeSaId,
        why: NotifyType,
    },
    CloseIkeSa {
        ike_sa: IkeSaId,
    },
}

/// What a GSA_AUTH request carries for a membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRequest {
    pub payloads: Vec<Payload>,
    /// Leave INITIAL_CONTACT out: another IKE SA of ours registers with
    /// the same GCKS, which would otherwise destroy it.
    pub drop_initial_contact: bool,
}

/// What became of a GSA_REKEY datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RekeyOutcome {
    Taken,
    /// A copy of the last one taken: the GCKS retransmits.
    Retransmission,
    /// Logged with the reason.
    Dropped,
}

/// An IKE SA this charon initiated, as far as memberships care.
#[derive(Clone, Debug)]
struct IkeSa {
    id: IkeSaId,
    connection: String,
    gcks: IpAddr,
    up: bool,
    /// Established once: its loss is no failed registration.
    came_up: bool,
    /// Initiated to register: its loss before coming up is a failed
    /// registration.
    registering: bool,
}

/// What an operator sees of a membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipStatus {
    pub name: String,
    pub connection: String,
    pub ike_sa: Option<IkeSaId>,
    pub fail_closed: bool,
    pub failures: u32,
    pub engine: GmStatus,
}

pub struct GmNode {
    memberships: Vec<Membership>,
    /// Removed memberships still to leave their group.
    leaving: Vec<Membership>,
    ike_sas: Vec<IkeSa>,
    next_id: u64,
    new_rng: Box<dyn FnMut() -> Box<dyn Rng + Send> + Send>,
    actions: VecDeque<GmNodeAction>,
}

impl core::fmt::Debug for GmNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GmNode")
            .field(
                "memberships",
                &self
                    .memberships
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>(),
            )
            .field(
                "leaving",
                &self.leaving.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .field("ike_sas", &self.ike_sas)
            .finish()
    }
}

impl GmNode {
    /// A node with the configured memberships; `new_rng` gives each
    /// membership's engine its randomness. A membership whose settings
    /// are refused is left out and named in the errors.
    pub fn new(
        defs: Vec<MembershipDef>,
        new_rng: Box<dyn FnMut() -> Box<dyn Rng + Send> + Send>,
    ) -> (Self, Vec<DefError>) {
        let mut node = Self {
            memberships: Vec::new(),
            leaving: Vec::new(),
            ike_sas: Vec::new(),
            next_id: 1,
            new_rng,
            actions: VecDeque::new(),
        };
        let mut errors = Vec::new();
        for def in defs {
            match node.create(def) {
                Ok(m) => {
                    info!(
                        "membership '{}' registers with connection '{}'",
                        m.name(),
                        m.connection()
                    );
                    node.memberships.push(m);
                }
                Err(e) => errors.push(e),
            }
        }
        (node, errors)
    }

    fn create(&mut self, def: MembershipDef) -> Result<Membership, DefError> {
        let id = MembershipId(self.next_id);
        self.next_id += 1;
        let name = def.name.clone();
        let rng = (self.new_rng)();
        Membership::new(id, def, rng).map_err(|error| DefError { name, error })
    }

    pub fn poll_action(&mut self) -> Option<GmNodeAction> {
        self.actions.pop_front()
    }

    /// Configured memberships.
    pub fn len(&self) -> usize {
        self.memberships.len()
    }

    pub fn is_empty(&self) -> bool {
        self.memberships.is_empty()
    }

    /// The membership of a connection an IKE SA registers: a configured
    /// one, else a removed one that has yet to leave.
    fn of_connection(&mut self, connection: &str) -> Option<&mut Membership> {
        if let Some(i) = self
            .memberships
            .iter()
            .position(|m| m.connection() == connection)
        {
            return Some(&mut self.memberships[i]);
        }
        self.leaving
            .iter_mut()
            .find(|m| m.connection() == connection && m.leave == Leave::Pending)
    }

    fn by_id(&mut self, id: MembershipId) -> Option<&mut Membership> {
        self.memberships
            .iter_mut()
            .chain(self.leaving.iter_mut())
            .find(|m| m.id == id)
    }

    fn ike_sa(&self, id: IkeSaId) -> Option<&IkeSa> {
        self.ike_sas.iter().find(|s| s.id == id)
    }

    /// An IKE SA of the connection that is up, preferring one a
    /// configured membership registered on.
    fn established(&self, connection: &str) -> Option<IkeSaId> {
        let up = || {
            self.ike_sas
                .iter()
                .filter(move |s| s.up && s.connection == connection)
        };
        up().find(|s| self.memberships.iter().any(|m| m.ike_sa == Some(s.id)))
            .or_else(|| up().next())
            .map(|s| s.id)
    }

    fn ike_name(&self, id: IkeSaId) -> String {
        match self.ike_sa(id) {
            Some(s) => format!("{}[{id}]", s.connection),
            None => format!("[{id}]"),
        }
    }

    /// charon sends the IKE_SA_INIT of an IKE SA it initiated (again,
    /// after a cookie or INVALID_KE_PAYLOAD). True if it registers a
    /// membership: the plugin enables G-IKEv2 on it (GSA_AUTH, not
    /// IKE_AUTH).
    pub fn ike_sa_init(&mut self, ike_sa: IkeSaId, connection: &str, gcks: IpAddr) -> bool {
        let Some(m) = self.of_connection(connection) else {
            return false;
        };
        info!(
            "IKE_SA {connection}[{ike_sa}] registers membership '{}', IKE_AUTH will be GSA_AUTH",
            m.name()
        );
        self.ike_sas.retain(|s| s.id != ike_sa);
        self.ike_sas.push(IkeSa {
            id: ike_sa,
            connection: connection.to_owned(),
            gcks,
            up: false,
            came_up: false,
            registering: true,
        });
        true
    }

    /// charon builds the GSA_AUTH request of an IKE SA: the payloads to
    /// add, None if it registers no membership.
    pub fn gsa_auth_request(&mut self, ike_sa: IkeSaId, connection: &str) -> Option<AuthRequest> {
        let gcks = self.ike_sa(ike_sa).map(|s| s.gcks);
        let other = self
            .ike_sas
            .iter()
            .find(|s| s.id != ike_sa && Some(s.gcks) == gcks)
            .map(|s| s.id);
        let m = self.of_connection(connection)?;
        info!("membership '{}' registers in GSA_AUTH", m.name());
        if let Some(other) = other {
            debug!("no INITIAL_CONTACT in GSA_AUTH, IKE_SA [{other}] registers too");
        }
        Some(AuthRequest {
            payloads: m.gm.registration_payloads(),
            drop_initial_contact: other.is_some(),
        })
    }

    /// The GCKS answered a GSA_AUTH: kept until charon has the IKE SA up.
    pub fn gsa_auth_response(&mut self, ike_sa: IkeSaId, connection: &str, payloads: Vec<Payload>) {
        let Some(m) = self.of_connection(connection) else {
            return;
        };
        let refused = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.is_error() => Some(n.ty),
            _ => None,
        });
        m.answer = Some(match refused {
            Some(n) => {
                info!(
                    "GCKS refused membership '{}' with {n}, nothing installed",
                    m.name()
                );
                Answer::Refused
            }
            None => Answer::Records(payloads),
        });
        m.ike_sa = Some(ike_sa);
    }

    /// An IKE SA this charon initiated is established: `local` is this
    /// host's address on it, `gcks` the peer's, `ike` its keys in force
    /// (after a PPK), None if it negotiated no Key Wrap Algorithm.
    pub fn ike_sa_up(
        &mut self,
        now: Millis,
        ike_sa: IkeSaId,
        connection: &str,
        (local, gcks): (IpAddr, IpAddr),
        ike: Option<IkeKeys<'_>>,
    ) {
        match self.ike_sas.iter_mut().find(|s| s.id == ike_sa) {
            Some(s) => {
                s.up = true;
                s.came_up = true;
            }
            None => self.ike_sas.push(IkeSa {
                id: ike_sa,
                connection: connection.to_owned(),
                gcks,
                up: true,
                came_up: true,
                registering: false,
            }),
        }
        let name = self.ike_name(ike_sa);
        let Some(m) = self.of_connection(connection) else {
            return;
        };
        if m.removed() {
            // registered only to leave: nothing to install
            m.answer = None;
            self.queue_leaves(ike_sa, connection);
            return;
        }
        if m.ike_sa != Some(ike_sa) || m.answer.is_none() {
            info!(
                "IKE_SA {name} up without GSA_AUTH response for membership '{}'",
                m.name()
            );
            self.queue_leaves(ike_sa, connection);
            return;
        }
        let answer = m.answer.take();
        m.local = Some(local);
        m.gm.set_local_address(Some(local));
        let id = m.id;
        match answer {
            Some(Answer::Refused) => {
                info!("closing IKE_SA {name} of refused membership '{}'", m.name());
                self.actions.push_back(GmNodeAction::CloseIkeSa { ike_sa });
                self.registration_failed(now, id);
            }
            Some(Answer::Records(payloads)) => {
                // exchanges on the IKE SA before anything for the kernel:
                // the GCKS closes it soon after its last answer (§2.3.4)
                if self.take_answer(now, id, ike_sa, ExchangeType::GSA_AUTH, &payloads, ike) {
                    self.register_others(ike_sa, id, local);
                }
                self.queue_leaves(ike_sa, connection);
                self.drain(id);
            }
            None => {}
        }
    }

    /// Hands a registration answer to the engine and logs the outcome; a
    /// policy the membership cannot accept is reported back to the GCKS
    /// (RFC 9838, Figure 8). True if the membership is registered.
    fn take_answer(
        &mut self,
        now: Millis,
        id: MembershipId,
        ike_sa: IkeSaId,
        exchange: ExchangeType,
        payloads: &[Payload],
        ike: Option<IkeKeys<'_>>,
    ) -> bool {
        let name = self.ike_name(ike_sa);
        let Some(m) = self.by_id(id) else {
            return false;
        };
        let Some(ike) = ike else {
            info!(
                "{exchange} response for membership '{}' unusable: IKE_SA {name} negotiated no Key Wrap Algorithm",
                m.name()
            );
            return false;
        };
        let r =
            m.gm.handle_registration_response(now, exchange, payloads, ike);
        match r {
            Ok(()) => {
                info!(
                    "membership '{}' registered on IKE_SA {name} with {exchange}",
                    m.name()
                );
                true
            }
            Err(GmError::Refused(n)) => {
                info!("GCKS refused membership '{}' with {n}", m.name());
                false
            }
            Err(GmError::Unacceptable(why)) => {
                info!(
                    "membership '{}' cannot accept the group's policy: unacceptable policy: {why}",
                    m.name()
                );
                self.actions.push_back(GmNodeAction::Leave {
                    membership: id,
                    ike_sa,
                    why: NotifyType::NO_PROPOSAL_CHOSEN,
                });
                false
            }
            Err(e) => {
                info!(
                    "{exchange} response for membership '{}' unusable: {e}",
                    m.name()
                );
                false
            }
        }
    }

    /// Further memberships of the IKE SA's connection register on it with
    /// GSA_REGISTRATION (the first registered with GSA_AUTH).
    fn register_others(&mut self, ike_sa: IkeSaId, first: MembershipId, local: IpAddr) {
        let connection = match self.memberships.iter().find(|m| m.id == first) {
            Some(m) => m.connection().to_owned(),
            None => return,
        };
        for m in &mut self.memberships {
            if m.id == first || m.connection() != connection {
                continue;
            }
            m.ike_sa = Some(ike_sa);
            m.local = Some(local);
            m.gm.set_local_address(Some(local));
            self.actions.push_back(GmNodeAction::Register {
                membership: m.id,
                ike_sa,
            });
        }
    }

    /// Removed memberships of the connection leave on the IKE SA.
    fn queue_leaves(&mut self, ike_sa: IkeSaId, connection: &str) {
        for m in &mut self.leaving {
            if m.connection() == connection && m.leave == Leave::Pending {
                m.leave = Leave::Queued;
                self.actions.push_back(GmNodeAction::Leave {
                    membership: m.id,
                    ike_sa,
                    why: NotifyType::REGISTRATION_FAILED,
                });
            }
        }
    }

    /// A registration failed: the engine retries after a backoff.
    fn registration_failed(&mut self, now: Millis, id: MembershipId) {
        let Some(m) = self.by_id(id) else {
            return;
        };
        if m.removed() {
            return;
        }
        let wait = m.gm.registration_failed(now);
        let failures = m.gm.failures();
        info!(
            "membership '{}' could not register ({failures} failed attempt{} in a row), trying again in {}s",
            m.name(),
            if failures == 1 { "" } else { "s" },
            (wait + 500) / 1000
        );
        self.drain(id);
    }

    /// An IKE SA of ours went down. Multicast members keep their SAs;
    /// an inband group has lost its channel and registers again.
    pub fn ike_sa_down(&mut self, now: Millis, ike_sa: IkeSaId) {
        let name = self.ike_name(ike_sa);
        if let Some(s) = self.ike_sas.iter_mut().find(|s| s.id == ike_sa) {
            s.up = false;
        }
        let mut again = Vec::new();
        for m in &mut self.memberships {
            if m.ike_sa == Some(ike_sa) {
                m.ike_sa = None;
                if m.gm.ike_sa_down(now) {
                    info!(
                        "membership '{}' lost IKE_SA {name}, which its inband rekeys come over, registering again",
                        m.name()
                    );
                    again.push(m.id);
                }
            }
        }
        for id in again {
            self.drain(id);
        }
    }

    /// charon rekeyed an IKE SA: memberships registered on it go on with
    /// the new one, whose SK_d their inband rekeys come under (§3.1.1).
    pub fn ike_sa_rekeyed(&mut self, old: IkeSaId, new: IkeSaId) {
        if let Some(o) = self.ike_sa(old).cloned() {
            self.ike_sas.retain(|s| s.id != new);
            self.ike_sas.push(IkeSa {
                id: new,
                registering: false,
                ..o
            });
        }
        for m in &mut self.memberships {
            if m.ike_sa == Some(old) {
                m.ike_sa = Some(new);
                info!(
                    "membership '{}' moves to IKE_SA {}[{new}], which replaces [{old}]",
                    m.name(),
                    m.def.connection
                );
            }
        }
    }

    /// charon destroys an IKE SA. One initiated to register that never
    /// came up is a failed registration.
    pub fn ike_sa_destroyed(&mut self, now: Millis, ike_sa: IkeSaId) {
        let Some(i) = self.ike_sas.iter().position(|s| s.id == ike_sa) else {
            return;
        };
        let s = self.ike_sas.remove(i);
        for m in &mut self.memberships {
            if m.ike_sa == Some(ike_sa) {
                m.ike_sa = None;
            }
        }
        if s.registering
            && !s.came_up
            && let Some(id) = self
                .memberships
                .iter()
                .find(|m| m.connection() == s.connection)
                .map(|m| m.id)
        {
            self.registration_failed(now, id);
        }
    }

    /// charon has no connection of this name: removed memberships waiting
    /// to leave on it cannot tell their GCKS; their SAs are gone already.
    pub fn connection_unknown(&mut self, connection: &str) {
        for m in &mut self.leaving {
            if m.connection() == connection && m.leave == Leave::Pending {
                info!(
                    "no IKE_SA for removed membership '{}' to leave group '{}' (connection '{connection}' not found), its SAs are removed",
                    m.name(),
                    m.group.as_deref().unwrap_or("")
                );
                m.leave = Leave::Left;
            }
        }
    }

    /// The payloads of a GSA_REGISTRATION request of the membership.
    pub fn registration_request(
        &mut self,
        id: MembershipId,
        ike_sa: IkeSaId,
    ) -> Option<Vec<Payload>> {
        let name = self.ike_name(ike_sa);
        let m = self.by_id(id)?;
        info!(
            "membership '{}' registers in GSA_REGISTRATION on IKE_SA {name}",
            m.name()
        );
        Some(m.gm.registration_payloads())
    }

    /// The answer to a membership's GSA_REGISTRATION.
    pub fn registration_response(
        &mut self,
        now: Millis,
        id: MembershipId,
        ike_sa: IkeSaId,
        payloads: &[Payload],
        ike: IkeKeys<'_>,
    ) {
        let Some(m) = self.by_id(id) else {
            return;
        };
        if m.ike_sa != Some(ike_sa) {
            info!(
                "GSA_REGISTRATION response of membership '{}' on IKE_SA [{ike_sa}], which it no longer registers on, ignored",
                m.name()
            );
            return;
        }
        self.take_answer(
            now,
            id,
            ike_sa,
            ExchangeType::GSA_REGISTRATION,
            payloads,
            Some(ike),
        );
        self.drain(id);
    }

    /// The payloads of the GSA_REGISTRATION leaving the group with `why`.
    pub fn leave_request(
        &mut self,
        id: MembershipId,
        ike_sa: IkeSaId,
        why: NotifyType,
    ) -> Option<Vec<Payload>> {
        let name = self.ike_name(ike_sa);
        let m = self.by_id(id)?;
        info!(
            "{}membership '{}' leaves group '{}' with {why} in GSA_REGISTRATION on IKE_SA {name}",
            if why == NotifyType::REGISTRATION_FAILED {
                "removed "
            } else {
                ""
            },
            m.name(),
            m.group.as_deref().unwrap_or("")
        );
        Some(m.gm.leave_payloads(why))
    }

    /// The GCKS answered a leave. A removed membership is done; one that
    /// refused a policy may register again.
    pub fn leave_response(&mut self, id: MembershipId, why: NotifyType, payloads: &[Payload]) {
        let Some(m) = self.by_id(id) else {
            return;
        };
        let group = m.group.as_deref().unwrap_or("");
        match payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.is_error() => Some(n.ty),
            _ => None,
        }) {
            Some(n) => info!(
                "GCKS answered the leave of membership '{}' with {n}",
                m.name()
            ),
            None => info!("membership '{}' left group '{group}'", m.name()),
        }
        if why == NotifyType::REGISTRATION_FAILED {
            m.leave = Leave::Left;
        }
    }

    /// A GSA_INBAND_REKEY request on an IKE SA; whether a membership took
    /// it (why not is logged).
    pub fn inband_rekey(
        &mut self,
        now: Millis,
        ike_sa: IkeSaId,
        connection: &str,
        payloads: &[Payload],
        ike: IkeKeys<'_>,
    ) -> bool {
        let name = self.ike_name(ike_sa);
        let Some(m) = self
            .memberships
            .iter_mut()
            .find(|m| m.connection() == connection)
        else {
            return false;
        };
        if m.ike_sa != Some(ike_sa) {
            info!(
                "GSA_INBAND_REKEY on IKE_SA {name}, which did not register membership '{}', ignored",
                m.name()
            );
            return false;
        }
        let r = m.gm.handle_inband_rekey(now, payloads, ike);
        match &r {
            Ok(()) => info!("membership '{}' processed GSA_INBAND_REKEY", m.name()),
            Err(e) => info!("membership '{}' dropped GSA_INBAND_REKEY: {e}", m.name()),
        }
        let id = m.id;
        self.drain(id);
        r.is_ok()
    }

    /// A datagram on one of the membership's rekey sockets.
    pub fn rekey_datagram(
        &mut self,
        now: Millis,
        id: MembershipId,
        datagram: &[u8],
    ) -> RekeyOutcome {
        let Some(m) = self.by_id(id) else {
            return RekeyOutcome::Dropped;
        };
        if m.removed() {
            return RekeyOutcome::Dropped;
        }
        let outcome = match m.gm.handle_rekey(now, datagram) {
            Ok(()) => {
                info!(
                    "membership '{}' processed GSA_REKEY ({} bytes)",
                    m.name(),
                    datagram.len()
                );
                m.note_rekey(datagram, true);
                RekeyOutcome::Taken
            }
            Err(e @ GmError::Replay { .. }) => {
                if m.note_rekey(datagram, false) {
                    debug!("membership '{}' ignored retransmitted GSA_REKEY", m.name());
                    RekeyOutcome::Retransmission
                } else {
                    // an older message replayed, or an altered copy
                    info!("membership '{}' dropped GSA_REKEY: {e}", m.name());
                    RekeyOutcome::Dropped
                }
            }
            Err(e @ GmError::UnknownRekeySa(_)) => {
                // e.g. the join flush under the Rekey SA before ours
                debug!("membership '{}' ignored GSA_REKEY: {e}", m.name());
                RekeyOutcome::Dropped
            }
            Err(e) => {
                info!("membership '{}' dropped GSA_REKEY: {e}", m.name());
                RekeyOutcome::Dropped
            }
        };
        self.drain(id);
        outcome
    }

    /// When [`GmNode::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.memberships
            .iter()
            .filter_map(|m| m.gm.poll_timeout())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        let ids: Vec<_> = self.memberships.iter().map(|m| m.id).collect();
        for id in ids {
            if let Some(m) = self.by_id(id) {
                m.gm.handle_timeout(now);
            }
            self.drain(id);
        }
    }

    fn drain(&mut self, id: MembershipId) {
        let Self {
            memberships,
            leaving,
            actions,
            ..
        } = self;
        if let Some(m) = memberships
            .iter_mut()
            .chain(leaving.iter_mut())
            .find(|m| m.id == id)
        {
            m.drain(actions);
        }
    }

    /// The operator asks a membership (by name, or by group ID) to
    /// register now: the connection to initiate, None if none matches.
    pub fn register(&mut self, name: &str) -> Option<String> {
        let m = self
            .memberships
            .iter()
            .find(|m| m.name() == name)
            .or_else(|| {
                self.memberships
                    .iter()
                    .find(|m| m.group.as_deref() == Some(name))
            })?;
        let connection = m.connection().to_owned();
        self.actions.push_back(GmNodeAction::Initiate {
            connection: connection.clone(),
        });
        Some(connection)
    }

    pub fn status(&self, now: Millis) -> Vec<MembershipStatus> {
        self.memberships
            .iter()
            .map(|m| MembershipStatus {
                name: m.name().to_owned(),
                connection: m.connection().to_owned(),
                ike_sa: m.ike_sa,
                fail_closed: m.fail_closed,
                failures: m.gm.failures(),
                engine: m.gm.status(now),
            })
            .collect()
    }

    /// The membership's engine, for the development plugin's key export
    /// and for tests.
    pub fn engine(&self, id: MembershipId) -> Option<&crate::gm::Gm> {
        self.memberships
            .iter()
            .chain(self.leaving.iter())
            .find(|m| m.id == id)
            .map(|m| &m.gm)
    }

    /// A membership's name, configured or leaving.
    pub fn name(&self, id: MembershipId) -> Option<String> {
        self.memberships
            .iter()
            .chain(self.leaving.iter())
            .find(|m| m.id == id)
            .map(|m| m.name().to_owned())
    }

    /// The configured membership of this name.
    pub fn membership(&self, name: &str) -> Option<MembershipId> {
        self.memberships
            .iter()
            .find(|m| m.name() == name)
            .map(|m| m.id)
    }

    /// Settings reloaded. An unchanged membership keeps its SAs; one whose
    /// new settings are refused keeps its old ones; a changed one is
    /// replaced and registers again; a removed one takes its SAs out of
    /// the kernel and leaves its group, unless another membership still
    /// joins it. Returns the refused settings.
    pub fn reload(&mut self, defs: Vec<MembershipDef>) -> Vec<DefError> {
        let mut errors = Vec::new();
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        let mut added = Vec::new();
        let mut changed = Vec::new();
        let mut old = std::mem::take(&mut self.memberships);
        for def in defs {
            let previous = old
                .iter()
                .position(|m| m.name() == def.name)
                .map(|i| old.remove(i));
            if let Some(p) = previous.as_ref().filter(|p| p.def.same_as(&def)) {
                debug!("membership '{}' unchanged", p.name());
                kept.push(previous.expect("just matched"));
                continue;
            }
            let name = def.name.clone();
            let connection = def.connection.clone();
            match (self.create(def), previous) {
                (Err(e), Some(p)) => {
                    info!("membership '{name}' keeps its previous configuration");
                    errors.push(e);
                    kept.push(p);
                }
                (Err(e), None) => errors.push(e),
                (Ok(m), Some(p)) => {
                    info!(
                        "membership '{name}' changed, replaced: it registers with connection '{connection}' again"
                    );
                    changed.push(m.id);
                    removed.push(p);
                    kept.push(m);
                }
                (Ok(m), None) => {
                    info!("membership '{name}' registers with connection '{connection}'");
                    added.push(m.id);
                    kept.push(m);
                }
            }
        }
        for m in old {
            info!(
                "membership '{}' no longer configured, leaving group '{}'",
                m.name(),
                m.group.as_deref().unwrap_or("")
            );
            removed.push(m);
        }
        self.memberships = kept;
        let joined = |list: &[Membership], group: &Option<String>| {
            group.is_some() && list.iter().any(|m| m.group == *group)
        };
        // forget leaves done, and those of groups joined again
        let mut still = Vec::new();
        for m in std::mem::take(&mut self.leaving) {
            if m.leave != Leave::Left && !joined(&self.memberships, &m.group) {
                still.push(m);
            }
        }
        self.leaving = still;
        // a removed membership leaves unless its group is still joined (a
        // changed one registers again instead, replacing its old record)
        for mut m in removed {
            m.shut_down(&mut self.actions);
            if joined(&self.memberships, &m.group) || joined(&self.leaving, &m.group) {
                continue;
            }
            m.leave = Leave::Pending;
            let connection = m.connection().to_owned();
            self.leaving.push(m);
            match self.established(&connection) {
                Some(ike_sa) => self.queue_leaves(ike_sa, &connection),
                None => {
                    let m = self.leaving.last().expect("just pushed");
                    info!(
                        "initiating connection '{connection}' for removed membership '{}' to leave group '{}'",
                        m.name(),
                        m.group.as_deref().unwrap_or("")
                    );
                    self.actions
                        .push_back(GmNodeAction::Initiate { connection });
                }
            }
        }
        for id in changed {
            self.register_now(id, true);
        }
        for id in added {
            self.register_now(id, false);
        }
        errors
    }

    /// A new or changed membership registers with GSA_REGISTRATION on an
    /// IKE SA of its connection that another membership registered on;
    /// otherwise a changed one initiates its connection.
    fn register_now(&mut self, id: MembershipId, changed: bool) {
        let Some((name, connection)) = self
            .by_id(id)
            .map(|m| (m.name().to_owned(), m.connection().to_owned()))
        else {
            return;
        };
        let carrier = self.ike_sas.iter().find(|s| {
            s.up && s.connection == connection
                && self
                    .memberships
                    .iter()
                    .any(|o| o.id != id && o.ike_sa == Some(s.id))
        });
        if let Some(s) = carrier {
            let ike_sa = s.id;
            let local = self
                .memberships
                .iter()
                .find(|o| o.ike_sa == Some(ike_sa))
                .and_then(|o| o.local);
            if let Some(m) = self.by_id(id) {
                m.ike_sa = Some(ike_sa);
                m.local = local;
                m.gm.set_local_address(local);
            }
            self.actions.push_back(GmNodeAction::Register {
                membership: id,
                ike_sa,
            });
        } else if changed {
            info!("membership '{name}' changed, registers again with connection '{connection}'");
            self.actions
                .push_back(GmNodeAction::Initiate { connection });
        }
    }

    /// charon stops: every membership takes its state out of the kernel.
    pub fn shut_down(&mut self) {
        for m in self.memberships.iter_mut().chain(self.leaving.iter_mut()) {
            m.shut_down(&mut self.actions);
        }
    }
}
