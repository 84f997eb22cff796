"""The report counts what happened and groups the questions the guide did not answer, with a suggestion for each."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_settings
from bot.events import Event
from bot.replies import Brain
from bot.report import NEW_ENTRY, build_report, cluster, report_json, report_text, stats_text
from bot.store import Row, SqliteRecorder

NOW = dt.datetime(2026, 3, 12, 10, 0, tzinfo=dt.UTC)

TATTOO = ["can I get a tattoo near my port", "is a tattoo ok with a port", "tattoo over my port?",
          "Can I get a TATTOO near my port"]
DRIVING = ["can i drive after getting my port", "driving with a port", "can I drive home after the port is put in"]


def _row(kind: str, entry: str | None = None, score: float | None = None, helpful: bool | None = None,
         message: str | None = None) -> Row:
    return Row(NOW, kind, entry, score, helpful, message)


def _rows() -> list[Row]:
    rows = [_row("answer", "everyday-activities", 0.9), _row("answer", "everyday-activities", 0.8),
            _row("answer", "cost", 0.95), _row("feedback", "everyday-activities", helpful=True),
            _row("feedback", "everyday-activities", helpful=False), _row("feedback", "cost", helpful=True),
            _row("urgent"), _row("chat"), _row("none_of_these"), _row("none_of_these")]
    rows += [_row("fallback", score=0.3, message=text) for text in TATTOO]
    rows += [_row("clarify" if "home" in text else "fallback", score=0.4, message=text) for text in DRIVING]
    rows += [_row("fallback", message="what is a pneumothorax exactly?")]
    return [dataclasses.replace(row, at=NOW + dt.timedelta(minutes=i)) for i, row in enumerate(rows)]


def test_counts_by_kind_and_entry_with_feedback(brain: Brain) -> None:
    report = build_report(_rows(), brain)
    kinds = dict(report.kinds)
    assert kinds["answer"] == 3 and kinds["fallback"] == 7 and kinds["clarify"] == 1 and kinds["urgent"] == 1
    assert report.none_of_these == 2 and report.total == len(_rows())
    entries = {e.entry: (e.answers, e.helpful, e.unhelpful) for e in report.entries}
    assert entries == {"everyday-activities": (2, 1, 1), "cost": (1, 1, 0)}
    assert report.entries[0].entry == "everyday-activities"  # most answered first


def test_similar_uncovered_questions_are_grouped_most_frequent_first(brain: Brain) -> None:
    report = build_report(_rows(), brain)
    first, second = report.groups[0], report.groups[1]
    assert first.count == 4 and {e.casefold() for e in first.examples} <= {t.casefold() for t in TATTOO}
    assert first.examples[0].casefold() == "can i get a tattoo near my port"  # the most asked wording leads
    assert len(first.examples) == 3
    assert second.count == 3 and dict(second.kinds) == {"fallback": 2, "clarify": 1}
    assert all("drive" in e or "driving" in e for e in second.examples)
    assert first.suggestion == NEW_ENTRY


def test_a_known_question_in_other_words_is_suggested_as_a_phrasing(brain: Brain) -> None:
    report = build_report(_rows(), brain)
    group = next(g for g in report.groups if "pneumothorax" in g.examples[0])
    assert group.nearest == "pneumothorax" and group.score is not None and group.score > 0.5
    assert group.suggestion == "add as a phrasing of pneumothorax"


@pytest.mark.parametrize(("texts", "groups"), [
    (["can I fly with my port", "can I drive with my port"], 2),
    (["tattoo", "tattoo near my port", "can i get a tattoo"], 1),
    (["port", "port?", "can I swim"], 2),
    (["what", "what?", "hmm"], 2),
    ([], 0),
])
def test_clustering(texts: list[str], groups: int) -> None:
    assert len(cluster(texts)) == groups


def test_rows_without_text_are_counted_but_not_grouped(brain: Brain) -> None:
    report = build_report([_row("fallback"), _row("clarify")], brain)
    assert dict(report.kinds) == {"clarify": 1, "fallback": 1} and report.groups == ()


def test_text_json_and_stats(brain: Brain) -> None:
    report = build_report(_rows(), brain)
    text = report_text(report)
    assert "Questions the guide did not answer" in text and '"can I get a tattoo near my port"' in text
    assert "suggestion: add as a phrasing of pneumothorax" in text and "None of these" in text
    payload = json.loads(json.dumps(report_json(report), ensure_ascii=False))
    assert payload["uncovered"][0]["count"] == 4 and payload["kinds"]["answer"] == 3
    assert payload["first"] == "2026-03-12T10:00:00Z"
    stats = stats_text(report)
    assert len(stats.splitlines()) <= 8 and "tattoo" in stats and "👍 2" in stats


def test_an_empty_report_reads_well(brain: Brain) -> None:
    report = build_report([], brain)
    assert "nothing recorded" in report_text(report) and "nothing recorded" in stats_text(report)


# -- portbot report ------------------------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("storage:\n  path: data/portbot.sqlite3\n  hash_key: 'a test key'\n")
    return path


def _record(config: Path, events: list[Event], at: dt.datetime) -> None:
    with SqliteRecorder(load_settings(config, environ={}).storage, clock=lambda: at) as store:
        for event in events:
            store.record(event)


def test_portbot_report(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    _record(config, [Event("fallback", str(n), message=text) for n, text in enumerate(TATTOO)], now)
    _record(config, [Event("answer", "1", "cost", 0.9), Event("fallback", "7", message="can i drive with it")],
            now - dt.timedelta(days=3))
    assert main(["report", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "asked 4 times" in out and "tattoo" in out and "drive" in out
    since = (now - dt.timedelta(days=1)).date().isoformat()
    assert main(["report", "--json", "--since", since, "--config", str(config)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["total"] == 4 and [g["count"] for g in payload["uncovered"]] == [4]


def test_portbot_report_with_nothing_recorded(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "nothing recorded" in captured.err and "0 replies" in captured.out
    assert not (config.parent / "data").exists()


def test_portbot_report_rejects_a_bad_date(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["report", "--since", "12/03/2026", "--config", str(config)])
    assert stop.value.code == 2 and "2026-03-01" in capsys.readouterr().err
