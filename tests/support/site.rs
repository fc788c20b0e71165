//! The content a [`FixtureServer`](super::server::FixtureServer) serves, and what a crawler
//! is expected to find in it.
//!
//! A [`Site`] is either a generated web of pages ([`Site::Random`]) or a fixed map of
//! responses ([`Site::Static`]). Both can tell, without any network traffic, which page paths
//! a correct crawler reaches when it starts from `/p/0` and follows same-site links
//! ([`Site::reachable`]), so a test can compare that set with what the crawler really fetched
//! (see `FixtureServer::log`). Generation is seeded and deterministic: the same `Site` value
//! always yields the same pages, in every test run and on every machine.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a fixture server serves (besides its built-in routes such as `/status/{code}`).
#[derive(Clone, Debug)]
pub enum Site {
    /// A generated site: `pages` pages at `/p/{i}` (i in `0..pages`), every page reachable from
    /// `/p/0`. Each page has a `<title>Page {i}</title>`, `links_per_page` links to other pages
    /// chosen at random (seeded, deterministic), written in several equivalent forms (`/p/j`,
    /// `j`, `./j`, `../p/j`, an absolute `http://host/p/j`, and `/p/j#frag`), plus links that a
    /// crawler must not turn into new requests: fragments of the page itself, a duplicate of
    /// an earlier link, and one offsite link to `http://example.invalid/...`.
    ///
    /// Every link resolves to a canonical `/p/{j}` URL once its fragment is dropped, so the set
    /// of distinct URLs a crawler should fetch is exactly [`Site::reachable`].
    Random {
        /// Number of pages; `/p/0` .. `/p/{pages-1}`.
        pages: usize,
        /// Distinct other pages each page links to (fewer if the site is smaller than that;
        /// a page may need more to keep the whole site reachable).
        links_per_page: usize,
        /// Seed of the link graph and of the filler text.
        seed: u64,
    },
    /// A fixed map from path (optionally with `?query`) to `(status, content-type, body)`.
    /// Requests are matched on path and query first, then on the path alone; entries take
    /// precedence over the built-in routes.
    Static(HashMap<String, (u16, String, Vec<u8>)>),
}

impl Site {
    /// A [`Site::Random`] with the given shape.
    pub fn random(pages: usize, links_per_page: usize, seed: u64) -> Site {
        Site::Random {
            pages,
            links_per_page,
            seed,
        }
    }

    /// A [`Site::Static`] of `200 text/html; charset=utf-8` pages, from `(path, html)` pairs.
    pub fn html_pages<'a>(pages: impl IntoIterator<Item = (&'a str, &'a str)>) -> Site {
        Site::Static(
            pages
                .into_iter()
                .map(|(path, html)| {
                    (
                        path.to_string(),
                        (200, HTML_UTF8.to_string(), html.as_bytes().to_vec()),
                    )
                })
                .collect(),
        )
    }

    /// The set of page paths reachable from `/p/0` by following the site's same-site links
    /// (fragments dropped, duplicates merged, offsite links ignored): what a correct crawler
    /// started at `/p/0` with no depth or count limit fetches, `/p/0` included.
    pub fn reachable(&self) -> BTreeSet<String> {
        self.reachable_from("/p/0")
    }

    /// Like [`Site::reachable`], from any start path. For a [`Site::Static`] the links are
    /// found by scanning `href` attributes of its `text/html` bodies; a link to a path the map
    /// lacks is included (a crawler fetches it and gets a 404) but not followed further.
    pub fn reachable_from(&self, start: &str) -> BTreeSet<String> {
        self.depths_from(start).into_keys().collect()
    }

    /// Each page reachable from `/p/0`, with its link distance from `/p/0` (0 for `/p/0`
    /// itself, 1 for the pages it links to, ...). A breadth-first crawler with a depth limit
    /// of `d` fetches exactly the pages at distance `<= d`.
    pub fn depths(&self) -> BTreeMap<String, usize> {
        self.depths_from("/p/0")
    }

    /// Like [`Site::depths`], from any start path.
    pub fn depths_from(&self, start: &str) -> BTreeMap<String, usize> {
        let prepared = self.clone().prepare();
        let mut depths = BTreeMap::new();
        let mut queue = VecDeque::new();
        depths.insert(start.to_string(), 0usize);
        queue.push_back(start.to_string());
        while let Some(path) = queue.pop_front() {
            let depth = depths[&path];
            for next in prepared.links_of(&path) {
                if !depths.contains_key(&next) {
                    depths.insert(next.clone(), depth + 1);
                    queue.push_back(next);
                }
            }
        }
        depths
    }

    /// Precomputes what serving needs (the link graph of a generated site), once per server
    /// rather than once per request.
    pub fn prepare(self) -> PreparedSite {
        match self {
            Site::Random {
                pages,
                links_per_page,
                seed,
            } => PreparedSite::Random {
                graph: random_graph(pages, links_per_page, seed),
                seed,
            },
            Site::Static(map) => PreparedSite::Static(map),
        }
    }
}

