"""The prepared knowledge cache: a hit answers exactly like reading the folder; any change to the files or the code is a
miss; a damaged, foreign or unwritable cache only costs time; a broken or half-written folder is never saved."""

from __future__ import annotations

import dataclasses
import errno
import gc
import hashlib
import logging
import os
import pickle
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from bot import prepared
from bot.cli import main
from bot.config import Settings
from bot.knowledge import KnowledgeBase, check_knowledge
from bot.matching import Index, build_index
from bot.prepared import cache_file, load_prepared
from bot.reload import KnowledgeSource
from bot.replies import build_brain, respond
from bot.yamlfile import Problem

ROOT = Path(__file__).resolve().parent.parent
FILE = Path("faq") / "using-your-port.yaml"  # says a port can be punctured about "2,000" times
ENTRY = "number-of-punctures"
BROKEN = "entries:\n  - id: oops\n\tquestion: a tab where spaces belong\n"
ROOT_USER = os.geteuid() == 0

Loaded = tuple[KnowledgeBase | None, Index | None, list[Problem]]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """One item for each time the folder is read from its YAML files (a miss); a hit adds none."""
    seen: list[Path] = []
    real = prepared.check_knowledge

    def counting(path: Path) -> tuple[KnowledgeBase | None, list[Problem]]:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(prepared, "check_knowledge", counting)
    return seen


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _fresh(folder: Path) -> Loaded:
    kb, problems = check_knowledge(folder)
    return kb, (build_index(kb) if kb is not None else None), problems


def _messages() -> list[str]:
    found: list[str] = []
    for path in sorted((ROOT / "tests" / "eval").glob("*.yaml")):
        found += [case["q"] for case in yaml.safe_load(path.read_text(encoding="utf-8"))]
    return found


# -- a hit is the same knowledge base ---------------------------------------------------------------------------------


def test_a_hit_answers_every_evaluation_message_exactly_like_a_fresh_read(
        kb_copy: Path, cache: Path, settings: Settings, reads: list[Path]) -> None:
    """The unpickled knowledge base, index and problems equal the freshly read ones, and so does every reply."""
    fresh_kb, fresh_index, fresh_problems = _fresh(kb_copy)
    assert fresh_kb is not None and fresh_index is not None
    load_prepared(kb_copy, cache)
    assert len(reads) == 1 and cache_file(kb_copy, cache).is_file()
    kb, index, problems = load_prepared(kb_copy, cache)
    assert len(reads) == 1, "the second load must come from the prepared file"
    assert kb is not None and index is not None
    assert (kb, index, problems) == (fresh_kb, fresh_index, fresh_problems)
    assert dict(kb.by_id) == dict(fresh_kb.by_id) and dict(kb.texts) == dict(fresh_kb.texts)
    fresh, hit = build_brain(fresh_kb, settings, fresh_index), build_brain(kb, settings, index)
    messages = _messages()
    assert len(messages) > 600
    for message in messages:
        assert respond(hit, message) == respond(fresh, message), message


def test_a_hit_shares_each_phrasing_between_the_knowledge_base_and_the_index(kb_copy: Path, cache: Path) -> None:
    """The phrasings are written after the pickle, a line per entry, and the index takes its texts from the loaded
    knowledge base again: one string object each, as after a fresh read (copies would cost memory)."""
    load_prepared(kb_copy, cache)
    kb, index, _ = load_prepared(kb_copy, cache)
    assert kb is not None and index is not None
    own = {id(text) for item in (*kb.entries, *kb.gaps) for text in item.phrasings}
    own |= {id(entry.question) for entry in kb.entries}
    assert len(index.phrasing_texts) == len(index.phrasing_entries) > 1000
    assert all(id(text) in own for text in index.phrasing_texts)


