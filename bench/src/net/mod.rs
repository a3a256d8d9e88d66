//! Network workloads (families `socket`, `accept_churn`, `http_server`).
//!
//! Method, the same for every runtime:
//!
//! 1. The server under test runs in its own process
//!    (`ringio-bench serve <runtime> <echo|http> 127.0.0.1:0`, see
//!    [`servers`]), single-threaded, pinned to [`pin::SERVER_CPU`]; it
//!    prints `READY <port>` once listening. [`server::ServerProcess`] kills
//!    and reaps it on every way out of the cell.
//! 2. The load comes from the cell's own process, pinned to
//!    [`pin::LOAD_CPU`]: the common ringio [`loadgen`] (io_uring, batched
//!    submissions), or `wrk` for `http_server`.
//! 3. Every throughput-like row carries `loadgen_cpu_pct` (the load
//!    generator's CPU over the measured window, `getrusage`) and
//!    `server_cpu_pct` (the server's, from `/proc/<pid>/stat`), so a reader
//!    sees which side was the bottleneck: near 100 % on the server side
//!    means the server was saturated; near 100 % on the load side means
//!    the figure is the generator's limit, not the server's. They also
//!    carry `server_runq_wait_pct` / `loadgen_runq_wait_pct`: how long each
//!    side's thread was runnable but waiting for its CPU
//!    (`/proc/<pid>/schedstat`) — CPU taken by other processes, which on
//!    a shared machine explains a low figure with low CPU on both sides.
//!
//! Workloads (Corosio's names): `socket.latency`, `socket.throughput`,
//! `socket.fixed_rate`, `socket.syscalls` (strace), `accept_churn`,
//! `http_server` (wrk).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cell::{CellSpec, Row, RUNTIMES};
use crate::pin;

mod loadgen;
mod server;
mod servers;
mod stats;
mod strace;
mod wrk;

use loadgen::{LoadGen, Window};
use server::ServerProcess;

