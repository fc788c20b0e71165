//! Duplicate request filters: Scrapy's `RFPDupeFilter` — a request whose fingerprint
//! was seen before is dropped unless it has `dont_filter`. Fingerprints are kept as
//! 20 raw bytes, not hex strings, to keep a long crawl's memory down.

use std::collections::HashSet;

use crate::http::fingerprint::Fingerprint;
use crate::http::Request;

/// An in-memory fingerprint set.
///
/// ```
/// use arachne::dupefilter::MemoryDupeFilter;
/// use arachne::http::Request;
///
/// let mut f = MemoryDupeFilter::default();
/// let r = Request::get("http://127.0.0.1/?b=2&a=1").unwrap();
/// assert!(!f.request_seen(&r));
/// assert!(f.request_seen(&Request::get("http://127.0.0.1/?a=1&b=2").unwrap()));
/// ```
#[derive(Debug, Default)]
pub struct MemoryDupeFilter {
    seen: HashSet<Fingerprint>,
}

impl MemoryDupeFilter {
    /// Records the request; `true` if it was seen already (a duplicate).
    pub fn request_seen(&mut self, request: &Request) -> bool {
        !self.seen.insert(request.fingerprint())
    }

    /// How many distinct fingerprints are held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
