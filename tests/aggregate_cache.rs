//! Hot aggregates kept in memory (src/store/cached.rs): a process decides on what the store
//! holds, never on what it remembers. Two command buses stand for two processes on one
//! database, each with its own cache.

mod common;

use bountyline::commands::{CommandBus, CommandContext, CommandError, Committed};
use bountyline_domain::money::{Currency, Money};
use bountyline_domain::task::{CreateTask, TaskCommand, TaskError};
use bountyline_domain::values::{Description, Priority, ProviderReference, QueueName, Title};
use bountyline_domain::wallet::{WalletCommand, WalletError};
use bountyline_domain::Actor;
use chrono::Utc;
use common::TestApp;
use uuid::Uuid;

fn dollars(whole: i64) -> Money {
    Money::positive(whole * 100, Currency::parse("USD").unwrap()).unwrap()
}

fn deposit(owner: Uuid, whole: i64) -> WalletCommand {
    WalletCommand::Deposit {
        owner,
        reference: ProviderReference::parse(&format!("dep-{}", Uuid::new_v4())).unwrap(),
        money: dollars(whole),
        at: Utc::now(),
    }
}

fn withdraw(owner: Uuid, whole: i64) -> WalletCommand {
    WalletCommand::RequestWithdrawal {
        owner,
        withdrawal_id: Uuid::new_v4(),
        money: dollars(whole),
        actor: Actor::new(owner, vec![]),
        at: Utc::now(),
    }
}

fn assert_short_of_funds(result: Result<Committed, CommandError<WalletError>>) {
    match result {
        Err(CommandError::Domain(WalletError::InsufficientFunds { .. })) => {}
        other => panic!("expected insufficient funds, got {other:?}"),
    }
}

#[tokio::test]
async fn a_process_sees_what_another_process_appended_since_its_last_command() {
    let app = TestApp::spawn().await;
    let (here, there) = (
        CommandBus::new(app.pool.clone()),
        CommandBus::new(app.pool.clone()),
    );
    let ctx = CommandContext::system("aggregate cache test");
    let owner = Uuid::new_v4();

    // `here` remembers the wallet at 100; `there` then deposits 50 more.
    here.wallet(owner, deposit(owner, 100), &ctx)
        .await
        .expect("first deposit");
    there
        .wallet(owner, deposit(owner, 50), &ctx)
        .await
        .expect("second deposit");

    // Deciding on the remembered 100 would refuse this (insufficient funds), and appending
    // after the remembered version would conflict; on the store's 150 it goes through.
    let withdrawn = here
        .wallet(owner, withdraw(owner, 140), &ctx)
        .await
        .expect("the withdrawal sees both deposits");
    assert_eq!(withdrawn.version, 3);

    // And the other way round: `there` remembers 150 but only 10 are left.
    assert_short_of_funds(there.wallet(owner, withdraw(owner, 20), &ctx).await);
    let last = there
        .wallet(owner, withdraw(owner, 10), &ctx)
        .await
        .expect("the rest can go");
    assert_eq!(last.version, 4);
}

#[tokio::test]
async fn a_refused_command_leaves_the_remembered_state_as_the_store_has_it() {
    let app = TestApp::spawn().await;
    let bus = CommandBus::new(app.pool.clone());
    let ctx = CommandContext::system("aggregate cache test");
    let owner = Uuid::new_v4();

    bus.wallet(owner, deposit(owner, 30), &ctx)
        .await
        .expect("deposit");
    assert_short_of_funds(bus.wallet(owner, withdraw(owner, 40), &ctx).await);
    for _ in 0..3 {
        bus.wallet(owner, withdraw(owner, 10), &ctx)
            .await
            .expect("withdrawals within the balance");
    }
    assert_short_of_funds(bus.wallet(owner, withdraw(owner, 1), &ctx).await);
    let (events,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Wallet' AND aggregate_id = $1",
    )
    .bind(owner.to_string())
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(events, 4, "one deposit and three withdrawals, nothing else");
}

/// One process, many commands on one wallet at once (the held load's deposits): each waits
/// for the one before it rather than deciding on a version that is about to pass, so none
/// conflicts, and each decides on the cached state (src/commands/turns.rs).
#[tokio::test]
async fn concurrent_commands_on_one_aggregate_in_one_process_never_conflict() {
    let app = TestApp::spawn().await;
    let bus = CommandBus::new(app.pool.clone());
    let ctx = CommandContext::system("aggregate cache test");
    let owner = Uuid::new_v4();
    bus.wallet(owner, deposit(owner, 1), &ctx)
        .await
        .expect("the wallet's first deposit");

    let results =
        futures::future::join_all((0..32).map(|_| bus.wallet(owner, deposit(owner, 1), &ctx)))
            .await;
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(CommandError::Conflict(_))))
        .count();
    assert_eq!(conflicts, 0, "{conflicts} of 32 deposits conflicted");
    let mut versions: Vec<i64> = results
        .into_iter()
        .map(|r| r.expect("a deposit").version)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=33).collect::<Vec<i64>>());
}

