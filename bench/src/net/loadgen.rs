//! The common load generator, on ringio: one single-threaded `IoContext`
//! (`SINGLE_ISSUER | DEFER_TASKRUN`) in the cell's process, pinned to the
//! load CPU. Each connection is a task doing strict ping-pong with owned
//! buffers; ringio batches the submissions of all tasks into one
//! `io_uring_enter` per turn of its loop, which keeps the generator cheap
//! per message.
//!
//! Every echoed message is checked byte for byte (its first 8 bytes carry a
//! sequence number, so a stale or misrouted echo is caught). Every loop is
//! bounded in time (a stop flag or a deadline) and in count (a cap per
//! connection), and joining the tasks is bounded by [`JOIN_TIMEOUT`]
//! ([`QUOTA_TIMEOUT`] for the strace phases): a server that stops
//! answering fails the cell instead of hanging it.
//!
//! Connections are made with ringio's `TcpStream::connect`, except in
//! `accept_churn` (see [`LoadGen::accept_churn`] for why).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringio::net::TcpStream;
use ringio::time::{interval_at, sleep, timeout};
use ringio::IoContext;
use ringio::JoinHandle;

use super::stats;

/// How long stopped tasks may take to finish their last round trip.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a [`LoadGen::quota`] phase may take (it runs under strace,
/// which slows a syscall-per-message server several times).
const QUOTA_TIMEOUT: Duration = Duration::from_secs(120);
/// Round trips per connection at most in one run (a count bound far above
/// what a run reaches: 10 s at 10 M msgs/s on one connection).
const MAX_PER_CONN: u64 = 100_000_000;

/// One client connection doing ping-pong with `size`-byte messages.
pub struct Conn {
    stream: TcpStream,
    out: Option<Box<[u8]>>,
    back: Option<Box<[u8]>>,
    seq: u64,
}

impl Conn {
    /// Connects (with `TCP_NODELAY`); the message's bytes derive from `seed`.
    pub async fn open(addr: SocketAddr, size: usize, seed: usize) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let out: Box<[u8]> = (0..size).map(|i| (i * 31 + seed) as u8).collect();
        Ok(Conn {
            stream,
            back: Some(vec![0u8; size].into_boxed_slice()),
            out: Some(out),
            seq: 0,
        })
    }

    /// Like [`Conn::open`], connecting from source address `src` (port
    /// chosen at connect, `IP_BIND_ADDRESS_NO_PORT`). The connect is a
    /// blocking syscall: on loopback the kernel completes the handshake
    /// inside it (the listener's backlog, far above the load's concurrency,
    /// never drops the SYN).
    pub fn open_from(
        src: Ipv4Addr,
        addr: SocketAddr,
        size: usize,
        seed: usize,
    ) -> io::Result<Conn> {
        let stream = TcpStream::from(connect_from(src, addr)?);
        stream.set_nodelay(true)?;
        let out: Box<[u8]> = (0..size).map(|i| (i * 31 + seed) as u8).collect();
        Ok(Conn {
            stream,
            back: Some(vec![0u8; size].into_boxed_slice()),
            out: Some(out),
            seq: 0,
        })
    }

    /// Sends one message and waits for all of it to come back.
    pub async fn round_trip(&mut self) -> io::Result<()> {
        let mut out = self.out.take().expect("a round trip at a time");
        self.seq += 1;
        let n = out.len().min(8);
        out[..n].copy_from_slice(&self.seq.to_le_bytes()[..n]);
        let (res, out) = self.stream.write_all(out).await;
        self.out = Some(out);
        res?;
        let back = self.back.take().expect("a round trip at a time");
        let (res, back) = self.stream.read_exact(back).await;
        let same = back == *self.out.as_ref().expect("put back above");
        self.back = Some(back);
        res?;
        if !same {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "echo mismatch"));
        }
        Ok(())
    }
}

/// CPU and wall time at one instant, for measuring a window.
#[derive(Clone, Copy)]
struct Mark {
    at: Instant,
    server: Duration,
    me: Duration,
    server_wait: Duration,
    me_wait: Duration,
    enters: u64,
}

