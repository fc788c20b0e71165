//! Request fingerprints identical to Scrapy's default fingerprinter
//! (`REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"`, i.e.
//! `scrapy.utils.request.fingerprint` without `include_headers`). The
//! duplicate filter, the HTTP cache and anything else that asks "have we
//! seen this request?" key on these 20 bytes, and matching Scrapy
//! bit-for-bit lets such state move between the two frameworks.
//!
//! Scrapy hashes, with SHA-1, the UTF-8 of
//! `json.dumps({"body": body.hex(), "headers": {}, "method": method,
//! "url": canonicalize_url(url)}, sort_keys=True)`. Rather than building a
//! JSON value, this module streams that exact text into the hasher: the
//! keys are fixed and already sorted, the separators are Python's defaults
//! (`", "` and `": "`), and strings are escaped the way `json.dumps` does
//! with `ensure_ascii=True`. The body's hex goes through a small stack
//! buffer and everything else through a per-thread reused buffer, so a
//! fingerprint costs no allocation in the steady state.

use std::cell::RefCell;

use sha1::{Digest, Sha1};
use url::Url;

use super::canonical::{canonicalize_into, Scratch};

/// A request fingerprint: the raw SHA-1 digest (Scrapy's `fingerprint()`
/// returns these bytes; `to_hex` gives its `.hex()`).
pub type Fingerprint = [u8; 20];

/// Scrapy's default fingerprint of a request: fragment ignored, no headers.
///
/// `method` is upper-cased first, as Scrapy's `Request` does when it is
/// built, so `"post"` and `"POST"` give the same fingerprint.
///
/// ```
/// use arachne::http::fingerprint::{fingerprint, to_hex};
/// use url::Url;
///
/// let url = Url::parse("http://www.example.com/do?c=3&b=5&b=2&a=50").unwrap();
/// // The value Scrapy prints for `fingerprint(Request(url)).hex()`.
/// assert_eq!(
///     to_hex(&fingerprint("GET", &url, b"")),
///     "aa9f7e764042feef4578637f699d1c47157e93cf"
/// );
/// // Argument order does not matter, the body does.
/// let reordered = Url::parse("http://www.example.com/do?a=50&b=2&c=3&b=5").unwrap();
/// assert_eq!(fingerprint("GET", &url, b""), fingerprint("get", &reordered, b""));
/// assert_ne!(fingerprint("POST", &url, b"x=1"), fingerprint("POST", &url, b"x=2"));
/// ```
pub fn fingerprint(method: &str, url: &Url, body: &[u8]) -> Fingerprint {
    fingerprint_with(method, url, body, false)
}

/// Like [`fingerprint`], but with Scrapy's `keep_fragments` switch: when
/// true the URL fragment takes part in the hash (for pages rendered by a
/// browser, where `#` routes matter).
///
/// ```
/// use arachne::http::fingerprint::{fingerprint, fingerprint_with, to_hex};
/// use url::Url;
///
/// let a = Url::parse("http://www.example.com/page#one").unwrap();
/// let b = Url::parse("http://www.example.com/page#two").unwrap();
/// assert_eq!(fingerprint("GET", &a, b""), fingerprint("GET", &b, b""));
/// assert_ne!(
///     fingerprint_with("GET", &a, b"", true),
///     fingerprint_with("GET", &b, b"", true)
/// );
/// // Scrapy: fingerprint(Request(".../page#frag"), keep_fragments=True).hex()
/// let frag = Url::parse("http://www.example.com/page#frag").unwrap();
/// assert_eq!(
///     to_hex(&fingerprint_with("GET", &frag, b"", true)),
///     "0f6d88827569efa52514ce75e02201fc774f8e84"
/// );
/// ```
pub fn fingerprint_with(method: &str, url: &Url, body: &[u8], keep_fragments: bool) -> Fingerprint {
    thread_local! {
        static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
    }
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => buffers.fingerprint(method, url, body, keep_fragments),
        // Only reachable if a fingerprint were computed from inside another
        // on the same thread; fresh buffers keep that correct, just slower.
        Err(_) => Buffers::default().fingerprint(method, url, body, keep_fragments),
    })
}

