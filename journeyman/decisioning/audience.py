"""The agent's audience: one boolean expression over `customer_features` columns.

Marketers write the audience in the agent file, so its text must never reach the warehouse as
SQL. It is parsed with sqlglot (DuckDB dialect), every node is checked against a whitelist
(bare columns, literals, comparisons, and/or/not, arithmetic, `in`, `between`, `is null`,
`like`, `case`, simple casts and a few pure scalar functions) and compiled back to SQL here:
identifiers double-quoted after a plain-name check, every number and string a bind parameter.
Anything not on the whitelist (statements, subqueries, table functions, other functions,
comments, `;`) is an `AudienceError` naming the construct.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.tokens import TokenType

DIALECT = "duckdb"
MAX_LENGTH = 2000  # characters: audiences are short; this also bounds the parser's recursion
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTEGER = re.compile(r"^[0-9]+$")
_DECIMAL = re.compile(r"^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_INT64_MAX = 2**63 - 1

# name → (minimum, maximum) number of arguments; None: any number
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "ceil": (1, 1),
    "coalesce": (1, None),
    "exp": (1, 1),
    "floor": (1, 1),
    "greatest": (1, None),
    "hash": (1, None),
    "least": (1, None),
    "length": (1, 1),
    "ln": (1, 1),
    "lower": (1, 1),
    "round": (1, 2),
    "sqrt": (1, 1),
    "upper": (1, 1),
}

# sqlglot function node → (our name, argument keys in order, flags sqlglot sets that do not
# change the DuckDB function we emit). Any other argument set on the node is rejected.
_FUNCTION_NODES: dict[type[exp.Expression], tuple[str, tuple[str, ...], frozenset[str]]] = {
    exp.Abs: ("abs", ("this",), frozenset()),
    exp.Ceil: ("ceil", ("this",), frozenset()),
    exp.Coalesce: ("coalesce", ("this", "expressions"), frozenset({"is_nvl", "is_null"})),
    exp.Exp: ("exp", ("this",), frozenset()),
    exp.Floor: ("floor", ("this",), frozenset()),
    exp.Greatest: ("greatest", ("this", "expressions"), frozenset({"ignore_nulls"})),
    exp.Least: ("least", ("this", "expressions"), frozenset({"ignore_nulls"})),
    exp.Length: ("length", ("this",), frozenset()),
    exp.Ln: ("ln", ("this",), frozenset()),
    exp.Lower: ("lower", ("this",), frozenset()),
    exp.Round: ("round", ("this", "decimals"), frozenset()),
    exp.Sqrt: ("sqrt", ("this",), frozenset()),
    exp.Upper: ("upper", ("this",), frozenset()),
}

_BINARY: dict[type[exp.Expression], tuple[str, frozenset[str]]] = {
    exp.EQ: ("=", frozenset()),
    exp.NEQ: ("<>", frozenset()),
    exp.LT: ("<", frozenset()),
    exp.LTE: ("<=", frozenset()),
    exp.GT: (">", frozenset()),
    exp.GTE: (">=", frozenset()),
    exp.And: ("AND", frozenset()),
    exp.Or: ("OR", frozenset()),
    exp.Add: ("+", frozenset()),
    exp.Sub: ("-", frozenset()),
    exp.Mul: ("*", frozenset()),
    exp.Div: ("/", frozenset({"typed", "safe"})),  # DuckDB `/`, as written
    exp.Mod: ("%", frozenset()),
    exp.DPipe: ("||", frozenset({"safe"})),  # DuckDB `||`, as written
}

# cast targets: sqlglot type → the DuckDB type emitted
_CASTS: dict[exp.DataType.Type, str] = {
    exp.DataType.Type.BOOLEAN: "BOOLEAN",
    exp.DataType.Type.SMALLINT: "SMALLINT",
    exp.DataType.Type.INT: "INTEGER",
    exp.DataType.Type.BIGINT: "BIGINT",
    exp.DataType.Type.FLOAT: "FLOAT",
    exp.DataType.Type.DOUBLE: "DOUBLE PRECISION",
    exp.DataType.Type.TEXT: "VARCHAR",
    exp.DataType.Type.VARCHAR: "VARCHAR",
}

# value-only nodes at the top: not a condition (a column or function may be a boolean)
_VALUES = (exp.Literal, exp.Neg, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.DPipe)

# union / intersect / except (in sqlglot 25 their base class is Union)
_SET_OPERATION = getattr(exp, "SetOperation", exp.Union)

_LANGUAGE = (
    "an audience uses customer_features columns, numbers, 'strings', true/false/null, "
    "= <> < <= > >=, and/or/not, + - * / %, ||, in (...), between, is [not] null, "
    "[i]like, case when, casts and the functions " + ", ".join(FUNCTIONS) + " (docs/agents.md)"
)


class AudienceError(ValueError):
    """The audience is not one expression of the audience language; the message names the
    offending token or construct."""


@dataclass(frozen=True, eq=False)
class Audience:
    """A checked audience: its text, sqlglot tree and the customer_features columns it uses."""

    text: str
    expression: exp.Expression
    columns: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Audience:
        """Check `text` against the audience language (AudienceError if it is not)."""
        return _parse(text)

    def sql(self, prefix: str = "aud") -> tuple[str, dict[str, Any]]:
        """The audience as DuckDB SQL with SQLAlchemy `:name` bind parameters named
        `<prefix>_<i>`, and their values. No text of the audience other than checked,
        double-quoted column names is in the SQL."""
        if not _PLAIN_NAME.match(prefix):
            raise ValueError(f"parameter prefix must be a plain name; got {prefix!r}")
        compiler = _Compiler(prefix)
        return compiler.compile(self.expression), compiler.params


@functools.lru_cache(maxsize=512)
def _parse(text: str) -> Audience:
    if not isinstance(text, str) or not text.strip():
        raise AudienceError("the audience is empty; write a condition, e.g. `true` (everyone)")
    if len(text) > MAX_LENGTH:
        raise AudienceError(
            f"the audience is {len(text)} characters long; keep it under {MAX_LENGTH}"
        )
    _check_tokens(text)
    try:
        statements = sqlglot.parse(text, read=DIALECT)
    except ParseError as exc:
        raise AudienceError(_describe_parse_error(exc)) from None
    except RecursionError:
        raise AudienceError("the audience is nested too deeply") from None
    except SqlglotError as exc:
        raise AudienceError(f"cannot parse the audience: {_first_line(exc)}") from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise AudienceError("the audience is one expression, e.g. `days_since_last_order >= 21`")
    expression = statements[0]
    compiler = _Compiler("aud")
    try:
        compiler.compile(expression)
    except RecursionError:
        raise AudienceError("the audience is nested too deeply") from None
    _check_condition(expression)
    return Audience(text, expression, frozenset(compiler.columns))


def _check_tokens(text: str) -> None:
    """`;` and comments are refused before parsing: neither belongs in one expression."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(DIALECT).tokenize(text)
    except TokenError as exc:
        raise AudienceError(f"cannot read the audience: {_first_line(exc)}") from None
    if not tokens:
        raise AudienceError("the audience is only a comment; write a condition, e.g. `true`")
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            raise AudienceError("`;` is not allowed: the audience is one expression")
        if token.comments:
            raise AudienceError(
                f"`{_comment(text, token.comments[0])}` is not allowed: comments are not part "
                "of an audience (explain it with a YAML `#` comment in the agent file)"
            )


