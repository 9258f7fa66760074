//! OpenAPI links: which operation's answer names the object another operation acts on.
//!
//! A client (and a stateful fuzzer) follows them from a created task or bounty to everything
//! that can be done to it, with the id the answer carried, instead of guessing ids.

use serde_json::{json, Value};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Modify;

/// `(from operation, its status, to operation, the parameters to fill)`.
type Follow = (&'static str, &'static str, &'static str, fn() -> Value);

const ID: &str = "$response.body#/id";

fn by_id() -> Value {
    json!({ "id": ID })
}

fn audited(kind: &str) -> Value {
    json!({ "type": kind, "id": ID })
}

const FOLLOWS: &[Follow] = &[
    ("createTask", "201", "getTask", by_id),
    ("createTask", "201", "heartbeatTask", by_id),
    ("createTask", "201", "completeTask", by_id),
    ("createTask", "201", "failTask", by_id),
    ("createTask", "201", "cancelTask", by_id),
    ("createTask", "201", "aggregateState", || audited("Task")),
    ("postBounty", "201", "getBounty", by_id),
    ("postBounty", "201", "applyToBounty", by_id),
    ("postBounty", "201", "acceptApplication", by_id),
    ("postBounty", "201", "submitWork", by_id),
    ("postBounty", "201", "approveWork", by_id),
    ("postBounty", "201", "rejectWork", by_id),
    ("postBounty", "201", "cancelBounty", by_id),
    ("postBounty", "201", "disputeBounty", by_id),
    ("postBounty", "201", "resolveDispute", by_id),
    ("postBounty", "201", "aggregateState", || audited("Bounty")),
    (
        "applyToBounty",
        "201",
        "withdrawApplication",
        || json!({ "id": "$request.path.id", "application_id": "$response.body#/application_id" }),
    ),
];

pub struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut OpenApi) {
        for (from, status, to, parameters) in FOLLOWS {
            let operation =
                super::operations_mut(openapi).find(|op| op.operation_id.as_deref() == Some(*from));
            let Some(RefOr::T(response)) =
                operation.and_then(|op| op.responses.responses.get_mut(*status))
            else {
                panic!("links: {from} has no {status} answer to link from");
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi::ApiDoc;
    use utoipa::OpenApi as _;

    #[test]
    fn every_link_leads_to_an_operation_of_the_document() {
        let mut doc = ApiDoc::openapi();
        let ids: Vec<String> = crate::http::openapi::operations_mut(&mut doc)
            .filter_map(|op| op.operation_id.clone())
            .collect();
        for (_, _, to, _) in FOLLOWS {
            assert!(
                ids.iter().any(|id| id == to),
                "a link leads to {to}, which is not documented"
            );
        }
    }
}
