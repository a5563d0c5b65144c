"""Boilerplate: sentences that say where a paper's code or data are, and links.

Boilerplate sentences -- where to get the code or data, links -- are not what a paper
is about, so they are not matched text (:func:`mask_boilerplate`). Precision comes first:
a claim masked loses a reader a paper, a pointer matched only adds a weak hit. A sentence is
boilerplate when

* it holds a link (``http://``, ``https://``, ``www.``, a ``github.com/``-style host and
  path, or a bare host on a domain that hosts project pages: ``x.github.io``,
  ``huggingface.co``, ``x.readthedocs.io``, ...) and an availability word (available,
  release, open-source, project page, ...), or says little else (at most
  :data:`LINK_LABEL_WORDS` words besides its links: "See https://... for details"), or
  starts with what is made available (below) and points at the link in a word or two
  ("The dataset and code are at https://..."); or
* it says nothing but a release, at any length: "we" and a release verb ("release", "are
  publicly releasing", "open-source", "make ... available"), or "X and Y are released",
  what is released -- each the paper's own: "the TicketTalk dataset", "our code", "code";
  not "a new dataset of 10k videos" -- then only how (publicly, under a licence, with this
  paper, on GitHub) and why ("to facilitate future research on dialogue systems", "for
  reproducibility"). Anything more -- "which achieve state-of-the-art results", "and show
  that", "to the verifier at every step" -- makes it a claim; or
* it has at most :data:`STATEMENT_WORDS` words, starts with what is made available, in any
  order and each with up to two words that say which (:data:`_MODIFIER`) -- "Code", "Our
  code and data", "Data and evaluation code", "The source code", "Models and datasets",
  "Project page", "Demo", "A demo" ... -- then a verb or a colon, and says how it can be had: it is
  available, released, open-sourced, hosted, made public, shared upon request, or found /
  provided / shared at a place (a code host, "our project page", the supplementary
  material); or
* it has at most :data:`STATEMENT_WORDS` words and says "we (will) release / open-source /
  publish our code/data/models" with nothing more than how and why (or "we make / share"
  them, with nothing more or with how).

Short sentences that say what others make available are claims about the field: a bare
noun "for" a task ("Models for code generation are publicly available"), how often
("Annotated data are rarely available"), a negation ("Data are not publicly available"),
or a contrast ("..., but their training data is not") unless each half points to the
paper's own ("Code is available now, while data will be released upon acceptance").

In any other sentence its links alone are not matched text: "Our model beats GPT-4 on
SWE-bench (https://www.swebench.com)" is a claim, while "leaderboard-multimodal" in its
address is no paper saying "multimodal". A link is what :data:`_ADDRESS` finds, so a
scheme or "www." with nothing after it ("Code: https://.", an address lost on the way)
counts as one.

Starting with such a noun is not enough: "Models are found to be brittle", "The weights
are shared across all layers", "Data is scarce for many public health applications" and
"The model is provided with ten demonstrations" are what a paper is about.
"""

from __future__ import annotations

import re

from paperwire.match.sentences import sentence_spans

LINK_LABEL_WORDS = 5  # a sentence with a link and at most this many other words only points to it
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")  # a word as a sentence's length counts it ("GPT-4" one)
STATEMENT_WORDS = 14  # a longer sentence without a link says more than where things are


# Every release statement has one of these (lower-cased): a cheap test before
# :data:`_RELEASE_STATEMENT`, which most sentences fail more slowly (:func:`_may_release`).
_RELEASE_CUES = ("availab", "releas", "open", "public", "publish", "provid", "shar")
# Every boilerplate sentence has one of these (lower-cased); most abstracts have none, and
# are not split into sentences at all. Plain substring tests: this runs on every abstract.
_CUES = ("://", "www.", *_RELEASE_CUES, "hosted", "found", "accessib", "github", "gitlab", "hugging",
         "readthedocs", "netlify", "vercel", "pages.dev", "sites.google", "zenodo", "repositor", "supplement",
         "upon", "community", ":", ".com/", ".org/", ".io/", ".co/", ".net/", ".ai/", ".dev/")
_AVAILABLE = re.compile(
    r"\b(?:available|availability|releas\w*|open[- ]?sourc\w*|publicly|public|hosted|can be found|"
    r"accessible|project page|project website|homepage|github|hugging ?face)\b",
    re.IGNORECASE,
)
_ARTIFACT = r"(?:source code|code(?:s|base)?|data(?:sets?)?|models?|(?:model\s+)?(?:weights|checkpoints?)|" \
    r"implementations?|demos?|project (?:page|website)|website|benchmarks?|resources|materials|scripts|artifacts|" \
    r"videos?|pretrained models?|samples|generations)"
