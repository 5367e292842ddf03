//! An in-memory group: one GCKS engine, N GM engines, a virtual clock, a
//! multicast "segment" and a model of each GM's kernel SA table. Payloads
//! cross the harness encoded and decoded, as they would cross charon.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use gikev2::crypto::{KeyWrapAlg, PrfAlg, Secret, SeededRng, SigAlg, SigningKey};
use gikev2::gcks::{Gcks, GcksAction, MemberId, Registration};
use gikev2::gm::{
    Gm, GmAction, GmError, MembershipConfig, ReregisterReason, Role, SaDirection, TekInstall,
};
use gikev2::iana::{EncrId, ExchangeType, IdType, IntegId, KwaId};
use gikev2::ike_sa::{IkeKeys, Millis};
use gikev2::policy::{
    Authorization, Delivery, GroupConfig, GroupWide, IdentityPattern, KeyManagement, Mode,
    RekeyAuth, RekeyPolicy, TekPolicy, TekProtocol,
};
use gikev2::wire::{
    GroupId, Payload, Reader, RekeySpi, SaRef, TrafficSelector, encode_chain, read_chain,
};

pub const PRF: PrfAlg = PrfAlg::HmacSha256;
pub const IKE_KWA: KeyWrapAlg = KeyWrapAlg::Kw5649_256;

pub fn group_id() -> GroupId {
    GroupId {
        id_type: IdType::ID_KEY_ID,
        data: b"market-data".to_vec(),
    }
}

/// A group like a market-data feed: AES-GCM ESP to 239.1.1.1, a signed
/// multicast Rekey SA, LKH of the given degree; receivers only (the
/// source sends from outside it).
pub fn config(key_management: KeyManagement, member_limit: u32) -> GroupConfig {
    GroupConfig {
        id: group_id(),
        teks: vec![TekPolicy {
            protocol: TekProtocol::Esp,
            encr: Some((EncrId::ENCR_AES_GCM_16, Some(256))),
            integ: IntegId::NONE,
            src: gikev2::config::parse_ts("10.1.0.0/16").unwrap(),
            dst: TrafficSelector::host("239.1.1.1".parse().unwrap(), 17, 5000),
            lifetime_secs: 3600,
            single_sender: false,
            per_sender: false,
        }],
        rekey: Some(RekeyPolicy {
            dst: "239.1.1.2:848".parse().unwrap(),
            src: Some("10.1.0.1:848".parse().unwrap()),
            encr: (EncrId::ENCR_AES_GCM_16, Some(256)),
            integ: IntegId::NONE,
            kwa: KwaId::KW_5649_256,
            auth: RekeyAuth::Signature(SigningKey::generate(SigAlg::Ed25519).unwrap()),
            lifetime_secs: 7200,
        }),
        group_wide: GroupWide {
            atd_secs: 2,
            dtd_secs: 5,
            sender_id_bits: Some(8),
        },
        delivery: Delivery::Multicast,
        key_management,
        authorization: Authorization {
            members: vec![IdentityPattern("*@example.com".into())],
            senders: Vec::new(),
        },
        member_limit,
        max_sender_ids: 4,
        mode: Mode::Tunnel,
        rekey_margin_secs: 60,
    }
}

/// The same group with senders (`sender*@example.com`): AES-GCM is a
/// counter mode, so each sender gets an SA of its own (§2.5), which the
/// group has only once a sender registered.
pub fn sender_config(key_management: KeyManagement, member_limit: u32) -> GroupConfig {
    let mut cfg = config(key_management, member_limit);
    cfg.authorization.senders = vec![IdentityPattern("sender*@example.com".into())];
    cfg.teks[0].per_sender = true;
    cfg
}

/// One group member: the engine, its IKE SA keys and its kernel's SAs.
pub struct Member {
    pub id: MemberId,
    pub identity: String,
    pub gm: Gm,
    pub sk_d: Secret,
    pub kernel: BTreeMap<(SaRef, SaDirection), TekInstall>,
    pub listening: Vec<RekeySpi>,
    pub reregister: Vec<ReregisterReason>,
    /// Reregistrations asked for and not yet handled by the sim.
    pending_reregister: usize,
    /// Waits before the retries of failed registrations (GCKS down).
    pub retry_delays: Vec<Millis>,
    /// Errors from GSA_REKEY messages it could not take.
    pub rekey_errors: Vec<String>,
    /// GSA_REKEY messages on Rekey SAs it does not hold.
    pub unknown_spi: usize,
    /// Its address, which its IKE SA comes from and its traffic.
    pub addr: IpAddr,
}

