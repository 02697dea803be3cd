"""The CrewAI-dependent half of :mod:`fast_crewai.demo.offline`: a scripted LLM
that plays both the agents and memory's analysis model, and the
``Crew(embedder=...)`` form of :class:`~fast_crewai.demo.offline.HashEmbedder`.

Import it after :func:`~fast_crewai.demo.offline.offline_environment`: it imports
CrewAI.
"""

from __future__ import annotations

import ast
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from crewai import BaseLLM
from crewai.rag.embeddings.providers.custom import CustomProvider
from crewai.rag.embeddings.providers.custom.embedding_callable import CustomEmbeddingFunction
from crewai.utilities.i18n import I18N_DEFAULT
from crewai.utilities.message_utils import message_content_text
from pydantic import BaseModel, Field, PrivateAttr

from .offline import HashEmbedder, between, fact_lines

# Memory's own prompts, recognised by their system message (memory/analyze.py).
_MEMORY_PROMPTS = {
    I18N_DEFAULT.memory(key): kind
    for key, kind in (
        ("extract_memories_system", "extract_memories"),
        ("save_system", "save"),
        ("query_system", "query"),
        ("consolidation_system", "consolidation"),
    )
}

# Two or more capitalised words in a row: "Acme Robotics", "Dana Whitfield".
_ENTITY = re.compile(r"\b[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)+")
# Capitalised words, not acronyms: "USD" in two facts does not make them related.
_CAPITALISED = re.compile(r"\b[A-Z][a-z]{2,}")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_CATEGORY_WORDS = {
    "revenue": "finance",
    "profit": "finance",
    "million": "finance",
    "headquartered": "location",
    "based": "location",
    "ceo": "leadership",
    "executive": "leadership",
    "founder": "leadership",
    "founded": "history",
    "employees": "people",
}


@dataclass(frozen=True)
class ScriptedCall:
    """One call the scripted LLM answered."""

    # "agent", "explore" (recall's deeper look), "other", or a memory prompt:
    # "extract_memories", "save", "query", "consolidation".
    kind: str
    messages: list[tuple[str, str]]  # (role, text)
    answer: str

    def text(self) -> str:
        return "\n".join(content for _, content in self.messages)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "general"