# Words that say which code or data an artifact is ("evaluation code", "training data",
# "trained models"): up to two before each artifact, so "Data and evaluation code are
# released" is as much boilerplate as "Code and data are released", in either order. A closed
# list: in "Code generation data are scarce" the words before "data" name a topic, and the
# sentence stays matched text.
_MODIFIER = r"(?:evaluation|training|test|inference|benchmark|experiments?|experimental|reproduction|" \
    r"replication|analysis|simulation|pre-?trained|trained|fine-?tuned|synthetic|generated|generation|annotated|" \
    r"raw|processed|baseline|supporting|accompanying|associated|relevant|model|audio)"
_ARTIFACT_PHRASE = rf"(?:{_MODIFIER}\s+){{0,2}}{_ARTIFACT}"
_AND = r"(?:\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*)"
# "A demo", "An interactive demo", "A video": what only the paper's own pointers start with
# "a" ("A model is available for only three languages" is a claim).
_A_DEMO = (r"an?\s+(?:(?:online|live|interactive|web|short)\s+)?"
           r"(?:demo|video|website|project\s+(?:page|website)|web\s?page)")
# A sentence that starts with what is made available ("Our code and data", "The source
# code", "Models and datasets") and goes on with a verb or a colon. Whether it is
# boilerplate is then up to :data:`_MADE_AVAILABLE`.
_ARTIFACT_SUBJECT = re.compile(
    rf"^(?:{_A_DEMO}|(?P<which>(?:(?:all|our|the|full|both)\s+)*){_ARTIFACT_PHRASE})"
    rf"(?:{_AND}(?:(?:all|our|the)\s+)*{_ARTIFACT_PHRASE})*"
    r"(?:\s+(?:for|of|to)\s+(?P<purpose>[^.:]{0,60}?))?"
    r"(?:\s*:|\s+(?:is|are|will|can|has|have|would|should|may|shall)\b)",
    re.IGNORECASE,
)
# Where an artifact is kept: a code host, or the authors' own page, repository or supplement.
_PLACE = (
    r"\b(?:at|on|in|via|from|through)\s+(?:github|gitlab|hugging ?face|zenodo|bitbucket|"
    r"our\s+(?:project\s+)?(?:page|web\s?page|website|homepage|repositor(?:y|ies)|github)|"
    r"the\s+project\s+(?:page|website)|(?:the\s+|our\s+)?supplement\w*)"
)
# The phrases that say an artifact can be had: it is available, released, open-sourced,
# made public, or kept at some place. "found", "provided", "shared", "accessible" and
# "public" count only in such a phrase: "Models are found to be brittle", "The weights are
# shared across layers", "The model is provided with ten demonstrations" and "Data is
# scarce for many public health applications" are what a paper is about.
_MADE_AVAILABLE = re.compile(
    r"\b(?:available|availability|releas\w*|open[- ]?sourc\w*|hosted)\b"  # is available, will be released
    r"|\b(?:is|are|be|been|made)\s+public\b"  # is public, made public
    r"|\bpublicly\s+(?:accessible|shared|provided|open)\b"  # ("publicly available": above)
    r"|\b(?:found|accessible|provided|shared)\s+(?:at|here|online)\b"  # can be found at, shared online
    r"|\bshared\s+publicly\b|\bwith\s+the\s+(?:research\s+)?community\b"  # shared with the community
    r"|\bupon\s+(?:request|acceptance|publication)\b"  # will be shared upon request
    rf"|{_PLACE}"  # can be found on our project page, is on GitHub, is in the supplementary material
    r"|\b(?:accessible|provided|shared|public|publicly)\s*[.!]?$",  # "Code and data are provided."
    re.IGNORECASE,
)
# "We (will) release / open-source / publish our code": said of artifacts, these verbs are
# enough. "We make" and "we share" are not ("We make the model robust", "We share the
# weights across layers"): they count only when the rest says how it is made available.
_WE_RELEASE = re.compile(
    rf"^we\s+(?:will\s+|also\s+|further\s+|publicly\s+|plan to\s+)*(?P<verb>release|open[- ]?source|make|publish|share)"
    rf"\w*\s+(?:publicly\s+available\s+)?(?:all\s+|our\s+|the\s+)*{_ARTIFACT_PHRASE}\b"
    rf"(?:{_AND}(?:all\s+|our\s+|the\s+)*{_ARTIFACT_PHRASE}\b)*(?P<rest>[^.]{{0,40}})[.!]?$",
    re.IGNORECASE | re.DOTALL,
)


