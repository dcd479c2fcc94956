-- Demand by category (streams/demand_job.py): after each daily cut, the expected number of customers buying in each
-- category in the next 30 days: each active customer's purchase probability (the champion's latest score as of the
-- cut) times their share of interest in the category, summed. One row per (day, category); a day computed again replaces its rows.
CREATE TABLE IF NOT EXISTS category_demand
(
    day         Date,
    as_of       DateTime64(3, 'UTC'),
    category    LowCardinality(String),
    expected    Float64,
    users       UInt64,
    computed_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (day, category)
SETTINGS non_replicated_deduplication_window = 10000;

-- The forecast next to what happened: customers who bought in the category in the 30 days after the day, once those
-- days are in (`complete`: the latest event is at least 30 days after the day end).
CREATE VIEW IF NOT EXISTS category_demand_check AS
SELECT d.day AS day, d.category AS category, d.expected AS expected, r.buyers AS realised,
       (SELECT max(ts) FROM events) >= d.as_of + INTERVAL 30 DAY AS complete
FROM (SELECT day, as_of, category, expected FROM category_demand FINAL) AS d
LEFT JOIN (
    SELECT dd.day AS day, b.category AS category, uniqExact(b.user_id) AS buyers
    FROM (SELECT DISTINCT day, as_of FROM category_demand) AS dd
    CROSS JOIN (
        SELECT user_id, ts, JSONExtractString(item, 'category') AS category
        FROM events ARRAY JOIN JSONExtractArrayRaw(items) AS item
        WHERE event_type = 'purchase'
    ) AS b
    WHERE b.ts > dd.as_of AND b.ts <= dd.as_of + INTERVAL 30 DAY
    GROUP BY dd.day, b.category
) AS r ON r.day = d.day AND r.category = d.category;
