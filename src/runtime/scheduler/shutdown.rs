//! Shutdown: what dropping the last `IoContext` does (the numbered steps are
//! in the parent module's docs).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;

use super::{Queue, Remote, Shared, CLOSED, CLOSING, RUNNING};
use crate::driver::slots::Effects;
use crate::runtime::frame::Frame;

impl Shared {
    /// See "Shutdown" in the module docs.
    pub(crate) fn shutdown(self: &Arc<Self>) {
        if self.lifecycle.swap(CLOSING, Ordering::SeqCst) != RUNNING {
            return;
        }
        self.stop();
        let _runner = self
            .single_threaded
            .then(|| self.runner.lock().unwrap_or_else(|e| e.into_inner()));
        let mut frame = Frame::detached(self);
        let _g = frame.enter();
        loop {
            let mut dropped = 0;
            match &self.queue {
                Queue::Multi(q) => {
                    for r in q.drain() {
                        drop(r);
                        dropped += 1;
                    }
                }
                Queue::Single { local, inject, .. } => {
                    loop {
                        let r = self.lock(local).expect("owner").pop_front();
                        let Some(r) = r else { break };
                        drop(r);
                        dropped += 1;
                    }
                    for item in inject.take() {
                        match item {
                            Remote::Task(r) => drop(r),
                            Remote::Call(f) => f(self),
                        }
                        dropped += 1;
                    }
                }
            }
            let wakers: Vec<Waker> = {
                let mut tasks = self.lock(&self.tasks).expect("owner");
                tasks.drain().collect()
            };
            if dropped == 0 && wakers.is_empty() {
                break;
            }
            for w in wakers {
                w.wake();
            }
        }
        let timer_wakers = self.lock(&self.timers.store).expect("owner").take_wakers();
        drop(timer_wakers);
        let mut fx = Effects::default();
        if let Some(mut core) = self.lock_driver() {
            self.driver.shutdown(&mut core, &mut fx);
        }
        fx.run();
        self.lifecycle.store(CLOSED, Ordering::SeqCst);
        // Work queued by other threads that saw CLOSING just before the
        // store above (see `Shared::schedule`).
        match &self.queue {
            Queue::Single { inject, .. } => {
                for item in inject.take() {
                    match item {
                        Remote::Task(r) => drop(r),
                        Remote::Call(f) => f(self),
                    }
                }
            }
            Queue::Multi(q) => drop(q.drain()),
        }
    }
}
