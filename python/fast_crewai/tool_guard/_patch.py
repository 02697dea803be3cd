"""The tool guard under CrewAI (1.15).

``tools`` switch: tool arguments on the ReAct path (the parser's repair and
``ToolUsage._validate_tool_input``) and on the native path
(``parse_tool_call_args``) read through the guard, with ``json.loads`` kept
first; tool descriptions and sanitized names computed once; exact tool names
looked up before the fuzzy match; canonical cache keys.

``serialization`` switch: structured outputs repaired and validated locally
(``handle_partial_json``) before CrewAI asks an LLM to convert them.

Every patch keeps CrewAI's own code as the fallback for what the guard cannot
read, so nothing stock reads is lost, and each returns its undo.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import re
from collections.abc import Callable
from typing import Any

from .._errors import ToolGuardError
from ..runtime.patches import Patch, PatchTargetMissing, rebind, register
from . import _schema_cache
from ._guard import GuardResult, canonical_json, read_unparsed

# Repairs after which CrewAI's own readers (literal_eval, json5) may know the
# text better: an unquoted run can be a Python or JSON5 token the guard keeps
# as a string (0x10, 1_000, a tuple).
_STOCK_MAY_KNOW_BETTER = "unquoted-value"
# Repairs that only fix syntax whose meaning is not in doubt. The native
# path accepts these alone: a guess at where a string ends, what an unquoted
# run means or what a cut-off tail held goes back to the LLM, as in stock.
_UNAMBIGUOUS = frozenset(
    (
        "fence",
        "extract",
        "comment",
        "single-quotes",
        "unquoted-key",
        "python-literal",
        "trailing-comma",
        "missing-comma",
        "number",
    )
)
# json_repair's reading of raw control characters in strings differs from the
# guard's (it drops a line break before the closing quote); CrewAI pins it.
_PARSER_DEFERS = "escape"
# Most-used tools and names stay cached; a changed name, description or args
# schema is a different key, so a stale entry is never served.
_CACHE_SIZE = 4096


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise PatchTargetMissing(f"module {name} cannot be imported ({exc})") from exc


def _replace_method(
    owner: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Callable[[], None]:
    """Replaces ``owner.name`` by ``make(original)``; returns the undo."""
    original = owner.__dict__.get(name)
    if original is None:
        raise PatchTargetMissing(f"{owner.__module__}.{owner.__name__}.{name} does not exist")
    replacement = make(original)
    setattr(owner, name, replacement)

    def undo() -> None:
        if owner.__dict__.get(name) is replacement:
            setattr(owner, name, original)

    return undo


def _guarded(text: str) -> GuardResult | None:
    """The guard's reading of a text ``json.loads`` refused, or None."""
    try:
        return read_unparsed(text)
    except ToolGuardError:
        return None


# A key without quotes right after "{" or ",": literal_eval would fail on it.
_UNQUOTED_KEY = re.compile(r"[{,]\s*[A-Za-z_$][\w$-]*\s*:")


def _literal_eval_first(text: str) -> bool:
    """Whether Python's literal_eval probably reads ``text``: it then runs
    before the guard, giving stock's exact values (None, tuples) at stock's
    speed. Otherwise its failure would only add to the guard's time."""
    if "'" in text or "None" in text or "True" in text or "False" in text:
        return True
    stripped = text.strip()
    return stripped.startswith("{") and stripped.endswith("}") and _UNQUOTED_KEY.search(stripped) is None


def _stock_dict(text: str, tried_literal: bool) -> dict[str, Any] | None:
    """What CrewAI's ``literal_eval`` then ``json5`` steps read, if a dict."""
    readers: list[Callable[[str], Any]] = [] if tried_literal else [ast.literal_eval]
    try:
        import json5

        readers.append(json5.loads)
    except ImportError:
        pass
    for reader in readers:
        try:
            value = reader(text)
        except Exception:
            continue
        if isinstance(value, dict):
            return value
    return None


# --------------------------------------------------------------------------- tools: arguments


