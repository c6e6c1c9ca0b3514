//! The SPANK hooks, in the order Slurm calls them:
//!
//! - `slurm_spank_init` (every context): read the plugstack.conf argument,
//!   register the options (srun, sbatch/salloc, slurmstepd).
//! - option callback: in srun/sbatch a bad value fails the command at once.
//! - `slurm_spank_init_post_opt`: in srun/sbatch, cross-option checks and
//!   the site file; in slurmstepd (still root), plan the partition from the
//!   step's allocation and boot it or reuse the job's (node lock). A failure
//!   is logged and kept for `task_init`: errors there reach the user's
//!   terminal and make every task exit 1 before it runs, so srun exits
//!   non-zero (a failed launch would make srun 22.05 exit 0). In a batch step
//!   the options are exported so the script's sruns inherit them, and with
//!   `release = "job"` the batch node's partition boots there too, for what
//!   the script runs itself (`mcexec ./a.out`, `mpirun mcexec ./a.out`,
//!   whose local ranks mpirun starts without srun). With `release = "step"`
//!   the batch step boots nothing: it would hold the partition for the
//!   whole job, which that policy exists to prevent.
//! - `slurm_spank_task_init` (the task, as the user, just before Slurm's
//!   execve): report a pending failure, or become `mcexec -n <tasks on
//!   node> <argv>` with `IHK_RUNTIME_DIR` set to the site's (see README.md
//!   for what Slurm's own exec path does after this hook). The batch
//!   script, a task that is mcexec already and an MPI launcher's node
//!   daemon (`launch::runs_as_is`) get `IHK_RUNTIME_DIR` and run as they are.
//! - `slurm_spank_exit` (slurmstepd, root again): the step no longer uses
//!   the partition (`release = "step"` may shut it down).
//! - `slurm_spank_job_epilog` (`slurmstepd spank epilog`, root): the cleanup.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;

use mckernel_slurm::config::{config_path_from_args, Release, SiteConfig};
use mckernel_slurm::drain;
use mckernel_slurm::launch;
use mckernel_slurm::lifecycle::{self, Acquired};
use mckernel_slurm::options::{JobOptions, OptionId, OPTIONS};
use mckernel_slurm::plan::{self, StepInfo};
use mckernel_slurm::topology::Topology;

use crate::ffi;
use crate::spank::{self, log, Context, Spank};

const OK: c_int = 0;
const FAIL: c_int = -1;

/// The job step this process serves (one slurmstepd, srun or sbatch).
struct Plugin {
    config_path: Option<PathBuf>,
    arg_error: Option<String>,
    options: JobOptions,
    /// The values as typed, to pass on to a batch script's sruns.
    raw: Vec<(OptionId, String)>,
    option_errors: Vec<String>,
    /// A failure of init_post_opt, reported by user_init.
    pending_error: Option<String>,
    active: Option<Active>,
}

/// A step whose tasks run on the LWK.
#[derive(Clone)]
struct Active {
    config: SiteConfig,
    job_id: u32,
    step_id: u32,
    local_tasks: u32,
    lwk_cpus: usize,
}

static PLUGIN: Mutex<Plugin> = Mutex::new(Plugin {
    config_path: None,
    arg_error: None,
    options: JobOptions {
        mem: None,
        cpus: None,
        ikc_map: None,
        kargs: None,
    },
    raw: Vec::new(),
    option_errors: Vec::new(),
    pending_error: None,
    active: None,
});

fn plugin() -> std::sync::MutexGuard<'static, Plugin> {
    PLUGIN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a hook body; a panic becomes an error, never an unwind into C.
fn guarded(hook: &str, body: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(rc) => rc,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            log::error(&format!("internal error in {hook}: {what}"));
            FAIL
        }
    }
}

impl Plugin {
    /// The site file as it applies to this node (`%n`, see
    /// `SiteConfig::for_node`), for the processes that run on a node.
    fn node_config(&self) -> Result<SiteConfig, String> {
        self.load_config()?.for_node(node_name().as_deref())
    }

