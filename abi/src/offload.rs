//! System-call offloading and the unified address space (ARCHITECTURE.md §5).
//!
//! Three parties share these structures through guest memory: the LWK
//! (`lwk/src/process/offload.rs`, `lwk/src/process/`), `mcexec` (the proxy
//! process, which maps every guest memory region through the memfds it gets
//! from `ihkd`), and `ihk-vm` (which claims and releases process slots for
//! `ihkd`'s `attach` request).
//!
//! ```text
//!  offload area (OFFLOAD_AREA_GPA, in the boot area, initialized by the LWK)
//!  ┌────────────────────┬──────────────┬──────────────┬─────
//!  │ OffloadAreaHeader   │ ProcessSlot 0│ ProcessSlot 1│ ...  MAX_PROCESSES
//!  └────────────────────┴──────────────┴──────────────┴─────
//!  per-process proxy area (allocated by the LWK when the process starts)
//!  ┌────────────────┬─────────────────────────┬──────────────────────────┐
//!  │ ProxyAreaHeader│ ThreadSlot × threads     │ MapEntry × map capacity   │
//!  └────────────────┴─────────────────────────┴──────────────────────────┘
//! ```
//!
//! Process slot life cycle ([`ProcState`]): the host claims a free slot for an
//! attaching `mcexec` (FREE→CLAIMED); `mcexec` fills [`StartParams`] and sets
//! START, then kicks the chosen LWK CPU; the LWK creates the process, publishes
//! the proxy area and sets RUNNING (or FAILED with `start_error`); when the
//! process ends the LWK records the status and sets EXITED and rings the
//! process doorbell. Physical memory of a process is freed only after the
//! host reports the proxy gone ([`EVENT_PROXY_GONE`], set when `ihkd` sees
//! the attach socket close): until then `mcexec` may still hold mirrors of it.
//!
//! Per-thread offload ([`ThreadSlot`]), one slot per LWK thread and one host
//! proxy thread per slot: IDLE→REQUEST (LWK) →BUSY (host) →DONE (host) →IDLE
//! (LWK). Each side spins briefly, then declares it sleeps
//! (`host_sleeping` / `lwk_waiting`) and re-checks; the other side rings the
//! doorbell only when the flag is set: LWK→host with a 32-bit `out` of
//! [`process_doorbell`]`(slot)` to [`crate::doorbell::IKC_DOORBELL_PORT`]
//! (an ioeventfd), host→LWK with the LWK CPU's irqfd (MSI, [`OFFLOAD_VECTOR`]).
//! Both sides put a full fence between publishing their word and reading the
//! other side's flag.
//!
//! Unified address space: the LWK backs user memory in blocks of the mirror
//! granule (the page size of the host memfds: 4 KiB or 2 MiB) with
//! `va ≡ pa (mod granule)`, and lists every backed range in the map table of
//! the proxy area, under a sequence counter (`map_seq`, odd while the LWK
//! writes). `mcexec` maps each range at the same virtual address with
//! `mmap(MAP_FIXED|MAP_SHARED, memfd)`, so the raw pointer arguments of an
//! offloaded call are valid in the proxy. A request carries the map sequence
//! it needs; the proxy re-syncs before executing it when its copy is older.

use core::mem::size_of;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};

/// "MCOFFLD\0".
pub const OFFLOAD_MAGIC: u64 = u64::from_le_bytes(*b"MCOFFLD\0");
/// "MCPROXY\0".
pub const PROXY_AREA_MAGIC: u64 = u64::from_le_bytes(*b"MCPROXY\0");
/// Bumped on any layout change in this module.
pub const OFFLOAD_VERSION: u32 = 2;

// ---------------------------------------------------------------------------
// The LWK user address space, as both the LWK and mcexec see it.
// ---------------------------------------------------------------------------

/// Lowest user address (Linux's default `vm.mmap_min_addr`).
pub const USER_START: u64 = 0x1_0000;
/// End (exclusive) of the LWK user range (32 TiB). `mcexec` is a
/// position-independent binary that Linux loads, with its libraries, thread
/// stacks and heap, above this: at 0x55.. and 0x7f.., or from 0x2aaa_aaaa_b000
/// upward in the legacy layout (`ulimit -s unlimited`), so the range below is
/// free to reserve in it.
pub const USER_END: u64 = 0x2000_0000_0000;
/// Top of the main thread's stack.
pub const STACK_TOP: u64 = USER_END;
/// Highest address the stack may ever grow down to is `STACK_TOP - STACK_GAP`;
/// top-down `mmap` allocation starts below it.
pub const STACK_GAP: u64 = 1 << 40;
/// Top of the area `mmap(NULL, ..)` allocates from (downward).
pub const MMAP_TOP: u64 = STACK_TOP - STACK_GAP;
/// Load base of position-independent executables (static-pie).
pub const PIE_BASE: u64 = 0x0800_0000_0000;
/// Load base of the ELF interpreter of dynamic executables.
pub const INTERP_BASE: u64 = 0x1000_0000_0000;

