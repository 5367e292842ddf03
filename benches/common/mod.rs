//! Setup shared by the `memory` and `hotpaths` benches: the group of
//! `engines.rs` (AES-GCM-256 ESP to 239.1.1.1, a multicast Rekey SA, LKH
//! d=4 or flat) and a GCKS populated through its real registration path.
//!
//! Members join at a steady 1000 per second of virtual time and the GCKS's
//! timer runs whenever `Gcks::poll_timeout` says it is due, as charon's
//! plugin runs it: join flushes, retransmission copies and retirements all
//! happen as they would in a real group.

#![allow(dead_code)]

use std::collections::HashSet;

use gikev2::crypto::{KeyWrapAlg, OsRng, PrfAlg, Rng, Secret, SigAlg, SigningKey};
use gikev2::gcks::{Gcks, GcksAction, MemberId, Registration};
use gikev2::gm::{Gm, GmError, MembershipConfig, Role};

use gikev2::iana::{EncrId, ExchangeType, IdType, IntegId, KwaId};
use gikev2::ike_sa::{IkeKeys, Millis};
use gikev2::policy::{
    Authorization, Delivery, GroupConfig, GroupWide, IdentityPattern, KeyManagement, Mode,
    RekeyAuth, RekeyPolicy, TekPolicy, TekProtocol,
};
use gikev2::wire::{GroupId, Payload, Reader, TrafficSelector, encode_chain, read_chain};

pub const DEGREE: u16 = 4;
pub const LKH: KeyManagement = KeyManagement::Lkh { degree: DEGREE };
pub const IKE_KWA: KeyWrapAlg = KeyWrapAlg::Kw5649_256;
/// Virtual time between two joins.
pub const JOIN_SPACING: Millis = 1;
/// Longer than the retransmission copies (2 s) and the DTD (5 s).
pub const SETTLE: Millis = 6000;

pub fn group_id() -> GroupId {
    GroupId {
        id_type: IdType::ID_KEY_ID,
        data: b"market-data".to_vec(),
    }
}

