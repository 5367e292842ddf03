//! The GM node as charon drives it: IKE SAs coming up, going down and
//! being rekeyed, settings reloaded, registrations failing, against a
//! real GCKS engine. charon and the kernel are a model here; each node
//! action is checked against that model (nothing deleted that was not
//! installed, no drop policy twice).

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use common::{IKE_KWA, PRF, config, group_id, through_wire};
use gikev2::crypto::{Secret, SeededRng};
use gikev2::gcks::{Gcks, GcksAction, MemberId, Registration};
use gikev2::gm::{SaDirection, TekInstall};
use gikev2::iana::{ExchangeType, IdType, NotifyType};
use gikev2::ike_sa::{IkeKeys, Millis};
use gikev2::node::IkeSaId;
use gikev2::node::gm::{
    DefError, GmNode, GmNodeAction, MembershipDef, MembershipId, RekeyOutcome, Selectors,
};
use gikev2::policy::{Delivery, GroupConfig};
use gikev2::wire::{GroupId, Payload, RekeySpi, SaRef, TrafficSelector};

const GCKS: &str = "10.1.0.1";
const LOCAL: &str = "10.1.0.7";
const IDENTITY: &str = "gm7@example.com";

fn news_id() -> GroupId {
    GroupId {
        id_type: IdType::ID_KEY_ID,
        data: b"news".to_vec(),
    }
}

/// A second group: its own TEK address and Rekey SA address.
fn news() -> GroupConfig {
    let mut cfg = config(gikev2::policy::KeyManagement::Flat, 100);
    cfg.id = news_id();
    cfg.teks[0].dst = TrafficSelector::host("239.1.2.1".parse().unwrap(), 17, 5000);
    if let Some(r) = cfg.rekey.as_mut() {
        r.dst = "239.1.2.2:848".parse().unwrap();
    }
    cfg
}

/// A group rekeyed over each member's IKE SA, with no Rekey SA.
fn inband() -> GroupConfig {
    let mut cfg = news();
    cfg.id = GroupId {
        id_type: IdType::ID_KEY_ID,
        data: b"inband".to_vec(),
    };
    cfg.teks[0].dst = TrafficSelector::host("239.1.3.1".parse().unwrap(), 17, 5000);
    cfg.rekey = None;
    cfg.delivery = Delivery::Inband;
    cfg
}

fn def(name: &str, connection: &str, settings: &[(&str, &str)]) -> MembershipDef {
    MembershipDef {
        name: name.into(),
        connection: connection.into(),
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    }
}

fn market() -> MembershipDef {
    def("market", "gcks", &[("id", "market-data")])
}

fn news_def() -> MembershipDef {
    def("news", "gcks", &[("id", "news")])
}

fn sk_d(ike_sa: IkeSaId) -> Secret {
    Secret::new(vec![ike_sa as u8 ^ 0xa5; 32])
}

/// charon and the kernel around one GM node, with the GCKS engine at the
/// other end of every IKE SA.
struct Charon {
    now: Millis,
    node: GmNode,
    gcks: Gcks,
    /// The GCKS refuses identities other than this one.
    identity: String,
    next_ike: IkeSaId,
    /// IKE SAs up, with their connection.
    up: BTreeMap<IkeSaId, String>,
    kernel: BTreeMap<(MembershipId, SaRef, SaDirection), (TekInstall, Option<IpAddr>)>,
    drops: Vec<Selectors>,
    sockets: Vec<(MembershipId, RekeySpi, SocketAddr)>,
    initiated: Vec<String>,
    closed: Vec<IkeSaId>,
    /// GSA_REGISTRATION answers with their exchange's outcome.
    leaves: Vec<(MembershipId, NotifyType)>,
    /// Every GSA_REKEY the GCKS sent.
    sent: Vec<Vec<u8>>,
    /// Connections charon knows.
    connections: Vec<String>,
    /// The kinds of actions carried out, in order.
    order: Vec<&'static str>,
}

