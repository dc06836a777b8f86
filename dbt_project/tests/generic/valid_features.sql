{#-
    Fails for every row where a column marked as a bandit feature (column config meta
    `feature: true`) is NULL, NaN or infinite. It reads the marker from the model's YAML, so a new
    feature column is covered as soon as it carries the marker.
-#}
{% test valid_features(model) %}

{%- set feature_columns = [] %}
{%- if execute %}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model'
        and node.package_name == project_name
        and node.alias == model.identifier %}
        {%- for column in node.columns.values() %}
            {%- set meta = column.config.get('meta', {}) if column.config else {} %}
            {%- if meta.get('feature') or column.meta.get('feature') %}
                {%- do feature_columns.append(column.name) %}
            {%- endif %}
        {%- endfor %}
    {%- endfor %}
{%- endif %}

{%- if feature_columns | length == 0 %}
select 1 as no_feature_columns where {{ 'false' if not execute else 'true' }}
{%- else %}
select *
from {{ model }}
where
    {%- for column in feature_columns %}
    {{ column }} is null
    or not {{ is_finite('cast(' ~ column ~ ' as double precision)') }}
    {{- " or" if not loop.last }}
    {%- endfor %}
{%- endif %}

{% endtest %}
