//! A bounded, linear-time HTML tree builder producing [`select::document::Document`]s.
//!
//! `select`'s own `Document::from(&str)` parses into `markup5ever_rcdom` and converts
//! that tree with a function that recurses once per nesting level, so 10,000 nested
//! `<div>`s overflow a worker thread's stack; it also keeps one message per parse
//! error (a body of NUL bytes costs ~50 bytes of RSS per input byte), and html5ever
//! walks its stack of open elements for scope checks at every start tag, so parse
//! time grows with the square of the nesting depth. [`parse_html`] implements
//! html5ever's [`TreeSink`] over an index arena instead: every tree operation is
//! O(1) link surgery (no `Rc`, no recursion anywhere, not even in drop), parse
//! errors are only counted, and the input is fed in small chunks so that parsing can
//! stop as soon as one of the [`HtmlLimits`] is exceeded. A final iterative pass
//! renumbers the arena into document order, which is what `select` and
//! `crate::selector` rely on (see [`parse_html`]); below the limits the result is
//! exactly what `Document::from` gives.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::mem;

use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{
    parse_document, Attribute, ExpandedName, LocalName, Namespace, ParseOpts, QualName,
};
use select::document::Document;
use select::node::{Data, Raw};

/// Deepest a node may sit in the returned document (the `<html>` element is at
/// depth 1); content below it is attached to its deepest allowed ancestor instead,
/// so it is kept, in document order, but the tree stays this shallow.
///
/// 512 is Chrome's `kMaximumHTMLParserDOMTreeDepth`: Blink re-parents elements
/// inserted deeper than that onto the parent's parent, because its own recursive
/// algorithms would otherwise overflow. Ours have the same problem: `select`'s
/// `Node::text()`, `Node::html()` and the html5ever serializer recurse once per
/// level, and 512 frames of them fit any thread's stack. Real pages rarely go past
/// a few dozen levels.
///
/// ```
/// use arachne::selector::tree::{HtmlLimits, MAX_DEPTH};
/// assert_eq!(HtmlLimits::default().max_depth, MAX_DEPTH);
/// ```
pub const MAX_DEPTH: usize = 512;

/// Nesting depth at which parsing stops and the document is reported as truncated
/// ([`HtmlLimitExceeded::Depth`]).
///
/// Flattening (see [`MAX_DEPTH`]) bounds the tree we build, but not html5ever's own
/// stack of open elements, which it walks at every start tag ("has a `p` element in
/// button scope"), so N nested elements cost O(N²). Like libxml2 (and so lxml),
/// which halts with "Excessive depth in document" (at 256 levels, or 2048 with
/// `XML_PARSE_HUGE`), we stop instead: at 4096 levels a start tag costs at most a few
/// thousand steps and the worst document about 10 ms, while no real page comes
/// anywhere near it (content between 512 and 4096 levels is still kept, flattened).
///
/// ```
/// use arachne::selector::tree::{HtmlLimits, MAX_OPEN_ELEMENTS};
/// assert_eq!(HtmlLimits::default().max_open_elements, MAX_OPEN_ELEMENTS);
/// ```
pub const MAX_OPEN_ELEMENTS: usize = 4096;

/// Number of nodes the parser may create before it stops
/// ([`HtmlLimitExceeded::Nodes`]).
///
/// html5ever can create nodes that have no counterpart in the input: the adoption
/// agency and "reconstruct the active formatting elements" clone formatting
/// elements, so a few kilobytes of misnested `<b>`s can ask for millions of
/// elements. Two million is far above real pages (the single-page WHATWG HTML
/// standard, about 13 MB, has roughly a million nodes) and bounds the tree at a few
/// hundred megabytes (about 250 bytes per node while building, arena plus output).
///
/// ```
/// use arachne::selector::tree::{HtmlLimits, MAX_NODES};
/// assert_eq!(HtmlLimits::default().max_nodes, MAX_NODES);
/// ```
pub const MAX_NODES: usize = 2_000_000;

/// Number of attributes the parser may store before it stops
/// ([`HtmlLimitExceeded::Attributes`]).
///
/// The same cloning multiplies attributes: every clone of a formatting element
/// copies its attribute list, so one `<b>` with 100,000 attributes re-opened inside
/// each of a few thousand nested elements would ask for hundreds of millions of
/// them (40 bytes each) while creating only a few thousand nodes. Four million is
/// two per node of [`MAX_NODES`], more than real pages use, and bounds attribute
/// lists at 160 MB.
///
/// ```
/// use arachne::selector::tree::{HtmlLimits, MAX_ATTRIBUTES};
/// assert_eq!(HtmlLimits::default().max_attributes, MAX_ATTRIBUTES);
/// ```
pub const MAX_ATTRIBUTES: usize = 4_000_000;

