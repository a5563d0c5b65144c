"""One Settings object, built in layers: defaults -> paperwire.toml -> PAPERWIRE_* -> flags.

Each setting has one dotted key (``db``, later ``smtp.host``). The same key is the
TOML key (tables give the dots), the environment variable (``PAPERWIRE_`` plus the
key upper-cased with ``_`` for dots) and the field name (``_`` for dots). Every value
is converted and checked where it enters, so an error names the key and the exact
source it came from.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import addresses, redact
from .errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE_NAME = "paperwire.toml"
# What ships inside the package: templates/ (email, index, web pages and their static files),
# and the demo's seeds/ and examples/. In a checkout these are symlinks to the top-level
# folders; a wheel holds copies. Resolved, so paths in messages name the files people edit.
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_TEMPLATES = (PACKAGE_DIR / "templates").resolve()  # the templates_dir setting overrides it
ENV_PREFIX = "PAPERWIRE_"
# The largest listing read, from a file or a URL (the max_listing_bytes setting): a day's
# listing is well under 1 MB, and ingest holds a file in memory several times over.
MAX_LISTING_BYTES = 20 * 1024 * 1024
# Signs web links when no PAPERWIRE_SECRET_KEY is set; `paperwire serve` refuses it unless --dev.
DEV_SECRET_KEY = "paperwire-development-secret-not-for-production"


def _as_db_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a SQLAlchemy database URL such as sqlite:///out/paperwire.sqlite3")
    try:
        make_url(value.strip())
    except ArgumentError as exc:
        raise ValueError(f"not a SQLAlchemy database URL ({exc})") from None
    return value.strip()


def _as_path(value: Any) -> Path:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ValueError("expected a path")
    try:
        return Path(str(value).strip()).expanduser()  # "~/templates", as a shell would read it
    except RuntimeError as exc:  # "~nosuchuser/..."
        raise ValueError(str(exc)) from None


def _as_acronyms(value: Any) -> dict[str, tuple[str, ...]]:
    """``{"MoE": ["mixture of experts"]}``; a single string is one expansion."""
    if not isinstance(value, Mapping):
        raise ValueError('expected a table such as { MoE = ["mixture of experts"] }')
    table: dict[str, tuple[str, ...]] = {}
    for acronym, expansions in value.items():
        if isinstance(expansions, str):
            expansions = [expansions]
        if not isinstance(expansions, list) or not all(isinstance(e, str) and e.strip() for e in expansions):
            raise ValueError(f"{acronym}: expected a list of expansions (strings)")
        table[str(acronym)] = tuple(e.strip() for e in expansions)
    return table


def _as_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    if any(ch in value for ch in "\r\n"):
        raise ValueError("must be one line")
    return value.strip()


def _as_base_url(value: Any) -> str:
    """Every link of every email and page starts with it, the List-Unsubscribe header's too:
    so nothing that would break a header (``<``, ``>``, ``"``, spaces) or put a password in
    every email; a non-ASCII host goes as A-labels, as addresses do (no SMTPUTF8 needed)."""
    text = _as_text(value).rstrip("/")
    example = "an http(s) address such as https://papers.example.org"
    if re.search(r'[\s<>"\\^`{|}\x00-\x1f\x7f]', text):  # and what RFC 3986 leaves out of URIs
        raise ValueError(f"{text!r} is not {example}: it holds a space, quote, angle bracket or one of \\ ^ ` {{ | }}")
    if "?" in text or "#" in text:  # every link is base_url + "/path": a query or fragment would swallow it
        raise ValueError(f"{text!r} is not {example}: it has a query or fragment")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"{text!r} is not {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:  # ("?" and "#" are refused above)
        raise ValueError(f"{text!r} is not {example}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("it holds a user name or password, which every email would show")
    if not parts.netloc.isascii():
        host = addresses.ascii_domain(parts.hostname)
        if not host.isascii():
            raise ValueError(f"{text!r}: its host {parts.hostname!r} is not a valid domain name")
        parts = parts._replace(netloc=host + (f":{parts.port}" if parts.port else ""))
    if not parts.path.isascii():  # "/bücher" as "/b%C3%BCcher": the headers stay ASCII
        parts = parts._replace(path=quote(parts.path, safe="/%:@!$&'()*+,;=-._~"))
    return parts.geturl()


def _as_list_id(value: Any) -> str:
    """The List-Id header's id (RFC 2919): a dot-atom with a dot, as ``digest.papers.example.org``."""
    text = _as_text(value)
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+", text):
        raise ValueError(f"{text!r} is not a list id such as digest.papers.example.org (letters, digits, dots)")
    return text


def _as_email(value: Any) -> str:
    text = _as_text(value)
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain and domain != "localhost" or " " in text:
        raise ValueError(f"{text!r} is not an email address")
    return text


def _as_optional_email(value: Any) -> str:
    return _as_email(value) if str(value).strip() else ""


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _as_int(value: Any, low: int, high: int) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ValueError(f"{value!r} is not a whole number from {low} to {high}")
    return number


def _as_float(value: Any, low: float) -> float:
    try:
        number = float(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < low:
        raise ValueError(f"{value!r} is not a number of at least {low}")
    return number


def _as_choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return text
    return convert


def _string_list(value: Any, expected: str) -> list[str]:
    """The non-empty items of a TOML list of strings, or of one environment string split on
    commas; ``expected`` says what a good value looks like."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"expected a list of {expected}")
    return [item.strip() for item in items if item.strip()]


def _as_sources(value: Any) -> tuple[str, ...]:
    """Paths or http(s) URLs: a TOML list, or one environment string split on commas."""
    sources = tuple(_string_list(value, 'paths or URLs such as ["seeds", "https://example.org/feed.xml"]'))
    for item in sources:
        if "://" in item and urlsplit(item).scheme not in ("http", "https"):
            raise ValueError(f"{item!r}: only http and https URLs can be fetched")
        if any(ch in item for ch in "\r\n\x00"):
            raise ValueError(f"{item!r}: must be one line")
    return sources


def _as_networks(value: Any) -> tuple[str, ...]:
    """Addresses or CIDR ranges: a TOML list, or one environment string split on commas."""
    networks = []
    for item in _string_list(value, 'addresses or CIDR ranges such as ["127.0.0.1", "10.0.0.0/8"]'):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR range such as 10.0.0.0/8") from None
    return tuple(networks)


DEFAULT_EMBEDDER, EMBEDDER_OFF, SENTENCE_TRANSFORMERS = "minilm-int8", "off", "sentence-transformers:"


def as_embedder(value: Any) -> str:
    """``relevance.embedder``: ``minilm-int8`` (built in), ``sentence-transformers:MODEL`` or ``off``."""
    text = str(value).strip()
    if text.lower() in (DEFAULT_EMBEDDER, EMBEDDER_OFF):
        return text.lower()
    name = text[len(SENTENCE_TRANSFORMERS):].strip()
    if text.lower().startswith(SENTENCE_TRANSFORMERS) and name and not any(ch.isspace() for ch in name):
        return SENTENCE_TRANSFORMERS + name
    raise ValueError(f"{value!r} is not {DEFAULT_EMBEDDER}, {SENTENCE_TRANSFORMERS}MODEL_NAME or {EMBEDDER_OFF}")


_TOPIC_ARN = re.compile(r"arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


def _as_topic_arns(value: Any) -> tuple[str, ...]:
    """SNS topic ARNs: a TOML list, or one environment string split on commas."""
    arns = tuple(_string_list(value, 'SNS topic ARNs such as ["arn:aws:sns:eu-west-1:123456789012:bounces"]'))
    for arn in arns:
        if not _TOPIC_ARN.fullmatch(arn):
            raise ValueError(f"{arn!r} is not an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:bounces")
    return arns


def _as_ec_public_key(value: Any) -> str:
    """A P-256 public key as SendGrid shows it: base64 of its DER form (PEM armour is tolerated)."""
    text = "".join(line for line in str(value).splitlines() if not line.startswith("-----")).strip()
    text = "".join(text.split())
    if not text:
        return ""
    from .bounces.webhooks import sendgrid_public_key  # cryptography: loaded only when a key is set

    sendgrid_public_key(text)  # raises ValueError naming what is wrong
    return text


def _as_optional_path(value: Any) -> Path | None:
    return _as_path(value) if str(value).strip() else None


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Field names are setting keys with ``_`` for dots."""

    db: str = "sqlite:///out/paperwire.sqlite3"
    out_dir: Path = Path("out")
    templates_dir: Path = DEFAULT_TEMPLATES
    # Where `paperwire serve` answers; every absolute link in emails and feeds starts here.
    base_url: str = "http://127.0.0.1:8000"
    # The sender of digests, and the line at the bottom of every email that says who sends it.
    sender_name: str = "paperwire"
    sender_email: str = "digest@paperwire.localhost"
    reply_to: str = ""
    sender_line: str = "paperwire · research-paper digests"
    list_id: str = "digest.paperwire.localhost"
    unsubscribe_email: str = "unsubscribe@paperwire.localhost"
    send_empty: bool = False  # send a "nothing matched today" email instead of nothing
    # DKIM signing happens only when a key file is set.
    dkim_key_file: Path | None = None
    dkim_selector: str = "paperwire"
    dkim_domain: str = ""
    # Delivery. SMTP is used whenever smtp.host is set; otherwise messages go to the outbox folder.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_tls: str = "none"  # none, starttls or implicit
    smtp_password: str = field(default="", repr=False)  # only from PAPERWIRE_SMTP_PASSWORD
    smtp_password_file: Path | None = None
    smtp_pool_size: int = 2
    smtp_per_second: float = 0.0  # 0 means no limit
    smtp_per_hour: int = 0
    smtp_timeout: float = 30.0
    smtp_max_attempts: int = 5
    outbox_dir: Path = Path("out/outbox")
    # Messages claimed in one transaction, and answers recorded in one. 1: a run killed with kill -9
    # leaves at most smtp.pool_size deliveries whose fate is unknown; a large list sets ~100 so the
    # database is not the bottleneck, and a kill -9 may then leave up to two chunks more unknown.
    delivery_chunk: int = 1
    # A run that has not beaten its heart for this long is taken as dead.
    run_lease_seconds: int = 600
    # `paperwire schedule`: what the ingest job reads (paths and http(s) URLs) and how often jobs run.
    schedule_sources: tuple[str, ...] = ("seeds",)
    schedule_ingest_minutes: int = 60
    schedule_dispatch_minutes: int = 5
    schedule_fetch_timeout: float = 20.0
    max_listing_bytes: int = MAX_LISTING_BYTES  # per file or download; bigger ones are refused
    log_format: str = "text"  # or json: one object per line, for log collectors
    # `paperwire serve`: links are signed with secret_key (only from PAPERWIRE_SECRET_KEY; serve
    # refuses the development default unless --dev); the JSON API's admin routes need admin_token.
    secret_key: str = field(default=DEV_SECRET_KEY, repr=False)
    admin_token: str = field(default="", repr=False)
    subscribe_rate_per_hour: int = 10  # subscribe attempts per client address per hour
    # Reverse proxies whose X-Forwarded-For names the client (addresses or CIDR ranges). None by
    # default: then the connecting address is the client, whatever headers say.
    trusted_proxies: tuple[str, ...] = ()
    acronyms: Mapping[str, tuple[str, ...]] = None  # type: ignore[assignment]  # set below
    # Which model turns papers and topics into vectors for matching by meaning (see embeddings.py).
    relevance_embedder: str = DEFAULT_EMBEDDER
    # Sending on procrastinate workers (workers.py; PostgreSQL only): a dispatch enqueues batches
    # of due readers and `paperwire worker` processes sends them. A worker beats its heartbeat every
    # heartbeat_seconds; one silent for stalled_seconds is dead, and its batch goes to another.
    workers_enabled: bool = False
    workers_batch_size: int = 500
    workers_heartbeat_seconds: float = 10.0
    workers_stalled_seconds: float = 30.0
    # Bounces and complaints that arrive later (README "Bounces and complaints"). With
    # bounce_address set, each message's envelope sender names its delivery (VERP).
    bounce_address: str = ""
    bounces_imap_host: str = ""  # the bounce mailbox `paperwire bounces` reads; none by default
    bounces_imap_port: int = 993
    bounces_imap_tls: str = "implicit"  # implicit, starttls or none
    bounces_imap_user: str = ""
    bounces_imap_password: str = field(default="", repr=False)  # only from PAPERWIRE_BOUNCES_IMAP_PASSWORD
    bounces_imap_folder: str = "INBOX"
    bounces_imap_move_to: str = ""  # a folder for processed messages; empty: they are flagged instead
    bounces_check_minutes: int = 15  # how often the daemon reads the mailbox
    bounces_soft_limit: int = 3  # soft bounces within bounces.soft_days that mark a reader bouncing
    bounces_soft_days: int = 7
    # Provider webhooks (README "Bounces and complaints"): each is off (404) until configured.
    webhooks_ses_topics: tuple[str, ...] = ()  # SNS topic ARNs whose notifications /webhooks/ses takes
    webhooks_postmark_user: str = ""  # HTTP basic auth of /webhooks/postmark, with the password:
    webhooks_postmark_password: str = field(default="", repr=False)  # only from PAPERWIRE_WEBHOOKS_POSTMARK_PASSWORD
    webhooks_sendgrid_public_key: str = ""  # the Event Webhook's verification key (base64 DER, not a secret)
    webhooks_mailgun_signing_key: str = field(default="", repr=False)  # from the environment only

    def __post_init__(self) -> None:
        if self.acronyms is None:
            object.__setattr__(self, "acronyms", {})

    def __repr__(self) -> str:
        """Secret fields are left out (``repr=False``); URLs (database, sources) show without their passwords."""
        def shown(name: str) -> Any:
            value = getattr(self, name)
            if name == "db":
                return redact.url(value)
            if name == "schedule_sources":
                return tuple(map(redact.url, value))
            return value

        return "Settings(" + ", ".join(f"{f.name}={shown(f.name)!r}" for f in fields(self) if f.repr) + ")"


# key -> converter; the key set is the set of known settings.
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "db": _as_db_url,
    "out_dir": _as_path,
    "templates_dir": _as_path,
    "base_url": _as_base_url,
    "sender_name": _as_text,
    "sender_email": _as_email,
    "reply_to": _as_optional_email,
    "sender_line": _as_text,
    "list_id": _as_list_id,
    "unsubscribe_email": _as_email,
    "send_empty": _as_bool,
    "dkim_key_file": _as_optional_path,
    "dkim_selector": _as_text,
    "dkim_domain": _as_text,
    "smtp_host": _as_text,
    "smtp_port": lambda v: _as_int(v, 1, 65535),
    "smtp_user": _as_text,
    "smtp_tls": _as_choice("none", "starttls", "implicit"),
    "smtp_password": _as_text,
    "smtp_password_file": _as_optional_path,
    "smtp_pool_size": lambda v: _as_int(v, 1, 64),
    "smtp_per_second": lambda v: _as_float(v, 0.0),
    "smtp_per_hour": lambda v: _as_int(v, 0, 10**9),
    "smtp_timeout": lambda v: _as_float(v, 0.1),
    "smtp_max_attempts": lambda v: _as_int(v, 1, 100),
    "outbox_dir": _as_path,
    "delivery_chunk": lambda v: _as_int(v, 1, 1000),
    "run_lease_seconds": lambda v: _as_int(v, 10, 86400),
    "schedule_sources": _as_sources,
    "schedule_ingest_minutes": lambda v: _as_int(v, 1, 7 * 24 * 60),
    "schedule_dispatch_minutes": lambda v: _as_int(v, 1, 60),
    "schedule_fetch_timeout": lambda v: _as_float(v, 1.0),
    "max_listing_bytes": lambda v: _as_int(v, 1024, 2**31),
    "log_format": _as_choice("text", "json"),
    "secret_key": _as_text,
    "admin_token": _as_text,
    "subscribe_rate_per_hour": lambda v: _as_int(v, 1, 10**6),
    "trusted_proxies": _as_networks,
    "acronyms": _as_acronyms,
    "relevance_embedder": as_embedder,
    "workers_enabled": _as_bool,
    "workers_batch_size": lambda v: _as_int(v, 1, 10_000),
    "workers_heartbeat_seconds": lambda v: _as_float(v, 0.1),
    "workers_stalled_seconds": lambda v: _as_float(v, 1.0),
    "bounce_address": _as_optional_email,
    "bounces_imap_host": _as_text,
    "bounces_imap_port": lambda v: _as_int(v, 1, 65535),
    "bounces_imap_tls": _as_choice("implicit", "starttls", "none"),
    "bounces_imap_user": _as_text,
    "bounces_imap_password": _as_text,
    "bounces_imap_folder": _as_text,
    "bounces_imap_move_to": _as_text,
    "bounces_check_minutes": lambda v: _as_int(v, 1, 24 * 60),
    "bounces_soft_limit": lambda v: _as_int(v, 1, 1000),
    "bounces_soft_days": lambda v: _as_int(v, 1, 365),
    "webhooks_ses_topics": _as_topic_arns,
    "webhooks_postmark_user": _as_text,
    "webhooks_postmark_password": _as_text,
    "webhooks_sendgrid_public_key": _as_ec_public_key,
    "webhooks_mailgun_signing_key": _as_text,
}
# Settings that only make sense as a TOML table, never as one environment string.
_TOML_ONLY = {"acronyms"}

assert set(_CONVERTERS) == {f.name for f in fields(Settings)}, "every setting needs a converter"


_TABLES = ("smtp", "schedule", "relevance", "workers", "bounces", "webhooks")  # settings grouped under a [table] in paperwire.toml


def setting_key(field_name: str) -> str:
    """The name people see and write: ``smtp_host`` is ``smtp.host``."""
    table, _, rest = field_name.partition("_")
    return f"{table}.{rest}" if table in _TABLES and rest else field_name


def env_var(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def _convert(key: str, value: Any, source: str) -> Any:
    field_name = key.replace(".", "_")
    converter = _CONVERTERS.get(field_name)
    if converter is None:
        hint = difflib.get_close_matches(field_name, _CONVERTERS, n=1)
        suggestion = f" (did you mean '{setting_key(hint[0])}'?)" if hint else ""
        raise ConfigError(f"unknown setting '{key}' in {source}{suggestion}")
    try:
        return field_name, converter(value)
    except ValueError as exc:
        raise ConfigError(f"bad value for setting '{key}' from {source}: {exc}") from None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML tables become dotted keys, except settings that are tables themselves."""
    flat: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and key.replace(".", "_") not in _TOML_ONLY:
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


# Secrets never live in paperwire.toml: it gets committed, copied and printed.
_ENV_ONLY = {"smtp_password", "secret_key", "admin_token", "bounces_imap_password", "webhooks_postmark_password",
             "webhooks_mailgun_signing_key"}


def _from_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    source = f"config file {path}"
    for key in _flatten(data):
        if key.replace(".", "_") in _ENV_ONLY:
            raise ConfigError(f"setting '{key}' in {source}: secrets are not read from the config file; "
                              f"set {env_var(key)}" + (" or smtp.password_file" if key == "smtp.password" else "")
                              + " instead")
    return dict(_convert(key, value, source + f" (key '{key}')") for key, value in _flatten(data).items())


# PAPERWIRE_ variables that are no setting: the config file, and the test suite's PostgreSQL server
# (tests/databases.py), which CI exports to every process the tests start.
_NOT_SETTINGS = ("PAPERWIRE_CONFIG", "PAPERWIRE_TEST_DB")


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    known = {env_var(f.name): f.name for f in fields(Settings) if f.name not in _TOML_ONLY}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        if name not in known:
            log.warning("ignoring unknown environment variable %s", name)
            continue
        field_name, value = _convert(setting_key(known[name]), raw, f"environment variable {name}")
        values[field_name] = value
    return values


def load_settings(
    config_file: Path | str | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build Settings from every layer; later layers win.

    ``config_file`` is ``--config``; without it ``PAPERWIRE_CONFIG`` or a
    ``paperwire.toml`` in ``cwd`` is read when present. ``flags`` maps setting keys to
    values given on the command line (``None`` means the flag was not given).
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    settings = Settings()
    chosen = config_file or environ.get("PAPERWIRE_CONFIG")
    if chosen:
        settings = replace(settings, **_from_file(Path(chosen)))
    elif (cwd / CONFIG_FILE_NAME).is_file():
        settings = replace(settings, **_from_file(cwd / CONFIG_FILE_NAME))
    settings = replace(settings, **_from_env(environ))
    return check_workers(follow_sender(override(settings, **(flags or {}))))


def follow_sender(settings: Settings) -> Settings:
    """``unsubscribe_email`` and ``list_id`` left unset follow ``sender_email``: the mailto
    unsubscribe goes to the sender, List-Id is ``digest.<its domain>``. They kept the
    placeholder domain paperwire.localhost, which no mail reaches, when only the sender was set."""
    default = Settings()
    if settings.sender_email == default.sender_email:
        return settings
    changes: dict[str, str] = {}
    if settings.unsubscribe_email == default.unsubscribe_email:
        changes["unsubscribe_email"] = settings.sender_email
    if settings.list_id == default.list_id:
        try:
            changes["list_id"] = _as_list_id(f"digest.{addresses.domain_of(settings.sender_email)}")
        except ValueError:  # a domain that makes no dot-atom: the placeholder stays
            pass
    return replace(settings, **changes)


def check_workers(settings: Settings) -> Settings:
    """Workers keep their jobs in the database (procrastinate), which must be PostgreSQL; a worker
    that beats less often than it is declared dead would be taken for dead while it works."""
    if not settings.workers_enabled:
        return settings
    backend = make_url(settings.db).get_backend_name()
    if backend != "postgresql":
        raise ConfigError(f"setting 'workers.enabled' ({env_var('workers.enabled')}) needs a PostgreSQL database: "
                          f"procrastinate keeps its jobs there, and db is {redact.url(settings.db)} ({backend}); "
                          "set workers.enabled = false or db = \"postgresql+psycopg://...\"")
    if settings.workers_stalled_seconds <= 2 * settings.workers_heartbeat_seconds:
        raise ConfigError(f"setting 'workers.stalled_seconds' ({settings.workers_stalled_seconds:g}) must be more than "
                          f"twice 'workers.heartbeat_seconds' ({settings.workers_heartbeat_seconds:g}): a live worker "
                          "would be taken for dead")
    return settings


def override(settings: Settings, **flags: Any) -> Settings:
    """Settings with command-line values on top; ``None`` means the flag was not given."""
    values = dict(
        _convert(setting_key(key), value, f"flag --{key.replace('_', '-')}")
        for key, value in flags.items() if value is not None
    )
    return replace(settings, **values)
