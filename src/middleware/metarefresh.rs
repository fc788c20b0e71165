//! MetaRefreshMiddleware (order 580): follows `<meta http-equiv="refresh" content="5;
//! url=/next">` in HTML responses, as Scrapy's
//! `scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware` does, with the same
//! bookkeeping, limits and logs as the Redirect middleware ([`RedirectPolicy`]).
//!
//! Only HTML responses (Scrapy's `HtmlResponse`: `Content-Type` `text/html` or XHTML,
//! else guessed from the URL's extension or the body) to non-`HEAD` `http(s)` requests
//! are looked at, and only their first 4096 characters, like Scrapy's `get_meta_refresh`:
//! comments and the content of `METAREFRESH_IGNORE_TAGS` elements are skipped, entities
//! decoded, the tag matched with w3lib's two patterns, and the URL resolved against the
//! page's `<base href>` or URL. A refresh whose delay is below `METAREFRESH_MAXDELAY`
//! seconds is followed as a bodiless `GET` (reason `"meta refresh"`); the response itself
//! is dropped.
//!
//! Settings: `METAREFRESH_ENABLED` (true; false: not configured), `METAREFRESH_MAXDELAY`
//! (100), `METAREFRESH_IGNORE_TAGS` ([]), and the Redirect middleware's
//! `REDIRECT_MAX_TIMES` (20) and `REDIRECT_PRIORITY_ADJUST` (+2).
//!
//! Meta keys: `dont_redirect` (read), and, as for redirects, `redirect_times`,
//! `redirect_ttl`, `redirect_urls`, `redirect_reasons` (`"meta refresh"`).
//!
//! Stats: `redirect/max_reached` when the redirection limit is reached (the request is
//! then dropped with `IgnoreRequest`).
//!
//! The small w3lib-compatible markup helpers (comment and tag removal, entity decoding,
//! the HTML response test) live here too; the AjaxCrawl middleware uses them.

use std::borrow::Cow;

use url::Url;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::{Method, Request, Response};
use crate::middleware::downloader::{DownloaderMiddleware, ResponseFlow};
use crate::middleware::redirect::{redirect_request_using_get, RedirectPolicy, RedirectReason};

/// How much of the page Scrapy's `get_meta_refresh` and `get_base_url` read (characters).
const LOOKUP_CHARS: usize = 4096;

/// Follows meta refreshes.
#[derive(Debug)]
pub struct MetaRefreshMiddleware {
    policy: RedirectPolicy,
    max_delay: f64,
    ignore_tags: Vec<String>,
}

impl MetaRefreshMiddleware {
    /// `None` when `METAREFRESH_ENABLED` is off.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        if !s.get_bool("METAREFRESH_ENABLED")? {
            return Ok(None);
        }
        Ok(Some(Box::new(MetaRefreshMiddleware {
            policy: RedirectPolicy::from_crawler(crawler)?,
            max_delay: s.get_f64("METAREFRESH_MAXDELAY")?,
            ignore_tags: s.get_list("METAREFRESH_IGNORE_TAGS")?,
        })))
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for MetaRefreshMiddleware {
    async fn process_response(
        &self,
        request: &Request,
        response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        if request.meta_bool("dont_redirect")
            || request.method == Method::HEAD
            || !matches!(request.url.scheme(), "http" | "https")
            || !is_html(&response)
        {
            return Ok(ResponseFlow::Continue(response));
        }
        let Some((delay, url)) = response_meta_refresh(&response, &self.ignore_tags) else {
            return Ok(ResponseFlow::Continue(response));
        };
        if !matches!(url.scheme(), "http" | "https") || delay >= self.max_delay {
            return Ok(ResponseFlow::Continue(response));
        }
        let redirected = redirect_request_using_get(request, url);
        self.policy
            .redirect(redirected, request, &response, RedirectReason::MetaRefresh)
            .map(ResponseFlow::Reschedule)
    }
}