/// Lower-case hexadecimal form of a fingerprint, as Scrapy's `.hex()`.
///
/// ```
/// use arachne::http::fingerprint::to_hex;
///
/// let mut fp = [0u8; 20];
/// fp[0] = 0xab;
/// assert_eq!(to_hex(&fp), "ab00000000000000000000000000000000000000");
/// ```
pub fn to_hex(fp: &Fingerprint) -> String {
    hex::encode(fp)
}

/// Buffers reused from one fingerprint to the next on a thread.
#[derive(Debug, Default)]
struct Buffers {
    /// The JSON text after the body.
    json: Vec<u8>,
    /// Somewhere to move a canonical URL that needs JSON escaping.
    url: Vec<u8>,
    /// Scratch space of the canonicaliser.
    scratch: Scratch,
}

impl Buffers {
    fn fingerprint(
        &mut self,
        method: &str,
        url: &Url,
        body: &[u8],
        keep_fragments: bool,
    ) -> Fingerprint {
        let mut hasher = Sha1::new();
        hasher.update(b"{\"body\": \"");
        // Hex needs no JSON escaping; stream it so a large body costs no
        // buffer of twice its size.
        let mut hex_buf = [0u8; 256];
        for chunk in body.chunks(hex_buf.len() / 2) {
            let hex_out = &mut hex_buf[..chunk.len() * 2];
            // Cannot fail: the output slice is exactly twice the input.
            if hex::encode_to_slice(chunk, hex_out).is_ok() {
                hasher.update(&*hex_out);
            }
        }

        let json = &mut self.json;
        json.clear();
        json.extend_from_slice(b"\", \"headers\": {}, \"method\": \"");
        if method
            .bytes()
            .any(|b| b.is_ascii_lowercase() || !b.is_ascii())
        {
            // Scrapy's Request stores str(method).upper(): full Unicode
            // upper-casing, which is what str::to_uppercase does too.
            push_json_str(method.to_uppercase().as_bytes(), json);
        } else {
            push_json_str(method.as_bytes(), json);
        }
        json.extend_from_slice(b"\", \"url\": \"");
        // Canonicalise straight into the JSON; the result is printable ASCII
        // in practice, and escaped after the fact if it is not.
        let url_start = json.len();
        canonicalize_into(url, keep_fragments, json, &mut self.scratch);
        if !is_plain_json(&json[url_start..]) {
            self.url.clear();
            self.url.extend_from_slice(&json[url_start..]);
            json.truncate(url_start);
            push_json_str(&self.url, json);
        }
        json.extend_from_slice(b"\"}");
        hasher.update(&*json);
        hasher.finalize().into()
    }
}

/// True if `s` goes into a JSON string unchanged: printable ASCII other
/// than `"` and `\`.
#[inline]
fn is_plain_json(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Append the inside of a JSON string literal for the UTF-8 text `s`,
/// escaped exactly as Python's `json.dumps` does with `ensure_ascii=True`:
/// printable ASCII as is except `"` and `\`, the usual short escapes, and
/// `\uXXXX` (lower-case hex, UTF-16 surrogate pairs beyond the BMP) for
/// everything else, DEL included.
fn push_json_str(s: &[u8], out: &mut Vec<u8>) {
    if is_plain_json(s) {
        out.extend_from_slice(s);
        return;
    }
    // Callers pass UTF-8 (a &str or ASCII), so nothing is lost here.
    for c in String::from_utf8_lossy(s).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            // Printable ASCII: one byte.
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u_escape(*unit, out);
                }
            }
        }
    }
}

