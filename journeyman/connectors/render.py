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
