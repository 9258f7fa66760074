//! Property tests: money is conserved and never negative, whatever the order of wallet
//! operations, duplicates and refusals.
//!
//! Random sequences of deposits, credits, withdrawals (request, complete, fail) and escrow
//! (hold, release, refund, receive) run against three wallets in three currencies through
//! `decide` and `apply`, with small id spaces so that repeats, reused ids and races on the
//! same hold are common. After every step:
//!
//! 1. no balance (available or held) of any wallet is negative, in its state or in an event;
//! 2. per currency, summed over all wallets, `Σ (available + held)` equals
//!    `deposits + credits − completed_withdrawals − released + received`. Each term on the
//!    right is the sum of the `amount`s of the `DepositConfirmed`, `WalletCredited`,
//!    `WithdrawalCompleted`, `HoldReleased` and `PaymentReceived` events decided so far; the
//!    left side is read from the balances the events carry. A pending withdrawal or a held
//!    escrow stays inside `held`, so requesting, failing, holding, rejecting and refunding
//!    move nothing in or out;
//! 3. each hold is resolved (released or refunded) at most once;
//! 4. a command repeated at once (every kind but an admin's credit, which has no id)
//!    decides no events.
//!
//! The process manager pairs every `HoldReleased` with the payee's `PaymentReceived` of
//! the same amount. The second property runs only such paired settlements, and then at every
//! quiescent point released = received, so the identity becomes DESIGN.md's guarantee 11:
//! Σ (available + held) = settled deposits (deposits and admin credits) − completed
//! withdrawals.

use std::collections::{BTreeMap, HashMap};

use bountyline_domain::money::{Currency, Money};
use bountyline_domain::values::{ProviderReference, Reason};
use bountyline_domain::wallet::{
    Entry, EntryKey, HoldState, Wallet, WalletCommand, WalletError, WalletEvent,
};
use bountyline_domain::{Actor, Role};
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::Aggregate;
use proptest::prelude::*;
use uuid::Uuid;

const WALLETS: usize = 3;
const CURRENCIES: [&str; 3] = ["USD", "EUR", "JPY"];

#[derive(Debug, Clone)]
enum Op {
    Deposit {
        wallet: usize,
        reference: u8,
        money: (i64, usize),
    },
    Credit {
        wallet: usize,
        money: (i64, usize),
        by_admin: bool,
    },
    RequestWithdrawal {
        wallet: usize,
        id: u8,
        money: (i64, usize),
        by_owner: bool,
    },
    CompleteWithdrawal {
        wallet: usize,
        id: u8,
    },
    FailWithdrawal {
        wallet: usize,
        id: u8,
    },
    Hold {
        wallet: usize,
        payment: u8,
        money: (i64, usize),
    },
    Release {
        wallet: usize,
        payment: u8,
    },
    Refund {
        wallet: usize,
        payment: u8,
    },
    /// A payment received without its release: only in the unpaired property.
    Receive {
        wallet: usize,
        from: usize,
        payment: u8,
        money: (i64, usize),
    },
    /// What the process manager does: release the payer's hold, then credit the payee.
    Settle {
        payer: usize,
        payment: u8,
    },
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn owner(wallet: usize) -> Uuid {
    Uuid::from_u128(1 + wallet as u128)
}

/// Payment ids are unique across wallets, as the process manager's are.
fn payment_id(payer: usize, payment: u8) -> Uuid {
    Uuid::from_u128(0x1_0000 + ((payer as u128) << 8) + u128::from(payment))
}

fn withdrawal_id(id: u8) -> Uuid {
    Uuid::from_u128(0x2_0000 + u128::from(id))
}

/// The payee of a payment is fixed by the payment, never the payer.
fn payee_of(payer: usize, payment: u8) -> usize {
    (payer + 1 + usize::from(payment) % (WALLETS - 1)) % WALLETS
}

fn currency(index: usize) -> Currency {
    Currency::parse(CURRENCIES[index]).unwrap()
}

fn money((amount, index): (i64, usize)) -> Money {
    Money::positive(amount, currency(index)).unwrap()
}

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![9 => 1..=2_000i64, 1 => Just(Money::MAX_AMOUNT)]
}

fn money_strategy() -> impl Strategy<Value = (i64, usize)> {
    (amount(), 0..CURRENCIES.len())
}

