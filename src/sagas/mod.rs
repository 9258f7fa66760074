//! Process managers: the sagas that move money between bounties, payments and wallets.

pub mod flows;
