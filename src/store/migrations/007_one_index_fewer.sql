-- deliveries_pending_event only repeated what UNIQUE (event_id, webhook_id)
-- already gives (deliveries of one event, found by event_id): one b-tree
-- fewer to write for every routed delivery and every settlement.
DROP INDEX IF EXISTS deliveries_pending_event;