/// Scrapy's `scrapy.utils.response.get_meta_refresh`: the delay and absolute URL of the
/// page's meta refresh, from its first 4096 characters.
pub fn response_meta_refresh(response: &Response, ignore_tags: &[String]) -> Option<(f64, Url)> {
    // Nearly no page has a refresh: a byte scan for the word (in any case) skips the
    // decoding and parsing on the I/O thread for all the others. 4096 characters are
    // at most 16 KB of UTF-8.
    let window = &response.body[..response.body.len().min(LOOKUP_CHARS * 4)];
    if !window
        .windows(7)
        .any(|w| w.eq_ignore_ascii_case(b"refresh"))
    {
        return None;
    }
    let text = response.text();
    let head = prefix_chars(&text, LOOKUP_CHARS);
    let base = base_url(head, &response.url);
    meta_refresh(head, &base, ignore_tags)
}

/// The first `n` characters of `s`.
pub(crate) fn prefix_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// w3lib's `get_base_url`: the page's `<base href>` resolved against `url`, else `url`.
pub fn base_url(text: &str, url: &Url) -> Url {
    let text = remove_comments(text);
    let mut from = 0;
    while let Some(at) = find_ci(&text, "<base", from) {
        from = at + 1;
        let Some(ws) = text[at + 5..].chars().next().filter(|c| c.is_whitespace()) else {
            continue;
        };
        let body_start = at + 5 + ws.len_utf8();
        // `[^<>]*` before `href`: greedy, so the last `href` that works wins.
        let stop = text[body_start..]
            .find(['<', '>'])
            .map_or(text.len(), |i| body_start + i);
        let hrefs = all_ci(&text, "href", body_start, stop);
        for h in hrefs.into_iter().rev() {
            if let Some(href) = base_href_tail(&text[h + 4..]) {
                if let Ok(u) = url.join(href) {
                    return u;
                }
            }
        }
    }
    url.clone()
}

/// `\s*=\s*["']\s*([^"'\s]+)\s*["']` at the start of `s`.
fn base_href_tail(s: &str) -> Option<&str> {
    let mut p = Parser::new(s);
    p.spaces();
    p.eat('=')?;
    p.spaces();
    p.eat_any(&['"', '\''])?;
    p.spaces();
    let start = p.pos;
    p.skip_while(|c| c != '"' && c != '\'' && !c.is_whitespace());
    let value = &s[start..p.pos];
    if value.is_empty() {
        return None;
    }
    p.spaces();
    p.eat_any(&['"', '\''])?;
    Some(value)
}

/// w3lib's `get_meta_refresh` on already decoded text: the first `<meta>` tag with a
/// refresh, as `(delay, URL resolved against base)`.
pub fn meta_refresh(text: &str, base: &Url, ignore_tags: &[String]) -> Option<(f64, Url)> {
    let text = remove_tags_with_content(text, ignore_tags);
    let text = remove_comments(&text);
    let mut from = 0;
    while let Some(at) = find_ci(&text, "<meta", from) {
        from = at + 1;
        // `<meta\b[^<>]*>`
        if text[at + 5..].chars().next().is_some_and(is_word) {
            continue;
        }
        let Some(len) = text[at + 5..].find(['<', '>']) else {
            break;
        };
        let end = at + 5 + len;
        if text.as_bytes()[end] != b'>' {
            continue;
        }
        from = end + 1;
        let raw = &text[at..=end];
        if !raw.to_ascii_lowercase().contains("refresh") {
            continue;
        }
        let tag: Cow<'_, str> = if raw.contains('&') {
            Cow::Owned(replace_entities(raw))
        } else {
            Cow::Borrowed(raw)
        };
        if let Some((delay, url)) =
            refresh_http_equiv_first(&tag).or_else(|| refresh_content_first(&tag))
        {
            let url = url.trim_matches([' ', '"', '\'']);
            return base.join(url).ok().map(|u| (delay, u));
        }
    }
    None
}

/// w3lib's first pattern: `<meta\s[^>]*http-equiv[^>]*refresh[^>]*content\s*=\s*
/// (["'])(\d*\.)?\d+\s*;\s*url=\s*(.*?)\1`, case-insensitive.
fn refresh_http_equiv_first(tag: &str) -> Option<(f64, &str)> {
    let start = meta_body_start(tag)?;
    for he in all_ci(tag, "http-equiv", start, tag.len())
        .into_iter()
        .rev()
    {
        for rf in all_ci(tag, "refresh", he + 10, tag.len()).into_iter().rev() {
            for c in all_ci(tag, "content", rf + 7, tag.len()).into_iter().rev() {
                if let Some((delay, url, _)) = content_value(&tag[c + 7..]) {
                    return Some((delay, url));
                }
            }
        }
    }
    None
}