/// What the load cost over a measurement window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Wall-clock length of the window.
    pub wall: Duration,
    /// The server process's CPU time (`/proc/<pid>/stat`).
    pub server_cpu: Duration,
    /// The load generator's CPU time (`getrusage(RUSAGE_SELF)`).
    pub loadgen_cpu: Duration,
    /// The load generator's `io_uring_enter` calls.
    pub loadgen_enters: u64,
    /// Time the server's and the generator's threads were runnable but
    /// waiting for their CPU (taken by some other process).
    pub server_wait: Duration,
    /// See `server_wait`.
    pub loadgen_wait: Duration,
}

impl Window {
    /// Server CPU in % of one CPU.
    pub fn server_cpu_pct(&self) -> f64 {
        stats::cpu_pct(self.server_cpu, self.wall)
    }
    /// Load generator CPU in % of one CPU.
    pub fn loadgen_cpu_pct(&self) -> f64 {
        stats::cpu_pct(self.loadgen_cpu, self.wall)
    }
    /// Server run-queue wait in % of the window.
    pub fn server_wait_pct(&self) -> f64 {
        stats::cpu_pct(self.server_wait, self.wall)
    }
    /// Load generator run-queue wait in % of the window.
    pub fn loadgen_wait_pct(&self) -> f64 {
        stats::cpu_pct(self.loadgen_wait, self.wall)
    }
}

/// The load generator's context plus the server it measures.
pub struct LoadGen {
    ctx: IoContext,
    server_pid: u32,
    addr: SocketAddr,
}

impl LoadGen {
    /// A generator for the server at `addr`, process `server_pid`.
    pub fn new(addr: SocketAddr, server_pid: u32) -> Result<LoadGen, String> {
        let ctx = IoContext::builder()
            .single_threaded(true)
            .build()
            .map_err(|e| format!("load generator context: {e}"))?;
        Ok(LoadGen {
            ctx,
            server_pid,
            addr,
        })
    }

    fn mark(&self) -> Result<Mark, String> {
        Ok(Mark {
            at: Instant::now(),
            server: stats::process_cpu(self.server_pid)?,
            me: stats::self_cpu(),
            server_wait: stats::run_queue_wait(Some(self.server_pid))?,
            me_wait: stats::run_queue_wait(None)?,
            enters: self.ctx.metrics().enter_calls,
        })
    }

    fn window(&self, from: Mark) -> Result<Window, String> {
        let to = self.mark()?;
        Ok(Window {
            wall: to.at - from.at,
            server_cpu: to.server.saturating_sub(from.server),
            loadgen_cpu: to.me.saturating_sub(from.me),
            loadgen_enters: to.enters - from.enters,
            server_wait: to.server_wait.saturating_sub(from.server_wait),
            loadgen_wait: to.me_wait.saturating_sub(from.me_wait),
        })
    }

    /// Opens `conns` connections (one after another).
    pub fn open(&self, conns: usize, size: usize) -> Result<Vec<Conn>, String> {
        let addr = self.addr;
        self.ctx
            .block_on(timeout(JOIN_TIMEOUT, async move {
                let mut v = Vec::with_capacity(conns);
                for c in 0..conns {
                    v.push(Conn::open(addr, size, c).await?);
                }
                io::Result::Ok(v)
            }))
            .map_err(io::Error::from)
            .and_then(|r| r)
            .map_err(|e| format!("connecting to {addr}: {e}"))
    }

    /// One connection, `size` bytes: round trips for `warmup`, then for
    /// `secs` (at most `max` of them); returns each measured round-trip
    /// time in ns.
    pub fn latency(
        &self,
        size: usize,
        warmup: Duration,
        secs: Duration,
        max: usize,
    ) -> Result<(Vec<u64>, Window), String> {
        let mut conn = self.open(1, size)?.pop().expect("one connection");
        let bound = warmup + secs + JOIN_TIMEOUT;
        let measured = self.ctx.block_on(timeout(bound, async {
            let warm_end = Instant::now() + warmup;
            let mut n = 0;
            while Instant::now() < warm_end && n < MAX_PER_CONN {
                conn.round_trip().await.map_err(|e| e.to_string())?;
                n += 1;
            }
            let mark = self.mark()?;
            let mut rtts = Vec::with_capacity(max.min(1 << 20));
            let end = mark.at + secs;
            while rtts.len() < max {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                conn.round_trip().await.map_err(|e| e.to_string())?;
                rtts.push(t0.elapsed().as_nanos() as u64);
            }
            Ok((rtts, self.window(mark)?))
        }));
        measured
            .unwrap_or_else(|_| Err(format!("server stopped answering (run exceeded {bound:?})")))
    }

