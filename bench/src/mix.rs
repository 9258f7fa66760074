//! The weighted mix of commands `loadgen commands` sends, and a tiny deterministic random
//! source to draw from it (so two runs send the same sequence).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `POST /v1/tasks`
    Task,
    /// `POST /v1/webhooks/payments` (signed `deposit.succeeded`)
    Deposit,
    /// `POST /v1/bounties`
    Bounty,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::Deposit => "deposit",
            Kind::Bounty => "bounty",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
    total: u32,
}

impl Mix {
    pub fn pick(&self, rng: &mut Rng) -> Kind {
        let mut draw = (rng.next() % u64::from(self.total)) as u32;
        for (kind, weight) in &self.weights {
            if draw < *weight {
                return *kind;
            }
            draw -= weight;
        }
        Kind::Task
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part}: expected kind=weight"))?;
            let kind = match name.trim() {
                "task" => Kind::Task,
                "deposit" => Kind::Deposit,
                "bounty" => Kind::Bounty,
                other => return Err(format!("{other}: not one of task, deposit, bounty")),
            };
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|e| format!("{part}: weight: {e}"))?;
            if weight > 0 {
                weights.push((kind, weight));
            }
        }
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err("the mix needs at least one positive weight".into());
        }
        Ok(Mix { weights, total })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(k, w)| format!("{}={w}", k.name()))
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// xorshift64*: plenty for choosing what to send next.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_draws_each_kind_about_as_often_as_its_weight() {
        let mix: Mix = "task=6,deposit=2,bounty=2".parse().unwrap();
        let mut rng = Rng::new(7);
        let tasks = (0..10_000)
            .filter(|_| mix.pick(&mut rng) == Kind::Task)
            .count();
        assert!((5_500..6_500).contains(&tasks), "{tasks}");
    }

    #[test]
    fn a_mix_without_weight_is_refused() {
        assert!("task=0".parse::<Mix>().is_err());
        assert!("lunch=1".parse::<Mix>().is_err());
    }
}
