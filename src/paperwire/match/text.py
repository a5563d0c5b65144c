"""Cutting field text into tokens and folding each token to the form that is compared.

Only whole tokens are ever compared, which is what keeps ``RAG`` out of "leverage"
and ``scale`` out of "ScaLearn". A token is a run of letters and digits, with inner
apostrophes kept (``isn't``, ``LLM's``).

Every token remembers its character span in the original text (so matches can be
highlighted by slicing the untouched title or abstract) and a word *position*. Two
tokens separated only by spaces, hyphens or a slash are adjacent, and so are two tokens
that one ``.`` or ``@`` holds together ("v.2", "pass@1": :func:`dot_joins`); a number's
decimal point and thousands commas are inside its token ("1.5B", "1,000"); any other
punctuation (``. `` ``,`` ``:`` ``(``) leaves a gap, so a phrase never runs across a
sentence or a list (LaTeX's ``$`` is not punctuation: "$k$-NN" is "k-NN", :func:`read_gap`).
Tokens separated by just a space or one hyphen may also be read
as one joined word ("multi-modal" -> "multimodal"). In a paper, two words a space apart
are read as one only when neither is a function word (:data:`FUNCTION_WORDS`): "multi
modal" is ``multimodal`` and "data set" is ``dataset``, but "may be" is not ``maybe``,
"in line" not ``inline`` and "not able" not ``notable`` (see :meth:`Stems.glued_apart`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import Stemmer

from paperwire.match.sentences import ends_sentence, next_sentence
from paperwire.models import Paper

FIELDS = ("title", "abstract", "author")
AUTHOR_SEPARATOR = ", "

# A decimal point between digits stays inside the token: "1.5B" is one, so ``5B`` is not in it;
# so does a comma that groups thousands ("1,000,000", folded to "1000000": ``fold``).
TOKEN_PATTERN = re.compile(r"[^\W_]+(?:(?:['\u2019]|(?<=\d)\.(?=\d)|(?<=\d),(?=\d{3}(?!\d)))[^\W_]+)*")
# Adjacent: spaces, hyphens (a soft hyphen too), dashes, minus signs, slashes; or one "@"
# inside a name ("pass@1"). One "." with no space is adjacent when what follows goes on a
# name (a digit or a small letter: "v.2", "e.g"; see dot_joins), not a new sentence
# typed without its space ("reward.Hacking"). A "." and a space may end a sentence.
_ADJACENT_GAP = re.compile(r"[\s\-\u00ad\u2010\u2011\u2012\u2013\u2014\u2212/]+|@")
_JOINABLE_GAP = re.compile(r"\s+|[-\u00ad\u2010\u2011]")


def read_gap(gap: str) -> tuple[bool, bool, bool]:
    """Whether the text between two tokens leaves them adjacent, lets them be read as one
    word, and does so as a hyphen does. LaTeX's ``$`` is not text: "$k$-NN" is "k-NN"."""
    bare = gap.replace("$", "")
    joinable = _JOINABLE_GAP.fullmatch(bare) is not None
    return joinable or _ADJACENT_GAP.fullmatch(bare) is not None, joinable, joinable and not bare.isspace()


def dot_joins(gap: str, next_word: str) -> bool:
    """Whether ``gap`` is one "." inside a name, before ``next_word``: "v.2", "e.g" (between
    digits it is a decimal point, inside the token: ``TOKEN_PATTERN``)."""
    return gap == "." and (next_word[0].isdigit() or next_word[0].islower())


# Words that hold a sentence together rather than name a thing: articles, pronouns,
# auxiliaries and modals, prepositions and particles, conjunctions, negation, quantifiers.
# Written apart from a neighbour, such a word is its own word, never half of a compound:
# "may be", "in line", "not able", "in finite", "on line", "over all", "a part", "of ten".
# (Hyphenated, "on-line" and "over-fitting" are still one word: the hyphen says so.)
FUNCTION_WORDS = frozenset(
    """a an the this that these those some any every each all both either neither no nor not
    i me my we us our ours you your he him his she her it its they them their theirs
    itself themselves ourselves who whom whose which what when where why how whether there here
    is am are was were be been being do does did done has have had having
    can could may might must shall should will would
    and or but if then than so as yet because since while though although unless until
    of in on at by to for from with without within into onto upon about above below under over
    after before between through during against among across along around behind beyond
    off out up down via per toward towards
    also only just very too such same own other more most much many few several
    again further once ever never thus hence however""".split()
)