impl Charon {
    fn new(defs: Vec<MembershipDef>) -> Self {
        let mut seed = 100;
        let (node, errors) = GmNode::new(
            defs,
            Box::new(move || {
                seed += 1;
                Box::new(SeededRng::from_u64(seed))
            }),
        );
        assert_eq!(errors, []);
        let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(7)));
        gcks.add_group(0, config(gikev2::policy::KeyManagement::Flat, 100))
            .unwrap();
        gcks.add_group(0, news()).unwrap();
        gcks.add_group(0, inband()).unwrap();
        Self {
            now: 1_000,
            node,
            gcks,
            identity: IDENTITY.into(),
            next_ike: 1,
            up: BTreeMap::new(),
            kernel: BTreeMap::new(),
            drops: Vec::new(),
            sockets: Vec::new(),
            initiated: Vec::new(),
            closed: Vec::new(),
            leaves: Vec::new(),
            sent: Vec::new(),
            connections: vec!["gcks".into()],
            order: Vec::new(),
        }
    }

    fn ike(sk_d: &Secret) -> IkeKeys<'_> {
        IkeKeys {
            sk_d,
            prf: PRF,
            kwa: IKE_KWA,
        }
    }

    /// The GCKS's answer to a registration request on an IKE SA.
    fn gcks_answer(
        &mut self,
        ike_sa: IkeSaId,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Vec<Payload> {
        let sk_d = sk_d(ike_sa);
        let request = through_wire(payloads);
        through_wire(&self.gcks.handle_registration(
            self.now,
            &Registration {
                member: MemberId(u64::from(ike_sa)),
                identities: &[&self.identity],
                peer: Some(LOCAL.parse().unwrap()),
                exchange,
                payloads: &request,
                ike: Self::ike(&sk_d),
            },
        ))
    }

    /// charon initiates the connection: IKE_SA_INIT, GSA_AUTH and, if
    /// `comes_up`, the IKE SA established; the node's actions are run.
    fn connect(&mut self, connection: &str, comes_up: bool) -> IkeSaId {
        let id = self.next_ike;
        self.next_ike += 1;
        assert!(
            self.node.ike_sa_init(id, connection, GCKS.parse().unwrap()),
            "IKE_SA_INIT of '{connection}' registers nothing"
        );
        if !comes_up {
            return id;
        }
        let request = self
            .node
            .gsa_auth_request(id, connection)
            .expect("GSA_AUTH payloads");
        let answer = self.gcks_answer(id, ExchangeType::GSA_AUTH, &request.payloads);
        self.node.gsa_auth_response(id, connection, answer);
        self.up.insert(id, connection.into());
        let sk_d = sk_d(id);
        self.node.ike_sa_up(
            self.now,
            id,
            connection,
            (LOCAL.parse().unwrap(), GCKS.parse().unwrap()),
            Some(Self::ike(&sk_d)),
        );
        self.run();
        id
    }

    /// The IKE SA goes down and is destroyed.
    fn lose(&mut self, ike_sa: IkeSaId) {
        if self.up.remove(&ike_sa).is_some() {
            self.node.ike_sa_down(self.now, ike_sa);
        }
        self.node.ike_sa_destroyed(self.now, ike_sa);
        self.run();
    }

    /// Runs the node's and the GCKS's actions until none is left.
    fn run(&mut self) {
        loop {
            if let Some(a) = self.node.poll_action() {
                self.act(a);
                continue;
            }
            let Some(a) = self.gcks.poll_action() else {
                return;
            };
            match a {
                GcksAction::Multicast { dst, datagram, .. } => {
                    self.sent.push(datagram.clone());
                    self.deliver(dst, &datagram);
                }
                GcksAction::InbandRekey { member, payloads } => {
                    let ike_sa = member.0 as IkeSaId;
                    if let Some(connection) = self.up.get(&ike_sa).cloned() {
                        let sk_d = sk_d(ike_sa);
                        let payloads = through_wire(&payloads);
                        self.node.inband_rekey(
                            self.now,
                            ike_sa,
                            &connection,
                            &payloads,
                            Self::ike(&sk_d),
                        );
                    }
                }
                // the GCKS closes multicast members' IKE SAs (§2.3.4);
                // the tests close them when they want
                GcksAction::CloseIkeSa { .. } => {}
            }
        }
    }

    /// Every membership with a socket on `dst` receives the datagram.
    fn deliver(&mut self, dst: SocketAddr, datagram: &[u8]) -> Vec<RekeyOutcome> {
        let mut to: Vec<MembershipId> = self
            .sockets
            .iter()
            .filter(|(_, _, d)| *d == dst)
            .map(|(m, _, _)| *m)
            .collect();
        to.dedup();
        let outcomes = to
            .into_iter()
            .map(|m| self.node.rekey_datagram(self.now, m, datagram))
            .collect();
        self.run();
        outcomes
    }

    fn act(&mut self, a: GmNodeAction) {
        self.order.push(match &a {
            GmNodeAction::Install { .. } => "install",
            GmNodeAction::Delete { .. } => "delete",
            GmNodeAction::AddDrop(_) => "add-drop",
            GmNodeAction::RemoveDrop(_) => "remove-drop",
            GmNodeAction::ListenRekey { .. } => "listen",
            GmNodeAction::StopRekey { .. } => "stop",
            GmNodeAction::Initiate { .. } => "initiate",
            GmNodeAction::Register { .. } => "register",
            GmNodeAction::Leave { .. } => "leave",
            GmNodeAction::CloseIkeSa { .. } => "close",
        });
        match a {
            GmNodeAction::Install {
                membership,
                tek,
                local,
            } => {
                self.kernel
                    .insert((membership, tek.sa, tek.direction), (tek, local));
            }
            GmNodeAction::Delete {
                membership,
                sa,
                direction,
            } => {
                assert!(
                    self.kernel.remove(&(membership, sa, direction)).is_some(),
                    "deleted {sa:?} {direction:?}, which is not installed"
                );
            }
            GmNodeAction::AddDrop(s) => {
                assert!(!self.drops.contains(&s), "drop policy {s} twice");
                self.drops.push(s);
            }
            GmNodeAction::RemoveDrop(s) => {
                let i = self.drops.iter().position(|d| *d == s);
                self.drops
                    .remove(i.expect("removed a drop policy not installed"));
            }
            GmNodeAction::ListenRekey {
                membership,
                spi,
                dst,
                local,
            } => {
                assert_eq!(local, Some(LOCAL.parse().unwrap()), "joined on our address");
                self.sockets.push((membership, spi, dst));
            }
            GmNodeAction::StopRekey { membership, spi } => {
                let i = self
                    .sockets
                    .iter()
                    .position(|(m, s, _)| *m == membership && *s == spi);
                self.sockets.remove(i.expect("closed a socket not open"));
            }
            GmNodeAction::Initiate { connection } => {
                if !self.connections.contains(&connection) {
                    self.node.connection_unknown(&connection);
                }
                self.initiated.push(connection);
            }
            GmNodeAction::Register { membership, ike_sa } => {
                assert!(
                    self.up.contains_key(&ike_sa),
                    "GSA_REGISTRATION on a dead IKE SA"
                );
                let request = self
                    .node
                    .registration_request(membership, ike_sa)
                    .expect("payloads");
                let answer = self.gcks_answer(ike_sa, ExchangeType::GSA_REGISTRATION, &request);
                let sk_d = sk_d(ike_sa);
                self.node.registration_response(
                    self.now,
                    membership,
                    ike_sa,
                    &answer,
                    Self::ike(&sk_d),
                );
            }
            GmNodeAction::Leave {
                membership,
                ike_sa,
                why,
            } => {
                assert!(self.up.contains_key(&ike_sa), "leave on a dead IKE SA");
                let request = self
                    .node
                    .leave_request(membership, ike_sa, why)
                    .expect("payloads");
                assert!(
                    request
                        .iter()
                        .any(|p| matches!(p, Payload::Notify(n) if n.ty == why)),
                    "the leave says why: {request:?}"
                );
                let answer = self.gcks_answer(ike_sa, ExchangeType::GSA_REGISTRATION, &request);
                self.node.leave_response(membership, why, &answer);
                self.leaves.push((membership, why));
            }
            GmNodeAction::CloseIkeSa { ike_sa } => {
                self.closed.push(ike_sa);
                if self.up.remove(&ike_sa).is_some() {
                    self.node.ike_sa_down(self.now, ike_sa);
                }
                self.node.ike_sa_destroyed(self.now, ike_sa);
            }
        }
    }

    /// Advances the clock to `until`, running the node's timers on the way.
    fn advance_to(&mut self, until: Millis) {
        while let Some(t) = self.node.poll_timeout().filter(|t| *t <= until) {
            self.now = self.now.max(t);
            self.node.handle_timeout(self.now);
            self.run();
        }
        self.now = until;
        self.node.handle_timeout(self.now);
        self.run();
    }

    /// The SAs of a membership in the kernel, by direction.
    fn sas(&self, m: MembershipId, direction: SaDirection) -> Vec<SaRef> {
        self.kernel
            .keys()
            .filter(|(mm, _, d)| *mm == m && *d == direction)
            .map(|(_, sa, _)| *sa)
            .collect()
    }

    /// What the kernel does with a group's inbound traffic: the SA that
    /// protects it, else whether a drop policy stops it.
    fn inbound_fate(&self, dst: &TrafficSelector) -> Fate {
        if self
            .kernel
            .values()
            .any(|(t, _)| t.direction == SaDirection::Inbound && t.dst == *dst)
        {
            Fate::Protected
        } else if self
            .drops
            .iter()
            .any(|d| d.direction == SaDirection::Inbound && d.dst == *dst)
        {
            Fate::Dropped
        } else {
            Fate::Clear
        }
    }

    fn id(&self, name: &str) -> MembershipId {
        self.node.membership(name).expect("configured")
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Protected,
    Dropped,
    Clear,
}

fn market_dst() -> TrafficSelector {
    config(gikev2::policy::KeyManagement::Flat, 1).teks[0].dst
}

#[test]
fn two_memberships_register_on_one_ike_sa_and_follow_rekeys() {
    let mut c = Charon::new(vec![market(), news_def()]);
    let ike = c.connect("gcks", true);
    let (market, news) = (c.id("market"), c.id("news"));
    assert_eq!(c.sas(market, SaDirection::Inbound).len(), 1);
    assert_eq!(
        c.sas(news, SaDirection::Inbound).len(),
        1,
        "news registered with GSA_REGISTRATION"
    );
    assert_ne!(
        c.sas(market, SaDirection::Inbound),
        c.sas(news, SaDirection::Inbound)
    );
    let status = c.node.status(c.now);
    assert!(
        status
            .iter()
            .all(|s| s.engine.registered && s.ike_sa == Some(ike))
    );

    let before = c.sas(market, SaDirection::Inbound);
    c.gcks.rekey(c.now, &group_id()).unwrap();
    c.run();
    c.advance_to(c.now + 10_000);
    let after = c.sas(market, SaDirection::Inbound);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "market took the new TEK");

    // A copy of the last datagram is a retransmission, not a replay.
    let last = c.sent.last().unwrap().clone();
    let dst = config(gikev2::policy::KeyManagement::Flat, 1)
        .rekey
        .unwrap()
        .dst;
    assert_eq!(c.deliver(dst, &last), [RekeyOutcome::Retransmission]);
    let mut altered = last.clone();
    let n = altered.len();
    altered[n - 1] ^= 1;
    assert_eq!(c.deliver(dst, &altered), [RekeyOutcome::Dropped]);
}

