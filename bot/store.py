"""Keep the minimum record of what patients asked in SQLite (hashed ids, scrubbed texts, bounded retention),
never letting a storage failure reach a patient's reply."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bot.config import Settings, Storage
from bot.events import Event, NullRecorder, Recorder
from bot.scrub import scrub

log = logging.getLogger("portbot.store")

Clock = Callable[[], dt.datetime]

SCHEMA_VERSION = 1
TEXT_KINDS = frozenset({"fallback", "clarify"})  # the only replies whose message text may be kept
BUSY_TIMEOUT_MS = 100  # a patient's reply waits at most this long for a store another process holds
PURGE_EVERY = dt.timedelta(hours=1)
RETRY_AFTER = dt.timedelta(seconds=30)  # after a failure, reopen no more often than this
_TIME = "%Y-%m-%dT%H:%M:%SZ"

# Each step takes the schema from version i to i + 1; append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            id        INTEGER PRIMARY KEY,
            at        TEXT NOT NULL,  -- UTC, like 2026-03-12T09:41:07Z
            kind      TEXT NOT NULL,  -- answer, clarify, fallback, urgent, chat, feedback, none_of_these
            user_hash TEXT NOT NULL,  -- HMAC-SHA256 of the user id with the store's key, never the id itself
            entry     TEXT,
            score     REAL,
            helpful   INTEGER,        -- feedback: 1 for thumbs up, 0 for thumbs down
            message   TEXT            -- scrubbed text of fallback and clarify messages only, else NULL
        )""",
        "CREATE INDEX events_at ON events (at)",
        "CREATE INDEX events_user ON events (user_hash)",
    ),
)


class StoreError(Exception):
    """The store could not do what was asked (for `forget` and reading, where silence would mislead)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One recorded event as the report sees it: no user, and text only where it was allowed to be kept."""

    at: dt.datetime
    kind: str
    entry: str | None
    score: float | None
    helpful: bool | None
    message: str | None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def open_recorder(settings: Settings, clock: Clock = utc_now) -> Recorder:
    """The recorder the configuration asks for: SQLite (old records deleted now), or nothing at all when
    `storage.enabled` is false. Close a SqliteRecorder when done with it."""
    if not settings.storage.enabled:
        return NullRecorder()
    recorder = SqliteRecorder(settings.storage, clock=clock)
    if settings.storage.path.exists():
        # Retention at start, so records expire on time even if no one writes for a while; a new store is
        # only created when there is something to record.
        with contextlib.suppress(StoreError):
            recorder.purge()
    return recorder


def key_file(storage: Storage) -> Path:
    """Where a generated hashing key is kept when the configuration gives none: beside the database."""
    return storage.path.with_name(storage.path.name + ".key")