# --- release statements: "We release X and Y to facilitate future research on Z" ---------
# A sentence of any length is boilerplate when it is nothing but a release: "we" and a
# release verb (or "make ... available", or "X and Y are released"), what is released, then
# only how (publicly, under a licence, with this paper, on GitHub) and why (to facilitate /
# support / enable future research or reproducibility, on a topic of a few words). Each
# thing released is the paper's own ("the TicketTalk dataset", "our code", "code"), never
# something new it describes ("a new dataset of 10k videos", "three new models which ...");
# and nothing else may follow: "..., which achieve state-of-the-art results", "and show
# that", "to the verifier at every step" make a claim, which stays matched text.
_RELEASED = rf"(?:{_ARTIFACT}|corpus|corpora|toolkit|datastore|annotations)\b(?!['\u2019])"
_NAME = r"(?!(?:a|an|and|or|of|with|to|for|which|that|in|on|at|by|from)\b)[\w-]+"
_RELEASED_THING = (rf"(?:(?:all\s+(?:of\s+)?)?(?:our|the|this|these|both|its)\s+(?:{_NAME}\s+){{0,3}}{_RELEASED}"
                   rf"|(?:all\s+)?(?:{_MODIFIER}\s+){{0,2}}{_RELEASED})")
_RELEASED_THINGS = rf"{_RELEASED_THING}(?:{_AND}{_RELEASED_THING})*"
_OPENLY = r"(?:publicly|openly|freely|fully|now|also|hereby|further|additionally)"
_RESEARCH = (r"(?:(?:the\s+)?(?:future|further|follow-?up|subsequent|ongoing|open|more|new|related)\s+)?"
             r"(?:research|work|studies|study|investigations?|exploration|development|progress|reproducibility|"
             r"replication|benchmarking|comparisons?|analys[ie]s|evaluations?)"
             r"|(?:the\s+)?(?:research\s+)?community")
# A topic of at most eight words and no clause: "on dialogue systems", "in this area"; not
# "on code generation and outperform GPT-4" (a pronoun, an auxiliary or a verb of findings).
_CLAIM_WORD = (r"(?:which|that|where|while|but|whereas|we|they|it|is|are|was|were|can|could|will|would|has|have|had|"
               r"do|does|did|show\w*|find\w*|found|demonstrat\w*|reveal\w*|outperform\w*|achiev\w*|surpass\w*|"
               r"beat\w*|improv\w*|yield\w*|reduc\w*|increas\w*|boost\w*|match\w*|exceed\w*|reach\w*|obtain\w*|"
               r"sets?|establish\w*|generali[sz]\w*|transfer\w*|perform\w*)\b")
_TOPIC = (r"(?:\s+(?:on|in|into|of|for|about|around|towards?|within|across|with)"
          rf"(?:\s+(?!{_CLAIM_WORD})[\w'/-]+){{1,8}})?")
_WHY = (rf"(?:(?:in\s+order\s+)?to\s+(?:facilitate|support|enable|encourage|foster|spur|promote|aid|accelerate|advance|"
        rf"stimulate|benefit|help|allow|ensure|invite|inspire|ease)(?:\s+for)?"
        rf"|(?:facilitat|support|enabl|encourag|foster|promot)ing|for)"
        rf"\s+(?:{_RESEARCH})(?:\s+and\s+(?:{_RESEARCH}))*{_TOPIC}"
        r"|to\s+(?:reproduce|replicate|verify)\s+(?:our|the|all)\s+(?:main\s+)?(?:results|experiments|findings)")
_HOW = (rf"{_OPENLY}|online|(?:as\s+)?open[- ]?sourced?|under\s+(?:an?\s+|the\s+)?(?:[\w.-]+\s+){{0,3}}licen[cs]es?"
        r"|(?:with|alongside|along\s+with)\s+(?:this|the)\s+(?:paper|work|publication|article)"
        r"|(?:to|with)\s+the\s+(?:research\s+|scientific\s+|broader\s+)?(?:community|public)"
        rf"|upon\s+(?:request|acceptance|publication)|{_PLACE}")
