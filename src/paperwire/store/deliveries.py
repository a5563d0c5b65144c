"""Delivery records: the exactly-once bookkeeping of sending, and the runs that send.

A delivery (reader, slot) is claimed in a committed transaction before the message is
handed to the mail server, and marked when the server answered. The unique (reader, slot)
key is what keeps two runs from both sending to one reader; a claim left behind by a dead
run is "unknown": reported, never silently re-sent. Claims and answers go in chunks
(``delivery_chunk``), each chunk a fixed handful of statements whatever its size: per-message
statements were most of a send's CPU (bench/README.md, "Scale").
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..models import Offered
from .base import _chunks, _now, insert_unless_taken
from .schema import deliveries, papers, runs, sent_papers, subscribers

# Delivery states. "deferred" (temporary failure) is claimed again by the next run.
SENDING, SENT, FAILED, DEFERRED, UNKNOWN = "sending", "sent", "failed", "deferred", "unknown"
# Our own code raised while matching, rendering, building or signing the reader's digest:
# nothing was handed to the server. It settles nothing (the next run tries the reader again,
# so a bug fixed later lets them have their digest) and never counts towards "bouncing",
# which is for addresses the server refuses.
ERROR = "error"
DIED_SENDING = "the run sending this stopped before the server answered; it may or may not have arrived"
# A slot that was due but had nothing new for the reader: settled, so it is not planned
# again every few minutes; what is new to them is what no digest offered (digest.unoffered_since).
EMPTY = "empty"
# A reader whose last this-many deliveries the server refused (5xx) is marked bouncing.
BOUNCE_AFTER = 3


# The statements run per chunk of messages or batch of readers, built once (expanding INs).
# What a reader left unsettled that a new claim replaces: error notes and a deferred delivery.
_UNSETTLED = sa.select(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.status, deliveries.c.slot).where(
    deliveries.c.subscriber_id.in_(sa.bindparam("readers", expanding=True)),
    deliveries.c.status.in_([ERROR, DEFERRED]))
_CLAIMED = sa.select(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.papers, deliveries.c.left_out,
                     deliveries.c.attempts).where(
    deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
_ANSWER = deliveries.update().where(deliveries.c.id == sa.bindparam("answer_id")).values(
    status=sa.bindparam("answer_status"), attempts=sa.bindparam("answer_attempts"), code=sa.bindparam("answer_code"),
    detail=sa.bindparam("answer_detail"), finished_at=sa.bindparam("answer_finished_at"))
_SENT_ALREADY = sa.select(sent_papers.c.subscriber_id, sent_papers.c.paper_id).where(
    sent_papers.c.subscriber_id.in_(sa.bindparam("readers", expanding=True)),
    sent_papers.c.paper_id.in_(sa.bindparam("papers", expanding=True)))


# SQLSTATEs of a transaction PostgreSQL ended because it raced another: a deadlock, or a
# serialization failure. Nothing was written; taken again one claim a transaction, it succeeds.
_RACE_SQLSTATES = {"40P01", "40001"}


def _lost_a_race(error: sa.exc.OperationalError) -> bool:
    return getattr(error.orig, "sqlstate", None) in _RACE_SQLSTATES


@dataclass(frozen=True)
class Claim:
    """A message about to be handed over: the reader and slot it settles, and what it is."""

    subscriber_id: int
    slot: dt.date
    edition: str
    message_id: str
    paper_ids: tuple[str, ...]
    left_out: tuple[str, ...]  # the papers under its "And N more" (offered too: never offered again)


def _ids_now(conn: sa.Connection, paper_ids: set[str]) -> dict[str, str]:
    """The id each of these papers has now: a paper re-keyed to its arXiv id while its digest
    was out (claimed, not yet answered) is recorded under that id, and one gone is not."""
    found: dict[str, str] = {}
    for chunk in _chunks(sorted(paper_ids)):
        for paper_id, first_id in conn.execute(sa.select(papers.c.id, papers.c.first_id).where(
                sa.or_(papers.c.id.in_(chunk), papers.c.first_id.in_(chunk)))):
            found[paper_id] = paper_id
            if first_id in paper_ids:
                found.setdefault(first_id, paper_id)
    return found


def _delete_deliveries(conn: sa.Connection, ids: Sequence[int] | sa.Select) -> None:
    """Delete these deliveries (ids, or a query of them) with the papers they recorded as
    offered; those rows point at their delivery, so they go first."""
    conn.execute(sent_papers.delete().where(sent_papers.c.delivery_id.in_(ids)))
    conn.execute(deliveries.delete().where(deliveries.c.id.in_(ids)))


def _claimed_values(claim: Claim, run_id: str, now: dt.datetime) -> dict:
    """The columns a claim sets on its delivery, new or taken over."""
    return {"slot": claim.slot, "edition": claim.edition, "status": SENDING, "run_id": run_id,
            "message_id": claim.message_id, "papers": list(claim.paper_ids), "left_out": list(claim.left_out),
            "claimed_at": now, "finished_at": None}


@dataclass(frozen=True)
class Answer:
    """What the server said about one claimed message."""

    delivery_id: int
    status: str
    attempts: int
    code: int | None
    detail: str


@dataclass(frozen=True)
class ReaderHistory:
    """What scheduling and digest selection need to know about a reader's past."""

    last_slot: dt.date | None  # the newest slot that is settled (sent, failed, unknown) or in flight
    last_edition: dt.date | None  # the newest edition sent (or unknown: it may have arrived)
    first_slot: dt.date | None = None  # the oldest slot settled or in flight


