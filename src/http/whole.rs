//! Whole numbers in JSON bodies. JSON Schema's `integer` is any number without a fraction, so
//! `30.0` is one, and the document promises integers; serde_json hands such a number to an
//! `i64` field as a float and would refuse it. Fields declared as integers read through these.
//!
//! ```ignore
//! #[serde(deserialize_with = "whole::number")]
//! amount: i64,
//! #[serde(default, deserialize_with = "whole::optional")]
//! priority: Option<i64>,
//! ```

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::Deserialize;
use std::fmt;

/// A number without a fraction that fits an `i64`: `30` and `30.0`, not `30.5` or `"30"`.
pub fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(WholeVisitor)
}

/// As [`number`], for an optional field (`null` or left out is `None`); pair it with
/// `#[serde(default)]`.
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "number")] i64);
    Ok(Option::<Whole>::deserialize(deserializer)?.map(|Whole(n)| n))
}

struct WholeVisitor;

impl Visitor<'_> for WholeVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<i64, E> {
        Ok(n)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<i64, E> {
        i64::try_from(n).map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<i64, E> {
        // Past 2^53 a float no longer tells neighbouring integers apart (an out-of-range
        // integer such as -2^63 - 1 arrives rounded into range), so only smaller ones are
        // taken for the integers they name.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if n.fract() == 0.0 && n.abs() < EXACT {
            Ok(n as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(n), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "number")]
        amount: i64,
        #[serde(default, deserialize_with = "optional")]
        priority: Option<i64>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integers_and_integer_valued_floats_are_accepted() {
        let body = parse(r#"{"amount": 861.0, "priority": 3}"#).unwrap();
        assert_eq!((body.amount, body.priority), (861, Some(3)));
        let body = parse(r#"{"amount": -2, "priority": 1e1}"#).unwrap();
        assert_eq!((body.amount, body.priority), (-2, Some(10)));
        assert_eq!(
            parse(r#"{"amount": 1, "priority": null}"#)
                .unwrap()
                .priority,
            None
        );
        assert_eq!(parse(r#"{"amount": 1}"#).unwrap().priority, None);
    }

    #[test]
    fn fractions_strings_and_overflow_are_refused() {
        for bad in [
            r#"{"amount": 861.5}"#,
            r#"{"amount": "861"}"#,
            r#"{"amount": 9223372036854775808}"#,
            r#"{"amount": 1e19}"#,
            r#"{"amount": -9223372036854775809}"#,
            r#"{"amount": 9007199254740993.0}"#,
            r#"{"amount": 1, "priority": 0.5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