def _comment(text: str, body: str) -> str:
    """The comment as written: `-- body` or `/* body */`."""
    return f"--{body}".strip() if f"--{body}" in text else f"/*{body}*/"


def _describe_parse_error(exc: ParseError) -> str:
    detail = exc.errors[0] if exc.errors else {}
    description = detail.get("description") or _first_line(exc)
    if description.startswith("Required keyword"):  # sqlglot names its own classes here
        description = "the expression is incomplete"
    near = (detail.get("highlight") or "").strip()
    where = f" near `{near}` (column {detail.get('col')})" if near else ""
    return f"cannot parse the audience{where}: {description}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _check_condition(expression: exp.Expression) -> None:
    """A number or text at the top is a mistake (e.g. a missing comparison)."""
    node = expression
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, _VALUES):
        raise AudienceError(
            f"`{_snippet(expression)}` is a value, not a condition: the audience is true or "
            "false for each customer, e.g. `days_since_last_order >= 21`"
        )


def _snippet(node: exp.Expression, limit: int = 60) -> str:
    """A refused node as text for the error message (never sent to the warehouse)."""
    try:
        text = " ".join(node.sql(dialect=DIALECT).split())
    except SqlglotError:
        text = node.key.upper()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Compiler:
    """Whitelisted sqlglot tree → DuckDB SQL with bind parameters (one instance per compile)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.params: dict[str, Any] = {}
        self.columns: set[str] = set()

    def compile(self, node: exp.Expression) -> str:
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            return handler(self, node)
        if type(node) in _BINARY:
            op, flags = _BINARY[type(node)]
            _only(node, {"this", "expression"} | flags)
            return f"({self.compile(node.this)} {op} {self.compile(node.expression)})"
        if type(node) in _FUNCTION_NODES:
            return self.function(node, *_FUNCTION_NODES[type(node)])
        raise _rejection(node)

    def bind(self, value: Any) -> str:
        name = f"{self.prefix}_{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def column(self, node: exp.Column) -> str:
        if isinstance(node.this, exp.Star):
            raise AudienceError(f"`{_snippet(node)}` is not allowed: name each column")
        if any(node.args.get(k) for k in ("table", "db", "catalog")):
            raise AudienceError(
                f"`{_snippet(node)}` is not allowed: name a customer_features column without a "
                f"table or schema, e.g. `{node.name}`"
            )
        _only(node, {"this"})
        identifier = node.this
        if type(identifier) is not exp.Identifier or not isinstance(identifier.this, str):
            raise _rejection(node)
        name = identifier.this
        if not _PLAIN_NAME.match(name):
            raise AudienceError(
                f"`{_snippet(node)}` is not allowed: column names are letters, digits and "
                "underscores"
            )
        name = name.lower()  # DuckDB names are case-insensitive, quoted or not
        self.columns.add(name)
        return f'"{name}"'

    def literal(self, node: exp.Literal) -> str:
        _only(node, {"this", "is_string"})
        value = node.this
        if not isinstance(value, str):
            raise _rejection(node)
        if node.is_string:
            return self.bind(value)
        return self.bind(_number(value))

    def boolean(self, node: exp.Boolean) -> str:
        _only(node, {"this"})
        if not isinstance(node.this, bool):
            raise _rejection(node)
        return "TRUE" if node.this else "FALSE"

    def null(self, node: exp.Null) -> str:
        _only(node, set())
        return "NULL"

    def paren(self, node: exp.Paren) -> str:
        _only(node, {"this"})
        return f"({self.compile(node.this)})"

    def not_(self, node: exp.Not) -> str:
        _only(node, {"this"})
        return f"(NOT {self.compile(node.this)})"

    def negative(self, node: exp.Neg) -> str:
        _only(node, {"this"})
        inner = node.this
        if type(inner) is exp.Literal and not inner.is_string:
            _only(inner, {"this", "is_string"})
            return self.bind(-_number(inner.this))
        return f"(- {self.compile(inner)})"

    def in_list(self, node: exp.In) -> str:
        if node.args.get("query") is not None:
            raise _rejection(node.args["query"])
        _only(node, {"this", "expressions"})
        items = node.expressions
        if not items:
            raise AudienceError(f"`{_snippet(node)}` is not allowed: list at least one value")
        for item in items:
            if not _is_literal(item):
                raise AudienceError(
                    f"`{_snippet(item)}` is not allowed in `in (...)`: list numbers, 'strings', "
                    "true/false or null"
                )
        values = ", ".join(self.compile(item) for item in items)
        return f"({self.compile(node.this)} IN ({values}))"

    def is_(self, node: exp.Is) -> str:
        _only(node, {"this", "expression", "negate"})
        target = node.expression
        if type(target) not in (exp.Null, exp.Boolean):
            raise AudienceError(
                f"`{_snippet(node)}` is not allowed: use `is [not] null`, `is [not] true` or "
                "`is [not] false`"
            )
        negate = " NOT" if node.args.get("negate") else ""
        return f"({self.compile(node.this)} IS{negate} {self.compile(target)})"

    def like(self, node: exp.Like | exp.ILike) -> str:
        _only(node, {"this", "expression", "negate"})
        op = "ILIKE" if type(node) is exp.ILike else "LIKE"
        negate = "NOT " if node.args.get("negate") else ""
        return f"({self.compile(node.this)} {negate}{op} {self.compile(node.expression)})"

    def between(self, node: exp.Between) -> str:
        _only(node, {"this", "low", "high"})
        low, high = self.compile(node.args["low"]), self.compile(node.args["high"])
        return f"({self.compile(node.this)} BETWEEN {low} AND {high})"

    def case(self, node: exp.Case) -> str:
        _only(node, {"this", "ifs", "default"})
        parts = ["CASE"]
        if node.this is not None:
            parts.append(self.compile(node.this))
        for branch in node.args.get("ifs") or []:
            if type(branch) is not exp.If:
                raise _rejection(branch)
            _only(branch, {"this", "true"})
            parts += ["WHEN", self.compile(branch.this), "THEN", self.compile(branch.args["true"])]
        if node.args.get("default") is not None:
            parts += ["ELSE", self.compile(node.args["default"])]
        return "(" + " ".join(parts) + " END)"

    def cast(self, node: exp.Cast) -> str:
        _only(node, {"this", "to"})
        to = node.args.get("to")
        target = _CASTS.get(to.this) if type(to) is exp.DataType and not to.expressions else None
        if target is None:
            raise AudienceError(
                f"`{_snippet(node)}` is not allowed: casts are to "
                + ", ".join(sorted(set(_CASTS.values()), key=str.lower)).lower()
            )
        return f"CAST({self.compile(node.this)} AS {target})"

    def function(
        self, node: exp.Expression, name: str, keys: tuple[str, ...], flags: frozenset[str]
    ) -> str:
        _only(node, set(keys) | flags)
        args: list[exp.Expression] = []
        for key in keys:
            value = node.args.get(key)
            args += value if isinstance(value, list) else [value] if value is not None else []
        return self.call(node, name, args)

    def anonymous(self, node: exp.Anonymous) -> str:
        _only(node, {"this", "expressions"})
        name = node.name.lower()
        if name not in FUNCTIONS or not isinstance(node.this, str):
            raise _rejection(node)
        return self.call(node, name, node.expressions)

    def call(self, node: exp.Expression, name: str, args: list[exp.Expression]) -> str:
        low, high = FUNCTIONS[name]
        if len(args) < low or (high is not None and len(args) > high):
            count = f"{low} or more" if high is None else f"{low}–{high}" if high > low else low
            raise AudienceError(
                f"`{_snippet(node)}` is not allowed: `{name}` takes {count} argument(s)"
            )
        return f"{name}({', '.join(self.compile(a) for a in args)})"


def _only(node: exp.Expression, keys: set[str] | frozenset[str]) -> None:
    """Reject a whitelisted node used in a form with other arguments (e.g. `like … escape`)."""
    extra = [k for k, v in node.args.items() if k not in keys and v not in (None, False, [])]
    if extra:
        raise AudienceError(
            f"`{_snippet(node)}` is not allowed in this form ({', '.join(sorted(extra))}); "
            + _LANGUAGE
        )


def _is_literal(node: exp.Expression) -> bool:
    if type(node) in (exp.Literal, exp.Boolean, exp.Null):
        return True
    return type(node) is exp.Neg and type(node.this) is exp.Literal and not node.this.is_string


def _number(text: str) -> int | float:
    """A numeric literal's value: int when whole and within BIGINT, else float."""
    if _INTEGER.match(text) and int(text) <= _INT64_MAX:
        return int(text)
    if _DECIMAL.match(text):
        return float(text)
    raise AudienceError(f"`{text}` is not allowed: write numbers like 21, 0.6 or 1e3")


