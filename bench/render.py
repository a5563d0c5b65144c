"""Benchmark: personalized digests -> rendered email -> complete MIME message bytes.

Each reader gets 5-15 random seed papers under 1-3 random topics, with random hits
(real spans of words in the abstracts); that digest (the given matches) is made up
untimed (tests/oracle.py makes them), then timed the full path a send takes: render
(EmailRenderer: MJML compiled once, each reader's email rendered whole from its own
context), ``mail.build_message``, ``bytes``. Messages are streamed (built, serialized,
dropped), so memory must not grow with the readers; RSS is reported at 10k and at the
end. The baseline, timed on a sample in the same run, is the oracle of the tests
(tests/oracle.py ``PerReaderCompile``): each reader's MJML rendered by Jinja and compiled
by MRML for that reader. Floor: >= 3,000 messages/s in one process, >= 1,500 with
``--unshared``, the worst case for reuse: every reader also has a topic of their own on every
paper, whose hits (words of the reader's own) the paper's block shows, so blocks are almost
never like another reader's (the run prints the share it could reuse). The ratio to the
baseline is reported for information.

``--instructions`` counts instead of timing: the instructions one message takes, ours and
the baseline's, by callgrind (valgrind), which gives the same count for the same code and
input however busy the machine is (wall time on the project's machines moved by a third
between identical runs). Each count is the difference between two runs that make the same
digests and build N or none of their messages after the same warm-up, so neither making
the digests nor starting Python is counted.

    .venv/bin/python bench/render.py --readers 100000 [--unshared] [--workers 2]
    .venv/bin/python bench/render.py --instructions [--unshared]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the oracle and the digest generator live in tests/

from paperwire import render  # noqa: E402
from paperwire.config import Settings  # noqa: E402
from paperwire.mail import build_message  # noqa: E402
from paperwire.render import EmailRenderer  # noqa: E402
from tests.oracle import TEMPLATES, PerReaderCompile, make_digest, seed_papers, squeezed_html  # noqa: E402

SETTINGS = Settings(base_url="https://papers.example.org")
RANDOM_SEED = 20240311
BATCH = 1000  # digests made up at a time, before they are rendered
BASELINE_SLICE = 100  # baseline readers timed at a time, between slices of ours


def check_same_email(readers: int = 20) -> None:
    """The baseline and ours make the same email: subject and text identical, HTML equal up to whitespace."""
    papers, matches = seed_papers(random.Random(RANDOM_SEED))
    rng = random.Random(RANDOM_SEED)
    ours, theirs = EmailRenderer(TEMPLATES), PerReaderCompile()
    for number in range(readers):
        digest = make_digest(number, rng, papers, matches)
        a, b = ours.render(digest, SETTINGS), theirs.render(digest, SETTINGS)
        assert (a.subject, a.text, squeezed_html(a.html)) == (b.subject, b.text, squeezed_html(b.html)), number


def rss_mb() -> float:
    """Current resident set size (not the peak), from /proc."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass
class Totals:
    messages: int = 0
    papers: int = 0
    html_chars: int = 0
    max_html: int = 0
    message_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("render", "mime", "bytes"), 0.0))
    rss: dict[int, float] = field(default_factory=dict)  # messages done -> current RSS (MB)
    blocks: int = 0  # paper blocks (HTML and text) asked of include_shared ...
    blocks_reused: int = 0  # ... and those kept from an earlier reader

    def add(self, other: Totals) -> None:
        self.messages += other.messages
        self.papers += other.papers
        self.html_chars += other.html_chars
        self.max_html = max(self.max_html, other.max_html)
        self.message_bytes += other.message_bytes
        self.blocks += other.blocks
        self.blocks_reused += other.blocks_reused
        for phase, seconds in other.seconds.items():
            self.seconds[phase] += seconds

    @property
    def busy(self) -> float:
        """Seconds spent turning digests into messages."""
        return sum(self.seconds.values())


