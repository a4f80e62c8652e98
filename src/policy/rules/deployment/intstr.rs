//! Int-or-percent math as the Deployment controller does it.
//!
//! `maxUnavailable` percentages round down and `maxSurge` percentages round up against
//! `spec.replicas` (k8s.io/kubernetes pkg/controller/deployment/util `ResolveFenceposts`); when
//! both come out 0 the controller lets one pod be unavailable so a rollout can progress.

use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use crate::policy::config::IntOrPercent;

/// An int-or-percent value, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// An absolute number of pods.
    Pods(i64),
    /// A percentage of replicas.
    Percent(i64),
}

/// How a percentage is turned into pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// `maxUnavailable`.
    Down,
    /// `maxSurge`.
    Up,
}

/// Why a value is not a valid int-or-percent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a number of pods or a percentage like \"25%\"")]
pub struct BadAmount(pub String);

impl Amount {
    /// Parses the text form: `"25%"` (a bare `"3"` is refused, as the API server does).
    pub fn parse_percent(text: &str) -> Result<Self, BadAmount> {
        text.strip_suffix('%')
            .and_then(|digits| digits.trim().parse::<i64>().ok())
            .map(Amount::Percent)
            .ok_or_else(|| BadAmount(text.to_owned()))
    }

    /// From a Kubernetes object field.
    pub fn from_k8s(value: &IntOrString) -> Result<Self, BadAmount> {
        match value {
            IntOrString::Int(n) => Ok(Amount::Pods(i64::from(*n))),
            IntOrString::String(text) => Self::parse_percent(text),
        }
    }

    /// From a policy setting.
    pub fn from_policy(value: &IntOrPercent) -> Result<Self, BadAmount> {
        match value {
            IntOrPercent::Int(n) => Ok(Amount::Pods(i64::from(*n))),
            IntOrPercent::Percent(text) => Self::parse_percent(text),
        }
    }

    /// Pods this amount means for `replicas`.
    pub fn resolve(self, replicas: i64, rounding: Rounding) -> i64 {
        match self {
            Amount::Pods(n) => n,
            Amount::Percent(p) => {
                let scaled = p.saturating_mul(replicas);
                match rounding {
                    Rounding::Down => scaled.div_euclid(100),
                    Rounding::Up => (scaled + 99).div_euclid(100),
                }
            }
        }
    }

    /// The literal value is zero (`0` or `"0%"`): what API validation looks at when it refuses
    /// maxSurge and maxUnavailable both 0.
    pub fn is_zero(self) -> bool {
        matches!(self, Amount::Pods(0) | Amount::Percent(0))
    }

    /// The JSON the field is written as: a number, or a `"N%"` string.
    pub fn to_json(self) -> Value {
        match self {
            Amount::Pods(n) => json!(n),
            Amount::Percent(p) => json!(format!("{p}%")),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Pods(n) => write!(f, "{n}"),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Effective (surge, unavailable) pods for a rollout, as the controller computes them.
pub fn fenceposts(surge: Amount, unavailable: Amount, replicas: i64) -> (i64, i64) {
    let surge = surge.resolve(replicas, Rounding::Up);
    let unavailable = unavailable.resolve(replicas, Rounding::Down);
    if surge == 0 && unavailable == 0 {
        // Mirrors ResolveFenceposts: with neither surge nor unavailability a rollout could never
        // make progress, so the controller allows one unavailable pod.
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_table() {
        let cases = [
            (Amount::Percent(25), 4, Rounding::Down, 1),
            (Amount::Percent(25), 3, Rounding::Down, 0),
            (Amount::Percent(25), 3, Rounding::Up, 1),
            (Amount::Percent(50), 5, Rounding::Down, 2),
            (Amount::Percent(50), 5, Rounding::Up, 3),
            (Amount::Percent(100), 7, Rounding::Down, 7),
            (Amount::Percent(10), 1, Rounding::Up, 1),
            (Amount::Percent(10), 1, Rounding::Down, 0),
            (Amount::Percent(0), 10, Rounding::Up, 0),
            (Amount::Percent(25), 0, Rounding::Up, 0),
            (Amount::Pods(2), 10, Rounding::Down, 2),
        ];
        for (amount, replicas, rounding, expected) in cases {
            assert_eq!(
                amount.resolve(replicas, rounding),
                expected,
                "{amount} of {replicas} {rounding:?}"
            );
        }
    }

    #[test]
    fn parses_and_writes() {
        assert_eq!(Amount::parse_percent("25%"), Ok(Amount::Percent(25)));
        assert!(Amount::parse_percent("25").is_err());
        assert!(Amount::parse_percent("a%").is_err());
        assert_eq!(
            Amount::from_k8s(&IntOrString::Int(3)).map(Amount::to_json),
            Ok(json!(3))
        );
        assert_eq!(Amount::Percent(10).to_json(), json!("10%"));
        assert!(Amount::Percent(0).is_zero() && Amount::Pods(0).is_zero());
    }

    #[test]
    fn fencepost_never_stalls() {
        assert_eq!(fenceposts(Amount::Pods(0), Amount::Percent(25), 3), (0, 1));
        assert_eq!(
            fenceposts(Amount::Percent(25), Amount::Percent(25), 4),
            (1, 1)
        );
        assert_eq!(fenceposts(Amount::Percent(25), Amount::Pods(0), 1), (1, 0));
    }
}
