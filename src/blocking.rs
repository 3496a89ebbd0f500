//! Blocking work moved off the async runtime's threads: hashing a local file, copying one,
//! waiting on a file lock. A runtime thread that hashes a 10 GB file stalls every other
//! transfer scheduled on it; [`run`] hands the work to Tokio's blocking pool instead.

use crate::error::{Error, Result};

/// Runs `work` on a blocking thread and waits for it without holding a runtime thread.
/// A panic in `work` is a panic here; `what` names the work if the runtime is shutting
/// down and drops it.
pub async fn run<T: Send + 'static>(what: &str, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::io(what, std::io::Error::other(format!("the blocking task was stopped: {e}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn runs_beside_other_tasks_on_a_single_threaded_runtime() {
        // The blocking work waits for a task on the runtime's only thread: it can finish
        // only if `run` does not occupy that thread.
        let (tx, rx) = std::sync::mpsc::channel::<u8>();
        let waiter = run("wait", move || Ok(rx.recv_timeout(std::time::Duration::from_secs(10)).ok()));
        let sender = async move {
            tokio::task::yield_now().await;
            tx.send(7).unwrap();
        };
        let (got, ()) = tokio::join!(waiter, sender);
        assert_eq!(got.unwrap(), Some(7));
    }

    #[tokio::test]
    #[should_panic(expected = "boom")]
    async fn a_panic_stays_a_panic() {
        let _ = run("panic", || -> Result<()> { panic!("boom") }).await;
    }
}
