//! Progress bars: one per blob plus a total, with rate and ETA, drawn on stderr only
//! when it is a terminal and `--no-progress` is not given. Notes print above the bars.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use modelsign::digest::Digest;
use modelsign::progress::{Progress, Skipped};

/// The one set of bars of this process, so that notes from anywhere print above them.
static MULTI: OnceLock<MultiProgress> = OnceLock::new();

pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    pub fn new(verb: &str) -> Self {
        let multi = MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())).clone();
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.set_prefix(verb.to_string());
        Bars { multi, total, bars: Mutex::new(HashMap::new()) }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template("{msg:>40.dim} [{bar:20}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> ")
    }

    pub fn clear(&self) {
        for bar in self.bars.lock().expect("bars lock").values() {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

fn short(label: &str) -> String {
    let chars: Vec<char> = label.chars().collect();
    if chars.len() <= 40 {
        label.to_string()
    } else {
        format!("…{}", chars[chars.len() - 39..].iter().collect::<String>())
    }
}

impl Progress for Bars {
    fn start(&self, id: &Digest, label: &str, total: u64) {
        let mut bars = self.bars.lock().expect("bars lock");
        if bars.contains_key(id) {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(Self::style());
        bar.set_message(short(label));
        bars.insert(id.clone(), bar);
        self.total.inc_length(total);
    }

    fn advance(&self, id: &Digest, bytes: u64) {
        if let Some(bar) = self.bars.lock().expect("bars lock").get(id) {
            bar.inc(bytes);
        }
        self.total.inc(bytes);
    }

    fn restart(&self, id: &Digest, position: u64) {
        if let Some(bar) = self.bars.lock().expect("bars lock").get(id) {
            let done = bar.position();
            bar.set_position(position);
            self.total.set_position((self.total.position() + position).saturating_sub(done));
        }
    }

    fn finish(&self, id: &Digest) {
        if let Some(bar) = self.bars.lock().expect("bars lock").remove(id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn skip(&self, _id: &Digest, _label: &str, _total: u64, _why: Skipped) {}

    fn note(&self, message: &str) {
        let _ = self.multi.println(format!("note: {message}"));
    }
}

/// Prints notes on stderr: above the bars when there are bars, else as plain lines.
pub struct Quiet;

impl Progress for Quiet {
    fn note(&self, message: &str) {
        match MULTI.get() {
            Some(multi) => {
                let _ = multi.println(format!("note: {message}"));
            }
            None => eprintln!("note: {message}"),
        }
    }
}
