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

/// Found reviewing the `gm_inband` target's invariant: an inband rekey
/// that moves a member to a new Rekey SA with another key wrap algorithm.
/// The GM checked the new keying material against the KWA the policy
/// names but then kept the old KWA, so splitting the keys failed after
/// the policy had been replaced. Now it takes the new Rekey SA.
#[test]
fn inband_rekey_to_a_rekey_sa_with_another_kwa_is_taken() {
    use fuzz::world::{IKE_KWA, Kind, Scenario, ike};
    use gikev2::crypto::KeyWrapAlg;
    use gikev2::iana::{KwaId, TransformType};
    use gikev2::wire::{GroupPolicy, GsaAttr, KeyBag, Payload, RekeySpi, SaRef};

    // An ARX-KW Rekey SA; the inband rekey moves the member to a new one
    // with RFC 5649 and a 128-bit KWK (16 octets less keying material).
    let scn = Scenario::get(Kind::ImplicitFlat);
    let mut gm = scn.fresh_gm(1);
    let new_spi = RekeySpi([0x5a; 16]);
    let mut payloads: Vec<Payload> = scn.response.clone();
    let mut old_spi = None;
    for p in &mut payloads {
        match p {
            Payload::Gsa(g) => {
                for policy in &mut g.policies {
                    if let GroupPolicy::Sa(sa) = policy {
                        // no Message ID or next-SPI attributes inband
                        // (Table 3)
                        sa.attrs.retain(|a| matches!(a, GsaAttr::KeyLifetime(_)));
                    }
                    if let GroupPolicy::Sa(sa) = policy
                        && let SaRef::Rekey(spi) = sa.sa
                    {
                        old_spi = Some(spi);
                        sa.sa = SaRef::Rekey(new_spi);
                        // GCAUTH appears only at registration
                        sa.transforms.retain(|t| t.ty != TransformType::GCAUTH);
                        for t in &mut sa.transforms {
                            if t.ty == TransformType::KWA {
                                t.id = KwaId::KW_5649_128.0;
                            }
                        }
                    }
                }
            }
            Payload::Kd(kd) => {
                for bag in &mut kd.bags {
                    if let KeyBag::Group(g) = bag
                        && matches!(g.sa, SaRef::Rekey(_))
                    {
                        g.sa = SaRef::Rekey(new_spi);
                        let k = &mut g.sa_keys[0];
                        let keymat = IKE_KWA
                            .unwrap(scn.ike_kwk.expose(), &k.encrypted)
                            .expect("the real SA_KEY unwraps");
                        let short = keymat.len()
                            - (KeyWrapAlg::Arx.key_len() - KeyWrapAlg::Kw5649_128.key_len());
                        k.encrypted = IKE_KWA
                            .wrap(scn.ike_kwk.expose(), &keymat.expose()[..short])
                            .unwrap();
                    }
                }
            }
            _ => {}
        }
    }
    assert!(old_spi.is_some(), "the response has a Rekey SA");
    gm.handle_inband_rekey(1000, &payloads, ike(&scn.sk_d))
        .expect("the new Rekey SA is taken");
    assert!(gm.status(1000).rekey_spis.contains(&new_spi));
    let new = gm.rekey_sa_keys(new_spi).expect("held");
    assert_eq!(new.kwa, KeyWrapAlg::Kw5649_128);
    assert_eq!(new.gsk_w.len(), KeyWrapAlg::Kw5649_128.key_len());
}