@pytest.mark.parametrize("odd", ["a phrasing with a\x1fseparator", "a phrasing over\ntwo lines", ""])
def test_phrasings_that_cannot_be_written_as_lines_are_kept_in_the_pickle(tmp_path: Path, kb_copy: Path,
                                                                         odd: str) -> None:
    """A phrasing holding the separator or a line break (or an empty one) still comes back exactly."""
    fresh_kb, _ = check_knowledge(kb_copy)
    assert fresh_kb is not None
    first = dataclasses.replace(fresh_kb.entries[0], phrasings=(*fresh_kb.entries[0].phrasings, odd))
    entries = (first, *fresh_kb.entries[1:])
    kb = dataclasses.replace(fresh_kb, entries=entries, by_id={e.id: e for e in entries})
    index = build_index(kb)
    file, key = tmp_path / "knowledge.prepared", "k" * 64
    prepared._write(file, key, (kb, index, []))
    found = prepared._read(file, key)
    assert found is not None
    assert found == (kb, index, [])


def test_same_bytes_with_a_new_modification_time_is_still_a_hit(kb_copy: Path, cache: Path,
                                                                 reads: list[Path]) -> None:
    """The key is the files' contents, not their times: saving a file unchanged does not cost a full read."""
    load_prepared(kb_copy, cache)
    os.utime(kb_copy / FILE, ns=(1, 1))
    load_prepared(kb_copy, cache)
    assert len(reads) == 1


def test_no_cache_folder_reads_every_time_and_writes_nothing(kb_copy: Path, reads: list[Path],
                                                               cache_home: Path) -> None:
    before = sorted(cache_home.rglob("*"))
    first, second = load_prepared(kb_copy, None), load_prepared(kb_copy, None)
    assert len(reads) == 2 and first == second == _fresh(kb_copy)
    assert sorted(cache_home.rglob("*")) == before


@pytest.mark.parametrize("collecting", [True, False])
def test_a_hit_leaves_garbage_collection_as_it_found_it(kb_copy: Path, cache: Path, reads: list[Path],
                                                        collecting: bool) -> None:
    load_prepared(kb_copy, cache)
    was = gc.isenabled()
    try:
        gc.enable() if collecting else gc.disable()
        load_prepared(kb_copy, cache)
        assert gc.isenabled() is collecting and len(reads) == 1
    finally:
        gc.enable() if was else gc.disable()


def test_the_cache_folder_is_private(kb_copy: Path, cache: Path) -> None:
    load_prepared(kb_copy, cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache_file(kb_copy, cache).stat().st_mode) == 0o600


# -- what makes a miss -------------------------------------------------------------------------------------------------


def _edit_answer(kb: Path) -> None:
    path = kb / FILE
    path.write_text(path.read_text(encoding="utf-8").replace("2,000", "3,000"), encoding="utf-8")


ADDED = """entries:
  - id: added-by-a-test
    question: Is this an entry added by a test?
    phrasings: [added entry one, added entry two, added entry three, added entry four, added entry five,
                added entry six, added entry seven, added entry eight]
    answer: Yes. A test added it.
    category: Testing
    source: A test
    reviewed: 2026-11-28
"""


def _add_faq_file(kb: Path) -> None:
    (kb / "faq" / "added.yaml").write_text(ADDED, encoding="utf-8")


def _add_unused_file(kb: Path) -> None:
    (kb / "notes.yaml").write_text("notes: [one]\n", encoding="utf-8")


def _remove_file(kb: Path) -> None:
    (kb / "gaps.yaml").unlink()


def _rename_file(kb: Path) -> None:
    (kb / FILE).rename(kb / FILE.with_suffix(".yml"))


def _change_synonyms(kb: Path) -> None:
    path = kb / "synonyms.yaml"
    text = path.read_text(encoding="utf-8")
    assert "  sheath: [" in text
    path.write_text(text.replace("  sheath: [", "  sheath: [zzqqx, "), encoding="utf-8")


