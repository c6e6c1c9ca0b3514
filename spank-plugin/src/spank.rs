//! A small safe layer over the SPANK calls the hooks use: typed
//! `spank_get_item`, environment, option registration, and Slurm's log.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};

use crate::ffi;

/// Where the plugin was loaded (spank_context()).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// srun
    Local,
    /// slurmstepd
    Remote,
    /// sbatch, salloc
    Allocator,
    Slurmd,
    /// The job prolog/epilog (`slurmstepd spank epilog`)
    JobScript,
    Unknown,
}

pub fn context() -> Context {
    // SAFETY: spank_context() takes no argument and only reads Slurm's
    // global plugin-stack state; any Slurm program that loads us defines it.
    let c = unsafe { ffi::spank_context() };
    match c {
        ffi::S_CTX_LOCAL => Context::Local,
        ffi::S_CTX_REMOTE => Context::Remote,
        ffi::S_CTX_ALLOCATOR => Context::Allocator,
        ffi::S_CTX_SLURMD => Context::Slurmd,
        ffi::S_CTX_JOB_SCRIPT => Context::JobScript,
        _ => Context::Unknown,
    }
}

/// The handle Slurm passes to a hook; valid for the duration of the call.
#[derive(Clone, Copy)]
pub struct Spank(ffi::spank_t);

pub type SpankResult<T> = Result<T, String>;

fn check(rc: ffi::spank_err_t, what: &str) -> SpankResult<()> {
    if rc == ffi::ESPANK_SUCCESS {
        return Ok(());
    }
    // SAFETY: spank_strerror returns a pointer to a static string for any code.
    let msg = unsafe { CStr::from_ptr(ffi::spank_strerror(rc)) };
    Err(format!("{what}: {}", msg.to_string_lossy()))
}

impl Spank {
    /// # Safety
    /// `sp` must be the handle Slurm passed to the running hook.
    pub unsafe fn from_raw(sp: ffi::spank_t) -> Self {
        Spank(sp)
    }

    /// The local task id in a task hook (S_TASK_ID, `int *`).
    pub fn task_id(&self) -> SpankResult<i32> {
        let mut v: c_int = -1;
        // SAFETY: S_TASK_ID writes one int through the pointer.
        let rc = unsafe { ffi::spank_get_item(self.0, ffi::S_TASK_ID, &mut v as *mut c_int) };
        check(rc, "S_TASK_ID").map(|_| v)
    }

    /// An item of type `uint32_t *` (S_JOB_ID, S_JOB_STEPID, ...).
    pub fn get_u32(&self, item: ffi::spank_item_t, what: &str) -> SpankResult<u32> {
        let mut v: u32 = 0;
        // SAFETY: for these items spank_get_item writes one uint32_t through
        // the single pointer argument (spank.h's table of items).
        let rc = unsafe { ffi::spank_get_item(self.0, item, &mut v as *mut u32) };
        check(rc, what).map(|_| v)
    }

    /// S_JOB_UID / S_JOB_GID (`uid_t *` / `gid_t *`, both 32-bit on Linux).
    pub fn get_id(&self, item: ffi::spank_item_t, what: &str) -> SpankResult<u32> {
        let mut v: libc::uid_t = 0;
        // SAFETY: uid_t and gid_t are u32; Slurm writes one through the pointer.
        let rc = unsafe { ffi::spank_get_item(self.0, item, &mut v as *mut libc::uid_t) };
        check(rc, what).map(|_| v)
    }