/// Parse errors at which parsing stops ([`HtmlLimitExceeded::ParseErrors`]).
///
/// Errors are counted, not stored, so they cost no memory; but every one means
/// html5ever took its slow path for that character, and a body of garbage (a
/// gigabyte of NUL bytes served as `text/html`, one error per byte) then costs minutes
/// of parsing for a document with nothing in it. Real pages, even badly broken ones,
/// have hundreds or thousands; a million means the input is not HTML.
///
/// ```
/// use arachne::selector::tree::{HtmlLimits, MAX_PARSE_ERRORS};
/// assert_eq!(HtmlLimits::default().max_parse_errors, MAX_PARSE_ERRORS);
/// ```
pub const MAX_PARSE_ERRORS: usize = 1_000_000;

/// Bytes handed to html5ever at a time. Limits are checked between chunks (html5ever
/// cannot be stopped in the middle of one), so this bounds the overshoot: at most
/// ~340 open elements past [`MAX_OPEN_ELEMENTS`], and a correspondingly small number
/// of nodes past [`MAX_NODES`]. Feeding costs one small allocation per chunk, which is
/// lost in the noise at 1 KiB.
const FEED_CHUNK: usize = 1024;

/// Arena "no node" link.
const NIL: usize = usize::MAX;

/// Index of the document root in the arena.
const ROOT: usize = 0;

/// Bounds applied by [`parse_html`]; the [`Default`] is the `MAX_*` constants of this
/// module.
///
/// ```
/// use arachne::selector::tree::{parse_html, HtmlLimits};
///
/// let limits = HtmlLimits { max_depth: 4, ..HtmlLimits::default() };
/// let parsed = parse_html("<div><div><div><div>deep</div></div></div></div>", &limits);
/// // html > body > div > div reaches depth 4; what would go deeper follows the
/// // second div as its siblings, in document order.
/// let first_div = 3; // after html, head and body
/// let children = parsed.document.nodes.iter().filter(|n| n.parent == Some(first_div));
/// assert_eq!(children.count(), 4); // the three inner divs and the text
/// assert!(parsed.truncated.is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtmlLimits {
    /// Deepest a node may sit in the output (`<html>` is at 1); deeper content is
    /// attached to the deepest allowed ancestor. See [`MAX_DEPTH`].
    pub max_depth: usize,
    /// Element nesting at which parsing stops. See [`MAX_OPEN_ELEMENTS`].
    pub max_open_elements: usize,
    /// Nodes created (the document root, doctypes and template contents included)
    /// at which parsing stops. See [`MAX_NODES`].
    pub max_nodes: usize,
    /// Attributes stored (clones included) at which parsing stops; elements created
    /// after that carry none. See [`MAX_ATTRIBUTES`].
    pub max_attributes: usize,
    /// Parse errors at which parsing stops. See [`MAX_PARSE_ERRORS`].
    pub max_parse_errors: usize,
}

impl Default for HtmlLimits {
    fn default() -> Self {
        HtmlLimits {
            max_depth: MAX_DEPTH,
            max_open_elements: MAX_OPEN_ELEMENTS,
            max_nodes: MAX_NODES,
            max_attributes: MAX_ATTRIBUTES,
            max_parse_errors: MAX_PARSE_ERRORS,
        }
    }
}

/// Which limit stopped [`parse_html`] early; the document holds what had been
/// parsed up to that point (to the end of the input chunk in which it happened).
///
/// ```
/// use arachne::selector::tree::{parse_html, HtmlLimitExceeded, HtmlLimits};
///
/// let limits = HtmlLimits { max_open_elements: 100, ..HtmlLimits::default() };
/// let parsed = parse_html(&"<div>".repeat(10_000), &limits);
/// assert_eq!(parsed.truncated, Some(HtmlLimitExceeded::Depth { limit: 100 }));
/// assert_eq!(
///     parsed.truncated.unwrap().to_string(),
///     "HTML nesting exceeds 100 open elements; the document was truncated there"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtmlLimitExceeded {
    /// More than `limit` elements were open at once.
    #[error("HTML nesting exceeds {limit} open elements; the document was truncated there")]
    Depth {
        /// The [`HtmlLimits::max_open_elements`] in force.
        limit: usize,
    },
    /// More than `limit` nodes were created.
    #[error("HTML document has more than {limit} nodes; the document was truncated there")]
    Nodes {
        /// The [`HtmlLimits::max_nodes`] in force.
        limit: usize,
    },
    /// More than `limit` attributes were stored.
    #[error("HTML document has more than {limit} attributes; the document was truncated there")]
    Attributes {
        /// The [`HtmlLimits::max_attributes`] in force.
        limit: usize,
    },
    /// More than `limit` parse errors: the input is not HTML.
    #[error("HTML document has more than {limit} parse errors; the document was truncated there")]
    ParseErrors {
        /// The [`HtmlLimits::max_parse_errors`] in force.
        limit: usize,
    },
}