/// Default premapped stack when `mcexec -s` is not given.
pub const DEFAULT_STACK_PREMAP: u64 = 2 << 20;
/// Default stack limit when `mcexec -s` gives none and RLIMIT_STACK is unlimited.
pub const DEFAULT_STACK_MAX: u64 = 8 << 20;

// ---------------------------------------------------------------------------
// Doorbells and vectors.
// ---------------------------------------------------------------------------

/// Interrupt vector of the host-to-LWK offload doorbell (irqfd, one per LWK
/// CPU). Distinct from the IKC vectors in [`crate::doorbell`].
pub const OFFLOAD_VECTOR: u8 = 0xe0;
/// First datamatch value (on [`crate::doorbell::IKC_DOORBELL_PORT`]) of the
/// per-process doorbells; see [`process_doorbell`].
pub const PROCESS_DOORBELL_BASE: u32 = 0x1000;

/// Datamatch value the LWK writes to ring the doorbell of process slot `slot`.
pub const fn process_doorbell(slot: u32) -> u32 {
    PROCESS_DOORBELL_BASE + slot
}

// ---------------------------------------------------------------------------
// The offload area: header + process slots.
// ---------------------------------------------------------------------------

/// Number of process slots (concurrent `mcexec`s per OS instance).
pub const MAX_PROCESSES: usize = 64;

/// Bytes of the offload area.
pub const OFFLOAD_AREA_SIZE: u64 =
    (size_of::<OffloadAreaHeader>() + MAX_PROCESSES * size_of::<ProcessSlot>()) as u64;
/// Guest-physical address of the offload area: the unused gap of the boot
/// area between the master IKC rings and the kmsg buffer (see
/// [`crate::layout`]), which the LWK never hands to its allocator. The LWK's
/// BSP initializes it at boot (header, all slots FREE); the host claims slots
/// only once the OS is RUNNING and the header's magic is present.
pub const OFFLOAD_AREA_GPA: u64 = 0x5_0000;
/// Room reserved for the offload area at [`OFFLOAD_AREA_GPA`].
pub const OFFLOAD_AREA_MAX_SIZE: u64 = 0x3_0000;

/// Start of the offload area, written by the LWK at boot.
#[repr(C, align(64))]
pub struct OffloadAreaHeader {
    pub magic: u64,
    pub version: u32,
    pub nr_slots: u32,
    pub slot_size: u32,
    pub _pad: u32,
    /// The user register state the LWK saves and restores when it switches
    /// threads and delivers signals, as XCR0 bits (x87 1, SSE 2, AVX 4, ...);
    /// 0 until the BSP has set up its FPU (or from an older LWK image).
    /// Without AVX (bit 2) while the CPU runs user code with AVX (a KVM PVM
    /// host, where guest kernel code cannot execute XSAVE), `mcexec` tells
    /// glibc not to use AVX (docs/mcexec.md).
    pub user_fpu_components: u64,
    pub _reserved: [u64; 4],
}

/// State of a process slot; the value of [`ProcessSlot::state`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Unused.
    Free = 0,
    /// Claimed by the host for an attaching `mcexec` (`host_pid` set).
    Claimed = 1,
    /// `mcexec` wrote [`StartParams`]; the LWK CPU `start.cpu` takes it.
    Start = 2,
    /// The process runs; `proxy_area` is valid.
    Running = 3,
    /// The process ended (`exit_code`, `exit_signal`); memory is kept until
    /// the proxy is gone.
    Exited = 4,
    /// The LWK could not start it (`start_error`); nothing is kept.
    Failed = 5,
}

impl ProcState {
    pub const fn from_u32(v: u32) -> Option<ProcState> {
        Some(match v {
            0 => ProcState::Free,
            1 => ProcState::Claimed,
            2 => ProcState::Start,
            3 => ProcState::Running,
            4 => ProcState::Exited,
            5 => ProcState::Failed,
            _ => return None,
        })
    }
}

/// [`ProcessSlot::events`] bit: the proxy process is gone (the host saw its
/// attach connection close). The LWK ends the process if it still runs,
/// frees everything and sets the slot FREE.
pub const EVENT_PROXY_GONE: u32 = 1 << 0;
/// [`ProcessSlot::events`] bit: new bits in `pending_signals`.
pub const EVENT_SIGNAL: u32 = 1 << 1;