/// A workload with one set of parameters, before it is crossed with the
/// runtimes.
struct Shape {
    family: &'static str,
    workload: &'static str,
    params: Vec<(&'static str, String)>,
}

impl Shape {
    fn new(family: &'static str, workload: &'static str, params: &[(&'static str, &str)]) -> Shape {
        Shape {
            family,
            workload,
            params: params.iter().map(|&(k, v)| (k, v.to_string())).collect(),
        }
    }
}

/// Servers that are a peer runtime written another way: measured as a
/// runtime of their own (see `servers`).
pub const SERVER_VARIANTS: [&str; 1] = ["compio-multishot"];

/// Servers that spin before they sleep ([`SPIN`]): ringio's
/// `Builder::spin_before_park` and glommio's `spin_before_park`, the only
/// peer with the same setting. Measured where the trade shows (the C=1
/// round trip, and the CPU it costs at a fixed rate); `ringio-spin` is
/// ringio, never a peer, and ratios stay those of default ringio.
pub const SPIN_VARIANTS: [&str; 2] = ["ringio-spin", "glommio-spin"];

/// How long the `*-spin` servers poll before sleeping.
pub const SPIN: std::time::Duration = std::time::Duration::from_micros(100);

/// The cells of these families (`quick`: the subset of `--quick`).
pub fn cells(quick: bool) -> Vec<CellSpec> {
    let secs = if quick { "1" } else { "3" };
    let latency_secs = if quick { "1" } else { "2" };
    let mut shapes = vec![Shape::new(
        "socket",
        "socket.latency",
        &[("size", "64"), ("secs", latency_secs)],
    )];
    let (conns, sizes): (&[&str], &[&str]) = if quick {
        (&["64"], &["64"])
    } else {
        (&["16", "64", "256"], &["64", "1024", "16384"])
    };
    for &c in conns {
        for &s in sizes {
            shapes.push(Shape::new(
                "socket",
                "socket.throughput",
                &[("conns", c), ("size", s), ("secs", secs)],
            ));
        }
    }
    if !quick {
        shapes.push(Shape::new(
            "socket",
            "socket.fixed_rate",
            &[
                ("conns", "64"),
                ("size", "64"),
                ("rate", "50000"),
                ("groups", "8"),
                ("secs", "3"),
            ],
        ));
        shapes.push(Shape::new(
            "socket",
            "socket.syscalls",
            &[("conns", "64"), ("size", "64"), ("messages", "20000")],
        ));
    }
    shapes.push(Shape::new(
        "accept_churn",
        "accept_churn",
        &[("loops", "16"), ("size", "64"), ("secs", secs)],
    ));
    shapes.push(Shape::new(
        "http_server",
        "http_server",
        &[("conns", "64"), ("secs", secs)],
    ));
    let mut cells = Vec::new();
    for shape in &shapes {
        // The full run also measures compio's multishot receive (its
        // throughput is below its plain read, its syscalls per message
        // below every other server's): the best peer is taken over both.
        let variants: &[&str] = if quick || shape.family == "accept_churn" {
            &[]
        } else {
            &SERVER_VARIANTS
        };
        let spin: &[&str] = match shape.workload {
            "socket.latency" | "socket.fixed_rate" if !quick => &SPIN_VARIANTS,
            _ => &[],
        };
        for &runtime in RUNTIMES.iter().chain(variants).chain(spin) {
            cells.push(CellSpec {
                family: shape.family.to_string(),
                workload: shape.workload.to_string(),
                runtime: runtime.to_string(),
                params: shape
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect::<BTreeMap<_, _>>(),
            });
        }
    }
    cells
}

/// Runs one cell: starts the server, loads it, measures.
pub fn run(spec: &CellSpec) -> Result<Vec<Row>, String> {
    let service = match spec.workload.as_str() {
        "socket.latency" | "socket.throughput" | "socket.fixed_rate" | "socket.syscalls"
        | "accept_churn" => "echo",
        "http_server" => "http",
        other => return Err(format!("no network workload {other:?}")),
    };
    let rt = spec.runtime.as_str();
    if !RUNTIMES.contains(&rt) && !SERVER_VARIANTS.contains(&rt) && !SPIN_VARIANTS.contains(&rt) {
        return Err(format!("no server for runtime {:?}", spec.runtime));
    }
    pin::pin_to(pin::LOAD_CPU).map_err(|e| format!("pinning to CPU {}: {e}", pin::LOAD_CPU))?;
    let server = ServerProcess::start(&spec.runtime, service)?;
    match spec.workload.as_str() {
        "socket.latency" => latency(spec, &server),
        "socket.throughput" => throughput(spec, &server),
        "socket.fixed_rate" => fixed_rate(spec, &server),
        "socket.syscalls" => syscalls(spec, &server),
        "accept_churn" => accept_churn(spec, &server),
        _ => http_server(spec, &server),
    }
    // `server` is dropped here on every path: killed and reaped.
}

/// `ringio-bench serve <runtime> <echo|http> <addr>`: runs a server until killed.
pub fn serve(args: &[String]) -> Result<(), String> {
    let [runtime, service, addr] = args else {
        return Err(format!(
            "usage: ringio-bench serve <runtime> <echo|http> <addr> (got {args:?})"
        ));
    };
    let service = servers::Service::parse(service)?;
    pin::pin_to(pin::SERVER_CPU).map_err(|e| format!("pinning to CPU {}: {e}", pin::SERVER_CPU))?;
    servers::serve(runtime, service, addr)
}

/// A count parameter that must be at least 1 (no zero-byte messages, no
/// empty connection sets: those would spin without doing any I/O).
fn positive(spec: &CellSpec, key: &str, default: usize) -> Result<usize, String> {
    match spec.param(key, default) {
        0 => Err(format!("parameter {key} must be > 0")),
        n => Ok(n),
    }
}

/// The measured duration `secs`, within (0, 600] seconds.
fn seconds(spec: &CellSpec, default: f64) -> Result<f64, String> {
    let secs = spec.param("secs", default);
    if secs > 0.0 && secs <= 600.0 {
        Ok(secs)
    } else {
        Err(format!("parameter secs must be in (0, 600], not {secs}"))
    }
}

/// Warm-up before a measured window of `secs`.
fn warmup_for(secs: f64) -> Duration {
    Duration::from_secs_f64(if secs >= 3.0 { 1.0 } else { 0.3 })
}

/// The load-side and server-side CPU of a window, as extras.
fn with_cpu(row: Row, w: &Window) -> Row {
    row.with("loadgen_cpu_pct", w.loadgen_cpu_pct())
        .with("server_cpu_pct", w.server_cpu_pct())
        .with("server_runq_wait_pct", w.server_wait_pct())
        .with("loadgen_runq_wait_pct", w.loadgen_wait_pct())
        .with("window_s", w.wall.as_secs_f64())
}

/// `socket.latency`: one connection, strict ping-pong; round-trip percentiles.
fn latency(spec: &CellSpec, server: &ServerProcess) -> Result<Vec<Row>, String> {
    let size = positive(spec, "size", 64)?;
    let secs = seconds(spec, 2.0)?;
    let max: usize = spec.param("max", 1_000_000);
    let gen = LoadGen::new(server.addr(), server.pid())?;
    let (mut rtts, window) =
        gen.latency(size, warmup_for(secs), Duration::from_secs_f64(secs), max)?;
    rtts.sort_unstable();
    let n = rtts.len();
    let mean_us = rtts.iter().sum::<u64>() as f64 / n.max(1) as f64 / 1e3;
    let mut rows = Vec::new();
    for (metric, p) in [("p50_us", 0.5), ("p99_us", 0.99), ("p999_us", 0.999)] {
        let v = stats::percentile(&rtts, p).ok_or("no round trips measured")? as f64 / 1e3;
        rows.push(
            with_cpu(Row::new(spec, metric, "µs", v, false), &window)
                .with("samples", n as f64)
                .with("mean_us", mean_us),
        );
    }
    Ok(rows)
}

/// `socket.throughput`: C connections × S bytes, closed-loop ping-pong; messages/s.
fn throughput(spec: &CellSpec, server: &ServerProcess) -> Result<Vec<Row>, String> {
    let conns = positive(spec, "conns", 64)?;
    let size = positive(spec, "size", 64)?;
    let secs = seconds(spec, 3.0)?;
    let gen = LoadGen::new(server.addr(), server.pid())?;
    let (msgs, w) = gen.throughput(conns, size, warmup_for(secs), Duration::from_secs_f64(secs))?;
    let rate = msgs as f64 / w.wall.as_secs_f64();
    Ok(vec![with_cpu(
        Row::new(spec, "msgs_per_sec", "msg/s", rate, true),
        &w,
    )
    .with("mib_per_sec", rate * size as f64 / (1024.0 * 1024.0))
    .with("messages", msgs as f64)
    .with(
        "loadgen_enters_per_msg",
        w.loadgen_enters as f64 / msgs.max(1) as f64,
    )])
}

/// `socket.fixed_rate`: an open-loop offered rate; the server's CPU for
/// it. The default rate is 50k msgs/s, not 100k: on the 2-CPU machine the
/// generator used 80–95 % of its CPU at 100k and several servers fell
/// short of the offered rate, so their CPU figures were not for the same
/// work. `achieved_msgs_per_sec` and `server_cpu_us_per_msg` show it when
/// that happens anyway.
fn fixed_rate(spec: &CellSpec, server: &ServerProcess) -> Result<Vec<Row>, String> {
    let conns = positive(spec, "conns", 64)?;
    let size = positive(spec, "size", 64)?;
    let rate: f64 = spec.param("rate", 50_000.0);
    let groups: usize = spec.param("groups", 8);
    let secs = seconds(spec, 3.0)?;
    if rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err("parameter rate must be > 0".into());
    }
    let gen = LoadGen::new(server.addr(), server.pid())?;
    let (msgs, mut rtts, w) = gen.fixed_rate(
        conns,
        size,
        rate,
        groups,
        warmup_for(secs),
        Duration::from_secs_f64(secs),
    )?;
    rtts.sort_unstable();
    let achieved = msgs as f64 / w.wall.as_secs_f64();
    let p = |q| stats::percentile(&rtts, q).map_or(f64::NAN, |ns| ns as f64 / 1e3);
    let extras = |row: Row| {
        with_cpu(row, &w)
            .with("offered_msgs_per_sec", rate)
            .with(
                "loadgen_enters_per_msg",
                w.loadgen_enters as f64 / msgs.max(1) as f64,
            )
            .with("achieved_msgs_per_sec", achieved)
            .with(
                "server_cpu_us_per_msg",
                w.server_cpu.as_secs_f64() * 1e6 / msgs.max(1) as f64,
            )
            .with("rtt_p50_us", p(0.5))
            .with("rtt_p99_us", p(0.99))
    };
    Ok(vec![
        extras(Row::new(
            spec,
            "server_cpu_pct",
            "%",
            w.server_cpu_pct(),
            false,
        )),
        extras(Row::new(
            spec,
            "achieved_msgs_per_sec",
            "msg/s",
            achieved,
            true,
        )),
        extras(Row::new(spec, "rtt_p99_us", "µs", p(0.99), false)),
    ])
}

/// `socket.syscalls`: server syscalls per echoed message at C × S, counted
/// by `strace -c -f -p` over exactly `messages` round trips (see
/// [`strace`]; the load is paused while strace attaches and detaches).
/// ptrace slows every syscall, so runtimes that batch may batch a little
/// more than untraced; the count, not the time, is the figure.
fn syscalls(spec: &CellSpec, server: &ServerProcess) -> Result<Vec<Row>, String> {
    let conns = positive(spec, "conns", 64)?;
    let size = positive(spec, "size", 64)?;
    let messages = positive(spec, "messages", 20_000)? as u64;
    let gen = LoadGen::new(server.addr(), server.pid())?;
    let conns = gen.open(conns, size)?;
    // Warm-up, then pause (all connections idle) while strace attaches.
    let conns = gen.quota(conns, messages)?;
    let tracer = strace::Tracer::attach(server.pid())?;
    let _conns = gen.quota(conns, messages)?;
    // Paused again: detach and count.
    let summary = tracer.finish()?;
    let per = |calls: u64| calls as f64 / messages as f64;
    let mut row = Row::new(
        spec,
        "syscalls_per_msg",
        "calls/msg",
        per(summary.total),
        false,
    )
    .with("messages", messages as f64)
    .with("syscalls", summary.total as f64);
    for (name, calls) in summary.by_name.iter().take(4) {
        row = row.with(&format!("{name}_per_msg"), per(*calls));
    }
    Ok(vec![row])
}

/// `accept_churn`: connect → one message → close, repeated by `loops` tasks; connections/s.
fn accept_churn(spec: &CellSpec, server: &ServerProcess) -> Result<Vec<Row>, String> {
    let loops = positive(spec, "loops", 16)?;
    let size = positive(spec, "size", 64)?;
    let secs = seconds(spec, 3.0)?;
    let gen = LoadGen::new(server.addr(), server.pid())?;
    let (n, w) = gen.accept_churn(loops, size, warmup_for(secs), Duration::from_secs_f64(secs))?;
    Ok(vec![with_cpu(
        Row::new(
            spec,
            "conns_per_sec",
            "conn/s",
            n as f64 / w.wall.as_secs_f64(),
            true,
        ),
        &w,
    )
    .with("connections", n as f64)])
}

/// `http_server`: wrk against the HTTP/1.1 keep-alive responder; requests/s and latency.
fn http_server(spec: &CellSpec, server: &ServerProcess) -> Result<Vec<Row>, String> {
    let conns = positive(spec, "conns", 64)?;
    let secs = seconds(spec, 3.0)?.ceil() as u64;
    let server_before = (server.cpu()?, stats::run_queue_wait(Some(server.pid()))?);
    let run = wrk::run(server.addr(), conns, secs)?;
    let server_cpu = server.cpu()?.saturating_sub(server_before.0);
    let server_wait = stats::run_queue_wait(Some(server.pid()))?.saturating_sub(server_before.1);
    let r = &run.report;
    if r.requests == 0 {
        return Err("wrk completed no requests".into());
    }
    if r.non_2xx > 0 {
        return Err(format!("{} responses were not 2xx/3xx", r.non_2xx));
    }
    let extras = |row: Row| {
        row.with("loadgen_cpu_pct", stats::cpu_pct(run.wrk_cpu, run.wall))
            .with("server_cpu_pct", stats::cpu_pct(server_cpu, run.wall))
            .with(
                "server_runq_wait_pct",
                stats::cpu_pct(server_wait, run.wall),
            )
            .with("requests", r.requests as f64)
            .with("socket_errors", r.socket_errors as f64)
            .with("non_2xx", r.non_2xx as f64)
    };
    let mut rows = vec![extras(Row::new(
        spec,
        "requests_per_sec",
        "req/s",
        r.requests_per_sec,
        true,
    ))];
    for (metric, pct) in [("p50_us", 50.0), ("p99_us", 99.0)] {
        if let Some(us) = r.latency_at(pct) {
            rows.push(extras(Row::new(spec, metric, "µs", us, false)));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_cells() {
        let quick = cells(true);
        let workloads: Vec<_> = quick
            .iter()
            .filter(|c| c.runtime == "ringio")
            .map(|c| c.workload.as_str())
            .collect();
        assert_eq!(
            workloads,
            [
                "socket.latency",
                "socket.throughput",
                "accept_churn",
                "http_server"
            ]
        );
        assert_eq!(quick.len(), 4 * RUNTIMES.len());
    }

    #[test]
    fn full_cells() {
        let full = cells(false);
        // latency, 9 throughput, fixed_rate, syscalls, churn, http; the
        // server variants in all but churn.
        let all = RUNTIMES.len() + SERVER_VARIANTS.len();
        assert_eq!(
            full.len(),
            13 * all + RUNTIMES.len() + 2 * SPIN_VARIANTS.len()
        );
        for spinning in SPIN_VARIANTS {
            let workloads: Vec<_> = full
                .iter()
                .filter(|c| c.runtime == spinning)
                .map(|c| c.workload.as_str())
                .collect();
            assert_eq!(workloads, ["socket.latency", "socket.fixed_rate"]);
        }
        assert_eq!(
            full.iter()
                .filter(|c| c.workload == "socket.throughput")
                .count(),
            9 * all
        );
        assert!(full
            .iter()
            .any(|c| c.runtime == "compio-multishot" && c.workload == "socket.syscalls"));
    }
}
