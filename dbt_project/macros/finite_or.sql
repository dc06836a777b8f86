{#- `expr` when it is a finite double, else `default` (also for NULL, like coalesce): a feature
    computed from sums, averages or ratios can then never reach the decisioner as NaN or
    +/-Infinity. Portable SQL. -#}
{% macro finite_or(expr, default) -%}
    cast(
        case
            when {{ is_finite('cast(' ~ expr ~ ' as double precision)') }}
                then {{ expr }}
            else {{ default }}
        end
        as double precision
    )
{%- endmacro %}
