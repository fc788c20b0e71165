//! Decoding a response body to text the way Scrapy's `TextResponse` does: a byte
//! order mark wins, then the `Content-Type` charset, then a `<meta>` declaration in
//! the first KB, then UTF-8. Labels are resolved by the WHATWG table (`encoding_rs`),
//! so `iso-8859-1` means windows-1252 exactly as browsers and w3lib treat it.
//! Undecodable bytes become U+FFFD rather than an error: broken pages still parse.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

/// How far into the body a `<meta charset>` is looked for (HTML5 says 1024 bytes).
const META_SCAN_BYTES: usize = 1024;

/// The encoding to decode `body` with, given the response's `Content-Type` header.
pub(crate) fn detect(content_type: Option<&str>, body: &[u8]) -> &'static Encoding {
    if let Some((enc, _)) = Encoding::for_bom(body) {
        return enc;
    }
    if let Some(enc) = content_type.and_then(charset_param).and_then(label) {
        return enc;
    }
    if let Some(enc) = meta_charset(&body[..body.len().min(META_SCAN_BYTES)]) {
        return enc;
    }
    UTF_8
}

/// Decodes `body`; borrows when it is valid UTF-8 already (the common case).
pub(crate) fn decode<'a>(content_type: Option<&str>, body: &'a [u8]) -> Cow<'a, str> {
    let enc = detect(content_type, body);
    // `decode` strips a BOM matching any encoding, and sniffs none: what we want.
    let (text, _, _) = enc.decode(body);
    text
}

fn label(name: &str) -> Option<&'static Encoding> {
    Encoding::for_label(
        name.trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .as_bytes(),
    )
}

/// `text/html; charset=ISO-8859-1` → `ISO-8859-1`.
fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then_some(v.trim())
    })
}

/// Finds `<meta charset="x">` or `<meta http-equiv="content-type" content="...; charset=x">`.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let mut from = 0;
    while let Some(pos) = find(&lower[from..], b"<meta") {
        let start = from + pos;
        let end = lower[start..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(lower.len(), |e| start + e);
        let tag = &lower[start..end];
        if let Some(p) = find(tag, b"charset=") {
            let rest = &tag[p + b"charset=".len()..];
            let rest: Vec<u8> = rest
                .iter()
                .copied()
                .skip_while(|&b| b == b'"' || b == b'\'' || b == b' ')
                .take_while(|&b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
                .collect();
            if let Some(enc) = Encoding::for_label(&rest) {
                return Some(enc);
            }
        }
        from = end;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's charset is honoured, and latin-1 decodes as windows-1252.
    #[test]
    fn header_charset() {
        let body = b"caf\xe9";
        assert_eq!(decode(Some("text/html; charset=ISO-8859-1"), body), "café");
    }

    /// A `<meta charset>` is used when the header says nothing.
    #[test]
    fn meta_charset_declaration() {
        let body = b"<html><head><meta charset=\"windows-1251\"></head>\xcf\xf0\xe8";
        assert!(decode(Some("text/html"), body).ends_with("При"));
        let body =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-15\">\xa4";
        assert!(decode(None, body).ends_with('€'));
    }

    /// A BOM beats the header.
    #[test]
    fn bom_wins() {
        let body = b"\xef\xbb\xbfcaf\xc3\xa9";
        assert_eq!(decode(Some("text/html; charset=latin1"), body), "café");
    }

    /// Invalid UTF-8 is replaced, not an error.
    #[test]
    fn invalid_bytes_replaced() {
        assert_eq!(decode(None, b"a\xffb"), "a\u{fffd}b");
    }
}
