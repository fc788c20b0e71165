//! Placeholder: URL canonicalisation (being written in parallel).
#![allow(missing_docs)]
pub fn canonicalize_url(url: &url::Url, keep_fragments: bool) -> String { let mut u = url.clone(); if !keep_fragments { u.set_fragment(None); } u.to_string() }
