//! One configured membership of the GM node: its engine, the IKE SA it
//! registered on, and the kernel state its engine's actions created, so
//! that a removed membership takes all of it away and fail_mode = closed
//! keeps a drop policy under every policy the group used.

use std::collections::VecDeque;
use std::net::IpAddr;

use log::{debug, info};

use super::{GmNodeAction, MembershipDef, MembershipId};
use crate::config::{ConfigError, FailMode, membership_settings};
use crate::crypto::Rng;
use crate::gm::{Gm, GmAction, ReregisterReason, SaDirection};
use crate::node::IkeSaId;
use crate::wire::{Payload, RekeySpi, SaRef, TrafficSelector};

/// The selectors of a kernel policy: what a drop policy stands under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selectors {
    pub direction: SaDirection,
    pub src: TrafficSelector,
    pub dst: TrafficSelector,
}

impl core::fmt::Display for Selectors {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let dir = match self.direction {
            SaDirection::Inbound => "in",
            SaDirection::Outbound => "out",
        };
        write!(f, "{} === {} {dir}", self.src, self.dst)
    }
}

/// A Data-Security SA the kernel holds for a membership.
#[derive(Clone, Debug)]
struct Installed {
    sa: SaRef,
    selectors: Selectors,
}

/// The GCKS's answer to a GSA_AUTH, kept until charon has the IKE SA up
/// (the answer arrives before charon has checked the GCKS's AUTH).
pub(super) enum Answer {
    Records(Vec<Payload>),
    Refused,
}

/// Where a removed membership is in leaving its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Leave {
    /// Configured: not leaving.
    No,
    /// Removed; the leave waits for an IKE SA of its connection.
    Pending,
    /// The leave's GSA_REGISTRATION is queued on an IKE SA.
    Queued,
    /// Done: the GCKS answered, or there is no way to tell it.
    Left,
}

pub(super) struct Membership {
    pub id: MembershipId,
    pub def: MembershipDef,
    /// The `id` setting as written, to tell whether a group is still
    /// joined by another membership.
    pub group: Option<String>,
    pub gm: Gm,
    pub fail_closed: bool,
    /// The IKE SA it registered (or is registering) on.
    pub ike_sa: Option<IkeSaId>,
    /// This host's address on that IKE SA: outbound SAs leave from it,
    /// rekey sockets join on it.
    pub local: Option<IpAddr>,
    pub answer: Option<Answer>,
    installed: Vec<Installed>,
    drops: Vec<Selectors>,
    sockets: Vec<RekeySpi>,
    /// The last GSA_REKEY datagram taken: later copies of it are the
    /// GCKS's retransmissions (§2.4.1.3), not replays worth a log line.
    last_rekey: Option<Vec<u8>>,
    pub leave: Leave,
}

impl Membership {
    /// A membership from its settings; the error names the key and why.
    pub fn new(
        id: MembershipId,
        def: MembershipDef,
        rng: Box<dyn Rng + Send>,
    ) -> Result<Self, ConfigError> {
        let pairs = def.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let (cfg, fail_mode) = membership_settings(pairs)?;
        let group = def
            .settings
            .iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.clone());
        Ok(Self {
            id,
            def,
            group,
            gm: Gm::new(cfg, rng),
            fail_closed: fail_mode == FailMode::Closed,
            ike_sa: None,
            local: None,
            answer: None,
            installed: Vec::new(),
            drops: Vec::new(),
            sockets: Vec::new(),
            last_rekey: None,
            leave: Leave::No,
        })
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn connection(&self) -> &str {
        &self.def.connection
    }

    pub fn removed(&self) -> bool {
        self.leave != Leave::No
    }

    /// Whether a GSA_REKEY datagram the engine called a replay is a copy
    /// of the last one taken; remembers one it took.
    pub fn note_rekey(&mut self, datagram: &[u8], taken: bool) -> bool {
        if taken {
            self.last_rekey = Some(datagram.to_vec());
            return false;
        }
        self.last_rekey.as_deref() == Some(datagram)
    }

