//! Peak resident memory of a child process, for the tests that bound what the
//! `arachne` binary uses.

use std::process::{Child, ExitStatus};
use std::time::Duration;

/// Waits for `child` to exit, sampling its VmHWM from /proc every 5 ms; returns its
/// exit status and its peak RSS in bytes (the last sample before it exited).
pub fn wait_sampling_peak(child: &mut Child) -> (ExitStatus, u64) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    loop {
        if let Some(kb) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        }) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return (status, peak_kb * 1024);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