fn op(unpaired: bool) -> impl Strategy<Value = Op> {
    let wallet = 0..WALLETS;
    let id = 0..6u8;
    let always = prop_oneof![
        3 => (wallet.clone(), 0..12u8, money_strategy())
            .prop_map(|(wallet, reference, money)| Op::Deposit { wallet, reference, money }),
        1 => (wallet.clone(), money_strategy(), any::<bool>())
            .prop_map(|(wallet, money, by_admin)| Op::Credit { wallet, money, by_admin }),
        2 => (wallet.clone(), id.clone(), money_strategy(), prop::bool::weighted(0.9))
            .prop_map(|(wallet, id, money, by_owner)| Op::RequestWithdrawal {
                wallet, id, money, by_owner,
            }),
        1 => (wallet.clone(), id.clone())
            .prop_map(|(wallet, id)| Op::CompleteWithdrawal { wallet, id }),
        1 => (wallet.clone(), id.clone())
            .prop_map(|(wallet, id)| Op::FailWithdrawal { wallet, id }),
        3 => (wallet.clone(), id.clone(), money_strategy())
            .prop_map(|(wallet, payment, money)| Op::Hold { wallet, payment, money }),
        2 => (wallet.clone(), id.clone())
            .prop_map(|(payer, payment)| Op::Settle { payer, payment }),
        2 => (wallet.clone(), id.clone())
            .prop_map(|(wallet, payment)| Op::Refund { wallet, payment }),
    ];
    let raw = prop_oneof![
        (wallet.clone(), id.clone()).prop_map(|(wallet, payment)| Op::Release { wallet, payment }),
        (wallet.clone(), wallet, id, money_strategy()).prop_map(
            |(wallet, from, payment, money)| {
                Op::Receive {
                    wallet,
                    from,
                    payment,
                    money,
                }
            }
        ),
    ];
    if unpaired {
        prop_oneof![5 => always, 1 => raw].boxed()
    } else {
        always.boxed()
    }
}

/// Per currency, the sums of the amounts that moved money in or out of the wallets.
#[derive(Debug, Default, Clone, Copy)]
struct Flows {
    deposits: i64,
    credits: i64,
    completed_withdrawals: i64,
    released: i64,
    received: i64,
}

struct World {
    wallets: Vec<Wallet>,
    /// Each wallet's events, which its keyed entries are read from.
    histories: Vec<Vec<WalletEvent>>,
    flows: BTreeMap<Currency, Flows>,
    resolutions: HashMap<(usize, Uuid), u32>,
    held: HashMap<(usize, Uuid), (Currency, i64)>,
    reserved: HashMap<(usize, Uuid), (Currency, i64)>,
}

impl World {
    fn new() -> Self {
        Self {
            wallets: (0..WALLETS).map(|_| Wallet::default()).collect(),
            histories: vec![Vec::new(); WALLETS],
            flows: BTreeMap::new(),
            resolutions: HashMap::new(),
            held: HashMap::new(),
            reserved: HashMap::new(),
        }
    }

