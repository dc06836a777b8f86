{#-
    The feature columns of customer_features: those whose YAML carries
    `config: meta: {feature: true}`, in YAML order. Read from the project graph at execution
    time, so a model looping over them follows a newly marked feature without edits.
-#}
{% macro feature_columns() -%}
    {%- set features = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model' and node.name == 'customer_features' -%}
                {%- for name, column in node.columns.items() -%}
                    {%- set meta = column.config.meta if column.config is defined and column.config.meta else column.meta -%}
                    {%- if meta and meta.get('feature') -%}
                        {%- do features.append(name) -%}
                    {%- endif -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(features) }}
{%- endmacro %}
