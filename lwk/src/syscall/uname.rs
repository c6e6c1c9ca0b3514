//! uname: the host's answer (so the node name is the host's, as `hostname`
//! expects) with the release and version naming the LWK. The release keeps
//! Linux's numeric prefix because libc compares it with its minimum kernel.

use super::errno::*;
use super::{current, offload};
use crate::arch::x86_64::idt::TrapFrame;

const FIELD: usize = 65;
const RELEASE: usize = 2;
const VERSION: usize = 3;

pub fn uname(f: &mut TrapFrame) -> SysResult {
    let buf = f.rdi;
    let t = current();
    let r = offload::call(t, ihk_abi::linux::sys::SYS_uname, [buf, 0, 0, 0, 0, 0]);
    if r < 0 {
        return Err(Errno((-r) as i32));
    }
    let mut a = t.process.aspace.lock();
    let mut u = [0u8; FIELD * 6];
    a.read(buf, &mut u)?;
    let field = |i: usize| -> &[u8] {
        let s = &u[i * FIELD..(i + 1) * FIELD];
        &s[..s.iter().position(|&b| b == 0).unwrap_or(FIELD)]
    };
    let mut release = [0u8; FIELD];
    let mut version = [0u8; FIELD];
    put(&mut release, &[field(RELEASE), b"+mckernel"]);
    put(&mut version, &[b"IHK/McKernel (Rust LWK) ", field(VERSION)]);
    a.write(buf + (RELEASE * FIELD) as u64, &release)?;
    a.write(buf + (VERSION * FIELD) as u64, &version)?;
    Ok(0)
}

/// Concatenate `parts` into a NUL-terminated field (truncated).
fn put(dst: &mut [u8; FIELD], parts: &[&[u8]]) {
    let mut n = 0;
    for p in parts {
        for &b in p.iter() {
            if n + 1 < FIELD {
                dst[n] = b;
                n += 1;
            }
        }
    }
}