impl HtmlLimitExceeded {
    /// The stats name of the limit: `depth`, `nodes`, `attributes` or `parse_errors`
    /// (`html/truncated/<kind>`).
    pub fn kind(&self) -> &'static str {
        match self {
            HtmlLimitExceeded::Depth { .. } => "depth",
            HtmlLimitExceeded::Nodes { .. } => "nodes",
            HtmlLimitExceeded::Attributes { .. } => "attributes",
            HtmlLimitExceeded::ParseErrors { .. } => "parse_errors",
        }
    }
}

/// What [`parse_html`] returns.
///
/// ```
/// use arachne::selector::tree::{parse_html, HtmlLimits};
///
/// let parsed = parse_html("<p>a\0b</p>", &HtmlLimits::default());
/// // no doctype; the NUL is reported twice (by the tokenizer and the tree builder)
/// assert_eq!(parsed.parse_errors, 3);
/// assert!(parsed.truncated.is_none());
/// assert_eq!(parsed.document, select::document::Document::from("<p>a\0b</p>"));
/// ```
#[derive(Debug)]
pub struct ParsedHtml {
    /// The tree, in document order, as `select::document::Document::from` builds it.
    pub document: Document,
    /// How many parse errors html5ever reported (counted, never stored).
    pub parse_errors: usize,
    /// `Some` when a limit stopped parsing before the end of the input.
    pub truncated: Option<HtmlLimitExceeded>,
}

/// Parses `input` as an HTML document within `limits`.
///
/// Below the limits the result equals `select::document::Document::from(input)`
/// node for node, and it satisfies the invariants `select` and `crate::selector`
/// rely on:
///
/// * `nodes[i].index == i`, and nodes are numbered in document order (pre-order), so
///   a node's subtree is the contiguous range from its index up to its next
///   sibling's, or its nearest ancestor's next sibling (`subtree_end` in
///   `crate::selector`); `Document::find` scans the vector in that order.
/// * parent, first/last child and prev/next sibling links agree with each other;
///   top-level nodes (normally just `<html>`, plus comments around it) have no
///   parent.
/// * as in `select`, doctypes (and processing instructions) are left out and the
///   sibling chain restarts after them: a comment before `<!DOCTYPE html>` has no
///   `next`, and `<html>` then has no `prev`. `<template>` contents are left out too
///   (`select` only walks an element's children, and html5ever puts a template's
///   children in a separate fragment), so a template element is always empty.
///
/// Time and memory are linear in `input.len()`, and bounded by `limits` whatever the
/// input: see [`HtmlLimits`] for what happens at each limit.
///
/// ```
/// use arachne::selector::tree::{parse_html, HtmlLimits};
///
/// let html = "<!DOCTYPE html><table><tr><td>a<b>b</table>c</b>";
/// let parsed = parse_html(html, &HtmlLimits::default());
/// assert_eq!(parsed.document, select::document::Document::from(html));
///
/// let deep = "<div>".repeat(100_000);
/// let parsed = parse_html(&deep, &HtmlLimits::default());
/// assert!(parsed.truncated.is_some());
/// ```
pub fn parse_html(input: &str, limits: &HtmlLimits) -> ParsedHtml {
    parse_chunked(input, limits, FEED_CHUNK)
}