    /// `conns` connections ping-ponging `size` bytes as fast as the server
    /// answers: warm-up, then `secs` measured. Returns the messages echoed
    /// in the measured window.
    pub fn throughput(
        &self,
        conns: usize,
        size: usize,
        warmup: Duration,
        secs: Duration,
    ) -> Result<(u64, Window), String> {
        let conns = self.open(conns, size)?;
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        self.ctx.block_on(async {
            let tasks: Vec<_> = conns
                .into_iter()
                .map(|mut conn| {
                    let (count, stop) = (count.clone(), stop.clone());
                    ringio::spawn(async move {
                        let mut n = 0;
                        while !stop.load(Ordering::Relaxed) && n < MAX_PER_CONN {
                            conn.round_trip().await?;
                            count.fetch_add(1, Ordering::Relaxed);
                            n += 1;
                        }
                        io::Result::Ok(())
                    })
                })
                .collect();
            let measured = async {
                sleep(warmup).await;
                let (mark, before) = (self.mark()?, count.load(Ordering::Relaxed));
                sleep(secs).await;
                let (after, window) = (count.load(Ordering::Relaxed), self.window(mark)?);
                Ok((after - before, window))
            }
            .await;
            stop.store(true, Ordering::Relaxed);
            join_all(tasks, JOIN_TIMEOUT).await?;
            measured
        })
    }

    /// `conns` connections each sending one `size`-byte message every
    /// `conns / rate` seconds, so the offered load is `rate` messages/s in
    /// all. The connections' schedules are staggered in `groups` evenly
    /// spaced groups: connections of a group send together, so one timer
    /// wake-up of the generator releases a batch of sends (one kernel wait
    /// per message would make the generator, not the server, the limit). A connection whose echo
    /// comes back after its next send time skips that slot, so the
    /// achieved rate shows when the offered one was not met. Returns the
    /// messages sent in the measured window and their round-trip times (ns).
    pub fn fixed_rate(
        &self,
        conns: usize,
        size: usize,
        rate: f64,
        groups: usize,
        warmup: Duration,
        secs: Duration,
    ) -> Result<(u64, Vec<u64>, Window), String> {
        const WARMUP: u8 = 0;
        const MEASURE: u8 = 1;
        const STOP: u8 = 2;
        let period = Duration::from_secs_f64(conns as f64 / rate);
        let groups = groups.clamp(1, conns.max(1));
        let conns = self.open(conns, size)?;
        let phase = Arc::new(AtomicU8::new(WARMUP));
        self.ctx.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = conns
                .into_iter()
                .enumerate()
                .map(|(i, mut conn)| {
                    let phase = phase.clone();
                    let group = i % groups;
                    let first = start + period.mul_f64(group as f64 / groups as f64);
                    ringio::spawn(async move {
                        let mut ticks = interval_at(first, period);
                        let mut rtts = Vec::new();
                        let mut n = 0;
                        while n < MAX_PER_CONN {
                            ticks.tick().await;
                            let now = phase.load(Ordering::Relaxed);
                            if now == STOP {
                                break;
                            }
                            let t0 = Instant::now();
                            conn.round_trip().await?;
                            if now == MEASURE {
                                rtts.push(t0.elapsed().as_nanos() as u64);
                            }
                            n += 1;
                        }
                        io::Result::Ok(rtts)
                    })
                })
                .collect();
            let window = async {
                sleep(warmup).await;
                phase.store(MEASURE, Ordering::Relaxed);
                let mark = self.mark()?;
                sleep(secs).await;
                phase.store(STOP, Ordering::Relaxed);
                self.window(mark)
            }
            .await;
            phase.store(STOP, Ordering::Relaxed);
            let rtts: Vec<u64> = join_all(tasks, JOIN_TIMEOUT)
                .await?
                .into_iter()
                .flatten()
                .collect();
            Ok((rtts.len() as u64, rtts, window?))
        })
    }

    /// Exactly `messages` round trips spread over `conns` (each connection
    /// takes the next from a shared quota until it runs out); returns the
    /// connections, idle again, for the next phase.
    pub fn quota(&self, conns: Vec<Conn>, messages: u64) -> Result<Vec<Conn>, String> {
        let quota = Arc::new(AtomicI64::new(i64::try_from(messages).unwrap_or(i64::MAX)));
        self.ctx.block_on(async {
            let tasks: Vec<_> = conns
                .into_iter()
                .map(|mut conn| {
                    let quota = quota.clone();
                    ringio::spawn(async move {
                        while quota.fetch_sub(1, Ordering::Relaxed) > 0 {
                            conn.round_trip().await?;
                        }
                        io::Result::Ok(conn)
                    })
                })
                .collect();
            join_all(tasks, QUOTA_TIMEOUT).await
        })
    }

    /// `loops` tasks each repeating connect → write `size` bytes → read
    /// them back → close, for warm-up then `secs`; returns the connections
    /// completed in the measured window.
    ///
    /// The client closes first, so its side of every connection sits in
    /// `TIME_WAIT`. From one source address those would crowd the
    /// ephemeral-port range and the kernel's port search in `connect`
    /// would become the generator's main cost (measured: a third of its
    /// CPU), so loop `l` connects from its own loopback address
    /// `127.0.1.<l+1>`, as clients on separate hosts would.
    pub fn accept_churn(
        &self,
        loops: usize,
        size: usize,
        warmup: Duration,
        secs: Duration,
    ) -> Result<(u64, Window), String> {
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let addr = self.addr;
        self.ctx.block_on(async {
            let tasks: Vec<_> = (0..loops)
                .map(|l| {
                    let (count, stop) = (count.clone(), stop.clone());
                    ringio::spawn(async move {
                        let mut n = 0;
                        while !stop.load(Ordering::Relaxed) && n < MAX_PER_CONN {
                            let mut conn = Conn::open_from(source_addr(l), addr, size, l)?;
                            conn.round_trip().await?;
                            drop(conn);
                            count.fetch_add(1, Ordering::Relaxed);
                            n += 1;
                        }
                        io::Result::Ok(())
                    })
                })
                .collect();
            let measured = async {
                sleep(warmup).await;
                let (mark, before) = (self.mark()?, count.load(Ordering::Relaxed));
                sleep(secs).await;
                let (after, window) = (count.load(Ordering::Relaxed), self.window(mark)?);
                Ok((after - before, window))
            }
            .await;
            stop.store(true, Ordering::Relaxed);
            join_all(tasks, JOIN_TIMEOUT).await?;
            measured
        })
    }
}

