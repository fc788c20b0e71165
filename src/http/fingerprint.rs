//! Placeholder: request fingerprints (being written in parallel).
#![allow(missing_docs)]
use sha1::{Digest, Sha1};
pub type Fingerprint = [u8; 20];
pub fn fingerprint(method: &str, url: &url::Url, body: &[u8]) -> Fingerprint {
    let mut h = Sha1::new(); h.update(method); h.update(super::canonical::canonicalize_url(url, false)); h.update(body); h.finalize().into()
}
pub fn to_hex(fp: &Fingerprint) -> String { hex::encode(fp) }
