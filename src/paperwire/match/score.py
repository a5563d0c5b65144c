"""BM25F relevance: how strongly a paper is about one query term.

Per field, the term's count is divided by how long that field is relative to the
average (a mention in a short abstract says more than one in a long abstract), then
the fields are added with weights: a title mention counts ``TITLE_WEIGHT`` times an
abstract mention, because a title names what the paper is about. The sum saturates
(``K1``), so the tenth mention adds little, and is scaled by the term's rarity (IDF)
in today's listing, so a hit on "quantization" outweighs one on "model".
"""

from __future__ import annotations

import math
from operator import mul

TITLE_WEIGHT = 4.0
FIELD_WEIGHTS = {"title": TITLE_WEIGHT, "abstract": 1.0, "author": 1.0}
K1 = 1.2  # saturation: how fast repeated mentions stop adding
B = 0.75  # how much field length matters


class Bm25:
    """Scores for one listing: knows each field's length in each paper."""

    def __init__(self, lengths: dict[str, list[int]], paper_count: int):
        self.paper_count = paper_count
        self._factor = {field: _length_factors(field, sizes) for field, sizes in lengths.items()}

    def idf(self, document_frequency: int) -> float:
        n, df = self.paper_count, document_frequency
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, counts: dict[str, dict[int, int]]) -> dict[int, float]:
        """Per paper, the score of a term found ``counts[field][paper]`` times."""
        weighted: dict[int, float] = {}
        for field, per_paper in counts.items():
            factor = self._factor[field]
            # count * factor[paper] for each paper, in C (0.0 + x is x, so the first field needs no sum)
            mentions = dict(zip(per_paper, map(mul, per_paper.values(), map(factor.__getitem__, per_paper))))
            if not weighted:
                weighted = mentions
                continue
            for paper, value in mentions.items():
                before = weighted.get(paper)
                weighted[paper] = value if before is None else before + value
        idf = self.idf(len(weighted))
        saturation = K1 + 1.0
        return {paper: idf * tf * saturation / (K1 + tf) for paper, tf in weighted.items()}


def _length_factors(field: str, sizes: list[int]) -> list[float]:
    """Per paper, what one mention in this field is worth: the field weight over its length norm."""
    average = sum(sizes) / len(sizes) if sizes and sum(sizes) else 1.0
    weight = FIELD_WEIGHTS[field]
    return [weight / (1.0 - B + B * size / average) for size in sizes]
