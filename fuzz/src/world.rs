//! Real groups for the engine targets, built once per process with seeded
//! randomness and a fixed signing key, so every run (and every replay of a
//! crasher) sees the same keys, SPIs and messages.
//!
//! A [`Scenario`] is one GCKS with one group and one GM engine registered
//! to it, plus what the harness needs to forge *authentic* traffic: the
//! Rekey SA's SK keys and default KWK, the key-tree keys the GM holds, and
//! the real GSA_REKEY / GSA_INBAND_REKEY messages that followed.

use std::sync::OnceLock;

use gikev2::crypto::{
    EncrAlg, IntegAlg, KeyWrapAlg, PrfAlg, Secret, SeededRng, SigningKey, SkProtection,
    VerifyingKey, split_rekey_keymat,
};
use gikev2::gcks::{Gcks, GcksAction, MemberId, Registration};
use gikev2::gm::{Gm, MembershipConfig, Role};
use gikev2::iana::{EncrId, ExchangeType, IdType, IntegId, KwaId, TransformType};
use gikev2::ike_sa::{IkeKeys, Millis};
use gikev2::policy::{
    Authorization, Delivery, GroupConfig, GroupWide, IdentityPattern, KeyManagement, Mode,
    RekeyAuth, RekeyPolicy, TekPolicy, TekProtocol,
};
use gikev2::wire::{
    GroupId, Kd, KeyBag, Payload, Reader, RekeySpi, TrafficSelector, WrappedKey, encode_chain,
    read_chain,
};

pub const PRF: PrfAlg = PrfAlg::HmacSha256;
pub const IKE_KWA: KeyWrapAlg = KeyWrapAlg::Kw5649_256;
/// The identity of the GM the harness plays: a member and a sender.
pub const GM_IDENTITY: &str = "sender1@example.com";
pub const GM_MEMBER: MemberId = MemberId(1);

/// Ed25519 private key from a fixed seed (PKCS #8 DER), decoded once per
/// process: OpenSSL's key decoder costs ~1 ms a call under ASan, which was
/// most of an engine target's time spent in libcrypto.
pub fn signing_key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[0x42; 32]);
        SigningKey::from_der(&der).expect("fixed Ed25519 key")
    })
    .clone()
}

pub fn group_id() -> GroupId {
    GroupId {
        id_type: IdType::ID_KEY_ID,
        data: b"market-data".to_vec(),
    }
}

/// The groups the engine targets run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// AES-GCM ESP, signed multicast Rekey SA, LKH of degree 2, senders
    /// with Sender-IDs (like a market-data feed).
    SignedLkh,
    /// AES-CBC + HMAC ESP and Rekey SA, implicit GCAUTH, flat keys.
    ImplicitFlat,
    /// Every member rekeyed by GSA_INBAND_REKEY, no Rekey SA.
    Inband,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::SignedLkh, Kind::ImplicitFlat, Kind::Inband];
}

pub fn config(kind: Kind) -> GroupConfig {
    let (esp_encr, esp_integ, counter) = match kind {
        Kind::SignedLkh => ((EncrId::ENCR_AES_GCM_16, Some(256)), IntegId::NONE, Some(8)),
        _ => (
            (EncrId::ENCR_AES_CBC, Some(128)),
            IntegId::AUTH_HMAC_SHA2_256_128,
            None,
        ),
    };
    let rekey = match kind {
        Kind::SignedLkh => Some(RekeyPolicy {
            dst: "239.1.1.2:848".parse().unwrap(),
            src: Some("10.1.0.1:848".parse().unwrap()),
            encr: (EncrId::ENCR_AES_GCM_16, Some(256)),
            integ: IntegId::NONE,
            kwa: KwaId::KW_5649_256,
            auth: RekeyAuth::Signature(signing_key()),
            lifetime_secs: 7200,
        }),
        Kind::ImplicitFlat => Some(RekeyPolicy {
            dst: "[ff15::2]:848".parse().unwrap(),
            src: None,
            encr: (EncrId::ENCR_AES_CBC, Some(256)),
            integ: IntegId::AUTH_HMAC_SHA2_256_128,
            kwa: KwaId::KW_ARX,
            auth: RekeyAuth::Implicit,
            lifetime_secs: 600,
        }),
        Kind::Inband => None,
    };
    GroupConfig {
        id: group_id(),
        teks: vec![TekPolicy {
            protocol: TekProtocol::Esp,
            encr: Some(esp_encr),
            integ: esp_integ,
            src: gikev2::config::parse_ts("10.1.0.0/16").unwrap(),
            dst: TrafficSelector::host("239.1.1.1".parse().unwrap(), 17, 5000),
            lifetime_secs: 3600,
            single_sender: false,
            // counter-mode ciphers with senders: one SA per sender
            per_sender: counter.is_some(),
        }],
        rekey,
        group_wide: GroupWide {
            atd_secs: 2,
            dtd_secs: 5,
            sender_id_bits: counter,
        },
        delivery: match kind {
            Kind::Inband => Delivery::Inband,
            _ => Delivery::Multicast,
        },
        key_management: match kind {
            Kind::SignedLkh => KeyManagement::Lkh { degree: 2 },
            _ => KeyManagement::Flat,
        },
        authorization: Authorization {
            members: vec![IdentityPattern("*@example.com".into())],
            senders: vec![IdentityPattern("sender*@example.com".into())],
        },
        member_limit: 64,
        max_sender_ids: 4,
        mode: Mode::Tunnel,
        rekey_margin_secs: 60,
    }
}

