//! The `*_str` functions: settings as `KEY=VAL` lists (num_env strings,
//! each NUL-terminated, one after the other), keys the specification does
//! not list for a function are ignored. Values use the commands' list
//! languages (`IHK_CPUS=1-3`, `IHK_MEM=512M@0`, `IHK_IKC_MAP=1-3:0`).

use std::os::raw::{c_char, c_int};
use std::path::Path;

use ihk_host::client::destroy_all_instances;
use ihk_host::client::Client;
use ihk_host::list::{CpuList, IkcMap, MemList};
use ihk_host::proto::libihk::MemConfKey;
use ihk_host::{IhkError, IhkResult};

use crate::device::check_mem_conf;
use crate::ffi::IHKLIB_ERR_MSG_SIZE;
use crate::util::{device, entry, env_get, env_list, os, runtime_dir, string};

fn required<'a>(env: &'a [(String, String)], key: &str) -> IhkResult<&'a str> {
    env_get(env, key).ok_or_else(|| IhkError::inval(format!("{key}=... is missing from envp")))
}

/// `<n>[K|M|G]` bytes.
fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1i64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<i64>().ok()?.checked_mul(mul)
}

/// The reservation settings of an env list, checked (EINVAL on the first
/// bad one, before anything is sent).
fn mem_conf_settings(env: &[(String, String)]) -> IhkResult<Vec<(MemConfKey, i64)>> {
    let mut out = Vec::new();
    for (k, v) in env {
        let Some(key) = MemConfKey::from_env_name(k) else {
            continue;
        };
        let value = match key {
            MemConfKey::MinChunkSize => parse_size(v),
            _ => v.trim().parse::<i64>().ok(),
        }
        .ok_or_else(|| IhkError::inval(format!("{k}={v}: the value is not a number")))?;
        check_mem_conf(key, value)?;
        out.push((key, value));
    }
    Ok(out)
}