/// [`parse_html`] with a chosen feed size (the tests vary it: the result must not
/// depend on where the chunks split the input).
fn parse_chunked(input: &str, limits: &HtmlLimits, chunk: usize) -> ParsedHtml {
    let mut parser = parse_document(Builder::new(*limits), ParseOpts::default());
    let mut rest = input;
    // `parser.tokenizer.sink.sink` is our Builder (html5ever keeps these fields
    // public); checking it between chunks is the only way to stop html5ever early.
    while !rest.is_empty() && parser.tokenizer.sink.sink.exceeded.is_none() {
        let mut cut = chunk.clamp(1, rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (head, tail) = rest.split_at(cut);
        parser.process(StrTendril::from_slice(head));
        rest = tail;
    }
    parser.finish()
}

/// One arena slot. Links are arena indices ([`NIL`] for none), maintained exactly
/// like the child vectors of `markup5ever_rcdom`, so every operation is O(1).
#[derive(Debug)]
struct Node {
    parent: usize,
    prev: usize,
    next: usize,
    first_child: usize,
    last_child: usize,
    /// Number of elements from the root down to this node, itself included (through
    /// template hosts); meaningful only while `epoch` is the builder's.
    depth: u32,
    epoch: u32,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The document root (`host == NIL`) or a template's contents (`host` = the
    /// template element, used only to measure nesting through templates).
    Root {
        host: usize,
    },
    Element {
        name: QualName,
        attrs: Vec<(QualName, StrTendril)>,
        /// The contents fragment of a `<template>`, else [`NIL`].
        template_contents: usize,
        mathml_annotation_xml_integration_point: bool,
    },
    Text(StrTendril),
    Comment(StrTendril),
    /// A doctype or processing instruction: not in the output, but it restarts the
    /// sibling chain there, as `select`'s conversion does.
    Dropped,
    /// Already moved to the output (the final pass's visited mark).
    Taken,
}

/// The [`TreeSink`]: handles are arena indices.
struct Builder {
    nodes: Vec<Node>,
    limits: HtmlLimits,
    parse_errors: usize,
    attributes: usize,
    exceeded: Option<HtmlLimitExceeded>,
    /// Stored depths are valid while their node's `epoch` equals this; moving a node
    /// that is in the tree or has children bumps it (see `element_depth`).
    epoch: u32,
    /// Scratch stack for `element_depth`.
    path: Vec<usize>,
    /// Attribute names of the elements `add_attrs_if_missing` was called on (html5ever
    /// does it for `<html>` and `<body>` at each repeated start tag), so that a page
    /// repeating `<html a1>`, `<html a2>`… costs O(1) per attribute rather than a scan
    /// of all the earlier ones.
    attr_names: HashMap<usize, HashSet<QualName>>,
    /// What `elem_name` answers for a handle that is not an element (html5ever never
    /// asks; `markup5ever_rcdom` would panic).
    placeholder: QualName,
}

impl Builder {
    fn new(limits: HtmlLimits) -> Builder {
        let mut builder = Builder {
            nodes: Vec::new(),
            limits,
            parse_errors: 0,
            attributes: 0,
            exceeded: None,
            epoch: 1,
            path: Vec::new(),
            attr_names: HashMap::new(),
            placeholder: QualName::new(None, Namespace::from(""), LocalName::from("")),
        };
        builder.alloc(Kind::Root { host: NIL });
        builder
    }

    /// Records the first limit exceeded; `parse_chunked` stops feeding after the
    /// current chunk.
    fn exceed(&mut self, what: HtmlLimitExceeded) {
        if self.exceeded.is_none() {
            self.exceeded = Some(what);
        }
    }

    fn alloc(&mut self, kind: Kind) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            parent: NIL,
            prev: NIL,
            next: NIL,
            first_child: NIL,
            last_child: NIL,
            depth: 0,
            epoch: 0,
            kind,
        });
        if self.nodes.len() > self.limits.max_nodes {
            self.exceed(HtmlLimitExceeded::Nodes {
                limit: self.limits.max_nodes,
            });
        }
        id
    }

    fn node(&self, id: usize) -> Option<&Node> {
        self.nodes.get(id)
    }

    fn is_element(&self, id: usize) -> bool {
        matches!(self.node(id).map(|n| &n.kind), Some(Kind::Element { .. }))
    }

    /// Counts `attrs` against [`HtmlLimits::max_attributes`]; past it they are
    /// dropped (their memory is what the limit bounds).
    fn admit_attrs(&mut self, attrs: Vec<Attribute>) -> Vec<(QualName, StrTendril)> {
        if attrs.is_empty() {
            return Vec::new();
        }
        let total = self.attributes.saturating_add(attrs.len());
        if total > self.limits.max_attributes || self.exceeded.is_some() {
            self.exceed(HtmlLimitExceeded::Attributes {
                limit: self.limits.max_attributes,
            });
            return Vec::new();
        }
        self.attributes = total;
        attrs.into_iter().map(|a| (a.name, a.value)).collect()
    }

    /// Number of elements from the root down to `id`, itself included: the depth of
    /// html5ever's stack of open elements when `id` is the current node. Every
    /// element html5ever pushes has just been inserted under the current node, the
    /// top of that stack (a foster-parented element goes next to its table, one level
    /// up, and its own children under it again), so this is what
    /// [`HtmlLimits::max_open_elements`] is checked against. Counting `TreeSink::pop`
    /// calls would not do: html5ever truncates its stack in a dozen places
    /// (`pop_until`, the adoption agency, `</p>`…) without calling `pop`, so such a
    /// count only drifts up.
    ///
    /// Depths are stored per node and stay valid while nothing already in the tree
    /// moves, which is the common case: each new element costs O(1). A move (adoption
    /// agency, foster parenting of existing nodes, `<frameset>`) invalidates them all
    /// by bumping `epoch`, and the next query walks up to the nearest node still
    /// valid, refreshing the path on the way down: O(depth) once, as html5ever's own
    /// scope checks cost at every start tag anyway.
    fn element_depth(&mut self, id: usize) -> usize {
        let mut path = mem::take(&mut self.path);
        path.clear();
        let mut cur = id;
        let mut depth = 0usize;
        while let Some(node) = self.nodes.get(cur) {
            if node.epoch == self.epoch {
                depth = node.depth as usize;
                break;
            }
            // A cycle, which html5ever never builds; stop rather than loop.
            if path.len() > self.nodes.len() {
                break;
            }
            path.push(cur);
            cur = match node.kind {
                Kind::Root { host } => host,
                _ => node.parent,
            };
        }
        for &id in path.iter().rev() {
            let node = &mut self.nodes[id];
            if matches!(node.kind, Kind::Element { .. }) {
                depth += 1;
            }
            node.depth = u32::try_from(depth).unwrap_or(u32::MAX);
            node.epoch = self.epoch;
        }
        self.path = path;
        depth
    }

    /// Marks every stored depth stale (a node that was in the tree, or has children,
    /// is moving).
    fn invalidate_depths(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped after 2^32 moves: clear the stale marks that could now match.
            for node in &mut self.nodes {
                node.epoch = 0;
            }
            self.epoch = 1;
        }
    }

    /// Records the depth of `child`, just attached under `parent`, and stops parsing
    /// if an element went deeper than [`HtmlLimits::max_open_elements`].
    fn attached(&mut self, parent: usize, child: usize) {
        let Some(node) = self.nodes.get(child) else {
            return;
        };
        if node.first_child != NIL {
            // A subtree moved: its descendants' stored depths are stale.
            self.invalidate_depths();
        }
        let is_element = self.is_element(child);
        let depth = self.element_depth(parent) + usize::from(is_element);
        let epoch = self.epoch;
        let node = &mut self.nodes[child];
        node.depth = u32::try_from(depth).unwrap_or(u32::MAX);
        node.epoch = epoch;
        if is_element && depth > self.limits.max_open_elements {
            self.exceed(HtmlLimitExceeded::Depth {
                limit: self.limits.max_open_elements,
            });
        }
    }

    /// Unlinks `id` from its parent, if any.
    fn detach(&mut self, id: usize) {
        let Some(node) = self.nodes.get_mut(id) else {
            return;
        };
        let (parent, prev, next) = (node.parent, node.prev, node.next);
        node.parent = NIL;
        node.prev = NIL;
        node.next = NIL;
        if parent == NIL {
            return;
        }
        self.invalidate_depths();
        match self.nodes.get_mut(prev) {
            Some(p) => p.next = next,
            None => {
                if let Some(p) = self.nodes.get_mut(parent) {
                    p.first_child = next;
                }
            }
        }
        match self.nodes.get_mut(next) {
            Some(n) => n.prev = prev,
            None => {
                if let Some(p) = self.nodes.get_mut(parent) {
                    p.last_child = prev;
                }
            }
        }
    }

    /// Makes `child` (detached first) the last child of `parent`.
    fn attach_last(&mut self, parent: usize, child: usize) {
        if parent == child || parent >= self.nodes.len() || child >= self.nodes.len() {
            return;
        }
        self.detach(child);
        let last = self.nodes[parent].last_child;
        {
            let c = &mut self.nodes[child];
            c.parent = parent;
            c.prev = last;
        }
        match self.nodes.get_mut(last) {
            Some(l) => l.next = child,
            None => self.nodes[parent].first_child = child,
        }
        self.nodes[parent].last_child = child;
    }

    /// Inserts `child` (detached first) just before `sibling`, which has a parent.
    fn attach_before(&mut self, sibling: usize, child: usize) {
        if sibling == child || sibling >= self.nodes.len() || child >= self.nodes.len() {
            return;
        }
        self.detach(child);
        let parent = self.nodes[sibling].parent;
        let prev = self.nodes[sibling].prev;
        {
            let c = &mut self.nodes[child];
            c.parent = parent;
            c.prev = prev;
            c.next = sibling;
        }
        self.nodes[sibling].prev = child;
        match self.nodes.get_mut(prev) {
            Some(p) => p.next = child,
            None => {
                if let Some(p) = self.nodes.get_mut(parent) {
                    p.first_child = child;
                }
            }
        }
    }

    /// Appends `text` to `id` if it is a text node (markup5ever_rcdom's
    /// `append_to_existing_text`); `false` if it is not.
    fn merge_text(&mut self, id: usize, text: &StrTendril) -> bool {
        match self.nodes.get_mut(id).map(|n| &mut n.kind) {
            // A tendril holds at most 4 GiB; past that, start a new text node rather
            // than let `push_tendril` panic (`select` would panic there).
            Some(Kind::Text(existing))
                if u64::from(existing.len32()) + u64::from(text.len32()) <= u64::from(u32::MAX) =>
            {
                // Adjacent slices of one input chunk are joined without copying.
                existing.push_tendril(text);
                true
            }
            _ => false,
        }
    }

    /// Renumbers the nodes reachable from the root into `select`'s layout, in
    /// document order, with an explicit stack (see [`parse_html`] for the
    /// invariants), attaching children of nodes at [`HtmlLimits::max_depth`] to the
    /// deepest allowed ancestor.
    fn into_document(mut self) -> Document {
        struct Frame {
            /// Output parent of the nodes this frame emits.
            parent: Option<usize>,
            /// Last node emitted into that parent's sibling chain.
            prev: Option<usize>,
            /// Next arena node to emit.
            next: usize,
            /// Depth of the nodes this frame emits.
            depth: usize,
            /// The frame continues its parent frame's sibling chain (children of a
            /// node at `max_depth`, flattened after it).
            flattened: bool,
        }

        let max_depth = self.limits.max_depth.max(1);
        let mut out: Vec<Raw> = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![Frame {
            parent: None,
            prev: None,
            next: self.nodes[ROOT].first_child,
            depth: 1,
            flattened: false,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(node) = self.nodes.get_mut(frame.next) else {
                if let Some(done) = stack.pop() {
                    if done.flattened {
                        if let Some(below) = stack.last_mut() {
                            below.prev = done.prev;
                        }
                    }
                }
                continue;
            };
            frame.next = node.next;
            let first_child = node.first_child;
            let (data, has_children) = match mem::replace(&mut node.kind, Kind::Taken) {
                Kind::Element { name, attrs, .. } => (Data::Element(name, attrs), true),
                Kind::Text(text) => (Data::Text(text), false),
                Kind::Comment(text) => (Data::Comment(text), false),
                Kind::Dropped | Kind::Root { .. } => {
                    // select's `recur` returns `None` for these, which becomes the
                    // next sibling's `prev`.
                    frame.prev = None;
                    continue;
                }
                Kind::Taken => {
                    // Seen already: a cycle, which html5ever never builds. End this
                    // sibling chain rather than loop.
                    frame.next = NIL;
                    continue;
                }
            };
            let index = out.len();
            out.push(Raw {
                index,
                parent: frame.parent,
                prev: frame.prev,
                next: None,
                first_child: None,
                last_child: None,
                data,
            });
            if let Some(prev) = frame.prev {
                out[prev].next = Some(index);
            }
            if let Some(parent) = frame.parent {
                let parent = &mut out[parent];
                if parent.first_child.is_none() {
                    parent.first_child = Some(index);
                }
                parent.last_child = Some(index);
            }
            frame.prev = Some(index);
            if has_children && first_child != NIL {
                let child_frame = if frame.depth < max_depth {
                    Frame {
                        parent: Some(index),
                        prev: None,
                        next: first_child,
                        depth: frame.depth + 1,
                        flattened: false,
                    }
                } else {
                    Frame {
                        parent: frame.parent,
                        prev: Some(index),
                        next: first_child,
                        depth: frame.depth,
                        flattened: true,
                    }
                };
                stack.push(child_frame);
            }
        }
        Document { nodes: out }
    }
}

