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

-- The forecast next to what happened: the customers who bought in the 30 days after the day, each counted once and
-- split across categories by the items they bought (a customer who bought two books and a toy counts 2/3 for books
-- and 1/3 for toys), so that the sum over categories is the number of buyers, as the forecast's sum is the expected
-- number of buyers; `complete` once the latest event is at least 30 days after the day end.
CREATE VIEW IF NOT EXISTS category_demand_check AS
SELECT d.day AS day, d.category AS category, d.expected AS expected, r.buyers AS realised,
       (SELECT max(ts) FROM events) >= d.as_of + INTERVAL 30 DAY AS complete
FROM (SELECT day, as_of, category, expected FROM category_demand FINAL) AS d
LEFT JOIN (
    SELECT day, category, sum(n / total) AS buyers
    FROM (
        SELECT day, user_id, category, n, sum(n) OVER (PARTITION BY day, user_id) AS total
        FROM (
            SELECT dd.day AS day, b.user_id AS user_id, b.category AS category, count() AS n
            FROM (SELECT DISTINCT day, as_of FROM category_demand) AS dd
            CROSS JOIN (
                SELECT user_id, ts, JSONExtractString(item, 'category') AS category
                FROM (SELECT * FROM events WHERE event_type = 'purchase' LIMIT 1 BY user_id, event_id)
                ARRAY JOIN JSONExtractArrayRaw(items) AS item
            ) AS b
            WHERE b.ts > dd.as_of AND b.ts <= dd.as_of + INTERVAL 30 DAY
            GROUP BY dd.day, b.user_id, b.category
        )
    )
    GROUP BY day, category
) AS r ON r.day = d.day AND r.category = d.category;