pub fn sk_d(member: u64) -> Secret {
    Secret::new(member.to_be_bytes().repeat(4))
}

pub fn ike(sk_d: &Secret) -> IkeKeys<'_> {
    IkeKeys {
        sk_d,
        prf: PRF,
        kwa: IKE_KWA,
    }
}

/// Encodes payloads and reads them back, as they cross charon.
pub fn through_wire(payloads: &[Payload]) -> Vec<Payload> {
    match payloads.first() {
        None => Vec::new(),
        Some(p) => {
            let mut b = Vec::new();
            encode_chain(payloads, &mut b);
            read_chain(p.ty(), &mut Reader::new(&b)).expect("our own encoding decodes")
        }
    }
}

/// The Rekey SA the GM holds after registering.
pub struct KekKeys {
    pub spi: RekeySpi,
    pub sk: SkProtection,
    pub gsk_w: Secret,
    pub kwa: KeyWrapAlg,
}

pub struct Scenario {
    pub sk_d: Secret,
    pub role: Role,
    /// The GSA_AUTH response as the GM received it.
    pub response: Vec<Payload>,
    /// GSK_w of the GM's IKE SA.
    pub ike_kwk: Secret,
    pub tree_kwa: Option<KeyWrapAlg>,
    /// Key-tree keys the GM learned at registration (LKH).
    pub tree_keys: Vec<(u32, Secret)>,
    pub kek: Option<KekKeys>,
    /// Real GSA_REKEY datagrams sent after the registration, in order.
    pub rekeys: Vec<Vec<u8>>,
    /// Real GSA_INBAND_REKEY payloads for this GM, in order.
    pub inband: Vec<Vec<Payload>>,
    pub signer: Option<SigningKey>,
    pub verifier: Option<VerifyingKey>,
}

impl Scenario {
    pub fn get(kind: Kind) -> &'static Scenario {
        static S: [OnceLock<Scenario>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let i = Kind::ALL.iter().position(|k| *k == kind).expect("listed");
        S[i].get_or_init(|| Scenario::build(kind))
    }

    pub fn membership(&self) -> MembershipConfig {
        MembershipConfig {
            group: group_id(),
            role: self.role,
            sender_ids: 2,
            offer: None,
        }
    }

    /// A GM engine that has just taken the real registration response.
    pub fn fresh_gm(&self, seed: u64) -> Gm {
        let mut gm = Gm::new(self.membership(), Box::new(SeededRng::from_u64(seed)));
        gm.handle_registration_response(0, ExchangeType::GSA_AUTH, &self.response, ike(&self.sk_d))
            .expect("the real registration response is taken");
        while gm.poll_action().is_some() {}
        gm
    }

