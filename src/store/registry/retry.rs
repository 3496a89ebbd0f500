//! When and how long to wait before trying a request again: exponential backoff with
//! jitter, `Retry-After` honoured, a bounded number of attempts and a bounded wait.
//!
//! Invariant: this module decides nothing about HTTP semantics beyond `Retry-After`; the
//! caller says whether a failure is transient (`Failure::Transient`) or not.

use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::progress::Progress;

/// How often and how long to retry transient failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// The wait before the second attempt; doubled for each later one.
    pub base_delay: Duration,
    /// The longest computed wait.
    pub max_delay: Duration,
    /// The longest wait a `Retry-After` header can ask for; longer ones are cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_retry_after);
        }
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max_delay);
        // "Equal jitter": between half and all of the capped delay.
        jitter(cap / 2, cap)
    }
}

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Trying again will not help.
    Fatal(Error),
    /// Trying again may help (429, 5xx, a reset connection), after `retry_after` if the server said.
    Transient { error: Error, retry_after: Option<Duration> },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

/// Runs `attempt` until it succeeds, fails fatally, or the policy's attempts are spent.
/// Each retry is announced through `progress.note`.
///
/// `attempt` is a plain closure returning a future (not an async closure): futures of
/// async closures that borrow are not provably `Send` to callers that need it.
pub(crate) async fn run<T, F, Fut>(policy: &RetryPolicy, progress: &dyn Progress, mut attempt: F) -> Result<T, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut n = 1;
    loop {
        match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient { error, retry_after }) => {
                if n >= policy.max_attempts {
                    return Err(error);
                }
                let wait = policy.delay(n, retry_after);
                progress.note(&format!(
                    "{error}; retrying in {} (attempt {} of {})",
                    humantime::format_duration(round_millis(wait)),
                    n + 1,
                    policy.max_attempts
                ));
                tokio::time::sleep(wait).await;
                n += 1;
            }
        }
    }
}

fn round_millis(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// A random duration in `[low, high]`, to spread retries apart.
pub(crate) fn jitter(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = u64::try_from((high - low).as_nanos()).unwrap_or(u64::MAX);
    low + Duration::from_nanos(fastrand::u64(0..=span))
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (IMF-fixdate, the only
/// form RFC 9110 requires senders to use, parsed as the RFC 2822 date it is; a wrong
/// weekday is forgiven). A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().relaxed_weekday(true).parse_timestamp(value).ok()?;
    Some(SystemTime::from(at).duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", UNIX_EPOCH), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Tue, 29 Feb 2000 00:00:10 GMT", UNIX_EPOCH + Duration::from_secs(951_782_400)),
            Some(Duration::from_secs(10))
        );
        // A wrong weekday is forgiven, as before.
        assert_eq!(parse_retry_after("Mon, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now), None);
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy::default();
        for attempt in 1..10 {
            let d = p.delay(attempt, None);
            let cap = (p.base_delay * (1 << (attempt - 1))).min(p.max_delay);
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
        }
        assert_eq!(p.delay(1, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), p.max_retry_after);
    }

    #[tokio::test]
    async fn run_stops_after_max_attempts() {
        let p = RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(1), ..RetryPolicy::default() };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let busy = || Failure::Transient { error: Error::Internal("busy".into()), retry_after: None };
        let r: Result<(), Error> = run(&p, &crate::progress::NoProgress, |_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { Err(busy()) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.swap(0, std::sync::atomic::Ordering::Relaxed), 3);
        let r = run(&p, &crate::progress::NoProgress, |n| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { if n < 2 { Err(busy()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
