//! Counting a server's system calls with `strace -c -f -p <pid>`: attached
//! while the load is paused, detached (SIGINT) once the load has paused
//! again, so the count covers exactly the messages sent in between (plus
//! the one or two calls with which an idle server goes back to sleep).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long strace may take to report it has attached.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Totals of one `strace -c` summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SyscallSummary {
    /// The `calls` column of the `total` line.
    pub total: u64,
    /// `(syscall, calls)` of each line, most calls first.
    pub by_name: Vec<(String, u64)>,
}

/// An attached `strace -c`; [`Tracer::finish`] detaches and parses.
pub struct Tracer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tracer {
    /// Attaches to every thread of `pid`; returns once strace says so.
    pub fn attach(pid: u32) -> Result<Tracer, String> {
        let mut child = Command::new("strace")
            .args(["-c", "-f", "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "strace not found (apt-get install -y strace)".to_string()
                }
                _ => format!("starting strace: {e}"),
            })?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut tracer = Tracer { child, lines };
        loop {
            match tracer.lines.recv_timeout(ATTACH_TIMEOUT) {
                Ok(line) if line.contains("attached") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = tracer.child.kill();
                    let _ = tracer.child.wait();
                    return Err(format!(
                        "strace did not attach to {pid} within {ATTACH_TIMEOUT:?}"
                    ));
                }
            }
        }
        Ok(tracer)
    }

    /// Detaches and returns the summary.
    pub fn finish(mut self) -> Result<SyscallSummary, String> {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let _ = self.child.wait();
        let text: Vec<String> = self.lines.try_iter().collect();
        // The reader thread may still be draining the pipe.
        let mut text = text.join("\n");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            text.push('\n');
            text.push_str(&line);
        }
        parse_summary(&text)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses the table `strace -c` prints. The numbers are right-aligned
/// under their headers and the `usecs/call` and `errors` cells may be
/// blank, so the `calls` cell is the token that ends where the header's
/// `calls` ends.
pub fn parse_summary(text: &str) -> Result<SyscallSummary, String> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("% time"));
    let header = lines
        .next()
        .ok_or_else(|| format!("no strace summary in {text:?}"))?;
    let calls_end = header.find("calls").ok_or("no calls column")? + "calls".len();
    let calls_at = |line: &str| -> Option<u64> {
        tokens(line)
            .find(|&(_, end, _)| end == calls_end)
            .and_then(|(_, _, t)| t.parse().ok())
    };
    let mut by_name = Vec::new();
    for line in lines {
        if line.starts_with("---") || line.trim().is_empty() {
            continue;
        }
        let name = line.split_whitespace().last().unwrap_or("");
        let calls = calls_at(line).ok_or_else(|| format!("no calls in strace line {line:?}"))?;
        if name == "total" {
            by_name.sort_by_key(|&(_, calls): &(String, u64)| std::cmp::Reverse(calls));
            return Ok(SyscallSummary {
                total: calls,
                by_name,
            });
        }
        by_name.push((name.to_string(), calls));
    }
    Err("strace summary has no total line".to_string())
}

/// Whitespace-separated tokens with their byte range.
fn tokens(line: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    line.split_whitespace().map(move |t| {
        let start = t.as_ptr() as usize - line.as_ptr() as usize;
        (start, start + t.len(), t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRACE_6: &str = "\
strace: Process 4242 attached with 2 threads
strace: Process 4242 detached
strace: Process 4243 detached
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 69.61    0.000142          71      2000           io_uring_enter
 16.18    0.000033           1        23         3 epoll_wait
  0.00    0.000000           0         7           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.000204           1      2030         3 total
";

    #[test]
    fn summary_of_strace_6() {
        let s = parse_summary(STRACE_6).unwrap();
        assert_eq!(s.total, 2030);
        assert_eq!(s.by_name[0], ("io_uring_enter".to_string(), 2000));
        assert_eq!(s.by_name[1], ("epoll_wait".to_string(), 23));
        assert_eq!(s.by_name.len(), 3);
    }

    #[test]
    fn total_line_without_usecs_or_errors() {
        // Older strace leaves the total line's usecs/call blank.
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010          10       512           sendto
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010                   512           total
";
        let s = parse_summary(text).unwrap();
        assert_eq!(s.total, 512);
        assert_eq!(s.by_name, vec![("sendto".to_string(), 512)]);
    }

    #[test]
    fn errors_column_is_not_taken_for_calls() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010          10         5      9999 recvfrom
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010          10         5      9999 total
";
        assert_eq!(parse_summary(text).unwrap().total, 5);
    }

    #[test]
    fn no_summary_is_an_error() {
        assert!(
            parse_summary("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted")
                .is_err()
        );
    }
}
