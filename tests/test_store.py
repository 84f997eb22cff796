"""The analytics store keeps the minimum, hashed and scrubbed, deletes on time and on request, and a broken store
costs analytics only, never a reply."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from bot.config import Settings, Storage
from bot.events import Event, NullRecorder
from bot.store import SCHEMA_VERSION, SqliteRecorder, StoreError, key_file, open_recorder

START = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
USER = "918273645501"  # a Telegram-like id that must never reach the disk
OTHER = "5550001"


class Clock:
    """A settable clock, so retention can be tested without waiting 90 days."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(path=tmp_path / "data" / "portbot.sqlite3", hash_key="test key")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(storage: Storage, clock: Clock) -> SqliteRecorder:
    with SqliteRecorder(storage, clock=clock) as recorder:
        yield recorder  # type: ignore[misc]


def _files(storage: Storage) -> bytes:
    """Every byte the store has on disk: the database, its write-ahead log and shared memory."""
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(str(storage.path) + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


def _count(storage: Storage, where: str = "1", *args: object) -> int:
    db = sqlite3.connect(storage.path)
    try:
        return int(db.execute(f"SELECT count(*) FROM events WHERE {where}", args).fetchone()[0])
    finally:
        db.close()


def test_rows_keep_kind_entry_score_feedback_and_time(store: SqliteRecorder, clock: Clock) -> None:
    store.record(Event("answer", USER, "everyday-activities", 0.91))
    clock.advance(minutes=1)
    store.record(Event("feedback", USER, "everyday-activities", helpful=True))
    store.record(Event("feedback", OTHER, "cost", helpful=False))
    store.record(Event("none_of_these", USER))
    rows = store.rows()
    assert [(r.kind, r.entry, r.score, r.helpful) for r in rows] == [
        ("answer", "everyday-activities", 0.91, None), ("feedback", "everyday-activities", None, True),
        ("feedback", "cost", None, False), ("none_of_these", None, None, None)]
    assert rows[0].at == START and rows[1].at == START + dt.timedelta(minutes=1)
    assert rows[0].at.tzinfo == dt.UTC


def test_store_is_created_on_first_use_with_wal_and_a_schema_version(storage: Storage) -> None:
    with SqliteRecorder(storage) as store:
        assert not storage.path.parent.exists()
        store.record(Event("chat", USER))
    db = sqlite3.connect(storage.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["answer", "urgent", "chat", "feedback", "none_of_these"])
def test_text_of_other_replies_is_never_stored(store: SqliteRecorder, storage: Storage, kind: str) -> None:
    """Only fallback and clarify messages may be kept: an urgent or answered message's text never is."""
    store.record(Event(kind, USER, message="chestpain swollenarm at the port site"))  # type: ignore[arg-type]
    assert [r.message for r in store.rows()] == [None]
    assert b"chestpain" not in _files(storage) and b"swollenarm" not in _files(storage)


@pytest.mark.parametrize("kind", ["fallback", "clarify"])
def test_uncovered_text_is_kept_scrubbed(store: SqliteRecorder, storage: Storage, kind: str) -> None:
    store.record(Event(kind, USER, message="can I fly on 12/03/2026? call 07700 900123"))  # type: ignore[arg-type]
    assert [r.message for r in store.rows()] == ["can I fly on <date>? call <phone>"]
    assert b"07700" not in _files(storage) and b"2026" not in _files(storage).replace(b"2026-03", b"")


def test_keep_message_text_off_keeps_no_text(storage: Storage) -> None:
    with SqliteRecorder(dataclasses.replace(storage, keep_message_text=False)) as store:
        store.record(Event("fallback", USER, message="can I get a tattoo"))
        assert [(r.kind, r.message) for r in store.rows()] == [("fallback", None)]
    assert b"tattoo" not in _files(storage)


def test_user_ids_are_stored_only_as_a_keyed_hash(storage: Storage) -> None:
    hashes = []
    for key in ("first key", "second key"):
        path = storage.path.with_name(f"{key.replace(' ', '-')}.sqlite3")
        keyed = dataclasses.replace(storage, path=path, hash_key=key)
        with SqliteRecorder(keyed) as store:
            store.record(Event("answer", USER, "cost", 0.9))
        db = sqlite3.connect(path)
        try:
            hashes.append(db.execute("SELECT user_hash FROM events").fetchone()[0])
        finally:
            db.close()
        assert USER.encode() not in _files(keyed)
    assert hashes[0] != hashes[1] and USER not in hashes[0] and len(hashes[0]) == 64


def test_without_a_configured_key_one_is_made_once_and_kept_private(storage: Storage, clock: Clock) -> None:
    """The generated key survives a restart, so /forget still finds the rows recorded before it."""
    unkeyed = dataclasses.replace(storage, hash_key=None)
    with SqliteRecorder(unkeyed, clock=clock) as store:
        store.record(Event("answer", USER, "cost"))
    key = key_file(unkeyed)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = key.read_bytes()
    with SqliteRecorder(unkeyed, clock=clock) as store:
        store.record(Event("answer", USER, "cost"))
        assert key.read_bytes() == first
        assert store.forget(USER) == 2
    assert [p.name for p in key.parent.iterdir() if p.name.startswith(key.name + ".")] == []  # no stray temp files


def test_retention_deletes_old_rows(storage: Storage, clock: Clock) -> None:
    """Rows older than retention_days go: at start, and during recording at most once an hour."""
    with SqliteRecorder(storage, clock=clock) as store:
        store.record(Event("fallback", USER, message="an old question about tattoos"))
        clock.advance(days=storage.retention_days - 1)
        store.record(Event("answer", OTHER, "cost"))
        clock.advance(days=1, hours=1)
        store.record(Event("answer", OTHER, "cost"))
        assert [r.kind for r in store.rows()] == ["answer", "answer"]
    assert b"tattoos" not in _files(storage)
    clock.advance(days=storage.retention_days + 1)
    with SqliteRecorder(storage, clock=clock) as store:
        store.purge()
    assert _count(storage) == 0


def test_retention_runs_at_start(storage: Storage, clock: Clock) -> None:
    with SqliteRecorder(storage, clock=clock) as store:
        store.record(Event("answer", USER, "cost"))
    clock.advance(days=storage.retention_days + 1)
    with SqliteRecorder(storage, clock=clock) as store:
        store.record(Event("chat", OTHER))
    assert _count(storage) == 1 and _count(storage, "kind = 'answer'") == 0


def test_retention_check_is_at_most_hourly(store: SqliteRecorder, storage: Storage, clock: Clock) -> None:
    store.record(Event("chat", OTHER))
    db = sqlite3.connect(storage.path)
    try:
        db.execute("INSERT INTO events (at, kind, user_hash) VALUES ('2025-01-01T00:00:00Z', 'chat', 'x')")
        db.commit()
    finally:
        db.close()
    clock.advance(minutes=30)
    store.record(Event("chat", OTHER))
    assert _count(storage, "user_hash = 'x'") == 1
    clock.advance(minutes=31)
    store.record(Event("chat", OTHER))
    assert _count(storage, "user_hash = 'x'") == 0


def test_forget_leaves_no_row_of_that_user(store: SqliteRecorder, storage: Storage) -> None:
    store.record(Event("fallback", USER, message="can I get a tattoo"))
    store.record(Event("answer", USER, "cost", 0.8))
    store.record(Event("answer", OTHER, "cost", 0.8))
    db = sqlite3.connect(storage.path)
    try:
        user_hash = db.execute("SELECT user_hash FROM events WHERE kind = 'fallback'").fetchone()[0]
    finally:
        db.close()
    assert store.forget(USER) == 2
    assert store.forget(USER) == 0
    assert _count(storage, "user_hash = ?", user_hash) == 0 and _count(storage) == 1
    on_disk = _files(storage)
    assert user_hash.encode() not in on_disk and b"tattoo" not in on_disk  # not even in free pages or the log


def test_forget_without_a_store_finds_nothing_and_creates_nothing(storage: Storage) -> None:
    with SqliteRecorder(storage) as store:
        assert store.forget(USER) == 0
    assert not storage.path.exists()


def test_open_recorder_follows_the_config(settings: Settings, storage: Storage) -> None:
    disabled = dataclasses.replace(storage, enabled=False)
    assert isinstance(open_recorder(dataclasses.replace(settings, storage=disabled)), NullRecorder)
    recorder = open_recorder(dataclasses.replace(settings, storage=storage))
    assert isinstance(recorder, SqliteRecorder)
    recorder.close()


def test_open_recorder_deletes_old_rows_at_start(settings: Settings, storage: Storage, clock: Clock) -> None:
    with SqliteRecorder(storage, clock=clock) as store:
        store.record(Event("answer", USER, "cost"))
    clock.advance(days=storage.retention_days + 1)
    recorder = open_recorder(dataclasses.replace(settings, storage=storage), clock=clock)
    assert isinstance(recorder, SqliteRecorder)
    recorder.close()
    assert _count(storage) == 0


def test_records_from_many_threads_are_all_kept(store: SqliteRecorder) -> None:
    def work(n: int) -> None:
        for i in range(50):
            store.record(Event("answer", f"{n}-{i}", "cost", 0.9))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.rows()) == 400 and store.dropped == 0


