{#-
    Row checks staging applies to every raw row (base_raw__* models): how large a money amount
    may be, and when a timestamp lies in the future. Both read vars from dbt_project.yml.
-#}

{#- The largest plausible money amount of one order (var max_order_amount), checked at compile
    time: a positive number no larger than 1e12, so no sum over orders can overflow a double. -#}
{% macro max_order_amount() -%}
    {%- set raw = var('max_order_amount') -%}
    {%- set text = raw | string | trim -%}
    {%- if not modules.re.match('^[0-9]+(\.[0-9]+)?([eE]\+?[0-9]+)?$', text)
        or (text | float) <= 0 or (text | float) > 1000000000000 -%}
        {{ exceptions.raise_compiler_error(
            "The dbt var max_order_amount must be a positive number no larger than 1e12 (the "
            ~ "largest plausible single order, in the shop's currency), got '" ~ text ~ "'."
        ) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{#- True when the timestamp `ts` lies more than var future_timestamp_tolerance_hours after both
    the run's as-of instant and the row's own load (`loaded_at`, NULL counts as the as-of): a
    date nobody could have recorded yet. A row dated after the as-of instant alone is normal in a
    backfill (it is simply not yet visible to that day's models); one dated after its load alone
    is tolerated up to the as-of, so hand-stamped or re-stamped loads stay usable. -#}
{% macro is_future_dated(ts, loaded_at) -%}
    {%- set tolerance = var('future_timestamp_tolerance_hours') -%}
    {%- if not modules.re.match('^[0-9]+$', tolerance | string | trim) -%}
        {{ exceptions.raise_compiler_error(
            "The dbt var future_timestamp_tolerance_hours must be a whole number of hours >= 0, "
            ~ "got '" ~ tolerance ~ "'."
        ) }}
    {%- endif -%}
    ({{ ts }} > greatest({{ as_of() }}, coalesce({{ loaded_at }}, {{ as_of() }}))
        + {{ tolerance }} * interval '1 hour')
{%- endmacro %}
