//! `ringio-bench`: the same workloads on ringio and on the runtimes a user
//! would pick instead (tokio, monoio, compio, glommio), side by side.
//!
//! ```text
//! ringio-bench [--quick] [--only SUBSTRING] [--runtimes a,b,..] [--repeats N] [--out DIR]
//! ringio-bench cell '<CellSpec JSON>'     (internal: one cell, one process)
//! ringio-bench serve <runtime> <kind> <addr>   (internal: a server process)
//! ```
//!
//! See `bench/README.md` for the method.

mod cell;
mod cpu;
mod driver;
mod net;
mod pin;
mod report;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("cell") => run_cell(args.get(1).map(String::as_str).unwrap_or("")),
        Some("serve") => net::serve(&args[1..]),
        _ => driver::main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringio-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Child-process side of a cell: run it, print its rows as JSON lines.
fn run_cell(json: &str) -> Result<(), String> {
    let spec: cell::CellSpec =
        serde_json::from_str(json).map_err(|e| format!("bad cell spec {json:?}: {e}"))?;
    let rows = match spec.family.as_str() {
        "io_context" | "timer" => cpu::run(&spec)?,
        _ => net::run(&spec)?,
    };
    for row in rows {
        println!(
            "{}",
            serde_json::to_string(&row).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}
