//! Creating the progress thread through UTI: `uti_pthread_create` with
//! hints for a Linux CPU (`PREFER_FWK`, `CPU_INTENSIVE`: the least-used
//! Linux CPU near the caller). Under `mcexec --enable-uti` libuti makes the
//! thread a utility thread on a Linux CPU (docs/uti.md); natively it is a
//! placed thread. libuti is the program's if it has one, else
//! `libuti.so.1` loaded at run time (the loader's search path, then the
//! directory of the library holding this code, where the install scripts
//! put both), so the shim links neither libuti nor hwloc. Without libuti
//! the thread is a plain `pthread_create`, with a warning.
//!
//! (Not a RUNPATH of `$ORIGIN`: link arguments of a build script reach
//! every library that embeds this crate, libqlmpi.so too.)

use super::engine::Poller;
use crate::pmpi::lookup;
use std::ffi::{c_int, c_void, CStr, CString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// `uti_attr_t` of uti.h: 1024 NUMA-node bits, then the flags.
#[repr(C)]
struct UtiAttr {
    numa_set: [u64; 16],
    flags: u64,
}

const UTI_FLAG_CPU_INTENSIVE: u64 = 1 << 11;
const UTI_FLAG_PREFER_FWK: u64 = 1 << 15;

type Start = extern "C" fn(*mut c_void) -> *mut c_void;
type UtiAttrInit = unsafe extern "C" fn(*mut UtiAttr) -> c_int;
type UtiPthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *mut libc::pthread_attr_t,
    Start,
    *mut c_void,
    *const UtiAttr,
) -> c_int;

/// libuti's two functions, from the program or loaded now.
fn libuti() -> Option<(UtiAttrInit, UtiPthreadCreate)> {
    let find = |handle: *mut c_void, name: &CStr| {
        // SAFETY: dlsym on a handle from dlopen (or RTLD_DEFAULT) with a
        // NUL-terminated name.
        let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
        (!p.is_null()).then_some(p)
    };
    let pair = |init: *mut c_void, create: *mut c_void| {
        // SAFETY: the C functions of uti.h with these exact prototypes.
        unsafe {
            (
                std::mem::transmute::<*mut c_void, UtiAttrInit>(init),
                std::mem::transmute::<*mut c_void, UtiPthreadCreate>(create),
            )
        }
    };
    if let (Some(i), Some(c)) = (lookup(c"uti_attr_init"), lookup(c"uti_pthread_create")) {
        return Some(pair(i, c));
    }
    let mut names: Vec<CString> = vec![c"libuti.so.1".into()];
    if let Some(dir) = own_dir() {
        for file in ["libuti.so.1", "libuti.so"] {
            if let Ok(path) = CString::new(dir.join(file).into_os_string().into_vec()) {
                names.push(path);
            }
        }
    }
    for name in &names {
        // SAFETY: dlopen of a library by name; it stays loaded (no dlclose)
        // for as long as the thread may run its code.
        let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if h.is_null() {
            continue;
        }
        if let (Some(i), Some(c)) = (find(h, c"uti_attr_init"), find(h, c"uti_pthread_create")) {
            return Some(pair(i, c));
        }
    }
    None
}

/// The directory of the shared object that holds this code
/// (libmpishim.so, or a library embedding it).
fn own_dir() -> Option<std::path::PathBuf> {
    // SAFETY: Dl_info is plain data that dladdr fills.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr of an address of this library's code.
    if unsafe { libc::dladdr(own_dir as *const c_void, &mut info) } == 0 || info.dli_fname.is_null()
    {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(file.to_bytes()));
    path.parent().map(std::path::Path::to_path_buf)
}

extern "C" fn thread_main(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the Box<Poller> leaked by `progress_thread`, handed
    // to this thread only.
    let poller = unsafe { Box::from_raw(arg.cast::<Poller>()) };
    // A panic must not unwind into the C thread start.
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poller.run())).is_err() {
        say!("the progress thread panicked; it stops");
    }
    std::ptr::null_mut()
}

/// Starts the thread running `poller`; returns it (joinable) and how it
/// was created.
pub(crate) fn progress_thread(
    poller: Poller,
) -> Result<(libc::pthread_t, &'static str), std::io::Error> {
    let arg = Box::into_raw(Box::new(poller)).cast::<c_void>();
    // SAFETY: pthread_t is plain data, written by the create call.
    let mut thread: libc::pthread_t = unsafe { std::mem::zeroed() };
    let (rc, how) = match libuti() {
        Some((init, create)) => {
            let mut attr = UtiAttr {
                numa_set: [0; 16],
                flags: 0,
            };
            // SAFETY: `attr` is a writable uti_attr_t.
            unsafe { init(&mut attr) };
            attr.flags |= UTI_FLAG_PREFER_FWK | UTI_FLAG_CPU_INTENSIVE;
            // SAFETY: valid out-pointer, default pthread attributes, a C
            // start routine and its argument, initialised hints.
            (
                unsafe { create(&mut thread, std::ptr::null_mut(), thread_main, arg, &attr) },
                "UTI",
            )
        }
        None => {
            say!("libuti.so.1 not found: the progress thread is an ordinary thread (not placed by UTI)");
            // SAFETY: as above, with pthread_create.
            (
                unsafe { libc::pthread_create(&mut thread, std::ptr::null(), thread_main, arg) },
                "pthread_create",
            )
        }
    };
    if rc != 0 {
        // SAFETY: no thread was created, so the Box is still ours.
        drop(unsafe { Box::from_raw(arg.cast::<Poller>()) });
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok((thread, how))
}