impl Member {
    /// Applies the GM's actions to the kernel model.
    fn drain(&mut self) {
        while let Some(a) = self.gm.poll_action() {
            match a {
                GmAction::Install(t) => {
                    self.kernel.insert((t.sa, t.direction), t);
                }
                GmAction::Delete { sa, direction } => {
                    self.kernel.remove(&(sa, direction));
                }
                GmAction::ListenRekey { spi, .. } => self.listening.push(spi),
                GmAction::StopRekey { spi } => self.listening.retain(|s| *s != spi),
                GmAction::Reregister { reason } => {
                    self.reregister.push(reason);
                    self.pending_reregister += 1;
                }
            }
        }
    }
}

pub struct Sim {
    pub now: Millis,
    pub gcks: Gcks,
    pub members: Vec<Member>,
    /// Every GSA_REKEY datagram the GCKS sent, in order.
    pub sent: Vec<Vec<u8>>,
    pub inband: Vec<(MemberId, Vec<Payload>)>,
    pub closed: Vec<MemberId>,
    /// Members whose multicast is dropped on the way (a lossy link).
    pub dropped: Vec<usize>,
    /// The GCKS is gone: its timers stop.
    pub gcks_down: bool,
    seed: u64,
}

/// Encodes payloads and reads them back, as they cross charon.
pub fn through_wire(payloads: &[Payload]) -> Vec<Payload> {
    if payloads.is_empty() {
        return Vec::new();
    }
    let mut b = Vec::new();
    encode_chain(payloads, &mut b);
    read_chain(payloads[0].ty(), &mut Reader::new(&b)).expect("our own encoding decodes")
}

