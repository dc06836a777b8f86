{#-
    The difference of two means (Welch): variance_1 / variance_2 are the groups' sample variances
    (macro sample_variance), n_1 / n_2 their sizes.

    welch_standard_error: √(s1² / n1 + s2² / n2); NULL when a variance is NULL (n < 2).
    welch_degrees_of_freedom: Welch-Satterthwaite
        (s1²/n1 + s2²/n2)² / ((s1²/n1)² / (n1 − 1) + (s2²/n2)² / (n2 − 1)),
    NULL when both variances are 0 (the interval then has width 0 whatever the df).
    The 95 % interval is difference ∓ t_quantile_975(df) · standard error.

    ratio_standard_error: the delta method for m1 / m2 (m2 ≠ 0):
        var(m1 / m2) ≈ (m1 / m2)² (s1² / (n1 m1²) + s2² / (n2 m2²))
                     = (s1² / n1 + (m1 / m2)² s2² / n2) / m2²   (also defined when m1 = 0);
    NULL when m2 = 0.
-#}
{% macro welch_standard_error(variance_1, n_1, variance_2, n_2) -%}
    sqrt({{ variance_1 }} / {{ n_1 }} + {{ variance_2 }} / {{ n_2 }})
{%- endmacro %}

{% macro welch_degrees_of_freedom(variance_1, n_1, variance_2, n_2) -%}
    (
        ({{ variance_1 }} / {{ n_1 }} + {{ variance_2 }} / {{ n_2 }})
        * ({{ variance_1 }} / {{ n_1 }} + {{ variance_2 }} / {{ n_2 }})
        / nullif(
            ({{ variance_1 }} / {{ n_1 }}) * ({{ variance_1 }} / {{ n_1 }}) / ({{ n_1 }} - 1)
            + ({{ variance_2 }} / {{ n_2 }}) * ({{ variance_2 }} / {{ n_2 }}) / ({{ n_2 }} - 1),
            0
        )
    )
{%- endmacro %}

{% macro ratio_standard_error(mean_1, variance_1, n_1, mean_2, variance_2, n_2) -%}
    (
        sqrt(
            {{ variance_1 }} / {{ n_1 }}
            + ({{ mean_1 }} / nullif({{ mean_2 }}, 0)) * ({{ mean_1 }} / nullif({{ mean_2 }}, 0))
            * {{ variance_2 }} / {{ n_2 }}
        )
        / abs(nullif({{ mean_2 }}, 0))
    )
{%- endmacro %}
