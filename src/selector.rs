//! Scrapy's selectors (parsel's API) over [`select`] documents: CSS with `::text` and
//! `::attr(name)`, XPath 1.0, nested selection, `get` / `getall` / `attrib`, `re`.
//!
//! A document is parsed once ([`Html::parse`], or lazily by
//! [`Response::html`](crate::http::Response::html)); queries return a
//! [`SelectorList`] of owned [`Selector`]s — an element, a text node, an attribute or
//! an XPath value — each of which can be queried again (`quote.css("span::text")`).
//! A CSS query is parsed once into a small AST ([`Css`]) and matched right-to-left
//! against the flat node array of a [`select::document::Document`], so running it
//! costs one pass over the (sub)tree and no allocation per visited node; XPath is
//! evaluated by [`xpath`] over the same array.
//!
//! Supported CSS: type selectors (case-insensitive), `*`, `.class`, `#id`,
//! attribute selectors (`[a]`, `=`, `~=`, `|=`, `^=`, `$=`, `*=`, parsel's `!=`, the
//! `i` flag), the descendant, `>`, `+` and `~` combinators, groups (`h1, h2`), the
//! pseudo-classes `:first-child`, `:last-child`, `:only-child`, `:nth-child()`,
//! `:nth-last-child()`, the `-of-type` variants, `:empty`, `:root` and `:not()`, and
//! the pseudo-elements `::text` and `::attr(name)` at the end of a selector.
//! Anything else is reported as a [`SelectorError`]; parsing never panics.
//!
//! ```
//! use arachne::selector::Html;
//!
//! let html = Html::parse(r#"<ul><li><a href="/a">A</a></li><li><a href="/b">B</a></li></ul>"#);
//! assert_eq!(html.css("li a::attr(href)").unwrap().getall(), ["/a", "/b"]);
//! assert_eq!(html.css("li:last-child a::text").unwrap().get().as_deref(), Some("B"));
//! let first = &html.css("li").unwrap()[0];
//! assert_eq!(first.css("a::text").unwrap().get().as_deref(), Some("A"));
//! ```

pub mod tree;

use std::fmt;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use select::document::Document;
use select::node::{Data, Node};
use select::predicate::Predicate;
use select::selection::Selection;

pub mod xpath;

use xpath::{XItem, XPath};

/// Longest chain of compound selectors accepted in one selector; matching recurses
/// once per compound, so this bounds stack use for hostile queries.
const MAX_COMPOUNDS: usize = 64;
/// Deepest `:not(:not(...))` nesting accepted, for the same reason.
const MAX_NESTING: usize = 16;

/// An error produced when a CSS query cannot be parsed.
///
/// `position` is the 1-based character column in the query where the problem was
/// found.
///
/// ```
/// use arachne::selector::Css;
///
/// let err = Css::parse("a[href").unwrap_err();
/// assert_eq!(err.to_string(), "invalid CSS selector `a[href`: expected `]` at 7");
/// assert_eq!(err.position(), 7);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The query is not valid CSS (or not valid for the subset understood here).
    #[error("invalid CSS selector `{query}`: {message} at {position}")]
    Syntax {
        /// The query as given.
        query: String,
        /// What went wrong.
        message: String,
        /// 1-based character column.
        position: usize,
    },
    /// The query is valid CSS but uses a feature this module does not implement.
    #[error("unsupported CSS selector `{query}`: {feature} is not supported at {position}")]
    Unsupported {
        /// The query as given.
        query: String,
        /// The feature, e.g. "pseudo-class `:hover`".
        feature: String,
        /// 1-based character column.
        position: usize,
    },
    /// The XPath expression does not parse or cannot be evaluated.
    #[error("{message}")]
    XPath {
        /// The expression as given.
        query: String,
        /// What went wrong.
        message: String,
        /// 1-based character column (0 for evaluation errors).
        position: usize,
    },
    /// The regular expression given to `re()` does not compile.
    #[error("invalid regular expression `{pattern}`: {message}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// What went wrong.
        message: String,
    },
}

impl SelectorError {
    /// The query (or regular expression) that failed.
    pub fn query(&self) -> &str {
        match self {
            SelectorError::Syntax { query, .. }
            | SelectorError::Unsupported { query, .. }
            | SelectorError::XPath { query, .. } => query,
            SelectorError::Regex { pattern, .. } => pattern,
        }
    }

    /// 1-based character column of the problem (0 when it has none).
    pub fn position(&self) -> usize {
        match self {
            SelectorError::Syntax { position, .. }
            | SelectorError::Unsupported { position, .. }
            | SelectorError::XPath { position, .. } => *position,
            SelectorError::Regex { .. } => 0,
        }
    }

    fn from_xpath(query: &str, e: xpath::XPathError) -> SelectorError {
        let position = match &e {
            xpath::XPathError::Syntax { position, .. } => *position,
            xpath::XPathError::Eval { .. } => 0,
        };
        SelectorError::XPath {
            query: query.to_string(),
            message: e.to_string(),
            position,
        }
    }
}

/// How many HTML documents have been parsed in this process (every
/// [`Html::parse`]). What tests and benchmarks read to prove that a response is
/// parsed once however many queries its callback runs.
///
/// ```
/// let before = arachne::selector::documents_parsed();
/// let _ = arachne::selector::Html::parse("<p>x</p>");
/// assert!(arachne::selector::documents_parsed() > before);
/// ```
pub fn documents_parsed() -> u64 {
    PARSED.load(Ordering::Relaxed)
}

static PARSED: AtomicU64 = AtomicU64::new(0);

/// A parsed HTML document, cheap to clone (the tree is shared).
///
/// Broken markup is repaired by html5ever the way a browser would, so parsing never
/// fails. Not `Send` (the underlying tendrils are not): a response's document is
/// parsed lazily, at most once, on the worker thread that runs its callback
/// ([`Response::html`](crate::http::Response::html)).
///
/// ```
/// use arachne::selector::Html;
///
/// let html = Html::parse("<title>Hi &amp; bye</title><p>unclosed");
/// assert_eq!(html.css("title::text").unwrap().get().as_deref(), Some("Hi & bye"));
/// assert_eq!(html.css("p::text").unwrap().get().as_deref(), Some("unclosed"));
/// ```
#[derive(Debug, Clone)]
pub struct Html {
    doc: Rc<Document>,
}

impl Html {
    /// Parses an HTML document (or fragment; html5ever wraps it in `<html><body>`).
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<div>x</div></div>");
    /// assert_eq!(html.css("div").unwrap().len(), 1);
    /// ```
    pub fn parse(html: &str) -> Html {
        PARSED.fetch_add(1, Ordering::Relaxed);
        Html {
            doc: tree::parse_html(html, &tree::HtmlLimits::default())
                .document
                .into(),
        }
    }

    /// [`Html::parse`] within chosen bounds; also returns the number of parse errors
    /// and, if a limit stopped parsing early, which one (see [`tree::parse_html`]).
    ///
    /// ```
    /// use arachne::selector::tree::HtmlLimits;
    /// use arachne::selector::Html;
    ///
    /// let limits = HtmlLimits { max_open_elements: 64, ..HtmlLimits::default() };
    /// let (html, errors, truncated) = Html::parse_with_limits(&"<b>".repeat(1000), &limits);
    /// assert!(truncated.is_some() && errors > 0);
    /// assert!(html.css("b").unwrap().len() < 1000);
    /// ```
    pub fn parse_with_limits(
        html: &str,
        limits: &tree::HtmlLimits,
    ) -> (Html, usize, Option<tree::HtmlLimitExceeded>) {
        PARSED.fetch_add(1, Ordering::Relaxed);
        let parsed = tree::parse_html(html, limits);
        (
            Html {
                doc: parsed.document.into(),
            },
            parsed.parse_errors,
            parsed.truncated,
        )
    }

    /// The underlying `select` document, for anything this module does not cover.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<p>a</p>");
    /// assert!(html.document().nodes.len() >= 4); // html, head, body, p, text
    /// ```
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// The whole document as a [`Selector`] (parsel's root selector).
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<p>a</p>");
    /// assert_eq!(html.root().css("p::text").unwrap().get().as_deref(), Some("a"));
    /// ```
    pub fn root(&self) -> Selector {
        Selector {
            doc: self.doc.clone(),
            hit: Hit::Root,
        }
    }

    /// Runs a CSS query over the whole document.
    ///
    /// When one query runs on many pages, parse it once with [`Css::parse`] and call
    /// [`Css::select`] instead.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<h1>T</h1><h2>S</h2>");
    /// assert_eq!(html.css("h2, h1").unwrap().len(), 2);
    /// assert!(html.css("h1[").is_err());
    /// ```
    pub fn css(&self, query: &str) -> Result<SelectorList, SelectorError> {
        Ok(Css::parse(query)?.select(self))
    }

    /// Runs an XPath 1.0 query over the whole document.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse(r#"<a href="/1">x</a><a href="/2">y</a>"#);
    /// assert_eq!(html.xpath("//a[2]/@href").unwrap().getall(), ["/2"]);
    /// ```
    pub fn xpath(&self, query: &str) -> Result<SelectorList, SelectorError> {
        self.root().xpath(query)
    }

    /// Runs a native `select` predicate over the whole document and returns the
    /// matching nodes as a `select` [`Selection`] (document order).
    ///
    /// ```
    /// use select::predicate::{Class, Name, Predicate};
    ///
    /// let html = arachne::selector::Html::parse(r#"<p class="x">a</p><p>b</p>"#);
    /// assert_eq!(html.find(Name("p").and(Class("x"))).len(), 1);
    /// ```
    pub fn find<P: Predicate>(&self, predicate: P) -> Selection<'_> {
        self.doc.find(predicate).into_selection()
    }
}

impl From<Document> for Html {
    fn from(doc: Document) -> Html {
        Html { doc: Rc::new(doc) }
    }
}

/// What a [`Selector`] points at. Text and attribute hits keep indices into the
/// document, so matching allocates nothing; strings are made by `get()`.
#[derive(Debug, Clone, PartialEq)]
enum Hit {
    /// The document itself.
    Root,
    /// An element (or, from XPath, a comment).
    Node(usize),
    /// A text node.
    Text(usize),
    /// Attribute `.1` of element `.0`.
    Attr(usize, usize),
    /// A computed value (an XPath number, string or boolean).
    Value(Rc<str>),
}

