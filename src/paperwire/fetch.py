"""Download a listing for the scheduled ingest job, politely and within bounds.

Polite: a User-Agent that names paperwire, and conditional requests (ETag /
Last-Modified) so an unchanged feed costs the publisher a 304 and us nothing.
Bounded: connect/read timeouts, an overall deadline, a redirect limit and a body
size limit, so one bad source can never hang or flood the scheduler. Every failure
is a ``SourceError`` whose origin is the URL, which the ingest job logs before
moving on to the next source.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

from . import __version__, redact
from .config import MAX_LISTING_BYTES
from .errors import SourceError

PROJECT_URL = "https://github.com/paperwire/paperwire"
USER_AGENT = f"paperwire/{__version__} (+{PROJECT_URL})"
ACCEPT = ("application/rss+xml, application/atom+xml, application/xml;q=0.9, application/json;q=0.9, "
          "text/*;q=0.8, */*;q=0.5")
MAX_BODY_BYTES = MAX_LISTING_BYTES  # the max_listing_bytes setting's default, as for local files
MAX_REDIRECTS = 5
CONNECT_TIMEOUT = 10.0  # seconds; capped by the caller's timeout
# The whole download may take this many times ``timeout``: a server that drips one
# byte per read never trips the read timeout, so only a total deadline stops it.
TOTAL_TIMEOUT_FACTOR = 3

FetchStatus = Literal["fetched", "not-modified"]


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What came back. ``body`` is None when not modified; ``url`` is the final URL after redirects.

    ``etag`` and ``last_modified`` are the validators to send next time (kept from
    the request when a 304 omits them).
    """

    status: FetchStatus
    body: bytes | None
    etag: str | None
    last_modified: str | None
    url: str


def fetch(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 20.0,
    client: httpx.Client | None = None,
    max_bytes: int = MAX_BODY_BYTES,
    follow_redirects: bool = True,
) -> FetchResult:
    """GET ``url``; conditional when validators are given. Raises SourceError on any failure.

    ``client`` lets a caller reuse connections across sources (and tests inject one);
    it is not closed here. A client made here follows at most MAX_REDIRECTS redirects;
    none with ``follow_redirects=False`` (a redirect is then an error): for URLs whose host
    was checked, which a redirect could take elsewhere.
    """
    try:
        _check_url(url)
        if client is not None:
            return _fetch_with(client, url, etag, last_modified, timeout, max_bytes, follow_redirects)
        with _new_client(timeout) as own:
            return _fetch_with(own, url, etag, last_modified, timeout, max_bytes, follow_redirects)
    except SourceError as exc:  # errors end up in logs and `status`: never with the URL's secrets
        raise SourceError(redact.scrub(exc.reason, url), origin=redact.url(url), line=exc.line) from None


def _check_url(url: str) -> None:
    """Only http(s): a listing URL from a config file must not read local files or odd schemes."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise SourceError("not an http(s) URL; listings are fetched over http or https only", origin=url)


def _timeouts(timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))


def _new_client(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=_timeouts(timeout), follow_redirects=True, max_redirects=MAX_REDIRECTS)


def _request_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _fetch_with(client: httpx.Client, url: str, etag: str | None, last_modified: str | None,
                timeout: float, max_bytes: int, follow_redirects: bool = True) -> FetchResult:
    """The request itself, with every httpx failure turned into a SourceError naming the URL."""
    deadline = time.monotonic() + timeout * TOTAL_TIMEOUT_FACTOR
    headers = _request_headers(etag, last_modified)
    try:
        with client.stream("GET", url, headers=headers, timeout=_timeouts(timeout),
                           follow_redirects=follow_redirects) as response:
            return _result(response, url, etag, last_modified, max_bytes, deadline)
    except httpx.TimeoutException as exc:
        raise SourceError(f"timed out after {timeout:g}s ({_kind(exc)})", origin=url) from exc
    except httpx.TooManyRedirects as exc:
        raise SourceError(f"too many redirects ({exc})", origin=url) from exc
    except httpx.ConnectError as exc:
        raise SourceError(f"cannot connect: {exc or type(exc).__name__}", origin=url) from exc
    except httpx.UnsupportedProtocol as exc:
        raise SourceError(f"redirected to an unsupported URL: {exc}", origin=url) from exc
    except httpx.HTTPError as exc:  # protocol errors, broken connections, bad compressed bodies
        raise SourceError(f"HTTP failure: {exc or type(exc).__name__}", origin=url) from exc
    except httpx.InvalidURL as exc:
        raise SourceError(f"invalid URL: {exc}", origin=url) from exc


def _kind(exc: httpx.TimeoutException) -> str:
    names = {httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read", httpx.WriteTimeout: "write",
             httpx.PoolTimeout: "waiting for a connection"}
    return names.get(type(exc), "overall")


def _result(response: httpx.Response, url: str, etag: str | None, last_modified: str | None,
            max_bytes: int, deadline: float) -> FetchResult:
    final_url = str(response.url)
    if response.status_code == 304 and (etag or last_modified):
        return FetchResult("not-modified", None, response.headers.get("ETag", etag),
                           response.headers.get("Last-Modified", last_modified), final_url)
    if not response.is_success:
        raise SourceError(_status_message(response), origin=url)
    body = _read_limited(response, url, max_bytes, deadline)
    return FetchResult("fetched", body, response.headers.get("ETag"), response.headers.get("Last-Modified"), final_url)


def _status_message(response: httpx.Response) -> str:
    reason = response.reason_phrase or "(no reason given)"
    where = f" from {redact.url(str(response.url))}" if response.history else ""  # a redirect may carry a token
    return f"HTTP {response.status_code} {reason}{where}"


def _read_limited(response: httpx.Response, url: str, max_bytes: int, deadline: float) -> bytes:
    """The body, refused as soon as it is known to exceed ``max_bytes`` (after decompression)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:  # even compressed, that is too much
        raise SourceError(f"body of {int(declared):,} bytes is over the {max_bytes:,}-byte limit", origin=url)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise SourceError(f"body is over the {max_bytes:,}-byte limit", origin=url)
        if time.monotonic() > deadline:
            raise SourceError("download took too long (the server is sending too slowly)", origin=url)
        chunks.append(chunk)
    return b"".join(chunks)
