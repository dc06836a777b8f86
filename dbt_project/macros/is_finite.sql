{#- True when a non-NULL double is a finite number (not NaN, not +/-Infinity); portable SQL. -#}
{% macro is_finite(expr) -%}
    ({{ expr }} not in (
        cast('NaN' as double precision),
        cast('Infinity' as double precision),
        cast('-Infinity' as double precision)
    ))
{%- endmacro %}
