"""Benchmark: a whole list sent end to end on PostgreSQL, in-process and on 1 and 2 workers.

For each mode a fresh PostgreSQL database gets the seed listing and ``--readers`` readers
(topics drawn from a few word, phrase, acronym and ``*`` queries; at most 10 papers each),
then ``paperwire send --all`` is timed as a user runs it: every reader due, matched, rendered,
claimed, sent to Postfix's ``smtp-sink`` on 127.0.0.1 and recorded. Modes:

- ``inprocess``: ``paperwire send --all --json`` (workers off);
- ``workers-N``: N ``paperwire worker`` processes started (and registered) first, then
  ``paperwire send --all --wait --json`` (workers on), timed until every batch is done.

Reference, in the same run: plain ``smtplib`` over one connection sending pre-built
messages (bench/send.py's), the rate a user would compare with. Matching is by words
(``relevance.embedder = off``): embedding is its own step, measured in bench/embed.py.

    PAPERWIRE_TEST_DB=postgresql+psycopg://paperwire:paperwire@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/scale.py --readers 100000

smtp-sink comes with Debian's postfix package.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from send import build_messages, free_port, run_smtplib_one_connection, start_sink  # noqa: E402

from paperwire import sources  # noqa: E402
from paperwire.store import Store  # noqa: E402
from paperwire.subscribers import build_subscriber, parse_topic_spec  # noqa: E402

SEED = ROOT / "seeds" / "000_f1d956a196093e66.txt"
TOPICS = ["language models", '"diffusion"', "MoE OR RAG", "*", "reasoning -survey", "video generation",
          "title:agents", "reinforcement learning"]


def create_database(server: str) -> str:
    name = f"pw_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_database(server: str, url: str) -> None:
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    admin.dispose()


def fill(url: str, readers: int) -> None:
    store = Store(url)
    store.save_listings(sources.read_path(SEED))
    batch = []
    for i in range(readers):
        topics = [parse_topic_spec(TOPICS[(i + k) % len(TOPICS)]) for k in range(1 + i % 2)]
        batch.append(build_subscriber(f"reader{i:06d}@example.org", name=f"Reader {i}", topics=topics, max_papers=10))
        if len(batch) == 5000:
            store.save_subscribers(batch)
            batch = []
    if batch:
        store.save_subscribers(batch)
    store.close()


def live_workers(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass('procrastinate_workers')")).scalar() is None:
            count = 0
        else:
            count = conn.execute(sa.text("SELECT count(*) FROM procrastinate_workers")).scalar()
    engine.dispose()
    return count


def run_mode(mode: str, server: str, readers: int, port: int, args, sink: subprocess.Popen) -> dict:
    url = create_database(server)
    workers = int(mode.split("-")[1]) if mode.startswith("workers-") else 0
    scratch = Path(f"/tmp/{make_url(url).database}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERWIRE_")}
    env.update(PAPERWIRE_DB=url, PAPERWIRE_RELEVANCE_EMBEDDER="off", PAPERWIRE_SMTP_HOST="127.0.0.1",
               PAPERWIRE_SMTP_PORT=str(port), PAPERWIRE_SMTP_POOL_SIZE=str(args.pool_size),
               PAPERWIRE_OUT_DIR=str(scratch / "out"), PAPERWIRE_WORKERS_BATCH_SIZE=str(args.batch_size),
               PAPERWIRE_WORKERS_ENABLED="1" if workers else "0", PAPERWIRE_DELIVERY_CHUNK=str(args.delivery_chunk),
               PYTHONPATH=str(ROOT / "src"))
    started_workers = []
    try:
        filling = time.perf_counter()
        fill(url, readers)
        print(f"  {mode}: {readers:,} readers stored in {time.perf_counter() - filling:.1f} s", flush=True)
        if workers:
            subprocess.run([sys.executable, "-m", "paperwire", "papers"], env=env, capture_output=True, check=True)
            started_workers = [subprocess.Popen([sys.executable, "-m", "paperwire", "worker", "--concurrency",
                                                 str(args.concurrency)], env=env, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL) for _ in range(workers)]
            while live_workers(url) < workers:
                time.sleep(0.1)
        command = ["send", "--all", "--json"] + (["--wait"] if workers else [])
        cpu_before = _children_cpu() + sum(_process_cpu(p.pid) for p in started_workers)
        others_before = _postgres_cpu(), _process_cpu(sink.pid)
        begun = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "paperwire", *command], env=env, capture_output=True,
                              text=True)
        seconds = time.perf_counter() - begun
        cpu = _children_cpu() + sum(_process_cpu(p.pid) for p in started_workers) - cpu_before
        database_cpu, sink_cpu = _postgres_cpu() - others_before[0], _process_cpu(sink.pid) - others_before[1]
        if done.returncode != 0:
            raise SystemExit(f"{mode}: send failed:\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout)
        return {"mode": mode, "seconds": seconds, "sent": report["sent"], "skipped": report["skipped"],
                "failed": report["failed"], "rate": report["sent"] / seconds, "cpu": cpu,
                "database_cpu": database_cpu, "sink_cpu": sink_cpu}
    finally:
        for process in started_workers:
            process.send_signal(signal.SIGTERM)
        for process in started_workers:
            process.wait(timeout=60)
        drop_database(server, url)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int, *, with_children: bool = False) -> float:
    """CPU seconds a running process used so far (/proc: user + system ticks; ``with_children``:
    plus those of its children that ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if with_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> float:
    """CPU seconds of the local PostgreSQL server so far: its live processes, plus the backends
    that ended (in the postmaster's children times). The whole server: whatever else uses it counts too."""
    names = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        names[int(stat.parent.name)] = (text[text.index("(") + 1:text.rindex(")")],
                                        int(text.rsplit(")", 1)[1].split()[1]))
    total = 0.0
    for pid, (name, parent) in names.items():
        if name == "postgres":
            postmaster = names.get(parent, ("", 0))[0] != "postgres"
            try:
                total += _process_cpu(pid, with_children=postmaster)
            except OSError:
                continue
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--modes", default="inprocess,workers-1,workers-2")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1, help="batches at once per worker process")
    parser.add_argument("--delivery-chunk", type=int, default=1,
                        help="delivery_chunk: messages claimed, and answers recorded, in one transaction")
    parser.add_argument("--pool-size", type=int, default=2, help="smtp.pool_size")
    parser.add_argument("--reference", type=int, default=10_000, help="messages for the smtplib reference")
    args = parser.parse_args(argv)
    server = os.environ.get("PAPERWIRE_TEST_DB")
    if not server:
        raise SystemExit("set PAPERWIRE_TEST_DB to a PostgreSQL server URL (see the docstring)")
    port = free_port()
    sink = start_sink(port)
    try:
        bodies = build_messages()
        seconds = run_smtplib_one_connection(port, bodies, args.reference)
        reference = args.reference / seconds
        print(f"reference: plain smtplib, one connection, pre-built ~40 KB messages: {reference:,.0f} messages/s "
              f"({args.reference:,} in {seconds:.1f} s)", flush=True)
        results = {}
        for mode in args.modes.split(","):
            result = run_mode(mode, server, args.readers, port, args, sink)
            results[mode] = result
            ms = {key: 1000 * result[key] / max(1, result["sent"]) for key in ("cpu", "database_cpu", "sink_cpu")}
            print(f"{mode:<10} {result['rate']:8,.0f} messages/s  ({result['sent']:,} sent in {result['seconds']:.1f} s;"
                  f" CPU per message: paperwire {ms['cpu']:.2f} ms, PostgreSQL {ms['database_cpu']:.2f} ms,"
                  f" smtp-sink {ms['sink_cpu']:.2f} ms; skipped {result['skipped']}, failed {result['failed']})",
                  flush=True)
    finally:
        sink.kill()
        sink.wait()
    if "workers-1" in results and "workers-2" in results:
        print(f"2 workers / 1 worker: {results['workers-2']['rate'] / results['workers-1']['rate']:.2f}x")
    if "inprocess" in results:
        for mode in ("workers-1", "workers-2"):
            if mode in results:
                print(f"{mode} / in-process: {results[mode]['rate'] / results['inprocess']['rate']:.2f}x")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