    fn load_config(&self) -> Result<SiteConfig, String> {
        if let Some(e) = &self.arg_error {
            return Err(format!("plugstack.conf: {e}"));
        }
        let path = self
            .config_path
            .clone()
            .unwrap_or_else(|| PathBuf::from(mckernel_slurm::config::DEFAULT_CONFIG_PATH));
        SiteConfig::load(&path).map_err(|e| e.to_string())
    }
}

/// This node's Slurm name, from this process's own environment: slurmd
/// sets SLURMD_NODENAME for the epilogue (`slurmstepd spank epilog`), and
/// slurmstepd inherits slurmd's environment, where a host running several
/// slurmd sets it for each (scripts/cluster.sh). Never from the job's
/// environment: an srun inside a batch script passes on the batch node's.
fn node_name() -> Option<String> {
    std::env::var("SLURMD_NODENAME").ok()
}

/// The plugstack.conf arguments, which Slurm passes to every hook.
///
/// # Safety
/// `av` must hold `ac` valid NUL-terminated strings (or NULLs).
unsafe fn plugstack_args(ac: c_int, av: *mut *mut c_char) -> Vec<String> {
    if av.is_null() {
        return Vec::new();
    }
    (0..ac.max(0) as usize)
        .filter_map(|i| {
            // SAFETY: per this function's contract.
            let p = unsafe { *av.add(i) };
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        })
        .collect()
}

fn set_args(args: &[String]) {
    let mut st = plugin();
    match config_path_from_args(args.iter().map(String::as_str)) {
        Ok(p) => {
            st.config_path = Some(p);
            st.arg_error = None;
        }
        Err(e) => st.arg_error = Some(e),
    }
}

/// # Safety
/// Called by Slurm with its handle and the plugstack.conf arguments.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_init(
    sp: ffi::spank_t,
    ac: c_int,
    av: *mut *mut c_char,
) -> c_int {
    // SAFETY: Slurm's arguments for this call.
    let args = unsafe { plugstack_args(ac, av) };
    // SAFETY: `sp` is the handle of this call.
    let sp = unsafe { Spank::from_raw(sp) };
    guarded("init", || init(sp, &args))
}

fn init(sp: Spank, args: &[String]) -> c_int {
    let ctx = spank::context();
    set_args(args);
    match ctx {
        Context::Local | Context::Remote | Context::Allocator => {
            for spec in &OPTIONS {
                let opt = Box::leak(Box::new(ffi::spank_option {
                    name: CString::new(spec.name).expect("no NUL").into_raw(),
                    arginfo: CString::new(spec.arginfo).expect("no NUL").into_raw(),
                    usage: CString::new(spec.usage).expect("no NUL").into_raw(),
                    has_arg: 1,
                    val: spec.id as c_int,
                    cb: Some(option_cb),
                }));
                if let Err(e) = sp.register(opt) {
                    log::error(&format!("cannot register --{}: {e}", spec.name));
                    return FAIL;
                }
            }
        }
        Context::Slurmd => {
            let st = plugin();
            let path = st.config_path.clone().unwrap_or_default();
            match (&st.arg_error, st.load_config()) {
                (Some(e), _) => log::error(&format!("plugstack.conf: {e}")),
                (None, Err(e)) => log::error(&e),
                (None, Ok(_)) => log::info(&format!(
                    "SPANK plugin loaded (built for Slurm {:#x}), site configuration {}",
                    ffi::SLURM_VERSION_NUMBER,
                    path.display()
                )),
            }
        }
        Context::JobScript | Context::Unknown => {}
    }
    OK
}