#[test]
fn fail_closed_keeps_traffic_dropped_once_the_sas_are_gone_and_open_lets_it_pass() {
    for (mode, gone) in [("closed", Fate::Dropped), ("open", Fate::Clear)] {
        let mut c = Charon::new(vec![def(
            "market",
            "gcks",
            &[("id", "market-data"), ("fail_mode", mode)],
        )]);
        c.connect("gcks", true);
        assert_eq!(c.inbound_fate(&market_dst()), Fate::Protected, "{mode}");
        // a rekey moves to a new SA under the same selectors: one drop
        // policy all along (the model refuses a second)
        c.gcks.rekey(c.now, &group_id()).unwrap();
        c.run();
        c.advance_to(c.now + 10_000);
        assert_eq!(c.drops.len(), usize::from(mode == "closed"), "{mode}");
        // the GCKS disappears: the TEK expires (3600 s), nothing replaces it
        c.advance_to(c.now + 3_700_000);
        assert_eq!(c.sas(c.id("market"), SaDirection::Inbound), []);
        assert_eq!(c.inbound_fate(&market_dst()), gone, "{mode}");
    }
}

#[test]
fn a_reload_keeps_what_is_unchanged_and_a_removed_membership_leaves() {
    let mut c = Charon::new(vec![market(), news_def()]);
    let ike = c.connect("gcks", true);
    let (market, news) = (c.id("market"), c.id("news"));
    let market_sas = c.sas(market, SaDirection::Inbound);
    assert_eq!(c.drops.len(), 2);

    let errors = c
        .node
        .reload(vec![def("market", "gcks", &[("id", "market-data")])]);
    assert_eq!(errors, []);
    c.run();
    assert_eq!(c.id("market"), market, "unchanged: the same membership");
    assert_eq!(
        c.sas(market, SaDirection::Inbound),
        market_sas,
        "and its SAs"
    );
    assert_eq!(c.sas(news, SaDirection::Inbound), [], "news's SAs are gone");
    assert!(
        c.sockets.iter().all(|(m, _, _)| *m != news),
        "its socket too"
    );
    assert_eq!(c.drops.len(), 1, "and its drop policy");
    assert_eq!(c.leaves, [(news, NotifyType::REGISTRATION_FAILED)]);
    assert_eq!(c.node.len(), 1);
    // The GCKS took the leave: the identity is no member of news any more.
    let status = c.gcks.status(c.now);
    let news_status = status.iter().find(|g| g.id == news_id()).unwrap();
    assert!(news_status.members.is_empty(), "{:?}", news_status.members);

    // Settings the node refuses keep the old membership and name the key.
    let errors = c.node.reload(vec![def(
        "market",
        "gcks",
        &[("id", "market-data"), ("fail_mode", "sometimes")],
    )]);
    assert_eq!(errors.len(), 1);
    let DefError { name, error } = &errors[0];
    assert_eq!((name.as_str(), error.key.as_str()), ("market", "fail_mode"));
    assert_eq!(c.id("market"), market);

    // Changed settings: a new membership, registering again; as no other
    // membership holds the IKE SA, with the connection.
    let errors = c.node.reload(vec![def(
        "market",
        "gcks",
        &[("id", "market-data"), ("fail_mode", "open")],
    )]);
    assert_eq!(errors, []);
    c.initiated.clear();
    c.run();
    assert_ne!(c.id("market"), market);
    assert_eq!(c.sas(market, SaDirection::Inbound), []);
    assert_eq!(c.initiated, ["gcks"]);
    assert_eq!(c.leaves.len(), 1, "the group is still joined: no leave");
    assert!(c.up.contains_key(&ike));
}

