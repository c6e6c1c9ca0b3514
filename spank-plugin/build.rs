//! Generates the SPANK bindings from the installed `<slurm/spank.h>` with
//! bindgen, and tells the crate which optional SPANK calls the installed
//! headers have: `spank_prepend_task_argv` appeared in Slurm 23.11; Debian
//! 12's 22.05 does not have it, and the plugin must not reference it there
//! (an undefined symbol would stop slurmstepd from loading the plugin).
//!
//! `SLURM_INCLUDE_DIR` overrides where `slurm/spank.h` is looked for.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=SLURM_INCLUDE_DIR");
    println!("cargo::rustc-check-cfg=cfg(spank_prepend_task_argv)");
    let include =
        PathBuf::from(std::env::var("SLURM_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include".into()));
    let header = include.join("slurm/spank.h");
    if !header.exists() {
        panic!(
            "{} not found: install Slurm's development headers (Debian: apt-get install libslurm-dev) \
             or set SLURM_INCLUDE_DIR",
            header.display()
        );
    }
    println!("cargo:rerun-if-changed={}", header.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("slurm/slurm_version.h").display()
    );

    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_function("spank_.*")
        .allowlist_function("slurm_(error|info|verbose|debug|spank_log)")
        .allowlist_type("spank_.*")
        .allowlist_var("SLURM_VERSION_NUMBER")
        .allowlist_var("ESPANK_.*")
        .allowlist_var("S_.*")
        .prepend_enum_name(false)
        .layout_tests(false)
        .generate()
        .expect("bindgen could not parse slurm/spank.h");
    let text = bindings.to_string();
    if text.contains("pub fn spank_prepend_task_argv") {
        println!("cargo:rustc-cfg=spank_prepend_task_argv");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("spank.rs");
    std::fs::write(&out, text).expect("write bindings");
}
