//! How many blobs move at once. `--concurrency N` bounds the large transfers; a small blob
//! (at most [`SMALL_BLOB`]) takes a quarter of a slot, so a model of thousands of small files
//! keeps 4×N requests in flight: their time goes to round trips and to the registry's
//! bookkeeping per blob, not to bandwidth or memory, which the bound is for.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Blobs at most this large are small.
pub const SMALL_BLOB: u64 = 1 << 20;
/// Small blobs per slot.
const SMALL_PER_SLOT: u32 = 4;

/// The transfer slots of one operation.
pub struct Slots {
    permits: Semaphore,
}

impl Slots {
    pub fn new(concurrency: usize) -> Slots {
        let permits = concurrency.max(1).saturating_mul(SMALL_PER_SLOT as usize).min(Semaphore::MAX_PERMITS);
        Slots { permits: Semaphore::new(permits) }
    }

    /// The most transfers that can be under way at once (all of them small): the bound for
    /// the stream that feeds [`Slots::take`].
    pub fn most(&self) -> usize {
        self.permits.available_permits()
    }

    /// Waits for room to move a blob of `size` bytes; the room is freed when the guard drops.
    pub async fn take(&self, size: u64) -> SemaphorePermit<'_> {
        let n = if size <= SMALL_BLOB { 1 } else { SMALL_PER_SLOT };
        self.permits.acquire_many(n).await.expect("the semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn a_slot_holds_one_large_or_four_small_blobs() {
        let slots = Slots::new(2);
        assert_eq!(slots.most(), 8);
        let large = slots.take(SMALL_BLOB + 1).await;
        let small: Vec<_> = futures_util::future::join_all((0..4).map(|_| slots.take(10))).await;
        assert_eq!(slots.permits.available_permits(), 0);
        // A second large blob waits until a slot's worth is free.
        let waiting = slots.take(u64::MAX);
        tokio::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none());
        drop(small);
        assert!(waiting.as_mut().now_or_never().is_some());
        drop(large);
    }
}
