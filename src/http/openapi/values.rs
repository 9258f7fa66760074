//! The schemas of validated request values, built from the same limits the validators use
//! (`bountyline_domain::values`, `auth`), so that the document states what the server accepts:
//! a request the document calls valid is never refused for its shape, and one it calls invalid
//! is. Fields name them with `#[schema(schema_with = ...)]`.
//!
//! Free text is trimmed before it is checked, so a required text needs one character that is
//! not white space; tab and newline are the only control characters allowed in it.

use bountyline_domain::bounty::{BountyStatus, Link, Tag};
use bountyline_domain::task::TaskStatus;
use bountyline_domain::values::{
    DeliverableText, Description, Note, Pitch, ProviderReference, Reason, Title,
};
use bountyline_domain::Role;
use bountyline_projections::bounties::BoardSort;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder,
    OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::RefOr;

use crate::auth::password;
use crate::auth::users::{MAX_DISPLAY_NAME_CHARS, MAX_EMAIL_CHARS};

/// White space as Rust's `trim` removes it from both ends before a value is checked.
const WS: &str =
    r"[\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// Characters allowed inside free text: no C0 or C1 control characters but tab and newline.
const TEXT_CHAR: &str = r"[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]";
/// A character that is neither white space nor a control character.
const VISIBLE_CHAR: &str = r"[^\s\u0000-\u001f\u007f-\u009f]";
/// No control characters at all (one-line values such as names).
const LINE_CHAR: &str = r"[^\u0000-\u001f\u007f-\u009f]";

fn string(pattern: String, max_chars: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .max_length(Some(max_chars))
}

/// Text that must have something in it after trimming.
fn required_text(max_chars: usize) -> ObjectBuilder {
    string(
        format!("^{WS}*{TEXT_CHAR}*{VISIBLE_CHAR}{TEXT_CHAR}*{WS}*$"),
        max_chars,
    )
}

/// Text that may be empty.
fn any_text(max_chars: usize) -> ObjectBuilder {
    string(format!("^{WS}*{TEXT_CHAR}*{WS}*$"), max_chars)
}

/// The same schema, also allowing `null` (an `Option` field).
fn nullable(object: ObjectBuilder) -> RefOr<Schema> {
    object
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .into()
}

pub fn title() -> RefOr<Schema> {
    required_text(Title::MAX_CHARS).into()
}

pub fn description() -> RefOr<Schema> {
    any_text(Description::MAX_CHARS).into()
}

pub fn optional_description() -> RefOr<Schema> {
    nullable(any_text(Description::MAX_CHARS))
}

pub fn optional_note() -> RefOr<Schema> {
    nullable(any_text(Note::MAX_CHARS))
}

/// A task's failure: the text of a [`Note`], but required.
pub fn error_text() -> RefOr<Schema> {
    required_text(Note::MAX_CHARS).into()
}

pub fn reason() -> RefOr<Schema> {
    required_text(Reason::MAX_CHARS).into()
}

pub fn pitch() -> RefOr<Schema> {
    required_text(Pitch::MAX_CHARS).into()
}

pub fn optional_deliverable_text() -> RefOr<Schema> {
    nullable(required_text(DeliverableText::MAX_CHARS))
}

pub fn provider_reference() -> RefOr<Schema> {
    required_text(ProviderReference::MAX_CHARS).into()
}

/// 1-64 characters of a-z, 0-9, `-`, `_` and `.` ([`bountyline_domain::values::QueueName`]).
pub fn queue_pattern() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[a-z0-9._-]{1,64}$"))
}

pub fn queue() -> RefOr<Schema> {
    queue_pattern().into()
}

/// `?queue=` of the task list.
pub fn optional_queue() -> RefOr<Schema> {
    nullable(queue_pattern().description(Some("Tasks of this queue.")))
}

/// An ISO 4217 code: three uppercase letters.
pub fn currency() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Z]{3}$"))
        .examples(["USD"])
        .into()
}

fn tag_pattern() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[a-z0-9-]{{1,{}}}$", Tag::MAX_CHARS)))
}

/// Repeats are dropped, so only the distinct tags count towards the ten.
pub fn optional_tags() -> RefOr<Schema> {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(tag_pattern())
        .max_items(Some(bountyline_domain::bounty::Tags::MAX))
        .into()
}

/// `?tag=` of the bounty board.
pub fn optional_tag() -> RefOr<Schema> {
    nullable(tag_pattern().description(Some("Bounties with this tag.")))
}

pub fn password() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(password::MIN_CHARS))
        .max_length(Some(password::MAX_CHARS))
        .description(Some(format!(
            "At least {} characters (15 or more recommended), at most {}; any characters, \
             not only white space.",
            password::MIN_CHARS,
            password::MAX_CHARS
        )))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .into()
}

pub fn display_name() -> RefOr<Schema> {
    string(
        format!("^{WS}*{LINE_CHAR}*{VISIBLE_CHAR}{LINE_CHAR}*{WS}*$"),
        MAX_DISPLAY_NAME_CHARS,
    )
    .into()
}

pub fn one_of(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

pub fn role() -> RefOr<Schema> {
    one_of(Role::ALL.map(Role::as_str)).into()
}

pub fn dispute_outcome() -> RefOr<Schema> {
    one_of(["pay_hunter", "refund_poster"]).into()
}

/// `?status=` of the bounty board.
pub fn optional_bounty_status() -> RefOr<Schema> {
    let statuses = one_of(BountyStatus::ALL.map(BountyStatus::as_str));
    nullable(statuses.description(Some("Bounties in this status.")))
}

/// `?status=` of the task list.
pub fn optional_task_status() -> RefOr<Schema> {
    let statuses = one_of(TaskStatus::ALL.map(TaskStatus::as_str));
    nullable(statuses.description(Some("Tasks in this status.")))
}

/// `?sort=` of the bounty board.
pub fn optional_board_sort() -> RefOr<Schema> {
    let sorts = one_of(BoardSort::ALL.map(BoardSort::as_str));
    nullable(sorts.description(Some("The order: `-created` (newest first) by default.")))
}

/// `http://` or `https://` and no white space ([`Link`]).
fn link() -> ObjectBuilder {
    string(
        format!(r"^{WS}*https?://[^\s\u0000-\u001f\u007f-\u009f]+{WS}*$"),
        Link::MAX_CHARS,
    )
}

/// A deliverable: its text alone, or an object with a text, a link, or both (a `null` counts
/// as left out).
pub fn deliverable() -> RefOr<Schema> {
    let has = |field: &str, schema: ObjectBuilder| {
        ObjectBuilder::new().property(field, schema).required(field)
    };
    let parts = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("text", optional_deliverable_text())
        .property("link", nullable(link()))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some("A text, a link, or both."));
    let text_or_link = AnyOfBuilder::new()
        .item(has("text", ObjectBuilder::new().schema_type(Type::String)))
        .item(has("link", ObjectBuilder::new().schema_type(Type::String)));
    let parts = AllOfBuilder::new().item(parts).item(text_or_link);
    OneOfBuilder::new()
        .item(required_text(DeliverableText::MAX_CHARS))
        .item(parts)
        .into()
}

/// A user: `me` or a user id (`?poster=`, `?hunter=`).
pub fn optional_user_ref() -> RefOr<Schema> {
    OneOfBuilder::new()
        .description(Some("A user id, or `me`."))
        .item(one_of(["me"]))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        )
        .into()
}

/// An email address as `auth::users::parse_email` takes it.
pub fn email() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(MAX_EMAIL_CHARS))
        .into()
}
