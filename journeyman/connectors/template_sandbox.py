"""The Jinja environment marketer templates run in: Jinja's sandbox, strict undefined
variables, and limits on what one render may do, checked before the work that would exceed them.

The limits (per render of one template for one customer):

- `MAX_OUTPUT_CHARS`: characters of the rendered text, and of any one string the template
  builds on the way (a repetition, a concatenation, a filter's result, a macro's output);
- `MAX_LOOP_ITERATIONS`: loop iterations, all loops together, and items of a `range`;
- `MAX_ITEMS`: items of a list the template builds (`[x] * n`, `a + b`, `extend`);
- `MAX_BUILT_CHARS`: characters (and list items) of all values the render builds, together;
- `MAX_INT_BITS`: size of a whole number the template computes (`10 ** (10 ** 10)`);
- `MAX_RENDER_SECONDS`: wall-clock time, checked while rendering (per output chunk, loop
  iteration, call, operator and filter).

`render.py` renders with this environment and turns every failure into a `TemplateError`.
"""

from __future__ import annotations

import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import update_wrapper
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.filters import make_attrgetter
from jinja2.runtime import Namespace
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum, pass_context

#: characters of one rendered template, and of any one string built while rendering it
MAX_OUTPUT_CHARS = 100_000
#: loop iterations of one render (all loops together), and items of one `range(...)`
MAX_LOOP_ITERATIONS = 10_000
#: items of one list a template builds
MAX_ITEMS = 100_000
#: characters and list items of all the values one render builds, together (memory bound)
MAX_BUILT_CHARS = 10_000_000
#: bits of a whole number a template computes (about 3,000 decimal digits)
MAX_INT_BITS = 10_000
#: wall-clock seconds one render may take
MAX_RENDER_SECONDS = 1.0
#: time-outs after which a template is refused at once (the rest of this process)
TIMEOUTS_BEFORE_REFUSAL = 3

OUTPUT_TOO_LARGE = f"output too large (over {MAX_OUTPUT_CHARS:,} characters)"
LOOP_TOO_LONG = f"loop too long (over {MAX_LOOP_ITERATIONS:,} iterations)"
TOOK_TOO_LONG = f"took too long (over {MAX_RENDER_SECONDS:g} s)"
NUMBER_TOO_LARGE = f"number too large (over {MAX_INT_BITS:,} bits)"
LIST_TOO_LONG = f"output too large (a list over {MAX_ITEMS:,} items)"
BUILT_TOO_MUCH = f"output too large (over {MAX_BUILT_CHARS:,} characters built in all)"
_REASON_CHARS = 200


class TemplateError(ValueError):
    """A template could not be compiled or rendered for a record."""


class _LimitExceeded(Exception):
    """A render broke a limit. Not a ValueError / TypeError, so no filter swallows it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the per-render budget -------------------------------------------------------------------


class _Budget:
    """What one render has spent: time, loop iterations, built characters."""

    __slots__ = ("built", "deadline", "iterations")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.iterations = 0
        self.built = 0

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _LimitExceeded(TOOK_TOO_LONG)

    def step(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise _LimitExceeded(LOOP_TOO_LONG)
        self.check_time()

    def build(self, size: int) -> None:
        self.built += size
        if self.built > MAX_BUILT_CHARS:
            raise _LimitExceeded(BUILT_TOO_MUCH)
        self.check_time()


_BUDGET: ContextVar[_Budget | None] = ContextVar("journeyman_template_budget", default=None)


def _tick() -> None:
    """Check the deadline of the render in progress (none at compile time)."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.check_time()


def _allow_text(size: int) -> None:
    """A string of `size` characters is about to be built: refuse it before it is."""
    if size > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(OUTPUT_TOO_LARGE)
    budget = _BUDGET.get()
    if budget is not None:
        budget.build(size)


def _allow_items(count: int) -> None:
    """A list of `count` items is about to be built."""
    if count > MAX_ITEMS:
        raise _LimitExceeded(LIST_TOO_LONG)
    budget = _BUDGET.get()
    if budget is not None:
        budget.build(count)


def _allow_width(width: Any) -> None:
    """A padding / indentation width (or a printf width) must fit in the output."""
    if isinstance(width, int) and width > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(OUTPUT_TOO_LARGE)


def _charge(value: Any) -> Any:
    """Count a value some call built against the budget (after the fact: linear growth only)."""
    if isinstance(value, str):
        _allow_text(len(value))
    elif isinstance(value, list | tuple):
        _allow_items(len(value))
    return value


