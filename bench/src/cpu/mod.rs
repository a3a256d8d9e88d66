//! CPU-bound workloads (families `io_context` and `timer`), run in-process
//! on each runtime. Filled in by the CPU-workloads work.

use crate::cell::{CellSpec, Row};

/// The cells of these families (`quick`: the subset of `--quick`).
pub fn cells(_quick: bool) -> Vec<CellSpec> {
    Vec::new()
}

/// Runs one cell in this process.
pub fn run(spec: &CellSpec) -> Result<Vec<Row>, String> {
    Err(format!("no CPU workload {}", spec.workload))
}
