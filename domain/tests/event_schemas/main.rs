//! Golden fixtures of every event type's stored form, at every version ever written.
//!
//! The store is append-only: an event stays in the form it was written in, so a form may never
//! change under the same version. `domain/tests/golden/<EventType>/v<N>.json` holds the stored
//! payload (cqrs-es's `{"<EventType>": {...}}`) of event type `EventType` at version `N`, for
//! every `N` from 1 to the type's current version; the fixtures are compared as JSON values
//! (the store keeps payloads as jsonb, whose text form keeps neither key order nor spacing).
//!
//! - Every current event type serializes its sample ([`samples`]) exactly as the fixture of its
//!   current version: a changed form fails here until it has a new version, an upcaster and a
//!   fixture (docs/adr/0006-event-schemas-that-evolve.md).
//! - Every fixture of every version, upcast by the domain's registry, reads as the current
//!   type and writes back as exactly the upcast form (nothing dropped or defaulted on the way).
//! - Every variant of every event enum has a sample and a fixture for each of its versions, so
//!   a new event type fails until it has both. A new aggregate adds its enum to [`kinds`].
//!
//! `BOUNTYLINE_WRITE_GOLDEN=1 cargo nextest run -p bountyline-domain --test event_schemas`
//! writes the fixtures that are missing for current versions; it never changes one that exists.

mod samples;

use bountyline_domain::bounty::BountyEvent;
use bountyline_domain::epoch::EpochEvent;
use bountyline_domain::inbox::InboxEvent;
use bountyline_domain::payment::PaymentEvent;
use bountyline_domain::person::PersonEvent;
use bountyline_domain::task::TaskEvent;
use bountyline_domain::upcast::{current_version, upcast};
use bountyline_domain::wallet::WalletEvent;
use cqrs_es::DomainEvent;
use serde::de::{DeserializeOwned, Visitor};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const WRITE: &str = "BOUNTYLINE_WRITE_GOLDEN";
const ADR: &str = "docs/adr/0006-event-schemas-that-evolve.md";

/// One event enum, as these tests need it.
struct Kind {
    name: &'static str,
    /// Every variant's name, which is its event type (`DomainEvent::event_type`).
    variants: &'static [&'static str],
    samples: Vec<Sample>,
    /// Reads a payload in the current form as this enum and writes it back.
    round_trip: fn(&Value) -> Result<Value, serde_json::Error>,
}

struct Sample {
    event_type: String,
    version: String,
    stored: Value,
}