# Function words that only connect a topic's words ("scaling laws for LLMs", "evaluation of
# LLMs", "vision and language", "LLM as a judge"): a run's words are near each other without
# them (its phrase keeps them). Not negations ("not safe", "without labels"), quantifiers ("few
# shot") nor particles ("down sampling"): those change what the other words mean.
CONNECTIVES = frozenset(
    """a an the of for in on at by to from with into onto upon via per and or as
    is are was were be been being""".split()
)


def is_connective(word: str) -> bool:
    """A word of :data:`CONNECTIVES` as a reader writes it (not in capitals: "IS" may be an acronym)."""
    return word.casefold() in CONNECTIVES and not (len(word) > 1 and word.isupper())


def is_function_word(word: str) -> bool:
    """A word that only joins others ("of", "the"), as a reader writes it: not one in capitals,
    which may be an acronym ("IT", "US")."""
    return word.casefold() in FUNCTION_WORDS and not (len(word) > 1 and word.isupper())


# What only asks, in a topic phrased as a question (``what is RAG``, ``how do LLMs do math``;
# the parser drops a trailing "?" as it drops a trailing "."): question words and auxiliaries,
# which a run that asks leaves out (``question_words``, ``plan``). Elsewhere they
# are words ("when to retrieve", "free will"). A run that opens with an auxiliary alone asks
# only when a "?" closes it (``can LLMs reason?``): "can bus intrusion detection" and "do
# calculus" are no questions.
QUESTION_WORDS = frozenset("what which who whom whose why how when where".split())
AUXILIARIES = frozenset("is am are was were do does did can could will would shall should may might must".split())
# Who asks, in a question: "how do we prune attention heads", "how can I merge LoRA adapters"
# (a paper never says "we" where the reader does).
_ASKERS = frozenset("i we you one".split())


def question_words(words: Sequence[str], question_mark: bool = False) -> list[bool]:
    """For each of a run's words, whether it only asks the question the run is: all False
    unless the run asks (it starts with a question word and an auxiliary, ``why do LLMs
    hallucinate``, or with an auxiliary and a "?" closes it: ``question_mark``). Then its
    question words, auxiliaries and askers ("we", "I", "you") only ask, and so does "work"
    closing ``how ... work`` (a paper on speculative decoding need not say how it works).
    Words in capitals may be acronyms ("CAN", "DO"): they never only ask."""
    bare = ["" if len(word) > 1 and word.isupper() else word.casefold() for word in words]
    asks = len(bare) > 1 and (bare[0] in QUESTION_WORDS and bare[1] in AUXILIARIES
                              or question_mark and bare[0] in AUXILIARIES)
    if not asks:
        return [False] * len(words)
    scaffolding = [word in QUESTION_WORDS or word in AUXILIARIES or word in _ASKERS for word in bare]
    if bare[0] == "how" and bare[-1] in ("work", "works") or question_mark and bare[-1] in _VERDICTS:
        scaffolding[-1] = True  # "how does speculative decoding work", "does MoE help?"
    for at in range(1, len(bare) - 1):  # "should I use LoRA?", "do we need RLHF?"
        if bare[at] in _ASKERS and scaffolding[at] and bare[at + 1] in _ASKERS_VERBS:
            scaffolding[at + 1] = True
    return scaffolding


# What closes a yes/no question about whether a thing is worth it ("does MoE help?", "does data
# diversity matter?", "will scaling laws hold?"), and what an asker does with it ("should I use
# LoRA?", "do we need RLHF?"): no paper need say those.
_VERDICTS = frozenset("work works help helps matter matters hold holds".split())
_ASKERS_VERBS = frozenset("use need choose pick try apply".split())