/// The option callback: `remote` is 0 in srun/sbatch, 1 in slurmstepd.
unsafe extern "C" fn option_cb(val: c_int, optarg: *const c_char, remote: c_int) -> c_int {
    let value = if optarg.is_null() {
        String::new()
    } else {
        // SAFETY: Slurm passes the option's NUL-terminated argument.
        unsafe { CStr::from_ptr(optarg) }
            .to_string_lossy()
            .into_owned()
    };
    guarded("option callback", || {
        let Some(id) = OptionId::from_val(val) else {
            return FAIL;
        };
        let mut st = plugin();
        match st.options.set(id, &value) {
            Ok(()) => {
                st.raw.retain(|(i, _)| *i != id);
                st.raw.push((id, value.clone()));
                OK
            }
            Err(e) if remote == 0 => {
                log::error(&e);
                FAIL
            }
            Err(e) => {
                // slurmstepd ignores a callback's failure: fail the step later.
                st.option_errors.push(e);
                OK
            }
        }
    })
}

/// # Safety
/// Called by Slurm with its handle.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_init_post_opt(
    sp: ffi::spank_t,
    _ac: c_int,
    _av: *mut *mut c_char,
) -> c_int {
    // SAFETY: `sp` is the handle of this call.
    let sp = unsafe { Spank::from_raw(sp) };
    guarded("init_post_opt", || match spank::context() {
        Context::Local | Context::Allocator => submission_checks(),
        Context::Remote => {
            remote_post_opt(sp);
            OK
        }
        _ => OK,
    })
}

/// srun, sbatch, salloc: everything that can be checked without the node.
fn submission_checks() -> c_int {
    let st = plugin();
    if let Err(e) = st.options.check_consistent() {
        log::error(&e);
        return FAIL;
    }
    if st.options.enabled() {
        if let Err(e) = st.load_config() {
            log::error(&e);
            return FAIL;
        }
    }
    OK
}

fn remote_post_opt(sp: Spank) {
    let mut st = plugin();
    if !st.options.enabled() {
        if let Err(e) = st.options.check_consistent() {
            st.pending_error = Some(e);
        }
        return;
    }
    if !st.option_errors.is_empty() {
        st.pending_error = Some(st.option_errors.join("; "));
        return;
    }
    let step_id = match sp.get_u32(ffi::S_JOB_STEPID, "S_JOB_STEPID") {
        Ok(s) => s,
        Err(e) => {
            st.pending_error = Some(e);
            return;
        }
    };
    match step_id {
        ffi::SLURM_BATCH_SCRIPT => {
            // The batch script runs on Linux; its sruns inherit the options.
            // Under `release = "job"` the batch node's partition boots now,
            // for the script's own mcexec and mpirun's local ranks.
            match st.node_config() {
                Ok(config) if config.release == Release::Job => {
                    match prepare_step(sp, &st, step_id) {
                        Ok(active) => st.active = Some(active),
                        Err(e) => {
                            log::error(&format!("batch step: {e}"));
                            st.pending_error = Some(e);
                        }
                    }
                }
                Ok(_) => log::verbose(
                    "batch step: release = \"step\": the batch node's partition boots with the first srun step",
                ),
                Err(e) => {
                    log::error(&format!("batch step: {e}"));
                    st.pending_error = Some(e);
                }
            }
            for (id, value) in st.raw.clone() {
                let var = format!(
                    "SLURM_SPANK__SLURM_SPANK_OPTION_mckernel_{}",
                    canonical(id.name())
                );
                if let Err(e) = sp.setenv(&var, &value) {
                    log::error(&format!(
                        "cannot pass --{} to the batch script's steps: {e}",
                        id.name()
                    ));
                }
            }
        }
        ffi::SLURM_EXTERN_CONT | ffi::SLURM_INTERACTIVE_STEP | ffi::SLURM_PENDING_STEP => {}
        _ => match prepare_step(sp, &st, step_id) {
            Ok(active) => st.active = Some(active),
            Err(e) => {
                log::error(&format!("step {step_id}: {e}"));
                st.pending_error = Some(e);
            }
        },
    }
}

