//! HttpCompressionMiddleware: Scrapy's
//! `scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware` (order 590).
//! It asks for compressed responses and decodes them, so callbacks always see the
//! plain body. The HTTP client neither asks for nor decodes compression itself (awc is
//! built without its compression features): this middleware is the only place where
//! it happens, so `DOWNLOAD_MAXSIZE` can bound the *decoded* size.
//!
//! - Requests: `Accept-Encoding: gzip, deflate, br, zstd` unless the request already
//!   has an `Accept-Encoding` header.
//! - Responses (not to `HEAD`): the `Content-Encoding` codings are undone last-applied
//!   first: `gzip` / `x-gzip` (several members are concatenated; a truncated or
//!   corrupt stream keeps what decoded before the damage, as Scrapy's `gunzip` does),
//!   `deflate` (zlib-wrapped, or raw deflate as some servers send it), `br`, `zstd`
//!   (window at most 8 MiB, RFC 9659), and `identity` (nothing to do). Decoding stops at
//!   the first coding it does not know; those codings stay in `Content-Encoding` with
//!   a warning, as in Scrapy. Otherwise the header is removed.
//! - Size: decoding streams in 64 KiB chunks into a buffer that never grows past the
//!   limit; as soon as the output would exceed `DOWNLOAD_MAXSIZE` (or meta
//!   `download_maxsize`) decoding stops with [`DownloadError::MaxSizeExceeded`] — a
//!   10 MB gzip bomb is cut off after at most the limit, never inflated whole. A decoded
//!   size that crosses `DOWNLOAD_WARNSIZE` (meta `download_warnsize`) is logged.
//! - A body that does not decode fails the download with a [`DownloadError::Other`]
//!   naming the coding and the URL (never a panic).
//!
//! Settings: `COMPRESSION_ENABLED` (default `true`), `DOWNLOAD_MAXSIZE`,
//! `DOWNLOAD_WARNSIZE` (0: no limit / no warning), `DOWNLOADER_STATS` (see below).
//!
//! Meta keys: `download_maxsize`, `download_warnsize` (override the settings).
//!
//! Stats keys: `httpcompression/response_count` (responses with a `Content-Encoding`),
//! `httpcompression/response_bytes` (their decoded sizes). A decoding failure happens
//! in `process_response`, after DownloaderStats (order 850) has counted the response,
//! and the chain — like Scrapy's — does not run `process_exception` for it; so that
//! every failure that reaches an errback is counted, this middleware counts its own as
//! `downloader/exception_count` and `downloader/exception_type_count/<kind>`
//! (`MaxSizeExceeded`, `DownloadError`) when `DOWNLOADER_STATS` is on.

use std::io::{self, Read};

use awc::http::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING};
use bytes::Bytes;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::handle::StatsHandle;
use crate::http::{Method, Request, Response};
use crate::middleware::downloader::{DownloaderMiddleware, RequestFlow, ResponseFlow};

/// The codings asked for, in Scrapy's order.
pub const ACCEPTED_ENCODINGS: &str = "gzip, deflate, br, zstd";

/// Size of one decoding step: the output grows by at most this much at a time.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// The largest zstd window accepted (2^23 = 8 MiB, the limit RFC 9659 sets for the
/// `zstd` content coding); a frame asking for more is refused instead of allocated.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Why a body could not be decoded.
#[derive(Debug)]
pub enum DecodeError {
    /// The decoded output passed the limit; `size` bytes had come out when decoding
    /// stopped.
    TooLarge {
        /// Decoded bytes when decoding stopped (more than the limit).
        size: u64,
    },
    /// The data is not valid for its coding.
    Corrupt(io::Error),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge { size } => write!(f, "decoded size passed {size} bytes"),
            DecodeError::Corrupt(e) => write!(f, "{e}"),
        }
    }
}

