//! Scrapy's `FilesystemCacheStorage`: one directory per request,
//! `<HTTPCACHE_DIR>/<spider name>/<fp[0:2]>/<fp>/`, where `fp` is the request
//! fingerprint in hex, holding
//!
//! | file | content |
//! | --- | --- |
//! | `meta` | JSON: `url`, `method`, `status`, `response_url`, `timestamp` (Scrapy writes a Python `repr` plus a `pickled_meta`) |
//! | `response_headers` | `Name: value` lines joined by CRLF, one line per value |
//! | `response_body` | the body as received (still compressed if it was) |
//! | `request_headers` | as `response_headers` |
//! | `request_body` | the request body |
//!
//! With `HTTPCACHE_GZIP` every file is gzip-compressed, as in Scrapy.
//!
//! An entry is written whole into a hidden sibling directory, then renamed into place,
//! so a crash never leaves a half entry under the entry's name (at worst a hidden
//! `.<fp>.tmp-*` directory, which is never read). Replacing an entry moves the old one
//! aside first, so for that instant the entry is missing (a reader then sees a miss);
//! a reader that raced with a replacement re-reads `meta` after the other files and
//! retries when it changed, so it never mixes two entries. When two writers store the
//! same request at once, one whole entry wins. Files are not `fsync`ed: a process
//! crash cannot damage an entry, a power loss may. An entry is expired once `meta` is
//! older (by modification time, as Scrapy) than `HTTPCACHE_EXPIRATION_SECS` (0: never).
//!
//! These functions block; the middleware runs them on the blocking thread pool.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::http::{HeaderMap, HeaderName, HeaderValue};

/// The `meta` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The request URL.
    pub url: String,
    /// The request method.
    pub method: String,
    /// The response status.
    pub status: u16,
    /// The response URL.
    #[serde(default)]
    pub response_url: Option<String>,
    /// When it was stored, in seconds since the epoch.
    pub timestamp: f64,
}

/// Everything one entry holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The `meta` file.
    pub meta: EntryMeta,
    /// Raw response headers (see [`headers_to_raw`]).
    pub response_headers: Vec<u8>,
    /// The response body.
    pub response_body: Vec<u8>,
    /// Raw request headers.
    pub request_headers: Vec<u8>,
    /// The request body.
    pub request_body: Vec<u8>,
}

/// What a look-up returns: the response part of an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResponse {
    /// The `meta` file.
    pub meta: EntryMeta,
    /// Raw response headers.
    pub headers: Vec<u8>,
    /// The response body.
    pub body: Vec<u8>,
}

/// The filesystem storage.
#[derive(Debug, Clone)]
pub struct FilesystemStorage {
    /// The cache root (`HTTPCACHE_DIR`, resolved).
    pub dir: PathBuf,
    /// `HTTPCACHE_EXPIRATION_SECS`; zero never expires.
    pub expiration: Duration,
    /// `HTTPCACHE_GZIP`.
    pub gzip: bool,
}

/// Where a relative `HTTPCACHE_DIR` goes: Scrapy puts it in the project's data
/// directory, `.scrapy/` (outside a project, `.scrapy/` of the current directory); we
/// have no project, so it is always `.scrapy/<dir>` of the current directory. An
/// absolute path is used as is.
///
/// ```
/// use std::path::Path;
/// use arachne::middleware::httpcache::storage::resolve_dir;
///
/// assert_eq!(resolve_dir("httpcache"), Path::new(".scrapy/httpcache"));
/// assert_eq!(resolve_dir("/var/cache/x"), Path::new("/var/cache/x"));
/// ```
pub fn resolve_dir(setting: &str) -> PathBuf {
    let path = Path::new(setting);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        Path::new(".scrapy").join(path)
    }
}

/// Tells temporary directories of one process apart.
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// How often a read that raced with a replacement is retried.
const READ_TRIES: usize = 3;

impl FilesystemStorage {
    /// `<dir>/<spider>/<fp[0:2]>/<fp>`.
    pub fn entry_path(&self, spider: &str, fingerprint_hex: &str) -> PathBuf {
        let prefix = fingerprint_hex.get(..2).unwrap_or(fingerprint_hex);
        self.dir.join(spider).join(prefix).join(fingerprint_hex)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let raw = fs::read(path)?;
        if !self.gzip {
            return Ok(raw);
        }
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
        Ok(out)
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = fs::File::create(path)?;
        if self.gzip {
            let mut gz = GzEncoder::new(file, flate2::Compression::default());
            gz.write_all(data)?;
            gz.finish()?;
        } else {
            file.write_all(data)?;
        }
        Ok(())
    }

