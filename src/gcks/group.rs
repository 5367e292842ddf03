//! One group at the GCKS: its Rekey SA and Data-Security SAs, members,
//! key tree and rekey schedule, and the GSA and KD payloads it hands out.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use log::{debug, info, warn};

mod state;

use super::sag::{self, Offer};
use super::{GcksAction, GcksError, MemberId, Millis, Registration};
use crate::crypto::{KeyWrapAlg, Rng, Secret, SkProtection, rekey_keymat_len, split_rekey_keymat};
use crate::iana::{IPPROTO_UDP, NON_ESP_MARKER, NotifyType, PORT_IKE_NATT, ProtocolId};
use crate::lkh::{LkhTree, MemberSlot};
use crate::policy::{GroupConfig, KeyManagement, Mode, RekeyAuth, TekProtocol};
use crate::rekey_message::{self, RekeySigner};
use crate::wire::{
    Delete, GroupId, GroupKeyBag, GroupPolicy, Gsa, GsaAttr, GsaPolicy, GwPolicy, Kd, KeyBag,
    MemberKeyBag, Notify, Payload, RekeySpi, SaRef, TrafficSelector, Transform, WrappedKey,
};
pub use state::{MESSAGE_ID_RESERVE, RESTORED_MEMBER_BASE};

/// Copies of each GSA_REKEY sent after the first, a second apart (§2.4.1.3:
/// bitwise identical, within a few seconds).
const RETRANSMITS: u32 = 2;
const RETRANSMIT_INTERVAL: Millis = 1000;
/// Joins are gathered this long before one GSA_REKEY refreshes the key
/// tree for everyone (LKH backward access control).
const JOIN_FLUSH_DELAY: Millis = 1000;
/// GSA_REKEY summaries kept for the operator.
const RECENT_REKEYS: usize = 8;
/// Octets of WRAP_KEYs one join flush may carry; with the headers this
/// keeps the message well under IKE's 64 KiB payload limit.
const JOIN_FLUSH_BUDGET: usize = 40_000;
/// Rekey SA SPIs reserved ahead and announced in GSA_NEXT_SPI. One would
/// do if members took their registration answer promptly; under load an
/// answer can reach a member several join flushes (a second apart) late.
const NEXT_SPI_DEPTH: usize = 8;
/// Upper bound of one WRAP_KEY attribute in a key tree: attribute header,
/// Key ID, KWK ID and a wrapped 32-octet key.
const WRAP_KEY_MAX: usize = 4 + 8 + 48;

/// The current Rekey SA.
struct Kek {
    spi: RekeySpi,
    keymat: Secret,
    sk: SkProtection,
    /// The Rekey SA's default KWK (§3.4).
    gsk_w: Secret,
    expires: Millis,
    next_message_id: u32,
    /// Reserved for the next Rekey SAs in turn, the first the replacement
    /// (`NEXT_SPI_DEPTH` of them), announced in GSA_NEXT_SPI: a member that
    /// missed up to that many changes of the Rekey SA notices at the next
    /// GSA_REKEY (§4.4.2.2.3).
    next_spis: Vec<RekeySpi>,
    /// The first Message ID a restore skipped (`state`), named in the next
    /// GSA_REKEY so that GMs see no lost message in the gap.
    skipped_from: Option<u32>,
}

/// A Data-Security SA.
#[derive(Clone)]
struct Tek {
    policy: usize,
    spi: u32,
    keymat: Secret,
    expires: Millis,
    next_spi: u32,
    /// Set once replaced: the GCKS stops handing it out at this time.
    retire_at: Option<Millis>,
    /// The sender an SA of a per-sender policy belongs to.
    sender: Option<SenderSa>,
}

/// Who `Group::send_teks` sends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    /// The multicast members (one GSA_REKEY) and every inband member.
    All,
    /// The inband members only, but `skip`.
    Inband { skip: Option<MemberId> },
}

/// Why a registration was refused: the notification for the GM and a
/// reason for the operator's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub notify: NotifyType,
    pub why: String,
}

/// Whose a per-sender SA is: the sender's identity and the address its
/// source selector is narrowed to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SenderSa {
    identity: String,
    addr: IpAddr,
}

impl Tek {
    fn sa(&self, cfg: &GroupConfig) -> SaRef {
        match cfg.teks[self.policy].protocol {
            TekProtocol::Esp => SaRef::Esp(self.spi),
            TekProtocol::Ah => SaRef::Ah(self.spi),
        }
    }
}

struct Member {
    identity: String,
    inband: bool,
    sender: bool,
    sender_ids: Vec<u32>,
    slot: Option<MemberSlot>,
    /// GSK_w of the member's IKE SA and the KWA negotiated there; kept
    /// for GSA_INBAND_REKEY.
    ike_kwk: Option<(Secret, KeyWrapAlg)>,
}

/// The last GSA_REKEY a group sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeySummary {
    pub message_id: u32,
    /// SA_KEY and WRAP_KEY attributes it carried.
    pub wrapped_keys: usize,
    pub bytes: usize,
}

/// What an operator sees of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    pub id: GroupId,
    pub members: Vec<(u64, String, bool)>,
    pub rekey_spi: Option<RekeySpi>,
    pub rekey_expires_in: Option<Millis>,
    pub next_message_id: Option<u32>,
    /// (protocol, SPI, milliseconds to expiry) of live TEKs.
    pub teks: Vec<(ProtocolId, u32, Millis)>,
    /// The most recent GSA_REKEY messages, oldest first.
    pub recent_rekeys: Vec<RekeySummary>,
    /// Identities excluded by the operator and refused since.
    pub excluded: Vec<String>,
}

pub(super) struct Group {
    cfg: GroupConfig,
    kek: Option<Kek>,
    /// The Rekey SA joiners get while a join flush is pending, so they never
    /// hold a KEK that protected anything before they joined.
    kek_next: Option<Kek>,
    teks: Vec<Tek>,
    members: HashMap<MemberId, Member>,
    /// Who holds each identity in `members`, so a registration finds a
    /// member coming back without scanning them all (kept by `add_member`
    /// and `take_member`).
    by_identity: HashMap<String, MemberId>,
    /// Members served by GSA_INBAND_REKEY, so rekeys need not scan them all.
    inband: BTreeSet<MemberId>,
    lkh: Option<LkhTree>,
    next_sender_id: u32,
    join_flush_at: Option<Millis>,
    retransmits: VecDeque<(Millis, GcksAction)>,
    recent_rekeys: VecDeque<RekeySummary>,
    /// Identities an operator excluded: refused until readmitted, or the
    /// exclusion would last only until the member registers again.
    excluded: BTreeSet<String>,
    /// Per-sender SAs (their SPIs) the multicast members have not been
    /// told of yet: sent with the next GSA_REKEY, at once or, while a join
    /// flush is pending, right after it, so the members who hold only the
    /// joiners' Rekey SA hear of them too.
    unannounced: Vec<u32>,
}

fn spi_free(spi: SaRef, used: &[SaRef]) -> bool {
    !used.contains(&spi)
}