# What only asks for papers, in a topic typed as a request: "papers about model merging",
# "recent work on scaling laws", "keep me posted on anything about small language models",
# "latest diffusion models", "interests: quantization", "scaling laws research", "... please".
# Left out of the run (``request_words``, ``plan``), these words need not be in a paper, or every
# word match was lost to one of them. Only at a run's edges, and only as a request is phrased:
# a leading stretch of them ends in a word that leads to the topic ("on", "about"; or one of
# _LABELS, _FRESH); "work stealing", "paper recommendation" and "new physics" stay words.
REQUEST_WORDS = frozenset(
    """papers paper articles article publications preprints research work studies results
    advances progress developments trends news updates anything something everything stuff
    recent latest newest new current novel methods approaches techniques ways ideas
    send show give find keep posted updated tell want need looking interested following
    follow track read reading hear please me my like love would interests keywords topics
    recommend suggest more good seminal prior related there i'm i’m i'd i’d i've i’ve""".split()
)
_LEADS_TO_TOPIC = frozenset("on about in into for of to regarding concerning around re".split())
# Words that end a request without leading to the topic: "interests: quantization", "show me
# speculative decoding"; and, when two words or more follow, "latest diffusion models",
# "keywords: model merging" ("recent tokens", "latest results" and "keywords extraction" are
# topics of their own).
_LABELS = frozenset("interests me".split())
_FRESH = frozenset("recent latest newest keywords topics papers".split())
# Words that ask for papers after the topic, with the fewest words it must keep: "operations
# research" is a field, "scaling laws research" a request. Not after a word that makes them
# the topic: "scientific papers", "deep research", "AI for scientific research", "citation
# recommendation for papers".
_TRAILING_REQUESTS = {"papers": 1, "articles": 1, "publications": 1, "preprints": 1, "please": 1, "stuff": 1,
                      "research": 2}
_NAMED_BY_TRAILING = frozenset("""scientific academic scholarly research retracted published peer reviewed
    deep operations arxiv citation citations cited white position student seminal""".split())
_MAY_REQUEST = REQUEST_WORDS | _ASKERS | AUXILIARIES | QUESTION_WORDS | {"any", "am", "the", "a", "an", "some", "all"}
_MAY_ASK = _MAY_REQUEST | _LEADS_TO_TOPIC


def request_words(words: Sequence[str]) -> list[bool] | None:
    """For each of a run's words, whether it only asks for papers (see REQUEST_WORDS); None
    when none does, or when all might ("latest papers", "recent advances": those are the
    topic). Words in capitals never only ask."""
    if words[0].casefold() not in _MAY_ASK and words[-1].casefold() not in _TRAILING_REQUESTS:
        return None  # most runs, at once
    bare = ["" if len(word) > 1 and word.isupper() else word.casefold() for word in words]
    if only_asks(bare):
        return None
    lead = 0  # the leading stretch that asks ends before this word
    for at, word in enumerate(bare[:-1]):
        if word not in _MAY_ASK:
            break
        if word in _LEADS_TO_TOPIC or word in _LABELS or word in _FRESH and len(bare) - at > 2:
            lead = at + 1
    if lead and not any(word in REQUEST_WORDS for word in bare[:lead]):
        lead = 0  # only connecting words ("of the"): nothing asks
    trail = len(bare)
    while (trail - lead > _TRAILING_REQUESTS.get(bare[trail - 1], len(bare))
           and bare[trail - 2] not in _NAMED_BY_TRAILING and bare[trail - 2] not in _LEADS_TO_TOPIC):  # "... for papers"
        trail -= 1
    if not lead and trail == len(bare):
        return None
    return [not lead <= at < trail for at in range(len(bare))]


def only_asks(words: Sequence[str]) -> bool:
    """Whether a run's words all only ask for papers: ``papers about`` before a quoted topic
    (``papers about "model merging"``), a lone ``papers`` after an exclusion. Beside other
    terms such a run is no condition (``plan``); alone it is the topic."""
    if words[0].casefold() not in _MAY_ASK:
        return False  # most runs, at once
    bare = [word.casefold() for word in words]
    return any(word in REQUEST_WORDS for word in bare) and all(word in _MAY_ASK for word in bare)


# Particles that begin compounds some writers space: "down sampling", "up sampling", "over
# fitting", "under fitting", "out performs", "off line". As the first word they may glue.
COMPOUND_PARTICLES = frozenset({"up", "down", "over", "under", "out", "off"})


class Token(NamedTuple):
    """One word of a field: where it is and whether it may be glued to the one before."""

    surface: str  # exactly as written
    start: int  # character offsets into the field text
    end: int
    position: int  # word position; consecutive words differ by 1, a break by 2, a sentence starts at next_sentence()
    joins_previous: bool  # only a space or a single hyphen since the previous token
    hyphenated: bool = False  # that was a hyphen: glued whatever the words (Stems.glued_apart otherwise)


