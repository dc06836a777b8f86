{#- Fails (one row, saying so) when the model or source has no rows at all: a whole-day
    problem, not a bad row. Name the test and describe what to check where it is applied. -#}
{% test not_empty(model) %}

select 'no rows in {{ model }}' as problem
where not exists (select 1 from {{ model }})

{% endtest %}
