//! Differential test of the selectors against parsel (what Scrapy uses): 66+ CSS and
//! 66+ XPath queries of the kind Scrapy users write, run over 40 real pages of the
//! Python documentation (Debian's `python3.11-doc`), must give the same `getall()` as
//! parsel does on the same text. parsel's answers come from `tests/parsel/expected.py`,
//! run with the venv that `.ci/install-deps` makes (see `tests/parsel/pyenv.rs`).
//!
//! Where the two legitimately differ (lxml's HTML 4 parser builds a different tree from
//! html5ever's HTML5 one), the difference is listed in [`KNOWN`] with the reason; any
//! other difference fails the test with the page, the query and the first differing
//! result, and so does a [`KNOWN`] entry that no longer matches any difference (so the
//! table cannot go stale). Queries whose results are elements are few, because our outer
//! HTML and lxml's serialisation are not meant to agree byte for byte; most end in
//! `::text`, `::attr()`, `text()`, `@attr` or compute a value.

#[path = "parsel/pyenv.rs"]
mod pyenv;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use arachne::selector::Html;
use serde_json::Value;

/// Pages always included (index pages and a few large, typical ones), besides every
/// 16th page of the sorted list (see [`pages`]).
const EXTRA_PAGES: &[&str] = &[
    "index.html",
    "py-modindex.html",
    "glossary.html",
    "library/functions.html",
    "library/functools.html",
    "reference/datamodel.html",
    "tutorial/classes.html",
    "c-api/intro.html",
    "genindex-A.html",
];

/// CSS queries, as Scrapy users write them against pages like these.
const CSS: &[&str] = &[
    "title::text",
    "h1::text",
    "h1 *::text",
    "h2::text",
    "h3::text",
    "h1 a.headerlink::attr(href)",
    "a::attr(href)",
    "a.reference.internal::attr(href)",
    "a.reference.external::attr(href)",
    "a[href^='http']::attr(href)",
    "a[href$='.html']::attr(href)",
    "a[href*='#']::attr(href)",
    "a[title]::attr(title)",
    "a[rel~=nofollow]::attr(href)",
    "link[rel=stylesheet]::attr(href)",
    "link[rel='next']::attr(href)",
    "link[rel=prev]::attr(title)",
    "script[src]::attr(src)",
    "meta[charset]::attr(charset)",
    "meta[name=viewport]::attr(content)",
    "html::attr(lang)",
    ":root::attr(lang)",
    "[lang|=en]::attr(lang)",
    "section::attr(id)",
    "section > h2::text",
    "section > h2 > a.headerlink::attr(title)",
    "section section > h3 *::text",
    "dl.py.function > dt::attr(id)",
    "dl.py.class > dt::attr(id)",
    "dl.py.method dt.sig span.sig-name span.pre::text",
    "dt.sig-object span.sig-name.descname span::text",
    "dl.function > dt::attr(id)",
    "em.sig-param span.n span::text",
    "span.sig-paren::text",
    "dt em.property *::text",
    "dl.field-list > dt::text",
    "dd > p:nth-of-type(2)::text",
    "div.related li.right a::text",
    "div.related a[accesskey]::attr(accesskey)",
    "div.related li.nav-item a::attr(href)",
    "li.nav-item-this a *::text",
    "p.topless a::attr(href)",
    "div.sphinxsidebar h3 a::text",
    "ul.this-page-menu a::attr(href)",
    "div.footer a::attr(href)",
    "div.footer::text",
    "li.toctree-l1 > a::attr(href)",
    "li:last-child > a::attr(href)",
    "li:only-child > a::attr(href)",
    "ul.simple li:nth-child(2n+1) p::text",
    "ul.simple > li:nth-last-child(1) *::text",
    "div.highlight pre span.gp::text",
    "div.highlight-python3 pre span.k::text",
    "div.highlight pre > span:empty",
    "code.xref.py-func span.pre::text",
    "code.docutils.literal span.pre::text",
    "div.versionadded p span.versionmodified::text",
    "div.versionchanged span.versionmodified.changed::text",
    "div.admonition p.admonition-title::text",
    "div.admonition.note > p:last-child::text",
    "table.docutils th *::text",
    "table.docutils tr.row-odd td:first-child p *::text",
    "span.target::attr(id)",
    "span[id^='index-']::attr(id)",
    "input[type=hidden]::attr(name)",
    "form.inline-search::attr(action)",
    "input[name=q]::attr(placeholder)",
    "img::attr(src)",
    "img[alt]::attr(alt)",
    "div#sidebarbutton span::text",
    "*::attr(role)",
    "h1 + p a::attr(href)",
    "hr.docutils ~ p > strong::text",
    "a.pep strong::text",
    "a:not(.reference)::attr(href)",
    "li:not(:last-child) > a::text",
    "div.footer br",
    "h1 code",
    "svg::attr(class)",
    "table.indextable td a::text",
    "table.indextable > tr > td a::text",
    "table.contentstable > tr > td > p > a::attr(href)",
    "head::text",
    "body > *::attr(class)",
    "p::text",
    "pre *::text",
];

