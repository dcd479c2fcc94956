"""The dashboard's named queries: each panel is fed by one SQL query here, run as is by the page and by the tests.

Every query takes named ClickHouse parameters (``{name:Type}``) and returns rows; :func:`run` gives them as dicts.
"Today", "the last 30 days" and "the last 60 days" follow event time: they are counted back from the latest
``as_of`` (scores) or the latest event ``ts`` (events), so a replayed backlog shows the same panels as the live
stream. Only the pipeline-health panels and two overview figures read the wall clock, and say so: events per
second now, and freshness.

The score a panel reads is each user's latest by ``as_of`` from the champion (``model_kind = 'pretrained'``).

>>> sorted(QUERIES)[:3]
['active_churned_weekly', 'alerts_recent', 'at_risk_count']
>>> all("{" not in name for name in QUERIES)
True
"""

from __future__ import annotations

import math
from typing import Any

_LATEST = "(SELECT max(as_of) FROM scores_now)"  # the latest as-of of any score: the stream's "now"
_BAND = "multiIf(score >= {high:Float64}, 'high', score >= {low:Float64}, 'medium', 'low')"
_CHURN_NOW = f"""
SELECT user_id, score, event_ts FROM scores_now FINAL
WHERE task = 'churn' AND model_kind = 'pretrained' AND event_ts > {_LATEST} - INTERVAL 60 DAY
"""

# the scores the stream resolved (table resolved_scores, written by the online learner: core.tasks defines the labels)
# whose horizon ended in the 7 days before the learner's watermark: all of them are resolved, either way, so the
# panels show the champion's recent quality without the bias of the labels an event settles early
_RESOLVED = """
SELECT score, label FROM resolved_scores FINAL
WHERE task = '{task}' AND model_kind = 'pretrained'
  AND horizon_end <= (SELECT max(resolved_at) FROM resolved_scores)
  AND horizon_end > (SELECT max(resolved_at) FROM resolved_scores) - INTERVAL 7 DAY"""
_LIFT = """
SELECT decile, count() AS rows, sum(label) AS positives, round(avg(score), 4) AS mean_score FROM (
    SELECT score, label, ntile(10) OVER (ORDER BY score DESC) AS decile FROM ({resolved}))
GROUP BY decile ORDER BY decile"""
_CALIBRATION = """
SELECT least(floor(score * 10), 9) / 10 AS bin, count() AS rows, round(avg(score), 4) AS predicted,
       round(avg(label), 4) AS observed
FROM ({resolved}) GROUP BY bin ORDER BY bin"""


# per segment or cluster: users, and the mean of the champion's latest churn and purchase scores of those users
_CUSTOMERS = """
SELECT {by}, count() AS users, round(avg(c.score), 4) AS churn, round(avg(p.score), 4) AS purchase
FROM user_segments_latest AS s
LEFT JOIN (SELECT user_id, score FROM scores_now FINAL WHERE task = 'churn' AND model_kind = 'pretrained') AS c
    ON c.user_id = s.user_id
LEFT JOIN (SELECT user_id, score FROM scores_now FINAL WHERE task = 'purchase' AND model_kind = 'pretrained') AS p
    ON p.user_id = s.user_id
GROUP BY {by} ORDER BY users DESC, {by}
SETTINGS join_use_nulls = 1"""


def _resolved(task: str, outer: str) -> str:
    """``outer`` around the task's resolved scores."""
    return outer.format(resolved=_RESOLVED.format(task=task))


