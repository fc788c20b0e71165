//! [`Request`]: a URL to fetch and what to do with its response. Callbacks and
//! errbacks are data (the spider's own serde type, see [`CallbackData`]), not
//! closures, so a request is plain data that can be queued, persisted (JOBDIR) or
//! sent to another process (Redis) and still mean the same: `Request` implements
//! `Serialize` and `Deserialize`, losslessly.

use bytes::Bytes;
use serde_json::{Map, Value};
use url::Url;

use super::fingerprint::{self, Fingerprint};
use super::{HeaderMap, HeaderName, HeaderValue, Method};
use crate::error::InvalidUrl;
use crate::spider::{Callback, CallbackData};

/// Free-form per-request data, Scrapy's `request.meta` (`depth`, `download_slot`,
/// `download_timeout`, `dont_redirect`, ... and anything a spider wants to carry).
pub type Meta = Map<String, Value>;

/// A request a spider wants made.
///
/// ```
/// use arachne::http::Request;
///
/// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
/// #[serde(rename_all = "snake_case")]
/// enum Cb { Parse, ParsePage { page: u32 } }
///
/// let req = Request::get("http://127.0.0.1:8080/page/1")?
///     .callback(Cb::ParsePage { page: 1 })
///     .priority(10)
///     .meta("seen_on", "index");
/// assert_eq!(req.callback.as_ref().unwrap().resolve::<Cb>().unwrap(), Cb::ParsePage { page: 1 });
///
/// // A request round-trips through serde (what JOBDIR and Redis store).
/// let json = serde_json::to_string(&req).unwrap();
/// let back: Request = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.url, req.url);
/// assert_eq!(back.callback.unwrap().resolve::<Cb>().unwrap(), Cb::ParsePage { page: 1 });
/// # Ok::<(), arachne::error::InvalidUrl>(())
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    /// Absolute URL.
    pub url: Url,
    /// HTTP method (`GET` unless set).
    pub method: Method,
    /// Headers sent as given, before middlewares add theirs.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// Scrapy's `meta`.
    pub meta: Meta,
    /// Higher runs sooner.
    pub priority: i32,
    /// Skip the duplicate filter.
    pub dont_filter: bool,
    /// The spider callback for the response (its data replaces Scrapy's
    /// `cb_kwargs`); `None` means `parse`.
    pub callback: Option<CallbackData>,
    /// The spider errback for failures.
    pub errback: Option<CallbackData>,
    /// Free labels shown in logs.
    pub flags: Vec<String>,
}

impl Request {
    /// A `GET` request. Fails on a URL that does not parse or has no host.
    pub fn get(url: impl AsRef<str>) -> Result<Request, InvalidUrl> {
        Request::new(Method::GET, url)
    }

    /// A request with any method.
    pub fn new(method: Method, url: impl AsRef<str>) -> Result<Request, InvalidUrl> {
        Ok(Request::from_url(method, parse_url(url.as_ref())?))
    }

    /// A request for an already parsed URL.
    pub fn from_url(method: Method, url: Url) -> Request {
        Request {
            url,
            method,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            meta: Meta::new(),
            priority: 0,
            dont_filter: false,
            callback: None,
            errback: None,
            flags: Vec::new(),
        }
    }

    /// Sets the callback that parses the response: a value of the spider's
    /// [`Spider::Callback`](crate::spider::Spider::Callback) type.
    pub fn callback<C: Callback>(mut self, callback: C) -> Self {
        self.callback = Some(CallbackData::new(callback));
        self
    }

    /// Sets the errback for download and HTTP errors (a value of the same type).
    pub fn errback<C: Callback>(mut self, errback: C) -> Self {
        self.errback = Some(CallbackData::new(errback));
        self
    }

    /// Sets the priority (higher first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Lets the request through the duplicate filter.
    pub fn dont_filter(mut self, yes: bool) -> Self {
        self.dont_filter = yes;
        self
    }

    /// Sets one `meta` key.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a header; a name or value that is not valid HTTP is ignored with a warning
    /// rather than failing the crawl.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.insert(n, v);
            }
            _ => log::warn!("ignoring invalid header {name:?}: {value:?}"),
        }
        self
    }

    /// Scrapy's request fingerprint (SHA-1 over method, canonical URL and body).
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint::fingerprint(self.method.as_str(), &self.url, &self.body)
    }

    /// The crawl depth recorded in `meta["depth"]` (0 for start requests).
    pub fn depth(&self) -> u64 {
        self.meta.get("depth").and_then(Value::as_u64).unwrap_or(0)
    }

    /// A `meta` value as a string, if it is one.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(Value::as_str)
    }

    /// A `meta` value as a number of seconds, if it is a number.
    pub fn meta_f64(&self, key: &str) -> Option<f64> {
        self.meta.get(key).and_then(Value::as_f64)
    }

    /// A `meta` flag (`true`, or a non-zero number).
    pub fn meta_bool(&self, key: &str) -> bool {
        match self.meta.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            _ => false,
        }
    }
}

