with

source as (

    select * from {{ source('journeyman', 'decisions') }}

),

renamed as (

    select
        decision_id,
        agent,
        decision_date,
        customer_id,
        policy,
        policy_version,
        lower(experiment_group) as experiment_group,
        action_id,
        message_id,
        lower(channel) as channel,
        local_hour,
        subject_variant,
        send_at,
        propensity,
        exclusion_reason,
        lower(goal_metric) as goal_metric,
        attribution_window_days,
        coalesce(learning_window_days, attribution_window_days) as learning_window_days,
        coalesce(penalty_unsubscribe, 0) as penalty_unsubscribe,
        coalesce(penalty_complaint, 0) as penalty_complaint,
        created_at

    from source

)

select * from renamed