QUERIES: dict[str, str] = {
    # --- overview
    "events_per_second": """
SELECT count() / 60 AS events_per_s FROM events WHERE ingested_at >= now64(3) - INTERVAL 60 SECOND""",
    "freshness": """
SELECT toUnixTimestamp64Milli(max(ts)) AS latest_event_ms,
       if(count() = 0, NULL, dateDiff('millisecond', max(ts), now64(3)) / 1000) AS seconds
FROM events""",
    "users_scored_today": """
SELECT toString(any(s.day)) AS day, uniqExactMerge(s.users) AS users FROM scored_users_daily AS s
WHERE s.day = (SELECT max(day) FROM scored_users_daily)
HAVING count() > 0""",
    "risk_bands": f"""
SELECT countIf(score < {{low:Float64}}) AS low,
       countIf(score >= {{low:Float64}} AND score < {{high:Float64}}) AS medium,
       countIf(score >= {{high:Float64}}) AS high
FROM ({_CHURN_NOW})""",
    "risk_trend": """
SELECT toString(day) AS day, countIf(s < {low:Float64}) AS low,
       countIf(s >= {low:Float64} AND s < {high:Float64}) AS medium, countIf(s >= {high:Float64}) AS high
FROM (
    SELECT user_id, day, argMax(score, as_of) AS s FROM user_scores_daily
    WHERE task = 'churn' AND model_kind = 'pretrained'
      AND day > (SELECT max(day) FROM user_scores_daily WHERE task = 'churn') - 30
    GROUP BY user_id, day)
GROUP BY day ORDER BY day""",
    "revenue_at_risk": f"""
SELECT round(sum(amount), 2) AS revenue, uniqExact(user_id) AS buyers FROM purchases FINAL
WHERE ts > (SELECT max(ts) FROM events) - INTERVAL 60 DAY
  AND user_id IN (SELECT user_id FROM ({_CHURN_NOW}) WHERE score >= {{high:Float64}})""",
    "expected_purchases": f"""
SELECT round(sum(score), 2) AS expected, count() AS users FROM scores_now FINAL
WHERE task = 'purchase' AND model_kind = 'pretrained' AND event_ts > {_LATEST} - INTERVAL 60 DAY""",
    # --- at risk: filters and the order are parameters; ``sort`` is chosen from SORTS, never from the request
    "at_risk_count": f"""
SELECT count() AS users FROM scores_now FINAL
WHERE task = {{task:String}} AND model_kind = 'pretrained'
  AND score >= {{min_score:Float64}} AND score < {{max_score:Float64}}
  AND dateDiff('day', event_ts, {_LATEST}) BETWEEN {{min_quiet:UInt32}} AND {{max_quiet:UInt32}}""",
    "at_risk_page": f"""
SELECT user_id, round(score, 4) AS score, {_BAND} AS band, toString(as_of) AS as_of, trigger,
       toString(event_ts) AS last_event, dateDiff('day', event_ts, {_LATEST}) AS quiet_days, model, model_version
FROM scores_now FINAL
WHERE task = {{task:String}} AND model_kind = 'pretrained'
  AND score >= {{min_score:Float64}} AND score < {{max_score:Float64}}
  AND quiet_days BETWEEN {{min_quiet:UInt32}} AND {{max_quiet:UInt32}}
ORDER BY {{sort}}, user_id
LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}""",
    # --- one user (the id is a parameter from a POST body, never from the URL)
    "user_score_history": """
SELECT toString(day) AS day, task, round(argMax(score, as_of), 4) AS score, argMax(model, as_of) AS model,
       argMax(trigger, as_of) AS trigger
FROM user_scores_daily WHERE user_id = {user_id:String} AND model_kind = 'pretrained'
GROUP BY day, task ORDER BY day, task""",
    "user_recent_events": """
SELECT event_type, toString(ts) AS ts, category, product_id, amount, topic, partition, offset FROM events
WHERE user_id = {user_id:String}
ORDER BY ts DESC LIMIT 1 BY event_id LIMIT 20""",
    # --- retention (events, event time)
    "retention_cohorts": """
SELECT toString(cohort) AS cohort_week, dateDiff('week', cohort, week) AS week_n, count() AS users
FROM (SELECT toMonday(first) AS cohort, finalizeAggregation(weeks) AS active_weeks FROM user_activity FINAL
      WHERE cohort > toMonday((SELECT max(last) FROM user_activity)) - INTERVAL 12 WEEK)
ARRAY JOIN active_weeks AS week
GROUP BY cohort, week_n ORDER BY cohort_week, week_n""",
    "retention_curve": """
SELECT n AS day_n, sumIf(c, span >= n) AS retained, sum(c) AS eligible, round(retained / eligible, 4) AS share
FROM (SELECT least(dateDiff('day', first, last), 60) AS span,
             least(dateDiff('day', first, (SELECT max(last) FROM user_activity)), 60) AS age, count() AS c
      FROM user_activity FINAL GROUP BY span, age)
ARRAY JOIN range(0, 61) AS n
WHERE age >= n
GROUP BY n ORDER BY n""",
    "active_churned_weekly": """
SELECT toString(week) AS week, sum(active) AS active, sum(churned) AS churned FROM (
    SELECT week, count() AS active, 0 AS churned
    FROM (SELECT finalizeAggregation(weeks) AS active_weeks FROM user_activity FINAL) ARRAY JOIN active_weeks AS week
    GROUP BY week
    UNION ALL
    SELECT toMonday(last + INTERVAL 60 DAY) AS week, 0 AS active, count() AS churned FROM user_activity FINAL
    WHERE last + INTERVAL 60 DAY <= (SELECT max(last) FROM user_activity) GROUP BY week)
GROUP BY week ORDER BY week""",
    # --- model quality
    "live_metrics": """
SELECT task, model_kind, model, labels, round(roc_auc, 4) AS roc_auc, round(log_loss, 4) AS log_loss,
       toString(ts) AS ts
FROM model_metrics ORDER BY task, model_kind, ts""",
    "score_distribution": """
SELECT task, floor(score * 20) / 20 AS bin, count() AS users FROM scores_now FINAL
WHERE model_kind = 'pretrained' GROUP BY task, bin ORDER BY task, bin""",
    "lift_churn": _resolved("churn", _LIFT),
    "lift_purchase": _resolved("purchase", _LIFT),
    "calibration_churn": _resolved("churn", _CALIBRATION),
    "calibration_purchase": _resolved("purchase", _CALIBRATION),
    # --- drift: the daily drift job's PSI per day and feature ('' is the score) of one champion, over 30 days
    "drift_psi": """
SELECT toString(day) AS date, feature, psi, rows, level FROM drift FINAL
WHERE task = {task:String} AND model = {model:String} AND version = {version:String}
  AND day > (SELECT max(day) FROM drift WHERE task = {task:String} AND model = {model:String}
             AND version = {version:String}) - 30
ORDER BY date, feature""",
    "alerts_recent": """
SELECT toString(raised_at) AS raised, task, model, version, feature, statistic, value, threshold, level,
       toString(window_start) AS window_start, toString(window_end) AS window_end
FROM alerts FINAL ORDER BY raised_at DESC, alert_id LIMIT 20""",
    # --- experiments: each variant on the same resolved labels (both score every user of the experiment), as
    # counts per score bin of 1/10,000 and label (models.comparison.from_bins); the bootstrap's pairs: a stable
    # hash sample of about, and at most, 20,000 labels
    "experiment_bins": """
SELECT model_kind AS variant, label, least(toUInt16(floor(score * 10000)), 9999) AS bin, count() AS rows,
       sum(score) AS score_sum,
       sum(if(label = 1, -log(greatest(score, 1e-6)), -log(greatest(1 - score, 1e-6)))) AS loss_sum
FROM resolved_scores FINAL
WHERE task = {task:String} AND experiment = {experiment:String} AND model_kind IN ('champion', 'challenger')
GROUP BY variant, label, bin ORDER BY variant, label, bin""",
    "experiment_pairs": """
SELECT user_id, anyIf(score, model_kind = 'champion') AS champion,
       anyIf(score, model_kind = 'challenger') AS challenger, any(label) AS label
FROM resolved_scores FINAL
WHERE task = {task:String} AND experiment = {experiment:String} AND model_kind IN ('champion', 'challenger')
  AND cityHash64(user_id, as_of) % 1000000 < {per_million:UInt32}
GROUP BY user_id, as_of HAVING countDistinct(model_kind) = 2
ORDER BY cityHash64(user_id, as_of) LIMIT 20000""",
    # --- pipeline health
    # --- customers: segments, clusters, recommendations (each user's latest segment row, the champion's latest scores)
    "segments_now": _CUSTOMERS.format(by="segment"),
    "clusters_now": _CUSTOMERS.format(by="cluster"),
    "recommendation_feedback": """
SELECT variant, countIf(action = 'shown') AS shown, countIf(action = 'clicked') AS clicked,
       countIf(action = 'bought') AS bought, uniqExact(user_id) AS users,
       if(shown = 0, NULL, round(clicked / shown, 4)) AS ctr,
       if(shown = 0, NULL, round(bought / shown, 4)) AS conversion
FROM recommendation_feedback FINAL GROUP BY variant ORDER BY variant""",
    "demand_latest": """
SELECT toString(d.day) AS day, category, round(expected, 2) AS expected FROM category_demand AS d FINAL
WHERE d.day = (SELECT max(day) FROM category_demand) ORDER BY category""",
    "demand_checked": """
SELECT toString(c.day) AS day, category, round(expected, 2) AS expected, realised FROM category_demand_check AS c
WHERE c.day = (SELECT max(day) FROM category_demand_check WHERE complete) ORDER BY category""",
    "throughput": """
SELECT toString(toStartOfMinute(ingested_at)) AS minute, count() AS events FROM events
WHERE ingested_at >= now64(3) - INTERVAL 60 MINUTE GROUP BY minute ORDER BY minute""",
    "dead_letters": """
SELECT toString(toStartOfHour(sent_at)) AS hour, reason, uniqExact(topic, partition, offset) AS letters
FROM dead_letters WHERE sent_at >= now64(3) - INTERVAL 7 DAY
GROUP BY hour, reason ORDER BY hour, reason""",
}

#: the at-risk table's sort keys (name -> ORDER BY expression)
SORTS = {
    "score": "score DESC",
    "score_asc": "score ASC",
    "last_event": "event_ts DESC",
    "quiet": "event_ts ASC",
    "as_of": "as_of DESC",
}


def sql(name: str, sort: str = "score") -> str:
    """The SQL of a named query (the at-risk page's with its ORDER BY from :data:`SORTS`).

    >>> "ORDER BY score DESC, user_id" in sql("at_risk_page")
    True
    """
    text = QUERIES[name]
    return text.replace("{sort}", SORTS[sort]) if name == "at_risk_page" else text


def finite(value: Any) -> Any:
    """NaN and infinities (a ROC-AUC over one class) become None: JSON has no NaN, and the page shows a dash.

    >>> finite(float("nan")), finite(0.5), finite("x")
    (None, 0.5, 'x')
    """
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run(client: Any, name: str, sort: str = "score", **parameters: Any) -> list[dict[str, Any]]:
    """Rows of a named query as dicts (the page and the tests call this)."""
    result = client.query(sql(name, sort), parameters=parameters)
    return [{k: finite(v) for k, v in zip(result.column_names, row, strict=True)} for row in result.result_rows]
