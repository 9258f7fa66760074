//! Applies a batch of bounty events set-based: the bounty and application rows the batch
//! touches are read in one query each, the events are folded into them in memory exactly as
//! `apply.rs` applies them one by one (a posting or a submitted application inserts a row that
//! does not exist yet; any other event changes an existing row whose position is lower), and
//! the rows are written back with one statement per table and kind of write.
//! `tests/batch_apply.rs` holds the two paths to the same rows.

use bountyline_domain::bounty::{ApplicationStatus, BountyEvent};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

use super::apply::{at, decode};
use super::words::{self, Posting};
use crate::{Opener, ProjectionError, StoredEvent};

type Tx = Transaction<'static, Postgres>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// What an event may change of a `bounties` row after it was posted.
#[derive(Debug, Clone, sqlx::FromRow)]
struct BountyRow {
    id: Uuid,
    status: String,
    hunter: Option<Uuid>,
    refunded: bool,
    updated_at: DateTime<Utc>,
    version: i64,
    position: i64,
    deliverable_text: Option<String>,
    deliverable_link: Option<String>,
    revision: i32,
    rejection_reason: Option<String>,
    dispute_reason: Option<String>,
    /// What only a posting writes, for a row this batch inserts.
    #[sqlx(skip)]
    posted: Option<Posted>,
}

#[derive(Debug, Clone)]
struct Posted {
    poster: Uuid,
    payment_id: Uuid,
    title: String,
    description: String,
    reward_amount: i64,
    reward_currency: String,
    deadline: Option<DateTime<Utc>>,
    tags: Vec<String>,
    created_at: DateTime<Utc>,
    /// What the search vector indexes (`words::of`).
    words: String,
}

/// A `bounty_applications` row; `new` when this batch inserts it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ApplicationRow {
    id: Uuid,
    bounty_id: Uuid,
    hunter: Uuid,
    pitch: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    position: i64,
    #[sqlx(skip)]
    new: bool,
}

const READ_BOUNTIES: &str = "\
SELECT id, status, hunter, refunded, updated_at, version, position, deliverable_text, \
       deliverable_link, revision, rejection_reason, dispute_reason \
FROM bounties WHERE id = ANY($1)";

const READ_APPLICATIONS: &str = "\
SELECT id, bounty_id, hunter, pitch, status, created_at, updated_at, position \
FROM bounty_applications WHERE id = ANY($1)";

pub(super) async fn apply(
    tx: &mut Tx,
    events: &[StoredEvent],
    opener: &dyn Opener,
) -> Result<(), ProjectionError> {
    let mut decoded = Vec::new();
    for event in events {
        if let Some((id, bounty)) = decode(event)? {
            decoded.push((event, id, bounty));
        }
    }
    if decoded.is_empty() {
        return Ok(());
    }
    let mut words = posted_words(opener, &decoded).await?;
    let mut batch = Batch::load(tx, &decoded).await?;
    for (event, id, bounty) in decoded {
        let words = words.remove(&event.position).unwrap_or_default();
        batch.fold(event, id, bounty, words);
    }
    batch.write(tx, opener.search_key()).await
}

