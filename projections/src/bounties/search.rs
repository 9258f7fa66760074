//! The bounty search vector's words, hashed: each lexeme that Postgres's `simple` text search
//! configuration finds in the opened title and description is stored as a keyed hash (the
//! first 128 bits of SHA-256 over the search key and the lexeme, in hex), and a query's
//! lexemes are hashed the same way. Matching works as on the words themselves (`plainto_tsquery`
//! also ANDs every lexeme of the query); the database holds no word a person wrote, and a dump
//! without the key cannot be searched for a guessed one.

use sqlx::{Postgres, QueryBuilder};

/// The hash of the lexeme `l` under a key, around the key's SQL expression.
const HASH_BEFORE: &str = "left(encode(sha256(convert_to(";
const HASH_AFTER: &str = " || l, 'UTF8')), 'hex'), 32)";

/// `words` (an SQL text expression) as a search vector, hashed with `key` (one too).
pub fn vector(words: &str, key: &str) -> String {
    format!(
        "array_to_tsvector(ARRAY(SELECT DISTINCT {HASH_BEFORE}{key}{HASH_AFTER} \
           FROM unnest(tsvector_to_array(to_tsvector('simple', {words}))) AS l))"
    )
}

/// Pushes the query for `text`: every lexeme of it, hashed with `key`, ANDed. An empty query
/// (no lexemes) matches nothing, as `plainto_tsquery`'s does.
pub fn push_query(q: &mut QueryBuilder<'_, Postgres>, text: String, key: String) {
    q.push("coalesce((SELECT string_agg(")
        .push(HASH_BEFORE)
        .push_bind(key)
        .push(HASH_AFTER)
        .push(", ' & ') FROM unnest(tsvector_to_array(to_tsvector('simple', ")
        .push_bind(text)
        .push("))) AS l), '')::tsquery");
}