/// slurmstepd, as root, before the tasks exist: plan and boot (or reuse).
fn prepare_step(sp: Spank, st: &Plugin, step_id: u32) -> Result<Active, String> {
    let config = st.node_config()?;
    let step = StepInfo {
        job_id: sp.get_u32(ffi::S_JOB_ID, "S_JOB_ID")?,
        step_id,
        uid: sp.get_id(ffi::S_JOB_UID, "S_JOB_UID")?,
        gid: sp.get_id(ffi::S_JOB_GID, "S_JOB_GID")?,
        alloc_cores: sp.get_str(ffi::S_JOB_ALLOC_CORES, "S_JOB_ALLOC_CORES")?,
        local_tasks: sp.get_u32(ffi::S_JOB_LOCAL_TASK_COUNT, "S_JOB_LOCAL_TASK_COUNT")?,
    };
    let topo = Topology::read(&config)?;
    let spec = plan::plan(&st.options, &step, &config, &topo)?;
    let stepd = std::process::id() as i32;
    match lifecycle::acquire(&config, &step, &spec, stepd)? {
        Acquired::Booted => log::info(&format!(
            "job {} {}: booted the LWK partition ({}) for uid {}",
            step.job_id,
            step_name(step_id),
            spec.describe(),
            step.uid
        )),
        Acquired::Reused => log::verbose(&format!(
            "job {} {}: reusing the job's LWK partition ({})",
            step.job_id,
            step_name(step_id),
            spec.describe()
        )),
    }
    Ok(Active {
        config,
        job_id: step.job_id,
        step_id,
        local_tasks: step.local_tasks,
        lwk_cpus: spec.cpus.len(),
    })
}

/// "batch step" or "step <n>", as the log lines name a step.
fn step_name(step_id: u32) -> String {
    if step_id == ffi::SLURM_BATCH_SCRIPT {
        "batch step".to_string()
    } else {
        format!("step {step_id}")
    }
}

/// `mckernel-cpus` -> `mckernel_cpus`, as Slurm names option variables.
fn canonical(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// # Safety
/// Called by Slurm in the task process with its handle.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_task_init(
    sp: ffi::spank_t,
    _ac: c_int,
    _av: *mut *mut c_char,
) -> c_int {
    // SAFETY: `sp` is the handle of this call.
    let sp = unsafe { Spank::from_raw(sp) };
    guarded("task_init", || {
        // A failure of init_post_opt fails every task before it starts, with
        // the reason on the user's terminal. (Failing user_init instead
        // would abort the launch, but srun 22.05 then exits with status 0.)
        if let Some(e) = plugin().pending_error.clone() {
            if sp.task_id().unwrap_or(0) == 0 {
                log::error(&e);
            }
            return FAIL;
        }
        let Some(active) = plugin().active.clone() else {
            return OK;
        };
        // mcexec finds the node's ihkd through IHK_RUNTIME_DIR.
        let runtime_dir = active.config.runtime_dir.display().to_string();
        if let Err(e) = sp.setenv("IHK_RUNTIME_DIR", &runtime_dir) {
            log::error(&format!("cannot set IHK_RUNTIME_DIR for mcexec: {e}"));
            return FAIL;
        }
        if active.step_id == ffi::SLURM_BATCH_SCRIPT {
            return OK;
        }
        if let Some(why) = sp.argv().ok().as_deref().and_then(launch::runs_as_is) {
            log::verbose(&format!(
                "job {} step {}: task runs on Linux as it is: {why}",
                active.job_id, active.step_id
            ));
            return OK;
        }
        match become_mcexec(sp, &active) {
            Ok(()) => OK,
            Err(e) => {
                log::error(&e);
                FAIL
            }
        }
    })
}

/// With `spank_prepend_task_argv` (Slurm >= 23.11) Slurm execs mcexec itself.
#[cfg(spank_prepend_task_argv)]
fn become_mcexec(sp: Spank, active: &Active) -> Result<(), String> {
    sp.prepend_task_argv(&launch::mcexec_prefix(
        &active.config.tools().mcexec,
        active.local_tasks,
        active.lwk_cpus,
    )?)
}

