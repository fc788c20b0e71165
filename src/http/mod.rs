//! The HTTP model: what a spider asks for ([`Request`]) and what it gets back
//! ([`Response`]), plus Scrapy-compatible fingerprints and URL canonicalisation.
//! Plain data — no actor lives here.

pub mod canonical;
pub mod client;
mod encoding;
pub mod fingerprint;
mod request;
pub mod response;
pub mod tls;
pub(crate) mod tunnel;

pub use awc::http::header::{HeaderMap, HeaderName, HeaderValue};
pub use awc::http::Method;
pub use request::{CompactError, Meta, Request};
pub use response::Response;