/// How the process was started, written by `mcexec` before START.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartParams {
    /// LWK CPU (index in the boot parameters' cores) to run the main thread on.
    pub cpu: u32,
    /// Thread slots to allocate (the most LWK threads the process may have).
    pub max_threads: u32,
    /// Host pid / parent pid of `mcexec`; the LWK process uses the same ids
    /// so that pids seen through offloaded calls agree with getpid().
    pub host_pid: u32,
    pub host_ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// Number of argv / envp strings in the argument blob.
    pub argc: u32,
    pub envc: u32,
    /// Size of the argument blob ([`OffloadCall::GetArgs`]):
    /// `execfn\0 argv[0]\0 .. argv[argc-1]\0 envp[0]\0 .. envp[envc-1]\0`.
    pub args_len: u64,
    /// Host file descriptors (in `mcexec`) of the executable and of its ELF
    /// interpreter (-1: none), read by the LWK through [`OffloadCall::PreadPhys`].
    pub exe_fd: i32,
    pub interp_fd: i32,
    pub exe_size: u64,
    pub interp_size: u64,
    /// `mcexec -h`: brk extends the heap in multiples of this (0: page).
    pub heap_extension: u64,
    /// `mcexec -s premap[,max]`.
    pub stack_premap: u64,
    pub stack_max: u64,
    /// Page size of the host memfds: the LWK backs user memory in aligned
    /// blocks of this size so `mcexec` can mirror them.
    pub mirror_granule: u64,
    /// Host CLOCK_MONOTONIC − CLOCK_REALTIME and CLOCK_BOOTTIME −
    /// CLOCK_REALTIME, in ns, measured by `mcexec` at start; the LWK derives
    /// those clocks from its TSC-based realtime clock.
    pub monotonic_offset_ns: i64,
    pub boottime_offset_ns: i64,
    /// AT_RANDOM bytes.
    pub random: [u8; 16],
    /// A fork child: the process slot of the parent ([`NO_FORK`] for a new
    /// program) and the parent's pid. The LWK copies the parent instead of
    /// loading the executable.
    pub fork_from_slot: u32,
    pub fork_from_pid: u32,
    /// The process's CPU set: LWK CPUs `cpu_set_first .. + cpu_set_count`
    /// (its share with `mcexec -n`, else the whole partition). Its threads
    /// run there; `cpu` is inside it. A count of 0 means `cpu` alone.
    pub cpu_set_first: u32,
    pub cpu_set_count: u32,
    /// `START_*` bits.
    pub flags: u64,
    /// What a new program inherits across execve, as on Linux (bit `n-1`
    /// for signal `n`): the signals mcexec's parent left ignored (`nohup`)
    /// and mcexec's signal mask at start. Unused for a fork child.
    pub sig_ignored: u64,
    pub sig_mask: u64,
}

/// [`StartParams::flags`]: `mcexec --enable-uti`: threads created after
/// `util_indicate_clone` run on Linux CPUs inside `mcexec` ([`OffloadCall::UtiRun`]).
pub const START_UTI: u64 = 1;

/// [`StartParams::fork_from_slot`] of a process that is not a fork child.
pub const NO_FORK: u32 = u32::MAX;

/// One process slot.
#[repr(C, align(64))]
pub struct ProcessSlot {
    /// [`ProcState`].
    pub state: AtomicU32,
    /// Host-to-LWK event bits (`EVENT_*`), set by the host, cleared by the LWK.
    pub events: AtomicU32,
    /// Host pid of the `mcexec` the slot was claimed for.
    pub host_pid: AtomicU32,
    /// LWK pid once RUNNING (equal to the host pid of `mcexec`).
    pub lwk_pid: AtomicU32,
    /// Signals forwarded by `mcexec` (bit `n-1` for signal `n`).
    pub pending_signals: AtomicU64,
    /// Guest-physical address and size of the process's [`ProxyAreaHeader`].
    pub proxy_area: AtomicU64,
    pub proxy_area_size: AtomicU64,
    /// FAILED: the negative errno why the process could not start.
    pub start_error: AtomicI64,
    /// EXITED: exit code (0..=255) or 0 when killed by `exit_signal`.
    pub exit_code: AtomicU32,
    /// EXITED: terminating signal, 0 for a normal exit.
    pub exit_signal: AtomicU32,
    pub _pad: [u64; 1],
    pub start: StartParams,
}

impl ProcessSlot {
    pub fn state(&self) -> Option<ProcState> {
        ProcState::from_u32(self.state.load(core::sync::atomic::Ordering::Acquire))
    }
}

/// Byte offset of process slot `i` from the start of the offload area.
pub const fn process_slot_offset(i: usize) -> usize {
    size_of::<OffloadAreaHeader>() + i * size_of::<ProcessSlot>()
}

// ---------------------------------------------------------------------------
// The per-process proxy area.
// ---------------------------------------------------------------------------

