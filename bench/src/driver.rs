//! The driver: plans cells, runs each in a child process, repeats and
//! interleaves them, takes medians and writes the reports. Filled in by the
//! CPU-workloads work.

/// Entry point of `ringio-bench [options]`.
pub fn main(args: &[String]) -> Result<(), String> {
    Err(format!("driver not built yet ({args:?})"))
}
