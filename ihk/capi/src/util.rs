//! Argument and error conversion shared by the entry points: negative
//! errno results, the thread's last error text, panics kept from crossing
//! into C, sockets of the runtime directory, C arrays and strings, and the
//! `KEY=VAL` lists of the `*_str` functions.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use ihk_host::client::Client;
use ihk_host::paths::RuntimeDir;
use ihk_host::{IhkError, IhkResult};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(text: &str) {
    let c = CString::new(text.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// Run an entry point: its value, or -errno (the detail kept for
/// `ihklib_last_error`); a panic is -EIO.
pub fn entry(f: impl FnOnce() -> IhkResult<c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_last_error(&e.detail);
            -(if e.errno > 0 { e.errno } else { libc::EIO })
        }
        Err(_) => {
            set_last_error("internal error in libihk (a panic was caught)");
            -libc::EIO
        }
    }
}

/// `entry` for functions returning `ssize_t`.
pub fn entry_ssize(f: impl FnOnce() -> IhkResult<isize>) -> isize {
    let mut out: isize = 0;
    let r = entry(|| {
        out = f()?;
        Ok(0)
    });
    if r < 0 {
        r as isize
    } else {
        out
    }
}

#[no_mangle]
pub extern "C" fn ihklib_last_error() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

pub fn runtime_dir() -> RuntimeDir {
    RuntimeDir::from_env()
}

fn index_of(index: c_int, what: &str) -> IhkResult<u32> {
    u32::try_from(index).map_err(|_| IhkError::inval(format!("{what} index {index} is negative")))
}

/// The IHK device `index` (`/dev/mcd<index>`).
pub fn device(index: c_int) -> IhkResult<Client> {
    Client::device(&runtime_dir(), index_of(index, "IHK device")?)
}

/// The OS instance `index` (`/dev/mcos<index>`).
pub fn os(index: c_int) -> IhkResult<Client> {
    Client::os(&runtime_dir(), index_of(index, "OS instance")?)
}

pub fn count(n: c_int, what: &str) -> IhkResult<usize> {
    usize::try_from(n).map_err(|_| IhkError::inval(format!("{what} {n} is negative")))
}

/// A C array of `n` elements (`n` >= 0; NULL only when `n` is 0).
///
/// # Safety
/// When not NULL, `p` points to `n` readable elements.
pub unsafe fn array<'a, T>(p: *const T, n: c_int, what: &str) -> IhkResult<&'a [T]> {
    let n = count(n, what)?;
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(IhkError::new(libc::EFAULT, format!("{what}: NULL array")));
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A writable C array of `n` elements.
///
/// # Safety
/// When not NULL, `p` points to `n` writable elements nobody else uses
/// during the call.
pub unsafe fn array_mut<'a, T>(p: *mut T, n: c_int, what: &str) -> IhkResult<&'a mut [T]> {
    let n = count(n, what)?;
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(IhkError::new(libc::EFAULT, format!("{what}: NULL array")));
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// A NUL-terminated string; NULL is EFAULT, invalid UTF-8 EINVAL.
///
/// # Safety
/// When not NULL, `p` points to a NUL-terminated string.
pub unsafe fn string<'a>(p: *const c_char, what: &str) -> IhkResult<&'a str> {
    if p.is_null() {
        return Err(IhkError::new(libc::EFAULT, format!("{what}: NULL string")));
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| IhkError::inval(format!("{what} is not valid UTF-8")))
}

/// CPU ids from a C array (each >= 0).
pub fn cpu_ids(cpus: &[c_int]) -> IhkResult<Vec<u32>> {
    cpus.iter()
        .map(|&c| u32::try_from(c).map_err(|_| IhkError::inval(format!("CPU {c} is negative"))))
        .collect()
}

/// Copy `items` into the caller's array of `n` elements, which must hold
/// them all.
pub fn fill<T: Copy>(out: &mut [T], items: &[T], what: &str) -> IhkResult<()> {
    if out.len() < items.len() {
        return Err(IhkError::inval(format!(
            "{what}: the array has {} elements, {} are needed",
            out.len(),
            items.len()
        )));
    }
    out[..items.len()].copy_from_slice(items);
    Ok(())
}

/// The `KEY=VAL` settings of a `*_str` function: `num_env` NUL-terminated
/// strings one after the other at `envp`.
///
/// # Safety
/// When not NULL, `envp` holds `num_env` NUL-terminated strings in a row.
pub unsafe fn env_list(envp: *const c_char, num_env: c_int) -> IhkResult<Vec<(String, String)>> {
    let n = count(num_env, "num_env")?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if envp.is_null() {
        return Err(IhkError::new(libc::EFAULT, "envp is NULL"));
    }
    let mut out = Vec::with_capacity(n);
    let mut p = envp;
    for _ in 0..n {
        // SAFETY: the caller's contract: a NUL-terminated string at p.
        let s = unsafe { CStr::from_ptr(p) };
        // SAFETY: the next string starts after this one's NUL.
        p = unsafe { p.add(s.to_bytes().len() + 1) };
        let s = s
            .to_str()
            .map_err(|_| IhkError::inval("a setting of envp is not valid UTF-8"))?;
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| IhkError::inval(format!("setting '{s}' is not of the form KEY=VAL")))?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// The value of `key` (the last one given wins).
pub fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lists_are_nul_joined_key_values() {
        let buf = b"IHK_CPUS=1-3\0IHK_MEM=512M@0\0OTHER=x\0";
        // SAFETY: three NUL-terminated strings in a row.
        let env = unsafe { env_list(buf.as_ptr() as *const c_char, 3) }.unwrap();
        assert_eq!(env_get(&env, "IHK_CPUS"), Some("1-3"));
        assert_eq!(env_get(&env, "IHK_MEM"), Some("512M@0"));
        assert_eq!(env_get(&env, "IHK_KARGS"), None);
        // SAFETY: as above.
        let bad = unsafe { env_list(c"NOEQUALS".as_ptr(), 1) };
        assert_eq!(bad.unwrap_err().errno, libc::EINVAL);
        // SAFETY: NULL with a count is refused before any access.
        let null = unsafe { env_list(std::ptr::null(), 1) };
        assert_eq!(null.unwrap_err().errno, libc::EFAULT);
    }

    #[test]
    fn errors_become_negative_errno_with_a_detail() {
        assert_eq!(entry(|| Err(IhkError::inval("bad CPU 9"))), -libc::EINVAL);
        // SAFETY: the pointer is this thread's current message.
        let text = unsafe { CStr::from_ptr(ihklib_last_error()) };
        assert_eq!(text.to_str().unwrap(), "bad CPU 9");
        assert_eq!(entry(|| panic!("boom")), -libc::EIO);
        assert_eq!(entry(|| Ok(3)), 3);
    }
}
