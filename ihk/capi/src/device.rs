//! Resources of an IHK device (§1.2.1): CPUs, memory, the reservation
//! settings, OS instance creation and destruction.

use std::os::raw::{c_int, c_ulong, c_void};

use ihk_host::proto::libihk::MemConf;
use ihk_host::list::{MemChunk, MemList, MemSize, MEM_GRANULE};
use ihk_host::proto::libihk::MemConfKey;
use ihk_host::{IhkError, IhkResult};

use crate::ffi::IhkMemChunk;
use crate::util::{array, array_mut, cpu_ids, device, entry, fill};

/// `(unsigned long)-1` in a chunk: as much as possible / everything.
pub const SIZE_ALL: c_ulong = c_ulong::MAX;

/// A memory list from C chunks; `-1` sizes become `ALL` of their node.
/// Reservations need sizes that are positive multiples of 4 MiB.
pub fn mem_list(chunks: &[IhkMemChunk], reserving: bool) -> IhkResult<MemList> {
    if chunks.is_empty() {
        return Err(IhkError::inval(
            "no memory chunk given (num_mem_chunks is 0)",
        ));
    }
    let mut out = Vec::new();
    for c in chunks {
        let node = u32::try_from(c.numa_node_number).map_err(|_| {
            IhkError::inval(format!("NUMA node {} is negative", c.numa_node_number))
        })?;
        let size = if c.size == SIZE_ALL {
            MemSize::All
        } else {
            if c.size == 0 || (reserving && c.size % MEM_GRANULE != 0) {
                return Err(IhkError::inval(format!(
                    "size {} on NUMA node {node}: expected a positive multiple of 4 MiB (or -1)",
                    c.size
                )));
            }
            MemSize::Bytes(c.size)
        };
        out.push(MemChunk {
            size,
            numa: Some(node),
        });
    }
    Ok(MemList(out))
}

/// Query results as C chunks.
pub fn chunks_of(mem: &[(u64, u32)]) -> Vec<IhkMemChunk> {
    mem.iter()
        .map(|&(b, n)| IhkMemChunk {
            size: b as c_ulong,
            numa_node_number: n as c_int,
        })
        .collect()
}

#[no_mangle]
pub unsafe extern "C" fn ihk_reserve_cpu(index: c_int, cpus: *mut c_int, num_cpus: c_int) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_cpus ints (specification).
        let ids = cpu_ids(unsafe { array(cpus, num_cpus, "cpus") }?)?;
        if ids.is_empty() {
            return Err(IhkError::inval("no CPU given (num_cpus is 0)"));
        }
        device(index)?.reserve_cpu(&ids).map(|_| 0)
    })
}

#[no_mangle]
pub extern "C" fn ihk_get_num_reserved_cpus(index: c_int) -> c_int {
    entry(|| Ok(device(index)?.query_cpu()?.len() as c_int))
}

#[no_mangle]
pub unsafe extern "C" fn ihk_query_cpu(index: c_int, cpus: *mut c_int, num_cpus: c_int) -> c_int {
    entry(|| {
        let got: Vec<c_int> = device(index)?
            .query_cpu()?
            .into_iter()
            .map(|c| c as c_int)
            .collect();
        // SAFETY: the caller passes num_cpus writable ints.
        fill(unsafe { array_mut(cpus, num_cpus, "cpus") }?, &got, "cpus")?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_release_cpu(index: c_int, cpus: *mut c_int, num_cpus: c_int) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_cpus ints.
        let ids = cpu_ids(unsafe { array(cpus, num_cpus, "cpus") }?)?;
        if ids.is_empty() {
            return Err(IhkError::inval("no CPU given (num_cpus is 0)"));
        }
        device(index)?.release_cpu(&ids).map(|_| 0)
    })
}

/// Check a setting as ihkd will (so a bad value fails before anything is
/// sent).
pub fn check_mem_conf(key: MemConfKey, value: i64) -> IhkResult<()> {
    MemConf::default().set(key, value)
}