# -- a broken store loses analytics only ----------------------------------------------------------------------------


def _assert_dropped_quietly(store: SqliteRecorder, caplog: pytest.LogCaptureFixture, times: int = 3) -> None:
    """record() returns normally, the events are counted as dropped, and each kind of failure is logged once,
    without the patient's words."""
    caplog.set_level(logging.ERROR, logger="portbot.store")
    for _ in range(times):
        store.record(Event("fallback", USER, message="secretword question"))
    assert store.dropped == times
    assert caplog.records, "the failure must be logged"
    assert len({r.getMessage() for r in caplog.records}) == len(caplog.records)
    assert all("secretword" not in r.getMessage() and USER not in r.getMessage() for r in caplog.records)


def test_a_directory_in_the_way(storage: Storage, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    storage.path.mkdir(parents=True)
    with SqliteRecorder(storage, clock=clock) as store:
        _assert_dropped_quietly(store, caplog)
        with pytest.raises(StoreError):
            store.forget(USER)


def test_a_file_where_the_folder_should_be(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "data").write_text("not a folder")
    with SqliteRecorder(Storage(path=tmp_path / "data" / "portbot.sqlite3", hash_key="k")) as store:
        _assert_dropped_quietly(store, caplog)


def test_a_corrupt_file(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    storage.path.parent.mkdir(parents=True)
    storage.path.write_bytes(b"this is not a database, it is garbage" * 200)
    with SqliteRecorder(storage) as store:
        _assert_dropped_quietly(store, caplog)


@pytest.mark.skipif(os.geteuid() == 0, reason="file permissions do not bind root")
def test_a_read_only_file(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    with SqliteRecorder(storage) as store:
        store.record(Event("chat", OTHER))
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(storage.path) + suffix)
        if path.exists():
            path.chmod(0o444)
    storage.path.parent.chmod(0o555)
    try:
        with SqliteRecorder(storage) as store:
            _assert_dropped_quietly(store, caplog)
    finally:
        storage.path.parent.chmod(0o755)


def test_a_read_only_database(store: SqliteRecorder, caplog: pytest.LogCaptureFixture) -> None:
    """As a read-only file does (simulated per connection, since file modes do not bind root)."""
    store.record(Event("chat", OTHER))
    assert store._db is not None
    store._db.execute("PRAGMA query_only = ON")
    _assert_dropped_quietly(store, caplog, times=1)


def test_a_full_disk(store: SqliteRecorder, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """SQLITE_FULL (simulated with max_page_count) drops events; a fresh connection later recovers."""
    store.record(Event("chat", OTHER))
    assert store._db is not None
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    caplog.set_level(logging.ERROR, logger="portbot.store")
    for _ in range(200):
        store.record(Event("fallback", USER, message="why " * 100))
    assert store.dropped > 0
    assert [r.getMessage() for r in caplog.records if "SQLITE_FULL" in r.getMessage()][:2] != []
    assert len(caplog.records) == len({r.getMessage() for r in caplog.records})
    clock.advance(minutes=1)
    before = len(store.rows())
    store.record(Event("chat", OTHER))
    assert len(store.rows()) == before + 1


def test_a_database_locked_by_another_process(store: SqliteRecorder, storage: Storage,
                                              caplog: pytest.LogCaptureFixture) -> None:
    store.record(Event("chat", OTHER))
    other = sqlite3.connect(storage.path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        _assert_dropped_quietly(store, caplog, times=2)
        other.execute("COMMIT")
    finally:
        other.close()
    store.record(Event("chat", OTHER))  # the lock is gone: recording works again at once
    assert len(store.rows()) == 2


def test_a_store_made_by_a_newer_version_is_left_alone(storage: Storage,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    storage.path.parent.mkdir(parents=True)
    db = sqlite3.connect(storage.path)
    try:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    finally:
        db.close()
    with SqliteRecorder(storage) as store:
        _assert_dropped_quietly(store, caplog)