    /// An item of type `char **` (S_JOB_ALLOC_CORES, ...); Slurm owns the string.
    pub fn get_str(&self, item: ffi::spank_item_t, what: &str) -> SpankResult<String> {
        let mut p: *const c_char = std::ptr::null();
        // SAFETY: Slurm stores a pointer to its own NUL-terminated string (or
        // NULL) through the char ** argument; we copy it before returning.
        let rc = unsafe { ffi::spank_get_item(self.0, item, &mut p as *mut *const c_char) };
        check(rc, what)?;
        if p.is_null() {
            return Ok(String::new());
        }
        // SAFETY: non-NULL and NUL-terminated, per spank.h.
        Ok(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    /// The step's command line (S_JOB_ARGV: `int *, char ***`), copied.
    #[cfg(not(spank_prepend_task_argv))]
    pub fn argv(&self) -> SpankResult<Vec<Vec<u8>>> {
        let mut argc: c_int = 0;
        let mut argv: *const *const c_char = std::ptr::null();
        // SAFETY: Slurm writes the count and its own argv array through the
        // two pointers; we copy `argc` strings out of it.
        let rc = unsafe {
            ffi::spank_get_item(
                self.0,
                ffi::S_JOB_ARGV,
                &mut argc as *mut c_int,
                &mut argv as *mut *const *const c_char,
            )
        };
        check(rc, "S_JOB_ARGV")?;
        let mut out = Vec::new();
        for i in 0..argc.max(0) as usize {
            // SAFETY: argv has argc valid entries (Slurm's job record).
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                break;
            }
            // SAFETY: every entry is a NUL-terminated string.
            out.push(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec());
        }
        Ok(out)
    }

    /// The job's environment array (S_JOB_ENV: `char ***`), NULL-terminated,
    /// owned by Slurm and valid until the hook returns (or the process execs).
    #[cfg(not(spank_prepend_task_argv))]
    pub fn env_ptr(&self) -> SpankResult<*const *const c_char> {
        let mut env: *const *const c_char = std::ptr::null();
        // SAFETY: Slurm writes a pointer to its environment array.
        let rc = unsafe {
            ffi::spank_get_item(
                self.0,
                ffi::S_JOB_ENV,
                &mut env as *mut *const *const c_char,
            )
        };
        check(rc, "S_JOB_ENV")?;
        if env.is_null() {
            return Err("S_JOB_ENV: the job has no environment".into());
        }
        Ok(env)
    }

    /// Sets a variable in the job's (remote) environment.
    pub fn setenv(&self, name: &str, value: &str) -> SpankResult<()> {
        let n = CString::new(name).map_err(|_| format!("NUL in {name}"))?;
        let v = CString::new(value).map_err(|_| format!("NUL in value of {name}"))?;
        // SAFETY: both strings are valid and NUL-terminated; Slurm copies them.
        let rc = unsafe { ffi::spank_setenv(self.0, n.as_ptr(), v.as_ptr(), 1) };
        check(rc, name)
    }

    /// Registers an option; `opt` must live as long as the process.
    pub fn register(&self, opt: &'static mut ffi::spank_option) -> SpankResult<()> {
        // SAFETY: `opt` and the strings it points to are 'static.
        let rc = unsafe { ffi::spank_option_register(self.0, opt) };
        check(rc, "spank_option_register")
    }

    /// Prepends to the task's argv (Slurm >= 23.11, task_init only).
    #[cfg(spank_prepend_task_argv)]
    pub fn prepend_task_argv(&self, args: &[CString]) -> SpankResult<()> {
        let ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        // SAFETY: `ptrs` holds args.len() valid strings; Slurm copies them.
        let rc = unsafe {
            ffi::spank_prepend_task_argv(self.0, ptrs.len() as c_int, ptrs.as_ptr() as *mut _)
        };
        check(rc, "spank_prepend_task_argv")
    }
}

/// Slurm's log: in srun and (after the step's I/O is set up) in
/// slurmstepd, `error` reaches the user's terminal; everything reaches the
/// daemon's log file.
pub mod log {
    use super::*;

    fn cstring(msg: &str) -> CString {
        CString::new(msg.replace('\0', " ")).expect("NULs removed")
    }

    pub fn error(msg: &str) {
        let m = cstring(&format!("mckernel: {msg}"));
        // SAFETY: "%s" with one valid C string, as slurm_error's format says.
        unsafe { ffi::slurm_error(c"%s".as_ptr(), m.as_ptr()) }
    }

    pub fn info(msg: &str) {
        let m = cstring(&format!("mckernel: {msg}"));
        // SAFETY: as above.
        unsafe { ffi::slurm_info(c"%s".as_ptr(), m.as_ptr()) }
    }

    pub fn verbose(msg: &str) {
        let m = cstring(&format!("mckernel: {msg}"));
        // SAFETY: as above.
        unsafe { ffi::slurm_verbose(c"%s".as_ptr(), m.as_ptr()) }
    }
}
