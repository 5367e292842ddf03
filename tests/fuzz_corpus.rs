//! The fuzz targets' bodies (fuzz/src, the code `cargo fuzz` runs) over
//! their seeds, their committed minimized corpus (fuzz/corpus/<target>/)
//! and every crasher found so far (fuzz/regressions/<target>/), on the
//! stable toolchain without libFuzzer. See docs/fuzzing.md.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seeds` writes the
//! seeds into fuzz/corpus/ as a starting point for fuzzing.

#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::path::{Path, PathBuf};

fn dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target)
}

/// Runs `body` over every file of `dir`; returns how many ran.
fn run_dir(body: fn(&[u8]), dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("corpus file");
        let r = std::panic::catch_unwind(|| body(&data));
        assert!(r.is_ok(), "{} fails", f.display());
    }
    files.len()
}

fn run(target: &str) {
    let (_, body) = fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .expect("listed target");
    let seeds = fuzz::seeds(target);
    assert!(!seeds.is_empty());
    for s in &seeds {
        body(s);
    }
    let corpus = run_dir(*body, &dir("corpus", target));
    let regressions = run_dir(*body, &dir("regressions", target));
    eprintln!(
        "{target}: {} seeds, {corpus} corpus files, {regressions} regressions",
        seeds.len()
    );
}

macro_rules! targets {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_tested() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in fuzz::TARGETS {
                assert!(tested.contains(&name), "{name} has no test");
            }
        }
    };
}

targets! {
    wire_message wire_chain wire_payloads keywrap der config rekey_open gm_rekey
    gm_registration gm_inband gcks_registration
}

/// Writes every target's seeds to fuzz/corpus/<target>/seed-<n>.
#[test]
#[ignore = "writes files; run by hand to refresh the seed corpus"]
fn write_seeds() {
    for (target, _) in fuzz::TARGETS {
        let d = dir("corpus", target);
        std::fs::create_dir_all(&d).expect("corpus directory");
        for (i, s) in fuzz::seeds(target).iter().enumerate() {
            std::fs::write(d.join(format!("seed-{i:03}")), s).expect("seed file");
        }
    }
}
