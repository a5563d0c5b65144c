"""A large run's word pass split over two processes.

Parsing, planning and matching are pure Python and hold the interpreter, so a second
core helps only from a second process. For a large run (``SPLIT_FROM`` distinct queries
or more with meaning, ``WORDS_SPLIT_FROM`` without, on a machine with two cores or more
where ``fork`` exists) :class:`ForkedWordPass` forks a child that plans and matches a share
of the distinct queries while this process does the rest: with meaning's work
(``match.meaning``; the queries are parsed already there, and the child inherits them), or
alone (:func:`match_words`; a topic given as text is parsed by the process that matches it).

Rankings explain themselves lazily: ``Ranking`` looks its terms up in the listing's index
when a match is first read, and the child's index dies with the child. So the child says,
as soon as its queries are planned, which symbols and neighbour pairs its index keeps, and
this process's index keeps them too (``Matcher.match_all(also=...)``): an index keeps each
wanted symbol the same whatever else it keeps, so every term of the child is found here
exactly as there. At the end the child sends each ranking as plain data (papers, scores, and
its positive terms with their fields and readings), and :class:`ChildTerms` looks those
terms up here, each once, when a match is first explained.

If the child fails (killed, out of memory, a bug), this process matches its share itself:
slower, same results.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

from paperwire.errors import QueryError
from paperwire.match.evaluate import Findings
from paperwire.match.matcher import ExtraAcronyms, Key, Matched, Matcher, Wanted, bulk_allocation, refused_topic
from paperwire.match.results import Ranking, TermFinding
from paperwire.query import Query, as_query, by_text, parse_query, query_text

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # prctl(2)

# Distinct queries from which a second process pays for its fixed costs (a second paper index,
# the fork, the messages): at 1,000 papers, 80,000 distinct topics ran no faster split (4.9-5.0 s
# against 4.7-5.0 s), 159,000 ran 0.9 s faster (7.3-7.7 s against 8.2-8.6 s; bench/README.md).
SPLIT_FROM = 120_000
# The same for words alone (``match_words``), where the child's half is all the work there is
# and the second index is the larger share of the fixed costs: at 1,000 papers, 11,000 distinct
# topics ran as fast split (1.18-1.44 s against 1.19-1.31 s), 18,000 ran 15% faster (1.42-1.67 s
# against 1.68-1.75 s), 82,000 20% faster (3.24-3.53 s against 4.07-4.49 s; bench/README.md).
WORDS_SPLIT_FROM = 15_000
# The child's share of the distinct queries. This process also parses every topic, reads the
# meaning parts and their vectors, plans and evaluates the parts' literal conditions, builds
# its own index and fuses the rankings (about 5 s of CPU at 100,000 readers against about 6 s
# of planning and matching for all topics), and its thread of matrix products takes turns with
# both: 0.7 to 0.8 finished both processes at about the same time (bench/README.md).
CHILD_SHARE = 0.75
# The child's share when words are all there is to match (``match_words``): both processes
# parse, plan and match their own share, so halves finish together.
WORDS_CHILD_SHARE = 0.5
# How long this process waits for each of the child's two messages before it gives up on the
# child (ends it and matches its share itself). A fork of a process with threads can leave the
# child stuck on a lock some other thread held; a stuck child must cost time, never the run.
# At 100,000 readers the child's longest step takes ~5 s.
CHILD_PATIENCE_SECONDS = 300.0


def match_words(pairs: Sequence[tuple[Key, str | Query]], papers: Sequence,
                acronyms: ExtraAcronyms | None) -> dict[Key, Ranking]:
    """Every (key, topic) matched by words alone, with the built-in acronyms and ``acronyms``:
    what ``compile_queries(pairs, acronyms).match(papers)`` gives, bad topics refused alike.
    A topic is its text, or what ``parse_query`` gave for it (told apart by their text:
    ``query.by_text``).

    A large run (:func:`worth_splitting`) forks a child that parses (if need be), plans and
    matches half of the distinct topics while this process does the other half."""
    distinct = by_text(query for _, query in pairs)
    texts, queries = list(distinct), list(distinct.values())
    mine, child = len(texts), None
    if worth_splitting(len(texts), WORDS_SPLIT_FROM):
        mine = len(texts) - round(len(texts) * WORDS_CHILD_SHARE)
        child = fork_word_pass(queries[mine:], texts[mine:], papers, acronyms)  # a text: the child parses it
        if child is None:
            mine = len(texts)
    try:
        matcher: Matcher[int] = Matcher(acronyms)
        with bulk_allocation():
            for topic in range(mine):
                matcher.add(topic, as_query(queries[topic]), texts[topic])
            matched = matcher.match_all(papers, also=child.wanted() if child is not None else None)
            rankings = [matched.rankings[topic] for topic in range(mine)]
            if child is not None:
                rankings += child.rankings(matched)
    except QueryError as error:  # a topic of either half does not parse: named as compile_queries names it
        raise refused_topic(next(key for key, query in pairs if query_text(query) == error.query), error) from error
    finally:
        if child is not None:
            child.close()
    topic_of = {text: topic for topic, text in enumerate(texts)}
    return {key: rankings[topic_of[query_text(query)]] for key, query in pairs}


def worth_splitting(distinct_queries: int, split_from: int) -> bool:
    """Whether a run of this many distinct queries should split its word pass (see the module):
    ``split_from`` distinct queries or more (``SPLIT_FROM`` with meaning, ``WORDS_SPLIT_FROM`` without).

    Only if a core is free: the split costs about 15% more CPU in all (a second paper index,
    terms both processes see, the rankings sent over), which a second core more than pays
    back; on a machine whose other work already keeps the other core busy (a load average
    of ``cores - 0.5`` or more) the same run was no faster split (bench/README.md)."""
    if distinct_queries < split_from or "fork" not in multiprocessing.get_all_start_methods():
        return False  # (no fork, no load average: Windows)
    cores = usable_cores()
    return (cores >= 2 and os.getloadavg()[0] < cores - 0.5
            and not multiprocessing.current_process().daemon)  # a daemonic process may have no children


def usable_cores() -> int:
    """The cores this process may run on (taskset, a cpuset, a container's CPUs), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def fork_word_pass(queries: Sequence[Query | str], texts: Sequence[str], papers: Sequence,
                   acronyms: ExtraAcronyms | None) -> ForkedWordPass | None:
    """A :class:`ForkedWordPass`, or None when no process can be started now (out of memory
    or processes): then the caller matches every topic itself."""
    try:
        return ForkedWordPass(queries, texts, papers, acronyms)
    except (OSError, RuntimeError) as error:  # RuntimeError: no thread to read the child's messages
        log.warning("no second matching process (%s); matching every topic here", error)
        return None


