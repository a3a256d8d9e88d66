//! Accepting under pressure: `EMFILE` under a low `RLIMIT_NOFILE` (in a
//! child process: the test re-executes itself), accepts from several tasks
//! at once on one listener run by several threads, and `incoming()`.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{each_mode, fd_shared, open_fds, spawn_runners, watchdog, Mode};
use futures_util::StreamExt;
use ringio::net::{TcpListener, TcpStream};
use ringio::time::timeout;

const CHILD_ENV: &str = "RINGIO_TCP_EMFILE_CHILD";
const CLIENTS: usize = 30;
/// Connections the child can hold at once under its lowered limit.
const ROOM: u64 = 3;

/// The child: lowers `RLIMIT_NOFILE` to just above its open descriptors,
/// lets `CLIENTS` connections queue up, and checks that the accept loop
/// sees `EMFILE` without spinning, then recovers once descriptors are freed.
fn emfile_child(mode: Mode) {
    let ctx = mode.build();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Client sockets are made before the limit drops (they share it).
    let socks: Vec<socket2::Socket> = (0..CLIENTS)
        .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
        .collect();
    let open = open_fds() as u64 - 1; // minus read_dir's own
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = open + ROOM;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let client = std::thread::spawn(move || {
        for s in &socks {
            s.connect(&socket2::SockAddr::from(addr)).unwrap();
        }
        socks
    });
    let socks = client.join().unwrap();
    let (accepted, calls, errors, recovered) = ctx.block_on(async {
        let mut held = Vec::new();
        let (mut calls, mut errors) = (0usize, 0usize);
        let until = Instant::now() + Duration::from_secs(1);
        // Phase 1: hold every connection; the limit runs out.
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            calls += 1;
            match timeout(left, listener.accept()).await {
                Ok(Ok((s, _))) => held.push(s),
                Ok(Err(e)) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "accept: {e}");
                    errors += 1;
                }
                Err(_) => break,
            }
        }
        let accepted = held.len();
        // Phase 2: free the descriptors, then take the rest one at a
        // time (closing each): accept recovers after its back-off.
        drop(held);
        let mut recovered = 0;
        while accepted + recovered < CLIENTS {
            match listener.accept().await {
                Ok((s, peer)) => {
                    assert_eq!(s.peer_addr().unwrap(), peer);
                    recovered += 1;
                }
                Err(e) => panic!("accept after recovery: {e}"),
            }
        }
        (accepted, calls, errors, recovered)
    });
    drop(socks);
    println!(
        "CHILD OK mode={mode} accepted={accepted} calls={calls} errors={errors} recovered={recovered}"
    );
    assert!(errors >= 1, "no EMFILE seen");
    assert!(errors < 200, "{errors} EMFILE errors in 1 s: accept spins");
    assert!(calls < 250, "{calls} accept calls in 1 s: accept spins");
    assert!(
        // The limit bounds fd numbers, not their count: holes in the fd
        // table leave a little more room.
        (1..=ROOM as usize + 4).contains(&accepted),
        "{accepted} accepted under a limit with room for about {ROOM}"
    );
    println!("CHILD PASSED");
}

#[test]
fn accept_backs_off_on_emfile_then_recovers() {
    if let Ok(m) = std::env::var(CHILD_ENV) {
        emfile_child(if m == "multi" {
            Mode::Multi
        } else {
            Mode::Single
        });
        return;
    }
    let _fd = fd_shared();
    for mode in common::modes() {
        watchdog(Duration::from_secs(20), move || {
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "accept_backs_off_on_emfile_then_recovers",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, mode.to_string())
                .output()
                .expect("re-exec the test binary");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let line = stdout
                .lines()
                .find_map(|l| l.find("CHILD OK").map(|i| &l[i..]));
            println!("[{mode}] {}", line.unwrap_or("(no report)"));
            assert!(
                out.status.success() && stdout.contains("CHILD PASSED"),
                "[{mode}] child failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                out.status
            );
        });
    }
}

#[test]
fn accept_from_many_tasks_on_many_threads() {
    let _fd = fd_shared();
    const N: usize = 200;
    watchdog(Duration::from_secs(20), || {
        let ctx = Mode::Multi.build();
        let guard = ctx.work_guard();
        let runners = spawn_runners(&ctx, 4);
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let taken = Arc::new(AtomicUsize::new(0));
        let per_task = Arc::new(Mutex::new(Vec::new()));
        let acceptors: Vec<_> = (0..8)
            .map(|_| {
                let (l, seen, taken, per_task) = (
                    listener.clone(),
                    seen.clone(),
                    taken.clone(),
                    per_task.clone(),
                );
                ctx.spawn(async move {
                    let mut mine = 0;
                    loop {
                        let (s, _) = l.accept().await.unwrap();
                        mine += 1;
                        let (res, id) = s.read_exact(Vec::with_capacity(4)).await;
                        res.unwrap();
                        // Recorded before the echo: the client finishing is
                        // what lets the test thread look at `seen`.
                        assert!(
                            seen.lock().unwrap().insert(id.clone()),
                            "connection seen twice"
                        );
                        let (res, _) = s.write_all(id).await;
                        res.unwrap();
                        if taken.fetch_add(1, Ordering::SeqCst) + 1 == N {
                            break;
                        }
                        per_task.lock().unwrap().push(mine);
                    }
                })
            })
            .collect();
        ctx.block_on(async {
            let clients: Vec<_> = (0..N as u32)
                .map(|i| {
                    ringio::spawn(async move {
                        let c = TcpStream::connect(addr).await.unwrap();
                        let (res, _) = c.write_all(i.to_le_bytes().to_vec()).await;
                        res.unwrap();
                        let (res, back) = c.read_exact(Vec::with_capacity(4)).await;
                        res.unwrap();
                        assert_eq!(back, i.to_le_bytes());
                    })
                })
                .collect();
            for c in clients {
                c.await.unwrap();
            }
        });
        assert_eq!(seen.lock().unwrap().len(), N);
        // The other acceptors still wait: abort them.
        for a in acceptors {
            a.abort();
        }
        drop(guard);
        ctx.stop();
        for r in runners {
            r.join().unwrap();
        }
    });
}

#[test]
fn incoming_stream_and_accept_queue() {
    let _fd = fd_shared();
    each_mode(|mode, ctx| {
        ctx.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr: SocketAddr = listener.local_addr().unwrap();
            // More connections than the ready-queue bound, made before
            // anyone accepts: none is lost or closed.
            let mut clients = Vec::new();
            for _ in 0..300 {
                clients.push(TcpStream::connect(addr).await.unwrap());
            }
            let mut inc = listener.incoming();
            let mut servers = Vec::new();
            for i in 0..300u32 {
                let s = inc.next().await.expect("never ends").unwrap();
                servers.push(s);
                if i % 50 == 0 {
                    ringio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            // Pair them by the client's port, then check each carries data.
            for c in &clients {
                let me = c.local_addr().unwrap();
                let s = servers
                    .iter()
                    .find(|s| s.peer_addr().unwrap() == me)
                    .unwrap_or_else(|| panic!("[{mode}] connection {me} never accepted"));
                let (res, _) = c.write_all(me.port().to_le_bytes().to_vec()).await;
                res.unwrap();
                let (res, b) = s.read_exact(Vec::with_capacity(2)).await;
                res.unwrap();
                assert_eq!(b, me.port().to_le_bytes());
            }
        });
    });
}
