//! Reports: markdown table, CSV, JSON and an SVG chart per workload family,
//! each figure with its ratio to the best peer, and a `README.md` that
//! links them with the machine and the command.
//!
//! The ratio is oriented so that above 1.0 always means ringio is ahead:
//! `ringio / best` for throughput (`higher_is_better`), `best / ringio` for
//! latency, wall time or CPU. The best peer is the best non-ringio runtime
//! for that metric among the servers in their default setting: the
//! spinning servers (`*-spin`, see `net::SPIN_VARIANTS`) trade a busy CPU
//! for latency and are shown, but compared only with each other.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plotters::prelude::*;
use serde::Serialize;

use crate::cell::RUNTIMES;
use crate::driver::{Note, Options, Summary};

/// Families in report order; others found in the rows follow.
const FAMILIES: [&str; 5] = [
    "io_context",
    "timer",
    "socket",
    "accept_churn",
    "http_server",
];

/// When, where and how the run was made.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Meta {
    pub date: String,
    pub command: String,
    pub repeats: usize,
    pub nproc: usize,
    pub kernel: String,
    pub cpu_model: String,
    pub ringio_commit: String,
    pub duration_s: f64,
}

impl Meta {
    /// Reads the machine description and records the command line.
    pub fn collect(args: &[String], opts: &Options, took: Duration) -> Meta {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let mut command = "cargo run --release -p ringio-bench --".to_string();
        for a in args {
            command.push(' ');
            command.push_str(a);
        }
        Meta {
            date: utc_date(SystemTime::now()),
            command,
            repeats: opts.repeats,
            nproc: crate::pin::available_cpus(),
            kernel,
            cpu_model,
            ringio_commit: commit,
            duration_s: took.as_secs_f64(),
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` (civil-from-days, proleptic Gregorian).
fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A figure in engineering style: `46.1 M`, `812 k`, `229.2`.
pub fn human(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "n/a".to_string()
    } else if a >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1} k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{v:.2}")
    } else {
        // Small figures (syscalls per message) keep three significant
        // digits: 0.0254, not 0.03.
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    }
}

/// Whether a runtime name is ringio or a ringio variant.
fn is_ringio(runtime: &str) -> bool {
    runtime == "ringio" || runtime.starts_with("ringio-")
}

/// Whether a runtime name is a server that spins before it sleeps.
fn is_spinning(runtime: &str) -> bool {
    runtime.ends_with("-spin")
}

/// The best non-ringio value among `values`, spinning servers left out.
pub fn best_peer<'a>(values: &[(&'a str, f64)], higher_is_better: bool) -> Option<(&'a str, f64)> {
    values
        .iter()
        .filter(|(rt, v)| !is_ringio(rt) && !is_spinning(rt) && v.is_finite())
        .copied()
        .reduce(|a, b| {
            let b_better = if higher_is_better {
                b.1 > a.1
            } else {
                b.1 < a.1
            };
            if b_better {
                b
            } else {
                a
            }
        })
}

/// `value` against `best`, oriented so that above 1.0 means `value` is
/// better: `value / best` when higher is better, `best / value` otherwise.
pub fn relative(value: f64, best: f64, higher_is_better: bool) -> f64 {
    if higher_is_better {
        value / best
    } else {
        best / value
    }
}

/// One table line: a (workload, params, metric) with a value per runtime.
#[derive(Debug, Clone)]
struct Line {
    workload: String,
    params: String,
    metric: String,
    unit: String,
    higher_is_better: bool,
    values: BTreeMap<String, f64>,
    /// Each runtime's values with their repeat numbers.
    samples: BTreeMap<String, Vec<(usize, f64)>>,
}

impl Line {
    fn values_vec(&self) -> Vec<(&str, f64)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    /// (ratio of ringio to the best peer, that peer).
    fn ratio(&self) -> Option<(f64, String)> {
        let ringio = *self.values.get("ringio")?;
        let values = self.values_vec();
        let (peer, best) = best_peer(&values, self.higher_is_better)?;
        Some((
            relative(ringio, best, self.higher_is_better),
            peer.to_string(),
        ))
    }

    /// ringio against the same best peer repeat by repeat: the median of
    /// the ratios of the repeats both have a value for (at least two).
    /// Each repeat runs a cell's runtimes back to back, so a slow stretch
    /// of the machine that spans them cancels out of that repeat's ratio.
    fn per_repeat_ratio(&self) -> Option<f64> {
        let (_, peer) = self.ratio()?;
        let ours = self.samples.get("ringio")?;
        let theirs = self.samples.get(&peer)?;
        let ratios: Vec<f64> = ours
            .iter()
            .filter_map(|&(n, v)| {
                let &(_, p) = theirs.iter().find(|(m, _)| *m == n)?;
                let r = relative(v, p, self.higher_is_better);
                r.is_finite().then_some(r)
            })
            .collect();
        (ratios.len() >= 2).then(|| crate::driver::median(&ratios))
    }
}

fn lines(rows: &[&Summary]) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for s in rows {
        let r = &s.row;
        let pos = out
            .iter()
            .position(|l| l.workload == r.workload && l.params == r.params && l.metric == r.metric);
        let line = match pos {
            Some(i) => &mut out[i],
            None => {
                out.push(Line {
                    workload: r.workload.clone(),
                    params: r.params.clone(),
                    metric: r.metric.clone(),
                    unit: r.unit.clone(),
                    higher_is_better: r.higher_is_better,
                    values: BTreeMap::new(),
                    samples: BTreeMap::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        line.values.insert(r.runtime.clone(), r.value);
        line.samples.insert(
            r.runtime.clone(),
            s.sample_repeats
                .iter()
                .copied()
                .zip(s.samples.iter().copied())
                .collect(),
        );
    }
    out
}

/// Runtimes present, in [`RUNTIMES`] order, unknown variants after.
fn runtime_columns(rows: &[&Summary]) -> Vec<String> {
    let mut cols: Vec<String> = RUNTIMES
        .iter()
        .filter(|rt| rows.iter().any(|s| s.row.runtime == **rt))
        .map(|s| s.to_string())
        .collect();
    for s in rows {
        if !cols.contains(&s.row.runtime) {
            cols.push(s.row.runtime.clone());
        }
    }
    cols
}

/// The markdown table of one family.
fn family_markdown(family: &str, rows: &[&Summary], notes: &[&Note], meta: &Meta) -> String {
    let cols = runtime_columns(rows);
    let mut md = String::new();
    let _ = writeln!(md, "# `{family}`\n");
    let _ = writeln!(
        md,
        "{} — `{}` — {} repeat(s), medians — {} CPUs, Linux {}, {}\n",
        meta.date, meta.command, meta.repeats, meta.nproc, meta.kernel, meta.cpu_model
    );
    let _ = write!(md, "| workload | params | metric |");
    for c in &cols {
        let _ = write!(md, " {c} |");
    }
    let _ = writeln!(md, " ringio vs best peer | per repeat |");
    let _ = write!(md, "|---|---|---|");
    for _ in &cols {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md, "---:|---:|");
    for l in lines(rows) {
        let dir = if l.higher_is_better { "↑" } else { "↓" };
        let _ = write!(
            md,
            "| {} | {} | {} ({}) {dir} |",
            l.workload, l.params, l.metric, l.unit
        );
        for c in &cols {
            let cell = match l.values.get(c) {
                Some(v) => human(*v),
                None if notes.iter().any(|n| {
                    n.runtime == *c
                        && n.workload == l.workload
                        && n.params == l.params
                        && n.text.starts_with("failed")
                }) =>
                {
                    "failed".to_string()
                }
                None => "n/a".to_string(),
            };
            let _ = write!(md, " {cell} |");
        }
        let ratio = l
            .ratio()
            .map_or("n/a".to_string(), |(r, peer)| format!("{r:.2}× ({peer})"));
        let per_repeat = l
            .per_repeat_ratio()
            .map_or("n/a".to_string(), |r| format!("{r:.2}×"));
        let _ = writeln!(md, " {ratio} | {per_repeat} |");
    }
    let _ = writeln!(
        md,
        "\n↑ higher is better, ↓ lower is better. \"ringio vs best peer\" is above 1.0 \
         when ringio is ahead of the best other runtime (value / best for ↑, best / value \
         for ↓); the spinning servers (`*-spin`) are left out of it, being another trade of CPU \
         for latency. \"per repeat\" compares ringio with that same peer within each repeat (the \
         runtimes of a cell run back to back) and takes the median of those ratios, so a slow \
         stretch of the machine that covers a whole repeat cancels out. n/a: the runtime has no \
         equivalent (or, for a ratio, no ringio or no peer value, or fewer than two repeats)."
    );
    if !notes.is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(
                md,
                "- {} [{}] {} (repeat {}): {}",
                n.workload, n.params, n.runtime, n.repeat, n.text
            );
        }
    }
    md
}

/// Quotes a CSV field if it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn family_csv(rows: &[&Summary]) -> String {
    let mut out = String::from(
        "family,workload,params,runtime,metric,unit,value,higher_is_better,repeats,samples,extra\n",
    );
    for s in rows {
        let r = &s.row;
        let samples: Vec<String> = s.samples.iter().map(|v| format!("{v}")).collect();
        let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let fields = [
            r.family.clone(),
            r.workload.clone(),
            r.params.clone(),
            r.runtime.clone(),
            r.metric.clone(),
            r.unit.clone(),
            format!("{}", r.value),
            r.higher_is_better.to_string(),
            s.samples.len().to_string(),
            samples.join(";"),
            extra.join(";"),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct FamilyJson<'a> {
    family: &'a str,
    meta: &'a Meta,
    rows: Vec<JsonRow<'a>>,
    notes: &'a [&'a Note],
}

#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    row: &'a crate::cell::Row,
    repeats: usize,
    samples: &'a [f64],
    sample_repeats: &'a [usize],
}

/// Short x-axis label of a line: the workload without its family, the
/// params that vary between lines of that workload, and the metric when
/// the workload has several.
fn chart_label(l: &Line, all: &[Line]) -> Vec<String> {
    let name = l
        .workload
        .split_once('.')
        .map_or(l.workload.as_str(), |(_, n)| n)
        .to_string();
    let same: Vec<&Line> = all.iter().filter(|o| o.workload == l.workload).collect();
    let parse = |p: &str| -> BTreeMap<String, String> {
        p.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mine = parse(&l.params);
    let varying: Vec<String> = mine
        .iter()
        .filter(|(k, v)| same.iter().any(|o| parse(&o.params).get(*k) != Some(*v)))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut out = vec![name];
    if !varying.is_empty() {
        out.push(varying.join(" "));
    }
    if same.iter().any(|o| o.metric != l.metric) {
        out.push(l.metric.clone());
    }
    out
}

/// Colour of a runtime's bars.
fn colour(runtime: &str, i: usize) -> RGBColor {
    match runtime {
        "ringio" => RGBColor(214, 39, 40),
        "tokio" => RGBColor(31, 119, 180),
        "monoio" => RGBColor(44, 160, 44),
        "compio" => RGBColor(148, 103, 189),
        "glommio" => RGBColor(255, 127, 14),
        _ => {
            let (r, g, b) = Palette99::pick(i).to_rgba().rgb();
            RGBColor(r, g, b)
        }
    }
}

/// Grouped bars, one group per line, one bar per runtime, each relative
/// to the line's best peer (1.0) and oriented so taller is better.
fn family_svg(path: &Path, family: &str, rows: &[&Summary]) -> Result<(), String> {
    let all = lines(rows);
    let charted: Vec<&Line> = all
        .iter()
        .filter(|l| best_peer(&l.values_vec(), l.higher_is_better).is_some())
        .collect();
    let cols = runtime_columns(rows);
    let n = charted.len().max(1);
    let rel = |l: &Line, rt: &str| -> Option<f64> {
        let (_, best) = best_peer(&l.values_vec(), l.higher_is_better)?;
        let v = *l.values.get(rt)?;
        Some(relative(v, best, l.higher_is_better)).filter(|r| r.is_finite())
    };
    let top = charted
        .iter()
        .flat_map(|l| cols.iter().filter_map(|c| rel(l, c)))
        .fold(1.0f64, f64::max)
        * 1.5; // headroom for the legend, top right
    let width = (160 * n as u32 + 200).max(640);
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{family}: each runtime relative to the best peer"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(56)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("relative to best peer = 1.0 (taller is better)")
        .draw()
        .map_err(|x| e(&x))?;
    let slot = 0.8 / cols.len().max(1) as f64;
    for (ci, rt) in cols.iter().enumerate() {
        let c = colour(rt, ci);
        let bars: Vec<Rectangle<(f64, f64)>> = charted
            .iter()
            .enumerate()
            .filter_map(|(gi, l)| {
                let x0 = gi as f64 + 0.1 + ci as f64 * slot;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + slot * 0.9, rel(l, rt)?)],
                    c.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(|x| e(&x))?
            .label(rt.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        let values = charted.iter().enumerate().filter_map(|(gi, l)| {
            let x = gi as f64 + 0.1 + (ci as f64 + 0.45) * slot;
            let r = rel(l, rt)?;
            Some(Text::new(
                format!("{r:.2}"),
                (x, r + top * 0.01),
                ("sans-serif", 10).into_font().color(&BLACK),
            ))
        });
        chart.draw_series(values).map_err(|x| e(&x))?;
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, 1.0), (n as f64, 1.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(|x| e(&x))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    for (gi, l) in charted.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, 0.0));
        for (k, text) in chart_label(l, &all).iter().enumerate() {
            let style = ("sans-serif", 12).into_font().color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ),
            );
            root.draw(&Text::new(
                text.clone(),
                (px, py + 6 + 14 * k as i32),
                style,
            ))
            .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))
}

/// Writes every family's reports and the index into `dir`; returns the
/// markdown of the families of this run (for stdout).
pub fn write_all(
    dir: &Path,
    summaries: &[Summary],
    notes: &[Note],
    meta: &Meta,
) -> io::Result<String> {
    fs::create_dir_all(dir)?;
    let mut families: Vec<String> = FAMILIES.iter().map(|f| f.to_string()).collect();
    for s in summaries {
        if !families.contains(&s.row.family) {
            families.push(s.row.family.clone());
        }
    }
    let mut all_md = String::new();
    for family in &families {
        let rows: Vec<&Summary> = summaries
            .iter()
            .filter(|s| s.row.family == *family)
            .collect();
        let fam_notes: Vec<&Note> = notes.iter().filter(|n| n.family == *family).collect();
        if rows.is_empty() && fam_notes.is_empty() {
            continue;
        }
        let md = family_markdown(family, &rows, &fam_notes, meta);
        fs::write(dir.join(format!("{family}.md")), &md)?;
        fs::write(dir.join(format!("{family}.csv")), family_csv(&rows))?;
        let json = FamilyJson {
            family,
            meta,
            rows: rows
                .iter()
                .map(|s| JsonRow {
                    row: &s.row,
                    repeats: s.samples.len(),
                    samples: &s.samples,
                    sample_repeats: &s.sample_repeats,
                })
                .collect(),
            notes: &fam_notes,
        };
        let json = serde_json::to_string_pretty(&json).map_err(io::Error::other)?;
        fs::write(dir.join(format!("{family}.json")), json)?;
        if !rows.is_empty() {
            family_svg(&dir.join(format!("{family}.svg")), family, &rows)
                .map_err(|e| io::Error::other(format!("{family}.svg: {e}")))?;
        }
        all_md.push_str(&md);
        all_md.push('\n');
    }
    fs::write(dir.join("README.md"), index(dir, meta, &families))?;
    Ok(all_md)
}

/// `README.md` of a results directory: every family report found there
/// (also those of earlier `--only` runs), with the run that made it.
fn index(dir: &Path, meta: &Meta, families: &[String]) -> String {
    let mut md = String::from("# ringio-bench results\n\n");
    let _ = writeln!(
        md,
        "Machine: {} CPUs, Linux {}, {}.\n",
        meta.nproc, meta.kernel, meta.cpu_model
    );
    let _ = writeln!(
        md,
        "Latest run: {} — `{}` — ringio {} — {:.0} s.\n",
        meta.date, meta.command, meta.ringio_commit, meta.duration_s
    );
    let _ = writeln!(
        md,
        "Method: `bench/README.md`. Ratios are \"ringio vs best peer\", above 1.0 when ringio is ahead.\n"
    );
    md.push_str("| family | table | data | chart | made by |\n|---|---|---|---|---|\n");
    for family in families {
        let json_path = dir.join(format!("{family}.json"));
        let Ok(text) = fs::read_to_string(&json_path) else {
            continue;
        };
        let made_by = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| serde_json::from_value::<Meta>(v.get("meta")?.clone()).ok())
            .map_or("?".to_string(), |m| {
                format!("{} `{}` ({} repeats)", m.date, m.command, m.repeats)
            });
        let svg = if dir.join(format!("{family}.svg")).exists() {
            format!("[{family}.svg]({family}.svg)")
        } else {
            "—".to_string()
        };
        let _ = writeln!(
            md,
            "| {family} | [{family}.md]({family}.md) | [csv]({family}.csv), [json]({family}.json) | {svg} | {made_by} |"
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_peer_skips_ringio_and_honours_direction() {
        let v = [
            ("ringio", 9.0),
            ("tokio", 3.0),
            ("monoio", 5.0),
            ("ringio-mt2", 99.0),
            ("glommio-spin", 1.0),
        ];
        assert_eq!(best_peer(&v, true), Some(("monoio", 5.0)));
        // The spinning server's 1.0 would be the best of the lower-is-better.
        assert_eq!(best_peer(&v, false), Some(("tokio", 3.0)));
        assert_eq!(best_peer(&[("ringio", 1.0)], true), None);
        assert_eq!(best_peer(&[("tokio", f64::NAN)], true), None);
    }

    #[test]
    fn ratio_above_one_means_ringio_ahead() {
        assert_eq!(relative(10.0, 5.0, true), 2.0);
        assert_eq!(relative(200.0, 100.0, false), 0.5);
        assert_eq!(relative(50.0, 100.0, false), 2.0);
    }

    #[test]
    fn line_ratio_names_the_peer() {
        let l = Line {
            workload: "w".into(),
            params: String::new(),
            metric: "wall_ms".into(),
            unit: "ms".into(),
            higher_is_better: false,
            values: BTreeMap::from([
                ("ringio".into(), 100.0),
                ("tokio".into(), 500.0),
                ("compio".into(), 200.0),
            ]),
            samples: BTreeMap::new(),
        };
        assert_eq!(l.ratio(), Some((2.0, "compio".to_string())));
        assert_eq!(l.per_repeat_ratio(), None, "no samples, no pairs");
    }

    #[test]
    fn per_repeat_ratio_pairs_repeats_with_the_best_peer() {
        let samples = |v: &[(usize, f64)]| v.to_vec();
        let l = Line {
            workload: "w".into(),
            params: String::new(),
            metric: "ops".into(),
            unit: "ops/s".into(),
            higher_is_better: true,
            // Medians: ringio 15, monoio 15 (best peer), tokio 5.
            values: BTreeMap::from([
                ("ringio".into(), 15.0),
                ("monoio".into(), 15.0),
                ("tokio".into(), 5.0),
            ]),
            // Repeat 2 was slow for everyone; monoio has no repeat 4 and
            // ringio no repeat 3, so only repeats 1, 2 and 5 pair up.
            samples: BTreeMap::from([
                (
                    "ringio".into(),
                    samples(&[(1, 20.0), (2, 10.0), (4, 30.0), (5, 15.0)]),
                ),
                (
                    "monoio".into(),
                    samples(&[(1, 16.0), (2, 8.0), (3, 15.0), (5, 15.0)]),
                ),
                ("tokio".into(), samples(&[(1, 5.0), (2, 5.0)])),
            ]),
        };
        assert_eq!(l.ratio(), Some((1.0, "monoio".to_string())));
        // 20/16, 10/8, 15/15: median 1.25.
        assert_eq!(l.per_repeat_ratio(), Some(1.25));
        let lower = Line {
            higher_is_better: false,
            values: BTreeMap::from([("ringio".into(), 50.0), ("tokio".into(), 100.0)]),
            samples: BTreeMap::from([
                ("ringio".into(), samples(&[(1, 50.0), (2, 200.0)])),
                ("tokio".into(), samples(&[(1, 100.0), (2, 100.0)])),
            ]),
            ..l
        };
        // 100/50 and 100/200: median 1.25, ahead in one and behind in one.
        assert_eq!(lower.per_repeat_ratio(), Some(1.25));
        let single = Line {
            samples: BTreeMap::from([
                ("ringio".into(), samples(&[(1, 50.0)])),
                ("tokio".into(), samples(&[(1, 100.0)])),
            ]),
            ..lower
        };
        assert_eq!(single.per_repeat_ratio(), None, "one pair is not enough");
    }

    #[test]
    fn csv_escaping() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn human_figures() {
        assert_eq!(human(46_100_000.0), "46.10 M");
        assert_eq!(human(812_000.0), "812.0 k");
        assert_eq!(human(229.16), "229");
        assert_eq!(human(1.5), "1.50");
        assert_eq!(human(0.0254), "0.0254");
        assert_eq!(human(0.0165), "0.0165");
        assert_eq!(human(0.03125), "0.0312");
        assert_eq!(human(0.0), "0.00");
        assert_eq!(human(f64::NAN), "n/a");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01 00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_600 + 120);
        assert_eq!(utc_date(t), "2000-02-29 01:02 UTC");
    }
}
