//! CPU pinning: servers and in-process workloads on CPU 0, the load
//! generator on CPU 1 (`sched_setaffinity`, inherited by threads started
//! afterwards and by child processes).

use std::io;

/// The CPU servers and CPU-bound cells run on.
pub const SERVER_CPU: usize = 0;
/// The CPU the load generator runs on.
pub const LOAD_CPU: usize = 1;

/// Pins the calling thread (and the threads and processes it starts later)
/// to `cpu`. Fails on a machine with fewer CPUs.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Number of CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
