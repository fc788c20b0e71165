//! The scheduler's seams, as in Scrapy: a [`RequestScheduler`] (enqueue → accepted?,
//! next, pending, close), built by the factory `SCHEDULER` names, over a request queue
//! ([`RequestQueue`]: `SCHEDULER_PRIORITY_QUEUE` with `SCHEDULER_MEMORY_QUEUE` or, with
//! `JOBDIR`, `SCHEDULER_DISK_QUEUE`) and a duplicate filter ([`DupeFilter`]:
//! `DUPEFILTER_CLASS`). The Scheduler actor only forwards messages to these traits, so
//! another frontier (Redis, say) plugs in by registering a factory.
//!
//! With a `JOBDIR` the default scheduler keeps pending requests in the crash-safe log of
//! [`crate::queue::disk`] and the seen fingerprints in `requests.seen`. A request taken
//! from the disk queue comes with a [`Ticket`]; the engine hands the ticket back with
//! [`RequestScheduler::done`] once everything the request led to is safe — its
//! follow-up requests queued, its items through the pipeline and written by the feeds.
//! Until then it stays in the log, so a killed crawl crawls again exactly what was in
//! flight.
//!
//! ```
//! use arachne::http::Request;
//! use arachne::scheduler::{RequestScheduler, Frontier};
//! use arachne::settings::Settings;
//!
//! let mut s = Frontier::from_settings(&Settings::new(), None).unwrap();
//! assert!(s.enqueue(Request::get("http://127.0.0.1/a").unwrap()).unwrap().is_none());
//! // A duplicate is refused, and handed back (for the `request_dropped` signal).
//! assert!(s.enqueue(Request::get("http://127.0.0.1/a").unwrap()).unwrap().is_some());
//! let next = s.next().unwrap().unwrap();
//! assert_eq!(next.request.url.path(), "/a");
//! assert!(next.ticket.is_none()); // in memory: nothing to acknowledge
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dupefilter::{FingerprintSet, MemoryDupeFilter};
use crate::error::ConfigError;
use crate::http::fingerprint::to_hex;
use crate::http::Request;
use crate::jobdir::Jobdir;
use crate::queue::disk::{DiskQueue, DiskQueueOptions};
use crate::queue::{MemoryQueue, QueueOrder};
use crate::settings::Settings;

/// Identifies a request taken from a persistent queue until it is done.
pub type Ticket = u64;

/// A request the scheduler hands out, with its ticket when it must be acknowledged.
#[derive(Debug)]
pub struct Scheduled {
    /// The request.
    pub request: Request,
    /// `Some` for a request from a persistent queue: give it back to
    /// [`RequestScheduler::done`] when the request is finished.
    pub ticket: Option<Ticket>,
}

/// What went wrong in a scheduler, queue or filter: the crawl logs it and stops
/// scheduling rather than lose requests silently.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The persistent frontier failed (I/O, corruption).
    #[error("request queue: {0}")]
    Queue(String),
    /// The duplicate filter's file failed.
    #[error("duplicate filter: {0}")]
    DupeFilter(String),
}

/// Scrapy's scheduler interface, synchronous: the Scheduler actor calls it.
pub trait RequestScheduler {
    /// Offers a request (Scrapy's `enqueue_request`); a refused one (a duplicate) is
    /// handed back as `Some`, for the `request_dropped` signal.
    fn enqueue(&mut self, request: Request) -> Result<Option<Request>, SchedulerError>;
    /// Offers a start request (from the spider's `start()`). Scrapy 2.13 keeps these in
    /// queues of their own, served after other requests of the same priority and in
    /// the order they were yielded; the default treats them as any other request.
    fn enqueue_start(&mut self, request: Request) -> Result<Option<Request>, SchedulerError> {
        self.enqueue(request)
    }
    /// The next request to download, highest priority first.
    fn next(&mut self) -> Result<Option<Scheduled>, SchedulerError>;
    /// Requests handed out earlier are finished: they never come back.
    fn done(&mut self, tickets: &[Ticket]) -> Result<(), SchedulerError> {
        let _ = tickets;
        Ok(())
    }
    /// Makes what was enqueued and done so far durable (to the OS; to the disk when
    /// the fsync interval has elapsed).
    fn flush(&mut self) -> Result<(), SchedulerError> {
        Ok(())
    }
    /// How many requests wait (not counting those handed out).
    fn pending(&self) -> usize;
    /// The crawl is over; returns how many requests were left.
    fn close(&mut self) -> Result<usize, SchedulerError>;
    /// How many requests were pending when the scheduler opened a resumed job.
    fn resumed_pending(&self) -> Option<usize> {
        None
    }
}