/// Header of a process's proxy area. Written by the LWK before RUNNING.
#[repr(C, align(128))]
pub struct ProxyAreaHeader {
    pub magic: u64,
    /// Total bytes of the area.
    pub size: u64,
    pub thread_capacity: u32,
    pub map_capacity: u32,
    /// Byte offsets from the header of the thread slots and map entries.
    pub threads_offset: u32,
    pub map_offset: u32,
    /// Sequence counter of the map table: odd while the LWK rewrites it.
    /// Also the "mapping generation" a request refers to.
    pub map_seq: AtomicU64,
    /// Entries in use, sorted by `va`, non-overlapping.
    pub map_count: AtomicU32,
    pub _pad: u32,
    /// Signals pending for the LWK process or one of its threads (bit n-1
    /// for signal n), published by the LWK while the process has
    /// signalfds; it rings the process doorbell when the set changes, and
    /// `mcexec` makes each signalfd's eventfd readable while a signal of
    /// its mask is pending ([`OffloadCall::SignalfdSet`]).
    pub sig_pending: AtomicU64,
    pub _reserved: [u64; 9],
}

/// One user range mirrored by `mcexec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapEntry {
    /// User virtual address, granule-aligned (page-aligned for a window).
    pub va: u64,
    /// Length in bytes, a multiple of the granule (of the page for a window).
    pub len: u64,
    /// Guest-physical address backing `va`, contiguous: in guest memory
    /// (granule-aligned), or in a share window ([`MAP_ENTRY_WINDOW`]).
    pub gpa: u64,
    /// `MAP_ENTRY_*` bits.
    pub flags: u64,
}

/// [`MapEntry::flags`]: the range maps a share window
/// ([`crate::layout::SHARE_WINDOW_GPA`]): `mcexec` mirrors it with its own
/// mapping of the same host file (from [`OffloadCall::ShareFile`] /
/// [`OffloadCall::ShareAnon`]), not with guest memory.
pub const MAP_ENTRY_WINDOW: u64 = 1;
/// [`MapEntry::flags`]: the window is mapped writable.
pub const MAP_ENTRY_WRITE: u64 = 2;
/// [`MapEntry::flags`]: guest memory shared by several processes that none
/// may write (a shared read-only file granule): mirrored read-only.
pub const MAP_ENTRY_READONLY: u64 = 4;

/// Layout of a proxy area holding `threads` thread slots and `maps` entries.
pub const fn proxy_area_layout(threads: u32, maps: u32) -> (u32, u32, u64) {
    let threads_offset = size_of::<ProxyAreaHeader>() as u32;
    let map_offset = threads_offset + threads * size_of::<ThreadSlot>() as u32;
    let size = map_offset as u64 + maps as u64 * size_of::<MapEntry>() as u64;
    (threads_offset, map_offset, size)
}

/// State of a thread slot; the value of [`ThreadSlot::state`].
pub const SLOT_IDLE: u32 = 0;
/// The LWK wrote a request.
pub const SLOT_REQUEST: u32 = 1;
/// A proxy thread executes it.
pub const SLOT_BUSY: u32 = 2;
/// The result is in `result`.
pub const SLOT_DONE: u32 = 3;

/// One LWK thread's offload slot, served by one host proxy thread.
#[repr(C, align(128))]
pub struct ThreadSlot {
    /// `SLOT_*`.
    pub state: AtomicU32,
    /// The proxy thread sleeps (futex on `state`): the LWK must ring the
    /// process doorbell after posting a request.
    pub host_sleeping: AtomicU32,
    /// The LWK CPU halts waiting: the host must send the irq after DONE.
    pub lwk_waiting: AtomicU32,
    /// Set by the LWK: interrupt the call in progress (a signal arrived).
    /// The host interrupts the proxy thread, which returns -EINTR.
    pub interrupt: AtomicU32,
    /// LWK tid of the thread using the slot (0: unused).
    pub tid: AtomicU32,
    /// LWK CPU the thread runs on (whose irqfd the host rings).
    pub cpu: AtomicU32,
    pub number: u64,
    pub args: [u64; 6],
    /// Return value (negative errno on error), written before DONE.
    pub result: i64,
    /// Map sequence the request needs the proxy to have applied.
    pub map_seq: u64,
    pub _reserved: [u64; 4],
}

// ---------------------------------------------------------------------------
// Offload calls that are not Linux system calls.
// ---------------------------------------------------------------------------

/// First number of the offload-protocol calls; far above every Linux number.
pub const OFFLOAD_CALL_BASE: u64 = 0x4d43_0000;

