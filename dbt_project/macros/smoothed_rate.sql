{#-
    Beta / additive smoothing: (successes + prior_rate * strength) / (trials + strength), as a
    double. NULL successes / trials count as 0, so a customer without history gets prior_rate.
    strength is a positive number of pseudo-observations (a compile-time constant).
-#}
{% macro smoothed_rate(successes, trials, prior_rate, strength) -%}
    {%- if (strength | float) <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "smoothed_rate needs a positive prior strength, got " ~ strength
        ) }}
    {%- endif -%}
    cast(
        (coalesce({{ successes }}, 0) + ({{ prior_rate }}) * {{ strength }})
        / (coalesce({{ trials }}, 0) + {{ strength }})
        as double precision
    )
{%- endmacro %}
