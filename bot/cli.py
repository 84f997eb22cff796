"""Command line: one small function per sub-command, each returning an exit code."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.knowledge import KnowledgeError, check_knowledge
from bot.prepared import load_prepared
from bot.replies import Brain, build_brain, respond


class _Stop(Exception):
    """A one-line error for the person at the terminal, and the exit code to leave with."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(args.config)
    except ConfigError as error:
        raise _Stop(f"config error: {error}") from None


def _brain(settings: Settings) -> Brain:
    kb, index, problems = load_prepared(settings.knowledge_path, settings.cache_path)
    if kb is None:
        raise _Stop(f"the knowledge base has errors: {KnowledgeError(problems)}")
    return build_brain(kb, settings, index)


def cmd_console(args: argparse.Namespace) -> int:
    from bot.console import run_console
    from bot.reload import KnowledgeSource

    try:
        source = KnowledgeSource(_settings(args))
    except KnowledgeError as error:
        raise _Stop(f"the knowledge base has errors: {error}") from None

    def fresh() -> Brain:  # a look at the files before each message (about 0.1 ms when nothing changed)
        result = source.check()
        if result.changed:
            sys.stderr.write(f"[{result.message}]\n")
        return source.current()

    interactive = sys.stdin.isatty()
    try:
        return run_console(fresh, sys.stdin, sys.stdout, interactive, args.explain)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from bot.console import explain

    brain = _brain(_settings(args))
    messages = sys.stdin if args.message == ["-"] else [" ".join(args.message)]
    for line in messages:
        reply = respond(brain, line.rstrip("\n"))
        if args.json:
            payload = reply.as_json()
            if args.explain and reply.decision is not None:
                payload["explain"] = explain(reply)
            sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(reply.text + "\n")
            if args.explain:
                sys.stdout.write(explain(reply) + "\n")
            if args.message == ["-"]:
                sys.stdout.write("\n")
        sys.stdout.flush()
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bot.validate import validate

    settings = _settings(args)
    path = Path(args.path) if args.path else settings.knowledge_path
    kb, problems = check_knowledge(path)  # always the files themselves: staff run this to check what they wrote
    return validate(kb, problems, settings, path, sys.stdout)


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluate import load_cases, run_cases, summarize, table
    from bot.yamlfile import YamlProblem

    settings = _settings(args)
    path = Path(args.file) if args.file else settings.knowledge_path / "tests.yaml"
    try:
        cases = load_cases(path)
    except YamlProblem as error:
        raise _Stop(str(error.problem)) from None
    results = run_cases(_brain(settings), cases)
    if not args.failures or any(not r.ok for r in results):
        sys.stdout.write(table(results, failures_only=args.failures) + "\n\n")
    failed = sum(not r.ok for r in results)
    sys.stdout.write(f"{path}: {len(results) - failed} of {len(results)} passed; {summarize(results).line()}\n")
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from bot.report import build_report, report_json, report_text
    from bot.store import Row, SqliteRecorder, StoreError

    settings = _settings(args)
    since = dt.datetime.combine(args.since, dt.time(), dt.UTC) if args.since else None
    rows: list[Row] = []
    if settings.storage.path.exists():
        try:
            with SqliteRecorder(settings.storage) as store:
                rows = store.rows(since)
        except StoreError as error:
            raise _Stop(str(error), 1) from None
    else:
        sys.stderr.write(f"portbot: nothing recorded yet ({settings.storage.path} does not exist)\n")
    report = build_report(rows, _brain(settings), since)
    if args.json:
        sys.stdout.write(json.dumps(report_json(report), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(report_text(report) + "\n")
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date like 2026-03-01") from None


def cmd_telegram(args: argparse.Namespace) -> int:
    from bot.reload import KnowledgeSource, watch
    from bot.store import open_recorder
    from bot.telegram_app import run

    settings = _settings(args)
    try:
        source = KnowledgeSource(settings)
    except KnowledgeError as error:
        raise _Stop(f"the knowledge base has errors: {error}") from None

    async def watcher() -> None:  # cancelled by the bot when it stops
        await watch(source, settings.reload_seconds)

    recorder = open_recorder(settings)
    try:
        return run(settings, source.current(), recorder, brain_source=source.current, background=[watcher],
                   reload=source.reload)
    finally:
        close = getattr(recorder, "close", None)  # a SqliteRecorder; the NullRecorder holds nothing
        if close is not None:
            close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portbot", description="PortBot: answers patients' questions about "
                                     "venous access ports from a staff-curated knowledge base.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", metavar="PATH", help="config file (default: ./config.yaml if present, else "
                       "built-in defaults)")
        return p

    p = command("console", "chat with the bot in the terminal")
    p.add_argument("--explain", action="store_true", help="show candidates, scores and the decision")
    p.set_defaults(func=cmd_console)

    p = command("ask", "answer one message, or one per line of standard input with '-'")
    p.add_argument("message", nargs="+", help="the message, or - to read one message a line from stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per message (see README)")
    p.add_argument("--explain", action="store_true", help="show candidates, scores and the decision")
    p.set_defaults(func=cmd_ask)

    p = command("validate", "check the knowledge base and list every problem with file, line and entry")
    p.add_argument("path", nargs="?", help="knowledge folder (default: knowledge.path from the config)")
    p.set_defaults(func=cmd_validate)

    p = command("eval", "run staff regression checks: messages and the reply each must get")
    p.add_argument("file", nargs="?", help="cases file (default: tests.yaml in the knowledge folder)")
    p.add_argument("--failures", action="store_true", help="list only the cases that fail")
    p.set_defaults(func=cmd_eval)

    p = command("report", "what patients asked: counts, feedback, and the questions the guide did not answer")
    p.add_argument("--since", type=_date, metavar="DATE", help="only records from this day on (YYYY-MM-DD)")
    p.add_argument("--json", action="store_true", help="JSON for tools instead of text")
    p.set_defaults(func=cmd_report)

    p = command("telegram", "run the Telegram bot (token from TELEGRAM_BOT_TOKEN)")
    p.set_defaults(func=cmd_telegram)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for stream in (sys.stdin, sys.stdout):
        # A stray byte that is not UTF-8 must not end a session with a traceback.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    try:
        return int(args.func(args))
    except _Stop as stop:
        sys.stderr.write(f"portbot: {stop}\n")
        return stop.code
    except BrokenPipeError:
        return 0
