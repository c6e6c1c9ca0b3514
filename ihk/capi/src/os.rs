//! Configuring, booting and shutting down an OS instance (§1.2.2.1-12,
//! 14-15, 18-19).

use std::os::raw::{c_char, c_int};
use std::path::Path;
use std::time::Duration;

use ihk_host::list::{IkcMap, MemList};
use ihk_host::IhkError;

use crate::device::{chunks_of, mem_list, SIZE_ALL};
use crate::ffi::{IhkIkcCpuMap, IhkMemChunk};
use crate::util::{array, array_mut, cpu_ids, entry, fill, os, string};

/// Default wait of `ihk_os_boot` (seconds; `$IHK_BOOT_TIMEOUT` overrides).
const BOOT_TIMEOUT_SECS: u64 = 30;

#[no_mangle]
pub unsafe extern "C" fn ihk_os_assign_cpu(
    index: c_int,
    cpus: *mut c_int,
    num_cpus: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_cpus ints.
        let ids = cpu_ids(unsafe { array(cpus, num_cpus, "cpus") }?)?;
        os(index)?.os_assign_cpu(&ids).map(|_| 0)
    })
}

#[no_mangle]
pub extern "C" fn ihk_os_get_num_assigned_cpus(index: c_int) -> c_int {
    entry(|| Ok(os(index)?.os_query_cpu()?.len() as c_int))
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_query_cpu(
    index: c_int,
    cpus: *mut c_int,
    num_cpus: c_int,
) -> c_int {
    entry(|| {
        let got: Vec<c_int> = os(index)?
            .os_query_cpu()?
            .into_iter()
            .map(|c| c as c_int)
            .collect();
        // SAFETY: the caller passes num_cpus writable ints.
        fill(unsafe { array_mut(cpus, num_cpus, "cpus") }?, &got, "cpus")?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_release_cpu(
    index: c_int,
    cpus: *mut c_int,
    num_cpus: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_cpus ints.
        let ids = cpu_ids(unsafe { array(cpus, num_cpus, "cpus") }?)?;
        if ids.is_empty() {
            return Err(IhkError::inval("no CPU given (num_cpus is 0)"));
        }
        os(index)?.os_release_cpu(&ids).map(|_| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_set_ikc_map(
    index: c_int,
    map: *mut IhkIkcCpuMap,
    num_cpus: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_cpus entries.
        let entries = unsafe { array(map, num_cpus, "map") }?;
        let mut pairs = Vec::with_capacity(entries.len());
        for e in entries {
            let (Ok(s), Ok(d)) = (u32::try_from(e.src_cpu), u32::try_from(e.dst_cpu)) else {
                return Err(IhkError::inval(format!(
                    "IKC map entry {{{}, {}}} has a negative CPU",
                    e.src_cpu, e.dst_cpu
                )));
            };
            if pairs.iter().any(|&(p, _)| p == s) {
                return Err(IhkError::inval(format!("LWK CPU {s} is mapped twice")));
            }
            pairs.push((s, d));
        }
        let mut c = os(index)?;
        let assigned = c.os_query_cpu()?.len();
        if pairs.len() != assigned {
            return Err(IhkError::inval(format!(
                "num_cpus is {num_cpus}; OS instance {index} has {assigned} CPUs assigned"
            )));
        }
        c.os_set_ikc_map(&IkcMap(pairs)).map(|_| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_get_ikc_map(
    index: c_int,
    map: *mut IhkIkcCpuMap,
    num_cpus: c_int,
) -> c_int {
    entry(|| {
        let got: Vec<IhkIkcCpuMap> = os(index)?
            .os_get_ikc_map()?
            .0
            .into_iter()
            .map(|(s, d)| IhkIkcCpuMap {
                src_cpu: s as c_int,
                dst_cpu: d as c_int,
            })
            .collect();
        // SAFETY: the caller passes num_cpus writable entries.
        fill(unsafe { array_mut(map, num_cpus, "map") }?, &got, "map")?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_assign_mem(
    index: c_int,
    mem_chunks: *mut IhkMemChunk,
    num_mem_chunks: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_mem_chunks chunks. A -1 size takes
        // all reserved memory of that node (§1.2.2.9).
        let list = mem_list(
            unsafe { array(mem_chunks, num_mem_chunks, "mem_chunks") }?,
            false,
        )?;
        os(index)?.os_assign_mem(&list).map(|_| 0)
    })
}

#[no_mangle]
pub extern "C" fn ihk_os_get_num_assigned_mem_chunks(index: c_int) -> c_int {
    entry(|| Ok(os(index)?.os_query_mem()?.len() as c_int))
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_query_mem(
    index: c_int,
    mem_chunks: *mut IhkMemChunk,
    num_mem_chunks: c_int,
) -> c_int {
    entry(|| {
        let got = chunks_of(&os(index)?.os_query_mem()?);
        // SAFETY: the caller passes num_mem_chunks writable chunks.
        fill(
            unsafe { array_mut(mem_chunks, num_mem_chunks, "mem_chunks") }?,
            &got,
            "mem_chunks",
        )?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_release_mem(
    index: c_int,
    mem_chunks: *mut IhkMemChunk,
    num_mem_chunks: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_mem_chunks chunks.
        let chunks = unsafe { array(mem_chunks, num_mem_chunks, "mem_chunks") }?;
        // A -1 size releases everything assigned, on every node (§1.2.2.12).
        let list = if chunks.iter().any(|c| c.size == SIZE_ALL) {
            MemList::parse("all").expect("static list")
        } else {
            mem_list(chunks, false)?
        };
        os(index)?.os_release_mem(&list).map(|_| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_load(index: c_int, image: *mut c_char) -> c_int {
    entry(|| {
        // SAFETY: the caller passes a NUL-terminated path.
        let path = unsafe { string(image, "image") }.map_err(|e| IhkError::inval(e.detail))?;
        os(index)?
            .os_load(Path::new(path))
            .map_err(load_error)
            .map(|_| 0)
    })
}

/// `ihk_os_load` documents EINVAL for an image that cannot be loaded.
fn load_error(e: IhkError) -> IhkError {
    match e.errno {
        libc::EPERM | libc::EBUSY | libc::EINVAL => e,
        // Opening the image failed (missing, unreadable): not loadable.
        _ if e.detail.starts_with("opening kernel image") => IhkError::inval(e.detail),
        _ => e,
    }
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_kargs(index: c_int, kargs: *mut c_char) -> c_int {
    entry(|| {
        // SAFETY: the caller passes a NUL-terminated string (NULL: EFAULT).
        let k = unsafe { string(kargs, "kargs") }?;
        os(index)?.os_kargs(k).map(|_| 0)
    })
}

pub fn boot_timeout() -> Duration {
    let secs = std::env::var("IHK_BOOT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(BOOT_TIMEOUT_SECS);
    Duration::from_secs(secs)
}

#[no_mangle]
pub extern "C" fn ihk_os_boot(index: c_int) -> c_int {
    entry(|| {
        let mut c = os(index)?;
        // The daemon answers when the LWK runs or gave up.
        c.set_timeout(None)
            .map_err(|e| IhkError::os(e, "socket timeout"))?;
        c.os_boot(boot_timeout()).map(|_| 0)
    })
}

/// Already shutting down (or done meanwhile) is not an error (§1.2.2.19).
#[no_mangle]
pub extern "C" fn ihk_os_shutdown(index: c_int) -> c_int {
    entry(|| {
        let mut c = os(index)?;
        match c.os_get_status()?.as_str() {
            "SHUTDOWN" => return Ok(0),
            "INACTIVE" => {
                return Err(IhkError::inval(format!(
                    "OS instance {index} is not booted"
                )))
            }
            _ => {}
        }
        c.os_shutdown().map(|_| 0)
    })
}
