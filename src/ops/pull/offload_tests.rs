//! Hashing files already in place runs on blocking threads: on a runtime with a single
//! thread, other tasks keep running while a pull checks a large up-to-date file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::ops::verify::test_models::layout_model;
use crate::progress::NoProgress;

#[tokio::test(flavor = "current_thread")]
async fn checking_up_to_date_files_leaves_the_runtime_free() {
    let big = vec![7u8; 8 << 20];
    let model = layout_model(&[("config.json", b"{}"), ("weights.bin", &big), ("more.bin", &big[1..])]).await;
    drop(big);
    let out = model.out("pulled");
    super::pull(&model.target, &model.reference, &out, &[], None, 2, &NoProgress).await.unwrap();

    // Pulled again, every file is up to date: the pull only hashes them.
    let done = AtomicBool::new(false);
    let ticker = async {
        let mut longest = Duration::ZERO;
        let mut last = Instant::now();
        while !done.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            longest = longest.max(last.elapsed());
            last = Instant::now();
        }
        longest
    };
    let again = async {
        let start = Instant::now();
        let report = super::pull(&model.target, &model.reference, &out, &[], None, 2, &NoProgress).await.unwrap();
        done.store(true, Ordering::Relaxed);
        (report, start.elapsed())
    };
    let (longest_gap, (report, took)) = tokio::join!(ticker, again);
    assert!(report.components.iter().all(|c| !c.downloaded), "{report:?}");
    // On the runtime thread, hashing one file would stall the ticker for about half of
    // the pull (two files of equal size); off it, the ticker keeps its pace.
    assert!(longest_gap < took / 4, "the runtime stalled {longest_gap:?} during a pull of {took:?}");
}
