//! Timings and message sizes of the GCKS and GM engines (`cargo bench`).
//!
//! No benchmark framework: a small harness on `std::time::Instant`. Every
//! figure is measured in several repetitions and reported as the median with
//! the smallest and largest repetition beside it, because the machines this
//! runs on are shared and noisy. Nothing here checks a time; the only checks
//! are that the engines did what was asked (a registration was accepted, a
//! GM could follow a rekey), so that a broken engine cannot produce a
//! flattering figure.
//!
//! Environment:
//! - `GIKEV2_BENCH_MAX`: largest group size for the GCKS figures; the sizes
//!   are the powers of ten from 10^3 up to it (default 1000000: 10^6 is what
//!   LKH is for, and on a 2-core Xeon the whole run takes about 1.5 minutes,
//!   two thirds of it populating the two 10^6 groups; 100000 runs in about
//!   10 seconds). The key-tree memory figure always includes 10^6.
//! - `GIKEV2_BENCH_REPS`: repetitions per figure (default 7, 3 to 51).
//! - `GIKEV2_BENCH_KV`: a file to write the figures to as key=value lines
//!   (used by `bench/run`).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use gikev2::crypto::{KeyWrapAlg, OsRng, Secret, SigAlg, SigningKey};
use gikev2::gcks::{Gcks, GcksAction, GcksError, MemberId, Registration};
use gikev2::gm::{Gm, GmError, MembershipConfig, Role};
use gikev2::iana::{ExchangeType, NotifyType};
use gikev2::ike_sa::Millis;
use gikev2::lkh::LkhTree;
use gikev2::policy::{KeyManagement, RekeyAuth};
use gikev2::rekey_message;
use gikev2::wire::{Payload, Reader, encode_chain, read_chain};

mod common;
use common::{accepted, env_u64, fmt_n, group_config, group_id, ike, km_name, random_sk_d};
/// LKH degree of the key-tree groups.
const DEGREE: u16 = 4;
const LKH: KeyManagement = KeyManagement::Lkh { degree: DEGREE };
/// Registrations timed in one repetition of the registration figure.
const REG_BATCH: usize = 128;
/// Real GM engines in the GM rekey-processing group.
const GM_COUNT: usize = 64;
/// Size of the GM rekey-processing group (the rest are GCKS-side members).
const GM_GROUP: u64 = 1000;
/// The GCKS gathers joins this long before one GSA_REKEY refreshes the tree.
const JOIN_FLUSH_DELAY: Millis = 1000;
/// Longer than the retransmission copies (2 s) and the DTD (5 s).
const SETTLE: Millis = 6000;
/// The largest IKE payload (16-bit length) minus room for the GSA payload,
/// the signature and the SK payload's IV and ICV.
const REKEY_BUDGET: usize = 56_000;
/// An upper bound on one WRAP_KEY or SA_KEY attribute (header, Key ID, KWK
/// ID, a 256-bit key wrapped with RFC 5649: 4 + 4 + 4 + 40 = 52).
const WRAP_ATTR_BOUND: usize = 64;

// ---------------------------------------------------------------- harness

/// Median, smallest and largest over the repetitions, in nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn median_of(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