class SqliteRecorder:
    """The Recorder on one SQLite connection, shared by threads under a lock; every call is one short statement."""

    def __init__(self, storage: Storage, clock: Clock = utc_now) -> None:
        self.storage = storage
        self.clock = clock
        self.dropped = 0  # events lost to storage failures since start, for /stats
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._key: bytes | None = None
        self._purged: dt.datetime | None = None
        self._failed: dt.datetime | None = None
        self._logged: set[str] = set()

    # -- the Recorder protocol ------------------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Insert one row; on any storage failure log the kind of failure once and drop the event."""
        with self._lock:
            try:
                now = self.clock()
                db = self._open(now)
                if db is None:
                    self.dropped += 1
                    return
                if self._purged is None or now - self._purged >= PURGE_EVERY:
                    self._purge(db, now)
                text = None
                if event.kind in TEXT_KINDS and self.storage.keep_message_text and event.message:
                    text = scrub(event.message).strip() or None
                helpful = None if event.helpful is None else int(event.helpful)
                db.execute("INSERT INTO events (at, kind, user_hash, entry, score, helpful, message) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (now.strftime(_TIME), event.kind, self._hash(event.user), event.entry, event.score,
                            helpful, text))
            except Exception as error:  # sqlite or file errors above all, but nothing may reach the reply
                self._failure("recording an event", error)
                self.dropped += 1

    def forget(self, user: str) -> int:
        """Delete every row of this user and return how many; StoreError if that could not be done."""
        with self._lock:
            if self._db is None and not self.storage.path.exists():
                return 0
            try:
                db = self._open(self.clock(), retry_now=True)
                if db is None:
                    raise StoreError("the store cannot be opened")
                deleted = db.execute("DELETE FROM events WHERE user_hash = ?", (self._hash(user),)).rowcount
                _checkpoint(db)
                return int(deleted)
            except (sqlite3.Error, OSError) as error:
                self._failure("forgetting a user", error)
                raise StoreError(f"could not delete the records ({_name(error)})") from None

    # -- for the report and for maintenance ---------------------------------------------------------------------

    def rows(self, since: dt.datetime | None = None) -> list[Row]:
        """The rows recorded since `since` (all kept rows by default), oldest first, retention applied first."""
        with self._lock:
            try:
                now = self.clock()
                db = self._open(now, retry_now=True)
                if db is None:
                    raise StoreError(f"{self.storage.path} cannot be opened")
                self._purge(db, now)
                start = max(since, self._cutoff(now)) if since else self._cutoff(now)
                cursor = db.execute("SELECT at, kind, entry, score, helpful, message FROM events "
                                    "WHERE at >= ? ORDER BY at, id", (start.strftime(_TIME),))
                return [Row(_parse_time(at), kind, entry, score, None if helpful is None else bool(helpful),
                            message) for at, kind, entry, score, helpful, message in cursor]
            except (sqlite3.Error, OSError) as error:
                self._failure("reading the store", error)
                raise StoreError(f"could not read {self.storage.path} ({_name(error)})") from None

    def purge(self) -> int:
        """Delete the rows older than the retention period now; returns how many."""
        with self._lock:
            try:
                now = self.clock()
                db = self._open(now, retry_now=True)
                return 0 if db is None else self._purge(db, now)
            except (sqlite3.Error, OSError) as error:
                self._failure("deleting old records", error)
                raise StoreError(f"could not delete old records ({_name(error)})") from None

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> SqliteRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- inside the lock ------------------------------------------------------------------------------------------

    def _open(self, now: dt.datetime, retry_now: bool = False) -> sqlite3.Connection | None:
        if self._db is not None:
            return self._db
        if self._failed is not None and not retry_now and now - self._failed < RETRY_AFTER:
            return None
        try:
            self._db = _connect(self.storage.path)
            self._failed = None
            self._purge(self._db, now)
        except (sqlite3.Error, OSError) as error:
            self._close()
            self._failed = now
            self._failure("opening the store", error)
            return None
        return self._db

    def _purge(self, db: sqlite3.Connection, now: dt.datetime) -> int:
        deleted = db.execute("DELETE FROM events WHERE at < ?", (self._cutoff(now).strftime(_TIME),)).rowcount
        self._purged = now
        if deleted:
            _checkpoint(db)
            log.info("deleted %d record(s) older than %d days", deleted, self.storage.retention_days)
        return int(deleted)

    def _cutoff(self, now: dt.datetime) -> dt.datetime:
        return now - dt.timedelta(days=self.storage.retention_days)

    def _hash(self, user: str) -> str:
        if self._key is None:
            configured = self.storage.hash_key
            self._key = configured.encode() if configured else _generated_key(key_file(self.storage))
        return hmac.new(self._key, user.encode(), hashlib.sha256).hexdigest()

    def _failure(self, what: str, error: BaseException) -> None:
        """Log each kind of failure once (never any message text), and start afresh on the next attempt."""
        kind = f"{what}: {_name(error)}"
        if kind not in self._logged:
            self._logged.add(kind)
            log.error("analytics store %s: %s failed (%s); analytics are lost, replies are not",
                      self.storage.path, what, _name(error))
        if not _busy(error):
            # A read-only, full, replaced or corrupt file: a fresh connection is the only way to notice a fix.
            with contextlib.suppress(sqlite3.Error):
                self._close()
            self._failed = self.clock()

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # analytics: losing the last rows on power loss is acceptable
        db.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not left in free pages
        _migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"the store has schema version {version}; this PortBot knows up to "
                                    f"{SCHEMA_VERSION} (a newer PortBot made it)")
    for number in range(version, SCHEMA_VERSION):
        with _transaction(db):
            for statement in _MIGRATIONS[number]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _checkpoint(db: sqlite3.Connection) -> None:
    """Empty the write-ahead log, so that deleted rows do not linger in it."""
    with contextlib.suppress(sqlite3.Error):
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _generated_key(path: Path) -> bytes:
    """The key in `path`, made once (owner-only permissions) so hashes stay the same across restarts."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")  # created with mode 0600
    try:
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made the key meanwhile: use theirs
            os.link(temporary, path)  # atomic, and never replaces an existing key
    finally:
        os.unlink(temporary)
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise OSError(f"{path} is empty; delete it so a new key is made")
    log.info("made a new hashing key in %s (set storage.hash_key or PORTBOT_HASH_KEY to use your own)", path)
    return key.encode()


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _TIME).replace(tzinfo=dt.UTC)


def _name(error: BaseException) -> str:
    """The kind of failure, without any detail that could carry data."""
    code = getattr(error, "sqlite_errorname", None)
    if code:
        return str(code)
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    return type(error).__name__


def _busy(error: BaseException) -> bool:
    return str(getattr(error, "sqlite_errorname", "")).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
