{#-
    Data tests over the history read only the recent rows. Every data test of the project gets
    `where: __recent__` (dbt_project.yml); this override of dbt's get_where_subquery replaces the
    placeholder for the models the var `data_test_recent_columns` names (model → the column that
    says when a row was written or last changed) with `<column> >= as-of - N days`,
    N = `data_test_window_days`, and for every other model tests the relation itself. The rows
    of earlier days were tested by the builds of those days, so a daily build costs the new
    rows, not the history. `--vars '{data_test_window_days: null}'` tests everything (a weekly job, CI).
    (dbt's documented way to template `where`: https://docs.getdbt.com/reference/resource-configs/where)
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where and '__recent__' in where -%}
        {%- set column = var('data_test_recent_columns', {}).get(relation.identifier) -%}
        {%- set days = var('data_test_window_days', none) -%}
        {%- if column and days is not none -%}
            {%- set since = add_days(as_of(), -1 * (days | int)) -%}
            {%- set where = where | replace('__recent__', column ~ ' >= ' ~ since) -%}
        {%- else -%}  {#- the relation itself: some generic tests read its identifier #}
            {%- set where = where | replace('__recent__', '') | trim -%}
        {%- endif -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}