    fn build(kind: Kind) -> Scenario {
        let cfg = config(kind);
        let signer = match &cfg.rekey {
            Some(RekeyPolicy {
                auth: RekeyAuth::Signature(k),
                ..
            }) => Some(k.clone()),
            _ => None,
        };
        let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(0x5eed)));
        gcks.add_group(0, cfg).expect("valid group");
        let mut now: Millis = 0;
        // A few members first, so the key tree has some depth.
        for m in 100..104u64 {
            let sk = sk_d(m);
            let identity = format!("member{m}@example.com");
            let r = gcks.handle_registration(
                now,
                &Registration {
                    member: MemberId(m),
                    identities: &[&identity],
                    peer: Some(peer_of(m)),
                    exchange: ExchangeType::GSA_AUTH,
                    payloads: &[Payload::Idg(group_id())],
                    ike: ike(&sk),
                },
            );
            assert!(r.iter().any(|p| matches!(p, Payload::Gsa(_))));
        }
        now += 2000;
        gcks.handle_timeout(now);
        while gcks.poll_action().is_some() {}

        let role = Role {
            receive: true,
            send: true,
        };
        let sk = sk_d(GM_MEMBER.0);
        let gm_cfg = MembershipConfig {
            group: group_id(),
            role,
            sender_ids: 2,
            offer: None,
        };
        let mut gm = Gm::new(gm_cfg, Box::new(SeededRng::from_u64(7)));
        let request = through_wire(&gm.registration_payloads());
        let response = through_wire(&gcks.handle_registration(
            now,
            &Registration {
                member: GM_MEMBER,
                identities: &[GM_IDENTITY],
                peer: Some(peer_of(GM_MEMBER.0)),
                exchange: ExchangeType::GSA_AUTH,
                payloads: &request,
                ike: ike(&sk),
            },
        ));
        gm.handle_registration_response(now, ExchangeType::GSA_AUTH, &response, ike(&sk))
            .expect("registration");
        let ike_kwk = ike(&sk).default_kwk().expect("GSK_w");
        let (tree_kwa, tree_keys, kek) = learn_keys(&response, &ike_kwk);

        // What follows: the join flush, a TEK rekey, an exclusion.
        let mut rekeys = Vec::new();
        let mut inband = Vec::new();
        let mut collect = |gcks: &mut Gcks| {
            while let Some(a) = gcks.poll_action() {
                match a {
                    GcksAction::Multicast { datagram, .. } => rekeys.push(datagram),
                    GcksAction::InbandRekey { member, payloads } if member == GM_MEMBER => {
                        inband.push(through_wire(&payloads))
                    }
                    _ => {}
                }
            }
        };
        collect(&mut gcks);
        now += 2000;
        gcks.handle_timeout(now);
        collect(&mut gcks);
        gcks.rekey(now, &group_id()).expect("rekey");
        collect(&mut gcks);
        if kind == Kind::SignedLkh {
            gcks.exclude(now, &group_id(), MemberId(101))
                .expect("exclude");
            collect(&mut gcks);
        }
        // The real GM takes every one of them (retransmissions are replays).
        for d in &rekeys {
            match gm.handle_rekey(now, d) {
                Ok(())
                | Err(
                    gikev2::gm::GmError::Replay { .. } | gikev2::gm::GmError::UnknownRekeySa(_),
                ) => {}
                Err(e) => panic!("real GSA_REKEY refused: {e}"),
            }
        }
        for p in &inband {
            gm.handle_inband_rekey(now, p, ike(&sk))
                .expect("real GSA_INBAND_REKEY");
        }
        rekeys.dedup();
        Scenario {
            sk_d: sk,
            role,
            response,
            ike_kwk,
            tree_kwa,
            tree_keys,
            kek,
            rekeys,
            inband,
            verifier: signer
                .as_ref()
                .map(|k| k.verifying_key().expect("public key")),
            signer,
        }
    }
}

/// Follows the registration response's key chains as a GM does: the
/// key-tree keys and the Rekey SA's keys.
fn learn_keys(
    response: &[Payload],
    ike_kwk: &Secret,
) -> (Option<KeyWrapAlg>, Vec<(u32, Secret)>, Option<KekKeys>) {
    let gsa = response.iter().find_map(|p| match p {
        Payload::Gsa(g) => Some(g),
        _ => None,
    });
    let kd = response.iter().find_map(|p| match p {
        Payload::Kd(k) => Some(k),
        _ => None,
    });
    let (Some(gsa), Some(kd)) = (gsa, kd) else {
        panic!("registration response without GSA and KD");
    };
    let Some(kek) = gsa.kek() else {
        return (None, Vec::new(), None);
    };
    let t = |ty| kek.transform(ty).expect("KEK transform");
    let kwa = KeyWrapAlg::from_id(KwaId(t(TransformType::KWA).id)).expect("KWA");
    let keys = Keyring {
        default: (ike_kwk, IKE_KWA),
        tree_kwa: Some(kwa),
        known: &[],
    };
    let tree_keys = keys.learn(kd);
    let keys = Keyring {
        known: &tree_keys,
        ..keys
    };
    let bag = kd.bag_for(&kek.sa).expect("KEK key bag");
    let keymat = bag
        .sa_keys
        .iter()
        .find_map(|k| keys.unwrap(k, &[]))
        .expect("KEK keys reachable");
    let e = t(TransformType::ENCR);
    let encr = EncrAlg::new(EncrId(e.id), e.key_length()).expect("ENCR");
    let integ = IntegAlg::new(
        kek.transform(TransformType::INTEG)
            .map_or(IntegId::NONE, |t| IntegId(t.id)),
    )
    .expect("INTEG");
    let split = split_rekey_keymat(encr, integ, kwa, &keymat).expect("KEK keymat");
    let sk = SkProtection::new(encr, integ, &split.gsk_e, &split.gsk_a).expect("SK");
    let gikev2::wire::SaRef::Rekey(spi) = kek.sa else {
        unreachable!()
    };
    let k = KekKeys {
        spi,
        sk,
        gsk_w: split.gsk_w,
        kwa,
    };
    (Some(kwa), tree_keys, Some(k))
}

