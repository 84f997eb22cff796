"""Keep the checked knowledge base and its matching index on disk, so that starting or reloading on unchanged files
skips the YAML parsing and the indexing (about 3.5 s at 10 000 entries) for one read of a prepared file.

The prepared file is a pickle, so it is trusted only when it belongs to this user and nobody else may write it; its
key covers everything the result depends on (the knowledge files, the code, Python and the libraries), and any
trouble with it (missing, stale, corrupt, unwritable) means the folder is read the usual way, never an error."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import importlib.metadata
import logging
import os
import pickle
import platform
import stat
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from bot.knowledge import Entry, Gap, KnowledgeBase, check_knowledge
from bot.matching import Index, build_index, indexed_documents
from bot.yamlfile import Problem

log = logging.getLogger("portbot.prepared")

FORMAT = 2  # raise when the layout of the prepared file changes
LIBRARIES = ("PyYAML", "rapidfuzz", "snowballstemmer", "PyStemmer", "pyspellchecker")
CODE = Path(__file__).resolve().parent
_MAGIC = b"PORTBOT-PREPARED"
_HEADER = len(_MAGIC) + 1 + 64 + 1 + 16 + 1 + 64 + 1  # magic, key, payload size, payload sha256, newline
_STALE_TEMP_SECONDS = 3600  # a half-written file this old was left by a process that died while writing

Prepared = tuple[KnowledgeBase | None, Index | None, list[Problem]]


def load_prepared(path: Path | str, cache_dir: Path | str | None) -> Prepared:
    """check_knowledge(path) and, when it has no errors, the built matching index: from the prepared file in
    `cache_dir` when it was made from exactly these files and this code, else read afresh (and saved for next time).
    `cache_dir` None reads afresh and saves nothing."""
    folder = Path(path)
    if cache_dir is None:
        return _fresh(folder)
    key = _key(folder)
    try:
        file = cache_file(folder, Path(cache_dir))
    except (OSError, RuntimeError):  # a folder path that cannot be resolved (a loop of symbolic links)
        key = None
    if key is None:
        return _fresh(folder)
    found = _read(file, key)
    if found is not None:
        return found
    kb, index, problems = _fresh(folder)
    if kb is None or index is None or any(p.severity == "error" for p in problems):
        return kb, index, problems
    if _key(folder) != key:
        # Written to while it was read: what was read may be half old, half new, so it must not pass for `key`.
        log.debug("%s changed while it was read; not saving it prepared", folder)
        return kb, index, problems
    _write(file, key, (kb, index, problems))
    return kb, index, problems


def cache_file(folder: Path, cache_dir: Path) -> Path:
    """The one prepared file for a knowledge folder, named after the folder's full path."""
    name = hashlib.sha256(os.fsencode(folder.resolve())).hexdigest()[:32]
    return cache_dir / f"knowledge-{name}.prepared"


def _fresh(folder: Path) -> Prepared:
    kb, problems = check_knowledge(folder)
    return kb, (build_index(kb) if kb is not None else None), problems


# -- the key ---------------------------------------------------------------------------------------------------------


def _key(folder: Path) -> str | None:
    """A digest of everything a prepared knowledge base depends on, or None when the files cannot all be read."""
    def parts() -> Iterator[bytes]:
        # The reader names files relative to the working folder, so the same folder reached another way differs.
        yield from (_environment(), os.fsencode(folder), os.fsencode(Path.cwd()))
        for relative, path in _knowledge_files(folder):
            yield os.fsencode(relative)
            yield path.read_bytes()  # one file at a time: a large guide's files together are 15 MB

    try:
        return _digest(parts())
    except OSError as error:
        log.debug("cannot fingerprint %s (%s); reading it without the prepared file", folder, _why(error))
        return None


@functools.cache
def _environment() -> bytes:
    """The code as this process runs it: its own sources, Python and the libraries that shape the index."""
    parts = [f"format {FORMAT}".encode(), sys.version.encode(), f"{sys.byteorder} {platform.machine()}".encode()]
    for name in LIBRARIES:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} missing".encode())
    for source in sorted(CODE.glob("*.py")):
        parts += [source.name.encode(), source.read_bytes()]
    return _digest(parts).encode()


