//! The crash-safe, disk-backed priority request queue behind `JOBDIR`: the scheduler
//! pushes serialized requests here so that a crawl of millions of pages neither holds
//! them in memory nor loses them when the process is killed. It serves them in the same
//! order as [`MemoryQueue`](super::MemoryQueue) (highest priority first, LIFO or FIFO
//! inside a priority) and keeps only a small index in memory (16 bytes per pending
//! request); request bodies stay on disk and are read back when popped.
//!
//! # On-disk format (format 1)
//!
//! The queue is a directory holding:
//!
//! * `MANIFEST`: two text lines, `arachne-request-queue` and `format 1`. A directory
//!   without it (and without segments) is initialised; another magic or version is
//!   [`FrontierError::Incompatible`]. The file also carries the advisory lock that keeps
//!   two processes from appending to the same log.
//! * `NNNNNNNNNN.seg`: segments of one append-only log, numbered consecutively from the
//!   oldest still present. Each starts with a 32-byte header: the magic `ARQSEG\r\n`,
//!   the format version (u32 LE), the segment number (u64 LE), the sequence number the
//!   queue would have issued next when the segment was created (u64 LE), and a CRC-32 of
//!   those 28 bytes (u32 LE). Records follow, each framed as
//!   `[payload length u32 LE][CRC-32 of the payload u32 LE][payload]`. The payload's first
//!   byte is its kind:
//!   * `1` PUSH: `flags u8` (bit 0: a fingerprint follows), `priority i32`, `ticket u64`,
//!     `seq u64`, then the optional 20-byte fingerprint, then the request bytes to the
//!     end of the payload. In format 1 a ticket *is* its push sequence number; the two
//!     fields are kept apart so that a later format can re-sequence without renumbering.
//!   * `2` ACK: one or more `ticket u64`; every request named is finished.
//!
//! All integers are little-endian. Nothing records a pop: a pop only moves a request
//! into the in-memory in-flight set.
//!
//! # Why replay is correct
//!
//! * One writer (the lock) appends records in the order the operations happened, so what
//!   the OS holds is always a prefix of the intended byte stream; `kill -9` loses only the
//!   bytes still in our write buffer. The only damage an interrupted write can do is an
//!   incomplete or checksum-failing record at the very end of the newest segment; it is
//!   cut off, and what remains is the log of a prefix of the operation history. Damage
//!   with valid records after it cannot come from an interrupted append, so it is
//!   reported as [`FrontierError::Corrupt`] rather than silently dropping what follows.
//! * The state is a set difference: a ticket is pending if a PUSH for it is present and
//!   no ACK names it. An ACK is only written for a popped ticket, whose PUSH was written
//!   before it, so the order of the two never matters for replay, and since pops are not
//!   logged, a request in flight at the crash is pending again. Its place in the order
//!   comes from the priority and seq stored in its PUSH, so it is its original one.
//! * Segments are only ever deleted as a prefix (oldest first). A prefix whose PUSHes are
//!   all acked can go: an ACK inside it names a ticket whose PUSH is inside it too. When
//!   a prefix is mostly dead (LIFO order keeps the bottom of the stack alive for long),
//!   its live PUSH frames are copied byte for byte to the newest segment, written out
//!   (and fsynced, unless fsync is off) before the prefix is unlinked; a crash in between
//!   leaves two copies of a ticket with the same seq and priority, and replay keeps the
//!   later one.
//! * The newest segment is never deleted and its header carries the next sequence
//!   number, so tickets keep increasing across runs even when every request is done.
//! * Power loss: data is fsynced every `fsync_interval`; a finished segment and the
//!   directory are fsynced when a new segment starts, so only the newest segment can have
//!   an unsynced, torn end.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::QueueOrder;

const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";
const MANIFEST_MAGIC: &str = "arachne-request-queue";
const FORMAT_VERSION: u32 = 1;
/// `\r\n` makes a copy through a text-mode transfer fail the check, as in PNG.
const SEGMENT_MAGIC: &[u8; 8] = b"ARQSEG\r\n";
const SEGMENT_HEADER_LEN: u64 = 32;
const FRAME_HEADER_LEN: usize = 8;
const KIND_PUSH: u8 = 1;
const KIND_ACK: u8 = 2;
const FLAG_FINGERPRINT: u8 = 1;
/// kind, flags, priority, ticket, seq.
const PUSH_HEADER_LEN: usize = 1 + 1 + 4 + 8 + 8;
const FINGERPRINT_LEN: usize = 20;
/// A length field above this is damage, not a request: it bounds what replay allocates.
const MAX_PAYLOAD: usize = 256 << 20;
/// The largest request the queue stores.
pub const MAX_REQUEST_BYTES: usize = MAX_PAYLOAD - PUSH_HEADER_LEN - FINGERPRINT_LEN;
/// Offsets are packed in 32 bits of a location; a segment may overshoot its target by
/// one record, so this plus [`MAX_PAYLOAD`] stays well under 4 GiB.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;
const MIN_SEGMENT_BYTES: u64 = 256;
const WRITE_BUFFER: usize = 256 << 10;
const ACK_BATCH: usize = 512;
/// Read handles kept open, so a queue of thousands of segments stays under the fd limit.
const READ_HANDLES: usize = 32;
const REPLAY_BUFFER: usize = 1 << 20;
/// Bytes a pop reads at once: a frame of a typical serialized request.
const READ_GUESS: usize = 1024;

/// What can go wrong with a disk queue.
#[derive(Debug, thiserror::Error)]
pub enum FrontierError {
    /// Reading or writing a file of the queue failed.
    #[error("request queue: {}: {source}", .path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file of the queue holds damage that is not an interrupted write at its end.
    #[error(
        "request queue file {} is damaged at byte {offset}: {detail}; the crawl cannot \
         safely resume from it (move the JOBDIR aside to start afresh)",
        .file.display()
    )]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The directory was written by something else or by another format version.
    #[error("{0}")]
    Incompatible(String),
    /// Another live queue (in this or another process) has the directory open.
    #[error(
        "request queue {} is in use by another running crawl (only one may use a JOBDIR at a time)",
        .path.display()
    )]
    Locked {
        /// The queue directory.
        path: PathBuf,
    },
    /// A request too large to store.
    #[error(
        "a serialized request of {len} bytes is larger than the request queue stores ({max} bytes)"
    )]
    TooLarge {
        /// The request's size.
        len: usize,
        /// [`MAX_REQUEST_BYTES`].
        max: usize,
    },
}

type Result<T, E = FrontierError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FrontierError + '_ {
    move |source| FrontierError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a [`DiskQueue`] behaves.
#[derive(Debug, Clone)]
pub struct DiskQueueOptions {
    /// Order inside one priority. Default: [`QueueOrder::Lifo`] (Scrapy's DFO).
    pub order: QueueOrder,
    /// A segment file is closed and a new one started past this size. Default 64 MiB;
    /// clamped to 256 B ..= 1 GiB.
    pub segment_bytes: u64,
    /// How often [`DiskQueue::flush`] also fsyncs: `None` never (only
    /// [`close`](DiskQueue::close) and [`sync`](DiskQueue::sync) do), `Some(ZERO)` on every
    /// flush that wrote something. Default one second. With `None`, compaction does not
    /// fsync its copies before deleting the originals either, so power loss (not a
    /// killed process) can then lose pending requests.
    pub fsync_interval: Option<Duration>,
    /// A prefix of old segments whose live bytes are below this fraction of their size
    /// is compacted (live records copied forward, the prefix deleted). Default 0.25;
    /// 0 turns compaction off, leaving only the deletion of fully acked segments.
    pub compact_below: f64,
}

impl Default for DiskQueueOptions {
    fn default() -> Self {
        DiskQueueOptions {
            order: QueueOrder::Lifo,
            segment_bytes: 64 << 20,
            fsync_interval: Some(Duration::from_secs(1)),
            compact_below: 0.25,
        }
    }
}

/// What [`DiskQueue::open`] found.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The directory was new (or empty) and has been initialised.
    pub created: bool,
    /// Requests pending after the open, including those that were in flight (popped but
    /// not acked) when the previous run ended: the log does not tell the two apart.
    pub pending: usize,
    /// Bytes of an incomplete or damaged record cut off the end of the newest segment.
    pub torn_bytes: u64,
    /// Segment files replayed.
    pub segments: usize,
    /// Records replayed (PUSH and ACK).
    pub records: u64,
    /// PUSH records that were a second copy of a ticket, left by an interrupted
    /// compaction; the later copy was kept.
    pub duplicate_copies: u64,
    /// Fingerprints passed to the `seen` callback.
    pub fingerprints: u64,
    /// The ticket the next push gets.
    pub next_ticket: u64,
    /// Things a user may want to know (also logged with `log::warn!`).
    pub warnings: Vec<String>,
}

/// A location in the log: segment number in the high 32 bits, offset in the low 32.
fn pack(segment: u32, offset: u64) -> u64 {
    (u64::from(segment) << 32) | offset
}

fn unpack(loc: u64) -> (u32, u64) {
    ((loc >> 32) as u32, loc & 0xffff_ffff)
}

fn segment_name(id: u32) -> String {
    format!("{id:010}.seg")
}

fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn segment_header(id: u32, base_seq: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&u64::from(id).to_le_bytes());
    h[20..28].copy_from_slice(&base_seq.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// The fixed part of a PUSH payload.
struct PushHead {
    ticket: u64,
    seq: u64,
    priority: i32,
    fingerprint: Option<[u8; FINGERPRINT_LEN]>,
    data_offset: usize,
}

fn decode_push(payload: &[u8]) -> Result<PushHead, String> {
    if payload.len() < PUSH_HEADER_LEN || payload[0] != KIND_PUSH {
        return Err("not a PUSH record".into());
    }
    let flags = payload[1];
    if flags & !FLAG_FINGERPRINT != 0 {
        return Err(format!("unknown PUSH flags {flags:#04x}"));
    }
    let priority = le_u32(&payload[2..]) as i32;
    let ticket = le_u64(&payload[6..]);
    let seq = le_u64(&payload[14..]);
    let (fingerprint, data_offset) = if flags & FLAG_FINGERPRINT != 0 {
        let end = PUSH_HEADER_LEN + FINGERPRINT_LEN;
        let Some(bytes) = payload.get(PUSH_HEADER_LEN..end) else {
            return Err("PUSH record too short for its fingerprint".into());
        };
        let mut fp = [0u8; FINGERPRINT_LEN];
        fp.copy_from_slice(bytes);
        (Some(fp), end)
    } else {
        (None, PUSH_HEADER_LEN)
    };
    if ticket != seq {
        return Err(format!(
            "PUSH record has ticket {ticket} but seq {seq} (format 1 requires them equal)"
        ));
    }
    Ok(PushHead {
        ticket,
        seq,
        priority,
        fingerprint,
        data_offset,
    })
}

/// Whether a frame that would pass the checks of replay starts at `buf[at..]`.
fn frame_at(buf: &[u8], at: usize) -> bool {
    let Some(head) = buf.get(at..at + FRAME_HEADER_LEN) else {
        return false;
    };
    let len = le_u32(head) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return false;
    }
    let start = at + FRAME_HEADER_LEN;
    let Some(payload) = buf.get(start..start + len) else {
        return false;
    };
    let plausible = match payload[0] {
        KIND_PUSH => len >= PUSH_HEADER_LEN,
        KIND_ACK => len > 1 && (len - 1).is_multiple_of(8),
        _ => false,
    };
    plausible && crc32fast::hash(payload) == le_u32(&head[4..])
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// Reads as much of `buf` as the file holds from `offset`; returns how much that was.
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf[got..], offset + got as u64);
        #[cfg(not(unix))]
        let n = {
            use std::io::Seek;
            let mut f = file;
            f.seek(io::SeekFrom::Start(offset + got as u64))
                .and_then(|_| f.read(&mut buf[got..]))
        };
        match n {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Windows cannot open a directory as a file; its metadata is journaled anyway.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

struct Segment {
    path: PathBuf,
    /// Bytes handed to the OS (the active segment's buffered records come after).
    len: u64,
    /// Requests (pending or in flight) whose current copy is in this segment.
    live_count: u64,
    live_bytes: u64,
    /// The active segment always has one; older ones share [`READ_HANDLES`].
    file: Option<File>,
}

/// The segment files and the write buffer of the active one.
struct Log {
    dir: PathBuf,
    segment_bytes: u64,
    fsync: Option<Duration>,
    segments: BTreeMap<u32, Segment>,
    active: u32,
    buf: Vec<u8>,
    /// Older segments with an open read handle, least recently opened first.
    handles: VecDeque<u32>,
    /// Bytes in segment files (excluding the buffer).
    disk_bytes: u64,
    unsynced: bool,
    dir_unsynced: bool,
    last_sync: Instant,
    rotated: bool,
}

impl Log {
    fn active_segment(&mut self) -> &mut Segment {
        self.segments
            .get_mut(&self.active)
            .expect("the active segment is always in the map")
    }

    /// Where the next record will start in the active segment.
    fn end(&self) -> u64 {
        self.segments.get(&self.active).map_or(0, |s| s.len) + self.buf.len() as u64
    }

    fn corrupt(&self, loc: u64, detail: impl Into<String>) -> FrontierError {
        let (id, offset) = unpack(loc);
        FrontierError::Corrupt {
            file: self.dir.join(segment_name(id)),
            offset,
            detail: detail.into(),
        }
    }

    /// Writes the buffer to the active segment.
    fn spill(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let active = self.active;
        let seg = self
            .segments
            .get_mut(&active)
            .expect("the active segment is always in the map");
        let file = seg.file.as_ref().expect("the active segment has a handle");
        let mut writer = file;
        if let Err(e) = writer.write_all(&self.buf) {
            // A short write would leave half a record that later appends bury in the
            // middle of the log: cut it so the buffer can be retried whole.
            let _ = file.set_len(seg.len);
            return Err(io_err(&seg.path)(e));
        }
        seg.len += self.buf.len() as u64;
        self.disk_bytes += self.buf.len() as u64;
        self.buf.clear();
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            let seg = self.active_segment();
            let path = seg.path.clone();
            if let Some(file) = &seg.file {
                file.sync_data().map_err(io_err(&path))?;
            }
            self.unsynced = false;
        }
        if self.dir_unsynced {
            sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Starts a new active segment whose header records `next_seq`.
    fn rotate(&mut self, next_seq: u64) -> Result<()> {
        self.spill()?;
        if self.fsync.is_some() && self.unsynced {
            // Later fsyncs only reach the new segment; this one must be whole on disk
            // before records after it are, or power loss could tear an older segment.
            let seg = self.active_segment();
            let path = seg.path.clone();
            if let Some(file) = &seg.file {
                file.sync_data().map_err(io_err(&path))?;
            }
            self.unsynced = false;
        }
        let id = self.active.checked_add(1).ok_or_else(|| {
            FrontierError::Incompatible(format!(
                "request queue {}: segment numbers exhausted",
                self.dir.display()
            ))
        })?;
        let path = self.dir.join(segment_name(id));
        let file = create_segment(&path, id, next_seq)?;
        if self.fsync.is_some() {
            file.sync_data().map_err(io_err(&path))?;
            sync_dir(&self.dir)?;
        } else {
            self.dir_unsynced = true;
        }
        // The old active segment keeps its handle as one of the cached read handles.
        self.handles.push_back(self.active);
        self.segments.insert(
            id,
            Segment {
                path,
                len: SEGMENT_HEADER_LEN,
                live_count: 0,
                live_bytes: 0,
                file: Some(file),
            },
        );
        self.active = id;
        self.disk_bytes += SEGMENT_HEADER_LEN;
        self.rotated = true;
        self.trim_handles();
        Ok(())
    }

    /// Rotates first if a frame of `frame_len` bytes would overfill a non-empty segment.
    fn make_room(&mut self, frame_len: usize, next_seq: u64) -> Result<()> {
        let end = self.end();
        if end > SEGMENT_HEADER_LEN && end + frame_len as u64 > self.segment_bytes {
            self.rotate(next_seq)?;
        }
        Ok(())
    }

    fn after_append(&mut self) -> Result<()> {
        if self.buf.len() >= WRITE_BUFFER {
            self.spill()?;
        }
        Ok(())
    }

    fn append_push(
        &mut self,
        seq: u64,
        priority: i32,
        fingerprint: Option<[u8; FINGERPRINT_LEN]>,
        data: &[u8],
        next_seq: u64,
    ) -> Result<u64> {
        let payload_len = PUSH_HEADER_LEN + fingerprint.map_or(0, |_| FINGERPRINT_LEN) + data.len();
        let frame_len = FRAME_HEADER_LEN + payload_len;
        self.make_room(frame_len, next_seq)?;
        let loc = pack(self.active, self.end());
        let start = self.buf.len();
        self.buf.reserve(frame_len);
        self.buf
            .extend_from_slice(&(payload_len as u32).to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.push(KIND_PUSH);
        self.buf.push(if fingerprint.is_some() {
            FLAG_FINGERPRINT
        } else {
            0
        });
        self.buf.extend_from_slice(&priority.to_le_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        if let Some(fp) = &fingerprint {
            self.buf.extend_from_slice(fp);
        }
        self.buf.extend_from_slice(data);
        let crc = crc32fast::hash(&self.buf[start + FRAME_HEADER_LEN..]);
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        let seg = self.active_segment();
        seg.live_count += 1;
        seg.live_bytes += frame_len as u64;
        self.after_append()?;
        Ok(loc)
    }

    fn append_acks(&mut self, tickets: &[u64], next_seq: u64) -> Result<()> {
        for chunk in tickets.chunks(ACK_BATCH) {
            let payload_len = 1 + 8 * chunk.len();
            self.make_room(FRAME_HEADER_LEN + payload_len, next_seq)?;
            let start = self.buf.len();
            self.buf
                .extend_from_slice(&(payload_len as u32).to_le_bytes());
            self.buf.extend_from_slice(&[0; 4]);
            self.buf.push(KIND_ACK);
            for t in chunk {
                self.buf.extend_from_slice(&t.to_le_bytes());
            }
            let crc = crc32fast::hash(&self.buf[start + FRAME_HEADER_LEN..]);
            self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
            self.after_append()?;
        }
        Ok(())
    }

    fn trim_handles(&mut self) {
        while self.handles.len() > READ_HANDLES {
            if let Some(old) = self.handles.pop_front() {
                if let Some(seg) = self.segments.get_mut(&old) {
                    if old != self.active {
                        seg.file = None;
                    }
                }
            }
        }
    }

    fn handle(&mut self, id: u32) -> Result<&File> {
        let missing = self
            .segments
            .get(&id)
            .map(|s| s.file.is_none())
            .ok_or_else(|| FrontierError::Corrupt {
                file: self.dir.join(segment_name(id)),
                offset: 0,
                detail: "the index points into a segment that is gone".into(),
            })?;
        if missing {
            let path = self.dir.join(segment_name(id));
            let file = File::open(&path).map_err(io_err(&path))?;
            if let Some(seg) = self.segments.get_mut(&id) {
                seg.file = Some(file);
            }
            self.handles.push_back(id);
            self.trim_handles();
        }
        self.segments
            .get(&id)
            .and_then(|s| s.file.as_ref())
            .ok_or_else(|| FrontierError::Corrupt {
                file: self.dir.join(segment_name(id)),
                offset: 0,
                detail: "segment has no read handle".into(),
            })
    }

    /// The whole frame (header and payload) at `loc`, checksum verified.
    fn read_frame(&mut self, loc: u64) -> Result<Vec<u8>> {
        let (id, offset) = unpack(loc);
        if id == self.active {
            let flushed = self.segments.get(&id).map_or(0, |s| s.len);
            if offset >= flushed {
                // LIFO pops mostly take what was just pushed: still in the buffer.
                let start = (offset - flushed) as usize;
                let frame = self
                    .buf
                    .get(start..start + FRAME_HEADER_LEN)
                    .map(le_u32)
                    .and_then(|len| self.buf.get(start..start + FRAME_HEADER_LEN + len as usize))
                    .ok_or_else(|| self.corrupt(loc, "the index points past the log"))?;
                return Ok(frame.to_vec());
            }
        }
        let path = self.dir.join(segment_name(id));
        let corrupt = |detail: String| FrontierError::Corrupt {
            file: path.clone(),
            offset,
            detail,
        };
        let file = self.handle(id)?;
        // One read covers a typical request; a larger one takes a second.
        let mut frame = vec![0u8; READ_GUESS];
        let got = read_up_to(file, &mut frame, offset).map_err(io_err(&path))?;
        if got < FRAME_HEADER_LEN {
            return Err(corrupt(
                "the index points past the end of the segment".into(),
            ));
        }
        let len = le_u32(&frame) as usize;
        if len == 0 || len > MAX_PAYLOAD {
            return Err(corrupt(format!("impossible record length {len}")));
        }
        let want = FRAME_HEADER_LEN + len;
        if want <= got {
            frame.truncate(want);
        } else {
            frame.resize(want, 0);
            read_exact_at(file, &mut frame[got..], offset + got as u64).map_err(io_err(&path))?;
        }
        let head = [frame[4], frame[5], frame[6], frame[7]];
        if crc32fast::hash(&frame[FRAME_HEADER_LEN..]) != u32::from_le_bytes(head) {
            return Err(corrupt("record checksum mismatch".into()));
        }
        Ok(frame)
    }

    /// Copies the PUSH at `loc` to the end of the log; returns its new location.
    fn relocate(&mut self, loc: u64, next_seq: u64) -> Result<u64> {
        let frame = self.read_frame(loc)?;
        self.make_room(frame.len(), next_seq)?;
        let new_loc = pack(self.active, self.end());
        self.buf.extend_from_slice(&frame);
        self.release(loc, frame.len() as u64);
        let seg = self.active_segment();
        seg.live_count += 1;
        seg.live_bytes += frame.len() as u64;
        self.after_append()?;
        Ok(new_loc)
    }

    /// A live record at `loc` of `size` bytes is no longer live there.
    fn release(&mut self, loc: u64, size: u64) {
        if let Some(seg) = self.segments.get_mut(&unpack(loc).0) {
            seg.live_count = seg.live_count.saturating_sub(1);
            seg.live_bytes = seg.live_bytes.saturating_sub(size);
        }
    }

    /// Deletes every segment up to `last` (oldest first, so a crash leaves a suffix).
    fn delete_through(&mut self, last: u32) -> Result<()> {
        while let Some((&id, _)) = self.segments.first_key_value() {
            if id > last || id == self.active {
                break;
            }
            if let Some(seg) = self.segments.remove(&id) {
                drop(seg.file);
                fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
                self.disk_bytes -= seg.len;
                self.dir_unsynced = true;
            }
        }
        self.handles.retain(|id| *id > last);
        Ok(())
    }
}

fn create_segment(path: &Path, id: u32, base_seq: u64) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(&segment_header(id, base_seq))
        .map_err(io_err(path))?;
    Ok(file)
}

/// One pending request in the index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    loc: u64,
}

/// Tickets are sequential integers the queue made itself: a multiplicative hash spreads
/// them as well as SipHash does, for a fraction of the cost on every pop and ack.
#[derive(Default, Clone, Copy)]
struct TicketHash;

impl std::hash::BuildHasher for TicketHash {
    type Hasher = TicketHasher;
    fn build_hasher(&self) -> TicketHasher {
        TicketHasher(0)
    }
}

#[derive(Default)]
struct TicketHasher(u64);

impl std::hash::Hasher for TicketHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    loc: u64,
    size: u32,
}

/// A crash-safe priority queue of serialized requests in a directory.
///
/// Requests are opaque bytes. [`pop`](DiskQueue::pop) hands one out with a ticket; it is
/// in flight until [`ack`](DiskQueue::ack)ed, and comes back on the next
/// [`open`](DiskQueue::open) if the process dies first.
///
/// ```
/// use arachne::queue::disk::{DiskQueue, DiskQueueOptions};
/// use arachne::queue::QueueOrder;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("requests.queue");
/// let options = DiskQueueOptions { order: QueueOrder::Lifo, ..Default::default() };
/// let (mut q, _) = DiskQueue::open(&path, options.clone(), |_fp| ()).unwrap();
/// q.push(0, None, b"a").unwrap();
/// q.push(5, Some([7; 20]), b"b").unwrap();
/// q.push(0, None, b"c").unwrap();
/// let (ticket, bytes) = q.pop().unwrap().unwrap();
/// assert_eq!(bytes, b"b");
/// q.ack(ticket).unwrap();
/// let (_, bytes) = q.pop().unwrap().unwrap(); // in flight, never acked
/// assert_eq!(bytes, b"c");
/// q.close().unwrap();
///
/// let mut seen = Vec::new();
/// let (mut q, recovered) = DiskQueue::open(&path, options, |fp| seen.push(fp)).unwrap();
/// assert_eq!(recovered.pending, 2);
/// assert_eq!(q.pop().unwrap().unwrap().1, b"c");
/// assert_eq!(q.pop().unwrap().unwrap().1, b"a");
/// assert_eq!(seen, [[7; 20]]);
/// ```
pub struct DiskQueue {
    log: Log,
    order: QueueOrder,
    compact_below: f64,
    /// Each deque is sorted by seq: pushes append, replay builds in seq order.
    by_priority: BTreeMap<i32, VecDeque<Entry>>,
    pending: usize,
    in_flight: HashMap<u64, InFlight, TicketHash>,
    /// Acks not yet encoded in the write buffer, so one record carries many.
    acks: Vec<u64>,
    next_seq: u64,
    maintenance_due: bool,
    closed: bool,
    /// Holds the directory's lock for the queue's lifetime.
    _lock: File,
}

impl std::fmt::Debug for DiskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskQueue")
            .field("dir", &self.log.dir)
            .field("order", &self.order)
            .field("pending", &self.pending)
            .field("in_flight", &self.in_flight.len())
            .field("segments", &self.log.segments.len())
            .field("next_ticket", &self.next_seq)
            .finish()
    }
}

