//! The unit of measurement: a *cell* is one workload with one set of
//! parameters on one runtime. The driver runs every cell in a fresh child
//! process (`ringio-bench cell '<CellSpec as JSON>'`), which prints one JSON
//! [`Row`] per line on stdout; the driver collects them, repeats, takes
//! medians and writes the reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The runtimes compared, ringio first.
pub const RUNTIMES: [&str; 5] = ["ringio", "tokio", "monoio", "compio", "glommio"];

/// What to run in one child process.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CellSpec {
    /// Workload family: `io_context`, `timer`, `socket`, `accept_churn`, `http_server`.
    pub family: String,
    /// Workload name as in Corosio's suite, e.g. `io_context.dispatch`.
    pub workload: String,
    /// One of [`RUNTIMES`] (or a variant such as `ringio-mt2`).
    pub runtime: String,
    /// Workload parameters (connections, message size, counts, ...).
    pub params: BTreeMap<String, String>,
}

impl CellSpec {
    /// A parameter parsed as `T`, or `default`.
    pub fn param<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.params
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// `k=v` pairs, for tables.
    pub fn params_label(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One measured figure of one cell run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Row {
    pub family: String,
    pub workload: String,
    pub runtime: String,
    /// [`CellSpec::params_label`].
    pub params: String,
    /// What was measured, e.g. `polls_per_sec`, `p50_us`, `server_cpu_pct`.
    pub metric: String,
    pub unit: String,
    pub value: f64,
    /// Whether a larger value is better (throughput) or worse (latency, CPU).
    pub higher_is_better: bool,
    /// Side figures worth showing (load generator CPU, wall time, ...).
    pub extra: BTreeMap<String, f64>,
}

impl Row {
    /// A row for `spec` with no extras.
    pub fn new(
        spec: &CellSpec,
        metric: &str,
        unit: &str,
        value: f64,
        higher_is_better: bool,
    ) -> Row {
        Row {
            family: spec.family.clone(),
            workload: spec.workload.clone(),
            runtime: spec.runtime.clone(),
            params: spec.params_label(),
            metric: metric.to_string(),
            unit: unit.to_string(),
            value,
            higher_is_better,
            extra: BTreeMap::new(),
        }
    }

    /// Adds a side figure.
    pub fn with(mut self, key: &str, value: f64) -> Row {
        self.extra.insert(key.to_string(), value);
        self
    }
}
