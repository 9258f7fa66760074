-- The bounty board's default order (newest first) without a status filter: the board index
-- leads with status, so an unfiltered board sorted all bounties for each page
-- (bench/run, figure 6b: 0.03x /health/live).
CREATE INDEX bounties_created_idx ON bounties (created_at DESC, id DESC);