/// What replay gathers over all segments.
struct Replay<'a> {
    pushes: Vec<ReplayPush>,
    acks: Vec<u64>,
    max_ticket: u64,
    records: u64,
    fingerprints: u64,
    seen: &'a mut dyn FnMut([u8; FINGERPRINT_LEN]),
}

#[derive(Debug, Clone, Copy)]
struct ReplayPush {
    seq: u64,
    loc: u64,
    priority: i32,
    size: u32,
}

/// How the replay of one segment ended.
struct SegmentEnd {
    /// Bytes up to the end of the last good record.
    good_len: u64,
    base_seq: Option<u64>,
    torn: Option<(u64, String)>,
}

impl Replay<'_> {
    fn apply(&mut self, payload: &[u8], loc: u64) -> Result<(), String> {
        self.records += 1;
        match payload[0] {
            KIND_PUSH => {
                let head = decode_push(payload)?;
                if let Some(fp) = head.fingerprint {
                    self.fingerprints += 1;
                    (self.seen)(fp);
                }
                self.max_ticket = self.max_ticket.max(head.ticket);
                self.pushes.push(ReplayPush {
                    seq: head.seq,
                    loc,
                    priority: head.priority,
                    size: (FRAME_HEADER_LEN + payload.len()) as u32,
                });
            }
            KIND_ACK => {
                if payload.len() == 1 || !(payload.len() - 1).is_multiple_of(8) {
                    return Err(format!("ACK record of impossible length {}", payload.len()));
                }
                for t in payload[1..].chunks_exact(8) {
                    let t = le_u64(t);
                    self.max_ticket = self.max_ticket.max(t);
                    self.acks.push(t);
                }
            }
            kind => return Err(format!("unknown record kind {kind}")),
        }
        Ok(())
    }

    fn segment(&mut self, path: &Path, id: u32, newest: bool) -> Result<SegmentEnd> {
        let file = File::open(path).map_err(io_err(path))?;
        let file_len = file.metadata().map_err(io_err(path))?.len();
        let corrupt = |offset: u64, detail: String| FrontierError::Corrupt {
            file: path.to_path_buf(),
            offset,
            detail,
        };
        if file_len < SEGMENT_HEADER_LEN {
            if newest {
                // A crash right after the segment was created.
                return Ok(SegmentEnd {
                    good_len: 0,
                    base_seq: None,
                    torn: Some((0, "incomplete segment header".into())),
                });
            }
            return Err(corrupt(0, format!("segment is only {file_len} bytes long")));
        }
        if file_len > MAX_SEGMENT_BYTES + MAX_PAYLOAD as u64 + SEGMENT_HEADER_LEN {
            return Err(corrupt(0, format!("segment is {file_len} bytes long")));
        }
        let mut reader = BufReader::with_capacity(REPLAY_BUFFER, file);
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        reader.read_exact(&mut header).map_err(io_err(path))?;
        if &header[..8] != SEGMENT_MAGIC {
            return Err(corrupt(0, "not a request queue segment (bad magic)".into()));
        }
        let version = le_u32(&header[8..]);
        if version != FORMAT_VERSION {
            return Err(FrontierError::Incompatible(format!(
                "request queue segment {} is in format {version}; this build of arachne reads format {FORMAT_VERSION}",
                path.display()
            )));
        }
        if crc32fast::hash(&header[..28]) != le_u32(&header[28..]) {
            return Err(corrupt(0, "segment header checksum mismatch".into()));
        }
        let header_id = le_u64(&header[12..]);
        if header_id != u64::from(id) {
            return Err(corrupt(
                12,
                format!("segment header says it is segment {header_id}"),
            ));
        }
        let base_seq = Some(le_u64(&header[20..]));
        let mut offset = SEGMENT_HEADER_LEN;
        let mut payload = Vec::new();
        while offset < file_len {
            let remaining = file_len - offset;
            let anomaly = if remaining < FRAME_HEADER_LEN as u64 {
                Some("incomplete record header".to_string())
            } else {
                let mut head = [0u8; FRAME_HEADER_LEN];
                reader.read_exact(&mut head).map_err(io_err(path))?;
                let len = le_u32(&head) as usize;
                if len == 0 || len > MAX_PAYLOAD {
                    Some(format!("impossible record length {len}"))
                } else if len as u64 > remaining - FRAME_HEADER_LEN as u64 {
                    Some(format!(
                        "record of {len} bytes runs past the end of the file"
                    ))
                } else {
                    payload.resize(len, 0);
                    reader.read_exact(&mut payload).map_err(io_err(path))?;
                    if crc32fast::hash(&payload) != le_u32(&head[4..]) {
                        Some("record checksum mismatch".to_string())
                    } else {
                        None
                    }
                }
            };
            if let Some(detail) = anomaly {
                if !newest {
                    return Err(corrupt(offset, format!("{detail} in a finished segment")));
                }
                if valid_record_after(path, offset)? {
                    return Err(corrupt(
                        offset,
                        format!("{detail}, with valid records after it (not an interrupted write)"),
                    ));
                }
                return Ok(SegmentEnd {
                    good_len: offset,
                    base_seq,
                    torn: Some((offset, detail)),
                });
            }
            self.apply(&payload, pack(id, offset))
                .map_err(|detail| corrupt(offset, detail))?;
            offset += (FRAME_HEADER_LEN + payload.len()) as u64;
        }
        Ok(SegmentEnd {
            good_len: file_len,
            base_seq,
            torn: None,
        })
    }
}