class Runner:
    """Builds, serializes and drops messages for readers ``first``, ``first + 1``, ... on demand.

    The digests (the given matches) are made up BATCH at a time, untimed, as a send run
    plans its digests before it renders them; the clock runs from each digest to its
    message's bytes.
    """

    def __init__(self, first: int, per_reader_compile: bool = False, checkpoints: tuple[int, ...] = (),
                 unshared: bool = False) -> None:
        self.next = first
        self.unshared = unshared
        self.rng = random.Random(RANDOM_SEED + first)
        self.papers, self.matches = seed_papers(random.Random(RANDOM_SEED))
        self.renderer = PerReaderCompile() if per_reader_compile else EmailRenderer(TEMPLATES)
        self.checkpoints = checkpoints
        self.totals = Totals()

    def run(self, count: int) -> None:
        totals, seconds, clock = self.totals, self.totals.seconds, time.perf_counter
        for start in range(self.next, self.next + count, BATCH):
            batch = [make_digest(number, self.rng, self.papers, self.matches, self.unshared)
                     for number in range(start, min(start + BATCH, self.next + count))]
            for digest in batch:
                t1 = clock()
                rendered = self.renderer.render(digest, SETTINGS)
                t2 = clock()
                message = build_message(digest, rendered, SETTINGS)  # finished wire bytes
                t3 = clock()
                data = bytes(message)
                t4 = clock()
                seconds["render"] += t2 - t1
                seconds["mime"] += t3 - t2
                seconds["bytes"] += t4 - t3
                totals.messages += 1
                totals.papers += digest.papers
                html_chars = len(rendered.html)
                totals.html_chars += html_chars
                if html_chars > totals.max_html:  # UTF-8 is never shorter than the characters
                    totals.max_html = max(totals.max_html, len(rendered.html.encode()))
                totals.message_bytes += len(data)
                if totals.messages in self.checkpoints:
                    totals.rss[totals.messages] = rss_mb()
        self.next += count
        if not isinstance(self.renderer, PerReaderCompile):
            kept = [template.environment.filters["include_shared"].rendered_by_values.cache_info()
                    for template in (self.renderer.html_template, self.renderer.text_template)]
            totals.blocks = sum(info.hits + info.misses for info in kept)
            totals.blocks_reused = sum(info.hits for info in kept)


