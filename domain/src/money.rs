//! Money: integer minor units (cents) of an ISO 4217 currency. A float never carries money.
//!
//! [`Money`] is always a positive, bounded amount: it is what a command moves. Balances, which
//! may be zero, are plain `i64` minor units of a [`Currency`] inside the wallet.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use crate::values::InvalidValue;

/// An ISO 4217 currency code: exactly three ASCII uppercase letters, such as `USD`.
///
/// Only the shape is checked, not membership of the ISO list: the payment provider is the
/// authority on which currencies it settles, and a new code must not need a release.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(InvalidValue::new(
                "currency",
                "must be an ISO 4217 code of three uppercase letters, such as USD",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        // Three ASCII uppercase letters by construction, so always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Currency::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A positive amount of one currency, in minor units: `{"amount": 1250, "currency": "USD"}`.
///
/// The fields are private so that every `Money` went through [`Money::positive`] (or the same
/// check when deserialized): code that holds one never re-checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyRepr")]
pub struct Money {
    amount: i64,
    currency: Currency,
}

impl Money {
    /// The largest amount a single command may move: 10^12 minor units (ten billion dollars).
    /// It keeps every sum the wallet forms far from `i64::MAX`.
    pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

    pub fn positive(amount: i64, currency: Currency) -> Result<Self, InvalidValue> {
        if amount <= 0 {
            return Err(InvalidValue::new(
                "amount",
                "must be a positive whole number of minor units (cents)",
            ));
        }
        if amount > Self::MAX_AMOUNT {
            return Err(InvalidValue::new(
                "amount",
                format!("must be at most {} minor units", Self::MAX_AMOUNT),
            ));
        }
        Ok(Self { amount, currency })
    }

    pub fn amount(&self) -> i64 {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// The unchecked wire form of [`Money`]; deserializing goes through [`Money::positive`].
#[derive(Deserialize)]
struct MoneyRepr {
    amount: i64,
    currency: Currency,
}

impl TryFrom<MoneyRepr> for Money {
    type Error = InvalidValue;

    fn try_from(repr: MoneyRepr) -> Result<Self, InvalidValue> {
        Money::positive(repr.amount, repr.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn currencies_are_three_uppercase_ascii_letters() {
        assert_eq!(usd().as_str(), "USD");
        for bad in ["", "US", "usd", "USDX", "U$D", "ÜSD", "US1"] {
            assert_eq!(Currency::parse(bad).unwrap_err().field, "currency", "{bad}");
        }
    }

    #[test]
    fn money_is_positive_and_bounded() {
        assert_eq!(Money::positive(1, usd()).unwrap().amount(), 1);
        assert!(Money::positive(Money::MAX_AMOUNT, usd()).is_ok());
        for bad in [0, -5, Money::MAX_AMOUNT + 1, i64::MIN] {
            assert_eq!(Money::positive(bad, usd()).unwrap_err().field, "amount");
        }
    }

    #[test]
    fn money_serializes_as_amount_and_currency_code() {
        let money = Money::positive(1250, usd()).unwrap();
        let json = serde_json::to_value(money).unwrap();
        assert_eq!(json, serde_json::json!({"amount": 1250, "currency": "USD"}));
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), money);
    }

    #[test]
    fn deserializing_money_checks_it_like_parsing_does() {
        for bad in [
            serde_json::json!({"amount": 0, "currency": "USD"}),
            serde_json::json!({"amount": 12, "currency": "usd"}),
            serde_json::json!({"amount": 1.5, "currency": "USD"}),
        ] {
            assert!(serde_json::from_value::<Money>(bad).is_err());
        }
    }
}
