//! Issue 12: property tests (proptest) for every parser of network or user input —
//! HTML, CSS queries, XPath, URLs and hrefs, `Location` headers, meta refresh, body
//! decoding, `-s KEY=VALUE` settings — asserting no panic and bounded time on
//! arbitrary input. The time bound is generous (seconds for inputs of a few KB): it
//! catches runaway (quadratic, exponential, endless) behaviour, not slowness.

use std::time::{Duration, Instant};

use arachne::http::{HeaderValue, Request, Response};
use arachne::selector::tree::{parse_html, HtmlLimits};
use arachne::selector::{Css, Html};
use arachne::settings::Settings;
use proptest::prelude::*;

const BOUND: Duration = Duration::from_secs(5);

/// Characters HTML, CSS and XPath give meaning to, plus some that break things.
const MARKUP: &str = "<>/=\"' \n\t&;#![]()-:.,*@|$^~+_abcdivspanp123\u{0}\u{fffd}é中";

fn markup(max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = MARKUP.chars().collect();
    proptest::collection::vec(proptest::sample::select(chars), 0..max)
        .prop_map(|v| v.into_iter().collect())
}

const PAGE: &str = r#"<html><head><title>T</title></head><body>
<div class="a b" id="x"><p>one <b>two</b></p><a href="/1">1</a><a href="http://h/2">2</a></div>
<ul><li>a</li><li class="b">b</li></ul><!-- c --><table><tr><td>t</td></tr></table>
</body></html>"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text parses as HTML within its limits, in bounded time.
    #[test]
    fn html_parses_anything(text in markup(4000)) {
        let started = Instant::now();
        let limits = HtmlLimits { max_open_elements: 64, max_nodes: 2000, ..HtmlLimits::default() };
        let parsed = parse_html(&text, &limits);
        prop_assert!(parsed.document.nodes.len() <= 2001);
        prop_assert!(started.elapsed() < BOUND);
    }

    /// Arbitrary bytes (not just UTF-8) through a response: decoding and parsing.
    #[test]
    fn response_bodies(body in proptest::collection::vec(any::<u8>(), 0..4000), ct in "[ -~]{0,60}") {
        let started = Instant::now();
        let mut response = Response::new(Request::get("http://127.0.0.1/").unwrap(), 200, body.into());
        if let Ok(v) = HeaderValue::from_str(&ct) {
            response.headers.insert(arachne::http::HeaderName::from_static("content-type"), v);
        }
        let _ = response.text();
        let _ = response.css("a::attr(href)").map(|l| l.getall());
        let _ = response.follow_all_css("a::attr(href)");
        let _ = arachne::middleware::metarefresh::response_meta_refresh(&response, &[]);
        prop_assert!(started.elapsed() < BOUND);
    }

    /// Any CSS query parses or is refused with an error; a parsed one runs.
    #[test]
    fn css_queries(query in markup(80)) {
        let html = Html::parse(PAGE);
        let started = Instant::now();
        if let Ok(css) = Css::parse(&query) {
            let found = css.select(&html);
            let _ = found.getall();
            let _ = found.css(&query).map(|l| l.len());
        }
        prop_assert!(started.elapsed() < BOUND);
    }

    /// Any XPath expression parses or is refused; a parsed one evaluates or errors.
    #[test]
    fn xpath_expressions(expr in markup(80)) {
        let html = Html::parse(PAGE);
        let started = Instant::now();
        if let Ok(found) = html.xpath(&expr) {
            let _ = found.getall();
            for sel in found.iter().take(5) {
                let _ = sel.xpath(&expr).map(|l| l.len());
            }
        }
        prop_assert!(started.elapsed() < BOUND);
    }

    /// XPath built from real pieces, so more of them parse and evaluate.
    #[test]
    fn xpath_from_pieces(pieces in proptest::collection::vec(proptest::sample::select(vec![
        "//", "/", "..", ".", "*", "a", "div", "@href", "@*", "text()", "node()", "[", "]",
        "1", "last()", "position()", "count(", ")", "contains(", "'x'", ",", "=", "!=", "<",
        " and ", " or ", "|", "following::", "preceding::", "ancestor::", "string(",
        "normalize-space(", "substring(", "-", "+", " div ", " mod ",
    ]), 0..16)) {
        let expr: String = pieces.concat();
        let html = Html::parse(PAGE);
        let started = Instant::now();
        if let Ok(found) = html.xpath(&expr) {
            let _ = found.getall();
        }
        prop_assert!(started.elapsed() < BOUND);
    }

    /// Any string as a start URL, an href on a page or a `Location` header.
    #[test]
    fn urls_and_hrefs(url in "[ -~]{0,120}", href in markup(120), location in proptest::collection::vec(any::<u8>(), 0..200)) {
        let started = Instant::now();
        if let Ok(request) = Request::get(url.as_str()) {
            let _ = request.fingerprint();
            let _ = arachne::http::canonical::canonicalize_url(&request.url, false);
        }
        let base = Request::get("http://127.0.0.1/a/b?c=d").unwrap();
        let page = Response::new(base.clone(), 200, PAGE.into());
        let _ = page.follow(&href);
        let _ = page.urljoin(&href);
        let _ = arachne::middleware::redirect::location_url(&base.url, &location);
        prop_assert!(started.elapsed() < BOUND);
    }

    /// Any robots.txt body (bytes, or lines built from its own directives) parses, and
    /// asking it about any path and user agent answers without a panic, in bounded time.
    #[test]
    fn robots_txt(
        raw in proptest::collection::vec(any::<u8>(), 0..3000),
        lines in proptest::collection::vec(
            (proptest::sample::select(vec![
                "User-agent", "Disallow", "Allow", "Crawl-delay", "Sitemap", "Request-rate", "#", "",
            ]), "[ -~]{0,40}"),
            0..60,
        ),
        path in "[ -~]{0,60}",
        agent in "[ -~]{0,30}",
    ) {
        use arachne::middleware::robotstxt::{best_agent_token, user_agent_tokens, RobotsRules};
        let started = Instant::now();
        let built: String = lines.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        for body in [raw.as_slice(), built.as_bytes()] {
            let rules = RobotsRules::parse(body);
            let _ = rules.allowed(&format!("http://127.0.0.1/{path}"), &agent);
            let tokens = user_agent_tokens(body);
            let _ = best_agent_token(&tokens, &agent);
        }
        prop_assert!(started.elapsed() < BOUND);
    }

    /// Any `-s` argument is set or refused with an error; validation never panics.
    #[test]
    fn settings_strings(pair in "[ -~]{0,80}", value in "[ -~]{0,40}") {
        let mut s = Settings::new();
        let _ = s.set_cli(&pair);
        let _ = s.set_cli(&format!("DOWNLOAD_DELAY={value}"));
        let _ = s.set_cli(&format!("ITEM_PIPELINES={value}"));
        let _ = s.validate();
        let _ = s.get_component_orders("DOWNLOADER_MIDDLEWARES");
    }
}