/// The search words of the batch's postings, by position, opened at once.
async fn posted_words(
    opener: &dyn Opener,
    decoded: &[(&StoredEvent, Uuid, BountyEvent)],
) -> Result<HashMap<i64, String>, ProjectionError> {
    let (positions, postings): (Vec<i64>, Vec<Posting<'_>>) = decoded
        .iter()
        .filter_map(|(event, _, bounty)| match bounty {
            BountyEvent::BountyPosted {
                title, description, ..
            } => Some((
                event.position,
                Posting {
                    aggregate_id: &event.aggregate_id,
                    title,
                    description,
                },
            )),
            _ => None,
        })
        .unzip();
    let words = words::of(opener, &postings).await?;
    Ok(positions.into_iter().zip(words).collect())
}

#[derive(Default)]
struct Batch {
    bounties: HashMap<Uuid, BountyRow>,
    bounties_changed: BTreeSet<Uuid>,
    applications: HashMap<Uuid, ApplicationRow>,
    applications_changed: BTreeSet<Uuid>,
}

impl Batch {
    async fn load(
        tx: &mut Tx,
        decoded: &[(&StoredEvent, Uuid, BountyEvent)],
    ) -> Result<Self, ProjectionError> {
        let ids: Vec<Uuid> = decoded.iter().map(|(_, id, _)| *id).collect();
        let application_ids: Vec<Uuid> = decoded
            .iter()
            .filter_map(|(_, _, bounty)| application_of(bounty))
            .collect();
        let mut batch = Batch {
            bounties: sqlx::query_as::<_, BountyRow>(READ_BOUNTIES)
                .bind(&ids)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(|row| (row.id, row))
                .collect(),
            ..Batch::default()
        };
        if !application_ids.is_empty() {
            batch.applications = sqlx::query_as::<_, ApplicationRow>(READ_APPLICATIONS)
                .bind(&application_ids)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(|row| (row.id, row))
                .collect();
        }
        Ok(batch)
    }

    /// One event, as `apply.rs` applies it; `words` are a posting's search words.
    fn fold(&mut self, event: &StoredEvent, id: Uuid, bounty: BountyEvent, words: String) {
        if let BountyEvent::BountyPosted { .. } = &bounty {
            let row = posted(event, id, bounty, words);
            if let (false, Some(row)) = (self.bounties.contains_key(&id), row) {
                self.bounties.insert(id, row);
                self.bounties_changed.insert(id);
            }
            return;
        }
        self.application(event, id, &bounty);
        let Some(row) = self
            .bounties
            .get_mut(&id)
            .filter(|row| row.position < event.position)
        else {
            return;
        };
        match &bounty {
            BountyEvent::WorkSubmitted {
                text,
                link,
                revision,
                ..
            } => {
                row.deliverable_text.clone_from(text);
                row.deliverable_link.clone_from(link);
                row.revision = i32::try_from(*revision).unwrap_or(i32::MAX);
                row.rejection_reason = None;
            }
            BountyEvent::WorkRejected { reason, .. } => {
                row.rejection_reason = Some(reason.clone());
            }
            BountyEvent::BountyDisputed { reason, .. } => {
                row.dispute_reason = Some(reason.clone());
            }
            _ => {}
        }
        if let Some(status) = bounty.status_after() {
            row.status = status.as_str().to_owned();
        }
        if let BountyEvent::ApplicationAccepted { hunter, .. } = &bounty {
            row.hunter = Some(*hunter);
        }
        row.refunded |= matches!(bounty, BountyEvent::BountyRefunded { .. });
        row.updated_at = at(&bounty);
        row.version = event.sequence;
        row.position = event.position;
        self.bounties_changed.insert(id);
    }

    /// What the event does to its application, whatever the bounty row holds.
    fn application(&mut self, event: &StoredEvent, bounty_id: Uuid, bounty: &BountyEvent) {
        let (application_id, status, at) = match bounty {
            BountyEvent::ApplicationSubmitted {
                application_id,
                hunter,
                pitch,
                at,
                ..
            } => {
                if !self.applications.contains_key(application_id) {
                    let row = ApplicationRow {
                        id: *application_id,
                        bounty_id,
                        hunter: *hunter,
                        pitch: pitch.clone(),
                        status: ApplicationStatus::Pending.to_string(),
                        created_at: *at,
                        updated_at: *at,
                        position: event.position,
                        new: true,
                    };
                    self.applications.insert(*application_id, row);
                    self.applications_changed.insert(*application_id);
                }
                return;
            }
            BountyEvent::ApplicationWithdrawn {
                application_id, at, ..
            } => (application_id, ApplicationStatus::Withdrawn, at),
            BountyEvent::ApplicationAccepted {
                application_id, at, ..
            } => (application_id, ApplicationStatus::Accepted, at),
            _ => return,
        };
        if let Some(row) = self
            .applications
            .get_mut(application_id)
            .filter(|row| row.position < event.position)
        {
            row.status = status.to_string();
            row.updated_at = *at;
            row.position = event.position;
            self.applications_changed.insert(*application_id);
        }
    }

    async fn write(self, tx: &mut Tx, search_key: &str) -> Result<(), ProjectionError> {
        let (mut new, mut moved) = (BountyColumns::default(), BountyColumns::default());
        for row in self
            .bounties_changed
            .iter()
            .filter_map(|id| self.bounties.get(id))
        {
            match &row.posted {
                Some(posted) => {
                    new.push(row);
                    new.posted.push(posted);
                }
                None => moved.push(row),
            }
        }
        new.insert(tx, search_key).await?;
        moved.update(tx).await?;

        let (mut new, mut moved) = (ApplicationColumns::default(), ApplicationColumns::default());
        for row in self
            .applications_changed
            .iter()
            .filter_map(|id| self.applications.get(id))
        {
            if row.new {
                new.push(row);
            } else {
                moved.push(row);
            }
        }
        new.insert(tx).await?;
        moved.update(tx).await
    }
}

/// The application an event names, if any.
fn application_of(bounty: &BountyEvent) -> Option<Uuid> {
    match bounty {
        BountyEvent::ApplicationSubmitted { application_id, .. }
        | BountyEvent::ApplicationWithdrawn { application_id, .. }
        | BountyEvent::ApplicationAccepted { application_id, .. } => Some(*application_id),
        _ => None,
    }
}

/// The row a posting inserts (`apply.rs`'s `posted`); `None` for any other event.
fn posted(event: &StoredEvent, id: Uuid, bounty: BountyEvent, words: String) -> Option<BountyRow> {
    let BountyEvent::BountyPosted {
        poster,
        payment_id,
        title,
        description,
        reward,
        deadline,
        tags,
        at,
    } = bounty
    else {
        return None;
    };
    Some(BountyRow {
        id,
        status: "funding".to_owned(),
        hunter: None,
        refunded: false,
        updated_at: at,
        version: event.sequence,
        position: event.position,
        deliverable_text: None,
        deliverable_link: None,
        revision: 0,
        rejection_reason: None,
        dispute_reason: None,
        posted: Some(Posted {
            poster,
            payment_id,
            title,
            description,
            reward_amount: reward.amount(),
            reward_currency: reward.currency().as_str().to_owned(),
            deadline,
            tags,
            created_at: at,
            words,
        }),
    })
}

/// Bounty rows to write, column by column: what any event may change, and for new rows what
/// only the posting writes.
#[derive(Default)]
struct BountyColumns<'a> {
    id: Vec<Uuid>,
    status: Vec<&'a str>,
    hunter: Vec<Option<Uuid>>,
    refunded: Vec<bool>,
    updated_at: Vec<DateTime<Utc>>,
    version: Vec<i64>,
    position: Vec<i64>,
    deliverable_text: Vec<Option<&'a str>>,
    deliverable_link: Vec<Option<&'a str>>,
    revision: Vec<i32>,
    rejection_reason: Vec<Option<&'a str>>,
    dispute_reason: Vec<Option<&'a str>>,
    posted: Vec<&'a Posted>,
}

