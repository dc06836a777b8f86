{#- Models land in exactly the schema their layer names (staging, intermediate, marts, seeds),
    without dbt's default "<target schema>_" prefix; nodes without one go to the target schema. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
