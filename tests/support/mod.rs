//! Shared helpers for the integration tests: a local fixture HTTP server ([`server`]) and
//! the sites it serves ([`site`]). Each test binary uses a subset, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod fault_site;
pub mod logs;
pub mod probe;
pub mod rss;
pub mod server;
pub mod site;
