"""fetch() against a real HTTP server on 127.0.0.1: validators, errors, limits.

The server is the standard library's ThreadingHTTPServer on a free port; no traffic
leaves the machine. Each path is one behaviour a real feed host can show.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import paperwire
from paperwire.errors import SourceError
from paperwire.fetch import USER_AGENT, fetch

LISTING = (Path(__file__).parent / "data" / "arxiv_listing.rss").read_bytes()
ETAG = '"listing-v1"'
LAST_MODIFIED = "Mon, 11 Mar 2024 04:00:00 GMT"
SLOW_SECONDS = 2.0


class Handler(BaseHTTPRequestHandler):
    """Routes by path; remembers each request's headers on the server for assertions."""

    server: Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # the http.server naming
        self.server.seen.append((self.path, dict(self.headers)))
        route = {
            "/listing.rss": self.listing, "/missing": lambda: self.send_error(404, "Not Found"),
            "/broken": lambda: self.send_error(500, "Internal Server Error"), "/slow": self.slow,
            "/drip": self.drip, "/redirect": lambda: self.redirect("/listing.rss"),
            "/loop": lambda: self.redirect("/loop"), "/to-file": lambda: self.redirect("file:///etc/passwd"),
            "/big": self.big, "/big-unsized": self.big_unsized, "/bomb": self.bomb,
        }.get(self.path)
        (route or (lambda: self.send_error(404)))()

    def listing(self) -> None:
        if self.headers.get("If-None-Match") == ETAG or self.headers.get("If-Modified-Since") == LAST_MODIFIED:
            self.send_response(304)
            self.send_header("ETag", ETAG)
            self.end_headers()
            return
        self.send_body(LISTING, ("ETag", ETAG), ("Last-Modified", LAST_MODIFIED),
                       ("Content-Type", "application/rss+xml"))

    def send_body(self, body: bytes, *headers: tuple[str, str]) -> None:
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def slow(self) -> None:
        self.server.release.wait(SLOW_SECONDS)
        self.send_body(b"late")

    def drip(self) -> None:
        """Headers at once, then a byte every 50 ms: never idle long enough for a read timeout."""
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(100):
                if self.server.release.wait(0.05):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
        except OSError:
            pass

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def big(self) -> None:
        self.send_body(b"x" * 10_000)

    def big_unsized(self) -> None:
        """No Content-Length (HTTP/1.0, body ends at close): only counting the stream catches it."""
        self.send_response(200)
        self.end_headers()
        for _ in range(10):
            self.wfile.write(b"x" * 1000)

    def bomb(self) -> None:
        """1 KB on the wire, 1 MB once decompressed."""
        self.send_body(gzip.compress(b"\0" * 1_000_000), ("Content-Encoding", "gzip"))


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()  # set at teardown so sleeping handlers end


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; traffic to 127.0.0.1 must never go through one."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    httpd = Server()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def base(server: Server) -> str:
    server.seen.clear()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port bound but not listening: connecting is refused, and nobody else can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/listing.rss"


def test_fetches_the_listing_with_its_validators(base: str, server: Server) -> None:
    result = fetch(f"{base}/listing.rss")
    assert result.status == "fetched"
    assert result.body == LISTING
    assert (result.etag, result.last_modified) == (ETAG, LAST_MODIFIED)
    assert result.url == f"{base}/listing.rss"
    _, headers = server.seen[-1]
    assert headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith(f"paperwire/{paperwire.__version__} (+https://")
    assert "If-None-Match" not in headers and "If-Modified-Since" not in headers


def test_second_fetch_with_the_etag_is_not_modified(base: str, server: Server) -> None:
    first = fetch(f"{base}/listing.rss")
    second = fetch(f"{base}/listing.rss", etag=first.etag, last_modified=first.last_modified)
    assert second.status == "not-modified" and second.body is None
    # The 304 carries only the ETag; the Last-Modified we sent is kept for next time.
    assert (second.etag, second.last_modified) == (ETAG, LAST_MODIFIED)
    headers = server.seen[-1][1]
    assert headers["If-None-Match"] == ETAG and headers["If-Modified-Since"] == LAST_MODIFIED


def test_last_modified_alone_is_a_validator(base: str, server: Server) -> None:
    result = fetch(f"{base}/listing.rss", last_modified=LAST_MODIFIED)
    assert result.status == "not-modified"
    assert "If-None-Match" not in server.seen[-1][1]


def test_a_changed_etag_fetches_again(base: str) -> None:
    result = fetch(f"{base}/listing.rss", etag='"listing-v0"')
    assert result.status == "fetched" and result.body == LISTING


@pytest.mark.parametrize(("path", "message"), [("/missing", "HTTP 404 Not Found"),
                                               ("/broken", "HTTP 500 Internal Server Error")])
def test_http_errors_name_status_and_reason(base: str, path: str, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        fetch(base + path)
    assert caught.value.origin == base + path
    assert message in str(caught.value)


def test_a_slow_server_times_out(base: str) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"timed out after 0.3s \(read\)"):
        fetch(f"{base}/slow", timeout=0.3)
    assert time.monotonic() - started < SLOW_SECONDS


def test_a_dripping_server_hits_the_overall_deadline(base: str) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match="too long"):
        fetch(f"{base}/drip", timeout=0.2)
    assert time.monotonic() - started < 2.0


def test_follows_a_redirect_and_reports_the_final_url(base: str) -> None:
    result = fetch(f"{base}/redirect")
    assert result.status == "fetched" and result.body == LISTING
    assert result.url == f"{base}/listing.rss"


def test_a_redirect_loop_is_cut_off(base: str) -> None:
    with pytest.raises(SourceError, match="too many redirects") as caught:
        fetch(f"{base}/loop")
    assert caught.value.origin == f"{base}/loop"


def test_a_redirect_is_an_error_when_none_may_be_followed(base: str) -> None:
    """The SNS webhook's fetcher checks a URL's host, then fetches it: a redirect must not take it elsewhere."""
    with pytest.raises(SourceError, match="HTTP 30"):
        fetch(f"{base}/redirect", follow_redirects=False)
    from paperwire.web.hooks import fetch_url

    with pytest.raises(SourceError, match="HTTP 30"):
        fetch_url(f"{base}/redirect")
    assert fetch_url(f"{base}/listing.rss") == LISTING


def test_a_redirect_to_a_file_url_is_refused(base: str) -> None:
    with pytest.raises(SourceError, match="unsupported"):
        fetch(f"{base}/to-file")


@pytest.mark.parametrize("path", ["/big", "/big-unsized", "/bomb"])
def test_bodies_over_the_limit_are_refused(base: str, path: str) -> None:
    with pytest.raises(SourceError, match="limit"):
        fetch(base + path, max_bytes=5_000)


def test_a_body_under_the_limit_passes(base: str) -> None:
    assert len(fetch(f"{base}/big", max_bytes=10_000).body or b"") == 10_000


def test_a_refused_connection(refused_url: str) -> None:
    with pytest.raises(SourceError, match="cannot connect") as caught:
        fetch(refused_url, timeout=2)
    assert caught.value.origin == refused_url


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/listing.rss", "listing.rss", "http://", ""])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(SourceError, match="not an http"):
        fetch(url)


def test_a_callers_client_is_used_and_left_open(base: str, server: Server) -> None:
    with httpx.Client() as client:  # follows no redirects by default; fetch asks it to
        assert fetch(f"{base}/redirect", client=client).body == LISTING
        assert fetch(f"{base}/listing.rss", etag=ETAG, client=client).status == "not-modified"
        assert not client.is_closed
    assert server.seen[-1][1]["User-Agent"] == USER_AGENT