/// One result of a query, parsel's `Selector`: an element, a text node, an
/// attribute, or a value. Elements can be queried further (`quote.css(..)`,
/// `quote.xpath(..)`); its string form ([`get`](Selector::get)) is the element's
/// outer HTML, the text, the attribute value or the value, as in Scrapy.
///
/// ```
/// use arachne::selector::Html;
///
/// let html = Html::parse(r#"<div class="q"><span>a</span><a href="/x">go</a></div>"#);
/// let quote = html.css("div.q").unwrap().into_iter().next().unwrap();
/// assert_eq!(quote.css("span::text").unwrap().get().as_deref(), Some("a"));
/// assert_eq!(quote.xpath(".//a/@href").unwrap().get().as_deref(), Some("/x"));
/// assert_eq!(quote.attr("class").as_deref(), Some("q"));
/// assert_eq!(quote.text(), "ago");
/// ```
#[derive(Clone)]
pub struct Selector {
    doc: Rc<Document>,
    hit: Hit,
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({:?})", self.get())
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.doc, &other.doc) && self.hit == other.hit
    }
}

impl Selector {
    fn new(doc: &Rc<Document>, hit: Hit) -> Selector {
        Selector {
            doc: doc.clone(),
            hit,
        }
    }

    /// The string form: outer HTML of an element, text of a text node, value of an
    /// attribute (Scrapy's `.get()`).
    ///
    /// ```
    /// let html = arachne::selector::Html::parse(r#"<b id="x">hi</b>"#);
    /// assert_eq!(html.css("b").unwrap()[0].get(), r#"<b id="x">hi</b>"#);
    /// ```
    pub fn get(&self) -> String {
        match &self.hit {
            Hit::Root => self
                .doc
                .nodes
                .iter()
                .filter(|r| r.parent.is_none())
                .filter_map(|r| self.doc.nth(r.index))
                .map(|n| n.html())
                .collect(),
            Hit::Node(i) => self.doc.nth(*i).map(|n| n.html()).unwrap_or_default(),
            Hit::Text(i) => match self.doc.nth(*i).map(|n| n.data()) {
                Some(Data::Text(t)) => t.to_string(),
                _ => String::new(),
            },
            Hit::Attr(e, a) => self
                .doc
                .nth(*e)
                .and_then(|n| n.attrs().nth(*a).map(|(_, v)| v.to_string()))
                .unwrap_or_default(),
            Hit::Value(v) => v.to_string(),
        }
    }