impl Stat {
    fn of(reps: &[f64]) -> Self {
        Self {
            median: median_of(reps),
            min: reps.iter().copied().fold(f64::INFINITY, f64::min),
            max: reps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// Timings of one figure: each repetition contributes one value (the
/// median of its samples when it has several).
#[derive(Default)]
struct Series {
    reps: Vec<f64>,
    samples: usize,
}

impl Series {
    fn push_rep(&mut self, samples: &[f64]) {
        self.reps.push(median_of(samples));
        self.samples += samples.len();
    }

    fn push_one(&mut self, d: Duration) {
        self.push_rep(&[ns(d)]);
    }

    fn stat(&self) -> Stat {
        Stat::of(&self.reps)
    }
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e4 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn fmt_stat(s: Stat) -> [String; 3] {
    [fmt_ns(s.median), fmt_ns(s.min), fmt_ns(s.max)]
}

fn fmt_range(values: &[usize]) -> String {
    let (lo, hi) = (values.iter().min(), values.iter().max());
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => "-".into(),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

/// A printed table: first column left-aligned, the others right-aligned.
struct Table {
    title: String,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    fn new(title: &str, head: &[&str]) -> Self {
        Self {
            title: title.into(),
            head: head.iter().map(|s| (*s).into()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    fn render(&self) -> String {
        let cols = self.head.len();
        let mut w = vec![0; cols];
        for r in std::iter::once(&self.head).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |r: &[String]| {
            let mut s = String::new();
            for (i, width) in w.iter().enumerate() {
                let c = r.get(i).map_or("", String::as_str);
                let pad = width - c.chars().count();
                if i == 0 {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(" | ");
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
            }
            s.trim_end().to_owned() + "\n"
        };
        let mut out = format!("\n{}\n", self.title);
        out.push_str(&line(&self.head));
        let total: usize = w.iter().sum::<usize>() + 3 * (cols - 1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        for n in &self.notes {
            let _ = writeln!(out, "  {n}");
        }
        out
    }
}

/// Progress on stderr; the tables go to stdout at the end.
struct Progress(Instant);

impl Progress {
    fn say(&self, what: &str) {
        eprintln!("[{:7.1}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

// ---------------------------------------------------------------- setup

fn signing(alg: SigAlg) -> RekeyAuth {
    RekeyAuth::Signature(SigningKey::generate(alg).expect("key generation"))
}

/// The member limit of a group meant for `n` members: the smallest power of
/// the degree with room for `n` and a registration batch, so the key tree is
/// the complete d-ary tree of that depth.
fn member_limit(n: u64) -> u32 {
    let need = n + REG_BATCH as u64 + 64;
    let mut cap = 1u64;
    while cap < need {
        cap *= u64::from(DEGREE);
    }
    u32::try_from(cap).expect("member limit fits u32")
}

fn tree_depth(limit: u32) -> usize {
    LkhTree::new(DEGREE, limit, KeyWrapAlg::Kw5649_256)
        .expect("tree")
        .depth()
}

fn receiver() -> Role {
    Role {
        receive: true,
        send: false,
    }
}

fn new_gm() -> Gm {
    Gm::new(
        MembershipConfig {
            group: group_id(),
            role: receiver(),
            sender_ids: 1,
            offer: None,
        },
        Box::new(OsRng),
    )
}

/// Encodes payloads and decodes them again, as they cross charon; returns
/// the encoded length too.
fn through_wire(payloads: &[Payload]) -> (Vec<Payload>, usize) {
    if payloads.is_empty() {
        return (Vec::new(), 0);
    }
    let mut b = Vec::new();
    encode_chain(payloads, &mut b);
    let out = read_chain(payloads[0].ty(), &mut Reader::new(&b)).expect("our encoding decodes");
    (out, b.len())
}

/// `Gcks::status` clones every member's identity. Freeing 10^6 small
/// strings fills glibc's fast bins, and the next allocation too large for
/// them consolidates them all (some 100 ms at 10^6). That is paid here,
/// untimed, instead of inside the next timed call.
fn settle_allocator() {
    drop(std::hint::black_box(Vec::<u8>::with_capacity(1 << 16)));
}

/// A GCKS serving one group, its clock, and the GCKS-side members: members
/// registered through `Gcks::handle_registration` with exactly the request
/// a receiver GM sends (IDg), whose responses nobody processes.
struct Server {
    gcks: Gcks,
    now: Millis,
    lkh: bool,
    next_id: u64,
    request: Vec<Payload>,
    sk_d: Secret,
    /// (Rekey SPI, Message ID) of every GSA_REKEY seen: retransmissions are
    /// bitwise copies and skipped.
    seen: HashSet<([u8; 16], u32)>,
    /// Joins per join flush, see [`Server::new`].
    flush_every: usize,
    pending_joins: usize,
    largest_rekey: usize,
    rekeys_sent: usize,
    /// New GSA_REKEY datagrams, kept only when `keep` is set.
    outbox: Vec<Vec<u8>>,
    keep: bool,
}

impl Server {
    fn new(km: KeyManagement, limit: u32, auth: RekeyAuth) -> Self {
        let mut gcks = Gcks::new(Box::new(OsRng));
        gcks.add_group(0, group_config(km, limit, auth))
            .expect("group config");
        let lkh = matches!(km, KeyManagement::Lkh { .. });
        // Joins are flushed (one JOIN_FLUSH_DELAY of virtual time) often
        // enough that the flush GSA_REKEY fits one IKE payload even if each
        // join refreshed its whole path, wrapped under all d children.
        let depth = tree_depth(limit);
        let per_join = WRAP_ATTR_BOUND * usize::from(DEGREE) * depth.saturating_sub(1).max(1);
        let flush_every = (REKEY_BUDGET / per_join).clamp(1, 256);
        Self {
            gcks,
            now: 0,
            lkh,
            next_id: 0,
            request: new_gm().registration_payloads(),
            sk_d: random_sk_d(),
            seen: HashSet::new(),
            flush_every,
            pending_joins: 0,
            largest_rekey: 0,
            rekeys_sent: 0,
            outbox: Vec::new(),
            keep: false,
        }
    }

    fn fresh_member(&mut self) -> (MemberId, String) {
        self.next_id += 1;
        (
            MemberId(self.next_id),
            format!("gm{}@example.com", self.next_id),
        )
    }

    /// A GCKS-side member: the GCKS's whole registration work, no GM.
    fn register_fast(&mut self) -> MemberId {
        let (id, identity) = self.fresh_member();
        let resp = self.gcks.handle_registration(
            self.now,
            &Registration {
                member: id,
                identities: &[&identity],
                peer: Some(common::peer_of(id.0)),
                exchange: ExchangeType::GSA_AUTH,
                payloads: &self.request,
                ike: ike(&self.sk_d),
            },
        );
        assert!(accepted(&resp), "registration {} refused: {resp:?}", id.0);
        self.joined();
        id
    }

    /// After any join: drain the actions, flush the joins when due.
    fn joined(&mut self) {
        self.drain();
        if self.lkh {
            self.pending_joins += 1;
            if self.pending_joins >= self.flush_every {
                self.advance(JOIN_FLUSH_DELAY);
            }
        }
    }

    fn populate(&mut self, n: u64) -> Vec<MemberId> {
        (0..n).map(|_| self.register_fast()).collect()
    }

    fn advance(&mut self, ms: Millis) {
        self.now += ms;
        self.gcks.handle_timeout(self.now);
        self.pending_joins = 0;
        self.drain();
    }

    /// Takes the GCKS's actions; returns the new GSA_REKEY datagrams.
    fn drain(&mut self) -> usize {
        let mut new = 0;
        while let Some(a) = self.gcks.poll_action() {
            if let GcksAction::Multicast { datagram, .. } = a {
                let (spi, id) = rekey_message::peek(&datagram).expect("our own header");
                if self.seen.insert((spi.0, id)) {
                    new += 1;
                    self.rekeys_sent += 1;
                    self.largest_rekey = self.largest_rekey.max(datagram.len());
                    if self.keep {
                        self.outbox.push(datagram);
                    }
                }
            }
        }
        new
    }

    /// The last `n` GSA_REKEY summaries as (bytes, wrapped keys).
    fn last_rekeys(&self, n: usize) -> Vec<(usize, usize)> {
        let st = self.gcks.status(self.now);
        let r = &st[0].recent_rekeys;
        let out = r[r.len().saturating_sub(n)..]
            .iter()
            .map(|s| (s.bytes, s.wrapped_keys))
            .collect();
        drop(st);
        settle_allocator();
        out
    }
}

// ---------------------------------------------------------------- part 1

struct RegResult {
    km: KeyManagement,
    n: u64,
    depth: usize,
    gcks: Series,
    gcks_mean: f64,
    gm: Series,
    full: Series,
    resp_bytes: Vec<usize>,
}

/// Times `REG_BATCH` registrations of real GMs per repetition, at group
/// size `n` (the joiners leave again after each repetition).
fn bench_registration(s: &mut Server, km: KeyManagement, n: u64, reps: usize) -> RegResult {
    let mut r = RegResult {
        km,
        n,
        depth: if s.lkh {
            tree_depth(member_limit(n))
        } else {
            0
        },
        gcks: Series::default(),
        gcks_mean: 0.0,
        gm: Series::default(),
        full: Series::default(),
        resp_bytes: Vec::new(),
    };
    let mut all = Vec::new();
    for _ in 0..reps {
        let (mut g, mut m, mut f) = (Vec::new(), Vec::new(), Vec::new());
        let mut joined = Vec::new();
        for _ in 0..REG_BATCH {
            let t_full = Instant::now();
            let (id, identity) = s.fresh_member();
            let sk_d = random_sk_d();
            let mut gm = new_gm();
            let (req, _) = through_wire(&gm.registration_payloads());
            let reg = Registration {
                member: id,
                identities: &[&identity],
                peer: Some(common::peer_of(id.0)),
                exchange: ExchangeType::GSA_AUTH,
                payloads: &req,
                ike: ike(&sk_d),
            };
            let (resp, dt_gcks) = time(|| s.gcks.handle_registration(s.now, &reg));
            assert!(accepted(&resp), "registration refused: {resp:?}");
            let (resp, bytes) = through_wire(&resp);
            let (res, dt_gm) = time(|| {
                gm.handle_registration_response(s.now, ExchangeType::GSA_AUTH, &resp, ike(&sk_d))
            });
            res.expect("GM takes the registration response");
            while gm.poll_action().is_some() {}
            let dt_full = t_full.elapsed();
            g.push(ns(dt_gcks));
            m.push(ns(dt_gm));
            f.push(ns(dt_full));
            r.resp_bytes.push(bytes);
            joined.push((id, identity, sk_d, gm));
            s.joined();
        }
        all.extend_from_slice(&g);
        r.gcks.push_rep(&g);
        r.gm.push_rep(&m);
        r.full.push_rep(&f);
        // Back to n members: each joiner leaves (Figure 8), which with LKH
        // is an exclusion rekey.
        for (id, identity, sk_d, gm) in joined {
            let (req, _) = through_wire(&gm.leave_payloads(NotifyType::REGISTRATION_FAILED));
            let resp = s.gcks.handle_registration(
                s.now,
                &Registration {
                    member: id,
                    identities: &[&identity],
                    peer: Some(common::peer_of(id.0)),
                    exchange: ExchangeType::GSA_REGISTRATION,
                    payloads: &req,
                    ike: ike(&sk_d),
                },
            );
            assert!(resp.is_empty(), "leave answered with {resp:?}");
            s.drain();
        }
        s.advance(SETTLE);
    }
    r.gcks_mean = all.iter().sum::<f64>() / all.len().max(1) as f64;
    r
}

// ---------------------------------------------------------------- part 2

/// LKH exclusions: `Gcks::exclude` times and the (bytes, wrapped keys) of
/// the new-KEK and new-TEK messages of each repetition.
struct Exclusion {
    time: Series,
    kek: Vec<(usize, usize)>,
    tek: Vec<(usize, usize)>,
}

struct RekeyResult {
    km: KeyManagement,
    n: u64,
    depth: usize,
    populate: Duration,
    flush_every: usize,
    largest_flush: usize,
    /// LKH exclusion: exclude time, (bytes, wraps) of the KEK and TEK
    /// messages; None for flat (refused with ExclusionNeedsLkh).
    exclude: Option<Exclusion>,
    exclude_refusal: Option<String>,
    rekey: Series,
    rekey_msg: Vec<(usize, usize)>,
}

fn bench_rekeys(
    s: &mut Server,
    km: KeyManagement,
    n: u64,
    members: &[MemberId],
    populate: Duration,
    largest_flush: usize,
    reps: usize,
) -> RekeyResult {
    let gid = group_id();
    let mut out = RekeyResult {
        km,
        n,
        depth: if s.lkh {
            tree_depth(member_limit(n))
        } else {
            0
        },
        populate,
        flush_every: s.flush_every,
        largest_flush,
        exclude: None,
        exclude_refusal: None,
        rekey: Series::default(),
        rekey_msg: Vec::new(),
    };
    s.advance(SETTLE);
    if s.lkh {
        let (mut t, mut kek, mut tek) = (Series::default(), Vec::new(), Vec::new());
        // One warm-up, then `reps` exclusions of members spread over the tree.
        for rep in 0..=reps {
            let victim = members[(rep * members.len() + members.len() / 2) / (reps + 1)];
            let (res, dt) = time(|| s.gcks.exclude(s.now, &gid, victim));
            res.expect("exclusion");
            let sent = s.drain();
            assert_eq!(sent, 2, "an exclusion sends the new KEK, then the new TEK");
            if rep > 0 {
                t.push_one(dt);
                let last = s.last_rekeys(2);
                kek.push(last[0]);
                tek.push(last[1]);
            }
            s.advance(SETTLE);
        }
        out.exclude = Some(Exclusion { time: t, kek, tek });
    } else {
        out.exclude_refusal = Some(match s.gcks.exclude(s.now, &gid, members[0]) {
            Err(GcksError::ExclusionNeedsLkh) => "n/a (needs LKH)".into(),
            Err(e) => format!("refused: {e}"),
            Ok(()) => "accepted?!".into(),
        });
        s.drain();
    }
    for rep in 0..=reps {
        let (res, dt) = time(|| s.gcks.rekey(s.now, &gid));
        res.expect("TEK rekey");
        let sent = s.drain();
        assert_eq!(sent, 1, "a TEK rekey is one GSA_REKEY");
        if rep > 0 {
            out.rekey.push_one(dt);
            out.rekey_msg.extend(s.last_rekeys(1));
        }
        s.advance(SETTLE);
    }
    out
}

/// `heap_bytes()` of a full `LkhTree` of `n` members, built directly. The
/// join refresh is taken every 256 joins, as the GCKS would broadcast it.
fn tree_memory(n: u32) -> (usize, usize, Duration) {
    let t = Instant::now();
    let mut tree = LkhTree::new(DEGREE, n, KeyWrapAlg::Kw5649_256).expect("tree");
    let mut rng = OsRng;
    for i in 0..n {
        tree.join(&mut rng).expect("join");
        if i % 256 == 255 {
            tree.take_join_refresh().expect("refresh");
        }
    }
    tree.take_join_refresh().expect("refresh");
    (tree.heap_bytes(), tree.depth(), t.elapsed())
}

// ---------------------------------------------------------------- part 3

struct GmResult {
    auth: &'static str,
    tek: Series,
    exclusion: Series,
    after_exclusion: Series,
    gcks_rekey: Series,
    gcks_exclude: Series,
    tek_bytes: Vec<usize>,
    excl_bytes: Vec<usize>,
}

/// Hands new datagrams to every GM. Outside the timed loops a GM may not
/// hold the SA a message travels on (a joiner already holds the KEK its
/// join flush moves everyone to); anything else is a failure.
fn deliver(gms: &mut [Gm], s: &mut Server) {
    for dg in std::mem::take(&mut s.outbox) {
        for (i, g) in gms.iter_mut().enumerate() {
            match g.handle_rekey(s.now, &dg) {
                Ok(()) | Err(GmError::UnknownRekeySa(_) | GmError::Replay { .. }) => {}
                Err(e) => panic!("GM {i} cannot follow the group: {e}"),
            }
            while g.poll_action().is_some() {}
        }
    }
}

fn gm_advance(gms: &mut [Gm], s: &mut Server, ms: Millis) {
    s.advance(ms);
    deliver(gms, s);
    for g in gms.iter_mut() {
        g.handle_timeout(s.now);
        while g.poll_action().is_some() {}
    }
}

/// Each GM's `handle_rekey` on one datagram; all must take it.
fn time_gms(gms: &mut [Gm], now: Millis, dg: &[u8]) -> Vec<f64> {
    gms.iter_mut()
        .enumerate()
        .map(|(i, g)| {
            let (res, dt) = time(|| g.handle_rekey(now, dg));
            if let Err(e) = res {
                panic!("GM {i} refused the rekey: {e}");
            }
            while g.poll_action().is_some() {}
            ns(dt)
        })
        .collect()
}

fn bench_gm(auth_name: &'static str, auth: RekeyAuth, reps: usize) -> GmResult {
    let gid = group_id();
    let mut s = Server::new(LKH, member_limit(GM_GROUP), auth);
    s.keep = true;
    let mut gms: Vec<Gm> = Vec::new();
    let mut others = Vec::new();
    let spacing = GM_GROUP / GM_COUNT as u64;
    for i in 0..GM_GROUP {
        if i % spacing == 0 && gms.len() < GM_COUNT {
            let (id, identity) = s.fresh_member();
            let sk_d = random_sk_d();
            let mut gm = new_gm();
            let (req, _) = through_wire(&gm.registration_payloads());
            let resp = s.gcks.handle_registration(
                s.now,
                &Registration {
                    member: id,
                    identities: &[&identity],
                    peer: Some(common::peer_of(id.0)),
                    exchange: ExchangeType::GSA_AUTH,
                    payloads: &req,
                    ike: ike(&sk_d),
                },
            );
            let (resp, _) = through_wire(&resp);
            gm.handle_registration_response(s.now, ExchangeType::GSA_AUTH, &resp, ike(&sk_d))
                .expect("GM registers");
            while gm.poll_action().is_some() {}
            gms.push(gm);
            s.drain();
            deliver(&mut gms, &mut s);
            s.pending_joins += 1;
            if s.pending_joins >= s.flush_every {
                gm_advance(&mut gms, &mut s, JOIN_FLUSH_DELAY);
            }
        } else {
            others.push(s.register_fast());
            deliver(&mut gms, &mut s);
        }
    }
    gm_advance(&mut gms, &mut s, SETTLE);

    let mut r = GmResult {
        auth: auth_name,
        tek: Series::default(),
        exclusion: Series::default(),
        after_exclusion: Series::default(),
        gcks_rekey: Series::default(),
        gcks_exclude: Series::default(),
        tek_bytes: Vec::new(),
        excl_bytes: Vec::new(),
    };
    // Plain TEK rekeys: one warm-up, then `reps` messages.
    for rep in 0..=reps {
        let (res, dt) = time(|| s.gcks.rekey(s.now, &gid));
        res.expect("TEK rekey");
        s.drain();
        let dgs = std::mem::take(&mut s.outbox);
        assert_eq!(dgs.len(), 1, "one GSA_REKEY");
        let t = time_gms(&mut gms, s.now, &dgs[0]);
        if rep > 0 {
            r.gcks_rekey.push_one(dt);
            r.tek.push_rep(&t);
            r.tek_bytes.push(dgs[0].len());
        }
        gm_advance(&mut gms, &mut s, SETTLE);
    }
    // Exclusions of GCKS-side members spread over the tree.
    for rep in 0..=reps {
        let victim = others[(rep * others.len() + others.len() / 2) / (reps + 1)];
        let (res, dt) = time(|| s.gcks.exclude(s.now, &gid, victim));
        res.expect("exclusion");
        s.drain();
        let dgs = std::mem::take(&mut s.outbox);
        assert_eq!(dgs.len(), 2, "new KEK, then new TEK");
        let kek = time_gms(&mut gms, s.now, &dgs[0]);
        let tek = time_gms(&mut gms, s.now, &dgs[1]);
        if rep > 0 {
            r.gcks_exclude.push_one(dt);
            r.exclusion.push_rep(&kek);
            r.after_exclusion.push_rep(&tek);
            r.excl_bytes.push(dgs[0].len());
        }
        gm_advance(&mut gms, &mut s, SETTLE);
    }
    r
}

// ---------------------------------------------------------------- main

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, where a smoke run is all that is wanted.
    if !std::env::args().any(|a| a == "--bench") {
        println!("engines: benchmarks run with `cargo bench`");
        return;
    }
    let started = Instant::now();
    let p = Progress(started);
    let max = env_u64("GIKEV2_BENCH_MAX").unwrap_or(1_000_000).max(1_000);
    let reps = env_u64("GIKEV2_BENCH_REPS").unwrap_or(7).clamp(3, 51) as usize;
    let sizes: Vec<u64> = [1_000, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect();
    let reg_sizes = [1_000u64, 100_000];

    let mut header = String::new();
    let _ = writeln!(
        header,
        "gikev2 {} engine benchmarks",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        header,
        "machine: {} CPU(s) (nproc), {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    let _ = writeln!(header, "rustc:   {}", rustc_version());
    let _ = writeln!(header, "openssl: {}", openssl::version::version());
    let _ = writeln!(
        header,
        "profile: {}; GIKEV2_BENCH_MAX={max} (sizes {}), GIKEV2_BENCH_REPS={reps}",
        if cfg!(debug_assertions) {
            "debug (numbers meaningless)"
        } else {
            "optimized"
        },
        sizes
            .iter()
            .map(|&n| fmt_n(n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        header,
        "Times: median over {reps} repetitions [fastest, slowest repetition]; a repetition \
         of a many-sample figure counts as its samples' median. Part 2 uses Ed25519 GCAUTH."
    );
    eprint!("{header}");

    let mut regs: Vec<RegResult> = Vec::new();
    let mut rekeys: Vec<RekeyResult> = Vec::new();
    for &n in &sizes {
        for km in [LKH, KeyManagement::Flat] {
            p.say(&format!(
                "{} group of {}: populating",
                km_name(km),
                fmt_n(n)
            ));
            let mut s = Server::new(km, member_limit(n), signing(SigAlg::Ed25519));
            let (members, populate) = time(|| s.populate(n));
            s.advance(SETTLE);
            let largest_flush = s.largest_rekey;
            p.say(&format!(
                "  {} members in {:.1} s ({} GSA_REKEY, largest {} bytes)",
                n,
                populate.as_secs_f64(),
                s.rekeys_sent,
                largest_flush
            ));
            if reg_sizes.contains(&n) {
                p.say("  registrations");
                regs.push(bench_registration(&mut s, km, n, reps));
            }
            p.say("  rekeys");
            rekeys.push(bench_rekeys(
                &mut s,
                km,
                n,
                &members,
                populate,
                largest_flush,
                reps,
            ));
        }
    }
    let mut memory = Vec::new();
    for n in [1_000u32, 10_000, 100_000, 1_000_000] {
        p.say(&format!("LkhTree of {}: heap_bytes", fmt_n(n.into())));
        memory.push((n, tree_memory(n)));
    }
    let mut gm_results = Vec::new();
    for (name, auth) in [
        ("Ed25519", signing(SigAlg::Ed25519)),
        ("ECDSA P-256", signing(SigAlg::EcdsaP256Sha256)),
        ("implicit", RekeyAuth::Implicit),
    ] {
        p.say(&format!("GM rekey processing, {name}"));
        gm_results.push(bench_gm(name, auth, reps));
    }

    // ---- tables
    let mut out = header;

    let mut t = Table::new(
        "1. Registration (GSA_AUTH of a receiver GM) at group size N",
        &[
            "group",
            "N",
            "depth",
            "GCKS handle_registration",
            "min",
            "max",
            "mean",
            "GM handle_registration_response",
            "min",
            "max",
            "response bytes",
        ],
    );
    for r in &regs {
        let g = fmt_stat(r.gcks.stat());
        let m = fmt_stat(r.gm.stat());
        t.row(vec![
            km_name(r.km),
            fmt_n(r.n),
            if r.depth == 0 {
                "-".into()
            } else {
                r.depth.to_string()
            },
            g[0].clone(),
            g[1].clone(),
            g[2].clone(),
            fmt_ns(r.gcks_mean),
            m[0].clone(),
            m[1].clone(),
            m[2].clone(),
            fmt_range(&r.resp_bytes),
        ]);
    }
    t.note(format!(
        "{REG_BATCH} registrations per repetition, each timed alone ({} samples per cell); \
         mean = over all samples, so it includes the join that opens a flush window.",
        regs.first().map_or(0, |r| r.gcks.samples)
    ));
    t.note(
        "The joiners leave again after each repetition (LKH: an exclusion rekey), so N \
         stays within N..N+128. Payloads cross the wire codec outside the timed calls.",
    );
    if let Some(r) = regs.iter().find(|r| r.km == LKH) {
        t.note(format!(
            "A whole registration incl. Gm::new and the codec both ways: {} per member (LKH, {}).",
            fmt_ns(r.full.stat().median),
            fmt_n(r.n)
        ));
    }
    t.note(
        "LKH joins are flushed by the GCKS timer (one JOIN_FLUSH_DELAY of virtual time) \
         every F joins, F in part 2's table.",
    );
    out.push_str(&t.render());

    let mut t = Table::new(
        "2a. Member exclusion (Gcks::exclude: new-KEK message, then new-TEK message)",
        &[
            "group",
            "N",
            "depth",
            "exclude",
            "min",
            "max",
            "KEK msg bytes",
            "KEK msg wraps",
            "TEK msg bytes",
            "TEK msg wraps",
        ],
    );
    for r in &rekeys {
        let mut row = vec![
            km_name(r.km),
            fmt_n(r.n),
            if r.depth == 0 {
                "-".into()
            } else {
                r.depth.to_string()
            },
        ];
        match (&r.exclude, &r.exclude_refusal) {
            (Some(Exclusion { time, kek, tek }), _) => {
                row.extend(fmt_stat(time.stat()));
                let b = |v: &[(usize, usize)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
                let w = |v: &[(usize, usize)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
                row.extend([
                    fmt_range(&b(kek)),
                    fmt_range(&w(kek)),
                    fmt_range(&b(tek)),
                    fmt_range(&w(tek)),
                ]);
            }
            (None, refusal) => {
                row.push(refusal.clone().unwrap_or_default());
                row.extend(["", "", "-", "-", "-", "-"].map(String::from));
            }
        }
        t.row(row);
    }
    t.note(format!(
        "One exclusion per repetition ({reps} + 1 warm-up), members spread over the tree; \
         sizes and wraps from GroupStatus::recent_rekeys (range over repetitions)."
    ));
    t.note(
        "Flat groups refuse to exclude a multicast member (GcksError::ExclusionNeedsLkh); \
         their only rekey is the plain TEK rekey of 2b, which does not shut anyone out.",
    );
    t.note(format!(
        "member_limit = the smallest power of {DEGREE} >= N + {}, which sets the tree depth.",
        REG_BATCH + 64
    ));
    out.push_str(&t.render());

    let mut t = Table::new(
        "2b. Plain TEK rekey (Gcks::rekey) and group population",
        &[
            "group",
            "N",
            "rekey",
            "min",
            "max",
            "msg bytes",
            "wraps",
            "populate",
            "per member",
            "F",
            "largest flush",
        ],
    );
    for r in &rekeys {
        let st = fmt_stat(r.rekey.stat());
        let b: Vec<usize> = r.rekey_msg.iter().map(|x| x.0).collect();
        let w: Vec<usize> = r.rekey_msg.iter().map(|x| x.1).collect();
        let lkh = matches!(r.km, KeyManagement::Lkh { .. });
        t.row(vec![
            km_name(r.km),
            fmt_n(r.n),
            st[0].clone(),
            st[1].clone(),
            st[2].clone(),
            fmt_range(&b),
            fmt_range(&w),
            format!("{:.2} s", r.populate.as_secs_f64()),
            fmt_ns(ns(r.populate) / r.n as f64),
            if lkh {
                r.flush_every.to_string()
            } else {
                "-".into()
            },
            if lkh {
                format!("{} B", r.largest_flush)
            } else {
                "-".into()
            },
        ]);
    }
    t.note(
        "Groups are populated with GCKS-side members: Gcks::handle_registration with the \
         very request a receiver GM sends (IDg), the response not processed by a GM.",
    );
    if let Some(r) = regs.iter().find(|r| r.km == LKH) {
        t.note(format!(
            "Why not real GMs: a whole registration with a Gm engine costs {} per member \
             (part 1), and every GM would have to process every later GSA_REKEY, about \
             N^2/F Gm::handle_rekey calls (4e10 at 10^6).",
            fmt_ns(r.full.stat().median)
        ));
    }
    t.note(
        "F = joins per join flush, chosen so a flush GSA_REKEY stays under the 64 KiB IKE \
         payload limit even if every join refreshed its whole path; largest flush = \
         biggest GSA_REKEY sent while populating.",
    );
    if max < 1_000_000 {
        t.note(format!(
            "10^6 skipped: GIKEV2_BENCH_MAX={max}. Run with GIKEV2_BENCH_MAX=1000000 for it."
        ));
    }
    out.push_str(&t.render());

    let mut t = Table::new(
        "2c. LKH tree memory (LkhTree::new(4, N) + N joins, heap_bytes())",
        &["N", "depth", "heap bytes", "bytes/member", "build time"],
    );
    for (n, (bytes, depth, dt)) in &memory {
        t.row(vec![
            fmt_n((*n).into()),
            depth.to_string(),
            bytes.to_string(),
            format!("{:.1}", *bytes as f64 / f64::from(*n)),
            format!("{:.2} s", dt.as_secs_f64()),
        ]);
    }
    t.note("Capacity = N (a full tree); the join refresh is taken every 256 joins.");
    out.push_str(&t.render());

    let mut t = Table::new(
        &format!(
            "3. GM rekey processing (Gm::handle_rekey), LKH d=4 group of {}, {} GMs",
            fmt_n(GM_GROUP),
            GM_COUNT
        ),
        &[
            "GCAUTH",
            "TEK rekey",
            "min",
            "max",
            "exclusion (KEK msg)",
            "min",
            "max",
            "TEK msg after it",
            "bytes TEK/KEK",
        ],
    );
    for r in &gm_results {
        let a = fmt_stat(r.tek.stat());
        let b = fmt_stat(r.exclusion.stat());
        t.row(vec![
            r.auth.into(),
            a[0].clone(),
            a[1].clone(),
            a[2].clone(),
            b[0].clone(),
            b[1].clone(),
            b[2].clone(),
            fmt_ns(r.after_exclusion.stat().median),
            format!("{}/{}", fmt_range(&r.tek_bytes), fmt_range(&r.excl_bytes)),
        ]);
    }
    t.note(format!(
        "Per repetition one message, the median over the {GM_COUNT} GMs taking it; {reps} \
         repetitions + 1 warm-up. The excluded members are not among the timed GMs."
    ));
    out.push_str(&t.render());

    let mut t = Table::new(
        &format!(
            "3b. GCKS build time by GCAUTH (same groups, N = {})",
            fmt_n(GM_GROUP)
        ),
        &[
            "GCAUTH",
            "Gcks::rekey",
            "min",
            "max",
            "Gcks::exclude",
            "min",
            "max",
        ],
    );
    for r in &gm_results {
        let a = fmt_stat(r.gcks_rekey.stat());
        let b = fmt_stat(r.gcks_exclude.stat());
        t.row(vec![
            r.auth.into(),
            a[0].clone(),
            a[1].clone(),
            a[2].clone(),
            b[0].clone(),
            b[1].clone(),
            b[2].clone(),
        ]);
    }
    out.push_str(&t.render());

    let mut t = Table::new("4. Ratios (of medians)", &["comparison", "N", "ratio"]);
    for &n in &reg_sizes {
        let get = |km| regs.iter().find(|r| r.km == km && r.n == n);
        if let (Some(l), Some(f)) = (get(LKH), get(KeyManagement::Flat)) {
            t.row(vec![
                "GCKS registration, LKH / flat".into(),
                fmt_n(n),
                ratio(l.gcks.stat().median, f.gcks.stat().median),
            ]);
            t.row(vec![
                "GM registration response, LKH / flat".into(),
                fmt_n(n),
                ratio(l.gm.stat().median, f.gm.stat().median),
            ]);
        }
    }
    for &n in &sizes {
        let get = |km| rekeys.iter().find(|r| r.km == km && r.n == n);
        if let (Some(l), Some(f)) = (get(LKH), get(KeyManagement::Flat)) {
            t.row(vec![
                "TEK rekey build, LKH / flat".into(),
                fmt_n(n),
                ratio(l.rekey.stat().median, f.rekey.stat().median),
            ]);
            if let Some(e) = &l.exclude {
                t.row(vec![
                    "LKH exclusion / LKH TEK rekey".into(),
                    fmt_n(n),
                    ratio(e.time.stat().median, l.rekey.stat().median),
                ]);
            }
        }
    }
    if let Some(imp) = gm_results.iter().find(|r| r.auth == "implicit") {
        for r in gm_results.iter().filter(|r| r.auth != "implicit") {
            let n = fmt_n(GM_GROUP);
            t.row(vec![
                format!("GM TEK rekey, {} / implicit", r.auth),
                n.clone(),
                ratio(r.tek.stat().median, imp.tek.stat().median),
            ]);
            t.row(vec![
                format!("GM exclusion msg, {} / implicit", r.auth),
                n.clone(),
                ratio(r.exclusion.stat().median, imp.exclusion.stat().median),
            ]);
            t.row(vec![
                format!("GCKS TEK rekey, {} / implicit", r.auth),
                n.clone(),
                ratio(r.gcks_rekey.stat().median, imp.gcks_rekey.stat().median),
            ]);
            t.row(vec![
                format!("GCKS exclusion, {} / implicit", r.auth),
                n,
                ratio(r.gcks_exclude.stat().median, imp.gcks_exclude.stat().median),
            ]);
        }
    }
    out.push_str(&t.render());

    let _ = writeln!(
        out,
        "\npeak RSS {}; total run {:.1} s",
        peak_rss(),
        started.elapsed().as_secs_f64()
    );
    print!("{out}");
    if let Ok(path) = std::env::var("GIKEV2_BENCH_KV") {
        let kv = key_values(&regs, &rekeys, &memory, &gm_results);
        if let Err(e) = std::fs::write(&path, kv) {
            eprintln!("engines: cannot write {path}: {e}");
        }
    }
}

/// The figures as key=value lines (`GIKEV2_BENCH_KV=FILE`), for bench/run's
/// summary; times in nanoseconds (medians), sizes in bytes.
fn key_values(
    regs: &[RegResult],
    rekeys: &[RekeyResult],
    memory: &[(u32, (usize, usize, Duration))],
    gms: &[GmResult],
) -> String {
    let km = |k: KeyManagement| match k {
        KeyManagement::Flat => "flat",
        KeyManagement::Lkh { .. } => "lkh",
    };
    let mut o = String::new();
    for r in regs {
        let (k, n) = (km(r.km), r.n);
        let _ = writeln!(o, "reg_gcks_ns_{k}_{n}={:.0}", r.gcks.stat().median);
        let _ = writeln!(o, "reg_gcks_mean_ns_{k}_{n}={:.0}", r.gcks_mean);
        let _ = writeln!(o, "reg_gm_ns_{k}_{n}={:.0}", r.gm.stat().median);
        let _ = writeln!(o, "reg_full_ns_{k}_{n}={:.0}", r.full.stat().median);
    }
    for r in rekeys {
        let (k, n) = (km(r.km), r.n);
        let _ = writeln!(o, "rekey_ns_{k}_{n}={:.0}", r.rekey.stat().median);
        let _ = writeln!(
            o,
            "populate_ns_per_member_{k}_{n}={:.0}",
            ns(r.populate) / r.n as f64
        );
        if let Some(e) = &r.exclude {
            let st = e.time.stat();
            let _ = writeln!(o, "depth_{k}_{n}={}", r.depth);
            let _ = writeln!(o, "exclude_ns_{k}_{n}={:.0}", st.median);
            let _ = writeln!(o, "exclude_min_ns_{k}_{n}={:.0}", st.min);
            let _ = writeln!(o, "exclude_max_ns_{k}_{n}={:.0}", st.max);
            let max = |v: &[(usize, usize)], f: fn(&(usize, usize)) -> usize| {
                v.iter().map(f).max().unwrap_or(0)
            };
            let _ = writeln!(o, "exclude_kek_bytes_{k}_{n}={}", max(&e.kek, |x| x.0));
            let _ = writeln!(o, "exclude_kek_wraps_{k}_{n}={}", max(&e.kek, |x| x.1));
            let _ = writeln!(o, "exclude_tek_bytes_{k}_{n}={}", max(&e.tek, |x| x.0));
        }
    }
    for (n, (bytes, _, _)) in memory {
        let _ = writeln!(
            o,
            "tree_bytes_per_member_{n}={:.1}",
            *bytes as f64 / f64::from(*n)
        );
    }
    for r in gms {
        let a = r.auth.replace(' ', "_").replace('-', "").to_lowercase();
        let _ = writeln!(o, "gm_tek_rekey_ns_{a}={:.0}", r.tek.stat().median);
        let _ = writeln!(o, "gm_exclusion_ns_{a}={:.0}", r.exclusion.stat().median);
        let _ = writeln!(o, "gcks_rekey_ns_{a}={:.0}", r.gcks_rekey.stat().median);
        let _ = writeln!(o, "gcks_exclude_ns_{a}={:.0}", r.gcks_exclude.stat().median);
    }
    o
}
