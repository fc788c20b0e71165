//! Where the differential tests (`tests/parsel_diff.rs`, `tests/docs_crawl.rs`) find
//! their Python side and their corpus: the venv made by `.ci/install-deps`
//! (`$ARACHNE_PYENV`, else `$HOME/.cache/arachne-pyenv`) and Debian's `python3.11-doc`.
//! A missing piece fails the test with a message saying how to install it, unless
//! `ARACHNE_SKIP_PARSEL=1` is set, in which case the test is skipped (and says so).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python docs as HTML (Debian's `python3.11-doc`).
pub const DOCS: &str = "/usr/share/doc/python3.11/html";

/// Whether `ARACHNE_SKIP_PARSEL=1` asks to skip tests whose Python side is missing.
fn skip_allowed() -> bool {
    std::env::var("ARACHNE_SKIP_PARSEL").is_ok_and(|v| v == "1")
}

/// Fails the test with `why`, or (with `ARACHNE_SKIP_PARSEL=1`) prints it and returns
/// `None` so that the caller can return early.
fn missing<T>(why: String) -> Option<T> {
    if skip_allowed() {
        eprintln!("SKIPPED (ARACHNE_SKIP_PARSEL=1): {why}");
        None
    } else {
        panic!(
            "{why}\nRun `bash .ci/install-deps` (it installs python3.11-doc and a venv with \
             parsel and Scrapy), or set ARACHNE_SKIP_PARSEL=1 to skip this test."
        )
    }
}

/// The venv's `python`, checked to import every module in `modules`, and the docs
/// directory checked to exist; `None` means "skip" (see the module doc).
pub fn python_and_docs(modules: &[&str]) -> Option<PathBuf> {
    if !Path::new(DOCS).join("index.html").is_file() {
        return missing(format!(
            "the Python docs are not installed ({DOCS}/index.html is missing)"
        ));
    }
    let dir = match std::env::var_os("ARACHNE_PYENV") {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".cache/arachne-pyenv"),
            None => return missing("neither ARACHNE_PYENV nor HOME is set".to_string()),
        },
    };
    let python = dir.join("bin/python");
    if !python.is_file() {
        return missing(format!("no Python venv at {}", dir.display()));
    }
    let import = format!("import {}", modules.join(", "));
    match Command::new(&python).args(["-c", &import]).output() {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => missing(format!(
            "{} cannot `{import}`: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => missing(format!("cannot run {}: {e}", python.display())),
    }
}

/// The repository's root (where `Cargo.toml` is).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