def read_tool_arguments(text: str) -> dict[str, Any] | None:
    """The argument dict in ``text`` the way the patched cascade reads it:
    ``json.loads``; ``ast.literal_eval`` where it probably reads the text
    (stock's exact Python values, ``None`` included); then the guard. None when none of
    them yields a dict (the caller then runs CrewAI's own cascade)."""
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except (ValueError, TypeError):
        pass
    if "{" not in text:
        return None  # no reader makes a dict of it: stock's cascade and its error
    tried_literal = _literal_eval_first(text)
    if tried_literal:
        try:
            value = ast.literal_eval(text)
            if isinstance(value, dict):
                return value
        except Exception:
            pass
    guarded = _guarded(text)
    if guarded is None or not isinstance(guarded.value, dict):
        return None
    if _STOCK_MAY_KNOW_BETTER in guarded.repairs:
        stock = _stock_dict(text, tried_literal)
        if stock is not None:
            return stock
    return guarded.value


def _apply_validate_input() -> Callable[[], None]:
    tool_usage = _module("crewai.tools.tool_usage")

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def _validate_tool_input(self: Any, tool_input: str | None) -> dict[str, Any]:
            if isinstance(tool_input, str) and tool_input.strip():
                arguments = read_tool_arguments(tool_input)
                if arguments is not None:
                    return arguments
            # None, empty, or unreadable: CrewAI's cascade, its error and event.
            result: dict[str, Any] = original(self, tool_input)
            return result

        return _validate_tool_input

    return _replace_method(tool_usage.ToolUsage, "_validate_tool_input", make)


def _apply_parser_repair() -> Callable[[], None]:
    parser = _module("crewai.agents.parser")
    original = getattr(parser, "_safe_repair_json", None)
    if original is None:
        raise PatchTargetMissing("crewai.agents.parser._safe_repair_json does not exist")
    # What stock treats as "could not repair" ("{}" from "{invalid_json").
    unrepairable = frozenset(getattr(parser, "UNABLE_TO_REPAIR_JSON_RESULTS", ('""', "{}")))

    @functools.wraps(original)
    def _safe_repair_json(tool_input: str) -> str:
        if tool_input.startswith("[") and tool_input.endswith("]"):
            return tool_input
        try:
            # json_repair re-serializes valid JSON this way; the same text
            # keeps the repeated-call guard's keys and events unchanged.
            return json.dumps(json.loads(tool_input))
        except (ValueError, TypeError):
            pass
        if "{" not in tool_input:
            repaired: str = original(tool_input)
            return repaired
        text = tool_input.replace('"""', '"')
        # Unlike json_repair, Python and the guard read None as null, not "None".
        if _literal_eval_first(text):
            try:
                value = ast.literal_eval(text)
                if isinstance(value, dict):
                    return json.dumps(value)
            except Exception:  # not a literal, or a value JSON cannot hold (a set)
                pass
        guarded = _guarded(text)
        if guarded is not None and isinstance(guarded.value, dict) and _PARSER_DEFERS not in guarded.repairs:
            dumped = json.dumps(guarded.value)
            if dumped not in unrepairable:
                return dumped
        fallback: str = original(tool_input)
        return fallback

    return rebind("crewai.agents.parser", "_safe_repair_json", _safe_repair_json)


def _apply_native_args() -> Callable[[], None]:
    agent_utils = _module("crewai.utilities.agent_utils")
    # agent_executor imports the function by name: load it so rebind sees it.
    _module("crewai.agents.agent_executor")
    original = getattr(agent_utils, "parse_tool_call_args", None)
    if original is None:
        raise PatchTargetMissing("crewai.utilities.agent_utils.parse_tool_call_args does not exist")

    @functools.wraps(original)
    def parse_tool_call_args(
        func_args: dict[str, Any] | str, func_name: str, call_id: str, original_tool: Any = None
    ) -> tuple[dict[str, Any], None] | tuple[None, dict[str, Any]]:
        if isinstance(func_args, str):
            try:
                return json.loads(func_args), None
            except json.JSONDecodeError:
                # A malformed argument string would cost another LLM turn.
                guarded = _guarded(func_args) if "{" in func_args else None
                if guarded is not None and isinstance(guarded.value, dict) and _UNAMBIGUOUS.issuperset(guarded.repairs):
                    return guarded.value, None
        result: tuple[dict[str, Any], None] | tuple[None, dict[str, Any]] = original(
            func_args, func_name, call_id, original_tool
        )
        return result

    return rebind("crewai.utilities.agent_utils", "parse_tool_call_args", parse_tool_call_args)