@dataclass(frozen=True)
class RunInfo:
    id: str
    kind: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    summary: dict | None
    # What tells whether an unfinished run is still alive (runs.run_is_dead).
    pid: int
    host: str
    heartbeat_at: dt.datetime


class DeliveryStore:
    """Mixin of Store: runs, deliveries and the papers each reader was sent."""

    engine: Engine

    # -- runs --------------------------------------------------------------------

    def start_run(self, kind: str, transport: str = "") -> str:
        run_id = uuid.uuid4().hex
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(runs.insert().values(id=run_id, kind=kind, pid=os.getpid(), host=socket.gethostname()[:255],
                                              started_at=now, heartbeat_at=now, transport=transport[:1024]))
        return run_id

    def heartbeat(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(heartbeat_at=_now()))

    def finish_run(self, run_id: str, summary: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(finished_at=_now(), summary=summary))

    def note_run(self, kind: str, summary: dict) -> str:
        """A run that is over as soon as it starts (a failed web mail): shown by `paperwire status`."""
        run_id = uuid.uuid4().hex
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(runs.insert().values(id=run_id, kind=kind, pid=os.getpid(), host=socket.gethostname()[:255],
                                              started_at=now, heartbeat_at=now, finished_at=now, summary=summary))
        return run_id

    def recent_runs(self, limit: int | None = 10, *, kind: str | None = None, since: dt.datetime | None = None,
                    finished: bool = False) -> list[RunInfo]:
        """The newest runs first (``limit`` None: all); only of ``kind``, started at or after
        ``since``, or ``finished`` ones if asked."""
        query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        if since is not None:
            query = query.where(runs.c.started_at >= since)  # times are kept to the second
        if finished:
            query = query.where(runs.c.finished_at.is_not(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query)
            return [RunInfo(r.id, r.kind, r.started_at, r.finished_at, r.summary, r.pid, r.host, r.heartbeat_at)
                    for r in rows]

    # -- claims and outcomes -----------------------------------------------------

    def runs_with_claims(self) -> list[dict]:
        """Runs that still hold claims in flight, with what tells whether they are alive."""
        query = (sa.select(runs.c.id, runs.c.pid, runs.c.host, runs.c.heartbeat_at, runs.c.finished_at,
                           runs.c.transport)
                 .where(runs.c.id.in_(sa.select(deliveries.c.run_id).where(deliveries.c.status == SENDING))))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def expire_claims(self, run_ids: Sequence[str], subscriber_ids: Sequence[int] | None = None
                      ) -> list[tuple[int, str, dt.date, str, str]]:
        """Mark the in-flight claims of dead runs unknown (only those of ``subscriber_ids`` if given: a
        worker's batch); returns (delivery id, email, slot, run transport, Message-ID).

        Unknown deliveries are reported and never sent again on their own: the server
        may have accepted the message just before the run died. The caller asks the place
        the run delivered to and settles each: an answer (``record_outcome``), sent or
        unknown (its papers then count as offered), or ``forget`` (surely not there). The
        claims are locked while read (PostgreSQL), so of several runs settling at once each
        claim goes to one of them.
        """
        if not run_ids:
            return []
        query = (sa.select(deliveries.c.id, subscribers.c.email, deliveries.c.slot, runs.c.transport,
                           deliveries.c.message_id)
                 .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                 .join(runs, runs.c.id == deliveries.c.run_id)
                 .where(deliveries.c.status == SENDING, deliveries.c.run_id.in_(list(run_ids)))
                 .with_for_update(of=deliveries))
        if subscriber_ids is not None:
            query = query.where(deliveries.c.subscriber_id.in_(list(subscriber_ids)))
        with self.engine.begin() as conn:
            found = conn.execute(query).all()
            for chunk in _chunks([row.id for row in found]):
                conn.execute(deliveries.update().where(deliveries.c.id.in_(chunk)).values(
                    status=UNKNOWN, finished_at=_now(), detail=DIED_SENDING))
        return [(row.id, row.email, row.slot, row.transport, row.message_id) for row in found]

    def claim(self, subscriber_id: int, slot: dt.date, edition: str, run_id: str, message_id: str,
              paper_ids: Sequence[str], left_out: Sequence[str] = ()) -> int | None:
        """Take (reader, slot) for this run; None when another run has the reader or the slot is settled.

        One claim of :meth:`claim_many`."""
        return self.claim_many([Claim(subscriber_id, slot, edition, message_id, tuple(paper_ids), tuple(left_out))],
                               run_id)[0]

    def claim_many(self, claims: Sequence[Claim], run_id: str) -> list[int | None]:
        """Take each (reader, slot) for this run, all in ONE transaction of a few statements (a
        commit per chunk of messages, and no statement per message); each is its delivery id, or
        None when another run has the reader or the slot is settled.

        The reader's deferred delivery (temporary failure last time), whatever its slot,
        is taken over and moved to the new slot: one digest with everything owed, never an
        old slot and a new one in a burst. The partial unique index lets a reader have
        only one open (sending or deferred) delivery, so two runs cannot both send. A reader
        is tried once per chunk, at their first claim in it (a run builds one digest per reader);
        their later claims in the chunk get None. An "error" note of an earlier attempt at this
        slot (or an older one) is superseded. Nothing in the transaction is expected to raise
        (the insert is ON CONFLICT DO NOTHING, the take-over only moves a deferred delivery to a
        free slot); should another run commit a row at one of these slots meanwhile, or lock
        two of these readers in the other order (PostgreSQL then ends one transaction as
        deadlocked: the take-overs come before the insert, not in the chunk's order), the chunk
        is taken one claim a transaction instead.
        """
        try:
            with self.engine.begin() as conn:
                return self._claim_chunk(conn, claims, run_id, _now())
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as error:
            if isinstance(error, sa.exc.OperationalError) and not _lost_a_race(error):
                raise
            if len(claims) == 1:
                return [None]
            return [self.claim_many([claim], run_id)[0] for claim in claims]

    def _claim_chunk(self, conn: sa.Connection, claims: Sequence[Claim], run_id: str, now: dt.datetime
                     ) -> list[int | None]:
        """The claims of :meth:`claim_many`: one look at what the readers left unsettled (error
        notes, deferred deliveries: usually nothing), then one INSERT for the chunk."""
        first = {}  # reader -> the index of their claim; a reader's later claims in the chunk get None
        for index, claim in enumerate(claims):
            first.setdefault(claim.subscriber_id, index)
        unsettled = [row for chunk in _chunks(list(first)) for row in conn.execute(_UNSETTLED, {"readers": chunk})]
        stale_notes = [row.id for row in unsettled
                       if row.status == ERROR and row.slot <= claims[first[row.subscriber_id]].slot]
        for chunk in _chunks(stale_notes):
            conn.execute(deliveries.delete().where(deliveries.c.id.in_(chunk)))
        deferred = {row.subscriber_id for row in unsettled if row.status == DEFERRED}
        ids: dict[int, int | None] = {}
        for reader in deferred:  # rare: a temporary failure last time
            ids[reader] = self._take_over(conn, claims[first[reader]], run_id, now)
        fresh = [claims[index] for reader, index in first.items() if ids.get(reader) is None]
        if fresh:
            # Many rows, one statement (SQLAlchemy's "insertmanyvalues"), its SQL compiled once per process.
            inserted = conn.execute(insert_unless_taken(conn, deliveries).returning(
                deliveries.c.subscriber_id, deliveries.c.id), [
                {"subscriber_id": claim.subscriber_id, "attempts": 0, "detail": "",
                 **_claimed_values(claim, run_id, now)} for claim in fresh])
            ids.update({row.subscriber_id: row.id for row in inserted})
        return [ids.get(claim.subscriber_id) if first[claim.subscriber_id] == index else None
                for index, claim in enumerate(claims)]

    @staticmethod
    def _take_over(conn: sa.Connection, claim: Claim, run_id: str, now: dt.datetime) -> int | None:
        """Move the reader's deferred delivery (of this slot or an older one) to the claim,
        unless the claim's slot is settled already; its id, or None if nothing was moved."""
        other = deliveries.alias("other")
        slot_settled = sa.exists().where(other.c.subscriber_id == claim.subscriber_id, other.c.slot == claim.slot,
                                         other.c.status != DEFERRED)
        taken = conn.execute(deliveries.update().where(
            deliveries.c.subscriber_id == claim.subscriber_id, deliveries.c.status == DEFERRED,
            deliveries.c.slot <= claim.slot, ~slot_settled).values(**_claimed_values(claim, run_id, now)))
        if not taken.rowcount:
            return None
        return conn.execute(sa.select(deliveries.c.id).where(
            deliveries.c.subscriber_id == claim.subscriber_id, deliveries.c.slot == claim.slot)).scalar_one()

    def record_error(self, subscriber_id: int, slot: dt.date, edition: str, run_id: str, detail: str) -> int | None:
        """Note that building this reader's digest for ``slot`` raised: nothing was sent.

        Returns how many runs have now failed at this slot (the note's ``attempts``), so the
        caller can tell a new fault from one already reported; None when another run holds
        the reader or settled the slot. One transaction, so a crash can never leave a claim
        behind that looks in flight. A deferred digest of the reader becomes this note (it is
        re-rendered next time anyway).
        """
        values = {"slot": slot, "edition": edition, "status": ERROR, "run_id": run_id, "message_id": "",
                  "papers": [], "code": None, "detail": detail[:2000], "claimed_at": _now(), "finished_at": _now()}
        try:
            with self.engine.connect() as conn, conn.begin() as transaction:
                before = conn.execute(sa.select(deliveries.c.attempts).where(
                    deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == ERROR,
                    deliveries.c.slot == slot)).scalar()
                values["attempts"] = (before or 0) + 1
                self._drop_error_notes(conn, subscriber_id, slot)
                taken = conn.execute(deliveries.update().where(
                    deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == DEFERRED,
                    deliveries.c.slot <= slot).values(**values))
                if not taken.rowcount and conn.execute(insert_unless_taken(conn, deliveries).values(
                        subscriber_id=subscriber_id, **values).returning(deliveries.c.id)).first() is None:
                    transaction.rollback()  # the slot is taken: change nothing
                    return None
            return values["attempts"]
        except sa.exc.IntegrityError:
            return None

    @staticmethod
    def _drop_error_notes(conn, subscriber_id: int, slot: dt.date) -> None:
        conn.execute(deliveries.delete().where(deliveries.c.subscriber_id == subscriber_id,
                                               deliveries.c.status == ERROR, deliveries.c.slot <= slot))

    def record_empty(self, subscriber_id: int, slot: dt.date, edition: str, run_id: str) -> bool:
        """Settle a due slot that had nothing new; False when another run settled it first."""
        try:
            with self.engine.connect() as conn, conn.begin() as transaction:
                conn.execute(deliveries.delete().where(deliveries.c.subscriber_id == subscriber_id,
                                                       deliveries.c.status.in_([DEFERRED, ERROR]),
                                                       deliveries.c.slot <= slot))
                if conn.execute(insert_unless_taken(conn, deliveries).values(
                        subscriber_id=subscriber_id, slot=slot, edition=edition, status=EMPTY, run_id=run_id,
                        message_id="", papers=[], left_out=[], attempts=0, detail="nothing new for this reader",
                        claimed_at=_now(), finished_at=_now()).returning(deliveries.c.id)).first() is None:
                    transaction.rollback()  # settled by another run: change nothing
                    return False
            return True
        except sa.exc.IntegrityError:
            return False

    def record_outcome(self, delivery_id: int, status: str, *, attempts: int, code: int | None, detail: str,
                       give_up_after: int | None = None) -> str:
        """The server's answer; returns the status recorded. One answer of :meth:`record_outcomes`."""
        return self.record_outcomes([Answer(delivery_id, status, attempts, code, detail)], give_up_after)[0]

    def record_outcomes(self, answers: Sequence[Answer], give_up_after: int | None = None) -> list[str]:
        """The server's answers, all in ONE transaction of a few statements (not a few per
        answer); returns each status recorded.

        A sent digest (or one whose fate is unknown) also records its papers, in the same transaction. A deferred one
        whose attempts over all runs reach ``give_up_after`` is recorded as failed, so a
        mailbox that stays full cannot keep a reader retried every few minutes forever.
        """
        if not answers:
            return []
        with self.engine.begin() as conn:
            claimed = {row.id: row for chunk in _chunks([answer.delivery_id for answer in answers])
                       for row in conn.execute(_CLAIMED, {"ids": chunk})}
            statuses, changes = [], []
            attempts = {delivery: row.attempts for delivery, row in claimed.items()}  # two answers for one add up
            for answer in answers:
                status, detail = answer.status, answer.detail
                total = attempts[answer.delivery_id] = attempts[answer.delivery_id] + answer.attempts
                if status == DEFERRED and give_up_after is not None and total >= give_up_after:
                    status, detail = FAILED, f"gave up after {total} attempts over several runs: {detail}"
                statuses.append(status)
                changes.append({"answer_id": answer.delivery_id, "answer_status": status, "answer_attempts": total,
                                "answer_code": answer.code, "answer_detail": detail[:2000],
                                "answer_finished_at": _now()})
            conn.execute(_ANSWER, changes)
            # A digest whose fate is unknown may have arrived: its papers count as offered, as sent ones do.
            sent = [claimed[answer.delivery_id] for answer, status in zip(answers, statuses) if status in (SENT, UNKNOWN)]
            self._record_sent_papers(conn, sent)
            for reader in dict.fromkeys(claimed[answer.delivery_id].subscriber_id
                                        for answer, status in zip(answers, statuses) if status == FAILED):
                self._mark_bouncing_if_failing(conn, reader)
        return statuses

    @staticmethod
    def _record_sent_papers(conn: sa.Connection, sent: Sequence) -> None:
        """The papers these sent (or unknown) deliveries offered, shown or under "And N more", so
        a digest never offers one again; a (reader, paper) already there is kept as it is."""
        rows: dict[tuple[int, str], dict] = {}
        now_known = _ids_now(conn, {paper for row in sent for paper in (*row.papers, *(row.left_out or ()))})
        for row in sent:
            for offered, shown in ((row.papers, True), (row.left_out or (), False)):
                for paper in filter(None, map(now_known.get, offered)):
                    rows.setdefault((row.subscriber_id, paper), {"subscriber_id": row.subscriber_id, "paper_id": paper,
                                                                 "delivery_id": row.id, "shown": shown})
        if rows:
            conn.execute(insert_unless_taken(conn, sent_papers), list(rows.values()))

    def forget_unknown(self, subscriber_id: int) -> list[dt.date]:
        """Forget the reader's deliveries whose fate is unknown, and the papers they recorded as
        offered: their operator found that they never arrived (``send --resend-unknown``).
        Their slots are owed again and their papers new to the reader. Returns the slots."""
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(deliveries.c.id, deliveries.c.slot).where(
                deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == UNKNOWN)).all()
            if found:
                _delete_deliveries(conn, [row.id for row in found])
        return sorted(row.slot for row in found)

    def forget(self, delivery_id: int) -> None:
        """Give back a claim whose message was never handed over (dry run, stop before sending),
        with the papers it recorded as offered if another run settled it unknown meanwhile."""
        with self.engine.begin() as conn:
            _delete_deliveries(conn, sa.select(deliveries.c.id).where(
                deliveries.c.id == delivery_id, deliveries.c.status.in_([SENDING, UNKNOWN])))

    @staticmethod
    def _mark_bouncing_if_failing(conn, subscriber_id: int) -> None:
        last = conn.execute(sa.select(deliveries.c.status, deliveries.c.code).where(
            deliveries.c.subscriber_id == subscriber_id, deliveries.c.status.not_in([EMPTY, ERROR]))
            .order_by(deliveries.c.slot.desc()).limit(BOUNCE_AFTER)).all()
        # Only the server's own refusals (5xx) tell of the address: a failure with no code
        # (our relay lacks SMTPUTF8, the outbox has another file of that name) is ours.
        if len(last) == BOUNCE_AFTER and all(row.status == FAILED and 500 <= (row.code or 0) < 600 for row in last):
            conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id, subscribers.c.status == "active")
                         .values(status="bouncing", updated_at=_now()))

    # -- what the next run needs ---------------------------------------------------

    def histories(self, subscriber_ids: Iterable[int]) -> dict[int, ReaderHistory]:
        """Each reader's newest settled-or-claimed slot and newest sent (or unknown) edition.

        Deferred and error deliveries settle nothing: their slot is still owed."""
        ids = list(subscriber_ids)
        slots: dict[int, dt.date] = {}
        first: dict[int, dt.date] = {}
        editions: dict[int, dt.date] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                query = (sa.select(deliveries.c.subscriber_id, deliveries.c.status, sa.func.max(deliveries.c.slot),
                                   sa.func.max(deliveries.c.edition), sa.func.min(deliveries.c.slot))
                         .where(deliveries.c.subscriber_id.in_(chunk),
                                deliveries.c.status.not_in([DEFERRED, ERROR]))
                         .group_by(deliveries.c.subscriber_id, deliveries.c.status))
                for subscriber_id, status, slot, edition, oldest in conn.execute(query):
                    slots[subscriber_id] = max(slot, slots.get(subscriber_id, slot))
                    first[subscriber_id] = min(oldest, first.get(subscriber_id, oldest))
                    if status in (SENT, UNKNOWN):  # unknown: it may have arrived, and offered its papers
                        edition = dt.date.fromisoformat(edition)
                        editions[subscriber_id] = max(edition, editions.get(subscriber_id, edition))
        return {i: ReaderHistory(slots.get(i), editions.get(i), first.get(i)) for i in ids}

    def offered(self, subscriber_ids: Sequence[int], *, before: dt.date,
                since: dt.date | None = None) -> dict[int, Offered]:
        """When the digests dated before ``before`` (in slots from ``since`` on, when given: a
        run's look back, read by the index) offered these readers papers: their first edition
        (an empty slot counts: its listing was looked at for them), their newest sent (or
        unknown: it may have arrived), and the newest such before "And N more" was recorded.
        Readers with none are absent."""
        # The status is checked here, not in SQL: SQLite would then read every delivery by the
        # status index instead of these readers' own by theirs (6 s for 20,000 readers, not 0.2).
        query = sa.select(
            deliveries.c.subscriber_id, deliveries.c.status, sa.func.min(deliveries.c.edition),
            sa.func.max(deliveries.c.edition),
            sa.func.max(sa.case((deliveries.c.left_out.is_(None), deliveries.c.edition))),
        ).where(deliveries.c.subscriber_id.in_(sa.bindparam("readers", expanding=True)),
                deliveries.c.edition < before.isoformat(),
                *([deliveries.c.slot >= since] if since is not None else [])
                ).group_by(deliveries.c.subscriber_id, deliveries.c.status)
        first: dict[int, str] = {}
        last: dict[int, str] = {}
        dated: dict[int, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(subscriber_ids))):
                for reader, status, oldest, newest, unrecorded in conn.execute(query, {"readers": chunk}):
                    if status not in (SENT, UNKNOWN, EMPTY):
                        continue
                    first[reader] = min(oldest, first.get(reader, oldest))
                    if status != EMPTY:  # sent, or may have arrived (unknown): it offered its papers
                        last[reader] = max(newest, last.get(reader, newest))
                        if unrecorded:
                            dated[reader] = max(unrecorded, dated.get(reader, unrecorded))
        day = dt.date.fromisoformat
        return {reader: Offered(day(edition), day(last[reader]) if reader in last else None,
                                day(dated[reader]) if reader in dated else None) for reader, edition in first.items()}

    def edition_counts(self, subscriber_ids: Sequence[int], edition: dt.date) -> dict[int, int]:
        """How many digests of ``edition`` each reader was sent (or unknown: it may have arrived),
        for the number of their next one (``Digest.part``). Readers with none are absent."""
        query = sa.select(deliveries.c.subscriber_id, deliveries.c.status, sa.func.count()).where(
            deliveries.c.subscriber_id.in_(sa.bindparam("readers", expanding=True)),
            deliveries.c.edition == edition.isoformat()).group_by(deliveries.c.subscriber_id, deliveries.c.status)
        found: dict[int, int] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(subscriber_ids))):
                for reader, status, count in conn.execute(query, {"readers": chunk}):
                    if status in (SENT, UNKNOWN):  # checked here, as in ``offered``
                        found[reader] = found.get(reader, 0) + count
        return found

    def edition_offers(self, subscriber_id: int, edition: dt.date) -> list[set[str]]:
        """The papers each digest of ``edition`` sent to the reader (or unknown) offered, shown
        or under "And N more", in the order they went out: the archive page of one of them
        leaves out what the others offered."""
        query = (sa.select(deliveries.c.id, sent_papers.c.paper_id)
                 .select_from(deliveries.outerjoin(sent_papers, sent_papers.c.delivery_id == deliveries.c.id))
                 .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.edition == edition.isoformat(),
                        deliveries.c.status.in_([SENT, UNKNOWN]))
                 .order_by(deliveries.c.slot))
        offers: dict[int, set[str]] = {}
        with self.engine.connect() as conn:
            for delivery_id, paper_id in conn.execute(query):
                offers.setdefault(delivery_id, set()).update([paper_id] if paper_id else [])
        return list(offers.values())

    def deferred_slots(self, subscriber_ids: Iterable[int]) -> dict[int, dt.date]:
        """Slots whose last attempt failed temporarily: the next run tries them again."""
        found: dict[int, dt.date] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(subscriber_ids)):
                query = sa.select(deliveries.c.subscriber_id, deliveries.c.slot).where(
                    deliveries.c.subscriber_id.in_(chunk), deliveries.c.status == DEFERRED)
                found.update({row.subscriber_id: row.slot for row in conn.execute(query)})
        return found

    def sent_papers_among(self, paper_ids: Sequence[str], subscriber_ids: Sequence[int], *,
                          before: dt.date | None = None, shown_only: bool = False) -> dict[int, set[str]]:
        """Which of these papers each of these readers was offered already, shown or under an
        "And N more" (``shown_only``: shown), so a digest never offers one again; with
        ``before``, only by digests dated before that edition (what its digest left out, as
        its archive page does too). Looked up by reader (the table's key): a batch of readers
        reads its own rows, not those of every reader ever offered these papers."""
        query = _SENT_ALREADY
        if shown_only:
            query = query.where(sent_papers.c.shown)
        if before is not None:
            query = query.join_from(sent_papers, deliveries, deliveries.c.id == sent_papers.c.delivery_id).where(
                deliveries.c.edition < before.isoformat())
        found: dict[int, set[str]] = {}
        papers = sorted(set(paper_ids))
        with self.engine.connect() as conn:
            for readers in _chunks(sorted(set(subscriber_ids))):
                for papers_chunk in _chunks(papers):
                    for subscriber_id, paper_id in conn.execute(query, {"readers": readers, "papers": papers_chunk}):
                        found.setdefault(subscriber_id, set()).add(paper_id)
        return found

    def handed_over_since(self, since: dt.datetime) -> list[dt.datetime]:
        """When messages were last handed to the mail server (sent, failed or unknown), newest
        first: the hourly rate limit counts them whichever run or process sent them."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(deliveries.c.finished_at).where(
                deliveries.c.finished_at >= since, deliveries.c.status.in_([SENT, FAILED, UNKNOWN]))
                .order_by(deliveries.c.finished_at.desc()))
            return [row.finished_at for row in rows]

    def delivery_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(deliveries.c.status, sa.func.count()).group_by(deliveries.c.status))
            return {status: count for status, count in rows}

    def unknown_deliveries(self, limit: int) -> list[tuple[str, dt.date]]:
        """The newest ``limit`` deliveries whose fate is unknown: (reader's email, slot)."""
        with self.engine.connect() as conn:
            return [(row.email, row.slot) for row in conn.execute(
                sa.select(subscribers.c.email, deliveries.c.slot).join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.status == UNKNOWN).order_by(deliveries.c.slot.desc(), deliveries.c.id.desc()).limit(limit))]

    def deliveries_of(self, email: str) -> list[dict]:
        """A reader's delivery history, newest first (for status and for tests)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries).join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(subscribers.c.email == email).order_by(deliveries.c.slot.desc()))
            return [dict(row._mapping) for row in rows]