def interleaved(first: int, readers: int, baseline_readers: int, checkpoints: tuple[int, ...],
                unshared: bool) -> tuple[Totals, Totals]:
    """Ours for ``readers`` and the baseline for ``baseline_readers``, in alternating slices,
    so that whatever else the machine does at a time slows both alike."""
    ours = Runner(first, checkpoints=checkpoints, unshared=unshared)
    baseline = Runner(first, per_reader_compile=True, unshared=unshared)
    slices = max(1, baseline_readers // BASELINE_SLICE)
    for n in range(slices):
        baseline.run(baseline_readers * (n + 1) // slices - baseline_readers * n // slices)
        ours.run(readers * (n + 1) // slices - readers * n // slices)
    ours.totals.rss[ours.totals.messages] = rss_mb()
    return ours.totals, baseline.totals


# --instructions: (name, per-reader compile, warm-up messages, counted messages)
COUNTED = (("paperwire", False, 1000, 500), ("baseline, MJML compiled per reader", True, 50, 40))


def build_messages(made: int, built: int, per_reader_compile: bool, unshared: bool) -> None:
    """Make ``made`` digests as ``Runner`` does, then build the first ``built`` messages (what
    callgrind counts)."""
    runner = Runner(0, per_reader_compile, unshared=unshared)
    digests = [make_digest(number, runner.rng, runner.papers, runner.matches, unshared) for number in range(made)]
    for digest in digests[:built]:
        bytes(build_message(digest, runner.renderer.render(digest, SETTINGS), SETTINGS))


def count_instructions(unshared: bool) -> None:
    """Instructions a message, ours and the baseline's: for each, two callgrind runs side by
    side that make the same digests and build the warm-up's messages, or those and N more."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("--instructions needs valgrind (apt-get install valgrind)")
    per_message = {}
    for name, per_reader_compile, warm, counted in COUNTED:
        runs = [subprocess.Popen(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
             "--build-messages", str(warm + counted), str(built)]
            + ["--per-reader-compile"] * per_reader_compile + ["--unshared"] * unshared,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for built in (warm, warm + counted)]
        totals = []
        for run in runs:
            _, err = run.communicate()
            found = re.search(r"Collected : (\d+)", err)
            if run.returncode or found is None:
                sys.exit(f"callgrind run failed:\n{err[-2000:]}")
            totals.append(int(found.group(1)))
        per_message[name] = (totals[1] - totals[0]) / counted
        print(f"{name}: {per_message[name]:,.0f} instructions a message ({counted} messages after {warm:,})", flush=True)
    ours, base = (per_message[name] for name, *_ in COUNTED)
    print(f"paperwire takes {ours / base:.1%} of the baseline's instructions ({base / ours:.1f}x fewer)"
          + ("; every reader's paper blocks their own" if unshared else ""))


def _worker(job: tuple[int, int, int, tuple[int, ...], bool]) -> tuple[Totals, Totals, float]:
    first, count, baseline_count, checkpoints, unshared = job
    ours, baseline = interleaved(first, count, baseline_count, checkpoints, unshared)
    return ours, baseline, peak_rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--baseline-sample", type=int, default=2000,
                        help="readers timed with per-reader MJML compile, in slices between ours")
    parser.add_argument("--workers", type=int, default=1, help="processes; each renders its share of the readers")
    parser.add_argument("--unshared", action="store_true",
                        help="worst case: every reader has a topic of their own on every paper, whose own hits each paper's block shows")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions a message with callgrind instead of timing (needs valgrind)")
    parser.add_argument("--build-messages", nargs=2, type=int, metavar=("MADE", "BUILT"), help=argparse.SUPPRESS)
    parser.add_argument("--per-reader-compile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_messages:  # a callgrind run of --instructions
        build_messages(*args.build_messages, args.per_reader_compile, args.unshared)
        return
    if args.instructions:
        count_instructions(args.unshared)
        return

    started = time.perf_counter()
    renderer = EmailRenderer(TEMPLATES)
    print(f"template setup (MJML compile + Jinja parse): {(time.perf_counter() - started) * 1000:.1f} ms, once per process")
    del renderer
    print(f"RSS before: {rss_mb():.0f} MB; load average (1, 5, 15 min): {os.getloadavg()}")
    check_same_email()

    started = time.perf_counter()
    workers = max(1, args.workers)
    share, base_share = -(-args.readers // workers), -(-args.baseline_sample // workers)
    marks = tuple(n // workers for n in (10_000, 50_000, 100_000) if n < args.readers)
    jobs = [(w * share, min(share, args.readers - w * share), min(base_share, args.baseline_sample - w * base_share),
             marks, args.unshared) for w in range(workers)]
    if workers == 1:
        results = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_worker, jobs)
    wall = time.perf_counter() - started
    totals, baseline = Totals(), Totals()
    for ours_part, base_part, _ in results:
        totals.add(ours_part)
        baseline.add(base_part)
    # Each worker's own rate; workers run side by side, so the rates add up.
    rate = sum(ours_part.messages / ours_part.busy for ours_part, _, _ in results)
    base_rate = sum(base_part.messages / base_part.busy for _, base_part, _ in results if base_part.messages)
    busy = totals.busy

    if baseline.messages:
        print(f"baseline, MJML compiled per reader ({baseline.messages:,} readers, timed in {BASELINE_SLICE}-reader "
              f"slices between ours): {base_rate:,.0f} messages/s -> {args.readers / base_rate:,.1f} s for "
              f"{args.readers:,}; render {baseline.seconds['render'] / baseline.messages * 1e6:,.0f} µs, "
              f"mime {baseline.seconds['mime'] / baseline.messages * 1e6:,.0f} µs per message")
    else:
        print("baseline: not timed (--baseline-sample 0)")
    print(f"\n{totals.messages:,} messages, {totals.papers:,} papers ({totals.papers / totals.messages:.1f} per message), "
          f"{workers} worker(s)")
    ratio = f" = {rate / base_rate:.1f}x the per-reader-compile baseline" if base_rate else ""
    print(f"overall: {rate:,.0f} messages/s{ratio} "
          f"({busy / workers:.1f} s rendering per worker; {wall:.1f} s wall with the baseline and making up the digests)")
    if totals.blocks:
        print(f"paper blocks kept from an earlier reader: {totals.blocks_reused / totals.blocks:.0%} "
              f"of {totals.blocks:,} (HTML and text)")
    print("time per message: " + ", ".join(f"{phase} {seconds / totals.messages * 1e6:,.0f} µs"
                                            for phase, seconds in totals.seconds.items())
          + f" (sum {busy / totals.messages * 1e6:,.0f} µs)")
    ours = totals.seconds["render"] / totals.messages
    faster = (f"; {baseline.seconds['render'] / baseline.messages / ours:.1f}x faster than compiling per reader"
              if baseline.messages else "")
    print(f"render alone: {ours * 1e6:,.0f} µs per message = {totals.seconds['render'] / totals.papers * 1e6:.1f} µs "
          f"per paper, {1 / ours:,.0f} renders/s per process{faster}")
    print(f"HTML: {totals.html_chars / totals.messages / 1024:.1f} K characters mean, {totals.max_html / 1024:.1f} KiB max "
          f"(Gmail clips at {render.GMAIL_CLIP_BYTES / 1000:.0f} KB); MIME message {totals.message_bytes / totals.messages / 1024:.1f} KiB mean")
    for worker, (ours_part, _, _) in enumerate(results):
        print(("RSS (current)" if workers == 1 else f"worker {worker} RSS") + " after N of its readers: "
              + ", ".join(f"{n:,}: {mb:.0f} MB" for n, mb in sorted(ours_part.rss.items())))
    floor = 1500 if args.unshared else 3000
    print(f"floor {floor:,} messages/s per process: {'met' if rate / workers >= floor else 'NOT met'}; "
          f"load average after: {os.getloadavg()}")
    peaks = [peak for _, _, peak in results]
    print(f"peak RSS: {max(peaks):.0f} MB" + (f" per worker (parent {peak_rss_mb():.0f} MB)" if workers > 1 else ""))


if __name__ == "__main__":
    main()