/// A priority queue of requests (`SCHEDULER_PRIORITY_QUEUE` over a memory or disk
/// queue).
pub trait RequestQueue {
    /// Adds a request; `Err` with the request back when it cannot be stored here (it
    /// does not serialise), so the caller can keep it elsewhere.
    fn push(&mut self, request: Request) -> Result<(), PushError>;
    /// The next request.
    fn pop(&mut self) -> Result<Option<Scheduled>, SchedulerError>;
    /// Finished tickets.
    fn ack(&mut self, tickets: &[Ticket]) -> Result<(), SchedulerError> {
        let _ = tickets;
        Ok(())
    }
    /// See [`RequestScheduler::flush`].
    fn flush(&mut self) -> Result<(), SchedulerError> {
        Ok(())
    }
    /// Closes the queue durably.
    fn close(&mut self) -> Result<(), SchedulerError> {
        self.flush()
    }
    /// How many wait.
    fn len(&self) -> usize;
    /// Whether none wait.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The priority the next pop would serve (used to interleave the start queues).
    fn peek_priority(&self) -> Option<i32>;
}

/// Why [`RequestQueue::push`] did not store a request.
#[derive(Debug)]
pub enum PushError {
    /// It cannot be serialised; here it is back.
    Unserializable(Box<Request>, String),
    /// The queue failed; here it is back.
    Failed(Box<Request>, SchedulerError),
}

impl RequestQueue for MemoryQueue {
    fn push(&mut self, request: Request) -> Result<(), PushError> {
        MemoryQueue::push(self, request);
        Ok(())
    }
    fn pop(&mut self) -> Result<Option<Scheduled>, SchedulerError> {
        Ok(MemoryQueue::pop(self).map(|request| Scheduled {
            request,
            ticket: None,
        }))
    }
    fn len(&self) -> usize {
        MemoryQueue::len(self)
    }
    fn peek_priority(&self) -> Option<i32> {
        MemoryQueue::peek_priority(self)
    }
}

/// The disk queue of a `JOBDIR`, holding requests in their compact binary form
/// ([`Request::write_compact`]: about 60 bytes for a typical request, every field kept).
#[derive(Debug)]
pub struct DiskRequestQueue {
    queue: DiskQueue,
    /// Reused for each request's compact form.
    buf: Vec<u8>,
    /// Or-ed into this queue's tickets, so two queues of one job never share one.
    tag: Ticket,
}

/// The tag of the start-request disk queue's tickets.
const START_TICKET: Ticket = 1 << 63;

impl DiskRequestQueue {
    /// Opens `dir`, calling `seen` with every fingerprint the log still holds.
    ///
    /// # Errors
    /// A corrupt or incompatible queue, or I/O.
    pub fn open(
        dir: &Path,
        order: QueueOrder,
        fsync_interval: Option<Duration>,
        seen: impl FnMut([u8; 20]),
    ) -> Result<(DiskRequestQueue, usize), SchedulerError> {
        let opts = DiskQueueOptions {
            order,
            fsync_interval,
            ..Default::default()
        };
        let (queue, recovered) =
            DiskQueue::open(dir, opts, seen).map_err(|e| SchedulerError::Queue(e.to_string()))?;
        Ok((
            DiskRequestQueue {
                queue,
                buf: Vec::new(),
                tag: 0,
            },
            recovered.pending,
        ))
    }
}

fn queue_err(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Queue(e.to_string())
}

