//! OpenAPI links: which operation's answer names the object another operation acts on.
//!
//! A client (and a stateful fuzzer) follows them from a created task or bounty to everything
//! that can be done to it, with the id the answer carried, instead of guessing ids.

use serde_json::{json, Value};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Modify;

/// `(from operation, its status, the operations it leads to, the parameters to fill)`.
type Follow = (
    &'static str,
    &'static str,
    &'static [&'static str],
    fn() -> Value,
);

const ID: &str = "$response.body#/id";

fn by_id() -> Value {
    json!({ "id": ID })
}

const FOLLOWS: &[Follow] = &[
    (
        "createTask",
        "201",
        &[
            "getTask",
            "heartbeatTask",
            "completeTask",
            "failTask",
            "cancelTask",
        ],
        by_id,
    ),
    (
        "createTask",
        "201",
        &["aggregateState"],
        || json!({ "type": "Task", "id": ID }),
    ),
    (
        "postBounty",
        "201",
        &[
            "getBounty",
            "applyToBounty",
            "acceptApplication",
            "submitWork",
            "approveWork",
            "rejectWork",
            "cancelBounty",
            "disputeBounty",
            "resolveDispute",
        ],
        by_id,
    ),
    (
        "postBounty",
        "201",
        &["aggregateState"],
        || json!({ "type": "Bounty", "id": ID }),
    ),
    (
        "applyToBounty",
        "201",
        &["withdrawApplication"],
        || json!({ "id": "$request.path.id", "application_id": "$response.body#/application_id" }),
    ),
];

/// Adds the links of [`FOLLOWS`] to the answers they start from. A link whose answer is not
/// in the document is left out (the tests below fail on it; the server still starts).
pub struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut OpenApi) {
        for (from, status, targets, parameters) in FOLLOWS {
            let response = super::operations_mut(openapi)
                .find(|op| op.operation_id.as_deref() == Some(*from))
                .and_then(|op| op.responses.responses.get_mut(*status));
            let Some(RefOr::T(response)) = response else {
                continue;
            };
            for to in *targets {
                let mut link = LinkBuilder::new().operation_id(*to);
                if let Value::Object(fill) = parameters() {
                    for (name, value) in fill {
                        link = link.parameter(name, value);
                    }
                }
                response.links.insert((*to).to_owned(), link.build().into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi::ApiDoc;
    use utoipa::OpenApi as _;

    #[test]
    fn every_link_starts_at_an_answer_and_leads_to_an_operation_of_the_document() {
        let mut doc = ApiDoc::openapi();
        let ids: Vec<String> = crate::http::openapi::operations_mut(&mut doc)
            .filter_map(|op| op.operation_id.clone())
            .collect();
        for (from, status, targets, _) in FOLLOWS {
            for to in *targets {
                assert!(
                    ids.iter().any(|id| id == to),
                    "a link leads to {to}, which is not documented"
                );
            }
            let placed = crate::http::openapi::operations_mut(&mut doc)
                .find(|op| op.operation_id.as_deref() == Some(*from))
                .and_then(|op| op.responses.responses.get(*status))
                .is_some_and(|r| matches!(r, RefOr::T(r) if targets.iter().all(|t| r.links.contains_key(*t))));
            assert!(placed, "{from} has no {status} answer carrying its links");
        }
    }
}