/// XPath queries, as Scrapy users write them against pages like these.
const XPATH: &[&str] = &[
    "//title/text()",
    "string(//title)",
    "normalize-space(//h1)",
    "//h1//text()",
    "//h2/text()",
    "//h3/text()",
    "//a/@href",
    "//a[@class='reference internal']/@href",
    "//a[contains(@class,'external')]/@href",
    "//a[starts-with(@href,'http')]/@href",
    "//a[starts-with(@href,'#')]/@href",
    "//a[@rel='nofollow']/@href",
    "//link[@rel='stylesheet']/@href",
    "//link[@rel='next']/@href",
    "//meta[@name='viewport']/@content",
    "/html/@lang",
    "//section/@id",
    "//section/h2/text()",
    "//section[h2]/@id",
    "//section[@id][descendant::dl]/@id",
    "//h2/ancestor::section[1]/@id",
    "//dl[@class='py function']/dt/@id",
    "//dl[@class='py class']/dt/@id",
    "//dl[contains(concat(' ', normalize-space(@class), ' '), ' method ')]/dt/@id",
    "//dt[@id]/span[@class='sig-name descname']/span/text()",
    "//dl[@class='c function']/dt/@id",
    "//dt[@id][preceding-sibling::dt]/@id",
    "//dt[@id]/following-sibling::dd[1]/p[1]/text()",
    "//em[@class='sig-param']/span[@class='n']/span/text()",
    "//dl[@class='field-list simple']/dt//text()",
    "//div[@class='related']//li[@class='right']/a/text()",
    "//div[@class='related'][1]//a[@accesskey]/@accesskey",
    "//li[contains(@class,'nav-item')]/a/@href",
    "//p[@class='topless']/a/@href",
    "//ul[@class='this-page-menu']//a/@href",
    "//div[@class='footer']/a/@href",
    "//div[@class='footer']/text()",
    "normalize-space(//div[@class='footer'])",
    "count(//a)",
    "count(//dl[@class='py function'])",
    "count(//h2) + count(//h3)",
    "count(//li) div count(//ul)",
    "boolean(//dl[@class='py class'])",
    "not(//table)",
    "//h1/a[@class='headerlink']/@href",
    "//a[@class='headerlink'][parent::h2]/@href",
    "//a[position() <= 3]/@href",
    "(//a)[1]/@href",
    "(//a)[last()]/@href",
    "//ul/li[last()]/a/@href",
    "//ul/li[1]/a/text()",
    "//li[position() mod 2 = 0]/a/@href",
    "//h2/following-sibling::p[1]//text()",
    "//h2/preceding::h1[1]/text()",
    "//span[@class='versionmodified added']/text()",
    "//div[@class='versionchanged']/p/span/text()",
    "//code[contains(@class,'py-func')]/span/text()",
    "//a[code]/@title",
    "//span[@class='pre'][starts-with(., '__')]/text()",
    "//pre/span[@class='gp']/text()",
    "//div[@class='highlight']/pre/text()",
    "//p[@class='admonition-title']/text()",
    "//div[contains(@class,'admonition')]/p[last()]//text()",
    "//table//th//text()",
    "//tr[@class='row-odd']/td[1]//text()",
    "//table[contains(@class,'indextable')]/tr/td//a/text()",
    "//table[contains(@class,'indextable')]//td//a/text()",
    "//img/@src | //img/@alt",
    "//input[@type='hidden']/@name",
    "//form/@action",
    "//*[@role]/@role",
    "//*[@id='sidebarbutton']/span/text()",
    "//span[@id and starts-with(@id,'index-')]/@id",
    "//h1/text() | //h2/text()",
    "//link/@href | //script/@src",
    "//li[@class='toctree-l1']/a/@href",
    "//a[string-length(@href) > 40]/@href",
    "//a[substring(@href, string-length(@href) - 4) = '.html']/@href",
    "substring-before(//title, ' — ')",
    "substring-after(//title, '— ')",
    "translate(//h1, 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')",
    "concat(//meta/@charset, '|', /html/@lang)",
    "//a[.='next']/@href",
    "//a[normalize-space()='Report a Bug']/@href",
    "//a[text()='index']/@title",
    "//body/div[last()]/@class",
    "//*[self::h2 or self::h3]/text()",
    "//text()[contains(., 'Python Software Foundation')]",
    "//dd/p[position()=1 and position()=last()]/text()",
    "//hr",
    "//span[@class='sig-paren']",
    "//svg/@class",
    "//head/text()",
    "//body/text()",
    "count(//text())",
    "//comment()",
    "string(//pre)",
    "//p//text()",
    "//*[@class='highlight']//text()",
    "name(//svg/*)",
    "//input/@*",
    "//a/@*[name()='accesskey']",
    "//@id[starts-with(., 'module-')]",
];

