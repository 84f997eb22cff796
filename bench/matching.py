"""Benchmark: matching latency, load and index time and memory, beside a naive rapidfuzz baseline in the same run.

Run:  .venv/bin/python bench/matching.py [--sizes 33,1000,10000] [--messages 400]

Sizes other than the shipped knowledge base are generated from it: each generated entry copies a shipped
entry's phrasings (so phrasings keep the same proportion per entry) and adds a topic word of its own, so the
vocabulary and the number of distinct entries grow as they would in a larger guide. Messages are the project's
evaluation messages, each given the topic word of a random generated entry.

The naive baseline is what the issue names: rapidfuzz `process.extractOne` over all phrasings (lower-cased),
the way a first FAQ bot would be written. Memory is measured in a fresh subprocess per size (peak RSS).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz import fuzz, process  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.knowledge import KnowledgeBase, load_knowledge  # noqa: E402
from bot.matching import build_index, match  # noqa: E402

SYLLABLES = ["ka", "lo", "mi", "ru", "te", "vo", "zan", "pel", "dor", "fin", "gus", "hal", "jex", "nor", "quil", "sab"]


def topic_word(number: int) -> str:
    """A made-up but pronounceable word, distinct for each number (so it is never an English word)."""
    rng = random.Random(number)
    return "".join(rng.choice(SYLLABLES) for _ in range(3)) + SYLLABLES[number % len(SYLLABLES)] + "x"


def grown(kb: KnowledgeBase, size: int) -> KnowledgeBase:
    if size <= len(kb.entries):
        return kb
    entries = []
    for number in range(size):
        base = kb.entries[number % len(kb.entries)]
        word = topic_word(number)
        entries.append(dataclasses.replace(
            base, id=f"{base.id}-{number}", question=f"{base.question} ({word})",
            phrasings=tuple(f"{p} {word}" for p in base.phrasings), related=()))
    return dataclasses.replace(kb, entries=tuple(entries), by_id={e.id: e for e in entries})


def messages(size: int, count: int) -> list[str]:
    import yaml

    texts = []
    for name in ("patients.yaml", "holdout.yaml"):
        texts += [c["q"] for c in yaml.safe_load((ROOT / "tests" / "eval" / name).read_text())]
    rng = random.Random(7)
    out = []
    for _ in range(count):
        text = rng.choice(texts)
        out.append(text if size <= 33 else f"{text} {topic_word(rng.randrange(size))}")
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def measure(size: int, count: int) -> dict[str, float]:
    settings = load_settings(None, environ={})
    kb = grown(load_knowledge(settings.knowledge_path), size)
    started = time.perf_counter()
    index = build_index(kb)
    index_seconds = time.perf_counter() - started
    sample = messages(size, count)
    ours = []
    for text in sample:
        t0 = time.perf_counter()
        match(index, text, settings.matching)
        ours.append(time.perf_counter() - t0)
    choices = [p.lower() for e in kb.entries for p in (e.question, *e.phrasings)]
    naive = []
    for text in sample:
        t0 = time.perf_counter()
        process.extractOne(text.lower(), choices, scorer=fuzz.WRatio)
        naive.append(time.perf_counter() - t0)
    o50, o99 = percentiles(ours)
    n50, n99 = percentiles(naive)
    return {"size": size, "phrasings": len(choices), "index_s": index_seconds, "ours_p50_ms": 1000 * o50,
            "ours_p99_ms": 1000 * o99, "naive_p50_ms": 1000 * n50, "naive_p99_ms": 1000 * n99,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def ask_throughput(count: int) -> float:
    """Messages per second through `portbot ask --json -`, start-up included."""
    lines = "".join(m + "\n" for m in messages(33, count))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bot", "ask", "--json", "-"], input=lines, text=True, cwd=ROOT,
                   capture_output=True, check=True)
    return count / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="33,1000,10000")
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.messages)))
        return 0
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--messages", str(args.messages)],
                             capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out))
    print(f"{'entries':>8} {'phrasings':>9} {'index s':>8} {'ours p50':>9} {'ours p99':>9} "
          f"{'naive p50':>10} {'naive p99':>10} {'peak RSS':>9}")
    for r in rows:
        print(f"{r['size']:>8} {r['phrasings']:>9} {r['index_s']:>8.2f} {r['ours_p50_ms']:>7.2f}ms "
              f"{r['ours_p99_ms']:>7.2f}ms {r['naive_p50_ms']:>8.2f}ms {r['naive_p99_ms']:>8.2f}ms "
              f"{r['peak_rss_mb']:>6.0f} MB")
    print(f"\nportbot ask --json - : {ask_throughput(args.messages):.0f} messages/s (start-up included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