fn kind<E>(name: &'static str, events: Vec<E>) -> Kind
where
    E: DomainEvent + Serialize + DeserializeOwned,
{
    let samples = events
        .iter()
        .map(|event| Sample {
            event_type: event.event_type(),
            version: event.event_version(),
            stored: serde_json::to_value(event).expect("a sample serializes"),
        })
        .collect();
    Kind {
        name,
        variants: variants::<E>(),
        samples,
        round_trip: |payload| serde_json::to_value(E::deserialize(payload)?),
    }
}

/// Every event enum of the domain.
fn kinds() -> Vec<Kind> {
    vec![
        kind::<TaskEvent>("TaskEvent", samples::task_events()),
        kind::<BountyEvent>("BountyEvent", samples::bounty_events()),
        kind::<PaymentEvent>("PaymentEvent", samples::payment_events()),
        kind::<WalletEvent>("WalletEvent", samples::wallet_events()),
        kind::<InboxEvent>("InboxEvent", samples::inbox_events()),
        kind::<PersonEvent>("PersonEvent", samples::person_events()),
        kind::<EpochEvent>("EpochEvent", samples::epoch_events()),
    ]
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn fixture_path(event_type: &str, version: u32) -> PathBuf {
    golden().join(event_type).join(format!("v{version}.json"))
}

/// How a fixture is named in messages: from the repository's root.
fn shown(event_type: &str, version: u32) -> String {
    format!("domain/tests/golden/{event_type}/v{version}.json")
}

fn read_fixture(event_type: &str, version: u32) -> Option<Value> {
    let text = std::fs::read_to_string(fixture_path(event_type, version)).ok()?;
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", shown(event_type, version)));
    Some(value)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Writes the fixture of `event_type` at `version` if it is missing and writing was asked for.
fn write_if_asked(event_type: &str, version: u32, stored: &Value) -> bool {
    if std::env::var_os(WRITE).is_none_or(|v| v != "1") {
        return false;
    }
    let path = fixture_path(event_type, version);
    std::fs::create_dir_all(path.parent().expect("a fixture has a folder")).expect("mkdir");
    std::fs::write(&path, pretty(stored) + "\n").expect("write the fixture");
    true
}

#[test]
fn every_event_type_has_exactly_one_sample_and_its_own_name() {
    let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
    for kind in kinds() {
        let sampled: Vec<&str> = kind.samples.iter().map(|s| s.event_type.as_str()).collect();
        let unique: BTreeSet<&str> = sampled.iter().copied().collect();
        assert_eq!(
            unique.len(),
            sampled.len(),
            "{}: an event type is sampled twice in domain/tests/event_schemas/samples.rs",
            kind.name
        );
        for variant in kind.variants {
            assert!(
                unique.contains(variant),
                "{}::{variant} has no sample: add one to domain/tests/event_schemas/samples.rs \
                 (and its fixture, see {ADR})",
                kind.name
            );
        }
        for sample in &kind.samples {
            assert!(
                kind.variants.contains(&sample.event_type.as_str()),
                "{}'s event type {:?} is not the name of its variant",
                kind.name,
                sample.event_type
            );
        }
        // The upcasters are keyed by event type: one name, one enum.
        for variant in kind.variants {
            if let Some(other) = owners.insert(variant, kind.name) {
                assert_eq!(
                    other, kind.name,
                    "event type {variant} is a variant of both {other} and {}",
                    kind.name
                );
            }
        }
    }
}

#[test]
fn every_event_type_serializes_as_the_fixture_of_its_current_version() {
    let mut failures = Vec::new();
    for kind in kinds() {
        for sample in &kind.samples {
            let event_type = sample.event_type.as_str();
            let current = current_version(event_type);
            assert_eq!(
                sample.version,
                current.to_string(),
                "{event_type} is written at version {} but the registry's current version is \
                 {current}",
                sample.version
            );
            let Some(fixture) = read_fixture(event_type, current) else {
                if write_if_asked(event_type, current, &sample.stored) {
                    continue;
                }
                failures.push(format!(
                    "{event_type} v{current} has no fixture: add {} with its stored form \
                     (or run with {WRITE}=1, which writes the missing ones):\n{}",
                    shown(event_type, current),
                    pretty(&sample.stored)
                ));
                continue;
            };
            if fixture != sample.stored {
                failures.push(format!(
                    "{event_type} no longer serializes as {} says version {current} looks.\n\
                     Events already stored at v{current} keep that form (the store is \
                     append-only), so the form cannot change under the same version:\n  \
                     1. add a step from v{current} to bountyline_domain::upcast::STEPS (its \
                     function next to the event) that turns the stored form into the new one; \
                     that makes v{next} the current version;\n  \
                     2. add the new form's fixture, {} ({WRITE}=1 writes it);\n  \
                     3. leave {} as it is. See {ADR}.\n\
                     fixture: {}\n\
                     now:     {}",
                    shown(event_type, current),
                    shown(event_type, current + 1),
                    shown(event_type, current),
                    fixture,
                    sample.stored,
                    next = current + 1,
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_fixture_of_every_version_upcasts_to_the_current_type() {
    let kinds = kinds();
    let mut read = 0;
    let mut failures = Vec::new();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(golden())
        .expect("domain/tests/golden exists")
        .map(|entry| entry.expect("a folder entry").path())
        .collect();
    folders.sort();
    for folder in folders {
        let event_type = folder
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 name")
            .to_owned();
        let Some(kind) = kinds
            .iter()
            .find(|k| k.variants.contains(&event_type.as_str()))
        else {
            failures.push(format!(
                "domain/tests/golden/{event_type} names no current event type: events of a \
                 removed type stay in the store and must still be readable"
            ));
            continue;
        };
        let current = current_version(&event_type);
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .expect("a fixture folder")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        files.sort();
        let expected: Vec<String> = (1..=current).map(|v| format!("v{v}.json")).collect();
        let mut sorted_expected = expected.clone();
        sorted_expected.sort();
        if files != sorted_expected {
            failures.push(format!(
                "domain/tests/golden/{event_type} holds {files:?}; it must hold one fixture per \
                 version ever written, {expected:?} (current version {current})"
            ));
        }
        for version in 1..=current {
            let Some(stored) = read_fixture(&event_type, version) else {
                continue;
            };
            let upcast = match upcast(&event_type, &version.to_string(), &stored) {
                Ok(value) => value.into_owned(),
                Err(e) => {
                    failures.push(format!("{}: {e}", shown(&event_type, version)));
                    continue;
                }
            };
            match (kind.round_trip)(&upcast) {
                Ok(written) if written == upcast => read += 1,
                Ok(written) => failures.push(format!(
                    "{}, upcast to v{current}, reads as {} but writes back differently: an \
                     upcaster left a field the type ignores or does not set one it needs\n\
                     upcast:  {upcast}\nwritten: {written}",
                    shown(&event_type, version),
                    kind.name
                )),
                Err(e) => failures.push(format!(
                    "{}, upcast to v{current}, does not read as {}: {e} (is a step from \
                     v{version} missing or wrong? see {ADR})\nupcast: {upcast}",
                    shown(&event_type, version),
                    kind.name
                )),
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(read > 0, "no fixture was read");
}

#[test]
fn every_event_type_has_a_fixture_of_every_version() {
    let mut missing = Vec::new();
    for kind in kinds() {
        for variant in kind.variants {
            for version in 1..=current_version(variant) {
                if !fixture_path(variant, version).is_file() {
                    missing.push(shown(variant, version));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "event types without a fixture of a version they have (see {ADR}): {missing:?}"
    );
}

/// The variant names of an enum that derives `Deserialize`, as serde's derive hands them to
/// the deserializer: a list kept by the compiler, so no variant can be forgotten here.
fn variants<E: DeserializeOwned>() -> &'static [&'static str] {
    let mut seen = None;
    let _ = E::deserialize(Introspect(&mut seen));
    seen.expect("an event enum deserializes as an enum")
}

struct Introspect<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for Introspect<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only enums are introspected"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(variants);
        Err(serde::de::Error::custom("introspected"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}
