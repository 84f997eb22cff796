"""Benchmark: matching latency, load and index time (cold and from the prepared file) and memory, beside a naive
rapidfuzz baseline in the same run.

Run:  .venv/bin/python bench/matching.py [--sizes 33,1000,10000] [--messages 400]

Sizes other than the shipped knowledge base are generated from it: each generated entry copies a shipped
entry's phrasings (so phrasings keep the same proportion per entry) and adds a topic word of its own, so the
vocabulary and the number of distinct entries grow as they would in a larger guide. A generated knowledge base is
written as a knowledge folder (YAML, 100 entries a file, beside copies of the shipped synonyms, texts, safety...)
to a temporary folder, and loaded from there like the real one. Messages are the project's evaluation messages,
each given the topic word of a random generated entry.

Each size is measured in fresh subprocesses. Cold (no prepared file): "load" reads and checks the folder
(load_knowledge) and "index" builds the matching index (build_index). Then one process loads the folder with
load_prepared into an empty cache folder in the temporary folder (a miss: it reads, indexes and saves the prepared
file; printed below the table), and a fresh one loads it again: "warm" is that load_prepared call, a hit (the bench
fails if it reads the YAML), from hashing the knowledge files to the unpickled index. "peak RSS" is the process's
peak resident memory once the knowledge base and index are loaded and the English word list is read too. That
list, which typo repair and matching consult, is read on the first message (once per process, whatever the size
of the guide): its time is printed below the table and kept out of the latency figures. Latencies are wall-clock
times of match() for each message in turn, caches starting cold, in the cold process; the warm process matches
the same messages and the bench checks that every decision is the same as the cold one's.

The naive baseline is what the issue names: rapidfuzz `process.extractOne` over all phrasings (lower-cased),
the way a first FAQ bot would be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz import fuzz, process  # noqa: E402

from bot import prepared  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.knowledge import KnowledgeBase, load_knowledge  # noqa: E402
from bot.matching import Decision, build_index, match  # noqa: E402
from bot.normalize import english_words  # noqa: E402

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


def write_folder(kb: KnowledgeBase, shipped: Path, folder: Path, per_file: int = 100) -> None:
    """`kb` as a knowledge folder: its entries in faq/ files of `per_file` entries, the rest copied from `shipped`."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    for path in shipped.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    (folder / "faq").mkdir()
    for start in range(0, len(kb.entries), per_file):
        items = []
        for e in kb.entries[start : start + per_file]:
            item = {"id": e.id, "question": e.question, "phrasings": list(e.phrasings), "answer": e.answer,
                    "category": e.category, "source": e.source, "reviewed": e.reviewed}
            if e.related:
                item["related"] = list(e.related)
            if e.warning_signs:
                item["warning_signs"] = True
            items.append(item)
        text = yaml.dump({"entries": items}, Dumper=dumper, sort_keys=False, allow_unicode=True, width=1000)
        (folder / "faq" / f"part-{start // per_file:04d}.yaml").write_text(text, encoding="utf-8")


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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def decisions_digest(decisions: list[Decision]) -> str:
    """One digest of every outcome, candidate and exact score: equal digests, the same decisions."""
    text = repr([(d.outcome, [(c.entry, c.score) for c in d.candidates]) for d in decisions])
    return hashlib.sha256(text.encode()).hexdigest()


def measure(size: int, folder: Path, count: int) -> dict[str, float | str]:
    settings = load_settings(None, environ={})
    started = time.perf_counter()
    kb = load_knowledge(folder)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index = build_index(kb)
    index_seconds = time.perf_counter() - started
    started = time.perf_counter()
    english_words()
    words_seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    sample = messages(size, count)
    ours = []
    decisions = []
    for text in sample:
        t0 = time.perf_counter()
        decision = match(index, text, settings.matching)
        ours.append(time.perf_counter() - t0)
        decisions.append(decision)
    choices = [p.lower() for e in kb.entries for p in (e.question, *e.phrasings)]
    naive = []
    for text in sample:
        t0 = time.perf_counter()
        process.extractOne(text.lower(), choices, scorer=fuzz.WRatio)
        naive.append(time.perf_counter() - t0)
    o50, o99 = percentiles(ours)
    n50, n99 = percentiles(naive)
    return {"size": len(kb.entries), "phrasings": len(choices), "load_s": load_seconds, "index_s": index_seconds,
            "words_s": words_seconds, "ours_p50_ms": 1000 * o50, "ours_p99_ms": 1000 * o99,
            "naive_p50_ms": 1000 * n50, "naive_p99_ms": 1000 * n99, "peak_rss_mb": peak,
            "decisions": decisions_digest(decisions)}


