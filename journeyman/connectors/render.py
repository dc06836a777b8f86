"""Render a message's channel content for one customer from Jinja templates.

Templates are marketer-authored, so they run in Jinja's sandbox with strict undefined variables:
a template naming a column the customer row lacks fails that record, never the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class TemplateError(ValueError):
    """A template could not be compiled or rendered for a record."""


@lru_cache(maxsize=1024)
def _compile(source: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from exc


def render(source: str | None, variables: Mapping[str, Any]) -> str | None:
    """Render one template string (None stays None)."""
    if source is None:
        return None
    try:
        return _compile(source).render(**variables)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template variable missing: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template failed: {exc}") from exc


def check_template(source: str | None, columns: set[str]) -> None:
    """Fail early when a template does not compile or names a variable outside `columns`."""
    if source is None:
        return
    from jinja2 import meta

    try:
        parsed = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from exc
    unknown = sorted(meta.find_undeclared_variables(parsed) - columns)
    if unknown:
        raise TemplateError(f"template uses unknown variable(s) {unknown}")


_SIMPLE: Any = None


def _simple_parts(source: str) -> list[tuple[bool, str]] | None:
    """`Hi {{ name }}!` → [(False, "Hi "), (True, "name"), (False, "!")]; None when the
    template uses anything beyond plain variable substitution (filters, tags, expressions)."""
    import re

    global _SIMPLE
    if _SIMPLE is None:
        _SIMPLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
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


def render_column(source: str | None, table: Any) -> Any:
    """Render one template for every row of a pyarrow Table / RecordBatch → a string Array.

    Plain-substitution templates are rendered column-wise with Arrow (no per-row Python);
    anything else falls back to the sandboxed Jinja renderer row by row. A NULL variable or a
    missing column raises TemplateError (strict, like `render`)."""
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
    if not any(not isinstance(p, str) for p in pieces):
        return pa.array([source] * n, pa.string())
    return pc.binary_join_element_wise(*pieces, "")