def field_text(paper: Paper, field: str) -> str:
    """The text a field's match spans index into (authors are joined with ", ")."""
    if field == "title":
        return paper.title
    if field == "abstract":
        return paper.abstract
    if field == "author":
        return AUTHOR_SEPARATOR.join(paper.authors)
    raise ValueError(f"unknown field {field!r}")


def tokenize(text: str) -> Iterator[Token]:
    """Tokens of ``text`` with positions that encode which neighbours are adjacent."""
    position = -1
    previous_end = None
    previous = ""
    for found in TOKEN_PATTERN.finditer(text):
        start, end = found.span()
        hyphenated = False
        if previous_end is None:
            position, joins = 0, False
        else:
            gap = text[previous_end:start]
            if gap == " ":  # by far the commonest gap
                position, joins = position + 1, True
            else:
                adjacent, joins, hyphenated = read_gap(gap)
                if ends_sentence(gap, fold(previous)):
                    position = next_sentence(position)
                else:
                    position += 1 if adjacent or dot_joins(gap, found.group()) else 2
        previous_end = end
        previous = found.group()
        yield Token(previous, start, end, position, joins, hyphenated)


def fold(word: str) -> str:
    """Lower case, typographic apostrophe to ``'``, accents dropped (``Müller`` -> ``muller``),
    a number's thousands commas dropped (``1,000`` -> ``1000``)."""
    word = word.lower().replace("\u2019", "'")
    if "," in word:  # only a number's: TOKEN_PATTERN keeps no other comma in a token
        word = word.replace(",", "")
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


# British spellings read as the American ones, which Snowball stems apart from them
# ("tokenisation" -> ``tokenis``, "tokenization" -> ``token``). Only sure variants: the -ise
# family of a verb (not of "precise", "supervise", "promise", "surprise", "pairwise",
# "expertise", "advertise": _NOT_ISE, also after a prefix: "imprecise", "uncompromising"),
# -yse ("analyse"), and closed lists of roots: -our ("colour", "unfavourable"), "grey",
# "licence", -re ("centre", "kilometre"), -ogue ("catalogue", "cataloguing"), and the ae/oe
# of medicine and a few others ("paediatric", "haemoglobin", "oesophageal", "palaeo").
_ISE = re.compile(r"(?P<root>\w{3,}?)(?P<vowel>[iy])s(?P<ending>e|es|ed|ing|ingly|er|ers|ement|ements|able|ably|ability|"
                  r"abilities|ation|ations|ational|ationally)")
_NOT_ISE = re.compile(r".*(?:v|w|pr|gu|o|a|qu)|(?:un|im|in|over|pre|non|dis|en|immuno|mis|re|self|af|sun|up)*"
                      r"(?:prec|conc|exc|inc|circumc|exerc|prom|prem|dem|surm|comprom|expert|merchand|franch|chast|"
                      r"desp|parad|treat|mort|cer|rem|chem|advert|cru|bru|val|r|ar)")
_OUR = re.compile(r"(behavi|col|fav|hon|lab|neighb|hum|rum|flav|vap|harb|endeav|arm|od|rig|vig|sav|tum|val|ferv|"
                  r"clam|splend)our")
_ROOTS = {"grey": "gray", "licenc": "licens", "judgement": "judgment", "scepti": "skepti", "artefact": "artifact",
          "paed": "ped", "haem": "hem", "anaem": "anem", "anaesth": "anesth", "leukaem": "leukem", "ischaem": "ischem",
          "oesophag": "esophag", "oestr": "estr", "foet": "fet", "gynaec": "gynec", "oedem": "edem",
          "diarrhoe": "diarrhe", "palaeo": "paleo"}
_WORD_START_ROOTS = {"oestr", "oedem"}  # "shoestring" is no "estrogen"
_ROOT = re.compile("|".join(rf"(?<![a-z]){root}" if root in _WORD_START_ROOTS else root for root in _ROOTS))
_RE = re.compile(r"(?P<root>\w*(?:cent|met|fib|lit|theat|calib|spect|sab|meag|somb|lust))re(?P<ending>s|d)?")
_OGUE = re.compile(r"(?P<root>\w*(?:catal|dial|anal|prol|epil|monol|demag))ogu(?P<ending>e|es|ed|ing|er|ers)")
_OGUE_ENDINGS = {"e": "", "es": "s"}  # "dialogue" -> "dialog", "dialogues" -> "dialogs"; "-ed", "-ing" as they are
_BRITISH_WORDS = {"ageing": "aging", "programme": "program", "programmes": "programs", "defence": "defense",
                  "defences": "defenses", "offence": "offense", "offences": "offenses", "centring": "centering"}