impl TreeSink for Builder {
    type Handle = usize;
    type Output = ParsedHtml;

    fn finish(self) -> ParsedHtml {
        let parse_errors = self.parse_errors;
        let truncated = self.exceeded.clone();
        ParsedHtml {
            document: self.into_document(),
            parse_errors,
            truncated,
        }
    }

    fn parse_error(&mut self, _msg: Cow<'static, str>) {
        self.parse_errors = self.parse_errors.saturating_add(1);
        if self.parse_errors > self.limits.max_parse_errors {
            self.exceed(HtmlLimitExceeded::ParseErrors {
                limit: self.limits.max_parse_errors,
            });
        }
    }

    fn get_document(&mut self) -> usize {
        ROOT
    }

    fn elem_name<'a>(&'a self, target: &'a usize) -> ExpandedName<'a> {
        match self.node(*target).map(|n| &n.kind) {
            Some(Kind::Element { name, .. }) => name.expanded(),
            _ => self.placeholder.expanded(),
        }
    }

    fn create_element(
        &mut self,
        name: QualName,
        attrs: Vec<Attribute>,
        flags: ElementFlags,
    ) -> usize {
        let attrs = self.admit_attrs(attrs);
        let id = self.alloc(Kind::Element {
            name,
            attrs,
            template_contents: NIL,
            mathml_annotation_xml_integration_point: flags.mathml_annotation_xml_integration_point,
        });
        if flags.template {
            let contents = self.alloc(Kind::Root { host: id });
            if let Kind::Element {
                template_contents, ..
            } = &mut self.nodes[id].kind
            {
                *template_contents = contents;
            }
        }
        id
    }