# --------------------------------------------------------------------------- tools: rendering, lookup, cache


def _apply_descriptions() -> Callable[[], None]:
    structured = _module("crewai.tools.structured_tool")
    _module("crewai.tools.base_tool")
    original = getattr(structured, "format_description_for_llm", None)
    if original is None:
        raise PatchTargetMissing("crewai.tools.structured_tool.format_description_for_llm does not exist")
    cached = functools.lru_cache(maxsize=_CACHE_SIZE)(original)

    @functools.wraps(original)
    def format_description_for_llm(name: str, args_schema: Any, description: str) -> str:
        # Keyed on the name, the schema class and the description: changing
        # any of them renders afresh.
        try:
            text: str = cached(name, args_schema, description)
        except TypeError:  # an unhashable argument: render without caching
            text = original(name, args_schema, description)
        return text

    return rebind("crewai.tools.structured_tool", "format_description_for_llm", format_description_for_llm)


def _apply_args_schemas() -> Callable[[], None]:
    tool_usage = _module("crewai.tools.tool_usage")

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            # _use asks each call's tool for model_json_schema(); computed once.
            for tool in self.tools or ():
                _schema_cache.install(getattr(tool, "args_schema", None))

        return __init__

    undo_init = _replace_method(tool_usage.ToolUsage, "__init__", make)

    def undo() -> None:
        undo_init()
        _schema_cache.uninstall_all()

    return undo


def _apply_sanitized_names() -> Callable[[], None]:
    string_utils = _module("crewai.utilities.string_utils")
    # The modules of the tool-call path import it by name; rebind replaces
    # every loaded copy, so they are loaded first.
    for name in ("crewai.tools.tool_usage", "crewai.utilities.tool_utils", "crewai.utilities.agent_utils"):
        _module(name)
    original = getattr(string_utils, "sanitize_tool_name", None)
    if original is None:
        raise PatchTargetMissing("crewai.utilities.string_utils.sanitize_tool_name does not exist")
    cached = functools.lru_cache(maxsize=_CACHE_SIZE)(original)

    @functools.wraps(original)
    def sanitize_tool_name(name: str, *args: Any, **kwargs: Any) -> str:
        try:
            text: str = cached(name, *args, **kwargs)
        except TypeError:
            text = original(name, *args, **kwargs)
        return text

    return rebind("crewai.utilities.string_utils", "sanitize_tool_name", sanitize_tool_name)


def _apply_exact_select() -> Callable[[], None]:
    tool_usage = _module("crewai.tools.tool_usage")
    sanitize = tool_usage.sanitize_tool_name

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def _select_tool(self: Any, tool_name: str) -> Any:
            # Stock sorts every tool by similarity first; an exact name has
            # similarity 1.0, so the first exact match is what stock returns.
            wanted = sanitize(tool_name)
            for tool in self.tools:
                if sanitize(tool.name) == wanted:
                    return tool
            return original(self, tool_name)

        return _select_tool

    return _replace_method(tool_usage.ToolUsage, "_select_tool", make)


def canonical_cache_input(text: str) -> str:
    """The cache-key form of a tool input: a JSON object's canonical text
    (sorted keys, compact), anything else unchanged."""
    if not text.startswith("{"):
        return text
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return canonical_json(value)
    except (ValueError, ToolGuardError):
        pass
    return text


