//! Measures `arachne::selector::tree::parse_html` on hostile and real inputs (the
//! figures quoted in `src/selector/tree.rs` come from here). Run it under
//! `/usr/bin/time -v` for peak RSS:
//!
//! ```sh
//! cargo run --release --example html_limits -- nested 1000000   # <div> x N [MAX_OPEN_ELEMENTS]
//! /usr/bin/time -v target/release/examples/html_limits nul 100  # N MB of NUL bytes
//! cargo run --release --example html_limits -- compare /usr/share/doc/python3.11/html
//! ```
//!
//! `compare DIR` parses every `.html` file under DIR with both `parse_html` and
//! `select::document::Document::from` and reports any difference.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arachne::selector::tree::{parse_html, HtmlLimits};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let number = |i: usize, default: usize| {
        arg(i)
            .map(|s| s.parse().unwrap_or_else(|_| panic!("not a number: {s}")))
            .unwrap_or(default)
    };
    match arg(0) {
        Some("nested") => {
            let input = "<div>".repeat(number(1, 1_000_000));
            let limits = HtmlLimits {
                max_open_elements: number(2, HtmlLimits::default().max_open_elements),
                ..HtmlLimits::default()
            };
            run("nested divs", &input, &limits);
        }
        Some("nul") => {
            let input = "\0".repeat(number(1, 100) * 1_000_000);
            run("NUL bytes", &input, &HtmlLimits::default());
        }
        Some("repeat") => {
            // repeat N PIECE: PIECE x N, e.g. `repeat 100000 '<div><b id=x></div>'`.
            let input = arg(2).unwrap_or("<p>").repeat(number(1, 1000));
            run("repeated piece", &input, &HtmlLimits::default());
        }
        Some("deep-then") => {
            // deep-then D N: D nested <span>s, then N `<div></div>`s, each of whose
            // start tags makes html5ever scan all D open elements.
            let mut input = "<span>".repeat(number(1, 4000));
            input.push_str(&"<div></div>".repeat(number(2, 1_000_000)));
            run("deep, then wide", &input, &HtmlLimits::default());
        }
        Some("noahs-ark") => {
            // noahs-ark K A: K nested <b>s with A attributes each, all different, so
            // html5ever's Noah's Ark clause compares (clones and sorts) every pair.
            let (k, a) = (number(1, 4000), number(2, 10));
            let mut input = String::new();
            for i in 0..k {
                input.push_str("<b");
                for j in 0..a {
                    input.push_str(&format!(" a{j}=1"));
                }
                input.push_str(&format!(" id={i}>"));
            }
            run("Noah's Ark", &input, &HtmlLimits::default());
        }
        Some("attrs") => {
            // attrs A: one tag with A distinct attributes (html5ever's tokenizer checks
            // each new name against all earlier ones).
            let mut input = String::from("<p");
            for j in 0..number(1, 100_000) {
                input.push_str(&format!(" a{j}"));
            }
            input.push('>');
            run("many attributes", &input, &HtmlLimits::default());
        }
        Some("compare") => compare(Path::new(arg(1).unwrap_or("/usr/share/doc/python3.11/html"))),
        _ => eprintln!("usage: html_limits nested N [MAX_OPEN] | deep-then D N | nul MB | repeat N PIECE | compare DIR"),
    }
}

fn run(what: &str, input: &str, limits: &HtmlLimits) {
    let start = Instant::now();
    let parsed = parse_html(input, limits);
    let elapsed = start.elapsed();
    println!(
        "{what}: {} bytes in {:.3} s: {} nodes, {} parse errors, truncated: {:?}",
        input.len(),
        elapsed.as_secs_f64(),
        parsed.document.nodes.len(),
        parsed.parse_errors,
        parsed.truncated
    );
}

fn compare(dir: &Path) {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "html" || e == "htm") {
                files.push(path);
            }
        }
    }
    files.sort();
    let (mut same, mut different, mut bytes, mut nodes) = (0, 0, 0, 0);
    let (mut ours_time, mut theirs_time) = (0.0, 0.0);
    for path in &files {
        let Ok(bytes_read) = std::fs::read(path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes_read);
        let start = Instant::now();
        let ours = parse_html(&text, &HtmlLimits::default());
        ours_time += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let theirs = select::document::Document::from(&*text);
        theirs_time += start.elapsed().as_secs_f64();
        bytes += text.len();
        nodes += theirs.nodes.len();
        if ours.document == theirs && ours.truncated.is_none() {
            same += 1;
        } else {
            different += 1;
            let at = ours
                .document
                .nodes
                .iter()
                .zip(&theirs.nodes)
                .position(|(a, b)| a != b);
            println!(
                "DIFFERENT: {} ({} vs {} nodes, first difference at {:?}, truncated {:?})",
                path.display(),
                ours.document.nodes.len(),
                theirs.nodes.len(),
                at,
                ours.truncated
            );
        }
    }
    println!(
        "{} files, {bytes} bytes, {nodes} nodes: {same} identical, {different} different; \
         parse_html {ours_time:.2} s, Document::from {theirs_time:.2} s",
        files.len()
    );
}
