//! The lightweight kernel (LWK) of the Rust IHK/McKernel.
//!
//! Owns everything that runs inside the partition's VM: CPU setup (`arch/`),
//! the kernel message log (`kmsg`), boot parameters (`boot_params`), CPU
//! bring-up (`smp`), the monitor page (`monitor`), the timer (`timer`:
//! deadlines only, no periodic tick), the master IKC channel (`ikc/`),
//! memory (`mm/`), panics (`panic`), and the `pvm_probe` timings (`probe`); user programs in `process/`, `elf/`, `syscall/`, `lwkfs/`.
//! The layers and their one-way imports are drawn in `lwk/README.md`; this
//! file, on top of them all, registers the handlers through which `arch/`
//! calls up ([`HOOKS`]).
//!
//! Must not: touch guest memory outside the chunks in the boot parameters, or
//! write the host-owned parts of shared pages (kmsg `clear_pos`, ring headers'
//! consumer fields of rings it produces into).
//!
//! Boot (all CPUs are entered by the host at `_start` in long mode with
//! `rdi` = boot parameters, `rsi` = kernel text physical address, `rdx` =
//! LWK CPU id, `rsp` = its boot stack): the BSP (CPU 0) sets up the shared
//! IDT, the kmsg log, memory and the timer, then releases the APs, waits for
//! them, logs "booted", and sends BOOTED on the master channel. Every CPU then
//! sits in the idle loop, halted between interrupts.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod errno;
mod boot_params;
mod ikc;
mod kargs;
mod kmsg;
mod mm;
mod monitor;
mod panic;
mod probe;
mod smp;
mod timer;
// User programs (mcexec): processes, ELF loading, system calls.
mod elf;
mod lwkfs;
mod process;
mod syscall;

use arch::x86_64 as cpu;
use ihk_abi::CpuState;

/// What interrupts, exceptions and system calls run (`arch::x86_64::hooks`).
static HOOKS: cpu::hooks::Hooks = cpu::hooks::Hooks {
    entered_from_user,
    user_exception: process::trap::user_exception,
    return_to_user: process::trap::return_to_user,
    syscall: syscall::dispatch,
    nmi: panic::nmi,
    timer: timer_interrupt,
    stop: smp::stop_this_cpu,
    freeze: ikc::freeze::enter,
    ikc_master: ikc::master::poll_from_interrupt,
    offload_doorbell: process::trap::doorbell,
    resched: process::sched::note_resched,
};

/// The local timer: the scheduler's deadline, the POSIX timers, the
/// CPU-time timers and the test deadlines.
fn timer_interrupt(_from_user: bool) {
    let due = timer::tick();
    if due.timers {
        process::ptimer::note_due();
    }
    if due.sched || due.timers || due.cputime {
        process::sched::note_resched();
    }
}

/// An interrupt, exception or system call from user mode: the CPU is in
/// the kernel (heartbeat, user time), and the memory figures of the rusage
/// page are refreshed when due.
fn entered_from_user() {
    monitor::set_cpu_state(CpuState::RunningKernel);
    process::cputime::entered_kernel();
    ikc::rusage::refresh_if_due();
}

/// The noise-trace blocks (`arch::x86_64::trace`), one per CPU, published
/// in the monitor page for the host.
fn init_trace(nr_cpus: u64) {
    let bytes = nr_cpus * ihk_abi::trace::TRACE_CPU_BYTES;
    match mm::phys::alloc_zeroed(bytes, ihk_abi::layout::PAGE_SIZE) {
        Some(pa) => {
            cpu::trace::init(cpu::direct_map::to_virt(pa) as u64, pa, nr_cpus);
            monitor::set_trace_phys(pa);
        }
        None => printk!("trace: no memory for {} bytes; kernel entries are not traced", bytes),
    }
}

/// This CPU's trace block and KVM steal time.
fn start_trace_this_cpu() {
    if !cpu::trace::start_this_cpu() && smp::cpu_id() == 0 {
        printk!("steal time: not offered by the hypervisor");
    } else if smp::cpu_id() == 0 {
        printk!("steal time: KVM steal-time accounting on (MSR_KVM_STEAL_TIME)");
    }
}

core::arch::global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {main}",
    "2:  cli",
    "    hlt",
    "    jmp 2b",
    main = sym kmain,
);

/// Rust entry of every CPU.
extern "sysv64" fn kmain(boot_params: u64, _kernel_phys: u64, cpu_id: u64) -> ! {
    if cpu_id == 0 {
        bsp_main(boot_params)
    } else {
        ap_main(cpu_id as u32)
    }
}

