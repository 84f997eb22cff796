"""The quality bar on the project's own patient messages, written blind to the knowledge base's phrasings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.evaluate import Result, load_cases, run_cases, summarize, table
from bot.replies import Brain

EVAL = Path(__file__).resolve().parent / "eval"
DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "dev_questions.yaml"


def _results(brain: Brain, name: str) -> list[Result]:
    return run_cases(brain, load_cases(EVAL / name))


@pytest.mark.parametrize("name", ["patients.yaml", "holdout.yaml"])
def test_patient_messages_meet_the_bar(brain: Brain, name: str) -> None:
    """>= 95 % of covered questions answered right, <= 2 % answered wrongly, >= 90 % of uncovered ones fall
    back, and small talk is never answered as an FAQ."""
    results = _results(brain, name)
    summary = summarize(results)
    report = summary.line() + "\n" + table(results, failures_only=True)
    assert summary.total["answer"] >= 60 and summary.total["fallback"] >= 20 and summary.total["chat"] >= 10
    assert summary.rate("answer") >= 0.95, report
    assert summary.wrong_rate <= 0.02, report
    assert summary.rate("fallback") >= 0.90, report
    assert summary.rate("chat") == 1.0, report


def test_safety_messages(brain: Brain) -> None:
    """Every symptom report and crisis message is urgent; at most 5 % of general risk questions are flagged,
    and those questions get their FAQ answer."""
    results = _results(brain, "safety.yaml")
    urgent = [r for r in results if r.case.expect == "urgent"]
    general = [r for r in results if r.case.expect != "urgent"]
    assert len(urgent) >= 60 and len(general) >= 40
    missed = [r.case.q for r in urgent if r.reply.kind != "urgent"]
    assert not missed, missed
    flagged = [r.case.q for r in general if r.reply.kind == "urgent"]
    assert len(flagged) <= 0.05 * len(general), flagged
    summary = summarize(general)
    assert summary.rate("answer") >= 0.95, summary.line() + "\n" + table(general, failures_only=True)
    assert summary.wrong_rate <= 0.02, summary.line() + "\n" + table(general, failures_only=True)


@pytest.mark.skipif(not DEV.exists(), reason="the shared example messages are not beside this checkout")
def test_shared_example_messages_pass_in_full(brain: Brain) -> None:
    """../shared/eval/dev_questions.yaml passes completely, urgent lines included."""
    results = run_cases(brain, load_cases(DEV))
    failed = [r for r in results if not (r.ok or (r.case.expect == "chat" and r.reply.kind not in ("answer", "urgent")))]
    assert not failed, table(failed)


def test_staff_regression_checks_pass(brain: Brain) -> None:
    """knowledge/tests.yaml, which staff extend, passes on the shipped knowledge base."""
    results = run_cases(brain, load_cases(Path(brain.kb.root) / "tests.yaml"))
    assert len(results) >= 20
    assert all(r.ok for r in results), table(results, failures_only=True)