/// Calls the LWK sends through a thread slot that the proxy handles itself.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadCall {
    /// `(gpa, len)`: copy the argument blob (see [`StartParams::args_len`])
    /// to guest-physical `gpa`. Returns the bytes copied.
    GetArgs = OFFLOAD_CALL_BASE + 1,
    /// `(fd, gpa, len, offset)`: `pread` from host fd into guest-physical
    /// memory. Returns bytes read or -errno.
    PreadPhys = OFFLOAD_CALL_BASE + 2,
    /// `(slot, tid)`: start a proxy thread for thread slot `slot` (a new
    /// LWK thread). Returns 0 or -errno.
    ThreadStart = OFFLOAD_CALL_BASE + 3,
    /// The LWK thread of this slot is gone: the proxy thread acknowledges
    /// and ends.
    ThreadExit = OFFLOAD_CALL_BASE + 4,
    /// `(gpa, len)`: fill guest-physical memory with zeroes (new user
    /// memory; the host does it at memory speed). Returns 0 or -errno.
    ZeroPhys = OFFLOAD_CALL_BASE + 5,
    /// `(parent slot)`: fork the proxy. The host child attaches as a new
    /// mcexec whose start parameters name the parent slot; the call returns
    /// the child's pid once it has asked the LWK to start, or -errno.
    Fork = OFFLOAD_CALL_BASE + 6,
    /// `(dst_gpa, src_gpa, len)`: copy guest-physical memory (a fork
    /// child's copy of its parent's memory). Returns 0 or -errno.
    CopyPhys = OFFLOAD_CALL_BASE + 7,
    /// `(gpa, len, dirfd, flags)`: open the file whose path (`len` bytes,
    /// no NUL) is at guest-physical `gpa`, read-only, close-on-exec,
    /// relative to `dirfd` (AT_FDCWD: the proxy's working directory), for
    /// execution (execve, execveat with its `flags`: AT_EMPTY_PATH,
    /// AT_SYMLINK_NOFOLLOW): the file must be a regular file the caller
    /// may execute. Returns the fd or -errno.
    OpenExec = OFFLOAD_CALL_BASE + 8,
    /// Close the descriptors marked close-on-exec (execve). Returns 0.
    CloseOnExec = OFFLOAD_CALL_BASE + 9,
    /// `(gpa, len, flags, mode)`: `openat(AT_FDCWD, path, flags, mode)` of
    /// the path (`len` bytes, no NUL) at guest-physical `gpa` (the LWK's
    /// view redirects a path, e.g. `/sys/devices/system/cpu/cpu0/..` to the
    /// Linux CPU behind LWK CPU 0). Returns the fd or -errno.
    OpenPhys = OFFLOAD_CALL_BASE + 10,
    /// `(gpa, len, flags)`: a new memfd holding the `len` bytes at `gpa`,
    /// offset 0, close-on-exec when `flags` has O_CLOEXEC (a synthesized
    /// file of the LWK's /proc or /sys). Returns the fd or -errno.
    MemfdPhys = OFFLOAD_CALL_BASE + 11,
    /// `(gpa, n, flags)`: a memfd (as [`OffloadCall::MemfdPhys`]) holding
    /// the LWK's /proc/cpuinfo: Linux's entries of the `n` Linux CPUs whose
    /// ids (u32) are at `gpa`, in that order, numbered from 0.
    HostCpuinfo = OFFLOAD_CALL_BASE + 12,
    /// `(fd, gpa, cap)`: describe host fd `fd` at `gpa`: a [`FdInfo`]
    /// followed by the file's path (`path_len` bytes, cut to fit `cap`).
    /// Returns 0 or -errno.
    FdInfo = OFFLOAD_CALL_BASE + 13,
    /// `(fd, offset, len, gpa, flags)`: host file `fd` at `offset` (page
    /// aligned), `len` bytes, is (`SHARE_CREATE` in `flags`: must become)
    /// the share window at guest-physical `gpa`. The proxy keeps a
    /// duplicate of `fd` to mirror the window, and with `SHARE_CREATE` asks
    /// ihkd to map the file there (a KVM memslot); `SHARE_WRITE` maps it
    /// writable. Returns 0 or -errno (EACCES: the descriptor does not allow
    /// it; EBUSY: the range is taken).
    ShareFile = OFFLOAD_CALL_BASE + 14,
    /// `(len, gpa)`: new shared anonymous memory (`MAP_SHARED|
    /// MAP_ANONYMOUS`, shared with fork children): the proxy creates a
    /// memfd of `len` bytes and makes it the writable share window at `gpa`
    /// as [`OffloadCall::ShareFile`] with `SHARE_CREATE`. Returns 0 or -errno.
    ShareAnon = OFFLOAD_CALL_BASE + 15,
    /// `(shmid, shmflg)`: SysV `shmat` of segment `shmid` for the LWK
    /// process, first step: the proxy attaches it on the host with the
    /// program's rights (`SHM_RDONLY` in `shmflg`) and keeps that mapping
    /// for the mirror. Returns the segment size in bytes or -errno.
    SysvAttach = OFFLOAD_CALL_BASE + 16,
    /// `(shmid, len, gpa, flags)`: second step: segment `shmid` (attached
    /// by [`OffloadCall::SysvAttach`]) is (`SHARE_CREATE`: must become) the
    /// share window at `gpa`, as [`OffloadCall::ShareFile`]. Returns 0 or
    /// -errno.
    ShareSysv = OFFLOAD_CALL_BASE + 17,
    /// `(kind, value)`: the LWK thread of this slot is a utility thread that
    /// runs on Linux in its proxy thread (`mcexec --enable-uti`,
    /// docs/uti.md). [`UTI_START`] with `value` the guest-physical address
    /// of a [`UtiRegs`]: the proxy thread starts running the program there;
    /// [`UTI_RESUME`] with `value` the result of the call it forwarded: it
    /// continues the program with that result. The call returns when the
    /// program makes a call the LWK must run: `result` is its number (or
    /// [`UTI_CHECK`]) and `args` its arguments; the LWK runs it and sends
    /// `UtiRun(UTI_RESUME, result, signal)` ([`UtiSignal`]). Offload
    /// requests made meanwhile (the call's own, e.g. `ZeroPhys`) are served
    /// by the same proxy thread.
    UtiRun = OFFLOAD_CALL_BASE + 18,
    /// `(fd, mask, flags, pending)`: signalfd of the LWK process. `fd` -1:
    /// the proxy creates an eventfd (`flags`: SFD_CLOEXEC, SFD_NONBLOCK)
    /// that stands for a signalfd watching `mask`, and returns its number;
    /// else `fd` is such an eventfd and gets the new `mask` (EINVAL if it
    /// is not one). Its eventfd is readable while `pending` (then
    /// [`ProxyAreaHeader::sig_pending`]) has a signal of `mask`; `read` of
    /// it is the LWK's.
    SignalfdSet = OFFLOAD_CALL_BASE + 19,
    /// `(pending)`: bring every signalfd's readiness up to date with
    /// `pending` now (after the LWK dequeued signals), before the call
    /// returns to the program. Returns 0.
    SignalfdSync = OFFLOAD_CALL_BASE + 20,
    /// `(fd, size)`: keep a read-only mapping of the first `size` bytes of
    /// host fd `fd`'s file in the proxy (no descriptor: the program's may
    /// be closed, and mcexec's few reserved descriptor numbers are for
    /// share windows), from which the pages of private file mappings are
    /// read on first touch ([`OffloadCall::ReadKept`]). Returns a handle
    /// (>= 0) or -errno.
    KeepFile = OFFLOAD_CALL_BASE + 21,
    /// `(handle)`: unmap a file kept by [`OffloadCall::KeepFile`]. Returns
    /// 0 or -errno (EBADF: no such handle).
    DropFile = OFFLOAD_CALL_BASE + 22,
    /// `(handle, gpa, len, offset)`: copy up to `len` bytes of a kept file
    /// from `offset` into guest-physical memory: bytes copied (0 past the
    /// kept size) or -errno (EFAULT: the file shrank under the range).
    ReadKept = OFFLOAD_CALL_BASE + 23,
}

