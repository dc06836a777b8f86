"""Marketer templates render within limits: a runaway template fails its own records with a
short reason, fast and small, and normal templates render exactly as they always did."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from decimal import Decimal

import pyarrow as pa
import pytest

from journeyman.connectors import render as render_module
from journeyman.connectors.outbound import Creative, build_outbox_tables
from journeyman.connectors.render import (
    TemplateError,
    render,
    render_column,
    template_variables,
)
from journeyman.connectors.template_sandbox import (
    LOOP_TOO_LONG,
    MAX_OUTPUT_CHARS,
    OUTPUT_TOO_LARGE,
    TOOK_TOO_LONG,
)

ROW = {
    "first_name": "Ada",
    "days": 12,
    "score": 2 / 3,
    "price": 19.9,
    "when": dt.datetime(2026, 3, 2, 9, 0),
    "amount": Decimal("1.50"),
    "items": ["a", "b", "c"],
    "text": "Hello world, visit https://example.com now. " * 3,
}

#: (template, reason the render fails with)
RUNAWAY = [
    ("{{ range(10**9) | list }}", "loop too long"),
    ("{% for i in range(10**9) %}x{% endfor %}", "loop too long"),
    ("{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}", "loop"),
    ("{% for i in range(5000) %}{% for j in range(5000) %}x{% endfor %}{% endfor %}", "loop"),
    ("{{ 'x' * 10**8 }}", "output too large"),
    ("{{ 'x' * 10**7 ~ 'y' }}", "output too large"),
    ("{{ 'y' ~ ('x' * 60000) ~ ('x' * 60000) }}", "output too large"),
    ("{{ [1] * 10**9 }}", "output too large"),
    ("{{ (10**10) | center(10**9) }}", "output too large"),
    ("{{ 'x' | indent(10**9) }}", "output too large"),
    ("{{ ('a b ' * 40000) | wordwrap(1, wrapstring='y' * 1000) }}", "output too large"),
    ("{{ '%1000000000d' | format(1) }}", "output too large"),
    ("{{ '%1000000000d' % 1 }}", "output too large"),
    ("{{ '{:>1000000000}'.format(1) }}", "output too large"),
    ("{{ ('{0}' * 30000).format('x' * 99999) }}", "output too large"),
    ("{{ (['x' * 99999] * 100000) | join }}", "output too large"),
    ("{{ ['x' * 99999] * 100000 }}", "output too large"),
    ("{{ ('x' * 99999) | replace('x', 'yy') }}", "output too large"),
    ("{{ 'x'.ljust(10**9) }}", "output too large"),
    ("{{ [1] | batch(10**9, 0) | list }}", "output too large"),
    ("{{ range(10000) | map('center', 99999) | list | length }}", "output too large"),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        "output too large",
    ),
    ("{% set l = [1] %}{% for i in range(64) %}{{ l.extend(l) }}{% endfor %}", "output too large"),
    (
        "{% macro m() %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}"
        "{{ m() | length }}",
        "output too large",
    ),
    ("{{ 10 ** (10 ** 10) }}", "number too large"),
    ("{{ 2.0 ** 100000 }}", "number too large"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion too deep"),
    ("{{ 1 / 0 }}", "division by zero"),
    ("{{ first_name.nope.deeper }}", "variable missing"),
    ("{% include 'other' %}", "template failed"),
]


@pytest.mark.parametrize(("source", "reason"), RUNAWAY, ids=[s for s, _ in RUNAWAY])
def test_a_runaway_template_fails_with_a_short_reason_and_little_memory(source, reason):
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as failure:
            render(source, ROW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason in str(failure.value)
    assert len(str(failure.value)) < 250
    assert peak < 50_000_000, f"{source} peaked at {peak:,} bytes"


def test_the_reasons_name_the_limit():
    with pytest.raises(TemplateError, match="^loop too long") as loop:
        render("{% for i in range(10**9) %}x{% endfor %}", {})
    assert str(loop.value) == LOOP_TOO_LONG
    with pytest.raises(TemplateError) as size:
        render("{{ 'x' * 10**8 }}", {})
    assert str(size.value) == OUTPUT_TOO_LARGE
    with pytest.raises(TemplateError, match="^template variable missing: 'nope' is undefined"):
        render("{{ nope }}", {})


def test_output_at_the_limit_renders_and_one_more_character_fails():
    assert len(render("{{ 'x' * n }}", {"n": MAX_OUTPUT_CHARS})) == MAX_OUTPUT_CHARS
    with pytest.raises(TemplateError, match="output too large"):
        render("{{ 'x' * n }}y", {"n": MAX_OUTPUT_CHARS})
    with pytest.raises(TemplateError, match="output too large"):
        render("{% for i in range(3) %}{{ long }}{% endfor %}", {"long": "x" * 40_000})


def test_a_template_that_takes_too_long_fails_then_is_refused_at_once(monkeypatch):
    source = (  # about half a million macro calls: far beyond a tiny time limit
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(18) }}<!-- test_templates timeout -->"
    )
    monkeypatch.setattr(render_module, "MAX_RENDER_SECONDS", 0.02)
    for _ in range(render_module.TIMEOUTS_BEFORE_REFUSAL):
        with pytest.raises(TemplateError) as failure:
            render(source, {})
        assert str(failure.value) == TOOK_TOO_LONG
    # refused without rendering now, however long it would be allowed to take
    monkeypatch.setattr(render_module, "MAX_RENDER_SECONDS", 3600.0)
    with pytest.raises(TemplateError) as failure:
        render(source, {})
    assert str(failure.value) == TOOK_TOO_LONG


#: (template, what it rendered before the limits, for ROW)
NORMAL = [
    ("Hi {{ first_name }}, {{ days }} days", "Hi Ada, 12 days"),
    ("{{ first_name | upper }} {% if days > 3 %}late{% endif %}", "ADA late"),
    (
        "{{ score }} {{ price * 2 }} {{ days * 3 }} {{ days ** 2 }} {{ days % 5 }} "
        "{{ days // 5 }} {{ 'a' ~ days ~ 'b' }}",
        "0.6666666666666666 39.8 36 144 2 2 a12b",
    ),
    (
        "{{ '%05.1f' | format(price) }} {{ '%s-%s' % (first_name, days) }} "
        "{{ '{:>5}|{}'.format(first_name, days) }}",
        "019.9 Ada-12   Ada|12",
    ),
    (
        "{% for i in items %}{{ loop.index }}/{{ loop.length }}:{{ i }}"
        "{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}",
        "1/3:a, 2/3:b, 3/3:c",
    ),
    ("{% for i in [] %}x{% else %}empty{% endfor %}", "empty"),
    ("{{ items | join(', ') }} {{ items | map('upper') | join }}", "a, b, c ABC"),
    ("{{ 'one two three four' | wordwrap(9) }}", "one two\nthree\nfour"),
    ("{{ 'one two three four' | wordwrap(9, wrapstring='<br>') }}", "one two<br>three<br>four"),
    ("{{ first_name | center(9) }}|{{ 'a\nb' | indent(2, true) }}", "   Ada   |  a\n  b"),
    ("{{ text | truncate(20) }}", "Hello world,..."),
    (
        "{% set ns = namespace(t=0) %}{% for i in range(10) %}{% set ns.t = ns.t + i %}"
        "{% endfor %}{{ ns.t }}",
        "45",
    ),
    ("{% macro greet(n) %}Hello {{ n }}{% endmacro %}{{ greet(first_name) }}", "Hello Ada"),
    ("{% set x %}block {{ days }}{% endset %}{{ x | upper }}", "BLOCK 12"),
    ("{% filter upper %}hi {{ first_name }}{% endfilter %}", "HI ADA"),
    (
        "{{ when.strftime('%Y-%m-%d') }} {{ when }} {{ amount }} {{ amount * 2 }}",
        "2026-03-02 2026-03-02 09:00:00 1.50 3.00",
    ),
    (
        "{{ [1, 2, 3] | sum }} {{ [[1], [2]] | sum(start=[]) }} {{ range(3) | list }}",
        "6 [1, 2] [0, 1, 2]",
    ),
    (
        "{{ items | batch(2, 'z') | list }} {{ items + ['d'] }} {{ 'x' * 3 }} {{ [0] * 2 }}",
        "[['a', 'b'], ['c', 'z']] ['a', 'b', 'c', 'd'] xxx [0, 0]",
    ),
    ("{% for a, b in [(1, 2), (3, 4)] %}{{ a }}{{ b }}{% endfor %}", "1234"),
    (
        "{{ 'ab'.center(6, '*') }} {{ ','.join(items) }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
        "**ab** a,b,c 1024 0.5",
    ),
    ("Literal only, no variables", "Literal only, no variables"),
]


@pytest.mark.parametrize(("source", "expected"), NORMAL, ids=[s for s, _ in NORMAL])
def test_normal_templates_render_exactly_as_before(source, expected):
    assert render(source, ROW) == expected


def test_the_column_wise_path_is_unchanged_and_checks_the_size():
    table = pa.table({"first_name": ["Ada", "Grace"], "days": [3, 12]})
    got = render_column("Hi {{ first_name }}, {{ days }} days", table).to_pylist()
    assert got == ["Hi Ada, 3 days", "Hi Grace, 12 days"]
    assert got == [render("Hi {{ first_name }}, {{ days }} days", r) for r in table.to_pylist()]
    long = pa.table({"a": ["x" * 60_000, "y"], "b": ["z" * 50_000, "q"]})
    with pytest.raises(TemplateError, match="output too large"):
        render_column("{{ a }}{{ b }}", long)
    with pytest.raises(TemplateError, match="loop too long"):
        render_column("{% for i in range(10**9) %}{{ a }}{% endfor %}", long)


def test_template_variables_compile_and_know_the_globals():
    assert template_variables("{% for i in range(n) %}{{ loop.index }}{% endfor %}") == {"n"}
    assert template_variables("{{ namespace(a=1).a }} {{ first_name }}") == {"first_name"}
    with pytest.raises(TemplateError, match="line 2"):
        template_variables("ok\n{{ first_name }")
    with pytest.raises(TemplateError, match="No filter named 'shout'"):
        template_variables("{{ first_name | shout }}")


def _decisions(n: int) -> list[dict]:
    return [
        {
            "decision_id": f"d{i:03d}",
            "agent": "a",
            "channel": "email",
            "message_id": "runaway" if i % 2 else "fine",
            "customer_id": f"c{i}",
            "email": f"u{i}@example.com",
            "send_at": dt.datetime(2026, 3, 2, 9, 0),
            "subject_variant": 0,
            "first_name": "Ada",
            "days": i,
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "runaway",
    [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{{ 'x' * 10**8 }}",
        "{{ (10**10) | center(10**9) }}",
        "{{ range(10**9) | list }}",
    ],
)
def test_a_runaway_creative_rejects_only_its_own_records(runaway):
    creatives = {
        ("a", "fine", "email"): Creative(body="Hi {{ first_name }}, {{ days }} days", subject="Hi"),
        ("a", "runaway", "email"): Creative(body=runaway, subject="Hello {{ first_name }}"),
    }
    boxes = build_outbox_tables(
        pa.Table.from_pylist(_decisions(20)), creatives, {("a", "email"): "file"}
    )
    box = boxes["file"]
    sent = box.messages.to_pylist()
    assert [m["decision_id"] for m in sent] == [f"d{i:03d}" for i in range(0, 20, 2)]
    assert sent[1]["body"] == "Hi Ada, 2 days"
    assert sorted(r.decision_id for r in box.rejected) == [f"d{i:03d}" for i in range(1, 20, 2)]
    assert all(r.error.startswith("template_error: ") for r in box.rejected)
    assert all(len(r.error) < 250 for r in box.rejected)
