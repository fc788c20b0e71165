//! A bundled demo site in the style of quotes.toscrape.com, so the examples and tests can
//! crawl something realistic without the network.
//!
//! Ten listing pages `/page/1/` .. `/page/10/` (and `/`, which serves page 1) hold ten quotes
//! each: `div.quote` with `span.text`, `small.author`, an "(about)" link to `/author/<slug>/`
//! and `div.tags a.tag` links to `/tag/<tag>/page/1/`. Every listing page but the last has a
//! `li.next a` link to the next one. Author pages have `h3.author-title`,
//! `span.author-born-date`, `span.author-born-location` and `div.author-description`.
//!
//! All content is generated in code, deterministically. The server binds `127.0.0.1` on an
//! ephemeral port, runs on its own thread with its own actix `System` (independent of the
//! caller's runtime), and stops when the [`QuotesSite`] is dropped.
//!
//! Use it with `#[path = "support/quotes_site.rs"] mod quotes_site;` (from `examples/`) or
//! `#[path = "../examples/support/quotes_site.rs"] mod quotes_site;` (from `tests/`).

// Each including crate (an example, a test) uses only part of this module.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};

/// A running quotes site; dropping it stops the server.
pub struct QuotesSite {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl QuotesSite {
    /// Starts the site on `127.0.0.1` on an ephemeral port.
    pub fn start() -> io::Result<QuotesSite> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("quotes-site-{}", addr.port()))
            .spawn(move || run_server(listener, ready_tx))?;
        let handle = match ready_rx.recv() {
            Ok(result) => result?,
            Err(_) => {
                return Err(io::Error::other(
                    "the quotes site thread exited during startup",
                ))
            }
        };
        Ok(QuotesSite {
            addr,
            handle,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/path`; `path` may omit the leading `/`.
    pub fn url(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{slash}{path}", self.addr)
    }

    /// The number of distinct quotes on the listing pages (100).
    pub fn expected_quotes() -> usize {
        QUOTE_COUNT
    }

    /// The number of distinct authors the quotes link to (20).
    pub fn expected_authors() -> usize {
        (0..QUOTE_COUNT)
            .map(|k| quote(k).author)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// The text of every quote (without the surrounding curly quotes), in listing order.
    pub fn quote_texts() -> Vec<String> {
        (0..QUOTE_COUNT).map(|k| quote(k).text).collect()
    }

    /// The name of every author, in the order of [`AUTHORS`]' entries.
    pub fn author_names() -> Vec<String> {
        AUTHORS.iter().map(|a| a.name.to_string()).collect()
    }
}

impl Drop for QuotesSite {
    fn drop(&mut self) {
        // A forced stop: waiting for idle keep-alive connections would only delay the caller.
        // `stop` sends the command at once; the thread ends when the server has stopped.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            // A panic in the server thread has already been reported; don't panic in drop.
            let _ = thread.join();
        }
    }
}

/// Runs the site on the current (dedicated) thread until it is stopped.
fn run_server(listener: TcpListener, ready: mpsc::Sender<io::Result<ServerHandle>>) {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let server = HttpServer::new(|| {
            App::new()
                .route("/", web::get().to(|| async { listing(1) }))
                .route("/page/{n}/", web::get().to(listing_route))
                .route("/page/{n}", web::get().to(listing_route))
                .route("/author/{slug}/", web::get().to(author_route))
                .route("/author/{slug}", web::get().to(author_route))
                .route("/tag/{tag}/", web::get().to(tag_route))
                .route("/tag/{tag}/page/1/", web::get().to(tag_route))
                .default_service(web::to(|| async { not_found() }))
        })
        .workers(1)
        // Signals belong to the process embedding the site (an example's crawler, a test).
        .disable_signals()
        .listen(listener);
        let server = match server {
            Ok(server) => server.run(),
            Err(err) => {
                let _ = ready.send(Err(err));
                return;
            }
        };
        if ready.send(Ok(server.handle())).is_err() {
            return;
        }
        if let Err(err) = server.await {
            log::error!("quotes site failed: {err}");
        }
    });
}

async fn listing_route(n: web::Path<String>) -> HttpResponse {
    match n.parse::<usize>() {
        Ok(n) if (1..=PAGES).contains(&n) => listing(n),
        _ => not_found(),
    }
}

async fn author_route(slug: web::Path<String>) -> HttpResponse {
    match AUTHORS.iter().position(|a| slugify(a.name) == *slug) {
        Some(index) => author_page(index),
        None => not_found(),
    }
}

async fn tag_route(tag: web::Path<String>) -> HttpResponse {
    if TAGS.contains(&tag.as_str()) {
        tag_page(&tag)
    } else {
        not_found()
    }
}

/// Number of listing pages.
const PAGES: usize = 10;
/// Quotes per listing page.
const PER_PAGE: usize = 10;
/// Number of quotes in all.
const QUOTE_COUNT: usize = PAGES * PER_PAGE;

/// An author of the demo quotes (all fictional).
pub struct Author {
    /// Full name, as shown in `small.author` and `h3.author-title`.
    pub name: &'static str,
    /// Birth date as shown in `span.author-born-date`.
    pub born: &'static str,
    /// Birth place, shown as "in ..." in `span.author-born-location`.
    pub place: &'static str,
    /// What the author did, used in the description.
    pub trade: &'static str,
}

/// The authors. Quote `k` is by `AUTHORS[(7 * k) % 20]`: 7 is coprime to 20, so every author
/// appears among the first 20 quotes and has 5 quotes in all.
pub const AUTHORS: [Author; 20] = [
    Author {
        name: "Ada Winterbourne",
        born: "March 3, 1815",
        place: "Bristol, England",
        trade: "mathematician",
    },
    Author {
        name: "Bruno Castellane",
        born: "July 14, 1902",
        place: "Lyon, France",
        trade: "novelist",
    },
    Author {
        name: "Clara Oyelaran",
        born: "January 22, 1931",
        place: "Ibadan, Nigeria",
        trade: "poet",
    },
    Author {
        name: "Dmitri Vasko",
        born: "October 9, 1868",
        place: "Odessa, Russian Empire",
        trade: "playwright",
    },
    Author {
        name: "Elena Marquetti",
        born: "May 30, 1944",
        place: "Turin, Italy",
        trade: "physicist",
    },
    Author {
        name: "Farid Haddadi",
        born: "December 1, 1899",
        place: "Tunis, Tunisia",
        trade: "philosopher",
    },
    Author {
        name: "Greta Holmqvist",
        born: "August 17, 1921",
        place: "Uppsala, Sweden",
        trade: "botanist",
    },
    Author {
        name: "Hiro Tanabe",
        born: "April 4, 1950",
        place: "Sendai, Japan",
        trade: "architect",
    },
    Author {
        name: "Iris Calloway",
        born: "November 11, 1888",
        place: "Savannah, Georgia, USA",
        trade: "essayist",
    },
    Author {
        name: "Jonas Ekwueme",
        born: "February 28, 1962",
        place: "Enugu, Nigeria",
        trade: "engineer",
    },
    Author {
        name: "Katya Rosenfeld",
        born: "June 6, 1910",
        place: "Vienna, Austria",
        trade: "composer",
    },
    Author {
        name: "Luis Arrabal",
        born: "September 19, 1935",
        place: "Seville, Spain",
        trade: "painter",
    },
    Author {
        name: "Mira Chandrasekar",
        born: "March 25, 1975",
        place: "Madurai, India",
        trade: "astronomer",
    },
    Author {
        name: "Nils Oberg",
        born: "January 2, 1893",
        place: "Bergen, Norway",
        trade: "explorer",
    },
    Author {
        name: "Olive Pennington",
        born: "July 29, 1857",
        place: "York, England",
        trade: "diarist",
    },
    Author {
        name: "Pavel Dorn",
        born: "October 31, 1940",
        place: "Brno, Czechoslovakia",
        trade: "chess player",
    },
    Author {
        name: "Quinn Halloran",
        born: "May 12, 1968",
        place: "Galway, Ireland",
        trade: "sailor",
    },
    Author {
        name: "Rosa Villalobos",
        born: "December 24, 1926",
        place: "Oaxaca, Mexico",
        trade: "teacher",
    },
    Author {
        name: "Samuel Achterberg",
        born: "April 18, 1880",
        place: "Utrecht, Netherlands",
        trade: "cartographer",
    },
    Author {
        name: "Tove Lindqvist",
        born: "August 8, 1958",
        place: "Turku, Finland",
        trade: "gardener",
    },
];

/// The tags quotes can have.
const TAGS: [&str; 12] = [
    "life",
    "love",
    "inspirational",
    "humor",
    "books",
    "truth",
    "friendship",
    "change",
    "courage",
    "time",
    "wisdom",
    "work",
];

/// Quote openings; combined with [`ENDINGS`] into 100 distinct quotes.
const OPENINGS: [&str; 10] = [
    "A quiet mind",
    "Every unread book",
    "The longest road",
    "An honest mistake",
    "A borrowed umbrella",
    "Yesterday's courage",
    "A well-kept garden",
    "The smallest kindness",
    "An unfinished letter",
    "Every patient river",
];

/// Quote endings; see [`OPENINGS`].
const ENDINGS: [&str; 10] = [
    "is worth more than a loud victory.",
    "teaches what no teacher dares to say.",
    "begins with the decision to get up.",
    "remembers the hands that built it.",
    "is a door we forget to open.",
    "outlasts the storm that tested it.",
    "grows slower than doubt but lives longer.",
    "is the only map that never lies.",
    "makes the world a little less heavy.",
    "turns strangers into neighbours.",
];

/// One generated quote.
struct Quote {
    text: String,
    author: usize,
    tags: Vec<&'static str>,
}

/// Quote `k` (0-based, in listing order).
fn quote(k: usize) -> Quote {
    // k -> (k % 10, (k / 10 + 3k) % 10) is a bijection on 0..100, so all texts differ,
    // while consecutive quotes don't share an ending.
    let opening = OPENINGS[k % 10];
    let ending = ENDINGS[(k / 10 + 3 * k) % 10];
    let mut tags = vec![TAGS[(5 * k) % TAGS.len()]];
    for extra in [TAGS[(7 * k + 3) % TAGS.len()], TAGS[(k / 3) % TAGS.len()]] {
        if tags.len() < 1 + k % 3 && !tags.contains(&extra) {
            tags.push(extra);
        }
    }
    Quote {
        text: format!("{opening} {ending}"),
        author: (7 * k) % AUTHORS.len(),
        tags,
    }
}

/// `Ada Winterbourne` -> `Ada-Winterbourne`.
fn slugify(name: &str) -> String {
    name.replace(' ', "-")
}

/// The common page frame.
fn layout(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(frame(title, body))
}

fn frame(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\">\n\
         <title>{title}</title>\n</head>\n<body>\n<div class=\"container\">\n\
         <div class=\"row header-box\">\n<div class=\"col-md-8\">\n<h1>\n\
         <a href=\"/\" style=\"text-decoration: none\">Quotes to Scrape</a>\n</h1>\n</div>\n\
         </div>\n{body}</div>\n<footer class=\"footer\">\n<div class=\"container\">\n\
         <p class=\"text-muted\">Quotes by: <a href=\"/\">Arachne demo data</a></p>\n\
         </div>\n</footer>\n</body>\n</html>\n"
    )
}

/// One `div.quote`.
fn quote_html(k: usize) -> String {
    let quote = quote(k);
    let author = AUTHORS[quote.author].name;
    let tags: String = quote
        .tags
        .iter()
        .map(|tag| format!("            <a class=\"tag\" href=\"/tag/{tag}/page/1/\">{tag}</a>\n"))
        .collect();
    format!(
        "    <div class=\"quote\" itemscope itemtype=\"http://schema.org/CreativeWork\">\n\
         \x20       <span class=\"text\" itemprop=\"text\">\u{201c}{text}\u{201d}</span>\n\
         \x20       <span>by <small class=\"author\" itemprop=\"author\">{author}</small>\n\
         \x20       <a href=\"/author/{slug}/\">(about)</a>\n\
         \x20       </span>\n\
         \x20       <div class=\"tags\">\n\
         \x20           Tags:\n\
         \x20           <meta class=\"keywords\" itemprop=\"keywords\" content=\"{keywords}\" />\n\
         {tags}\
         \x20       </div>\n\
         \x20   </div>\n",
        text = quote.text,
        slug = slugify(author),
        keywords = quote.tags.join(","),
    )
}

/// Listing page `n` (1-based).
fn listing(n: usize) -> HttpResponse {
    let quotes: String = ((n - 1) * PER_PAGE..n * PER_PAGE).map(quote_html).collect();
    let previous = if n > 1 {
        format!(
            "<li class=\"previous\"><a href=\"/page/{}/\"><span aria-hidden=\"true\">&larr;</span> Previous</a></li>\n",
            n - 1
        )
    } else {
        String::new()
    };
    let next = if n < PAGES {
        format!(
            "<li class=\"next\"><a href=\"/page/{}/\">Next <span aria-hidden=\"true\">&rarr;</span></a></li>\n",
            n + 1
        )
    } else {
        String::new()
    };
    layout(
        "Quotes to Scrape",
        &format!(
            "<div class=\"row\">\n<div class=\"col-md-8\">\n{quotes}<nav>\n<ul class=\"pager\">\n\
             {previous}{next}</ul>\n</nav>\n</div>\n</div>\n"
        ),
    )
}

/// The detail page of `AUTHORS[index]`.
fn author_page(index: usize) -> HttpResponse {
    let author = &AUTHORS[index];
    let count = (0..QUOTE_COUNT)
        .filter(|&k| quote(k).author == index)
        .count();
    layout(
        &format!("Quotes to Scrape: {}", author.name),
        &format!(
            "<div class=\"author-details\">\n\
             <h3 class=\"author-title\">{name}\n</h3>\n\
             <p><strong>Born:</strong> <span class=\"author-born-date\">{born}</span> \
             <span class=\"author-born-location\">in {place}</span></p>\n\
             <strong>Description:</strong>\n\
             <div class=\"author-description\">\n\
             {name} was a {trade} born in {place} on {born}. Remembered as much for \
             conversation as for work, {name} left behind notebooks full of short sayings, \
             {count} of which are collected on this site.\n</div>\n</div>\n",
            name = author.name,
            born = author.born,
            place = author.place,
            trade = author.trade,
        ),
    )
}

/// All quotes tagged `tag`, on one page.
fn tag_page(tag: &str) -> HttpResponse {
    let quotes: String = (0..QUOTE_COUNT)
        .filter(|&k| quote(k).tags.contains(&tag))
        .map(quote_html)
        .collect();
    layout(
        "Quotes to Scrape",
        &format!(
            "<div class=\"row\">\n<div class=\"col-md-8\">\n\
             <h3>Viewing tag: <a href=\"/tag/{tag}/page/1/\">{tag}</a></h3>\n{quotes}</div>\n</div>\n"
        ),
    )
}

fn not_found() -> HttpResponse {
    HttpResponse::build(StatusCode::NOT_FOUND)
        .content_type("text/html; charset=utf-8")
        .body(frame("Not found", "<p>No such page.</p>\n"))
}