/// How many times this test process loaded a wallet from its cache (`hit`) or from the
/// store's whole history (`miss`).
async fn wallet_loads(app: &TestApp, cache: &str) -> u64 {
    app.counter(&format!(
        "bountyline_aggregate_loads_total{{aggregate=\"Wallet\",cache=\"{cache}\"}}"
    ))
    .await
}

/// A refusal decides no event, so the wallet stays in memory as loaded: the next command on
/// it reads no history (a held load's refused command on a wallet of thousands of events
/// otherwise cost the next one a full replay).
#[tokio::test]
async fn a_refused_command_keeps_the_aggregate_in_memory() {
    let app = TestApp::spawn().await;
    let bus = CommandBus::new(app.pool.clone());
    let ctx = CommandContext::system("aggregate cache test");
    let owner = Uuid::new_v4();

    bus.wallet(owner, deposit(owner, 30), &ctx)
        .await
        .expect("deposit");
    assert_short_of_funds(bus.wallet(owner, withdraw(owner, 40), &ctx).await);
    let after = bus
        .wallet(owner, withdraw(owner, 30), &ctx)
        .await
        .expect("a withdrawal within the balance");
    assert_eq!(after.version, 2);
    assert_eq!(
        wallet_loads(&app, "miss").await,
        1,
        "only the first load reads the store"
    );
    assert_eq!(wallet_loads(&app, "hit").await, 2);
}

/// A wallet keeps only its balances in memory: whether a deposit reference was used before is
/// read from the store, so a repeat is recognised by a process that never saw the first.
#[tokio::test]
async fn a_deposit_repeated_through_another_process_moves_no_money_twice() {
    let app = TestApp::spawn().await;
    let (here, there) = (
        CommandBus::new(app.pool.clone()),
        CommandBus::new(app.pool.clone()),
    );
    let ctx = CommandContext::system("aggregate cache test");
    let owner = Uuid::new_v4();
    let first = deposit(owner, 100);
    let first_answer = here
        .wallet(owner, first.clone(), &ctx)
        .await
        .expect("deposit");
    here.wallet(owner, deposit(owner, 5), &ctx)
        .await
        .expect("another deposit");

    let repeat = there
        .wallet(owner, first.clone(), &ctx)
        .await
        .expect("the repeat is answered, not refused");
    assert_eq!(repeat.version, 2, "the repeat appended nothing");
    assert_ne!(repeat, first_answer);
    let WalletCommand::Deposit { reference, .. } = first else {
        unreachable!()
    };
    let reused = WalletCommand::Deposit {
        owner,
        reference,
        money: dollars(99),
        at: Utc::now(),
    };
    match there.wallet(owner, reused, &ctx).await {
        Err(CommandError::Domain(WalletError::ReferenceReused { .. })) => {}
        other => panic!("expected the reference refused as reused, got {other:?}"),
    }
    // 105 available: withdrawing 106 is refused, 105 goes.
    assert_short_of_funds(there.wallet(owner, withdraw(owner, 106), &ctx).await);
    there
        .wallet(owner, withdraw(owner, 105), &ctx)
        .await
        .expect("the whole balance");
}

fn create_task(task_id: Uuid, creator: Uuid, title: &str) -> TaskCommand {
    TaskCommand::Create(CreateTask {
        task_id,
        queue: QueueName::parse("cache").expect("queue"),
        title: Title::parse(title).expect("title"),
        description: Description::parse("").expect("description"),
        priority: Priority::DEFAULT,
        payload: None,
        max_attempts: 3,
        bounty_id: None,
        actor: Actor::new(creator, vec![]),
        at: Utc::now(),
    })
}

