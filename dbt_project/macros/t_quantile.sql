{#-
    The 97.5 % quantile of Student's t with `df` degrees of freedom (a possibly fractional
    double: Welch-Satterthwaite), the multiplier of a two-sided 95 % interval; NULL for a NULL df.
    df 1..30: the exact quantiles, joined between whole df by interpolating ln t linearly in 1/df
    (relative error under 3 % for 1 < df < 2, 0.5 % for 2 < df < 3, 0.13 % above; exact at
    whole df). df >= 30: the Cornish-Fisher expansion in 1/df around the normal quantile
    1.959964 (relative error under 1e-7). A df below 1 (only from rounding) reads as 1.
    Plain SQL (ln, exp): DuckDB and Postgres alike.
-#}
{% macro t_quantile_975(df) -%}
    {%- set quantiles = [
        12.7062047362, 4.30265272975, 3.18244630528, 2.7764451052, 2.57058183564,
        2.44691185114, 2.36462425159, 2.3060041352, 2.2621571628, 2.22813885199,
        2.20098516009, 2.17881282967, 2.16036865646, 2.14478668792, 2.13144954556,
        2.11990529922, 2.10981557783, 2.10092204024, 2.09302405441, 2.08596344727,
        2.07961384473, 2.0738730679, 2.06865761042, 2.06389856163, 2.05953855275,
        2.05552943864, 2.05183051648, 2.0484071418, 2.04522964213, 2.0422724563
    ] -%}
    {%- set x = '(cast(' ~ df ~ ' as double precision))' -%}
    (case
        when {{ x }} is null then null
        when {{ x }} >= 30 then
            1.959963984540054
            + 2.372271230298562 / {{ x }}
            + 2.8224986157396112 / ({{ x }} * {{ x }})
            + 2.555849679507722 / ({{ x }} * {{ x }} * {{ x }})
            + 1.5895340533938225 / ({{ x }} * {{ x }} * {{ x }} * {{ x }})
        when {{ x }} <= 1 then {{ quantiles[0] }}
        {%- for d in range(1, 30) %}
        when {{ x }} < {{ d + 1 }} then exp(
            ln({{ quantiles[d - 1] }})
            + {{ d + 1 }} * (1 - {{ d }} / {{ x }}) * (ln({{ quantiles[d] }}) - ln({{ quantiles[d - 1] }}))
        )
        {%- endfor %}
    end)
{%- endmacro %}