/// Slurm 22.05 has no argv API: exec mcexec here with the task's argv and
/// environment. Returns only on failure.
#[cfg(not(spank_prepend_task_argv))]
fn become_mcexec(sp: Spank, active: &Active) -> Result<(), String> {
    let mcexec = active.config.tools().mcexec;
    let argv = launch::mcexec_argv(&mcexec, active.local_tasks, active.lwk_cpus, &sp.argv()?)?;
    let env = sp.env_ptr()?;
    let mut ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `ptrs` is a NULL-terminated array of valid strings that
    // outlive the call; `env` is Slurm's NULL-terminated job environment.
    unsafe { libc::execve(ptrs[0], ptrs.as_ptr(), env) };
    let err = std::io::Error::last_os_error();
    Err(format!("cannot execute {}: {err}", mcexec.display()))
}

/// # Safety
/// Called by Slurm with its handle.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_exit(
    _sp: ffi::spank_t,
    _ac: c_int,
    _av: *mut *mut c_char,
) -> c_int {
    guarded("exit", || {
        if spank::context() != Context::Remote {
            return OK;
        }
        let Some(active) = plugin().active.clone() else {
            return OK;
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return OK;
        }
        match lifecycle::step_end(
            &active.config,
            active.job_id,
            active.step_id,
            std::process::id() as i32,
        ) {
            Ok(Some(report)) => {
                for a in &report.actions {
                    log::info(&format!("job {}: {a}", active.job_id));
                }
                for p in &report.problems {
                    log::error(&format!(
                        "job {}: the node is not clean: {p}",
                        active.job_id
                    ));
                }
                if report.clean() {
                    OK
                } else {
                    FAIL
                }
            }
            Ok(None) => OK,
            Err(e) => {
                log::error(&format!("job {}: {e}", active.job_id));
                FAIL
            }
        }
    })
}

/// # Safety
/// Called by Slurm (`slurmstepd spank epilog`) with its handle.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_job_epilog(
    sp: ffi::spank_t,
    ac: c_int,
    av: *mut *mut c_char,
) -> c_int {
    // SAFETY: Slurm's arguments for this call (slurm_spank_init is not
    // called in the job script context).
    let args = unsafe { plugstack_args(ac, av) };
    // SAFETY: `sp` is the handle of this call.
    let sp = unsafe { Spank::from_raw(sp) };
    guarded("job_epilog", || {
        set_args(&args);
        let job_id = match sp.get_u32(ffi::S_JOB_ID, "S_JOB_ID") {
            Ok(j) => j,
            Err(e) => {
                log::error(&format!("epilog: {e}"));
                return FAIL;
            }
        };
        let config = match plugin().node_config() {
            Ok(c) => c,
            Err(e) => {
                log::error(&format!("epilog of job {job_id}: {e}"));
                return FAIL;
            }
        };
        let report = lifecycle::cleanup_job(&config, job_id);
        for a in &report.actions {
            log::info(&format!("epilog of job {job_id}: {a}"));
        }
        for p in &report.problems {
            log::error(&format!(
                "epilog of job {job_id}: could not restore the node: {p}"
            ));
        }
        if report.clean() {
            return OK;
        }
        // Drained with the reason, the node gets no job; failing the hook
        // instead would have Slurm drain it as "Epilog error", which says
        // nothing (and replaces our reason). If the drain fails, Slurm's
        // is the fallback.
        match node_name().map(|node| {
            drain::drain_node(&node, &drain::reason(job_id, &report.problems)).map(|()| node)
        }) {
            Some(Ok(node)) => {
                log::info(&format!("epilog of job {job_id}: drained {node}"));
                OK
            }
            Some(Err(e)) => {
                log::error(&format!("epilog of job {job_id}: {e}"));
                FAIL
            }
            None => FAIL,
        }
    })
}
