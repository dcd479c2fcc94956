-- Layers for analysts (docs/warehouse.md): bronze is `events`; silver is `user_features_daily`; gold is
-- `customer_360`.
--
-- user_features_daily (silver): one row per user and UTC day they were rescored by time (every active user, every
-- day end, until lapsed), with the feature vector of features.compute.FEATURE_NAMES as columns (a unit test keeps
-- them equal) and the weekly activity flags: active_wN = 1 when the user had an event in the N-th 7-day week
-- before as_of (week 1 = the 7 days ending at as_of). Written by the rescorer with the day's `time` predictions,
-- under the same insert token; a step redone after a failure may write a row again: read with FINAL.
CREATE TABLE IF NOT EXISTS user_features_daily
(
    day                             Date MATERIALIZED toDate(as_of),
    user_id                         String,
    as_of                           DateTime64(3, 'UTC'),
    page_views_7d                   Float64,
    product_views_7d                Float64,
    cart_adds_7d                    Float64,
    cart_removes_7d                 Float64,
    purchases_7d                    Float64,
    revenue_7d                      Float64,
    active_days_7d                  Float64,
    page_views_14d                  Float64,
    product_views_14d               Float64,
    cart_adds_14d                   Float64,
    cart_removes_14d                Float64,
    purchases_14d                   Float64,
    revenue_14d                     Float64,
    active_days_14d                 Float64,
    page_views_30d                  Float64,
    product_views_30d               Float64,
    cart_adds_30d                   Float64,
    cart_removes_30d                Float64,
    purchases_30d                   Float64,
    revenue_30d                     Float64,
    active_days_30d                 Float64,
    page_views_60d                  Float64,
    product_views_60d               Float64,
    cart_adds_60d                   Float64,
    cart_removes_60d                Float64,
    purchases_60d                   Float64,
    revenue_60d                     Float64,
    active_days_60d                 Float64,
    days_since_last_event           Float64,
    days_since_last_page_view       Float64,
    days_since_last_cart            Float64,
    days_since_last_purchase        Float64,
    tenure_days                     Float64,
    lifetime_events                 Float64,
    lifetime_purchases              Float64,
    lifetime_revenue                Float64,
    avg_order_value                 Float64,
    trend_7d                        Float64,
    trend_30d                       Float64,
    cart_adds_per_product_view_30d  Float64,
    purchases_per_cart_add_30d      Float64,
    category_share_00               Float64,
    category_share_01               Float64,
    category_share_02               Float64,
    category_share_03               Float64,
    category_share_04               Float64,
    category_share_05               Float64,
    category_share_06               Float64,
    category_share_07               Float64,
    category_share_08               Float64,
    category_share_09               Float64,
    category_share_10               Float64,
    category_share_11               Float64,
    category_share_12               Float64,
    category_share_13               Float64,
    category_share_14               Float64,
    category_share_15               Float64,
    active_w1                      UInt8,
    active_w2                      UInt8,
    active_w3                      UInt8,
    active_w4                      UInt8,
    active_w5                      UInt8,
    active_w6                      UInt8,
    active_w7                      UInt8,
    active_w8                      UInt8
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (user_id, day)
SETTINGS non_replicated_deduplication_window = 10000;

-- customer_360 (gold): per user, the latest (by as_of) champion churn and purchase scores, segment and cluster,
-- and key features, with the first and latest event and the status. The parts are kept by materialised views on
-- `predictions`, `user_segments` and `user_features_daily` into an AggregatingMergeTree whose columns keep the
-- max of (as_of, values...) tuples (the *_t columns): the latest wins, whichever source wrote first. `customer_360` is the view
-- analysts read (one row per user, merged on read).
CREATE TABLE IF NOT EXISTS customer_360_parts
(
    user_id  String,
    churn_t SimpleAggregateFunction(max, Tuple(as_of DateTime64(3, 'UTC'), score Float64, last_event DateTime64(3, 'UTC'), model String, version String)),
    purchase_t SimpleAggregateFunction(max, Tuple(as_of DateTime64(3, 'UTC'), score Float64)),
    segment_t SimpleAggregateFunction(max, Tuple(as_of DateTime64(3, 'UTC'), name String, r UInt8, f UInt8, m UInt8, cluster Int16)),
    features_t SimpleAggregateFunction(max, Tuple(as_of DateTime64(3, 'UTC'), lifetime_events Float64, lifetime_purchases Float64, lifetime_revenue Float64, avg_order_value Float64, tenure_days Float64, purchases_30d Float64, revenue_30d Float64, active_days_30d Float64, active_weeks_8 UInt8)),
    first_event SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_event  SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY user_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS customer_360_scores_mv TO customer_360_parts AS
SELECT user_id,
       if(task = 'churn', (as_of, score, event_ts, toString(model), model_version), (toDateTime64(0, 3, 'UTC'), 0., toDateTime64(0, 3, 'UTC'), '', '')) AS churn_t,
       if(task = 'purchase', (as_of, score), (toDateTime64(0, 3, 'UTC'), 0.)) AS purchase_t,
       (toDateTime64(0, 3, 'UTC'), '', 0, 0, 0, -1) AS segment_t,
       (toDateTime64(0, 3, 'UTC'), 0., 0., 0., 0., 0., 0., 0., 0., 0) AS features_t,
       event_ts AS first_event, event_ts AS last_event
FROM predictions WHERE model_kind = 'pretrained';

CREATE MATERIALIZED VIEW IF NOT EXISTS customer_360_segments_mv TO customer_360_parts AS
SELECT user_id,
       (toDateTime64(0, 3, 'UTC'), 0., toDateTime64(0, 3, 'UTC'), '', '') AS churn_t,
       (toDateTime64(0, 3, 'UTC'), 0.) AS purchase_t,
       (as_of, toString(segment), r, f, m, cluster) AS segment_t,
       (toDateTime64(0, 3, 'UTC'), 0., 0., 0., 0., 0., 0., 0., 0., 0) AS features_t,
       toDateTime64('2299-12-31 00:00:00', 3, 'UTC') AS first_event, toDateTime64(0, 3, 'UTC') AS last_event
FROM user_segments;

CREATE MATERIALIZED VIEW IF NOT EXISTS customer_360_features_mv TO customer_360_parts AS
SELECT user_id,
       (toDateTime64(0, 3, 'UTC'), 0., toDateTime64(0, 3, 'UTC'), '', '') AS churn_t,
       (toDateTime64(0, 3, 'UTC'), 0.) AS purchase_t,
       (toDateTime64(0, 3, 'UTC'), '', 0, 0, 0, -1) AS segment_t,
       (as_of, lifetime_events, lifetime_purchases, lifetime_revenue, avg_order_value, tenure_days, purchases_30d,
        revenue_30d, active_days_30d,
        toUInt8(active_w1 + active_w2 + active_w3 + active_w4 + active_w5 + active_w6 + active_w7 + active_w8)) AS features_t,
       toDateTime64('2299-12-31 00:00:00', 3, 'UTC') AS first_event, toDateTime64(0, 3, 'UTC') AS last_event
FROM user_features_daily;

-- Status as the API's default thresholds say it (CHURNSTREAM_API_RISK_THRESHOLDS: at_risk from 0.7): `lapsed`
-- when the latest churn score came 60 days or more after the user's latest event.
CREATE VIEW IF NOT EXISTS customer_360 AS
SELECT
    user_id,
    user_id AS contact_key,
    max(churn_t).as_of AS churn_as_of,
    max(churn_t).score AS churn_score,
    max(purchase_t).as_of AS purchase_as_of,
    max(purchase_t).score AS purchase_score,
    max(churn_t).model AS churn_model,
    max(churn_t).version AS churn_model_version,
    multiIf(max(churn_t).as_of = toDateTime64(0, 3, 'UTC'), 'unscored',
            dateDiff('day', max(churn_t).last_event, max(churn_t).as_of) >= 60, 'lapsed',
            max(churn_t).score >= 0.7, 'at_risk', 'active') AS status,
    max(segment_t).name AS segment,
    max(segment_t).r AS r,
    max(segment_t).f AS f,
    max(segment_t).m AS m,
    max(segment_t).cluster AS cluster,
    max(features_t).as_of AS features_as_of,
    max(features_t).lifetime_events AS lifetime_events,
    max(features_t).lifetime_purchases AS lifetime_purchases,
    max(features_t).lifetime_revenue AS lifetime_revenue,
    max(features_t).avg_order_value AS avg_order_value,
    max(features_t).tenure_days AS tenure_days,
    max(features_t).purchases_30d AS purchases_30d,
    max(features_t).revenue_30d AS revenue_30d,
    max(features_t).active_days_30d AS active_days_30d,
    max(features_t).active_weeks_8 AS active_weeks_8,
    min(first_event) AS first_event,
    max(last_event) AS last_event
FROM customer_360_parts
GROUP BY user_id;
