{#- A sum that is the same on every run: each term as an exact decimal with 9 decimal places,
    summed exactly, then back to double precision. A floating-point sum depends on the order of
    its terms, and DuckDB (or a parallel PostgreSQL plan) adds them in a different order from run
    to run: the learning statistics then differ in their last digits, the sampled decisions drift
    apart and two runs of one seed cannot be compared. Terms are rounded to 1e-9 (far below what
    the statistics resolve); decimal(38, 9) holds sums up to 1e29. -#}
{% macro exact_sum(expression) -%}
    cast(sum(cast({{ expression }} as decimal(38, 9))) as double precision)
{%- endmacro %}
