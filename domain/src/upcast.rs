//! Event schemas that evolve: the one registry of upcasters.
//!
//! Every event type has a version, stored with each event (`events.event_version`). History is
//! append-only and hash-chained, so an event is never rewritten in its new form: it stays as
//! it was stored, and every reader brings it to the current form when it reads it, here, one
//! version at a time (v1 → v2 → …). A type's current version is 1 plus the number of steps
//! registered for it, so adding a step is what bumps the version: the type's `event_version`
//! asks [`current_version`].
//!
//! How to change an event's stored form (docs/adr/0006-event-schemas-that-evolve.md): add a
//! [`Step`] from its current version to [`STEPS`] (the function next to the event), and the
//! new form's fixture (`domain/tests/golden/<EventType>/v<N>.json`); never edit or remove an
//! old fixture or step. `domain/tests/event_schemas` fails until all three agree.
//!
//! Upcasting works on the event's JSON, never on bytes a hash covers: hash-chain verification
//! reads the stored columns (src/audit/chain.rs), and readers upcast a copy after reading.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// An event's body: the object inside cqrs-es's `{"<EventType>": {...}}`.
pub type Body = Map<String, Value>;

/// One version step of one event type: its body as stored at version `from`, turned into its
/// form at `from + 1` (or the reason it cannot be).
pub struct Step {
    pub event_type: &'static str,
    pub from: u32,
    pub upcast: fn(Body) -> Result<Body, String>,
}

/// Every step of every event type, in any order. Steps are only ever added: an event stored
/// at any version ever written must stay readable.
pub const STEPS: &[Step] = &[Step {
    event_type: "WalletCredited",
    from: 1,
    upcast: crate::wallet::upcast::credited_v1_to_v2,
}];

/// Why a stored event could not be brought to its current form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("{event_type} has version {version:?}, which is not a version number")]
    Version { event_type: String, version: String },
    #[error(
        "{event_type} v{version} is newer than this build, which knows it up to v{current}: \
         a newer release wrote it"
    )]
    Newer {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("{event_type} v{version} is not stored as {{\"{event_type}\": {{...}}}}")]
    Shape { event_type: String, version: u32 },
    #[error("{event_type} v{from} cannot be brought to v{}: {reason}", from + 1)]
    Step {
        event_type: String,
        from: u32,
        reason: String,
    },
}

/// The version events of `event_type` are written at now.
pub fn current_version(event_type: &str) -> u32 {
    current_version_in(STEPS, event_type)
}

/// `payload` of an event of `event_type` stored at `version`, as cqrs-es stores it
/// (`{"<EventType>": {...}}`), in the form of the current version: borrowed when it already
/// is (the common case costs no copy), upcast one step at a time otherwise.
pub fn upcast<'a>(
    event_type: &str,
    version: &str,
    payload: &'a Value,
) -> Result<Cow<'a, Value>, UpcastError> {
    upcast_in(STEPS, event_type, version, payload)
}

fn current_version_in(steps: &[Step], event_type: &str) -> u32 {
    let count = steps.iter().filter(|s| s.event_type == event_type).count();
    1 + u32::try_from(count).unwrap_or(u32::MAX - 1)
}