/// w3lib's second pattern: `<meta\s[^>]*content\s*=\s*(["'])(\d*\.)?\d+\s*;\s*url=\s*
/// (.*?)\1[^>]*?\shttp-equiv\s*=[^>]*refresh`, case-insensitive.
fn refresh_content_first(tag: &str) -> Option<(f64, &str)> {
    let start = meta_body_start(tag)?;
    for c in all_ci(tag, "content", start, tag.len()).into_iter().rev() {
        let rest = &tag[c + 7..];
        let Some((delay, url, used)) = content_value(rest) else {
            continue;
        };
        if http_equiv_refresh_follows(&rest[used..]) {
            return Some((delay, url));
        }
    }
    None
}

/// Where `[^>]*` starts after `<meta\s`, if `tag` starts so.
fn meta_body_start(tag: &str) -> Option<usize> {
    if !starts_with_ci(tag, 0, "<meta") {
        return None;
    }
    let ws = tag[5..].chars().next().filter(|c| c.is_whitespace())?;
    Some(5 + ws.len_utf8())
}

/// `\s*=\s*(["'])(\d*\.)?\d+\s*;\s*url=\s*(.*?)\1` at the start of `s`: the delay, the
/// URL and the bytes used.
fn content_value(s: &str) -> Option<(f64, &str, usize)> {
    let mut p = Parser::new(s);
    p.spaces();
    p.eat('=')?;
    p.spaces();
    let quote = p.eat_any(&['"', '\''])?;
    let num_start = p.pos;
    p.skip_while(|c| c.is_ascii_digit());
    if p.peek() == Some('.') {
        p.pos += 1;
        let frac = p.pos;
        p.skip_while(|c| c.is_ascii_digit());
        if p.pos == frac {
            return None;
        }
    } else if p.pos == num_start {
        return None;
    }
    let delay: f64 = s[num_start..p.pos].parse().ok()?;
    p.spaces();
    p.eat(';')?;
    p.spaces();
    if !starts_with_ci(s, p.pos, "url=") {
        return None;
    }
    p.pos += 4;
    p.spaces();
    let url_start = p.pos;
    let len = s[url_start..].find(quote)?;
    Some((delay, &s[url_start..url_start + len], url_start + len + 1))
}

/// `[^>]*?\shttp-equiv\s*=[^>]*refresh` at the start of `s`.
fn http_equiv_refresh_follows(s: &str) -> bool {
    let stop = s.find('>').unwrap_or(s.len());
    let region = &s[..stop];
    for he in all_ci(region, "http-equiv", 0, region.len()) {
        if !region[..he]
            .chars()
            .next_back()
            .is_some_and(char::is_whitespace)
        {
            continue;
        }
        let mut p = Parser::new(&region[he + 10..]);
        p.spaces();
        if p.eat('=').is_some() && find_ci(&region[he + 10 + p.pos..], "refresh", 0).is_some() {
            return true;
        }
    }
    false
}

/// Whether `response` is HTML as Scrapy's `responsetypes.from_args` decides it
/// (`HtmlResponse`): by `Content-Type`, else `Content-Disposition`'s file name, else the
/// URL's extension, else the body's first 5000 bytes. `Content-Encoding` is ignored:
/// Arachne bodies are decoded before the middlewares see them.
pub fn is_html(response: &Response) -> bool {
    let header = |name: &str| {
        response
            .headers
            .get_all(name)
            .last()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut kind = Kind::Unknown;
    if let Some(ct) = header("content-type") {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        kind = mime_kind(&mime);
    }
    if kind == Kind::Unknown {
        if let Some(cd) = header("content-disposition") {
            if let Some(name) = disposition_filename(&cd) {
                kind = filename_kind(name);
            }
        }
    }
    if kind == Kind::Unknown {
        kind = filename_kind(response.url.as_str());
    }
    if kind == Kind::Unknown {
        kind = body_kind(&response.body);
    }
    kind == Kind::Html
}

/// What Scrapy's response-type table makes of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `HtmlResponse`.
    Html,
    /// Text, XML or JSON: another `TextResponse`.
    Text,
    /// Plain `Response`: look further.
    Unknown,
}