class ForkedWordPass:
    """A child process matching ``queries`` (parsed from the distinct strings ``texts``) by their words.

    Start it before any thread of this process's own (fork copies only the calling thread),
    take :meth:`wanted` before building this process's index, then :meth:`rankings`, and
    :meth:`close` in any case.
    """

    def __init__(self, queries: Sequence[Query | str], texts: Sequence[str], papers: Sequence,
                 acronyms: ExtraAcronyms | None):
        self._queries = queries
        self._texts = texts
        self._papers = papers
        self._acronyms = acronyms
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_child, args=(queries, texts, papers, acronyms, send, os.getpid()),
                                        name="paperwire-words", daemon=True)
        self._process.start()
        send.close()  # the child holds the only writing end: its exit is our end of input
        # Read as the child writes (a pipe holds 64 KiB): the child never waits for this
        # process to reach the point where it needs a message.
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=_read_all, args=(receive, self._inbox), daemon=True)
        try:
            self._reader.start()
        except BaseException:
            self._process.kill()  # no one would read it: it must not outlive this error
            self._process.join()
            receive.close()
            raise
        self._failed = False
        self._received = 0

    def wanted(self) -> Wanted | None:
        """What the child's queries want of a paper index; None if the child failed. A topic
        given as text that does not parse raises the parser's QueryError (``query`` is the text)."""
        return self._next()

    def rankings(self, matched: Matched) -> list[Ranking]:
        """The child's rankings, one per text, explained from ``matched``'s index (which must
        keep :meth:`wanted`); matched here instead if the child failed."""
        sent = self._next()
        if sent is None:
            matcher: Matcher[int] = Matcher(self._acronyms)
            for key, (query, text) in enumerate(zip(self._queries, self._texts, strict=True)):
                matcher.add(key, as_query(query), text)  # as wanted() raises
            fallback = matcher.match(self._papers)
            return [fallback[key] for key in range(len(self._texts))]
        rankings, described = sent
        terms = ChildTerms(described, matched.findings)
        nothing = Ranking(self._papers, [], [], (), terms)
        return [nothing if ranking is None else Ranking(self._papers, *ranking, terms) for ranking in rankings]

    def close(self) -> None:
        """Let the child exit once it has sent everything; end it otherwise."""
        if self._received == 2:
            self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()  # SIGKILL: a stuck child, or one with a parent's SIGTERM handler, still ends
            self._process.join()

    def _next(self) -> Any:
        if self._failed:
            return None
        try:
            message = self._inbox.get(timeout=CHILD_PATIENCE_SECONDS)
        except queue.Empty:
            self._failed = True
            log.warning("the second matching process sent nothing for %.0f s; ending it and matching its share here",
                        CHILD_PATIENCE_SECONDS)
            self._process.kill()
            return None
        self._received += 1
        if message is None:
            self._failed = True
            log.warning("the second matching process ended early; matching its share here")
            return None
        found = pickle.loads(message)
        if isinstance(found, _Refused):  # the caller's input, not the child's failure: no fallback
            raise QueryError(found.reason, query=self._texts[found.topic], position=found.position)
        if isinstance(found, _Failed):
            self._failed = True
            log.warning("the second matching process failed (%s); matching its share here", found.error)
            return None
        return found


