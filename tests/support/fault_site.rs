//! The fault suite's hostile site (tests/fault_suite.rs and
//! tests/fault_suite_process.rs): 201 normal pages and every trap linked from the home
//! page. Two test files, so that each measures its own process's peak RSS.

use std::collections::HashMap;

use super::site::Site;

/// Normal pages, `/n/0` .. `/n/200`.
pub const NORMAL: usize = 201;

/// The trap site: 201 normal pages from `/n/0` and every trap linked from it; the NUL
/// 404 body is `nul404_mb` MB, the two big bodies (announced and chunked) `big_mb` MB.
pub fn fault_site(nul404_mb: usize, big_mb: usize) -> Site {
    let mut pages: HashMap<String, (u16, String, Vec<u8>)> = HashMap::new();
    let html = |s: String| (200, "text/html".to_string(), s.into_bytes());
    // The normal pages: a chain, each also linking back home.
    for i in 1..NORMAL {
        let next = if i + 1 < NORMAL {
            format!("<a href=\"/n/{}\">next</a>", i + 1)
        } else {
            String::new()
        };
        pages.insert(
            format!("/n/{i}"),
            html(format!(
                "<title>n{i}</title>{next}<a href=\"/n/0\">home</a>"
            )),
        );
    }
    pages.insert(
        "/deep".into(),
        html(format!(
            "<title>deep</title>{}x{}",
            "<div>".repeat(200_000),
            "</div>".repeat(200_000)
        )),
    );
    pages.insert(
        "/nul".into(),
        (200, "text/html".into(), vec![0u8; 5 * 1024 * 1024]),
    );
    pages.insert(
        "/nul404".into(),
        (404, "text/html".into(), vec![0u8; nul404_mb * 1024 * 1024]),
    );
    let links: String = (0..50_000)
        .map(|i| format!("<a href=\"/n/{}\">l</a>", 1 + i % (NORMAL - 1)))
        .collect();
    pages.insert("/links".into(), html(links));
    // An offsite redirect target that would be refused anyway if it were ever tried
    // (port 1 on loopback): the downloader's offsite filter must stop it first.
    let big = format!("/big/{}", big_mb * 1_000_000);
    let big_chunked = format!("/big-chunked/{}", big_mb * 1_000_000);
    let traps = [
        "/reset",
        "/slow/5000",
        &big,
        &big_chunked,
        "/status/404",
        "/status/500",
        "/broken",
        "/latin1",
        "/deep",
        "/nul",
        "/nul404",
        "/links",
        "/redirect?to=http://localhost:1/escape",
    ];
    let home: String = traps
        .iter()
        .map(|t| format!("<a href=\"{t}\">trap</a>"))
        .chain(std::iter::once("<a href=\"/n/1\">first</a>".to_string()))
        .collect();
    pages.insert("/n/0".into(), html(format!("<title>n0</title>{home}")));
    Site::Static(pages)
}
