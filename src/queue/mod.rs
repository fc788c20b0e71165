//! Request queues. The memory queue is Scrapy's `ScrapyPriorityQueue` over
//! `LifoMemoryQueue` (depth-first, the default) or `FifoMemoryQueue` (breadth-first
//! with `DEPTH_PRIORITY = 1`): one sub-queue per priority, the highest priority served
//! first, LIFO or FIFO inside a priority.
//!
//! A pending request is held in its compact form ([`Request::to_compact`], about 60
//! bytes for a typical one) rather than as a `Request` (about 800 bytes with its
//! allocations), packed into byte chunks, and decoded when it is popped: a million
//! pending requests cost tens of megabytes, not a gigabyte.

pub mod disk;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::error::ConfigError;
use crate::http::Request;

/// Order inside one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOrder {
    /// Last in, first out: depth-first order (Scrapy's default).
    Lifo,
    /// First in, first out: breadth-first order.
    Fifo,
}

/// The last dotted segment of a Scrapy class path, lowercased
/// (`scrapy.squeues.FifoMemoryQueue` → `fifomemoryqueue`): what queue settings match on.
pub(crate) fn class_name(value: &str) -> String {
    value
        .rsplit('.')
        .next()
        .unwrap_or(value)
        .to_ascii_lowercase()
}

impl QueueOrder {
    /// Reads `SCHEDULER_MEMORY_QUEUE`: Scrapy's class paths
    /// (`scrapy.squeues.FifoMemoryQueue`) or just `fifo` / `lifo`.
    pub fn from_setting(value: &str) -> Result<QueueOrder, ConfigError> {
        match class_name(value).as_str() {
            "lifomemoryqueue" | "lifo" => Ok(QueueOrder::Lifo),
            "fifomemoryqueue" | "fifo" => Ok(QueueOrder::Fifo),
            _ => Err(ConfigError::InvalidValue {
                key: "SCHEDULER_MEMORY_QUEUE".into(),
                value: value.into(),
                expected: "scrapy.squeues.LifoMemoryQueue or scrapy.squeues.FifoMemoryQueue",
            }),
        }
    }
}

/// A priority queue of requests held in memory.
///
/// ```
/// use arachne::http::Request;
/// use arachne::queue::{MemoryQueue, QueueOrder};
///
/// let mut q = MemoryQueue::new(QueueOrder::Lifo);
/// q.push(Request::get("http://127.0.0.1/a").unwrap());
/// q.push(Request::get("http://127.0.0.1/b").unwrap().priority(5));
/// q.push(Request::get("http://127.0.0.1/c").unwrap());
/// let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|r| r.url.path().to_string()).collect();
/// assert_eq!(order, ["/b", "/c", "/a"]);
/// ```
///
/// Requests are stored in their compact form and decoded by `pop`, so what comes
/// back equals what went in, except that a typed callback comes back in its serde
/// form (which [`CallbackData::resolve`](crate::spider::CallbackData::resolve) maps
/// onto the spider's type, as after a `JOBDIR` restart). A request that has no
/// compact form (a callback that does not serialise) is kept as it is, in its place.
pub struct MemoryQueue {
    order: QueueOrder,
    lanes: BTreeMap<i32, Lane>,
    len: usize,
    /// Reused to encode each pushed request before it is copied into a chunk.
    scratch: Vec<u8>,
}

/// The requests of one priority: records packed back to back in chunks, the oldest
/// chunk first. A record is the compact request with its length after it (LIFO
/// reads from the end) or before it (FIFO reads from the front); an empty record
/// stands for the next request in `kept`.
///
/// Chunks never reallocate (a record goes into a new chunk when it does not fit), so
/// there is no growth slack beyond one partly filled chunk per end, and no
/// per-request allocation.
#[derive(Default)]
struct Lane {
    chunks: VecDeque<Vec<u8>>,
    /// FIFO: where the next record starts in the front chunk.
    head: usize,
    /// Records in the lane.
    len: usize,
    /// Requests without a compact form, in queue order.
    kept: VecDeque<Request>,
    /// Capacity of the next chunk: small for a priority with a few requests,
    /// doubling up to `MAX_CHUNK`.
    next_chunk: usize,
}

/// The first chunk of a priority.
const MIN_CHUNK: usize = 256;
/// Chunks grow to this size (a record larger than it gets a chunk of its own).
const MAX_CHUNK: usize = 64 << 10;

