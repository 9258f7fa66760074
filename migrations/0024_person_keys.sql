-- Erasure by sealed texts (ADR 7, step 1). The texts people write are stored sealed under a
-- data key of their own; erasure destroys the key, and every copy of their texts (events,
-- read models, JetStream, exports, backups) becomes unreadable while every chain stays as it is.

-- One data key per person, made at their first sealed text and wrapped (XChaCha20-Poly1305,
-- bound to the person's id) by the key-encryption key `privacy.key`, which never enters the
-- database. An erased person's `wrapped_key` is NULL: their texts open nowhere.
CREATE TABLE person_keys (
    user_id     uuid PRIMARY KEY REFERENCES users (id),
    wrapped_key bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);

-- The bounty search vector can no longer be generated from the stored texts, which are sealed:
-- the bounties projection writes it from the words it opens, each lexeme a keyed hash (so the
-- words are not in the database either; `projections/src/bounties/words.rs`), and an erased
-- author's texts give none.
ALTER TABLE bounties DROP COLUMN search;
ALTER TABLE bounties ADD COLUMN search tsvector NOT NULL DEFAULT ''::tsvector;
CREATE INDEX bounties_search_idx ON bounties USING gin (search);

-- Bounties posted before this were indexed in plain words, which no hashed query matches: the
-- read model is emptied and the workers build it again from the store (as a rebuild would),
-- the board filling up as they catch up.
DELETE FROM bounty_applications;
DELETE FROM bounties;
UPDATE projection_checkpoints SET position = 0, updated_at = now() WHERE projection = 'bounties';