/// The serde form of a request: every field, the body base64-encoded, header values
/// as strings when they are UTF-8 (else `{"base64": ...}`), callbacks in their own
/// serde form.
#[derive(serde::Serialize, serde::Deserialize)]
struct RequestRepr {
    url: String,
    #[serde(default = "get_method")]
    method: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, HeaderRepr)>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    body: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    meta: Meta,
    #[serde(default, skip_serializing_if = "is_zero")]
    priority: i32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    dont_filter: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback: Option<CallbackData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errback: Option<CallbackData>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum HeaderRepr {
    Text(String),
    Binary { base64: String },
}

fn get_method() -> String {
    "GET".to_string()
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl serde::Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| {
                let value = match v.to_str() {
                    Ok(s) => HeaderRepr::Text(s.to_string()),
                    Err(_) => HeaderRepr::Binary {
                        base64: b64.encode(v.as_bytes()),
                    },
                };
                (k.as_str().to_string(), value)
            })
            .collect();
        RequestRepr {
            url: self.url.to_string(),
            method: self.method.to_string(),
            headers,
            body: if self.body.is_empty() {
                String::new()
            } else {
                b64.encode(&self.body)
            },
            meta: self.meta.clone(),
            priority: self.priority,
            dont_filter: self.dont_filter,
            callback: self.callback.clone(),
            errback: self.errback.clone(),
            flags: self.flags.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        use serde::de::Error;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let repr = RequestRepr::deserialize(deserializer)?;
        let url = parse_url(&repr.url).map_err(D::Error::custom)?;
        let method = Method::from_bytes(repr.method.as_bytes())
            .map_err(|e| D::Error::custom(format!("invalid method {:?}: {e}", repr.method)))?;
        let mut headers = HeaderMap::new();
        for (name, value) in repr.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| D::Error::custom(format!("invalid header name {name:?}: {e}")))?;
            let bytes = match value {
                HeaderRepr::Text(s) => s.into_bytes(),
                HeaderRepr::Binary { base64 } => b64
                    .decode(base64)
                    .map_err(|e| D::Error::custom(format!("invalid header value: {e}")))?,
            };
            let value = HeaderValue::from_bytes(&bytes)
                .map_err(|e| D::Error::custom(format!("invalid header value: {e}")))?;
            headers.append(name, value);
        }
        let body = if repr.body.is_empty() {
            Bytes::new()
        } else {
            Bytes::from(
                b64.decode(repr.body)
                    .map_err(|e| D::Error::custom(format!("invalid body: {e}")))?,
            )
        };
        Ok(Request {
            url,
            method,
            headers,
            body,
            meta: repr.meta,
            priority: repr.priority,
            dont_filter: repr.dont_filter,
            callback: repr.callback,
            errback: repr.errback,
            flags: repr.flags,
        })
    }
}

/// Why a request has no compact form ([`Request::to_compact`]), or why bytes are not
/// one ([`Request::from_compact`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// Written by another version of the format: refused rather than misread.
    #[error(
        "compact request format version {found}, this build reads version {}",
        Request::COMPACT_VERSION
    )]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// The bytes end in the middle of a field.
    #[error("compact request truncated")]
    Truncated,
    /// The bytes are not a compact request.
    #[error("invalid compact request: {0}")]
    Invalid(String),
    /// The request holds something the format cannot carry: a typed callback that
    /// does not serialise, or a `meta` value nested deeper than
    /// [`Request::COMPACT_MAX_DEPTH`].
    #[error("request has no compact form: {0}")]
    Unencodable(String),
}

// The compact form, version 1. Integers are LEB128 varints ("v"); a byte string is a
// varint length and the bytes ("b"); text is a UTF-8 byte string.
//
//   version: u8 = 1
//   fields:  u8, a bit per optional field (FIELD_*)
//   url:     b                     (Url::as_str; parsed again on decoding)
//   priority: v, zigzag
//   method:  b                     if FIELD_METHOD (absent means GET)
//   headers: v count, then per value: name b, v (length << 1 | sensitive), bytes
//                                  if FIELD_HEADERS
//   body:    b                     if FIELD_BODY
//   meta:    v count, then (key b, value) pairs in order   if FIELD_META
//   callback: value                if FIELD_CALLBACK
//   errback: value                 if FIELD_ERRBACK
//   flags:   v count, then b each  if FIELD_FLAGS
//
// and nothing after. A value (serde_json's `Value`) is a tag byte (TAG_*) and:
// nothing (null, false, true), v (u64), v of !n (a negative i64), 8 bytes
// little-endian f64 bits, b (string), v count and values (array), v count and
// (key b, value) pairs (object). Numbers keep their exact kind and bits, which JSON
// text does not promise for floats.
const FIELD_DONT_FILTER: u8 = 1;
const FIELD_METHOD: u8 = 1 << 1;
const FIELD_HEADERS: u8 = 1 << 2;
const FIELD_BODY: u8 = 1 << 3;
const FIELD_META: u8 = 1 << 4;
const FIELD_CALLBACK: u8 = 1 << 5;
const FIELD_ERRBACK: u8 = 1 << 6;
const FIELD_FLAGS: u8 = 1 << 7;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_UINT: u8 = 3;
const TAG_NEG_INT: u8 = 4;
const TAG_FLOAT: u8 = 5;
const TAG_STRING: u8 = 6;
const TAG_ARRAY: u8 = 7;
const TAG_OBJECT: u8 = 8;