def _change_a_file_that_is_not_read(kb: Path) -> None:
    """tests.yaml is not part of the knowledge base, but every YAML file counts: simpler, and never stale."""
    with (kb / "tests.yaml").open("a", encoding="utf-8") as out:
        out.write("\n# a comment\n")


@pytest.mark.parametrize(("change", "shows"), [
    (_edit_answer, lambda kb, index, problems: "3,000" in kb.entry(ENTRY).answer),
    (_add_faq_file, lambda kb, index, problems: kb.entry("added-by-a-test") is not None),
    (_add_unused_file, lambda kb, index, problems: any("notes.yaml" in p.file for p in problems)),
    (_remove_file, lambda kb, index, problems: kb.gaps == ()),
    (_rename_file, lambda kb, index, problems: kb.entry(ENTRY).file.endswith(".yml")),
    (_change_synonyms, lambda kb, index, problems: index.lexicon.synonyms.get(("zzqqx",)) == ("sheath",)),
    (_change_a_file_that_is_not_read, lambda kb, index, problems: True),
], ids=lambda value: getattr(value, "__name__", "")[1:] or None)
def test_a_changed_knowledge_file_is_a_miss_and_the_change_is_then_saved(
        kb_copy: Path, cache: Path, reads: list[Path], change: Callable[[Path], None],
        shows: Callable[..., bool]) -> None:
    load_prepared(kb_copy, cache)
    change(kb_copy)
    kb, index, problems = load_prepared(kb_copy, cache)
    assert len(reads) == 2, "a changed folder must be read again"
    assert kb is not None and shows(kb, index, problems)
    assert (kb, index, problems) == _fresh(kb_copy)
    assert load_prepared(kb_copy, cache) == (kb, index, problems) and len(reads) == 2, "the new version is saved"


def test_changed_code_is_a_miss(kb_copy: Path, cache: Path, reads: list[Path],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    load_prepared(kb_copy, cache)
    monkeypatch.setattr(prepared, "_environment", lambda: b"other code")
    load_prepared(kb_copy, cache)
    assert len(reads) == 2


@pytest.fixture
def code_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of bot/ standing in for the running code while the fingerprint is taken."""
    copy = tmp_path / "code"
    copy.mkdir()
    for source in prepared.CODE.glob("*.py"):
        (copy / source.name).write_bytes(source.read_bytes())
    monkeypatch.setattr(prepared, "CODE", copy)
    prepared._environment.cache_clear()
    yield copy
    prepared._environment.cache_clear()


def _edit_source(code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (code / "matching.py").open("a", encoding="utf-8") as out:
        out.write("\n# changed\n")


def _add_source(code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (code / "extra.py").write_text("", encoding="utf-8")


def _upgrade_a_library(code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = prepared.importlib.metadata.version
    monkeypatch.setattr(prepared.importlib.metadata, "version",
                        lambda name: "99.0" if name == "rapidfuzz" else real(name))


def _another_python(code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepared.sys, "version", sys.version + " (another build)")


def _another_byte_order(code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's arrays are saved in the machine's byte order: a cache folder shared with another kind of machine
    must not hand them over."""
    monkeypatch.setattr(prepared.sys, "byteorder", "big" if sys.byteorder == "little" else "little")


@pytest.mark.parametrize("change", [_edit_source, _add_source, _upgrade_a_library, _another_python,
                                    _another_byte_order],
                         ids=lambda f: f.__name__[1:])
def test_the_code_fingerprint_covers_sources_libraries_and_python(
        code_copy: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Path, pytest.MonkeyPatch], None]) -> None:
    before = prepared._environment()
    prepared._environment.cache_clear()
    assert prepared._environment() == before
    change(code_copy, monkeypatch)
    prepared._environment.cache_clear()
    assert prepared._environment() != before


# -- a damaged or foreign cache file ----------------------------------------------------------------------------------


def _truncate(file: Path, key: str) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _flip_a_byte(file: Path, key: str) -> None:
    """Damage that pickle itself might not notice: a changed letter inside an answer."""
    data = bytearray(file.read_bytes())
    at = data.index(b"2,000")
    data[at] = ord("3")
    file.write_bytes(bytes(data))


