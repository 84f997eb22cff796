"""Benchmark: matching latency, load and index time and memory, beside a naive rapidfuzz baseline in the same run.

Run:  .venv/bin/python bench/matching.py [--sizes 33,1000,10000] [--messages 400]

Sizes other than the shipped knowledge base are generated from it: each generated entry copies a shipped
entry's phrasings (so phrasings keep the same proportion per entry) and adds a topic word of its own, so the
vocabulary and the number of distinct entries grow as they would in a larger guide. A generated knowledge base is
written as a knowledge folder (YAML, 100 entries a file, beside copies of the shipped synonyms, texts, safety...)
to a temporary folder, and loaded from there like the real one. Messages are the project's evaluation messages,
each given the topic word of a random generated entry.

Each size is measured in a fresh subprocess: "load" reads and checks the folder (load_knowledge), "index" builds
the matching index (build_index), and "peak RSS" is the process's peak resident memory once both are done and the
English word list is read too. That list, which typo repair and matching consult, is read on the first message
(once per process, whatever the size of the guide): its time is printed below the table and kept out of the
latency figures. Latencies are wall-clock times of match() for each message in turn, caches starting cold.

The naive baseline is what the issue names: rapidfuzz `process.extractOne` over all phrasings (lower-cased),
the way a first FAQ bot would be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz import fuzz, process  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.knowledge import KnowledgeBase, load_knowledge  # noqa: E402
from bot.matching import build_index, match  # noqa: E402
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


def measure(size: int, folder: Path, count: int) -> dict[str, float]:
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    return {"size": len(kb.entries), "phrasings": len(choices), "load_s": load_seconds, "index_s": index_seconds,
            "words_s": words_seconds, "ours_p50_ms": 1000 * o50, "ours_p99_ms": 1000 * o99,
            "naive_p50_ms": 1000 * n50, "naive_p99_ms": 1000 * n99, "peak_rss_mb": peak}


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
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.folder, args.messages)))
        return 0
    shipped = load_settings(None, environ={}).knowledge_path
    kb = load_knowledge(shipped)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="portbot-bench-") as temp:
            folder = shipped
            if size > len(kb.entries):
                folder = Path(temp)
                write_folder(grown(kb, size), shipped, folder)
            out = subprocess.run([sys.executable, __file__, "--one", str(size), "--folder", str(folder),
                                  "--messages", str(args.messages)], capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out))
    print(f"{'entries':>8} {'phrasings':>9} {'load s':>7} {'index s':>8} {'ours p50':>9} {'ours p99':>9} "
          f"{'naive p50':>10} {'naive p99':>10} {'peak RSS':>9}")
    for r in rows:
        print(f"{r['size']:>8} {r['phrasings']:>9} {r['load_s']:>7.2f} {r['index_s']:>8.2f} {r['ours_p50_ms']:>7.2f}ms "
              f"{r['ours_p99_ms']:>7.2f}ms {r['naive_p50_ms']:>8.2f}ms {r['naive_p99_ms']:>8.2f}ms "
              f"{r['peak_rss_mb']:>6.0f} MB")
    words = statistics.median(r["words_s"] for r in rows)
    print(f"\nEnglish word list, read on the first message (once per process): {words:.2f} s")
    print(f"portbot ask --json - : {ask_throughput(args.messages):.0f} messages/s (start-up included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
