"""The tables, mirroring the Alembic migrations (a test checks that they agree).

Every module of the store imports its tables from here; nothing else does.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa


class UtcDateTime(sa.types.TypeDecorator):
    """A moment in UTC, read back timezone-aware from every database.

    SQLite keeps no offset and hands back naive datetimes; converting here, once, means
    no code outside the store compares naive with aware times.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


metadata = sa.MetaData()
papers = sa.Table(
    "papers", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("arxiv_id", sa.String(32), nullable=True),
    sa.Column("title_hash", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("abstract", sa.Text, nullable=False, server_default=""),
    sa.Column("authors", sa.JSON, nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("keywords", sa.JSON, nullable=False),
    sa.Column("published", sa.Date, nullable=True),
    sa.Column("first_seen", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # The id a paper was first stored under, when learning its arXiv id re-keyed it since
    # (else NULL): its feed entries keep that id, so feed readers do not show it twice.
    sa.Column("first_id", sa.String(64), nullable=True),
    sa.Index("ix_papers_arxiv_id", "arxiv_id", unique=True),
    sa.Index("ix_papers_title_hash", "title_hash"),
    sa.Index("ix_papers_first_id", "first_id"),
)
paper_links = sa.Table(
    "paper_links", metadata,
    sa.Column("paper_id", sa.String(64), sa.ForeignKey("papers.id"), primary_key=True),
    sa.Column("url", sa.String(2048), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)
listings = sa.Table(
    "listings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("origin", sa.Text, nullable=False, server_default=""),
    sa.Column("ingested_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("source", "date", name="uq_listings_source_date"),
    sa.Index("ix_listings_date", "date"),
)
listing_papers = sa.Table(
    "listing_papers", metadata,
    sa.Column("listing_id", sa.Integer, sa.ForeignKey("listings.id"), primary_key=True),
    sa.Column("paper_id", sa.String(64), sa.ForeignKey("papers.id"), primary_key=True),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Index("ix_listing_papers_paper_id", "paper_id"),
)
subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cadence", sa.String(16), nullable=False),
    sa.Column("send_hour", sa.Integer, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("max_papers", sa.Integer, nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("confirmed_at", UtcDateTime(), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("active_since", UtcDateTime(), nullable=True),  # when they last became active (0011)
    sa.Index("ix_subscribers_email", "email", unique=True),
    sa.Index("ix_subscribers_token", "token", unique=True),
)
topics = sa.Table(
    "topics", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("slug", sa.String(80), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("public", sa.Boolean, nullable=False),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_topics_owner_id", "owner_id"),
    sa.Index("ix_topics_slug", "slug"),
)
subscriber_topics = sa.Table(
    "subscriber_topics", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("topic_id", sa.Integer, sa.ForeignKey("topics.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Index("ix_subscriber_topics_topic_id", "topic_id"),
)
runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("summary", sa.JSON, nullable=True),
    # How a dispatch run delivers ("smtp://host:port", "outbox:/abs/path"): settling a dead
    # run's claims must ask the place it sent to, not wherever the next run sends.
    sa.Column("transport", sa.String(1024), nullable=False, server_default=""),
    sa.Index("ix_runs_started_at", "started_at"),
)
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("slot", sa.Date, nullable=False),
    sa.Column("edition", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("papers", sa.JSON, nullable=False),
    # The papers its "And N more" stood for (NULL before migration 0010: not known).
    sa.Column("left_out", sa.JSON, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("code", sa.Integer, nullable=True),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("claimed_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.UniqueConstraint("subscriber_id", "slot", name="uq_deliveries_subscriber_slot"),
    sa.Index("ix_deliveries_status", "status"),
    # One open (sending or deferred) delivery per reader: two runs never send two slots at once.
    sa.Index("uq_deliveries_one_open", "subscriber_id", unique=True,
             sqlite_where=sa.text("status IN ('sending', 'deferred')"),
             postgresql_where=sa.text("status IN ('sending', 'deferred')")),
)
sent_papers = sa.Table(
    "sent_papers", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("paper_id", sa.String(64), sa.ForeignKey("papers.id"), primary_key=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id"), nullable=False),
    # False: not in the email, but under its "And N more" (offered all the same: never offered again).
    sa.Column("shown", sa.Boolean, nullable=False, server_default=sa.true()),
)
fetch_state = sa.Table(
    "fetch_state", metadata,
    sa.Column("url", sa.String(2048), primary_key=True),
    sa.Column("etag", sa.String(1024), nullable=True),
    sa.Column("last_modified", sa.String(128), nullable=True),
    sa.Column("fetched_at", UtcDateTime(), nullable=False),
)
# One row per counted attempt of a rate limit (a sliding window); ``key`` is a keyed hash
# of the client address or email, never the address itself.
rate_hits = sa.Table(
    "rate_hits", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bucket", sa.String(32), nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("hit_at", sa.Float, nullable=False),  # seconds since the epoch
    sa.Index("ix_rate_hits_bucket_key_hit_at", "bucket", "key", "hit_at"),
    sa.Index("ix_rate_hits_hit_at", "hit_at"),
)
# Preferences a subscribe form asked for a known address: applied only when the
# confirmation link naming the row is clicked.
pending_changes = sa.Table(
    "pending_changes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("preferences", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_pending_changes_subscriber_id", "subscriber_id"),
)
# Signed webhook requests already taken (Mailgun's tokens, SendGrid's timestamp and body), by
# provider and a sha256: the same request sent again is refused. ``seen_at`` is seconds since the epoch.
webhook_tokens = sa.Table(
    "webhook_tokens", metadata,
    sa.Column("provider", sa.String(16), primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),
    sa.Index("ix_webhook_tokens_seen_at", "seen_at"),
)
# Embedding vectors by (model, sha256 of the exact text embedded): papers, topics and sentences
# alike, so changed text re-embeds by itself and another model never reads these. float32 bytes.
vectors = sa.Table(
    "vectors", metadata,
    sa.Column("model_id", sa.String(200), primary_key=True),
    sa.Column("text_sha256", sa.String(64), primary_key=True),
    sa.Column("dimensions", sa.Integer, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)
# What came back about deliveries after they were sent (bounces, complaints), from a bounce
# mailbox or a provider's webhook; ``reference`` (unique) names the event where it came from.
bounce_events = sa.Table(
    "bounce_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reference", sa.String(200), nullable=False, unique=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id"), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default=""),
    sa.Column("diagnostic", sa.Text, nullable=False, server_default=""),
    sa.Column("recipient", sa.String(320), nullable=False, server_default=""),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Index("ix_bounce_events_subscriber_received", "subscriber_id", "received_at"),
    sa.Index("ix_bounce_events_received_at", "received_at"),
)
# Every table with a paper_id column: re-keying a paper (title id -> arXiv id) updates them all.
PAPER_REFERENCES = (paper_links, listing_papers, sent_papers)
