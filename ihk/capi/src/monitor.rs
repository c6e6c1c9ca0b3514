//! Status, kernel messages, monitoring eventfds, NUMA nodes, free memory,
//! page sizes and statistics of an OS instance (§1.2.2.13, 20-28).

use std::os::fd::IntoRawFd;
use std::os::raw::{c_char, c_int, c_long, c_ulong};

use ihk_abi::kmsg::kmsg_capacity;
use ihk_abi::layout::KMSG_SIZE;
use ihk_host::proto::libihk::EventType;
use ihk_host::{IhkError, IhkResult};

use crate::ffi::{
    status_number, IhkOsRusage, IHK_MAX_NUM_CPUS, IHK_MAX_NUM_NUMA_NODES, IHK_OS_PGSIZE_4KB,
};
use crate::util::{array_mut, entry, entry_ssize, fill, os};

/// Nanoseconds per USER_HZ tick (USER_HZ is 100 on Linux).
const NS_PER_USER_HZ: u64 = 10_000_000;

#[no_mangle]
pub extern "C" fn ihk_os_get_status(index: c_int) -> c_int {
    entry(|| {
        let s = os(index)?.os_get_status()?;
        status_number(&s).ok_or_else(|| IhkError::io(format!("unknown status '{s}' from ihkd")))
    })
}

/// The kmsg buffer's capacity (what `ihk_os_kmsg` wants as its size).
pub fn kmsg_size() -> usize {
    kmsg_capacity(KMSG_SIZE) as usize
}

#[no_mangle]
pub extern "C" fn ihk_os_get_kmsg_size(index: c_int) -> isize {
    entry_ssize(|| {
        os(index)?.os_get_status()?;
        Ok(kmsg_size() as isize)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_kmsg(index: c_int, kmsg: *mut c_char, size_kmsg: usize) -> c_int {
    entry(|| {
        if size_kmsg != kmsg_size() {
            return Err(IhkError::inval(format!(
                "size_kmsg is {size_kmsg}; expected ihk_os_get_kmsg_size() = {}",
                kmsg_size()
            )));
        }
        let text = os(index)?.os_kmsg()?;
        // SAFETY: the caller passes size_kmsg writable bytes.
        let out = unsafe { array_mut(kmsg as *mut u8, size_kmsg as c_int, "kmsg") }?;
        let bytes = text.as_bytes();
        let n = bytes.len().min(out.len());
        out[..n].copy_from_slice(&bytes[..n]);
        if n < out.len() {
            out[n] = 0;
        }
        Ok(n as c_int)
    })
}

#[no_mangle]
pub extern "C" fn ihk_os_clear_kmsg(index: c_int) -> c_int {
    entry(|| os(index)?.os_clear_kmsg().map(|_| 0))
}

#[no_mangle]
pub extern "C" fn ihk_os_get_eventfd(index: c_int, type_: c_int) -> c_int {
    entry(|| {
        let kind = EventType::from_c(type_).ok_or_else(|| {
            IhkError::inval(format!(
                "eventfd type {type_}: expected 0 (memory) or 2 (hang-up or panic)"
            ))
        })?;
        Ok(os(index)?.os_get_eventfd(kind)?.into_raw_fd())
    })
}

/// Returns the count, or 0 on error (§1.2.2.24).
#[no_mangle]
pub extern "C" fn ihk_os_get_num_numa_nodes(index: c_int) -> c_int {
    entry(|| Ok(os(index)?.os_info()?.numa_nodes.len() as c_int)).max(0)
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_query_free_mem(
    index: c_int,
    memfree: *mut c_ulong,
    num_numa_nodes: c_int,
) -> c_int {
    entry(|| {
        let got: Vec<c_ulong> = os(index)?
            .os_query_free_mem()?
            .into_iter()
            .map(|(b, _)| b as c_ulong)
            .collect();
        // SAFETY: the caller passes num_numa_nodes writable values.
        fill(
            unsafe { array_mut(memfree, num_numa_nodes, "memfree") }?,
            &got,
            "memfree",
        )?;
        Ok(0)
    })
}

/// Returns the count, or 0 on error (§1.2.2.26).
#[no_mangle]
pub extern "C" fn ihk_os_get_num_pagesizes(index: c_int) -> c_int {
    entry(|| Ok(os(index)?.os_info()?.pagesizes.len() as c_int)).max(0)
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_get_pagesizes(
    index: c_int,
    pgsizes: *mut c_long,
    num_pgsizes: c_int,
) -> c_int {
    entry(|| {
        let got: Vec<c_long> = os(index)?
            .os_info()?
            .pagesizes
            .into_iter()
            .map(|p| p as c_long)
            .collect();
        // SAFETY: the caller passes num_pgsizes writable values.
        fill(
            unsafe { array_mut(pgsizes, num_pgsizes, "pgsizes") }?,
            &got,
            "pgsizes",
        )?;
        Ok(0)
    })
}

fn rusage_into(index: c_int, out: &mut IhkOsRusage) -> IhkResult<()> {
    let r = os(index)?.os_get_rusage()?;
    // SAFETY: IhkOsRusage is integers only; all-zero is a valid value.
    *out = unsafe { std::mem::zeroed() };
    out.memory_stat_rss[IHK_OS_PGSIZE_4KB] = r.memory_usage as c_ulong;
    out.memory_max_usage = r.memory_max_usage as c_ulong;
    out.memory_kmem_usage = r.memory_kmem_usage as c_ulong;
    out.memory_kmem_max_usage = r.memory_kmem_max_usage as c_ulong;
    for &(node, bytes) in &r.memory_numa {
        if let Some(slot) = out.memory_numa_stat.get_mut(node as usize) {
            *slot = bytes as c_ulong;
        }
    }
    let system: u64 = r.cpu_system_ns.iter().sum();
    let user: u64 = r.cpu_user_ns.iter().sum();
    out.cpuacct_stat_system = (system / NS_PER_USER_HZ) as c_ulong;
    out.cpuacct_stat_user = (user / NS_PER_USER_HZ) as c_ulong;
    out.cpuacct_usage = user as c_ulong;
    for (i, &ns) in r.cpu_user_ns.iter().enumerate().take(IHK_MAX_NUM_CPUS) {
        out.cpuacct_usage_percpu[i] = ns as c_ulong;
    }
    out.num_threads = r.num_threads.min(c_int::MAX as u64) as c_int;
    out.max_num_threads = r.max_num_threads.min(c_int::MAX as u64) as c_int;
    debug_assert!(r
        .memory_numa
        .iter()
        .all(|&(n, _)| (n as usize) < IHK_MAX_NUM_NUMA_NODES));
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_get_rusage(index: c_int, rusage: *mut IhkOsRusage) -> c_int {
    entry(|| {
        if rusage.is_null() {
            return Err(IhkError::inval("rusage is NULL"));
        }
        // SAFETY: the caller passes a writable struct ihk_os_rusage.
        rusage_into(index, unsafe { &mut *rusage }).map(|_| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_getrusage(
    index: c_int,
    rusage: *mut IhkOsRusage,
    size_rusage: usize,
) -> c_int {
    if size_rusage < std::mem::size_of::<IhkOsRusage>() {
        return entry(|| {
            Err(IhkError::inval(format!(
                "size_rusage is {size_rusage}; struct ihk_os_rusage has {} bytes",
                std::mem::size_of::<IhkOsRusage>()
            )))
        });
    }
    // SAFETY: forwarded contract.
    unsafe { ihk_os_get_rusage(index, rusage) }
}
