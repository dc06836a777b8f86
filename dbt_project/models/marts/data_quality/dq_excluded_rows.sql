-- Every raw row staging excluded, and every contact point it nulled out, with a reason code.
-- Covers the raw tables as loaded (no as-of filter): it describes the data, not a day.
with

customers as (

    select * from {{ ref('base_raw__customers') }}

),

excluded as (

    select
        'raw.customers' as source_table,
        coalesce(customer_id, '(null)') as row_key,
        exclusion_reason as reason_code,
        'row_excluded' as action,
        cast(null as varchar) as column_name,
        loaded_at
    from customers
    where exclusion_reason is not null

    union all

    select
        'raw.customers' as source_table,
        customer_id as row_key,
        'malformed_email' as reason_code,
        'value_nulled' as action,
        'email' as column_name,
        loaded_at
    from customers
    where exclusion_reason is null
        and is_malformed_email

    union all

    select
        'raw.customers' as source_table,
        customer_id as row_key,
        'malformed_phone' as reason_code,
        'value_nulled' as action,
        'phone' as column_name,
        loaded_at
    from customers
    where exclusion_reason is null
        and is_malformed_phone

    union all

    select
        'raw.orders' as source_table,
        coalesce(order_id, '(null)') as row_key,
        exclusion_reason as reason_code,
        'row_excluded' as action,
        cast(null as varchar) as column_name,
        loaded_at
    from {{ ref('base_raw__orders') }}
    where exclusion_reason is not null

    union all

    select
        'raw.consents' as source_table,
        coalesce(customer_id, '(null)')
        || '|' || coalesce(channel, '(null)')
        || '|' || coalesce(cast(recorded_at as varchar), '(null)') as row_key,
        exclusion_reason as reason_code,
        'row_excluded' as action,
        cast(null as varchar) as column_name,
        loaded_at
    from {{ ref('base_raw__consents') }}
    where exclusion_reason is not null

    union all

    select
        'raw.message_events' as source_table,
        coalesce(event_id, '(null)') as row_key,
        exclusion_reason as reason_code,
        'row_excluded' as action,
        cast(null as varchar) as column_name,
        loaded_at
    from {{ ref('base_raw__message_events') }}
    where exclusion_reason is not null

)

select * from excluded
