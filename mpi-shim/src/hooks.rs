//! The table of post-initialisation hooks and the once-only rule.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A function run once, right after MPI initialisation succeeded.
pub type PostInitHook = fn();

static HOOKS: Mutex<Vec<PostInitHook>> = Mutex::new(Vec::new());
static RAN: AtomicBool = AtomicBool::new(false);

/// Registers `hook` to run once after the program's first successful
/// `MPI_Init`/`MPI_Init_thread` (C or Fortran). Register from a library
/// constructor, before `main` calls MPI. Registering the same function twice
/// runs it once.
pub fn register_post_init(hook: PostInitHook) {
    let mut hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    if !hooks.iter().any(|h| *h as usize == hook as usize) {
        hooks.push(hook);
    }
}

/// Runs the registered hooks unless they already ran. The Fortran entry
/// points of some MPIs call the C `MPI_Init` (MPICH), others call
/// `PMPI_Init` directly (Open MPI); both paths end here, and only the first
/// arrival runs the hooks.
pub(crate) fn run_post_init() {
    if RAN.swap(true, Ordering::SeqCst) {
        return;
    }
    let hooks: Vec<PostInitHook> = HOOKS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for hook in hooks {
        // A panicking hook must not unwind into the MPI program's C frames.
        if std::panic::catch_unwind(hook).is_err() {
            say!("a post-MPI_Init hook panicked; continuing without it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static COUNT: AtomicUsize = AtomicUsize::new(0);
    fn bump() {
        COUNT.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn hooks_run_once_and_deduplicate() {
        register_post_init(bump);
        register_post_init(bump);
        run_post_init();
        run_post_init();
        assert_eq!(COUNT.load(Ordering::SeqCst), 1);
    }
}