    /// The element, for the `select` API (`None` for text, attributes and values).
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<b>x</b>");
    /// assert_eq!(html.css("b").unwrap()[0].node().unwrap().name(), Some("b"));
    /// ```
    pub fn node(&self) -> Option<Node<'_>> {
        match self.hit {
            Hit::Node(i) => self.doc.nth(i),
            _ => None,
        }
    }

    /// Whether this is an element (or the document), which can be queried further.
    pub fn is_element(&self) -> bool {
        matches!(self.hit, Hit::Node(_) | Hit::Root)
    }

    /// Runs a CSS query relative to this element (see [`Css::select_from`]); text,
    /// attributes and values give nothing.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<ul><li>a</li></ul><li>b</li>");
    /// let ul = &html.css("ul").unwrap()[0];
    /// assert_eq!(ul.css("li::text").unwrap().getall(), ["a"]);
    /// ```
    pub fn css(&self, query: &str) -> Result<SelectorList, SelectorError> {
        Ok(Css::parse(query)?.select_from(self))
    }

    /// Runs an XPath 1.0 query with this element as the context node; text,
    /// attributes and values give nothing.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<div><p>a</p><p>b</p></div>");
    /// let div = &html.css("div").unwrap()[0];
    /// assert_eq!(div.xpath("./p[last()]/text()").unwrap().getall(), ["b"]);
    /// assert_eq!(div.xpath("count(p)").unwrap().getall(), ["2.0"]);
    /// ```
    pub fn xpath(&self, query: &str) -> Result<SelectorList, SelectorError> {
        let context = match self.hit {
            Hit::Root => XItem::Root,
            Hit::Node(i) => XItem::Node(i),
            _ => return Ok(SelectorList::default()),
        };
        let expr = XPath::parse(query).map_err(|e| SelectorError::from_xpath(query, e))?;
        let items = expr
            .evaluate(&self.doc, context)
            .map_err(|e| SelectorError::from_xpath(query, e))?;
        let items = items
            .into_iter()
            // lxml (so parsel) never returns the document node itself (`/`, `..`
            // from the root element).
            .filter(|item| *item != XItem::Root)
            .map(|item| {
                let hit = match item {
                    XItem::Root => Hit::Root,
                    XItem::Node(i) => match self.doc.nth(i).map(|n| n.data()) {
                        Some(Data::Text(_)) => Hit::Text(i),
                        _ => Hit::Node(i),
                    },
                    XItem::Attr { element, index } => Hit::Attr(element, index),
                    other => Hit::Value(xpath::item_to_parsel_string(&self.doc, &other).into()),
                };
                Selector::new(&self.doc, hit)
            })
            .collect();
        Ok(SelectorList { items })
    }

    /// The element's attributes in document order (parsel's `.attrib`); empty for
    /// anything else.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse(r#"<a href="/x" class="c">x</a>"#);
    /// let a = &html.css("a").unwrap()[0];
    /// assert_eq!(a.attrib(), [("href".into(), "/x".into()), ("class".into(), "c".into())]);
    /// ```
    pub fn attrib(&self) -> Vec<(String, String)> {
        self.node()
            .map(|n| {
                n.attrs()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One attribute of the element.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse(r#"<a href="/x">x</a>"#);
    /// assert_eq!(html.css("a").unwrap()[0].attr("href").as_deref(), Some("/x"));
    /// ```
    pub fn attr(&self, name: &str) -> Option<String> {
        self.node()
            .and_then(|n| n.attr(name))
            .map(ToString::to_string)
    }

    /// All text inside, concatenated — XPath's `string()`: for an element its
    /// descendant text, for the rest the string form.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<p>a <b>b</b> c</p>");
    /// assert_eq!(html.css("p").unwrap()[0].text(), "a b c");
    /// ```
    pub fn text(&self) -> String {
        match &self.hit {
            Hit::Root | Hit::Node(_) => {
                let range = match self.hit {
                    Hit::Node(i) => self.doc.nth(i).map(|n| (i, subtree_end(n))),
                    _ => Some((0, usize::MAX)),
                };
                let Some((from, to)) = range else {
                    return String::new();
                };
                let mut out = String::new();
                for raw in self
                    .doc
                    .nodes
                    .iter()
                    .skip(from)
                    .take_while(|r| r.index < to)
                {
                    if let Data::Text(t) = &raw.data {
                        out.push_str(t);
                    }
                }
                out
            }
            _ => self.get(),
        }
    }

    /// Applies a regular expression to the string form (parsel's `.re()`): the
    /// group named `extract` if the pattern has one, else every group of every
    /// match, else every whole match.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<p>Price: 10.99 EUR, was 12.50</p>");
    /// let p = &html.css("p::text").unwrap()[0];
    /// assert_eq!(p.re(r"\d+\.\d+").unwrap(), ["10.99", "12.50"]);
    /// assert_eq!(p.re(r"(\d+)\.(\d+) EUR").unwrap(), ["10", "99"]);
    /// assert_eq!(p.re_first(r"was (?P<extract>\S+)").unwrap().as_deref(), Some("12.50"));
    /// ```
    pub fn re(&self, pattern: &str) -> Result<Vec<String>, SelectorError> {
        let re = compile_regex(pattern)?;
        Ok(regex_extract(&re, &self.get()))
    }

    /// The first result of [`re`](Selector::re).
    pub fn re_first(&self, pattern: &str) -> Result<Option<String>, SelectorError> {
        Ok(self.re(pattern)?.into_iter().next())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.get())
    }
}

impl serde::Serialize for Selector {
    /// As its string form, so `json!({"title": sel})` works.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.get())
    }
}

fn compile_regex(pattern: &str) -> Result<regex::Regex, SelectorError> {
    regex::Regex::new(pattern).map_err(|e| SelectorError::Regex {
        pattern: pattern.to_string(),
        message: e.to_string(),
    })
}

/// parsel's `extract_regex`: the `extract` group, else all groups, else the matches.
fn regex_extract(re: &regex::Regex, text: &str) -> Vec<String> {
    if let Some(idx) = re.capture_names().position(|n| n == Some("extract")) {
        return re
            .captures_iter(text)
            .filter_map(|c| c.get(idx).map(|m| m.as_str().to_string()))
            .collect();
    }
    if re.captures_len() > 1 {
        return re
            .captures_iter(text)
            .flat_map(|c| {
                (1..c.len())
                    .map(|i| c.get(i).map_or(String::new(), |m| m.as_str().to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

/// The results of a query, in document order and without duplicates (parsel's
/// `SelectorList`). Indexes and iterates as a slice of [`Selector`]s.
///
/// ```
/// let html = arachne::selector::Html::parse(
///     r#"<div class="q"><span>a</span></div><div class="q"><span>b</span></div>"#,
/// );
/// let quotes = html.css("div.q").unwrap();
/// assert_eq!(quotes.len(), 2);
/// assert_eq!(quotes.css("span::text").unwrap().getall(), ["a", "b"]);
/// for quote in &quotes {
///     assert!(quote.css("span").unwrap().get().is_some());
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectorList {
    items: Vec<Selector>,
}

impl SelectorList {
    /// The first result's string form (Scrapy's `.get()`), or `None`.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<p>a</p><p>b</p>");
    /// assert_eq!(html.css("p::text").unwrap().get().as_deref(), Some("a"));
    /// assert_eq!(html.css("q::text").unwrap().get(), None);
    /// ```
    pub fn get(&self) -> Option<String> {
        self.items.first().map(Selector::get)
    }

    /// Every result's string form (Scrapy's `.getall()`).
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<p>a</p><p>b</p>");
    /// assert_eq!(html.css("p::text").unwrap().getall(), ["a", "b"]);
    /// ```
    pub fn getall(&self) -> Vec<String> {
        self.items.iter().map(Selector::get).collect()
    }

    /// The first result, or `None`.
    pub fn first(&self) -> Option<&Selector> {
        self.items.first()
    }

    /// The results.
    pub fn iter(&self) -> std::slice::Iter<'_, Selector> {
        self.items.iter()
    }

    /// The element results, for the `select` API.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse(r#"<a href="/1">x</a>"#);
    /// let list = html.css("a").unwrap();
    /// assert_eq!(list.nodes().next().unwrap().attr("href"), Some("/1"));
    /// ```
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_>> + '_ {
        self.items.iter().filter_map(Selector::node)
    }

    /// The first element's attributes (parsel's `SelectorList.attrib`).
    pub fn attrib(&self) -> Vec<(String, String)> {
        self.items.first().map(Selector::attrib).unwrap_or_default()
    }

    /// Each result's [`text`](Selector::text): all descendant text of each element.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<li>a <b>1</b></li><li>b <b>2</b></li>");
    /// assert_eq!(html.css("li").unwrap().text(), ["a 1", "b 2"]);
    /// ```
    pub fn text(&self) -> Vec<String> {
        self.items.iter().map(Selector::text).collect()
    }

    /// Runs a CSS query relative to every element and merges the results in
    /// document order without duplicates.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse(
    ///     r#"<div class="item"><a href="/1">one</a></div><a href="/x">out</a>"#,
    /// );
    /// let items = html.css("div.item").unwrap();
    /// assert_eq!(items.css("a::attr(href)").unwrap().getall(), ["/1"]);
    /// ```
    pub fn css(&self, query: &str) -> Result<SelectorList, SelectorError> {
        Ok(self.select(&Css::parse(query)?))
    }

    /// Like [`SelectorList::css`] with an already parsed query.
    pub fn select(&self, css: &Css) -> SelectorList {
        let Some(first) = self.items.first() else {
            return SelectorList::default();
        };
        let doc = &first.doc;
        let mut keyed: Vec<(Key, Hit)> = Vec::new();
        // Results of disjoint contexts visited in document order are already sorted
        // and unique; only nested contexts (e.g. `div` inside `div`) need a merge.
        let mut overlapping = false;
        let mut prev_end = 0;
        for sel in &self.items {
            match sel.hit {
                Hit::Node(i) => {
                    let Some(node) = doc.nth(i) else { continue };
                    if i < prev_end {
                        overlapping = true;
                    }
                    prev_end = prev_end.max(subtree_end(node));
                    css.collect(node.descendants(), Some(node), &mut |key, m| {
                        keyed.push((key, m))
                    });
                }
                Hit::Root => {
                    overlapping = true;
                    css.collect_document(doc, &mut |key, m| keyed.push((key, m)));
                }
                _ => {}
            }
        }
        if overlapping {
            keyed.sort_by_key(|(key, _)| *key);
            keyed.dedup_by_key(|(key, _)| *key);
        }
        SelectorList {
            items: keyed
                .into_iter()
                .map(|(_, hit)| Selector::new(doc, hit))
                .collect(),
        }
    }

    /// Runs an XPath query on every element and concatenates the results (as
    /// parsel does: in the order of the contexts).
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<p><b>1</b></p><p><b>2</b></p>");
    /// assert_eq!(html.css("p").unwrap().xpath("b/text()").unwrap().getall(), ["1", "2"]);
    /// ```
    pub fn xpath(&self, query: &str) -> Result<SelectorList, SelectorError> {
        let mut items = Vec::new();
        for sel in &self.items {
            items.extend(sel.xpath(query)?.items);
        }
        Ok(SelectorList { items })
    }

    /// [`Selector::re`] over every result, concatenated.
    ///
    /// ```
    /// let html = arachne::selector::Html::parse("<p>a1</p><p>b22</p>");
    /// assert_eq!(html.css("p::text").unwrap().re(r"\d+").unwrap(), ["1", "22"]);
    /// ```
    pub fn re(&self, pattern: &str) -> Result<Vec<String>, SelectorError> {
        let re = compile_regex(pattern)?;
        Ok(self
            .items
            .iter()
            .flat_map(|s| regex_extract(&re, &s.get()))
            .collect())
    }

    /// The first result of [`re`](SelectorList::re).
    pub fn re_first(&self, pattern: &str) -> Result<Option<String>, SelectorError> {
        let re = compile_regex(pattern)?;
        Ok(self
            .items
            .iter()
            .find_map(|s| regex_extract(&re, &s.get()).into_iter().next()))
    }
}

impl std::ops::Deref for SelectorList {
    type Target = [Selector];
    fn deref(&self) -> &[Selector] {
        &self.items
    }
}

impl IntoIterator for SelectorList {
    type Item = Selector;
    type IntoIter = std::vec::IntoIter<Selector>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'l> IntoIterator for &'l SelectorList {
    type Item = &'l Selector;
    type IntoIter = std::slice::Iter<'l, Selector>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl serde::Serialize for SelectorList {
    /// As the list of string forms (`getall()`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.items.iter().map(Selector::get))
    }
}

/// A parsed CSS query, reusable across documents and threads.
///
/// Matching follows parsel where it matters for scraping:
/// - `h1::text` yields the element's own text-node children, one match per node;
///   `div ::text` (or `div *::text`) yields every text node inside `div`.
/// - `::attr(name)` yields the attribute value and skips elements without it;
///   `div ::attr(href)` includes the `div`'s own `href`, as in parsel.
/// - A selector that is only a pseudo-element (`::text`, `::attr(href)`) applies to
///   the context element itself (with [`Css::select`], the document root).
///   Unlike parsel, a bare `::text` is the context's own text children; write
///   `*::text` for every text node below it.
///
/// The query is also a `select` [`Predicate`] matching the elements its
/// element-returning group members match, so it can be used with
/// `Document::find`.
///
/// ```
/// use arachne::selector::{Css, Html};
///
/// let title = Css::parse("h1.title::text").unwrap();
/// for page in ["<h1 class=title>One</h1>", "<h1 class=title>Two</h1>"] {
///     let html = Html::parse(page);
///     assert!(title.select(&html).get().is_some());
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Css {
    source: Box<str>,
    members: Vec<Complex>,
    wants_nodes: bool,
    wants_text: bool,
    wants_attrs: bool,
}

impl Css {
    /// Parses a CSS query.
    ///
    /// ```
    /// use arachne::selector::Css;
    ///
    /// assert!(Css::parse(r#"a.nav[href^="/p/"]::attr(href)"#).is_ok());
    /// assert!(Css::parse("a:hover").is_err());
    /// ```
    pub fn parse(query: &str) -> Result<Css, SelectorError> {
        let mut parser = Parser {
            src: query,
            pos: 0,
            depth: 0,
        };
        let members = parser.parse_group()?;
        Ok(Css {
            source: query.into(),
            wants_nodes: members.iter().any(|m| m.pseudo.is_none()),
            wants_text: members
                .iter()
                .any(|m| matches!(m.pseudo, Some(PseudoElement::Text))),
            wants_attrs: members
                .iter()
                .any(|m| matches!(m.pseudo, Some(PseudoElement::Attr(_)))),
            members,
        })
    }

    /// The query this selector was parsed from.
    ///
    /// ```
    /// let sel = arachne::selector::Css::parse("p > b").unwrap();
    /// assert_eq!(sel.as_str(), "p > b");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Runs the query over a whole document.
    ///
    /// ```
    /// use arachne::selector::{Css, Html};
    ///
    /// let html = Html::parse("<p>a <b>b</b></p>");
    /// let sel = Css::parse("p ::text").unwrap();
    /// assert_eq!(sel.select(&html).getall(), ["a ", "b"]);
    /// ```
    pub fn select(&self, html: &Html) -> SelectorList {
        let mut items = Vec::new();
        self.collect_document(&html.doc, &mut |_, hit| {
            items.push(Selector::new(&html.doc, hit))
        });
        SelectorList { items }
    }

    /// Runs the query relative to an element (the document root for
    /// [`Html::root`]; nothing for text, attributes and values).
    ///
    /// Returned elements are strict descendants of the element (parsel would also
    /// return the element itself when it matches); the compounds to the left of a
    /// combinator may match the element itself (so `div.item span` works from a
    /// `div.item`) but nothing outside it, like parsel's `descendant-or-self::`.
    /// Text and attributes may come from the element itself (`p::text` from a `p`).
    ///
    /// ```
    /// use arachne::selector::{Css, Html};
    ///
    /// let html = Html::parse(r#"<div class="q"><b>in</b></div><b>out</b>"#);
    /// let quote = &html.css("div.q").unwrap()[0];
    /// let bold = Css::parse("div.q b::text").unwrap();
    /// assert_eq!(bold.select_from(quote).getall(), ["in"]);
    /// ```
    pub fn select_from(&self, context: &Selector) -> SelectorList {
        let doc = &context.doc;
        let mut items = Vec::new();
        match context.hit {
            Hit::Root => {
                self.collect_document(doc, &mut |_, hit| items.push(Selector::new(doc, hit)))
            }
            Hit::Node(i) => {
                if let Some(node) = doc.nth(i) {
                    self.collect(node.descendants(), Some(node), &mut |_, hit| {
                        items.push(Selector::new(doc, hit))
                    });
                }
            }
            _ => {}
        }
        SelectorList { items }
    }

    fn collect_document<F: FnMut(Key, Hit)>(&self, doc: &Document, emit: &mut F) {
        let nodes = (0..doc.nodes.len()).filter_map(|i| doc.nth(i));
        self.collect(nodes, None, emit);
    }

    /// The single matching pass: visits `nodes` (the context's subtree, in document
    /// order) once and reports each match with its document-order key.
    fn collect<'a, I, F>(&self, nodes: I, ctx: Option<Node<'a>>, emit: &mut F)
    where
        I: Iterator<Item = Node<'a>>,
        F: FnMut(Key, Hit),
    {
        let ctx_index = ctx.map(|n| n.index());
        // Compounds may match the context itself but nothing above it.
        let lo = ctx_index.unwrap_or(0);
        if self.wants_attrs {
            if let Some(ctx) = ctx {
                self.emit_attrs(ctx, ctx_index, lo, emit);
            }
        }
        // Consecutive text nodes usually share a parent; remember its verdict.
        let mut last_parent: Option<(Option<usize>, bool)> = None;
        for node in nodes {
            match node.data() {
                Data::Element(..) => {
                    if self.wants_nodes
                        && self.members.iter().any(|m| {
                            m.pseudo.is_none() && m.subject_matches(Some(node), ctx_index, lo)
                        })
                    {
                        emit((node.index(), 0), Hit::Node(node.index()));
                    }
                    if self.wants_attrs {
                        self.emit_attrs(node, ctx_index, lo, emit);
                    }
                }
                Data::Text(_) if self.wants_text => {
                    let parent = node.raw().parent;
                    let ok = match last_parent {
                        Some((p, ok)) if p == parent => ok,
                        _ => {
                            let subject = node.parent();
                            let ok = self.members.iter().any(|m| {
                                matches!(m.pseudo, Some(PseudoElement::Text))
                                    && m.subject_matches(subject, ctx_index, lo)
                            });
                            last_parent = Some((parent, ok));
                            ok
                        }
                    };
                    if ok {
                        emit((node.index(), 0), Hit::Text(node.index()));
                    }
                }
                _ => {}
            }
        }
    }

    fn emit_attrs<F>(&self, element: Node<'_>, ctx: Option<usize>, lo: usize, emit: &mut F)
    where
        F: FnMut(Key, Hit),
    {
        for (i, (name, _)) in element.attrs().enumerate() {
            let wanted = self.members.iter().any(|m| match &m.pseudo {
                Some(PseudoElement::Attr(want)) => {
                    want.eq_ignore_ascii_case(name) && m.subject_matches(Some(element), ctx, lo)
                }
                _ => false,
            });
            if wanted {
                emit((element.index(), i + 1), Hit::Attr(element.index(), i));
            }
        }
    }
}

impl FromStr for Css {
    type Err = SelectorError;

    fn from_str(query: &str) -> Result<Css, SelectorError> {
        Css::parse(query)
    }
}

impl fmt::Display for Css {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Predicate for Css {
    fn matches(&self, node: &Node<'_>) -> bool {
        self.members
            .iter()
            .any(|m| m.pseudo.is_none() && m.subject_matches(Some(*node), None, 0))
    }
}

impl Predicate for &Css {
    fn matches(&self, node: &Node<'_>) -> bool {
        (*self).matches(node)
    }
}

/// Builds a deterministic HTML page of roughly `kb` kilobytes: a nav list followed
/// by `div.item` blocks with headings, links, spans and entities. Used by the
/// micro-benchmarks and tests.
#[doc(hidden)]
pub fn sample_page(kb: usize) -> String {
    use std::fmt::Write;

    let target = kb * 1024;
    let mut page = String::with_capacity(target + 1024);
    page.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sample catalogue</title></head>\n<body>\n<div id=\"main\">\n\
         <h1 class=\"page-title\">Catalogue</h1>\n<ul class=\"nav\">\
         <li><a href=\"/\">Home</a></li><li><a href=\"/about\">About</a></li>\
         <li class=\"next\"><a href=\"/page/2\">Next</a></li></ul>\n",
    );
    let mut i: u64 = 0;
    while page.len() < target {
        let price = (i * 37) % 1000;
        // Writing to a String cannot fail.
        let _ = writeln!(
            page,
            "<div class=\"item item-{kind}\" data-id=\"{i}\">\
             <h2 class=\"title\"><a href=\"/p/{i}\" title=\"Product {i}\">Product {i}</a></h2>\
             <span class=\"price\">{price}.99</span> <span class=\"tag\">tag-{tag}</span>\
             <p class=\"desc\">Item {i} is <b>great</b> &amp; cheap &lt;{kind}&gt;. \
             <a class=\"more\" href=\"/p/{i}#more\">more</a></p></div>",
            kind = i % 7,
            tag = i % 13,
        );
        i += 1;
    }
    page.push_str("</div>\n</body></html>\n");
    page
}

// ---------------------------------------------------------------------------
// AST

/// Document-order key of a match: node index, then 0 for the node itself or
/// 1 + attribute position, so an element's attributes sort between it and its
/// children (XPath document order).
type Key = (usize, usize);

#[derive(Clone, Debug, PartialEq, Eq)]
enum PseudoElement {
    Text,
    Attr(Box<str>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combinator {
    Descendant,
    Child,
    Adjacent,
    Sibling,
    /// Internal: `div ::text` means every text node under `div`, including its own
    /// (parsel turns `div *::text` into `div//text()`, and `div ::attr(x)` into
    /// `div/descendant-or-self::*/@x`), so the implicit `*` may be the `div` itself.
    DescendantOrSelf,
}

/// One member of a selector group: compounds joined by combinators, plus an
/// optional trailing pseudo-element. `parts` is empty only for a bare
/// pseudo-element, which applies to the context itself.
#[derive(Clone, Debug)]
struct Complex {
    parts: Vec<Compound>,
    /// `combs[i]` joins `parts[i]` and `parts[i + 1]`.
    combs: Vec<Combinator>,
    pseudo: Option<PseudoElement>,
}

#[derive(Clone, Debug)]
struct Compound {
    /// Lowercased tag name; `None` is `*`.
    tag: Option<Box<str>>,
    simples: Vec<Simple>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AttrOp {
    Exists,
    Equals,
    NotEquals,
    Includes,
    DashMatch,
    Prefix,
    Suffix,
    Substring,
}

#[derive(Clone, Debug)]
enum Simple {
    Id(Box<str>),
    Class(Box<str>),
    Attr {
        name: Box<str>,
        op: AttrOp,
        /// Lowercased when `ignore_case`.
        value: Box<str>,
        ignore_case: bool,
    },
    /// `:nth-child(an+b)` and friends; `:first-child` is `a = 0, b = 1`.
    Nth {
        a: i64,
        b: i64,
        of_type: bool,
        from_end: bool,
    },
    Only {
        of_type: bool,
    },
    Empty,
    Root,
    Not(Vec<Compound>),
}

impl Simple {
    /// Cheap attribute checks first; sibling counting last.
    fn cost(&self) -> u8 {
        match self {
            Simple::Id(_) => 0,
            Simple::Class(_) => 1,
            Simple::Attr { .. } => 2,
            Simple::Root | Simple::Empty => 3,
            Simple::Not(_) => 4,
            Simple::Nth { .. } | Simple::Only { .. } => 5,
        }
    }

    fn matches(&self, e: Node<'_>) -> bool {
        match self {
            Simple::Id(id) => attr(e, "id") == Some(&**id),
            Simple::Class(class) => attr(e, "class")
                .is_some_and(|list| list.split_ascii_whitespace().any(|c| c == &**class)),
            Simple::Attr {
                name,
                op,
                value,
                ignore_case,
            } => match attr(e, name) {
                Some(actual) => attr_matches(*op, actual, value, *ignore_case),
                None => *op == AttrOp::NotEquals,
            },
            Simple::Nth {
                a,
                b,
                of_type,
                from_end,
            } => nth_matches(*a, *b, sibling_position(e, *of_type, *from_end)),
            Simple::Only { of_type } => {
                sibling_position(e, *of_type, false) == 1
                    && sibling_position(e, *of_type, true) == 1
            }
            Simple::Empty => e.children().all(|c| c.as_comment().is_some()),
            Simple::Root => e.parent().is_none(),
            Simple::Not(list) => !list.iter().any(|c| c.matches(e)),
        }
    }
}

impl Compound {
    fn universal() -> Compound {
        Compound {
            tag: None,
            simples: Vec::new(),
        }
    }

    fn is_universal(&self) -> bool {
        self.tag.is_none() && self.simples.is_empty()
    }

    fn matches(&self, e: Node<'_>) -> bool {
        let Some(name) = e.name() else {
            return false;
        };
        if let Some(tag) = &self.tag {
            // Foreign content keeps camelCase names (`linearGradient`).
            if !name.eq_ignore_ascii_case(tag) {
                return false;
            }
        }
        self.simples.iter().all(|s| s.matches(e))
    }
}

impl Complex {
    /// Whether `subject` (an element, or `None` for the document root) is what this
    /// member selects; `ctx` is the context node and `lo` the smallest node index in
    /// scope.
    fn subject_matches(&self, subject: Option<Node<'_>>, ctx: Option<usize>, lo: usize) -> bool {
        if self.parts.is_empty() {
            return subject.map(|n| n.index()) == ctx;
        }
        match subject {
            Some(e) if e.index() >= lo => {
                match_chain(&self.parts, &self.combs, e, lo) == Outcome::Matched
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------
// Matching

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Matched,
    /// Try the next candidate for the compound on the right.
    NotMatched,
    /// Ran out of ancestors: no other candidate to the right can do better (every
    /// alternative has a subset of these ancestors), which keeps `a b c d` from
    /// going exponential on deep trees.
    NotMatchedGlobally,
}

fn match_chain(parts: &[Compound], combs: &[Combinator], e: Node<'_>, lo: usize) -> Outcome {
    let Some((last, left)) = parts.split_last() else {
        return Outcome::Matched;
    };
    if !last.matches(e) {
        return Outcome::NotMatched;
    }
    let Some((comb, left_combs)) = combs.split_last() else {
        return Outcome::Matched;
    };
    let in_scope = |n: &Node<'_>| n.index() >= lo;
    match comb {
        Combinator::Child => match e.parent().filter(in_scope) {
            Some(parent) => match_chain(left, left_combs, parent, lo),
            None => Outcome::NotMatchedGlobally,
        },
        Combinator::Descendant | Combinator::DescendantOrSelf => {
            let mut candidate = if *comb == Combinator::Descendant {
                e.parent()
            } else {
                Some(e)
            };
            while let Some(a) = candidate.filter(in_scope) {
                match match_chain(left, left_combs, a, lo) {
                    Outcome::NotMatched => candidate = a.parent(),
                    done => return done,
                }
            }
            Outcome::NotMatchedGlobally
        }
        Combinator::Adjacent | Combinator::Sibling => {
            let mut candidate = prev_element(e);
            while let Some(s) = candidate.filter(in_scope) {
                match match_chain(left, left_combs, s, lo) {
                    Outcome::NotMatched if *comb == Combinator::Sibling => {
                        candidate = prev_element(s)
                    }
                    Outcome::NotMatched => return Outcome::NotMatched,
                    done => return done,
                }
            }
            Outcome::NotMatched
        }
    }
}

/// Attribute lookup; names are compared ASCII-case-insensitively because foreign
/// content keeps camelCase attribute names (`viewBox`).
fn attr<'a>(e: Node<'a>, name: &str) -> Option<&'a str> {
    e.attrs()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn attr_matches(op: AttrOp, actual: &str, want: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let (hay, needle) = (actual.as_bytes(), want.as_bytes());
    let bytes_eq = |a: &[u8], b: &[u8]| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let starts = || hay.len() >= needle.len() && bytes_eq(&hay[..needle.len()], needle);
    match op {
        AttrOp::Exists => true,
        AttrOp::Equals => eq(actual, want),
        AttrOp::NotEquals => !eq(actual, want),
        // Per the spec, empty (or whitespace-containing for `~=`) values never match.
        AttrOp::Includes => {
            !want.is_empty()
                && !want.contains(is_ws)
                && actual.split_ascii_whitespace().any(|w| eq(w, want))
        }
        AttrOp::DashMatch => {
            eq(actual, want) || (hay.len() > needle.len() && hay[needle.len()] == b'-' && starts())
        }
        AttrOp::Prefix => !want.is_empty() && starts(),
        AttrOp::Suffix => {
            !want.is_empty()
                && hay.len() >= needle.len()
                && bytes_eq(&hay[hay.len() - needle.len()..], needle)
        }
        AttrOp::Substring => {
            !want.is_empty()
                && if ignore_case {
                    hay.windows(needle.len())
                        .any(|w| w.eq_ignore_ascii_case(needle))
                } else {
                    actual.contains(want)
                }
        }
    }
}

fn prev_element<'a>(e: Node<'a>) -> Option<Node<'a>> {
    let mut cur = e.prev();
    while let Some(n) = cur {
        if n.name().is_some() {
            return Some(n);
        }
        cur = n.prev();
    }
    None
}

/// 1-based position of `e` among its element siblings (of the same type if
/// `of_type`), counted from the end if `from_end`.
fn sibling_position<'a>(e: Node<'a>, of_type: bool, from_end: bool) -> i64 {
    let name = e.name();
    let step = |n: Node<'a>| if from_end { n.next() } else { n.prev() };
    let mut position = 1;
    let mut cur = step(e);
    while let Some(n) = cur {
        if let Some(sibling) = n.name() {
            if !of_type || name.is_some_and(|own| own.eq_ignore_ascii_case(sibling)) {
                position += 1;
            }
        }
        cur = step(n);
    }
    position
}

/// Whether `position = a*n + b` for some integer `n >= 0`.
fn nth_matches(a: i64, b: i64, position: i64) -> bool {
    if a == 0 {
        return position == b;
    }
    let diff = position - b;
    diff % a == 0 && diff / a >= 0
}

/// One past the last node index of `node`'s subtree (`usize::MAX` when the subtree
/// runs to the end of the document), using the fact that `select` stores nodes in
/// document order.
fn subtree_end(node: Node<'_>) -> usize {
    let mut cur = node;
    loop {
        if let Some(next) = cur.raw().next {
            return next;
        }
        match cur.parent() {
            Some(parent) => cur = parent,
            None => return usize::MAX,
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C')
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-'
}

/// Parses `an+b`, `odd`, `even` (whitespace already removed, lowercased).
fn parse_nth(s: &str) -> Option<(i64, i64)> {
    // i32 bounds keep later arithmetic on positions far from overflow.
    let int = |s: &str| s.parse::<i32>().ok().map(i64::from);
    match s {
        "odd" => return Some((2, 1)),
        "even" => return Some((2, 0)),
        _ => {}
    }
    let Some(n) = s.find('n') else {
        return Some((0, int(s)?));
    };
    let (a, b) = (&s[..n], &s[n + 1..]);
    let a = match a {
        "" | "+" => 1,
        "-" => -1,
        _ => int(a)?,
    };
    let b = match b {
        "" => 0,
        _ if b.starts_with(['+', '-']) => int(b)?,
        _ => return None,
    };
    Some((a, b))
}

struct Parser<'q> {
    src: &'q str,
    /// Byte offset; always on a char boundary.
    pos: usize,
    depth: usize,
}

type PResult<T> = Result<T, SelectorError>;

impl<'q> Parser<'q> {
    fn rest(&self) -> &'q str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
        self.pos != start
    }

    fn column(&self, pos: usize) -> usize {
        self.src.get(..pos).map_or(0, |s| s.chars().count()) + 1
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> SelectorError {
        SelectorError::Syntax {
            query: self.src.to_string(),
            message: message.into(),
            position: self.column(pos),
        }
    }

    fn unsupported(&self, pos: usize, feature: impl Into<String>) -> SelectorError {
        SelectorError::Unsupported {
            query: self.src.to_string(),
            feature: feature.into(),
            position: self.column(pos),
        }
    }

    fn expected(&self, what: &str) -> SelectorError {
        match self.peek() {
            None => self.error_at(self.pos, format!("expected {what}")),
            Some(c) => self.error_at(
                self.pos,
                format!("expected {what}, found `{}`", c.escape_debug()),
            ),
        }
    }

    fn parse_group(&mut self) -> PResult<Vec<Complex>> {
        let mut members = Vec::new();
        self.skip_ws();
        loop {
            members.push(self.parse_complex()?);
            self.skip_ws();
            match self.peek() {
                None => return Ok(members),
                Some(',') => {
                    self.bump();
                    self.skip_ws();
                }
                Some(c) => {
                    return Err(
                        self.error_at(self.pos, format!("unexpected `{}`", c.escape_debug()))
                    )
                }
            }
        }
    }

    fn parse_complex(&mut self) -> PResult<Complex> {
        let mut parts = Vec::new();
        let mut combs = Vec::new();
        let mut pseudo = None;
        loop {
            if self.rest().starts_with("::") {
                // After a combinator, `::text` stands for `*::text`.
                if !parts.is_empty() {
                    parts.push(Compound::universal());
                }
                pseudo = Some(self.parse_pseudo_element()?);
                break;
            }
            if parts.len() >= MAX_COMPOUNDS {
                return Err(self.error_at(
                    self.pos,
                    format!("more than {MAX_COMPOUNDS} compound selectors"),
                ));
            }
            parts.push(self.parse_compound()?);
            if self.rest().starts_with("::") {
                pseudo = Some(self.parse_pseudo_element()?);
                break;
            }
            let had_ws = self.skip_ws();
            let comb = match self.peek() {
                None | Some(',') => break,
                Some('>') => Combinator::Child,
                Some('+') => Combinator::Adjacent,
                Some('~') => Combinator::Sibling,
                Some(_) if had_ws => Combinator::Descendant,
                Some(c) => {
                    return Err(
                        self.error_at(self.pos, format!("unexpected `{}`", c.escape_debug()))
                    )
                }
            };
            if comb != Combinator::Descendant {
                self.bump();
                self.skip_ws();
            }
            combs.push(comb);
        }
        if pseudo.is_some() {
            self.skip_ws();
            if !matches!(self.peek(), None | Some(',')) {
                return Err(self.error_at(self.pos, "pseudo-element must end the selector"));
            }
        }
        if pseudo.is_some()
            && parts.last().is_some_and(Compound::is_universal)
            && combs.last() == Some(&Combinator::Descendant)
        {
            if let Some(last) = combs.last_mut() {
                *last = Combinator::DescendantOrSelf;
            }
        }
        Ok(Complex {
            parts,
            combs,
            pseudo,
        })
    }

    fn parse_compound(&mut self) -> PResult<Compound> {
        let start = self.pos;
        let mut tag = None;
        if !self.eat('*') {
            if let Some(name) = self.parse_ident()? {
                tag = Some(name.to_ascii_lowercase().into_boxed_str());
            }
        }
        if self.peek() == Some('|') {
            return Err(self.unsupported(self.pos, "namespace prefix `|`"));
        }
        let mut simples = Vec::new();
        loop {
            match self.peek() {
                Some('#') => {
                    self.bump();
                    let mut id = String::new();
                    self.parse_name_chars(&mut id)?;
                    if id.is_empty() {
                        return Err(self.expected("id after `#`"));
                    }
                    simples.push(Simple::Id(id.into()));
                }
                Some('.') => {
                    self.bump();
                    match self.parse_ident()? {
                        Some(class) => simples.push(Simple::Class(class.into())),
                        None => return Err(self.expected("class name after `.`")),
                    }
                }
                Some('[') => simples.push(self.parse_attribute()?),
                Some(':') if self.peek2() != Some(':') => simples.push(self.parse_pseudo_class()?),
                _ => break,
            }
        }
        if self.pos == start {
            return Err(self.expected("selector"));
        }
        simples.sort_by_key(Simple::cost);
        Ok(Compound { tag, simples })
    }

    fn parse_attribute(&mut self) -> PResult<Simple> {
        self.bump(); // `[`
        self.skip_ws();
        if self.peek() == Some('|') || self.rest().starts_with("*|") {
            return Err(self.unsupported(self.pos, "namespace prefix `|`"));
        }
        let name = match self.parse_ident()? {
            Some(name) => name.to_ascii_lowercase(),
            None => return Err(self.expected("attribute name")),
        };
        if self.peek() == Some('|') && self.peek2() != Some('=') {
            return Err(self.unsupported(self.pos, "namespace prefix `|`"));
        }
        self.skip_ws();
        let op = match self.peek() {
            Some(']') => {
                self.bump();
                return Ok(Simple::Attr {
                    name: name.into(),
                    op: AttrOp::Exists,
                    value: "".into(),
                    ignore_case: false,
                });
            }
            Some('=') => AttrOp::Equals,
            Some(c) if self.peek2() == Some('=') => match c {
                '~' => AttrOp::Includes,
                '|' => AttrOp::DashMatch,
                '^' => AttrOp::Prefix,
                '$' => AttrOp::Suffix,
                '*' => AttrOp::Substring,
                '!' => AttrOp::NotEquals,
                _ => return Err(self.expected("`]` or an attribute operator")),
            },
            None => return Err(self.expected("`]`")),
            Some(_) => return Err(self.expected("`]` or an attribute operator")),
        };
        self.pos += if op == AttrOp::Equals { 1 } else { 2 };
        self.skip_ws();
        let value = match self.peek() {
            Some(quote @ ('"' | '\'')) => self.parse_string(quote)?,
            _ => self.parse_unquoted_value()?,
        };
        let mut ignore_case = false;
        if self.skip_ws() {
            match self.peek() {
                Some('i' | 'I') => {
                    self.bump();
                    ignore_case = true;
                    self.skip_ws();
                }
                Some('s' | 'S') => {
                    self.bump();
                    self.skip_ws();
                }
                _ => {}
            }
        }
        if !self.eat(']') {
            return Err(self.expected("`]`"));
        }
        let value = if ignore_case {
            value.to_ascii_lowercase()
        } else {
            value
        };
        Ok(Simple::Attr {
            name: name.into(),
            op,
            value: value.into(),
            ignore_case,
        })
    }

    /// Unquoted values are accepted more loosely than CSS identifiers
    /// (`[href^=/p/]`, `[colspan=2]`), since scrapers write them all the time and
    /// nothing else can be meant.
    fn parse_unquoted_value(&mut self) -> PResult<String> {
        let mut value = String::new();
        loop {
            match self.peek() {
                Some('\\') => value.push(self.parse_escape()?),
                Some(c) if !is_ws(c) && !matches!(c, ']' | '"' | '\'') => {
                    self.bump();
                    value.push(c);
                }
                _ => break,
            }
        }
        if value.is_empty() {
            return Err(self.expected("attribute value"));
        }
        Ok(value)
    }

    fn parse_string(&mut self, quote: char) -> PResult<String> {
        let start = self.pos;
        self.bump();
        let mut value = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error_at(start, "unterminated string")),
                Some(c) if c == quote => {
                    self.bump();
                    return Ok(value);
                }
                Some('\\') => match self.peek2() {
                    None => return Err(self.error_at(start, "unterminated string")),
                    Some('\n') => self.pos += 2,
                    Some(_) => value.push(self.parse_escape()?),
                },
                Some(c) => {
                    self.bump();
                    value.push(c);
                }
            }
        }
    }

    fn parse_escape(&mut self) -> PResult<char> {
        let start = self.pos;
        self.bump(); // `\`
        match self.peek() {
            None => Err(self.error_at(start, "incomplete escape")),
            Some('\n' | '\r' | '\x0C') => Err(self.error_at(start, "invalid escape")),
            Some(c) if c.is_ascii_hexdigit() => {
                let mut code = 0u32;
                let mut digits = 0;
                while digits < 6 {
                    match self.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            code = code * 16 + d;
                            digits += 1;
                            self.bump();
                        }
                        None => break,
                    }
                }
                if self.peek().is_some_and(is_ws) {
                    self.bump();
                }
                Ok(char::from_u32(code)
                    .filter(|&c| c != '\0')
                    .unwrap_or('\u{FFFD}'))
            }
            Some(c) => {
                self.bump();
                Ok(c)
            }
        }
    }

    fn at_ident_start(&self) -> bool {
        let mut chars = self.rest().chars();
        let escape_ok = |c: Option<char>| c.is_some_and(|c| !matches!(c, '\n' | '\r' | '\x0C'));
        match chars.next() {
            Some('-') => match chars.next() {
                Some('\\') => escape_ok(chars.next()),
                Some(c) => is_name_start(c) || c == '-',
                None => false,
            },
            Some('\\') => escape_ok(chars.next()),
            Some(c) => is_name_start(c),
            None => false,
        }
    }

    fn parse_name_chars(&mut self, out: &mut String) -> PResult<()> {
        loop {
            match self.peek() {
                Some('\\') => out.push(self.parse_escape()?),
                Some(c) if is_name_char(c) => {
                    self.bump();
                    out.push(c);
                }
                _ => return Ok(()),
            }
        }
    }

    /// An identifier, or `None` (consuming nothing) if none starts here.
    fn parse_ident(&mut self) -> PResult<Option<String>> {
        if !self.at_ident_start() {
            return Ok(None);
        }
        let mut ident = String::new();
        if self.eat('-') {
            ident.push('-');
        }
        self.parse_name_chars(&mut ident)?;
        Ok(Some(ident))
    }

    fn parse_pseudo_class(&mut self) -> PResult<Simple> {
        let start = self.pos;
        self.bump(); // `:`
        let name = match self.parse_ident()? {
            Some(name) => name.to_ascii_lowercase(),
            None => return Err(self.expected("pseudo-class name after `:`")),
        };
        let functional = self.eat('(');
        let nth = |a, b, of_type, from_end| Simple::Nth {
            a,
            b,
            of_type,
            from_end,
        };
        let simple = match (name.as_str(), functional) {
            ("first-child", false) => nth(0, 1, false, false),
            ("last-child", false) => nth(0, 1, false, true),
            ("first-of-type", false) => nth(0, 1, true, false),
            ("last-of-type", false) => nth(0, 1, true, true),
            ("only-child", false) => Simple::Only { of_type: false },
            ("only-of-type", false) => Simple::Only { of_type: true },
            ("empty", false) => Simple::Empty,
            ("root", false) => Simple::Root,
            ("nth-child", true) => self.parse_nth_args(|a, b| nth(a, b, false, false))?,
            ("nth-last-child", true) => self.parse_nth_args(|a, b| nth(a, b, false, true))?,
            ("nth-of-type", true) => self.parse_nth_args(|a, b| nth(a, b, true, false))?,
            ("nth-last-of-type", true) => self.parse_nth_args(|a, b| nth(a, b, true, true))?,
            ("not", true) => self.parse_not()?,
            ("text" | "attr", _) => {
                return Err(self.error_at(
                    start,
                    format!("unknown pseudo-class `:{name}` (did you mean `::{name}`?)"),
                ))
            }
            (
                "first-child" | "last-child" | "first-of-type" | "last-of-type" | "only-child"
                | "only-of-type" | "empty" | "root",
                true,
            ) => {
                return Err(
                    self.error_at(start, format!("pseudo-class `:{name}` takes no arguments"))
                )
            }
            (
                "nth-child" | "nth-last-child" | "nth-of-type" | "nth-last-of-type" | "not",
                false,
            ) => {
                return Err(self.error_at(
                    start,
                    format!("pseudo-class `:{name}` needs an argument in parentheses"),
                ))
            }
            _ => return Err(self.unsupported(start, format!("pseudo-class `:{name}`"))),
        };
        Ok(simple)
    }

    fn parse_nth_args(&mut self, make: impl FnOnce(i64, i64) -> Simple) -> PResult<Simple> {
        let start = self.pos;
        let Some(len) = self.rest().find(')') else {
            self.pos = self.src.len();
            return Err(self.expected("`)`"));
        };
        let raw = &self.rest()[..len];
        let compact: String = raw
            .chars()
            .filter(|&c| !is_ws(c))
            .collect::<String>()
            .to_ascii_lowercase();
        match parse_nth(&compact) {
            Some((a, b)) => {
                self.pos += len + 1;
                Ok(make(a, b))
            }
            None => Err(self.error_at(start, format!("invalid nth expression `{}`", raw.trim()))),
        }
    }

    fn parse_not(&mut self) -> PResult<Simple> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error_at(self.pos, "`:not()` nested too deeply"));
        }
        let mut list = Vec::new();
        self.skip_ws();
        loop {
            if self.rest().starts_with("::") {
                return Err(self.error_at(self.pos, "pseudo-elements are not allowed in `:not()`"));
            }
            list.push(self.parse_compound()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                    self.skip_ws();
                }
                Some(')') => {
                    self.bump();
                    break;
                }
                _ if self.rest().starts_with("::") => {
                    return Err(
                        self.error_at(self.pos, "pseudo-elements are not allowed in `:not()`")
                    )
                }
                _ => return Err(self.expected("`)`")),
            }
        }
        self.depth -= 1;
        Ok(Simple::Not(list))
    }

    fn parse_pseudo_element(&mut self) -> PResult<PseudoElement> {
        let start = self.pos;
        self.pos += 2; // `::`
        let name = match self.parse_ident()? {
            Some(name) => name.to_ascii_lowercase(),
            None => return Err(self.expected("pseudo-element name after `::`")),
        };
        match name.as_str() {
            "text" => {
                if self.peek() == Some('(') {
                    return Err(self.error_at(self.pos, "`::text` takes no arguments"));
                }
                Ok(PseudoElement::Text)
            }
            "attr" => {
                if !self.eat('(') {
                    return Err(self.expected("`(` after `::attr`"));
                }
                self.skip_ws();
                let attr = match self.peek() {
                    Some(quote @ ('"' | '\'')) => self.parse_string(quote)?,
                    _ => match self.parse_ident()? {
                        Some(attr) => attr,
                        None => return Err(self.expected("attribute name")),
                    },
                };
                if attr.is_empty() {
                    return Err(self.error_at(start, "empty attribute name in `::attr()`"));
                }
                self.skip_ws();
                if !self.eat(')') {
                    return Err(self.expected("`)`"));
                }
                Ok(PseudoElement::Attr(attr.to_ascii_lowercase().into()))
            }
            _ => Err(self.unsupported(start, format!("pseudo-element `::{name}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn css(html: &str, query: &str) -> Vec<String> {
        Html::parse(html)
            .css(query)
            .unwrap_or_else(|e| panic!("{e}"))
            .getall()
    }

    fn names(html: &Html, query: &str) -> Vec<String> {
        html.css(query)
            .unwrap_or_else(|e| panic!("{e}"))
            .nodes()
            .map(|n| n.name().unwrap_or("?").to_string())
            .collect()
    }

    fn err(query: &str) -> String {
        match Css::parse(query) {
            Ok(sel) => panic!("`{query}` parsed: {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    const PAGE: &str = r#"<!DOCTYPE html><html><head><title>T</title></head><body>
        <div id="main" class="box  wide">
          <h1 class="title">Hello <b>big</b> world</h1>
          <ul class="nav">
            <li class="first"><a href="/p/1" class="nav-link" lang="en-US">One</a></li>
            <li><a href="/p/2" class="nav-link x" data-k="a b">Two</a></li>
            <li class="last"><a href="https://ex.com/q" TITLE="Ext">Three</a></li>
          </ul>
          <p>para <span>one</span></p>
          <h2>Sub</h2>
        </div></body></html>"#;

    /// Type selectors match case-insensitively.
    #[test]
    fn type_selector_case_insensitive() {
        assert_eq!(css(PAGE, "LI").len(), 3);
        assert_eq!(css(PAGE, "Title::text"), ["T"]);
    }

    /// `*` matches every element.
    #[test]
    fn universal() {
        let html = Html::parse("<p><b></b><i></i></p>");
        assert_eq!(names(&html, "p *"), ["b", "i"]);
        assert_eq!(names(&html, "*").len(), 6); // html head body p b i
    }

    /// `.class` matches one entry of a whitespace-separated class list.
    #[test]
    fn class_selector() {
        let html = Html::parse("<p class=\" a\tb\nc \">1</p><p class=\"ab\">2</p><p>3</p>");
        assert_eq!(css("<p class=\" a\tb\nc \">1</p>", "p.b::text"), ["1"]);
        assert_eq!(names(&html, ".a.c").len(), 1);
        assert_eq!(html.css(".ab::text").unwrap().getall(), ["2"]);
        assert!(
            html.css(".A").unwrap().is_empty(),
            "classes are case-sensitive"
        );
    }

    /// Nested elements with the same class are all matched, outer first.
    #[test]
    fn nested_classes() {
        let html = r#"<div class="c" id="1"><div class="c" id="2"><div class="c" id="3"></div></div></div>"#;
        assert_eq!(css(html, ".c::attr(id)"), ["1", "2", "3"]);
        assert_eq!(css(html, ".c .c::attr(id)"), ["2", "3"]);
        assert_eq!(css(html, ".c > .c > .c::attr(id)"), ["3"]);
    }

    /// `#id` matches the id attribute exactly.
    #[test]
    fn id_selector() {
        assert_eq!(css(PAGE, "#main > h2::text"), ["Sub"]);
        assert!(css(PAGE, "#MAIN").is_empty());
        assert_eq!(css(r#"<p id="1x">a</p>"#, "#1x::text"), ["a"]);
    }

    /// All attribute operators, quoting styles and the `i` flag.
    #[test]
    fn attribute_selectors() {
        assert_eq!(css(PAGE, "a[title]::text"), ["Three"]);
        assert_eq!(css(PAGE, "a[href=\"/p/2\"]::text"), ["Two"]);
        assert_eq!(css(PAGE, "a[href='/p/2']::text"), ["Two"]);
        assert_eq!(css(PAGE, "a[href=/p/2]::text"), ["Two"]);
        assert_eq!(css(PAGE, "a[data-k=\"a b\"]::text"), ["Two"]);
        assert_eq!(css(PAGE, "a[href^=\"/p/\"]::text"), ["One", "Two"]);
        assert_eq!(css(PAGE, "a[href$='/q']::text"), ["Three"]);
        assert_eq!(css(PAGE, "a[href*=ex]::text"), ["Three"]);
        assert_eq!(css(PAGE, "a[class~=x]::text"), ["Two"]);
        assert_eq!(css(PAGE, "a[lang|=en]::text"), ["One"]);
        assert_eq!(css(PAGE, "a[lang|=en-US]::text"), ["One"]);
        assert!(css(PAGE, "a[lang|=e]").is_empty());
        assert_eq!(css(PAGE, "a[title!=Ext]::text"), ["One", "Two"]);
        assert_eq!(css(PAGE, "a[title=ext i]::text"), ["Three"]);
        assert_eq!(css(PAGE, "a[href^=/P/ i]::text"), ["One", "Two"]);
        assert_eq!(css(PAGE, "a[ href = '/p/1' s ]::text"), ["One"]);
        assert!(
            css(PAGE, "a[href^='']").is_empty(),
            "empty prefix never matches"
        );
        assert!(css(PAGE, "a[class~='a b']").is_empty());
        assert_eq!(
            css(
                r#"<table><tr><td colspan=2>x</td></tr></table>"#,
                "[colspan=2]::text"
            ),
            ["x"]
        );
    }

    /// Attribute names match case-insensitively, values case-sensitively.
    #[test]
    fn attribute_case() {
        assert_eq!(css(PAGE, "a[TiTlE=Ext]::text"), ["Three"]);
        assert!(css(PAGE, "a[title=ext]").is_empty());
        let svg = r#"<svg viewBox="0 0 1 1"><linearGradient id="g"/></svg>"#;
        assert_eq!(css(svg, "svg::attr(viewbox)"), ["0 0 1 1"]);
        assert_eq!(css(svg, "lineargradient::attr(id)"), ["g"]);
    }

    /// Compound selectors combine tag, classes and attributes.
    #[test]
    fn compound() {
        assert_eq!(
            css(PAGE, r#"a.nav-link[href^="/p/"]::attr(href)"#),
            ["/p/1", "/p/2"]
        );
        assert_eq!(css(PAGE, "a.nav-link.x::text"), ["Two"]);
        assert!(css(PAGE, "li.nav-link").is_empty());
    }

    /// Descendant, child, adjacent and general sibling combinators.
    #[test]
    fn combinators() {
        let html = Html::parse(PAGE);
        assert_eq!(names(&html, "div a").len(), 3);
        assert!(names(&html, "div > a").is_empty());
        assert_eq!(names(&html, "ul > li > a").len(), 3);
        assert_eq!(names(&html, "h1 + ul"), ["ul"]);
        assert!(names(&html, "h1 + p").is_empty());
        assert_eq!(names(&html, "h1 ~ p"), ["p"]);
        assert_eq!(css(PAGE, "li.first ~ li a::text"), ["Two", "Three"]);
        assert_eq!(css(PAGE, "li.first+li a::text"), ["Two"]);
        assert_eq!(css(PAGE, "body>div>h1>b::text"), ["big"]);
        assert_eq!(css(PAGE, "html div ul li a::text").len(), 3);
    }

    /// A group is merged in document order, without duplicates.
    #[test]
    fn group_order_and_dedup() {
        let html = Html::parse(PAGE);
        assert_eq!(names(&html, "h2, h1, ul"), ["h1", "ul", "h2"]);
        assert_eq!(names(&html, "li, li.first, ul > li").len(), 3);
        assert_eq!(
            css("<div>a<span>b</span>c</div>", "div::text, span"),
            ["a", "<span>b</span>", "c"]
        );
        assert_eq!(
            css(PAGE, "a::attr(title), a::attr(href), a[title]::attr(href)"),
            ["/p/1", "/p/2", "https://ex.com/q", "Ext"]
        );
    }

    /// `::text` yields each direct text child separately, not descendants' text.
    #[test]
    fn text_pseudo_element() {
        assert_eq!(css(PAGE, "h1::text"), ["Hello ", " world"]);
        assert_eq!(css(PAGE, "h1 ::text"), ["Hello ", "big", " world"]);
        assert_eq!(css(PAGE, "h1 *::text"), ["Hello ", "big", " world"]);
        assert_eq!(css(PAGE, "h1 > *::text"), ["big"]);
        assert_eq!(css(PAGE, "h1 b::text"), ["big"]);
        assert!(css("<p></p>", "p::text").is_empty());
    }

    /// `*::text` gives every text node in document order.
    #[test]
    fn universal_text() {
        assert_eq!(
            css("<div>a<span>b</span>c</div>", "*::text"),
            ["a", "b", "c"]
        );
        assert_eq!(
            css("<div>a<span>b</span>c</div>", "div *::text"),
            ["a", "b", "c"]
        );
    }

    /// `::attr(name)` yields values and skips elements without the attribute.
    #[test]
    fn attr_pseudo_element() {
        assert_eq!(
            css(PAGE, "a::attr(href)"),
            ["/p/1", "/p/2", "https://ex.com/q"]
        );
        assert_eq!(css(PAGE, "a::attr(title)"), ["Ext"]);
        assert_eq!(css(PAGE, "a::attr( 'title' )"), ["Ext"]);
        assert_eq!(css(PAGE, "a::ATTR(TITLE)"), ["Ext"]);
        assert!(css(PAGE, "a::attr(nope)").is_empty());
        assert_eq!(css(PAGE, "li ::attr(href)").len(), 3);
        let nested = r#"<a href="x"><b href="y"></b></a>"#;
        assert_eq!(css(nested, "a ::attr(href)"), ["x", "y"]);
        assert_eq!(css(nested, "a *::attr(href)"), ["x", "y"]);
        assert_eq!(css(nested, "a > *::attr(href)"), ["y"]);
    }

    /// A bare pseudo-element applies to the context element.
    #[test]
    fn bare_pseudo_elements() {
        let html = Html::parse(PAGE);
        let links = html.css("a").unwrap();
        assert_eq!(
            links.css("::attr(href)").unwrap().getall(),
            ["/p/1", "/p/2", "https://ex.com/q"]
        );
        let h1 = html.css("h1").unwrap();
        assert_eq!(h1.css("::text").unwrap().getall(), ["Hello ", " world"]);
        assert!(
            html.css("::text").unwrap().is_empty(),
            "the root has no text children"
        );
        assert!(html.css("::attr(id)").unwrap().is_empty());
    }

    /// `get` / `getall` on elements return outer HTML.
    #[test]
    fn get_returns_outer_html() {
        let html = Html::parse(PAGE);
        assert_eq!(
            html.css("p").unwrap().get().as_deref(),
            Some("<p>para <span>one</span></p>")
        );
        assert_eq!(html.css("span").unwrap().getall(), ["<span>one</span>"]);
        assert_eq!(html.css("nope").unwrap().get(), None);
    }

    /// Chained `.css()` applies to every element match and merges the results.
    #[test]
    fn chaining() {
        let html = Html::parse(PAGE);
        let items = html.css("li").unwrap();
        assert_eq!(
            items.css("a::text").unwrap().getall(),
            ["One", "Two", "Three"]
        );
        assert_eq!(items.css("a").unwrap().len(), 3);
        assert!(
            items.css("li").unwrap().is_empty(),
            "context itself is not returned"
        );
        let texts = html.css("h1::text").unwrap();
        assert!(
            texts.css("b").unwrap().is_empty(),
            "text matches have no children"
        );
        assert!(items.css("a[").is_err());
    }

    /// Chaining from nested contexts yields no duplicates and keeps document order.
    #[test]
    fn chaining_nested_contexts() {
        let html = Html::parse("<div><div><p>1</p></div><p>2</p></div><div><p>3</p></div>");
        let divs = html.css("div").unwrap();
        assert_eq!(divs.len(), 3);
        assert_eq!(divs.css("p::text").unwrap().getall(), ["1", "2", "3"]);
        assert_eq!(divs.css("div p::text").unwrap().getall(), ["1", "2", "3"]);
        assert_eq!(divs.css("div div p::text").unwrap().getall(), ["1"]);
    }

    /// `select_from` keeps results inside the node but lets left compounds be the node.
    #[test]
    fn select_from_scope() {
        let html = Html::parse(
            r#"<div class="item"><span>in</span><p class="item"><span>deep</span></p></div>
               <span>out</span>"#,
        );
        let items = html.css("div.item").unwrap();
        let sel = |q: &str| Css::parse(q).unwrap().select_from(&items[0]).getall();
        assert_eq!(sel("span::text"), ["in", "deep"]);
        assert_eq!(sel("div.item span::text"), ["in", "deep"]);
        assert_eq!(sel("div.item > span::text"), ["in"]);
        assert_eq!(sel(".item .item span::text"), ["deep"]);
        assert!(
            sel("body span").is_empty(),
            "ancestors outside the context do not count"
        );
        assert!(sel("div").is_empty());
        assert_eq!(sel("*::text"), ["in", "deep"]);
        assert_eq!(sel("div.item::attr(class)"), ["item"]);
        assert_eq!(sel(":first-child::text"), ["in", "deep"]);
        assert_eq!(sel("span:first-child::text"), ["in", "deep"]);
    }

    /// Broken HTML (unclosed tags, stray end tags) still parses and matches.
    #[test]
    fn broken_html() {
        let html = "<div class=a><p>one<p>two</div></div><li>x<li>y</span><div class=a>z";
        assert_eq!(css(html, "p::text"), ["one", "two"]);
        assert_eq!(css(html, "li::text"), ["x", "y"]);
        assert_eq!(css(html, "div.a::text"), ["z"]);
        assert_eq!(css("<table><td>cell", "table td::text"), ["cell"]);
        assert_eq!(css("<a href='x>y</a>", "a").len(), 0);
        assert_eq!(css("", "*").len(), 3);
    }

    /// Entities are decoded in text and attribute values.
    #[test]
    fn entities() {
        let html =
            r#"<p title="a &amp; b &quot;c&quot;">x &lt;y&gt; &amp;&nbsp;&#233;&eacute;</p>"#;
        assert_eq!(css(html, "p::text"), ["x <y> &\u{a0}éé"]);
        assert_eq!(css(html, "p::attr(title)"), ["a & b \"c\""]);
        assert_eq!(
            css(html, "p").first().map(String::as_str),
            Some("<p title=\"a &amp; b &quot;c&quot;\">x &lt;y&gt; &amp;&nbsp;éé</p>")
        );
    }

    /// Structural pseudo-classes count element siblings only.
    #[test]
    fn structural_pseudo_classes() {
        let list = "<ul>\n<li>1</li><!--c--><li>2</li> <li>3</li><li>4</li><li>5</li></ul>";
        assert_eq!(css(list, "li:first-child::text"), ["1"]);
        assert_eq!(css(list, "li:last-child::text"), ["5"]);
        assert_eq!(css(list, "li:nth-child(2)::text"), ["2"]);
        assert_eq!(css(list, "li:nth-child(odd)::text"), ["1", "3", "5"]);
        assert_eq!(css(list, "li:nth-child(EVEN)::text"), ["2", "4"]);
        assert_eq!(css(list, "li:nth-child(2n+1)::text"), ["1", "3", "5"]);
        assert_eq!(css(list, "li:nth-child( -n + 2 )::text"), ["1", "2"]);
        assert_eq!(css(list, "li:nth-child(n+4)::text"), ["4", "5"]);
        assert_eq!(css(list, "li:nth-child(3n-1)::text"), ["2", "5"]);
        assert_eq!(css(list, "li:nth-last-child(2)::text"), ["4"]);
        assert_eq!(css(list, "li:nth-child(0)::text"), Vec::<String>::new());
        let mixed = "<div><p>a</p><span>b</span><p>c</p><i>d</i></div>";
        assert_eq!(css(mixed, "p:nth-of-type(2)::text"), ["c"]);
        assert_eq!(css(mixed, "p:first-of-type::text"), ["a"]);
        assert_eq!(css(mixed, "p:last-of-type::text"), ["c"]);
        assert_eq!(css(mixed, "div :only-of-type::text"), ["b", "d"]);
        assert_eq!(css(mixed, "p:nth-last-of-type(1)::text"), ["c"]);
        assert_eq!(css("<p><b>x</b></p>", "b:only-child::text"), ["x"]);
        assert_eq!(
            css("<p><b></b><i><!--c--></i><u> </u></p>", "p :empty").len(),
            2
        );
        assert_eq!(names(&Html::parse("<p>"), ":root"), ["html"]);
    }

    /// `:not()` excludes matching elements and accepts compounds and lists.
    #[test]
    fn not_pseudo_class() {
        assert_eq!(css(PAGE, "li:not(.first) a::text"), ["Two", "Three"]);
        assert_eq!(css(PAGE, "li:not(.first, .last) a::text"), ["Two"]);
        assert_eq!(css(PAGE, "a:not([href^='/'])::text"), ["Three"]);
        assert_eq!(
            css(PAGE, "li:not(li.first):not(:last-child) a::text"),
            ["Two"]
        );
        assert_eq!(css(PAGE, "a:not(:not(.x))::text"), ["Two"]);
    }

    /// CSS escapes in identifiers are decoded.
    #[test]
    fn escapes() {
        let html = r#"<p id="a:b" class="1x">t</p>"#;
        assert_eq!(css(html, r"#a\:b::text"), ["t"]);
        assert_eq!(css(html, r".\31 x::text"), ["t"]);
        assert_eq!(css(html, r#"[id="a\3a b"]::text"#), ["t"]);
    }

    /// Errors name the query and a 1-based position.
    #[test]
    fn error_messages() {
        assert_eq!(
            err("a[href"),
            "invalid CSS selector `a[href`: expected `]` at 7"
        );
        assert_eq!(err(""), "invalid CSS selector ``: expected selector at 1");
        assert_eq!(
            err("a,"),
            "invalid CSS selector `a,`: expected selector at 3"
        );
        assert_eq!(
            err("a,,b"),
            "invalid CSS selector `a,,b`: expected selector, found `,` at 3"
        );
        assert_eq!(
            err("a:hover"),
            "unsupported CSS selector `a:hover`: pseudo-class `:hover` is not supported at 2"
        );
        assert_eq!(
            err("p::before"),
            "unsupported CSS selector `p::before`: pseudo-element `::before` is not supported at 2"
        );
        assert!(err("p:text").contains("did you mean `::text`?"));
        assert!(err("p::text a").contains("pseudo-element must end the selector at 9"));
        assert!(err("a[href='x]").contains("unterminated string at 8"));
        assert!(err("a[href=]").contains("expected attribute value, found `]`"));
        assert!(err("a[href^]").contains("expected `]` or an attribute operator, found `^`"));
        assert!(err("li:nth-child(2n+)").contains("invalid nth expression `2n+`"));
        assert!(err("li:nth-child(2").contains("expected `)` at 15"));
        assert!(err("a::attr").contains("expected `(` after `::attr`"));
        assert!(err("a::attr(href").contains("expected `)`"));
        assert!(err("a > > b").contains("expected selector, found `>`"));
        assert!(err("a)").contains("unexpected `)` at 2"));
        assert!(err("ns|a").starts_with("unsupported"));
        assert!(err("a:not(::text)").contains("not allowed in `:not()`"));
        assert!(
            err("é[x").contains("at 4"),
            "positions count characters, not bytes"
        );
        let e = Css::parse("div..x").unwrap_err();
        assert_eq!(e.position(), 5);
        assert_eq!(e.query(), "div..x");
    }

    /// Hostile queries (very long chains, deep `:not`) are rejected, not overflowed.
    #[test]
    fn limits() {
        assert!(Css::parse(&"a ".repeat(MAX_COMPOUNDS)).is_ok());
        assert!(Css::parse(&"a ".repeat(MAX_COMPOUNDS + 1)).is_err());
        let deep = format!("{}a{}", ":not(".repeat(100), ")".repeat(100));
        assert!(Css::parse(&deep).is_err());
    }

    /// Random garbage never makes the parser (or matching) panic.
    #[test]
    fn fuzz_parser_never_panics() {
        const PIECES: &[&str] = &[
            "a",
            "div",
            "*",
            ".",
            "#",
            "[",
            "]",
            "=",
            "^=",
            "$=",
            "*=",
            "~=",
            "|=",
            "!=",
            "\"",
            "'",
            "\\",
            "\\31 ",
            "(",
            ")",
            ":",
            "::",
            "text",
            "attr",
            "attr(",
            "not(",
            "nth-child(",
            "2n+1",
            "-n",
            "odd",
            ",",
            " ",
            ">",
            "+",
            "~",
            "|",
            "é",
            "\u{0}",
            "\n",
            "i",
            "-",
            "--",
            "first-child",
            "x",
            "0",
            "9999999999",
            "::text",
            "::attr(href)",
            ":not(",
            "\t",
        ];
        let html = Html::parse(PAGE);
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..2000 {
            let mut query = String::new();
            for _ in 0..(next() % 12) {
                query.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            if let Ok(sel) = Css::parse(&query) {
                parsed += 1;
                let list = sel.select(&html);
                let _ = list.getall();
                let _ = list.select(&sel).len();
            }
        }
        for _ in 0..500 {
            let bytes: Vec<u8> = (0..(next() % 24)).map(|_| (next() % 128) as u8).collect();
            let query = String::from_utf8_lossy(&bytes);
            if let Ok(sel) = Css::parse(&query) {
                let _ = sel.select(&html).len();
            }
        }
        assert!(
            parsed > 50,
            "the generator should also produce valid selectors"
        );
    }

    /// Deep trees with many descendant combinators stay fast (no backtracking blowup).
    #[test]
    fn no_exponential_backtracking() {
        let depth = 400;
        let page = format!("{}{}", "<div>".repeat(depth), "</div>".repeat(depth));
        let html = Html::parse(&page);
        let query = format!("{}p", "div ".repeat(30));
        let start = std::time::Instant::now();
        assert!(html.css(&query).unwrap().is_empty());
        assert_eq!(html.css("div div div div").unwrap().len(), depth - 3);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    /// A parsed selector is reusable, shareable across threads and a `select` predicate.
    #[test]
    fn selector_reuse_send_sync_predicate() {
        fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
        assert_traits::<Css>();
        assert_traits::<SelectorError>();
        let sel: Css = "li.first a, h2".parse().unwrap();
        assert_eq!(sel.to_string(), "li.first a, h2");
        let a = Html::parse(PAGE);
        let b = Html::parse("<h2>x</h2>");
        assert_eq!(sel.select(&a).len(), 2);
        assert_eq!(sel.select(&b).len(), 1);
        let found: Vec<_> = a.document().find(&sel).map(|n| n.name()).collect();
        assert_eq!(found, [Some("a"), Some("h2")]);
    }

    /// `Html::find` passes native `select` predicates through.
    #[test]
    fn native_find() {
        use select::predicate::{Attr, Name, Predicate};
        let html = Html::parse(PAGE);
        assert_eq!(html.find(Name("a")).len(), 3);
        assert_eq!(html.find(Name("a").and(Attr("title", "Ext"))).len(), 1);
    }

    /// Hits of every kind, their string forms, and list iteration.
    #[test]
    fn selector_kinds() {
        let html = Html::parse(PAGE);
        let list = html.css("a::attr(href), h2, h2::text").unwrap();
        let kinds: Vec<&str> = list
            .iter()
            .map(|m| match m.hit {
                Hit::Node(_) => "node",
                Hit::Text(_) => "text",
                Hit::Attr(..) => "attr",
                Hit::Root | Hit::Value(_) => "other",
            })
            .collect();
        assert_eq!(kinds, ["attr", "attr", "attr", "node", "text"]);
        assert_eq!(list.nodes().count(), 1);
        assert_eq!(list.first().map(Selector::get).as_deref(), Some("/p/1"));
        assert_eq!((&list).into_iter().count(), 5);
        assert_eq!(list.into_iter().filter(|m| m.node().is_some()).count(), 1);
    }

    /// `sample_page` is deterministic, about the requested size, and selectable.
    #[test]
    fn sample_page_shape() {
        let page = sample_page(100);
        assert_eq!(page, sample_page(100));
        assert!(page.len() >= 100 * 1024 && page.len() < 102 * 1024);
        let html = Html::parse(&page);
        let items = html.css("div.item").unwrap();
        assert!(items.len() > 200);
        assert_eq!(
            html.css("div.item h2 a::attr(href)").unwrap().len(),
            items.len()
        );
        assert_eq!(
            html.css("div.item-3 span.price::text")
                .unwrap()
                .get()
                .as_deref(),
            Some("111.99")
        );
        assert_eq!(
            html.css("li.next a::attr(href)").unwrap().getall(),
            ["/page/2"]
        );
        assert!(sample_page(0).contains("</html>"));
    }
}
