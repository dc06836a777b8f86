-- The var product_categories (which names the affinity_<category> columns) and the seed
-- product_categories (which staging validates orders against) must list the same categories.
with

from_var as (

    {%- for category in var('product_categories') %}
    select '{{ category }}' as category
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

from_seed as (

    select category from {{ ref('product_categories') }}

)

select category, 'missing from seed' as problem
from from_var
where category not in (select category from from_seed)

union all

select category, 'missing from var product_categories' as problem
from from_seed
where category not in (select category from from_var)