#[no_mangle]
pub unsafe extern "C" fn ihk_reserve_cpu_str(
    dev_index: c_int,
    envp: *const c_char,
    num_env: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_env strings at envp.
        let env = unsafe { env_list(envp, num_env) }?;
        let cpus = CpuList::parse(required(&env, "IHK_CPUS")?)?;
        device(dev_index)?.reserve_cpu(cpus.ids()).map(|_| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_reserve_mem_conf_str(
    dev_index: c_int,
    envp: *const c_char,
    num_env: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_env strings at envp.
        let env = unsafe { env_list(envp, num_env) }?;
        let settings = mem_conf_settings(&env)?;
        let mut dev = device(dev_index)?;
        for (k, v) in settings {
            dev.reserve_mem_conf(k, v)?;
        }
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_reserve_mem_str(
    dev_index: c_int,
    envp: *const c_char,
    num_env: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_env strings at envp.
        let env = unsafe { env_list(envp, num_env) }?;
        let mem = MemList::parse(required(&env, "IHK_MEM")?)?;
        device(dev_index)?.reserve_mem(&mem).map(|_| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_assign_cpu_str(
    os_index: c_int,
    envp: *const c_char,
    num_env: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_env strings at envp.
        let env = unsafe { env_list(envp, num_env) }?;
        let cpus = CpuList::parse(required(&env, "IHK_CPUS")?)?;
        os(os_index)?.os_assign_cpu(cpus.ids()).map(|_| 0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_set_ikc_map_str(
    os_index: c_int,
    envp: *const c_char,
    num_env: c_int,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_env strings at envp.
        let env = unsafe { env_list(envp, num_env) }?;
        let map = IkcMap::parse(required(&env, "IHK_IKC_MAP")?)?;
        os(os_index)?.os_set_ikc_map(&map).map(|_| 0)
    })
}

/// IHK_KARGS, else `default_kargs` (NULL then: EFAULT).
///
/// # Safety
/// `default_kargs` is NULL or a NUL-terminated string.
unsafe fn kargs_of(env: &[(String, String)], default_kargs: *const c_char) -> IhkResult<String> {
    match env_get(env, "IHK_KARGS") {
        Some(k) => Ok(k.to_string()),
        // SAFETY: forwarded contract.
        None => unsafe { string(default_kargs, "default_kargs") }.map(str::to_string),
    }
}

#[no_mangle]
pub unsafe extern "C" fn ihk_os_kargs_str(
    os_index: c_int,
    envp: *const c_char,
    num_env: c_int,
    default_kargs: *const c_char,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_env strings at envp.
        let env = unsafe { env_list(envp, num_env) }?;
        // SAFETY: the caller passes NULL or a string.
        let kargs = unsafe { kargs_of(&env, default_kargs) }?;
        os(os_index)?.os_kargs(&kargs).map(|_| 0)
    })
}

/// Write `msg` (truncated) into the caller's err_msg buffer.
///
/// # Safety
/// `err_msg` is NULL or holds IHKLIB_ERR_MSG_SIZE writable bytes.
unsafe fn write_err_msg(err_msg: *mut c_char, msg: &str) {
    if err_msg.is_null() {
        return;
    }
    let bytes = msg.as_bytes();
    let n = bytes.len().min(IHKLIB_ERR_MSG_SIZE - 1);
    // SAFETY: the caller's contract; n + 1 <= IHKLIB_ERR_MSG_SIZE.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), err_msg as *mut u8, n);
        *err_msg.add(n) = 0;
    }
}

/// A failed step of `ihk_create_os_str`: where, which function, why.
struct StepError {
    line: u32,
    function: &'static str,
    error: IhkError,
}

macro_rules! step {
    ($function:expr, $e:expr) => {
        $e.map_err(|error| StepError {
            line: line!(),
            function: $function,
            error,
        })
    };
}

/// Give back everything (after a failed `ihk_create_os_str`).
fn release_everything() -> IhkResult<()> {
    let dir = runtime_dir();
    destroy_all_instances(&dir)?;
    let mut dev = Client::device(&dir, 0)?;
    let cpus = dev.query_cpu()?;
    if !cpus.is_empty() {
        dev.release_cpu(&cpus)?;
    }
    if !dev.query_mem()?.is_empty() {
        dev.release_mem(&MemList::parse("all").expect("static list"))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn create_os_steps(
    dev_index: c_int,
    os_index: *mut c_int,
    env: &[(String, String)],
    image: &str,
    kargs: &str,
) -> Result<(), StepError> {
    let cpus = step!(
        "CpuList::parse",
        required(env, "IHK_CPUS").and_then(|c| Ok(CpuList::parse(c)?))
    )?;
    let mem = step!(
        "MemList::parse",
        required(env, "IHK_MEM").and_then(|m| Ok(MemList::parse(m)?))
    )?;
    let ikc = step!(
        "IkcMap::parse",
        env_get(env, "IHK_IKC_MAP")
            .map(IkcMap::parse)
            .transpose()
            .map_err(IhkError::from)
    )?;
    let conf = step!("ihk_reserve_mem_conf_str", mem_conf_settings(env))?;
    // Resources already reserved are released first (§1.2.2.17 step 1).
    step!("ihk_release_mem", release_everything())?;
    let mut dev = step!("ihk_reserve_mem", device(dev_index))?;
    for (k, v) in conf {
        step!("ihk_reserve_mem_conf", dev.reserve_mem_conf(k, v))?;
    }
    step!("ihk_reserve_mem", dev.reserve_mem(&mem))?;
    step!("ihk_reserve_cpu", dev.reserve_cpu(cpus.ids()))?;
    let index = step!("ihk_create_os", dev.create_os())?;
    if !os_index.is_null() {
        // SAFETY: the caller passes a writable int (checked non-NULL).
        unsafe { *os_index = index as c_int };
    }
    let mut c = step!("ihk_os_assign_cpu", os(index as c_int))?;
    step!("ihk_os_assign_cpu", c.os_assign_cpu(cpus.ids()))?;
    if let Some(map) = &ikc {
        step!("ihk_os_set_ikc_map", c.os_set_ikc_map(map))?;
    }
    step!(
        "ihk_os_assign_mem",
        c.os_assign_mem(&MemList::parse("all").expect("static list"))
    )?;
    step!("ihk_os_load", c.os_load(Path::new(image)))?;
    step!("ihk_os_kargs", c.os_kargs(kargs))?;
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn ihk_create_os_str(
    dev_index: c_int,
    os_index: *mut c_int,
    envp: *const c_char,
    num_env: c_int,
    kernel_image: *const c_char,
    default_kargs: *const c_char,
    err_msg: *mut c_char,
) -> c_int {
    entry(|| {
        // SAFETY: the caller passes num_env strings at envp.
        let env = unsafe { env_list(envp, num_env) }?;
        // SAFETY: the caller passes a NUL-terminated path.
        let image = unsafe { string(kernel_image, "kernel_image") }?;
        // SAFETY: the caller passes NULL or a string.
        let kargs = unsafe { kargs_of(&env, default_kargs) }?;
        match create_os_steps(dev_index, os_index, &env, image, &kargs) {
            Ok(()) => Ok(0),
            Err(s) => {
                let msg = format!("{}:{}: {}: {}", file!(), s.line, s.function, s.error.detail);
                // SAFETY: the caller passes NULL or IHKLIB_ERR_MSG_SIZE bytes.
                unsafe { write_err_msg(err_msg, &msg) };
                // On error nothing stays created or reserved (§1.2.2.17).
                if let Err(e) = release_everything() {
                    // SAFETY: as above.
                    unsafe { write_err_msg(err_msg, &format!("{msg}; undoing: {}", e.detail)) };
                }
                Err(s.error)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_settings() {
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        let env = vec![
            (
                "IHK_RESERVE_MEM_BALANCED_ENABLE".to_string(),
                "1".to_string(),
            ),
            (
                "IHK_RESERVE_MEM_MIN_CHUNK_SIZE".to_string(),
                "2M".to_string(),
            ),
            ("IHK_RESERVE_MEM_MEM_TIMEOUT".to_string(), "10".to_string()),
            ("IHK_CPUS".to_string(), "1".to_string()),
        ];
        assert_eq!(
            mem_conf_settings(&env).unwrap(),
            vec![
                (MemConfKey::BalancedEnable, 1),
                (MemConfKey::MinChunkSize, 2 << 20),
                (MemConfKey::Timeout, 10)
            ]
        );
        let bad = vec![(
            "IHK_RESERVE_MEM_MAX_SIZE_RATIO_ALL".to_string(),
            "120".to_string(),
        )];
        assert_eq!(mem_conf_settings(&bad).unwrap_err().errno, libc::EINVAL);
    }
}