#[test]
fn a_membership_added_by_a_reload_registers_on_the_ike_sa_in_use() {
    let mut c = Charon::new(vec![market()]);
    let ike = c.connect("gcks", true);
    c.node.reload(vec![market(), news_def()]);
    c.run();
    let news = c.id("news");
    assert_eq!(c.sas(news, SaDirection::Inbound).len(), 1);
    assert!(c.initiated.is_empty(), "no new IKE SA");
    assert_eq!(c.node.status(c.now)[1].ike_sa, Some(ike));
}

#[test]
fn a_removed_membership_without_an_ike_sa_initiates_one_to_leave() {
    let mut c = Charon::new(vec![market(), news_def()]);
    let ike = c.connect("gcks", true);
    let news = c.id("news");
    c.lose(ike);
    c.node.reload(vec![market()]);
    c.run();
    assert_eq!(c.initiated, ["gcks"]);
    assert_eq!(c.sas(news, SaDirection::Inbound), [], "SAs go at once");
    // the new IKE SA registers market again, then news leaves on it
    c.connect("gcks", true);
    assert_eq!(c.leaves, [(news, NotifyType::REGISTRATION_FAILED)]);
    // done: the next reload forgets it, and no further IKE SA leaves it
    c.node.reload(vec![market()]);
    c.connect("gcks", true);
    assert_eq!(c.leaves.len(), 1);

    // a connection charon does not know: no way to tell the GCKS
    let mut c = Charon::new(vec![def("lone", "elsewhere", &[("id", "news")])]);
    c.node.reload(vec![]);
    c.run();
    assert_eq!(c.initiated, ["elsewhere"]);
    c.connections.push("elsewhere".into());
    assert!(
        !c.node.ike_sa_init(99, "elsewhere", GCKS.parse().unwrap()),
        "left: nothing to register"
    );
}

