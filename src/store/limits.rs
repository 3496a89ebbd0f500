//! Caps on what a registry or layout folder can make a reader of referrers read: entries
//! and pages of a listing, bytes of a listing, referrer manifests fetched, and failures
//! tolerated. Each cap has one clear error when it is reached; together they keep memory
//! well under 100 MB whatever the registry sends (4 MiB per manifest or index, 16 MiB per
//! listing, 16 MiB per bundle).
//!
//! [`Target::referrers`](super::Target::referrers) enforces the listing caps itself; a
//! reader that fetches the referrers it listed (verify, discover, copy) carries a
//! [`ReferrerBudget`].

use crate::error::{Error, Result};
use crate::oci::Descriptor;

/// Most referrers listed for one subject.
pub const MAX_REFERRERS: usize = 1000;
/// Most pages of a referrers API listing followed.
pub const MAX_REFERRER_PAGES: usize = 100;
/// Most bytes of referrers API pages read for one listing (every page is also at most
/// [`MAX_MANIFEST_SIZE`](super::MAX_MANIFEST_SIZE)).
pub const MAX_REFERRER_LISTING_BYTES: u64 = 16 << 20;
/// Most referrer manifests fetched for one subject.
pub const MAX_REFERRER_FETCHES: usize = MAX_REFERRERS;
/// Most referrers of one subject that may fail to be fetched (each failure has already been
/// retried) before the reader gives up on the registry.
pub const MAX_REFERRER_FAILURES: usize = 10;

/// The error for a listing past a cap: `what` names the listing.
pub(crate) fn listing_too_long(what: &str, reason: String) -> Error {
    Error::InvalidContent { what: what.to_string(), reason: format!("{reason}; refusing to read more") }
}

/// Counts what a reader of the referrers of one subject has fetched and how often it
/// failed, and says when to stop.
#[derive(Debug)]
pub struct ReferrerBudget {
    subject: String,
    fetched: usize,
    failed: usize,
    max_fetches: usize,
    max_failures: usize,
}

impl ReferrerBudget {
    /// The default caps, for the referrers of `subject`.
    pub fn new(subject: &Descriptor) -> Self {
        Self::with_caps(subject, MAX_REFERRER_FETCHES, MAX_REFERRER_FAILURES)
    }

    pub fn with_caps(subject: &Descriptor, max_fetches: usize, max_failures: usize) -> Self {
        ReferrerBudget { subject: subject.digest.to_string(), fetched: 0, failed: 0, max_fetches, max_failures }
    }

    /// Call before fetching a referrer's manifest: fails past the cap on fetches.
    pub fn fetch(&mut self) -> Result<()> {
        self.fetched += 1;
        if self.fetched > self.max_fetches {
            return Err(listing_too_long(
                &format!("referrers of {}", self.subject),
                format!("more than {} referrer manifests to fetch", self.max_fetches),
            ));
        }
        Ok(())
    }

    /// Call when fetching a referrer failed (`error`): fails, with the last error, past the
    /// cap on failures.
    pub fn failed(&mut self, error: &Error) -> Result<()> {
        self.failed += 1;
        if self.failed > self.max_failures {
            return Err(Error::InvalidContent {
                what: format!("referrers of {}", self.subject),
                reason: format!(
                    "more than {} referrers could not be fetched (the last: {error}); giving up on the registry",
                    self.max_failures
                ),
            });
        }
        Ok(())
    }

    pub fn fetched(&self) -> usize {
        self.fetched
    }

    pub fn failures(&self) -> usize {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_stop_past_their_caps() {
        let subject = Descriptor::of_bytes(crate::oci::MEDIA_TYPE_IMAGE_MANIFEST, b"{}");
        let mut b = ReferrerBudget::with_caps(&subject, 3, 1);
        for _ in 0..3 {
            b.fetch().unwrap();
        }
        let e = b.fetch().unwrap_err().to_string();
        assert!(e.contains("more than 3 referrer manifests") && e.contains(&subject.digest.to_string()), "{e}");
        let cause = Error::Internal("HTTP 503".into());
        b.failed(&cause).unwrap();
        let e = b.failed(&cause).unwrap_err().to_string();
        assert!(e.contains("more than 1 referrers could not be fetched") && e.contains("HTTP 503"), "{e}");
        assert_eq!((b.fetched(), b.failures()), (4, 2));
    }
}
