{#-
    The run's clock. `run_date` ('YYYY-MM-DD') is the run's logical date: the dbt var run_date
    (--vars '{run_date: 2024-05-01}'), else the env var JOURNEYMAN_RUN_DATE (what Dagster sets for
    the partition's build), else the current UTC date. The as-of instant is run_date 00:00 UTC;
    every model counts only what happened strictly before it.
    The date is read only when dbt executes (`execute`), never while it parses: a new date then
    leaves dbt's partial parsing intact (a changed --vars or a parse-time env var would make every
    daily build re-parse the whole project, about 3 s each).
-#}

{% macro run_date() -%}
    {%- if not execute -%}
        {{ return('1970-01-01') }}  {#- parsing: any valid date; the SQL is not run #}
    {%- endif -%}
    {%- set raw = var('run_date', none) or env_var('JOURNEYMAN_RUN_DATE', '') -%}
    {%- if raw is none or (raw | string | trim) == '' -%}
        {{ return(modules.datetime.datetime.now(modules.pytz.utc).strftime('%Y-%m-%d')) }}
    {%- endif -%}
    {%- set text = raw | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error(
            "The dbt var run_date must be a date 'YYYY-MM-DD' (the run's logical date), got '"
            ~ text ~ "'. Pass it as --vars '{run_date: 2024-05-01}'."
        ) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{# The as-of instant as a timestamp literal: run_date 00:00 UTC (naive UTC timestamps). #}
{% macro as_of() -%}
    cast('{{ run_date() }} 00:00:00' as timestamp)
{%- endmacro %}

{# The run's logical date as a date literal. #}
{% macro as_of_date() -%}
    cast('{{ run_date() }}' as date)
{%- endmacro %}