# What a word needs to be looked at (most words have none of it).
_MAYBE_BRITISH = re.compile(r"[iy]s|our|grey|licenc|judgement|scepti|artefact|[tbg]re|ogu|ae|oe")


def american(folded: str) -> str:
    """``folded`` in American spelling where the British one is a sure variant of it
    ("tokenisation" -> "tokenization", "behaviour" -> "behavior", "centre" -> "center"), so
    a topic and a paper that spell a word the two ways match. Papers and topics alike go
    through it (``Stems.of``), so a word it leaves alone or changes reads the same on both sides."""
    if folded in _BRITISH_WORDS:
        return _BRITISH_WORDS[folded]
    if not _MAYBE_BRITISH.search(folded):
        return folded
    word = _OUR.sub(r"\1or", folded)
    word = _ROOT.sub(lambda found: _ROOTS[found.group()], word)
    if (found := _ISE.fullmatch(word)) and not _NOT_ISE.fullmatch(found["root"]):
        return f"{found['root']}{found['vowel']}z{found['ending']}"
    if found := _RE.fullmatch(word):
        return f"{found['root']}er{'ed' if found['ending'] == 'd' else found['ending'] or ''}"
    if found := _OGUE.fullmatch(word):
        return f"{found['root']}og{_OGUE_ENDINGS.get(found['ending'], found['ending'])}"
    return word


# Snowball's stems, overruled: "adapter" (a module: LoRA adapters) is not "adapt", "adaptive"
# nor "adaptation"; "repetition" is "repeat" ("repeated data"), "router" is "routing", and
# "params" is "parameters" ("models under 3B params").
# Latin and Greek plurals are their singulars ("indices" is not "indicate", "analyses" is
# "analysis", and "criteria" found nothing beside "criterion").
OWN_STEMS = {"adapter": "adapter", "adapters": "adapter", "adaptor": "adapter", "adaptors": "adapter",
             "repetition": "repeat", "repetitions": "repeat", "router": "rout", "routers": "rout",
             "param": "paramet", "params": "paramet",
             "indices": "index", "analyses": "analysi", "hypotheses": "hypothesi", "syntheses": "synthesi",
             "theses": "thesi", "criteria": "criterion", "phenomena": "phenomenon", "matrices": "matrix",
             "vertices": "vertex", "appendices": "appendix", "corpora": "corpus"}
# Comparatives and superlatives read as their adjective, which Snowball leaves apart: a tester's
# ``smaller models`` missed the papers on small models, and a paper's "faster inference" is
# what ``fast inference`` asks. Only these regular ones: "better" and "less" say more than their
# base, and "later", "older", "greater" or "fewer" name other things in papers; nor "longer",
# which abstracts write as "no longer" ("The context window is no longer a bottleneck" is no
# long context). Nor the adjectives of fixed terms: "larger models" found 61 of 104 papers
# through "large language models", "finer" every "fine-tuning" (so not large, deep, fine,
# high, low, light, new). Names pay: ``Faster R-CNN`` finds "Fast R-CNN" too.
BASE_FORMS = {
    f"{root}{ending}": base
    for base, root in (  # the adjective, and how it is spelled before -er and -est
        ("fast", "fast"), ("slow", "slow"), ("long", "long"), ("short", "short"), ("small", "small"),
        ("big", "bigg"), ("cheap", "cheap"), ("wide", "wid"), ("strong", "strong"), ("weak", "weak"),
        ("simple", "simpl"), ("easy", "easi"), ("hard", "hard"), ("dense", "dens"), ("sparse", "spars"),
        ("safe", "saf"), ("tight", "tight"), ("coarse", "coars"), ("smart", "smart"), ("quick", "quick"),
        ("broad", "broad"), ("narrow", "narrow"), ("shallow", "shallow"), ("thin", "thinn"),
        ("smooth", "smooth"), ("sharp", "sharp"), ("tiny", "tini"),
    )
    for ending in ("er", "est")
    if f"{root}{ending}" != "longer"
}
# A word of the -ize family (as ``american`` spells it) keeps "iz" in its stem. Snowball drops the
# suffix when the rest is long enough, and so reads "tokenizer" as "token", "generalization" as
# "general", "visualization" as "visual" and "normalization" as "normal": a tester's
# ``tokenisation`` found 31 papers that only said "token". A root of three letters or more: "size"
# and "prize" are no such family.
_IZE_FAMILY = re.compile(r"(?P<root>[a-z]{3,}?)iz(?:e|es|ed|ing|er|ers|ation|ations|ational|ationally|able|ability)")
# So does the -able family keep "abl" (and -ible "ibl"): Snowball reads "interpretability" as
# "interpret", and a tester's ``interpretability`` found a paper that only "interpreted" its
# inputs (``explainable`` any paper that explains, ``responsible AI`` any "response").
# "scalable" and "reliable" already keep it; the root is three letters or more ("table",
# "stable" and "bible" are no such family).
_ABLE_FAMILY = re.compile(r"(?P<root>[a-z]{3,})(?P<vowel>[ai])(?:ble|bles|bly|bility|bilities)")