/// Which query language a result belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lang {
    Css,
    XPath,
}

impl Lang {
    fn key(self) -> &'static str {
        match self {
            Lang::Css => "css",
            Lang::XPath => "xpath",
        }
    }
}

/// A difference from parsel that is expected, with the reason.
struct Known {
    lang: Lang,
    query: &'static str,
    /// The pages it occurs on (`None`: wherever it occurs).
    pages: Option<&'static [&'static str]>,
    /// When set, the difference is excused only if Arachne's answer to this query
    /// equals parsel's answer to `query` on that page: the proof that the difference
    /// is the one the reason describes and nothing else.
    ours_equivalent: Option<&'static str>,
    reason: &'static str,
}

/// html5ever (like every HTML5 parser and browser) puts a `<tr>` that is a direct child
/// of `<table>` into an implied `<tbody>`; lxml's HTML 4 parser (libxml2) keeps it a
/// child of `<table>`. Sphinx writes the general index and the front page's tables
/// without `<tbody>`, so `table > tr` finds rows in parsel only and `table > tbody >
/// tr` in Arachne only. A Scrapy user writing for real pages meets the same split
/// between browser dev-tools paths and lxml's; queries with `//` or a descendant
/// combinator agree (see `table.indextable td a::text`).
const TBODY: &str = "html5ever inserts the implied <tbody> between <table> and <tr>, lxml does not";

/// HTML5 (§13.2.6.4.7, "in body", start tag `pre`) drops a newline right after
/// `<pre>`; libxml2 keeps it as text. Sphinx writes `<pre>` followed by a newline for
/// grammar blocks and some examples.
const PRE_NEWLINE: &str = "html5ever drops the newline right after <pre> (HTML5), lxml keeps it";

/// HTML5 appends whitespace after `</body>` (and `</html>`) to `<body>`'s last text
/// node ("after body" mode processes it "in body"), and drops the whitespace between
/// `<html>` and `<head>` ("before head" mode ignores it); libxml2 keeps both where they
/// are in the source. Only whole-document text counts and `body/text()` see it.
const OUTER_WHITESPACE: &str =
    "whitespace around <head> and after </body> lands elsewhere in html5ever's tree (HTML5)";

/// Justified differences; the test fails if an entry excuses nothing.
const KNOWN: &[Known] = &[
    Known {
        lang: Lang::Css,
        query: "pre *::text",
        pages: Some(&["library/functions.html", "reference/introduction.html"]),
        ours_equivalent: None,
        reason: PRE_NEWLINE,
    },
    Known {
        lang: Lang::XPath,
        query: "string(//pre)",
        pages: Some(&["reference/introduction.html"]),
        ours_equivalent: Some("concat('\n', string(//pre))"),
        reason: PRE_NEWLINE,
    },
    Known {
        lang: Lang::XPath,
        query: "//body/text()",
        pages: None,
        ours_equivalent: None,
        reason: OUTER_WHITESPACE,
    },
    Known {
        lang: Lang::XPath,
        query: "count(//text())",
        pages: None,
        ours_equivalent: None,
        reason: OUTER_WHITESPACE,
    },
    Known {
        lang: Lang::Css,
        query: "table.indextable > tr > td a::text",
        pages: Some(&["genindex-A.html", "genindex-N.html"]),
        ours_equivalent: Some("table.indextable > tbody > tr > td a::text"),
        reason: TBODY,
    },
    Known {
        lang: Lang::Css,
        query: "table.contentstable > tr > td > p > a::attr(href)",
        pages: Some(&["index.html"]),
        ours_equivalent: Some("table.contentstable > tbody > tr > td > p > a::attr(href)"),
        reason: TBODY,
    },
    Known {
        lang: Lang::XPath,
        query: "//table[contains(@class,'indextable')]/tr/td//a/text()",
        pages: Some(&["genindex-A.html", "genindex-N.html"]),
        ours_equivalent: Some("//table[contains(@class,'indextable')]/tbody/tr/td//a/text()"),
        reason: TBODY,
    },
];