def _garbage(file: Path, key: str) -> None:
    file.write_bytes(os.urandom(5000))


def _empty(file: Path, key: str) -> None:
    file.write_bytes(b"")


def _header_only(file: Path, key: str) -> None:
    file.write_bytes(file.read_bytes()[: prepared._HEADER])


def _write_with_header(file: Path, key: str, payload: bytes) -> None:
    """A well-formed header (this key, the right size and digest) in front of `payload`."""
    digest = hashlib.sha256(payload).hexdigest().encode()
    file.write_bytes(b"%s %s %016x %s\n" % (prepared._MAGIC, key.encode(), len(payload), digest) + payload)


def _foreign_global(file: Path, key: str) -> None:
    """A pickle naming something no knowledge base holds: refused before anything is called."""
    _write_with_header(file, key, pickle.dumps(os.getcwd))


def _wrong_contents(file: Path, key: str) -> None:
    _write_with_header(file, key, pickle.dumps(("not", "a", "knowledge base")))


def _open_to_others(file: Path, key: str) -> None:
    file.chmod(0o666)


def _open_to_the_group(file: Path, key: str) -> None:
    file.chmod(0o620)


def _someone_elses(file: Path, key: str) -> None:
    os.chown(file, 65534, 65534)


def _a_symbolic_link(file: Path, key: str) -> None:
    real = file.with_name("elsewhere")
    file.rename(real)
    file.symlink_to(real)


DAMAGE = [_truncate, _flip_a_byte, _garbage, _empty, _header_only, _foreign_global, _wrong_contents,
          _open_to_others, _open_to_the_group, _a_symbolic_link,
          pytest.param(_someone_elses, marks=pytest.mark.skipif(not ROOT_USER, reason="only root can chown"))]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: getattr(f, "__name__", "")[1:] or None)
def test_a_damaged_or_untrusted_cache_file_is_a_miss_and_is_made_again(
        kb_copy: Path, cache: Path, reads: list[Path], caplog: pytest.LogCaptureFixture,
        damage: Callable[[Path, str], None]) -> None:
    load_prepared(kb_copy, cache)
    file = cache_file(kb_copy, cache)
    key = prepared._key(kb_copy)
    assert key is not None
    damage(file, key)
    caplog.set_level(logging.DEBUG, logger="portbot.prepared")
    found = load_prepared(kb_copy, cache)
    assert len(reads) == 2 and found == _fresh(kb_copy)
    assert "2,000" in found[0].entry(ENTRY).answer  # type: ignore[union-attr]
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert not any("2,000" in r.getMessage() for r in caplog.records), "logs never quote the knowledge base"
    assert load_prepared(kb_copy, cache) == found and len(reads) == 2, "a good file replaced the damaged one"
    assert not file.is_symlink() and stat.S_IMODE(file.stat().st_mode) == 0o600


class _MakesAFolder:
    """Unpickled, this would create a folder: what a planted file could do if any callable were allowed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.path),)


def test_a_cache_file_that_would_call_other_code_is_refused(kb_copy: Path, cache: Path, reads: list[Path]) -> None:
    load_prepared(kb_copy, cache)
    key = prepared._key(kb_copy)
    assert key is not None
    planted = cache / "planted"
    _write_with_header(cache_file(kb_copy, cache), key, pickle.dumps((_MakesAFolder(planted), None, [])))
    assert load_prepared(kb_copy, cache) == _fresh(kb_copy) and len(reads) == 2
    assert not planted.exists()


def test_a_folder_where_the_cache_file_belongs_is_a_miss(kb_copy: Path, cache: Path, reads: list[Path]) -> None:
    cache_file(kb_copy, cache).mkdir(parents=True)
    assert load_prepared(kb_copy, cache) == load_prepared(kb_copy, cache) == _fresh(kb_copy)
    assert len(reads) == 2


# -- a cache that cannot be written ------------------------------------------------------------------------------------


def _cache_is_a_file(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a folder")


def _read_only_folder(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.mkdir(mode=0o500)


def _disk_full(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: object, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prepared._Counted, "write", full)


def _unpicklable(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Something in the index pickle cannot save (a lambda): the knowledge base is still served."""
    real = prepared.build_index

    def with_a_lambda(kb: KnowledgeBase) -> Index:
        index = real(kb)
        return dataclasses.replace(index, lexicon=dataclasses.replace(index.lexicon, frequency=lambda word: 0))

    monkeypatch.setattr(prepared, "build_index", with_a_lambda)


