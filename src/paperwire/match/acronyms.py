"""The built-in acronym table and how acronyms are recognized in papers and in queries.

Decisions (see also the module docstring of :mod:`paperwire.match`):

* In a **paper**, a token counts as the acronym only when written in its canonical
  case (``MoE``, ``LoRA``) or all in capitals (``MOE``, ``LORA``), optionally with a
  plural ``s`` or a possessive ``'s`` (``LLMs``, ``VLM's``). So ``rag`` in "rag doll",
  ``Rag`` or ``Sam`` (a name) are ordinary words, never RAG or SAM. Whole tokens only:
  ``leverage`` does not contain RAG, ``MLLMs`` is not ``LLM``.
* In a **query**, people type in lower case, so the word ``rag``, ``Rag`` or ``RAGs``
  is the acronym RAG. Such a word then matches the acronym and its expansions, not the
  ordinary lower-case word. Inside ``author:`` nothing is an acronym (``author:sam``).
* Acronyms whose letters are commonly an unrelated abbreviation in papers (CV, SD,
  AR, TTA, RM; MT, which papers mostly write as the chat benchmark MT-Bench; IR, also
  infrared; TTS, also test-time scaling; MAE, also mean absolute error) are left out; a
  user can add them with ``extra``. SAM is the Segment Anything Model only: read as
  sharpness-aware minimization too, that topic found Segment Anything papers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from paperwire.errors import ConfigError
from paperwire.match.text import TOKEN_PATTERN

# Canonical spelling -> expansions. Write an expansion once: hyphen, space and joined
# forms ("multi-modal", "multi modal", "multimodal") and inflections are folded anyway.
ACRONYMS: dict[str, tuple[str, ...]] = {
    "AI": ("artificial intelligence",),
    "AGI": ("artificial general intelligence",),
    "ML": ("machine learning",),
    "DL": ("deep learning",),
    "NLP": ("natural language processing",),
    "NLU": ("natural language understanding",),
    "NLG": ("natural language generation",),
    "LM": ("language model",),
    "LLM": ("large language model",),
    "SLM": ("small language model",),
    "MLLM": ("multimodal large language model",),
    "VLM": ("vision language model", "visual language model", "vision and language model"),
    "LVLM": ("large vision language model",),
    "VLA": ("vision language action model",),
    "MoE": ("mixture of experts",),
    "RAG": ("retrieval augmented generation",),
    "ICL": ("in context learning",),
    "CoT": ("chain of thought",),
    "KV": ("key value",),
    "SFT": ("supervised fine tuning",),
    "PEFT": ("parameter efficient fine tuning",),
    "LoRA": ("low rank adaptation",),
    "PTQ": ("post training quantization",),
    "QAT": ("quantization aware training",),
    "SAE": ("sparse autoencoder",),
    "KD": ("knowledge distillation",),
    "RL": ("reinforcement learning",),
    "DRL": ("deep reinforcement learning",),
    "MARL": ("multi agent reinforcement learning",),
    "RLHF": ("reinforcement learning from human feedback",),
    "RLVR": ("reinforcement learning with verifiable rewards",),
    "PRM": ("process reward model",),
    "DPO": ("direct preference optimization",),
    "PPO": ("proximal policy optimization",),
    "GRPO": ("group relative policy optimization",),
    "MCTS": ("monte carlo tree search",),
    "QA": ("question answering",),
    "VQA": ("visual question answering",),
    "NER": ("named entity recognition",),
    "ASR": ("automatic speech recognition",),
    "OCR": ("optical character recognition",),
    "OOD": ("out of distribution",),
    "ViT": ("vision transformer",),
    "DiT": ("diffusion transformer",),
    "SSM": ("state space model",),
    "MLP": ("multilayer perceptron",),
    "CNN": ("convolutional neural network",),
    "RNN": ("recurrent neural network",),
    "LSTM": ("long short term memory",),
    "GNN": ("graph neural network",),
    "GAN": ("generative adversarial network",),
    "VAE": ("variational autoencoder",),
    "NeRF": ("neural radiance field",),
    "3DGS": ("3d gaussian splatting",),
    "T2I": ("text to image", "text2image"),
    "SAM": ("segment anything model",),
}

ACRONYM_SYMBOL_PREFIX = "acronym:"  # cannot collide with a stem: stems never contain ':'


def acronym_symbol(canonical: str) -> str:
    """The symbol an acronym occupies in token streams and patterns."""
    return ACRONYM_SYMBOL_PREFIX + canonical


def _plural_forms(form: str) -> tuple[str, ...]:
    return (form + "s", form + "'s")


def acronym_table(extra: Mapping[str, str | Iterable[str]] | None = None) -> AcronymTable:
    """The table of the built-in acronyms plus ``extra``, built once per distinct ``extra``.

    Building one takes ~200 µs (every spelling of ~170 acronyms), and a run that asks for
    one per topic paid that 200,000 times at 100,000 readers. Keyed by the whole of
    ``extra`` (each entry, in order), so two configurations never share a table."""
    try:
        key = tuple((acronym, expansions if isinstance(expansions, str) else tuple(expansions))
                    for acronym, expansions in (extra or {}).items())
        hash(key)
    except TypeError:  # not text: the table itself says what is wrong with the entry
        return AcronymTable(extra)
    return _table_of(key)


@lru_cache(maxsize=16)
def _table_of(extra: tuple[tuple[str, str | tuple[str, ...]], ...]) -> AcronymTable:
    return AcronymTable(dict(extra))


class AcronymTable:
    """The built-in table plus a user's extra entries, with lookups for both directions.

    Not changed once built: :func:`acronym_table` shares one between all callers."""

    def __init__(self, extra: Mapping[str, str | Iterable[str]] | None = None):
        self.expansions: dict[str, tuple[str, ...]] = dict(ACRONYMS)
        for acronym, expansions in (extra or {}).items():
            self._add(acronym, expansions)
        self._in_text = self._text_forms()
        self._in_query = self._query_forms()

    def _add(self, acronym: str, expansions: str | Iterable[str]) -> None:
        """Merge a user entry; an existing acronym (any case) gains the new expansions."""
        if not isinstance(acronym, str) or not TOKEN_PATTERN.fullmatch(acronym):
            raise ConfigError(f"acronym {acronym!r} must be a single word of letters and digits")
        new = (expansions,) if isinstance(expansions, str) else tuple(expansions)
        if not new or not all(isinstance(e, str) and TOKEN_PATTERN.search(e) for e in new):
            raise ConfigError(f"acronym {acronym!r} needs at least one expansion with words in it")
        canonical = next((known for known in self.expansions if known.casefold() == acronym.casefold()), acronym)
        merged = self.expansions.get(canonical, ()) + new
        self.expansions[canonical] = tuple(dict.fromkeys(merged))

    def _text_forms(self) -> dict[str, str]:
        """Exact spellings that count as each acronym in a paper; exact beats plural."""
        forms: dict[str, str] = {}
        for canonical in self.expansions:
            for form in (canonical, canonical.upper()):
                for plural in _plural_forms(form):
                    forms.setdefault(plural, canonical)
        for canonical in self.expansions:
            forms[canonical] = forms[canonical.upper()] = canonical
        return forms

    def _query_forms(self) -> dict[str, str]:
        """Case-folded spellings that make a query word an acronym; exact beats plural."""
        forms: dict[str, str] = {}
        for canonical in self.expansions:
            for plural in _plural_forms(canonical.casefold()):
                forms.setdefault(plural, canonical)
        for canonical in self.expansions:
            forms[canonical.casefold()] = canonical
        return forms

    def in_text(self, surface: str) -> str | None:
        """The acronym a paper's token spells, honouring case (``RAG`` yes, ``rag`` no)."""
        return self._in_text.get(surface.replace("\u2019", "'"))

    def in_query(self, word: str) -> str | None:
        """The acronym a query word names, ignoring case (``llms`` is LLM)."""
        return self._in_query.get(word.replace("\u2019", "'").casefold())
