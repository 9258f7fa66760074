-- Texts written before texts were sealed (ADR 7, "Events written before this change"). They
-- are plain strings in events the hash chains cover, so they stay as written. When their
-- author is erased, each is recorded here by where it stands (its event's position and field,
-- its aggregate) and a keyed digest of its words (HMAC-SHA256 under a key derived from
-- `privacy.key`, first 128 bits), and every answer shows it as "[erased]" from then on.
CREATE TABLE erased_texts (
    position     bigint NOT NULL,
    field        text   NOT NULL,
    author       uuid   NOT NULL,
    aggregate_id text   NOT NULL,
    digest       bytea  NOT NULL CHECK (length(digest) = 16),
    PRIMARY KEY (position, field)
);

CREATE INDEX erased_texts_author_idx ON erased_texts (author);
