//! Gives libqlmpi.so its SONAME, so programs record `libqlmpi.so` whichever
//! name they were linked against (`-lqlmpi` or the `-lqlfort` alias).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libqlmpi.so");
}
