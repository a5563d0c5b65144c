"""The topic query language: what parses to what, and every error with its position."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperwire import liked
from paperwire.errors import PaperwireError, QueryError
from paperwire.query import (
    MAX_DEPTH,
    MAX_LIKES,
    And,
    Everything,
    Like,
    Not,
    Or,
    Query,
    Term,
    is_everything,
    like_refs,
    parse_query,
    positive_terms,
    reading_hints,
    reading_rules,
    render_query,
)


def word(text: str, field: str | None = None) -> Term:
    return Term(text, False, field)


def phrase(text: str, field: str | None = None) -> Term:
    return Term(text, True, field)


# --- what valid queries mean ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "root"),
    [
        ("RAG", word("RAG")),
        ("  RAG  ", word("RAG")),
        ("scaling laws", And((word("scaling"), word("laws")))),
        ('"scaling laws"', phrase("scaling laws")),
        ('"  scaling   laws "', phrase("scaling laws")),
        ("a OR b", Or((word("a"), word("b")))),
        # implicit AND binds tighter than OR
        ("a b OR c", Or((And((word("a"), word("b"))), word("c")))),
        ("a (b OR c)", And((word("a"), Or((word("b"), word("c")))))),
        ("a AND b", And((word("a"), word("b")))),
        # lower-case keywords are ordinary words
        ("cats or dogs", And((word("cats"), word("or"), word("dogs")))),
        ("llm -survey", And((word("llm"), Not(word("survey"))))),
        ("llm NOT survey", And((word("llm"), Not(word("survey"))))),
        ('llm -"mixture of experts"', And((word("llm"), Not(phrase("mixture of experts"))))),
        ("llm NOT (a OR b)", And((word("llm"), Not(Or((word("a"), word("b"))))))),
        ("llm -(a OR b)", And((word("llm"), Not(Or((word("a"), word("b"))))))),
        ("title:diffusion", word("diffusion", "title")),
        ('abstract:"scaling laws"', phrase("scaling laws", "abstract")),
        ("author:(smith OR jones)", Or((word("smith", "author"), word("jones", "author")))),
        ("Title:x", word("x", "title")),
        ("title:-x y", And((Not(word("x", "title")), word("y")))),
        ("-title:x y", And((Not(word("x", "title")), word("y")))),
        # words keep inner hyphens; sentence punctuation after a word is dropped
        ("multi-modal", word("multi-modal")),
        ("LLMs, agents.", Or((word("LLMs"), word("agents")))),  # a comma separates alternatives
        ("LLMs agents.", And((word("LLMs"), word("agents")))),
        ("C++", word("C++")),
        # a colon after an unknown word followed by a space is punctuation, not a field
        ("ScaleDepth: depth", And((word("ScaleDepth"), word("depth")))),
        # a lone or doubled hyphen before a term still negates once; a free one is punctuation
        ("--foo bar", And((Not(word("foo")), word("bar")))),
        ("NOT NOT foo", word("foo")),
        ("x -(-y)", And((word("x"), word("y")))),
        ("a - b", And((word("a"), word("b")))),
        ("a !!! b", And((word("a"), word("b")))),
        # groups of the same kind merge
        ("a (b c)", And((word("a"), word("b"), word("c")))),
        ("a OR (b OR c)", Or((word("a"), word("b"), word("c")))),
        ("((a))", word("a")),
    ],
)
def test_parses_to(text: str, root: object) -> None:
    assert parse_query(text).root == root


def test_star_is_everything() -> None:
    for text in ("*", "  *  "):
        query = parse_query(text)
        assert query.root == Everything()
        assert is_everything(query)
        assert render_query(query) == "*"
        assert positive_terms(query) == []
    assert not is_everything(parse_query("a"))


def test_positions_are_recorded_but_do_not_affect_equality() -> None:
    query = parse_query('  foo "bar baz"')
    assert [child.position for child in query.root.children] == [2, 6]
    assert parse_query('foo   "bar baz"') == query


@pytest.mark.parametrize(
    ("text", "straight"),
    [
        ("robots \u201cworld model\u201d", 'robots "world model"'),  # what phones and macOS type
        ("\u201escaling laws\u201c", '"scaling laws"'),  # German
        ("\u00abscaling laws\u00bb", '"scaling laws"'),  # French
        ("title:\u201cworld model\u201d -\u201csurvey\u201d", 'title:"world model" -"survey"'),
        ("\u201cLLM\u2019s world\u201d", '"LLM\u2019s world"'),  # a curly apostrophe stays in its word
    ],
)
def test_typographic_double_quotes_are_quotes(text: str, straight: str) -> None:
    query, expected = parse_query(text), parse_query(straight)
    assert query == expected and query.text == text
    assert [term.position for term in _terms(query.root)] == [term.position for term in _terms(expected.root)]


@pytest.mark.parametrize(
    ("text", "straight"),
    [
        ("diffusion \u2013video", "diffusion -video"),  # an en dash: what autocorrect makes of "-"
        ("diffusion \u2212video", "diffusion -video"),  # a minus sign
        ("\u2014\u201csurvey\u201d agents", '-"survey" agents'),  # an em dash before a quote
        ("agents (RAG \u2013survey)", "agents (RAG -survey)"),
        ("GPT\u20134 agents", "GPT\u20134 agents"),  # inside a word it stays
        ("agents \u2013 tools", "agents \u2013 tools"),  # standing alone it is punctuation
        ("title:\u2013video agents", "title:-video agents"),
        ('"self \u2013supervised learning" -video', '"self \u2013supervised learning" -video'),  # in a phrase: text
    ],
)
def test_a_typographic_dash_before_a_term_excludes_it(text: str, straight: str) -> None:
    """"diffusion \u2013video" (autocorrect's dash) ranked the video paper first: it matched
    the word "\u2013video" instead of excluding video."""
    query, expected = parse_query(text), parse_query(straight)
    assert query == expected and query.text == text
    assert [(term.text, term.position) for term in _terms(query.root)] == [
        (term.text, term.position) for term in _terms(expected.root)]


def test_an_unclosed_typographic_quote_is_reported_where_written() -> None:
    text = "(RAG OR \u201cretrieval"
    with pytest.raises(QueryError, match="unbalanced quote") as caught:
        parse_query(text)
    assert caught.value.position == 8 and caught.value.query == text


def _terms(node: object) -> list[Term]:
    if isinstance(node, Term):
        return [node]
    inner = [node.child] if isinstance(node, Not) else list(getattr(node, "children", ()))
    return [term for child in inner for term in _terms(child)]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("RAG", "RAG"),
        ("scaling   laws", "scaling laws"),
        ('"scaling   laws" OR moe', '"scaling laws" OR moe'),
        ("a AND b", "a b"),
        ("NOT x y", "-x y"),
        ("title:(a OR b) c", "(title:a OR title:b) c"),
        ('author:"Yann LeCun"', 'author:"Yann LeCun"'),
        ("x -(a OR b)", "x -(a OR b)"),
        ("x -(a b)", "x -(a b)"),
        ("(a OR b) (c OR d)", "(a OR b) (c OR d)"),
        ("a b OR c", "a b OR c"),
        ("*", "*"),
    ],
)
def test_render_gives_canonical_text(text: str, canonical: str) -> None:
    query = parse_query(text)
    assert render_query(query) == canonical
    assert str(query) == canonical
    assert parse_query(canonical) == query


def test_positive_terms_leave_out_exclusions_and_repeats() -> None:
    query = parse_query('RAG "scaling laws" -survey (agents OR RAG) -(a OR b) author:smith')
    assert positive_terms(query) == ["RAG", "scaling laws", "agents", "smith"]


# --- every error names the problem and where it is --------------------------------------


@pytest.mark.parametrize(
    ("text", "problem", "position"),
    [
        ("", "empty", 0),
        ("   ", "empty", 0),
        ("!!! ...", "no letters or digits", 0),
        ("-", "no letters or digits", 0),
        ("-foo", "only excludes", 0),
        ("NOT foo", "only excludes", 0),
        ("-foo -bar", "only excludes", 0),
        ("-(a b)", "only excludes", 0),
        ("a OR -b", "this side of OR only excludes", 5),
        ("(-a) OR b", "this side of OR only excludes", 1),
        ("x -(a OR -b)", "this side of OR only excludes", 9),
        ('"unclosed', "unbalanced quote", 0),
        ('a "b" "c', "unbalanced quote", 6),
        ("(a", "'(' is never closed", 0),
        ("a ((b)", "'(' is never closed", 2),
        ("a)", "')' has no matching '('", 1),
        (")a", "')' has no matching '('", 0),
        ("a -)", "')' has no matching '('", 3),
        ("()", "empty parentheses", 0),
        ("a (!!!)", "empty parentheses", 2),
        ('""', "empty phrase", 0),
        ('a "..."', "empty phrase", 2),
        ("a OR", "dangling OR: nothing after", 2),
        ("a OR )", "dangling OR: nothing after", 2),
        # The second OR is the one with nothing on its left: the error points there, not at the first.
        ("a OR OR b", "dangling OR: nothing before", 5),
        ("(a OR OR b)", "dangling OR: nothing before", 6),
        ("a OR OR OR b", "dangling OR: nothing before", 5),
        ("OR a", "dangling OR: nothing before", 0),
        ("a (OR b)", "dangling OR: nothing before", 3),
        ("a AND", "dangling AND", 2),
        ("AND a", "dangling AND", 0),
        # "*" (every paper) and a mode are whole-topic forms: elsewhere they were silently dropped, or read as a word.
        ("RAG OR *", "'*' (every paper) is a topic only on its own", 7),
        ("* RAG", "'*' (every paper) is a topic only on its own", 0),
        ("RAG -*", "'*' (every paper) is a topic only on its own", 5),
        ("RAG words:", "'words:' sets the topic's mode only at its start", 4),
        ("RAG Meaning:transformers", "'Meaning:' sets the topic's mode only at its start", 4),
        ("NOT", "nothing after 'NOT'", 0),
        ("a NOT", "nothing after 'NOT'", 2),
        ("a -OR b", "nothing after '-'", 2),
        ("foo:bar", "unknown field 'foo:'", 0),
        ('x venue:"neurips"', "unknown field 'venue:'", 2),
        ("http://example.org", "'http://example.org' is a web address, and a topic is words", 0),
        # A pasted link or a cited id names a paper: the error says how to ask for papers like it.
        ("https://arxiv.org/abs/2403.09611", "to find papers like 2403.09611, write like:2403.09611", 0),
        ("MoE routing https://arxiv.org/abs/2403.09611", "'https://arxiv.org/abs/2403.09611' names a paper", 12),
        ("arXiv:2403.06458v2.", "'arXiv:2403.06458v2.' names a paper, and a topic is words: to find papers like "
                                "2403.06458v2, write like:2403.06458v2", 0),
        ("x https://arxiv.org/pdf/2403.06458.pdf", "write like:2403.06458", 2),
        ("arXiv:foo", "unknown field 'arXiv:'", 0),
        ("title:", "needs a term right after the colon", 0),
        ("title: x", "needs a term right after the colon", 0),
        ("x title:)", "needs a term right after the colon", 2),
        ("title:(abstract:x)", "inside a 'title:' group", 7),
        ("title:author:x", "inside a 'title:' group", 6),
        ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), "nested deeper", MAX_DEPTH),
        ("title:" * 3000 + "x", "inside a 'title:' group", 6),
    ],
)
def test_errors_name_problem_and_position(text: str, problem: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    error = caught.value
    assert problem in error.reason
    assert error.position == position
    assert error.query == text
    assert f"(at position {position})" in str(error)
    assert isinstance(error, PaperwireError)


def test_long_inputs_do_not_overflow_the_stack() -> None:
    assert parse_query("-" * 5000 + "x y") == parse_query("-x y")
    assert parse_query("NOT " * 3001 + "x y") == parse_query("-x y")
    assert len(parse_query(" OR ".join(["w"] * 5000)).root.children) == 5000


def test_non_text_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        parse_query(None)  # type: ignore[arg-type]


# --- properties --------------------------------------------------------------------------

QUERYISH = st.text(alphabet=list('ab -"():*!ORANDTtilebsrcu\u00e9\t\u201c\u201d,;1&'), max_size=40)


def _parse_or_error(text: str) -> Query | None:
    try:
        return parse_query(text)
    except QueryError as error:
        assert 0 <= error.position <= len(text)
        return None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60) | QUERYISH)
def test_any_string_is_a_query_or_a_query_error(text: str) -> None:
    _parse_or_error(text)


@settings(max_examples=400, deadline=None)
@given(QUERYISH)
def test_rendering_parses_back_to_the_same_query(text: str) -> None:
    query = _parse_or_error(text)
    if query is not None:
        again = parse_query(render_query(query))
        assert again == query
        assert render_query(again) == render_query(query)


# --- like: a paper as the example ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "root", "canonical"),
    [
        ("like:2403.12345", Like("2403.12345"), "like:2403.12345"),
        ("LIKE:2403.12345v2", Like("2403.12345v2"), "like:2403.12345v2"),
        ("like:hep-th/9901001", Like("hep-th/9901001"), "like:hep-th/9901001"),
        ("like:t-0123456789abcdef", Like("t-0123456789abcdef"), "like:t-0123456789abcdef"),
        # As papers cite an arXiv id, and as its page's or PDF's address.
        ("like:arXiv:2403.12345", Like("2403.12345"), "like:2403.12345"),
        ("like:https://arxiv.org/abs/2403.12345v2", Like("2403.12345v2"), "like:2403.12345v2"),
        ("like:arxiv.org/pdf/2403.12345.pdf", Like("2403.12345"), "like:2403.12345"),
        ("agents like:arxiv.org/pdf/2403.12345.pdf, RAG", Or((And((word("agents"), Like("2403.12345"))), word("RAG"))),
         "agents like:2403.12345 OR RAG"),
        ("agents like:2403.12345, -survey", And((word("agents"), Like("2403.12345"), Not(word("survey")))),
         "agents like:2403.12345 -survey"),
        ("(like:2403.12345 OR RAG)", Or((Like("2403.12345"), word("RAG"))), "like:2403.12345 OR RAG"),
        ("RAG OR agents like:2403.12345", Or((word("RAG"), And((word("agents"), Like("2403.12345"))))),
         "RAG OR agents like:2403.12345"),
    ],
)  # fmt: skip
def test_like_is_a_node_of_its_own(text: str, root: object, canonical: str) -> None:
    query = parse_query(text)
    assert query.root == root
    assert render_query(query) == canonical
    assert parse_query(canonical) == query


def test_like_is_not_a_word_and_knows_its_paper_id() -> None:
    query = parse_query("RAG like:2403.12345v2 -robots OR agents like:t-0123456789abcdef")
    assert positive_terms(query) == ["RAG", "agents"]
    assert [like.ref for like in like_refs(query)] == ["2403.12345v2", "t-0123456789abcdef"]
    assert [like.paper_id for like in like_refs(query)] == ["2403.12345", "t-0123456789abcdef"]
    assert like_refs(parse_query("like:2403.12345"))[0].position == 0


@pytest.mark.parametrize(
    ("text", "problem", "position"),
    [
        ("like:", "'like:' needs a paper id", 0),
        ("x like: robots", "'like:' needs a paper id", 2),
        ('like:"2403.12345"', "'like:' needs a paper id", 0),
        ("like:foo", "'foo' is not a paper id", 5),
        ("like:arXiv:foo", "'foo' is not an arXiv id", 11),
        ("like:arXiv:t-0123456789abcdef", "'t-0123456789abcdef' is not an arXiv id", 11),
        ("a like:2403.123456", "'2403.123456' is not a paper id", 7),
        ("a like:t-xyz", "'t-xyz' is not a paper id", 7),
        ("like:2403.12345(a)", "a space must follow the paper id", 15),
        ("title:like:2403.12345", "'like:' inside a 'title:' group", 6),
        ("author:(a OR like:2403.12345)", "'like:' inside a 'author:' group", 13),
        ("-like:2403.12345", "only excludes", 0),
        # Places where no example could decide anything: refused rather than silently ignored.
        ("RAG -like:2403.12345", "can only ask for papers like one (not exclude them", 5),
        ("agents (RAG OR like:2403.12345)", "not inside parentheses", 15),
        ("a -(b like:2403.12345)", "not exclude them", 6),
        ("like:2403.12345 agents like:2403.54321", "two 'like:' in one side", 23),
        ("x OR like:2403.12345 like:2403.54321", "two 'like:' in one side", 21),
        ("words: agents like:2403.12345", "'words:' topics match by words only", 14),
        ("Words: agents like:2403.12345", "'words:' topics match by words only", 14),
        ("like:t-nonexistent", "like: takes an arXiv id such as 2403.12345 or 2403.12345v2, "
                               "or a paper id: t- and 16 hex digits", 5),
        ("like: x", "(an arXiv id such as 2403.12345 or 2403.12345v2, or a paper id: t- and 16 hex digits)", 0),
        # Each like: is compared; past the limit a topic is refused, never cut short.
        (" OR ".join(f"like:2403.{n:05d}" for n in range(MAX_LIKES + 1)), f"more than {MAX_LIKES} 'like:'",
         MAX_LIKES * len("like:2403.00000 OR ")),
    ],
)
def test_like_errors_name_problem_and_position(text: str, problem: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert problem in caught.value.reason
    assert caught.value.position == position


@pytest.mark.parametrize("text, same_as", [
    ("(like:2403.12345)", "like:2403.12345"),
    ("((like:2403.12345))", "like:2403.12345"),
    ("(agents like:2403.12345) -survey", "agents like:2403.12345 -survey"),
    ("RAG OR (like:2403.12345)", "RAG OR like:2403.12345"),
    ("(like:2403.12345) OR (like:2402.00001)", "like:2403.12345 OR like:2402.00001"),
])
def test_parentheses_that_change_nothing_leave_a_like_where_it_counts(text: str, same_as: str) -> None:
    """The README refuses like: "inside a group that is only part of one side", where it could
    decide nothing; parentheses around the topic or a side leave the same topic, which the
    example decides, so they are accepted (and rendered without)."""
    assert parse_query(text).root == parse_query(same_as).root
    assert render_query(parse_query(text)) == same_as
    with pytest.raises(QueryError, match="not inside parentheses") as caught:
        parse_query(f"agents ({text} OR RAG)")
    assert caught.value.position == text.index("like:") + len("agents (")


def test_a_topic_may_have_as_many_likes_as_a_reader_keeps() -> None:
    ids = [f"2403.{n:05d}" for n in range(MAX_LIKES)]
    query = parse_query(liked.query_text(ids))
    assert liked.MAX_LIKED == MAX_LIKES and [like.ref for like in like_refs(query)] == ids


LIKEISH = st.lists(
    st.sampled_from(["like:", "LIKE:", "2403.12345", "v2", "t-0123456789abcdef", "hep-th/9901001", "-", " ",
                     "(", ")", '"', "OR", "a", ".", ",", "title:", "x", "arXiv:", "https://arxiv.org/abs/",
                     "arxiv.org/pdf/", ".pdf", "words:"]),
    max_size=12,
).map("".join)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(LIKEISH)
def test_like_queries_parse_or_fail_clearly_and_render_back(text: str) -> None:
    query = _parse_or_error(text)
    if query is not None:
        assert parse_query(render_query(query)) == query
    try:
        parse_query(text)
        said = reading_hints(text)
    except QueryError as error:
        said = [error.reason]
    for like in (advice for line in said for advice in re.findall(r"write (like:\S+)", line)):
        assert isinstance(parse_query(like).root, Like), like  # what a hint or an error says to write is a topic


# Topics as readers leave papers out: negation words, spaced dashes, quotes, parentheses, OR.
LEAVING_OUT = st.lists(
    st.sampled_from(["diffusion", "video", "MoE", "survey", " ", " ", "not", "no", "except", "excluding", "but",
                     "about", "the", "2024", "-", " - ", " \u2013 ", ",", "(", ")", '"', "OR", "or", "do", "?"]),
    max_size=14,
).map("".join)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(LEAVING_OUT)
def test_a_leaving_out_hint_says_to_write_a_topic_that_parses(text: str) -> None:
    """Any topic: hints never raise, are few, and what one says to write in its place parses."""
    try:
        parse_query(text)
    except QueryError:
        return
    said = [hint for hint in reading_hints(text) if "in its place" in hint]
    assert len(said) <= 3
    for hint in said:
        written, _, advice = hint.partition(": ")
        target = re.search(r"write -(\S+|\"[^\"]*\") or NOT", advice).group(1)
        assert written in text, hint
        if text.count(written) > 1:
            continue  # which of them the hint means is not to be told from its words
        start = text.index(written)
        parse_query(f"{text[:start]}-{target}{text[start + len(written):]}")  # raises if the advice is wrong


@pytest.mark.parametrize("text, mode, canonical", [
    ("words: code generation", "words", "words: code generation"),
    ("meaning:(agents OR robots) -survey", "meaning", "meaning: (agents OR robots) -survey"),
    ("  meaning: like:2403.12345", "meaning", "meaning: like:2403.12345"),
    ("code generation", None, "code generation"),
    # Any case, as field prefixes (Title:): "Words: x" once searched the words "Words x".
    ("Words: x", "words", "words: x"),
    (" MEANING: agents", "meaning", "meaning: agents"),
])
def test_a_topic_may_start_with_its_mode(text: str, mode: str | None, canonical: str) -> None:
    query = parse_query(text)
    assert query.mode == mode and render_query(query) == canonical
    assert parse_query(canonical) == query


def test_a_mode_needs_something_to_match_and_errors_point_into_what_was_written() -> None:
    with pytest.raises(QueryError, match="neither words nor meaning"):
        parse_query("words: *")
    with pytest.raises(QueryError, match="empty"):
        parse_query("meaning:")
    with pytest.raises(QueryError, match="needs words outside fields"):
        parse_query("meaning: title:RAG -survey")
    with pytest.raises(QueryError) as error:
        parse_query('words: "open')
    assert error.value.position == 7


@pytest.mark.parametrize(("topic", "same_as"), [
    ('MoE OR "mixture of experts" -survey', '(MoE -survey) OR ("mixture of experts" -survey)'),
    ("-survey agents OR robots", "(-survey agents) OR (robots -survey)"),
    ("a -x OR b -y", "(a -x -y) OR (b -y -x)"),  # each side's own first: the order is kept
    ("a NOT (b OR c) OR d", "(a -(b OR c)) OR (d -(b OR c))"),
])
def test_an_exclusion_outside_parentheses_applies_to_every_side_of_or(topic: str, same_as: str) -> None:
    """As in web search, Lucene and tantivy: a reader who ends ``MoE OR "mixture of experts"``
    with ``-survey`` means no surveys at all; it excluded them from the second side only."""
    assert parse_query(topic) == parse_query(same_as)
    assert parse_query(render_query(parse_query(topic))) == parse_query(topic)


@pytest.mark.parametrize("topic", ["(MoE -survey) OR RAG", "title:(a -x OR b) c", "c (a -x OR b)"])
def test_an_exclusion_inside_parentheses_keeps_to_them(topic: str) -> None:
    query = parse_query(topic)
    assert parse_query(render_query(query)) == query
    assert render_query(query).count("-") == 1, render_query(query)


@pytest.mark.parametrize(("topic", "same_as"), [
    ("RAG; agents; MoE", "RAG OR agents OR MoE"),
    ("quantization, pruning, distillation", "quantization OR pruning OR distillation"),
    ('"scaling laws", MoE', '"scaling laws" OR MoE'),
    ("title:(diffusion, depth) LLM", "title:(diffusion OR depth) LLM"),
    ("LLM agents , tool use", "LLM agents OR tool use"),
    ("agents, -survey", "agents -survey"),  # before an exclusion: nothing to separate
    ("-survey, agents", "-survey agents"),  # nor after one
    ("LLMs,", "LLMs"), ("a, OR b", "a OR b"), ("(a,) b", "a b"), ("a ,, b", "a OR b"),
    # with no space after it too: "RAG;agents" was one word
    ("RAG;agents", "RAG OR agents"), ("RAG,agents", "RAG OR agents"), ("a,b;c", "a OR b OR c"),
    ("title:RAG,agents", "title:RAG OR agents"), ("GPT-4,Claude", "GPT-4 OR Claude"), ("3D,4D", "3D OR 4D"),
    ("agents,-survey", "agents -survey"), ("-survey,agents", "-survey agents"), ("(a,b) c", "(a OR b) c"),
    ('RAG,"agents"', 'RAG OR "agents"'), ("a,,b", "a OR b"), ("R&D;agents", "R&D OR agents"),
    # a field's colon inside the chunk: "title:agents,MoE" was one word (and rendered apart)
    ("RAG;title:agents,MoE", "RAG OR title:agents OR MoE"), ("RAG;-author:Xu,MoE", "(RAG -author:Xu) OR (MoE -author:Xu)"),
])
def test_a_comma_or_semicolon_between_terms_separates_alternatives(topic: str, same_as: str) -> None:
    """Readers type lists: "RAG; agents; MoE" found nothing, read as three words near each other."""
    assert parse_query(topic) == parse_query(same_as)


@pytest.mark.parametrize("topic", ["1,000 GPUs", "1,000,000 tokens", "0,5B models", "1,2-diol synthesis",
                                   "R&amp;D agents", "R&#39;s law", "like:2403.12345,"])
def test_a_comma_inside_a_number_separates_nothing(topic: str) -> None:
    """A comma between digits is the number's (thousands, a decimal comma, "1,2-diol"), and the
    ";" of an HTML character reference pasted from a page's source is the word's."""
    root = parse_query(topic).root
    assert type(root) is not Or, root
    assert render_query(root) == topic.rstrip(",")
    assert parse_query("1,000 GPUs").root == And((word("1,000"), word("GPUs")))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z])?", fullmatch=True)
                .filter(lambda text: text not in ("OR", "AND", "NOT")), min_size=2, max_size=5),
       st.sampled_from([",", ";"]))
def test_a_list_reads_the_same_with_or_without_spaces(words: list[str], separator: str) -> None:
    """Between words, a separator with no space after it separates as one with a space does."""
    assert parse_query(separator.join(words)) == parse_query(f"{separator} ".join(words))


@pytest.mark.parametrize(("topic", "hint"), [
    ("diffusion not video", "not video: a lower-case \"not\" is a word, so this looks for papers with video; for papers "
                           "without it, write -video or NOT video in its place"),
    ('diffusion not "video generation"', 'write -"video generation" or NOT "video generation"'),
    ("MoE or mixture of experts", 'MoE or mixture: a lower-case "or" is a word'),
    # a tester's ways of leaving papers out, each of which found what it meant to leave out
    ("LLM papers but not about agents", "but not about agents: a lower-case \"not\" is a word, so this looks for papers with "
                                        "agents; for papers without it, write -agents or NOT agents in its place"),
    ("scaling laws not for language models", 'write -"language models" or NOT "language models"'),
    ("diffusion, no video", "no video: a lower-case \"no\" is a word, so this looks for papers with video"),
    ("MoE (no surveys)", "write -surveys"), ("mixture of experts but no surveys", "write -surveys"),
    ("mixture of experts, excluding surveys", "write -surveys"), ("RAG except benchmarks", "write -benchmarks"),
    ("mixture of experts - survey", "- survey: a dash followed by a space is punctuation, so this looks for papers "
                                    "with survey; for papers without it, write -survey"),
    ("a not b not c", "not b: a lower-case \"not\" is a word, so this looks for papers with b;"),
    ("speculative decoding except when lossy", "write -lossy or NOT lossy"),
    ("diffusion \u2013 video", "write -video"),
    ("author:Xu; Han", 'author:Xu; Han limits only "Xu" to authors'),
    ("author:Lovelace,Ada", 'author:Lovelace,Ada limits only "Lovelace" to authors'),
    ("LLM/VLM", "LLM/VLM is one term"), ("RAG/retrieval", "for papers with either, write RAG OR retrieval"),
    ("LLM/VLM agents", "write (LLM OR VLM)"), ("title:3D/4D", "write title:(3D OR 4D)"),
    ("frame/token/pixel", "write frame OR token OR pixel"),
    ('author:"Lovelace, Ada"', 'author:"Lovelace, Ada" matches no paper: papers write each author\'s given '
                               'name first. For this author write author:"Ada Lovelace"'),
    ('RAG author:"van der Berg,Jan"', 'write author:"Jan van der Berg"'),
    ("2403.09611", "2403.09611 is read as text for papers to say; to find papers like 2403.09611, write like:2403.09611"),
    ("MoE arxiv.org/abs/2403.09611v2.", "arxiv.org/abs/2403.09611v2. is read as text for papers to say; to find "
                                        "papers like 2403.09611v2, write like:2403.09611v2"),
])
def test_a_reading_hint_says_what_to_write_as_the_reader_wrote_it(topic: str, hint: str) -> None:
    assert any(hint in line for line in reading_hints(topic)), reading_hints(topic)


@pytest.mark.parametrize("topic", ["TCP/IP", "I/O latency", "w/o labels", "A/B testing", "and/or", "input/output",
                                   '"LLM/VLM"', "author:Smith/Jones", "huggingface.co/datasets", "LLM/"])
def test_a_slash_between_words_is_one_term(topic: str) -> None:
    """A slash holds words together as a hyphen does ("encoder/decoder" finds "encoder-decoder"),
    as web search reads it; read as OR, a pair meant as one would find every paper with either
    word. The hint (above) says how to write either; none where nobody means either alone."""
    assert reading_hints(topic) == []
    assert parse_query("LLM/VLM agents").root == And((word("LLM/VLM"), word("agents")))


@pytest.mark.parametrize("topic", ['author:"Ada Lovelace"', 'title:"Lovelace, Ada"', 'author:"a, b, c"'])
def test_no_name_order_hint_for_a_name_as_papers_write_it_or_outside_authors(topic: str) -> None:
    assert reading_hints(topic) == []


@pytest.mark.parametrize("topic", ["no regret learning", "not safe", "diffusion no video", "vision without language",
                                   "self-supervised - ", "LLMs not, RAG", "RAG NOT video", "state-of-the-art models",
                                   # a reviewer's: each would only exclude, or is no exclusion
                                   "robots OR not video", "diffusion OR no video", "(not video)",
                                   "Mamba \u2013 a selective state space model", '"LoRA - low rank adaptation"',
                                   "LLM 2023 - 2024",
                                   # a second tester's: "not" says what a thing does not do
                                   "LLMs that do not hallucinate", "when not to retrieve"])
def test_no_leaving_out_hint_where_nothing_is_left_out(topic: str) -> None:
    """"no" opens a topic ("no regret learning") or sits inside one; nothing comes before "not safe";
    "without" is how a topic says what a method does without ("pruning without retraining")."""
    assert reading_hints(topic) == []


def test_whether_or_not_leaves_nothing_out() -> None:
    assert not any('"not"' in hint for hint in reading_hints("whether or not LLMs reason"))


@pytest.mark.parametrize("topic", ["title:2403.09611", "RAG -2403.09611", "words: 2403.09611", "1.5B", "Qwen2.5",
                                   '"2403.09611"'])
def test_no_like_hint_where_a_number_is_meant_or_like_cannot_go(topic: str) -> None:
    assert not any("like:" in line for line in reading_hints(topic)), reading_hints(topic)


def test_no_reading_hint_next_to_a_group() -> None:
    """"write -(" was the advice for ``diffusion not (video OR audio)``."""
    assert reading_hints("diffusion not (video OR audio)") == []


@pytest.mark.parametrize(("text", "rules"), [
    ("RAG; agents", [("separator", 'RAG; agents: a ";" between terms means OR')]),
    ('"tool use", agents', [("separator", '"tool use", agents: a "," between terms means OR')]),
    ("(RAG, agents) -survey", [("separator", 'RAG, agents: a "," between terms means OR')]),
    ("title:RAG, (agents OR tools)", [("separator", 'a "," between terms means OR')]),
    ("MoE OR RAG -survey", [("outer-exclusion", "-survey is outside parentheses, so it excludes from every side of OR "
                                                "(for one side only, put it in parentheses with that side)")]),
    # read as written: a comma that is punctuation, exclusions each side has or keeps, no OR
    ("agents, -survey", []), ("LLMs, ", []), ("-survey MoE OR -survey RAG", []), ("(MoE -survey) OR RAG", []),
    ("agents -survey", []), ("words: RAG OR agents", []), ("(RAG", []), ("*", []),
])
def test_reading_rules_name_the_newer_rules_that_read_a_topic(text: str, rules: list[tuple[str, str]]) -> None:
    """`paperwire topics check` lists stored topics these rules read: a comma or semicolon between
    terms is OR, and an exclusion outside parentheses excludes from every side of OR."""
    assert reading_rules(text) == rules
