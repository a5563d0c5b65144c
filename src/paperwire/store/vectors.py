"""Embedding vectors by (model id, sha256 of the exact text embedded): the ``vectors`` table.

Content-addressed, so the store never needs to know whether a text is a paper, a topic or
a sentence, and a changed text or another model simply finds nothing. Vectors go in as
little-endian float32 bytes (LargeBinary: BLOB on SQLite, bytea on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .base import ON_CONFLICT_DIALECTS, _chunks, _now, insert_unless_taken
from .schema import topics, vectors

_FLOAT32 = np.dtype("<f4")


class VectorStore:
    """Mixin of Store: reads and writes of the ``vectors`` table."""

    engine: Engine

    def stored_vector_keys(self, model_id: str, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` (text digests) have a vector of ``model_id``."""
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                found.update(conn.execute(sa.select(vectors.c.text_sha256).where(
                    vectors.c.model_id == model_id, vectors.c.text_sha256.in_(chunk))).scalars())
        return found

    def vectors(self, model_id: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``model_id`` for ``keys`` (text digests); absent ones are left out."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                rows = conn.execute(sa.select(vectors.c.text_sha256, vectors.c.dimensions, vectors.c.vector).where(
                    vectors.c.model_id == model_id, vectors.c.text_sha256.in_(chunk)))
                for key, dimensions, blob in rows:
                    row = np.frombuffer(blob, dtype=_FLOAT32)
                    if row.shape == (dimensions,):  # a truncated blob is as good as none: embedded again
                        found[key] = row.astype(np.float32)
        return found

    def save_vectors(self, model_id: str, rows: Mapping[str, np.ndarray]) -> None:
        """Store ``rows`` (text digest -> vector) under ``model_id``; one already there is kept
        (the same text and model give the same vector, so two processes may race harmlessly)."""
        values = [{"model_id": model_id, "text_sha256": key, "dimensions": int(row.shape[0]),
                   "vector": np.ascontiguousarray(row, dtype=_FLOAT32).tobytes()} for key, row in rows.items()]
        if not values:
            return
        now = _now()
        with self.engine.begin() as conn:
            for chunk in _chunks(values):
                _insert_new(conn, [{**value, "created_at": now} for value in chunk])

    def topic_queries(self) -> list[str]:
        """Every stored topic's query, each once (readers' and public topics alike)."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(topics.c.query).distinct().order_by(topics.c.query)).scalars())

    def count_vectors(self, model_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(vectors)
        if model_id is not None:
            query = query.where(vectors.c.model_id == model_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _insert_new(conn: Connection, values: Sequence[dict]) -> None:
    """INSERT, skipping rows whose key is already there (ON CONFLICT DO NOTHING where the
    database has it; otherwise the keys present are looked up first)."""
    if conn.dialect.name in ON_CONFLICT_DIALECTS:
        conn.execute(insert_unless_taken(conn, vectors), list(values))
        return
    model_ids = {value["model_id"] for value in values}
    present = set(conn.execute(sa.select(vectors.c.model_id, vectors.c.text_sha256).where(
        vectors.c.model_id.in_(model_ids), vectors.c.text_sha256.in_([v["text_sha256"] for v in values]))).tuples())
    fresh = [v for v in values if (v["model_id"], v["text_sha256"]) not in present]
    if fresh:
        conn.execute(vectors.insert(), fresh)