/// Reads `reader` to its end, appending to `out`, in [`CHUNK_SIZE`] steps. With
/// `max > 0`, fails with [`DecodeError::TooLarge`] as soon as `out` would hold more than
/// `max` bytes; `out`'s capacity then never exceeds `max` (it grows by doubling, capped
/// at `max`), so a decompression bomb costs at most `max` bytes of memory.
pub fn read_limited<R: Read>(
    mut reader: R,
    max: u64,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let mut chunk = vec![0u8; CHUNK_SIZE];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeError::Corrupt(e)),
        };
        let size = out.len() as u64 + n as u64;
        if max > 0 && size > max {
            return Err(DecodeError::TooLarge { size });
        }
        if out.capacity() - out.len() < n {
            let needed = out.len() + n;
            let mut target = needed.max(out.capacity().saturating_mul(2)).max(CHUNK_SIZE);
            if max > 0 {
                // `needed <= max` here, so the cap never starves the copy below.
                target = target.min(usize::try_from(max).unwrap_or(usize::MAX));
            }
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Whether `data` starts with a zlib header (RFC 1950: deflate method, valid check
/// bits) rather than raw deflate data.
fn is_zlib(data: &[u8]) -> bool {
    data.len() >= 2
        && data[0] & 0x0f == 8
        && data[0] >> 4 <= 7
        && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0
}

/// Decodes one content coding of `body` into `out` (which should be empty), within
/// `max` decoded bytes (0: no limit). `encoding` is lower case; unknown codings are an
/// error (use [`split_encodings`] first).
pub fn decode_into(
    encoding: &str,
    body: &[u8],
    max: u64,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if body.is_empty() {
        // An empty body (a 204, a 304, a HEAD-like answer) has nothing to decode.
        return Ok(());
    }
    match encoding {
        "gzip" | "x-gzip" => {
            match read_limited(flate2::read::MultiGzDecoder::new(body), max, out) {
                // Like Scrapy's `gunzip`: a damaged or truncated stream keeps what came out
                // before the damage, if anything did.
                Err(DecodeError::Corrupt(e)) if !out.is_empty() => {
                    log::debug!(
                        "gzip body damaged after {} decoded bytes ({e}); keeping those",
                        out.len()
                    );
                    Ok(())
                }
                other => other,
            }
        }
        "deflate" => {
            if is_zlib(body) {
                match read_limited(flate2::read::ZlibDecoder::new(body), max, out) {
                    Err(DecodeError::Corrupt(_)) if out.is_empty() => {
                        // The header looked like zlib by chance: try raw deflate.
                        read_limited(flate2::read::DeflateDecoder::new(body), max, out)
                    }
                    other => other,
                }
            } else {
                read_limited(flate2::read::DeflateDecoder::new(body), max, out)
            }
        }
        "br" => read_limited(brotli::Decompressor::new(body, CHUNK_SIZE), max, out),
        "zstd" => {
            let mut decoder =
                zstd::stream::read::Decoder::new(body).map_err(DecodeError::Corrupt)?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(DecodeError::Corrupt)?;
            read_limited(decoder, max, out)
        }
        "identity" => read_limited(body, max, out),
        other => Err(DecodeError::Corrupt(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("unsupported content coding {other:?}"),
        ))),
    }
}

/// Decodes one content coding of `body` within `max` decoded bytes (0: no limit).
pub fn decode(encoding: &str, body: &[u8], max: u64) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decode_into(encoding, body, max, &mut out)?;
    Ok(out)
}

fn supported(encoding: &str) -> bool {
    matches!(
        encoding,
        "gzip" | "x-gzip" | "deflate" | "br" | "zstd" | "identity"
    )
}

/// Splits the `Content-Encoding` codings (in the order they were applied) into those
/// to undo, last-applied first, and those to keep: everything up to and including the
/// last coding this middleware does not know (Scrapy's `_split_encodings`).
pub fn split_encodings(mut codings: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut to_decode = Vec::new();
    while let Some(c) = codings.pop() {
        if !supported(&c) {
            codings.push(c);
            break;
        }
        to_decode.push(c);
    }
    (to_decode, codings)
}

