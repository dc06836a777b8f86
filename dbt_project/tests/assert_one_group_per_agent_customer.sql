-- Assignment is a sticky hash of (customer, agent salt): within an agent a customer must stay in
-- one (policy, experiment_group). Warn only, so a policy change mid-experiment does not stop runs.
{{ config(severity='warn') }}

select
    agent,
    customer_id,
    count(distinct policy || '|' || experiment_group) as groups

from {{ ref('stg_journeyman__decisions') }}
where exclusion_reason is distinct from 'not_eligible'
group by agent, customer_id
having count(distinct policy || '|' || experiment_group) > 1
