//! Memory of the GCKS and GM engines (`cargo bench --bench memory`).
//!
//! A counting global allocator (below, the only unsafe code in the benches)
//! tracks the bytes live on the heap. The figures:
//!
//! - GCKS core state per member: a `Gcks` serving one group (LKH d=4 and
//!   flat), populated with N members through `Gcks::handle_registration`
//!   (the very request a receiver GM sends; the response is dropped, as
//!   charon drops it once sent), joins at 1000 per second of virtual time
//!   with the timer run whenever it is due, then settled (retransmission
//!   copies sent, old keys retired). Live bytes after, minus live bytes of
//!   the same GCKS with its group and no member, divided by N. That is the
//!   whole core state: member records (identity, slot, ...), the member
//!   map, the key tree, recent-rekey summaries, whatever else registration
//!   left behind.
//! - GM core state per group membership: live bytes of a `Gm` after its
//!   registration response and one GSA_REKEY, minus live bytes before
//!   `Gm::new` (so it includes the engine, its path keys, policy, TEKs).
//!
//! Bytes are those asked of the allocator; glibc adds 8 bytes and rounds
//! each chunk to 16 (minimum 32), shown as "with malloc overhead"
//! (estimated from the same allocation sizes).
//!
//! Environment: `GIKEV2_BENCH_MAX` (default 1000000): the sizes are 10^5
//! and 10^6, those not above it (at least 10^5 is always run).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use common::{
    DEGREE, LKH, SETTLE, Server, deliver, ed25519, env_u64, fmt_n, km_name, member_limit,
    register_gm,
};
use gikev2::policy::KeyManagement;

// ---------------------------------------------------------------- allocator

/// Bytes requested and not yet freed, and glibc's chunk sizes for them.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static LIVE_CHUNKS: AtomicUsize = AtomicUsize::new(0);
static LIVE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// glibc malloc's chunk for a request of `n` bytes on 64-bit: n plus the
/// 8-byte size field, rounded up to 16, at least 32.
fn chunk(n: usize) -> usize {
    ((n + 8 + 15) & !15).max(32)
}

fn add(n: usize) {
    LIVE.fetch_add(n, Relaxed);
    LIVE_CHUNKS.fetch_add(chunk(n), Relaxed);
    LIVE_COUNT.fetch_add(1, Relaxed);
}

fn sub(n: usize) {
    LIVE.fetch_sub(n, Relaxed);
    LIVE_CHUNKS.fetch_sub(chunk(n), Relaxed);
    LIVE_COUNT.fetch_sub(1, Relaxed);
}

/// The system allocator, counting. Each method forwards to `System` with
/// the caller's arguments unchanged (so `System`'s contract is the caller's
/// contract) and only counts what succeeded.
struct Counting;

// SAFETY: every method delegates to `System`, which implements GlobalAlloc
// correctly, with the same pointer and layout; the counters are atomics and
// never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged, see above.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged, see above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged, see above.
        unsafe { System.dealloc(ptr, layout) };
        sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged, see above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            sub(layout.size());
            add(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy, Debug)]
struct Live {
    bytes: usize,
    chunks: usize,
    count: usize,
}

fn live() -> Live {
    Live {
        bytes: LIVE.load(Relaxed),
        chunks: LIVE_CHUNKS.load(Relaxed),
        count: LIVE_COUNT.load(Relaxed),
    }
}

impl std::ops::Sub for Live {
    type Output = Live;
    fn sub(self, o: Live) -> Live {
        Live {
            bytes: self.bytes.wrapping_sub(o.bytes),
            chunks: self.chunks.wrapping_sub(o.chunks),
            count: self.count.wrapping_sub(o.count),
        }
    }
}

// ---------------------------------------------------------------- figures

struct GcksFigure {
    km: KeyManagement,
    n: u64,
    empty: Live,
    members: Live,
    populate_s: f64,
}

fn gcks_figure(km: KeyManagement, n: u64) -> GcksFigure {
    let base = live();
    let mut s = Server::new(km, member_limit(n), ed25519());
    s.tick(SETTLE);
    let empty = live() - base;
    let t = Instant::now();
    s.populate(n, |_| {});
    s.tick(SETTLE);
    let populate_s = t.elapsed().as_secs_f64();
    let members = live() - base - empty;
    drop(s);
    GcksFigure {
        km,
        n,
        empty,
        members,
        populate_s,
    }
}