/// Append `\uXXXX` with lower-case hex digits.
fn push_u_escape(unit: u16, out: &mut Vec<u8>) {
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX_LOWER[usize::from((unit >> shift) & 0xF)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference vectors from `vectors.py` (Scrapy 2.19.0, w3lib 2.5.0):
    /// (method, url, body, fingerprint, fingerprint with `keep_fragments`).
    const VECTORS: &[(&str, &str, &[u8], &str, &str)] = &[
        ("GET", "http://www.example.com/do?c=3&b=5&b=2&a=50", b"", "aa9f7e764042feef4578637f699d1c47157e93cf", "aa9f7e764042feef4578637f699d1c47157e93cf"),
        ("GET", "http://www.example.com/do?a=1&a=", b"", "7f19c50570e59ffbc25adb47366242a349316c63", "7f19c50570e59ffbc25adb47366242a349316c63"),
        ("GET", "http://www.example.com/do?a&b=2", b"", "2746a7caf9cd029d9a69e57dd2af89bd127d9f2b", "2746a7caf9cd029d9a69e57dd2af89bd127d9f2b"),
        ("GET", "http://www.example.com/do?b=&a", b"", "2cb539f02cd618b9e26ebebadc9a7114e5257dd6", "2cb539f02cd618b9e26ebebadc9a7114e5257dd6"),
        ("GET", "http://www.example.com/do?a=1&&b=2&", b"", "6f5a835633000f92f2320f5c35ec34aa5eef0cb0", "6f5a835633000f92f2320f5c35ec34aa5eef0cb0"),
        ("GET", "http://www.example.com/do?", b"", "4340f7f63c196e597f7c45e32859e39e8bc92e94", "4340f7f63c196e597f7c45e32859e39e8bc92e94"),
        ("GET", "http://www.example.com/do?&", b"", "4340f7f63c196e597f7c45e32859e39e8bc92e94", "4340f7f63c196e597f7c45e32859e39e8bc92e94"),
        ("GET", "http://www.example.com/?b=2&a=1&B=3&A=0", b"", "b96862190c5464d21e5ff060ad023912787fbd32", "b96862190c5464d21e5ff060ad023912787fbd32"),
        ("GET", "http://www.example.com/?a=2&a=10&a=1&a=", b"", "b07fd22a9d52fcc53da3de3593e3116db5534ee7", "b07fd22a9d52fcc53da3de3593e3116db5534ee7"),
        ("GET", "http://www.example.com/?q=a=b=c", b"", "4dee318d4b22661598fda641e595e20a06c2c080", "4dee318d4b22661598fda641e595e20a06c2c080"),
        ("GET", "http://www.example.com/?=x&=&x", b"", "aa906fcdddba58adbeceab54a590a0a07dea1a7e", "aa906fcdddba58adbeceab54a590a0a07dea1a7e"),
        ("GET", "http://www.example.com/?a[]=1&a[]=2&a%5B%5D=0", b"", "48a0d0b7d272468e17da2daeb326dc310c36db34", "48a0d0b7d272468e17da2daeb326dc310c36db34"),
        ("GET", "http://www.example.com/?a;b=1&c=2;d", b"", "e52bf2e29503e49cc65e7570f189a35c9e93e2b5", "e52bf2e29503e49cc65e7570f189a35c9e93e2b5"),
        ("GET", "http://www.example.com/?parameter2=x&parameter1=y&parameter=z&param=w&parameter1=a", b"", "e2ca03a177f07f8b6623c41a69dc954d56027635", "e2ca03a177f07f8b6623c41a69dc954d56027635"),
        ("GET", "http://www.example.com/?a%00=1&a=2&a%00%00=0&%00=3", b"", "366bed8aed04cb6be339b0a6234ff9f37824c464", "366bed8aed04cb6be339b0a6234ff9f37824c464"),
        ("GET", "http://www.example.com/%7euser/%7Eother/~x?x=%7e&y=~", b"", "09002708dac7f9b99a20b88185fba3cc48e5127e", "09002708dac7f9b99a20b88185fba3cc48e5127e"),
        ("GET", "http://www.example.com/a%2fb%2Fc/%3b%3F/%25/%2541/d", b"", "bacf48ca61dd466b253dd45b53290af1d119d36e", "bacf48ca61dd466b253dd45b53290af1d119d36e"),
        ("GET", "http://www.example.com/%41%42%c3%a9?q=%41%e9%E9", b"", "ac7895c81c6fa98d95b62af1b668be6efcf72ee3", "ac7895c81c6fa98d95b62af1b668be6efcf72ee3"),
        ("GET", "http://www.example.com/q?a=%2f%2F&b=%ZZ&c=%&d=%4", b"", "c8d373ec6d276127db5729b7f04f694919ee35f4", "c8d373ec6d276127db5729b7f04f694919ee35f4"),
        ("GET", "http://www.example.com/%", b"", "a48c3832a69186316fe86337c197989f227bbe6c", "a48c3832a69186316fe86337c197989f227bbe6c"),
        ("GET", "http://www.example.com/%zz/%4/%%41", b"", "07b51637a02b7f9246e9a8a065a49f4948dc74c8", "07b51637a02b7f9246e9a8a065a49f4948dc74c8"),
        ("GET", "http://www.example.com/a%23b%20c%3Dd%26e", b"", "a7f4e9e381585cb3e325f4955ee849d1c8c1281a", "a7f4e9e381585cb3e325f4955ee849d1c8c1281a"),
        ("GET", "http://www.example.com/a b/c+d?q=a b&r=a+b&s=a%20b&t=a%2Bb", b"", "13551e74e358a175ee67d7fdf9326cdb02e53dcb", "13551e74e358a175ee67d7fdf9326cdb02e53dcb"),
        ("GET", "https://example.com/search?q=rust+lang&page=2&sort=", b"", "a0dbf94c85766217a95c6e6e86ea5b43b07ea797", "a0dbf94c85766217a95c6e6e86ea5b43b07ea797"),
        ("GET", "http://www.example.com/path|pipe[x]{y}^z`w", b"", "a0c4b3893f6b38783bbcb603b3b4962a2831e152", "a0c4b3893f6b38783bbcb603b3b4962a2831e152"),
        ("GET", "http://www.example.com/\"quotes\"<>/it's", b"", "95fe06190a90d9129b94ab650210eac5ff1515be", "95fe06190a90d9129b94ab650210eac5ff1515be"),
        ("GET", "http://www.example.com/~user?x='y'&z=\"w\"", b"", "a9ce62d120687b973c2d8d590090ca7351855aba", "a9ce62d120687b973c2d8d590090ca7351855aba"),
        ("GET", "http://www.example.com/!$&'()*+,;=:@/x?k=!$'()*,:@/?", b"", "e0c2f578bddb67e4bb1af006ad22cbdeeac2c43e", "e0c2f578bddb67e4bb1af006ad22cbdeeac2c43e"),
        ("GET", "http://www.example.com/a\\b?c\\d", b"", "f45bcda2deff4ac5528c01e1e174fb2bc2c145dd", "f45bcda2deff4ac5528c01e1e174fb2bc2c145dd"),
        ("GET", "http://www.example.com/tab\there\n?x=\t1", b"", "377f948600ecda1fb928556d2bc1a43bce8047a4", "377f948600ecda1fb928556d2bc1a43bce8047a4"),
        ("GET", "  http://www.example.com/lead  ", b"", "9c51b8bc23e57441f9825a39cb04198dd4bb3a8f", "9c51b8bc23e57441f9825a39cb04198dd4bb3a8f"),
        ("GET", "http://www.example.com/r\u{e9}sum\u{e9}?q=caf\u{e9}", b"", "7fd4a49805d52ad99f07cc766e477c45b5ffabac", "7fd4a49805d52ad99f07cc766e477c45b5ffabac"),
        ("GET", "http://www.example.com/?q=%E2%82%AC&r=\u{20ac}", b"", "2300395bd40336e6466cb570796d6f85658a81f5", "2300395bd40336e6466cb570796d6f85658a81f5"),
        ("GET", "http://www.example.com/?emoji=\u{1f600}&b=%F0%9F%98%80", b"", "06b429a29b3d6eed78cb88bb1871d3d7d1f1777a", "06b429a29b3d6eed78cb88bb1871d3d7d1f1777a"),
        ("GET", "http://www.example.com/?a=%ff&b=%FE%fd", b"", "d3c8e95b11ca158928d65a966b50b4ab655241b4", "d3c8e95b11ca158928d65a966b50b4ab655241b4"),
        ("GET", "HTTP://WWW.EXAMPLE.COM/Path/Case?Key=Val", b"", "8993027c5542ffcf22f1634b8ecd7641f6e5bac9", "8993027c5542ffcf22f1634b8ecd7641f6e5bac9"),
        ("GET", "http://www.B\u{fc}cher.de/stra\u{df}e?\u{fc}=\u{f6}", b"", "b48b0e7101e957c513e4b1dad7355b4b50e04ad2", "b48b0e7101e957c513e4b1dad7355b4b50e04ad2"),
        ("GET", "http://xn--bcher-kva.de/", b"", "32112dcd379fc0e1f7f0cb1f4afc1152af55bb95", "32112dcd379fc0e1f7f0cb1f4afc1152af55bb95"),
        ("GET", "https://\u{4f8b}\u{3048}.\u{30c6}\u{30b9}\u{30c8}/\u{30d1}\u{30b9}?\u{30ad}\u{30fc}=\u{5024}", b"", "c33373c0cf85931dede4f2d8e9bd8150465edec7", "c33373c0cf85931dede4f2d8e9bd8150465edec7"),
        ("GET", "http://\u{2603}.net/", b"", "ca127a63fdb09d653a73372dcb640e3a187e77a1", "ca127a63fdb09d653a73372dcb640e3a187e77a1"),
        ("GET", "http://www.example.com:8080/", b"", "6c83aa1b30b34d2a9f4733bb728f12eb4b96edc3", "6c83aa1b30b34d2a9f4733bb728f12eb4b96edc3"),
        ("GET", "http://www.example.com:/path", b"", "4212577ead45e740580483906ace64a0833bae84", "4212577ead45e740580483906ace64a0833bae84"),
        ("GET", "https://www.example.com:8443/x?b=1&a=2", b"", "9cb918d803eedaf4b5f468d870c9f90c5090e533", "9cb918d803eedaf4b5f468d870c9f90c5090e533"),
        ("GET", "http://127.0.0.1:8000/admin", b"", "9044666eaeeddc032e4c6c727dcdaf576715ec21", "9044666eaeeddc032e4c6c727dcdaf576715ec21"),
        ("GET", "http://[::1]:8080/x", b"", "06e7052be7ff8ddf89d5f6fa8e1b59230099decd", "06e7052be7ff8ddf89d5f6fa8e1b59230099decd"),
        ("GET", "http://[2001:DB8:0:0:0:0:0:1]/", b"", "992a171cfcf238c5e1f9be20dd307f4581062d25", "992a171cfcf238c5e1f9be20dd307f4581062d25"),
        ("GET", "http://[2001:db8:0:0:1:0:0:1]/", b"", "fe9d3ccdf739daeff89785e0f5448ec385fe94fa", "fe9d3ccdf739daeff89785e0f5448ec385fe94fa"),
        ("GET", "http://user:p%40ss@www.example.com/", b"", "bbf5c6fe77a1ef8a14f4c87b1c5bddea2d6b0b7a", "bbf5c6fe77a1ef8a14f4c87b1c5bddea2d6b0b7a"),
        ("GET", "http://us er:p:w@www.example.com/", b"", "1cc7524afd64c5f8e495b6dfc76285fec9eed195", "1cc7524afd64c5f8e495b6dfc76285fec9eed195"),
        ("GET", "http://www.example.com", b"", "28fd680a059847ede1289d72f7a0e1c470f3d8d2", "28fd680a059847ede1289d72f7a0e1c470f3d8d2"),
        ("GET", "http://www.example.com?a=1", b"", "14554f90512355b8e35f968439e78b41c9b5975c", "14554f90512355b8e35f968439e78b41c9b5975c"),
        ("GET", "http://www.example.com/page#frag", b"", "7c12e40d482301550391b8aa0bc031d2af79bec5", "0f6d88827569efa52514ce75e02201fc774f8e84"),
        ("GET", "http://www.example.com/page?b=1&a=2#frag?x=1", b"", "6d7478f2e34cd997c2812c27aec62afe4e2a2d8b", "89530061830ed35b27a75a76a7419d7f3ff42393"),
        ("GET", "http://www.example.com/p#a b#c|d%7e[e]^", b"", "14499a312e32cda0ef6894bd2853d4b97b0a81b0", "4c58dc6887b6ea3d339b1ff29f893427f87e033c"),
        ("GET", "http://www.example.com/p#", b"", "14499a312e32cda0ef6894bd2853d4b97b0a81b0", "14499a312e32cda0ef6894bd2853d4b97b0a81b0"),
        ("GET", "http://www.example.com/#!ajax=1", b"", "28fd680a059847ede1289d72f7a0e1c470f3d8d2", "de116d2a9519c2f2fb34d342a6b8f58a8dbb0d01"),
        ("GET", "http://www.example.com/path;params?q=1", b"", "5a505ee12d40657ed75d4e79395558ec2f22af99", "5a505ee12d40657ed75d4e79395558ec2f22af99"),
        ("GET", "http://www.example.com/a;", b"", "a08cd8b568c5f9a78c33e20f55e871faef268213", "a08cd8b568c5f9a78c33e20f55e871faef268213"),
        ("GET", "http://www.example.com/a/;?q=1", b"", "2ac89699157d51abf2b362e23033df35c0548fae", "2ac89699157d51abf2b362e23033df35c0548fae"),
        ("GET", "http://www.example.com/a;b/c;d=e f|g%7e", b"", "a296cd817cc477d23cbf05daba0c5606c70c873e", "a296cd817cc477d23cbf05daba0c5606c70c873e"),
        ("GET", "http://www.example.com/a/./b/../c", b"", "cab10a15399d3eb59cf7951e8129a5036cc929d7", "cab10a15399d3eb59cf7951e8129a5036cc929d7"),
        ("GET", "http://www.example.com/a/%2e%2E/b/%2E/c", b"", "bce8806c9689af2e280e5663c4c816cfed9bdcdc", "bce8806c9689af2e280e5663c4c816cfed9bdcdc"),
        ("GET", "http://www.example.com/a/b/..;p", b"", "e3e147c07c17e3536db2d73353fe303085845518", "e3e147c07c17e3536db2d73353fe303085845518"),
        ("GET", "http://www.example.com/a/b/..", b"", "fcdb8cb8c9caf7a6b0e3eb34e0dd0c7eaac1fea3", "fcdb8cb8c9caf7a6b0e3eb34e0dd0c7eaac1fea3"),
        ("GET", "http://www.example.com/../../x", b"", "5c22c547ea7dcf0346899738fd57af2ca8703dcc", "5c22c547ea7dcf0346899738fd57af2ca8703dcc"),
        ("GET", "ftp://ftp.example.com/pub/file.txt;type=i", b"", "851dfc3477c2f2c1c47dd3a66bf9356059f72de1", "851dfc3477c2f2c1c47dd3a66bf9356059f72de1"),
        ("GET", "http://www.example.com//double//slash/", b"", "35fce7f42983a00762b2114bbd5b49bed8ac0e48", "35fce7f42983a00762b2114bbd5b49bed8ac0e48"),
        ("GET", "file:///tmp/some%20file.txt", b"", "33ef0d76ea3df3f63f0701559e3c8c9166c1740c", "33ef0d76ea3df3f63f0701559e3c8c9166c1740c"),
        ("GET", "file:///tmp/some file.txt", b"", "33ef0d76ea3df3f63f0701559e3c8c9166c1740c", "33ef0d76ea3df3f63f0701559e3c8c9166c1740c"),
        ("GET", "https://s3.amazonaws.com/bucket/key%2Bwith+plus", b"", "56bb82fcffb5f73b9791cfbddbbcb1c65f817a72", "56bb82fcffb5f73b9791cfbddbbcb1c65f817a72"),
        ("POST", "http://www.example.com/form", b"a=1&b=2", "cf030380e015d6dacffaa390a493560ecf7dbce4", "cf030380e015d6dacffaa390a493560ecf7dbce4"),
        ("post", "http://www.example.com/form?z=1&y=2", b"\x00\x01\xfe\xff binary", "cc5fcc60a30521efa4268cdbaa9f511eb03b68ca", "cc5fcc60a30521efa4268cdbaa9f511eb03b68ca"),
        ("PUT", "http://www.example.com/api/items/1", b"{\x22name\x22: \x22x\x22}", "b99c3238d010e8e6f2cea2a6d260e13f0955ec56", "b99c3238d010e8e6f2cea2a6d260e13f0955ec56"),
        ("HEAD", "http://www.example.com/", b"", "6a1fa990efc3cc80cfeb3d90b34c46ab6ef4c3f0", "6a1fa990efc3cc80cfeb3d90b34c46ab6ef4c3f0"),
        ("DELETE", "http://www.example.com/api/items/1", b"", "fc5f118f9dd8afeed8a202b72ef75f35ad6c030b", "fc5f118f9dd8afeed8a202b72ef75f35ad6c030b"),
        ("GET", "http://www.example.com/", b"body on a GET", "d8cba349b4e9b172b1a3165c67d399381903075a", "d8cba349b4e9b172b1a3165c67d399381903075a"),
        ("purge", "http://www.example.com/", b"", "5d0f4d8eb562eec3814b379f4ae8ae5fd2189919", "5d0f4d8eb562eec3814b379f4ae8ae5fd2189919"),
        ("GET", "https://shop.example.com/c/shoes?utm_source=news&utm_medium=email&color=red&size=42&page=3&sort=price_asc", b"", "a4a2db2563d16d9c269808276f57b9fe46a4f483", "a4a2db2563d16d9c269808276f57b9fe46a4f483"),
        ("GET", "http://www.example.com/?a=b%26c&d=e%3Df&g=h%2Bi", b"", "54fcb59770b200fb78b383d702558cb46632e531", "54fcb59770b200fb78b383d702558cb46632e531"),
        ("GET", "http://www.example.com/%E2%82%ac/%e2%82%AC", b"", "63c7f4f444bd9784c1eb10cf1ff5818738847328", "63c7f4f444bd9784c1eb10cf1ff5818738847328"),
        ("GET", "http://user@www.example.com/", b"", "a2b92ddb4c72c51bcf424d3943a8633e4df109df", "a2b92ddb4c72c51bcf424d3943a8633e4df109df"),
        ("GET", "s3://Bucket/Some%20Key?versionId=2&a=1", b"", "0a6693a8c517efd576466a3db533f79630b4a6e5", "0a6693a8c517efd576466a3db533f79630b4a6e5"),
        ("GET", "data:text/plain,hello world", b"", "6c3399f700504b42cfc992dbf55283bdba782ae5", "6c3399f700504b42cfc992dbf55283bdba782ae5"),
        ("GET", "data:,A%20brief%20note", b"", "75266238fa7bc3f53829a42d3148c227e9daca65", "75266238fa7bc3f53829a42d3148c227e9daca65"),
        ("GET", "about:blank", b"", "b817dfb28655b4d3a1b7241bd2487b6d3dd0ff3d", "b817dfb28655b4d3a1b7241bd2487b6d3dd0ff3d"),
        ("GET", "http://www.example.com/.well-known/./x/.hidden/..", b"", "24970886dd21a79c1459208f75f7aac37cf0d0c2", "24970886dd21a79c1459208f75f7aac37cf0d0c2"),
        ("purg\u{e9}", "http://www.example.com/", b"", "0be901a579274113ebca80c70944ed53e2bbbe7f", "0be901a579274113ebca80c70944ed53e2bbbe7f"),
        ("stra\u{df}e", "http://www.example.com/", b"", "2b6c24ff7077a1817d61215c37685a3824d94bac", "2b6c24ff7077a1817d61215c37685a3824d94bac"),
        ("M\u{1f600}\u{7f}", "http://www.example.com/", b"", "2e089dc7d189d182eb922071ccbca7e5fa5a3d30", "2e089dc7d189d182eb922071ccbca7e5fa5a3d30"),
        ("GET", "http://[::ffff:1.2.3.4]/", b"", "f4cff273c9ac9ad084208583b82417d457e932bd", "f4cff273c9ac9ad084208583b82417d457e932bd"),
    ];

    fn parse(input: &str) -> Url {
        match Url::parse(input) {
            Ok(url) => url,
            Err(e) => panic!("{input:?} does not parse: {e}"),
        }
    }

    /// Every reference vector hashes to the fingerprint Scrapy computes.
    #[test]
    fn matches_scrapy_vectors() {
        let mut failures = Vec::new();
        for &(method, input, body, expected, expected_with_fragment) in VECTORS {
            let url = parse(input);
            let got = to_hex(&fingerprint(method, &url, body));
            if got != expected {
                failures.push(format!("{method} {input:?}: got {got}, want {expected}"));
            }
            let got = to_hex(&fingerprint_with(method, &url, body, true));
            if got != expected_with_fragment {
                failures.push(format!(
                    "{method} {input:?} (keep_fragments): got {got}, want {expected_with_fragment}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// A body longer than the hex chunk (here 5120 bytes) hashes as Scrapy's.
    #[test]
    fn long_body_matches_scrapy() {
        // vectors.py: Request("http://www.example.com/big", body=bytes(range(256)) * 20)
        let body: Vec<u8> = (0..20).flat_map(|_| 0..=255u8).collect();
        let url = parse("http://www.example.com/big");
        assert_eq!(
            to_hex(&fingerprint("GET", &url, &body)),
            "4ae3daa00184a13120f5e0bf139427929daa7add"
        );
    }

    /// String escaping is byte-identical to Python's `json.dumps`.
    #[test]
    fn json_escaping_matches_python() {
        // python3 -c 'import json; print(json.dumps("a\"b\\c\n\r\t\b\f\x01\x1f\x7f \u00e9\u2028\U0001f600~"))'
        let mut out = Vec::new();
        push_json_str(
            "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} \u{e9}\u{2028}\u{1f600}~".as_bytes(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"a\"b\\c\n\r\t\b\f\u0001\u001f\u007f \u00e9\u2028\ud83d\ude00~"#
        );
    }

    /// `to_hex` is lower-case and 40 characters long.
    #[test]
    fn hex_is_lower_case() {
        let fp = fingerprint("GET", &parse("http://www.example.com/"), b"");
        let hex = to_hex(&fp);
        assert_eq!(hex.len(), 40);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(hex::decode(&hex).ok().as_deref(), Some(&fp[..]));
    }

    /// Rough cost per fingerprint; run with
    /// `cargo test --release -- --ignored --nocapture timing`.
    #[test]
    #[ignore = "timing, not a check"]
    fn timing() {
        use std::hint::black_box;
        use std::time::Instant;
        let cases = [
            ("simple", parse("https://www.example.com/products/shoes/item-123.html"), &b""[..]),
            (
                "query",
                parse("https://shop.example.com/c/shoes?utm_source=news&utm_medium=email&color=red&size=42&page=3&sort=price_asc"),
                &b""[..],
            ),
            ("post", parse("http://www.example.com/form?z=1&y=2"), &b"username=alice&password=secret&remember=on"[..]),
        ];
        const N: u32 = 200_000;
        let mut buffers = Buffers::default();
        for (name, url, body) in &cases {
            for _ in 0..1000 {
                black_box(fingerprint("GET", black_box(url), body));
            }
            let start = Instant::now();
            for _ in 0..N {
                black_box(fingerprint(
                    black_box("GET"),
                    black_box(url),
                    black_box(body),
                ));
            }
            let per_call = start.elapsed().as_nanos() / u128::from(N);
            let start = Instant::now();
            for _ in 0..N {
                black_box(crate::http::canonical::canonicalize_url(
                    black_box(url),
                    false,
                ));
            }
            let canon = start.elapsed().as_nanos() / u128::from(N);
            // The same JSON, hashed on its own: the floor set by SHA-1.
            buffers.fingerprint("GET", url, body, false);
            let json_len = buffers.json.len() + 10 + 2 * body.len();
            let text = vec![b'x'; json_len];
            let start = Instant::now();
            for _ in 0..N {
                black_box(Sha1::digest(black_box(&text)));
            }
            let sha = start.elapsed().as_nanos() / u128::from(N);
            println!(
                "{name:>7}: {per_call} ns/fingerprint, {canon} ns/canonicalize_url, \
                 {sha} ns for SHA-1 of the {json_len}-byte JSON alone"
            );
        }
    }
}