/// [`OffloadCall::UtiRun`] kinds.
pub const UTI_START: u64 = 0;
pub const UTI_RESUME: u64 = 1;
/// [`OffloadCall::UtiRun`] answer: no call, only let the LWK thread look at
/// its signals and whether it must end (the proxy was interrupted).
pub const UTI_CHECK: i64 = -1;
/// [`OffloadCall::UtiRun`] answer: not a system call but a page fault of
/// the program on Linux at `args[0]` (`args[1]` != 0: a write) on memory
/// that is not mirrored (not backed yet): the LWK resolves it as its own
/// fault (0) or ends the process with SIGSEGV.
pub const UTI_FAULT: u64 = OFFLOAD_CALL_BASE + 0x100;

/// [`OffloadCall::UtiRun`] with [`UTI_RESUME`]: `args[2]`, when not 0, is
/// the guest-physical address of a [`UtiSignal`] (on the LWK thread's
/// stack, valid until the proxy answers): before continuing the program,
/// the proxy restarts its interrupted call and/or runs a signal handler.
pub const UTI_NO_RESTART: u64 = u64::MAX;

/// A signal the LWK took for a utility thread (its mask, SA_RESETHAND and
/// default actions already applied): the proxy builds Linux's
/// `rt_sigframe` below `sp` and continues the program in `handler`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtiSignal {
    /// 0: no handler, only `restart`.
    pub sig: u64,
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    /// The mask `rt_sigreturn` restores (the frame's `uc_sigmask`).
    pub mask: u64,
    /// Top of the frame's room (the alternate stack's top, or the stack
    /// pointer below the red zone); the LWK backed the pages below it.
    pub sp: u64,
    /// The frame's `uc_stack`: the thread's `sigaltstack`.
    pub alt_sp: u64,
    pub alt_flags: u64,
    pub alt_size: u64,
    /// Call number to restart first (rip back over `syscall`, rax = it),
    /// or [`UTI_NO_RESTART`].
    pub restart: u64,
    /// The `siginfo_t`.
    pub info: [u8; 128],
}

impl Default for UtiSignal {
    fn default() -> UtiSignal {
        UtiSignal {
            sig: 0,
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
            sp: 0,
            alt_sp: 0,
            alt_flags: 0,
            alt_size: 0,
            restart: UTI_NO_RESTART,
            info: [0; 128],
        }
    }
}