impl Request {
    /// The first byte of every compact form; bytes with another are refused
    /// (`CompactError::Version`), so a persisted queue written by a different
    /// format is never misread.
    pub const COMPACT_VERSION: u8 = 1;

    /// How deeply arrays and objects may nest in `meta` and callback data (as
    /// deeply as `serde_json` parses): decoding stays within a bounded stack.
    pub const COMPACT_MAX_DEPTH: usize = 128;

    /// The request as compact bytes: what the memory queue holds for each pending
    /// request and what a `JOBDIR` persists. Lossless: URL, method, headers (binary
    /// values and the sensitive flag included), body, `meta` (in order, numbers
    /// exactly), callback and errback (a typed one as its serde form), priority,
    /// flags and `dont_filter` all come back from [`Request::from_compact`].
    ///
    /// ```
    /// use arachne::http::Request;
    ///
    /// let r = Request::get("http://127.0.0.1:8899/p/1?x=1")?
    ///     .meta("depth", 3)
    ///     .priority(-3);
    /// let bytes = r.to_compact().unwrap();
    /// assert!(bytes.len() < 60);
    /// let back = Request::from_compact(&bytes).unwrap();
    /// assert_eq!((back.url, back.meta, back.priority), (r.url, r.meta, -3));
    /// # Ok::<(), arachne::error::InvalidUrl>(())
    /// ```
    ///
    /// # Errors
    /// `CompactError::Unencodable`: a typed callback whose value does not
    /// serialise, or `meta` nested deeper than [`Request::COMPACT_MAX_DEPTH`].
    pub fn to_compact(&self) -> Result<Vec<u8>, CompactError> {
        let mut out = Vec::with_capacity(64 + self.url.as_str().len() + self.body.len());
        self.write_compact(&mut out)?;
        Ok(out)
    }

    /// [`Request::to_compact`], appended to `out` (to reuse a buffer). On an error,
    /// `out` may hold part of the request.
    ///
    /// # Errors
    /// As [`Request::to_compact`].
    pub fn write_compact(&self, out: &mut Vec<u8>) -> Result<(), CompactError> {
        let mut fields = 0u8;
        for (present, bit) in [
            (self.dont_filter, FIELD_DONT_FILTER),
            (self.method != Method::GET, FIELD_METHOD),
            (!self.headers.is_empty(), FIELD_HEADERS),
            (!self.body.is_empty(), FIELD_BODY),
            (!self.meta.is_empty(), FIELD_META),
            (self.callback.is_some(), FIELD_CALLBACK),
            (self.errback.is_some(), FIELD_ERRBACK),
            (!self.flags.is_empty(), FIELD_FLAGS),
        ] {
            if present {
                fields |= bit;
            }
        }
        out.push(Request::COMPACT_VERSION);
        out.push(fields);
        put_bytes(out, self.url.as_str().as_bytes());
        put_varint(out, zigzag(i64::from(self.priority)));
        if fields & FIELD_METHOD != 0 {
            put_bytes(out, self.method.as_str().as_bytes());
        }
        if fields & FIELD_HEADERS != 0 {
            put_varint(out, self.headers.len() as u64);
            for (name, value) in &self.headers {
                put_bytes(out, name.as_str().as_bytes());
                let bytes = value.as_bytes();
                put_varint(
                    out,
                    (bytes.len() as u64) << 1 | u64::from(value.is_sensitive()),
                );
                out.extend_from_slice(bytes);
            }
        }
        if fields & FIELD_BODY != 0 {
            put_bytes(out, &self.body);
        }
        if fields & FIELD_META != 0 {
            put_object(out, &self.meta, 1)?;
        }
        for callback in [&self.callback, &self.errback].into_iter().flatten() {
            let value = callback.try_to_value().map_err(|e| {
                CompactError::Unencodable(format!("callback {callback:?} does not serialise: {e}"))
            })?;
            put_value(out, &value, 1)?;
        }
        if fields & FIELD_FLAGS != 0 {
            put_varint(out, self.flags.len() as u64);
            for flag in &self.flags {
                put_bytes(out, flag.as_bytes());
            }
        }
        Ok(())
    }

