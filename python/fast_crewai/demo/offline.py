"""What a crew needs to run with no network, no API key and no model: used by
the demo, the end-to-end tests and the benchmarks.

Call :func:`offline_environment` before CrewAI is imported: this module does
not import CrewAI itself, so it can be imported first. The CrewAI-dependent
half (:class:`~fast_crewai.demo.scripted_llm.ScriptedLLM` and
:func:`~fast_crewai.demo.scripted_llm.crew_embedder`) lives in
:mod:`fast_crewai.demo.scripted_llm`, to be imported after this module's
:func:`offline_environment`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from pathlib import Path

# Without the telemetry switches a kickoff waited ~15 s on telemetry DNS;
# without the tracing ones, ~10 s on a first-run prompt.
OFFLINE_FLAGS = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_TESTING": "true",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}


def offline_environment() -> Path:
    """Sets the switches that keep CrewAI off the network and, unless
    ``CREWAI_STORAGE_DIR`` is already set, points it at a new temporary
    directory; returns the storage directory.

    Call it before CrewAI is imported. Values already in the environment win.
    """
    for name, value in OFFLINE_FLAGS.items():
        os.environ.setdefault(name, value)
    if not os.environ.get("CREWAI_STORAGE_DIR"):
        os.environ["CREWAI_STORAGE_DIR"] = tempfile.mkdtemp(prefix="fast-crewai-offline-")
    return Path(os.environ["CREWAI_STORAGE_DIR"])


_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """A deterministic hashed bag-of-words embedder, L2-normalised.

    Texts sharing words get close vectors, which is all an offline crew needs
    for recall to find what was saved. ``blake2b`` rather than ``hash()`` so
    vectors are the same in every process (``hash`` is salted per process).
    Usable as ``Memory(embedder=HashEmbedder())``; for
    ``Crew(memory=True, embedder=...)`` use :func:`crew_embedder`.
    """

    def __init__(self, dims: int = 256) -> None:
        if dims < 1:
            raise ValueError("dims must be at least 1")
        self.dims = dims

    def embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for word in _WORD.findall(text.lower()):
            digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            # One hash bit picks the sign so that colliding words tend to cancel
            # rather than pile up on one side.
            vector[(digest >> 1) % self.dims] += 1.0 if digest & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector

    def __call__(self, texts: list[str]) -> list[list[float]]:
        return [self.embed(text) for text in texts]


def between(text: str, start: str, end: str) -> str:
    """The text after ``start`` up to ``end`` (or to the end), stripped;
    empty when ``start`` is absent."""
    _, found, rest = text.partition(start)
    return rest.split(end, 1)[0].strip() if found else ""


def fact_lines(text: str) -> list[str]:
    """Statements in a tool result or a block of recalled memories: one per
    line, without list markers, scores or the indented metadata CrewAI prints
    under a memory."""
    facts = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("  ") or line.rstrip().endswith(":"):
            continue
        fact = re.sub(r"^-\s*(\(score=[0-9.]+\)\s*)?", "", line.strip())
        if fact and fact != "No relevant memories found.":
            facts.append(fact)
    return facts
