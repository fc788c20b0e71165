//! Issue 12, acceptance 7, in a process of its own: the fault suite's traps with a
//! 100 MB NUL 404 body, crawled by the `arachne` binary. Apart from tests/fault_suite.rs
//! because peak RSS (VmHWM) is per process and never goes down: the server of this
//! test holds 100 MB, which would count against that file's in-process crawl.

mod support;

use support::fault_site::{fault_site, NORMAL};
use support::server::FixtureServer;

/// The same traps with a 100 MB NUL 404 body, crawled by the `arachne` binary, whose
/// own peak RSS (sampled from /proc while it runs; the server lives in this test
/// process) must stay under 300 MB. `DOWNLOAD_MAXSIZE` is 150 MB so the 404 body is
/// downloaded whole; the big bodies are then under the limit too and are parsed, so
/// they are 25 MB here (each costs about twice its size while its text is built, and
/// two may be parsed at once beside the 404 body).
#[test]
fn every_trap_at_once_in_its_own_process() {
    let server = FixtureServer::start(fault_site(100, 25));
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arachne"))
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/n/0")))
        .args([
            "-L",
            "WARNING",
            "-s",
            "DOWNLOAD_TIMEOUT=1",
            "-s",
            "RETRY_ENABLED=false",
        ])
        .args(["-s", "DOWNLOAD_MAXSIZE=150000000", "--stats-json"])
        .arg(&stats_path)
        .spawn()
        .expect("arachne runs");
    let (status, peak_bytes) = support::rss::wait_sampling_peak(&mut child);
    assert!(status.success(), "exit {status}");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#}");
    let log = server.log();
    for i in 0..NORMAL {
        let path = format!("/n/{i}");
        assert_eq!(log.iter().filter(|e| e.path == path).count(), 1, "{path}");
    }
    // /status/404, /nul404, and the /p/0 link on /broken.
    assert!(
        stats["httperror/response_ignored_status_count/404"].as_u64() >= Some(2),
        "{stats:#}"
    );
    let peak = peak_bytes as f64 / (1024.0 * 1024.0);
    eprintln!("fault suite (arachne process): peak RSS {peak:.0} MB");
    assert!(peak > 0.0 && peak <= 300.0, "peak RSS {peak:.0} MB");
}
