//! The Linux CPUs of utility threads: every CPU mcexec may use except the
//! partition's (the host CPUs behind the LWK's vCPUs, from the boot
//! parameters), and the program's view of the split (`UTI_FWK_CPU_SET`,
//! `UTI_LWK_CPU_SET`, which libuti's placement reads).

use std::sync::OnceLock;

use ihk_abi::boot_params::BootParams;
use ihk_abi::layout::BOOT_PARAMS_GPA;

use crate::guest::GuestMemory;

static LINUX_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// mcexec's own affinity.
fn own_affinity() -> Vec<usize> {
    // SAFETY: sched_getaffinity into a local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Host CPUs of the partition's LWK CPUs (all, and the `first..+count`
/// share of this process).
fn partition_cpus(guest: &GuestMemory, first: u32, count: u32) -> (Vec<usize>, Vec<usize>) {
    // SAFETY: the boot parameters stay at BOOT_PARAMS_GPA for the life of
    // the instance.
    let Ok(bp) = (unsafe { guest.get::<BootParams>(BOOT_PARAMS_GPA) }) else { return (Vec::new(), Vec::new()) };
    let all: Vec<usize> = bp.cores().iter().map(|c| c.linux_cpu as usize).collect();
    let mine = bp
        .cores()
        .iter()
        .filter(|c| (first..first + count.max(1)).contains(&c.lwk_id))
        .map(|c| c.linux_cpu as usize)
        .collect();
    (all, mine)
}

/// Decide the Linux CPUs for utility threads of this mcexec; returns the
/// program's (FWK, LWK) CPU sets in host numbering.
pub fn set_linux_cpus(guest: &GuestMemory, first: u32, count: u32) -> (Vec<usize>, Vec<usize>) {
    let (all, mine) = partition_cpus(guest, first, count);
    let own = own_affinity();
    let mut linux: Vec<usize> = own.iter().copied().filter(|c| !all.contains(c)).collect();
    if linux.is_empty() {
        eprintln!("mcexec: --enable-uti: no Linux CPU outside the partition is allowed; utility threads share them");
        linux = own;
    }
    let _ = LINUX_CPUS.set(linux.clone());
    (linux, mine)
}

/// `KEY=list` entries for the program's environment, unless the user set
/// them.
pub fn environment(fwk: &[usize], lwk: &[usize]) -> Vec<(String, String)> {
    [("UTI_FWK_CPU_SET", fwk), ("UTI_LWK_CPU_SET", lwk)]
        .into_iter()
        .filter(|(k, set)| std::env::var_os(k).is_none() && !set.is_empty())
        .map(|(k, set)| (k.to_string(), list(set)))
        .collect()
}

/// "0,2-4".
fn list(cpus: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    out.join(",")
}

/// A utility thread's `sched_setaffinity(tid, len, mask)` (from libuti's
/// placement through the LWK, or its own): the mask within the Linux CPUs,
/// or all of them when it names none (as the thread's start does, so the
/// result does not depend on which comes first): the partition's CPUs
/// never run it.
pub fn set_affinity(tid: u64, len: u64, mask: u64) -> i64 {
    let Some(linux) = LINUX_CPUS.get() else { return -(libc::EINVAL as i64) };
    let len = (len as usize).min(std::mem::size_of::<libc::cpu_set_t>());
    // SAFETY: a local set; the mask is the program's memory, mirrored at
    // the same address (read at most `len` bytes of it, as the kernel).
    unsafe {
        let mut asked: libc::cpu_set_t = std::mem::zeroed();
        if mask != 0 && len > 0 {
            let r = libc::process_vm_readv(
                libc::getpid(),
                &libc::iovec { iov_base: (&mut asked as *mut libc::cpu_set_t).cast(), iov_len: len },
                1,
                &libc::iovec { iov_base: mask as *mut libc::c_void, iov_len: len },
                1,
                0,
            );
            if r != len as isize {
                return -(libc::EFAULT as i64);
            }
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let any = linux.iter().any(|&c| libc::CPU_ISSET(c, &asked));
        for &c in linux {
            if !any || libc::CPU_ISSET(c, &asked) {
                libc::CPU_SET(c, &mut set);
            }
        }
        if libc::sched_setaffinity(tid as libc::pid_t, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL) as i64);
        }
        0
    }
}

/// Keep the calling (utility) thread off the partition's CPUs: its
/// affinity becomes its current one (libuti's placement may already have
/// set it through the LWK) within the Linux CPUs, or the Linux CPUs.
pub fn narrow_own_affinity() {
    let Some(linux) = LINUX_CPUS.get() else { return };
    let cur = own_affinity();
    let mut want: Vec<usize> = cur.into_iter().filter(|c| linux.contains(c)).collect();
    if want.is_empty() {
        want = linux.clone();
    }
    // SAFETY: a local set for sched_setaffinity of this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in want {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert_eq!(super::list(&[0]), "0");
        assert_eq!(super::list(&[0, 2, 3, 4, 7]), "0,2-4,7");
    }
}
