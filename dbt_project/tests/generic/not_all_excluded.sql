{#- Fails (one row, saying so) when a base_raw__* model has rows but every one carries an
    exclusion_reason: the whole load is unusable (a whole-day problem, not a bad row). An empty
    model passes (pair with not_empty on the source). -#}
{% test not_all_excluded(model) %}

select
    count(*) as excluded_rows,
    'every row of {{ model }} is excluded' as problem
from {{ model }}
having count(*) > 0
    and count(case when exclusion_reason is null then 1 end) = 0

{% endtest %}
