//! Gives `libuti.so` the SONAME of RIKEN's libuti (`-version-info 1:0:0`),
//! so programs linked against either library load either one.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libuti.so.1");
    println!("cargo:rerun-if-changed=build.rs");
}