impl MemoryQueue {
    /// An empty queue.
    pub fn new(order: QueueOrder) -> Self {
        MemoryQueue {
            order,
            lanes: BTreeMap::new(),
            len: 0,
            scratch: Vec::new(),
        }
    }

    /// Adds a request.
    pub fn push(&mut self, request: Request) {
        self.scratch.clear();
        let lane = self.lanes.entry(request.priority).or_default();
        match request.write_compact(&mut self.scratch) {
            Ok(()) => lane.push_record(&self.scratch, self.order),
            Err(e) => {
                log::debug!("keeping a request as it is in the memory queue: {e}");
                lane.push_record(&[], self.order);
                lane.kept.push_back(request);
            }
        }
        self.len += 1;
    }

    /// Takes the next request: highest priority first.
    pub fn pop(&mut self) -> Option<Request> {
        loop {
            let mut entry = self.lanes.last_entry()?;
            let lane = entry.get_mut();
            let before = lane.len;
            let popped = lane.pop(self.order);
            self.len -= before - lane.len;
            if lane.len == 0 {
                entry.remove();
            }
            match popped {
                Some(Ok(request)) => return Some(request),
                // Bytes this queue wrote itself: only a bug gets here. Say so and go
                // on with the next request rather than stop the crawl.
                Some(Err(e)) => log::error!("dropping a queued request that does not decode: {e}"),
                None => {}
            }
        }
    }

    /// The priority the next [`pop`](MemoryQueue::pop) would serve, if any waits.
    pub fn peek_priority(&self) -> Option<i32> {
        self.lanes
            .iter()
            .rev()
            .find(|(_, lane)| lane.len > 0)
            .map(|(p, _)| *p)
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes the queue has allocated for pending requests (chunk capacities),
    /// not counting requests kept whole.
    pub fn allocated_bytes(&self) -> usize {
        self.lanes
            .values()
            .flat_map(|lane| &lane.chunks)
            .map(Vec::capacity)
            .sum()
    }
}

impl fmt::Debug for MemoryQueue {
    /// The shape, not the requests (the queue may hold millions).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("order", &self.order)
            .field("len", &self.len)
            .field("priorities", &self.lanes.len())
            .field("allocated_bytes", &self.allocated_bytes())
            .finish()
    }
}

impl Lane {
    fn push_record(&mut self, payload: &[u8], order: QueueOrder) {
        let mut length = [0u8; 10];
        let length = varint(payload.len(), &mut length);
        let need = payload.len() + length.len();
        let fits = self
            .chunks
            .back()
            .is_some_and(|c| c.capacity() - c.len() >= need);
        if !fits {
            let capacity = self.next_chunk.max(MIN_CHUNK);
            self.next_chunk = (capacity * 2).min(MAX_CHUNK);
            self.chunks
                .push_back(Vec::with_capacity(capacity.max(need)));
        }
        let Some(chunk) = self.chunks.back_mut() else {
            return; // pushed just above
        };
        match order {
            QueueOrder::Fifo => {
                chunk.extend_from_slice(length);
                chunk.extend_from_slice(payload);
            }
            QueueOrder::Lifo => {
                chunk.extend_from_slice(payload);
                // Reversed, so that it reads backwards from the end of the chunk.
                chunk.extend(length.iter().rev());
            }
        }
        self.len += 1;
    }

    /// The next record decoded, `None` if the lane is empty. Framing that does not
    /// read back (a bug) empties the lane with an error logged.
    fn pop(&mut self, order: QueueOrder) -> Option<Result<Request, String>> {
        let popped = match order {
            QueueOrder::Lifo => self.pop_back(),
            QueueOrder::Fifo => self.pop_front(),
        };
        if popped.is_none() && self.len > 0 {
            log::error!(
                "dropping {} queued requests: the memory queue's framing is corrupt",
                self.len
            );
            *self = Lane::default();
        }
        popped
    }

    fn pop_back(&mut self) -> Option<Result<Request, String>> {
        let chunk = self.chunks.back_mut()?;
        let (len, n) = varint_back(chunk)?;
        let start = chunk.len().checked_sub(n)?.checked_sub(len)?;
        let payload = chunk.get(start..start + len)?;
        let request = if payload.is_empty() {
            self.kept.pop_back().map(Ok)?
        } else {
            Request::from_compact(payload).map_err(|e| e.to_string())
        };
        chunk.truncate(start);
        if chunk.is_empty() {
            self.chunks.pop_back();
        }
        self.len -= 1;
        Some(request)
    }