fn upcast_in<'a>(
    steps: &[Step],
    event_type: &str,
    version: &str,
    payload: &'a Value,
) -> Result<Cow<'a, Value>, UpcastError> {
    let stored: u32 = match version.parse() {
        Ok(v) if v >= 1 => v,
        _ => {
            return Err(UpcastError::Version {
                event_type: event_type.to_owned(),
                version: version.to_owned(),
            })
        }
    };
    let current = current_version_in(steps, event_type);
    if stored == current {
        return Ok(Cow::Borrowed(payload));
    }
    if stored > current {
        return Err(UpcastError::Newer {
            event_type: event_type.to_owned(),
            version: stored,
            current,
        });
    }
    let shape = || UpcastError::Shape {
        event_type: event_type.to_owned(),
        version: stored,
    };
    let mut body = match payload.as_object() {
        Some(wrapper) if wrapper.len() == 1 => wrapper
            .get(event_type)
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(shape)?,
        _ => return Err(shape()),
    };
    for from in stored..current {
        let step = steps
            .iter()
            .find(|s| s.event_type == event_type && s.from == from)
            .ok_or_else(|| UpcastError::Step {
                event_type: event_type.to_owned(),
                from,
                reason: "no step is registered from this version".to_owned(),
            })?;
        body = (step.upcast)(body).map_err(|reason| UpcastError::Step {
            event_type: event_type.to_owned(),
            from,
            reason,
        })?;
    }
    let mut wrapper = Map::with_capacity(1);
    wrapper.insert(event_type.to_owned(), Value::Object(body));
    Ok(Cow::Owned(Value::Object(wrapper)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// A made-up history, to test the chaining apart from the real steps: `Renamed` v1 called
    /// its field `old`, v2 `middle`, v3 adds `added`.
    fn renamed_v1(mut body: Body) -> Result<Body, String> {
        let value = body.remove("old").ok_or("no `old`")?;
        body.insert("middle".into(), value);
        Ok(body)
    }

    fn renamed_v2(mut body: Body) -> Result<Body, String> {
        body.insert("added".into(), json!(true));
        Ok(body)
    }

    const MADE_UP: &[Step] = &[
        Step {
            event_type: "Renamed",
            from: 2,
            upcast: renamed_v2,
        },
        Step {
            event_type: "Renamed",
            from: 1,
            upcast: renamed_v1,
        },
    ];

    #[test]
    fn an_old_version_is_upcast_one_step_at_a_time_up_to_the_current_one() {
        let stored = json!({"Renamed": {"old": 7}});
        let read = upcast_in(MADE_UP, "Renamed", "1", &stored).unwrap();
        assert_eq!(*read, json!({"Renamed": {"middle": 7, "added": true}}));
        let v2 = json!({"Renamed": {"middle": 7}});
        assert_eq!(
            *upcast_in(MADE_UP, "Renamed", "2", &v2).unwrap(),
            json!({"Renamed": {"middle": 7, "added": true}})
        );
    }

    #[test]
    fn the_current_version_is_read_as_stored_without_a_copy() {
        let stored = json!({"Renamed": {"middle": 7, "added": true}});
        let read = upcast_in(MADE_UP, "Renamed", "3", &stored).unwrap();
        assert!(matches!(read, Cow::Borrowed(_)));
        // A type without steps is at version 1, whatever its name.
        assert_eq!(current_version_in(MADE_UP, "Untouched"), 1);
        let other = json!({"Untouched": {}});
        assert!(matches!(
            upcast_in(MADE_UP, "Untouched", "1", &other).unwrap(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn versions_that_cannot_be_read_are_refused_with_their_reason() {
        let stored = json!({"Renamed": {"old": 7}});
        for bad in ["", "0", "1.0", "v1", "-1"] {
            assert!(
                matches!(
                    upcast_in(MADE_UP, "Renamed", bad, &stored),
                    Err(UpcastError::Version { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            upcast_in(MADE_UP, "Renamed", "4", &stored).unwrap_err(),
            UpcastError::Newer {
                event_type: "Renamed".into(),
                version: 4,
                current: 3
            }
        );
        for not_wrapped in [
            json!({"old": 7}),
            json!({"Renamed": 42}),
            json!({"Renamed": {"old": 7}, "Other": {}}),
        ] {
            assert!(matches!(
                upcast_in(MADE_UP, "Renamed", "1", &not_wrapped),
                Err(UpcastError::Shape { version: 1, .. })
            ));
        }
        let unexpected = json!({"Renamed": {"new": 7}});
        assert!(matches!(
            upcast_in(MADE_UP, "Renamed", "1", &unexpected),
            Err(UpcastError::Step { from: 1, .. })
        ));
    }

    #[test]
    fn a_missing_step_in_a_chain_is_named() {
        let gap = &MADE_UP[..1];
        // One step registered: the current version is 2, and v1 has no step.
        let v1 = json!({"Renamed": {"old": 7}});
        assert!(matches!(
            upcast_in(gap, "Renamed", "1", &v1),
            Err(UpcastError::Step { from: 1, .. })
        ));
    }

    /// Each type's steps run from v1 without a gap or a repeat, so every version below the
    /// current one has exactly one way up.
    #[test]
    fn the_registered_steps_of_each_type_run_from_version_one_without_gaps() {
        let mut froms: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for step in STEPS {
            froms.entry(step.event_type).or_default().push(step.from);
        }
        for (event_type, mut from) in froms {
            from.sort_unstable();
            let expected: Vec<u32> = (1..current_version(event_type)).collect();
            assert_eq!(from, expected, "the steps of {event_type}");
        }
    }
}