@pytest.mark.parametrize("trouble", [
    _cache_is_a_file, _disk_full, _unpicklable,
    pytest.param(_read_only_folder, marks=pytest.mark.skipif(ROOT_USER, reason="file permissions do not bind root")),
], ids=lambda f: getattr(f, "__name__", "")[1:] or None)
def test_a_cache_that_cannot_be_written_only_costs_time(
        kb_copy: Path, cache: Path, reads: list[Path], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, trouble: Callable[[Path, pytest.MonkeyPatch], None]) -> None:
    trouble(cache, monkeypatch)
    caplog.set_level(logging.WARNING, logger="portbot.prepared")
    kb, index, problems = load_prepared(kb_copy, cache)
    fresh_kb, fresh_index, fresh_problems = _fresh(kb_copy)
    assert kb == fresh_kb and problems == fresh_problems and index is not None
    assert index.entry_ids == fresh_index.entry_ids  # type: ignore[union-attr]
    assert any("could not save" in r.getMessage() for r in caplog.records)
    load_prepared(kb_copy, cache)
    assert len(reads) == 2
    if cache.is_dir():
        assert list(cache.iterdir()) == [], "no half-written file is left behind"


# -- what is never saved -------------------------------------------------------------------------------------------


def test_a_broken_folder_is_never_saved_and_still_gives_its_errors(kb_copy: Path, cache: Path,
                                                                    reads: list[Path]) -> None:
    load_prepared(kb_copy, cache)
    saved = cache_file(kb_copy, cache).read_bytes()
    (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
    for _ in range(2):
        kb, index, problems = load_prepared(kb_copy, cache)
        assert kb is None and index is None
        assert any(p.severity == "error" and "using-your-port.yaml" in p.file for p in problems)
    assert len(reads) == 3
    assert cache_file(kb_copy, cache).read_bytes() == saved


def test_a_broken_folder_with_no_cache_yet_leaves_none(kb_copy: Path, cache: Path) -> None:
    (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
    assert load_prepared(kb_copy, cache)[0] is None
    assert not cache_file(kb_copy, cache).exists()


def test_files_changed_while_they_are_read_are_not_saved(kb_copy: Path, cache: Path, reads: list[Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """What was read may be half old, half new: it is returned (the reload check decides what to do with it),
    but not saved under either version's key."""
    counting = prepared.check_knowledge

    def read_then_edit(path: Path) -> tuple[KnowledgeBase | None, list[Problem]]:
        found = counting(path)
        if len(reads) == 1:
            _edit_answer(kb_copy)
        return found

    monkeypatch.setattr(prepared, "check_knowledge", read_then_edit)
    kb, _, _ = load_prepared(kb_copy, cache)
    assert kb is not None and "2,000" in kb.entry(ENTRY).answer  # type: ignore[union-attr]
    assert not cache_file(kb_copy, cache).exists()
    kb, _, _ = load_prepared(kb_copy, cache)
    assert len(reads) == 2 and "3,000" in kb.entry(ENTRY).answer  # type: ignore[union-attr]
    load_prepared(kb_copy, cache)
    assert len(reads) == 2


def test_one_cache_file_per_folder(tmp_path: Path, kb_copy: Path, cache: Path, reads: list[Path]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "faq").mkdir()
    for path in kb_copy.glob("*.yaml"):
        (other / path.name).write_bytes(path.read_bytes())
    (other / "faq" / "added.yaml").write_text(ADDED, encoding="utf-8")
    load_prepared(kb_copy, cache)
    load_prepared(other, cache)
    first, second = load_prepared(kb_copy, cache), load_prepared(other, cache)
    assert len(reads) == 2 and len(list(cache.iterdir())) == 2
    assert first[0] is not None and second[0] is not None and len(second[0].entries) == 1


# -- where the bot loads knowledge ------------------------------------------------------------------------------------


def test_the_knowledge_source_starts_and_reloads_from_the_cache(kb_copy: Path, cache: Path, settings: Settings,
                                                                reads: list[Path]) -> None:
    mine = dataclasses.replace(settings, knowledge_path=kb_copy, cache_path=cache)
    KnowledgeSource(mine)
    source = KnowledgeSource(mine)
    assert len(reads) == 1, "the second start is a hit"
    _edit_answer(kb_copy)
    assert source.check().reloaded and len(reads) == 2
    assert "3,000" in respond(source.current(), "how many times can a port be used").text
    assert source.reload().reloaded and len(reads) == 2, "a forced reload of unchanged files is a hit"


def test_the_knowledge_source_with_the_cache_off_reads_the_files(kb_copy: Path, settings: Settings,
                                                                 reads: list[Path]) -> None:
    mine = dataclasses.replace(settings, knowledge_path=kb_copy, cache_path=None)
    KnowledgeSource(mine).reload()
    assert len(reads) == 2


def _config(tmp_path: Path, kb: Path, cache: Path | str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f'knowledge:\n  path: "{kb}"\n  cache_path: "{cache}"\nstorage:\n  enabled: false\n',
                      encoding="utf-8")
    return config


def test_ask_uses_the_cache(tmp_path: Path, kb_copy: Path, cache: Path, reads: list[Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, kb_copy, cache)
    assert main(["ask", "--config", str(config), "how many times can a port be used"]) == 0
    assert "2,000" in capsys.readouterr().out
    assert main(["ask", "--config", str(config), "can I swim"]) == 0
    assert len(reads) == 1 and cache_file(kb_copy, cache).is_file()


def test_ask_reports_a_broken_folder_as_before(tmp_path: Path, kb_copy: Path, cache: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
    assert main(["ask", "--config", str(_config(tmp_path, kb_copy, cache)), "hello"]) == 2
    assert "the knowledge base has errors" in capsys.readouterr().err and not cache.exists()


def test_validate_reads_the_files_themselves(tmp_path: Path, kb_copy: Path, cache: Path, reads: list[Path],
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Staff run validate to check what they wrote: never an answer from the cache."""
    config = _config(tmp_path, kb_copy, cache)
    load_prepared(kb_copy, cache)
    monkeypatch.setattr(prepared, "_read", lambda *args: pytest.fail("validate used the cache"))
    (kb_copy / FILE).write_text(BROKEN, encoding="utf-8")
    assert main(["validate", "--config", str(config)]) == 1
    assert "using-your-port.yaml:3" in capsys.readouterr().out


def test_a_command_in_a_subprocess_keeps_its_cache_under_xdg_cache_home(tmp_path: Path, kb_copy: Path) -> None:
    """The default place, as a started command sees it; and the session's own, never the real ~/.cache."""
    home = tmp_path / "xdg"
    config = tmp_path / "config.yaml"
    config.write_text(f'knowledge:\n  path: "{kb_copy}"\nstorage:\n  enabled: false\n', encoding="utf-8")
    env = {**os.environ, "XDG_CACHE_HOME": str(home)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "bot", "ask", "--config", str(config), "can I swim"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    assert [p.name for p in (home / "portbot").iterdir()] == [cache_file(kb_copy, home / "portbot").name]
