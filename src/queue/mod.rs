//! Request queues. The memory queue is Scrapy's `ScrapyPriorityQueue` over
//! `LifoMemoryQueue` (depth-first, the default) or `FifoMemoryQueue` (breadth-first
//! with `DEPTH_PRIORITY = 1`): one sub-queue per priority, the highest priority served
//! first, LIFO or FIFO inside a priority.

pub mod disk;

use std::collections::{BTreeMap, VecDeque};

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

impl QueueOrder {
    /// Reads `SCHEDULER_MEMORY_QUEUE`: Scrapy's class paths
    /// (`scrapy.squeues.FifoMemoryQueue`) or just `fifo` / `lifo`.
    pub fn from_setting(value: &str) -> Result<QueueOrder, ConfigError> {
        let last = value
            .rsplit('.')
            .next()
            .unwrap_or(value)
            .to_ascii_lowercase();
        match last.as_str() {
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
#[derive(Debug)]
pub struct MemoryQueue {
    order: QueueOrder,
    by_priority: BTreeMap<i32, VecDeque<Request>>,
    len: usize,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new(order: QueueOrder) -> Self {
        MemoryQueue {
            order,
            by_priority: BTreeMap::new(),
            len: 0,
        }
    }

    /// Adds a request.
    pub fn push(&mut self, request: Request) {
        self.by_priority
            .entry(request.priority)
            .or_default()
            .push_back(request);
        self.len += 1;
    }

    /// Takes the next request: highest priority first.
    pub fn pop(&mut self) -> Option<Request> {
        let mut entry = self.by_priority.last_entry()?;
        let queue = entry.get_mut();
        let request = match self.order {
            QueueOrder::Lifo => queue.pop_back(),
            QueueOrder::Fifo => queue.pop_front(),
        };
        if queue.is_empty() {
            entry.remove();
        }
        if request.is_some() {
            self.len -= 1;
        }
        request
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
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