def _knowledge_files(folder: Path) -> list[tuple[str, Path]]:
    """Every YAML file under `folder`, through symbolic links too (a linked faq/ folder still counts), sorted."""
    found: list[tuple[str, Path]] = []
    visited: set[tuple[int, int]] = set()

    def fail(error: OSError) -> None:
        raise error

    for top, dirs, files in os.walk(folder, onerror=fail, followlinks=True):
        info = os.stat(top)
        if (info.st_dev, info.st_ino) in visited:  # a link back up the tree
            dirs.clear()
            continue
        visited.add((info.st_dev, info.st_ino))
        for name in files:
            if name.endswith((".yaml", ".yml")):
                path = Path(top, name)
                found.append((os.path.relpath(path, folder), path))
    return sorted(found)


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))  # so that ("ab", "c") and ("a", "bc") differ
        digest.update(part)
    return digest.hexdigest()


# -- reading and writing ---------------------------------------------------------------------------------------------


def _read(file: Path, key: str) -> Prepared | None:
    """The payload saved under `key`, or None (a miss) for any reason at all."""
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        log.debug("no prepared knowledge in %s yet", file.parent)
        return None
    except OSError as error:
        log.warning("cannot open the prepared knowledge %s (%s); reading the knowledge folder", file, _why(error))
        return None
    try:
        with os.fdopen(fd, "rb") as stream:
            info = os.fstat(stream.fileno())
            if not _trusted(info):
                log.warning("ignoring the prepared knowledge %s: it must be a file of this user that no one else may "
                            "write (delete it; it is made again)", file)
                return None
            header = stream.read(_HEADER).split()
            if len(header) != 4 or header[0] != _MAGIC:
                log.warning("ignoring %s: not a prepared knowledge file", file)
                return None
            if header[1].decode("ascii") != key:
                log.debug("the prepared knowledge in %s is for other files or code", file.parent)
                return None
            size, digest = int(header[2], 16), header[3].decode("ascii")
            counted = _Counted(stream)
            kb, index, skipped, split, problems = _unpickle(counted)
            if not (isinstance(kb, KnowledgeBase) and isinstance(index, Index) and isinstance(skipped, array)
                    and isinstance(problems, list) and all(isinstance(p, Problem) for p in problems)):
                raise TypeError("unexpected contents")
            if split:
                _read_phrasings(kb, counted)
            if counted.size != size or counted.hash.hexdigest() != digest or stream.read(1):
                raise ValueError("checksum mismatch")
        _restore_texts(kb, index, skipped)
    except Exception as error:  # a damaged cache must never stop the bot: read the folder instead
        log.warning("ignoring the damaged prepared knowledge %s (%s); reading the knowledge folder", file,
                    _why(error))
        return None
    log.debug("knowledge loaded prepared from %s", file)
    return kb, index, problems


