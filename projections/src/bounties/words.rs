//! The words a bounty's search vector indexes: its title and description as their author
//! wrote them, opened by the server's [`Opener`] (they are stored sealed, ADR 7). A text that
//! does not open (its author was erased) gives no words; a plain one from before texts were
//! sealed gives its own. Both apply paths index through here, so they index alike.

use crate::opener::{Opener, Text};
use crate::ProjectionError;

/// One posting's texts: its aggregate id, title and description as the event holds them.
pub(super) struct Posting<'a> {
    pub aggregate_id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
}

/// For each posting, `title || ' ' || description` opened: what `to_tsvector('simple', ...)`
/// is given, as the column's generated form was before texts were sealed (migration 0024).
pub(super) async fn of(
    opener: &dyn Opener,
    postings: &[Posting<'_>],
) -> Result<Vec<String>, ProjectionError> {
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<Text<'_>> = postings
        .iter()
        .flat_map(|p| {
            [
                Text {
                    aggregate_id: p.aggregate_id,
                    field: "title",
                    text: p.title,
                },
                Text {
                    aggregate_id: p.aggregate_id,
                    field: "description",
                    text: p.description,
                },
            ]
        })
        .collect();
    let opened = opener.open(&texts).await?;
    if opened.len() != texts.len() {
        return Err(ProjectionError::Invalid(format!(
            "the opener gave {} texts for {}",
            opened.len(),
            texts.len()
        )));
    }
    Ok(opened
        .chunks(2)
        .map(|pair| {
            let text = |i: usize| pair.get(i).cloned().flatten().unwrap_or_default();
            format!("{} {}", text(0), text(1))
        })
        .collect())
}
