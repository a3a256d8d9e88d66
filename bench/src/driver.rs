//! The driver: plans cells, runs each in a child process, repeats and
//! interleaves them, takes medians and writes the reports.
//!
//! The run, step by step:
//!
//! 1. The plan is `cpu::cells(quick)` followed by `net::cells(quick)`,
//!    filtered by `--only` (substring of the workload name) and
//!    `--runtimes`, grouped by (workload, params) in plan order.
//! 2. For each repeat, for each group, the group's runtimes run one after
//!    the other in an order rotated by (repeat + group index), so no
//!    runtime always goes first or always follows the same neighbour.
//! 3. Before each cell the driver waits for a quiet machine (CPUs 0 and 1
//!    at least 90% idle over a 200 ms sample), at most `quiet_limit`; a
//!    cell started on a busy machine is noted in the report.
//! 4. Each cell is a fresh process, `ringio-bench cell '<spec>'`, killed
//!    after [`CELL_TIMEOUT`]; a failed cell becomes a note, never an abort.
//! 5. Rows are grouped by (family, workload, params, runtime, metric); the
//!    median of the repeats is reported, and each value keeps its repeat
//!    number, so the report can also compare runtimes repeat by repeat.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cell::{CellSpec, Row};
use crate::{cpu, net, report};

/// A child process running longer than this is killed.
const CELL_TIMEOUT: Duration = Duration::from_secs(120);
/// Idle share of CPUs 0 and 1 that counts as quiet.
const QUIET_IDLE: f64 = 0.90;
/// How long one `/proc/stat` sample lasts.
const QUIET_SAMPLE: Duration = Duration::from_millis(200);

/// Command-line options of `ringio-bench [options]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub quick: bool,
    pub only: Option<String>,
    pub runtimes: Option<Vec<String>>,
    pub repeats: usize,
    pub out: PathBuf,
    /// Longest wait for a quiet machine before a cell.
    pub quiet_limit: Duration,
}

const USAGE: &str = "usage: ringio-bench [--quick] [--only SUBSTRING] [--runtimes a,b,..] \
                     [--repeats N] [--out DIR]";

/// The workspace root: `bench/..` as seen at compile time, or the current
/// directory if that is gone (binary moved elsewhere).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent() {
        Some(root) if root.join("Cargo.toml").exists() => root.to_path_buf(),
        _ => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// Parses the options; `root` is where the default output directory goes.
pub fn parse_args(args: &[String], root: &Path) -> Result<Options, String> {
    let mut quick = false;
    let mut only = None;
    let mut runtimes = None;
    let mut repeats = None;
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => only = Some(value("--only")?),
            "--runtimes" => {
                let list: Vec<String> = value("--runtimes")?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if list.is_empty() {
                    return Err(format!("--runtimes needs at least one name\n{USAGE}"));
                }
                runtimes = Some(list);
            }
            "--repeats" => {
                let v = value("--repeats")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--repeats {v:?} is not a number"))?;
                if n == 0 {
                    return Err("--repeats must be at least 1".to_string());
                }
                repeats = Some(n);
            }
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    let results = root.join("bench").join("results");
    Ok(Options {
        quick,
        only,
        runtimes,
        repeats: repeats.unwrap_or(if quick { 1 } else { 3 }),
        out: out.unwrap_or(if quick {
            results.join("quick")
        } else {
            results
        }),
        quiet_limit: Duration::from_secs(if quick { 1 } else { 5 }),
    })
}

/// Whether a cell passes the `--only` and `--runtimes` filters.
fn wanted(opts: &Options, cell: &CellSpec) -> bool {
    let only = opts
        .only
        .as_ref()
        .is_none_or(|s| cell.workload.contains(s.as_str()));
    let runtime = opts
        .runtimes
        .as_ref()
        .is_none_or(|list| list.contains(&cell.runtime));
    only && runtime
}

/// Cells grouped by (workload, params), groups in plan order.
fn groups(cells: Vec<CellSpec>) -> Vec<Vec<CellSpec>> {
    let mut out: Vec<Vec<CellSpec>> = Vec::new();
    for cell in cells {
        match out
            .iter_mut()
            .find(|g| g[0].workload == cell.workload && g[0].params == cell.params)
        {
            Some(g) => g.push(cell),
            None => out.push(vec![cell]),
        }
    }
    out
}

/// `cells` rotated left by `by`: the interleaving order of one group.
fn rotated<T: Clone>(cells: &[T], by: usize) -> Vec<T> {
    let mut v = cells.to_vec();
    if !v.is_empty() {
        let n = v.len();
        v.rotate_left(by % n);
    }
    v
}

/// Median of `values` (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One (family, workload, params, runtime, metric) after the repeats.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The median row: value and each extra are medians of the repeats.
    pub row: Row,
    /// The value of every repeat, in run order.
    pub samples: Vec<f64>,
    /// The repeat (1-based) each of `samples` came from.
    pub sample_repeats: Vec<usize>,
}