def _text_size(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """About how many characters `str(value)` has; stops counting once past `limit` (so a list
    holding one long string a million times costs nothing to measure)."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Namespace):
            stack.append(item._Namespace__attrs)  # type: ignore[attr-defined]
        else:
            total += 64
    return total


def _allow_str_of(value: Any) -> None:
    """`str(value)` is about to be built (output, `~`, `|string`, `%s`): refuse huge ones."""
    if isinstance(value, str):
        return
    if _text_size(value) > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(OUTPUT_TOO_LARGE)


# -- operators, formats and calls ------------------------------------------------------------

_SEQUENCES = (str, list, tuple)


def _check_repeat(left: Any, right: Any) -> None:
    """`seq * n`, `n * seq`, `int * int`."""
    if isinstance(left, int) and isinstance(right, _SEQUENCES):
        left, right = right, left
    if isinstance(left, _SEQUENCES) and isinstance(right, int):
        count = len(left) * max(right, 0)
        if isinstance(left, str):
            _allow_text(count)
        else:
            _allow_items(count)
    elif (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_INT_BITS
    ):
        raise _LimitExceeded(NUMBER_TOO_LARGE)


def _check_power(left: Any, right: Any) -> None:
    """`a ** b` on whole numbers: refuse results over `MAX_INT_BITS` before computing them."""
    if not (isinstance(left, int) and isinstance(right, int)) or right <= 0 or abs(left) <= 1:
        return
    if math.log2(abs(left)) * right > MAX_INT_BITS:
        raise _LimitExceeded(NUMBER_TOO_LARGE)


def _check_add(left: Any, right: Any) -> None:
    """`a + b` on strings or lists."""
    if isinstance(left, str) and isinstance(right, str):
        _allow_text(len(left) + len(right))
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        _allow_items(len(left) + len(right))


_PRINTF = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)
_FIELD_HEAD = re.compile(r"[^.\[]*")


def _field_size(value: Any, widths: list[int]) -> int:
    """Characters one formatted field takes: its value's text or its width, the larger."""
    for width in widths:
        _allow_width(width)
    return max([_text_size(value), *widths])


def _check_printf(fmt: str, args: Any) -> None:
    """`fmt % args` (and the `format` filter): the formatted text must fit before it is built."""
    mapping = args if isinstance(args, Mapping) else None
    positional = [] if mapping is not None else list(args) if isinstance(args, tuple) else [args]
    taken = iter(positional)
    total = len(fmt)
    for match in _PRINTF.finditer(fmt):
        key, width, precision, conversion = match.groups()
        if conversion == "%":
            continue
        widths = []
        for spec in (width, precision):
            if spec == "*":
                star = next(taken, 0)
                widths.append(star if isinstance(star, int) else 0)
            elif spec:
                widths.append(int(spec))
        value = mapping.get(key) if mapping is not None and key is not None else next(taken, None)
        total += _field_size(value, widths)
    _allow_text(total)


_FORMATTER = string.Formatter()


def _check_str_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """`fmt.format(*args, **kwargs)` / `fmt.format_map(kwargs)`: the text must fit first."""
    everything = [*args, *kwargs.values()]
    auto = 0
    total = len(fmt)
    for _, name, spec, _ in _FORMATTER.parse(fmt):
        if name is None:
            continue
        head = _FIELD_HEAD.match(name).group()  # type: ignore[union-attr]
        if head == "":
            value = args[auto] if auto < len(args) else None
            auto += 1
        elif head.isdigit():
            value = args[int(head)] if int(head) < len(args) else None
        else:
            value = kwargs.get(head)
        widths = [int(n) for n in re.findall(r"\d+", spec or "")]
        if spec and "{" in spec:  # nested fields: any argument may be a width, or this value
            widths += [v for v in everything if isinstance(v, int)]
            value = everything
        total += _field_size(value, widths)
    _allow_text(total)


def _check_percent(left: Any, right: Any) -> None:
    if isinstance(left, str):
        _check_printf(left, right)


_BINOP_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "*": _check_repeat,
    "**": _check_power,
    "+": _check_add,
    "%": _check_percent,
}


def _replaced_size(text: str, old: str, new: str, count: int | None) -> int:
    hits = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