impl RequestQueue for DiskRequestQueue {
    fn push(&mut self, request: Request) -> Result<(), PushError> {
        self.buf.clear();
        if let Err(e) = request.write_compact(&mut self.buf) {
            return Err(PushError::Unserializable(Box::new(request), e.to_string()));
        }
        let bytes = &self.buf;
        let fp = if request.dont_filter {
            None
        } else {
            Some(request.fingerprint())
        };
        match self.queue.push(request.priority, fp, bytes) {
            Ok(_) => Ok(()),
            Err(e) => Err(PushError::Failed(Box::new(request), queue_err(e))),
        }
    }

    fn pop(&mut self) -> Result<Option<Scheduled>, SchedulerError> {
        loop {
            let Some((ticket, bytes)) = self.queue.pop().map_err(queue_err)? else {
                return Ok(None);
            };
            match Request::from_compact(&bytes) {
                Ok(request) => {
                    return Ok(Some(Scheduled {
                        request,
                        ticket: Some(ticket | self.tag),
                    }))
                }
                Err(e) => {
                    // Written by this format and checksummed, so this is a bug or a
                    // request from an older Arachne: say so, and do not loop on it.
                    log::error!("Dropping a persisted request that does not parse: {e}");
                    self.queue.ack(ticket).map_err(queue_err)?;
                }
            }
        }
    }