/// A creation is first decided on the empty aggregate without reading the store. Sent to an
/// id that already has events (here from another process), it conflicts at the append and is
/// decided again on the stored task: refused, with nothing appended.
#[tokio::test]
async fn a_creation_sent_to_an_id_that_exists_is_refused_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let (here, there) = (
        CommandBus::new(app.pool.clone()),
        CommandBus::new(app.pool.clone()),
    );
    let ctx = CommandContext::system("aggregate cache test");
    let (task, creator) = (Uuid::now_v7(), Uuid::new_v4());
    let created = here
        .task(task, create_task(task, creator, "the first"), &ctx)
        .await
        .expect("created");
    assert_eq!((created.version, created.created), (1, true));

    match there
        .task(task, create_task(task, creator, "the second"), &ctx)
        .await
    {
        Err(CommandError::Domain(TaskError::AlreadyExists)) => {}
        other => panic!("expected already exists, got {other:?}"),
    }
    let (events,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Task' AND aggregate_id = $1",
    )
    .bind(task.to_string())
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(events, 1);
}

/// Commands on an aggregate this process remembers, and creations, are decided and committed
/// without reading the store first; a refusal is confirmed against the store.
#[tokio::test]
async fn commands_on_remembered_aggregates_commit_without_reading_the_store_first() {
    let app = TestApp::spawn().await;
    let bus = CommandBus::new(app.pool.clone());
    let ctx = CommandContext::system("aggregate cache test");
    let owner = Uuid::new_v4();
    let task = Uuid::now_v7();
    bus.task(task, create_task(task, owner, "remembered"), &ctx)
        .await
        .expect("created");
    bus.wallet(owner, deposit(owner, 30), &ctx)
        .await
        .expect("the wallet's first deposit");
    for _ in 0..3 {
        bus.wallet(owner, deposit(owner, 1), &ctx)
            .await
            .expect("a deposit");
    }
    assert_short_of_funds(bus.wallet(owner, withdraw(owner, 100), &ctx).await);

    let attempts = |outcome: &'static str| {
        let app = &app;
        async move {
            app.counter(&format!(
                "bountyline_aggregate_attempts_total{{outcome=\"{outcome}\"}}"
            ))
            .await
        }
    };
    assert_eq!(
        attempts("committed").await,
        4,
        "the creation and three deposits"
    );
    assert_eq!(attempts("confirmed").await, 1, "the refusal");
    assert_eq!(attempts("decided-again").await, 0);
    assert_eq!(
        wallet_loads(&app, "miss").await,
        1,
        "the wallet's first deposit"
    );
}

/// A wallet two processes append to (the API deposits, the process managers hold) would make
/// most optimistic attempts conflict: once a process has seen another append to it, it reads
/// the store before each command on it instead.
#[tokio::test]
async fn an_aggregate_another_process_appends_to_is_read_before_each_command() {
    let app = TestApp::spawn().await;
    let (here, there) = (
        CommandBus::new(app.pool.clone()),
        CommandBus::new(app.pool.clone()),
    );
    let ctx = CommandContext::system("aggregate cache test");
    let owner = Uuid::new_v4();
    let mut versions = Vec::new();
    for _ in 0..4 {
        for bus in [&here, &there] {
            let deposited = bus
                .wallet(owner, deposit(owner, 1), &ctx)
                .await
                .expect("a deposit");
            versions.push(deposited.version);
        }
    }
    assert_eq!(versions, (1..=8).collect::<Vec<i64>>());
    let again = app
        .counter("bountyline_aggregate_attempts_total{outcome=\"decided-again\"}")
        .await;
    assert_eq!(again, 2, "one conflict in each process, then none");
}

/// Two processes racing on one wallet conflict now and then (each retries); a conflict keeps
/// the state the losing command was decided on, so no command replays the wallet from its
/// first event: each process reads the whole wallet once.
#[tokio::test]
async fn a_conflict_leaves_the_aggregate_remembered_as_it_was_loaded() {
    let app = TestApp::spawn().await;
    let (here, there) = (
        CommandBus::new(app.pool.clone()),
        CommandBus::new(app.pool.clone()),
    );
    let ctx = CommandContext::system("aggregate cache test");
    let owner = Uuid::new_v4();
    let conflicts = || async {
        app.counter("bountyline_command_conflicts_retried_total{aggregate=\"Wallet\"}")
            .await
    };
    let mut rounds = 0;
    while conflicts().await == 0 {
        rounds += 1;
        assert!(rounds <= 50, "no conflict in 50 rounds of racing deposits");
        let racing = [&here, &there]
            .into_iter()
            .flat_map(|bus| (0..8).map(|_| bus.wallet(owner, deposit(owner, 1), &ctx)));
        for deposited in futures::future::join_all(racing).await {
            deposited.expect("a deposit, after retries if it lost a race");
        }
    }
    assert_eq!(
        wallet_loads(&app, "miss").await,
        2,
        "one whole read of the wallet per process"
    );
}