def _write(file: Path, key: str, payload: tuple[KnowledgeBase, Index, list[Problem]]) -> None:
    """Save atomically (a temporary file, then a rename), or log why not; never raises."""
    temp: str | None = None
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_stale_temps(file)
        fd, temp = tempfile.mkstemp(dir=file.parent, prefix=file.name + ".", suffix=".tmp")  # mode 0600
        with os.fdopen(fd, "wb") as stream:
            stream.write(b"\0" * _HEADER)  # filled in once the payload's size and digest are known
            counted = _Counted(stream)
            stored, lines, blanks = _stored(*payload)
            _Pickler(counted, protocol=pickle.HIGHEST_PROTOCOL, blanks=blanks).dump(stored)
            for phrasings in lines:
                counted.write(_phrasing_line(phrasings))
            stream.seek(0)
            stream.write(b"%s %s %016x %s\n" % (_MAGIC, key.encode(), counted.size, counted.hash.hexdigest().encode()))
        # No fsync: a file cut short by a crash fails its size and digest check, and is then simply made again.
        os.replace(temp, file)
        temp = None
        log.debug("saved the prepared knowledge to %s", file)
    except Exception as error:  # a full disk or a read-only folder costs the next start time, nothing else
        log.warning("could not save the prepared knowledge in %s (%s); the next start reads the knowledge folder "
                    "again", file.parent, _why(error))
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _remove_stale_temps(file: Path) -> None:
    for temp in file.parent.glob(file.name + ".*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - temp.lstat().st_mtime > _STALE_TEMP_SECONDS:
                temp.unlink()


def _trusted(info: os.stat_result) -> bool:
    """A regular file of this user that group and others cannot write: only then may it be unpickled."""
    getuid = getattr(os, "getuid", None)
    return (getuid is not None and stat.S_ISREG(info.st_mode) and info.st_uid == getuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _why(error: BaseException) -> str:
    """The reason without the contents: pickling errors can quote the objects they choke on."""
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    return type(error).__name__


class _Counted:
    """A file wrapper that hashes and counts the bytes that go through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.hash = hashlib.sha256()
        self.size = 0

    def _seen(self, data: bytes | memoryview) -> None:
        self.hash.update(data)
        self.size += len(data)

    def write(self, data: bytes | pickle.PickleBuffer) -> int:
        # The pickler hands over an array's own memory (a PickleBuffer) rather than a copy of it.
        view = memoryview(data).cast("B")
        self._seen(view)
        return self.stream.write(view)

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self._seen(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self.stream.readinto(buffer)  # type: ignore[attr-defined]
        self._seen(memoryview(buffer)[:count])
        return int(count)

    def readline(self, size: int = -1) -> bytes:
        data = self.stream.readline(size)
        self._seen(data)
        return data


# -- the pickle format -------------------------------------------------------------------------------------------------
# Two things keep the unpickled knowledge base no bigger than a freshly built one, and its load short: frozen
# dataclasses are rebuilt from a flat argument tuple instead of the default state list (which would stay allocated
# until the whole load ends); and each distinct int is one object again, as it was when built (the index's entry
# counts hold hundreds of thousands of them). Both live in this one pickler, not in global copyreg hooks. The
# index's phrasings are arrays of numbers, pickled straight from their memory, in this machine's byte order (which
# the key holds); the phrasings' texts follow the pickle as lines (see _stored).


_SEP = "\x1f"  # between the phrasings of one line: no phrasing holds it (or a line break), or none are left out


def _array(typecode: str, data: bytes | bytearray) -> array[Any]:
    return array(typecode, data)


Blanks = frozenset[tuple[type, str]]


def _stored(kb: KnowledgeBase, index: Index,
            problems: list[Problem]) -> tuple[tuple[Any, ...], list[tuple[str, ...]], Blanks]:
    """What is pickled, the phrasings written after it as plain lines, and the fields pickled empty.

    The phrasings of entries and gaps (360 000 strings at 10 000 entries) are left out of the pickle and written
    one line per entry or gap: pickled, each string would take a place in the pickler's memo, whose table (and
    its doubling) added 25 MB to the peak memory of a save. The index is pickled without its phrasing texts, which
    are those very strings less the ones with no word to match: the load takes them from the knowledge base again,
    skipping the places listed here, so that they stay one object each, as after a fresh read. (The pickler leaves
    the fields out as it goes: copies of the objects without them would add to the peak themselves.)"""
    texts = index.phrasing_texts
    skipped = array("I")
    kept = position = 0
    for _, _, phrasings in indexed_documents(kb):
        for text in phrasings:
            if kept < len(texts) and texts[kept] is text:
                kept += 1
            else:
                skipped.append(position)
            position += 1
    if kept != len(texts):  # not built from this very knowledge base: keep its texts as they are
        return (kb, index, array("I"), False, problems), [], frozenset()
    lines = [e.phrasings for e in kb.entries] + [g.phrasings for g in kb.gaps]
    if any(_SEP in text or "\n" in text or "\r" in text for phrasings in lines for text in phrasings):
        return (kb, index, skipped, False, problems), [], frozenset({(Index, "phrasing_texts")})
    return ((kb, index, skipped, True, problems), lines,
            frozenset({(Index, "phrasing_texts"), (Entry, "phrasings"), (Gap, "phrasings")}))


def _phrasing_line(phrasings: tuple[str, ...]) -> bytes:
    return f"{len(phrasings)}{_SEP}{_SEP.join(phrasings)}\n".encode()


def _read_phrasings(kb: KnowledgeBase, stream: _Counted) -> None:
    """Give the loaded entries and gaps back the phrasings _stored wrote after the pickle, a line each."""
    items: tuple[Entry | Gap, ...] = (*kb.entries, *kb.gaps)
    for item in items:
        line = stream.readline()
        if not line.endswith(b"\n"):
            raise ValueError("the phrasings end too soon")
        count, _, rest = line[:-1].decode("utf-8").partition(_SEP)
        phrasings = tuple(rest.split(_SEP)) if int(count) else ()
        if len(phrasings) != int(count) or item.phrasings:
            raise ValueError("the phrasings do not match the knowledge base")
        object.__setattr__(item, "phrasings", phrasings)


def _restore_texts(kb: KnowledgeBase, index: Index, skipped: array[int]) -> None:
    """Give a loaded index the phrasing texts _stored left out, the very strings of the loaded knowledge base."""
    if index.phrasing_texts or not len(index.phrasing_entries):
        return
    left_out = set(skipped)
    texts = tuple(text for position, text in enumerate(
        text for _, _, phrasings in indexed_documents(kb) for text in phrasings) if position not in left_out)
    if len(texts) != len(index.phrasing_entries):
        raise ValueError("the phrasing texts do not match the index")
    object.__setattr__(index, "phrasing_texts", texts)


def _restore(cls: type, *values: Any) -> Any:
    """A frozen slots dataclass from its field values, in field order, without running its __init__."""
    obj: Any = object.__new__(cls)
    plan = _plan(cls)
    assert plan is not None
    for name, value in zip(plan[1], values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


def _proxy(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


_PLANS: dict[type, tuple[Callable[..., Any], tuple[str, ...]] | None] = {}


def _plan(cls: type) -> tuple[Callable[..., Any], tuple[str, ...]] | None:
    """For a slots dataclass (its slots are its fields, nothing else): what rebuilds it from its field values, and
    the fields in order. The class itself when its generated __init__ just sets every field (twice as fast as
    _restore's loop), else _restore. None for any other class: pickled as usual."""
    if cls not in _PLANS:
        plan = None
        if dataclasses.is_dataclass(cls) and cls.__bases__ == (object,):
            fields = dataclasses.fields(cls)
            names = tuple(f.name for f in fields)
            if set(vars(cls).get("__slots__", ())) == set(names):
                plain = (cls.__dataclass_params__.init and not hasattr(cls, "__post_init__")  # type: ignore[attr-defined]
                         and all(f.init for f in fields))
                plan = (cls if plain else _restore, names)
        _PLANS[cls] = plan
    return _PLANS[cls]


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, protocol: int, blanks: Blanks = frozenset()) -> None:
        super().__init__(file, protocol=protocol)
        self.blanks = blanks  # (class, field) pairs pickled as an empty tuple (see _stored)

    def persistent_id(self, obj: Any) -> Any:
        return obj if type(obj) is int and not -5 <= obj <= 256 else None  # small ints are shared already

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is array:  # its memory itself, not a copy of it in bytes (which the memo would keep to the end)
            return _array, (obj.typecode, pickle.PickleBuffer(obj))
        if kind is MappingProxyType:
            return _proxy, (dict(obj),)
        plan = None if isinstance(obj, type) else _plan(kind)
        if plan is None:
            return NotImplemented
        rebuild, names = plan
        values = tuple(() if (kind, name) in self.blanks else getattr(obj, name) for name in names)
        return (kind, values) if rebuild is kind else (_restore, (kind, *values))


# Only what a knowledge base and its index are made of may be named in the file.
_CORE = frozenset({"bot.knowledge", "bot.matching", "bot.normalize", "bot.safety", "bot.safety_rules",
                   "bot.yamlfile"})
_ALLOWED = frozenset({("bot.prepared", "_restore"), ("bot.prepared", "_proxy"), ("bot.prepared", "_array"),
                      ("datetime", "date"),
                      ("array", "array"), ("array", "_array_reconstructor")})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in _CORE or (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a knowledge base")


def _unpickle(stream: _Counted) -> Any:
    unpickler = _Unpickler(stream)
    # One shared object per distinct int; a C-level cache, as this runs for each of several hundred thousand ints.
    unpickler.persistent_load = functools.lru_cache(maxsize=None)(_same)  # type: ignore[method-assign]
    enabled = gc.isenabled()
    gc.disable()  # the load creates millions of objects and no garbage: collections would only slow it down
    try:
        return unpickler.load()
    finally:
        if enabled:
            gc.enable()


def _same(value: int) -> int:
    return value
