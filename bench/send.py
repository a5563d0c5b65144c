"""Benchmark: digest-sized messages through SmtpTransport to Postfix's smtp-sink on 127.0.0.1.

Messages (~40 KB, multipart text + HTML made from the seed abstracts) are built once
with ``paperwire.mail.build_message`` (100 distinct ones, reused with a different
envelope recipient each) so the timing is of delivery alone. The bench starts
``smtp-sink`` itself and kills it at the end. Measured in the same run:

- ``SmtpTransport`` with pool sizes 1 and 4 (persistent connections, one event loop);
- the baseline, plain ``smtplib`` with one connection per message (on a sample);
- for reference, plain ``smtplib`` over one persistent connection (on a sample);
- a few messages to a slow server (``smtp-sink -w 1``), where the pool's parallel
  connections, not CPU, decide the rate.

Each is run ``--repeats`` times, interleaved, and the median reported: the figures move
with whatever else the machine is doing. Target: at least 1,000 messages/s through SmtpTransport.

    .venv/bin/python bench/send.py --messages 10000

smtp-sink comes with Debian's postfix package:
``DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from paperwire import sources
from paperwire.config import Settings
from paperwire.mail import build_message, message_bytes
from paperwire.models import Digest, Subscriber
from paperwire.transport import Outcome, Outgoing, SmtpConfig, SmtpTransport

ROOT = Path(__file__).resolve().parent.parent
SEED_FILE = ROOT / "seeds" / "000_f1d956a196093e66.txt"
SETTINGS = Settings(base_url="https://papers.example.org")
SENDER = SETTINGS.sender_email
DISTINCT = 100  # distinct message bodies, cycled
TARGET_BYTES = 40_000
HOST = "127.0.0.1"
EHLO_NAME = "bench.paperwire.localhost"


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def abstracts() -> list[tuple[str, str]]:
    (listing,) = sources.read_path(SEED_FILE, today=dt.date(2024, 11, 26))
    return [(paper.title, paper.abstract) for paper in listing.papers]


def rendered_for(number: int, papers: list[tuple[str, str]], count: int) -> Rendered:
    """``count`` papers: title and abstract in the HTML, title and link in the text, as a digest has."""
    html_parts, text_parts = [], []
    for index in range(number, number + 7 * count, 7):
        title, abstract = papers[index % len(papers)]
        block = (f'<tr><td style="padding:12px 24px;font-family:Arial,sans-serif">'
                 f'<a href="https://papers.example.org/p/{index}" style="color:#1a56db;font-size:17px">'
                 f'{html.escape(title)}</a><p style="margin:6px 0;color:#333;line-height:1.5">'
                 f'{html.escape(abstract)}</p></td></tr>\n')
        html_parts.append(block)
        text_parts.append(f"{title}\nhttps://papers.example.org/p/{index}\n{abstract[:200]}...\n\n")
    page = "<html><body><table width=\"100%\">\n" + "".join(html_parts) + "</table></body></html>"
    return Rendered(f"Your papers for 11 March: {len(html_parts)} new", page, "".join(text_parts))


def build_messages() -> list[bytes]:
    papers = abstracts()
    built = []
    for number in range(DISTINCT):
        reader = Subscriber(email=f"reader{number}@example.org", name=f"Reader {number}", token=f"tok{number:08d}")
        digest = Digest(reader, "2024-03-11", dt.date(2024, 3, 11), ())
        count, data = 5, b""
        while len(data) < TARGET_BYTES:  # add papers until the message is digest-sized
            count += 1
            data = message_bytes(build_message(digest, rendered_for(number, papers, count), SETTINGS))
        built.append(data)
    return built


# --- smtp-sink ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_sink(port: int, delay: int = 0) -> subprocess.Popen:
    """smtp-sink on ``port``; ``delay`` seconds before each reply to DATA (a slow relay)."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        raise SystemExit("smtp-sink not found: apt-get install -y --no-install-recommends postfix")
    wait = ["-w", str(delay)] if delay else []
    sink = subprocess.Popen([binary, "-c", "-u", "nobody", *wait, f"{HOST}:{port}", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    raise SystemExit("smtp-sink did not start")


# --- the runs ----------------------------------------------------------------------


def outgoing(bodies: list[bytes], count: int) -> Iterator[Outgoing]:
    """Lazy, as the pipeline's will be: only the queue's few messages exist at once."""
    for i in range(count):
        yield Outgoing(f"m{i}", SENDER, (f"reader{i}@example.org",), bodies[i % len(bodies)])


def run_transport(port: int, bodies: list[bytes], count: int, pool_size: int) -> tuple[float, dict[str, int]]:
    statuses: dict[str, int] = {}

    def on_outcome(outcome: Outcome) -> None:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1

    config = SmtpConfig(HOST, port, pool_size=pool_size, local_hostname=EHLO_NAME, timeout=30)
    started = time.perf_counter()
    SmtpTransport(config).send_all(outgoing(bodies, count), on_outcome)
    return time.perf_counter() - started, statuses


def run_smtplib_per_message(port: int, bodies: list[bytes], count: int) -> float:
    started = time.perf_counter()
    for msg in outgoing(bodies, count):
        with smtplib.SMTP(HOST, port, local_hostname=EHLO_NAME, timeout=30) as smtp:
            smtp.sendmail(msg.sender, list(msg.recipients), msg.data)
    return time.perf_counter() - started


def run_smtplib_one_connection(port: int, bodies: list[bytes], count: int) -> float:
    started = time.perf_counter()
    with smtplib.SMTP(HOST, port, local_hostname=EHLO_NAME, timeout=30) as smtp:
        for msg in outgoing(bodies, count):
            smtp.sendmail(msg.sender, list(msg.recipients), msg.data)
    return time.perf_counter() - started


@dataclass
class Series:
    """Rates of one method over the repeats; the median is the figure, the range shows the noise."""

    label: str
    count: int
    rates: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.rates.append(self.count / seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def show(self, note: str = "") -> None:
        print(f"{self.label:<42} {self.median:>7,.0f} msg/s  (median of {len(self.rates)} runs of {self.count:,}; "
              f"range {min(self.rates):,.0f}-{max(self.rates):,.0f}){note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=1_000, help="messages for the smtplib runs")
    parser.add_argument("--pools", default="1,4", help="pool sizes to measure, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method, interleaved")
    parser.add_argument("--slow", type=int, default=8,
                        help="messages for the slow-server runs (1 s per DATA reply); 0 skips them")
    args = parser.parse_args(argv)

    bodies = build_messages()
    average = sum(map(len, bodies)) / len(bodies)
    print(f"messages: {args.messages:,} of ~{average / 1024:.1f} KiB ({DISTINCT} distinct bodies, "
          f"{args.messages * average / 2**20:,.0f} MiB per run)")
    sample = min(args.sample, args.messages)
    pools = {int(p): Series(f"SmtpTransport, pool_size {p}", args.messages) for p in args.pools.split(",")}
    baseline = Series("baseline: smtplib, connection per message", sample)
    reference = Series("reference: smtplib, one connection", sample)
    port = free_port()
    sink = start_sink(port)
    try:
        for _ in range(args.repeats):  # interleaved, so a busy moment on the machine hits every method
            for pool, series in pools.items():
                seconds, statuses = run_transport(port, bodies, args.messages, pool)
                if statuses != {"sent": args.messages}:
                    raise SystemExit(f"not all sent: {statuses}")
                series.add(seconds)
            baseline.add(run_smtplib_per_message(port, bodies, sample))
            reference.add(run_smtplib_one_connection(port, bodies, sample))
    finally:
        sink.terminate()
        sink.wait(timeout=5)
    for series in pools.values():
        series.show()
    baseline.show(f"; {args.messages:,} would take {args.messages / baseline.median:.1f} s")
    reference.show()
    best = max(series.median for series in pools.values())
    print(f"best SmtpTransport: {best:,.0f} msg/s = {best / baseline.median:.1f}x the baseline; "
          f"target 1,000 msg/s {'met' if best >= 1000 else 'NOT met'}")
    if args.slow:
        slow_server(bodies, args.slow)
    print(f"peak memory (max RSS of the process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def slow_server(bodies: list[bytes], count: int) -> None:
    """What the pool is for: a relay that takes 1 s to accept each message (smtp-sink -w 1).

    On loopback nothing waits, so CPU per message decides; against a slow or distant
    server the waiting decides, and only parallel connections hide it.
    """
    print(f"slow server (1 s before each DATA reply), {count} messages:")
    port = free_port()
    sink = start_sink(port, delay=1)
    try:
        for pool in (1, 4, 8):
            seconds, _ = run_transport(port, bodies, count, pool)
            print(f"  {f'SmtpTransport, pool_size {pool}':<34} {seconds:5.1f} s  ({count / seconds:.1f} msg/s)")
        seconds = run_smtplib_per_message(port, bodies, count)
        print(f"  {'smtplib, connection per message':<34} {seconds:5.1f} s  ({count / seconds:.1f} msg/s)")
    finally:
        sink.terminate()
        sink.wait(timeout=5)


if __name__ == "__main__":
    main()