/// The pages compared: every 16th `.html` file of the sorted list, plus
/// [`EXTRA_PAGES`], sorted, without duplicates.
fn pages() -> Vec<String> {
    let root = std::path::Path::new(pyenv::DOCS);
    let mut all = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "html") {
                let rel = path.strip_prefix(root).unwrap();
                all.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    all.sort();
    let mut chosen: BTreeSet<String> = all.iter().step_by(16).cloned().collect();
    chosen.extend(EXTRA_PAGES.iter().map(|p| p.to_string()));
    chosen.into_iter().collect()
}

/// One answer: the strings of `getall()`, or an error message.
type Answer = Result<Vec<String>, String>;

fn parsel_answers(python: &std::path::Path, pages: &[String]) -> (Value, BTreeMap<String, Value>) {
    let spec = serde_json::json!({
        "root": pyenv::DOCS,
        "pages": pages,
        "css": CSS,
        "xpath": XPATH,
    });
    let script = pyenv::repo().join("tests/parsel/expected.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(spec.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut answer: Value = serde_json::from_slice(&out.stdout).expect("expected.py prints JSON");
    let versions = answer["versions"].take();
    let pages = match answer["pages"].take() {
        Value::Object(map) => map.into_iter().collect(),
        other => panic!("expected.py: `pages` is not an object: {other}"),
    };
    (versions, pages)
}

fn parse_answer(v: &Value) -> Answer {
    if let Some(list) = v["ok"].as_array() {
        Ok(list
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect())
    } else {
        Err(v["error"].as_str().unwrap_or("?").to_string())
    }
}

fn arachne_answer(html: &Html, lang: Lang, query: &str) -> Answer {
    let list = match lang {
        Lang::Css => html.css(query),
        Lang::XPath => html.xpath(query),
    };
    list.map(|l| l.getall()).map_err(|e| e.to_string())
}

/// `s` cut to about `max` characters, for messages.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head:?}… ({} chars)", s.chars().count())
    }
}

/// A readable account of how `ours` differs from `theirs`.
fn describe(theirs: &Answer, ours: &Answer) -> String {
    match (theirs, ours) {
        (Err(t), Err(o)) => format!("both fail: parsel {t}; arachne {o}"),
        (Err(t), Ok(o)) => format!("parsel fails ({t}), arachne gives {} results", o.len()),
        (Ok(t), Err(o)) => format!("arachne fails ({o}), parsel gives {} results", t.len()),
        (Ok(t), Ok(o)) => {
            let i = t.iter().zip(o).take_while(|(a, b)| a == b).count();
            let at = |v: &[String]| v.get(i).map_or("(none)".to_string(), |s| clip(s, 160));
            format!(
                "parsel {} results, arachne {}; first difference at [{i}]:\n      parsel:  {}\n      arachne: {}",
                t.len(),
                o.len(),
                at(t),
                at(o)
            )
        }
    }
}

/// parsel's answers, computed once for both tests: the venv's versions, the answers by
/// page, and how long expected.py took. `None` when skipping (see `pyenv`).
type Expected = (Value, BTreeMap<String, Value>, std::time::Duration);

fn expected(pages: &[String]) -> Option<&'static Expected> {
    static EXPECTED: OnceLock<Option<Expected>> = OnceLock::new();
    EXPECTED
        .get_or_init(|| {
            let python = pyenv::python_and_docs(&["parsel"])?;
            let started = Instant::now();
            let (versions, answers) = parsel_answers(&python, pages);
            assert_eq!(
                answers.len(),
                pages.len(),
                "expected.py answered every page"
            );
            Some((versions, answers, started.elapsed()))
        })
        .as_ref()
}