/// User registers of a utility thread's first entry on Linux: the frame
/// its clone returns with in the child (rax 0, its own stack) and its FS
/// base (TLS).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UtiRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub rip: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub fs_base: u64,
}

/// [`OffloadCall::ShareFile`] flag: create the window (else it exists).
pub const SHARE_CREATE: u64 = 1;
/// [`OffloadCall::ShareFile`] flag: writable mapping.
pub const SHARE_WRITE: u64 = 2;

/// What [`OffloadCall::FdInfo`] writes (then the path).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdInfo {
    /// `st_dev`, `st_ino`, `st_size`, `st_mode` of the file.
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mode: u32,
    /// `fcntl(F_GETFL)` of the descriptor.
    pub status_flags: u32,
    pub path_len: u32,
    pub _pad: u32,
    /// Modification time of the file, in ns since the epoch.
    pub mtime_ns: u64,
}

impl OffloadCall {
    pub const fn from_u64(v: u64) -> Option<OffloadCall> {
        Some(match v {
            x if x == OffloadCall::GetArgs as u64 => OffloadCall::GetArgs,
            x if x == OffloadCall::PreadPhys as u64 => OffloadCall::PreadPhys,
            x if x == OffloadCall::ThreadStart as u64 => OffloadCall::ThreadStart,
            x if x == OffloadCall::ThreadExit as u64 => OffloadCall::ThreadExit,
            x if x == OffloadCall::ZeroPhys as u64 => OffloadCall::ZeroPhys,
            x if x == OffloadCall::Fork as u64 => OffloadCall::Fork,
            x if x == OffloadCall::CopyPhys as u64 => OffloadCall::CopyPhys,
            x if x == OffloadCall::OpenExec as u64 => OffloadCall::OpenExec,
            x if x == OffloadCall::CloseOnExec as u64 => OffloadCall::CloseOnExec,
            x if x == OffloadCall::OpenPhys as u64 => OffloadCall::OpenPhys,
            x if x == OffloadCall::MemfdPhys as u64 => OffloadCall::MemfdPhys,
            x if x == OffloadCall::HostCpuinfo as u64 => OffloadCall::HostCpuinfo,
            x if x == OffloadCall::FdInfo as u64 => OffloadCall::FdInfo,
            x if x == OffloadCall::ShareFile as u64 => OffloadCall::ShareFile,
            x if x == OffloadCall::ShareAnon as u64 => OffloadCall::ShareAnon,
            x if x == OffloadCall::SysvAttach as u64 => OffloadCall::SysvAttach,
            x if x == OffloadCall::ShareSysv as u64 => OffloadCall::ShareSysv,
            x if x == OffloadCall::UtiRun as u64 => OffloadCall::UtiRun,
            x if x == OffloadCall::SignalfdSet as u64 => OffloadCall::SignalfdSet,
            x if x == OffloadCall::SignalfdSync as u64 => OffloadCall::SignalfdSync,
            x if x == OffloadCall::KeepFile as u64 => OffloadCall::KeepFile,
            x if x == OffloadCall::DropFile as u64 => OffloadCall::DropFile,
            x if x == OffloadCall::ReadKept as u64 => OffloadCall::ReadKept,
            _ => return None,
        })
    }
}

/// Signals `mcexec` forwards to the LWK process: every signal a program
/// can catch, so that `kill -USR1 <mcexec pid>`, a batch system's SIGTERM,
/// and the SIGALRM of an offloaded `alarm`/`setitimer`/`timer_create`
/// reach the program as they would reach a Linux process. Not forwarded:
/// SIGKILL and SIGSTOP (cannot be caught; SIGKILL ends mcexec, and so the
/// program), the job-control signals SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT
/// (they stop or continue mcexec itself), the synchronous fault signals
/// SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGSYS (a fault of mcexec's
/// own must still end it), SIGURG (mcexec interrupts its proxy threads
/// with it), and glibc's internal 32 and 33. SIGCHLD tells the LWK process
/// that a child changed state: the host children of an mcexec are the
/// proxies of its LWK process's fork children, and end as those children do.
pub const FORWARDED_SIGNALS: [u32; 49] = {
    let mut out = [0u32; 49];
    let mut n = 0;
    let mut s = 1;
    while s <= 64 {
        if is_forwarded(s) {
            out[n] = s;
            n += 1;
        }
        s += 1;
    }
    assert!(n == 49);
    out
};