impl Sim {
    pub fn new(cfg: GroupConfig, seed: u64) -> Self {
        let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(seed)));
        gcks.add_group(0, cfg).unwrap();
        Self {
            now: 0,
            gcks,
            members: Vec::new(),
            sent: Vec::new(),
            inband: Vec::new(),
            closed: Vec::new(),
            dropped: Vec::new(),
            gcks_down: false,
            seed,
        }
    }

    pub fn ike(sk_d: &Secret) -> IkeKeys<'_> {
        IkeKeys {
            sk_d,
            prf: PRF,
            kwa: IKE_KWA,
        }
    }

    /// Adds a GM and runs its GSA_AUTH; returns its index.
    pub fn join(&mut self, identity: &str, role: Role) -> Result<usize, GmError> {
        let idx = self.add(identity, role);
        self.register(idx, ExchangeType::GSA_AUTH).map(|_| idx)
    }

    /// Adds a GM that has not registered yet; returns its index.
    pub fn add(&mut self, identity: &str, role: Role) -> usize {
        let idx = self.members.len();
        let addr = Self::addr_of(idx);
        let cfg = MembershipConfig {
            group: group_id(),
            role,
            sender_ids: 1,
            offer: None,
        };
        let mut gm = Gm::new(
            cfg,
            Box::new(SeededRng::from_u64(self.seed ^ (idx as u64 + 1) << 20)),
        );
        gm.set_local_address(Some(addr));
        let sk_d = Secret::new(vec![idx as u8 ^ 0x5a; 32]);
        self.members.push(Member {
            id: MemberId(idx as u64 + 1),
            identity: identity.to_owned(),
            gm,
            sk_d,
            kernel: BTreeMap::new(),
            listening: Vec::new(),
            reregister: Vec::new(),
            pending_reregister: 0,
            retry_delays: Vec::new(),
            rekey_errors: Vec::new(),
            unknown_spi: 0,
            addr,
        });
        idx
    }

    /// The address of member `idx`, inside the group's source selector.
    pub fn addr_of(idx: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            10,
            1,
            (idx / 250) as u8,
            (idx % 250) as u8 + 1,
        ))
    }

    /// Runs a registration exchange for member `idx`.
    pub fn register(&mut self, idx: usize, exchange: ExchangeType) -> Result<(), GmError> {
        let response = self.registration_response(idx, exchange);
        let m = &mut self.members[idx];
        let r =
            m.gm.handle_registration_response(self.now, exchange, &response, Self::ike(&m.sk_d));
        self.pump();
        r
    }

    /// The GCKS's answer to a registration request of member `idx`, as it
    /// crosses the wire, not yet given to the member's GM.
    pub fn registration_response(&mut self, idx: usize, exchange: ExchangeType) -> Vec<Payload> {
        let m = &self.members[idx];
        let request = through_wire(&m.gm.registration_payloads());
        through_wire(&self.gcks.handle_registration(
            self.now,
            &Registration {
                member: m.id,
                identities: &[&m.identity],
                peer: Some(m.addr),
                exchange,
                payloads: &request,
                ike: Self::ike(&m.sk_d),
            },
        ))
    }

    /// Registers a member the GCKS serves but no GM engine plays: fills
    /// big groups cheaply. Its response is checked but not processed.
    pub fn register_silent(&mut self, member: u64, identity: &str) {
        let sk_d = Secret::new(member.to_be_bytes().repeat(4));
        let request = through_wire(&[Payload::Idg(group_id())]);
        let response = self.gcks.handle_registration(
            self.now,
            &Registration {
                member: MemberId(member),
                identities: &[identity],
                peer: None,
                exchange: ExchangeType::GSA_AUTH,
                payloads: &request,
                ike: Self::ike(&sk_d),
            },
        );
        assert!(
            response.iter().any(|p| matches!(p, Payload::Gsa(_))),
            "{identity} refused: {response:?}"
        );
        self.pump();
    }

    /// Moves every queued action: GCKS multicasts reach every listening
    /// GM, GM actions land in their kernel models as soon as the GM emits
    /// them (a host acts on them before it reads the next datagram).
    pub fn pump(&mut self) {
        loop {
            for m in &mut self.members {
                m.drain();
                // With the GCKS gone, each attempt fails as charon reports
                // an IKE SA that never came up.
                while self.gcks_down && m.pending_reregister > 0 {
                    m.pending_reregister -= 1;
                    let delay = m.gm.registration_failed(self.now);
                    m.retry_delays.push(delay);
                }
                m.pending_reregister = 0;
            }
            let Some(a) = self.gcks.poll_action() else {
                return;
            };
            match a {
                GcksAction::Multicast { datagram, .. } => {
                    self.sent.push(datagram.clone());
                    self.deliver(&datagram, |_| true);
                }
                GcksAction::InbandRekey { member, payloads } => {
                    self.inband.push((member, payloads))
                }
                GcksAction::CloseIkeSa { member } => self.closed.push(member),
            }
        }
    }

    /// Hands a datagram to the GMs `to` selects that listen on its SPI.
    /// Every member listening on the group's rekey address gets it, as a
    /// host hands every datagram on that address and port to its GM.
    pub fn deliver(&mut self, datagram: &[u8], to: impl Fn(usize) -> bool) {
        for (i, m) in self.members.iter_mut().enumerate() {
            if !to(i) || m.listening.is_empty() || self.dropped.contains(&i) {
                continue;
            }
            match m.gm.handle_rekey(self.now, datagram) {
                // Retransmissions are bitwise identical copies (§2.4.1.3):
                // every one after the first is a replay by design.
                Err(GmError::Replay { .. }) | Ok(()) => {}
                // Messages on a Rekey SA this GM does not hold (one it has
                // not reached, or left behind) share the address.
                Err(GmError::UnknownRekeySa(_)) => m.unknown_spi += 1,
                Err(e) => m.rekey_errors.push(e.to_string()),
            }
            m.drain();
        }
    }

    /// Advances the clock, running every timer due on the way.
    pub fn advance(&mut self, ms: Millis) {
        let end = self.now + ms;
        loop {
            if !self.gcks_down {
                self.gcks.handle_timeout(self.now);
            }
            for m in &mut self.members {
                m.gm.handle_timeout(self.now);
            }
            self.pump();
            let now = self.now;
            let next = self
                .members
                .iter()
                .filter_map(|m| m.gm.poll_timeout())
                .chain(self.gcks.poll_timeout().filter(|_| !self.gcks_down))
                .filter(|t| *t > now && *t <= end)
                .min();
            match next {
                Some(t) => self.now = t,
                None => break,
            }
        }
        self.now = end;
        if !self.gcks_down {
            self.gcks.handle_timeout(self.now);
        }
        for m in &mut self.members {
            m.gm.handle_timeout(self.now);
        }
        self.pump();
    }

    /// The inbound ESP SAs of member `i` as (SPI, encryption key).
    pub fn inbound(&self, i: usize) -> Vec<(SaRef, Vec<u8>)> {
        self.members[i]
            .kernel
            .iter()
            .filter(|((_, d), _)| *d == SaDirection::Inbound)
            .map(|((sa, _), t)| (*sa, t.encr_key.expose().to_vec()))
            .collect()
    }
}

pub fn receiver() -> Role {
    Role {
        receive: true,
        send: false,
    }
}

pub fn sender() -> Role {
    Role {
        receive: true,
        send: true,
    }
}
