//! Builds the LWK (`../../lwk`, a `no_std` kernel for x86_64-unknown-none)
//! with a nested `cargo build --release`, copies it to
//! `<target>/<profile>/mckernel.img` and exports its path as `IHK_LWK_IMAGE`.
//!
//! The nested cargo gets its own target dir (`<target>/lwk`) and none of the
//! outer build's flags (RUSTFLAGS, wrappers, coverage, jobserver...), which
//! are meant for host code and would break a kernel build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variables of the outer cargo that are passed on unchanged.
fn keep_var(name: &str) -> bool {
    const KEEP_PREFIXES: &[&str] = &[
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const DROP_EXACT: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTDOC",
        "RUSTC_LINKER",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "OUT_DIR",
        "MAKEFLAGS",
        "MFLAGS",
        "LLVM_PROFILE_FILE",
        "CARGO_LLVM_COV",
        "__CARGO_FIX_PLZ",
    ];
    if DROP_EXACT.contains(&name) {
        return false;
    }
    if name.starts_with("CARGO_") {
        return KEEP_PREFIXES.iter().any(|p| name.starts_with(p));
    }
    true
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let lwk_dir = manifest_dir.join("../../lwk");
    let abi_dir = manifest_dir.join("../../abi");
    let lwk_dir = lwk_dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("LWK sources not found at {}: {e}", lwk_dir.display()));

    for p in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "linker.ld",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", lwk_dir.join(p).display());
    }
    for p in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", abi_dir.join(p).display());
    }

    // OUT_DIR = <target>[/<triple>]/<profile>/build/ihk-vm-<hash>/out
    let profile_dir: &Path = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR has the form <target>/<profile>/build/<pkg>/out");
    let lwk_target = profile_dir.parent().unwrap_or(profile_dir).join("lwk");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.env_clear();
    for (k, v) in env::vars_os() {
        if let Some(name) = k.to_str() {
            if keep_var(name) {
                cmd.env(&k, &v);
            }
        }
    }
    cmd.current_dir(&lwk_dir)
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-none",
            "--target-dir",
        ])
        .arg(&lwk_target)
        // Build-script stdout is parsed by the outer cargo: keep the nested
        // cargo's chatter on stderr.
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let status = cmd.status().expect("running cargo for the LWK");
    if !status.success() {
        panic!(
            "building the LWK (lwk/) failed: {status}; see the messages above \
             (the target must be installed: rustup target add x86_64-unknown-none)"
        );
    }

    let built = lwk_target.join("x86_64-unknown-none/release/mckernel");
    let img = profile_dir.join("mckernel.img");
    std::fs::copy(&built, &img)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), img.display()));
    println!("cargo:rustc-env=IHK_LWK_IMAGE={}", img.display());
}