    /// A request from its compact form ([`Request::to_compact`]). Callbacks come
    /// back in their serde form, which [`CallbackData::resolve`] maps onto the
    /// spider's type. Never panics: bytes that are not a compact request of this
    /// version are an error.
    ///
    /// ```
    /// use arachne::http::Request;
    ///
    /// // Truncated: the URL says 5 bytes, 4 follow.
    /// assert!(Request::from_compact(b"\x01\x00\x05http").is_err());
    /// // Another version of the format.
    /// let err = Request::from_compact(b"\x09").unwrap_err();
    /// assert!(err.to_string().contains("version 9"), "{err}");
    /// ```
    ///
    /// # Errors
    /// `CompactError::Version` for another format version,
    /// `CompactError::Truncated` or `CompactError::Invalid` for anything else
    /// that is not a compact request.
    pub fn from_compact(bytes: &[u8]) -> Result<Request, CompactError> {
        let mut r = Reader { buf: bytes };
        let version = r.byte()?;
        if version != Request::COMPACT_VERSION {
            return Err(CompactError::Version { found: version });
        }
        let fields = r.byte()?;
        let raw_url = r.text()?;
        let url = Url::parse(raw_url)
            .map_err(|e| CompactError::Invalid(format!("URL {raw_url:?}: {e}")))?;
        let priority = i32::try_from(unzigzag(r.varint()?))
            .map_err(|_| CompactError::Invalid("priority out of range".into()))?;
        let mut request = Request::from_url(Method::GET, url);
        request.priority = priority;
        request.dont_filter = fields & FIELD_DONT_FILTER != 0;
        if fields & FIELD_METHOD != 0 {
            let raw = r.bytes()?;
            request.method = Method::from_bytes(raw)
                .map_err(|e| CompactError::Invalid(format!("method: {e}")))?;
        }
        if fields & FIELD_HEADERS != 0 {
            let count = r.count(2)?;
            request.headers.reserve(count.min(64));
            for _ in 0..count {
                let name = HeaderName::from_bytes(r.bytes()?)
                    .map_err(|e| CompactError::Invalid(format!("header name: {e}")))?;
                let len_and_flag = r.varint()?;
                let raw = r.take_u64(len_and_flag >> 1)?;
                let mut value = HeaderValue::from_bytes(raw)
                    .map_err(|e| CompactError::Invalid(format!("header value: {e}")))?;
                value.set_sensitive(len_and_flag & 1 != 0);
                request.headers.append(name, value);
            }
        }
        if fields & FIELD_BODY != 0 {
            request.body = Bytes::copy_from_slice(r.bytes()?);
        }
        if fields & FIELD_META != 0 {
            request.meta = r.object(1)?;
        }
        if fields & FIELD_CALLBACK != 0 {
            request.callback = Some(CallbackData::from_value(r.value(1)?));
        }
        if fields & FIELD_ERRBACK != 0 {
            request.errback = Some(CallbackData::from_value(r.value(1)?));
        }
        if fields & FIELD_FLAGS != 0 {
            let count = r.count(1)?;
            request.flags.reserve_exact(count.min(64));
            for _ in 0..count {
                request.flags.push(r.text()?.to_string());
            }
        }
        if !r.buf.is_empty() {
            return Err(CompactError::Invalid(format!(
                "{} bytes after the request",
                r.buf.len()
            )));
        }
        Ok(request)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

fn too_deep() -> CompactError {
    CompactError::Unencodable(format!(
        "meta or callback data nested deeper than {} levels",
        Request::COMPACT_MAX_DEPTH
    ))
}

/// `depth` counts the containers around `value`, so a value in `meta` is at depth 1.
fn put_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), CompactError> {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(TAG_UINT);
                put_varint(out, u);
            } else if let Some(i) = n.as_i64() {
                // Negative (non-negative ones are u64 above): !i is >= 0.
                out.push(TAG_NEG_INT);
                put_varint(out, !i as u64);
            } else if let Some(f) = n.as_f64() {
                out.push(TAG_FLOAT);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            } else {
                // Only with serde_json's `arbitrary_precision`, which this crate does
                // not enable.
                return Err(CompactError::Unencodable(format!("number {n}")));
            }
        }
        Value::String(s) => {
            out.push(TAG_STRING);
            put_bytes(out, s.as_bytes());
        }
        Value::Array(items) => {
            if depth >= Request::COMPACT_MAX_DEPTH {
                return Err(too_deep());
            }
            out.push(TAG_ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item, depth + 1)?;
            }
        }
        Value::Object(map) => {
            if depth >= Request::COMPACT_MAX_DEPTH {
                return Err(too_deep());
            }
            out.push(TAG_OBJECT);
            put_object(out, map, depth + 1)?;
        }
    }
    Ok(())
}

