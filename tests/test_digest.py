"""Choosing a reader's papers: each once under its best topic, never twice, capped, best first."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from paperwire.digest import Placement, build_digest, first_listed, window, without_last
from paperwire.models import Paper, Subscriber, Topic

DAY = dt.date(2024, 3, 11)


class Hit(NamedTuple):
    term: str
    field: str
    spans: tuple


class Found(NamedTuple):
    paper_id: str
    score: float
    terms: tuple


class Ranking(list):
    """What the matcher hands back, reduced to what digests read."""

    def paper_ids(self):
        return [m.paper_id for m in self]

    def scores(self):
        return [m.score for m in self]


def reader(**kwargs) -> Subscriber:
    topics = [Topic("Scaling", "scaling laws"), Topic("MoE", "MoE"), Topic("Everything", "*")]
    return Subscriber(email="ada@example.org", topics=topics, token="tok", **kwargs)


PAPERS = {f"p{i}": Paper(id=f"p{i}", title=f"Paper {i}") for i in range(1, 8)}
PLACES = {f"p{i}": Placement(DAY, i) for i in range(1, 8)}


def rankings(lists):
    """Best first, as the matcher sorts: score descending, then listing rank."""
    return [Ranking(sorted(found, key=lambda m: (-m.score, PLACES[m.paper_id].rank))) for found in lists]


def found(pid: str, score: float, term: str = "x") -> Found:
    return Found(pid, score, (Hit(term, "title", ((0, 5),)),))


def test_each_paper_once_under_its_best_topic_tagged_with_all():
    matches = [[found("p1", 3.0, "scaling laws"), found("p2", 1.0)], [found("p1", 5.0, "MoE")],
               [found(p, 0.0) for p in PAPERS]]
    digest = build_digest(reader(), rankings(matches), PAPERS, PLACES, edition=DAY)
    assert digest.papers == 7
    by_topic = {s.topic.name: [i.paper.id for i in s.items] for s in digest.sections}
    assert by_topic == {"Scaling": ["p2"], "MoE": ["p1"], "Everything": ["p3", "p4", "p5", "p6", "p7"]}
    p1 = next(i for s in digest.sections for i in s.items if i.paper.id == "p1")
    assert p1.topics == ("MoE", "Scaling", "Everything") and p1.hits[0].term == "MoE"
    assert [s.topic.name for s in digest.sections] == ["Scaling", "MoE", "Everything"]  # reader's order


def test_cap_keeps_the_best_and_counts_the_rest():
    matches = [[found(p, float(i)) for i, p in enumerate(PAPERS)], [], []]
    digest = build_digest(reader(max_papers=3), rankings(matches), PAPERS, PLACES, edition=DAY)
    assert [i.paper.id for s in digest.sections for i in s.items] == ["p7", "p6", "p5"]
    assert digest.more == 4 and digest.more_from == "p4"  # the "and 4 more" link opens the archive there


def test_and_n_more_opens_the_archive_at_the_first_paper_not_shown_there():
    """The archive lists every match topic by topic: "And N more" must not open it below a
    paper of an earlier topic that the email did not show (p2, under Scaling)."""
    matches = [[found("p2", 0.5)], [found("p1", 5.0), found("p3", 4.0), found("p4", 1.0)], []]
    digest = build_digest(reader(max_papers=2), rankings(matches), PAPERS, PLACES, edition=DAY)
    assert [i.paper.id for s in digest.sections for i in s.items] == ["p1", "p3"]
    assert digest.more == 2 and digest.more_from == "p2"  # not p4, the better of the two, listed under MoE


def test_papers_moved_into_and_n_more_for_size_open_it_at_the_first_of_them_in_the_archive():
    matches = [[found("p2", 0.5)], [found("p1", 5.0), found("p3", 4.0), found("p4", 1.0)], []]
    digest = without_last(build_digest(reader(), rankings(matches), PAPERS, PLACES, edition=DAY), 2)
    assert [i.paper.id for s in digest.sections for i in s.items] == ["p1", "p3"]
    assert digest.more == 2 and digest.more_from == "p2"


def test_a_digest_over_several_days_starts_at_the_first_day_with_a_listing():
    """A weekly digest's window is seven days, but "the listings from ... to ..." names only
    days that had one: with the edition's listing alone it is that day's."""
    week = DAY - dt.timedelta(days=6)
    assert first_listed([DAY], week, DAY) == DAY
    assert first_listed([DAY - dt.timedelta(days=9), DAY - dt.timedelta(days=3), DAY], week, DAY) == DAY - dt.timedelta(days=3)
    assert first_listed([], week, DAY) == DAY
    matches = [[found("p1", 1.0)], [], []]
    weekly = reader(cadence="weekly:mon")
    assert build_digest(weekly, rankings(matches), PAPERS, PLACES, edition=DAY, first_date=DAY).first_date is None
    assert build_digest(weekly, rankings(matches), PAPERS, PLACES, edition=DAY, first_date=week).first_date == week


def test_ties_go_to_the_trending_rank():
    matches = [[found("p5", 1.0), found("p2", 1.0), found("p3", 1.0)], [], []]
    digest = build_digest(reader(), rankings(matches), PAPERS, PLACES, edition=DAY)
    assert [i.paper.id for i in digest.sections[0].items] == ["p2", "p3", "p5"]


def test_already_sent_and_out_of_window_papers_are_skipped():
    places = dict(PLACES, p2=Placement(DAY - dt.timedelta(days=1), 2))
    matches = [[found("p1", 2.0), found("p2", 2.0), found("p3", 2.0)], [], []]
    digest = build_digest(reader(), rankings(matches), PAPERS, places, edition=DAY, already_sent={"p3"})
    assert [i.paper.id for s in digest.sections for i in s.items] == ["p1"]


def test_no_match_gives_an_empty_digest():
    digest = build_digest(reader(), rankings([[], [], []]), PAPERS, PLACES, edition=DAY)
    assert digest.papers == 0 and digest.sections == () and digest.more == 0


def test_windows():
    daily, weekly = reader(), reader(cadence="weekly:mon")
    assert window(daily, DAY, None) == (DAY, DAY)
    assert window(weekly, DAY, None) == (DAY - dt.timedelta(days=6), DAY)
    assert window(daily, DAY, DAY - dt.timedelta(days=3)) == (DAY - dt.timedelta(days=2), DAY)
    assert window(daily, DAY, DAY) == (DAY, DAY)
    # Catching up goes back a week at most: the papers a run reads (pipeline.plan_digests).
    assert window(daily, DAY, DAY - dt.timedelta(days=30)) == (DAY - dt.timedelta(days=6), DAY)
    assert window(weekly, DAY, DAY - dt.timedelta(days=30)) == (DAY - dt.timedelta(days=6), DAY)