class ChildTerms(Sequence[TermFinding]):
    """The child's terms (by the child's term ids), looked up in this process's index when a
    match is first explained. ``bounds`` (papers that may have each term) lets a ranking skip
    the terms a paper cannot have, as with its own terms."""

    def __init__(self, described: dict[int, tuple[tuple[str, ...], tuple, int]], findings: Findings):
        self.bounds = {term: bound for term, (_, _, bound) in described.items()}
        self._described = described
        self._findings = findings
        self._found: dict[int, TermFinding] = {}

    def __getitem__(self, term: int) -> TermFinding:  # type: ignore[override]
        found = self._found.get(term)
        if found is None:
            fields, patterns, _ = self._described[term]
            found = self._found[term] = self._findings.look_up(fields, patterns)
        return found

    def __len__(self) -> int:
        return len(self._described)


class _Failed:
    def __init__(self, error: str):
        self.error = error


class _Refused(NamedTuple):
    """A topic the child was given as text does not parse: which one, and the parser's words."""

    topic: int
    reason: str
    position: int


def _read_all(receive: Any, inbox: queue.Queue[bytes | None]) -> None:
    try:
        while True:
            inbox.put(receive.recv_bytes())
    except (EOFError, OSError):
        inbox.put(None)
    finally:
        receive.close()


def _child(queries: Sequence[Query | str], texts: Sequence[str], papers: Sequence, acronyms: ExtraAcronyms | None,
           send: Any, parent: int) -> None:
    """The child's whole life: plan, say what the index must keep, match, send the rankings."""
    for signum in (signal.SIGTERM, signal.SIGINT):  # not the parent's handlers (the daemon's stop): end at once
        signal.signal(signum, signal.SIG_DFL)
    _die_with(parent)
    gc.disable()  # a short life: nothing it builds has cycles, and all of it goes at exit
    try:
        matcher: Matcher[int] = Matcher(acronyms)
        for key, (query, text) in enumerate(zip(queries, texts, strict=True)):
            if isinstance(query, str):
                try:
                    query = parse_query(query)
                except QueryError as error:  # told as it is: the parent names the topic as its caller does
                    send.send_bytes(pickle.dumps(_Refused(key, error.reason, error.position)))
                    return
            matcher.add(key, query, text)
        send.send_bytes(pickle.dumps(matcher.wanted(), pickle.HIGHEST_PROTOCOL))
        matched = matcher.match_all(papers)
        send.send_bytes(pickle.dumps(_as_data(matched, len(texts)), pickle.HIGHEST_PROTOCOL))
    except BaseException as error:  # noqa: BLE001  -- told to the parent, which matches this share itself
        send.send_bytes(pickle.dumps(_Failed(f"{type(error).__name__}: {error}")))
    finally:
        send.close()


def _die_with(parent: int) -> None:
    """Have the kernel end this child when its parent dies (Linux). The child holds copies of
    the parent's descriptors, the daemon's leader lock among them: an orphan would keep a
    standby from taking over until it finished."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's close() ends the child
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _as_data(matched: Matched, count: int) -> tuple[list, dict]:
    """Each ranking as (papers, scores, positive terms) or None when empty, and each of those
    terms as (fields, readings, bound): all :class:`ChildTerms` needs to explain them."""
    findings = matched.findings
    described: dict[int, tuple] = {}
    rankings: list[tuple | None] = []
    for key in range(count):
        ranking = matched.rankings[key]
        if not len(ranking):
            rankings.append(None)
            continue
        order, scores, positives = ranking.parts()
        for ref in positives:
            if ref.term not in described:
                described[ref.term] = findings.describe(ref.term)
        rankings.append((order if type(order) is list else list(order), scores, positives))
    return rankings, described