fn put_object(
    out: &mut Vec<u8>,
    map: &Map<String, Value>,
    depth: usize,
) -> Result<(), CompactError> {
    put_varint(out, map.len() as u64);
    for (key, value) in map {
        put_bytes(out, key.as_bytes());
        put_value(out, value, depth)?;
    }
    Ok(())
}

/// Reads a compact form; every read checks what is left, so bad bytes are an error,
/// never a panic or a huge allocation.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CompactError> {
        let (&b, rest) = self.buf.split_first().ok_or(CompactError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, CompactError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            // The tenth byte may only hold the top bit of a u64.
            if shift == 63 && b > 1 {
                return Err(CompactError::Invalid("varint overflows 64 bits".into()));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CompactError::Invalid("varint longer than 10 bytes".into()))
    }

    fn take_u64(&mut self, len: u64) -> Result<&'a [u8], CompactError> {
        let len = usize::try_from(len).map_err(|_| CompactError::Truncated)?;
        if len > self.buf.len() {
            return Err(CompactError::Truncated);
        }
        let (taken, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(taken)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CompactError> {
        let len = self.varint()?;
        self.take_u64(len)
    }

    fn text(&mut self) -> Result<&'a str, CompactError> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|e| CompactError::Invalid(format!("text is not UTF-8: {e}")))
    }

    /// A count of items that take at least `min_size` bytes each: more than the
    /// bytes left could hold is refused before anything is allocated for them.
    fn count(&mut self, min_size: usize) -> Result<usize, CompactError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_size) <= self.buf.len() => Ok(n),
            _ => Err(CompactError::Truncated),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, CompactError> {
        Ok(match self.byte()? {
            TAG_NULL => Value::Null,
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            TAG_UINT => Value::from(self.varint()?),
            TAG_NEG_INT => {
                let n = i64::try_from(self.varint()?)
                    .map_err(|_| CompactError::Invalid("negative integer out of range".into()))?;
                Value::from(!n)
            }
            TAG_FLOAT => {
                let raw = self.take_u64(8)?;
                let mut bits = [0u8; 8];
                bits.copy_from_slice(raw);
                let f = f64::from_bits(u64::from_le_bytes(bits));
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| CompactError::Invalid(format!("non-finite number {f}")))?
            }
            TAG_STRING => Value::String(self.text()?.to_string()),
            TAG_ARRAY | TAG_OBJECT if depth >= Request::COMPACT_MAX_DEPTH => {
                return Err(CompactError::Invalid(format!(
                    "nested deeper than {} levels",
                    Request::COMPACT_MAX_DEPTH
                )))
            }
            TAG_ARRAY => {
                let count = self.count(1)?;
                let mut items = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            TAG_OBJECT => Value::Object(self.object(depth + 1)?),
            tag => return Err(CompactError::Invalid(format!("unknown value tag {tag}"))),
        })
    }

    fn object(&mut self, depth: usize) -> Result<Map<String, Value>, CompactError> {
        // A key and a value take two bytes at least.
        let count = self.count(2)?;
        let mut map = Map::with_capacity(count.min(1024));
        for _ in 0..count {
            let key = self.text()?.to_string();
            let value = self.value(depth)?;
            if map.insert(key, value).is_some() {
                return Err(CompactError::Invalid("duplicate key in an object".into()));
            }
        }
        Ok(map)
    }
}