/// Is signal `s` one of [`FORWARDED_SIGNALS`]?
pub const fn is_forwarded(s: u32) -> bool {
    !matches!(s, 0 | 4 | 5 | 7 | 8 | 9 | 11 | 18 | 19 | 20 | 21 | 22 | 23 | 31 | 32 | 33) && s <= 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<OffloadAreaHeader>(), 64);
        assert_eq!(size_of::<StartParams>(), 176);
        assert_eq!(offset_of!(StartParams, args_len), 40);
        assert_eq!(offset_of!(StartParams, exe_fd), 48);
        assert_eq!(offset_of!(StartParams, mirror_granule), 96);
        assert_eq!(offset_of!(StartParams, random), 120);
        assert_eq!(offset_of!(StartParams, fork_from_slot), 136);
        assert_eq!(offset_of!(StartParams, cpu_set_first), 144);
        assert_eq!(offset_of!(ProcessSlot, state), 0);
        assert_eq!(offset_of!(ProcessSlot, events), 4);
        assert_eq!(offset_of!(ProcessSlot, pending_signals), 16);
        assert_eq!(offset_of!(ProcessSlot, proxy_area), 24);
        assert_eq!(offset_of!(ProcessSlot, start_error), 40);
        assert_eq!(offset_of!(ProcessSlot, exit_code), 48);
        assert_eq!(offset_of!(ProcessSlot, start), 64);
        assert_eq!(size_of::<ProcessSlot>(), 256);
        assert_eq!(size_of::<ProxyAreaHeader>(), 128);
        assert_eq!(offset_of!(ProxyAreaHeader, map_seq), 32);
        assert_eq!(offset_of!(ProxyAreaHeader, map_count), 40);
        assert_eq!(size_of::<MapEntry>(), 32);
        assert_eq!(size_of::<ThreadSlot>(), 128);
        assert_eq!(align_of::<ThreadSlot>(), 128);
        assert_eq!(offset_of!(ThreadSlot, number), 24);
        assert_eq!(offset_of!(ThreadSlot, args), 32);
        assert_eq!(offset_of!(ThreadSlot, result), 80);
        assert_eq!(offset_of!(ThreadSlot, map_seq), 88);
        assert_eq!(OFFLOAD_AREA_SIZE, 64 + 64 * 256);
        assert_eq!(process_slot_offset(1), 64 + 256);
    }

    #[test]
    fn offload_area_fits_the_boot_area_gap() {
        use crate::layout::*;
        assert!(OFFLOAD_AREA_SIZE <= OFFLOAD_AREA_MAX_SIZE);
        assert!(IKC_MASTER_TO_LWK_GPA + IKC_MASTER_RING_SIZE <= OFFLOAD_AREA_GPA);
        assert!(OFFLOAD_AREA_GPA + OFFLOAD_AREA_MAX_SIZE <= KMSG_GPA);
        assert_eq!(OFFLOAD_AREA_GPA % PAGE_SIZE, 0);
    }

    #[test]
    fn address_space_is_ordered() {
        assert!(USER_START < PIE_BASE && PIE_BASE < INTERP_BASE && INTERP_BASE < MMAP_TOP);
        assert!(MMAP_TOP < STACK_TOP && STACK_TOP == USER_END);
        // Every base is 1 GiB aligned so any mirror granule divides it.
        for a in [PIE_BASE, INTERP_BASE, MMAP_TOP, STACK_TOP] {
            assert_eq!(a % (1 << 30), 0);
        }
    }

    #[test]
    fn proxy_area_layout_is_aligned() {
        let (t, m, size) = proxy_area_layout(16, 1024);
        assert_eq!(t, 128);
        assert_eq!(t as usize % align_of::<ThreadSlot>(), 0);
        assert_eq!(m as usize % align_of::<MapEntry>(), 0);
        assert_eq!(m, 128 + 16 * 128);
        assert_eq!(size, (128 + 16 * 128 + 1024 * 32) as u64);
    }

    #[test]
    fn calls_round_trip() {
        for c in [
            OffloadCall::GetArgs,
            OffloadCall::PreadPhys,
            OffloadCall::ThreadStart,
            OffloadCall::ThreadExit,
            OffloadCall::ZeroPhys,
            OffloadCall::Fork,
            OffloadCall::CopyPhys,
            OffloadCall::OpenExec,
            OffloadCall::CloseOnExec,
            OffloadCall::OpenPhys,
            OffloadCall::MemfdPhys,
            OffloadCall::HostCpuinfo,
            OffloadCall::FdInfo,
            OffloadCall::ShareFile,
            OffloadCall::ShareAnon,
            OffloadCall::SysvAttach,
            OffloadCall::ShareSysv,
            OffloadCall::KeepFile,
            OffloadCall::DropFile,
            OffloadCall::ReadKept,
        ] {
            assert_eq!(OffloadCall::from_u64(c as u64), Some(c));
        }
        assert_eq!(OffloadCall::from_u64(0), None);
        assert_eq!(process_doorbell(3), 0x1003);
    }

    #[test]
    fn forwarded_signals_are_the_catchable_ones() {
        for s in [1, 2, 3, 10, 12, 13, 14, 15, 17, 28, 29, 34, 64] {
            assert!(FORWARDED_SIGNALS.contains(&s), "{s}");
        }
        for s in [9, 19, 11, 23, 32, 33] {
            assert!(!FORWARDED_SIGNALS.contains(&s), "{s}");
        }
    }
}
