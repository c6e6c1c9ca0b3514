//! The two administrator scripts as library functions, so that the commands
//! (`mcreboot`, `mcstop+release`) and other callers (the Slurm plugin) share
//! them: [`reboot::reboot`] boots a partition in mckernel-operations.rst's
//! step order and undoes every earlier step when one fails;
//! [`stop::stop_release`] gives the whole node back and says what it could
//! not restore.

pub mod daemon_proc;
pub mod ihkmond_proc;
pub mod reboot;
pub mod stop;

use std::time::Duration;

use crate::client::Client;
use crate::error::{IhkResult, EBUSY};
use crate::paths::RuntimeDir;

/// Destroy every OS instance, retrying while something still holds one
/// open (as the scripts retry when they collide with ihkmond).
pub fn destroy_all_instances(dir: &RuntimeDir) -> IhkResult<()> {
    let mut dev = Client::device(dir, 0)?;
    for os in dev.get_os_instances()? {
        let mut tries = 0;
        loop {
            match dev.destroy_os(os) {
                Ok(()) => break,
                Err(e) if e.errno == EBUSY && tries < 4 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