/// Scrapy's `responsetypes.from_mimetype`.
fn mime_kind(mime: &str) -> Kind {
    match mime {
        "text/html" | "application/xhtml+xml" | "application/vnd.wap.xhtml+xml" => Kind::Html,
        "application/atom+xml"
        | "application/rdf+xml"
        | "application/rss+xml"
        | "application/xml"
        | "application/json"
        | "application/x-json"
        | "application/json-amazonui-streaming"
        | "application/javascript"
        | "application/x-javascript" => Kind::Text,
        m if m.starts_with("text/") => Kind::Text,
        _ => Kind::Unknown,
    }
}

/// The kind Python's `mimetypes.guess_type` gives a file name or URL, for the types that
/// matter here.
fn filename_kind(name: &str) -> Kind {
    let last = name.rsplit('/').next().unwrap_or(name);
    let Some((_, ext)) = last.rsplit_once('.') else {
        return Kind::Unknown;
    };
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" | "xhtml" => Kind::Html,
        "txt" | "xml" | "json" | "css" | "csv" | "js" => Kind::Text,
        _ => Kind::Unknown,
    }
}

/// The `filename` of a `Content-Disposition` header.
fn disposition_filename(cd: &str) -> Option<&str> {
    cd.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("filename")).then(|| v.trim().trim_matches(['"', '\'']))
    })
}

/// Scrapy's `responsetypes.from_body`.
fn body_kind(body: &[u8]) -> Kind {
    let chunk = &body[..body.len().min(5000)];
    let binary = chunk
        .iter()
        .any(|&b| b < 32 && !matches!(b, 0 | b'\t' | b'\n' | b'\r'));
    if binary {
        return Kind::Unknown;
    }
    let lower = chunk.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if has(b"<html>") || (!has(b"<?xml") && has(b"<!doctype html>")) {
        Kind::Html
    } else {
        Kind::Text
    }
}

// --- w3lib.html helpers ---------------------------------------------------------------------

/// w3lib's `remove_comments`: drops `<!-- ... -->`; an unclosed comment runs to the end
/// (a final newline kept, as Python's `$` does).
pub fn remove_comments(text: &str) -> Cow<'_, str> {
    if !text.contains("<!--") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(i) = text[pos..].find("<!--") {
        let start = pos + i;
        out.push_str(&text[pos..start]);
        match text[start + 4..].find("-->") {
            Some(j) => pos = start + 4 + j + 3,
            None => {
                pos = if text.ends_with('\n') {
                    text.len() - 1
                } else {
                    text.len()
                };
                break;
            }
        }
    }
    out.push_str(&text[pos..]);
    Cow::Owned(out)
}