#[test]
fn css_agrees_with_parsel_on_python_docs() {
    compare(Lang::Css, CSS);
}

/// Fails until the XPath evaluator (src/selector/xpath.rs) lands: the stub rejects
/// every expression.
#[test]
fn xpath_agrees_with_parsel_on_python_docs() {
    compare(Lang::XPath, XPATH);
}

fn compare(lang: Lang, queries: &[&'static str]) {
    assert!(queries.len() >= 60, "{} queries", queries.len());
    let pages = pages();
    assert!(pages.len() >= 30, "{} pages", pages.len());
    // A panic inside get_or_init (expected.py failing) poisons nothing: the other
    // test simply tries again and reports the same failure.
    let Some((versions, expected, parsel_time)) = expected(&pages) else {
        return;
    };

    let started = Instant::now();
    let mut unlisted = Vec::new();
    let mut excused: BTreeMap<usize, usize> = BTreeMap::new();
    // KNOWN entries whose query differed on one of their pages (excused or not).
    let mut seen = BTreeSet::new();
    let mut compared = 0;
    let mut per_query: BTreeMap<(Lang, &str), usize> = BTreeMap::new();
    for page in &pages {
        let text = std::fs::read_to_string(std::path::Path::new(pyenv::DOCS).join(page)).unwrap();
        let html = Html::parse(&text);
        {
            let theirs = expected[page][lang.key()].as_array().unwrap();
            assert_eq!(theirs.len(), queries.len());
            for (query, theirs) in queries.iter().zip(theirs) {
                let theirs = parse_answer(theirs);
                // A query parsel rejects is a mistake in this file, not a finding.
                if let Err(e) = &theirs {
                    panic!(
                        "parsel rejects {} query {query:?} on {page}: {e}",
                        lang.key()
                    );
                }
                compared += 1;
                let ours = arachne_answer(&html, lang, query);
                if ours == theirs {
                    continue;
                }
                let applies = |k: &Known| {
                    k.lang == lang
                        && k.query == *query
                        && k.pages.is_none_or(|ps| ps.contains(&page.as_str()))
                };
                for (i, _) in KNOWN.iter().enumerate().filter(|(_, k)| applies(k)) {
                    seen.insert(i);
                }
                let known = KNOWN.iter().position(|k| {
                    applies(k)
                        && k.ours_equivalent
                            .is_none_or(|q| arachne_answer(&html, lang, q) == theirs)
                });
                match known {
                    Some(k) => *excused.entry(k).or_default() += 1,
                    None => {
                        *per_query.entry((lang, query)).or_default() += 1;
                        unlisted.push((lang, *query, page, describe(&theirs, &ours)));
                    }
                }
            }
        }
    }
    let arachne_time = started.elapsed();
    eprintln!(
        "parsel_diff {}: {} pages, {} queries, {compared} answers compared; parsel {versions} \
         took {parsel_time:.1?} (CSS and XPath), arachne {arachne_time:.1?}",
        lang.key(),
        pages.len(),
        queries.len(),
    );
    for (k, n) in &excused {
        let known = &KNOWN[*k];
        eprintln!(
            "  known difference ({n} pages): {} {:?}: {}",
            known.lang.key(),
            known.query,
            known.reason
        );
    }
    let stale: Vec<String> = KNOWN
        .iter()
        .enumerate()
        .filter(|(i, k)| k.lang == lang && !seen.contains(i))
        .map(|(_, k)| format!("{} {:?} ({})", k.lang.key(), k.query, k.reason))
        .collect();

    let mut report = String::new();
    if !unlisted.is_empty() {
        report.push_str(&format!(
            "{} unlisted differences from parsel, over {} queries:\n",
            unlisted.len(),
            per_query.len()
        ));
        for ((lang, query), n) in &per_query {
            report.push_str(&format!("  {n:>3} pages: {} {query:?}\n", lang.key()));
        }
        // The first page of each query, in full.
        let mut shown = BTreeSet::new();
        report.push_str("the first page of each:\n");
        for (lang, query, page, diff) in &unlisted {
            if shown.insert((*lang, *query)) {
                report.push_str(&format!("  {} {query:?} on {page}: {diff}\n", lang.key()));
            }
        }
    }
    if !stale.is_empty() {
        report.push_str("KNOWN entries that excuse no difference any more (remove them):\n");
        for s in &stale {
            report.push_str(&format!("  {s}\n"));
        }
    }
    assert!(report.is_empty(), "{report}");
}