/// Groups rows, each with its repeat number, and takes medians (value and
/// each extra separately).
pub fn summarize(rows: &[(usize, Row)]) -> Vec<Summary> {
    type Key = (String, String, String, String, String);
    let mut by_key: BTreeMap<Key, Vec<&(usize, Row)>> = BTreeMap::new();
    let mut order: Vec<Key> = Vec::new();
    for pair in rows {
        let r = &pair.1;
        let key = (
            r.family.clone(),
            r.workload.clone(),
            r.params.clone(),
            r.runtime.clone(),
            r.metric.clone(),
        );
        by_key
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(pair);
    }
    order
        .into_iter()
        .map(|key| {
            let pairs = &by_key[&key];
            let sample_repeats: Vec<usize> = pairs.iter().map(|(n, _)| *n).collect();
            let rs: Vec<&Row> = pairs.iter().map(|(_, r)| r).collect();
            let samples: Vec<f64> = rs.iter().map(|r| r.value).collect();
            let mut row = rs[0].clone();
            row.value = median(&samples);
            for (k, v) in row.extra.iter_mut() {
                let xs: Vec<f64> = rs.iter().filter_map(|r| r.extra.get(k).copied()).collect();
                *v = median(&xs);
            }
            Summary {
                row,
                samples,
                sample_repeats,
            }
        })
        .collect()
}

/// Something worth telling the reader about one cell run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Note {
    pub family: String,
    pub workload: String,
    pub params: String,
    pub runtime: String,
    pub repeat: usize,
    pub text: String,
}

/// Entry point of `ringio-bench [options]`.
pub fn main(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args, &workspace_root())?;
    let plan: Vec<CellSpec> = cpu::cells(opts.quick)
        .into_iter()
        .chain(net::cells(opts.quick))
        .filter(|c| wanted(&opts, c))
        .collect();
    if plan.is_empty() {
        return Err("no cell matches the filters".to_string());
    }
    let groups = groups(plan);
    let total: usize = groups.iter().map(Vec::len).sum::<usize>() * opts.repeats;
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut done = 0;
    for repeat in 0..opts.repeats {
        for (gi, group) in groups.iter().enumerate() {
            for cell in rotated(group, repeat + gi) {
                done += 1;
                let label = format!(
                    "{} [{}] {}",
                    cell.workload,
                    cell.params_label(),
                    cell.runtime
                );
                let mut note = |text: String| {
                    notes.push(Note {
                        family: cell.family.clone(),
                        workload: cell.workload.clone(),
                        params: cell.params_label(),
                        runtime: cell.runtime.clone(),
                        repeat: repeat + 1,
                        text,
                    })
                };
                if let Err(busy) = wait_quiet(opts.quiet_limit) {
                    note(busy);
                }
                let t0 = Instant::now();
                match run_child(&exe, &cell, CELL_TIMEOUT) {
                    Ok(got) => {
                        let headline = got
                            .first()
                            .map(|r| format!("{} {}", report::human(r.value), r.unit))
                            .unwrap_or_else(|| "no rows".to_string());
                        eprintln!(
                            "[{done}/{total}] {label}: {headline} ({:.1} s)",
                            t0.elapsed().as_secs_f64()
                        );
                        if got.is_empty() {
                            note("the cell printed no rows".to_string());
                        }
                        rows.extend(got.into_iter().map(|r| (repeat + 1, r)));
                    }
                    Err(e) => {
                        eprintln!("[{done}/{total}] {label}: FAILED: {e}");
                        note(format!("failed: {e}"));
                    }
                }
            }
        }
    }
    let summaries = summarize(&rows);
    let meta = report::Meta::collect(args, &opts, started.elapsed());
    let markdown = report::write_all(&opts.out, &summaries, &notes, &meta)
        .map_err(|e| format!("writing reports to {}: {e}", opts.out.display()))?;
    println!("{markdown}");
    eprintln!(
        "reports in {} ({:.0} s)",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs one cell in a child process and parses its JSON rows; kills the
/// child after `timeout`.
fn run_child(exe: &Path, cell: &CellSpec, timeout: Duration) -> Result<Vec<Row>, String> {
    let json = serde_json::to_string(cell).map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("cell")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", exe.display()))?;
    // Read both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let stderr_tail = stderr.lines().last().unwrap_or("").trim().to_string();
    match status {
        None => Err(format!("killed after {} s", timeout.as_secs())),
        Some(s) if !s.success() => Err(format!("{s}: {stderr_tail}")),
        Some(_) => stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Row>(l).map_err(|e| format!("bad row {l:?}: {e}")))
            .collect(),
    }
}

/// Busy and total jiffies of each CPU, from `/proc/stat`.
fn cpu_times() -> BTreeMap<usize, (u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let cpu: usize = f.next()?.strip_prefix("cpu")?.parse().ok()?;
            let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal (guest is in user).
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            Some((cpu, (total - idle, total)))
        })
        .collect()
}