    fn pop_front(&mut self) -> Option<Result<Request, String>> {
        let chunk = self.chunks.front()?;
        let rest = chunk.get(self.head..)?;
        let (len, n) = varint_front(rest)?;
        let payload = rest.get(n..n.checked_add(len)?)?;
        let request = if payload.is_empty() {
            self.kept.pop_front().map(Ok)?
        } else {
            Request::from_compact(payload).map_err(|e| e.to_string())
        };
        self.head += n + len;
        if self.head >= chunk.len() {
            self.chunks.pop_front();
            self.head = 0;
        }
        self.len -= 1;
        Some(request)
    }
}

/// `n` as a LEB128 varint in `buf`.
fn varint(mut n: usize, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = 0;
    while n >= 0x80 && i < 9 {
        buf[i] = n as u8 | 0x80;
        n >>= 7;
        i += 1;
    }
    buf[i] = n as u8;
    &buf[..=i]
}

/// The varint at the start of `bytes` and its length.
fn varint_front(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut n = 0usize;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        n |= usize::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// The reversed varint at the end of `bytes` and its length.
fn varint_back(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut n = 0usize;
    for (i, &b) in bytes.iter().rev().enumerate().take(10) {
        n |= usize::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, prio: i32) -> Request {
        Request::get(format!("http://127.0.0.1{path}"))
            .unwrap()
            .priority(prio)
    }

    fn drain(q: &mut MemoryQueue) -> Vec<String> {
        std::iter::from_fn(|| q.pop())
            .map(|r| r.url.path().to_string())
            .collect()
    }

    /// FIFO inside a priority, higher priorities first, negatives last.
    #[test]
    fn fifo_with_priorities() {
        let mut q = MemoryQueue::new(QueueOrder::Fifo);
        for (p, prio) in [("/a", 0), ("/b", -1), ("/c", 0), ("/d", 3)] {
            q.push(req(p, prio));
        }
        assert_eq!(drain(&mut q), ["/d", "/a", "/c", "/b"]);
        assert!(q.is_empty());
    }

    /// LIFO inside a priority, higher priorities first.
    #[test]
    fn lifo_with_priorities() {
        let mut q = MemoryQueue::new(QueueOrder::Lifo);
        for (p, prio) in [("/a", 0), ("/b", -1), ("/c", 0), ("/d", 3), ("/e", -1)] {
            q.push(req(p, prio));
        }
        assert_eq!(q.len(), 5);
        assert_eq!(drain(&mut q), ["/d", "/c", "/a", "/e", "/b"]);
        assert!(q.is_empty() && q.lanes.is_empty() && q.allocated_bytes() == 0);
    }

    /// A request comes back with every field, through either order.
    #[test]
    fn requests_come_back_whole() {
        #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
        #[serde(rename_all = "snake_case")]
        enum Cb {
            ParseItem { id: u32 },
        }
        for order in [QueueOrder::Lifo, QueueOrder::Fifo] {
            let mut q = MemoryQueue::new(order);
            let mut r = Request::new(crate::http::Method::POST, "http://127.0.0.1:8899/p/1?x=1")
                .unwrap()
                .header("X-A", "1")
                .body(vec![0u8, 255])
                .meta("depth", 3)
                .meta("nested", serde_json::json!({"a": [1.5, null]}))
                .priority(-3)
                .dont_filter(true)
                .callback(Cb::ParseItem { id: 9 })
                .errback(Cb::ParseItem { id: 10 });
            r.flags.push("cached".into());
            q.push(r.clone());
            let back = q.pop().unwrap();
            assert_eq!(back.url, r.url);
            assert_eq!(back.method, r.method);
            assert_eq!(back.headers.get("x-a").unwrap(), "1");
            assert_eq!(
                (&back.body, &back.meta, back.priority),
                (&r.body, &r.meta, -3)
            );
            assert!(back.dont_filter);
            assert_eq!(back.flags, r.flags);
            assert_eq!(back.callback, r.callback);
            assert_eq!(
                back.callback.unwrap().resolve::<Cb>().unwrap(),
                Cb::ParseItem { id: 9 }
            );
            assert_eq!(
                back.errback.unwrap().resolve::<Cb>().unwrap(),
                Cb::ParseItem { id: 10 }
            );
            assert!(q.pop().is_none());
        }
    }

    /// A request without a compact form is kept whole, in its place in the order.
    #[test]
    fn unencodable_request_keeps_its_place() {
        #[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
        struct Odd(std::collections::HashMap<(u8, u8), u8>);
        let odd = || {
            Request::get("http://127.0.0.1/odd")
                .unwrap()
                .callback(Odd([((1, 2), 3)].into_iter().collect()))
        };
        assert!(odd().to_compact().is_err());
        for (order, want) in [
            (QueueOrder::Lifo, ["/c", "/odd", "/a", "/odd"]),
            (QueueOrder::Fifo, ["/odd", "/a", "/odd", "/c"]),
        ] {
            let mut q = MemoryQueue::new(order);
            q.push(odd());
            q.push(req("/a", 0));
            q.push(odd());
            q.push(req("/c", 0));
            let mut got = Vec::new();
            while let Some(r) = q.pop() {
                if r.url.path() == "/odd" {
                    // Still the typed value (a serde round trip would have lost it).
                    assert!(r.callback.unwrap().resolve::<Odd>().is_ok());
                }
                got.push(r.url.path().to_string());
            }
            assert_eq!(got, want, "{order:?}");
        }
    }

    /// `Debug` shows the shape, not the bytes.
    #[test]
    fn debug_is_short() {
        let mut q = MemoryQueue::new(QueueOrder::Fifo);
        for i in 0..1000 {
            q.push(req(&format!("/{i}"), i % 3));
        }
        let shown = format!("{q:?}");
        assert!(shown.len() < 200 && shown.contains("len: 1000"), "{shown}");
    }

    proptest::proptest! {
        /// Any mix of pushes (small and chunk-sized requests, a few priorities) and
        /// pops gives the order of the plain `BTreeMap<i32, VecDeque<_>>` queue.
        #[test]
        fn same_order_as_reference(
            lifo in proptest::prelude::any::<bool>(),
            ops in proptest::collection::vec((-2i32..3, 0u8..10), 0..400),
        ) {
            let order = if lifo { QueueOrder::Lifo } else { QueueOrder::Fifo };
            let mut q = MemoryQueue::new(order);
            let mut model: BTreeMap<i32, VecDeque<String>> = BTreeMap::new();
            for (n, (prio, op)) in ops.into_iter().enumerate() {
                if op < 3 {
                    let mut entry = model.last_entry();
                    let want = entry.as_mut().and_then(|e| match order {
                        QueueOrder::Lifo => e.get_mut().pop_back(),
                        QueueOrder::Fifo => e.get_mut().pop_front(),
                    });
                    if entry.as_ref().is_some_and(|e| e.get().is_empty()) {
                        entry.map(|e| e.remove());
                    }
                    let got = q.pop().map(|r| r.url.path().to_string());
                    proptest::prop_assert_eq!(got, want);
                } else {
                    let path = format!("/{n}");
                    // Now and then a request larger than a chunk.
                    let body = if op == 9 { vec![7u8; MAX_CHUNK + 10] } else { Vec::new() };
                    q.push(req(&path, prio).body(body));
                    model.entry(prio).or_default().push_back(path);
                }
                proptest::prop_assert_eq!(q.len(), model.values().map(VecDeque::len).sum::<usize>());
            }
        }
    }

    /// Many requests in one priority span many chunks and come back in order.
    #[test]
    fn many_chunks() {
        for order in [QueueOrder::Lifo, QueueOrder::Fifo] {
            let mut q = MemoryQueue::new(order);
            for i in 0..20_000 {
                q.push(req(&format!("/{i}"), 0));
            }
            assert!(q.lanes[&0].chunks.len() > 10);
            // Packed: well under 100 bytes a request, chunks included.
            assert!(
                q.allocated_bytes() < 20_000 * 100,
                "{}",
                q.allocated_bytes()
            );
            let got = drain(&mut q);
            let mut want: Vec<_> = (0..20_000).map(|i| format!("/{i}")).collect();
            if order == QueueOrder::Lifo {
                want.reverse();
            }
            assert_eq!(got, want);
        }
    }

    /// Scrapy's class paths and short names are accepted; anything else is an error.
    #[test]
    fn order_from_setting() {
        assert_eq!(
            QueueOrder::from_setting("scrapy.squeues.FifoMemoryQueue").unwrap(),
            QueueOrder::Fifo
        );
        assert_eq!(QueueOrder::from_setting("lifo").unwrap(), QueueOrder::Lifo);
        assert!(QueueOrder::from_setting("heap").is_err());
    }
}