/// Whether any plausible, checksum-valid frame starts after `offset` in the file: what
/// tells damage in the middle from the debris of an interrupted append.
fn valid_record_after(path: &Path, offset: u64) -> Result<bool> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut rest = Vec::new();
    {
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(offset + 1))
            .map_err(io_err(path))?;
    }
    file.read_to_end(&mut rest).map_err(io_err(path))?;
    Ok((0..rest.len()).any(|at| frame_at(&rest, at)))
}

fn check_manifest(dir: &Path) -> Result<()> {
    let path = dir.join(MANIFEST);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let not_ours = || {
        FrontierError::Incompatible(format!(
            "{} is not an arachne request queue manifest; is {} the queue of a JOBDIR?",
            path.display(),
            dir.display()
        ))
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| not_ours())?;
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_MAGIC) {
        return Err(not_ours());
    }
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("format "))
        .ok_or_else(not_ours)?;
    if version.trim() != FORMAT_VERSION.to_string() {
        return Err(FrontierError::Incompatible(format!(
            "request queue {} is in format {}; this build of arachne reads format {FORMAT_VERSION} \
             (resume it with the version that wrote it, or start afresh)",
            dir.display(),
            version.trim()
        )));
    }
    Ok(())
}

fn write_manifest(dir: &Path, fsync: bool) -> Result<()> {
    let tmp = dir.join(MANIFEST_TMP);
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(format!("{MANIFEST_MAGIC}\nformat {FORMAT_VERSION}\n").as_bytes())
        .map_err(io_err(&tmp))?;
    if fsync {
        file.sync_all().map_err(io_err(&tmp))?;
    }
    drop(file);
    let path = dir.join(MANIFEST);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(MANIFEST);
    let file = File::open(&path).map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(FrontierError::Locked {
            path: dir.to_path_buf(),
        }),
        // Some network file systems have no locks: run unguarded rather than not at all.
        Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(file),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

fn warn(recovered: &mut Recovered, message: String) {
    log::warn!("{message}");
    recovered.warnings.push(message);
}

impl DiskQueue {
    /// Opens (or creates) the queue in directory `path` and replays its log.
    ///
    /// `seen` is called with the fingerprint of every PUSH record still in the log,
    /// pending or acked, so the caller can rebuild its duplicate filter; a request whose
    /// record was copied by compaction may be reported twice. Records of acked requests
    /// in deleted segments are not reported: a filter that must remember every request
    /// ever seen needs its own file.
    pub fn open<F, R>(
        path: &Path,
        options: DiskQueueOptions,
        mut seen: F,
    ) -> Result<(DiskQueue, Recovered)>
    where
        F: FnMut([u8; FINGERPRINT_LEN]) -> R,
    {
        let dir = path.to_path_buf();
        let segment_bytes = options
            .segment_bytes
            .clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
        let fsync = options.fsync_interval;
        let mut recovered = Recovered::default();

        match fs::metadata(&dir) {
            Ok(meta) if !meta.is_dir() => {
                return Err(FrontierError::Incompatible(format!(
                    "request queue {} is not a directory",
                    dir.display()
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            }
            Err(e) => return Err(io_err(&dir)(e)),
        }

        let mut ids = Vec::new();
        let mut has_manifest = false;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == MANIFEST {
                has_manifest = true;
            } else if let Some(id) = parse_segment_name(&name) {
                ids.push(id);
            } else if name != MANIFEST_TMP {
                let message = format!(
                    "request queue {}: ignoring unexpected file {name}",
                    dir.display()
                );
                warn(&mut recovered, message);
            }
        }
        ids.sort_unstable();
        if has_manifest {
            check_manifest(&dir)?;
        } else if ids.is_empty() {
            write_manifest(&dir, fsync.is_some())?;
            recovered.created = true;
        } else {
            return Err(FrontierError::Corrupt {
                file: dir.join(MANIFEST),
                offset: 0,
                detail: "the manifest is missing but segment files are present".into(),
            });
        }
        let lock = lock(&dir)?;
        if let Some(pair) = ids.windows(2).find(|w| w[1] != w[0] + 1) {
            return Err(FrontierError::Corrupt {
                file: dir.join(segment_name(pair[0] + 1)),
                offset: 0,
                detail: format!(
                    "segment file is missing (segments {} and {} are present)",
                    pair[0], pair[1]
                ),
            });
        }

        let mut seen_any = |fp: [u8; FINGERPRINT_LEN]| {
            seen(fp);
        };
        let mut replay = Replay {
            pushes: Vec::new(),
            acks: Vec::new(),
            max_ticket: 0,
            records: 0,
            fingerprints: 0,
            seen: &mut seen_any,
        };
        let mut segments = BTreeMap::new();
        let mut disk_bytes = 0;
        let mut newest_base = None;
        let mut torn = None;
        for (i, &id) in ids.iter().enumerate() {
            let seg_path = dir.join(segment_name(id));
            let newest = i + 1 == ids.len();
            let end = replay.segment(&seg_path, id, newest)?;
            if newest {
                newest_base = end.base_seq;
                if let Some((offset, detail)) = end.torn {
                    torn = Some((seg_path.clone(), offset, detail, end.good_len));
                }
            }
            disk_bytes += end.good_len;
            segments.insert(
                id,
                Segment {
                    path: seg_path,
                    len: end.good_len,
                    live_count: 0,
                    live_bytes: 0,
                    file: None,
                },
            );
        }
        recovered.segments = ids.len();
        recovered.records = replay.records;
        recovered.fingerprints = replay.fingerprints;
        let next_seq = (replay.max_ticket + 1).max(newest_base.unwrap_or(1)).max(1);
        let Replay {
            mut pushes,
            mut acks,
            ..
        } = replay;

        // Pending = pushed and never acked; the later copy of a relocated ticket wins.
        acks.sort_unstable();
        acks.dedup();
        pushes.sort_by_key(|p| p.seq); // stable: copies of a ticket stay in log order
        let mut kept = 0;
        let mut ack_at = 0;
        for i in 0..pushes.len() {
            let p = pushes[i];
            if let Some(next) = pushes.get(i + 1) {
                if next.seq == p.seq {
                    if next.priority != p.priority {
                        let (id, offset) = unpack(next.loc);
                        return Err(FrontierError::Corrupt {
                            file: dir.join(segment_name(id)),
                            offset,
                            detail: format!(
                                "ticket {} appears with priorities {} and {}",
                                p.seq, p.priority, next.priority
                            ),
                        });
                    }
                    recovered.duplicate_copies += 1;
                    continue;
                }
            }
            while acks.get(ack_at).is_some_and(|&a| a < p.seq) {
                ack_at += 1;
            }
            if acks.get(ack_at) == Some(&p.seq) {
                continue;
            }
            pushes[kept] = p;
            kept += 1;
        }
        pushes.truncate(kept);
        drop(acks);

        // Exact capacities: doubling growth would cost up to twice the index.
        let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
        for p in &pushes {
            *counts.entry(p.priority).or_default() += 1;
        }
        let mut by_priority: BTreeMap<i32, VecDeque<Entry>> = counts
            .into_iter()
            .map(|(prio, n)| (prio, VecDeque::with_capacity(n)))
            .collect();
        for p in &pushes {
            if let Some(seg) = segments.get_mut(&unpack(p.loc).0) {
                seg.live_count += 1;
                seg.live_bytes += u64::from(p.size);
            }
            if let Some(q) = by_priority.get_mut(&p.priority) {
                q.push_back(Entry {
                    seq: p.seq,
                    loc: p.loc,
                });
            }
        }
        let pending = pushes.len();
        drop(pushes);

        // The newest segment becomes the active one, its torn end cut off.
        let active = match ids.last() {
            Some(&id) => {
                let seg_path = dir.join(segment_name(id));
                let file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&seg_path)
                    .map_err(io_err(&seg_path))?;
                if let Some((file_path, offset, detail, good_len)) = torn {
                    let file_len = file.metadata().map_err(io_err(&seg_path))?.len();
                    let cut = file_len - good_len;
                    file.set_len(good_len).map_err(io_err(&seg_path))?;
                    if good_len < SEGMENT_HEADER_LEN {
                        let mut writer = &file;
                        writer
                            .write_all(&segment_header(id, next_seq))
                            .map_err(io_err(&seg_path))?;
                        if let Some(seg) = segments.get_mut(&id) {
                            seg.len = SEGMENT_HEADER_LEN;
                        }
                        disk_bytes += SEGMENT_HEADER_LEN - good_len;
                    }
                    if fsync.is_some() {
                        file.sync_all().map_err(io_err(&seg_path))?;
                    }
                    recovered.torn_bytes = cut;
                    let message = format!(
                        "request queue {}: cut {cut} bytes at byte {offset} ({detail}), \
                         left by a write the previous run did not finish",
                        file_path.display()
                    );
                    warn(&mut recovered, message);
                }
                if let Some(seg) = segments.get_mut(&id) {
                    seg.file = Some(file);
                }
                id
            }
            None => {
                let seg_path = dir.join(segment_name(1));
                let file = create_segment(&seg_path, 1, next_seq)?;
                if fsync.is_some() {
                    file.sync_data().map_err(io_err(&seg_path))?;
                    sync_dir(&dir)?;
                }
                disk_bytes += SEGMENT_HEADER_LEN;
                segments.insert(
                    1,
                    Segment {
                        path: seg_path,
                        len: SEGMENT_HEADER_LEN,
                        live_count: 0,
                        live_bytes: 0,
                        file: Some(file),
                    },
                );
                1
            }
        };

        recovered.pending = pending;
        recovered.next_ticket = next_seq;
        let queue = DiskQueue {
            log: Log {
                dir,
                segment_bytes,
                fsync,
                segments,
                active,
                buf: Vec::with_capacity(WRITE_BUFFER + 4096),
                handles: VecDeque::new(),
                disk_bytes,
                unsynced: false,
                dir_unsynced: false,
                last_sync: Instant::now(),
                rotated: false,
            },
            order: options.order,
            compact_below: options.compact_below,
            by_priority,
            pending,
            in_flight: HashMap::default(),
            acks: Vec::new(),
            next_seq,
            maintenance_due: true,
            closed: false,
            _lock: lock,
        };
        Ok((queue, recovered))
    }

    /// Adds a request; returns its ticket. The record is buffered: it reaches the OS at
    /// the next [`flush`](DiskQueue::flush) (or sooner, when the buffer fills).
    pub fn push(
        &mut self,
        priority: i32,
        fingerprint: Option<[u8; FINGERPRINT_LEN]>,
        data: &[u8],
    ) -> Result<u64> {
        if data.len() > MAX_REQUEST_BYTES {
            return Err(FrontierError::TooLarge {
                len: data.len(),
                max: MAX_REQUEST_BYTES,
            });
        }
        let seq = self.next_seq;
        let loc = self
            .log
            .append_push(seq, priority, fingerprint, data, seq)?;
        self.next_seq = seq + 1;
        self.by_priority
            .entry(priority)
            .or_default()
            .push_back(Entry { seq, loc });
        self.pending += 1;
        self.note_rotation();
        Ok(seq)
    }

    /// The priority the next [`pop`](DiskQueue::pop) would serve, if any is pending.
    pub fn peek_priority(&self) -> Option<i32> {
        self.by_priority
            .iter()
            .rev()
            .find(|(_, q)| !q.is_empty())
            .map(|(p, _)| *p)
    }

    /// Takes the next request (highest priority first) and its ticket. It stays in
    /// flight until [`ack`](DiskQueue::ack)ed; after a crash it is pending again.
    pub fn pop(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(mut last) = self.by_priority.last_entry() else {
            return Ok(None);
        };
        let queue = last.get_mut();
        let entry = match self.order {
            QueueOrder::Lifo => queue.back(),
            QueueOrder::Fifo => queue.front(),
        };
        let Some(&entry) = entry else {
            last.remove();
            return Ok(None);
        };
        // Read before unlinking from the index: a failed read leaves the request queued.
        let mut frame = self.log.read_frame(entry.loc)?;
        let head = decode_push(&frame[FRAME_HEADER_LEN..])
            .map_err(|detail| self.log.corrupt(entry.loc, detail))?;
        if head.seq != entry.seq {
            return Err(self.log.corrupt(
                entry.loc,
                format!(
                    "record has seq {} where the index expected {}",
                    head.seq, entry.seq
                ),
            ));
        }
        match self.order {
            QueueOrder::Lifo => queue.pop_back(),
            QueueOrder::Fifo => queue.pop_front(),
        };
        if queue.is_empty() {
            last.remove();
        }
        self.pending -= 1;
        self.in_flight.insert(
            head.ticket,
            InFlight {
                loc: entry.loc,
                size: frame.len() as u32,
            },
        );
        frame.drain(..FRAME_HEADER_LEN + head.data_offset);
        Ok(Some((head.ticket, frame)))
    }

    /// Marks a popped request finished: it will never come back. Returns false (and
    /// writes nothing) if `ticket` is not in flight.
    pub fn ack(&mut self, ticket: u64) -> Result<bool> {
        let Some(flight) = self.in_flight.remove(&ticket) else {
            return Ok(false);
        };
        self.log.release(flight.loc, u64::from(flight.size));
        self.acks.push(ticket);
        self.maintenance_due = true;
        if self.acks.len() >= ACK_BATCH {
            self.encode_acks()?;
        }
        Ok(true)
    }

    fn encode_acks(&mut self) -> Result<()> {
        if self.acks.is_empty() {
            return Ok(());
        }
        self.log.append_acks(&self.acks, self.next_seq)?;
        self.acks.clear();
        self.note_rotation();
        Ok(())
    }

    fn note_rotation(&mut self) {
        if self.log.rotated {
            self.log.rotated = false;
            self.maintenance_due = true;
        }
    }

    /// Writes buffered records to the OS (so they survive the process being killed),
    /// deletes or compacts old segments that are due, and fsyncs if the fsync interval
    /// has passed since the last fsync. Cheap when there is nothing to do.
    pub fn flush(&mut self) -> Result<()> {
        self.encode_acks()?;
        if self.maintenance_due {
            self.maintain()?;
        }
        self.log.spill()?;
        if self.log.unsynced || self.log.dir_unsynced {
            if let Some(interval) = self.log.fsync {
                if self.log.last_sync.elapsed() >= interval {
                    self.log.sync()?;
                }
            }
        }
        Ok(())
    }

    /// [`flush`](DiskQueue::flush) and fsync now, whatever the fsync interval.
    pub fn sync(&mut self) -> Result<()> {
        self.encode_acks()?;
        if self.maintenance_due {
            self.maintain()?;
        }
        self.log.spill()?;
        self.log.sync()
    }

    /// Flushes, tidies the segments and fsyncs. When nothing is pending or in flight,
    /// everything but a fresh, empty segment is deleted.
    pub fn close(mut self) -> Result<()> {
        self.encode_acks()?;
        self.maintain()?;
        let done = self.pending == 0 && self.in_flight.is_empty();
        if done && (self.log.segments.len() > 1 || self.log.end() > SEGMENT_HEADER_LEN) {
            self.log.rotate(self.next_seq)?;
            let active = self.log.active;
            self.log.delete_through(active - 1)?;
        }
        self.log.spill()?;
        self.log.sync()?;
        self.closed = true;
        Ok(())
    }

    /// Deletes the dead prefix of old segments, or compacts the longest prefix whose
    /// live bytes are below `compact_below` of its size.
    fn maintain(&mut self) -> Result<()> {
        self.maintenance_due = false;
        let active = self.log.active;
        let total: u64 = self.log.segments.range(..active).map(|(_, s)| s.len).sum();
        let limit = self.compact_below * total as f64;
        let (mut sum_len, mut sum_live) = (0u64, 0u64);
        let mut dead_through = None;
        let mut compact_through = None;
        for (&id, seg) in self.log.segments.range(..active) {
            sum_len += seg.len;
            sum_live += seg.live_bytes;
            if sum_live == 0 && seg.live_count == 0 {
                dead_through = Some(id);
            } else if (sum_live as f64) < self.compact_below * sum_len as f64 {
                compact_through = Some(id);
            } else if sum_live as f64 >= limit {
                // No longer prefix can get under the fraction.
                break;
            }
        }
        if let Some(last) = compact_through {
            self.compact_through(last)?;
        } else if let Some(last) = dead_through {
            self.log.delete_through(last)?;
        }
        Ok(())
    }

    fn compact_through(&mut self, last: u32) -> Result<()> {
        let next_seq = self.next_seq;
        let moved = |loc: u64| unpack(loc).0 <= last;
        for queue in self.by_priority.values_mut() {
            for entry in queue.iter_mut().filter(|e| moved(e.loc)) {
                entry.loc = self.log.relocate(entry.loc, next_seq)?;
            }
        }
        for flight in self.in_flight.values_mut().filter(|f| moved(f.loc)) {
            flight.loc = self.log.relocate(flight.loc, next_seq)?;
        }
        self.log.spill()?;
        if self.log.fsync.is_some() {
            // The copies must be on disk before the originals go.
            self.log.sync()?;
        }
        self.log.delete_through(last)?;
        self.log.rotated = false;
        Ok(())
    }

    /// Requests waiting (not in flight).
    pub fn len(&self) -> usize {
        self.pending
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Requests popped and not yet acked.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Bytes the log takes: its segment files plus records not yet written.
    pub fn disk_bytes(&self) -> u64 {
        self.log.disk_bytes + self.log.buf.len() as u64
    }

    /// The ticket the next push gets.
    pub fn next_ticket(&self) -> u64 {
        self.next_seq
    }

    /// The queue's directory.
    pub fn path(&self) -> &Path {
        &self.log.dir
    }

    /// Dies like `kill -9`: whatever is still buffered is lost.
    #[cfg(test)]
    fn crash(mut self) {
        self.log.buf.clear();
        self.acks.clear();
        self.closed = true;
    }
}

impl Drop for DiskQueue {
    /// Like `BufWriter`, hands buffered records to the OS (errors ignored); no fsync, no
    /// tidying: that is [`close`](DiskQueue::close)'s job.
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.encode_acks();
            let _ = self.log.spill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn options(order: QueueOrder, segment_bytes: u64) -> DiskQueueOptions {
        DiskQueueOptions {
            order,
            segment_bytes,
            fsync_interval: None,
            compact_below: 0.25,
        }
    }

    fn open(path: &Path, options: DiskQueueOptions) -> (DiskQueue, Recovered) {
        DiskQueue::open(path, options, |_| ()).unwrap()
    }

    /// Pops everything, acking each: the order the queue serves.
    fn drain(q: &mut DiskQueue) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some((ticket, data)) = q.pop().unwrap() {
            assert!(q.ack(ticket).unwrap());
            out.push(data);
        }
        out
    }

    fn strings(items: Vec<Vec<u8>>) -> Vec<String> {
        items
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    fn dir_bytes(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    /// A frame as the log writes it, for damaging files by hand.
    fn push_frame(ticket: u64, data: &[u8]) -> Vec<u8> {
        let mut payload = vec![KIND_PUSH, 0];
        payload.extend_from_slice(&0i32.to_le_bytes());
        payload.extend_from_slice(&ticket.to_le_bytes());
        payload.extend_from_slice(&ticket.to_le_bytes());
        payload.extend_from_slice(data);
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    fn push_all(q: &mut DiskQueue, items: &[(&str, i32)]) {
        for (data, prio) in items {
            q.push(*prio, None, data.as_bytes()).unwrap();
        }
    }

    /// Highest priority first, LIFO inside a priority.
    #[test]
    fn lifo_order_with_priorities() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, rec) = open(dir.path(), options(QueueOrder::Lifo, 4096));
        assert!(rec.created);
        push_all(
            &mut q,
            &[("a", 0), ("b", -1), ("c", 0), ("d", 3), ("e", 3), ("f", -1)],
        );
        assert_eq!(q.len(), 6);
        assert_eq!(strings(drain(&mut q)), ["e", "d", "c", "a", "f", "b"]);
        assert!(q.is_empty());
        assert_eq!(q.in_flight(), 0);
    }

    /// Highest priority first, FIFO inside a priority.
    #[test]
    fn fifo_order_with_priorities() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        push_all(
            &mut q,
            &[("a", 0), ("b", -1), ("c", 0), ("d", 3), ("e", 3), ("f", -1)],
        );
        assert_eq!(strings(drain(&mut q)), ["d", "e", "a", "c", "b", "f"]);
    }

    /// The same pushes and pops as `MemoryQueue` give the same requests, in both orders.
    #[test]
    fn same_order_as_memory_queue() {
        use crate::http::Request;
        use rand::{Rng, SeedableRng};
        for order in [QueueOrder::Lifo, QueueOrder::Fifo] {
            let dir = tempfile::tempdir().unwrap();
            let (mut q, _) = open(dir.path(), options(order, 4096));
            let mut m = super::super::MemoryQueue::new(order);
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let (mut from_disk, mut from_memory) = (Vec::new(), Vec::new());
            for i in 0..2000 {
                if rng.gen_bool(0.6) {
                    let prio = rng.gen_range(-3..3);
                    let path = format!("/{i}");
                    q.push(prio, None, path.as_bytes()).unwrap();
                    m.push(
                        Request::get(format!("http://127.0.0.1{path}"))
                            .unwrap()
                            .priority(prio),
                    );
                } else {
                    if let Some((t, data)) = q.pop().unwrap() {
                        q.ack(t).unwrap();
                        from_disk.push(String::from_utf8(data).unwrap());
                    }
                    if let Some(r) = m.pop() {
                        from_memory.push(r.url.path().to_string());
                    }
                }
            }
            from_disk.extend(strings(drain(&mut q)));
            from_memory.extend(std::iter::from_fn(|| m.pop()).map(|r| r.url.path().to_string()));
            assert_eq!(from_disk, from_memory, "{order:?}");
        }
    }

    /// After close, pending and in-flight requests come back in order; acked ones don't.
    #[test]
    fn reopen_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.queue");
        let (mut q, _) = open(&path, options(QueueOrder::Lifo, 4096));
        for i in 0..100 {
            q.push(i % 3, None, format!("r{i}").as_bytes()).unwrap();
        }
        let mut popped = Vec::new();
        for _ in 0..10 {
            popped.push(q.pop().unwrap().unwrap());
        }
        for (t, _) in &popped[..5] {
            assert!(q.ack(*t).unwrap());
        }
        let expected_after: Vec<_> = popped[5..].iter().map(|(_, d)| d.clone()).collect();
        q.close().unwrap();

        let (mut q, rec) = open(&path, options(QueueOrder::Lifo, 4096));
        assert!(!rec.created);
        assert_eq!(rec.pending, 95);
        assert_eq!(rec.torn_bytes, 0);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        let all = drain(&mut q);
        assert_eq!(all.len(), 95);
        // The five requeued in-flight ones were the top of the stack: they come first.
        assert_eq!(all[..5], expected_after[..]);
    }

    /// Dropping without close still hands the buffer to the OS, like a BufWriter.
    #[test]
    fn reopen_after_drop_without_close() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        push_all(&mut q, &[("a", 0), ("b", 0), ("c", 1)]);
        let (t, d) = q.pop().unwrap().unwrap();
        assert_eq!(d, b"c");
        q.ack(t).unwrap();
        drop(q);
        let (mut q, rec) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        assert_eq!(rec.pending, 2);
        assert_eq!(strings(drain(&mut q)), ["a", "b"]);
    }

    /// A copy of the directory taken while the queue runs, right after a flush, is what
    /// `kill -9` at that instant would leave: it opens with exactly the flushed state.
    #[test]
    fn copy_of_live_directory_after_flush() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("live");
        let (mut q, _) = open(&live, options(QueueOrder::Lifo, 4096));
        for i in 0..50 {
            q.push(i % 2, Some([i as u8; 20]), format!("r{i:02}").as_bytes())
                .unwrap();
        }
        let (t1, d1) = q.pop().unwrap().unwrap();
        let (t2, _) = q.pop().unwrap().unwrap();
        q.ack(t2).unwrap();
        let (_t3, d3) = q.pop().unwrap().unwrap();
        q.ack(t1).unwrap();
        q.flush().unwrap();
        let snapshot = tmp.path().join("snapshot");
        copy_dir(&live, &snapshot);
        // Work after the snapshot must not show up in it.
        q.push(9, None, b"later").unwrap();
        q.flush().unwrap();

        let mut fps = BTreeSet::new();
        let (mut c, rec) = DiskQueue::open(&snapshot, options(QueueOrder::Lifo, 4096), |fp| {
            fps.insert(fp)
        })
        .unwrap();
        assert_eq!(rec.pending, 48);
        assert_eq!(fps.len(), 50);
        let all = drain(&mut c);
        assert_eq!(all.len(), 48);
        assert_eq!(all[0], d3, "the in-flight request is back at the top");
        assert!(!all.contains(&d1));
        assert!(!all.iter().any(|d| d == b"later"));
        drop(q);
    }

    /// What was still in the write buffer at a crash is gone; what was flushed is not.
    #[test]
    fn unflushed_records_absent_after_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        push_all(&mut q, &[("a", 0), ("b", 0)]);
        q.flush().unwrap();
        push_all(&mut q, &[("c", 0)]);
        let (t, _) = q.pop().unwrap().unwrap();
        q.ack(t).unwrap(); // the ack of "a" is still buffered
        q.crash();
        let (mut q, rec) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        assert_eq!(rec.pending, 2);
        assert_eq!(strings(drain(&mut q)), ["a", "b"]);
    }

    /// A popped, unacked request is pending again after a crash, in its old place.
    #[test]
    fn in_flight_requeued_on_reopen() {
        for order in [QueueOrder::Lifo, QueueOrder::Fifo] {
            let dir = tempfile::tempdir().unwrap();
            let (mut q, _) = open(dir.path(), options(order, 4096));
            push_all(&mut q, &[("a", 0), ("b", 0), ("c", 0), ("z", -5)]);
            let (_, first) = q.pop().unwrap().unwrap();
            let (t, _) = q.pop().unwrap().unwrap();
            q.ack(t).unwrap();
            q.flush().unwrap();
            assert_eq!(q.in_flight(), 1);
            q.crash();
            let (mut q, rec) = open(dir.path(), options(order, 4096));
            assert_eq!(rec.pending, 3);
            let all = strings(drain(&mut q));
            assert_eq!(all[0].as_bytes(), &first[..]);
            let expected = match order {
                QueueOrder::Lifo => ["c", "a", "z"],
                QueueOrder::Fifo => ["a", "c", "z"],
            };
            assert_eq!(all, expected);
        }
    }

    /// Acked requests never come back, across segments and reopenings.
    #[test]
    fn acked_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        for i in 0..1000 {
            q.push(0, None, format!("{i}").as_bytes()).unwrap();
        }
        for _ in 0..600 {
            let (t, _) = q.pop().unwrap().unwrap();
            q.ack(t).unwrap();
        }
        assert!(!q.ack(123_456).unwrap(), "an unknown ticket is not acked");
        q.flush().unwrap();
        q.crash();
        let (mut q, rec) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        assert_eq!(rec.pending, 400);
        let all = strings(drain(&mut q));
        assert_eq!(all.first().map(String::as_str), Some("600"));
        assert_eq!(all.len(), 400);
        q.close().unwrap();
        let (q, rec) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        assert_eq!(rec.pending, 0);
        assert!(q.is_empty());
        // A finished queue is tidied to one empty segment.
        assert_eq!(segment_files(dir.path()).len(), 1);
        assert_eq!(q.disk_bytes(), SEGMENT_HEADER_LEN);
    }

    /// An interrupted write at the end (file cut short) is dropped with a warning.
    #[test]
    fn torn_tail_truncated_with_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        for i in 0..10 {
            q.push(0, None, format!("request {i}").as_bytes()).unwrap();
        }
        q.close().unwrap();
        let seg = segment_files(dir.path()).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (mut q, rec) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        assert_eq!(rec.pending, 9);
        assert!(
            rec.torn_bytes > 0 && rec.torn_bytes < 40,
            "{}",
            rec.torn_bytes
        );
        assert_eq!(rec.warnings.len(), 1);
        assert!(
            rec.warnings[0].contains(&*seg.to_string_lossy()),
            "{:?}",
            rec.warnings
        );
        // The log goes on cleanly after the cut.
        q.push(0, None, b"after").unwrap();
        q.close().unwrap();
        let (mut q, rec) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        assert!(rec.warnings.is_empty());
        let all = strings(drain(&mut q));
        assert_eq!(all.len(), 10);
        assert_eq!(all[8], "request 8");
        assert_eq!(all[9], "after");
    }

    /// Half a record, or random bytes, appended at the end are a torn tail too.
    #[test]
    fn torn_half_record_and_random_tail() {
        let frame = push_frame(99, &[b'x'; 200]);
        let random: Vec<u8> = (0..37u32).map(|i| (i * 97 + 13) as u8).collect();
        for tail in [&frame[..frame.len() / 2], &frame[..5], &random[..]] {
            let dir = tempfile::tempdir().unwrap();
            let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
            push_all(&mut q, &[("a", 0), ("b", 0)]);
            q.close().unwrap();
            let seg = segment_files(dir.path()).pop().unwrap();
            let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
            f.write_all(tail).unwrap();
            drop(f);
            let (mut q, rec) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
            assert_eq!(rec.torn_bytes, tail.len() as u64);
            assert_eq!(rec.warnings.len(), 1);
            assert_eq!(strings(drain(&mut q)), ["a", "b"]);
        }
    }

    /// A crash right after a segment was created leaves a short header: repaired.
    #[test]
    fn torn_segment_header() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        push_all(&mut q, &[("a", 0)]);
        let t = q.next_ticket();
        q.close().unwrap();
        fs::write(
            dir.path().join(segment_name(2)),
            &segment_header(2, 5)[..10],
        )
        .unwrap();
        let (mut q, rec) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        assert_eq!(rec.torn_bytes, 10);
        assert_eq!(rec.next_ticket, t);
        assert_eq!(strings(drain(&mut q)), ["a"]);
        q.close().unwrap();
        let (_q, rec) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        assert!(rec.warnings.is_empty());
    }

    /// Damage followed by valid records is corruption, not a torn write.
    #[test]
    fn garbage_in_the_middle_is_corrupt() {
        // Damage in a payload, then damage in a length field.
        for (at, bytes) in [
            (20usize, &b"\xff\xfe\xfd"[..]),
            (0, &b"\xff\xff\xff\x7f"[..]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
            for i in 0..20 {
                q.push(0, None, format!("request number {i}").as_bytes())
                    .unwrap();
            }
            q.close().unwrap();
            let seg = segment_files(dir.path()).pop().unwrap();
            let mut content = fs::read(&seg).unwrap();
            let frame_len = push_frame(1, b"request number 0").len();
            let record = SEGMENT_HEADER_LEN as usize + 5 * frame_len;
            content[record + at..record + at + bytes.len()].copy_from_slice(bytes);
            fs::write(&seg, &content).unwrap();
            let err = DiskQueue::open(dir.path(), options(QueueOrder::Fifo, 1 << 20), |_| ())
                .unwrap_err();
            match &err {
                FrontierError::Corrupt { file, offset, .. } => {
                    assert_eq!(file, &seg);
                    assert_eq!(*offset, record as u64);
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
            assert!(err.to_string().contains(&*seg.to_string_lossy()), "{err}");
            // The file is left alone for a human to look at.
            assert_eq!(fs::read(&seg).unwrap(), content);
        }
    }

    /// Any damage in a finished segment, even at its end, is corruption.
    #[test]
    fn damaged_older_segment_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        for i in 0..200 {
            q.push(0, None, format!("{i:040}").as_bytes()).unwrap();
        }
        q.close().unwrap();
        let segs = segment_files(dir.path());
        assert!(segs.len() > 2);
        let len = fs::metadata(&segs[0]).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&segs[0])
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let err = DiskQueue::open(dir.path(), options(QueueOrder::Fifo, 4096), |_| ()).unwrap_err();
        assert!(
            matches!(&err, FrontierError::Corrupt { file, .. } if file == &segs[0]),
            "{err:?}"
        );
    }

    /// A segment missing from the middle of the sequence is corruption.
    #[test]
    fn missing_segment_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        for i in 0..200 {
            q.push(0, None, format!("{i:040}").as_bytes()).unwrap();
        }
        q.close().unwrap();
        let segs = segment_files(dir.path());
        fs::remove_file(&segs[1]).unwrap();
        let err = DiskQueue::open(dir.path(), options(QueueOrder::Fifo, 4096), |_| ()).unwrap_err();
        assert!(
            matches!(&err, FrontierError::Corrupt { file, .. } if file == &segs[1]),
            "{err:?}"
        );
    }

    /// Another magic or format version is refused, not misread.
    #[test]
    fn bad_version_is_incompatible() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        push_all(&mut q, &[("a", 0)]);
        q.close().unwrap();
        let manifest = dir.path().join(MANIFEST);
        let good = fs::read(&manifest).unwrap();

        fs::write(&manifest, "arachne-request-queue\nformat 2\n").unwrap();
        let err = DiskQueue::open(dir.path(), options(QueueOrder::Fifo, 4096), |_| ()).unwrap_err();
        assert!(matches!(err, FrontierError::Incompatible(_)), "{err:?}");
        assert!(err.to_string().contains("format 2"), "{err}");

        fs::write(&manifest, "something else\n").unwrap();
        let err = DiskQueue::open(dir.path(), options(QueueOrder::Fifo, 4096), |_| ()).unwrap_err();
        assert!(matches!(err, FrontierError::Incompatible(_)), "{err:?}");

        fs::write(&manifest, &good).unwrap();
        let seg = segment_files(dir.path()).pop().unwrap();
        let mut content = fs::read(&seg).unwrap();
        content[8..12].copy_from_slice(&7u32.to_le_bytes());
        fs::write(&seg, &content).unwrap();
        let err = DiskQueue::open(dir.path(), options(QueueOrder::Fifo, 4096), |_| ()).unwrap_err();
        assert!(matches!(err, FrontierError::Incompatible(_)), "{err:?}");

        let not_dir = dir.path().join(MANIFEST);
        let err = DiskQueue::open(&not_dir, options(QueueOrder::Fifo, 4096), |_| ()).unwrap_err();
        assert!(matches!(err, FrontierError::Incompatible(_)), "{err:?}");
    }

    /// Two live queues on one directory would interleave their appends.
    #[test]
    fn second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        let err = DiskQueue::open(dir.path(), options(QueueOrder::Fifo, 4096), |_| ()).unwrap_err();
        assert!(matches!(err, FrontierError::Locked { .. }), "{err:?}");
        drop(q);
        open(dir.path(), options(QueueOrder::Fifo, 4096));
    }

    /// Tickets keep increasing across runs, even when the log was emptied and tidied or
    /// the previous run crashed.
    #[test]
    fn tickets_monotonic_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0;
        for round in 0..6 {
            let (mut q, rec) = open(dir.path(), options(QueueOrder::Lifo, 4096));
            assert!(rec.next_ticket > last);
            for _ in 0..50 {
                let t = q.push(0, None, &[round; 60]).unwrap();
                assert!(t > last);
                last = t;
            }
            if round % 2 == 0 {
                drain(&mut q);
            }
            match round % 3 {
                0 => q.close().unwrap(),
                1 => drop(q),
                _ => {
                    q.flush().unwrap();
                    q.crash();
                }
            }
        }
    }

    /// `seen` gets the fingerprint of every PUSH still in the log, acked ones included.
    #[test]
    fn seen_reports_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        for i in 0..10u8 {
            let fp = (i % 3 != 0).then_some([i; 20]);
            q.push(0, fp, &[i]).unwrap();
        }
        for _ in 0..4 {
            let (t, _) = q.pop().unwrap().unwrap();
            q.ack(t).unwrap();
        }
        q.flush().unwrap();
        drop(q);
        let mut seen = BTreeSet::new();
        let (_q, rec) = DiskQueue::open(dir.path(), options(QueueOrder::Fifo, 1 << 20), |fp| {
            seen.insert(fp[0])
        })
        .unwrap();
        assert_eq!(rec.fingerprints, 6);
        assert_eq!(seen, BTreeSet::from([1, 2, 4, 5, 7, 8]));
    }

    /// More segments than cached read handles, read in priority order (jumping between
    /// segments) after a reopen.
    #[test]
    fn many_segments_and_read_handles() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 256));
        let mut model = Vec::new();
        for i in 0..3000u32 {
            let prio = (i.wrapping_mul(2_654_435_761) >> 29) as i32;
            q.push(prio, None, format!("{i:050}").as_bytes()).unwrap();
            model.push((prio, i));
        }
        q.close().unwrap();
        assert!(segment_files(dir.path()).len() > 4 * READ_HANDLES);
        let (mut q, rec) = open(dir.path(), options(QueueOrder::Fifo, 256));
        assert_eq!(rec.pending, 3000);
        model.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<String> = model.iter().map(|(_, i)| format!("{i:050}")).collect();
        assert_eq!(strings(drain(&mut q)), want);
        assert!(q.log.handles.len() <= READ_HANDLES);
    }

    /// Damage that appears under a running queue is reported by the pop that meets it.
    #[test]
    fn damage_found_by_pop_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        push_all(&mut q, &[("first request", 0), ("second request", 0)]);
        q.close().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 1 << 20));
        let seg = segment_files(dir.path()).pop().unwrap();
        let mut content = fs::read(&seg).unwrap();
        let at = SEGMENT_HEADER_LEN as usize + 40;
        content[at] ^= 0xff;
        fs::write(&seg, &content).unwrap();
        let err = q.pop().unwrap_err();
        assert!(
            matches!(&err, FrontierError::Corrupt { file, offset, .. }
                if file == &seg && *offset == SEGMENT_HEADER_LEN),
            "{err:?}"
        );
        assert_eq!(q.len(), 2, "a failed pop leaves the request queued");
    }

    #[test]
    fn oversized_request_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Fifo, 4096));
        let big = vec![0u8; MAX_REQUEST_BYTES + 1];
        assert!(matches!(
            q.push(0, None, &big),
            Err(FrontierError::TooLarge { .. })
        ));
        assert!(q.is_empty());
    }

    /// FIFO: consumed segments are deleted as a prefix. LIFO: the long-lived bottom of
    /// the stack is compacted forward. Both keep exactly the right contents across a
    /// reopen, and the state an interrupted compaction leaves (both copies) replays too.
    #[test]
    fn segment_deletion_and_compaction_across_reopen() {
        for order in [QueueOrder::Fifo, QueueOrder::Lifo] {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("q");
            let (mut q, _) = open(&path, options(order, 4096));
            for i in 0..400 {
                q.push(i % 2, Some([1; 20]), format!("{i:0100}").as_bytes())
                    .unwrap();
            }
            q.flush().unwrap();
            let segments_full = segment_files(&path).len();
            assert!(segments_full > 10, "{segments_full}");
            for _ in 0..350 {
                let (t, _) = q.pop().unwrap().unwrap();
                q.ack(t).unwrap();
            }
            let (in_flight, _) = q.pop().unwrap().unwrap();
            // Before maintenance runs: what an interrupted compaction starts from.
            q.encode_acks().unwrap();
            q.log.spill().unwrap();
            let before = tmp.path().join("before");
            copy_dir(&path, &before);
            q.flush().unwrap();
            let after = segment_files(&path);
            assert!(after.len() <= 4, "{order:?}: {} segments", after.len());
            assert!(q.disk_bytes() < 4 * 4096, "{}", q.disk_bytes());
            assert_eq!(
                dir_bytes(&path) - fs::metadata(path.join(MANIFEST)).unwrap().len(),
                q.disk_bytes()
            );

            // Interrupted compaction: the copies were written, the originals not deleted.
            for seg in &after {
                fs::copy(seg, before.join(seg.file_name().unwrap())).unwrap();
            }
            q.push(5, None, b"new").unwrap();
            q.flush().unwrap();
            q.crash();
            let _ = in_flight;

            let (mut q, rec) = open(&path, options(order, 4096));
            assert_eq!(rec.pending, 51);
            let mut expected = strings(drain(&mut q));
            assert_eq!(expected.remove(0), "new");

            let (mut b, rec) = open(&before, options(order, 4096));
            assert_eq!(rec.pending, 50);
            if order == QueueOrder::Lifo {
                assert!(rec.duplicate_copies > 0);
            }
            assert_eq!(strings(drain(&mut b)), expected);
            // The model: serve 400 requests with priority i % 2 like the queue does.
            let mut model: Vec<(i32, usize)> = (0..400).map(|i| ((i % 2) as i32, i)).collect();
            let serve = |model: &mut Vec<(i32, usize)>| {
                let best = model.iter().map(|m| m.0).max()?;
                let pick = match order {
                    QueueOrder::Lifo => model.iter().rposition(|m| m.0 == best),
                    QueueOrder::Fifo => model.iter().position(|m| m.0 == best),
                }?;
                Some(model.remove(pick).1)
            };
            for _ in 0..350 {
                serve(&mut model);
            }
            let model: Vec<String> = std::iter::from_fn(|| serve(&mut model))
                .map(|i| format!("{i:0100}"))
                .collect();
            assert_eq!(expected, model, "{order:?}");
        }
    }

    /// One million requests through a LIFO queue whose live set stays small: the log
    /// stays a small multiple of the live set instead of growing with the traffic.
    #[test]
    fn disk_bounded_in_steady_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = open(dir.path(), options(QueueOrder::Lifo, 64 << 10));
        let mut max_disk = 0;
        let mut state = 1u32;
        let data = [b'r'; 40];
        for i in 0..1_000_000u32 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            if q.len() < 1000 || state.is_multiple_of(2) {
                q.push((state % 4) as i32, None, &data).unwrap();
            } else if let Some((t, _)) = q.pop().unwrap() {
                q.ack(t).unwrap();
            }
            if i % 100 == 0 {
                q.flush().unwrap();
                max_disk = max_disk.max(q.disk_bytes());
            }
        }
        q.flush().unwrap();
        let live = q.len();
        assert!(live < 5000, "{live}");
        // 1000+ live records of 70 bytes, four times that at most in old segments,
        // plus the active segment and one of slack.
        assert!(max_disk < 1 << 20, "peak {max_disk} bytes");
        assert!(dir_bytes(dir.path()) < 1 << 20);
        q.close().unwrap();
        let (q, rec) = open(dir.path(), options(QueueOrder::Lifo, 64 << 10));
        assert_eq!(rec.pending, live);
        assert_eq!(q.len(), live);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Push(i32, usize),
            Pop,
            Ack(usize),
            AckUnknown,
            Flush,
            /// Flush, then `kill -9`.
            CrashFlushed,
            /// `kill -9` with whatever is buffered.
            Crash,
            Close,
            Drop,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                8 => (-2..3i32, 0..150usize).prop_map(|(p, n)| Op::Push(p, n)),
                5 => Just(Op::Pop),
                4 => (0..8usize).prop_map(Op::Ack),
                1 => Just(Op::AckUnknown),
                2 => Just(Op::Flush),
                1 => Just(Op::CrashFlushed),
                1 => Just(Op::Crash),
                1 => Just(Op::Close),
                1 => Just(Op::Drop),
            ]
        }

        /// What the queue must hold, plus what is needed to judge a crash.
        #[derive(Default)]
        struct Model {
            data: HashMap<u64, (i32, Vec<u8>)>,
            pending: BTreeSet<u64>,
            in_flight: Vec<u64>,
            /// Live (pending or in flight) at the last point everything reached the OS.
            durable_live: BTreeSet<u64>,
            pushed_since: Vec<u64>,
            acked_since: BTreeSet<u64>,
            max_ticket: u64,
        }

        impl Model {
            fn next(&self, order: QueueOrder) -> Option<u64> {
                let best = self.pending.iter().map(|t| self.data[t].0).max()?;
                let mut it = self.pending.iter().filter(|t| self.data[t].0 == best);
                match order {
                    QueueOrder::Lifo => it.next_back().copied(),
                    QueueOrder::Fifo => it.next().copied(),
                }
            }

            fn durable(&mut self) {
                self.durable_live = self
                    .pending
                    .iter()
                    .chain(&self.in_flight)
                    .copied()
                    .collect();
                self.pushed_since.clear();
                self.acked_since.clear();
            }

            /// After an exact reopen: in-flight requests are pending again.
            fn requeue(&mut self) {
                self.pending.extend(self.in_flight.drain(..));
                self.durable();
            }
        }

        fn reopen_exact(path: &Path, opts: &DiskQueueOptions, m: &Model) -> DiskQueue {
            let (q, rec) = open(path, opts.clone());
            assert_eq!(rec.pending, m.pending.len());
            assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
            q
        }

        fn run(order: QueueOrder, segment_bytes: u64, compact_below: f64, ops: Vec<Op>) {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("q");
            let opts = DiskQueueOptions {
                order,
                segment_bytes,
                fsync_interval: None,
                compact_below,
            };
            let (mut q, _) = open(&path, opts.clone());
            let mut m = Model::default();
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Push(prio, n) => {
                        let data: Vec<u8> = (0..n).map(|i| (i + step) as u8).collect();
                        let t = q.push(prio, Some([step as u8; 20]), &data).unwrap();
                        assert!(t > m.max_ticket, "ticket {t} after {}", m.max_ticket);
                        assert!(!m.pending.contains(&t) && !m.in_flight.contains(&t));
                        m.max_ticket = t;
                        m.data.insert(t, (prio, data));
                        m.pending.insert(t);
                        m.pushed_since.push(t);
                    }
                    Op::Pop => {
                        let want = m.next(order);
                        let got = q.pop().unwrap();
                        assert_eq!(got.as_ref().map(|g| g.0), want);
                        if let Some((t, data)) = got {
                            assert_eq!(data, m.data[&t].1);
                            m.pending.remove(&t);
                            m.in_flight.push(t);
                        }
                    }
                    Op::Ack(i) => {
                        if !m.in_flight.is_empty() {
                            let t = m.in_flight.remove(i % m.in_flight.len());
                            assert!(q.ack(t).unwrap());
                            m.acked_since.insert(t);
                        }
                    }
                    Op::AckUnknown => {
                        assert!(!q.ack(u64::MAX).unwrap());
                    }
                    Op::Flush => {
                        q.flush().unwrap();
                        m.durable();
                    }
                    Op::CrashFlushed => {
                        q.flush().unwrap();
                        q.crash();
                        m.requeue();
                        q = reopen_exact(&path, &opts, &m);
                    }
                    Op::Close => {
                        q.close().unwrap();
                        m.requeue();
                        q = reopen_exact(&path, &opts, &m);
                    }
                    Op::Drop => {
                        drop(q);
                        m.requeue();
                        q = reopen_exact(&path, &opts, &m);
                    }
                    Op::Crash => {
                        q.crash();
                        let (q2, rec) = open(&path, opts.clone());
                        q = q2;
                        let got: BTreeSet<u64> =
                            q.by_priority.values().flatten().map(|e| e.seq).collect();
                        assert_eq!(rec.pending, got.len());
                        // What was durable and not acked since must be there...
                        for t in &m.durable_live {
                            if !m.acked_since.contains(t) {
                                assert!(got.contains(t), "lost durable ticket {t}");
                            }
                        }
                        // ...nothing acked before the last flush, nothing invented...
                        for t in &got {
                            assert!(
                                m.durable_live.contains(t) || m.pushed_since.contains(t),
                                "ticket {t} came back from the dead"
                            );
                        }
                        // ...and the pushes since then that survived are a prefix.
                        let cut = m
                            .pushed_since
                            .iter()
                            .rposition(|t| got.contains(t))
                            .map_or(0, |i| i + 1);
                        for t in &m.pushed_since[..cut] {
                            if !m.acked_since.contains(t) {
                                assert!(got.contains(t), "ticket {t} lost before a surviving one");
                            }
                        }
                        for t in &m.pushed_since[cut..] {
                            m.data.remove(t);
                        }
                        m.pending = got;
                        m.in_flight.clear();
                        m.durable();
                        m.max_ticket = m.max_ticket.min(q.next_ticket() - 1);
                        continue;
                    }
                }
                assert_eq!(q.len(), m.pending.len());
                assert_eq!(q.in_flight(), m.in_flight.len());
            }
            q.close().unwrap();
            m.requeue();
            let (mut q, _) = open(&path, opts);
            while let Some(want) = m.next(order) {
                let (t, data) = q.pop().unwrap().unwrap();
                assert_eq!(t, want);
                assert_eq!(data, m.data[&t].1);
                m.pending.remove(&t);
            }
            assert!(q.pop().unwrap().is_none());
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            /// Random pushes, pops, acks, flushes, crashes and reopenings against a model.
            #[test]
            fn matches_model(
                lifo in any::<bool>(),
                segment_bytes in prop_oneof![Just(256u64), Just(1024), Just(1 << 20)],
                compact_below in prop_oneof![Just(0.0), Just(0.25), Just(0.6)],
                ops in proptest::collection::vec(op(), 1..250),
            ) {
                let order = if lifo { QueueOrder::Lifo } else { QueueOrder::Fifo };
                run(order, segment_bytes, compact_below, ops);
            }
        }
    }
}
