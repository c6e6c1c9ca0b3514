//! Links the kernel with linker.ld (image at 0xffffffff80000000), and
//! builds the vDSO (`vdso/`: a position-independent ELF shared object with
//! one PT_LOAD and LINUX_2.6 symbol versions) that `src/elf/vdso.rs`
//! embeds, with the host's `gcc` (`$CC` if set).
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    println!("cargo:rustc-link-arg=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg=--no-dynamic-linker");
    println!("cargo:rustc-link-arg=-z");
    println!("cargo:rustc-link-arg=max-page-size=4096");
    build_vdso(&PathBuf::from(&dir).join("vdso"));
}

fn build_vdso(src: &std::path::Path) {
    for f in ["vdso.c", "vdso.lds", "vdso.map"] {
        println!("cargo:rerun-if-changed={}", src.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("vdso.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&cc)
        .args(["-O2", "-fPIC", "-nostdlib", "-shared", "-fno-stack-protector", "-fno-plt"])
        .args(["-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-fvisibility=hidden"])
        .args(["-mno-sse", "-mno-mmx", "-mno-red-zone", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-Wl,-T,{}", src.join("vdso.lds").display()))
        .arg(format!("-Wl,--version-script={}", src.join("vdso.map").display()))
        .args(["-Wl,-soname=linux-vdso.so.1", "-Wl,--hash-style=both", "-Wl,--build-id=none"])
        .args(["-Wl,-z,max-page-size=4096", "-Wl,--no-undefined", "-o"])
        .arg(&out)
        .arg(src.join("vdso.c"))
        .status()
        .unwrap_or_else(|e| panic!("running {cc} for the vDSO: {e} (install gcc, or set CC)"));
    assert!(status.success(), "building the vDSO (lwk/vdso) with {cc} failed: {status}");
    let image = std::fs::read(&out).unwrap();
    assert!(image.len() < 64 << 10 && image.starts_with(b"\x7fELF"), "vDSO image {} is not a small ELF file", out.display());
}