# Each "how" or "why" after the first is set off by a comma or by white space, never both
# ways at once: "\s*,?\s*" could read one space two ways, and a long sentence that fails took
# 2**n steps (20 repeats of " publicly" took 6.6 s).
_HOW_AND_WHY = rf"(?:(?:\s*,\s*|\s+)(?:and\s+)?(?:{_HOW}|{_WHY}))*"
_RELEASE_STATEMENT = re.compile(
    r"(?:(?:finally|additionally|moreover|furthermore|also|in\s+addition|lastly),?\s+)?"
    rf"(?:(?:{_WHY})\s*,?\s+)?"
    rf"(?:we\s+(?:(?:will|also|further|hereby|have|are|shall|now|plan\s+to|intend\s+to|{_OPENLY})\s+)*"
    rf"(?:(?:releas(?:e|ed|ing)|open[- ]?sourc(?:e|ed|ing)|publish(?:ed|ing)?|shar(?:e|ed|ing)|provid(?:e|ed|ing))"
    rf"(?:\s+{_OPENLY})?\s+{_RELEASED_THINGS}"
    rf"|(?:make|made|making)\s+(?:{_OPENLY}\s+)?available\s+{_RELEASED_THINGS}"
    rf"|(?:make|made|making)\s+{_RELEASED_THINGS}\s+(?:{_OPENLY}\s+)?(?:available|public))"
    rf"|{_RELEASED_THINGS}\s+(?:is|are|will\s+be|ha(?:ve|s)\s+been|(?:is|are)\s+being)\s+(?:{_OPENLY}\s+)?"
    r"(?:made\s+(?:\w+\s+)?available|available|released|open[- ]?sourced|published|shared|public))"
    rf"{_HOW_AND_WHY}\s*[.!]?",
    re.IGNORECASE,
)


def _may_release(lowered: str) -> bool:
    """Whether a (lower-cased) sentence has a word every release statement has (:data:`_RELEASE_CUES`)."""
    return any([cue in lowered for cue in _RELEASE_CUES])


# After "We release <artifacts>" in a short sentence: only how and why, not "'s hidden states
# early", "to annotators in small batches" or "and show it works".
_RELEASE_REST = re.compile(rf"{_HOW_AND_WHY}\s*[.!]?", re.IGNORECASE)


# A web address written out: a scheme, "www." or a host and path, without the punctuation
# that may close its sentence or bracket. Whether a sentence has a link is whether this finds
# one, so a scheme or "www." with nothing after it is a link too (an address lost on the way:
# "Code: https://."), as is a host suffix and slash before anything ("site.com/x", ".com/x"),
# and a bare host on a domain that hosts project pages and demos ("x.github.io").
_ADDRESS = re.compile(
    r"(?:https?://|www\.|(?<![\w.-])(?:[\w.-]*\.(?:com|org|io|net|ai|dev|co)/(?=\S)"  # a host starts a run of [\w.-]
    r"|(?:[\w-]+\.)+(?:github\.io|gitlab\.io|readthedocs\.io|netlify\.app|vercel\.app|pages\.dev)(?![\w-])"
    r"|(?:[\w-]+\.)*(?:huggingface\.co|sites\.google\.com)(?![\w-])))"
    r"(?:\S*[^\s.,;:!?)\]}'\"])?",
    re.IGNORECASE,
)


def boilerplate_spans(text: str) -> list[tuple[int, int]]:
    """The character spans of the boilerplate sentences of ``text`` (see the module's rule),
    and of the web addresses in its other sentences: "leaderboard-multimodal" in a link is
    not a paper saying "multimodal"."""
    lowered = text.lower()
    if not any(cue in lowered for cue in _CUES):
        return []
    spans = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        folded = sentence.lower()  # not lowered[start:end]: lower() may change a text's length ("İ")
        link = _has_link(sentence, folded)
        if _is_boilerplate(sentence, link, folded):
            spans.append((start, end))
        elif link:
            spans += [found.span() for found in _ADDRESS.finditer(text, start, end)]
    return spans


def _artifacts_at_link(sentence: str) -> bool:
    """"The dataset and code are at https://...": what is made available, then a verb and at
    most a few words before the link. Not "Models are found to be brittle (https://...)"."""
    subject = _ARTIFACT_SUBJECT.match(sentence)
    link = _ADDRESS.search(sentence)
    return subject is not None and link is not None and len(_WORD.findall(sentence[subject.end():link.start()])) <= 2


def _has_link(sentence: str, lowered: str) -> bool:
    """Whether :data:`_ADDRESS` finds a link in ``sentence`` (``lowered``: it lower-cased),
    after cheaper tests: most sentences have none."""
    if "/" not in sentence and "www." not in sentence and ".co" not in lowered and ".io" not in lowered \
            and ".app" not in lowered and ".dev" not in lowered:
        return False
    return _ADDRESS.search(sentence) is not None