def _check_str_method(owner: str, name: str, args: tuple[Any, ...], kwargs: dict) -> tuple:
    """Size checks for the str methods that can build far more than they get."""
    first = args[0] if args else next(iter(kwargs.values()), None)
    if name in ("center", "ljust", "rjust", "zfill"):
        _allow_width(first)
    elif name == "expandtabs":
        tab = first if isinstance(first, int) else 8
        _allow_text(len(owner) + owner.count("\t") * max(tab, 0))
    elif name == "replace" and len(args) >= 2 and isinstance(args[1], str):
        count = args[2] if len(args) > 2 else kwargs.get("count")
        _allow_text(_replaced_size(owner, str(args[0]), args[1], count))
    elif name == "join" and args:
        items = list(args[0])
        _allow_text(sum(_text_size(i) for i in items) + len(owner) * max(len(items) - 1, 0))
        args = (items, *args[1:])
    elif name == "translate" and isinstance(first, Mapping):
        longest = max([_text_size(v) for v in first.values()] + [1])
        _allow_text(len(owner) * longest)
    return args


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict) -> tuple:
    """Size checks before a call from a template; returns the (materialised) arguments."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str):
        return _check_str_method(owner, name, args, kwargs)
    if isinstance(owner, list) and name == "extend" and args:
        items = list(args[0])
        _allow_items(len(owner) + len(items))
        return (items, *args[1:])
    return args


def _limited_range(*args: int) -> range:
    """`range` for templates: at most `MAX_LOOP_ITERATIONS` items."""
    rng = range(*args)
    try:
        size = len(rng)
    except OverflowError:
        size = MAX_LOOP_ITERATIONS + 1
    if size > MAX_LOOP_ITERATIONS:
        raise _LimitExceeded(LOOP_TOO_LONG)
    return rng


def _limited_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """`lipsum` for templates: at most about `MAX_OUTPUT_CHARS` of text."""
    if n * max * 12 > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(OUTPUT_TOO_LARGE)
    return generate_lorem_ipsum(n, html, min, max)


# -- filters ---------------------------------------------------------------------------------

#: filters that turn their input into text: a huge list there is a huge string
_STRINGIFYING = frozenset(
    {
        *("capitalize", "center", "e", "escape", "forceescape", "format", "indent", "lower"),
        *("pprint", "replace", "safe", "string", "striptags", "title", "tojson", "trim"),
        *("truncate", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr"),
    }
)


def _guard_filter(name: str, func: Callable[..., Any], special: Callable | None) -> Callable:
    """A filter that checks the deadline and its input before, and its result after, running
    (`special` does the filter-specific checks before it runs)."""
    passes = getattr(func, "jinja_pass_arg", None)
    skip = 0 if passes is None else 1

    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if name in _STRINGIFYING and len(args) > skip:
            _allow_str_of(args[skip])
        if special is not None:
            special(*args[skip:], **kwargs)
        return _charge(func(*args, **kwargs))

    return update_wrapper(guarded, func)


def _center_check(value: Any, width: int = 80) -> None:
    _allow_width(width)


def _indent_check(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> None:
    size = width if isinstance(width, int) else len(str(width))
    _allow_width(size)
    text = str(s)
    _allow_text(len(text) + (text.count("\n") + 1) * max(size, 0))


def _format_check(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_printf(str(value), kwargs or args)


def _replace_check(s: Any, old: Any, new: Any, count: int | None = None) -> None:
    _allow_text(_replaced_size(str(s), str(old), str(new), count))


def _fill_check(value: Any, count: int, fill_with: Any = None) -> None:
    """`batch` pads with `fill_with` up to `count` items; `slice` loops `count` times."""
    if isinstance(count, int) and count > MAX_ITEMS:
        raise _LimitExceeded(LIST_TOO_LONG)


def _tojson_check(value: Any, indent: int | str | None = None) -> None:
    if indent is not None:
        size = indent if isinstance(indent, int) else len(str(indent))
        _allow_width(size)
        _allow_text(_text_size(value, MAX_OUTPUT_CHARS) * (1 + max(size, 0)))


def _urlize_check(
    value: Any,
    trim_url_limit: Any = None,
    nofollow: bool = False,
    target: Any = None,
    rel: Any = None,
    extra_schemes: Any = None,
) -> None:
    extra = len(str(target or "")) + len(str(rel or ""))
    _allow_text(len(str(value).split()) * extra)


_SPECIAL_CHECKS: dict[str, Callable[..., None]] = {
    "center": _center_check,
    "indent": _indent_check,
    "format": _format_check,
    "replace": _replace_check,
    "batch": _fill_check,
    "slice": _fill_check,
    "tojson": _tojson_check,
    "urlize": _urlize_check,
}


def _sized_items(values: Iterable[Any]) -> list[Any]:
    items = []
    for value in values:
        items.append(value)
        if len(items) > MAX_ITEMS:
            raise _LimitExceeded(LIST_TOO_LONG)
    return items


def _join_filter(original: Callable) -> Callable:
    """`join`: the joined text must fit before it is built."""

    def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
        items = _sized_items(value)
        if attribute is not None:
            getter = make_attrgetter(eval_ctx.environment, attribute)
            items = [getter(item) for item in items]
        sep = str(d)
        _allow_text(sum(_text_size(i) for i in items) + len(sep) * max(len(items) - 1, 0))
        return original(eval_ctx, items, d)

    return update_wrapper(join, original)


def _wordwrap_filter(original: Callable) -> Callable:
    """`wordwrap`: wrap with newlines, then check the size the real `wrapstring` gives."""

    def wordwrap(
        environment: Any,
        s: str,
        width: int = 79,
        break_long_words: bool = True,
        wrapstring: str | None = None,
        break_on_hyphens: bool = True,
    ) -> str:
        sep = environment.newline_sequence if wrapstring is None else wrapstring
        wrapped = original(environment, s, width, break_long_words, "\n", break_on_hyphens)
        breaks = wrapped.count("\n")
        _allow_text(len(wrapped) + breaks * (len(sep) - 1))
        return wrapped if sep == "\n" else sep.join(wrapped.split("\n"))

    return update_wrapper(wordwrap, original)


def _sum_filter(original: Callable) -> Callable:
    """`sum` of lists / strings copies the growing total once per item: bound that work."""

    def sum_(
        environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
    ) -> Any:
        items = _sized_items(iterable)
        if attribute is not None:
            getter = make_attrgetter(environment, attribute)
            items = [getter(item) for item in items]
        sequences = [x for x in (start, *items) if isinstance(x, _SEQUENCES)]
        if sequences:
            total = sum(len(x) for x in sequences)
            _allow_items(total)
            if total * len(sequences) > MAX_BUILT_CHARS:
                raise _LimitExceeded(BUILT_TOO_MUCH)
        return original(environment, items, start=start)

    return update_wrapper(sum_, original)


_REPLACED_FILTERS: dict[str, Callable[[Callable], Callable]] = {
    "join": _join_filter,
    "wordwrap": _wordwrap_filter,
    "sum": _sum_filter,
}


@pass_context
def _loop_guard(context: Any, iterable: Any) -> Any:
    """Wrapped around every `{% for %}`'s iterable: counts iterations, checks the deadline."""
    budget = _BUDGET.get()
    if budget is None:
        return iterable
    return _counted(iterable, budget)


