//! A job directory (`JOBDIR`): what lets a crawl stop — cleanly, or killed — and go on
//! later from where it was. It holds:
//!
//! - `lock`: held (an OS file lock) by the one process using the job, with its pid in
//!   it, so a second process is refused with a message naming the holder;
//! - `arachne-job.json`: the manifest — format version, spider name, how many runs;
//!   a job of another spider or of a newer format is refused, never overwritten;
//! - `requests.queue/`: the pending requests, a crash-safe log (see
//!   [`crate::queue::disk`]);
//! - `requests.seen`: the duplicate filter's fingerprints, one hex SHA-1 per line as in
//!   Scrapy (so existing tools can read it);
//! - `spider.state`: the spider's [`State`](crate::spider::State) as JSON;
//! - `stats.json`: the stats of earlier runs, so a resumed job's counters are
//!   cumulative.
//!
//! Every JSON file is written atomically (a temporary file renamed over the old one), so
//! a kill leaves the old or the new version, never half of one.
//!
//! ```
//! use arachne::jobdir::Jobdir;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let job = Jobdir::open(dir.path(), "quotes").unwrap();
//! assert!(!job.resumed());
//! // A second holder is refused while the first is alive.
//! assert!(Jobdir::open(dir.path(), "quotes").is_err());
//! drop(job);
//! let again = Jobdir::open(dir.path(), "quotes").unwrap();
//! assert!(again.resumed());
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The manifest's format version; a job written by a newer format is refused.
pub const FORMAT: u64 = 1;

/// Why a job directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JobdirError {
    /// Another process holds the job.
    #[error("JOBDIR {dir} is in use by another process{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        pid: Option<u32>,
    },
    /// The job is of another spider or format, or its files do not parse.
    #[error("JOBDIR {dir}: {detail}")]
    Incompatible {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Reading or writing failed.
    #[error("JOBDIR {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// An open job directory, locked by this process until dropped.
#[derive(Debug)]
pub struct Jobdir {
    dir: PathBuf,
    resumed: bool,
    runs: u64,
    // Held for the lock; closing it releases the lock. `None` once released.
    lock: std::sync::Mutex<Option<File>>,
}

impl Jobdir {
    /// Opens (creating if needed) and locks `dir` for a crawl of `spider`.
    ///
    /// # Errors
    /// [`JobdirError::Locked`] when another process holds it; `Incompatible` for a job
    /// of another spider or a newer format; `Io` when it cannot be created or read.
    pub fn open(dir: impl AsRef<Path>, spider: &str) -> Result<Jobdir, JobdirError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |source| JobdirError::Io {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("lock"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = lock.read_to_string(&mut text);
                return Err(JobdirError::Locked {
                    dir: dir.clone(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        lock.set_len(0).map_err(io)?;
        lock.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        lock.flush().map_err(io)?;

        let manifest_path = dir.join("arachne-job.json");
        let (resumed, runs) = match std::fs::read(&manifest_path) {
            Ok(bytes) => {
                let m: Value =
                    serde_json::from_slice(&bytes).map_err(|e| JobdirError::Incompatible {
                        dir: dir.clone(),
                        detail: format!("arachne-job.json does not parse ({e})"),
                    })?;
                let format = m.get("format").and_then(Value::as_u64).unwrap_or(0);
                if format != FORMAT {
                    return Err(JobdirError::Incompatible {
                        dir: dir.clone(),
                        detail: format!(
                            "written by job format {format}, this Arachne reads format {FORMAT}"
                        ),
                    });
                }
                let owner = m.get("spider").and_then(Value::as_str).unwrap_or("");
                if owner != spider {
                    return Err(JobdirError::Incompatible {
                        dir: dir.clone(),
                        detail: format!(
                            "it is a job of spider {owner:?}, not {spider:?}; use another JOBDIR"
                        ),
                    });
                }
                (true, m.get("runs").and_then(Value::as_u64).unwrap_or(0))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, 0),
            Err(e) => return Err(io(e)),
        };
        let job = Jobdir {
            dir: dir.clone(),
            resumed,
            runs: runs + 1,
            lock: std::sync::Mutex::new(Some(lock)),
        };
        let manifest = serde_json::json!({
            "format": FORMAT,
            "spider": spider,
            "runs": job.runs,
            "arachne": env!("CARGO_PKG_VERSION"),
        });
        job.write_json("arachne-job.json", &manifest).map_err(io)?;
        Ok(job)
    }

    /// Releases the job for another process (or another crawl in this one) while
    /// handles to it may still be alive — the crawler calls it when the crawl ends,
    /// before its actors are all gone. Dropping the last handle does the same.
    pub fn release(&self) {
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = lock.take() {
            let _ = file.unlock();
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether an earlier run of this job existed.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Which run of the job this is, from 1.
    pub fn run(&self) -> u64 {
        self.runs
    }

    /// Reads a JSON object file of the job (`spider.state`, `stats.json`); `None` when
    /// it does not exist yet.
    ///
    /// # Errors
    /// `Incompatible` when it exists and is not a JSON object.
    pub fn read_map(&self, name: &str) -> Result<Option<Map<String, Value>>, JobdirError> {
        match std::fs::read(self.dir.join(name)) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(Some(map)),
                Ok(_) | Err(_) => Err(JobdirError::Incompatible {
                    dir: self.dir.clone(),
                    detail: format!("{name} is not a JSON object"),
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(JobdirError::Io {
                dir: self.dir.clone(),
                source,
            }),
        }
    }

    /// Writes `value` as the job's file `name`, atomically: the old file stays whole
    /// until the new one is complete and synced.
    ///
    /// # Errors
    /// The I/O error.
    pub fn write_json(&self, name: &str, value: &Value) -> std::io::Result<()> {
        write_atomically(&self.dir.join(name), &serde_json::to_vec_pretty(value)?)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced and
/// renamed over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        // The rename itself survives a power loss once the directory is synced.
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_spider_or_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Jobdir::open(dir.path(), "a").unwrap());
        let e = Jobdir::open(dir.path(), "b").unwrap_err().to_string();
        assert!(e.contains("spider \"a\""), "{e}");
        std::fs::write(
            dir.path().join("arachne-job.json"),
            r#"{"format": 99, "spider": "a"}"#,
        )
        .unwrap();
        let e = Jobdir::open(dir.path(), "a").unwrap_err().to_string();
        assert!(e.contains("format 99"), "{e}");
        std::fs::write(dir.path().join("arachne-job.json"), "{not json").unwrap();
        let e = Jobdir::open(dir.path(), "a").unwrap_err().to_string();
        assert!(e.contains("does not parse"), "{e}");
    }

    #[test]
    fn the_lock_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _job = Jobdir::open(dir.path(), "a").unwrap();
        match Jobdir::open(dir.path(), "a") {
            Err(JobdirError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn maps_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let job = Jobdir::open(dir.path(), "a").unwrap();
        assert!(job.read_map("spider.state").unwrap().is_none());
        job.write_json("spider.state", &serde_json::json!({"n": 3}))
            .unwrap();
        assert_eq!(job.read_map("spider.state").unwrap().unwrap()["n"], 3);
        std::fs::write(dir.path().join("stats.json"), "[1]").unwrap();
        assert!(job.read_map("stats.json").is_err());
    }
}