def _python_list(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


class ScriptedLLM(BaseLLM):
    """An LLM that needs no model, for offline crews.

    Agents get ReAct turns: the first tool offered (its arguments filled from
    the task text) until an observation came back, then a ``Final Answer``
    listing the tool's facts and the recalled memories that share a name with
    the task, so what a task recalled shows in its output. Memory's prompts
    get JSON that validates against ``memory/analyze.py``'s models: the
    facts of a result are extracted one per memory, scopes and categories
    follow from the names and words in a fact, and a fact already stored
    verbatim is not inserted again.

    Every call is recorded in :attr:`calls` (shared with the copies memory
    makes of its LLM), so tests can check what the model was shown, and
    counted in the token usage as a provider would (a quarter token per
    character, in and out). ``latency`` makes each call wait that many
    seconds first, a stand-in for a model's network time.
    """

    llm_type: str = "scripted"
    latency: float = 0.0
    calls: list[ScriptedCall] = Field(default_factory=list, exclude=True)
    _calls_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, model: str = "scripted", **data: Any) -> None:
        super().__init__(model=model, **data)

    def supports_function_calling(self) -> bool:
        # The ReAct text path: tool use is visible in the messages.
        return False

    def get_input_tokens_count(
        self, messages: Any, tools: Any = None, response_model: type[BaseModel] | None = None
    ) -> int:
        # BaseLLM's estimate logs a warning on every call; same estimate, quietly.
        text = messages if isinstance(messages, str) else " ".join(message_content_text(m) for m in messages)
        return (len(text) + 3) // 4

    def received(self, kind: str | None = None) -> str:
        """Everything the model was shown, in calls of ``kind`` (all when None)."""
        return "\n".join(call.text() for call in list(self.calls) if kind is None or call.kind == kind)

    def call(
        self,
        messages: Any,
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: type[BaseModel] | None = None,
    ) -> Any:
        if self.latency > 0:
            time.sleep(self.latency)
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        texts = [(str(m.get("role", "user")), message_content_text(m)) for m in messages]
        system = texts[0][1] if texts and texts[0][0] == "system" else ""
        last = texts[-1][1] if texts else ""
        kind = _MEMORY_PROMPTS.get(system)
        answer: str | dict[str, Any]
        if kind == "extract_memories":
            result = between(last, "Result:", "\n\nExtract memory statements")
            # The facts are the answer's list items; the ReAct lines around them are not memories.
            answer = {"memories": [line.strip()[2:] for line in result.splitlines() if line.strip().startswith("- ")]}
        elif kind == "save":
            answer = self._analyse_for_save(last)
        elif kind == "query":
            answer = self._analyse_query(last)
        elif kind == "consolidation":
            answer = self._consolidate(last)
        elif last.startswith("Query:") and "Relevant memory excerpts:" in last:
            kind = "explore"
            excerpts = fact_lines(between(last, "Relevant memory excerpts:", "\n\nExtract the most relevant"))
            answer = excerpts[0] if excerpts else "Nothing relevant was recalled."
        elif any(role == "user" and "Current Task:" in text for role, text in texts):
            kind = "agent"
            answer = self._agent_turn(system, texts)
        else:
            kind = "other"
            answer = "Nothing to add."
        text = answer if isinstance(answer, str) else json.dumps(answer)
        with self._calls_lock:
            self.calls.append(ScriptedCall(kind=kind, messages=texts, answer=text))
        prompt_tokens = self.get_input_tokens_count(messages)
        self._track_token_usage_internal({"prompt_tokens": prompt_tokens, "completion_tokens": (len(text) + 3) // 4})
        if response_model is not None and not isinstance(answer, str):
            return response_model.model_validate(answer)
        return text

    @staticmethod
    def _agent_turn(system: str, texts: list[tuple[str, str]]) -> str:
        task_prompt = next(text for role, text in texts if role == "user" and "Current Task:" in text)
        task = between(task_prompt, "Current Task:", "\n\nThis is the expected criteria")
        observations = [
            text.split("Observation:", 1)[1] for role, text in texts if role == "assistant" and "Observation:" in text
        ]
        offered = [name.strip() for name in between(system, "only one name of [", "]").split(",") if name.strip()]
        tool = offered[0] if offered else ""
        if not observations and tool:
            arguments = _tool_arguments(system, tool, task)
            return f"Thought: I should use {tool}.\nAction: {tool}\nAction Input: {json.dumps(arguments)}"
        recalled = between(task_prompt, "Relevant memories:", "\n\nIMPORTANT:")
        facts = [fact for chunk in [*observations, recalled] for fact in fact_lines(chunk)]
        # Keep what concerns the task's names (recall also returns neighbours).
        names = set(_CAPITALISED.findall(task))
        relevant = [fact for fact in facts if names & set(_CAPITALISED.findall(fact))] or facts
        unique = list(dict.fromkeys(relevant))
        subject = task.split(".")[0].split(":")[0].strip()
        body = "\n".join(f"- {fact}" for fact in unique) or "- Nothing is known about this yet."
        return f"Thought: I now know the final answer\nFinal Answer: {subject}\n{body}"

    @staticmethod
    def _analyse_for_save(prompt: str) -> dict[str, Any]:
        content = between(prompt, "Content to store:", "\n\nExisting scopes:")
        entities = _ENTITY.findall(content)
        words = set(re.findall(r"[a-z]+", content.lower()))
        categories = sorted({category for word, category in _CATEGORY_WORDS.items() if word in words}) or ["general"]
        return {
            "suggested_scope": "/" + _slug(entities[0] if entities else "general"),
            "categories": categories,
            "importance": 0.7,
            "extracted_metadata": {
                "entities": entities,
                "dates": _YEAR.findall(content),
                "topics": categories,
            },
        }

    @staticmethod
    def _analyse_query(prompt: str) -> dict[str, Any]:
        query = between(prompt, "Query:", "\n\nAvailable scopes:")
        available = _python_list(between(prompt, "Available scopes:", "\n"))
        entities = _ENTITY.findall(query)
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", query) if s.strip()]
        wanted = {_slug(e) for e in entities}
        return {
            "keywords": entities,
            "suggested_scopes": [s for s in available if s.rstrip("/").rsplit("/", 1)[-1] in wanted],
            "complexity": "simple",
            "recall_queries": [s[:200] for s in sentences[:3]] or [query[:200]],
            "time_filter": None,
        }

    @staticmethod
    def _consolidate(prompt: str) -> dict[str, Any]:
        new = between(prompt, "New content to consider storing:", "\n\nExisting similar memories:")
        existing = re.findall(
            r"^- id=(\S+) \|.*\n  content: (.*)$",
            between(prompt, "Existing similar memories:", "\n\nReturn the consolidation plan"),
            flags=re.MULTILINE,
        )
        duplicate = any(content.strip() == new.strip() for _, content in existing)
        return {
            "actions": [
                {"action": "keep", "record_id": record_id, "new_content": None, "reason": "still accurate"}
                for record_id, _ in existing
            ],
            "insert_new": not duplicate,
            "insert_reason": "already stored verbatim" if duplicate else "adds a new fact",
        }


def _tool_arguments(system: str, tool: str, task: str) -> dict[str, Any]:
    """Arguments for ``tool`` from its JSON schema in the system prompt: the
    task text for every required string, a one-item list for string lists."""
    _, found, rest = system.partition(f"Tool Name: {tool}\nTool Arguments: ")
    schema: dict[str, Any] = {}
    if found:
        try:
            schema, _ = json.JSONDecoder().raw_decode(rest)
        except json.JSONDecodeError:
            schema = {}
    properties: dict[str, Any] = schema.get("properties", {})
    arguments: dict[str, Any] = {}
    for name in schema.get("required", list(properties)):
        arguments[name] = [task] if properties.get(name, {}).get("type") == "array" else task
    return arguments


class _HashEmbeddingFunction(CustomEmbeddingFunction):
    """:class:`HashEmbedder` in the class form CrewAI's custom provider wants."""

    def __init__(self, dims: int = 256, **_: Any) -> None:
        self._embedder = HashEmbedder(dims)

    def __call__(self, input: list[str]) -> list[list[float]]:  # type: ignore[override]
        return self._embedder(input)


def crew_embedder(dims: int = 256) -> CustomProvider:
    """A :class:`HashEmbedder` for ``Crew(memory=True, embedder=...)``.

    ``Crew.embedder`` takes a provider spec or provider, not a bare callable;
    the ``custom`` provider wants a ``CustomEmbeddingFunction`` subclass,
    which it instantiates with the provider's extra fields (``dims`` here).
    """
    return CustomProvider.model_validate({"embedding_callable": _HashEmbeddingFunction, "dims": dims})