def _counted(iterable: Any, budget: _Budget) -> Iterator[Any]:
    for item in iterable:
        budget.step()
        yield item


_LOOP_FILTER = "_journeyman_loop_guard"


# -- the environment -------------------------------------------------------------------------


class _LimitedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with `a ~ b` routed through the environment's size check."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.limited_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _limited_buffer_join(parts: Iterable[str]) -> str:
    """`environment.concat`: joins a macro's / block's / `{% set %}` block's output buffer."""
    items = parts if isinstance(parts, list) else list(parts)
    _allow_text(sum(map(len, items)))
    return "".join(items)


def _finalize(value: Any) -> Any:
    """Every `{{ ... }}` output passes here before `str()`: refuse huge ones."""
    _allow_str_of(value)
    return value


class _LimitedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with the module's limits on loops, sizes, numbers and time."""

    code_generator_class = _LimitedCodeGenerator
    intercepted_binops = frozenset(_BINOP_CHECKS)
    concat = staticmethod(_limited_buffer_join)  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize)
        self.globals["range"] = _limited_range
        self.globals["lipsum"] = _limited_lipsum
        for name, func in list(self.filters.items()):
            if name in _REPLACED_FILTERS:
                func = _REPLACED_FILTERS[name](func)
            self.filters[name] = _guard_filter(name, func, _SPECIAL_CHECKS.get(name))
        self.filters[_LOOP_FILTER] = _loop_guard

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, then wrap every loop's iterable in the loop guard."""
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.iter.lineno
            )
        tree.set_environment(self)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _BINOP_CHECKS[operator](left, right)
        return _charge(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        args = _check_call(__obj, args, kwargs)
        return _charge(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` / `format_map` from a template, with its output size checked first."""
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__
        is_map = value.__name__ == "format_map"

        def limited(*args: Any, **kwargs: Any) -> str:
            _tick()
            if is_map and args and isinstance(args[0], Mapping):
                _check_str_format(fmt, (), args[0])
            else:
                _check_str_format(fmt, args, kwargs)
            return _charge(wrapper(*args, **kwargs))

        return update_wrapper(limited, value)

    @staticmethod
    def limited_concat(join: Callable[[Iterable[Any]], str], values: tuple[Any, ...]) -> str:
        """`a ~ b ~ c`: the joined text must fit before it is built."""
        _tick()
        _allow_text(sum(_text_size(v) for v in values))
        return join(values)


_ENV = _LimitedEnvironment()
