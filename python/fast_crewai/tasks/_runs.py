"""``Crew.kickoff_for_each`` with its crew copies running concurrently.

What stays as CrewAI 1.15 has it:

- one ``crew.copy()`` per input, results in input order, the crew's
  ``usage_metrics`` set to the sum of the copies' and its task-output log
  reset at the end; ``stream=True`` keeps CrewAI's own loop (its streams run
  when iterated, not at kickoff);
- the first failure in input order is raised, the same exception object.
  Runs after it that had not started are cancelled (CrewAI would not have
  run them); runs already going are waited for, and their failures are
  logged and added to the raised exception as notes;
- the token figures. An LLM's counters are cumulative and shared by the
  shallow copies ``crew.copy()`` makes, so in CrewAI each run's
  ``usage_metrics`` (and its ``CrewOutput.token_usage``) is the counter's
  total so far, and the crew's sum adds those running totals. Concurrent
  runs would make those snapshots depend on timing, so each run counts on
  counters of its own, and afterwards, in input order, every run's count is
  added to the shared counters and its figures are taken from them: exactly
  the numbers a sequential run gives.
"""

from __future__ import annotations

import logging
from typing import Any

from ._pool import host_pool

logger = logging.getLogger("fast_crewai.tasks")


class _RunTokens:
    """One crew copy's LLMs counting on private counters for the run."""

    def __init__(self, copy: Any, original: Any) -> None:
        # (llm, the counter it shared, the run's own counter)
        self._swaps: list[tuple[Any, dict[str, int], dict[str, int]]] = []
        own: dict[int, dict[str, int]] = {}
        users_llms = {id(llm) for llm in _counted_llms(original)}
        for llm in _counted_llms(copy):
            if id(llm) in users_llms:
                # Not a copy: the user's own LLM object keeps its counter.
                continue
            shared: dict[str, int] = llm._token_usage
            counter = own.get(id(shared))
            if counter is None:
                counter = own[id(shared)] = dict.fromkeys(shared, 0)
            llm._token_usage = counter
            self._swaps.append((llm, shared, counter))

    def settle(self) -> None:
        """Adds the run's counts to the shared counters and points its LLMs
        back at them, as if the run had counted there."""
        merged: set[int] = set()
        for llm, shared, counter in self._swaps:
            if id(shared) not in merged:
                merged.add(id(shared))
                for key, value in counter.items():
                    shared[key] = shared.get(key, 0) + value
            llm._token_usage = shared


def _counted_llms(crew: Any) -> list[Any]:
    """The LLMs whose counters ``Crew.calculate_usage_metrics`` reads."""
    from crewai.llms.base_llm import BaseLLM

    candidates = [agent.llm for agent in crew.agents]
    if crew.manager_agent is not None:
        candidates.append(crew.manager_agent.llm)
    candidates.append(crew.manager_llm)
    unique: dict[int, Any] = {}
    for llm in candidates:
        if isinstance(llm, BaseLLM) and isinstance(getattr(llm, "_token_usage", None), dict):
            unique.setdefault(id(llm), llm)
    return list(unique.values())


def _note(exc: BaseException, text: str) -> None:
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:
        add_note(text)


def kickoff_for_each(original: Any, crew: Any, inputs: list[dict[str, Any]], input_files: Any = None) -> Any:
    """The body of the patched ``Crew.kickoff_for_each``; ``original`` is
    CrewAI's, used where concurrency cannot apply."""
    if crew.stream or len(inputs) < 2:
        return original(crew, inputs, input_files)
    from crewai.types.usage_metrics import UsageMetrics

    copies = [crew.copy() for _ in inputs]
    tokens = [_RunTokens(copy, crew) for copy in copies]
    pool = host_pool()
    futures = [
        pool.submit(copy.kickoff, inputs=data, input_files=input_files)
        for copy, data in zip(copies, inputs, strict=True)
    ]
    failed: int | None = None
    errors: list[BaseException | None] = []
    for index, future in enumerate(futures):
        if future.cancelled():
            errors.append(None)
            continue
        error = future.exception()
        errors.append(error)
        if error is not None and failed is None:
            failed = index
            for later in futures[index + 1 :]:
                later.cancel()
    # Every run that ran spent tokens; settle them all, in input order.
    for index, (copy, run) in enumerate(zip(copies, tokens, strict=True)):
        if futures[index].cancelled():
            continue
        run.settle()
        if errors[index] is None:
            usage = copy.calculate_usage_metrics()
            output = futures[index].result()
            if hasattr(output, "token_usage"):
                output.token_usage = usage
    if failed is not None:
        first = errors[failed]
        assert first is not None
        for index, error in enumerate(errors):
            if error is not None and index != failed:
                logger.error("kickoff_for_each: input %d also failed", index, exc_info=error)
                _note(
                    first, f"fast-crewai: kickoff_for_each input {index} also failed: {type(error).__name__}: {error}"
                )
        skipped = [index for index, future in enumerate(futures) if future.cancelled()]
        if skipped:
            _note(first, f"fast-crewai: kickoff_for_each inputs {skipped} were not run after input {failed} failed")
        raise first
    total = UsageMetrics()
    for copy in copies:
        if copy.usage_metrics:
            total.add_usage_metrics(copy.usage_metrics)
    crew.usage_metrics = total
    crew._task_output_handler.reset()
    return [future.result() for future in futures]
