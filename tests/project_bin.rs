//! Acceptance 5 (second half): a project's own binary, built on `arachne::cli::run`
//! (examples/project.rs), runs `crawl quotes -o out.jsonl` with its own typed pipeline
//! stage and its own extension enabled by its project settings, and logs Scrapy's
//! start-up block (overridden settings, enabled extensions, middlewares, pipelines).
//!
//! The test builds the example binary itself (`cargo build --example project`, with the
//! same target directory), so it runs on its own as well as under a full `cargo test`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The example binary, built if needed.
fn project_binary() -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/project
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target dir");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "project"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example project failed");
    profile_dir.join("examples").join("project")
}

#[test]
fn a_project_binary_runs_its_own_pipeline_and_extension() {
    let bin = project_binary();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let stats = dir.path().join("stats.json");

    let listed = Command::new(&bin).arg("list").output().unwrap();
    assert!(listed.status.success());
    let names = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(names.lines().any(|l| l == "quotes"), "{names}");

    let run = Command::new(&bin)
        .args(["crawl", "quotes", "-o"])
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats)
        .args(["-s", "LOG_LEVEL=INFO", "-s", "DOWNLOAD_TIMEOUT=20"])
        .output()
        .expect("the project binary runs");
    let log = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "exit {}:\n{log}", run.status);

    let items: Vec<Value> = std::fs::read_to_string(&out)
        .expect("feed written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(items.len(), 100, "100 quotes on the demo site");
    for item in &items {
        let text = item["text"].as_str().unwrap();
        assert_eq!(
            item["words"].as_u64(),
            Some(text.split_whitespace().count() as u64),
            "the project's typed stage ran on {item}"
        );
    }
    let first = std::fs::read_to_string(&out).unwrap();
    assert!(
        first.starts_with(r#"{"text":"#) && first.contains(r#","author":"#),
        "declared field order: {}",
        first.lines().next().unwrap_or("")
    );

    let stats: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    let longest = items
        .iter()
        .filter_map(|i| i["words"].as_u64())
        .max()
        .unwrap();
    assert_eq!(
        stats["longest_quote/words"].as_u64(),
        Some(longest),
        "the project's extension ran: {stats:#}"
    );

    // Scrapy's start-up block.
    for needle in [
        "started (bot: quotesbot)",
        "Overridden settings:",
        "\"BOT_NAME\": \"quotesbot\"",
        "\"CONCURRENT_REQUESTS\": 8",
        "Enabled extensions:",
        "\"LongestQuote\"",
        "Enabled downloader middlewares:",
        "\"HttpCompressionMiddleware\"",
        "Enabled spider middlewares:",
        "\"OffsiteMiddleware\"",
        "Enabled item pipelines:",
        "\"WordCount\"",
    ] {
        assert!(log.contains(needle), "{needle:?} not logged:\n{log}");
    }
}
