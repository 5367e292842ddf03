//! The GM (group member) of one group as a sans-I/O engine.
//!
//! The host feeds it the registration response, GSA_REKEY datagrams,
//! GSA_INBAND_REKEY payloads and the time; it answers with [`GmAction`]s:
//! SAs to install in the kernel or delete, the Rekey SA to listen on, and
//! when to register again. It never installs what it could not verify.

mod keypath;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use log::{debug, info, warn};

use keypath::Unwrapper;
pub use keypath::WorkingKeyPath;

use crate::crypto::{
    CryptoError, EncrAlg, IntegAlg, KeyWrapAlg, Rng, Secret, SigAlg, SkProtection, VerifyingKey,
    split_data_keymat, split_rekey_keymat,
};
use crate::iana::{
    EncrId, ExchangeType, GcauthId, IntegId, KwaId, NON_ESP_MARKER, NotifyType, PORT_IKE_NATT,
    ProtocolId, SnId, TransformType,
};
use crate::ike_sa::{IkeKeys, Millis};
use crate::policy::Mode;
use crate::rekey_message::{self, RekeyError, RekeyVerifier};
use crate::wire::{
    DecodeError, Delete, Direction as WireDirection, GroupId, Gsa, GsaPolicy, Kd, Notify, Payload,
    RekeySpi, SaPayload, SaRef, TrafficSelector, check_exchange,
};

/// Longest random wait before registering again after an exclusion
/// (§2.4.3 recommends waiting "some randomly chosen time").
const REREGISTER_JITTER: Millis = 5000;
/// How long before an SA expires without replacement the GM registers
/// again (soft lifetime, §2.4.1.4): 30 s, or a tenth of a shorter
/// lifetime, so the GCKS's own rekey ahead of expiry comes first.
const SOFT_LIFETIME_MARGIN: Millis = 30_000;

/// When an SA of `lifetime_secs` installed at `now` is about to expire.
fn soft_expiry(now: Millis, lifetime_secs: u32) -> Millis {
    let life = Millis::from(lifetime_secs) * 1000;
    now + life - SOFT_LIFETIME_MARGIN.min(life / 10)
}
/// A registration asked for and neither answered nor reported failed
/// ([`Gm::registration_failed`]) is asked for again after this long;
/// meanwhile further reasons do not repeat the request. Longer than
/// charon's IKE retransmissions give up after (165 s by default), which
/// report a failure themselves.
const REREGISTER_RETRY: Millis = 180_000;
/// Wait before the first retry of a failed registration; it doubles with
/// each failure in a row up to [`RETRY_MAX`].
const RETRY_BASE: Millis = 5_000;
const RETRY_MAX: Millis = 300_000;

/// What this member does with the group's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    pub receive: bool,
    pub send: bool,
}

/// A GM's configuration for one group.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    pub group: GroupId,
    pub role: Role,
    /// Sender-IDs to ask for (§2.5.1: one per encryption module).
    pub sender_ids: u32,
    /// What the GM will accept, sent as SAg (RECOMMENDED, §2.3.3).
    pub offer: Option<SaPayload>,
}

/// Direction of a Data-Security SA in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaDirection {
    Inbound,
    Outbound,
}

/// A Data-Security SA for the kernel (XFRM state and policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TekInstall {
    pub sa: SaRef,
    pub direction: SaDirection,
    pub src: TrafficSelector,
    pub dst: TrafficSelector,
    pub mode: Mode,
    pub encr: Option<(EncrId, Option<u16>)>,
    pub integ: IntegId,
    pub encr_key: Secret,
    pub integ_key: Secret,
    pub lifetime_secs: u32,
    /// Zero when sequence numbers are not unique (several senders).
    pub replay_window: u32,
}

/// Why the GM asks to register again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReregisterReason {
    /// A GSA_REKEY was lost: one arrived on an SPI announced in
    /// GSA_NEXT_SPI, or above the next Message ID of its Rekey SA.
    LostRekey,
    /// An SA is about to expire and nothing replaced it.
    Expiring,
    /// A sender got a counter-mode TEK but holds no Sender-ID (M025, M026).
    NoSenderId,
    /// A Sender-ID does not fit the group's Sender-ID bits (M033).
    SenderIdTooWide,
    /// The GCKS deleted the Rekey SA with SPI zero, or the key tree left
    /// this member out (§2.4.3, §3.3).
    Excluded,
    /// The last registration failed (GCKS unreachable or refusing): retry
    /// after a backoff.
    Retry,
    /// The IKE SA an inband group's rekeys come over went down.
    IkeSaLost,
}

/// Something the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GmAction {
    Install(TekInstall),
    Delete {
        sa: SaRef,
        direction: SaDirection,
    },
    /// Receive GSA_REKEY for this Rekey SA on this multicast address.
    ListenRekey {
        spi: RekeySpi,
        dst: SocketAddr,
    },
    StopRekey {
        spi: RekeySpi,
    },
    /// Register again (GSA_REGISTRATION on a kept IKE SA, or IKE_SA_INIT +
    /// GSA_AUTH).
    Reregister {
        reason: ReregisterReason,
    },
}