    fn read_meta(&self, entry: &Path) -> io::Result<EntryMeta> {
        let raw = self.read_file(&entry.join("meta"))?;
        serde_json::from_slice(&raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The response stored at `entry`, unless there is none or it expired at `now`.
    /// A damaged entry is an error.
    pub fn retrieve(&self, entry: &Path, now: SystemTime) -> io::Result<Option<CachedResponse>> {
        let mut last_error = None;
        for _ in 0..READ_TRIES {
            let meta_path = entry.join("meta");
            let modified = match fs::metadata(&meta_path) {
                Ok(m) => m.modified()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if !self.expiration.is_zero()
                && now.duration_since(modified).unwrap_or_default() > self.expiration
            {
                return Ok(None);
            }
            let read = (|| {
                let meta = self.read_meta(entry)?;
                let headers = self.read_file(&entry.join("response_headers"))?;
                let body = self.read_file(&entry.join("response_body"))?;
                // Replaced meanwhile? Then the files may come from two entries.
                let again = self.read_meta(entry)?;
                Ok::<_, io::Error>((meta == again).then_some(CachedResponse {
                    meta,
                    headers,
                    body,
                }))
            })();
            match read {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => {}
                // Moved aside between the checks: look again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        match last_error {
            Some(e) => Err(e),
            None => Err(io::Error::other("cache entry kept changing while read")),
        }
    }

    /// Writes `data` at `entry`, replacing what was there, atomically.
    pub fn store(&self, entry: &Path, data: &Entry) -> io::Result<()> {
        let parent = entry
            .parent()
            .ok_or_else(|| io::Error::other("cache entry path has no parent"))?;
        let name = entry
            .file_name()
            .ok_or_else(|| io::Error::other("cache entry path has no name"))?
            .to_string_lossy()
            .into_owned();
        fs::create_dir_all(parent)?;
        let unique = || {
            format!(
                "{}-{}",
                std::process::id(),
                UNIQUE.fetch_add(1, Ordering::Relaxed)
            )
        };
        let tmp = parent.join(format!(".{name}.tmp-{}", unique()));
        fs::create_dir(&tmp)?;
        let result = self.fill(&tmp, data).and_then(|()| {
            if let Err(e) = fs::rename(&tmp, entry) {
                if !in_the_way(&e, entry) {
                    return Err(e);
                }
                // Move the old entry aside, then take its place.
                let old = parent.join(format!(".{name}.old-{}", unique()));
                match fs::rename(entry, &old) {
                    Ok(()) => {
                        let _ = fs::remove_dir_all(&old);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                if let Err(e) = fs::rename(&tmp, entry) {
                    if !in_the_way(&e, entry) {
                        return Err(e);
                    }
                    // Another writer's whole entry for the same request landed in
                    // between: keep it, drop ours.
                    let _ = fs::remove_dir_all(&tmp);
                }
            }
            Ok(())
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn fill(&self, dir: &Path, data: &Entry) -> io::Result<()> {
        let meta = serde_json::to_vec(&data.meta).map_err(io::Error::other)?;
        self.write_file(&dir.join("response_headers"), &data.response_headers)?;
        self.write_file(&dir.join("response_body"), &data.response_body)?;
        self.write_file(&dir.join("request_headers"), &data.request_headers)?;
        self.write_file(&dir.join("request_body"), &data.request_body)?;
        self.write_file(&dir.join("meta"), &meta)
    }
}

/// Whether renaming onto `entry` failed because an entry is there.
fn in_the_way(e: &io::Error, entry: &Path) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
    ) || entry.exists()
}

/// `Name: value` lines joined by CRLF (Scrapy's `headers_dict_to_raw`), names in
/// Scrapy's `Title-Case`, one line per value.
pub fn headers_to_raw(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        if !out.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(title_case(name.as_str()).as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Reads what [`headers_to_raw`] wrote (Scrapy's `headers_raw_to_dict`); lines that
/// are not headers are skipped.
pub fn raw_to_headers(raw: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    headers
}

/// `content-type` → `Content-Type`.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &Path, expiration: u64, gzip: bool) -> FilesystemStorage {
        FilesystemStorage {
            dir: dir.to_path_buf(),
            expiration: Duration::from_secs(expiration),
            gzip,
        }
    }

    fn entry(status: u16, body: &str) -> Entry {
        Entry {
            meta: EntryMeta {
                url: format!("http://h/{body}"),
                method: "GET".into(),
                status,
                response_url: Some("http://h/x".into()),
                timestamp: 1.5,
            },
            response_headers: b"Content-Type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2"
                .to_vec(),
            response_body: body.as_bytes().to_vec(),
            request_headers: b"Accept: */*".to_vec(),
            request_body: Vec::new(),
        }
    }

    /// The entry path is Scrapy's layout.
    #[test]
    fn layout() {
        let s = storage(Path::new("/c"), 0, false);
        assert_eq!(
            s.entry_path("spider", "aa9f7e764042feef4578637f699d1c47157e93cf"),
            Path::new("/c/spider/aa/aa9f7e764042feef4578637f699d1c47157e93cf")
        );
    }

    /// What is stored is read back; replacing works; a missing entry is None.
    #[test]
    fn round_trip_and_replace() {
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let s = storage(dir.path(), 0, gzip);
            let path = s.entry_path("sp", "abcdef");
            assert_eq!(s.retrieve(&path, SystemTime::now()).unwrap(), None);
            s.store(&path, &entry(200, "one")).unwrap();
            let got = s.retrieve(&path, SystemTime::now()).unwrap().unwrap();
            assert_eq!(got.body, b"one");
            assert_eq!(got.meta.status, 200);
            assert_eq!(got.headers, entry(200, "one").response_headers);
            s.store(&path, &entry(404, "two")).unwrap();
            let got = s.retrieve(&path, SystemTime::now()).unwrap().unwrap();
            assert_eq!((got.meta.status, got.body.as_slice()), (404, &b"two"[..]));
            // Every file is there, and no temporary directory is left over.
            for f in [
                "meta",
                "response_headers",
                "response_body",
                "request_headers",
                "request_body",
            ] {
                assert!(path.join(f).is_file(), "{f}");
            }
            let names: Vec<_> = fs::read_dir(path.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec!["abcdef"]);
            if !gzip {
                let meta: serde_json::Value =
                    serde_json::from_slice(&fs::read(path.join("meta")).unwrap()).unwrap();
                assert_eq!(meta["url"], "http://h/two");
                assert_eq!(meta["method"], "GET");
            }
        }
    }

    /// Entries older than the expiration are misses.
    #[test]
    fn expiration() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path(), 10, false);
        let path = s.entry_path("sp", "abcdef");
        s.store(&path, &entry(200, "x")).unwrap();
        let now = SystemTime::now();
        assert!(s.retrieve(&path, now).unwrap().is_some());
        assert!(s
            .retrieve(&path, now + Duration::from_secs(11))
            .unwrap()
            .is_none());
    }

    /// A half-written temporary directory is never read; a damaged meta is an error.
    #[test]
    fn leftovers_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path(), 0, false);
        let path = s.entry_path("sp", "abcdef");
        fs::create_dir_all(path.parent().unwrap().join(".abcdef.tmp-1-1")).unwrap();
        assert_eq!(s.retrieve(&path, SystemTime::now()).unwrap(), None);
        s.store(&path, &entry(200, "x")).unwrap();
        fs::write(path.join("meta"), b"{not json").unwrap();
        assert!(s.retrieve(&path, SystemTime::now()).is_err());
    }

    /// Concurrent writers of one entry leave one whole entry; a reader sees a whole
    /// entry or (while one is being replaced) none.
    #[test]
    fn concurrent_writers() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path(), 0, false);
        let path = s.entry_path("sp", "abcdef");
        std::thread::scope(|scope| {
            for i in 0..4 {
                let (s, path) = (&s, &path);
                scope.spawn(move || {
                    for j in 0..20 {
                        s.store(path, &entry(200, &format!("{i}-{j}"))).unwrap();
                        if let Some(got) = s.retrieve(path, SystemTime::now()).unwrap() {
                            let body = String::from_utf8(got.body).unwrap();
                            assert_eq!(got.meta.url, format!("http://h/{body}"));
                        }
                    }
                });
            }
        });
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["abcdef"]);
        assert!(s.retrieve(&path, SystemTime::now()).unwrap().is_some());
    }

    /// Raw headers round-trip, repeated ones included, in Title-Case.
    #[test]
    fn raw_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type".parse().unwrap(),
            HeaderValue::from_static("text/html"),
        );
        h.append(
            "set-cookie".parse().unwrap(),
            HeaderValue::from_static("a=1"),
        );
        h.append(
            "set-cookie".parse().unwrap(),
            HeaderValue::from_static("b=2"),
        );
        let raw = headers_to_raw(&h);
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(text.contains("Content-Type: text/html"), "{text}");
        assert!(
            text.contains("Set-Cookie: a=1\r\nSet-Cookie: b=2"),
            "{text}"
        );
        let pairs = |h: &HeaderMap| {
            let mut v: Vec<(String, String)> = h
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(pairs(&raw_to_headers(&raw)), pairs(&h));
        assert_eq!(
            pairs(&raw_to_headers(b"garbage\r\nX-A:  1 \n")),
            vec![("x-a".to_string(), "1".to_string())]
        );
    }
}
