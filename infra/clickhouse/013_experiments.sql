-- Champion/challenger experiments (models/experiments.py). While one runs for a task, both models score every
-- event and day end: the `pretrained` row holds the score the user is served (their variant's, or always the
-- champion's in shadow mode) and a `shadow` row the other variant's. `variant` says which model made a row
-- (`champion` or `challenger`; empty outside experiments) and `experiment` its id. One row per (event or day end,
-- task, model kind, variant): the sorting key (user, task, model kind, as_of, event) already holds one variant per
-- model kind.
ALTER TABLE predictions
    ADD COLUMN IF NOT EXISTS variant LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS experiment String DEFAULT '';

-- The labels of an experiment's users: rows of model kind `champion` and `challenger` hold each variant's score of
-- the same snapshot (paired), with the experiment id.
ALTER TABLE resolved_scores ADD COLUMN IF NOT EXISTS experiment String DEFAULT '';