/// Content type of every generated page.
const HTML_UTF8: &str = "text/html; charset=utf-8";

/// A [`Site`] ready to answer requests.
#[derive(Clone, Debug)]
pub enum PreparedSite {
    /// A generated site: `graph[i]` lists the pages `/p/{i}` links to, in link order.
    Random {
        /// Outgoing links of each page.
        graph: Vec<Vec<usize>>,
        /// Seed of the filler text.
        seed: u64,
    },
    /// A fixed map, as in [`Site::Static`].
    Static(HashMap<String, (u16, String, Vec<u8>)>),
}

/// One response of a site: status, content type and body.
pub type SiteResponse = (u16, String, Vec<u8>);

impl PreparedSite {
    /// The response for `path` (without query) and `query` (without `?`, possibly empty), or
    /// `None` if the site has no such page. `host` is the request's `Host` header, used to
    /// write absolute links back to the same server.
    pub fn respond(&self, path: &str, query: &str, host: Option<&str>) -> Option<SiteResponse> {
        match self {
            PreparedSite::Random { graph, seed } => {
                // Only the canonical form is a page: `/p/3?x=1` or `/p/03` would be a different
                // URL to a crawler, so they must not quietly serve the same content.
                let index = parse_page_path(path)?;
                if !query.is_empty() || index >= graph.len() {
                    return None;
                }
                let body = random_page(index, &graph[index], *seed, host);
                Some((200, HTML_UTF8.to_string(), body.into_bytes()))
            }
            PreparedSite::Static(map) => {
                let full = if query.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{query}")
                };
                map.get(&full).or_else(|| map.get(path)).cloned()
            }
        }
    }

    /// The same-site paths (with query, without fragment) the page at `path` links to.
    fn links_of(&self, path: &str) -> Vec<String> {
        match self {
            PreparedSite::Random { graph, .. } => match parse_page_path(path) {
                Some(i) if i < graph.len() => graph[i].iter().map(|j| format!("/p/{j}")).collect(),
                _ => Vec::new(),
            },
            PreparedSite::Static(map) => {
                let Some((_, content_type, body)) = map.get(path) else {
                    return Vec::new();
                };
                if !content_type.starts_with("text/html") {
                    return Vec::new();
                }
                extract_hrefs(&String::from_utf8_lossy(body))
                    .iter()
                    .filter_map(|href| resolve_same_site(path, href))
                    .collect()
            }
        }
    }
}

/// `/p/{i}` with `i` written canonically (no sign, no leading zeros) → `i`.
fn parse_page_path(path: &str) -> Option<usize> {
    let digits = path.strip_prefix("/p/")?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical {
        digits.parse().ok()
    } else {
        None
    }
}

/// The link graph of a generated site. A random tree (each page `i > 0` gets a parent among
/// the pages before it) keeps every page reachable from page 0 while giving the site a
/// realistic, logarithmic depth; random extra links then bring each page up to
/// `links_per_page` distinct targets, which creates the cycles and converging paths a
/// crawler's duplicate filter has to cope with.
fn random_graph(pages: usize, links_per_page: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut graph: Vec<Vec<usize>> = vec![Vec::new(); pages];
    for child in 1..pages {
        let parent = rng.gen_range(0..child);
        graph[parent].push(child);
    }
    // A page can link to at most every other page.
    let wanted = links_per_page.min(pages.saturating_sub(1));
    for (page, links) in graph.iter_mut().enumerate() {
        while links.len() < wanted {
            let target = rng.gen_range(0..pages);
            if target != page && !links.contains(&target) {
                links.push(target);
            }
        }
        // Interleave tree and random links so that link order says nothing about structure.
        for k in (1..links.len()).rev() {
            let other = rng.gen_range(0..=k);
            links.swap(k, other);
        }
    }
    graph
}

/// Words for the filler paragraphs that bring a generated page to a realistic size.
const FILLER_WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "spider",
    "crawler",
    "web",
    "silk",
    "thread",
];