pub fn group_config(km: KeyManagement, member_limit: u32, auth: RekeyAuth) -> GroupConfig {
    GroupConfig {
        id: group_id(),
        teks: vec![TekPolicy {
            protocol: TekProtocol::Esp,
            encr: Some((EncrId::ENCR_AES_GCM_16, Some(256))),
            integ: IntegId::NONE,
            src: gikev2::config::parse_ts("10.1.0.0/16").expect("selector"),
            dst: TrafficSelector::host("239.1.1.1".parse().expect("address"), 17, 5000),
            lifetime_secs: 3600,
            single_sender: false,
            // receivers only (the benches register no sender): one SA
            per_sender: false,
        }],
        rekey: Some(RekeyPolicy {
            dst: "239.1.1.2:848".parse().expect("address"),
            src: Some("10.1.0.1:848".parse().expect("address")),
            encr: (EncrId::ENCR_AES_GCM_16, Some(256)),
            integ: IntegId::NONE,
            kwa: KwaId::KW_5649_256,
            auth,
            lifetime_secs: 7200,
        }),
        group_wide: GroupWide {
            atd_secs: 2,
            dtd_secs: 5,
            sender_id_bits: Some(8),
        },
        delivery: Delivery::Multicast,
        key_management: km,
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

pub fn ed25519() -> RekeyAuth {
    RekeyAuth::Signature(SigningKey::generate(SigAlg::Ed25519).expect("key generation"))
}

pub fn km_name(km: KeyManagement) -> String {
    match km {
        KeyManagement::Flat => "flat".into(),
        KeyManagement::Lkh { degree } => format!("LKH d={degree}"),
    }
}

pub fn fmt_n(n: u64) -> String {
    match n {
        1_000 => "10^3".into(),
        10_000 => "10^4".into(),
        100_000 => "10^5".into(),
        1_000_000 => "10^6".into(),
        n => n.to_string(),
    }
}

/// The smallest power of the degree with room for `n` members and some
/// joiners, as in `engines.rs`.
pub fn member_limit(n: u64) -> u32 {
    let need = n + 192;
    let mut cap = 1u64;
    while cap < need {
        cap *= u64::from(DEGREE);
    }
    u32::try_from(cap).expect("member limit fits u32")
}

pub fn ike(sk_d: &Secret) -> IkeKeys<'_> {
    IkeKeys {
        sk_d,
        prf: PrfAlg::HmacSha256,
        kwa: IKE_KWA,
    }
}

pub fn random_sk_d() -> Secret {
    let mut b = vec![0; 32];
    OsRng.fill(&mut b).expect("randomness");
    Secret::new(b)
}

pub fn new_gm() -> Gm {
    Gm::new(
        MembershipConfig {
            group: group_id(),
            role: Role {
                receive: true,
                send: false,
            },
            sender_ids: 1,
            offer: None,
        },
        Box::new(OsRng),
    )
}

/// Encodes payloads and decodes them again, as they cross charon.
pub fn through_wire(payloads: &[Payload]) -> Vec<Payload> {
    if payloads.is_empty() {
        return Vec::new();
    }
    let mut b = Vec::new();
    encode_chain(payloads, &mut b);
    read_chain(payloads[0].ty(), &mut Reader::new(&b)).expect("our encoding decodes")
}

pub fn accepted(resp: &[Payload]) -> bool {
    resp.iter().any(|p| matches!(p, Payload::Gsa(_)))
}

/// A GCKS serving one group on a virtual clock.
pub struct Server {
    pub gcks: Gcks,
    pub now: Millis,
    pub next_id: u64,
    pub request: Vec<Payload>,
    pub sk_d: Secret,
    /// New GSA_REKEY datagrams (first copies only) since the last take,
    /// kept only when `keep` is set.
    pub outbox: Vec<Vec<u8>>,
    pub keep: bool,
    seen: HashSet<([u8; 16], u32)>,
}

impl Server {
    pub fn new(km: KeyManagement, limit: u32, auth: RekeyAuth) -> Self {
        let mut gcks = Gcks::new(Box::new(OsRng));
        gcks.add_group(0, group_config(km, limit, auth))
            .expect("group config");
        Self {
            gcks,
            now: 0,
            next_id: 0,
            request: new_gm().registration_payloads(),
            sk_d: random_sk_d(),
            outbox: Vec::new(),
            keep: false,
            seen: HashSet::new(),
        }
    }

    pub fn fresh_member(&mut self) -> (MemberId, String) {
        self.next_id += 1;
        (
            MemberId(self.next_id),
            format!("gm{}@example.com", self.next_id),
        )
    }

    /// A GCKS-side member: the GCKS's whole registration work (the very
    /// request a receiver GM sends), no GM; the response is dropped.
    pub fn register_fast(&mut self) -> MemberId {
        let (id, identity) = self.fresh_member();
        let resp = self.gcks.handle_registration(
            self.now,
            &Registration {
                member: id,
                identities: &[&identity],
                peer: Some(peer_of(id.0)),
                exchange: ExchangeType::GSA_AUTH,
                payloads: &self.request,
                ike: ike(&self.sk_d),
            },
        );
        assert!(accepted(&resp), "registration {} refused: {resp:?}", id.0);
        drop(resp);
        self.drain();
        self.tick(JOIN_SPACING);
        id
    }

    /// `n` GCKS-side members, one per `JOIN_SPACING`; `each` runs after
    /// every join (e.g. to deliver GSA_REKEYs to real GMs).
    pub fn populate(&mut self, n: u64, mut each: impl FnMut(&mut Self)) {
        for _ in 0..n {
            self.register_fast();
            each(self);
        }
    }

    /// Advances the clock, running the timer whenever it is due.
    pub fn tick(&mut self, ms: Millis) {
        let end = self.now + ms;
        while let Some(t) = self.gcks.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.gcks.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    /// Takes the GCKS's actions; with `keep`, keeps new GSA_REKEY datagrams
    /// (retransmission copies, bitwise the same as a datagram already
    /// seen, are skipped). Without `keep` nothing is remembered, so the
    /// memory bench counts only the GCKS's own state.
    pub fn drain(&mut self) {
        while let Some(a) = self.gcks.poll_action() {
            if let GcksAction::Multicast { datagram, .. } = a
                && self.keep
            {
                let (spi, id) = gikev2::rekey_message::peek(&datagram).expect("own header");
                if self.seen.insert((spi.0, id)) {
                    self.outbox.push(datagram);
                }
            }
        }
    }
}

/// Registers a real GM: its request and the GCKS's response cross the
/// codec, the GM takes the response.
pub fn register_gm(s: &mut Server) -> (MemberId, Gm) {
    let (id, identity) = s.fresh_member();
    let sk_d = random_sk_d();
    let mut gm = new_gm();
    let req = through_wire(&gm.registration_payloads());
    let resp = s.gcks.handle_registration(
        s.now,
        &Registration {
            member: id,
            identities: &[&identity],
            peer: Some(peer_of(id.0)),
            exchange: ExchangeType::GSA_AUTH,
            payloads: &req,
            ike: ike(&sk_d),
        },
    );
    let resp = through_wire(&resp);
    gm.handle_registration_response(s.now, ExchangeType::GSA_AUTH, &resp, ike(&sk_d))
        .expect("GM registers");
    while gm.poll_action().is_some() {}
    s.drain();
    (id, gm)
}

/// Hands the new datagrams to every GM and runs their timers. A GM may not
/// hold the SA a message travels on (a joiner already holds the KEK its
/// join flush moves everyone to); anything else is a failure.
pub fn deliver(gms: &mut [Gm], s: &mut Server) {
    for dg in std::mem::take(&mut s.outbox) {
        for (i, g) in gms.iter_mut().enumerate() {
            match g.handle_rekey(s.now, &dg) {
                Ok(()) | Err(GmError::UnknownRekeySa(_) | GmError::Replay { .. }) => {}
                Err(e) => panic!("GM {i} cannot follow the group: {e}"),
            }
            while g.poll_action().is_some() {}
        }
    }
    for g in gms.iter_mut() {
        g.handle_timeout(s.now);
        while g.poll_action().is_some() {}
    }
}

pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().replace('_', "");
    v.parse::<u64>()
        .ok()
        .or_else(|| v.parse::<f64>().ok().map(|f| f as u64))
}

/// The address a member registers from: inside the group's source
/// selector (10.1.0.0/16), as a sender of per-sender SAs needs.
pub fn peer_of(member: u64) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::from(
        0x0a01_0000 | (member as u32 & 0xffff),
    ))
}
