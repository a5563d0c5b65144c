"""The topic query language: parse a subscriber's query, render it back, list its terms.

Grammar (``OR`` binds looser than the implicit AND between adjacent items)::

    query    := "*"  |  or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary (["AND"] unary)*
    unary    := ("-" | "NOT") unary  |  primary
    primary  := "like:" REF  |  [field ":"] (WORD | '"' PHRASE '"' | "(" or_expr ")" | unary)
    field    := "title" | "abstract" | "author"
    REF      := an arXiv id (2403.12345, 2403.12345v2, hep-th/9901001) or a stored
                paper id (t- and 16 hex digits)

``like:REF`` asks for papers similar to that paper; it is a node of its own
(:class:`Like`), never a word, and cannot be limited to a field. A topic has at most
``MAX_LIKES`` of them.

``OR``, ``AND`` and ``NOT`` are keywords only in upper case; in lower case they are
words. Typographic double quotes (“ ” „ « ») are the quote '"'. A word with no letter or
digit (``!!!``, a lone ``-``) is punctuation and is skipped. Any problem raises
:class:`QueryError` with the 0-based character position.

This module only understands syntax; what a word *means* (stems, acronyms, joined
forms) is decided by :mod:`paperwire.match`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import NamedTuple

from paperwire.errors import QueryError
from paperwire.normalize import ARXIV_REF, PAPER_REF, referenced_id

FIELDS = ("title", "abstract", "author")
LIKE = "like"
EVERYTHING_TEXT = "*"
MAX_DEPTH = 32  # parentheses deeper than this are surely a mistake (and would blow the stack)
# ``like:`` parts one topic may have, each counted (a reader's "Liked" topic keeps as many:
# liked.MAX_LIKED). An example is a stored paper's two vectors, compared with every paper: cheap
# beside a topic's words, which must be embedded (match.meaning.MAX_MEANING_PARTS). More are
# refused, never silently left out.
MAX_LIKES = 50

_WORD_CHAR = re.compile(r"[^\W_]")
# Typographic double quotes (what phones and word processors type: “ ” „ « ») are the quote
# '"'. One character for one, so positions stay those of the text as written. Single quotes
# are not part of the language: apostrophes stay in words (``LLM's``).
_DOUBLE_QUOTES = re.compile("[\u201c\u201d\u201e\u00ab\u00bb]")  # a regex: str.translate is 4x slower
# What negates a term when it starts one: "-", and the en dash, em dash and minus sign that
# autocorrect makes of it ("diffusion –video" must exclude video). Inside a word ("GPT–4") or
# a phrase they are text.
_DASHES = "-\u2013\u2014\u2212"
_FIELD_PREFIX = re.compile(r"([A-Za-z]+):")
# A topic's mode, first thing in it: "words:" matches by words only, "meaning:" by meaning
# only (match/meaning.py); without one, both.
MODES = ("words", "meaning")
_MODE = re.compile(r"\s*(words|meaning):", re.IGNORECASE)  # any case, as field prefixes (Title:)
_KEYWORDS = ("OR", "AND", "NOT")
# What like: takes is normalize.PAPER_REF, the forms paperwire gives paper ids; these are the
# same forms as the errors about like: name them.
_PAPER_REF_FORMS = "an arXiv id such as 2403.12345 or 2403.12345v2, or a paper id: t- and 16 hex digits"
# How people copy an arXiv id: cited ("arXiv:2403.12345") or as its page's or PDF's address.
_ARXIV_CITED = re.compile(r"arxiv:|(?:https?://)?(?:www\.)?arxiv\.org/(?:abs|pdf)/", re.IGNORECASE)


# --- syntax tree ----------------------------------------------------------------------
# ``position`` is where the node starts in the query text; it is left out of equality so
# that two queries with the same meaning compare equal whatever their spacing.
# Nodes are values: never change one. Term, Not, And and Or are not declared frozen only
# because a frozen dataclass's __init__ takes four times as long, and compiling the
# topics of 100,000 readers builds half a million of them; they hash by value all the same.


@dataclass(unsafe_hash=True, slots=True)
class Term:
    """A word (``phrase=False``) or a quoted phrase, optionally limited to one field."""

    text: str
    phrase: bool = False
    field: str | None = None
    position: int = dataclass_field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Like:
    """``like:REF``: papers similar to the paper ``ref`` (as written, version included).

    The word engine matches nothing for it; what it means is decided where papers
    are compared by meaning.
    """

    ref: str
    position: int = dataclass_field(default=0, compare=False)

    @property
    def paper_id(self) -> str:
        """The id the paper is stored under: an arXiv id loses its version (``v2``)."""
        return referenced_id(self.ref)


@dataclass(unsafe_hash=True, slots=True)
class Not:
    child: Node
    position: int = dataclass_field(default=0, compare=False)


@dataclass(unsafe_hash=True, slots=True)
class And:
    children: tuple[Node, ...]
    position: int = dataclass_field(default=0, compare=False)


@dataclass(unsafe_hash=True, slots=True)
class Or:
    children: tuple[Node, ...]
    position: int = dataclass_field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Everything:
    """The ``*`` topic: every paper of the listing, in listing order."""

    position: int = dataclass_field(default=0, compare=False)


Node = Term | Like | Not | And | Or | Everything


@dataclass(unsafe_hash=True, slots=True)
class Query:
    """A parsed query; ``text`` is what the user typed, ``root`` what it means."""

    text: str = dataclass_field(compare=False)
    root: Node
    mode: str | None = None  # "words" or "meaning" when the topic starts with that prefix: see MODES

    def __str__(self) -> str:
        return render_query(self)


# --- lexer ----------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # WORD PHRASE LPAREN RPAREN OR AND NOT MINUS FIELD LIKE END
    text: str
    position: int


_new_token = tuple.__new__  # _new_token(_Token, (kind, text, position)): skips NamedTuple's Python __new__


def _has_word_char(text: str) -> bool:
    return _WORD_CHAR.search(text) is not None


# ``word`` is the common case, a chunk that is one plain word as a whole (it starts with a
# letter or digit and has no colon), so it needs none of the checks in _lex_chunk.
# One match per token, the spaces before it included (group 1); which other group is not
# empty says what the token is. Every character but trailing space is in some match, so
# the positions follow from the lengths: findall's tuples are far cheaper than match
# objects, and this runs for every token of every topic.
# A plain word has no separator in it but a comma between digits ("1,000", "0,5", "1,2-diol"):
# "RAG;agents" is a chunk, which _lex_chunks cuts into a list.
_PLAIN_WORD = r"""[^\W_][^\s()":,;]*(?:(?<=\d),\d[^\s()":,;]*)*(?![^\s()"])"""
_LEXEME = re.compile(
    rf"""(\s*)(?:
        ({_PLAIN_WORD})                 # a word
      | (\()
      | (\))
      | ("[^"]*")                     # a phrase
      | (")                           # a quote never closed
      | ([{_DASHES}]+)(?={_PLAIN_WORD})  # dashes right before a plain word: one negation
      | ((?i:title|abstract|author)):(?=[^\W_]|["(])  # a field right before a word, phrase or group
      | ([^\s()"]+))                  # a chunk: anything else (like:..., punctuation, lists, bad fields)""",
    re.VERBOSE,
)


def _lex(text: str) -> list[_Token]:
    """Split the query into tokens; reports unbalanced quotes and bad field prefixes.

    Typographic quotes are read as '"' (``_DOUBLE_QUOTES``); an error still shows the text
    as written. A typographic dash before a term excludes it as '-' does (``_DASHES``)."""
    try:
        return _lex_straight(_DOUBLE_QUOTES.sub('"', text))
    except QueryError as error:
        raise _as_written(error, text) from None


def _lex_straight(text: str) -> list[_Token]:
    """:func:`_lex` for a text whose double quotes are all '"'."""
    tokens: list[_Token] = []
    append = tokens.append
    offset = 0
    separated = False
    for space, word, opening, closing, phrase, quote, dashes, field_name, chunk in _LEXEME.findall(text):
        start = offset + len(space)
        if word:
            offset = start + len(word)
            append(_new_token(_Token, (word if word in _KEYWORDS else "WORD", word, start)))
        elif phrase:
            append(_new_token(_Token, ("PHRASE", phrase[1:-1], start)))
            offset = start + len(phrase)
        elif dashes:
            append(_new_token(_Token, ("MINUS", "-", start)))
            offset = start + len(dashes)
        elif field_name:
            append(_new_token(_Token, ("FIELD", field_name.lower(), start)))
            offset = start + len(field_name) + 1
        elif opening:
            append(_new_token(_Token, ("LPAREN", "(", start)))
            offset = start + 1
        elif closing:
            append(_new_token(_Token, ("RPAREN", ")", start)))
            offset = start + 1
        elif quote:
            raise QueryError('unbalanced quote: this " is never closed', query=text, position=start)
        else:
            offset = start + len(chunk)
            separated = _lex_chunks(text, start, offset, tokens) or separated
    append(_Token("END", "", len(text)))
    return _alternatives(tokens) if separated else tokens


_SEPARATORS = ",;"  # between terms, outside quotes: what separates alternatives in a list
# A separator in a chunk, with or without a space after it ("RAG;agents" is "RAG; agents"):
# not a comma between digits, which is the number's ("1,000", "0,5", "1,2-diol"), nor the ";"
# of an HTML character reference pasted from a page's source ("R&amp;D"), matched first to be
# passed over (the common ones only: "R&D;agents" is a list).
_SEPARATOR = re.compile(r"&(?:amp|lt|gt|quot|apos|nbsp|#\d+|#x[0-9a-fA-F]+);|;|(?<!\d),|,(?!\d)")


def _lex_chunks(text: str, start: int, end: int, tokens: list[_Token]) -> bool:
    """A chunk cut at its separators, each piece lexed by :func:`_lex_chunk` and each
    separator a ``SEP`` token; whether it had one. After a colon that ends no field name
    (``like:REF``, an address) only a separator that ends the chunk is cut: the others are
    the reference's. A field's colon cuts on: ``RAG;title:agents,MoE`` is a list of three."""
    piece = start
    stop = _reference_colon(text, piece, end)
    for separator in _SEPARATOR.finditer(text, start, end):
        if separator.start() >= stop:
            break
        if len(separator.group()) > 1:  # a character reference: the word's
            continue
        if separator.start() > piece:
            _lex_chunk(text, piece, separator.start(), tokens)
        tokens.append(_Token("SEP", separator.group(), separator.start()))
        piece = separator.end()
        stop = _reference_colon(text, piece, end)
    rest = text[piece:end]
    bare = rest.rstrip(_SEPARATORS)
    if bare:
        _lex_chunk(text, piece, piece + len(bare), tokens)
    if len(bare) < len(rest):
        tokens.append(_Token("SEP", rest[len(bare)], piece + len(bare)))
        return True
    return piece > start


def _reference_colon(text: str, start: int, end: int) -> int:
    """The first colon from ``start`` that ends no field name (``title:``, ``-author:``), or ``end``."""
    colon = text.find(":", start, end)
    while colon >= 0 and text[start:colon].lstrip("-").lower() in FIELDS:
        colon = text.find(":", colon + 1, end)
    return end if colon < 0 else colon


def _alternatives(tokens: list[_Token]) -> list[_Token]:
    """A comma or semicolon between two terms is OR ("RAG; agents; MoE" found nothing, as all
    three near each other); one without a term on both sides (a trailing comma, ``a, OR b``,
    ``(a,)``, ``agents, -survey``) is dropped, as the punctuation it is."""
    kept: list[_Token] = []
    for at, token in enumerate(tokens):
        if token.kind != "SEP":
            kept.append(token)
        elif (kept and kept[-1].kind not in _SEP_AFTER_NOTHING and tokens[at + 1].kind not in _SEP_BEFORE_NOTHING
              and not (len(kept) > 1 and kept[-2].kind in ("MINUS", "NOT"))):  # "-survey, agents": no side of its own
            kept.append(_Token("OR", token.text, token.position))
    return kept


_SEP_AFTER_NOTHING = frozenset(("LPAREN", "OR", "AND", "NOT", "MINUS", "FIELD"))  # no term before the comma
# no term after it; before an exclusion it is dropped too: "agents, -survey" is "agents -survey"
_SEP_BEFORE_NOTHING = frozenset(("END", "RPAREN", "OR", "AND", "SEP", "MINUS", "NOT"))


def _lex_chunk(text: str, start: int, end: int, tokens: list[_Token]) -> None:
    """A run of non-space text: ``-`` prefixes, then a keyword, a ``field:`` or a word.

    After a ``field:`` the rest of the run is lexed again, in a loop rather than by
    recursion so that ``title:title:...`` cannot overflow the stack.
    """
    glued_to_next = end < len(text) and text[end] in '("'  # -( ... or title:"...
    while start < end:
        start = _lex_dashes(text, start, end, glued_to_next, tokens)
        if start is None:
            return
        word = text[start:end]
        if word in _KEYWORDS:
            tokens.append(_Token(word, word, start))
            return
        prefix = _FIELD_PREFIX.match(word)
        if prefix and prefix.group(1).lower() == LIKE:
            tokens.append(_like_token(text, start, start + prefix.end(), end, glued_to_next))
            return
        if prefix and prefix.group(1).lower() in MODES:  # a leading mode is blanked before lexing
            raise QueryError(f"'{prefix.group(0)}' sets the topic's mode only at its start", query=text, position=start)
        if prefix and (prefix.end() < len(word) or glued_to_next):
            name = prefix.group(1).lower()
            if name not in FIELDS:
                raise _unknown_field(text, start, end, prefix.group(1))
            tokens.append(_Token("FIELD", name, start))
            start += prefix.end()
            continue
        if prefix and prefix.group(1).lower() in FIELDS:
            raise QueryError(f"'{word}' needs a term right after the colon", query=text, position=start)
        if _has_word_char(word):
            tokens.append(_Token("WORD", word, start))
        else:
            _refuse_stray_everything(word, text, start)
        return


def _like_token(text: str, start: int, ref_start: int, end: int, glued_to_next: bool) -> _Token:
    """``like:REF`` as one token; the REF must be a paper id, with nothing glued after it. An
    arXiv id may be written as cited or as its arxiv.org address (``_ARXIV_CITED``)."""
    ref, ref_start, cited = _paper_ref(text, ref_start, end)
    refs = ARXIV_REF if cited else PAPER_REF  # "arXiv:" and arxiv.org name arXiv ids only
    if not ref:
        message = f"'like:' needs a paper id right after the colon ({_PAPER_REF_FORMS})"
        raise QueryError(message, query=text, position=start)
    if not refs.fullmatch(ref):
        message = f"'{ref}' is not {'an arXiv id' if cited else 'a paper id'} (like: takes {_PAPER_REF_FORMS})"
        raise QueryError(message, query=text, position=ref_start)
    if glued_to_next:
        raise QueryError("a space must follow the paper id of 'like:'", query=text, position=end)
    return _Token("LIKE", ref, start)


def _paper_ref(text: str, start: int, end: int) -> tuple[str, int, bool]:
    """The paper reference ``text[start:end]`` as ``like:`` reads it, where it starts, and whether
    it was cited or linked as an arXiv id ("arXiv:", an arxiv.org address: ``_ARXIV_CITED``),
    which drops that prefix and a PDF's ".pdf". Sentence punctuation after it is dropped, as
    after a word. Not checked: the caller says what a reference that is no paper id means."""
    cited = _ARXIV_CITED.match(text, start, end)
    if cited:
        start = cited.end()
    ref = text[start:end]
    if not (ARXIV_REF if cited else PAPER_REF).fullmatch(ref):
        ref = ref.rstrip(_TRAILING_PUNCTUATION)
    if cited and ref.lower().endswith(".pdf"):  # the PDF's address
        ref = ref[:-4]
    return ref, start, cited is not None


def _unknown_field(text: str, start: int, end: int, name: str) -> QueryError:
    """``name:`` before ``text[start:end]`` is no field. A pasted link or a cited arXiv id
    ("arXiv:2403.12345", "https://arxiv.org/abs/2403.12345") names a paper: the error says
    how to ask for papers like it; another web address is named as one."""
    written = text[start:end]
    ref, _, cited = _paper_ref(text, start, end)
    if cited and ARXIV_REF.fullmatch(ref):
        message = f"'{written}' names a paper, and a topic is words: to find papers like {ref}, write like:{ref}"
    elif name.lower() in ("http", "https"):
        message = (f"'{written}' is a web address, and a topic is words (like: takes an arXiv id or its "
                   f"arxiv.org address: like:2403.12345)")
    else:
        message = f"unknown field '{name}:' (use title:, abstract: or author:)"
    return QueryError(message, query=text, position=start)


def _lex_dashes(text: str, start: int, end: int, glued_to_next: bool, tokens: list[_Token]) -> int | None:
    """A run of ``-`` right before a term negates it once; otherwise it is punctuation.

    Returns where the rest of the run starts, or None when nothing is left to lex.
    """
    after_dashes = start
    while after_dashes < end and text[after_dashes] in _DASHES:
        after_dashes += 1
    if after_dashes == start:
        return start
    if after_dashes == end:
        if glued_to_next:  # -( ... or -"...
            tokens.append(_Token("MINUS", "-", start))
        return None
    if not _has_word_char(text[after_dashes:end]):
        _refuse_stray_everything(text[after_dashes:end], text, after_dashes)
        return None
    tokens.append(_Token("MINUS", "-", start))
    return after_dashes


def _refuse_stray_everything(chunk: str, text: str, position: int) -> None:
    """``*`` means every paper only as a whole topic; elsewhere it would be dropped unseen."""
    if chunk and not chunk.strip(EVERYTHING_TEXT):
        raise QueryError(f"'{EVERYTHING_TEXT}' (every paper) is a topic only on its own", query=text, position=position)


# --- parser ---------------------------------------------------------------------------


_ENDS_AND = frozenset(("END", "RPAREN", "OR"))  # what ends a run of implicitly ANDed items
_ENDS_TERM = frozenset(("END", "RPAREN", "OR", "AND"))  # what cannot start a term


class _Parser:
    """Recursive descent over the token list; ``field`` flows down into every term."""

    def __init__(self, text: str, tokens: list[_Token]):
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.negated = False  # whether the tree has a Not
        self.liked = False  # whether the tree has a Like
        self.outer_exclusions: list[Not] = []  # exclusions written outside any parentheses
        self.spread: list[Not] = []  # those of them that exclude from another side of OR too (reading_rules)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, message: str, position: int) -> QueryError:
        return QueryError(message, query=self.text, position=position)

    def parse(self) -> Node:
        node = self.or_expr(None, depth=0)
        token = self.peek()
        if token.kind == "RPAREN":
            raise self.fail("unbalanced parenthesis: this ')' has no matching '('", token.position)
        return node

    def or_expr(self, field_name: str | None, depth: int) -> Node:
        start = self.tokens[self.index]
        if start.kind == "OR":
            raise self.fail("dangling OR: nothing before it", start.position)
        branches = [self.and_expr(field_name, depth)]
        while self.tokens[self.index].kind == "OR":
            keyword = self.take()
            following = self.peek()
            if following.kind == "OR":  # ``a OR OR b``: the second OR is the one with nothing before it
                raise self.fail("dangling OR: nothing before it", following.position)
            if following.kind in _ENDS_TERM:
                raise self.fail("dangling OR: nothing after it", keyword.position)
            branches.append(self.and_expr(field_name, depth))
        if len(branches) == 1:
            return branches[0]
        if depth == 0 and self.outer_exclusions:
            sides = _excluded_from_every_side(branches, self.outer_exclusions)
            self.spread = list(dict.fromkeys(added for side, widened in zip(branches, sides) if widened is not side
                                             for added in widened.children[len(side_items(side)):]))
            branches = sides
        return _flatten(Or, branches, start.position)

    def and_expr(self, field_name: str | None, depth: int) -> Node:
        tokens = self.tokens
        index = self.index
        start = tokens[index]
        items: list[Node] = []
        append = items.append
        while True:
            kind, text, position = tokens[index]  # plain unpacking: this loop sees every token
            if kind == "WORD":  # the common case, without the detour through unary()
                index += 1
                last = text[-1]
                if last in _TRAILING_PUNCTUATION:
                    text = _trim_word(text)
                append(Term(text, False, field_name, position))
            elif kind == "PHRASE":
                index += 1
                append(self.phrase(tokens[index - 1], field_name))
            elif kind == "MINUS" and tokens[index + 1][0] == "WORD":  # -word, the usual exclusion
                _, word, at = tokens[index + 1]
                index += 2
                self.negated = True
                append(Not(Term(_trim_word(word), False, field_name, at), position))
            elif kind == "FIELD" and field_name is None and tokens[index + 1][0] == "WORD":  # title:word
                _, word, at = tokens[index + 1]
                index += 2
                append(Term(_trim_word(word), False, text, at))
            elif kind in _ENDS_AND:
                break
            elif kind == "AND":
                index += 1
                if not items or tokens[index][0] in _ENDS_TERM:
                    raise self.fail("dangling AND: it needs a term on both sides", position)
            else:
                self.index = index
                append(self.unary(field_name, depth))
                index = self.index
        self.index = index
        if not items and start.kind == "RPAREN":
            raise self.fail("unbalanced parenthesis: this ')' has no matching '('", start.position)
        if not items:
            raise self.fail("nothing to match", start.position)
        if depth == 0 and self.negated:
            self.outer_exclusions += [item for item in items if type(item) is Not]
        return items[0] if len(items) == 1 else _flatten(And, items, start.position)

    def unary(self, field_name: str | None, depth: int) -> Node:
        """Negations are counted in a loop (not recursion) so ``------x`` cannot overflow."""
        negations: list[_Token] = []
        while self.peek().kind in ("MINUS", "NOT"):
            negations.append(self.take())
        if negations and self.peek().kind in _ENDS_TERM:
            last = negations[-1]
            raise self.fail(f"nothing after '{last.text}' to exclude", last.position)
        node = self.primary(field_name, depth)
        if len(negations) % 2 == 0:
            return node
        self.negated = True
        return node.child if isinstance(node, Not) else Not(node, negations[0].position)

    def primary(self, field_name: str | None, depth: int) -> Node:
        token = self.take()
        if token.kind == "FIELD":
            if field_name is not None:
                raise self.fail(f"'{token.text}:' inside a '{field_name}:' group", token.position)
            if self.peek().kind in _ENDS_TERM:
                raise self.fail(f"'{token.text}:' needs a term right after the colon", token.position)
            return self.unary(token.text, depth)
        if token.kind == "WORD":
            return Term(_trim_word(token.text), False, field_name, token.position)
        if token.kind == "PHRASE":
            return self.phrase(token, field_name)
        if token.kind == "LIKE":
            if field_name is not None:
                raise self.fail(f"'like:' inside a '{field_name}:' group: it compares whole papers", token.position)
            self.liked = True
            return Like(token.text, token.position)
        if token.kind == "LPAREN":
            return self.group(token, field_name, depth)
        if token.kind == "RPAREN":
            raise self.fail("unbalanced parenthesis: this ')' has no matching '('", token.position)
        raise self.fail(f"expected a term, found '{token.text}'", token.position)

    def phrase(self, token: _Token, field_name: str | None) -> Term:
        words = " ".join(token.text.split())
        if not _has_word_char(words):
            raise self.fail("empty phrase: nothing to match between the quotes", token.position)
        return Term(words, True, field_name, token.position)

    def group(self, opening: _Token, field_name: str | None, depth: int) -> Node:
        if depth >= MAX_DEPTH:
            raise self.fail(f"parentheses nested deeper than {MAX_DEPTH}", opening.position)
        if self.peek().kind == "RPAREN":
            raise self.fail("empty parentheses: nothing to match", opening.position)
        if self.peek().kind == "END":
            raise self.fail("unbalanced parenthesis: this '(' is never closed", opening.position)
        node = self.or_expr(field_name, depth + 1)
        if self.take().kind != "RPAREN":
            raise self.fail("unbalanced parenthesis: this '(' is never closed", opening.position)
        return node


def _excluded_from_every_side(sides: list[Node], exclusions: list[Not]) -> list[Node]:
    """``MoE OR "mixture of experts" -survey`` excludes surveys from both sides: an exclusion
    written outside parentheses applies to the whole topic, as in web search, Lucene and
    tantivy (``(MoE -survey) OR RAG`` keeps it to one side). A side that only excludes
    stays as written, for :func:`_check_positive` to refuse."""
    distinct = list(dict.fromkeys(exclusions))  # nodes compare by value, whatever their position
    widened: list[Node] = []
    for side in sides:
        if type(side) is Not:
            widened.append(side)
            continue
        own = side_items(side)
        missing = tuple(exclusion for exclusion in distinct if exclusion not in own)
        widened.append(And(own + missing, side.position) if missing else side)
    return widened


def side_items(side: Node) -> tuple[Node, ...]:
    """What a side of OR requires: its items, or itself alone (also how meaning reads a side)."""
    return side.children if type(side) is And else (side,)  # type: ignore[union-attr]


def _trim_word(word: str) -> str:
    """Drop sentence punctuation after a word (``LLMs,`` is ``LLMs``); keep ``C++``."""
    if word[-1] not in _TRAILING_PUNCTUATION:  # the usual case
        return word
    trimmed = word.rstrip(_TRAILING_PUNCTUATION)
    return trimmed if trimmed and trimmed not in _KEYWORDS else word


_TRAILING_PUNCTUATION = ".,;:!?"


def _flatten(kind: type[And] | type[Or], items: list[Node], position: int) -> Node:
    """One item is itself; nested groups of the same kind merge (``a (b c)`` is ``a b c``)."""
    if len(items) == 1:
        return items[0]
    if kind not in map(type, items):  # the usual case: nothing to merge
        return kind(tuple(items), position)
    merged: list[Node] = []
    for item in items:
        merged.extend(item.children if type(item) is kind else (item,))
    return kind(tuple(merged), position)


# --- validation -----------------------------------------------------------------------


def _has_positive(node: Node) -> bool:
    """Whether the node can select papers by itself (not merely exclude them)."""
    kind = type(node)
    if kind is Term or kind is Like or kind is Everything:
        return True
    if kind is Not:
        return False
    if kind is And:
        return any(_has_positive(child) for child in node.children)
    return all(_has_positive(child) for child in node.children)


def _check_positive(node: Node, text: str, where: str = "the query") -> None:
    """Every OR branch, every excluded group and the whole query must have a term to match.

    ``-foo`` alone would select every paper without "foo", which is never what a
    subscriber means, so it is reported instead of guessed at. (The parser builds these
    exact node types, so dispatching on ``type`` is safe and quicker than isinstance.)
    """
    kind = type(node)
    if kind is Term or kind is Like:
        return
    if kind is Not or (kind is And and not _has_positive(node)):
        message = f"nothing to match: {where} only excludes; add a term to look for"
        raise QueryError(message, query=text, position=node.position)
    if kind is And:
        for child in node.children:
            if type(child) is Not:
                _check_positive(child.child, text, "the excluded group")
            else:
                _check_positive(child, text, where)
    elif kind is Or:
        for child in node.children:
            _check_positive(child, text, "this side of OR")


# --- public API -----------------------------------------------------------------------


def parse_query(text: str) -> Query:
    """Parse a topic query; raises :class:`QueryError` naming the problem and position.

    A leading ``words:`` or ``meaning:`` (``MODES``, in any case) is the topic's mode, not a field."""
    if not isinstance(text, str):
        raise QueryError("a query must be text", query=repr(text), position=0)
    mode_prefix = _MODE.match(text)
    if mode_prefix is not None:
        mode = mode_prefix.group(1).lower()  # "Words:" is "words:", as "Title:" is "title:"
        try:
            query = _parse_without_mode(_blanked_mode(text, mode_prefix))
        except QueryError as error:  # the error's query is what the reader wrote, prefix and all
            raise _as_written(error, text) from None
        if isinstance(query.root, Everything):
            raise QueryError(f"'{mode_prefix.group(1)}:' before '*': every paper is neither words nor meaning",
                             query=text, position=mode_prefix.start(1))
        if mode == "words" and like_refs(query):
            raise QueryError("'words:' topics match by words only, and 'like:' compares whole papers: "
                             "drop one of them", query=text, position=like_refs(query)[0].position)
        if mode == "meaning" and not _has_meaning(query.root):
            raise QueryError("'meaning:' needs words outside fields and exclusions (or like:ID) to compare by meaning",
                             query=text, position=mode_prefix.start(1))
        return Query(text, query.root, mode)
    return _parse_without_mode(text)


def _blanked_mode(text: str, mode: re.Match[str] | None) -> str:
    """``text`` with its leading ``words:``/``meaning:`` blanked rather than cut, so positions
    in errors and hints still point into what the reader wrote."""
    return " " * mode.end() + text[mode.end():] if mode else text


def reading_hints(text: str) -> list[str]:
    """What a reader may not have meant, one line each, saying how to write it (hints only: the
    topic is kept as written): ``author:Xu Han`` limits "Xu" alone to authors, a lower-case
    ``or`` or ``not`` between words is a word, not the operator, ``LLM/VLM`` is one term, and a
    bare arXiv id is text, not ``like:``."""
    mode = _MODE.match(text)
    try:
        tokens = _lex(_blanked_mode(text, mode))
    except QueryError:
        return []
    by_words_only = mode is not None and mode.group(1).lower() == "words"  # which refuses like:
    return (_author_name_hints(tokens) + _operator_word_hints(tokens) + _negation_hints(text, tokens) + _slash_hints(tokens)
            + ([] if by_words_only else _paper_id_hints(tokens)))


def reading_rules(text: str) -> list[tuple[str, str]]:
    """Where the grammar reads ``text`` by a rule its writer may not have known (rules that came
    after many topics were saved), as ``(rule, what it does here)``: ``separator``, a comma or
    semicolon between terms read as OR; ``outer-exclusion``, an exclusion outside parentheses
    that excludes from the other sides of OR too. None for a topic that does not parse."""
    blanked = _blanked_mode(text, _MODE.match(text))
    try:
        tokens = _lex(blanked)
        parser = _Parser(blanked, tokens)
        parser.parse()
    except QueryError:
        return []
    rules = [("separator", f"{_around(text, tokens, at)}a \"{token.text}\" between terms means OR")
             for at, token in enumerate(tokens) if token.kind == "OR" and token.text in _SEPARATORS]
    return rules + [("outer-exclusion", f"{_render(exclusion)} is outside parentheses, so it excludes from every "
                                        "side of OR (for one side only, put it in parentheses with that side)")
                    for exclusion in parser.spread]


def _around(text: str, tokens: list[_Token], at: int) -> str:
    """``RAG; agents: ``, the separator ``tokens[at]`` with the terms on both sides as written; ""
    where a side is not a word or phrase (a group, a field)."""
    before, after = tokens[at - 1], tokens[at + 1]
    if before.kind not in ("WORD", "PHRASE") or after.kind not in ("WORD", "PHRASE"):
        return ""
    return text[before.position:after.position + len(after.text) + (2 if after.kind == "PHRASE" else 0)] + ": "


def _author_name_hints(tokens: list[_Token]) -> list[str]:
    """``author:Xu Han`` (or ``author:Lovelace, Ada``): the grammar limits "Xu" alone to authors,
    and "Han" is a word of any field, but a reader who wrote it meant one name."""
    hints = []
    for at, token in enumerate(tokens[:-2]):
        if token.kind == "FIELD" and token.text == "author" and tokens[at + 1].kind == "PHRASE":
            hints += _surname_first_hint(tokens[at + 1].text)
        if token.kind != "FIELD" or token.text != "author" or tokens[at + 1].kind != "WORD":
            continue
        name, after = tokens[at + 1], tokens[at + 2]
        comma = after.kind == "OR" and after.text in _SEPARATORS  # "author:Lovelace, Ada", as a library writes it
        if comma:
            after, mark = tokens[at + 3], tokens[at + 2].text
            mark += " " * (after.position - tokens[at + 2].position - 1)  # as typed: "Lovelace, Ada", "Lovelace,Ada"
        if after.kind != "WORD" or not after.text.istitle() or after.text.upper() in _KEYWORDS:
            continue  # a name ("Han"), not "LLM" nor a keyword
        written, meant = (f"author:{name.text}{mark}{after.text}", f"{after.text} {name.text}") if comma else (
            f"author:{name.text} {after.text}", f"{name.text} {after.text}")
        hints.append(f"{written} limits only \"{name.text}\" to authors; \"{after.text}\" is "
                     f"{'another alternative' if comma else 'a word'} of any field. "
                     f"For one author's name write author:\"{meant}\"")
    return hints


def _paper_id_hints(tokens: list[_Token]) -> list[str]:
    """``2403.12345`` or ``arxiv.org/abs/2403.12345`` (no scheme, so no colon: a word): the words
    of a paper's id, which no paper's text has, where the reader surely meant the paper."""
    hints = []
    for before, token in zip([None, *tokens], tokens, strict=False):
        if token.kind != "WORD" or before is not None and before.kind in ("FIELD", "MINUS", "NOT"):
            continue  # title:2403.12345 is a word the reader chose; an exclusion cannot be like:
        ref, _, cited = _paper_ref(token.text, 0, len(token.text))
        if ARXIV_REF.fullmatch(ref) and (cited or ref == token.text.rstrip(_TRAILING_PUNCTUATION)):
            hints.append(f"{token.text} is read as text for papers to say; to find papers like {ref}, write like:{ref}")
    return hints


_HAS_LETTER = re.compile(r"[^\W_]")


def _surname_first_hint(phrase: str) -> list[str]:
    """``author:"Lovelace, Ada"``, as a bibliography writes a name: papers list "Ada Lovelace",
    and a comma is punctuation in a phrase, which no one name has (authors are ", "-separated).
    Split, not a regex: a pattern for "words, words" backtracked polynomially on long spaces."""
    parts = [part.strip() for part in phrase.split(",")]
    if len(parts) != 2 or not all(_HAS_LETTER.search(part) for part in parts):
        return []
    meant = f"{parts[1]} {parts[0]}"
    return [f'author:"{phrase}" matches no paper: papers write each author\'s given name first. '
            f'For this author write author:"{meant}"']


def _operator_word_hints(tokens: list[_Token]) -> list[str]:
    """``MoE or mixture of experts``: the operator is OR in capitals, which a reader may not know."""
    hints = []
    for before, word, after in zip(tokens, tokens[1:], tokens[2:], strict=False):
        if word.kind != "WORD" or word.text.casefold() != "or" or word.text.isupper():
            continue
        if before.kind not in ("WORD", "PHRASE") or after.kind not in ("WORD", "PHRASE"):
            continue  # next to a group, what to write instead is the reader's to say
        first, last = (f'"{t.text}"' if t.kind == "PHRASE" else t.text for t in (before, after))
        hints.append(f"{first} {word.text} {last}: a lower-case \"or\" is a word, so this looks for papers "
                     f"with both near each other; for either, write OR in capitals")
    return hints


# Words readers write to leave papers out (``diffusion not video``, ``MoE, excluding surveys``):
# in a topic they are words ("not safe"); the operators are -x and NOT. "no" leaves out only
# where it opens a side or follows "but" (``diffusion, no video``; "no regret learning" is a topic).
_LEAVING_OUT = frozenset(("not", "except", "excluding"))
_SMALL_WORDS = frozenset("a an the any about for of on in with from to by when if where".split())  # "not about agents"
# After these, "not" says what a thing does not do, or asks: it leaves no papers out.
_VERB_NEGATED = frozenset("""or to do does did is are was were can could should would will may might must
    when why how that which who""".split())
_LEFT_OUT_WORDS = 6  # at most, after one negation: longer is no thing to leave out (and costs)
_LEAVING_OUT_HINTS = 3  # at most, per topic: a public preview takes anyone's topic
_SPACED_DASH = re.compile(r"(?<!\S)[-\u2013\u2014]\s+([^\W\d_][\w-]*)")  # "experts - survey", "diffusion – video"


def _negation_hints(text: str, tokens: list[_Token]) -> list[str]:
    """``diffusion not video``, ``LLMs but not about agents``, ``diffusion, no video``, ``RAG
    except benchmarks``, ``mixture of experts - survey``: each finds papers that say the words
    the reader meant to leave out. The hint names what follows as the reader wrote it (small
    words skipped, the rest of the run as one phrase), and is given only where the topic with
    that exclusion in its place parses: ``diffusion OR no video`` would only exclude."""
    hints: list[str] = []
    for at, word in enumerate(tokens):
        if len(hints) == _LEAVING_OUT_HINTS:
            return hints
        said = word.text.casefold()
        if not at or word.kind != "WORD" or word.text.isupper() or said not in _LEAVING_OUT and said != "no":
            continue  # nothing before to leave out from ("not safe"); "not," ends a run
        before = tokens[at - 1]
        if before.kind == "WORD" and before.text.casefold() in _VERB_NEGATED:
            continue  # "whether or not", "LLMs that do not hallucinate", "when not to retrieve"
        but = before.kind == "WORD" and before.text.casefold() == "but"
        if said == "no" and not (but or before.kind in ("OR", "LPAREN")):
            continue
        left_out = _words_after(tokens, at + 1)
        if not left_out:
            continue
        meant = left_out[next(i for i, w in enumerate(left_out) if w.casefold() not in _SMALL_WORDS):]
        target = meant[0] if len(meant) == 1 else f'"{" ".join(meant)}"'
        last = tokens[at + len(left_out)]
        start, end = (before if but else word).position, last.position + len(last.text) + 2 * (last.kind == "PHRASE")
        hints += _leaving_out_hint(text, start, end, f"a lower-case \"{word.text}\" is a word", target)
    for dash in _SPACED_DASH.finditer(text):
        if len(hints) == _LEAVING_OUT_HINTS:
            break
        inside_phrase = any(token.kind == "PHRASE" and token.position < dash.start() < token.position + len(token.text) + 2
                            for token in tokens)
        if not inside_phrase and dash.group(1).casefold() not in _SMALL_WORDS:
            hints += _leaving_out_hint(text, dash.start(), dash.end(), "a dash followed by a space is punctuation",
                                       dash.group(1))
    return hints


def _leaving_out_hint(text: str, start: int, end: int, why: str, target: str) -> list[str]:
    """The hint for ``text[start:end]``, meant to leave ``target`` out, if the topic with
    ``-target`` in its place parses (else none: what to write is the reader's to say)."""
    try:
        parse_query(f"{text[:start]}-{target}{text[end:]}")
    except QueryError:
        return []
    return [f"{text[start:end]}: {why}, so this looks for papers with {target}; for papers without it, "
            f"write -{target} or NOT {target} in its place"]


def _words_after(tokens: list[_Token], start: int) -> list[str]:
    """The run after a negation, as written: a phrase, or the words up to the next operator
    or punctuation (``about agents``, ``for language models``); [] when no word follows, or
    more than a thing to leave out."""
    first = tokens[start]
    if first.kind == "PHRASE":
        return [f'"{first.text}"']
    words: list[str] = []
    for token in tokens[start:start + _LEFT_OUT_WORDS + 1]:
        if token.kind != "WORD" or token.text.isupper() and token.text in _KEYWORDS or token.text in _LEAVING_OUT:
            break  # "a not b not c": b, then c
        trimmed = _trim_word(token.text)
        words.append(trimmed)
        if trimmed != token.text:  # "not video, RAG": the comma ends what is left out
            break
    if len(words) > _LEFT_OUT_WORDS or all(word.casefold() in _SMALL_WORDS for word in words):
        return []
    return words


# Slashed pairs no reader means as either word alone: no hint for them.
_SLASH_COMPOUNDS = frozenset(("and/or", "input/output", "tcp/ip", "client/server", "read/write"))
_HOST = re.compile(r"\.(?:com|org|net|io|ai|dev|co|edu|app)$", re.IGNORECASE)  # "huggingface.co/datasets": an address


def _slash_hints(tokens: list[_Token]) -> list[str]:
    """``LLM/VLM``, ``RAG/retrieval``: a slash holds words together as a hyphen does (one term,
    found where a paper writes them side by side: "LLM/VLM", "LLM-VLM"), as web search reads it;
    a reader may have meant either. Read as OR, a pair meant as one ("encoder/decoder", "HTML/CSS")
    would find every paper with either word, so the topic keeps it and the hint says how to
    write either. Not for a side under two characters (``I/O``, ``w/o``, ``A/B``) nor
    :data:`_SLASH_COMPOUNDS`."""
    hints = []
    alone = len(tokens) == 2  # the word and END: the whole topic
    for at, token in enumerate(tokens):
        if token.kind != "WORD" or "/" not in token.text or (at and tokens[at - 1][:2] == ("FIELD", "author")):
            continue
        word = _trim_word(token.text)
        sides = word.split("/")
        if word.casefold() in _SLASH_COMPOUNDS or any(len(side) < 2 or not _has_word_char(side) or _HOST.search(side)
                                                      for side in sides):
            continue
        either = " OR ".join(sides)
        field = tokens[at - 1].text if at and tokens[at - 1].kind == "FIELD" else ""  # title:LLM/VLM
        written = f"{field}:({either})" if field else either if alone else f"({either})"
        hints.append(f"{word} is one term, found where a paper writes its words side by side (\"{word}\", "
                     f"\"{' '.join(sides)}\"); for papers with either, write {written}")
    return hints


def _as_written(error: QueryError, text: str) -> QueryError:
    """``error`` about ``text``, the reader's own: parsed in another form (quotes made straight,
    a mode prefix blanked) whose positions are the same."""
    return QueryError(error.reason, query=text, position=error.position)


def as_query(query: str | Query) -> Query:
    """``query`` parsed; a query parsed already (a run parses each topic once and hands the
    result on) is returned as it is. Raises :class:`QueryError` as :func:`parse_query` does."""
    return query if isinstance(query, Query) else parse_query(query)


def query_text(query: str | Query) -> str:
    """What the reader wrote: the string, or the text a parsed query was parsed from."""
    return query.text if isinstance(query, Query) else query


def by_text(queries: Iterable[str | Query]) -> dict[str, str | Query]:
    """Each topic once, under what the reader wrote. Topics are told apart by their text, so a
    parsed query must carry the text it was parsed from (as ``parse_query`` gives it)."""
    return {query_text(query): query for query in queries}


def _parse_without_mode(text: str) -> Query:
    stripped = text.strip()
    if stripped == EVERYTHING_TEXT:
        return Query(text, Everything(text.index(EVERYTHING_TEXT)))
    if not stripped:
        raise QueryError("nothing to match: the query is empty", query=text, position=0)
    tokens = _lex(text)
    if len(tokens) == 1:
        raise QueryError("nothing to match: the query has no letters or digits", query=text, position=0)
    parser = _Parser(text, tokens)
    root = parser.parse()
    if parser.negated:  # without an exclusion every branch has a term: nothing to check
        _check_positive(root, text)
    if parser.liked:
        _check_likes(root, text)
    return Query(text, root)


def _check_likes(root: Node, text: str) -> None:
    """``like:`` must be an item of the topic or of one side of a top-level OR, once per side.

    Only there does an example decide which papers a side finds; elsewhere (excluded, nested
    in a group that is part of a side, two in one side) nothing could honour it, and a topic
    that silently ignores part of itself is worse than an error. Parentheses that change
    nothing leave no group in the tree (``(like:X)`` is ``like:X``), so they are accepted."""
    branches = root.children if isinstance(root, Or) else (root,)
    placed: set[int] = set()  # ids of the Like nodes in a place where they count
    for branch in branches:
        items = [item for item in (branch.children if isinstance(branch, And) else (branch,)) if isinstance(item, Like)]
        if len(items) > 1:
            raise QueryError("two 'like:' in one side of the topic: a paper cannot be asked to be like both; "
                             "join them with OR", query=text, position=items[1].position)
        placed.update(map(id, items))
    for like in _likes_anywhere(root):
        if id(like) not in placed:
            raise QueryError("'like:' can only ask for papers like one (not exclude them, not inside "
                             "parentheses): put it directly in the topic or in one side of OR",
                             query=text, position=like.position)
    _check_like_count(root, text)


def _check_like_count(root: Node, text: str) -> None:
    """At most ``MAX_LIKES`` ``like:`` in a topic. Matching compares each of them (none is
    dropped quietly), so a topic with more is refused, pointing at the first one too many."""
    too_many = sorted(_likes_anywhere(root), key=lambda like: like.position)[MAX_LIKES:]
    if too_many:
        raise QueryError(f"more than {MAX_LIKES} 'like:' in one topic (a topic compares with at most "
                         f"{MAX_LIKES} papers): drop some, or put them in a second topic",
                         query=text, position=too_many[0].position)


def _likes_anywhere(node: Node) -> Iterator[Like]:
    if isinstance(node, Like):
        yield node
    elif isinstance(node, Not):
        yield from _likes_anywhere(node.child)
    elif isinstance(node, (And, Or)):
        for child in node.children:
            yield from _likes_anywhere(child)


def _has_meaning(node: Node) -> bool:
    """Whether a positive part of ``node`` can be read by meaning: a term outside fields, or like:."""
    if isinstance(node, Term):
        return node.field is None
    if isinstance(node, (And, Or)):
        return any(_has_meaning(child) for child in node.children)
    return isinstance(node, Like)


def render_query(query: Query | Node) -> str:
    """The canonical text of a query: parsing it again gives an equal query."""
    if isinstance(query, Query):
        return (f"{query.mode}: " if query.mode else "") + _render(query.root)
    return _render(query)


def _render(node: Node) -> str:
    kind = type(node)  # the parser builds exactly these types: no subclass to allow for
    if kind is Term:
        text = f'"{node.text}"' if node.phrase else node.text  # type: ignore[union-attr]
        return f"{node.field}:{text}" if node.field else text  # type: ignore[union-attr]
    if kind is And:
        return " ".join([f"({_render(c)})" if type(c) is Or else _render(c) for c in node.children])  # type: ignore[union-attr]
    if kind is Not:
        inner = node.child  # type: ignore[union-attr]
        return "-" + (f"({_render(inner)})" if type(inner) is And or type(inner) is Or else _render(inner))
    if kind is Or:  # a side with an exclusion keeps it in parentheses, or it would apply to every side
        return " OR ".join([f"({_render(c)})" if _excludes(c) else _render(c) for c in node.children])  # type: ignore[union-attr]
    if kind is Like:
        return f"{LIKE}:{node.ref}"  # type: ignore[union-attr]
    return EVERYTHING_TEXT


def _excludes(node: Node) -> bool:
    return type(node) is And and any(type(child) is Not for child in node.children)


def positive_terms(query: Query | Node) -> list[str]:
    """The words and phrases a paper can be picked for (excluded ones left out), in order.

    ``like:`` references are not words: see :func:`like_refs`.
    """
    return list(dict.fromkeys(term.text for term in positive_term_nodes(query)))


def positive_term_nodes(query: Query | Node) -> list[Term]:
    """:func:`positive_terms` as parsed: with their fields and whether they are phrases."""
    found: list[Term] = []
    _collect_positive(query.root if isinstance(query, Query) else query, found)
    return found


def _collect_positive(node: Node, found: list[Term]) -> None:
    if isinstance(node, Term):
        found.append(node)
    elif isinstance(node, (And, Or)):
        for child in node.children:
            _collect_positive(child, found)


def may_have_likes(text: str) -> bool:
    """Whether a topic's text may have a ``like:`` part: a test far cheaper than parsing, to
    skip the topics without one. The prefix counts in any case, as the lexer reads it."""
    return f"{LIKE}:" in text.lower()


def like_refs(query: Query | Node) -> list[Like]:
    """The ``like:`` references a paper can be picked for (excluded ones left out), in order."""
    found: list[Like] = []
    _collect_likes(query.root if isinstance(query, Query) else query, found)
    return list(dict.fromkeys(found))


def _collect_likes(node: Node, found: list[Like]) -> None:
    if isinstance(node, Like):
        found.append(node)
    elif isinstance(node, (And, Or)):
        for child in node.children:
            _collect_likes(child, found)


def is_everything(query: Query) -> bool:
    """Whether this is the ``*`` topic (all papers, listing order)."""
    return isinstance(query.root, Everything)