    /// Turns the engine's actions into the node's, keeping account of the
    /// kernel state. A removed membership's engine changes nothing more.
    pub fn drain(&mut self, out: &mut VecDeque<GmNodeAction>) {
        let mut orphans = Vec::new();
        let mut installed_any = false;
        while let Some(action) = self.gm.poll_action() {
            if self.removed() {
                continue;
            }
            match action {
                GmAction::Install(tek) => {
                    let selectors = Selectors {
                        direction: tek.direction,
                        src: tek.src,
                        dst: tek.dst,
                    };
                    self.installed
                        .retain(|i| (i.sa, i.selectors.direction) != (tek.sa, tek.direction));
                    self.installed.push(Installed {
                        sa: tek.sa,
                        selectors,
                    });
                    out.push_back(GmNodeAction::Install {
                        membership: self.id,
                        tek,
                        local: self.local,
                    });
                    if self.fail_closed && !self.drops.contains(&selectors) {
                        // under the policy, so that the group's traffic
                        // never passes in the clear once its SAs are gone
                        debug!("fallback drop policy {selectors} (fail_mode closed)");
                        self.drops.push(selectors);
                        out.push_back(GmNodeAction::AddDrop(selectors));
                    }
                    installed_any = true;
                }
                GmAction::Delete { sa, direction } => {
                    let Some(i) = self
                        .installed
                        .iter()
                        .position(|i| i.sa == sa && i.selectors.direction == direction)
                    else {
                        continue;
                    };
                    let gone = self.installed.remove(i);
                    out.push_back(GmNodeAction::Delete {
                        membership: self.id,
                        sa,
                        direction,
                    });
                    orphans.push(gone.selectors);
                }
                GmAction::ListenRekey { spi, dst } => {
                    self.sockets.push(spi);
                    out.push_back(GmNodeAction::ListenRekey {
                        membership: self.id,
                        spi,
                        dst,
                        local: self.local,
                    });
                }
                GmAction::StopRekey { spi } => {
                    if let Some(i) = self.sockets.iter().position(|s| *s == spi) {
                        self.sockets.remove(i);
                        out.push_back(GmNodeAction::StopRekey {
                            membership: self.id,
                            spi,
                        });
                    }
                }
                GmAction::Reregister { reason } => {
                    info!(
                        "membership '{}' registers again ({})",
                        self.name(),
                        reregister_reason(reason)
                    );
                    out.push_back(GmNodeAction::Initiate {
                        connection: self.def.connection.clone(),
                    });
                }
            }
        }
        if installed_any {
            // the group's policy changed: drops no SA stands over any more
            let installed = &self.installed;
            let (keep, stale): (Vec<_>, Vec<_>) = self
                .drops
                .drain(..)
                .partition(|d| installed.iter().any(|i| i.selectors == *d));
            self.drops = keep;
            out.extend(stale.into_iter().map(GmNodeAction::RemoveDrop));
        }
        orphans.dedup();
        for o in orphans {
            if !self.installed.iter().any(|i| i.selectors == o) {
                info!(
                    "no SA left for {} === {} of membership '{}', its traffic is {} (fail_mode {})",
                    o.src,
                    o.dst,
                    self.name(),
                    if self.fail_closed {
                        "dropped"
                    } else {
                        "passed in the clear"
                    },
                    if self.fail_closed { "closed" } else { "open" }
                );
            }
        }
    }

    /// Takes everything it holds out of the kernel: sockets, SAs and their
    /// policies, drop policies. Its engine's later actions are dropped.
    pub fn shut_down(&mut self, out: &mut VecDeque<GmNodeAction>) {
        for spi in self.sockets.drain(..) {
            out.push_back(GmNodeAction::StopRekey {
                membership: self.id,
                spi,
            });
        }
        for i in self.installed.drain(..) {
            out.push_back(GmNodeAction::Delete {
                membership: self.id,
                sa: i.sa,
                direction: i.selectors.direction,
            });
        }
        out.extend(self.drops.drain(..).map(GmNodeAction::RemoveDrop));
    }
}

/// Why a membership registers again, for the log.
fn reregister_reason(reason: ReregisterReason) -> &'static str {
    match reason {
        ReregisterReason::LostRekey => "a GSA_REKEY was lost",
        ReregisterReason::Expiring => "its SAs expire with no replacement",
        ReregisterReason::NoSenderId => "a sender without Sender-ID",
        ReregisterReason::SenderIdTooWide => "a Sender-ID too wide",
        ReregisterReason::Excluded => "excluded or the group SA deleted",
        ReregisterReason::Retry => "retrying a failed registration",
        ReregisterReason::IkeSaLost => "its IKE_SA for inband rekeys went down",
    }
}
