//! The `tracing` feature: a subscriber sees the runtime's events (target
//! `ringio`) for a program that spawns, does I/O, cancels an op, sleeps
//! and waits in the kernel. Run with `cargo test --features tracing`.
#![cfg(feature = "tracing")]

mod common;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fd_shared;
use ringio::IoContext;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records `"<message or span name> field=value ..."` for target `ringio`
/// (shared, so the test reads them after the subscriber is gone).
#[derive(Clone, Default)]
struct Collect {
    lines: Arc<Mutex<Vec<String>>>,
    next_id: Arc<AtomicU64>,
}

#[derive(Default)]
struct Line(String, Vec<String>);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.1.push(format!("{}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Collect {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target() == "ringio"
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = Line(format!("span {}", span.metadata().name()), Vec::new());
        span.record(&mut line);
        self.lines
            .lock()
            .unwrap()
            .push(format!("{} {}", line.0, line.1.join(" ")));
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        self.lines
            .lock()
            .unwrap()
            .push(format!("{} {}", line.0, line.1.join(" ")));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn tasks_ops_cancels_waits_and_timers_are_traced() {
    let _fd = fd_shared();
    let collect = Collect::default();
    tracing::subscriber::with_default(collect.clone(), || {
        let ctx = IoContext::builder().single_threaded(true).build().unwrap();
        ctx.block_on(async {
            ringio::spawn(async { ringio::io::nop().await.unwrap() })
                .await
                .unwrap();
            // A read that never completes, cut short: its op is cancelled.
            let (r, _w) = ringio::io::pipe().unwrap();
            let read = ringio::time::timeout(Duration::from_millis(5), r.read(vec![0u8; 8]));
            assert!(read.await.is_err());
            ringio::time::sleep(Duration::from_millis(2)).await;
        });
    });
    let lines = collect.lines.lock().unwrap().clone();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    for what in [
        "spawn task=",
        "span poll task=",
        "submit key=",
        "complete key=",
        "cancel key=",
        "wait timeout_us=",
        "timers fired=",
    ] {
        assert!(has(what), "no {what:?} in:\n{}", lines.join("\n"));
    }
}