def _rejection(node: exp.Expression) -> AudienceError:
    """The error for a node outside the whitelist, named as the marketer would recognise it."""
    if isinstance(node, exp.Star):
        return AudienceError("`*` is not allowed: name each column")
    if isinstance(node, exp.Window):
        return AudienceError(
            f"`{_snippet(node)}` is not allowed: window functions and aggregates are not part "
            "of an audience"
        )
    if isinstance(node, _SET_OPERATION):
        return AudienceError(
            f"`{node.key.upper()}` is not allowed: the audience is one expression, not a query"
        )
    if isinstance(node, (exp.Subquery, exp.Query, exp.Exists)):
        return AudienceError(
            f"`{_snippet(node)}` is not allowed: subqueries and queries; the audience is one "
            "expression over customer_features columns"
        )
    if isinstance(node, exp.Func) and type(node) not in (exp.Cast, exp.Case):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        return AudienceError(
            f"`{name.lower()}(...)` is not allowed: functions are limited to "
            + ", ".join(FUNCTIONS)
        )
    if node.parent is None and not isinstance(node, (exp.Condition, *_NOT_STATEMENTS)):
        keyword = node.this if isinstance(node, exp.Command) else node.key
        return AudienceError(
            f"`{str(keyword).upper()}` is not allowed: the audience is one boolean expression, "
            "not a statement"
        )
    return AudienceError(f"`{_snippet(node)}` is not allowed: " + _LANGUAGE)


_NOT_STATEMENTS = (exp.Alias, exp.Interval, exp.Tuple)  # expressions sqlglot does not class
# as conditions; any other root outside the whitelist is a statement (COPY, PRAGMA, ATTACH…)

_Handler = Callable[[_Compiler, Any], str]
_HANDLERS: dict[type[exp.Expression], _Handler] = {
    exp.Column: _Compiler.column,
    exp.Literal: _Compiler.literal,
    exp.Boolean: _Compiler.boolean,
    exp.Null: _Compiler.null,
    exp.Paren: _Compiler.paren,
    exp.Not: _Compiler.not_,
    exp.Neg: _Compiler.negative,
    exp.In: _Compiler.in_list,
    exp.Is: _Compiler.is_,
    exp.Like: _Compiler.like,
    exp.ILike: _Compiler.like,
    exp.Between: _Compiler.between,
    exp.Case: _Compiler.case,
    exp.Cast: _Compiler.cast,
    exp.Anonymous: _Compiler.anonymous,
}
