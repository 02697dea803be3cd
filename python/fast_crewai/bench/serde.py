"""Message serde through the core, side by side with ``json`` and ``orjson``.

The core validates strictly and canonicalises; the stock codecs do neither,
so expect them to be faster: the ratios say by how much.
"""

from __future__ import annotations

import json
from typing import Any

from ..message_serde._message import AgentMessage, serde_backend
from . import ratio, timings


def _messages(count: int) -> list[AgentMessage]:
    return [
        AgentMessage(
            id=f"msg-{i}",
            sender="researcher",
            recipient="writer",
            content=f"Finding {i}: the market grew 12% — see “report” 📈 for details. " * 3,
            timestamp=1_700_000_000.0 + i,
            metadata={"task": "analysis", "step": i, "score": 0.5 + i / 1e4, "tags": ["a", "b"]},
        )
        for i in range(count)
    ]


def run(quick: bool) -> dict[str, Any]:
    orjson: Any
    try:
        import orjson
    except ImportError:  # orjson is optional: report without it
        orjson = None
    repeat = 200 if quick else 1000
    batch_repeat = 20 if quick else 50
    (one,) = _messages(1)
    batch = _messages(1000)
    one_dict = one._as_dict()
    batch_dicts = [m._as_dict() for m in batch]
    one_text = one.to_json()
    batch_text = AgentMessage.encode_many(batch)
    backend = serde_backend()

    rows: dict[str, dict[str, float]] = {
        "encode_one": {
            "core": timings(one.to_json, repeat)["p50"],
            "json": timings(lambda: json.dumps(one_dict, ensure_ascii=False), repeat)["p50"],
        },
        "decode_one": {
            "core": timings(lambda: AgentMessage.from_json(one_text), repeat)["p50"],
            "json": timings(lambda: AgentMessage(**json.loads(one_text)), repeat)["p50"],
        },
        "encode_batch_1000": {
            "core": timings(lambda: AgentMessage.encode_many(batch), batch_repeat)["p50"],
            "json": timings(lambda: json.dumps(batch_dicts, ensure_ascii=False), batch_repeat)["p50"],
        },
        "decode_batch_1000": {
            "core": timings(lambda: AgentMessage.decode_many(batch_text), batch_repeat)["p50"],
            "json": timings(lambda: [AgentMessage(**d) for d in json.loads(batch_text)], batch_repeat)["p50"],
        },
        "validate_batch_1000_core_only": {
            "core": timings(lambda: backend.canonicalize_many(batch_text), batch_repeat)["p50"],
            "json": timings(lambda: json.loads(batch_text), batch_repeat)["p50"],
        },
    }
    if orjson is not None:
        rows["encode_one"]["orjson"] = timings(lambda: orjson.dumps(one_dict), repeat)["p50"]
        rows["decode_one"]["orjson"] = timings(lambda: AgentMessage(**orjson.loads(one_text)), repeat)["p50"]
        rows["encode_batch_1000"]["orjson"] = timings(lambda: orjson.dumps(batch_dicts), batch_repeat)["p50"]
        rows["decode_batch_1000"]["orjson"] = timings(
            lambda: [AgentMessage(**d) for d in orjson.loads(batch_text)], batch_repeat
        )["p50"]
    out: dict[str, Any] = {}
    for name, row in rows.items():
        entry: dict[str, Any] = {f"{k}_us": round(v * 1e6, 2) for k, v in row.items()}
        for other in ("json", "orjson"):
            if other in row:
                entry[f"core_over_{other}"] = ratio(row["core"], row[other])
        out[name] = entry
        vs = "  ".join(f"core/{o} {entry[f'core_over_{o}']}x" for o in ("json", "orjson") if o in row)
        times = "  ".join(f"{k} {v}" for k, v in entry.items() if k.endswith("_us"))
        print(f"  {name:<32} {times}   {vs}", flush=True)
    return out
