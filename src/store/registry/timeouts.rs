//! How long to wait for a registry that sends nothing.
//!
//! Every wait for bytes from a registry (response headers, a body chunk) has an idle
//! timeout: a silence of a third of `--timeout`, at most [`MAX_IDLE`], fails the attempt,
//! which is retried like other transient failures. The silences of all attempts together
//! are bounded by `--timeout` ([`DEFAULT_TIMEOUT`]): once the registry has sent nothing for
//! that long while modelsign was waiting for it, every request to it fails at once. A byte
//! from the registry ends the silence.
//!
//! Invariant: the hot path (a body chunk) costs one clock read and one relaxed atomic load;
//! timers are armed once per wait, not once per chunk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// The longest wait on a registry that sends nothing, unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// The longest silence one attempt waits through.
pub const MAX_IDLE: Duration = Duration::from_secs(30);
/// The shortest idle timeout, whatever `--timeout` says.
const MIN_IDLE: Duration = Duration::from_millis(200);
/// How long an error answer's body may take to arrive (it is only read for its message).
pub const ERROR_BODY_TIME: Duration = Duration::from_secs(5);

/// The timeouts of one registry, and the silence it has kept so far.
pub(crate) struct Patience {
    total: Duration,
    idle: Duration,
    epoch: Instant,
    /// Milliseconds after `epoch` (plus one) at which the current silence began; 0 when
    /// the registry is not silent.
    silent_since: AtomicU64,
}

impl Patience {
    pub fn new(total: Option<Duration>) -> Self {
        let total = total.unwrap_or(DEFAULT_TIMEOUT).max(MIN_IDLE);
        Patience {
            total,
            idle: (total / 3).clamp(MIN_IDLE, MAX_IDLE),
            epoch: Instant::now(),
            silent_since: AtomicU64::new(0),
        }
    }

    /// The idle timeout of a body read.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// The whole timeout (`--timeout`).
    pub fn total(&self) -> Duration {
        self.total
    }

    /// The registry sent something: its silence is over.
    #[inline]
    pub fn heard(&self) {
        if self.silent_since.load(Ordering::Relaxed) != 0 {
            self.silent_since.store(0, Ordering::Relaxed);
        }
    }

    /// How long an attempt that begins now may wait for a byte; `None` when the registry
    /// has already been silent for the whole timeout.
    pub fn next_wait(&self) -> Option<Duration> {
        self.next_wait_at(Instant::now())
    }

    /// How much of the whole timeout the current silence has left (all of it when the
    /// registry is not silent); `None` when it has been silent for the whole timeout.
    pub fn left(&self) -> Option<Duration> {
        let left = match self.silent_since.load(Ordering::Relaxed) {
            0 => self.total,
            since => self.total.saturating_sub(Instant::now().saturating_duration_since(self.at(since))),
        };
        (!left.is_zero()).then_some(left)
    }

    fn next_wait_at(&self, now: Instant) -> Option<Duration> {
        match self.silent_since.load(Ordering::Relaxed) {
            0 => Some(self.idle),
            since => {
                let silent = now.saturating_duration_since(self.at(since));
                let left = self.total.saturating_sub(silent);
                if left.is_zero() { None } else { Some(self.idle.min(left).max(MIN_IDLE)) }
            }
        }
    }

    /// Records that an attempt heard nothing since `since`. Returns whether the registry
    /// has now been silent for the whole timeout.
    pub fn stalled(&self, since: Instant) -> bool {
        self.stalled_at(since, Instant::now())
    }

    fn stalled_at(&self, since: Instant, now: Instant) -> bool {
        let mark = since.saturating_duration_since(self.epoch).as_millis() as u64 + 1;
        let _ = self.silent_since.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
            if cur == 0 || cur > mark { Some(mark) } else { None }
        });
        self.next_wait_at(now).is_none()
    }

    fn at(&self, mark: u64) -> Instant {
        self.epoch + Duration::from_millis(mark - 1)
    }

    /// The error of an attempt that heard nothing for `waited`: `exhausted` when the
    /// registry has been silent for the whole timeout.
    pub fn silence_error(&self, registry: &str, operation: &str, waited: Duration, exhausted: bool) -> Error {
        let reason = if exhausted {
            format!(
                "{operation}: the registry has sent nothing for {} (wait longer with --timeout DURATION)",
                seconds(self.total)
            )
        } else {
            format!("{operation}: no answer for {}", seconds(waited))
        };
        Error::Unreachable { registry: registry.to_string(), reason }
    }
}

/// `30s`, `1.5s`.
pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_is_a_third_of_the_timeout_at_most_thirty_seconds() {
        assert_eq!(Patience::new(None).idle(), MAX_IDLE);
        assert_eq!(Patience::new(None).total(), DEFAULT_TIMEOUT);
        assert_eq!(Patience::new(Some(Duration::from_secs(3))).idle(), Duration::from_secs(1));
        assert_eq!(Patience::new(Some(Duration::from_secs(600))).idle(), MAX_IDLE);
        assert_eq!(Patience::new(Some(Duration::ZERO)).idle(), MIN_IDLE);
    }

    #[test]
    fn left_is_the_whole_timeout_less_the_current_silence() {
        let p = Patience::new(Some(Duration::from_secs(9)));
        assert_eq!(p.left(), Some(Duration::from_secs(9)));
        p.stalled(Instant::now());
        let left = p.left().unwrap();
        assert!(left <= Duration::from_secs(9) && left > Duration::from_secs(8), "{left:?}");
        p.heard();
        assert_eq!(p.left(), Some(Duration::from_secs(9)));
    }

    #[test]
    fn silences_add_up_until_a_byte_arrives() {
        let p = Patience::new(Some(Duration::from_secs(9)));
        let t0 = p.epoch + Duration::from_secs(5);
        let s = Duration::from_secs;
        assert_eq!(p.next_wait_at(t0), Some(s(3)));
        assert!(!p.stalled_at(t0, t0 + s(3)));
        assert_eq!(p.next_wait_at(t0 + s(7)), Some(s(2)), "7 of 9 seconds are spent");
        assert!(!p.stalled_at(t0 + s(1), t0 + s(8)), "a later silence does not restart the count");
        assert!(p.stalled_at(t0 + s(7), t0 + s(9)));
        assert_eq!(p.next_wait_at(t0 + s(9)), None);
        p.heard();
        assert_eq!(p.next_wait_at(t0 + s(9)), Some(s(3)));
    }
}
