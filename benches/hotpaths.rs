//! The hot paths alone, for a profiler (`cargo bench --bench hotpaths`).
//!
//! Populates an LKH d=4 group of N members through the real registration
//! path (one real GM among them, which follows every GSA_REKEY), then runs
//! OPS of each hot operation, each inside its own `#[inline(never)]`
//! function named `hot_*` so that callgrind can collect exactly those:
//!
//! ```text
//! cargo bench --no-run --bench hotpaths
//! GIKEV2_PROFILE_N=100000 valgrind --tool=callgrind --toggle-collect='hotpaths::hot_*' \
//!     target/release/deps/hotpaths-<hash> --bench
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! - `hot_gcks_registration`: `Gcks::handle_registration` of a receiver GM
//! - `hot_gm_registration`: `Gm::handle_registration_response`
//! - `hot_join_flush`: the GCKS timer sending the join flush GSA_REKEY
//! - `hot_exclude`: `Gcks::exclude` (new-KEK and new-TEK GSA_REKEY built)
//! - `hot_rekey`: `Gcks::rekey` (a plain TEK rekey)
//! - `hot_gm_rekey_kek`, `hot_gm_rekey_tek`: `Gm::handle_rekey` of an
//!   exclusion's new-KEK message, and of a TEK message (2 per operation:
//!   the one after the exclusion and a plain TEK rekey)
//!
//! Natively it prints the median time of each (a cross-check of
//! `engines`); under callgrind the per-operation instruction counts are
//! `callgrind_annotate`'s inclusive Ir of each `hot_*` divided by OPS.
//!
//! Environment: `GIKEV2_PROFILE_N` (default 100000), `GIKEV2_PROFILE_OPS`
//! (default 16); `GIKEV2_PROFILE_AUTH`: GSA_REKEY authentication, ed25519
//! (default), ecdsa (P-256) or implicit; `GIKEV2_PROFILE_PAUSE` set: wait
//! for a line on stdin after populating (`bench/profile` uses it).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{
    LKH, SETTLE, Server, accepted, deliver, ed25519, env_u64, fmt_n, group_id, ike, member_limit,
    new_gm, random_sk_d, through_wire,
};
use gikev2::crypto::{SigAlg, SigningKey};
use gikev2::gcks::{MemberId, Registration};
use gikev2::gm::Gm;
use gikev2::iana::ExchangeType;
use gikev2::ike_sa::Millis;
use gikev2::policy::RekeyAuth;
use gikev2::wire::Payload;

#[inline(never)]
fn hot_gcks_registration(s: &mut Server, reg: &Registration<'_>) -> Vec<Payload> {
    s.gcks.handle_registration(s.now, black_box(reg))
}

#[inline(never)]
fn hot_gm_registration(gm: &mut Gm, now: Millis, resp: &[Payload], sk_d: &gikev2::crypto::Secret) {
    gm.handle_registration_response(now, ExchangeType::GSA_AUTH, black_box(resp), ike(sk_d))
        .expect("GM registers");
}

#[inline(never)]
fn hot_join_flush(s: &mut Server, at: Millis) {
    s.gcks.handle_timeout(black_box(at));
}

#[inline(never)]
fn hot_exclude(s: &mut Server, victim: MemberId) {
    s.gcks
        .exclude(s.now, &group_id(), black_box(victim))
        .expect("exclusion");
}

#[inline(never)]
fn hot_rekey(s: &mut Server) {
    s.gcks.rekey(s.now, &group_id()).expect("TEK rekey");
}

/// `Gm::handle_rekey` of an exclusion's new-KEK message.
#[inline(never)]
fn hot_gm_rekey_kek(gm: &mut Gm, now: Millis, dg: &[u8]) {
    gm.handle_rekey(now, black_box(dg))
        .expect("GM takes the rekey");
}