/// Idle share of each of `cpus` between two `/proc/stat` samples.
fn idle_shares(
    before: &BTreeMap<usize, (u64, u64)>,
    after: &BTreeMap<usize, (u64, u64)>,
    cpus: &[usize],
) -> Vec<f64> {
    cpus.iter()
        .filter_map(|c| {
            let (b0, t0) = before.get(c)?;
            let (b1, t1) = after.get(c)?;
            let total = t1.saturating_sub(*t0);
            let busy = b1.saturating_sub(*b0);
            Some(if total == 0 {
                1.0
            } else {
                1.0 - busy as f64 / total as f64
            })
        })
        .collect()
}

/// Waits until CPUs 0 and 1 are each at least [`QUIET_IDLE`] idle over a
/// [`QUIET_SAMPLE`], or `limit` passed: then `Err` says how busy they were.
fn wait_quiet(limit: Duration) -> Result<(), String> {
    let cpus = [crate::pin::SERVER_CPU, crate::pin::LOAD_CPU];
    let start = Instant::now();
    loop {
        let before = cpu_times();
        std::thread::sleep(QUIET_SAMPLE);
        let idle = idle_shares(&before, &cpu_times(), &cpus);
        if idle.iter().all(|&i| i >= QUIET_IDLE) {
            return Ok(());
        }
        if start.elapsed() >= limit {
            let shown: Vec<String> = idle
                .iter()
                .zip(cpus)
                .map(|(i, c)| format!("cpu{c} {:.0}% idle", i * 100.0))
                .collect();
            return Err(format!(
                "machine busy after {:.1} s wait ({})",
                limit.as_secs_f64(),
                shown.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn median_of_odd_even_and_unsorted() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn default_options() {
        let o = parse_args(&[], Path::new("/ws")).unwrap();
        assert_eq!(o.repeats, 3);
        assert!(!o.quick);
        assert_eq!(o.out, PathBuf::from("/ws/bench/results"));
        assert_eq!((o.only, o.runtimes), (None, None));
    }

    #[test]
    fn quick_writes_elsewhere_and_repeats_once() {
        let o = parse_args(&args("--quick"), Path::new("/ws")).unwrap();
        assert_eq!(o.repeats, 1);
        assert_eq!(o.out, PathBuf::from("/ws/bench/results/quick"));
    }

    #[test]
    fn all_options() {
        let o = parse_args(
            &args("--only timer --runtimes ringio,tokio --repeats 5 --out /tmp/r"),
            Path::new("/ws"),
        )
        .unwrap();
        assert_eq!(o.only.as_deref(), Some("timer"));
        assert_eq!(o.runtimes, Some(vec!["ringio".into(), "tokio".into()]));
        assert_eq!(o.repeats, 5);
        assert_eq!(o.out, PathBuf::from("/tmp/r"));
    }

    #[test]
    fn bad_options_are_errors() {
        let root = Path::new("/ws");
        assert!(parse_args(&args("--repeats"), root).is_err());
        assert!(parse_args(&args("--repeats 0"), root).is_err());
        assert!(parse_args(&args("--repeats x"), root).is_err());
        assert!(parse_args(&args("--runtimes ,"), root).is_err());
        assert!(parse_args(&args("--frobnicate"), root).is_err());
    }

    #[test]
    fn filters_by_workload_substring_and_runtime() {
        let o = parse_args(&args("--only dispatch --runtimes tokio"), Path::new("/ws")).unwrap();
        let kept: Vec<_> = cpu::cells(false)
            .into_iter()
            .filter(|c| wanted(&o, c))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].workload.as_str(), kept[0].runtime.as_str()),
            ("io_context.dispatch", "tokio")
        );
    }

    #[test]
    fn rotation_interleaves_runtimes() {
        let v = ["a", "b", "c"];
        assert_eq!(rotated(&v, 0), ["a", "b", "c"]);
        assert_eq!(rotated(&v, 1), ["b", "c", "a"]);
        assert_eq!(rotated(&v, 4), ["b", "c", "a"]);
        assert!(rotated::<u8>(&[], 3).is_empty());
    }

    #[test]
    fn groups_keep_plan_order() {
        let g = groups(cpu::cells(false));
        assert_eq!(g[0][0].workload, "io_context.dispatch");
        assert!(g.iter().all(|g| g
            .iter()
            .all(|c| c.workload == g[0].workload && c.params == g[0].params)));
    }

    #[test]
    fn summaries_take_medians_of_value_and_extras() {
        let spec = &cpu::cells(false)[0];
        let rows: Vec<(usize, Row)> = [5.0, 1.0, 3.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                (
                    i + 1,
                    Row::new(spec, "m", "u", v, true).with("wall_ms", v * 10.0),
                )
            })
            .collect();
        let s = summarize(&rows);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].row.value, 3.0);
        assert_eq!(s[0].row.extra["wall_ms"], 30.0);
        assert_eq!(s[0].samples, [5.0, 1.0, 3.0]);
        assert_eq!(s[0].sample_repeats, [1, 2, 3]);
    }

    #[test]
    fn idle_share_from_jiffies() {
        let before = BTreeMap::from([(0, (100, 1000)), (1, (0, 0))]);
        let after = BTreeMap::from([(0, (110, 1100)), (1, (50, 100))]);
        let idle = idle_shares(&before, &after, &[0, 1, 2]);
        assert_eq!(idle, [0.9, 0.5]);
    }
}
