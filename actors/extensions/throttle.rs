//! Placeholder (being written in parallel).
#![allow(missing_docs)]
use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
#[derive(Debug)]
pub struct AutoThrottle;
impl AutoThrottle { pub fn from_crawler(_c: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> { Ok(None) } }
