//! Network workloads (families `socket`, `accept_churn`, `http_server`):
//! a server process per runtime on CPU 0, one common load generator on
//! CPU 1. Filled in by the network-workloads work.

use crate::cell::{CellSpec, Row};

/// The cells of these families (`quick`: the subset of `--quick`).
pub fn cells(_quick: bool) -> Vec<CellSpec> {
    Vec::new()
}

/// Runs one cell: starts the server, loads it, measures.
pub fn run(spec: &CellSpec) -> Result<Vec<Row>, String> {
    Err(format!("no network workload {}", spec.workload))
}

/// `ringio-bench serve <runtime> <kind> <addr>`: runs a server until killed.
pub fn serve(args: &[String]) -> Result<(), String> {
    Err(format!("no server for {args:?}"))
}