fn new_data_spi(rng: &mut dyn Rng, used: &[SaRef], mine: &[SaRef]) -> Result<u32, GcksError> {
    loop {
        let mut b = [0; 4];
        rng.fill(&mut b)?;
        let spi = u32::from_be_bytes(b);
        // 1-255 are reserved by IANA for ESP and AH SPIs.
        let taken = |s: SaRef| matches!(s, SaRef::Esp(x) | SaRef::Ah(x) if x == spi);
        if spi > 255 && !used.iter().any(|s| taken(*s)) && !mine.iter().any(|s| taken(*s)) {
            return Ok(spi);
        }
    }
}

fn new_rekey_spi(rng: &mut dyn Rng, used: &[SaRef]) -> Result<RekeySpi, GcksError> {
    loop {
        let mut b = [0; 16];
        rng.fill(&mut b)?;
        let spi = RekeySpi(b);
        // Never four zero octets first: on port 4500 those mark a non-ESP
        // message (§2.4.1.1), and the GM tells them apart by that.
        if b[..4] != [0; 4] && spi_free(SaRef::Rekey(spi), used) {
            return Ok(spi);
        }
    }
}

/// Tops `spis` up to `NEXT_SPI_DEPTH` fresh SPIs not in `taken`.
fn reserve_rekey_spis(
    spis: &mut Vec<RekeySpi>,
    taken: &mut Vec<SaRef>,
    rng: &mut dyn Rng,
) -> Result<(), GcksError> {
    while spis.len() < NEXT_SPI_DEPTH {
        let s = new_rekey_spi(rng, taken)?;
        taken.push(SaRef::Rekey(s));
        spis.push(s);
    }
    Ok(())
}

fn random_secret(rng: &mut dyn Rng, len: usize) -> Result<Secret, GcksError> {
    let mut v = vec![0; len];
    rng.fill(&mut v)?;
    Ok(Secret::new(v))
}

/// The key bag of an SA whose keying material is wrapped under a channel's
/// default KWK (KWK ID 0).
fn default_kwk_bag(
    sa: SaRef,
    (kwk, kwa): (&Secret, KeyWrapAlg),
    keymat: &Secret,
) -> Result<KeyBag, GcksError> {
    Ok(KeyBag::Group(GroupKeyBag {
        sa,
        sa_keys: vec![WrappedKey {
            key_id: 0,
            kwk_id: 0,
            encrypted: kwa.wrap(kwk.expose(), keymat.expose())?,
        }],
        other: Vec::new(),
    }))
}

/// Seconds left until `expires`, rounded up, for GSA_KEY_LIFETIME.
fn secs_left(now: Millis, expires: Millis) -> u32 {
    u32::try_from(expires.saturating_sub(now).div_ceil(1000)).unwrap_or(u32::MAX)
}

