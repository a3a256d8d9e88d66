//! `http_server` load from `wrk` (the Debian package), a client none of us
//! wrote: `taskset -c <LOAD_CPU> wrk -t1 -c<C> -d<T>s --latency <url>`.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::stats;
use crate::pin;

/// What one wrk run reported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WrkReport {
    /// wrk's `Requests/sec`.
    pub requests_per_sec: f64,
    /// `(percent, latency in µs)` from `--latency` (50, 75, 90, 99).
    pub latency_us: Vec<(f64, f64)>,
    /// Requests completed.
    pub requests: u64,
    /// Sum of connect/read/write/timeout socket errors.
    pub socket_errors: u64,
    /// Responses that were not 2xx or 3xx.
    pub non_2xx: u64,
}

impl WrkReport {
    /// The latency (µs) at percentile `pct` (50, 75, 90, 99), if reported.
    pub fn latency_at(&self, pct: f64) -> Option<f64> {
        self.latency_us
            .iter()
            .find(|(p, _)| (p - pct).abs() < 1e-9)
            .map(|&(_, us)| us)
    }
}

/// A wrk run and the CPU time wrk used.
pub struct WrkRun {
    /// What wrk printed.
    pub report: WrkReport,
    /// Wall time of the wrk process (start-up included).
    pub wall: Duration,
    /// wrk's CPU time (`getrusage(RUSAGE_CHILDREN)` after reaping it).
    pub wrk_cpu: Duration,
}

/// Runs wrk against `addr` with `conns` connections for `secs` seconds.
pub fn run(addr: SocketAddr, conns: usize, secs: u64) -> Result<WrkRun, String> {
    let url = format!("http://{addr}/");
    let children_before = stats::rusage_cpu(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    let out = Command::new("taskset")
        .args(["-c", &pin::LOAD_CPU.to_string(), "wrk", "-t1"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "5s", "--latency", &url])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running taskset/wrk: {e}"))?;
    let wall = started.elapsed();
    // wrk is reaped now; the server (also our child) is not, so the
    // children's usage grew by wrk's (and taskset's exec) alone.
    let wrk_cpu = stats::rusage_cpu(libc::RUSAGE_CHILDREN).saturating_sub(children_before);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("wrk")
            && (stderr.contains("No such file") || stderr.contains("not found"))
        {
            return Err("wrk not found: apt-get install -y wrk".to_string());
        }
        return Err(format!("wrk failed ({}): {stderr}{stdout}", out.status));
    }
    let report = parse(&stdout).map_err(|e| format!("{e} in wrk output {stdout:?}"))?;
    Ok(WrkRun {
        report,
        wall,
        wrk_cpu,
    })
}

/// Parses wrk 4's text output.
pub fn parse(text: &str) -> Result<WrkReport, String> {
    let mut r = WrkReport::default();
    let mut rps = None;
    let mut in_distribution = false;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = Some(
                v.trim()
                    .parse()
                    .map_err(|_| format!("bad Requests/sec {v:?}"))?,
            );
        } else if line.starts_with("Latency Distribution") {
            in_distribution = true;
        } else if in_distribution && line.contains('%') {
            let mut parts = line.split_whitespace();
            let pct = parts.next().and_then(|p| p.strip_suffix('%')?.parse().ok());
            let lat = parts.next().and_then(parse_duration_us);
            match (pct, lat) {
                (Some(p), Some(us)) => r.latency_us.push((p, us)),
                _ => in_distribution = false,
            }
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.socket_errors = rest
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        } else if line.contains(" requests in ") {
            in_distribution = false;
            r.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    r.requests_per_sec = rps.ok_or("no Requests/sec line")?;
    Ok(r)
}

/// `512.12us`, `1.20ms`, `2.00s`, `1.00m` as microseconds.
fn parse_duration_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(v * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "\
Running 1s test @ http://127.0.0.1:40123/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.12us  100.00us   2.00ms   90.00%
    Req/Sec   120.00k     5.00k  130.00k    80.00%
  Latency Distribution
     50%  500.00us
     75%  550.00us
     90%    1.20ms
     99%    2.00s
  120000 requests in 1.00s, 10.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec: 119999.99
Transfer/sec:     10.00MB
";

    #[test]
    fn parses_rate_latencies_and_errors() {
        let r = parse(WRK).unwrap();
        assert!((r.requests_per_sec - 119_999.99).abs() < 1e-6);
        assert_eq!(r.latency_at(50.0), Some(500.0));
        assert_eq!(r.latency_at(90.0), Some(1200.0));
        assert_eq!(r.latency_at(99.0), Some(2_000_000.0));
        assert_eq!(r.latency_us.len(), 4);
        assert_eq!(r.requests, 120_000);
        assert_eq!(r.socket_errors, 5);
        assert_eq!(r.non_2xx, 7);
    }

    #[test]
    fn clean_run_has_no_errors() {
        let text = WRK
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .collect::<Vec<_>>()
            .join("\n");
        let r = parse(&text).unwrap();
        assert_eq!((r.socket_errors, r.non_2xx), (0, 0));
    }

    #[test]
    fn missing_rate_is_an_error() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("57.00us"), Some(57.0));
        assert_eq!(parse_duration_us("1.50ms"), Some(1500.0));
        assert_eq!(parse_duration_us("abc"), None);
    }
}
