"""The offline demo crew and its helpers (scripted LLM, hashed embedder).

Used by ``fast-crewai demo``, the end-to-end tests and the benchmarks; the
library itself never imports this package.
"""