/// Roughly how many bytes a generated page should have.
const TARGET_PAGE_BYTES: usize = 3000;

/// Deterministic filler text of about `bytes` bytes.
fn filler(rng: &mut StdRng, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 16);
    while text.len() < bytes {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(FILLER_WORDS[rng.gen_range(0..FILLER_WORDS.len())]);
    }
    text
}

/// The HTML of generated page `index`, linking to `links`.
fn random_page(index: usize, links: &[usize], seed: u64, host: Option<&str>) -> String {
    use std::fmt::Write as _;

    // Separate stream per page so a page's filler does not depend on which pages were
    // rendered before it.
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));

    let mut list = String::new();
    for (k, &target) in links.iter().enumerate() {
        let href = match (k % 6, host) {
            (0, _) => format!("/p/{target}"),
            (1, _) => format!("{target}"),
            (2, _) => format!("../p/{target}"),
            (3, _) => format!("./{target}"),
            (4, Some(host)) => format!("http://{host}/p/{target}"),
            (4, None) => format!("/p/{target}"),
            _ => format!("/p/{target}#section-{k}"),
        };
        // `write!` to a String cannot fail.
        let _ = writeln!(list, "<li><a href=\"{href}\">Page {target}</a></li>");
    }

    // Links that must not create new requests: the page itself via fragments, and repeats of
    // a link already seen (in another form and with a fragment).
    let mut extra = format!(
        "<a href=\"#top\">Back to top</a> | <a href=\"/p/{index}#comments\">Comments</a> | \
         <a href=\"{index}\">Reload</a>"
    );
    if let Some(first) = links.first() {
        let _ = write!(
            extra,
            " | <a href=\"/p/{first}\">Page {first} again</a> | \
             <a href=\"../p/{first}#again\">and again</a>"
        );
    }

    let head = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Page {index}</title>\n</head>\n<body>\n<h1 id=\"top\">Page {index}</h1>\n"
    );
    let tail = format!(
        "<ul class=\"links\">\n{list}</ul>\n<p class=\"extra\">{extra}</p>\n\
         <p class=\"offsite\"><a href=\"http://example.invalid/p/{index}\">Elsewhere</a></p>\n\
         </body>\n</html>\n"
    );
    let room = TARGET_PAGE_BYTES.saturating_sub(head.len() + tail.len() + 40);
    let first = filler(&mut rng, room.max(400) / 2);
    let second = filler(&mut rng, room.max(400) / 2);
    format!("{head}<p>{first}</p>\n<p>{second}</p>\n{tail}")
}

/// The values of `href="..."` / `href='...'` attributes in `html`, with `&amp;` decoded.
/// A scanner rather than a parser: enough for the hand-written pages of static sites.
fn extract_hrefs(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut hrefs = Vec::new();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("href=") {
        let start = from + pos + "href=".len();
        from = start;
        let Some(quote) = html[start..].chars().next() else {
            break;
        };
        if quote != '"' && quote != '\'' {
            continue;
        }
        if let Some(len) = html[start + 1..].find(quote) {
            let value = &html[start + 1..start + 1 + len];
            hrefs.push(value.trim().replace("&amp;", "&"));
            from = start + 1 + len;
        }
    }
    hrefs
}

/// Resolves `href` against the page at `base` (a path) as a browser would, returning the
/// same-site path (with query, without fragment), or `None` for pure fragments and for links
/// with a scheme or authority (a static map has no host of its own, so those count as
/// offsite). This is what [`Site::reachable_from`] follows on a [`Site::Static`].
pub fn resolve_same_site(base: &str, href: &str) -> Option<String> {
    let href = href.split('#').next().unwrap_or_default();
    if href.is_empty() || href.starts_with("//") {
        return None;
    }
    // Anything with a scheme (`http:`, `mailto:`, ...) points elsewhere as far as a static
    // map is concerned: it has no host of its own.
    if let Some(colon) = href.find(':') {
        if !href[..colon].contains(['/', '?']) {
            return None;
        }
    }
    let (href_path, query) = match href.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (href, None),
    };
    let base_path = base.split('?').next().unwrap_or_default();
    let joined = if href_path.is_empty() {
        base_path.to_string()
    } else if href_path.starts_with('/') {
        href_path.to_string()
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{href_path}")
    };
    let mut path = remove_dot_segments(&joined);
    if let Some(query) = query {
        path.push('?');
        path.push_str(query);
    }
    Some(path)
}

/// RFC 3986 dot-segment removal on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}
