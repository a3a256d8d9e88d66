//! Small measurement helpers: percentiles and CPU time of processes.

use std::time::Duration;

/// The `p`-quantile (`0 < p <= 1`) of `sorted` by the nearest-rank method:
/// the smallest sample with at least `p` of the samples at or below it.
/// `None` for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// User + system CPU time of process `pid` so far (all its threads), from
/// fields 14 and 15 (`utime`, `stime`, in clock ticks) of `/proc/<pid>/stat`.
pub fn process_cpu(pid: u32) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let ticks = parse_stat_cpu_ticks(&text).ok_or_else(|| format!("{path}: unexpected format"))?;
    Ok(ticks_to_duration(ticks))
}

/// `utime + stime` in clock ticks from the text of a `/proc/<pid>/stat`.
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first token after the name.
    let mut fields = after_comm.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz)
}

/// How long the main thread of `pid` (this process for `None`) has been
/// runnable but waiting for a CPU (field 2 of `/proc/<pid>/schedstat`, in
/// ns). Over a window it shows CPU taken by other processes: every runtime
/// here runs on its process's main thread.
pub fn run_queue_wait(pid: Option<u32>) -> Result<Duration, String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/schedstat"),
        None => "/proc/self/schedstat".to_string(),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_schedstat_wait_ns(&text)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("{path}: unexpected format {text:?}"))
}

/// The run-queue wait (ns) from the text of a `/proc/<pid>/schedstat`:
/// `<on-CPU ns> <waiting ns> <timeslices>`.
pub fn parse_schedstat_wait_ns(text: &str) -> Option<u64> {
    let mut fields = text.split_whitespace();
    let _on_cpu: u64 = fields.next()?.parse().ok()?;
    fields.next()?.parse().ok()
}

/// CPU time (user + system) of this process (`RUSAGE_SELF`) or of its
/// reaped children (`RUSAGE_CHILDREN`), at microsecond resolution.
pub fn rusage_cpu(who: libc::c_int) -> Duration {
    // SAFETY: a zeroed rusage is a valid out-parameter; getrusage fills it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time of the load generator (this process, all threads).
pub fn self_cpu() -> Duration {
    rusage_cpu(libc::RUSAGE_SELF)
}

/// `cpu` over `wall` in percent of one CPU.
pub fn cpu_pct(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), Some(500));
        assert_eq!(percentile(&v, 0.99), Some(990));
        assert_eq!(percentile(&v, 0.999), Some(999));
        assert_eq!(percentile(&v, 1.0), Some(1000));
        assert_eq!(percentile(&[7], 0.999), Some(7));
        assert_eq!(percentile(&[1, 2], 0.5), Some(1));
        assert_eq!(percentile(&[], 0.5), None);
        // Tiny p never underflows the rank.
        assert_eq!(percentile(&[3, 4], 0.0), Some(3));
    }

    #[test]
    fn stat_fields_after_a_name_with_spaces_and_parens() {
        // Fields 14 and 15 are 250 and 70.
        let stat = "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 70 0 0 20 0 3 0 \
                    12345 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(320));
    }

    #[test]
    fn stat_of_this_process_parses() {
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat_cpu_ticks(&text).is_some());
        assert!(process_cpu(std::process::id()).is_ok());
    }

    #[test]
    fn schedstat_wait_field() {
        assert_eq!(
            parse_schedstat_wait_ns("136558562 163880479 412\n"),
            Some(163_880_479)
        );
        assert_eq!(parse_schedstat_wait_ns("136558562"), None);
        assert!(run_queue_wait(None).is_ok());
    }

    #[test]
    fn truncated_stat_is_rejected() {
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ticks("no parens"), None);
    }
}