/// Parses an absolute URL the way Scrapy's `Request` accepts one: a scheme and, for
/// network schemes, a host. Leading and trailing whitespace is stripped.
pub(crate) fn parse_url(raw: &str) -> Result<Url, InvalidUrl> {
    let trimmed = raw.trim();
    let url = Url::parse(trimmed).map_err(|e| InvalidUrl {
        url: raw.to_string(),
        reason: if e == url::ParseError::RelativeUrlWithoutBase {
            "missing scheme".to_string()
        } else {
            e.to_string()
        },
    })?;
    if matches!(url.scheme(), "http" | "https") && url.host().is_none() {
        return Err(InvalidUrl {
            url: raw.to_string(),
            reason: "missing host".to_string(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relative URL is refused with "missing scheme", as Scrapy does.
    #[test]
    fn relative_url_is_invalid() {
        let err = Request::get("/just/a/path").unwrap_err();
        assert!(err.reason.contains("missing scheme"), "{err}");
    }

    /// Garbage never panics and says why.
    #[test]
    fn garbage_is_invalid() {
        for raw in ["", "http://", "http://[::1", "ht tp://x", "http:// /"] {
            assert!(Request::get(raw).is_err(), "{raw:?} should be invalid");
        }
    }

    /// An unsupported scheme still parses: the downloader refuses it later, so that it
    /// is counted and reaches the errback.
    #[test]
    fn other_schemes_parse() {
        assert!(Request::get("ftp://127.0.0.1/file").is_ok());
    }

    /// Every field survives a serde round trip, binary bodies and headers included.
    #[test]
    fn serde_round_trip() {
        let mut r = Request::new(Method::POST, "http://127.0.0.1:9/a?b=1#frag")
            .unwrap()
            .header("X-Text", "v")
            .body(vec![0u8, 159, 146, 150])
            .meta("depth", 2)
            .priority(-3)
            .dont_filter(true)
            .callback(crate::spider::DefaultCallback::Parse);
        r.errback = Some(crate::spider::CallbackData::with_data(
            "on_error",
            serde_json::json!({"page": 2}),
        ));
        r.headers.append(
            HeaderName::from_static("x-bin"),
            HeaderValue::from_bytes(&[0xfe, b'a']).unwrap(),
        );
        r.flags.push("retried".into());
        let back: Request = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.url, r.url);
        assert_eq!(back.method, r.method);
        // HeaderMap iterates in hash order; compare as sorted lists.
        let sorted = |h: &HeaderMap| {
            let mut v: Vec<_> = h.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort_by(|a, b| (a.0.as_str(), a.1.as_bytes()).cmp(&(b.0.as_str(), b.1.as_bytes())));
            v
        };
        assert_eq!(sorted(&back.headers), sorted(&r.headers));
        assert_eq!(back.body, r.body);
        assert_eq!(back.meta, r.meta);
        assert_eq!(back.priority, -3);
        assert!(back.dont_filter);
        assert_eq!(back.callback, r.callback);
        assert_eq!(back.errback, r.errback);
        assert_eq!(back.flags, r.flags);
        assert_eq!(back.fingerprint(), r.fingerprint());
        let bad = serde_json::from_str::<Request>(r#"{"url": "not a url"}"#);
        assert!(bad.unwrap_err().to_string().contains("not a url"));
    }

    /// The builder sets what it says.
    #[test]
    fn builder() {
        let r = Request::get("http://127.0.0.1/")
            .unwrap()
            .meta("depth", 3)
            .header("X-Test", "1")
            .dont_filter(true);
        assert_eq!(r.depth(), 3);
        assert!(r.dont_filter);
        assert_eq!(r.headers.get("x-test").unwrap(), "1");
    }

    /// Headers as a sorted list with the sensitive flag (`HeaderMap` iterates in
    /// hash order, and `HeaderValue`'s `==` ignores the flag).
    fn header_list(h: &HeaderMap) -> Vec<(String, Vec<u8>, bool)> {
        let mut v: Vec<_> = h
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec(), v.is_sensitive()))
            .collect();
        v.sort();
        v
    }

    /// Every field of `back` equals `r`'s (callbacks by their serde form).
    fn assert_same(back: &Request, r: &Request) {
        assert_eq!(back.url, r.url);
        assert_eq!(back.url.as_str(), r.url.as_str());
        assert_eq!(back.method, r.method);
        assert_eq!(header_list(&back.headers), header_list(&r.headers));
        assert_eq!(back.body, r.body);
        assert_eq!(back.meta, r.meta);
        // In order, too (meta is an IndexMap).
        assert!(back.meta.keys().eq(r.meta.keys()));
        assert_eq!(back.priority, r.priority);
        assert_eq!(back.dont_filter, r.dont_filter);
        assert_eq!(back.callback, r.callback);
        assert_eq!(back.errback, r.errback);
        assert_eq!(back.flags, r.flags);
        assert_eq!(back.fingerprint(), r.fingerprint());
    }

    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Cb {
        Parse,
        ParsePage { page: u32, tags: Vec<String> },
    }

    /// A request with every field set, binary and nested ones included.
    fn full_request() -> Request {
        let mut r = Request::new(
            Method::POST,
            "https://user:pw@127.0.0.1:9/a/é?b=1&c=%20#frag",
        )
        .unwrap()
        .header("X-Text", "v")
        .body(vec![0u8, 159, 146, 150, 255])
        .meta("depth", 2)
        .meta(
            "nested",
            serde_json::json!({"a": [1, -2, 3.5, -0.0, null, true, false, "s\u{0}é"],
                                   "z": {"deep": {"er": [[], {}]}}, "big": u64::MAX,
                                   "min": i64::MIN, "tiny": 5e-324, "third": 0.1 + 0.2}),
        )
        .meta("download_slot", "127.0.0.1")
        .priority(-3)
        .dont_filter(true)
        .callback(Cb::ParsePage {
            page: 7,
            tags: vec!["x".into()],
        });
        r.errback = Some(CallbackData::with_data(
            "on_error",
            serde_json::json!({"page": 2}),
        ));
        r.headers.append(
            HeaderName::from_static("x-bin"),
            HeaderValue::from_bytes(&[0xfe, b'a', 0x80]).unwrap(),
        );
        r.headers.append(
            HeaderName::from_static("x-bin"),
            HeaderValue::from_static("second"),
        );
        let mut secret = HeaderValue::from_static("Basic xyz");
        secret.set_sensitive(true);
        r.headers
            .insert(HeaderName::from_static("authorization"), secret);
        r.flags.push("retried".into());
        r.flags.push("".into());
        r
    }

    /// Every field survives the compact form; encoding the result gives the same
    /// bytes; a typed callback comes back as its serde form and resolves to the type.
    #[test]
    fn compact_round_trip() {
        let r = full_request();
        let bytes = r.to_compact().unwrap();
        assert_eq!(bytes[0], Request::COMPACT_VERSION);
        let back = Request::from_compact(&bytes).unwrap();
        assert_same(&back, &r);
        assert_eq!(
            back.callback.as_ref().unwrap().resolve::<Cb>().unwrap(),
            Cb::ParsePage {
                page: 7,
                tags: vec!["x".into()]
            }
        );
        assert_eq!(back.errback.as_ref().unwrap().name(), "on_error");
        // Numbers keep their kind and exact bits.
        let nested = &back.meta["nested"];
        assert!(nested["a"][3].as_f64().unwrap().is_sign_negative());
        assert_eq!(
            nested["third"].as_f64().unwrap().to_bits(),
            (0.1f64 + 0.2).to_bits()
        );
        assert!(nested["a"][0].is_u64() && nested["a"][1].is_i64() && nested["a"][2].is_f64());
        // Re-encoded, the same bytes (but for the order of header names, hash order).
        let mut no_headers = r.clone();
        no_headers.headers.clear();
        let bytes = no_headers.to_compact().unwrap();
        assert_eq!(
            Request::from_compact(&bytes).unwrap().to_compact().unwrap(),
            bytes
        );

        // Other methods, unit callbacks, and the smallest request.
        for r in [
            Request::new(Method::from_bytes(b"PROPFIND").unwrap(), "ftp://h/x").unwrap(),
            Request::get("http://127.0.0.1/")
                .unwrap()
                .callback(Cb::Parse)
                .priority(i32::MIN),
            Request::get("http://127.0.0.1/")
                .unwrap()
                .priority(i32::MAX)
                .dont_filter(true),
            Request::get("data:text/plain,hi").unwrap(),
        ] {
            let bytes = r.to_compact().unwrap();
            assert_same(&Request::from_compact(&bytes).unwrap(), &r);
        }
        let small = Request::get("http://127.0.0.1:8899/p/123456?x=1").unwrap();
        assert_eq!(small.to_compact().unwrap().len(), 2 + 1 + 34 + 1);
    }

    /// What the format cannot carry is refused when encoding, not stored wrong.
    #[test]
    fn compact_unencodable() {
        let mut deep = Value::Null;
        for _ in 0..Request::COMPACT_MAX_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        let r = Request::get("http://127.0.0.1/")
            .unwrap()
            .meta("deep", deep.clone());
        assert!(matches!(r.to_compact(), Err(CompactError::Unencodable(_))));
        // One level less fits, and decodes.
        let Value::Array(mut inner) = deep else {
            unreachable!()
        };
        let r = Request::get("http://127.0.0.1/")
            .unwrap()
            .meta("deep", inner.remove(0));
        assert_same(
            &Request::from_compact(&r.to_compact().unwrap()).unwrap(),
            &r,
        );

        // A typed callback whose value does not serialise (a map with tuple keys).
        #[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
        struct Odd(std::collections::HashMap<(u8, u8), u8>);
        let r = Request::get("http://127.0.0.1/")
            .unwrap()
            .errback(Odd([((1, 2), 3)].into_iter().collect()));
        let err = r.to_compact().unwrap_err();
        assert!(matches!(err, CompactError::Unencodable(_)), "{err}");
    }

    /// Cut short anywhere, or with bytes after it, a compact request is an error;
    /// any one byte changed never panics.
    #[test]
    fn compact_truncated_and_corrupt() {
        let bytes = full_request().to_compact().unwrap();
        for end in 0..bytes.len() {
            assert!(
                Request::from_compact(&bytes[..end]).is_err(),
                "prefix of {end} bytes"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Request::from_compact(&longer),
            Err(CompactError::Invalid(_))
        ));
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                let _ = Request::from_compact(&bad);
            }
        }
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(
            Request::from_compact(&other).unwrap_err(),
            CompactError::Version { found: 2 }
        );
        assert_eq!(
            Request::from_compact(&[]).unwrap_err(),
            CompactError::Truncated
        );
    }

    /// Hostile shapes: deep nesting, huge counts and lengths, bad numbers and text.
    #[test]
    fn compact_hostile() {
        let start = |fields: u8| {
            let mut b = vec![Request::COMPACT_VERSION, fields];
            put_bytes(&mut b, b"http://h/");
            put_varint(&mut b, 0);
            b
        };
        // A million nested arrays: refused at the depth limit, no stack overflow.
        let mut b = start(FIELD_CALLBACK);
        for _ in 0..1_000_000 {
            b.extend_from_slice(&[TAG_ARRAY, 1]);
        }
        b.push(TAG_NULL);
        assert!(matches!(
            Request::from_compact(&b),
            Err(CompactError::Invalid(_))
        ));
        // Counts and lengths far beyond the input: refused before allocating.
        for tail in [
            vec![
                TAG_ARRAY, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            vec![TAG_OBJECT, 0xff, 0xff, 0xff, 0xff, 0x0f],
            vec![
                TAG_STRING, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            vec![
                TAG_STRING, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ],
            vec![
                TAG_STRING, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ],
            vec![TAG_STRING, 2, 0xc3, 0x28],
            vec![TAG_FLOAT, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f],
            vec![TAG_FLOAT, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f],
            vec![
                TAG_NEG_INT,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x01,
            ],
            vec![TAG_OBJECT, 2, 1, b'k', TAG_NULL, 1, b'k', TAG_NULL],
            vec![99],
        ] {
            let mut b = start(FIELD_CALLBACK);
            b.extend_from_slice(&tail);
            assert!(Request::from_compact(&b).is_err(), "{tail:?}");
        }
        // Bad URL, method, header, priority.
        let mut b = vec![Request::COMPACT_VERSION, 0];
        put_bytes(&mut b, b"not a url");
        put_varint(&mut b, 0);
        assert!(Request::from_compact(&b).is_err());
        let mut b = start(FIELD_METHOD);
        put_bytes(&mut b, b"GE T");
        assert!(Request::from_compact(&b).is_err());
        let mut b = start(FIELD_HEADERS);
        b.push(1);
        put_bytes(&mut b, b"x y");
        put_bytes(&mut b, b"v");
        assert!(Request::from_compact(&b).is_err());
        let mut b = vec![Request::COMPACT_VERSION, 0];
        put_bytes(&mut b, b"http://h/");
        put_varint(&mut b, zigzag(i64::from(i32::MAX) + 1));
        assert!(Request::from_compact(&b).is_err());
    }

    fn meta_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((".{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any bytes: an error or a request, never a panic.
        #[test]
        fn compact_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = Request::from_compact(&bytes);
            let mut versioned = bytes;
            versioned.insert(0, Request::COMPACT_VERSION);
            let _ = Request::from_compact(&versioned);
        }

        /// Any request round-trips, field by field.
        #[test]
        fn compact_any_request(
            path in "[a-zA-Z0-9/._~%-]{0,30}",
            method in proptest::sample::select(vec!["GET", "POST", "HEAD", "PUT", "X-CUSTOM"]),
            headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,10}", proptest::collection::vec(proptest::prop_oneof![32u8..127, 128u8..=255], 0..12), proptest::prelude::any::<bool>()), 0..4),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            meta in proptest::collection::vec((".{0,8}", meta_value()), 0..4),
            callback in proptest::option::of(meta_value()),
            errback in proptest::option::of(".{0,8}"),
            priority in proptest::prelude::any::<i32>(),
            dont_filter in proptest::prelude::any::<bool>(),
            flags in proptest::collection::vec(".{0,8}", 0..3),
        ) {
            let mut r = Request::new(Method::from_bytes(method.as_bytes()).unwrap(), format!("http://127.0.0.1:1/{path}"))
                .unwrap()
                .body(body)
                .priority(priority)
                .dont_filter(dont_filter);
            for (name, value, sensitive) in headers {
                let mut value = HeaderValue::from_bytes(&value).unwrap();
                value.set_sensitive(sensitive);
                r.headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
            }
            r.meta = meta.into_iter().collect();
            r.callback = callback.map(CallbackData::from_value);
            r.errback = errback.as_deref().map(CallbackData::named);
            r.flags = flags;
            let bytes = r.to_compact().unwrap();
            let back = Request::from_compact(&bytes).unwrap();
            assert_same(&back, &r);
            // The same bytes again, unless header names (iterated in hash order) differ.
            if r.headers.keys().nth(1).is_none() {
                proptest::prop_assert_eq!(back.to_compact().unwrap(), bytes);
            }
        }
    }
}