class Stems:
    """Snowball English stems of folded words, memoized (the same words recur all run).

    Snowball already folds the inflections topics need: ``laws``/``law``,
    ``scaling``/``scale``/``scales``, ``quantization``/``quantized``/``quantize`` all
    share a stem, so no extra derivational step is added. Its known limits are kept
    rather than patched: ``scalable`` (-> ``scalabl``) is not ``scale``, and
    ``represent`` (-> ``repres``) is not ``representation`` (-> ``represent``), but for the
    few words of :data:`OWN_STEMS`, where topics met them: a tester's ``adapters`` found
    eleven papers that only "adapt", and ``data repetition`` missed "repeated data"; and
    comparatives are their adjective (:data:`BASE_FORMS`).
    """

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english", 0)  # no cache of its own: ours is enough (and far cheaper)
        self._cache: dict[str, str] = {}

    def __getstate__(self) -> dict[str, str]:
        return self._cache  # the C stemmer cannot be pickled; a compiled Matcher can

    def __setstate__(self, cache: dict[str, str]) -> None:
        self._stemmer = Stemmer.Stemmer("english", 0)  # no cache of its own: ours is enough (and far cheaper)
        self._cache = cache

    def of(self, folded: str) -> str:
        stem = self._cache.get(folded)
        if stem is None:
            stem = self._cache[folded] = OWN_STEMS.get(folded) or self._stem(american(BASE_FORMS.get(folded, folded)))
        return stem

    def _stem(self, word: str) -> str:
        if "iz" in word and (found := _IZE_FAMILY.fullmatch(word)):  # the test first: most words have neither
            return f"{found['root']}iz"
        if ("ab" in word or "ib" in word) and (found := _ABLE_FAMILY.fullmatch(word)):
            return f"{found['root']}{found['vowel']}bl"
        return self._stemmer.stemWord(word)

    def glued_apart(self, first: str, second: str) -> str | None:
        """The stem of two folded words a paper writes with white space between them, read
        as one word, or None.

        A space is a word boundary the text has, except inside a compound some writers
        space ("multi modal", "data set", "fine tuning", "pre training"). Such a compound is
        made of content words, so a pair with a :data:`FUNCTION_WORDS` member is never one:
        "may be" is not ``maybe`` nor "in finite" ``infinite`` -- but for the
        :data:`COMPOUND_PARTICLES` as first word ("down sampling"). Hyphenated pairs go to
        :meth:`glued` directly ("on-line" is ``online``). Topics keep the same rule
        (``PatternMaker``, ``plan``), so a topic written apart never glues what a paper may not.
        """
        if second in FUNCTION_WORDS or first in FUNCTION_WORDS and first not in COMPOUND_PARTICLES:
            return None
        return self.glued(first, second)

    def glued(self, first: str, second: str) -> str | None:
        """The stem of two folded words written as one, or None when stemming eats the seam.

        Two words glue into one term ("multi modal" -> ``multimod``) only if the glued
        stem keeps the whole first word and some of the second: otherwise the stemmer
        cut across the boundary the text has, and the glued form would say something the
        text does not ("model is" -> "modelis" -> ``mode``; "SIFT lies" -> ``sift``).
        """
        stem = self.of(first + second)
        return stem if len(stem) > len(first) and stem.startswith(first) else None