def _apply_cache_keys() -> Callable[[], None]:
    cache_module = _module("crewai.agents.cache.cache_handler")
    handler = cache_module.CacheHandler

    def make_add(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def add(self: Any, tool: str, input: str, output: Any) -> None:
            original(self, tool, canonical_cache_input(input) if isinstance(input, str) else input, output)

        return add

    def make_read(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def read(self: Any, tool: str, input: str) -> Any:
            return original(self, tool, canonical_cache_input(input) if isinstance(input, str) else input)

        return read

    undo_add = _replace_method(handler, "add", make_add)
    try:
        undo_read = _replace_method(handler, "read", make_read)
    except PatchTargetMissing:
        undo_add()
        raise

    def undo() -> None:
        undo_read()
        undo_add()

    return undo


# --------------------------------------------------------------------------- serialization


def _repaired_model(result: str, model: Any, is_json_output: bool) -> Any:
    """The model read and validated from ``result`` by the guard, or None."""
    from pydantic import ValidationError

    if not isinstance(result, str):
        return None
    try:
        json.loads(result, strict=False)  # as convert_to_model reads it
    except ValueError:
        pass
    else:
        return None  # JSON that failed validation: nothing to repair, CrewAI's to handle
    guarded = _guarded(result)
    if guarded is None or not isinstance(guarded.value, dict):
        return None
    try:
        exported = model.model_validate(guarded.value)
    except ValidationError:
        return None
    return exported.model_dump() if is_json_output else exported


def _apply_partial_json() -> Callable[[], None]:
    converter = _module("crewai.utilities.converter")
    sync_original = getattr(converter, "handle_partial_json", None)
    async_original = getattr(converter, "async_handle_partial_json", None)
    if sync_original is None or async_original is None:
        raise PatchTargetMissing("crewai.utilities.converter.handle_partial_json does not exist")

    @functools.wraps(sync_original)
    def handle_partial_json(
        result: str, model: Any, is_json_output: bool, agent: Any, converter_cls: Any = None
    ) -> Any:
        local = _repaired_model(result, model, is_json_output)
        if local is not None:
            return local
        return sync_original(result, model, is_json_output, agent, converter_cls)

    @functools.wraps(async_original)
    async def async_handle_partial_json(
        result: str, model: Any, is_json_output: bool, agent: Any, converter_cls: Any = None
    ) -> Any:
        local = _repaired_model(result, model, is_json_output)
        if local is not None:
            return local
        return await async_original(result, model, is_json_output, agent, converter_cls)

    undo_sync = rebind("crewai.utilities.converter", "handle_partial_json", handle_partial_json)
    undo_async = rebind("crewai.utilities.converter", "async_handle_partial_json", async_handle_partial_json)

    def undo() -> None:
        undo_async()
        undo_sync()

    return undo


#: This module's patches, in the order they apply.
PATCHES = (
    Patch(
        "tools.parser_repair",
        "tools",
        _apply_parser_repair,
        "crewai.agents.parser._safe_repair_json: json.loads, then the guard (None stays None), then json_repair",
    ),
    Patch(
        "tools.validate_input",
        "tools",
        _apply_validate_input,
        "ToolUsage._validate_tool_input: json.loads, literal_eval, the guard, then CrewAI's cascade",
    ),
    Patch(
        "tools.native_args",
        "tools",
        _apply_native_args,
        "agent_utils.parse_tool_call_args: unambiguous syntax slips repaired instead of another LLM turn",
    ),
    Patch(
        "tools.descriptions",
        "tools",
        _apply_descriptions,
        "structured_tool.format_description_for_llm rendered once per (name, args schema, description)",
    ),
    Patch(
        "tools.args_schemas",
        "tools",
        _apply_args_schemas,
        "args_schema.model_json_schema() computed once per class for the tools a ToolUsage sees",
    ),
    Patch(
        "tools.sanitized_names",
        "tools",
        _apply_sanitized_names,
        "string_utils.sanitize_tool_name computed once per name",
    ),
    Patch(
        "tools.exact_select",
        "tools",
        _apply_exact_select,
        "ToolUsage._select_tool: an exact name before the fuzzy ranking",
    ),
    Patch(
        "tools.cache_keys",
        "tools",
        _apply_cache_keys,
        "CacheHandler keys: tool inputs as canonical JSON, so equivalent arguments hit",
    ),
    Patch(
        "serialization.partial_json",
        "serialization",
        _apply_partial_json,
        "converter.handle_partial_json: repaired and validated locally before the LLM conversion",
    ),
)
for _patch in PATCHES:
    register(_patch)
