{#-
    A mean and its 95 % interval from additive sums: n observations, their sum and their sum of
    squares (so any margin can be re-aggregated and its interval recomputed).

    sample_variance: s² = (sum of squares − sum² / n) / (n − 1), NULL when n < 2; a difference
    that rounding makes slightly negative reads 0.
    mean_interval: mean ∓ t(0.975, n − 1) · s / √n for side 'low' / 'high'; NULL when n < 2.
-#}
{% macro sample_variance(n, total, total_sq) -%}
    (case
        when {{ n }} >= 2 then
            greatest(
                cast({{ total_sq }} as double precision)
                - cast({{ total }} as double precision) * cast({{ total }} as double precision)
                / {{ n }},
                0
            ) / ({{ n }} - 1)
    end)
{%- endmacro %}

{% macro mean_interval(n, total, total_sq, side) -%}
    {%- if side not in ('low', 'high') -%}
        {{ exceptions.raise_compiler_error("mean_interval: side must be 'low' or 'high', got " ~ side) }}
    {%- endif -%}
    (case
        when {{ n }} >= 2 then
            cast({{ total }} as double precision) / {{ n }}
            {{ '-' if side == 'low' else '+' }} {{ t_quantile_975(n ~ ' - 1') }}
            * sqrt({{ sample_variance(n, total, total_sq) }} / {{ n }})
    end)
{%- endmacro %}
