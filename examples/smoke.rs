use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ringio::IoContext;
fn main() {
    let ctx = IoContext::new().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    for i in 0..100_000 {
        let c = count.clone();
        ctx.spawn(async move {
            if i % 10 == 0 { ringio::time::sleep(Duration::from_micros(100)).await; }
            if i % 7 == 0 { ringio::io::nop().await.unwrap(); }
            c.fetch_add(1, Ordering::Relaxed);
        });
    }
    let t = Instant::now();
    let threads: Vec<_> = (0..4).map(|_| { let ctx = ctx.clone(); std::thread::spawn(move || ctx.run()) }).collect();
    let ran: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    println!("ran {ran} handlers, count {} in {:?}", count.load(Ordering::Relaxed), t.elapsed());
    println!("{:?}", ctx.metrics());
    // cross-thread wake latency into idle context
    for st in [false, true] {
        let ctx = IoContext::builder().single_threaded(st).build().unwrap();
        let g = ctx.work_guard();
        let c2 = ctx.clone();
        let runner = std::thread::spawn(move || c2.run());
        std::thread::sleep(Duration::from_millis(50));
        let mut lat = vec![];
        for _ in 0..200 {
            let (tx, rx) = std::sync::mpsc::channel();
            let t = Instant::now();
            ctx.post(move || { tx.send(t.elapsed()).unwrap(); });
            lat.push(rx.recv().unwrap());
            std::thread::sleep(Duration::from_millis(1));
        }
        lat.sort();
        println!("st={st} wake latency p50 {:?} max {:?}", lat[100], lat[199]);
        drop(g);
        ctx.stop();
        runner.join().unwrap();
    }
}