/// Why a message from the GCKS was not taken. The GM's state is unchanged.
#[derive(Debug)]
#[non_exhaustive]
pub enum GmError {
    /// The GCKS refused the registration with this notification.
    Refused(NotifyType),
    Decode(DecodeError),
    Rekey(RekeyError),
    Crypto(CryptoError),
    /// A GSA_REKEY for a Rekey SA this GM does not hold.
    UnknownRekeySa(RekeySpi),
    /// A GSA_REKEY whose Message ID is not above the last one (M109).
    Replay {
        message_id: u32,
        last: Option<u32>,
    },
    /// The policy is not one this GM can use.
    Unacceptable(&'static str),
    /// A rekey before any registration.
    NotRegistered,
}

impl core::fmt::Display for GmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Refused(n) => write!(f, "registration refused: {n}"),
            Self::Decode(e) => write!(f, "malformed: {e}"),
            Self::Rekey(e) => write!(f, "{e}"),
            Self::Crypto(e) => write!(f, "keys: {e}"),
            Self::UnknownRekeySa(s) => write!(f, "GSA_REKEY for unknown Rekey SA {s:?}"),
            Self::Replay {
                message_id,
                last: Some(last),
            } => write!(
                f,
                "GSA_REKEY Message ID {message_id} replayed (last accepted {last})"
            ),
            Self::Replay {
                message_id,
                last: None,
            } => write!(
                f,
                "GSA_REKEY Message ID {message_id} below the Rekey SA's first"
            ),
            Self::Unacceptable(why) => write!(f, "unacceptable policy: {why}"),
            Self::NotRegistered => f.write_str("not registered"),
        }
    }
}

impl std::error::Error for GmError {}

impl From<DecodeError> for GmError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl From<CryptoError> for GmError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

impl From<RekeyError> for GmError {
    fn from(e: RekeyError) -> Self {
        Self::Rekey(e)
    }
}

/// A Rekey SA the GM listens on.
struct Kek {
    spi: RekeySpi,
    soft: Millis,
    sk: SkProtection,
    encr: EncrAlg,
    integ: IntegAlg,
    kwa: KeyWrapAlg,
    /// GSK_e (with the salt of AEAD ciphers) and GSK_a, kept only to be
    /// handed to a packet analyser on request ([`Gm::rekey_sa_keys`]).
    gsk_e: Secret,
    gsk_a: Secret,
    gsk_w: Secret,
    expires: Millis,
    /// The first Message ID that may be accepted (GSA_INITIAL_MESSAGE_ID).
    min_message_id: u32,
    last_message_id: Option<u32>,
    next_spis: Vec<RekeySpi>,
    /// Set once replaced: deleted at this time (M027).
    delete_at: Option<Millis>,
    /// The UDP port its GSA_REKEY messages arrive on.
    port: u16,
}

impl Kek {
    /// The Message ID the next GSA_REKEY on this Rekey SA should carry.
    fn expected_message_id(&self) -> u32 {
        self.last_message_id.map_or(self.min_message_id, |l| {
            l.saturating_add(1).max(self.min_message_id)
        })
    }
}

/// A Data-Security SA the GM holds.
struct Tek {
    sa: SaRef,
    soft: Millis,
    expires: Millis,
    inbound: bool,
    outbound: bool,
    /// Outbound waits for ATD after a rekey; the keys wait with it.
    pending_out: Option<(Millis, TekInstall)>,
    delete_at: Option<Millis>,
}

/// What the registration or rekey established about the group's policy.
#[derive(Clone)]
struct Policy {
    mode: Mode,
    atd: Millis,
    dtd: Millis,
    sender_id_bits: Option<u16>,
    /// KWA of the Rekey SA, which key-tree keys also use.
    rekey_kwa: Option<KeyWrapAlg>,
    auth: Option<VerifyingKey>,
}

/// One group membership.
pub struct Gm {
    cfg: MembershipConfig,
    rng: Box<dyn Rng + Send>,
    registered: bool,
    policy: Option<Policy>,
    keks: Vec<Kek>,
    teks: Vec<Tek>,
    path: WorkingKeyPath,
    sender_ids: Vec<u32>,
    /// This member's address on the network the group's traffic uses,
    /// which tells its own per-sender SA from the others'.
    local: Option<IpAddr>,
    /// Highest Message ID taken per Rekey SA, kept across registrations
    /// (M011, M012).
    seen_message_ids: Vec<(RekeySpi, u32)>,
    reregister_at: Option<(Millis, ReregisterReason)>,
    /// When the last `Reregister` went out, until a registration succeeds.
    reregister_sent: Option<(Millis, ReregisterReason)>,
    /// Registrations failed in a row, for the retry backoff.
    failures: u32,
    /// The time of the last `handle_timeout`: soft lifetimes already
    /// checked then are no deadlines any more (the host would spin on them).
    checked: Millis,
    actions: VecDeque<GmAction>,
}

impl core::fmt::Debug for Gm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gm")
            .field("group", &self.cfg.group)
            .field("registered", &self.registered)
            .field("keks", &self.keks.iter().map(|k| k.spi).collect::<Vec<_>>())
            .field("teks", &self.teks.iter().map(|t| t.sa).collect::<Vec<_>>())
            .field("path", &self.path)
            .finish()
    }
}

/// What an operator sees of a membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GmStatus {
    pub group: GroupId,
    pub registered: bool,
    pub rekey_spis: Vec<RekeySpi>,
    pub last_message_id: Option<u32>,
    /// (SA, inbound installed, outbound installed, ms to expiry)
    pub teks: Vec<(SaRef, bool, bool, Millis)>,
    pub sender_ids: Vec<u32>,
    pub key_path: Vec<u32>,
}

/// The algorithms and keys of a Rekey SA the GM holds (RFC 9838 §3.4),
/// for tools outside the protocol: a packet analyser decrypting GSA_REKEY
/// (Wireshark's IKEv2 decryption table), a test forging messages. `Debug`
/// shows the keys' lengths only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RekeySaSecrets {
    pub spi: RekeySpi,
    pub encr: EncrAlg,
    /// [`IntegAlg::NONE`] with an AEAD cipher.
    pub integ: IntegAlg,
    pub kwa: KeyWrapAlg,
    /// GSK_e: the encryption key followed by its salt (AEAD ciphers).
    pub gsk_e: Secret,
    /// GSK_a: the integrity key; empty with an AEAD cipher.
    pub gsk_a: Secret,
    /// GSK_w: the default key wrap key of the Rekey SA.
    pub gsk_w: Secret,
}

