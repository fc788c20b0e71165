//! Captures what the crate logs, so a test can assert that a failure was logged (the
//! brief's "each is logged" is checked, not assumed). One logger per test binary: the
//! first `capture_logs()` installs it, later calls are no-ops.

use std::sync::{Mutex, PoisonError};

/// Every record logged by the crate, as (level, message).
static LOGS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("arachne")
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LOGS.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// Installs the capturing logger (once per test binary) at DEBUG.
pub fn capture_logs() {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Debug);
}

/// Whether a record at `level` or more severe contains every one of `parts`.
pub fn logged(level: log::Level, parts: &[&str]) -> bool {
    LOGS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|(l, msg)| *l <= level && parts.iter().all(|p| msg.contains(p)))
}

/// Every message logged at exactly `level`, in order.
pub fn messages(level: log::Level) -> Vec<String> {
    LOGS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(l, _)| *l == level)
        .map(|(_, m)| m.clone())
        .collect()
}
