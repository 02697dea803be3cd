"""The ``fast-crewai`` command.

Examples:

    fast-crewai status              # what is patched, which backend serves it
    fast-crewai status --json
    fast-crewai bench --quick       # side-by-side benchmarks, ratios
    fast-crewai bench serde --json
    fast-crewai bench crew          # the demo crew, stock vs the shim, and the shim's import time
    fast-crewai demo                # an offline crew on the accelerated store
    fast-crewai migrate-memory      # copy CrewAI's LanceDB memory into the accelerated store
    fast-crewai migrate-memory --from ~/old/memory --to ./memory --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _status(args: argparse.Namespace) -> int:
    from .runtime.patches import enable_acceleration, format_status, status

    report = enable_acceleration() if args.enable else status()
    print(json.dumps(report, indent=2) if args.json else format_status(report))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import run_benchmarks

    results = run_benchmarks(args.suites or None, quick=args.quick, emit=not args.json)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo.crew import run_demo

    exit_code: int = run_demo(json_output=args.json)
    return exit_code


def _migrate_memory(args: argparse.Namespace) -> int:
    from ._errors import MigrationError
    from .memory_search._migrate import migrate_memory

    try:
        report = migrate_memory(args.source, args.destination)
    except MigrationError as exc:
        print(f"migrate-memory: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for key, value in report.items():
            print(f"{key:>20}: {value}")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="fast-crewai", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="what is accelerated and by which backend")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--enable", action="store_true", help="enable acceleration first, then report")
    status.set_defaults(func=_status)
    bench = sub.add_parser("bench", help="run the benchmarks side by side with the stock alternatives")
    bench.add_argument("suites", nargs="*", help="serde, memory, sqlite, tasks, tools, crew (default: all)")
    bench.add_argument("--quick", action="store_true", help="small sizes only")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument("--out", help="also write the results as JSON to this file")
    bench.set_defaults(func=_bench)
    demo = sub.add_parser("demo", help="run an offline demo crew with acceleration on")
    demo.add_argument("--json", action="store_true", help="print the outcome as JSON")
    demo.set_defaults(func=_demo)
    migrate = sub.add_parser(
        "migrate-memory",
        help="copy a LanceDB memory store into the accelerated store (the source is left untouched)",
    )
    migrate.add_argument("--from", dest="source", help="LanceDB memory directory (default: CrewAI's)")
    migrate.add_argument("--to", dest="destination", help="accelerated store directory (default: CrewAI's)")
    migrate.add_argument("--json", action="store_true", help="print the report as JSON")
    migrate.set_defaults(func=_migrate_memory)
    args = parser.parse_args(argv)
    sys.exit(args.func(args))