/// The SA payloads and keys of one message, resolved and checked.
struct Update {
    kek: Option<(GsaPolicy, Secret)>,
    teks: Vec<(GsaPolicy, Secret)>,
    deletes: Vec<Delete>,
}

impl Gm {
    pub fn new(cfg: MembershipConfig, rng: Box<dyn Rng + Send>) -> Self {
        Self {
            cfg,
            rng,
            registered: false,
            policy: None,
            keks: Vec::new(),
            teks: Vec::new(),
            path: WorkingKeyPath::default(),
            sender_ids: Vec::new(),
            local: None,
            seen_message_ids: Vec::new(),
            reregister_at: None,
            reregister_sent: None,
            failures: 0,
            checked: 0,
            actions: VecDeque::new(),
        }
    }

    pub fn group(&self) -> &GroupId {
        &self.cfg.group
    }

    /// Tells the GM its own address (its IKE SA's), by which it knows
    /// which per-sender SA is its own to send on. Without one it sends on
    /// every single-sender SA it gets.
    pub fn set_local_address(&mut self, addr: Option<IpAddr>) {
        self.local = addr;
    }

    /// The G-IKEv2 payloads of a GSA_AUTH or GSA_REGISTRATION request.
    pub fn registration_payloads(&self) -> Vec<Payload> {
        let mut out = vec![Payload::Idg(self.cfg.group.clone())];
        if let Some(offer) = &self.cfg.offer {
            out.push(Payload::Sag(offer.clone()));
        }
        if self.cfg.role.send {
            // M003/M005, with the count of M096 (at least one, §2.5.1).
            let count = self.cfg.sender_ids.max(1);
            out.push(Payload::Notify(Notify::group_sender(count)));
        }
        out
    }

    /// The payloads that tell the GCKS this GM leaves or cannot use the
    /// policy (Figure 8).
    pub fn leave_payloads(&self, why: NotifyType) -> Vec<Payload> {
        vec![
            Payload::Idg(self.cfg.group.clone()),
            Payload::Notify(Notify::plain(why)),
        ]
    }