/// `Gm::handle_rekey` of a TEK message (after an exclusion or a plain one).
#[inline(never)]
fn hot_gm_rekey_tek(gm: &mut Gm, now: Millis, dg: &[u8]) {
    gm.handle_rekey(now, black_box(dg))
        .expect("GM takes the rekey");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn show(what: &str, v: Vec<Duration>) {
    println!("  {what:<42} {:>10.1} µs", median(v).as_secs_f64() * 1e6);
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("hotpaths: benchmarks run with `cargo bench`");
        return;
    }
    let n = env_u64("GIKEV2_PROFILE_N").unwrap_or(100_000).max(100);
    let ops = env_u64("GIKEV2_PROFILE_OPS").unwrap_or(16).clamp(1, 1000) as usize;
    let t0 = Instant::now();
    let auth_name = std::env::var("GIKEV2_PROFILE_AUTH").unwrap_or_else(|_| "ed25519".into());
    let auth = match auth_name.as_str() {
        "implicit" => RekeyAuth::Implicit,
        "ecdsa" => RekeyAuth::Signature(
            SigningKey::generate(SigAlg::EcdsaP256Sha256).expect("key generation"),
        ),
        _ => ed25519(),
    };
    let mut s = Server::new(LKH, member_limit(n + ops as u64), auth);
    s.keep = true;
    // The followed GM joins first; the other members after it.
    let (_, gm) = common::register_gm(&mut s);
    let mut gms = vec![gm];
    let mut members = Vec::new();
    for _ in 1..n {
        members.push(s.register_fast());
        if !s.outbox.is_empty() {
            deliver(&mut gms, &mut s);
        }
    }
    s.tick(SETTLE);
    deliver(&mut gms, &mut s);
    eprintln!(
        "hotpaths: {} members in {:.1} s",
        n,
        t0.elapsed().as_secs_f64()
    );
    if std::env::var_os("GIKEV2_PROFILE_PAUSE").is_some() {
        // bench/profile switches callgrind's instrumentation on here
        // (callgrind_control -i on), so populating runs uninstrumented.
        eprintln!("hotpaths: populated; press Enter");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }

    // Registrations of real GMs, then their join flush.
    let (mut t_reg, mut t_gm_reg, mut t_flush) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ops {
        let (id, identity) = s.fresh_member();
        let sk_d = random_sk_d();
        let mut gm = new_gm();
        let req = through_wire(&gm.registration_payloads());
        let reg = Registration {
            member: id,
            identities: &[&identity],
            peer: Some(common::peer_of(id.0)),
            exchange: ExchangeType::GSA_AUTH,
            payloads: &req,
            ike: ike(&sk_d),
        };
        let t = Instant::now();
        let resp = hot_gcks_registration(&mut s, &reg);
        t_reg.push(t.elapsed());
        assert!(accepted(&resp));
        let resp = through_wire(&resp);
        let t = Instant::now();
        hot_gm_registration(&mut gm, s.now, &resp, &sk_d);
        t_gm_reg.push(t.elapsed());
        while gm.poll_action().is_some() {}
        s.drain();
        // Its join flush: the GCKS timer when due (1 s later).
        let due = s.gcks.poll_timeout().expect("a join flush is pending");
        let t = Instant::now();
        hot_join_flush(&mut s, due);
        t_flush.push(t.elapsed());
        s.now = due;
        s.drain();
        deliver(&mut gms, &mut s);
        s.tick(SETTLE);
        deliver(&mut gms, &mut s);
    }

    // Exclusions of members spread over the tree; the GM follows.
    let (mut t_excl, mut t_gm_kek, mut t_gm_tek) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ops {
        let victim = members[(i * members.len() + members.len() / 2) / ops];
        let t = Instant::now();
        hot_exclude(&mut s, victim);
        t_excl.push(t.elapsed());
        s.drain();
        let dgs = std::mem::take(&mut s.outbox);
        assert_eq!(dgs.len(), 2, "new KEK, then new TEK");
        let t = Instant::now();
        hot_gm_rekey_kek(&mut gms[0], s.now, &dgs[0]);
        t_gm_kek.push(t.elapsed());
        let t = Instant::now();
        hot_gm_rekey_tek(&mut gms[0], s.now, &dgs[1]);
        t_gm_tek.push(t.elapsed());
        while gms[0].poll_action().is_some() {}
        s.tick(SETTLE);
        deliver(&mut gms, &mut s);
    }

    // Plain TEK rekeys.
    let (mut t_rekey, mut t_gm_rekey) = (Vec::new(), Vec::new());
    for _ in 0..ops {
        let t = Instant::now();
        hot_rekey(&mut s);
        t_rekey.push(t.elapsed());
        s.drain();
        let dgs = std::mem::take(&mut s.outbox);
        assert_eq!(dgs.len(), 1, "one GSA_REKEY");
        let t = Instant::now();
        hot_gm_rekey_tek(&mut gms[0], s.now, &dgs[0]);
        t_gm_rekey.push(t.elapsed());
        while gms[0].poll_action().is_some() {}
        s.tick(SETTLE);
        deliver(&mut gms, &mut s);
    }

    println!(
        "hotpaths: LKH d=4, N = {}, {} GCAUTH, {ops} operations each, median:",
        fmt_n(n),
        auth_name
    );
    show("hot_gcks_registration (Gcks, receiver)", t_reg);
    show("hot_gm_registration (Gm response)", t_gm_reg);
    show("hot_join_flush (GCKS timer, 1 join)", t_flush);
    show("hot_exclude (Gcks::exclude)", t_excl);
    show("hot_gm_rekey_kek: exclusion KEK message", t_gm_kek);
    show("hot_gm_rekey_tek: TEK message after it", t_gm_tek);
    show("hot_rekey (Gcks::rekey)", t_rekey);
    show("hot_gm_rekey_tek: TEK rekey", t_gm_rekey);
    println!("hotpaths: total {:.1} s", t0.elapsed().as_secs_f64());
}
