"""Writes the tool-guard corpus (``fast_crewai.bench.tool_corpus``) next to
this file: ``python3 tests/tool_guard/corpus/build.py``. The output is
deterministic; the files are committed so a change shows in review."""

from __future__ import annotations

import json
from pathlib import Path

from fast_crewai.bench.tool_corpus import structured_output_cases, tool_argument_cases

HERE = Path(__file__).resolve().parent


def main() -> None:
    for name, cases in (
        ("tool_arguments.jsonl", tool_argument_cases()),
        ("structured_outputs.jsonl", structured_output_cases()),
    ):
        lines = [json.dumps(case, ensure_ascii=False) for case in cases]
        (HERE / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(cases)} cases")


if __name__ == "__main__":
    main()