def measure_prepared(size: int, folder: Path, cache: Path, count: int, warm: bool) -> dict[str, float | str]:
    """load_prepared into `cache`: the saving miss (warm False) or, in a fresh process, the hit (warm True)."""
    if warm:
        def no_reading(path: Path) -> object:
            raise SystemExit(f"the warm load of {path} read the YAML files: the prepared file was not used")

        setattr(prepared, "check_knowledge", no_reading)  # noqa: B010 (mypy: a private name of bot.prepared)
    started = time.perf_counter()
    kb, index, _ = prepared.load_prepared(folder, cache)
    seconds = time.perf_counter() - started
    assert kb is not None and index is not None
    english_words()
    peak = peak_rss_mb()
    out: dict[str, float | str] = {"seconds": seconds, "peak_rss_mb": peak}
    if warm:
        settings = load_settings(None, environ={})
        out["decisions"] = decisions_digest([match(index, text, settings.matching) for text in messages(size, count)])
    return out


def ask_throughput(count: int) -> float:
    """Messages per second through `portbot ask --json -`, start-up included, with the prepared knowledge present
    (as after the first start), kept in a temporary cache folder rather than the user's."""
    lines = "".join(m + "\n" for m in messages(33, count))
    with tempfile.TemporaryDirectory(prefix="portbot-bench-cache-") as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        command = [sys.executable, "-m", "bot", "ask", "--json", "-"]
        subprocess.run(command, input="hello\n", text=True, cwd=ROOT, env=env, capture_output=True, check=True)
        t0 = time.perf_counter()
        subprocess.run(command, input=lines, text=True, cwd=ROOT, env=env, capture_output=True, check=True)
        return count / (time.perf_counter() - t0)


def run_one(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True).stdout
    found: dict[str, Any] = json.loads(out)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="33,1000,10000")
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        if args.cache is None:
            print(json.dumps(measure(args.one, args.folder, args.messages)))
        else:
            print(json.dumps(measure_prepared(args.one, args.folder, args.cache, args.messages, args.warm)))
        return 0
    shipped = load_settings(None, environ={}).knowledge_path
    kb = load_knowledge(shipped)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="portbot-bench-") as temp:
            folder, cache = shipped, Path(temp) / "cache"
            if size > len(kb.entries):
                folder = Path(temp) / "knowledge"
                folder.mkdir()
                write_folder(grown(kb, size), shipped, folder)
            common = ["--one", str(size), "--folder", str(folder), "--messages", str(args.messages)]
            row = run_one(*common)
            row["first"] = run_one(*common, "--cache", str(cache))
            row["warm"] = run_one(*common, "--cache", str(cache), "--warm")
        if row["warm"]["decisions"] != row["decisions"]:
            raise SystemExit(f"{size} entries: the prepared knowledge base decided differently from the cold one "
                             "(or the code or the evaluation messages changed during the run)")
        rows.append(row)
    print(f"{'entries':>8} {'phrasings':>9} {'cold load':>9} {'index':>6} {'= cold':>7} {'warm':>6} "
          f"{'ours p50':>9} {'ours p99':>9} {'naive p50':>10} {'naive p99':>10} {'RSS cold':>9} {'RSS warm':>9}")
    for r in rows:
        print(f"{r['size']:>8} {r['phrasings']:>9} {r['load_s']:>8.2f}s {r['index_s']:>5.2f}s "
              f"{r['load_s'] + r['index_s']:>6.2f}s {r['warm']['seconds']:>5.2f}s "
              f"{r['ours_p50_ms']:>7.2f}ms {r['ours_p99_ms']:>7.2f}ms {r['naive_p50_ms']:>8.2f}ms "
              f"{r['naive_p99_ms']:>8.2f}ms {r['peak_rss_mb']:>6.0f} MB {r['warm']['peak_rss_mb']:>6.0f} MB")
    print("\nFirst start with the cache on (reads, indexes and saves the prepared file):")
    for r in rows:
        print(f"{r['size']:>8} entries: {r['first']['seconds']:.2f} s, peak RSS {r['first']['peak_rss_mb']:.0f} MB")
    print("Warm decisions identical to cold ones for every message, at every size.")
    words = statistics.median(r["words_s"] for r in rows)
    print(f"\nEnglish word list, read on the first message (once per process): {words:.2f} s")
    print(f"portbot ask --json - : {ask_throughput(args.messages):.0f} messages/s (start-up included, prepared "
          "knowledge present)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
