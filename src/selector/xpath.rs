//! XPath 1.0 over `select` documents (placeholder until the evaluator lands).

use select::document::Document;

/// A parsed XPath expression.
#[derive(Debug, Clone)]
pub struct XPath {
    source: String,
}

/// One XPath result.
#[derive(Debug, Clone, PartialEq)]
pub enum XItem {
    /// The document root.
    Root,
    /// A node.
    Node(usize),
    /// An attribute.
    Attr {
        /// Element index.
        element: usize,
        /// Attribute index.
        index: usize,
    },
    /// A string.
    Str(String),
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
}

/// An XPath error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XPathError {
    /// Syntax.
    #[error("invalid XPath `{expr}`: {message} at {position}")]
    Syntax {
        /// Expression.
        expr: String,
        /// Message.
        message: String,
        /// Position.
        position: usize,
    },
    /// Evaluation.
    #[error("XPath `{expr}` failed: {message}")]
    Eval {
        /// Expression.
        expr: String,
        /// Message.
        message: String,
    },
}

impl XPath {
    /// Parses.
    pub fn parse(expr: &str) -> Result<XPath, XPathError> {
        Err(XPathError::Syntax {
            expr: expr.to_string(),
            message: "XPath not available yet".into(),
            position: 1,
        })
    }
    /// Source.
    pub fn as_str(&self) -> &str {
        &self.source
    }
    /// Evaluates.
    pub fn evaluate(&self, _doc: &Document, _context: XItem) -> Result<Vec<XItem>, XPathError> {
        Ok(Vec::new())
    }
}

/// parsel's string form of an item.
pub fn item_to_parsel_string(_doc: &Document, item: &XItem) -> String {
    match item {
        XItem::Str(s) => s.clone(),
        XItem::Num(n) => format!("{n:?}"),
        XItem::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        _ => String::new(),
    }
}
