-- How many raw rows / values staging excluded, per source table and reason code.
with

excluded as (

    select * from {{ ref('dq_excluded_rows') }}

),

counted as (

    select
        source_table,
        reason_code,
        cast(count(*) as integer) as row_count

    from excluded
    group by source_table, reason_code

)

select * from counted
