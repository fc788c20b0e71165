//! Measures the JOBDIR request queue (`arachne::queue::disk`) against an embedded
//! database doing the same job, so the choice of a hand-rolled log rests on numbers.
//!
//! Both stores get 1,000,000 requests of ~300 bytes in a few priority levels, then serve
//! and finish them all, highest priority first and LIFO inside a priority:
//!
//! * the disk queue with its defaults (64 MiB segments, fsync at most once a second),
//!   `flush()` after every 1,000 operations;
//! * a `redb` table keyed by (inverted priority, inverted seq), one durable write
//!   transaction per 1,000 pushes or pops (a pop deletes the row).
//!
//! Run with `cargo run --release --example frontier_bench`.

use std::fs;
use std::path::Path;
use std::time::Instant;

use arachne::queue::disk::{DiskQueue, DiskQueueOptions};
use arachne::queue::QueueOrder;
use redb::{Database, ReadableTableMetadata, TableDefinition};

const N: u64 = 1_000_000;
const BATCH: u64 = 1_000;
const TABLE: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("requests");

/// A request-sized record with a priority from a few levels, like a crawl's depths.
fn request(i: u64) -> (i32, [u8; 20], Vec<u8>) {
    // splitmix64: cheap and the same on every run.
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let priority = (z % 4) as i32 - 2;
    let mut fingerprint = [0u8; 20];
    fingerprint[..8].copy_from_slice(&z.to_le_bytes());
    fingerprint[8..16].copy_from_slice(&i.to_le_bytes());
    let mut data = format!(
        "GET https://example.com/catalogue/category/books/page-{i}.html?session={z:016x} \
         referer=https://example.com/catalogue/page-{}.html depth={} ",
        i / 7,
        -priority
    )
    .into_bytes();
    data.resize(300, b'.');
    (priority, fingerprint, data)
}

/// Peak resident set size of this process so far, in bytes.
fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Starts a new peak-RSS measurement (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

struct Figures {
    name: &'static str,
    push_secs: f64,
    pop_secs: f64,
    disk_bytes: u64,
    peak_rss: Option<u64>,
    rss_reset: bool,
}

impl Figures {
    fn print(&self) {
        let rss = match self.peak_rss {
            Some(b) => format!("{:.1} MB", b as f64 / 1e6),
            None => "n/a".into(),
        };
        println!(
            "{:<11} push {:>9.0}/s  pop+ack {:>9.0}/s  disk {:>6.1} MB  peak RSS {:>7}{}  ({:.1} s)",
            self.name,
            N as f64 / self.push_secs,
            N as f64 / self.pop_secs,
            self.disk_bytes as f64 / 1e6,
            rss,
            if self.rss_reset { "" } else { " (process peak)" },
            self.push_secs + self.pop_secs,
        );
    }
}

fn disk_queue(dir: &Path) -> Result<Figures, Box<dyn std::error::Error>> {
    let rss_reset = reset_peak_rss();
    let options = DiskQueueOptions {
        order: QueueOrder::Lifo,
        ..Default::default()
    };
    let (mut q, _) = DiskQueue::open(&dir.join("requests.queue"), options, |_| ())?;

    let start = Instant::now();
    for i in 0..N {
        let (priority, fingerprint, data) = request(i);
        q.push(priority, Some(fingerprint), &data)?;
        if i % BATCH == BATCH - 1 {
            q.flush()?;
        }
    }
    q.flush()?;
    let push_secs = start.elapsed().as_secs_f64();
    let disk_bytes = q.disk_bytes();

    let start = Instant::now();
    let mut served = 0u64;
    let mut bytes = 0usize;
    while let Some((ticket, data)) = q.pop()? {
        bytes += data.len();
        q.ack(ticket)?;
        served += 1;
        if served.is_multiple_of(BATCH) {
            q.flush()?;
        }
    }
    q.close()?;
    let pop_secs = start.elapsed().as_secs_f64();
    assert_eq!(served, N);
    assert_eq!(bytes, 300 * N as usize);
    Ok(Figures {
        name: "disk queue",
        push_secs,
        pop_secs,
        disk_bytes,
        peak_rss: peak_rss(),
        rss_reset,
    })
}

fn redb_table(dir: &Path) -> Result<Figures, Box<dyn std::error::Error>> {
    let rss_reset = reset_peak_rss();
    let path = dir.join("requests.redb");
    let db = Database::create(&path)?;

    let start = Instant::now();
    let mut i = 0;
    while i < N {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for seq in i..(i + BATCH).min(N) {
                let (priority, _, data) = request(seq);
                // The first key is the next request: highest priority, newest first.
                table.insert((-i64::from(priority), u64::MAX - seq), data.as_slice())?;
            }
        }
        txn.commit()?;
        i += BATCH;
    }
    let push_secs = start.elapsed().as_secs_f64();
    let disk_bytes = fs::metadata(&path)?.len();

    let start = Instant::now();
    let mut served = 0u64;
    let mut bytes = 0usize;
    loop {
        let txn = db.begin_write()?;
        let empty;
        {
            let mut table = txn.open_table(TABLE)?;
            for _ in 0..BATCH {
                let Some((_, value)) = table.pop_first()? else {
                    break;
                };
                let data: Vec<u8> = value.value().to_vec();
                bytes += data.len();
                served += 1;
            }
            empty = table.len()? == 0;
        }
        txn.commit()?;
        if empty {
            break;
        }
    }
    let pop_secs = start.elapsed().as_secs_f64();
    assert_eq!(served, N);
    assert_eq!(bytes, 300 * N as usize);
    Ok(Figures {
        name: "redb",
        push_secs,
        pop_secs,
        disk_bytes,
        peak_rss: peak_rss(),
        rss_reset,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{N} requests of 300 bytes, 4 priority levels, LIFO inside a priority");
    let dir = tempfile::tempdir()?;
    let disk = disk_queue(dir.path())?;
    disk.print();
    let dir = tempfile::tempdir()?;
    let redb = redb_table(dir.path())?;
    redb.print();
    Ok(())
}