    fn create_comment(&mut self, text: StrTendril) -> usize {
        self.alloc(Kind::Comment(text))
    }

    fn create_pi(&mut self, _target: StrTendril, _data: StrTendril) -> usize {
        self.alloc(Kind::Dropped)
    }

    fn append(&mut self, parent: &usize, child: NodeOrText<usize>) {
        let parent = *parent;
        if parent >= self.nodes.len() {
            return;
        }
        let child = match child {
            NodeOrText::AppendText(text) => {
                let last = self.nodes[parent].last_child;
                if self.merge_text(last, &text) {
                    return;
                }
                self.alloc(Kind::Text(text))
            }
            NodeOrText::AppendNode(node) => node,
        };
        self.attach_last(parent, child);
        self.attached(parent, child);
    }

    fn append_before_sibling(&mut self, sibling: &usize, child: NodeOrText<usize>) {
        let sibling = *sibling;
        let Some(parent) = self.node(sibling).map(|s| s.parent).filter(|&p| p != NIL) else {
            // markup5ever_rcdom panics here; html5ever only foster-parents next to
            // a table that has a parent.
            return;
        };
        let child = match child {
            NodeOrText::AppendText(text) => {
                let prev = self.nodes[sibling].prev;
                if self.merge_text(prev, &text) {
                    return;
                }
                self.alloc(Kind::Text(text))
            }
            NodeOrText::AppendNode(node) => node,
        };
        self.attach_before(sibling, child);
        self.attached(parent, child);
    }

