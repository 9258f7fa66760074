-- What the bounty's parties need to see to act: the latest deliverable (the poster approves or
-- rejects it), why it was last rejected (the hunter reworks it) and why it is disputed (an
-- admin resolves it). Shown only to the parties, admins and auditors.

ALTER TABLE bounties
    ADD COLUMN deliverable_text text,
    ADD COLUMN deliverable_link text,
    ADD COLUMN revision         integer NOT NULL DEFAULT 0,
    ADD COLUMN rejection_reason text,
    ADD COLUMN dispute_reason   text;
