//! The C ABI from C: the committed header is what cbindgen makes of
//! src/ffi, and a C program (tests/c/abi_test.c) linked against the
//! staticlib runs a whole group through it, under valgrind when installed.
//!
//! Regenerate include/gikev2.h after changing src/ffi with
//!
//! ```sh
//! GIKEV2_REGEN_HEADER=1 cargo test --test ffi_c header
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

const REGEN: &str = "GIKEV2_REGEN_HEADER";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn generate_header() -> String {
    let config =
        cbindgen::Config::from_file(root().join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root().join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen reads src/ffi");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let path = root().join("include/gikev2.h");
    let fresh = generate_header();
    if std::env::var_os(REGEN).is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let line = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(fresh.lines().count()));
        panic!(
            "include/gikev2.h is stale (first difference at line {}); regenerate it with\n\
             \n    {REGEN}=1 cargo test --test ffi_c header\n\nand commit it",
            line + 1
        );
    }
}

/// The directory holding the crate's libgikev2.a: the one above this test
/// binary's `deps/` directory (cargo builds the library with all its crate
/// types before it builds the tests that link it).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap()
    } else {
        dir
    };
    dir.to_path_buf()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An Ed25519 signing key in PEM, as an operator would make it with
/// `openssl genpkey -algorithm ed25519`.
fn write_signing_key(dir: &Path) -> PathBuf {
    let key = openssl::pkey::PKey::generate_ed25519().unwrap();
    let path = dir.join("gcks-ed25519.pem");
    std::fs::write(&path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    path
}

#[test]
fn c_program_runs_a_group_through_the_abi() {
    let lib = lib_dir().join("libgikev2.a");
    assert!(
        lib.exists(),
        "{} missing: run `cargo build --lib` first (tests/run-all does)",
        lib.display()
    );
    // One directory per run: test runs sharing a target directory must not
    // overwrite each other's program while it runs.
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ffi_c-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let exe = work.join("abi_test");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = run(Command::new(&cc)
        .args([
            "-std=c11",
            "-g",
            "-O0",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
        ])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/abi_test.c"))
        .arg(&lib)
        .args(["-lssl", "-lcrypto", "-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(&exe));
    assert!(out.status.success(), "compiling tests/c/abi_test.c failed");

    let key = write_signing_key(&work);
    let out = run(Command::new(&exe).arg(&key).arg(&work));
    assert!(out.status.success(), "abi_test failed: {}", out.status);

    if !have("valgrind") {
        println!("NOTE: valgrind is not installed; ran abi_test without it");
        std::fs::remove_dir_all(&work).ok();
        return;
    }
    let out = run(Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--track-origins=yes",
        ])
        .arg(&exe)
        .arg(&key)
        .arg(&work));
    assert!(
        out.status.success(),
        "abi_test under valgrind failed (memory errors or definite leaks): {}",
        out.status
    );
    std::fs::remove_dir_all(&work).ok();
}