/// w3lib's `remove_tags_with_content`: drops each element named in `tags`
/// (case-insensitive) with its content: `<tag ...>...</tag>`, or a self-closing
/// `<tag .../>`.
pub fn remove_tags_with_content<'a>(text: &'a str, tags: &[String]) -> Cow<'a, str> {
    if tags.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut copied = 0;
    while let Some(i) = text[pos..].find('<') {
        let at = pos + i;
        match tags.iter().find_map(|t| element_end(text, at, t)) {
            Some(end) => {
                out.push_str(&text[copied..at]);
                copied = end;
                pos = end;
            }
            None => pos = at + 1,
        }
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Where the element `tag` opened at `at` ends, per w3lib's pattern
/// `<tag\b[^<>]*>.*?</tag>|<tag\b[^<>]*/>`.
fn element_end(text: &str, at: usize, tag: &str) -> Option<usize> {
    if tag.is_empty() || !starts_with_ci(text, at + 1, tag) {
        return None;
    }
    let after = at + 1 + tag.len();
    if text[after..].chars().next().is_some_and(is_word) {
        return None;
    }
    let close_at = after + text[after..].find(['<', '>'])?;
    if text.as_bytes()[close_at] != b'>' {
        return None;
    }
    let closing = format!("</{tag}>");
    if let Some(j) = find_ci(text, &closing, close_at + 1) {
        return Some(j + closing.len());
    }
    (text.as_bytes()[close_at - 1] == b'/' && close_at > after).then_some(close_at + 1)
}

/// w3lib's `replace_entities`: named (HTML 4), decimal and hexadecimal character
/// references become characters; 128–159 are read as Windows-1252; a reference that
/// cannot be converted is removed when it ends with `;`, else kept.
pub fn replace_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(i) = text[pos..].find('&') {
        let at = pos + i;
        out.push_str(&text[pos..at]);
        let (len, converted) = entity_at(&text[at + 1..]);
        if len == 0 {
            out.push('&');
            pos = at + 1;
            continue;
        }
        let mut end = at + 1 + len;
        let semicolon = text[end..].starts_with(';');
        if semicolon {
            end += 1;
        }
        match converted {
            Some(c) => out.push(c),
            None if semicolon => {}
            None => out.push_str(&text[at..end]),
        }
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// The reference after an `&` (without the `;`): its length (0: none) and character.
fn entity_at(s: &str) -> (usize, Option<char>) {
    let b = s.as_bytes();
    let run = |from: usize, f: fn(&u8) -> bool| b[from..].iter().take_while(|c| f(c)).count();
    let named = run(0, u8::is_ascii_alphanumeric);
    if named > 0 {
        let name = &s[..named];
        let code = NAME2CODEPOINT
            .iter()
            .find(|(n, _)| *n == name)
            .or_else(|| {
                let lower = name.to_ascii_lowercase();
                NAME2CODEPOINT.iter().find(|(n, _)| *n == lower)
            })
            .map(|(_, c)| *c);
        return (named, code.and_then(codepoint_char));
    }
    if b.first() != Some(&b'#') {
        return (0, None);
    }
    let dec = run(1, u8::is_ascii_digit);
    if dec > 0 {
        let code = s[1..1 + dec].parse::<u32>().ok();
        return (1 + dec, code.and_then(codepoint_char));
    }
    if matches!(b.get(1), Some(b'x' | b'X')) {
        let hex = run(2, u8::is_ascii_hexdigit);
        if hex > 0 {
            let code = u32::from_str_radix(&s[2..2 + hex], 16).ok();
            return (2 + hex, code.and_then(codepoint_char));
        }
    }
    (0, None)
}

/// A character reference's character; 128–159 as Windows-1252 (five are undefined).
fn codepoint_char(code: u32) -> Option<char> {
    const CP1252: [u32; 32] = [
        0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
        0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
        0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
    ];
    if (0x80..=0x9F).contains(&code) {
        let mapped = CP1252[(code - 0x80) as usize];
        return (mapped != 0).then(|| char::from_u32(mapped)).flatten();
    }
    char::from_u32(code)
}

/// Python's `html.entities.name2codepoint` (the 252 HTML 4 entities).
static NAME2CODEPOINT: &[(&str, u32)] = &[
    ("quot", 34),
    ("amp", 38),
    ("lt", 60),
    ("gt", 62),
    ("nbsp", 160),
    ("iexcl", 161),
    ("cent", 162),
    ("pound", 163),
    ("curren", 164),
    ("yen", 165),
    ("brvbar", 166),
    ("sect", 167),
    ("uml", 168),
    ("copy", 169),
    ("ordf", 170),
    ("laquo", 171),
    ("not", 172),
    ("shy", 173),
    ("reg", 174),
    ("macr", 175),
    ("deg", 176),
    ("plusmn", 177),
    ("sup2", 178),
    ("sup3", 179),
    ("acute", 180),
    ("micro", 181),
    ("para", 182),
    ("middot", 183),
    ("cedil", 184),
    ("sup1", 185),
    ("ordm", 186),
    ("raquo", 187),
    ("frac14", 188),
    ("frac12", 189),
    ("frac34", 190),
    ("iquest", 191),
    ("Agrave", 192),
    ("Aacute", 193),
    ("Acirc", 194),
    ("Atilde", 195),
    ("Auml", 196),
    ("Aring", 197),
    ("AElig", 198),
    ("Ccedil", 199),
    ("Egrave", 200),
    ("Eacute", 201),
    ("Ecirc", 202),
    ("Euml", 203),
    ("Igrave", 204),
    ("Iacute", 205),
    ("Icirc", 206),
    ("Iuml", 207),
    ("ETH", 208),
    ("Ntilde", 209),
    ("Ograve", 210),
    ("Oacute", 211),
    ("Ocirc", 212),
    ("Otilde", 213),
    ("Ouml", 214),
    ("times", 215),
    ("Oslash", 216),
    ("Ugrave", 217),
    ("Uacute", 218),
    ("Ucirc", 219),
    ("Uuml", 220),
    ("Yacute", 221),
    ("THORN", 222),
    ("szlig", 223),
    ("agrave", 224),
    ("aacute", 225),
    ("acirc", 226),
    ("atilde", 227),
    ("auml", 228),
    ("aring", 229),
    ("aelig", 230),
    ("ccedil", 231),
    ("egrave", 232),
    ("eacute", 233),
    ("ecirc", 234),
    ("euml", 235),
    ("igrave", 236),
    ("iacute", 237),
    ("icirc", 238),
    ("iuml", 239),
    ("eth", 240),
    ("ntilde", 241),
    ("ograve", 242),
    ("oacute", 243),
    ("ocirc", 244),
    ("otilde", 245),
    ("ouml", 246),
    ("divide", 247),
    ("oslash", 248),
    ("ugrave", 249),
    ("uacute", 250),
    ("ucirc", 251),
    ("uuml", 252),
    ("yacute", 253),
    ("thorn", 254),
    ("yuml", 255),
    ("OElig", 338),
    ("oelig", 339),
    ("Scaron", 352),
    ("scaron", 353),
    ("Yuml", 376),
    ("fnof", 402),
    ("circ", 710),
    ("tilde", 732),
    ("Alpha", 913),
    ("Beta", 914),
    ("Gamma", 915),
    ("Delta", 916),
    ("Epsilon", 917),
    ("Zeta", 918),
    ("Eta", 919),
    ("Theta", 920),
    ("Iota", 921),
    ("Kappa", 922),
    ("Lambda", 923),
    ("Mu", 924),
    ("Nu", 925),
    ("Xi", 926),
    ("Omicron", 927),
    ("Pi", 928),
    ("Rho", 929),
    ("Sigma", 931),
    ("Tau", 932),
    ("Upsilon", 933),
    ("Phi", 934),
    ("Chi", 935),
    ("Psi", 936),
    ("Omega", 937),
    ("alpha", 945),
    ("beta", 946),
    ("gamma", 947),
    ("delta", 948),
    ("epsilon", 949),
    ("zeta", 950),
    ("eta", 951),
    ("theta", 952),
    ("iota", 953),
    ("kappa", 954),
    ("lambda", 955),
    ("mu", 956),
    ("nu", 957),
    ("xi", 958),
    ("omicron", 959),
    ("pi", 960),
    ("rho", 961),
    ("sigmaf", 962),
    ("sigma", 963),
    ("tau", 964),
    ("upsilon", 965),
    ("phi", 966),
    ("chi", 967),
    ("psi", 968),
    ("omega", 969),
    ("thetasym", 977),
    ("upsih", 978),
    ("piv", 982),
    ("ensp", 8194),
    ("emsp", 8195),
    ("thinsp", 8201),
    ("zwnj", 8204),
    ("zwj", 8205),
    ("lrm", 8206),
    ("rlm", 8207),
    ("ndash", 8211),
    ("mdash", 8212),
    ("lsquo", 8216),
    ("rsquo", 8217),
    ("sbquo", 8218),
    ("ldquo", 8220),
    ("rdquo", 8221),
    ("bdquo", 8222),
    ("dagger", 8224),
    ("Dagger", 8225),
    ("bull", 8226),
    ("hellip", 8230),
    ("permil", 8240),
    ("prime", 8242),
    ("Prime", 8243),
    ("lsaquo", 8249),
    ("rsaquo", 8250),
    ("oline", 8254),
    ("frasl", 8260),
    ("euro", 8364),
    ("image", 8465),
    ("weierp", 8472),
    ("real", 8476),
    ("trade", 8482),
    ("alefsym", 8501),
    ("larr", 8592),
    ("uarr", 8593),
    ("rarr", 8594),
    ("darr", 8595),
    ("harr", 8596),
    ("crarr", 8629),
    ("lArr", 8656),
    ("uArr", 8657),
    ("rArr", 8658),
    ("dArr", 8659),
    ("hArr", 8660),
    ("forall", 8704),
    ("part", 8706),
    ("exist", 8707),
    ("empty", 8709),
    ("nabla", 8711),
    ("isin", 8712),
    ("notin", 8713),
    ("ni", 8715),
    ("prod", 8719),
    ("sum", 8721),
    ("minus", 8722),
    ("lowast", 8727),
    ("radic", 8730),
    ("prop", 8733),
    ("infin", 8734),
    ("ang", 8736),
    ("and", 8743),
    ("or", 8744),
    ("cap", 8745),
    ("cup", 8746),
    ("int", 8747),
    ("there4", 8756),
    ("sim", 8764),
    ("cong", 8773),
    ("asymp", 8776),
    ("ne", 8800),
    ("equiv", 8801),
    ("le", 8804),
    ("ge", 8805),
    ("sub", 8834),
    ("sup", 8835),
    ("nsub", 8836),
    ("sube", 8838),
    ("supe", 8839),
    ("oplus", 8853),
    ("otimes", 8855),
    ("perp", 8869),
    ("sdot", 8901),
    ("lceil", 8968),
    ("rceil", 8969),
    ("lfloor", 8970),
    ("rfloor", 8971),
    ("lang", 9001),
    ("rang", 9002),
    ("loz", 9674),
    ("spades", 9824),
    ("clubs", 9827),
    ("hearts", 9829),
    ("diams", 9830),
];

// --- small scanning helpers -----------------------------------------------------------------

/// A regex `\w` character.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `hay[at..]` starts with the ASCII `needle`, ignoring ASCII case.
pub(crate) fn starts_with_ci(hay: &str, at: usize, needle: &str) -> bool {
    hay.as_bytes()
        .get(at..at + needle.len())
        .is_some_and(|b| b.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The first position at or after `from` where the ASCII `needle` occurs, ignoring ASCII
/// case.
pub(crate) fn find_ci(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let n = needle.len();
    let b = hay.as_bytes();
    (from..=b.len().checked_sub(n)?).find(|&i| b[i..i + n].eq_ignore_ascii_case(needle.as_bytes()))
}

/// Every position in `from..to` where the ASCII `needle` occurs whole, ignoring case.
fn all_ci(hay: &str, needle: &str, from: usize, to: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = from;
    while let Some(i) = find_ci(hay, needle, at) {
        if i + needle.len() > to {
            break;
        }
        out.push(i);
        at = i + 1;
    }
    out
}

/// A cursor over a string, for the fixed patterns above.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser { s, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        while let Some(c) = self.peek().filter(|c| f(*c)) {
            self.pos += c.len_utf8();
        }
    }

    fn spaces(&mut self) {
        self.skip_while(char::is_whitespace);
    }

    fn eat(&mut self, want: char) -> Option<char> {
        self.eat_any(&[want])
    }

    fn eat_any(&mut self, any: &[char]) -> Option<char> {
        let c = self.peek().filter(|c| any.contains(c))?;
        self.pos += c.len_utf8();
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn base() -> Url {
        Url::parse("http://example.org/dir/page").unwrap()
    }

    fn refresh(html: &str) -> Option<(f64, String)> {
        meta_refresh(html, &base(), &[]).map(|(d, u)| (d, u.to_string()))
    }

    /// w3lib's own examples and the usual spellings.
    #[test]
    fn finds_refreshes() {
        let want = Some((5.0, "http://example.org/newpage".to_string()));
        assert_eq!(
            refresh(r#"<meta http-equiv="refresh" content="5;url=http://example.org/newpage" />"#),
            want
        );
        assert_eq!(
            refresh(r#"<META HTTP-EQUIV="Refresh" CONTENT="5; URL=/newpage">"#),
            want
        );
        assert_eq!(
            refresh(r#"<meta content="5; url=/newpage" http-equiv="refresh">"#),
            want
        );
        assert_eq!(
            refresh(r#"<meta http-equiv='refresh' content='0.5;url=newpage'>"#),
            Some((0.5, "http://example.org/dir/newpage".to_string()))
        );
        assert_eq!(
            refresh("<meta http-equiv=\"refresh\" content=\"3; url='/q?a=1&amp;b=2'\">"),
            Some((3.0, "http://example.org/q?a=1&b=2".to_string()))
        );
        assert_eq!(
            refresh("<meta\nhttp-equiv=\"refresh\"\ncontent=\"1;\nurl=/x\">"),
            Some((1.0, "http://example.org/x".to_string()))
        );
    }

    /// No URL, a leading space in content, comments: no refresh.
    #[test]
    fn ignores_non_refreshes() {
        assert_eq!(refresh(r#"<meta http-equiv="refresh" content="5">"#), None);
        assert_eq!(
            refresh(r#"<meta http-equiv="refresh" content=" 5; url=/x">"#),
            None
        );
        assert_eq!(
            refresh(r#"<!-- <meta http-equiv="refresh" content="5; url=/x"> -->"#),
            None
        );
        assert_eq!(refresh(r#"<meta name="refresh" content="abc">"#), None);
        assert_eq!(refresh("<html><head><title>x</title></head></html>"), None);
    }

    /// `METAREFRESH_IGNORE_TAGS` skips refreshes inside those elements only.
    #[test]
    fn ignore_tags() {
        let html = r#"<noscript><meta http-equiv="refresh" content="0; url=/js"></noscript>"#;
        assert!(refresh(html).is_some());
        let tags = ["script".to_string(), "noscript".to_string()];
        assert!(meta_refresh(html, &base(), &tags).is_none());
        let html = format!("{html}<meta http-equiv=\"refresh\" content=\"0; url=/real\">");
        assert_eq!(
            meta_refresh(&html, &base(), &tags).unwrap().1.as_str(),
            "http://example.org/real"
        );
    }

    /// `<base href>` changes what relative refresh URLs resolve against.
    #[test]
    fn base_href() {
        let html = r#"<head><base href="http://other.test/b/"><meta http-equiv="refresh" content="0;url=x"></head>"#;
        let b = base_url(html, &base());
        assert_eq!(b.as_str(), "http://other.test/b/");
        assert_eq!(
            meta_refresh(html, &b, &[]).unwrap().1.as_str(),
            "http://other.test/b/x"
        );
        assert_eq!(base_url("<p>no base</p>", &base()), base());
    }

    /// Entities as w3lib decodes them.
    #[test]
    fn entities() {
        assert_eq!(replace_entities("a &amp; b &lt;c&gt;"), "a & b <c>");
        assert_eq!(
            replace_entities("&#65;&#x42;&#X43;&eacute;&EACUTE;"),
            "ABCéé"
        );
        assert_eq!(replace_entities("&#150;"), "\u{2013}");
        assert_eq!(replace_entities("&bogus; &bogus &amp"), " &bogus &");
        assert_eq!(replace_entities("& x &#; &#xZ;"), "& x &#; &#xZ;");
        assert_eq!(NAME2CODEPOINT.len(), 252);
    }

    /// Comments and whole elements are removed as w3lib removes them.
    #[test]
    fn removals() {
        assert_eq!(remove_comments("a<!-- x -->b<!-- open\n"), "ab\n");
        let tags = ["script".to_string()];
        assert_eq!(
            remove_tags_with_content("a<script type=x>1</SCRIPT>b<script/>c<scripts>d", &tags),
            "abc<scripts>d"
        );
    }

    /// Response types as Scrapy guesses them.
    #[test]
    fn html_detection() {
        let resp = |url: &str, ct: Option<&str>, body: &'static str| {
            let mut r = Response::new(
                Request::get(url).unwrap(),
                200,
                Bytes::from_static(body.as_bytes()),
            );
            if let Some(ct) = ct {
                r.headers.insert(
                    awc::http::header::CONTENT_TYPE,
                    awc::http::header::HeaderValue::from_str(ct).unwrap(),
                );
            }
            r
        };
        assert!(is_html(&resp(
            "http://a.test/",
            Some("text/html; charset=utf-8"),
            ""
        )));
        assert!(is_html(&resp(
            "http://a.test/",
            Some("application/xhtml+xml"),
            ""
        )));
        assert!(!is_html(&resp(
            "http://a.test/x.html",
            Some("text/plain"),
            "<html>"
        )));
        assert!(!is_html(&resp(
            "http://a.test/",
            Some("application/json"),
            "<html>"
        )));
        assert!(is_html(&resp(
            "http://a.test/x.html",
            Some("application/octet-stream"),
            ""
        )));
        assert!(is_html(&resp("http://a.test/", None, "<HTML><body>")));
        assert!(!is_html(&resp("http://a.test/", None, "plain text")));
        assert!(!is_html(&resp("http://a.test/", None, "<html>\x01binary")));
    }
}
