//! `--no-cache` and opening the digest cache for `push` and `sign DIR` (never `verify`).

use std::sync::Arc;

use clap::Args;
use modelsign::digest_cache::{DigestCache, HashSummary};

use super::output;

#[derive(Args, Clone, Debug, Default)]
pub struct CacheArgs {
    /// Read and hash every file, even those unchanged since they were last hashed (the digest
    /// cache, kept in $MODELSIGN_CACHE_DIR, $XDG_CACHE_HOME/modelsign or ~/.cache/modelsign, is
    /// then neither read nor written). `verify` never uses the cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl CacheArgs {
    /// The cache to use, if any; says on stderr why there is none when one was wanted.
    pub fn open(&self) -> Option<Arc<DigestCache>> {
        if self.no_cache {
            return None;
        }
        match DigestCache::open_default() {
            Ok(cache) => {
                // At most once a day: entries of files that are gone, and beyond the cap.
                cache.prune_if_due();
                Some(Arc::new(cache))
            }
            Err(why) => {
                eprintln!("note: {why}; hashing every file");
                None
            }
        }
    }
}

/// "hashed 1 of 12 files (1.0 MiB); 11 unchanged since last hashed (1.0 GiB not read)"
pub fn describe(h: &HashSummary) -> String {
    let mut s = format!("hashed {} of {} files ({})", h.hashed, h.files, output::bytes(h.bytes_hashed));
    if h.from_cache > 0 {
        s.push_str(&format!(
            "; {} unchanged since last hashed ({} not read)",
            h.from_cache,
            output::bytes(h.bytes_from_cache)
        ));
    }
    s
}