/// The keys a message's wrapped keys may be wrapped under.
#[derive(Clone, Copy)]
pub struct Keyring<'a> {
    /// KWK ID 0: the channel's default KWK and its algorithm.
    pub default: (&'a Secret, KeyWrapAlg),
    pub tree_kwa: Option<KeyWrapAlg>,
    /// Key-tree keys held from before.
    pub known: &'a [(u32, Secret)],
}

impl Keyring<'_> {
    fn kwk<'k>(
        &'k self,
        id: u32,
        learned: &'k [(u32, Secret)],
    ) -> Option<(&'k Secret, KeyWrapAlg)> {
        if id == 0 {
            return Some(self.default);
        }
        let kwa = self.tree_kwa?;
        learned
            .iter()
            .chain(self.known)
            .find(|(k, _)| *k == id)
            .map(|(_, s)| (s, kwa))
    }

    fn unwrap(&self, w: &WrappedKey, learned: &[(u32, Secret)]) -> Option<Secret> {
        let (kwk, kwa) = self.kwk(w.kwk_id, learned)?;
        kwa.unwrap(kwk.expose(), &w.encrypted).ok()
    }

    /// Unwraps the member key bag's WRAP_KEYs that chain to known keys.
    pub fn learn(&self, kd: &Kd) -> Vec<(u32, Secret)> {
        let wrap_keys = kd.member_bag().map_or(&[][..], |m| &m.wrap_keys);
        let mut learned: Vec<(u32, Secret)> = Vec::new();
        loop {
            let before = learned.len();
            for w in wrap_keys {
                if learned.iter().any(|(id, _)| *id == w.key_id) {
                    continue;
                }
                if let Some(k) = self.unwrap(w, &learned) {
                    learned.push((w.key_id, k));
                }
            }
            if learned.len() == before {
                return learned;
            }
        }
    }

    /// Turns a message whose wrapped keys hold *plaintext* into the real
    /// thing: each key is wrapped under the key its KWK ID names (the
    /// default KWK, a WRAP_KEY of the same message, or a key held from
    /// before). Keys naming an unknown KWK stay as they are.
    pub fn wrap_all(&self, payloads: &mut [Payload]) {
        let Some(kd) = payloads.iter_mut().find_map(|p| match p {
            Payload::Kd(k) => Some(k),
            _ => None,
        }) else {
            return;
        };
        // Plaintexts of this message's WRAP_KEYs, by Key ID.
        let learned: Vec<(u32, Secret)> = kd
            .member_bag()
            .map(|m| {
                m.wrap_keys
                    .iter()
                    .map(|w| (w.key_id, Secret::new(w.encrypted.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let wrap = |w: &mut WrappedKey| {
            if let Some((kwk, kwa)) = self.kwk(w.kwk_id, &learned)
                && let Ok(c) = kwa.wrap(kwk.expose(), &w.encrypted)
            {
                w.encrypted = c;
            }
        };
        for bag in &mut kd.bags {
            match bag {
                KeyBag::Group(g) => g.sa_keys.iter_mut().for_each(wrap),
                KeyBag::Member(m) => m.wrap_keys.iter_mut().for_each(wrap),
            }
        }
    }

    /// The inverse of [`wrap_all`](Self::wrap_all) for seeds: every key
    /// that unwraps is replaced by its plaintext.
    pub fn unwrap_all(&self, payloads: &mut [Payload]) {
        let Some(kd) = payloads.iter_mut().find_map(|p| match p {
            Payload::Kd(k) => Some(k),
            _ => None,
        }) else {
            return;
        };
        let learned = self.learn(kd);
        let plain = |w: &mut WrappedKey| {
            if let Some(k) = self.unwrap(w, &learned) {
                w.encrypted = k.expose().to_vec();
            }
        };
        for bag in &mut kd.bags {
            match bag {
                KeyBag::Group(g) => g.sa_keys.iter_mut().for_each(plain),
                KeyBag::Member(m) => m.wrap_keys.iter_mut().for_each(plain),
            }
        }
    }
}

/// The address a member registers from: inside the group's source
/// selector (10.1.0.0/16), as a sender of per-sender SAs needs.
pub fn peer_of(member: u64) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::from(
        0x0a01_0000 | (member as u32 & 0xffff),
    ))
}
