{#-
    A source column that not every warehouse has: the column when `relation` has it, else
    `default` (a SQL expression). At parse time the column is assumed present.
-#}
{% macro optional_column(relation, column, default='null') -%}
    {%- if execute -%}
        {%- set names = adapter.get_columns_in_relation(relation)
            | map(attribute='name') | map('lower') | list -%}
    {%- else -%}
        {%- set names = [column | lower] -%}
    {%- endif -%}
    {{ column if column | lower in names else default }}
{%- endmacro %}