    fn append_based_on_parent_node(
        &mut self,
        element: &usize,
        prev_element: &usize,
        child: NodeOrText<usize>,
    ) {
        let has_parent = self.node(*element).is_some_and(|n| n.parent != NIL);
        if has_parent {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(
        &mut self,
        _name: StrTendril,
        _public_id: StrTendril,
        _system_id: StrTendril,
    ) {
        let id = self.alloc(Kind::Dropped);
        self.attach_last(ROOT, id);
    }

    fn get_template_contents(&mut self, target: &usize) -> usize {
        match self.node(*target).map(|n| &n.kind) {
            Some(Kind::Element {
                template_contents, ..
            }) if *template_contents != NIL => *template_contents,
            // Not a template (html5ever never asks then; rcdom panics): its own
            // children will do.
            _ => *target,
        }
    }

    fn same_node(&self, x: &usize, y: &usize) -> bool {
        x == y
    }

    fn set_quirks_mode(&mut self, _mode: QuirksMode) {}

    fn add_attrs_if_missing(&mut self, target: &usize, attrs: Vec<Attribute>) {
        let target = *target;
        let names = match self.nodes.get(target).map(|n| &n.kind) {
            Some(Kind::Element {
                attrs: existing, ..
            }) => self
                .attr_names
                .entry(target)
                .or_insert_with(|| existing.iter().map(|(name, _)| name.clone()).collect()),
            _ => return,
        };
        // As rcdom: keep those whose name the element does not have yet.
        let new: Vec<Attribute> = attrs
            .into_iter()
            .filter(|a| !names.contains(&a.name))
            .collect();
        names.extend(new.iter().map(|a| a.name.clone()));
        let new = self.admit_attrs(new);
        if let Some(Kind::Element {
            attrs: existing, ..
        }) = self.nodes.get_mut(target).map(|n| &mut n.kind)
        {
            existing.extend(new);
        }
    }

    fn remove_from_parent(&mut self, target: &usize) {
        self.detach(*target);
    }

    fn reparent_children(&mut self, node: &usize, new_parent: &usize) {
        let (node, new_parent) = (*node, *new_parent);
        if node == new_parent || new_parent >= self.nodes.len() {
            return;
        }
        let mut child = self.node(node).map_or(NIL, |n| n.first_child);
        while child != NIL {
            let next = self.nodes[child].next;
            self.attach_last(new_parent, child);
            child = next;
        }
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &usize) -> bool {
        matches!(
            self.node(*handle).map(|n| &n.kind),
            Some(Kind::Element {
                mathml_annotation_xml_integration_point: true,
                ..
            })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(html: &str) {
        let ours = parse_html(html, &HtmlLimits::default());
        assert!(ours.truncated.is_none(), "{html:?}");
        let theirs = Document::from(html);
        assert_eq!(ours.document, theirs, "{html:?}");
        for chunk in [1, 2, 3, 7, 64] {
            let ours = parse_chunked(html, &HtmlLimits::default(), chunk);
            assert_eq!(
                ours.document, theirs,
                "{html:?} fed {chunk} bytes at a time"
            );
        }
    }

    #[test]
    fn matches_select_on_small_documents() {
        for html in [
            "",
            " ",
            "x",
            "<!DOCTYPE html><title>t</title><p>a</p>",
            "<!-- before --><!DOCTYPE html><!-- after --><html><body>x</body></html><!-- end -->",
            "<table><tr><td>a</td>b<td>c</table>",
            "<table>x<b>y</b>z<tr><td>1</td></tr>w</table>",
            "<b><i>x</b>y</i>z",
            "<a href=1><p>x</a>y",
            "<b>1<p>2</b>3</p>",
            "<template><p>in template</p></template><p>out",
            "<p>one<p>two<ul><li>a<li>b</ul>",
            "a &amp; b &lt; c &notanentity; &#x41; &#0; &copy",
            "<script>if (a < b && c > d) { x = '</p>'; }</script>",
            "<style>p > a { color: red }</style><textarea>\n<b>raw</b></textarea>",
            "<svg><circle r=1/><foreignObject><p>html</p></foreignObject></svg>",
            "<math><mi>x</mi><annotation-xml encoding=text/html><p>h</p></annotation-xml></math>",
            "<frameset><frame src=a><noframes>x</noframes></frameset>",
            "<html a=1><body b=2><html a=3 c=4><body b=5 d=6>",
            "<pre>\nfirst newline dropped</pre>",
            "x\r\ny\rz\n",
            "\u{feff}<p>bom</p>",
            "<?php echo 1 ?><p>pi is a comment</p>",
            "<div><table><tr><td><table><td>nested</table></table></div>",
            "<select><option>a<option>b<optgroup><option>c</select>",
            "<plaintext><p>everything is text",
        ] {
            check(html);
        }
    }

    #[test]
    fn counts_parse_errors() {
        let parsed = parse_html(&"\0".repeat(1000), &HtmlLimits::default());
        assert!(parsed.parse_errors >= 1000);
        assert!(parsed.truncated.is_none());
    }

    #[test]
    fn flattens_below_max_depth() {
        let limits = HtmlLimits {
            max_depth: 4,
            ..HtmlLimits::default()
        };
        let parsed = parse_html("<div><div><div>a<div>b</div>c</div>d</div></div>", &limits);
        let nodes = &parsed.document.nodes;
        let depth = |mut i: usize| {
            let mut d = 1;
            while let Some(p) = nodes[i].parent {
                d += 1;
                i = p;
            }
            d
        };
        assert!((0..nodes.len()).all(|i| depth(i) <= 4));
        // Text stays in document order.
        let text: String = nodes
            .iter()
            .filter_map(|n| match &n.data {
                Data::Text(t) => Some(&**t),
                _ => None,
            })
            .collect();
        assert_eq!(text, "abcd");
    }

    #[test]
    fn stops_at_open_element_limit() {
        let limits = HtmlLimits {
            max_open_elements: 50,
            ..HtmlLimits::default()
        };
        let parsed = parse_chunked(&"<div>".repeat(1000), &limits, 16);
        assert_eq!(
            parsed.truncated,
            Some(HtmlLimitExceeded::Depth { limit: 50 })
        );
        // Stopped within a chunk (16 bytes = 3 divs) of the limit.
        assert!(
            parsed.document.nodes.len() < 60,
            "{}",
            parsed.document.nodes.len()
        );
    }

    #[test]
    fn stops_at_node_limit() {
        let limits = HtmlLimits {
            max_nodes: 100,
            ..HtmlLimits::default()
        };
        let parsed = parse_chunked(&"<p>x".repeat(1000), &limits, 16);
        assert_eq!(
            parsed.truncated,
            Some(HtmlLimitExceeded::Nodes { limit: 100 })
        );
        assert!(parsed.document.nodes.len() <= 110);
    }

    #[test]
    fn stops_at_attribute_limit() {
        let limits = HtmlLimits {
            max_attributes: 10,
            ..HtmlLimits::default()
        };
        let parsed = parse_chunked(&"<p a b c>".repeat(100), &limits, 16);
        assert_eq!(
            parsed.truncated,
            Some(HtmlLimitExceeded::Attributes { limit: 10 })
        );
        let stored: usize = parsed
            .document
            .nodes
            .iter()
            .map(|n| match &n.data {
                Data::Element(_, attrs) => attrs.len(),
                _ => 0,
            })
            .sum();
        assert!(stored <= 10);
    }

    /// A body of garbage stops at the parse-error limit, keeping what came before it.
    #[test]
    fn stops_at_parse_error_limit() {
        let limits = HtmlLimits {
            max_parse_errors: 1000,
            ..HtmlLimits::default()
        };
        let input = format!("<title>t</title>{}", "\0".repeat(100_000));
        let parsed = parse_chunked(&input, &limits, 64);
        assert_eq!(
            parsed.truncated,
            Some(HtmlLimitExceeded::ParseErrors { limit: 1000 })
        );
        assert!(parsed.parse_errors < 2000, "{}", parsed.parse_errors);
        let title = parsed
            .document
            .find(select::predicate::Name("title"))
            .next();
        assert_eq!(title.map(|t| t.text()), Some("t".to_string()));
        // Below the limit, nothing changes.
        let parsed = parse_chunked("<p>a\0b</p>", &HtmlLimits::default(), 64);
        assert!(parsed.truncated.is_none());
    }

    #[test]
    fn repeated_html_attributes_are_linear() {
        // Each `<html aN>` adds one attribute to the root element; rcdom rebuilds a
        // set of all earlier names every time.
        let mut html = String::new();
        for i in 0..20_000 {
            html.push_str(&format!("<html a{i}>"));
        }
        let start = std::time::Instant::now();
        let parsed = parse_html(&html, &HtmlLimits::default());
        assert!(start.elapsed().as_secs() < 10);
        match &parsed.document.nodes[0].data {
            Data::Element(_, attrs) => assert_eq!(attrs.len(), 20_000),
            other => panic!("{other:?}"),
        }
    }
}