    fn ack(&mut self, tickets: &[Ticket]) -> Result<(), SchedulerError> {
        for t in tickets {
            if t & START_TICKET == self.tag {
                self.queue.ack(t & !START_TICKET).map_err(queue_err)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SchedulerError> {
        self.queue.flush().map_err(queue_err)
    }

    fn close(&mut self) -> Result<(), SchedulerError> {
        self.queue.sync().map_err(queue_err)
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn peek_priority(&self) -> Option<i32> {
        self.queue.peek_priority()
    }
}

/// A duplicate filter (`DUPEFILTER_CLASS`).
pub trait DupeFilter {
    /// Records the request; `true` if it was seen before.
    fn request_seen(&mut self, request: &Request) -> bool;
    /// Writes what was recorded (see [`RequestScheduler::flush`]).
    fn flush(&mut self) -> Result<(), SchedulerError> {
        Ok(())
    }
    /// How many fingerprints are held.
    fn len(&self) -> usize;
    /// Whether none are.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DupeFilter for MemoryDupeFilter {
    fn request_seen(&mut self, request: &Request) -> bool {
        MemoryDupeFilter::request_seen(self, request)
    }
    fn len(&self) -> usize {
        MemoryDupeFilter::len(self)
    }
}

/// Scrapy's `BaseDupeFilter`: filters nothing.
#[derive(Debug, Default)]
pub struct NoDupeFilter;

impl DupeFilter for NoDupeFilter {
    fn request_seen(&mut self, _: &Request) -> bool {
        false
    }
    fn len(&self) -> usize {
        0
    }
}

/// Scrapy's `RFPDupeFilter` with a `JOBDIR`: fingerprints in memory and appended to
/// `requests.seen`, one lowercase hex SHA-1 per line, as Scrapy writes it.
///
/// The file may lag the queue's log (it is written after it), never lead it: the
/// fingerprints of requests in the log are added back when the job opens, so a kill
/// between the two writes loses nothing.
#[derive(Debug)]
pub struct FileDupeFilter {
    seen: FingerprintSet,
    out: BufWriter<File>,
    path: PathBuf,
}

impl FileDupeFilter {
    /// Opens `path`, reading the fingerprints it has; a torn last line (a kill in the
    /// middle of a write) is cut off with a warning, a bad line elsewhere is an error.
    ///
    /// # Errors
    /// I/O, or a line that is not a fingerprint.
    pub fn open(path: &Path, mut seen: FingerprintSet) -> Result<Self, SchedulerError> {
        let err =
            |e: std::io::Error| SchedulerError::DupeFilter(format!("{}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(err)?;
        let mut good = 0u64;
        let mut reader = BufReader::new(&mut file);
        let mut line = String::new();
        let mut lineno = 0usize;
        loop {
            line.clear();
            let n = match reader.read_line(&mut line) {
                Ok(n) => n,
                // Not UTF-8: treat as a bad line below.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => usize::MAX,
                Err(e) => return Err(err(e)),
            };
            if n == 0 {
                break;
            }
            lineno += 1;
            let complete = n != usize::MAX && line.ends_with('\n');
            let parsed = complete
                .then(|| hex::decode(line.trim_end()).ok())
                .flatten()
                .and_then(|b| <[u8; 20]>::try_from(b.as_slice()).ok());
            match parsed {
                Some(fp) => {
                    seen.insert(fp);
                    good += n as u64;
                }
                None => {
                    let rest = reader.fill_buf().map(|b| !b.is_empty()).unwrap_or(false);
                    if rest || complete {
                        return Err(SchedulerError::DupeFilter(format!(
                            "{}: line {lineno} is not a request fingerprint; the file is corrupt",
                            path.display()
                        )));
                    }
                    log::warn!(
                        "{}: cutting off a torn last line (the previous run was killed while writing it)",
                        path.display()
                    );
                    break;
                }
            }
        }
        drop(reader);
        file.set_len(good).map_err(err)?;
        file.seek(std::io::SeekFrom::End(0)).map_err(err)?;
        Ok(FileDupeFilter {
            seen,
            out: BufWriter::new(file),
            path: path.to_path_buf(),
        })
    }
}

impl DupeFilter for FileDupeFilter {
    fn request_seen(&mut self, request: &Request) -> bool {
        let fp = request.fingerprint();
        if !self.seen.insert(fp) {
            return true;
        }
        // A failed write shows at the next flush.
        let _ = writeln!(self.out, "{}", to_hex(&fp));
        false
    }
    fn flush(&mut self) -> Result<(), SchedulerError> {
        self.out
            .flush()
            .map_err(|e| SchedulerError::DupeFilter(format!("{}: {e}", self.path.display())))
    }
    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// Scrapy's default `Scheduler`: the duplicate filter, then the disk queue (with a
/// `JOBDIR`) or the memory queue; requests the disk queue cannot hold stay in memory
/// (`scheduler/unserializable`, logged with `SCHEDULER_DEBUG`).
///
/// Stats as Scrapy's: `scheduler/enqueued[/memory|/disk]`,
/// `scheduler/dequeued[/memory|/disk]`, `dupefilter/filtered`.
pub struct Frontier {
    memory: Box<dyn RequestQueue>,
    disk: Option<Box<dyn RequestQueue>>,
    /// Start requests (`SCHEDULER_START_MEMORY_QUEUE` / `_DISK_QUEUE`); `None` when
    /// those settings are empty: start requests then go with the others.
    start_memory: Option<Box<dyn RequestQueue>>,
    start_disk: Option<Box<dyn RequestQueue>>,
    dupefilter: Box<dyn DupeFilter>,
    stats: Option<crate::handle::StatsHandle>,
    debug: bool,
    dupefilter_debug: bool,
    logged_dupe: bool,
    logged_unserializable: bool,
    resumed_pending: Option<usize>,
    last_flush: Instant,
}

impl std::fmt::Debug for Frontier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontier")
            .field("memory", &self.memory.len())
            .field("disk", &self.disk.as_ref().map(|d| d.len()))
            .field("seen", &self.dupefilter.len())
            .finish()
    }
}

/// `SCHEDULER_DISK_QUEUE`: Scrapy's class paths (`scrapy.squeues.PickleLifoDiskQueue`,
/// the Marshal ones) or `lifo` / `fifo`.
pub fn disk_queue_order(value: &str) -> Result<QueueOrder, ConfigError> {
    match crate::queue::class_name(value).as_str() {
        "picklelifodiskqueue" | "marshallifodiskqueue" | "lifodiskqueue" | "lifo" => {
            Ok(QueueOrder::Lifo)
        }
        "picklefifodiskqueue" | "marshalfifodiskqueue" | "fifodiskqueue" | "fifo" => {
            Ok(QueueOrder::Fifo)
        }
        _ => Err(ConfigError::InvalidValue {
            key: "SCHEDULER_DISK_QUEUE".into(),
            value: value.into(),
            expected: "scrapy.squeues.PickleLifoDiskQueue or scrapy.squeues.PickleFifoDiskQueue",
        }),
    }
}

impl Frontier {
    /// Builds the default scheduler: reads `SCHEDULER_PRIORITY_QUEUE`,
    /// `SCHEDULER_MEMORY_QUEUE`, `SCHEDULER_DISK_QUEUE`, `DUPEFILTER_CLASS`,
    /// `DUPEFILTER_DEBUG`, `SCHEDULER_DEBUG`, `JOBDIR_FSYNC_INTERVAL`, and opens the
    /// job's queue and seen file when `jobdir` is given.
    ///
    /// # Errors
    /// A setting naming a class Arachne does not have, or a job whose files are
    /// corrupt (never a silent restart from scratch).
    pub fn from_settings(
        settings: &Settings,
        jobdir: Option<&Jobdir>,
    ) -> Result<Self, ConfigError> {
        let pq = settings.get_str("SCHEDULER_PRIORITY_QUEUE");
        let pq_last = pq.rsplit('.').next().unwrap_or(&pq);
        if !matches!(
            pq_last,
            "ScrapyPriorityQueue" | "DownloaderAwarePriorityQueue" | "priority"
        ) {
            return Err(ConfigError::InvalidValue {
                key: "SCHEDULER_PRIORITY_QUEUE".into(),
                value: pq,
                expected: "scrapy.pqueues.ScrapyPriorityQueue or scrapy.pqueues.DownloaderAwarePriorityQueue",
            });
        }
        let memory_order = QueueOrder::from_setting(&settings.get_str("SCHEDULER_MEMORY_QUEUE"))?;
        let disk_order = disk_queue_order(&settings.get_str("SCHEDULER_DISK_QUEUE"))?;
        let unset = |v: &str| v.is_empty() || v == "None" || v == "null";
        let start_memory_setting = settings.get_str("SCHEDULER_START_MEMORY_QUEUE");
        let start_memory_order = if unset(&start_memory_setting) {
            None
        } else {
            Some(
                QueueOrder::from_setting(&start_memory_setting).map_err(|_| ConfigError::InvalidValue {
                    key: "SCHEDULER_START_MEMORY_QUEUE".into(),
                    value: start_memory_setting.clone(),
                    expected: "scrapy.squeues.FifoMemoryQueue, scrapy.squeues.LifoMemoryQueue or None",
                })?,
            )
        };
        let start_disk_setting = settings.get_str("SCHEDULER_START_DISK_QUEUE");
        let start_disk_order = if unset(&start_disk_setting) {
            None
        } else {
            Some(
                disk_queue_order(&start_disk_setting).map_err(|_| ConfigError::InvalidValue {
                    key: "SCHEDULER_START_DISK_QUEUE".into(),
                    value: start_disk_setting.clone(),
                    expected: "scrapy.squeues.PickleFifoDiskQueue, scrapy.squeues.PickleLifoDiskQueue or None",
                })?,
            )
        };
        let df_class = settings.get_str("DUPEFILTER_CLASS");
        let filtering = match df_class.rsplit('.').next().unwrap_or(&df_class) {
            "RFPDupeFilter" => true,
            "BaseDupeFilter" => false,
            _ => {
                return Err(ConfigError::InvalidValue {
                    key: "DUPEFILTER_CLASS".into(),
                    value: df_class,
                    expected:
                        "scrapy.dupefilters.RFPDupeFilter or scrapy.dupefilters.BaseDupeFilter",
                })
            }
        };
        let fsync = settings.get_f64("JOBDIR_FSYNC_INTERVAL")?;
        let fsync_interval = (fsync >= 0.0).then(|| Duration::from_secs_f64(fsync));

        let mut disk: Option<Box<dyn RequestQueue>> = None;
        let mut start_disk: Option<Box<dyn RequestQueue>> = None;
        let mut resumed_pending = None;
        let dupefilter: Box<dyn DupeFilter> = match jobdir {
            None if filtering => Box::new(MemoryDupeFilter::default()),
            None => Box::new(NoDupeFilter),
            Some(job) => {
                let mut seen = FingerprintSet::new();
                let (queue, pending) = DiskRequestQueue::open(
                    &job.path().join("requests.queue"),
                    disk_order,
                    fsync_interval,
                    |fp| {
                        seen.insert(fp);
                    },
                )
                .map_err(|e| {
                    ConfigError::Invalid(format!("JOBDIR {}: {e}", job.path().display()))
                })?;
                disk = Some(Box::new(queue));
                let mut pending = pending;
                if let Some(order) = start_disk_order {
                    let (mut queue, start_pending) = DiskRequestQueue::open(
                        &job.path().join("requests.start"),
                        order,
                        fsync_interval,
                        |fp| {
                            seen.insert(fp);
                        },
                    )
                    .map_err(|e| {
                        ConfigError::Invalid(format!("JOBDIR {}: {e}", job.path().display()))
                    })?;
                    queue.tag = START_TICKET;
                    pending += start_pending;
                    start_disk = Some(Box::new(queue));
                }
                if job.resumed() {
                    resumed_pending = Some(pending);
                }
                if filtering {
                    Box::new(
                        FileDupeFilter::open(&job.path().join("requests.seen"), seen).map_err(
                            |e| {
                                ConfigError::Invalid(format!(
                                    "JOBDIR {}: {e}",
                                    job.path().display()
                                ))
                            },
                        )?,
                    )
                } else {
                    Box::new(NoDupeFilter)
                }
            }
        };
        Ok(Frontier {
            memory: Box::new(MemoryQueue::new(memory_order)),
            disk,
            start_memory: start_memory_order
                .map(|o| Box::new(MemoryQueue::new(o)) as Box<dyn RequestQueue>),
            start_disk,
            dupefilter,
            stats: None,
            debug: settings.get_bool("SCHEDULER_DEBUG")?,
            dupefilter_debug: settings.get_bool("DUPEFILTER_DEBUG")?,
            logged_dupe: false,
            logged_unserializable: false,
            resumed_pending,
            last_flush: Instant::now(),
        })
    }

    /// Counts into these stats.
    pub fn with_stats(mut self, stats: crate::handle::StatsHandle) -> Self {
        self.stats = Some(stats);
        self
    }

    fn inc(&self, keys: &[&'static str]) {
        if let Some(stats) = &self.stats {
            for k in keys {
                stats.inc(*k);
            }
        }
    }
}

/// Of a queue of requests and its start-request queue, the one to pop: the higher
/// priority, and at the same priority the other requests before start requests.
fn pick<'a>(
    regular: Option<&'a mut Box<dyn RequestQueue>>,
    start: Option<&'a mut Box<dyn RequestQueue>>,
) -> Option<&'a mut Box<dyn RequestQueue>> {
    let rp = regular.as_ref().and_then(|q| q.peek_priority());
    let sp = start.as_ref().and_then(|q| q.peek_priority());
    match (rp, sp) {
        (Some(r), Some(s)) if s > r => start,
        (Some(_), _) => regular,
        (None, Some(_)) => start,
        (None, None) => None,
    }
}

impl RequestScheduler for Frontier {
    fn enqueue(&mut self, request: Request) -> Result<Option<Request>, SchedulerError> {
        self.offer(request, false)
    }

    fn enqueue_start(&mut self, request: Request) -> Result<Option<Request>, SchedulerError> {
        self.offer(request, true)
    }

    fn next(&mut self) -> Result<Option<Scheduled>, SchedulerError> {
        // Memory first, as Scrapy's scheduler does (what is there could not be
        // persisted), then disk; each with its start queue interleaved by priority.
        if let Some(q) = pick(Some(&mut self.memory), self.start_memory.as_mut()) {
            if let Some(s) = q.pop()? {
                self.inc(&["scheduler/dequeued/memory", "scheduler/dequeued"]);
                return Ok(Some(s));
            }
        }
        if let Some(q) = pick(self.disk.as_mut(), self.start_disk.as_mut()) {
            if let Some(s) = q.pop()? {
                self.inc(&["scheduler/dequeued/disk", "scheduler/dequeued"]);
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    fn done(&mut self, tickets: &[Ticket]) -> Result<(), SchedulerError> {
        for q in [self.disk.as_mut(), self.start_disk.as_mut()]
            .into_iter()
            .flatten()
        {
            q.ack(tickets)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SchedulerError> {
        // The logs first (pushes, then the acks written after them), then the seen
        // file, which must never hold a fingerprint whose request no log holds.
        for q in [self.disk.as_mut(), self.start_disk.as_mut()]
            .into_iter()
            .flatten()
        {
            q.flush()?;
        }
        self.dupefilter.flush()?;
        self.last_flush = Instant::now();
        Ok(())
    }

    fn pending(&self) -> usize {
        [
            Some(&self.memory),
            self.disk.as_ref(),
            self.start_memory.as_ref(),
            self.start_disk.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|q| q.len())
        .sum()
    }

    fn close(&mut self) -> Result<usize, SchedulerError> {
        let left = self.pending();
        for q in [self.disk.as_mut(), self.start_disk.as_mut()]
            .into_iter()
            .flatten()
        {
            q.close()?;
        }
        self.dupefilter.flush()?;
        Ok(left)
    }

    fn resumed_pending(&self) -> Option<usize> {
        self.resumed_pending
    }
}

impl Frontier {
    /// Scrapy's `enqueue_request`, for a start request or another.
    fn offer(&mut self, request: Request, start: bool) -> Result<Option<Request>, SchedulerError> {
        // As in Scrapy, a `dont_filter` request is neither checked nor remembered.
        if !request.dont_filter && self.dupefilter.request_seen(&request) {
            if self.dupefilter_debug {
                log::debug!(
                    "Filtered duplicate request: <{} {}>",
                    request.method,
                    request.url
                );
            } else if !self.logged_dupe {
                self.logged_dupe = true;
                log::debug!(
                    "Filtered duplicate request: <{} {}> - no more duplicates will be shown (see DUPEFILTER_DEBUG to show all duplicates)",
                    request.method,
                    request.url
                );
            }
            self.inc(&["dupefilter/filtered"]);
            return Ok(Some(request));
        }
        let disk = match (start, self.start_disk.as_mut()) {
            (true, Some(q)) => Some(q),
            _ => self.disk.as_mut(),
        };
        let request = match disk {
            Some(disk) => match disk.push(request) {
                Ok(()) => {
                    self.inc(&["scheduler/enqueued/disk", "scheduler/enqueued"]);
                    return Ok(None);
                }
                // Kept in memory rather than lost: it runs in this process, it just
                // would not survive a kill.
                Err(PushError::Failed(request, e)) => {
                    log::error!(
                        "Cannot write <{} {}> to the job's queue, keeping it in memory: {e}",
                        request.method,
                        request.url
                    );
                    self.inc(&["scheduler/errors"]);
                    *request
                }
                Err(PushError::Unserializable(request, why)) => {
                    if self.debug && !self.logged_unserializable {
                        self.logged_unserializable = true;
                        log::warn!(
                            "Unable to serialize request: <{} {}> - reason: {why} - no more unserializable requests will be logged (stats being collected)",
                            request.method,
                            request.url
                        );
                    }
                    self.inc(&["scheduler/unserializable"]);
                    *request
                }
            },
            None => request,
        };
        let memory = match (start, self.start_memory.as_mut()) {
            (true, Some(q)) => q,
            _ => &mut self.memory,
        };
        if let Err(e) = memory.push(request) {
            let why = match e {
                PushError::Failed(_, e) => e.to_string(),
                PushError::Unserializable(_, why) => why,
            };
            return Err(SchedulerError::Queue(why));
        }
        self.inc(&["scheduler/enqueued/memory", "scheduler/enqueued"]);
        Ok(None)
    }
}

/// Where the start stream was: how many entries of the spider's `start()` a job has
/// consumed, so a resumed job skips them instead of crawling its start URLs again.
/// Written after the queue's log holds those entries' requests; a temporary file
/// renamed over the old one, not synced (a lag after a power loss re-runs a few start
/// requests, it loses none).
pub(crate) fn save_start_offset(job: &Jobdir, consumed: u64) -> std::io::Result<()> {
    let path = job.path().join("start.offset");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{consumed}\n"))?;
    std::fs::rename(&tmp, &path)
}

/// See [`save_start_offset`]; 0 when none was saved.
pub fn load_start_offset(job: &Jobdir) -> u64 {
    std::fs::read_to_string(job.path().join("start.offset"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str) -> Request {
        Request::get(format!("http://127.0.0.1{path}")).unwrap()
    }

    fn drain(s: &mut Frontier) -> Vec<String> {
        std::iter::from_fn(|| s.next().unwrap())
            .map(|s| s.request.url.path().to_string())
            .collect()
    }

    /// Scrapy 2.13's order: start requests FIFO, after other requests of the same
    /// priority, before those of a lower one.
    #[test]
    fn start_requests_have_their_own_queue() {
        for jobdir in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let job = jobdir.then(|| Jobdir::open(dir.path(), "s").unwrap());
            let mut s = Frontier::from_settings(&Settings::new(), job.as_ref()).unwrap();
            for p in ["/s1", "/s2", "/s3"] {
                assert!(s.enqueue_start(req(p)).unwrap().is_none());
            }
            s.enqueue_start(req("/s-high").priority(5)).unwrap();
            s.enqueue(req("/r1")).unwrap();
            s.enqueue(req("/r2")).unwrap();
            s.enqueue(req("/r-low").priority(-1)).unwrap();
            assert_eq!(s.pending(), 7);
            assert_eq!(
                drain(&mut s),
                ["/s-high", "/r2", "/r1", "/s1", "/s2", "/s3", "/r-low"],
                "jobdir: {jobdir}"
            );
        }
    }

    /// With the start queue settings empty, start requests are like any other.
    #[test]
    fn start_queues_can_be_turned_off() {
        let settings = Settings::new()
            .with("SCHEDULER_START_MEMORY_QUEUE", "None")
            .with("SCHEDULER_START_DISK_QUEUE", "");
        let mut s = Frontier::from_settings(&settings, None).unwrap();
        s.enqueue_start(req("/s1")).unwrap();
        s.enqueue(req("/r1")).unwrap();
        s.enqueue_start(req("/s2")).unwrap();
        assert_eq!(drain(&mut s), ["/s2", "/r1", "/s1"]);
        let bad = Settings::new().with("SCHEDULER_START_MEMORY_QUEUE", "heap");
        assert!(Frontier::from_settings(&bad, None).is_err());
    }

    /// Tickets of the two disk queues never collide, and each acks in its own log.
    #[test]
    fn start_and_other_tickets_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let job = Jobdir::open(dir.path(), "s").unwrap();
            let mut s = Frontier::from_settings(&Settings::new(), Some(&job)).unwrap();
            s.enqueue_start(req("/s1")).unwrap();
            s.enqueue(req("/r1")).unwrap();
            let a = s.next().unwrap().unwrap();
            let b = s.next().unwrap().unwrap();
            assert_ne!(a.ticket, b.ticket);
            // Only the start request is finished.
            let start = [&a, &b]
                .into_iter()
                .find(|x| x.request.url.path() == "/s1")
                .unwrap();
            s.done(&[start.ticket.unwrap()]).unwrap();
            s.close().unwrap();
        }
        let job = Jobdir::open(dir.path(), "s").unwrap();
        let mut s = Frontier::from_settings(&Settings::new(), Some(&job)).unwrap();
        assert_eq!(s.resumed_pending(), Some(1));
        assert_eq!(drain(&mut s), ["/r1"]);
    }
}