    fn step(&mut self, op: Op, paired_only: bool) {
        match op {
            Op::Deposit {
                wallet,
                reference,
                money: m,
            } => {
                let reference = ProviderReference::parse(&format!("dep-{reference}")).unwrap();
                let command = WalletCommand::Deposit {
                    owner: owner(wallet),
                    reference,
                    money: money(m),
                    at: at(),
                };
                let _ = self.run(wallet, command);
            }
            Op::Credit {
                wallet,
                money: m,
                by_admin,
            } => {
                let roles = if by_admin {
                    vec![Role::Admin]
                } else {
                    vec![Role::Member]
                };
                let command = WalletCommand::Credit {
                    owner: owner(wallet),
                    credit_id: Uuid::new_v4(),
                    money: money(m),
                    reason: Reason::parse("property test").unwrap(),
                    actor: Actor::new(Uuid::from_u128(99), roles),
                    at: at(),
                };
                let result = self.run(wallet, command);
                assert_eq!(result.is_ok(), by_admin, "{result:?}");
            }
            Op::RequestWithdrawal {
                wallet,
                id,
                money: m,
                by_owner,
            } => {
                let actor = if by_owner {
                    owner(wallet)
                } else {
                    owner((wallet + 1) % WALLETS)
                };
                let command = WalletCommand::RequestWithdrawal {
                    owner: owner(wallet),
                    withdrawal_id: withdrawal_id(id),
                    money: money(m),
                    actor: Actor::new(actor, vec![Role::Member]),
                    at: at(),
                };
                let result = self.run(wallet, command);
                if !by_owner {
                    assert_eq!(result, Err(WalletError::NotOwner));
                }
            }
            Op::CompleteWithdrawal { wallet, id } => {
                let reference = ProviderReference::parse("payout").unwrap();
                let command = WalletCommand::CompleteWithdrawal {
                    withdrawal_id: withdrawal_id(id),
                    reference,
                    at: at(),
                };
                let _ = self.run(wallet, command);
            }
            Op::FailWithdrawal { wallet, id } => {
                let reference = ProviderReference::parse("payout").unwrap();
                let command = WalletCommand::FailWithdrawal {
                    withdrawal_id: withdrawal_id(id),
                    reference,
                    at: at(),
                };
                let _ = self.run(wallet, command);
            }
            Op::Hold {
                wallet,
                payment,
                money: m,
            } => {
                let command = WalletCommand::HoldFunds {
                    owner: owner(wallet),
                    payment_id: payment_id(wallet, payment),
                    money: money(m),
                    at: at(),
                };
                let _ = self.run(wallet, command);
            }
            Op::Release { wallet, payment } => {
                let command = WalletCommand::ReleaseHold {
                    payment_id: payment_id(wallet, payment),
                    at: at(),
                };
                let _ = self.run(wallet, command);
            }
            Op::Refund { wallet, payment } => {
                let command = WalletCommand::RefundHold {
                    payment_id: payment_id(wallet, payment),
                    at: at(),
                };
                let _ = self.run(wallet, command);
            }
            Op::Receive {
                wallet,
                from,
                payment,
                money: m,
            } => {
                let command = WalletCommand::ReceivePayment {
                    owner: owner(wallet),
                    payment_id: payment_id(from, payment),
                    money: money(m),
                    from: owner(from),
                    at: at(),
                };
                let _ = self.run(wallet, command);
            }
            Op::Settle { payer, payment } => self.settle(payer, payment, paired_only),
        }
    }

    /// Release the payer's hold and, once it is released (now or by an earlier delivery),
    /// credit the payee with the held amount: what the process manager does, redelivery and
    /// all.
    fn settle(&mut self, payer: usize, payment: u8, paired_only: bool) {
        let id = payment_id(payer, payment);
        let _ = self.run(
            payer,
            WalletCommand::ReleaseHold {
                payment_id: id,
                at: at(),
            },
        );
        let Some(hold) = Entry::under(&EntryKey::Hold(id), &self.histories[payer]).hold else {
            return;
        };
        if hold.state != HoldState::Released {
            return;
        }
        let payee = payee_of(payer, payment);
        let command = WalletCommand::ReceivePayment {
            owner: owner(payee),
            payment_id: id,
            money: Money::positive(hold.money.amount, hold.money.currency).unwrap(),
            from: owner(payer),
            at: at(),
        };
        let result = self.run(payee, command);
        if paired_only {
            assert!(
                result.is_ok(),
                "a paired receipt is never refused: {result:?}"
            );
        }
    }

    /// Decide and apply one command, record its events, and check that repeating it at once
    /// decides nothing.
    fn run(
        &mut self,
        wallet: usize,
        command: WalletCommand,
    ) -> Result<Vec<WalletEvent>, WalletError> {
        let result = self.decide(wallet, &command);
        let Ok(events) = &result else {
            return result;
        };
        for event in events {
            self.record(wallet, &command, event);
            self.wallets[wallet].apply(event.clone());
            self.histories[wallet].push(event.clone());
        }
        if !matches!(command, WalletCommand::Credit { .. }) {
            let again = self.decide(wallet, &command);
            assert_eq!(again, Ok(vec![]), "repeating {command:?} decided something");
        }
        result
    }

    /// Decides on the wallet's balances and the entry its history holds under the command's key.
    fn decide(
        &self,
        wallet: usize,
        command: &WalletCommand,
    ) -> Result<Vec<WalletEvent>, WalletError> {
        let entry = command
            .entry_key()
            .map(|key| Entry::under(&key, &self.histories[wallet]))
            .unwrap_or_default();
        self.wallets[wallet].decide(command.clone(), &entry)
    }

