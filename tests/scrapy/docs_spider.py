"""Scrapy's side of tests/docs_crawl.rs: crawl a local copy of the Python docs.

    scrapy runspider docs_spider.py -a start_url=http://127.0.0.1:PORT/ -O pages.jsonl

From `start_url` it follows every `<a href>` of every text response (HTML, and the
one `.py` download, which parses as HTML like any TextResponse in Scrapy) within
127.0.0.1, and yields one item per response: its `url` and `status`. Binary
responses (images, if a page linked one) are recorded but not parsed. Settings: the
defaults except those in `custom_settings` (no robots.txt, quiet logs, a bounded
local concurrency); default duplicate filter, unlimited depth.

`-L WARNING` on the command line keeps Scrapy's start-up banner quiet too (it is
logged before `custom_settings` apply).

The start request is an ordinary request (duplicate-filtered), unlike Scrapy's
default start requests (`dont_filter=True`): Arachne's `follow` spider filters its
start request too, and a page linking back to the start URL must not be fetched
twice by one crawler only.
"""

from urllib.parse import urlparse

import scrapy
from scrapy.http import TextResponse


class DocsSpider(scrapy.Spider):
    name = "docs"
    allowed_domains = ["127.0.0.1"]
    custom_settings = {
        "ROBOTSTXT_OBEY": False,
        "LOG_LEVEL": "WARNING",
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        "DEPTH_LIMIT": 0,
        "TELNETCONSOLE_ENABLED": False,
        "FEED_EXPORT_ENCODING": "utf-8",
    }

    def __init__(self, start_url=None, **kwargs):
        super().__init__(**kwargs)
        if not start_url:
            raise ValueError("needs -a start_url=URL")
        self.start_url = start_url

    async def start(self):
        yield scrapy.Request(self.start_url)

    def parse(self, response):
        yield {"url": response.url, "status": response.status}
        if not isinstance(response, TextResponse):
            return
        # `response.follow_all(css="a")`, one link at a time: `follow` raises on a
        # `mailto:` href ("Missing scheme"), which would end the generator and drop
        # the page's remaining links. Like Arachne's `follow`, keep http(s) only.
        for a in response.css("a"):
            try:
                request = response.follow(a)
            except ValueError as e:
                self.logger.debug("skipping a link on %s: %s", response.url, e)
                continue
            if urlparse(request.url).scheme in ("http", "https"):
                yield request