fn bsp_main(bp_phys: u64) -> ! {
    cpu::hooks::register(&HOOKS);
    // First: the kernel's direct map of guest memory (mm/phys.rs).
    mm::phys::init_direct_map();
    let bp = boot_params::init(bp_phys);
    smp::init_this_cpu(0);
    cpu::idt::init_shared();
    smp::publish_shared_idt();
    cpu::idt::load();
    kmsg::init(bp);
    monitor::init(bp);
    monitor::set_cpu_state(CpuState::RunningKernel);
    kmsg::raw_line("IHK/McKernel started.");

    let args = kargs::parse(boot_params::kargs());
    printk!("KCommand Line: {}", boot_params::kargs());
    if !args.hidos {
        panic!(
            "kernel argument \"hidos\" missing from \"{}\"",
            boot_params::kargs()
        );
    }
    cpu::tsc::init(bp.tsc_khz, bp.boot_tsc, bp.boot_realtime_ns);
    printk!("TSC frequency: {} kHz", bp.tsc_khz);

    mm::init(bp);
    mm::log_layout(bp);
    // Share windows: direct-mapped now, before any process copies the
    // kernel half; unused windows go back to the host on the master channel.
    mm::window::init();
    mm::window::register_release(ikc::master::send_window_release);
    process::init();
    process::init_this_cpu();
    init_trace(bp.cores().len() as u64);
    start_trace_this_cpu();

    printk!("# of cpus : {}", bp.cores().len());
    for c in bp.cores() {
        printk!(
            "CPU {}: Linux CPU {}, APIC ID {}, NUMA {}, IKC to Linux CPU {}",
            c.lwk_id,
            c.linux_cpu,
            c.apic_id,
            c.numa_id,
            c.ikc_dest_linux_cpu
        );
    }

    cpu::x2apic::enable();
    timer::init(&args);
    if args.test_panic_ms == Some(0) {
        panic!("ihk_test_panic=0: panic requested during boot");
    }

    let core = &bp.cores()[0];
    printk!(
        "BSP: {} (HW ID: {} @ NUMA {})",
        core.lwk_id,
        core.apic_id,
        core.numa_id
    );
    let aps = smp::release_aps(bp);
    printk!("BSP: booted {} AP CPUs", aps);

    ikc::master::init(bp);
    let now = cpu::tsc::realtime_ns(cpu::tsc::now());
    printk!(
        "Clock: realtime {}.{:09} s",
        now / 1_000_000_000,
        now % 1_000_000_000
    );
    monitor::set_os_status(ihk_abi::OsStatus::Running);
    kmsg::raw_line("IHK/McKernel booted.");
    ikc::master::send_booted(aps + 1);
    timer::boot_completed(&args);
    timer::start_this_cpu();
    if args.pvm_avx_probe {
        probe::avx_probe();
    }
    if args.pvm_probe {
        probe::run_all();
    }
    if let Some(nr) = args.pvm_profile {
        cpu::stepcount::enable(nr, args.pvm_profile_skip);
    }
    idle_loop()
}

fn ap_main(id: u32) -> ! {
    smp::wait_shared_idt();
    smp::init_this_cpu(id);
    cpu::idt::load();
    process::init_this_cpu();
    start_trace_this_cpu();
    monitor::set_cpu_state(CpuState::RunningKernel);
    cpu::x2apic::enable();
    smp::wait_go();
    let bp = boot_params::get();
    let c = &bp.cores()[id as usize];
    printk!(
        "AP: {} (HW ID: {} @ NUMA {}) online",
        c.lwk_id,
        c.apic_id,
        c.numa_id
    );
    smp::mark_online();
    timer::start_this_cpu();
    idle_loop()
}

/// Halt until an interrupt; the BSP also serves the master channel.
fn idle_loop() -> ! {
    let bsp = smp::cpu_id() == 0;
    loop {
        cpu::interrupts_off();
        // Run LWK threads (process/sched.rs); halt only when none can run.
        let busy = process::sched::poll();
        if bsp {
            ikc::master::poll();
            if busy || !ikc::master::prepare_sleep() {
                monitor::beat();
                continue;
            }
        } else if busy {
            monitor::beat();
            continue;
        }
        ikc::rusage::refresh();
        probe::log_profile();
        monitor::set_cpu_state(CpuState::Idle);
        // `sti; hlt` is atomic with respect to interrupts: one that became
        // pending after the checks above still wakes the hlt.
        cpu::enable_interrupts_and_halt();
        cpu::interrupts_off();
        monitor::set_cpu_state(CpuState::RunningKernel);
        if bsp {
            ikc::master::awake();
        }
    }
}
