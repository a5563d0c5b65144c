"""Benchmark: embedding papers with the built-in model (all-MiniLM-L6-v2 int8 ONNX), single process.

Generates one day of papers like bench/match.py does (the 70 seed papers, then variants
that recombine seed sentences), then times:

- throughput of ``MiniLMInt8.embed`` (abstracts/s), one text per call, the way paperwire runs it,
  and of short topic texts;
- baselines in the same run, on the same texts: padded batches (the usual way), and two
  onnxruntime threads instead of one;
- one day of papers through the real embedding step (``semantic.embed_step``: digests,
  model, SQLite writes) into a fresh database, and the same step again when every vector
  is stored (what each matching run pays before it matches).

    PYTHONPATH=src .venv/bin/python bench/embed.py [--papers 1000] [--sample 150]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from match import RANDOM_SEED, SEED_FILE, load_seed, make_papers  # noqa: E402  (the generator of bench/match.py)

from paperwire import embeddings, semantic  # noqa: E402
from paperwire.store import Store  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def session(threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = embeddings.packaged_file(embeddings.MODEL_DIST, embeddings.MODEL_VERSION, embeddings.MODEL_FILE,
                                     embeddings.MODEL_SHA256)
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def padded_batches(model: embeddings.MiniLMInt8, texts: list[str], size: int) -> np.ndarray:
    """The usual way: pad each batch to its longest text, one model call per batch."""
    _, tokenizer = model._load()
    out = []
    for start in range(0, len(texts), size):
        encodings = tokenizer.encode_batch(texts[start:start + size])
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = encoding.ids
            mask[row, :len(encoding.ids)] = 1
        (hidden,) = model._session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                               "token_type_ids": np.zeros_like(ids)})
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return np.vstack(out)


def timed(label: str, count: int, work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    print(f"{label:<44} {count / seconds:7.1f} abstracts/s  ({count} in {seconds:.2f} s)")
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", type=int, default=1000, help="papers in the day (default 1000)")
    parser.add_argument("--sample", type=int, default=150, help="texts for the throughput lines (default 150)")
    args = parser.parse_args()

    papers = make_papers(load_seed(SEED_FILE), args.papers, random.Random(RANDOM_SEED))
    texts = [semantic.paper_text(p) for p in papers]
    rng = random.Random(RANDOM_SEED)
    sample = rng.sample(texts, min(args.sample, len(texts)))
    model = embeddings.MiniLMInt8()
    started = time.perf_counter()
    model._load()
    print(f"model {model.model_id}: loaded and both files checked in {time.perf_counter() - started:.2f} s")
    tokens = [len(model._tokenizer.encode(t).ids) for t in texts]
    print(f"{len(papers):,} papers, {np.mean([len(t) for t in texts]):.0f} characters and "
          f"{np.mean(tokens):.0f} tokens on average ({sum(n >= embeddings.MAX_TOKENS for n in tokens)} cut at "
          f"{embeddings.MAX_TOKENS})\n")

    one, reference = timed("paperwire: one text per call, 1 thread", len(sample),
                           lambda: np.vstack([model._embed_one(t) for t in sample]))
    topics = [" ".join(rng.sample(texts[0].split()[:40], rng.randint(1, 4))) for _ in range(300)]
    started = time.perf_counter()
    for topic in topics:
        model._embed_one(topic)
    print(f"{'paperwire: topics (1-4 words), 1 thread':<44} {len(topics) / (time.perf_counter() - started):7.1f} "
          f"topics/s")
    print(f"peak RSS so far (the model loaded, paperwire's way): {rss_mb():.0f} MB")
    for size in (8, 32):
        _, batched = timed(f"baseline: padded batches of {size}, 1 thread", len(sample),
                           lambda: padded_batches(model, sample, size))
        assert np.allclose(batched, reference, atol=2e-2), "padding changed the vectors"
    single_thread = model._session
    model._session = session(2)
    timed("baseline: one text per call, 2 threads", len(sample),
          lambda: np.vstack([model._embed_one(t) for t in sample]))
    model._session = single_thread

    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.sqlite3")
        fresh = embeddings.MiniLMInt8()  # no memo: every paper really goes through the model
        started = time.perf_counter()
        report = semantic.embed_step(store, fresh, papers)
        day = time.perf_counter() - started
        print(f"\none day of {len(papers):,} papers through the embedding step (fresh SQLite): {day:.1f} s "
              f"({report.embedded / day:.1f} papers/s; embedded {report.embedded}, failed {len(report.failed)})")
        started = time.perf_counter()
        again = semantic.embed_step(store, fresh, papers)
        print(f"the same step with every vector stored: {1000 * (time.perf_counter() - started):.0f} ms "
              f"(missing {again.missing})")
        started = time.perf_counter()
        texts, _, present = semantic.stored_pairs(store, fresh, papers)
        print(f"stored_pairs of {len(papers):,} papers from the store: {1000 * (time.perf_counter() - started):.0f} ms "
              f"({texts.shape[0]}x{texts.shape[1]} twice, {int(present.sum())} present)")
        store.close()
    print(f"peak RSS {rss_mb():.0f} MB (the padded-batch baselines account for most of it)")


if __name__ == "__main__":
    main()
