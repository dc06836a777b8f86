"""Render a message's channel content for one customer from Jinja templates.

Templates are marketer-authored, so they run in a limited sandbox (`template_sandbox.py`).
Anything that goes wrong in a template — a missing column, a syntax error, a runaway loop, a
huge string, a division by zero — raises `TemplateError` with a short reason and fails that
record only, never the run. A template that hit the time limit `TIMEOUTS_BEFORE_REFUSAL` times
is refused at once for the rest of the process (its remaining records fail without spending
another second each).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2

from journeyman.connectors.template_sandbox import (
    _BUDGET,
    _ENV,
    _REASON_CHARS,
    MAX_OUTPUT_CHARS,
    MAX_RENDER_SECONDS,
    OUTPUT_TOO_LARGE,
    TIMEOUTS_BEFORE_REFUSAL,
    TOOK_TOO_LONG,
    TemplateError,
    _Budget,
    _LimitExceeded,
)

# -- compiling and rendering -----------------------------------------------------------------


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def _compile_error(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"template syntax error at line {exc.lineno}: {_short(exc.message or '')}"
    if isinstance(exc, RecursionError):
        return "template too deeply nested to compile"
    if isinstance(exc, jinja2.TemplateError):
        return f"template invalid: {_short(str(exc))}"
    return f"template invalid: {type(exc).__name__}: {_short(str(exc))}"


@lru_cache(maxsize=1024)
def _compiled(source: str) -> jinja2.Template | str:
    """The compiled template, or the reason it does not compile (cached either way)."""
    try:
        return _ENV.from_string(source)
    except Exception as exc:  # marketer content: every failure is a reason
        return _compile_error(exc)


def _compile(source: str) -> jinja2.Template:
    compiled = _compiled(source)
    if isinstance(compiled, str):
        raise TemplateError(compiled)
    return compiled


def _failure_reason(exc: BaseException) -> str:
    """A short reason for anything a render raised."""
    if isinstance(exc, _LimitExceeded):
        return exc.reason
    if isinstance(exc, jinja2.UndefinedError):
        return f"template variable missing: {_short(exc.message or '')}"
    if isinstance(exc, jinja2.TemplateError):
        return f"template failed: {_short(str(exc))}"
    if isinstance(exc, RecursionError):
        return "recursion too deep"
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, OverflowError):
        return "number too large"
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    return f"template failed: {type(exc).__name__}: {_short(str(exc))}"


def _generate(template: jinja2.Template, variables: Mapping[str, Any], budget: _Budget) -> str:
    """Render chunk by chunk, checking the output size and the deadline as it grows."""
    parts: list[str] = []
    size = 0
    for chunk in template.generate(dict(variables)):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise _LimitExceeded(OUTPUT_TOO_LARGE)
        budget.check_time()
        parts.append(chunk)
    return "".join(parts)


def render(source: str | None, variables: Mapping[str, Any]) -> str | None:
    """Render one template string (None stays None) within the module's limits; anything
    that goes wrong raises TemplateError with a short reason."""
    if source is None:
        return None
    template = _compile(source)
    if getattr(template, "journeyman_timeouts", 0) >= TIMEOUTS_BEFORE_REFUSAL:
        raise TemplateError(TOOK_TOO_LONG)
    budget = _Budget(MAX_RENDER_SECONDS)
    token = _BUDGET.set(budget)
    try:
        return _generate(template, variables, budget)
    except Exception as exc:  # marketer content must never fail the step
        reason = _failure_reason(exc)
        if reason == TOOK_TOO_LONG:
            template.journeyman_timeouts = getattr(template, "journeyman_timeouts", 0) + 1
        raise TemplateError(reason) from (None if isinstance(exc, _LimitExceeded) else exc)
    finally:
        _BUDGET.reset(token)


def template_variables(source: str) -> set[str]:
    """The variables a template reads from the record (its globals such as `range` and the
    names it sets itself excluded); raises TemplateError when it does not compile."""
    from jinja2 import meta

    _compile(source)
    try:
        names = meta.find_undeclared_variables(_ENV.parse(source))
    except Exception as exc:  # compiled above; belt and braces
        raise TemplateError(_compile_error(exc)) from exc
    return set(names) - set(_ENV.globals)


_SIMPLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _simple_parts(source: str) -> list[tuple[bool, str]] | None:
    """`Hi {{ name }}!` → [(False, "Hi "), (True, "name"), (False, "!")]; None when the
    template uses anything beyond plain variable substitution (filters, tags, expressions)."""
    if "{%" in source or "{#" in source:
        return None
    parts: list[tuple[bool, str]] = []
    pos = 0
    for match in _SIMPLE.finditer(source):
        parts.append((False, source[pos : match.start()]))
        parts.append((True, match.group(1)))
        pos = match.end()
    parts.append((False, source[pos:]))
    if any("{{" in text or "}}" in text for is_var, text in parts if not is_var):
        return None
    return [p for p in parts if p[0] or p[1]]


def _check_joined_size(pieces: list[Any], n: int) -> None:
    """The longest row the column-wise join would build must fit in `MAX_OUTPUT_CHARS`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    literal = sum(len(p) for p in pieces if isinstance(p, str))
    if literal > MAX_OUTPUT_CHARS:
        raise TemplateError(OUTPUT_TOO_LARGE)
    columns = [p for p in pieces if not isinstance(p, str)]
    if not columns or not n:
        return
    lengths = None
    for column in columns:
        length = pc.cast(pc.utf8_length(column), pa.int64())
        lengths = length if lengths is None else pc.add(lengths, length)
    longest = pc.max(lengths).as_py() or 0
    if longest + literal > MAX_OUTPUT_CHARS:
        raise TemplateError(OUTPUT_TOO_LARGE)


def render_column(source: str | None, table: Any) -> Any:
    """Render one template for every row of a pyarrow Table / RecordBatch → a string Array.

    Plain-substitution templates are rendered column-wise with Arrow (no per-row Python);
    anything else falls back to the sandboxed Jinja renderer row by row. A NULL variable, a
    missing column or any render failure raises TemplateError (strict, like `render`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    if source is None:
        return pa.nulls(n, pa.string())
    parts = _simple_parts(source)
    if parts is None:
        rows = table.to_pylist()
        return pa.array([render(source, row) for row in rows], pa.string())
    names = set(table.schema.names)
    pieces = []
    for is_var, text in parts:
        if not is_var:
            pieces.append(text)
            continue
        if text not in names:
            raise TemplateError(f"template variable missing: '{text}' is undefined")
        column = table.column(text)
        if column.null_count:
            raise TemplateError(f"template variable missing: '{text}' is NULL for some rows")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            pieces.append(column)
        elif pa.types.is_integer(column.type):  # str(int) and Arrow's cast agree
            pieces.append(pc.cast(column, pa.string()))
        else:  # floats, dates, ...: Jinja's formatting is the contract
            return pa.array([render(source, row) for row in table.to_pylist()], pa.string())
    _check_joined_size(pieces, n)
    if not any(not isinstance(p, str) for p in pieces):
        return pa.array([source] * n, pa.string())
    return pc.binary_join_element_wise(*pieces, "")