#[test]
fn a_failed_registration_is_retried_after_a_growing_backoff() {
    let mut c = Charon::new(vec![market()]);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let ike = c.connect("gcks", false);
        c.initiated.clear();
        c.lose(ike); // never up: the GCKS did not answer
        let at = c.node.poll_timeout().expect("a retry is due");
        waits.push(at - c.now);
        c.advance_to(at);
        assert_eq!(c.initiated, ["gcks"], "retried at the deadline");
    }
    // 5 s doubling, each between half and all of its cap
    for (i, w) in waits.iter().enumerate() {
        let cap = 5_000 << i;
        assert!((cap / 2..=cap).contains(w), "wait {i}: {w} ms of {cap}");
    }
    assert_eq!(c.node.status(c.now)[0].failures, 4);
    // a registration that works resets the count
    c.connect("gcks", true);
    assert_eq!(c.node.status(c.now)[0].failures, 0);
}

#[test]
fn a_refused_registration_closes_its_ike_sa_and_backs_off() {
    let mut c = Charon::new(vec![market()]);
    c.identity = "intruder@example.org".into();
    let ike = c.connect("gcks", true);
    assert_eq!(c.closed, [ike]);
    assert!(c.kernel.is_empty() && c.sockets.is_empty());
    let status = &c.node.status(c.now)[0];
    assert!(!status.engine.registered);
    assert_eq!(status.failures, 1);
    assert!(c.node.poll_timeout().is_some(), "tries again later");
}