def _is_boilerplate(sentence: str, link: bool, lowered: str) -> bool:
    """Whether ``sentence`` (which has a link, or not; ``lowered``: it lower-cased) is
    boilerplate, by the module's rule."""
    if link:
        words = len(_WORD.findall(_ADDRESS.sub(" ", sentence)))  # besides its links
        return _AVAILABLE.search(sentence) is not None or words <= LINK_LABEL_WORDS or _artifacts_at_link(sentence)
    if _may_release(lowered) and _RELEASE_STATEMENT.fullmatch(sentence) is not None:
        return True
    if len(sentence.split()) > STATEMENT_WORDS:
        return False
    return all(map(_points_to_artifacts, _CONTRAST.split(sentence)))


# "Models are public, but their data are not": a contrast makes a claim unless both halves
# point to the paper's artifacts ("Code is available now, while data will be released").
_CONTRAST = re.compile(r",?\s+(?:but|while|whereas|although|though|yet)\s+", re.IGNORECASE)
# "Code for most papers is never released", "Data are not publicly available": a claim.
_NEGATION = re.compile(r"\b(?:not|never|cannot|no\s+longer)\b|n't\b", re.IGNORECASE)


def _points_to_artifacts(clause: str) -> bool:
    """Whether a short clause says where or how this paper's artifacts can be had."""
    return ((_says_artifacts_are_available(clause) or _says_we_release_artifacts(clause))
            and _NEGATION.search(clause) is None)


# Words that make "X are available / released" a claim about the field, not a pointer to
# this paper's artifacts: "Annotated data are rarely available", "Pretrained models are widely
# released by many labs".
_ABOUT_THE_FIELD = re.compile(
    r"\b(?:rarely|seldom|scarcely|hardly|often|typically|usually|frequently|increasingly|widely|commonly|"
    r"generally|sometimes|mostly|largely)\b|\bby\s+(?:many|most|other|several|various|numerous)\b",
    re.IGNORECASE,
)


def _says_artifacts_are_available(sentence: str) -> bool:
    """"Our code and data will be released", "Code can be found on GitHub": the sentence
    starts with artifacts and says, after its verb or colon, how they can be had (not how
    often others make theirs available: :data:`_ABOUT_THE_FIELD`)."""
    subject = _ARTIFACT_SUBJECT.match(sentence)
    return (subject is not None and _MADE_AVAILABLE.search(sentence, subject.end()) is not None
            and _ABOUT_THE_FIELD.search(sentence, subject.end()) is None and _names_its_own(subject))


# What says a bare artifact "for" something is the paper's own: "Code for reproducing our
# experiments", "Code for Superpipeline" (a name); not "Models for code generation".
_OWN = re.compile(r"\b(?:our|this|these|the|reproduc\w*|replicat\w*|experiments?)\b|\b[^\W\d_]*[A-Z]", re.UNICODE)


def _names_its_own(subject: re.Match[str]) -> bool:
    """Whether the subject is the paper's artifacts: with "our", "the" ..., or "for" its
    experiments or a name; a bare noun "for" a task is what others have (a claim)."""
    return bool(subject["which"]) or subject["purpose"] is None or _OWN.search(subject["purpose"]) is not None


def _says_we_release_artifacts(sentence: str) -> bool:
    """"We release our code and models", "We make our data publicly available"; not "We
    make the model robust" (a verb that needs more than artifacts to mean a release)."""
    found = _WE_RELEASE.match(sentence)
    if found is None:
        return False
    rest = found["rest"]
    if found["verb"].lower() not in ("make", "share"):
        return _RELEASE_REST.fullmatch(rest) is not None
    return not rest.strip() or _MADE_AVAILABLE.search(rest) is not None


def mask_boilerplate(text: str) -> str:
    """``text`` with each boilerplate sentence and web address blanked (a comma, then
    spaces): the same length, so every character offset still points into the original
    text, and the words around it stay apart (sentences: the one before ended with its full
    stop; around an address, the comma)."""
    spans = boilerplate_spans(text)
    if not spans:
        return text
    pieces = []
    at = 0
    for start, end in spans:  # a "," first: the words around a removed link are not neighbours
        pieces.append(text[at:start])
        pieces.append("," + " " * (end - start - 1))
        at = end
    pieces.append(text[at:])
    return "".join(pieces)