/// A GM's state after its registration and one TEK rekey (LKH group of
/// 1000 members, so its key path is that of a 5-level tree).
fn gm_figure(km: KeyManagement) -> (Live, Live) {
    let mut s = Server::new(km, member_limit(1000), ed25519());
    s.keep = true;
    s.populate(999, |_| {});
    s.tick(SETTLE);
    s.outbox.clear();
    let before = live();
    let (_, gm) = register_gm(&mut s);
    let mut gms = vec![gm];
    let after_reg = live() - before;
    s.tick(SETTLE);
    deliver(&mut gms, &mut s);
    s.gcks.rekey(s.now, &common::group_id()).expect("TEK rekey");
    s.drain();
    deliver(&mut gms, &mut s);
    s.tick(SETTLE);
    deliver(&mut gms, &mut s);
    let after_rekey = live() - before;
    drop(gms);
    (after_reg, after_rekey)
}

fn per(l: Live, n: u64) -> (f64, f64, f64) {
    let n = n as f64;
    (l.bytes as f64 / n, l.chunks as f64 / n, l.count as f64 / n)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("memory: benchmarks run with `cargo bench`");
        return;
    }
    let started = Instant::now();
    let max = env_u64("GIKEV2_BENCH_MAX").unwrap_or(1_000_000);
    let sizes: Vec<u64> = [100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n == 100_000 || n <= max)
        .collect();
    let mut out = String::new();
    out.push_str(&format!(
        "\ngikev2 {} memory (counting global allocator)\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(
        "\n5. GCKS core state per member (Gcks with one group, N members registered, settled)\n",
    );
    let head = format!(
        "{:<9} | {:>5} | {:>13} | {:>13} | {:>11} | {:>14} | {:>11} | {:>8}",
        "group",
        "N",
        "empty group",
        "N members",
        "bytes/memb",
        "+malloc (est)",
        "allocs/memb",
        "populate"
    );
    out.push_str(&head);
    out.push('\n');
    out.push_str(&"-".repeat(head.len()));
    out.push('\n');
    let mut machine = Vec::new();
    for &n in &sizes {
        for km in [LKH, KeyManagement::Flat] {
            eprintln!(
                "[{:7.1}s] memory: {} group of {}",
                started.elapsed().as_secs_f64(),
                km_name(km),
                fmt_n(n)
            );
            let f = gcks_figure(km, n);
            let (b, c, a) = per(f.members, f.n);
            out.push_str(&format!(
                "{:<9} | {:>5} | {:>13} | {:>13} | {:>11.1} | {:>14.1} | {:>11.2} | {:>7.1}s\n",
                km_name(f.km),
                fmt_n(f.n),
                f.empty.bytes,
                f.members.bytes,
                b,
                c,
                a,
                f.populate_s
            ));
            machine.push(format!(
                "gcks_bytes_per_member_{}_{}={b:.1}",
                if f.km == LKH { "lkh" } else { "flat" },
                f.n
            ));
        }
    }
    out.push_str(&format!(
        "  bytes/memb = (N members - empty group) / N, requested bytes; +malloc adds glibc's \
         chunk header and 16-byte rounding.\n  LKH degree {DEGREE}, member_limit = the smallest \
         power of {DEGREE} >= N + 192; joins 1/ms of virtual time, timer run when due.\n"
    ));

    eprintln!(
        "[{:7.1}s] memory: GM per membership",
        started.elapsed().as_secs_f64()
    );
    out.push_str(
        "\n6. GM core state per group membership (Gm after registration; after one TEK rekey)\n",
    );
    let head = format!(
        "{:<9} | {:>16} | {:>14} | {:>16} | {:>14}",
        "group", "after register", "+malloc (est)", "after a rekey", "+malloc (est)"
    );
    out.push_str(&head);
    out.push('\n');
    out.push_str(&"-".repeat(head.len()));
    out.push('\n');
    for km in [LKH, KeyManagement::Flat] {
        let (reg, rekey) = gm_figure(km);
        out.push_str(&format!(
            "{:<9} | {:>16} | {:>14} | {:>16} | {:>14}\n",
            km_name(km),
            reg.bytes,
            reg.chunks,
            rekey.bytes,
            rekey.chunks
        ));
        machine.push(format!(
            "gm_bytes_per_membership_{}={}",
            if km == LKH { "lkh" } else { "flat" },
            rekey.bytes
        ));
    }
    out.push_str(
        "  Group of 1000 (LKH: 5 levels), Ed25519 GCAUTH, one ESP TEK; after a rekey the old \
         TEK is kept until its deletion (DTD).\n",
    );
    out.push_str(&format!(
        "\nmemory bench: {:.1} s\n",
        started.elapsed().as_secs_f64()
    ));
    print!("{out}");
    // One key=value line per figure, for bench/run's summary.
    if let Ok(path) = std::env::var("GIKEV2_BENCH_KV") {
        let _ = std::fs::write(path, machine.join("\n") + "\n");
    }
}
