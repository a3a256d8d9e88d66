//! Reports: markdown table, CSV, JSON and an SVG chart per workload family,
//! each figure with its ratio to the best peer. Filled in by the
//! CPU-workloads work.
