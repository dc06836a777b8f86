{#-
    The tier of `value` among ascending `thresholds` (a dbt var, e.g. [30, 90, 180]): tiers are
    [lower, upper) with the thresholds as bounds, NULL → 'unknown'. Labels: for whole-number
    features (whole_numbers=true, values >= 0) inclusive ranges, e.g. '0-29', '30-89', '90-179',
    '180+' (a one-value tier is just the value: '0', '1'); otherwise '<50', '50-100', '100-200',
    '200+'. `suffix` follows each label's numbers, e.g. 'd' → '0-29d', '180d+'.
-#}
{% macro segment_tier(value, thresholds, whole_numbers=true, suffix='') -%}
    {%- set bounds = thresholds | list -%}
    {%- if bounds | length == 0 -%}
        {{ exceptions.raise_compiler_error("segment_tier: no thresholds for " ~ value) }}
    {%- endif -%}
    {%- for i in range(1, bounds | length) -%}
        {%- if bounds[i] <= bounds[i - 1] -%}
            {{ exceptions.raise_compiler_error(
                "segment_tier: thresholds must increase, got " ~ bounds ~ " for " ~ value
            ) }}
        {%- endif -%}
    {%- endfor -%}
    (case
        when {{ value }} is null then 'unknown'
        {%- for upper in bounds %}
        {%- if whole_numbers %}
            {%- set lower = 0 if loop.first else bounds[loop.index0 - 1] %}
            {%- set label = (lower ~ suffix) if lower == upper - 1 else (lower ~ '-' ~ (upper - 1) ~ suffix) %}
        {%- else %}
            {%- set label = ('<' ~ upper ~ suffix) if loop.first else (bounds[loop.index0 - 1] ~ '-' ~ upper ~ suffix) %}
        {%- endif %}
        when {{ value }} < {{ upper }} then '{{ label }}'
        {%- endfor %}
        else '{{ bounds[-1] ~ suffix }}+'
    end)
{%- endmacro %}