#[no_mangle]
pub unsafe extern "C" fn ihk_reserve_mem_conf(
    index: c_int,
    key: c_int,
    value: *mut c_void,
) -> c_int {
    entry(|| {
        let key = MemConfKey::from_c(key).ok_or_else(|| {
            IhkError::inval(format!(
                "reserve_mem_conf key {key} is unknown (expected 0-5)"
            ))
        })?;
        if value.is_null() {
            return Err(IhkError::inval("reserve_mem_conf: value is NULL"));
        }
        // SAFETY: the header documents the type each key's value points to.
        let v = unsafe {
            match key {
                MemConfKey::MinChunkSize => *(value as *const c_ulong) as i64,
                _ => *(value as *const c_int) as i64,
            }
        };
        check_mem_conf(key, v)?;
        device(index)?.reserve_mem_conf(key, v).map(|_| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_reserve_mem(
    index: c_int,
    mem_chunks: *mut IhkMemChunk,
    num_mem_chunks: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_mem_chunks chunks.
        let list = mem_list(
            unsafe { array(mem_chunks, num_mem_chunks, "mem_chunks") }?,
            true,
        )?;
        device(index)?.reserve_mem(&list).map(|_| 0)
    })
}

#[no_mangle]
pub extern "C" fn ihk_get_num_reserved_mem_chunks(index: c_int) -> c_int {
    entry(|| Ok(device(index)?.query_mem()?.len() as c_int))
}

#[no_mangle]
pub unsafe extern "C" fn ihk_query_mem(
    index: c_int,
    mem_chunks: *mut IhkMemChunk,
    num_mem_chunks: c_int,
) -> c_int {
    entry(|| {
        let got = chunks_of(&device(index)?.query_mem()?);
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
pub unsafe extern "C" fn ihk_release_mem(
    index: c_int,
    mem_chunks: *mut IhkMemChunk,
    num_mem_chunks: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_mem_chunks chunks.
        let chunks = unsafe { array(mem_chunks, num_mem_chunks, "mem_chunks") }?;
        // A -1 size releases everything on every node (§1.2.1.12).
        let list = if chunks.iter().any(|c| c.size == SIZE_ALL) {
            MemList::parse("all").expect("static list")
        } else {
            mem_list(chunks, false)?
        };
        device(index)?.release_mem(&list).map(|_| 0)
    })
}

#[no_mangle]
pub extern "C" fn ihk_create_os(index: c_int) -> c_int {
    entry(|| Ok(device(index)?.create_os()? as c_int))
}

/// The index is ignored (§1.2.1.14): device 0 is asked.
#[no_mangle]
pub extern "C" fn ihk_get_num_os_instances(_index: c_int) -> c_int {
    entry(|| Ok(device(0)?.get_os_instances()?.len() as c_int))
}

#[no_mangle]
pub unsafe extern "C" fn ihk_get_os_instances(
    index: c_int,
    indices: *mut c_int,
    num_os_instances: c_int,
) -> c_int {
    entry(|| {
        let got: Vec<c_int> = device(index)?
            .get_os_instances()?
            .into_iter()
            .map(|i| i as c_int)
            .collect();
        if num_os_instances as usize != got.len() || num_os_instances < 0 {
            return Err(IhkError::inval(format!(
                "num_os_instances is {num_os_instances}; there are {} OS instances",
                got.len()
            )));
        }
        // SAFETY: the caller passes num_os_instances writable ints.
        fill(
            unsafe { array_mut(indices, num_os_instances, "indices") }?,
            &got,
            "indices",
        )?;
        Ok(0)
    })
}

#[no_mangle]
pub extern "C" fn ihk_destroy_os(dev_index: c_int, os_index: c_int) -> c_int {
    entry(|| {
        let os = u32::try_from(os_index)
            .map_err(|_| IhkError::inval(format!("OS instance index {os_index} is negative")))?;
        device(dev_index)?.destroy_os(os).map(|_| 0)
    })
}
