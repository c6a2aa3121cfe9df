-- herald schema, version 10: how each event arrived, for the metric
-- herald_events_ingested_total{source}: 'api' (POST /api/v1/events), 'cli'
-- (herald emit), 'herald' (its own alerts); NULL for a producer's plain SQL
-- INSERT, counted as source="sql".
ALTER TABLE events ADD COLUMN source TEXT;
