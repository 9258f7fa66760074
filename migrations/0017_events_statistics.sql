-- The events table only grows, by thousands of rows a second under load, so autovacuum
-- analyzes it about once a minute. Half of each ANALYZE's CPU went to statistics on the
-- payload and metadata documents, which no query's plan uses: events are found by position,
-- aggregate, type and time, and by the expression indexes over metadata, whose statistics
-- ANALYZE still gathers. Under a held load each of those minutely spikes delayed commands.
ALTER TABLE events
    ALTER COLUMN payload SET STATISTICS 0,
    ALTER COLUMN metadata SET STATISTICS 0;