fn any_selector(like: IpAddr) -> TrafficSelector {
    let mut ts = TrafficSelector::addr(match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    ts.addrs = match ts.addrs {
        crate::wire::AddrRange::V4(..) => {
            crate::wire::AddrRange::V4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
        }
        crate::wire::AddrRange::V6(..) => {
            crate::wire::AddrRange::V6(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from([0xff; 16]))
        }
    };
    ts.ip_protocol = IPPROTO_UDP;
    ts
}

impl Group {
    pub(super) fn new(
        now: Millis,
        cfg: GroupConfig,
        used: &[SaRef],
        rng: &mut dyn Rng,
    ) -> Result<Self, GcksError> {
        let lkh = match (cfg.key_management, &cfg.rekey) {
            (KeyManagement::Lkh { degree }, Some(r)) => Some(
                LkhTree::new(degree, cfg.member_limit, r.kwa_alg())
                    .map_err(|e| GcksError::Crypto(e.to_string()))?,
            ),
            _ => None,
        };
        let mut g = Self {
            cfg,
            kek: None,
            kek_next: None,
            teks: Vec::new(),
            members: HashMap::new(),
            by_identity: HashMap::new(),
            inband: BTreeSet::new(),
            lkh,
            next_sender_id: 0,
            join_flush_at: None,
            retransmits: VecDeque::new(),
            recent_rekeys: VecDeque::new(),
            excluded: BTreeSet::new(),
            unannounced: Vec::new(),
        };
        if g.cfg.rekey.is_some() {
            let mut taken = used.to_vec();
            taken.extend(g.spis());
            g.kek = Some(g.new_kek(now, None, &taken, rng)?);
        }
        // Per-sender policies get their SAs as senders register.
        for policy in (0..g.cfg.teks.len()).filter(|&p| !g.cfg.teks[p].per_sender) {
            let mut taken = used.to_vec();
            taken.extend(g.spis());
            let tek = g.new_tek(now, policy, None, &taken, rng)?;
            g.teks.push(tek);
        }
        Ok(g)
    }

    pub(super) fn id(&self) -> &GroupId {
        &self.cfg.id
    }

    pub(super) fn name(&self) -> String {
        String::from_utf8_lossy(&self.cfg.id.data).into_owned()
    }

    /// SPIs this group holds, reserved ones included.
    pub(super) fn spis(&self) -> Vec<SaRef> {
        let mut out = Vec::new();
        for k in self.kek.iter().chain(self.kek_next.iter()) {
            out.push(SaRef::Rekey(k.spi));
            out.extend(k.next_spis.iter().map(|s| SaRef::Rekey(*s)));
        }
        for t in &self.teks {
            out.push(t.sa(&self.cfg));
            out.push(match t.sa(&self.cfg) {
                SaRef::Ah(_) => SaRef::Ah(t.next_spi),
                _ => SaRef::Esp(t.next_spi),
            });
        }
        out
    }

    /// A new Rekey SA: the next of `chain` (a predecessor's reserved SPIs,
    /// whose rest it keeps reserving) or of fresh SPIs.
    fn new_kek(
        &self,
        now: Millis,
        chain: Option<&[RekeySpi]>,
        used: &[SaRef],
        rng: &mut dyn Rng,
    ) -> Result<Kek, GcksError> {
        let r = self
            .cfg
            .rekey
            .as_ref()
            .expect("groups with a Rekey SA only");
        let (encr, integ, kwa) = (r.encr_alg(), r.integ_alg(), r.kwa_alg());
        let keymat = random_secret(rng, rekey_keymat_len(encr, integ, kwa)?)?;
        let keys = split_rekey_keymat(encr, integ, kwa, &keymat)?;
        let sk = SkProtection::new(encr, integ, &keys.gsk_e, &keys.gsk_a)?;
        let (spi, mut next_spis) = match chain {
            Some([first, rest @ ..]) => (*first, rest.to_vec()),
            _ => (new_rekey_spi(rng, used)?, Vec::new()),
        };
        let mut taken = used.to_vec();
        taken.push(SaRef::Rekey(spi));
        taken.extend(next_spis.iter().map(|s| SaRef::Rekey(*s)));
        reserve_rekey_spis(&mut next_spis, &mut taken, rng)?;
        Ok(Kek {
            spi,
            keymat,
            sk,
            gsk_w: keys.gsk_w,
            expires: now + Millis::from(r.lifetime_secs) * 1000,
            next_message_id: 0,
            next_spis,
            skipped_from: None,
        })
    }

    fn new_tek(
        &self,
        now: Millis,
        policy: usize,
        spi: Option<u32>,
        used: &[SaRef],
        rng: &mut dyn Rng,
    ) -> Result<Tek, GcksError> {
        let p = &self.cfg.teks[policy];
        // M030: every Data-Security SA gets its own fresh keys.
        let keymat = random_secret(rng, p.keymat_len())?;
        let spi = match spi {
            Some(s) => s,
            None => new_data_spi(rng, used, &[])?,
        };
        let mine = [SaRef::Esp(spi), SaRef::Ah(spi)];
        let next_spi = new_data_spi(rng, used, &mine)?;
        Ok(Tek {
            policy,
            spi,
            keymat,
            expires: now + Millis::from(p.lifetime_secs) * 1000,
            next_spi,
            retire_at: None,
            sender: None,
        })
    }

    // ---- registration (§2.3.4) ----

    pub(super) fn register(
        &mut self,
        now: Millis,
        req: &Registration<'_>,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<Vec<Payload>, Refusal> {
        let refuse = |notify, why: String| Err(Refusal { notify, why });
        let notifies = req.payloads.iter().filter_map(|p| match p {
            Payload::Notify(n) => Some(n),
            _ => None,
        });
        let mut sender_request = None;
        for n in notifies {
            match n.ty {
                // Figure 8: the GM leaves or rejects the policy; M004.
                NotifyType::NO_PROPOSAL_CHOSEN | NotifyType::REGISTRATION_FAILED => {
                    info!("{} leaves {} ({})", req.who(), self.name(), n.ty);
                    self.remove_member(now, req.member, used, rng, actions);
                    return Ok(Vec::new());
                }
                NotifyType::GROUP_SENDER => sender_request = n.sender_id_count(),
                _ => {}
            }
        }
        let auth = &self.cfg.authorization;
        let Some(identity) = req.identities.iter().copied().find(|i| auth.may_join(i)) else {
            return refuse(
                NotifyType::AUTHORIZATION_FAILED,
                "no authenticated identity matches `members`".into(),
            );
        };
        if let Some(x) = req.identities.iter().find(|i| self.excluded.contains(**i)) {
            return refuse(
                NotifyType::AUTHORIZATION_FAILED,
                format!("{x} was excluded by the operator"),
            );
        }
        let sender = sender_request.is_some();
        if sender && !req.identities.iter().any(|i| auth.may_send(i)) {
            return refuse(
                NotifyType::AUTHORIZATION_FAILED,
                "asks to send, but no authenticated identity matches `senders`".into(),
            );
        }
        // M061: an SA of 32-bit sequential numbers has one sender.
        if sender
            && let Some(t) = self.cfg.teks.iter().find(|t| t.single_sender)
            && let Some(other) = self
                .members
                .values()
                .find(|m| m.sender && m.identity != identity)
        {
            return refuse(
                NotifyType::REGISTRATION_FAILED,
                format!(
                    "the SA to {} has a single sender, and {} is it",
                    t.dst, other.identity
                ),
            );
        }
        // A per-sender SA's source selector is its sender's address.
        if sender {
            for p in self.cfg.teks.iter().filter(|t| t.per_sender) {
                match req.peer {
                    Some(addr) if p.src.contains_addr(addr) => {}
                    Some(addr) => {
                        return refuse(
                            NotifyType::REGISTRATION_FAILED,
                            format!("sender address {addr} is outside the TEK's source selector"),
                        );
                    }
                    None => {
                        return refuse(
                            NotifyType::REGISTRATION_FAILED,
                            "a sender of per-sender SAs, but its address is unknown".into(),
                        );
                    }
                }
            }
        }
        // The same identity on a new IKE SA is the same member coming back
        // (a lost rekey, a restart): it replaces its old record rather than
        // counting twice and holding two places in the key tree.
        let previous = if self.members.contains_key(&req.member) {
            Some(req.member)
        } else {
            self.by_identity.get(identity).copied()
        };
        let rejoin = previous.is_some();
        if !rejoin && self.members.len() >= self.cfg.member_limit as usize {
            return refuse(
                NotifyType::REGISTRATION_FAILED,
                format!("the group is full ({} members)", self.cfg.member_limit),
            );
        }
        let inband = self.cfg.inband_for(identity);
        if let Some(sag) = req.payloads.iter().find_map(|p| match p {
            Payload::Sag(s) => Some(s),
            _ => None,
        }) {
            let kek_transforms = self.kek_transforms(true);
            let tek_transforms: Vec<_> = self.cfg.teks.iter().map(|t| t.transforms()).collect();
            let mut offers = Vec::new();
            if !inband && self.cfg.rekey.is_some() {
                offers.push(Offer {
                    protocol: ProtocolId::GIKE_UPDATE,
                    transforms: &kek_transforms,
                });
            }
            for (p, t) in self.cfg.teks.iter().zip(&tek_transforms) {
                offers.push(Offer {
                    protocol: match p.protocol {
                        TekProtocol::Esp => ProtocolId::ESP,
                        TekProtocol::Ah => ProtocolId::AH,
                    },
                    transforms: t,
                });
            }
            if !sag::acceptable(sag, &offers) {
                return refuse(
                    NotifyType::NO_PROPOSAL_CHOSEN,
                    "its SAg accepts none of the group's algorithms".into(),
                );
            }
        }
        // Sender-IDs (§2.5.1): new ones at every registration.
        let counter = self.cfg.teks.iter().any(|t| t.is_counter_mode());
        let mut sender_ids = Vec::new();
        if sender && counter {
            let want = sender_request
                .unwrap_or(1)
                .clamp(1, self.cfg.max_sender_ids);
            let bits = self.cfg.group_wide.sender_id_bits.unwrap_or(32);
            let limit = if bits >= 32 {
                u64::from(u32::MAX) + 1
            } else {
                1u64 << bits
            };
            if u64::from(self.next_sender_id) + u64::from(want) > limit {
                if u64::from(want) > limit {
                    return refuse(
                        NotifyType::REGISTRATION_FAILED,
                        format!("{want} Sender-IDs do not fit {bits} bits"),
                    );
                }
                // M032: a Sender-ID is never reused under the same keys;
                // everyone is excluded and the group starts over.
                if let Err(e) = self.start_over(now, used, rng, actions) {
                    return refuse(
                        NotifyType::REGISTRATION_FAILED,
                        format!("starting over failed: {e}"),
                    );
                }
            }
            sender_ids = (self.next_sender_id..self.next_sender_id + want).collect();
            self.next_sender_id += want;
        }

        let gsk_ike = match req.ike.default_kwk() {
            Ok(k) => k,
            Err(e) => return refuse(NotifyType::REGISTRATION_FAILED, format!("GSK_w: {e}")),
        };
        // Its own SA of each per-sender policy (kept when it registers
        // again from the same address), before the response lists them.
        if sender && let Err(e) = self.ensure_sender_sas(now, identity, req, used, rng, actions) {
            return refuse(
                NotifyType::REGISTRATION_FAILED,
                format!("its sender SA: {e}"),
            );
        }
        // A member registering again (lost rekeys, new Sender-IDs) keeps its
        // place in the key tree: it held those keys already.
        let old_slot = previous
            .and_then(|id| self.take_member(id))
            .filter(|m| m.inband == inband)
            .and_then(|m| m.slot);
        let slot = match (&mut self.lkh, inband) {
            (Some(_), false) if old_slot.is_some() => old_slot,
            (Some(tree), false) => {
                let slot = tree.join(rng).map_err(|e| Refusal {
                    notify: NotifyType::REGISTRATION_FAILED,
                    why: format!("key tree: {e}"),
                })?;
                self.schedule_join_flush(now, used, rng)
                    .map_err(|e| Refusal {
                        notify: NotifyType::REGISTRATION_FAILED,
                        why: format!("join flush: {e}"),
                    })?;
                Some(slot)
            }
            _ => None,
        };
        // §4.4.1: a GSA holds a KEK or a TEK policy. An inband member gets
        // no KEK; with per-sender policies only, it waits for a sender.
        if inband && self.live_teks(now).next().is_none() {
            return refuse(
                NotifyType::REGISTRATION_FAILED,
                "no Data-Security SA to give yet: no sender of the per-sender \
                 policies has registered"
                    .into(),
            );
        }
        let member = Member {
            identity: identity.to_owned(),
            inband,
            sender,
            sender_ids,
            slot,
            ike_kwk: inband.then(|| (gsk_ike.clone(), req.ike.kwa)),
        };
        let payloads = self
            .registration_payloads(now, &member, &gsk_ike, req.ike.kwa)
            .map_err(|e| Refusal {
                notify: NotifyType::REGISTRATION_FAILED,
                why: format!("building the response: {e}"),
            })?;
        info!(
            "{} joined {} as {}{} ({} members)",
            identity,
            self.name(),
            if sender { "sender" } else { "receiver" },
            if inband { ", inband rekey" } else { "" },
            self.members.len() + 1
        );
        if !inband {
            actions.push_back(GcksAction::CloseIkeSa { member: req.member });
        }
        self.add_member(req.member, member);
        // Its new sender SAs reach the rest of the group: inband members
        // now, multicast ones now or right after the pending join flush.
        let fresh: Vec<u32> = self
            .teks
            .iter()
            .filter(|t| self.unannounced.contains(&t.spi))
            .filter(|t| t.sender.as_ref().is_some_and(|s| s.identity == identity))
            .map(|t| t.spi)
            .collect();
        if !fresh.is_empty() {
            let teks: Vec<Tek> = self
                .teks
                .iter()
                .filter(|t| fresh.contains(&t.spi))
                .cloned()
                .collect();
            let refs: Vec<&Tek> = teks.iter().collect();
            let to = Audience::Inband {
                skip: Some(req.member),
            };
            let r = self.send_teks(now, &refs, &[], to, rng, actions);
            if let Err(e) = r.and_then(|()| self.announce(now, rng, actions)) {
                warn!(
                    "{}: announcing the SA of sender {identity}: {e}",
                    self.name()
                );
            }
        }
        // A burst of joins: flush now rather than let the refresh outgrow
        // one message.
        if self.join_refresh_full()
            && let Err(e) = self.flush_joins(now, rng, actions)
        {
            warn!("{}: join flush failed: {e}", self.name());
        }
        Ok(payloads)
    }

    /// Gives sender `identity` its own SA of each per-sender policy, its
    /// source selector narrowed to the sender's address (`req.peer`,
    /// checked by the caller): the one it holds from the same address, or
    /// a new one, noted for announcing. One it holds from another address
    /// is deleted.
    fn ensure_sender_sas(
        &mut self,
        now: Millis,
        identity: &str,
        req: &Registration<'_>,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        let Some(addr) = req.peer else {
            return Ok(());
        };
        let mut moved = Vec::new();
        for policy in (0..self.cfg.teks.len()).filter(|&p| self.cfg.teks[p].per_sender) {
            let held = self.teks.iter_mut().find(|t| {
                t.policy == policy
                    && t.retire_at.is_none()
                    && t.sender.as_ref().is_some_and(|s| s.identity == identity)
            });
            if let Some(t) = held {
                if t.sender.as_ref().is_some_and(|s| s.addr == addr) {
                    continue;
                }
                t.retire_at = Some(now);
                moved.push(t.sa(&self.cfg));
            }
            let mut taken = used.to_vec();
            taken.extend(self.spis());
            let mut tek = self.new_tek(now, policy, None, &taken, rng)?;
            tek.sender = Some(SenderSa {
                identity: identity.to_owned(),
                addr,
            });
            info!(
                "{}: sender {identity} at {addr} gets its own SA {:?}",
                self.name(),
                tek.sa(&self.cfg)
            );
            self.unannounced.push(tek.spi);
            self.teks.push(tek);
        }
        let deletes = Delete::for_sas(&moved);
        self.send_teks(now, &[], &deletes, Audience::All, rng, actions)
    }

    /// Retires the per-sender SAs of `identity` at once; their SAs, for
    /// the Delete the group gets.
    fn retire_sender_sas(&mut self, now: Millis, identity: &str) -> Vec<SaRef> {
        let mut gone = Vec::new();
        for t in &mut self.teks {
            if t.retire_at.is_none() && t.sender.as_ref().is_some_and(|s| s.identity == identity) {
                t.retire_at = Some(now);
                gone.push(t.sa(&self.cfg));
            }
        }
        let spis: Vec<u32> = self
            .teks
            .iter()
            .filter(|t| t.retire_at.is_some())
            .map(|t| t.spi)
            .collect();
        self.unannounced.retain(|s| !spis.contains(s));
        gone
    }

    fn add_member(&mut self, id: MemberId, m: Member) {
        if m.inband {
            self.inband.insert(id);
        } else {
            self.inband.remove(&id);
        }
        self.by_identity.insert(m.identity.clone(), id);
        self.members.insert(id, m);
    }

    fn take_member(&mut self, id: MemberId) -> Option<Member> {
        self.inband.remove(&id);
        let m = self.members.remove(&id)?;
        if self.by_identity.get(&m.identity) == Some(&id) {
            self.by_identity.remove(&m.identity);
        }
        Some(m)
    }

    /// Whether the pending join refresh, plus the worst one more join could
    /// add (a whole path, each node under `degree` children), could outgrow
    /// one GSA_REKEY.
    fn join_refresh_full(&self) -> bool {
        self.lkh.as_ref().is_some_and(|t| {
            let per_node = usize::from(t.degree()) * WRAP_KEY_MAX;
            (t.pending_refresh_nodes() + t.depth()) * per_node > JOIN_FLUSH_BUDGET
        })
    }

    /// The KEK a joining member gets: with LKH, the one the pending join
    /// flush will move everyone to.
    fn kek_for_joiner(&self) -> Option<&Kek> {
        self.kek_next.as_ref().or(self.kek.as_ref())
    }

    fn schedule_join_flush(
        &mut self,
        now: Millis,
        used: &[SaRef],
        rng: &mut dyn Rng,
    ) -> Result<(), GcksError> {
        if self.kek_next.is_none() {
            let kek = self.kek.as_ref().expect("LKH groups have a Rekey SA");
            let mut taken = used.to_vec();
            taken.extend(self.spis());
            let chain = kek.next_spis.clone();
            self.kek_next = Some(self.new_kek(now, Some(&chain), &taken, rng)?);
        }
        self.join_flush_at.get_or_insert(now + JOIN_FLUSH_DELAY);
        Ok(())
    }

    fn kek_transforms(&self, registration: bool) -> Vec<Transform> {
        let r = self
            .cfg
            .rekey
            .as_ref()
            .expect("groups with a Rekey SA only");
        let mut t = vec![Transform::encr(r.encr.0, r.encr.1)];
        if !r.encr_alg().is_aead() {
            t.push(Transform::integ(r.integ));
        }
        t.push(Transform::kwa(r.kwa));
        if registration {
            // M058: GCAUTH only at registration.
            t.push(match &r.auth {
                RekeyAuth::Implicit => Transform::gcauth_implicit(),
                RekeyAuth::Signature(k) => {
                    Transform::gcauth_signature(k.alg().algorithm_identifier().to_vec())
                }
            });
        }
        t
    }

    fn kek_policy(&self, now: Millis, kek: &Kek, registration: bool) -> GsaPolicy {
        let r = self
            .cfg
            .rekey
            .as_ref()
            .expect("groups with a Rekey SA only");
        let src = match r.src {
            Some(s) => TrafficSelector::host(s.ip(), IPPROTO_UDP, s.port()),
            None => any_selector(r.dst.ip()),
        };
        let mut attrs = vec![GsaAttr::KeyLifetime(secs_left(now, kek.expires))];
        if kek.next_message_id != 0 {
            attrs.push(GsaAttr::InitialMessageId(kek.next_message_id));
        }
        attrs.extend(kek.next_spis.iter().map(|s| GsaAttr::NextSpi(s.0.to_vec())));
        GsaPolicy {
            sa: SaRef::Rekey(kek.spi),
            src,
            dst: TrafficSelector::host(r.dst.ip(), IPPROTO_UDP, r.dst.port()),
            transforms: self.kek_transforms(registration),
            attrs,
        }
    }

    fn tek_policy(&self, now: Millis, tek: &Tek, multicast: bool) -> GsaPolicy {
        let p = &self.cfg.teks[tek.policy];
        let mut attrs = Vec::new();
        // Lifetime and next SPIs are for multicast members (Tables 2, 3).
        if multicast {
            // A TEK being replaced lives only until it is retired.
            let until = tek.retire_at.map_or(tek.expires, |r| r.min(tek.expires));
            attrs.push(GsaAttr::KeyLifetime(secs_left(now, until)));
            attrs.push(GsaAttr::NextSpi(tek.next_spi.to_be_bytes().to_vec()));
        }
        GsaPolicy {
            sa: tek.sa(&self.cfg),
            // A per-sender SA names its sender's address: the sender sends
            // on it, the others receive (RFC 5374 source-specific SAs).
            src: tek
                .sender
                .as_ref()
                .map_or(p.src, |s| p.src.narrowed_to(s.addr)),
            dst: p.dst,
            transforms: p.transforms(),
            attrs,
        }
    }

    fn group_wide(&self, member: &Member) -> Option<GwPolicy> {
        let gw = self.cfg.group_wide;
        let bits = (!member.sender_ids.is_empty())
            .then_some(gw.sender_id_bits)
            .flatten();
        let p = GwPolicy {
            atd: (gw.atd_secs > 0).then_some(gw.atd_secs),
            dtd: (gw.dtd_secs > 0).then_some(gw.dtd_secs),
            sender_id_bits: bits,
            other: Vec::new(),
        };
        (p != GwPolicy::default()).then_some(p)
    }

    fn live_teks(&self, now: Millis) -> impl Iterator<Item = &Tek> {
        self.teks
            .iter()
            .filter(move |t| t.retire_at.is_none_or(|r| r > now) && t.expires > now)
    }

    fn registration_payloads(
        &self,
        now: Millis,
        member: &Member,
        gsk_ike: &Secret,
        ike_kwa: KeyWrapAlg,
    ) -> Result<Vec<Payload>, GcksError> {
        let mut policies = Vec::new();
        let mut bags = Vec::new();
        let mut member_bag = MemberKeyBag {
            sender_ids: member.sender_ids.clone(),
            ..Default::default()
        };
        let multicast = !member.inband;
        if let (true, Some(kek)) = (multicast, self.kek_for_joiner()) {
            policies.push(GroupPolicy::Sa(self.kek_policy(now, kek, true)));
            let sa_key = match (&self.lkh, member.slot) {
                (Some(tree), Some(slot)) => {
                    member_bag.wrap_keys = tree
                        .registration_keys(slot, gsk_ike, ike_kwa)
                        .map_err(|e| GcksError::Crypto(e.to_string()))?;
                    let (top_id, top) = tree
                        .top_key_of(slot)
                        .map_err(|e| GcksError::Crypto(e.to_string()))?;
                    WrappedKey {
                        key_id: 0,
                        kwk_id: top_id,
                        encrypted: tree.kwa().wrap(top.expose(), kek.keymat.expose())?,
                    }
                }
                _ => WrappedKey {
                    key_id: 0,
                    kwk_id: 0,
                    encrypted: ike_kwa.wrap(gsk_ike.expose(), kek.keymat.expose())?,
                },
            };
            bags.push(KeyBag::Group(GroupKeyBag {
                sa: SaRef::Rekey(kek.spi),
                sa_keys: vec![sa_key],
                other: Vec::new(),
            }));
            if let Some(RekeyAuth::Signature(k)) = self.cfg.rekey.as_ref().map(|r| &r.auth) {
                member_bag.auth_key = Some(k.public_key_der().to_vec());
            }
        }
        for tek in self.live_teks(now) {
            policies.push(GroupPolicy::Sa(self.tek_policy(now, tek, multicast)));
            bags.push(default_kwk_bag(
                tek.sa(&self.cfg),
                (gsk_ike, ike_kwa),
                &tek.keymat,
            )?);
        }
        if let Some(gw) = self.group_wide(member) {
            policies.push(GroupPolicy::GroupWide(gw));
        }
        if member_bag != MemberKeyBag::default() {
            bags.push(KeyBag::Member(member_bag));
        }
        let mut out = vec![Payload::Gsa(Gsa { policies }), Payload::Kd(Kd { bags })];
        if self.cfg.mode == Mode::Transport {
            out.push(Payload::Notify(Notify::plain(
                NotifyType::USE_TRANSPORT_MODE,
            )));
        }
        Ok(out)
    }

    // ---- rekeys (§2.4) ----

    /// Seals and queues a GSA_REKEY on the current Rekey SA, with copies.
    fn send_rekey(
        &mut self,
        now: Millis,
        payloads: &[Payload],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        let r = self
            .cfg
            .rekey
            .as_ref()
            .expect("groups with a Rekey SA only");
        let kek = self.kek.as_mut().expect("groups with a Rekey SA only");
        let signer = match &r.auth {
            RekeyAuth::Implicit => RekeySigner::Implicit,
            RekeyAuth::Signature(k) => RekeySigner::DigitalSignature(k),
        };
        let mut with_skip;
        let payloads = match kek.skipped_from {
            Some(from) => {
                with_skip = payloads.to_vec();
                with_skip.push(Payload::Notify(Notify::skipped_message_ids(from)));
                &with_skip[..]
            }
            None => payloads,
        };
        let mut datagram =
            rekey_message::seal(kek.spi, kek.next_message_id, payloads, signer, &kek.sk, rng)
                .map_err(|e| GcksError::Crypto(e.to_string()))?;
        if r.dst.port() == PORT_IKE_NATT {
            // §2.4.1.1: the non-ESP marker, outside what is signed.
            datagram.splice(0..0, NON_ESP_MARKER);
        }
        kek.skipped_from = None;
        debug!(
            "{}: GSA_REKEY message {} ({} octets)",
            self.cfg.id.data.escape_ascii(),
            kek.next_message_id,
            datagram.len()
        );
        let wrapped_keys = payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Kd(kd) => Some(kd),
                _ => None,
            })
            .flat_map(|kd| &kd.bags)
            .map(|b| match b {
                KeyBag::Group(g) => g.sa_keys.len(),
                KeyBag::Member(m) => m.wrap_keys.len(),
            })
            .sum();
        if self.recent_rekeys.len() == RECENT_REKEYS {
            self.recent_rekeys.pop_front();
        }
        self.recent_rekeys.push_back(RekeySummary {
            message_id: kek.next_message_id,
            wrapped_keys,
            bytes: datagram.len(),
        });
        // Message IDs strictly increase and are never reused (§2.4.1.3).
        kek.next_message_id += 1;
        // Copies still due of earlier messages on this Rekey SA go out now,
        // once, ahead of this one: a member that missed their first copy
        // (it registered just after) still sees them before this higher
        // Message ID makes them replays (§2.4.1.4).
        let same_sa = |a: &GcksAction| {
            matches!(a, GcksAction::Multicast { datagram: d, .. }
                if d.get(..16) == datagram.get(..16))
        };
        let mut last = None;
        self.retransmits.retain(|(_, early)| {
            if !same_sa(early) {
                return true;
            }
            if last.as_ref() != Some(early) {
                actions.push_back(early.clone());
                last = Some(early.clone());
            }
            false
        });
        let action = GcksAction::Multicast {
            group: self.cfg.id.clone(),
            dst: r.dst,
            src: r.src,
            datagram,
        };
        for i in 1..=RETRANSMITS {
            let at = now + Millis::from(i) * RETRANSMIT_INTERVAL;
            let pos = self.retransmits.partition_point(|(t, _)| *t <= at);
            self.retransmits.insert(pos, (at, action.clone()));
        }
        actions.push_back(action);
        Ok(())
    }

    /// GSA, KD and Delete payloads announcing `new` TEKs, their keys
    /// wrapped under `kwk`.
    fn tek_rekey_payloads(
        &self,
        now: Millis,
        new: &[&Tek],
        kwk: (&Secret, KeyWrapAlg),
        multicast: bool,
        deletes: &[Delete],
    ) -> Result<Vec<Payload>, GcksError> {
        let mut policies: Vec<GroupPolicy> = new
            .iter()
            .map(|t| GroupPolicy::Sa(self.tek_policy(now, t, multicast)))
            .collect();
        policies.extend(self.timing_policy().map(GroupPolicy::GroupWide));
        let bags = new
            .iter()
            .map(|t| default_kwk_bag(t.sa(&self.cfg), kwk, &t.keymat))
            .collect::<Result<_, _>>()?;
        let mut payloads = vec![Payload::Gsa(Gsa { policies }), Payload::Kd(Kd { bags })];
        payloads.extend(deletes.iter().cloned().map(Payload::Delete));
        Ok(payloads)
    }

    /// ATD and DTD for rekeys; Sender-ID bits go only to registering senders.
    fn timing_policy(&self) -> Option<GwPolicy> {
        let gw = self.cfg.group_wide;
        (gw.atd_secs > 0 || gw.dtd_secs > 0).then(|| GwPolicy {
            atd: (gw.atd_secs > 0).then_some(gw.atd_secs),
            dtd: (gw.dtd_secs > 0).then_some(gw.dtd_secs),
            ..Default::default()
        })
    }

    fn multicast_members(&self) -> bool {
        self.members.len() > self.inband.len()
    }

    /// Moves the group to a new Rekey SA: GSA(KEK) and KD on the old one
    /// (membership changes, §3.2.1, carry no TEK).
    fn switch_kek(
        &mut self,
        now: Millis,
        new: Kek,
        member_wraps: Vec<WrappedKey>,
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        let old = self.kek.as_ref().expect("groups with a Rekey SA only");
        let sa_keys = match &self.lkh {
            Some(tree) => tree
                .wrap_sa_key(&new.keymat)
                .map_err(|e| GcksError::Crypto(e.to_string()))?,
            None => {
                let kwa = self.cfg.rekey.as_ref().expect("KEK").kwa_alg();
                vec![WrappedKey {
                    key_id: 0,
                    kwk_id: 0,
                    encrypted: kwa.wrap(old.gsk_w.expose(), new.keymat.expose())?,
                }]
            }
        };
        let mut bags = vec![KeyBag::Group(GroupKeyBag {
            sa: SaRef::Rekey(new.spi),
            sa_keys,
            other: Vec::new(),
        })];
        if !member_wraps.is_empty() {
            bags.push(KeyBag::Member(MemberKeyBag {
                wrap_keys: member_wraps,
                ..Default::default()
            }));
        }
        let mut policies = vec![GroupPolicy::Sa(self.kek_policy(now, &new, false))];
        policies.extend(self.timing_policy().map(GroupPolicy::GroupWide));
        let payloads = [Payload::Gsa(Gsa { policies }), Payload::Kd(Kd { bags })];
        let old_spi = old.spi;
        self.send_rekey(now, &payloads, rng, actions)?;
        info!(
            "{}: Rekey SA {:?} replaces {:?}",
            self.name(),
            new.spi,
            old_spi
        );
        self.kek = Some(new);
        Ok(())
    }

    /// The join flush: everyone moves to the KEK joiners already hold, and
    /// learns the refreshed key-tree keys.
    fn flush_joins(
        &mut self,
        now: Millis,
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        self.join_flush_at = None;
        let Some(next) = self.kek_next.take() else {
            return Ok(());
        };
        let wraps = match &mut self.lkh {
            Some(tree) => tree
                .take_join_refresh()
                .map_err(|e| GcksError::Crypto(e.to_string()))?,
            None => Vec::new(),
        };
        self.switch_kek(now, next, wraps, rng, actions)?;
        // Now everyone holds the Rekey SA the joiners hold.
        self.announce(now, rng, actions)
    }

    /// Replaces every TEK: new SAs with the reserved SPIs, old ones deleted
    /// after DTD (§2.4.1.4), by multicast and to each inband member.
    pub(super) fn rekey_teks(
        &mut self,
        now: Millis,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        let current: Vec<usize> = (0..self.teks.len())
            .filter(|&i| self.teks[i].retire_at.is_none())
            .collect();
        self.replace_teks(now, &current, used, rng, actions)
    }

    /// Replaces the Rekey SA now (operator command), as its lifetime would:
    /// the new KEK under the current one, announced by GSA_NEXT_SPI.
    pub(super) fn rekey_kek(
        &mut self,
        now: Millis,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        let Some(chain) = self.kek.as_ref().map(|k| k.next_spis.clone()) else {
            return Err(GcksError::NoRekeySa);
        };
        if self.join_flush_at.is_some() {
            // The pending join flush moves everyone to a new KEK anyway.
            return self.flush_joins(now, rng, actions);
        }
        let mut taken = used.to_vec();
        taken.extend(self.spis());
        let next = self.new_kek(now, Some(&chain), &taken, rng)?;
        self.switch_kek(now, next, Vec::new(), rng, actions)
    }

    fn replace_teks(
        &mut self,
        now: Millis,
        which: &[usize],
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        if which.is_empty() {
            return Ok(());
        }
        if self.join_flush_at.is_some() {
            self.flush_joins(now, rng, actions)?;
        }
        let dtd = Millis::from(self.cfg.group_wide.dtd_secs) * 1000;
        let mut new = Vec::new();
        let mut deleted = Vec::new();
        for &i in which {
            let mut taken = used.to_vec();
            taken.extend(self.spis());
            taken.extend(new.iter().map(|t: &Tek| t.sa(&self.cfg)));
            let old = &self.teks[i];
            let mut tek = self.new_tek(now, old.policy, Some(old.next_spi), &taken, rng)?;
            tek.sender = old.sender.clone();
            deleted.push(old.sa(&self.cfg));
            new.push(tek);
        }
        for &i in which {
            self.teks[i].retire_at = Some(now + dtd);
        }
        let deletes = Delete::for_sas(&deleted);
        // Replaced before they were announced: the new ones are.
        let replaced: Vec<u32> = which.iter().map(|&i| self.teks[i].spi).collect();
        self.unannounced.retain(|spi| !replaced.contains(spi));
        let refs: Vec<&Tek> = new.iter().collect();
        self.send_teks(now, &refs, &deletes, Audience::All, rng, actions)?;
        info!("{}: rekeyed {} Data-Security SA(s)", self.name(), new.len());
        self.teks.extend(new);
        Ok(())
    }

    /// Sends `new` TEKs and `deletes` to the group: one GSA_REKEY (keys
    /// under the current Rekey SA's GSK_w) and a GSA_INBAND_REKEY to each
    /// inband member (keys under its IKE SA's GSK_w, §2.4.2); or to the
    /// inband members only, but one.
    fn send_teks(
        &mut self,
        now: Millis,
        new: &[&Tek],
        deletes: &[Delete],
        to: Audience,
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        if new.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let skip = match to {
            Audience::All => None,
            Audience::Inband { skip } => skip,
        };
        if let Some(kek) = &self.kek
            && to == Audience::All
            && self.multicast_members()
        {
            let kwa = self.cfg.rekey.as_ref().expect("KEK").kwa_alg();
            let payloads = if new.is_empty() {
                deletes.iter().cloned().map(Payload::Delete).collect()
            } else {
                self.tek_rekey_payloads(now, new, (&kek.gsk_w, kwa), true, deletes)?
            };
            self.send_rekey(now, &payloads, rng, actions)?;
        }
        for id in &self.inband {
            let Some(Member {
                ike_kwk: Some((kwk, kwa)),
                ..
            }) = self.members.get(id)
            else {
                continue;
            };
            if Some(*id) == skip {
                continue;
            }
            let payloads = if new.is_empty() {
                deletes.iter().cloned().map(Payload::Delete).collect()
            } else {
                self.tek_rekey_payloads(now, new, (kwk, *kwa), false, deletes)?
            };
            actions.push_back(GcksAction::InbandRekey {
                member: *id,
                payloads,
            });
        }
        Ok(())
    }

    /// Tells the multicast members of the per-sender SAs they have not
    /// heard of (`unannounced`): after a join flush, or at once when none
    /// is pending.
    fn announce(
        &mut self,
        now: Millis,
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        if self.unannounced.is_empty() || self.join_flush_at.is_some() {
            return Ok(());
        }
        let spis = std::mem::take(&mut self.unannounced);
        let teks: Vec<&Tek> = self
            .teks
            .iter()
            .filter(|t| spis.contains(&t.spi) && t.retire_at.is_none())
            .collect();
        if teks.is_empty() {
            return Ok(());
        }
        let Some(kek) = &self.kek else {
            return Ok(());
        };
        if !self.multicast_members() {
            return Ok(());
        }
        let kwa = self.cfg.rekey.as_ref().expect("KEK").kwa_alg();
        let payloads = self.tek_rekey_payloads(now, &teks, (&kek.gsk_w, kwa), true, &[])?;
        info!(
            "{}: announcing {} sender SA(s) to the group",
            self.name(),
            teks.len()
        );
        self.send_rekey(now, &payloads, rng, actions)
    }

    // ---- membership changes ----

    pub(super) fn exclude(
        &mut self,
        now: Millis,
        id: MemberId,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        let m = self.members.get(&id).ok_or(GcksError::UnknownMember)?;
        if !m.inband && self.lkh.is_none() {
            return Err(GcksError::ExclusionNeedsLkh);
        }
        info!("{}: excluding {}", self.name(), m.identity);
        self.excluded.insert(m.identity.clone());
        self.remove_member(now, id, used, rng, actions);
        actions.push_back(GcksAction::CloseIkeSa { member: id });
        Ok(())
    }

    /// Removes a member. Multicast members of an LKH group lose their path
    /// keys: a new KEK under the replaced tree keys, then new TEKs under the
    /// new KEK (§3.2.1, M038, M039). Inband members simply stop getting
    /// rekeys, and the others get new TEKs.
    fn remove_member(
        &mut self,
        now: Millis,
        id: MemberId,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) {
        let Some(m) = self.take_member(id) else {
            return;
        };
        // Its own SAs go with it (a Delete after the rekey, if any).
        let gone = self.retire_sender_sas(now, &m.identity);
        let result = (|| -> Result<(), GcksError> {
            let deletes = Delete::for_sas(&gone);
            if m.inband {
                actions.push_back(GcksAction::InbandRekey {
                    member: id,
                    payloads: vec![Payload::Delete(Delete::WholeGroup)],
                });
            } else if let Some(slot) = m.slot {
                if self.join_flush_at.is_some() {
                    self.flush_joins(now, rng, actions)?;
                }
                let tree = self.lkh.as_mut().expect("slots come from the tree");
                let wraps = tree
                    .exclude(slot, rng)
                    .map_err(|e| GcksError::Crypto(e.to_string()))?;
                let mut taken = used.to_vec();
                taken.extend(self.spis());
                let kek = self.kek.as_ref().expect("LKH groups have a Rekey SA");
                let chain = kek.next_spis.clone();
                let next = self.new_kek(now, Some(&chain), &taken, rng)?;
                self.switch_kek(now, next, wraps, rng, actions)?;
            } else {
                // A flat multicast member leaving needs no rekey: nothing it
                // holds is its own, but its sender SAs.
                return self.send_teks(now, &[], &deletes, Audience::All, rng, actions);
            }
            let current: Vec<usize> = (0..self.teks.len())
                .filter(|&i| self.teks[i].retire_at.is_none())
                .collect();
            self.replace_teks(now, &current, used, rng, actions)?;
            self.send_teks(now, &[], &deletes, Audience::All, rng, actions)
        })();
        if let Err(e) = result {
            warn!(
                "{}: rekey after {} left failed: {e}",
                self.name(),
                m.identity
            );
        }
    }

    /// Excludes every member and starts the group over with new SAs, an
    /// empty key tree and Sender-IDs from zero (§2.5.1 item 5, M032): the
    /// Sender-IDs have run out, and one may be handed out again only under
    /// keys nobody has used. A Delete of every Data-Security SA and of the
    /// Rekey SA with SPI zero (§2.4.3) goes out on the current Rekey SA and
    /// to each inband member, so everyone registers again.
    fn start_over(
        &mut self,
        now: Millis,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        warn!(
            "{}: Sender-IDs exhausted: excluding all {} members, starting over",
            self.name(),
            self.members.len()
        );
        let mut deletes = Vec::new();
        for protocol in [TekProtocol::Esp, TekProtocol::Ah] {
            if self.cfg.teks.iter().any(|t| t.protocol == protocol) {
                deletes.push(Payload::Delete(match protocol {
                    TekProtocol::Esp => Delete::Esp(vec![0]),
                    TekProtocol::Ah => Delete::Ah(vec![0]),
                }));
            }
        }
        deletes.push(Payload::Delete(Delete::Rekey(vec![RekeySpi([0; 16])])));
        if self.kek.is_some() && self.multicast_members() {
            self.send_rekey(now, &deletes, rng, actions)?;
        }
        for id in &self.inband {
            actions.push_back(GcksAction::InbandRekey {
                member: *id,
                payloads: deletes.clone(),
            });
        }
        // A group as new, on SPIs other than the old ones. The old TEKs go
        // at once: whoever registers from now on must not get one, under
        // which its new Sender-ID may already be in use. Copies still due
        // on the old Rekey SA, the operator's exclusions and the rekey
        // history stay.
        let mut taken = used.to_vec();
        taken.extend(self.spis());
        let fresh = Group::new(now, self.cfg.clone(), &taken, rng)?;
        *self = Group {
            retransmits: std::mem::take(&mut self.retransmits),
            recent_rekeys: std::mem::take(&mut self.recent_rekeys),
            excluded: std::mem::take(&mut self.excluded),
            ..fresh
        };
        Ok(())
    }

    /// Moves member `old` to the rekeyed IKE SA `new`, with its GSK_w for
    /// inband rekeys. Whether `old` was a member.
    pub(super) fn member_rekeyed(
        &mut self,
        old: MemberId,
        new: MemberId,
        (gsk_w, kwa): (&Secret, KeyWrapAlg),
    ) -> bool {
        let Some(mut m) = self.take_member(old) else {
            return false;
        };
        if m.inband {
            m.ike_kwk = Some((gsk_w.clone(), kwa));
        }
        debug!("{}: {} moves to IKE SA {}", self.name(), m.identity, new.0);
        self.add_member(new, m);
        true
    }

    pub(super) fn ike_sa_down(
        &mut self,
        now: Millis,
        id: MemberId,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) {
        if self.members.get(&id).is_some_and(|m| m.inband) {
            let queued = actions.len();
            self.remove_member(now, id, used, rng, actions);
            // Its IKE SA is gone: no Delete notice can reach it.
            let mut i = queued;
            while i < actions.len() {
                if matches!(&actions[i], GcksAction::InbandRekey { member, .. } if *member == id) {
                    actions.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    // ---- timers ----

    pub(super) fn next_deadline(&self) -> Option<Millis> {
        let margin = Millis::from(self.cfg.rekey_margin_secs) * 1000;
        let kek = self.kek.as_ref().map(|k| k.expires.saturating_sub(margin));
        let teks = self.teks.iter().map(|t| match t.retire_at {
            Some(r) => r.min(t.expires),
            None => t.expires.saturating_sub(margin),
        });
        let retransmit = self.retransmits.front().map(|(at, _)| *at);
        kek.into_iter()
            .chain(teks)
            .chain(retransmit)
            .chain(self.join_flush_at)
            .min()
    }

    pub(super) fn on_timer(
        &mut self,
        now: Millis,
        used: &[SaRef],
        rng: &mut dyn Rng,
        actions: &mut VecDeque<GcksAction>,
    ) -> Result<(), GcksError> {
        while let Some((at, _)) = self.retransmits.front() {
            if *at > now {
                break;
            }
            let (_, action) = self.retransmits.pop_front().expect("peeked");
            actions.push_back(action);
        }
        if self.join_flush_at.is_some_and(|at| at <= now) {
            self.flush_joins(now, rng, actions)?;
        }
        let margin = Millis::from(self.cfg.rekey_margin_secs) * 1000;
        if self
            .kek
            .as_ref()
            .is_some_and(|kek| kek.expires.saturating_sub(margin) <= now)
        {
            self.rekey_kek(now, used, rng, actions)?;
        }
        self.teks
            .retain(|t| t.retire_at.is_none_or(|r| r > now) && t.expires > now);
        let due: Vec<usize> = (0..self.teks.len())
            .filter(|&i| {
                let t = &self.teks[i];
                t.retire_at.is_none() && t.expires.saturating_sub(margin) <= now
            })
            .collect();
        self.replace_teks(now, &due, used, rng, actions)?;
        // A TEK policy whose SA expired without replacement starts over
        // (a per-sender SA with its sender's next registration).
        for policy in 0..self.cfg.teks.len() {
            if !self.cfg.teks[policy].per_sender && !self.teks.iter().any(|t| t.policy == policy) {
                warn!("{}: TEK {} expired unreplaced", self.name(), policy);
                let mut taken = used.to_vec();
                taken.extend(self.spis());
                let tek = self.new_tek(now, policy, None, &taken, rng)?;
                self.teks.push(tek);
            }
        }
        Ok(())
    }

    pub(super) fn status(&self, now: Millis) -> GroupStatus {
        let mut members: Vec<(u64, String, bool)> = self
            .members
            .iter()
            .map(|(id, m)| (id.0, m.identity.clone(), m.sender))
            .collect();
        members.sort();
        GroupStatus {
            id: self.cfg.id.clone(),
            members,
            rekey_spi: self.kek.as_ref().map(|k| k.spi),
            rekey_expires_in: self.kek.as_ref().map(|k| k.expires.saturating_sub(now)),
            next_message_id: self.kek.as_ref().map(|k| k.next_message_id),
            teks: self
                .live_teks(now)
                .map(|t| {
                    (
                        t.sa(&self.cfg).protocol(),
                        t.spi,
                        t.expires.saturating_sub(now),
                    )
                })
                .collect(),
            recent_rekeys: self.recent_rekeys.iter().copied().collect(),
            excluded: self.excluded.iter().cloned().collect(),
        }
    }

    /// Lets an excluded identity register again; false if it was not excluded.
    pub(super) fn readmit(&mut self, identity: &str) -> bool {
        let found = self.excluded.remove(identity);
        if found {
            info!("{}: {} may register again", self.name(), identity);
        }
        found
    }
}