/// The source address of churn loop `l`: `127.0.1.<l % 254 + 1>`.
fn source_addr(l: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, (l % 254) as u8 + 1)
}

/// A TCP connection from `src` (any port) to `dst`, connected.
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> io::Result<std::net::TcpStream> {
    let SocketAddr::V4(dst) = dst else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only"));
    };
    let sin = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let check = |rc: libc::c_int| {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket syscalls; every pointer passed points at a live
    // local of the size passed with it; the new fd is owned by `fd` at once.
    unsafe {
        let fd = check(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let fd = OwnedFd::from_raw_fd(fd);
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let one: libc::c_int = 1;
        check(libc::setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ))?;
        let local = sin(SocketAddrV4::new(src, 0));
        check(libc::bind(
            raw,
            (&local as *const libc::sockaddr_in).cast(),
            len,
        ))?;
        let remote = sin(dst);
        check(libc::connect(
            raw,
            (&remote as *const libc::sockaddr_in).cast(),
            len,
        ))?;
        Ok(std::net::TcpStream::from(fd))
    }
}

/// Awaits every task, all within `limit` of the call.
async fn join_all<T>(
    tasks: Vec<JoinHandle<io::Result<T>>>,
    limit: Duration,
) -> Result<Vec<T>, String> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, t).await {
            Ok(Ok(Ok(v))) => out.push(v),
            Ok(Ok(Err(e))) => return Err(format!("load connection: {e}")),
            Ok(Err(e)) => return Err(format!("load task: {e}")),
            Err(_) => {
                return Err(format!(
                    "server stopped answering (tasks not done within {limit:?})"
                ))
            }
        }
    }
    Ok(out)
}