    fn record(&mut self, wallet: usize, command: &WalletCommand, event: &WalletEvent) {
        let change = event.balance_change();
        assert_eq!(change.owner, owner(wallet));
        assert!(change.available >= 0 && change.held >= 0, "{event:?}");
        if let Some(asked) = command_money(command) {
            assert_eq!((change.currency, change.amount), asked, "{event:?}");
        }
        let flows = self.flows.entry(change.currency).or_default();
        let moved = (change.currency, change.amount);
        match event {
            WalletEvent::DepositConfirmed { .. } => flows.deposits += change.amount,
            WalletEvent::WalletCredited { .. } => flows.credits += change.amount,
            WalletEvent::WithdrawalRequested { withdrawal_id, .. } => {
                self.reserved.insert((wallet, *withdrawal_id), moved);
            }
            WalletEvent::WithdrawalCompleted { withdrawal_id, .. } => {
                assert_eq!(self.reserved.get(&(wallet, *withdrawal_id)), Some(&moved));
                flows.completed_withdrawals += change.amount;
            }
            WalletEvent::WithdrawalFailed { withdrawal_id, .. } => {
                assert_eq!(self.reserved.get(&(wallet, *withdrawal_id)), Some(&moved));
            }
            WalletEvent::FundsHeld { payment_id, .. } => {
                self.held.insert((wallet, *payment_id), moved);
            }
            WalletEvent::HoldRejected { .. } => {}
            WalletEvent::HoldReleased { payment_id, .. }
            | WalletEvent::HoldRefunded { payment_id, .. } => {
                assert_eq!(self.held.get(&(wallet, *payment_id)), Some(&moved));
                if matches!(event, WalletEvent::HoldReleased { .. }) {
                    flows.released += change.amount;
                }
                let resolutions = self.resolutions.entry((wallet, *payment_id)).or_default();
                *resolutions += 1;
                assert_eq!(*resolutions, 1, "a hold resolved twice: {event:?}");
            }
            WalletEvent::PaymentReceived { .. } => flows.received += change.amount,
        }
    }

    /// Per currency, Σ (available + held) over all wallets, and no negative balance.
    fn totals(&self) -> BTreeMap<Currency, i64> {
        let mut totals = BTreeMap::new();
        for state in self.wallets.iter().filter_map(|w| w.state.as_ref()) {
            for (currency, balance) in &state.balances {
                assert!(balance.available >= 0 && balance.held >= 0, "{balance:?}");
                *totals.entry(*currency).or_insert(0) += balance.available + balance.held;
            }
        }
        totals
    }

    fn check_conservation(&self, paired_only: bool) {
        let totals = self.totals();
        for (currency, flows) in &self.flows {
            let total = totals.get(currency).copied().unwrap_or(0);
            let expected =
                flows.deposits + flows.credits - flows.completed_withdrawals - flows.released
                    + flows.received;
            assert_eq!(total, expected, "{currency}: {flows:?}");
            if paired_only {
                assert_eq!(flows.released, flows.received, "{currency}: {flows:?}");
                let settled = flows.deposits + flows.credits - flows.completed_withdrawals;
                assert_eq!(total, settled, "{currency}: guarantee 11");
            }
        }
        for currency in totals.keys() {
            assert!(self.flows.contains_key(currency) || totals[currency] == 0);
        }
    }
}

/// The money a command names, if any: every event it decides must be about exactly that.
fn command_money(command: &WalletCommand) -> Option<(Currency, i64)> {
    match command {
        WalletCommand::Deposit { money, .. }
        | WalletCommand::Credit { money, .. }
        | WalletCommand::RequestWithdrawal { money, .. }
        | WalletCommand::HoldFunds { money, .. }
        | WalletCommand::ReceivePayment { money, .. } => Some((money.currency(), money.amount())),
        WalletCommand::CompleteWithdrawal { .. }
        | WalletCommand::FailWithdrawal { .. }
        | WalletCommand::ReleaseHold { .. }
        | WalletCommand::RefundHold { .. } => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn money_is_conserved_and_never_negative_under_any_wallet_operations(
        ops in prop::collection::vec(op(true), 1..80)
    ) {
        let mut world = World::new();
        for op in ops {
            world.step(op, false);
            world.check_conservation(false);
        }
    }

    #[test]
    fn with_paired_settlements_balances_equal_settled_deposits_less_withdrawals(
        ops in prop::collection::vec(op(false), 1..80)
    ) {
        let mut world = World::new();
        for op in ops {
            world.step(op, true);
            world.check_conservation(true);
        }
    }
}