impl<'a> BountyColumns<'a> {
    fn push(&mut self, row: &'a BountyRow) {
        self.id.push(row.id);
        self.status.push(&row.status);
        self.hunter.push(row.hunter);
        self.refunded.push(row.refunded);
        self.updated_at.push(row.updated_at);
        self.version.push(row.version);
        self.position.push(row.position);
        self.deliverable_text.push(row.deliverable_text.as_deref());
        self.deliverable_link.push(row.deliverable_link.as_deref());
        self.revision.push(row.revision);
        self.rejection_reason.push(row.rejection_reason.as_deref());
        self.dispute_reason.push(row.dispute_reason.as_deref());
    }

    /// Binds what any event may change, `$1` to `$12` of both statements.
    fn bind_changes<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.id)
            .bind(&self.status)
            .bind(&self.hunter)
            .bind(&self.refunded)
            .bind(&self.updated_at)
            .bind(&self.version)
            .bind(&self.position)
            .bind(&self.deliverable_text)
            .bind(&self.deliverable_link)
            .bind(&self.revision)
            .bind(&self.rejection_reason)
            .bind(&self.dispute_reason)
    }

    async fn insert(&self, tx: &mut Tx, search_key: &str) -> Result<(), ProjectionError> {
        if self.id.is_empty() {
            return Ok(());
        }
        let posted = &self.posted;
        let search = super::search::vector("words", "$23");
        // Tags are an array per row, which `unnest` cannot take as a column: each row's
        // tags travel as one JSON array.
        let tags: Vec<Value> = posted.iter().map(|p| Value::from(p.tags.clone())).collect();
        self.bind_changes(sqlx::query(&format!(
            "INSERT INTO bounties (id, status, hunter, refunded, updated_at, version, position, \
               deliverable_text, deliverable_link, revision, rejection_reason, dispute_reason, \
               poster, payment_id, title, description, reward_amount, reward_currency, deadline, \
               tags, created_at, search) \
             SELECT id, status, hunter, refunded, updated_at, version, position, \
               deliverable_text, deliverable_link, revision, rejection_reason, dispute_reason, \
               poster, payment_id, title, description, reward_amount, reward_currency, deadline, \
               ARRAY(SELECT jsonb_array_elements_text(tags)), created_at, {search} \
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bool[], $5::timestamptz[], \
               $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::int4[], $11::text[], \
               $12::text[], $13::uuid[], $14::uuid[], $15::text[], $16::text[], $17::bigint[], \
               $18::text[], $19::timestamptz[], $20::jsonb[], $21::timestamptz[], $22::text[]) \
               AS r(id, status, hunter, refunded, updated_at, version, position, \
               deliverable_text, deliverable_link, revision, rejection_reason, dispute_reason, \
               poster, payment_id, title, description, reward_amount, reward_currency, deadline, \
               tags, created_at, words) \
             ON CONFLICT (id) DO NOTHING",
        )))
        .bind(posted.iter().map(|p| p.poster).collect::<Vec<_>>())
        .bind(posted.iter().map(|p| p.payment_id).collect::<Vec<_>>())
        .bind(posted.iter().map(|p| p.title.as_str()).collect::<Vec<_>>())
        .bind(
            posted
                .iter()
                .map(|p| p.description.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(posted.iter().map(|p| p.reward_amount).collect::<Vec<_>>())
        .bind(
            posted
                .iter()
                .map(|p| p.reward_currency.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(posted.iter().map(|p| p.deadline).collect::<Vec<_>>())
        .bind(tags)
        .bind(posted.iter().map(|p| p.created_at).collect::<Vec<_>>())
        .bind(posted.iter().map(|p| p.words.as_str()).collect::<Vec<_>>())
        .bind(search_key)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn update(&self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if self.id.is_empty() {
            return Ok(());
        }
        self.bind_changes(sqlx::query(
            "UPDATE bounties b SET status = r.status, hunter = r.hunter, refunded = r.refunded, \
               updated_at = r.updated_at, version = r.version, position = r.position, \
               deliverable_text = r.deliverable_text, deliverable_link = r.deliverable_link, \
               revision = r.revision, rejection_reason = r.rejection_reason, \
               dispute_reason = r.dispute_reason \
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bool[], $5::timestamptz[], \
               $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::int4[], $11::text[], \
               $12::text[]) \
               AS r(id, status, hunter, refunded, updated_at, version, position, \
               deliverable_text, deliverable_link, revision, rejection_reason, dispute_reason) \
             WHERE b.id = r.id",
        ))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// Application rows to write, column by column.
#[derive(Default)]
struct ApplicationColumns<'a> {
    id: Vec<Uuid>,
    bounty_id: Vec<Uuid>,
    hunter: Vec<Uuid>,
    pitch: Vec<&'a str>,
    status: Vec<&'a str>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    position: Vec<i64>,
}

impl<'a> ApplicationColumns<'a> {
    fn push(&mut self, row: &'a ApplicationRow) {
        self.id.push(row.id);
        self.bounty_id.push(row.bounty_id);
        self.hunter.push(row.hunter);
        self.pitch.push(&row.pitch);
        self.status.push(&row.status);
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
        self.position.push(row.position);
    }

    async fn insert(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if self.id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO bounty_applications (id, bounty_id, hunter, pitch, status, created_at, \
               updated_at, position) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
               $6::timestamptz[], $7::timestamptz[], $8::bigint[]) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&self.id)
        .bind(&self.bounty_id)
        .bind(&self.hunter)
        .bind(&self.pitch)
        .bind(&self.status)
        .bind(&self.created_at)
        .bind(&self.updated_at)
        .bind(&self.position)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn update(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if self.id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE bounty_applications a SET status = r.status, updated_at = r.updated_at, \
               position = r.position \
             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[]) \
               AS r(id, status, updated_at, position) \
             WHERE a.id = r.id",
        )
        .bind(&self.id)
        .bind(&self.status)
        .bind(&self.updated_at)
        .bind(&self.position)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
