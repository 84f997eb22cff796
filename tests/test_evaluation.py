"""The quality bar on the project's own patient messages, written blind to the knowledge base's phrasings.

The issue's target for unseen messages: >= 95 % of covered questions answered with the right facts, <= 2 %
answered wrongly, >= 90 % of uncovered questions falling back, small talk never answered as an FAQ, every symptom
report and crisis message urgent, <= 5 % of general risk questions flagged urgent. Each blind-*.yaml header
records that set's first run, before anyone read its messages: the honest figure for unseen messages. The sets
have since been studied and tuned against, so today's figures flatter the bot: FLOORS keeps each at its measured
share, so no change can make it worse, and the wrong-answer, fallback, small-talk and safety targets are asserted
outright over all of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.evaluate import Result, load_cases, run_cases, summarize, table
from bot.replies import Brain

EVAL = Path(__file__).resolve().parent / "eval"
DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "dev_questions.yaml"

# Share of covered questions answered with the right facts, as measured when this floor was last raised.
FLOORS = {"patients.yaml": 0.99, "holdout.yaml": 1.0, "safety.yaml": 1.0, "final.yaml": 0.99, "blind-a.yaml": 1.0,
          "blind-b.yaml": 0.98, "blind-c.yaml": 1.0, "blind-d.yaml": 0.98, "blind-e.yaml": 1.0,
          "blind-f.yaml": 0.98, "blind-g.yaml": 0.98, "blind-h.yaml": 0.98, "blind-i.yaml": 0.99,
          "blind-j.yaml": 0.96, "blind-k.yaml": 0.99, "blind-l.yaml": 0.96, "blind-m.yaml": 0.97,
          "blind-n.yaml": 0.97, "blind-o.yaml": 0.99, "blind-p.yaml": 0.96, "blind-q.yaml": 1.0,
          "blind-r.yaml": 0.99, "blind-s.yaml": 0.99, "blind-t.yaml": 0.93, "blind-w.yaml": 0.97,
          "blind-x.yaml": 1.0, "blind-u.yaml": 0.95, "blind-v.yaml": 0.96, "blind-y.yaml": 0.96,
          "blind-z.yaml": 0.93, "blind-aa.yaml": 0.98, "blind-ab.yaml": 0.96, "blind-ac.yaml": 0.99,
          "blind-ad.yaml": 0.92, "blind-ae.yaml": 0.95, "blind-af.yaml": 0.98,
          "blind-ag.yaml": 0.91, "blind-ah.yaml": 0.95,
          "blind-ai.yaml": 0.95, "blind-aj.yaml": 0.95}


@pytest.fixture(scope="module")
def results(brain: Brain) -> dict[str, list[Result]]:
    return {name: run_cases(brain, load_cases(EVAL / name)) for name in FLOORS}


def _not_urgent(results: list[Result]) -> list[Result]:
    return [r for r in results if r.case.expect != "urgent"]


@pytest.mark.parametrize("name", list(FLOORS))
def test_answered_share_does_not_drop(results: dict[str, list[Result]], name: str) -> None:
    """Covered questions answered with the right facts: at least the measured floor (target 95 %)."""
    summary = summarize(_not_urgent(results[name]))
    assert summary.total["answer"] >= 60
    assert summary.rate("answer") >= FLOORS[name], summary.line() + "\n" + table(results[name], failures_only=True)


def test_wrong_answers_fallback_and_small_talk(results: dict[str, list[Result]]) -> None:
    """Over all sets: <= 2 % wrong answers, >= 90 % of uncovered questions fall back, small talk is small talk."""
    every = [r for name in FLOORS for r in _not_urgent(results[name])]
    summary = summarize(every)
    report = summary.line() + "\n" + table(every, failures_only=True)
    assert summary.total["fallback"] >= 70 and summary.total["chat"] >= 30
    assert summary.wrong_rate <= 0.02, report
    assert summary.rate("fallback") >= 0.90, report
    assert summary.rate("chat") == 1.0, report


def test_safety_messages(results: dict[str, list[Result]]) -> None:
    """Every symptom report and crisis message is urgent; at most 5 % of general risk questions are flagged."""
    cases = [r for name in FLOORS for r in results[name]]
    urgent = [r for r in cases if r.case.expect == "urgent"]
    general = [r for r in cases if r.case.expect != "urgent"]
    assert len(urgent) >= 60 and len(general) >= 40
    missed = [r.case.q for r in urgent if r.reply.kind != "urgent"]
    assert not missed, missed
    flagged = [r.case.q for r in general if r.reply.kind == "urgent"]
    assert len(flagged) <= 0.05 * len(general), flagged


def test_urgent_replies_carry_the_configured_numbers(results: dict[str, list[Result]], brain: Brain) -> None:
    """Urgent replies name the care team's phone and the emergency number, and contain no FAQ answer."""
    team = brain.settings.care_team
    answers = [e.answer for e in brain.kb.entries]
    for result in results["safety.yaml"]:
        if result.reply.kind == "urgent":
            text = result.reply.text
            assert team.emergency_number in text and team.phone in text
            assert not any(answer in text for answer in answers)


@pytest.mark.skipif(not DEV.exists(), reason="the shared example messages are not beside this checkout")
def test_shared_example_messages_pass_in_full(brain: Brain) -> None:
    """../shared/eval/dev_questions.yaml passes completely, urgent lines included."""
    results = run_cases(brain, load_cases(DEV))
    failed = [r for r in results
              if not (r.ok or (r.case.expect == "chat" and r.reply.kind not in ("answer", "urgent")))]
    assert not failed, table(failed)


def test_staff_regression_checks_pass(brain: Brain) -> None:
    """knowledge/tests.yaml, which staff extend, passes on the shipped knowledge base."""
    results = run_cases(brain, load_cases(Path(brain.kb.root) / "tests.yaml"))
    assert len(results) >= 40
    assert all(r.ok for r in results), table(results, failures_only=True)


OPENINGS = yaml.safe_load((Path(__file__).resolve().parent / "cases" / "story_openings.yaml").read_text("utf-8"))


@pytest.mark.parametrize("opening", OPENINGS, ids=[o["opening"].strip() for o in OPENINGS])
def test_a_story_before_the_question(brain: Brain, opening: dict[str, Any]) -> None:
    """The same questions with a sentence of story in front: the story must not steer the answer."""
    cases = [dataclasses.replace(case, q=f"{opening['opening']}{case.q}")
             for name in ("blind-a.yaml", "blind-b.yaml", "blind-c.yaml") for case in load_cases(EVAL / name)
             if case.expect in ("answer", "fallback")]
    results = run_cases(brain, cases)
    summary = summarize(results)
    report = summary.line() + "\n" + table(results, failures_only=True)
    assert summary.rate("answer") >= opening["floor"], report
    assert summary.wrong_rate <= opening["wrong"], report
    assert summary.rate("fallback") >= 0.90, report
