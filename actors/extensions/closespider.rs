//! Placeholder (being written in parallel).
#![allow(missing_docs)]
use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
#[derive(Debug)]
pub struct CloseSpider;
impl CloseSpider { pub fn from_crawler(_c: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> { Ok(None) } }