    /// Takes the GSA_AUTH or GSA_REGISTRATION response.
    pub fn handle_registration_response(
        &mut self,
        now: Millis,
        exchange: ExchangeType,
        payloads: &[Payload],
        ike: IkeKeys<'_>,
    ) -> Result<(), GmError> {
        if let Some(n) = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.is_error() => Some(n),
            _ => None,
        }) {
            return Err(GmError::Refused(n.ty));
        }
        check_exchange(exchange, WireDirection::Response, payloads)?;
        let (gsa, kd) = gsa_kd(payloads).ok_or(DecodeError::Missing {
            what: "GSA and KD in the registration response",
        })?;
        let mode = if payloads
            .iter()
            .any(|p| matches!(p, Payload::Notify(n) if n.ty == NotifyType::USE_TRANSPORT_MODE))
        {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        let policy = self.read_policy(gsa, kd, mode, true)?;
        let gsk_w = ike.default_kwk()?;
        let member_bag = kd.member_bag();
        let wrap_keys = member_bag.map_or(&[][..], |m| &m.wrap_keys);
        let u = Unwrapper {
            default: (&gsk_w, ike.kwa),
            tree_kwa: policy.rekey_kwa,
            wrap_keys,
        };
        // M014: everything from an earlier registration is replaced; a
        // fresh path is built from this response alone.
        let mut path = WorkingKeyPath::default();
        let update = self.resolve(gsa, kd, &u, &mut path)?;
        let sender_ids = member_bag.map(|m| m.sender_ids.clone()).unwrap_or_default();
        if let Some(bits) = policy.sender_id_bits
            && sender_ids.iter().any(|&id| bits < 32 && id >> bits != 0)
        {
            self.schedule_reregister(now, ReregisterReason::SenderIdTooWide, 0);
            return Err(GmError::Unacceptable(
                "Sender-ID wider than GWP_SENDER_ID_BITS",
            ));
        }

        // From here on nothing can fail: replace the old state (M014).
        for kek in self.keks.drain(..) {
            self.actions.push_back(GmAction::StopRekey { spi: kek.spi });
        }
        let old: Vec<Tek> = self.teks.drain(..).collect();
        self.policy = Some(policy);
        self.sender_ids = sender_ids;
        self.path = path;
        self.registered = true;
        self.reregister_at = None;
        self.reregister_sent = None;
        self.failures = 0;
        for t in old {
            // SAs the new policy still holds are installed again below.
            self.delete_now(&t);
        }
        self.apply(now, update, true)?;
        info!(
            "registered to {} ({} TEK(s), Rekey SA {:?})",
            String::from_utf8_lossy(&self.cfg.group.data),
            self.teks.len(),
            self.keks.first().map(|k| k.spi)
        );
        Ok(())
    }

    /// Takes a GSA_REKEY datagram as it arrived: on a Rekey SA of port
    /// 4500 it starts with the non-ESP marker (§2.4.1.1), dropped here.
    pub fn handle_rekey(&mut self, now: Millis, datagram: &[u8]) -> Result<(), GmError> {
        let datagram = match datagram.strip_prefix(&NON_ESP_MARKER[..]) {
            Some(rest) if self.keks.iter().any(|k| k.port == PORT_IKE_NATT) => rest,
            _ => datagram,
        };
        let (spi, message_id) = rekey_message::peek(datagram)?;
        let Some(i) = self.keks.iter().position(|k| k.spi == spi) else {
            if self.keks.iter().any(|k| k.next_spis.contains(&spi)) {
                warn!("GSA_REKEY on announced SPI {spi:?}: a rekey was lost");
                let delay = self.jitter();
                self.schedule_reregister(now, ReregisterReason::LostRekey, delay);
            }
            return Err(GmError::UnknownRekeySa(spi));
        };
        let policy = self.policy.clone().ok_or(GmError::NotRegistered)?;
        let check_replay = |k: &Kek| {
            if message_id < k.min_message_id || k.last_message_id.is_some_and(|l| message_id <= l) {
                Err(GmError::Replay {
                    message_id,
                    last: k.last_message_id,
                })
            } else {
                Ok(())
            }
        };
        check_replay(&self.keks[i])?;
        let verifier = match &policy.auth {
            Some(k) => RekeyVerifier::DigitalSignature(k),
            None => RekeyVerifier::Implicit,
        };
        let opened = rekey_message::open(datagram, &self.keks[i].sk, verifier)?;
        self.check_gap(now, i, message_id, &opened.payloads);
        let (gsa, kd) = match gsa_kd(&opened.payloads) {
            Some((g, k)) => (Some(g), Some(k)),
            None => (None, None),
        };
        let mut new_policy = policy.clone();
        let mut new_path = None;
        let update = match (gsa, kd) {
            (Some(gsa), Some(kd)) => {
                new_policy = self.read_policy(gsa, kd, policy.mode, false)?;
                new_policy.auth = policy.auth.clone();
                new_policy.sender_id_bits = policy.sender_id_bits;
                let wrap_keys = kd.member_bag().map_or(&[][..], |m| &m.wrap_keys);
                let kek = &self.keks[i];
                let u = Unwrapper {
                    // The receiving Rekey SA's own KWA: a message on it
                    // may carry a next Rekey SA whose policy names another.
                    default: (&kek.gsk_w, kek.kwa),
                    tree_kwa: policy.rekey_kwa,
                    wrap_keys,
                };
                let mut path = self.path.clone();
                match self.resolve(gsa, kd, &u, &mut path) {
                    Ok(update) => {
                        new_path = Some(path);
                        update
                    }
                    Err(e) if gsa.kek().is_some() => {
                        // §3.3: no key path to the new Rekey SA means this
                        // member was excluded.
                        warn!("cannot follow the new Rekey SA: excluded ({e})");
                        self.keks[i].last_message_id = Some(message_id);
                        self.note_message_id(spi, message_id);
                        let delay = self.jitter();
                        self.schedule_reregister(now, ReregisterReason::Excluded, delay);
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => Update {
                kek: None,
                teks: Vec::new(),
                deletes: Vec::new(),
            },
        };
        let deletes: Vec<Delete> = opened
            .payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Delete(d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        // A new AUTH_KEY rolls the GCKS's signing key over (§2.4.1).
        if let Some(spki) = kd
            .and_then(|k| k.member_bag())
            .and_then(|m| m.auth_key.as_ref())
            && let Some(old) = &policy.auth
        {
            new_policy.auth = Some(VerifyingKey::from_spki_der(spki, old.alg())?);
        }
        // Accepted: only now does the state change, so a message refused
        // above (e.g. an unusable new AUTH_KEY) changed nothing.
        if let Some(path) = new_path {
            self.path = path;
        }
        self.keks[i].last_message_id = Some(message_id);
        self.note_message_id(spi, message_id);
        self.policy = Some(new_policy);
        debug!("GSA_REKEY {message_id} on {spi:?} accepted");
        self.apply(now, Update { deletes, ..update }, false)
    }

    /// Takes the GSA, KD and Delete payloads of a GSA_INBAND_REKEY request;
    /// the host answers with an empty response once this returns Ok.
    pub fn handle_inband_rekey(
        &mut self,
        now: Millis,
        payloads: &[Payload],
        ike: IkeKeys<'_>,
    ) -> Result<(), GmError> {
        check_exchange(
            ExchangeType::GSA_INBAND_REKEY,
            WireDirection::Request,
            payloads,
        )?;
        let policy = self.policy.clone().ok_or(GmError::NotRegistered)?;
        let mut update = Update {
            kek: None,
            teks: Vec::new(),
            deletes: Vec::new(),
        };
        if let Some((gsa, kd)) = gsa_kd(payloads) {
            let gsk_w = ike.default_kwk()?;
            let u = Unwrapper {
                default: (&gsk_w, ike.kwa),
                tree_kwa: policy.rekey_kwa,
                wrap_keys: &[],
            };
            let mut path = self.path.clone();
            update = self.resolve(gsa, kd, &u, &mut path)?;
            let mut p = self.read_policy(gsa, kd, policy.mode, false)?;
            p.auth = policy.auth.clone();
            p.sender_id_bits = policy.sender_id_bits;
            // read_policy keeps the old KWA unless a KEK policy names one:
            // the one `check_keymat_len` split the new keys with.
            self.policy = Some(p);
        }
        update.deletes = payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Delete(d) => Some(d.clone()),
                _ => None,
            })
            .collect();
        self.apply(now, update, false)
    }

    /// §2.4.1.3: each GSA_REKEY on a Rekey SA carries the Message ID one
    /// above the previous one, so an authentic message above the one
    /// expected means the GM missed one, and what it carried: register
    /// again, after a random wait so that the members who missed it do
    /// not all return at once. The GCKS names IDs it skipped itself (a
    /// restart, `NotifyType::SKIPPED_MESSAGE_IDS`), which are no gap.
    fn check_gap(&mut self, now: Millis, kek: usize, message_id: u32, payloads: &[Payload]) {
        let expected = self.keks[kek].expected_message_id();
        if message_id <= expected {
            return;
        }
        let spi = self.keks[kek].spi;
        let skipped_from = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) => n.skipped_from(),
            _ => None,
        });
        if skipped_from.is_some_and(|from| from <= expected) {
            debug!("GSA_REKEY {message_id} on {spi:?}: IDs from {expected} skipped by the GCKS");
            return;
        }
        warn!("GSA_REKEY {message_id} on {spi:?}, expected {expected}: a rekey was lost");
        let delay = self.jitter();
        self.schedule_reregister(now, ReregisterReason::LostRekey, delay);
    }

    fn note_message_id(&mut self, spi: RekeySpi, id: u32) {
        match self.seen_message_ids.iter_mut().find(|(s, _)| *s == spi) {
            Some((_, seen)) => *seen = (*seen).max(id),
            None => self.seen_message_ids.push((spi, id)),
        }
    }

    /// A registration attempt failed: no IKE SA with the GCKS, or no
    /// usable answer on it. The GM keeps its SAs until they expire and
    /// tries again after an exponential backoff with jitter, so that a
    /// group's members do not all return at once when the GCKS does.
    /// Returns the wait.
    pub fn registration_failed(&mut self, now: Millis) -> Millis {
        let shift = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let cap = RETRY_BASE.saturating_mul(1 << shift).min(RETRY_MAX);
        let mut b = [0; 8];
        let r = match self.rng.fill(&mut b) {
            Ok(()) => u64::from_be_bytes(b),
            Err(_) => 0,
        };
        // between half the cap and the cap
        let delay = cap / 2 + r % (cap / 2 + 1);
        self.reregister_sent = None;
        if self
            .reregister_at
            .is_some_and(|(_, r)| r == ReregisterReason::Excluded)
        {
            return self
                .reregister_at
                .map_or(0, |(at, _)| at.saturating_sub(now));
        }
        self.reregister_at = Some((now + delay, ReregisterReason::Retry));
        delay
    }

    /// The IKE SA this membership registered on went down. A group
    /// rekeyed inband (no Rekey SA) has lost its only channel: the GM
    /// registers again after a short random wait (as after a first
    /// failure), keeping its SAs meanwhile. Multicast groups need no IKE
    /// SA. Returns whether it will register again.
    pub fn ike_sa_down(&mut self, now: Millis) -> bool {
        if !self.registered || !self.keks.is_empty() || self.reregister_at.is_some() {
            return false;
        }
        let mut b = [0; 8];
        let r = self.rng.fill(&mut b).map_or(0, |()| u64::from_be_bytes(b));
        let delay = RETRY_BASE / 2 + r % (RETRY_BASE / 2 + 1);
        self.reregister_sent = None;
        self.reregister_at = Some((now + delay, ReregisterReason::IkeSaLost));
        true
    }

    /// Registrations failed in a row since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn jitter(&mut self) -> Millis {
        let mut b = [0; 8];
        if self.rng.fill(&mut b).is_err() {
            return REREGISTER_JITTER / 2;
        }
        u64::from_be_bytes(b) % REREGISTER_JITTER
    }

    /// Reads the group-level policy of a GSA payload.
    fn read_policy(
        &self,
        gsa: &Gsa,
        kd: &Kd,
        mode: Mode,
        registration: bool,
    ) -> Result<Policy, GmError> {
        let old = self.policy.as_ref();
        let gw = gsa.group_wide();
        let mut p = Policy {
            mode,
            atd: gw
                .and_then(|g| g.atd)
                .map_or(old.map_or(0, |o| o.atd), |v| Millis::from(v) * 1000),
            dtd: gw
                .and_then(|g| g.dtd)
                .map_or(old.map_or(0, |o| o.dtd), |v| Millis::from(v) * 1000),
            sender_id_bits: gw.and_then(|g| g.sender_id_bits),
            rekey_kwa: old.and_then(|o| o.rekey_kwa),
            auth: None,
        };
        if let Some(kek) = gsa.kek() {
            let kwa = kek
                .transform(TransformType::KWA)
                .ok_or(DecodeError::Missing {
                    what: "KWA transform",
                })?;
            p.rekey_kwa = Some(KeyWrapAlg::from_id(KwaId(kwa.id))?);
            if registration {
                let gcauth = kek
                    .transform(TransformType::GCAUTH)
                    .ok_or(DecodeError::Missing {
                        what: "GCAUTH transform",
                    })?;
                if GcauthId(gcauth.id) == GcauthId::DIGITAL_SIGNATURE {
                    let alg_id = gcauth
                        .signature_algorithm_id()
                        .ok_or(DecodeError::Missing {
                            what: "Signature Algorithm Identifier",
                        })?;
                    let alg = SigAlg::from_algorithm_identifier(alg_id)?;
                    let spki = kd
                        .member_bag()
                        .and_then(|m| m.auth_key.as_ref())
                        .ok_or(DecodeError::Missing { what: "AUTH_KEY" })?;
                    // M081: the key's algorithm must match the identifier.
                    p.auth = Some(VerifyingKey::from_spki_der(spki, alg)?);
                } else if GcauthId(gcauth.id) != GcauthId::IMPLICIT {
                    return Err(GmError::Unacceptable("unknown GCAUTH method"));
                }
            }
        }
        Ok(p)
    }

    /// Matches key bags to policies by SPI and unwraps their keys (§2.3.3).
    fn resolve(
        &self,
        gsa: &Gsa,
        kd: &Kd,
        u: &Unwrapper<'_>,
        path: &mut WorkingKeyPath,
    ) -> Result<Update, GmError> {
        let mut update = Update {
            kek: None,
            teks: Vec::new(),
            deletes: Vec::new(),
        };
        // The Rekey SA first: its path update is what later keys build on.
        let mut order: Vec<&GsaPolicy> = gsa.kek().into_iter().collect();
        order.extend(gsa.teks());
        for p in order {
            let Some(bag) = kd.bag_for(&p.sa) else {
                // A policy restated without keys changes nothing here.
                continue;
            };
            let got = path.unwrap_sa_key(&bag.sa_keys, u)?;
            let keymat = path.update(got);
            check_keymat_len(p, &keymat)?;
            match p.sa {
                SaRef::Rekey(_) => update.kek = Some((p.clone(), keymat)),
                _ => update.teks.push((p.clone(), keymat)),
            }
        }
        Ok(update)
    }

    fn delete_now(&mut self, t: &Tek) {
        if t.inbound {
            self.actions.push_back(GmAction::Delete {
                sa: t.sa,
                direction: SaDirection::Inbound,
            });
        }
        if t.outbound {
            self.actions.push_back(GmAction::Delete {
                sa: t.sa,
                direction: SaDirection::Outbound,
            });
        }
    }

    /// Installs what a checked message brought and schedules deletions.
    fn apply(&mut self, now: Millis, update: Update, registration: bool) -> Result<(), GmError> {
        let policy = self.policy.clone().expect("set before apply");
        if let Some((p, keymat)) = update.kek {
            let SaRef::Rekey(spi) = p.sa else {
                unreachable!("kek() returns GIKE_UPDATE policies")
            };
            let encr_t = p
                .transform(TransformType::ENCR)
                .expect("checked by the decoder");
            let encr = EncrAlg::new(EncrId(encr_t.id), encr_t.key_length())?;
            let integ = match p.transform(TransformType::INTEG) {
                Some(t) => IntegAlg::new(IntegId(t.id))?,
                None => IntegAlg::NONE,
            };
            let kwa = policy.rekey_kwa.expect("set with the KEK policy");
            let keys = split_rekey_keymat(encr, integ, kwa, &keymat)?;
            let sk = SkProtection::new(encr, integ, &keys.gsk_e, &keys.gsk_a)?;
            let addr = p.dst.single_addr().expect("checked by the decoder");
            let port = p.dst.single_port().expect("checked by the decoder");
            let dtd = policy.dtd;
            for old in &mut self.keks {
                // M027: the Rekey SA this came over goes after DTD.
                old.delete_at.get_or_insert(now + dtd);
            }
            // M011/M012: the window starts at GSA_INITIAL_MESSAGE_ID, but
            // never below a Message ID already taken on this Rekey SA, so a
            // stale initial value (parallel registrations) changes nothing.
            let initial = p.initial_message_id().unwrap_or(0);
            let seen = self
                .seen_message_ids
                .iter()
                .find(|(s, _)| *s == spi)
                .map(|(_, m)| *m);
            self.keks.push(Kek {
                spi,
                sk,
                encr,
                integ,
                kwa,
                gsk_e: keys.gsk_e,
                gsk_a: keys.gsk_a,
                gsk_w: keys.gsk_w,
                expires: now + Millis::from(p.key_lifetime().unwrap_or(u32::MAX)) * 1000,
                soft: soft_expiry(now, p.key_lifetime().unwrap_or(u32::MAX)),
                min_message_id: initial,
                last_message_id: seen,
                next_spis: p
                    .next_spis()
                    .filter_map(|s| s.try_into().ok().map(RekeySpi))
                    .collect(),
                delete_at: None,
                port,
            });
            // M013: the Rekey SA is inbound only.
            self.actions.push_back(GmAction::ListenRekey {
                spi,
                dst: SocketAddr::new(addr, port),
            });
        }
        for d in &update.deletes {
            self.delete(now, d, &policy);
        }
        // M025, M026: a sender without a Sender-ID installs none of them
        // (it could not send on a counter-mode one) and registers again.
        if self.cfg.role.send
            && self.sender_ids.is_empty()
            && update.teks.iter().any(|(p, _)| is_counter_mode(p))
        {
            warn!("a counter-mode Data-Security SA but no Sender-ID: none installed");
            self.schedule_reregister(now, ReregisterReason::NoSenderId, 0);
            return Ok(());
        }
        for (p, keymat) in update.teks {
            self.install_tek(now, &p, &keymat, &policy, registration);
        }
        Ok(())
    }

    fn delete(&mut self, now: Millis, d: &Delete, policy: &Policy) {
        let at = now + policy.dtd;
        match d {
            Delete::WholeGroup => {
                info!("the GCKS deleted the whole group SA");
                for t in &mut self.teks {
                    t.delete_at.get_or_insert(now);
                }
                for k in &mut self.keks {
                    k.delete_at.get_or_insert(now);
                }
                self.registered = false;
                let delay = self.jitter();
                self.schedule_reregister(now, ReregisterReason::Excluded, delay);
            }
            sas => {
                for sa in &sas.sas() {
                    match sa {
                        // §2.4.3: the Rekey SA with SPI zero: excluded.
                        SaRef::Rekey(RekeySpi(s)) if *s == [0; 16] => {
                            info!("the GCKS excluded this member");
                            for k in &mut self.keks {
                                k.delete_at.get_or_insert(now);
                            }
                            self.registered = false;
                            let delay = self.jitter();
                            self.schedule_reregister(now, ReregisterReason::Excluded, delay);
                        }
                        SaRef::Rekey(spi) => {
                            for k in self.keks.iter_mut().filter(|k| k.spi == *spi) {
                                k.delete_at.get_or_insert(at);
                            }
                        }
                        SaRef::Esp(0) | SaRef::Ah(0) => {
                            let proto = sa.protocol();
                            for t in self.teks.iter_mut().filter(|t| t.sa.protocol() == proto) {
                                t.delete_at.get_or_insert(at);
                            }
                        }
                        // M028: deleted DTD after the new SA is installed.
                        _ => {
                            for t in self.teks.iter_mut().filter(|t| t.sa == *sa) {
                                t.delete_at.get_or_insert(at);
                            }
                        }
                    }
                }
            }
        }
    }

    fn install_tek(
        &mut self,
        now: Millis,
        p: &GsaPolicy,
        keymat: &Secret,
        policy: &Policy,
        registration: bool,
    ) {
        // Announced again (a sender hears of its own SA): nothing new.
        if self
            .teks
            .iter()
            .any(|t| t.sa == p.sa && t.delete_at.is_none())
        {
            debug!("{:?} is held already", p.sa);
            return;
        }
        let encr = p
            .transform(TransformType::ENCR)
            .map(|t| (EncrId(t.id), t.key_length()));
        let integ = p
            .transform(TransformType::INTEG)
            .map_or(IntegId::NONE, |t| IntegId(t.id));
        let encr_alg = encr.and_then(|(id, bits)| EncrAlg::new(id, bits).ok());
        let Ok(integ_alg) = IntegAlg::new(integ) else {
            warn!("{:?}: unsupported integrity algorithm", p.sa);
            return;
        };
        let Ok(keys) = split_data_keymat(encr_alg, integ_alg, keymat) else {
            warn!("{:?}: keying material does not fit the policy", p.sa);
            return;
        };
        let counter = is_counter_mode(p);
        let sn = p
            .transform(TransformType::SN)
            .map_or(SnId::SEQ32, |t| SnId(t.id));
        let lifetime = p.key_lifetime().unwrap_or(u32::MAX);
        let base = TekInstall {
            sa: p.sa,
            direction: SaDirection::Inbound,
            src: p.src,
            dst: p.dst,
            mode: policy.mode,
            encr,
            integ,
            encr_key: keys.encr,
            integ_key: keys.integ,
            lifetime_secs: lifetime,
            replay_window: if sn == SnId::SEQ32 { 32 } else { 0 },
        };
        let mut tek = Tek {
            sa: p.sa,
            expires: now + Millis::from(lifetime) * 1000,
            soft: soft_expiry(now, lifetime),
            inbound: false,
            outbound: false,
            pending_out: None,
            delete_at: None,
        };
        if self.cfg.role.receive {
            // M009: receivers install inbound only, immediately (§4.4.3.1.1).
            self.actions.push_back(GmAction::Install(base.clone()));
            tek.inbound = true;
        }
        // A single-sender SA (32-bit sequential numbers, M061) is sent on by
        // its sender only: the one whose address its source selector
        // names, as the GCKS narrows a per-sender SA's. An SA several
        // senders share in counter mode is not sent on at all: Linux cannot
        // put the Sender-ID into its IVs, which would repeat (§2.5).
        let single = sn == SnId::SEQ32;
        let mine = !single || self.local.is_none_or(|a| p.src.contains_addr(a));
        if self.cfg.role.send && mine && counter && !single {
            warn!(
                "{:?}: senders share this counter-mode SA and this kernel cannot keep \
                 their IVs apart: receiving only",
                p.sa
            );
        } else if self.cfg.role.send && mine {
            let out = TekInstall {
                direction: SaDirection::Outbound,
                replay_window: 0,
                ..base
            };
            // M010: senders install outbound; after ATD when rekeyed.
            if registration || policy.atd == 0 {
                self.actions.push_back(GmAction::Install(out));
                tek.outbound = true;
                self.retire_old_outbound(p.sa);
            } else {
                tek.pending_out = Some((now + policy.atd, out));
            }
        }
        self.teks.retain(|t| t.sa != p.sa);
        self.teks.push(tek);
    }

    /// A sender stops using older outbound SAs of the same policy once a
    /// new one is active (§4.4.3.1.1).
    fn retire_old_outbound(&mut self, new: SaRef) {
        let proto = new.protocol();
        for t in &mut self.teks {
            if t.sa != new && t.sa.protocol() == proto && t.outbound && t.delete_at.is_some() {
                t.outbound = false;
                self.actions.push_back(GmAction::Delete {
                    sa: t.sa,
                    direction: SaDirection::Outbound,
                });
            }
        }
    }

    fn schedule_reregister(&mut self, now: Millis, reason: ReregisterReason, delay: Millis) {
        if self
            .reregister_sent
            .is_some_and(|(sent, _)| now < sent + REREGISTER_RETRY)
        {
            return; // already asked; the answer is on its way
        }
        if self
            .reregister_at
            .is_some_and(|(_, r)| r == ReregisterReason::Excluded)
        {
            return; // keep the random wait of §2.4.3
        }
        let at = now + delay;
        if self.reregister_at.is_none_or(|(t, _)| at < t) {
            self.reregister_at = Some((at, reason));
        }
    }

    pub fn poll_timeout(&self) -> Option<Millis> {
        let pending = |soft: Millis| Some(soft).filter(|s| *s > self.checked);
        let keks = self
            .keks
            .iter()
            .flat_map(|k| [k.delete_at, pending(k.soft)]);
        let teks = self.teks.iter().flat_map(|t| {
            [
                t.delete_at,
                t.pending_out.as_ref().map(|(at, _)| *at),
                pending(t.soft),
                Some(t.expires),
            ]
        });
        keks.chain(teks)
            .flatten()
            .chain(self.reregister_at.map(|(at, _)| at))
            .chain(self.reregister_sent.map(|(at, _)| at + REREGISTER_RETRY))
            .min()
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        self.checked = self.checked.max(now);
        // Senders switch to new SAs after ATD.
        let mut activated = Vec::new();
        for t in &mut self.teks {
            if let Some((at, _)) = &t.pending_out
                && *at <= now
            {
                let (_, install) = t.pending_out.take().expect("checked");
                t.outbound = true;
                activated.push(t.sa);
                self.actions.push_back(GmAction::Install(install));
            }
        }
        for sa in activated {
            self.retire_old_outbound(sa);
        }
        // Deletions after DTD (M027, M028) and at hard expiry (M062).
        let mut gone = Vec::new();
        self.teks.retain(|t| {
            let due = t.delete_at.is_some_and(|at| at <= now) || t.expires <= now;
            if due {
                gone.push((t.sa, t.inbound, t.outbound));
            }
            !due
        });
        for (sa, inbound, outbound) in gone {
            for (on, direction) in [
                (inbound, SaDirection::Inbound),
                (outbound, SaDirection::Outbound),
            ] {
                if on {
                    self.actions.push_back(GmAction::Delete { sa, direction });
                }
            }
        }
        let mut stopped = Vec::new();
        self.keks.retain(|k| {
            let due = k.delete_at.is_some_and(|at| at <= now) || k.expires <= now;
            if due {
                stopped.push(k.spi);
            }
            !due
        });
        for spi in stopped {
            self.actions.push_back(GmAction::StopRekey { spi });
        }
        // Soft lifetime: an SA near expiry with no replacement in sight.
        if self.registered && self.reregister_at.is_none() {
            let kek_expiring = !self.keks.is_empty()
                && self
                    .keks
                    .iter()
                    .all(|k| k.delete_at.is_none() && k.soft <= now);
            let tek_expiring = !self.teks.is_empty()
                && self
                    .teks
                    .iter()
                    .all(|t| t.delete_at.is_none() && t.soft <= now);
            if kek_expiring || tek_expiring {
                self.schedule_reregister(now, ReregisterReason::Expiring, 0);
            }
        }
        // Unanswered: ask again.
        if let Some((sent, reason)) = self.reregister_sent
            && now >= sent + REREGISTER_RETRY
        {
            self.reregister_sent = None;
            self.schedule_reregister(now, reason, 0);
        }
        if let Some((at, reason)) = self.reregister_at
            && at <= now
        {
            self.reregister_at = None;
            self.reregister_sent = Some((now, reason));
            info!("registering again: {reason:?}");
            self.actions.push_back(GmAction::Reregister { reason });
        }
    }

    /// The algorithms and keys of the Rekey SA `spi`, if this GM holds it
    /// (from its `ListenRekey` action until its `StopRekey`).
    pub fn rekey_sa_keys(&self, spi: RekeySpi) -> Option<RekeySaSecrets> {
        self.keks
            .iter()
            .find(|k| k.spi == spi)
            .map(|k| RekeySaSecrets {
                spi: k.spi,
                encr: k.encr,
                integ: k.integ,
                kwa: k.kwa,
                gsk_e: k.gsk_e.clone(),
                gsk_a: k.gsk_a.clone(),
                gsk_w: k.gsk_w.clone(),
            })
    }

    pub fn poll_action(&mut self) -> Option<GmAction> {
        self.actions.pop_front()
    }

    pub fn status(&self, now: Millis) -> GmStatus {
        GmStatus {
            group: self.cfg.group.clone(),
            registered: self.registered,
            rekey_spis: self.keks.iter().map(|k| k.spi).collect(),
            last_message_id: self.keks.iter().filter_map(|k| k.last_message_id).max(),
            teks: self
                .teks
                .iter()
                .map(|t| (t.sa, t.inbound, t.outbound, t.expires.saturating_sub(now)))
                .collect(),
            sender_ids: self.sender_ids.clone(),
            key_path: self.path.ids(),
        }
    }
}

