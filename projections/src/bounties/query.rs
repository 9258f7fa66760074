//! Reads of the bounty read model: the board (filters, four sort orders, keyset paging for
//! each), one bounty, its applications, and the open bounties past their deadline.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Reward {
    #[sqlx(rename = "reward_amount")]
    pub amount: i64,
    #[sqlx(rename = "reward_currency")]
    pub currency: String,
}

/// The work on a bounty and the reasons given about it: for its parties, admins and auditors
/// only, so it is never serialized with the rest of the bounty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Work {
    /// How many times work was submitted (0 before the first submission).
    pub revision: i32,
    pub deliverable_text: Option<String>,
    pub deliverable_link: Option<String>,
    /// Why the latest submission was rejected; cleared by the next submission.
    pub rejection_reason: Option<String>,
    pub dispute_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct BountyView {
    pub id: Uuid,
    pub poster: Uuid,
    pub title: String,
    pub description: String,
    #[sqlx(flatten)]
    pub reward: Reward,
    pub deadline: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub status: String,
    pub hunter: Option<Uuid>,
    pub payment_id: Uuid,
    pub refunded: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub position: i64,
    #[sqlx(flatten)]
    #[serde(skip)]
    pub work: Work,
}

const BOUNTY_COLUMNS: &str = "id, poster, title, description, reward_amount, reward_currency, \
     deadline, tags, status, hunter, payment_id, refunded, created_at, updated_at, version, \
     position, revision, deliverable_text, deliverable_link, rejection_reason, dispute_reason";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApplicationView {
    pub id: Uuid,
    pub bounty_id: Uuid,
    pub hunter: Uuid,
    pub pitch: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub position: i64,
}

/// The board's orders: by reward or by age, either way. Ties break on the id, the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BoardSort {
    RewardAsc,
    RewardDesc,
    CreatedAsc,
    #[default]
    CreatedDesc,
}

impl BoardSort {
    pub const ALL: [BoardSort; 4] = [
        BoardSort::RewardAsc,
        BoardSort::RewardDesc,
        BoardSort::CreatedAsc,
        BoardSort::CreatedDesc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BoardSort::RewardAsc => "reward",
            BoardSort::RewardDesc => "-reward",
            BoardSort::CreatedAsc => "created",
            BoardSort::CreatedDesc => "-created",
        }
    }

    pub fn parse(s: &str) -> Option<BoardSort> {
        BoardSort::ALL.into_iter().find(|sort| sort.as_str() == s)
    }

    /// Where `bounty` sits in this order: what a cursor after it must carry.
    pub fn key_of(self, bounty: &BountyView) -> SortKey {
        match self {
            BoardSort::RewardAsc | BoardSort::RewardDesc => SortKey::Reward(bounty.reward.amount),
            BoardSort::CreatedAsc | BoardSort::CreatedDesc => SortKey::Created(bounty.created_at),
        }
    }

    fn column(self) -> &'static str {
        match self {
            BoardSort::RewardAsc | BoardSort::RewardDesc => "reward_amount",
            BoardSort::CreatedAsc | BoardSort::CreatedDesc => "created_at",
        }
    }

    fn descending(self) -> bool {
        matches!(self, BoardSort::RewardDesc | BoardSort::CreatedDesc)
    }
}

/// The sort value of the last bounty on a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    Reward(i64),
    Created(DateTime<Utc>),
}

/// Which bounties the board shows, in which order, from where (and so the key of a page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BoardFilter {
    pub status: Option<String>,
    /// Bounties carrying this tag.
    pub tag: Option<String>,
    /// Words that must all occur in the title or the description.
    pub text: Option<String>,
    pub poster: Option<Uuid>,
    pub hunter: Option<Uuid>,
    pub sort: BoardSort,
    /// Continue after this (sort key, id); the key must be of the filter's sort.
    pub after: Option<(SortKey, Uuid)>,
    pub limit: i64,
}

/// The board's page for `filter`; a text filter's words are hashed with `search_key` as the
/// search vector's are ([`super::search`]).
pub async fn board(
    pool: &PgPool,
    filter: &BoardFilter,
    search_key: &str,
) -> Result<Vec<BountyView>, sqlx::Error> {
    let mut q = QueryBuilder::new(format!("SELECT {BOUNTY_COLUMNS} FROM bounties WHERE true"));
    if let Some(status) = &filter.status {
        q.push(" AND status = ").push_bind(status);
    }
    if let Some(tag) = &filter.tag {
        q.push(" AND tags @> ARRAY[")
            .push_bind(tag)
            .push("]::text[]");
    }
    if let Some(text) = &filter.text {
        q.push(" AND search @@ ");
        super::search::push_query(&mut q, text.clone(), search_key.to_owned());
    }
    if let Some(poster) = filter.poster {
        q.push(" AND poster = ").push_bind(poster);
    }
    if let Some(hunter) = filter.hunter {
        q.push(" AND hunter = ").push_bind(hunter);
    }
    let (column, descending) = (filter.sort.column(), filter.sort.descending());
    if let Some((key, id)) = filter.after {
        push_after(&mut q, filter.sort, key, id)?;
    }
    let direction = if descending { "DESC" } else { "ASC" };
    q.push(format!(
        " ORDER BY {column} {direction}, id {direction} LIMIT "
    ))
    .push_bind(filter.limit);
    q.build_query_as().fetch_all(pool).await
}

/// `(key, id)` strictly past the cursor in the filter's direction.
fn push_after(
    q: &mut QueryBuilder<'_, Postgres>,
    sort: BoardSort,
    key: SortKey,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    let op = if sort.descending() { "<" } else { ">" };
    q.push(format!(" AND ({}, id) {op} (", sort.column()));
    match (sort, key) {
        (BoardSort::RewardAsc | BoardSort::RewardDesc, SortKey::Reward(amount)) => {
            q.push_bind(amount);
        }
        (BoardSort::CreatedAsc | BoardSort::CreatedDesc, SortKey::Created(at)) => {
            q.push_bind(at);
        }
        _ => {
            return Err(sqlx::Error::InvalidArgument(format!(
                "a {key:?} cursor does not fit the {} order",
                sort.as_str()
            )))
        }
    }
    q.push(", ").push_bind(id).push(")");
    Ok(())
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<BountyView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {BOUNTY_COLUMNS} FROM bounties WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A bounty's applications, oldest first.
pub async fn applications(
    pool: &PgPool,
    bounty_id: Uuid,
) -> Result<Vec<ApplicationView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, bounty_id, hunter, pitch, status, created_at, updated_at, position \
         FROM bounty_applications WHERE bounty_id = $1 ORDER BY created_at, id",
    )
    .bind(bounty_id)
    .fetch_all(pool)
    .await
}

/// Open bounties whose deadline is at or before `now`, earliest deadline first.
pub async fn open_past_deadline(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM bounties WHERE status = 'open' AND deadline <= $1 \
         ORDER BY deadline LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
}
