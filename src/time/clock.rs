//! `CLOCK_MONOTONIC` as plain nanoseconds, exactly in step with
//! [`Instant`].
//!
//! # Why this is exact (never early)
//!
//! On Linux, `std::time::Instant` is a `CLOCK_MONOTONIC` reading (std's
//! documented platform behaviour). This module reads the very same clock
//! with `clock_gettime(CLOCK_MONOTONIC)` and returns nanoseconds, skipping
//! the `Instant` arithmetic (`Timespec` checks, `Duration` normalisation,
//! `u128`-free but branchy subtraction) on the hot path of
//! [`sleep`](fn@super::sleep). It is the same clock read at the same moment
//! as `Instant::now()` would be: no coarse clock, no cache, no estimate.
//!
//! To move between the two forms we need one `Instant` whose raw value is
//! known exactly: the [`Anchor`]. Its raw value is taken from the
//! `Instant`'s `Debug` form (`Instant { tv_sec: S, tv_nsec: N }`, the
//! fields of its `timespec`), and accepted only if it lies between two
//! `CLOCK_MONOTONIC` reads taken just before and just after the `Instant`
//! — which a value of any other clock, or a misparse, would not (up to
//! a coincidence of a few hundred nanoseconds out of the clock's whole
//! range). If the form is not recognised, there is no anchor and `sleep`
//! keeps using `Instant` (as it did before).
//!
//! With the anchor `(A, a)`, an instant `I` is `a + (I - A)` nanoseconds
//! and raw `r` is `A + (r - a)`: both exact, so a deadline of `r` is
//! reached exactly when `Instant::now()` reaches `A + (r - a)`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An `Instant` with its `CLOCK_MONOTONIC` value in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anchor {
    pub(crate) instant: Instant,
    pub(crate) raw: u64,
}

static ANCHOR: OnceLock<Option<Anchor>> = OnceLock::new();

/// The process's anchor, if `Instant`'s raw value can be read (see the
/// module docs).
#[inline]
pub(crate) fn anchor() -> Option<&'static Anchor> {
    ANCHOR.get_or_init(make_anchor).as_ref()
}

/// `CLOCK_MONOTONIC` now, in nanoseconds.
#[inline]
pub(crate) fn now_raw() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into the live `ts`; CLOCK_MONOTONIC always exists on
    // Linux (std's `Instant::now` reads it the same way).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // The clock counts from boot: non-negative and far from overflowing.
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// `d` in nanoseconds, `None` if it does not fit in `u64`.
#[inline]
pub(crate) fn duration_ns(d: Duration) -> Option<u64> {
    d.as_secs()
        .checked_mul(1_000_000_000)?
        .checked_add(u64::from(d.subsec_nanos()))
}

impl Anchor {
    /// The `Instant` of raw value `raw`.
    pub(crate) fn instant_of(&self, raw: u64) -> Instant {
        if raw >= self.raw {
            self.instant + Duration::from_nanos(raw - self.raw)
        } else {
            self.instant - Duration::from_nanos(self.raw - raw)
        }
    }
}

fn make_anchor() -> Option<Anchor> {
    // A few tries: a preemption between the reads only widens the bracket,
    // which the check tolerates; a wrong parse never passes it.
    for _ in 0..3 {
        let before = now_raw();
        let instant = Instant::now();
        let after = now_raw();
        let raw = parse_debug(&format!("{instant:?}"))?;
        if (before..=after).contains(&raw) {
            return Some(Anchor { instant, raw });
        }
    }
    None
}

/// The nanoseconds of `Instant { tv_sec: S, tv_nsec: N }`.
fn parse_debug(s: &str) -> Option<u64> {
    let rest = s.strip_prefix("Instant { tv_sec: ")?;
    let (sec, rest) = rest.split_once(", tv_nsec: ")?;
    let nsec = rest.strip_suffix(" }")?;
    let sec: u64 = sec.parse().ok()?;
    let nsec: u64 = nsec.parse().ok()?;
    if nsec >= 1_000_000_000 {
        return None;
    }
    sec.checked_mul(1_000_000_000)?.checked_add(nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_is_found_and_exact() {
        let a = anchor().expect("Instant's raw value is readable on Linux");
        // Round trips are exact both ways.
        for delta in [0u64, 1, 999_999_999, 1_000_000_000, 123_456_789_012] {
            let r = a.raw + delta;
            assert_eq!(a.instant_of(r), a.instant + Duration::from_nanos(delta));
            let back = a.instant_of(r).duration_since(a.instant).as_nanos() as u64 + a.raw;
            assert_eq!(back, r);
        }
        // A raw read and `Instant::now` agree in order, both ways.
        for _ in 0..1000 {
            let r1 = now_raw();
            let i = Instant::now();
            let r2 = now_raw();
            assert!(a.instant_of(r1) <= i, "raw ran ahead of Instant");
            assert!(i <= a.instant_of(r2), "Instant ran ahead of raw");
        }
    }

    #[test]
    fn parse_rejects_other_forms() {
        assert_eq!(
            parse_debug("Instant { tv_sec: 12, tv_nsec: 345 }"),
            Some(12_000_000_345)
        );
        assert_eq!(
            parse_debug("Instant { tv_sec: 12, tv_nsec: 1000000000 }"),
            None
        );
        assert_eq!(parse_debug("Instant { t: 12 }"), None);
        assert_eq!(parse_debug("Instant { tv_sec: -1, tv_nsec: 0 }"), None);
    }

    #[test]
    fn duration_ns_saturates_to_none() {
        assert_eq!(
            duration_ns(Duration::from_millis(1500)),
            Some(1_500_000_000)
        );
        assert_eq!(duration_ns(Duration::MAX), None);
    }
}