/// The codings of every `Content-Encoding` header, lower case, in order.
fn content_codings(response: &Response) -> Vec<String> {
    response
        .headers
        .get_all(CONTENT_ENCODING)
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Decodes compressed responses within `DOWNLOAD_MAXSIZE`.
#[derive(Debug)]
pub struct HttpCompressionMiddleware {
    stats: StatsHandle,
    max_size: u64,
    warn_size: u64,
    count_failures: bool,
}

impl HttpCompressionMiddleware {
    /// `None` when `COMPRESSION_ENABLED` is off.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        if !s.get_bool("COMPRESSION_ENABLED")? {
            return Ok(None);
        }
        Ok(Some(Box::new(HttpCompressionMiddleware {
            stats: crawler.stats().clone(),
            max_size: s.get_usize("DOWNLOAD_MAXSIZE")? as u64,
            warn_size: s.get_usize("DOWNLOAD_WARNSIZE")? as u64,
            count_failures: s.get_bool("DOWNLOADER_STATS")?,
        })))
    }

    fn fail(&self, error: DownloadError) -> DownloadError {
        if self.count_failures {
            self.stats.inc("downloader/exception_count");
            self.stats
                .inc(format!("downloader/exception_type_count/{}", error.kind()));
        }
        error
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for HttpCompressionMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        if !request.headers.contains_key(ACCEPT_ENCODING) {
            request.headers.insert(
                ACCEPT_ENCODING,
                HeaderValue::from_static(ACCEPTED_ENCODINGS),
            );
        }
        Ok(RequestFlow::Continue)
    }

    async fn process_response(
        &self,
        request: &Request,
        mut response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        if request.method == Method::HEAD {
            return Ok(ResponseFlow::Continue(response));
        }
        let codings = content_codings(&response);
        if codings.is_empty() {
            return Ok(ResponseFlow::Continue(response));
        }
        let max_size = request
            .meta
            .get("download_maxsize")
            .and_then(|v| v.as_u64())
            .unwrap_or(self.max_size);
        let warn_size = request
            .meta
            .get("download_warnsize")
            .and_then(|v| v.as_u64())
            .unwrap_or(self.warn_size);
        let (to_decode, to_keep) = split_encodings(codings);
        let label = format!("<{} {}>", response.status, response.url);
        let mut body: Bytes = response.body.clone();
        for coding in &to_decode {
            match decode(coding, &body, max_size) {
                Ok(decoded) => body = decoded.into(),
                Err(DecodeError::TooLarge { size }) => {
                    log::warn!(
                        "Ignored response {label} because its body ({} B compressed, {size} B \
                         decompressed so far) exceeded DOWNLOAD_MAXSIZE ({max_size} B) during \
                         decompression.",
                        response.body.len()
                    );
                    return Err(self.fail(DownloadError::MaxSizeExceeded {
                        size,
                        max: max_size,
                    }));
                }
                Err(DecodeError::Corrupt(e)) => {
                    let msg = format!("cannot decode the {coding}-encoded body of {label}: {e}");
                    log::warn!("{msg}");
                    return Err(self.fail(DownloadError::Other(msg)));
                }
            }
        }
        let (compressed, decoded) = (response.body.len() as u64, body.len() as u64);
        if warn_size > 0 && compressed < warn_size && warn_size <= decoded {
            log::warn!(
                "{label} body size after decompression ({decoded} B) is larger than the \
                 download warning size ({warn_size} B)."
            );
        }
        response.headers.remove(CONTENT_ENCODING);
        if !to_keep.is_empty() {
            let kept = to_keep.join(",");
            log::warn!(
                "HttpCompressionMiddleware cannot decode the response for {} from unsupported \
                 encoding(s) '{kept}'.",
                response.url
            );
            if let Ok(v) = HeaderValue::from_str(&kept) {
                response.headers.insert(CONTENT_ENCODING, v);
            }
        }
        self.stats.inc_by(
            "httpcompression/response_bytes",
            i64::try_from(decoded).unwrap_or(i64::MAX),
        );
        self.stats.inc("httpcompression/response_count");
        response.body = body;
        Ok(ResponseFlow::Continue(response))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Every supported coding round-trips, deflate both zlib-wrapped and raw.
    #[test]
    fn codings_decode() {
        let text = b"hello, compressed world! ".repeat(100);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&text).unwrap();
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).unwrap();
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &text[..], &mut br, &Default::default()).unwrap();
        let zstd = zstd::encode_all(&text[..], 3).unwrap();
        for (coding, data) in [
            ("gzip", gzip(&text)),
            ("x-gzip", gzip(&text)),
            ("deflate", zlib.finish().unwrap()),
            ("deflate", raw.finish().unwrap()),
            ("br", br),
            ("zstd", zstd),
            ("identity", text.clone()),
        ] {
            assert_eq!(decode(coding, &data, 0).unwrap(), text, "{coding}");
        }
    }

    /// A 10 MB gzip bomb is refused at a 1 MB limit without the output ever holding (or
    /// reserving) more than the limit.
    #[test]
    fn bomb_is_cut_off_within_the_limit() {
        let bomb = gzip(&vec![0u8; 10_000_000]);
        assert!(bomb.len() < 20_000, "bomb is {} bytes", bomb.len());
        let max = 1_000_000;
        let mut out = Vec::new();
        match decode_into("gzip", &bomb, max, &mut out) {
            Err(DecodeError::TooLarge { size }) => {
                assert!(size > max && size <= max + CHUNK_SIZE as u64)
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(out.capacity() as u64 <= max, "capacity {}", out.capacity());
        // Exactly at the limit is fine.
        let exact = gzip(&vec![7u8; 1_000_000]);
        assert_eq!(decode("gzip", &exact, max).unwrap().len(), 1_000_000);
    }

    /// Garbage is an error, not a panic; a truncated gzip keeps what decoded.
    #[test]
    fn corrupt_data() {
        for coding in ["gzip", "deflate", "br", "zstd"] {
            assert!(
                matches!(
                    decode(coding, b"definitely not compressed data", 0),
                    Err(DecodeError::Corrupt(_))
                ),
                "{coding}"
            );
        }
        let text = b"0123456789".repeat(10_000);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        e.write_all(&text).unwrap();
        let full = e.finish().unwrap();
        let partial = decode("gzip", &full[..full.len() / 2], 0).unwrap();
        assert!(!partial.is_empty() && text.starts_with(&partial));
    }

    /// Codings are undone last-applied first, stopping at an unknown one.
    #[test]
    fn split() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            split_encodings(v(&["gzip", "br"])),
            (v(&["br", "gzip"]), v(&[]))
        );
        assert_eq!(
            split_encodings(v(&["gzip", "foo", "br"])),
            (v(&["br"]), v(&["gzip", "foo"]))
        );
        assert_eq!(split_encodings(v(&["foo"])), (v(&[]), v(&["foo"])));
    }
}