#[test]
fn losing_the_ike_sa_matters_to_an_inband_group_only() {
    let inband_def = def("inband", "control", &[("id", "inband")]);
    let mut c = Charon::new(vec![market(), inband_def]);
    c.connections.push("control".into());
    let multicast = c.connect("gcks", true);
    let control = c.connect("control", true);
    let inband = c.id("inband");
    assert_eq!(c.sas(inband, SaDirection::Inbound).len(), 1);
    c.initiated.clear();
    c.lose(multicast);
    c.advance_to(c.now + 60_000);
    assert_eq!(
        c.initiated,
        [] as [&str; 0],
        "multicast members need no IKE SA"
    );
    c.lose(control);
    c.advance_to(c.now + 60_000);
    assert_eq!(c.initiated, ["control"], "the inband group registers again");
    assert_eq!(
        c.sas(inband, SaDirection::Inbound).len(),
        1,
        "keeping its SAs meanwhile"
    );
}

#[test]
fn an_ike_sa_rekey_moves_the_membership_and_inband_rekeys_follow() {
    let mut c = Charon::new(vec![def("inband", "control", &[("id", "inband")])]);
    c.connections.push("control".into());
    let old = c.connect("control", true);
    let member = c.id("inband");
    let before = c.sas(member, SaDirection::Inbound);
    // charon rekeys the IKE SA: new id, new SK_d; the GCKS moves too
    let new = 50;
    c.node.ike_sa_rekeyed(old, new);
    let new_sk = sk_d(new);
    c.gcks
        .ike_sa_rekeyed(
            MemberId(u64::from(old)),
            MemberId(u64::from(new)),
            Charon::ike(&new_sk),
        )
        .unwrap();
    c.up.remove(&old);
    c.up.insert(new, "control".into());
    c.node.ike_sa_destroyed(c.now, old);
    assert_eq!(c.node.status(c.now)[0].ike_sa, Some(new));
    // the GCKS rekeys inband under the new IKE SA's SK_d, and it is taken
    c.gcks.rekey(c.now, &inband().id).unwrap();
    c.run();
    c.advance_to(c.now + 10_000);
    let after = c.sas(member, SaDirection::Inbound);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    // a GSA_INBAND_REKEY on the old IKE SA is not this membership's
    let sk = sk_d(old);
    assert!(
        !c.node
            .inband_rekey(c.now, old, "control", &[], Charon::ike(&sk))
    );
}

#[test]
fn parallel_registrations_to_one_gcks_send_initial_contact_once() {
    let mut c = Charon::new(vec![
        market(),
        def("inband", "control", &[("id", "inband")]),
    ]);
    let g = GCKS.parse().unwrap();
    assert!(c.node.ike_sa_init(1, "gcks", g));
    let first = c.node.gsa_auth_request(1, "gcks").unwrap();
    assert!(!first.drop_initial_contact);
    assert!(c.node.ike_sa_init(2, "control", g));
    let second = c.node.gsa_auth_request(2, "control").unwrap();
    assert!(
        second.drop_initial_contact,
        "IKE SA 1 registers with the same GCKS"
    );
    assert!(
        !c.node.ike_sa_init(3, "unrelated", g),
        "no membership: IKE_AUTH"
    );
    assert_eq!(c.node.gsa_auth_request(3, "unrelated"), None);
}

#[test]
fn shutting_down_takes_everything_out_of_the_kernel() {
    let mut c = Charon::new(vec![market(), news_def()]);
    c.connect("gcks", true);
    assert!(!c.kernel.is_empty() && !c.drops.is_empty() && !c.sockets.is_empty());
    c.node.shut_down();
    c.run();
    assert!(c.kernel.is_empty() && c.drops.is_empty() && c.sockets.is_empty());
}