/// Whether a Data-Security SA's IVs are counters, which senders sharing it
/// must keep apart with Sender-IDs (§2.5).
fn is_counter_mode(p: &GsaPolicy) -> bool {
    let encr = p
        .transform(TransformType::ENCR)
        .and_then(|t| EncrAlg::new(EncrId(t.id), t.key_length()).ok());
    let integ = p
        .transform(TransformType::INTEG)
        .map_or(IntegId::NONE, |t| IntegId(t.id));
    encr.is_some_and(|e| e.is_counter_mode())
        || matches!(
            integ,
            IntegId::AUTH_AES_128_GMAC | IntegId::AUTH_AES_192_GMAC | IntegId::AUTH_AES_256_GMAC
        )
}

fn gsa_kd(payloads: &[Payload]) -> Option<(&Gsa, &Kd)> {
    let gsa = payloads.iter().find_map(|p| match p {
        Payload::Gsa(g) => Some(g),
        _ => None,
    })?;
    let kd = payloads.iter().find_map(|p| match p {
        Payload::Kd(k) => Some(k),
        _ => None,
    })?;
    Some((gsa, kd))
}

/// M070: the keying material is exactly what the SA's algorithms take.
/// For the Rekey SA this derives its keys as `apply` will, so a policy or
/// keying material `apply` cannot use is refused before any state changes.
fn check_keymat_len(p: &GsaPolicy, keymat: &Secret) -> Result<(), GmError> {
    if p.sa.protocol() == ProtocolId::GIKE_UPDATE {
        let encr_t = p
            .transform(TransformType::ENCR)
            .ok_or(DecodeError::Missing {
                what: "ENCR transform",
            })?;
        let encr = EncrAlg::new(EncrId(encr_t.id), encr_t.key_length())?;
        let integ = match p.transform(TransformType::INTEG) {
            Some(t) => IntegAlg::new(IntegId(t.id))?,
            None => IntegAlg::NONE,
        };
        let kwa = p
            .transform(TransformType::KWA)
            .ok_or(DecodeError::Missing {
                what: "KWA transform",
            })?;
        let kwa = KeyWrapAlg::from_id(KwaId(kwa.id))?;
        let keys = split_rekey_keymat(encr, integ, kwa, keymat)?;
        SkProtection::new(encr, integ, &keys.gsk_e, &keys.gsk_a)?;
        return Ok(());
    }
    let encr = match p.transform(TransformType::ENCR) {
        Some(t) => Some(EncrAlg::new(EncrId(t.id), t.key_length())?),
        None => None,
    };
    let integ = match p.transform(TransformType::INTEG) {
        Some(t) => IntegAlg::new(IntegId(t.id))?,
        None => IntegAlg::NONE,
    };
    let want = crate::crypto::data_keymat_len(encr, integ)?;
    if keymat.len() != want {
        return Err(CryptoError::KeyLength {
            what: "Data-Security SA keying material",
            expected: want,
            got: keymat.len(),
        }
        .into());
    }
    Ok(())
}
