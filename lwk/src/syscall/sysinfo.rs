//! sysinfo: Linux's answer (uptime, load, processes) with the memory
//! fields of the partition, as `/proc/meminfo` shows them (`lwkfs`).

use super::errno::*;
use super::{args, current, offload};
use crate::arch::x86_64::idt::TrapFrame;

/// Byte offsets in `struct sysinfo` (x86-64).
const TOTALRAM: u64 = 32;
const FREERAM: u64 = 40;
const SHAREDRAM: u64 = 48;
const BUFFERRAM: u64 = 56;
const TOTALSWAP: u64 = 64;
const FREESWAP: u64 = 72;
const TOTALHIGH: u64 = 88;
const FREEHIGH: u64 = 96;
const MEM_UNIT: u64 = 104;

pub fn sysinfo(f: &mut TrapFrame) -> SysResult {
    let [info, ..] = args(f);
    let r = offload::syscall(f)?;
    if r as i64 != 0 {
        return Ok(r); // -errno from Linux (e.g. EFAULT)
    }
    let bp = crate::boot_params::get();
    let (mut free, mut total) = (0u64, 0u64);
    for n in 0..bp.numa_nodes().len() as u32 {
        let (fr, to) = crate::mm::frame::node_bytes(n);
        free += fr;
        total += to;
    }
    let mut a = current().process.aspace.lock();
    for (off, v) in [(TOTALRAM, total), (FREERAM, free), (SHAREDRAM, 0), (BUFFERRAM, 0), (TOTALSWAP, 0), (FREESWAP, 0), (TOTALHIGH, 0), (FREEHIGH, 0)] {
        a.write_u64(info + off, v)?;
    }
    a.write_u32(info + MEM_UNIT, 1)?;
    Ok(0)
}
