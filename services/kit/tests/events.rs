//! The outbox, relay and inbox against the real Postgres and broker: 1,000 events written in
//! committed transactions take effect exactly once at a consumer, whatever stops half-way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cobro_kit::config::KafkaConfig;
use cobro_kit::events::{
    Consumer, ConsumerConfig, ConsumerStats, EventHandler, HandlerError, NewEvent, Relay, RelayConfig, enqueue,
};
use cobro_kit::testing::{TansuBroker, TestDb, eventually, no_migrations, unique_topic};
use cobro_proto::events::v1::Envelope;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const EVENTS: i64 = 1_000;
const EVENTS_U64: u64 = EVENTS.unsigned_abs();

/// Applies an event by counting it in `applied`: a second application of one event would show
/// as `times = 2`. It also keeps the order of first applications, with the event's number (its
/// payload), to check each aggregate's events apply in the order they were written.
struct CountingHandler;

impl EventHandler for CountingHandler {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let id = Uuid::parse_str(&event.id).map_err(|e| HandlerError::Permanent(e.to_string()))?;
        let n = <[u8; 8]>::try_from(event.payload.as_slice()).map_or(-1, i64::from_be_bytes);
        sqlx::query(
            "INSERT INTO applied (event_id, event_type, aggregate, n) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1",
        )
        .bind(id)
        .bind(&event.r#type)
        .bind(&event.aggregate_id)
        .bind(n)
        .execute(conn)
        .await?;
        Ok(())
    }
}

async fn setup() -> TestDb {
    let db = TestDb::new(&no_migrations()).await;
    sqlx::query(
        "CREATE TABLE applied (seq BIGINT GENERATED ALWAYS AS IDENTITY, event_id UUID PRIMARY KEY, \
         event_type TEXT NOT NULL, aggregate TEXT NOT NULL, n BIGINT NOT NULL, times INT NOT NULL DEFAULT 1)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

/// Write `count` events, `per_tx` to a committed transaction, starting at `first`.
async fn write_events(pool: &PgPool, topic: &str, first: i64, count: i64, per_tx: i64) {
    let tenant = Uuid::now_v7();
    let mut n = first;
    while n < first + count {
        let mut tx = pool.begin().await.unwrap();
        for _ in 0..per_tx.min(first + count - n) {
            let event = NewEvent {
                event_type: "test.happened".into(),
                tenant_id: tenant,
                aggregate_id: format!("agg-{}", n % 17),
                payload: n.to_be_bytes().to_vec(),
            };
            enqueue(&mut tx, topic, event).await.unwrap();
            n += 1;
        }
        tx.commit().await.unwrap();
    }
}

fn start_relay(pool: &PgPool, kafka: &KafkaConfig, batch_size: i64) -> (CancellationToken, JoinHandle<()>) {
    start_relay_with(pool, kafka, RelayConfig { batch_size, ..RelayConfig::default() })
}

fn start_relay_with(pool: &PgPool, kafka: &KafkaConfig, config: RelayConfig) -> (CancellationToken, JoinHandle<()>) {
    let relay = Relay::new(pool.clone(), kafka, config).unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(relay.run(stop.clone()));
    (stop, handle)
}

fn start_consumer(
    pool: &PgPool,
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    commit_interval: Duration,
) -> (CancellationToken, JoinHandle<()>, Arc<ConsumerStats>) {
    let mut config = ConsumerConfig::new(group, vec![topic.to_owned()]);
    config.commit_interval = commit_interval;
    let consumer = Consumer::new(pool.clone(), kafka, config, CountingHandler).unwrap();
    let stats = consumer.stats();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(consumer.run(stop.clone()));
    (stop, handle, stats)
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Every written event applied, none twice, and every outbox row marked published.
async fn assert_exactly_once(pool: &PgPool, expected: i64) {
    let done = eventually(Duration::from_secs(120), || async {
        count(pool, "SELECT count(*) FROM applied").await >= expected
    })
    .await;
    assert!(done, "only {} of {expected} events applied", count(pool, "SELECT count(*) FROM applied").await);
    assert_eq!(count(pool, "SELECT count(*) FROM applied").await, expected);
    assert_eq!(count(pool, "SELECT count(*) FROM applied WHERE times > 1").await, 0, "an event was applied twice");
    assert_eq!(count(pool, "SELECT count(*) FROM outbox WHERE published_at IS NULL").await, 0);
    assert_eq!(count(pool, "SELECT count(*) FROM inbox").await, expected);
}

/// Each aggregate's events were first applied in the order they were written.
async fn assert_in_order_per_aggregate(pool: &PgPool) {
    let out_of_order = count(
        pool,
        "SELECT count(*) FROM (SELECT n, lag(n) OVER (PARTITION BY aggregate ORDER BY seq) AS prev FROM applied) x \
         WHERE prev > n",
    )
    .await;
    assert_eq!(out_of_order, 0, "events of one aggregate were applied out of order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_stopped_half_way_and_restarted_loses_and_repeats_nothing() {
    let db = setup().await;
    let kafka = cobro_kit::testing::kafka();
    let topic = unique_topic(&kafka, "relay-restart").await;
    let group = format!("g-{}", Uuid::now_v7());
    let (consumer_stop, consumer, stats) = start_consumer(&db.pool, &kafka, &group, &topic, Duration::from_millis(200));

    write_events(&db.pool, &topic, 0, EVENTS, 10).await;
    // Another transaction holds row 601: the relay publishes batches up to the one holding it,
    // sends that batch to the broker and then waits to mark it published. That is where it is
    // killed, so the kill lands between the broker's ack and the database update every time.
    let mut locker = db.pool.begin().await.unwrap();
    let locker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *locker).await.unwrap();
    // Found first and locked by its key: a locking read with OFFSET would lock the skipped rows too.
    let held: i64 =
        sqlx::query_scalar("SELECT seq FROM outbox ORDER BY seq OFFSET 600 LIMIT 1").fetch_one(&db.pool).await.unwrap();
    sqlx::query("SELECT seq FROM outbox WHERE seq = $1 FOR UPDATE").bind(held).execute(&mut *locker).await.unwrap();
    let (relay_stop, relay) = start_relay(&db.pool, &kafka, 50);
    let blocked_relay = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE 'UPDATE outbox%'",
        )
        .bind(locker_pid)
        .fetch_optional(&db.pool)
        .await
        .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(60), || async { blocked_relay().await.is_some() }).await,
        "the relay never reached the held row"
    );
    relay.abort();
    let _ = relay.await;
    relay_stop.cancel();
    let relay_pid = blocked_relay().await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(relay_pid).execute(&db.pool).await.unwrap();
    let gone = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(relay_pid)
            .fetch_one(&db.pool)
            .await
            .unwrap()
            == 0
    })
    .await;
    assert!(gone, "the killed relay's connection is still there");
    locker.rollback().await.unwrap();
    let published = count(&db.pool, "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL").await;
    assert_eq!(published, 600, "the relay should have marked exactly the batches before the held row");

    // The killed batch was acknowledged by the broker but never marked; widen that to the last
    // 100 marked rows too, so 150 events in all are sent a second time.
    sqlx::query(
        "UPDATE outbox SET published_at = NULL WHERE seq IN \
         (SELECT seq FROM outbox WHERE published_at IS NOT NULL ORDER BY seq DESC LIMIT 100)",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let (relay_stop, relay) = start_relay(&db.pool, &kafka, 50);
    assert_exactly_once(&db.pool, EVENTS).await;
    let redelivered = eventually(Duration::from_secs(30), || async { stats.duplicates() >= 150 }).await;
    assert!(redelivered, "the republished events never reached the consumer (duplicates = {})", stats.duplicates());
    assert_in_order_per_aggregate(&db.pool).await;

    relay_stop.cancel();
    consumer_stop.cancel();
    let _ = tokio::join!(relay, consumer);
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_down_for_ten_seconds_while_writes_go_on() {
    let db = setup().await;
    let mut broker = TansuBroker::start().await;
    let kafka = broker.kafka();
    let topic = unique_topic(&kafka, "broker-down").await;
    let group = format!("g-{}", Uuid::now_v7());
    let (consumer_stop, consumer, _stats) =
        start_consumer(&db.pool, &kafka, &group, &topic, Duration::from_millis(200));
    // Deliveries give up after 2 s, well inside the outage, so the relay really sees sends
    // fail and must leave those rows pending.
    let config = RelayConfig { batch_size: 100, delivery_timeout: Duration::from_secs(2), ..RelayConfig::default() };
    let (relay_stop, relay) = start_relay_with(&db.pool, &kafka, config);

    write_events(&db.pool, &topic, 0, EVENTS / 2, 10).await;
    let some =
        eventually(Duration::from_secs(60), || async { count(&db.pool, "SELECT count(*) FROM applied").await > 0 })
            .await;
    assert!(some, "nothing arrived before the broker was stopped");

    broker.kill();
    // Writes go on while the broker is away: they are committed to the outbox and wait there.
    let writer = {
        let pool = db.pool.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            for i in 0..10 {
                write_events(&pool, &topic, EVENTS / 2 + i * 50, 50, 10).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pending = count(&db.pool, "SELECT count(*) FROM outbox WHERE published_at IS NULL").await;
    assert!(pending > 0, "events written while the broker was down should be waiting in the outbox");
    broker.restart().await;
    writer.await.unwrap();

    assert_exactly_once(&db.pool, EVENTS).await;
    relay_stop.cancel();
    consumer_stop.cancel();
    let _ = tokio::join!(relay, consumer);
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_crash_after_handler_commit_before_offset_commit() {
    let db = setup().await;
    let kafka = cobro_kit::testing::kafka();
    let topic = unique_topic(&kafka, "consumer-crash").await;
    let group = format!("g-{}", Uuid::now_v7());

    // The first half exists before the crash, the second half only after it, so the crash
    // lands at a known point whatever the machine's speed.
    write_events(&db.pool, &topic, 0, EVENTS / 2, 25).await;
    let (relay_stop, relay) = start_relay(&db.pool, &kafka, 200);

    // Offsets are never committed by the first consumer: everything it applied is, as far as
    // the broker knows, unconsumed when it dies.
    let (_stop, first, first_stats) = start_consumer(&db.pool, &kafka, &group, &topic, Duration::from_secs(3600));
    let half = eventually(Duration::from_secs(60), || async { first_stats.handled() >= EVENTS_U64 / 2 }).await;
    assert!(half, "the first consumer handled only {}", first_stats.handled());
    first.abort();
    let _ = first.await;
    let applied_before_crash = count(&db.pool, "SELECT count(*) FROM applied").await;
    assert_eq!(applied_before_crash, EVENTS / 2);
    write_events(&db.pool, &topic, EVENTS / 2, EVENTS / 2, 25).await;

    let (second_stop, second, second_stats) =
        start_consumer(&db.pool, &kafka, &group, &topic, Duration::from_millis(200));
    assert_exactly_once(&db.pool, EVENTS).await;
    assert!(
        second_stats.duplicates() >= u64::try_from(applied_before_crash).unwrap(),
        "redelivered events should be recognised by the inbox: {} duplicates for {applied_before_crash} applied before the crash",
        second_stats.duplicates()
    );
    assert_in_order_per_aggregate(&db.pool).await;

    relay_stop.cancel();
    second_stop.cancel();
    let _ = tokio::join!(relay, second);
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_transaction_publishes_nothing() {
    let db = setup().await;
    let kafka = cobro_kit::testing::kafka();
    let topic = unique_topic(&kafka, "rollback").await;
    let tenant = Uuid::now_v7();

    let mut tx = db.pool.begin().await.unwrap();
    for i in 0..5 {
        let event = NewEvent {
            event_type: "test.rolled_back".into(),
            tenant_id: tenant,
            aggregate_id: format!("a{i}"),
            payload: vec![],
        };
        enqueue(&mut tx, &topic, event).await.unwrap();
    }
    tx.rollback().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let marker =
        NewEvent { event_type: "test.committed".into(), tenant_id: tenant, aggregate_id: "m".into(), payload: vec![] };
    enqueue(&mut tx, &topic, marker).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, 1);
    let (relay_stop, relay) = start_relay(&db.pool, &kafka, 50);
    let group = format!("g-{}", Uuid::now_v7());
    let (consumer_stop, consumer, stats) = start_consumer(&db.pool, &kafka, &group, &topic, Duration::from_millis(200));
    assert!(eventually(Duration::from_secs(60), || async { stats.handled() >= 1 }).await);
    // Give a straggler time to show up if one were there.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let types: Vec<String> = sqlx::query_scalar("SELECT event_type FROM applied").fetch_all(&db.pool).await.unwrap();
    assert_eq!(types, vec!["test.committed".to_owned()]);

    relay_stop.cancel();
    consumer_stop.cancel();
    let _ = tokio::join!(relay, consumer);
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_is_recorded_and_skipped() {
    struct Picky;
    impl EventHandler for Picky {
        async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
            if event.r#type == "test.poison" {
                return Err(HandlerError::Permanent("unknown invoice".into()));
            }
            CountingHandler.handle(conn, event).await
        }
    }
    let db = setup().await;
    let kafka = cobro_kit::testing::kafka();
    let topic = unique_topic(&kafka, "reject").await;
    let tenant = Uuid::now_v7();
    let mut tx = db.pool.begin().await.unwrap();
    for t in ["test.poison", "test.fine"] {
        let event = NewEvent { event_type: t.into(), tenant_id: tenant, aggregate_id: "x".into(), payload: vec![] };
        enqueue(&mut tx, &topic, event).await.unwrap();
    }
    tx.commit().await.unwrap();

    let (relay_stop, relay) = start_relay(&db.pool, &kafka, 50);
    let consumer = Consumer::new(
        db.pool.clone(),
        &kafka,
        ConsumerConfig::new(format!("g-{}", Uuid::now_v7()), vec![topic.clone()]),
        Picky,
    )
    .unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(consumer.run(stop.clone()));
    assert!(
        eventually(Duration::from_secs(60), || async { count(&db.pool, "SELECT count(*) FROM applied").await == 1 })
            .await
    );
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM inbox WHERE outcome = 'rejected'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(reason, "unknown invoice");

    relay_stop.cancel();
    stop.cancel();
    let _ = tokio::join!(relay, handle);
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_relay_leads_per_schema() {
    let db = setup().await;
    let kafka = cobro_kit::testing::kafka();
    let a = Relay::new(db.pool.clone(), &kafka, RelayConfig::default()).unwrap();
    let b = Relay::new(db.pool.clone(), &kafka, RelayConfig::default()).unwrap();
    let leader = a.try_lead().await.unwrap();
    assert!(leader.is_some());
    assert!(b.try_lead().await.unwrap().is_none(), "two relays led the same outbox");
    drop(leader);
    // Closing the leader's connection releases the lock for the other replica.
    assert!(eventually(Duration::from_secs(10), || async { b.try_lead().await.unwrap().is_some() }).await);
    db.drop_schema().await;
}

/// The trace that wrote an event continues in the handler that applies it, across the outbox,
/// the relay and the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_travels_from_writer_to_handler() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing::Instrument as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    struct RecordTrace;
    impl EventHandler for RecordTrace {
        async fn handle(&self, conn: &mut PgConnection, _event: &Envelope) -> Result<(), HandlerError> {
            let seen = cobro_kit::telemetry::current_traceparent().unwrap_or_default();
            sqlx::query("INSERT INTO seen (traceparent) VALUES ($1)").bind(seen).execute(conn).await?;
            Ok(())
        }
    }

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let db = TestDb::new(&no_migrations()).await;
    sqlx::query("CREATE TABLE seen (traceparent TEXT NOT NULL)").execute(&db.pool).await.unwrap();
    let kafka = cobro_kit::testing::kafka();
    let topic = unique_topic(&kafka, "trace").await;

    let span = tracing::info_span!("issue_invoice");
    let written = async {
        let writer = cobro_kit::telemetry::current_traceparent().unwrap();
        let mut tx = db.pool.begin().await.unwrap();
        let event = NewEvent {
            event_type: "test.traced".into(),
            tenant_id: Uuid::now_v7(),
            aggregate_id: "inv".into(),
            payload: vec![],
        };
        enqueue(&mut tx, &topic, event).await.unwrap();
        tx.commit().await.unwrap();
        writer
    }
    .instrument(span)
    .await;
    let trace_id = written.split('-').nth(1).unwrap().to_owned();

    let (relay_stop, relay) = start_relay(&db.pool, &kafka, 10);
    let consumer = Consumer::new(
        db.pool.clone(),
        &kafka,
        ConsumerConfig::new(format!("g-{}", Uuid::now_v7()), vec![topic]),
        RecordTrace,
    )
    .unwrap();
    let stop = CancellationToken::new();
    let handle = tokio::spawn(consumer.run(stop.clone()));
    assert!(
        eventually(Duration::from_secs(60), || async { count(&db.pool, "SELECT count(*) FROM seen").await == 1 }).await
    );
    let seen: String = sqlx::query_scalar("SELECT traceparent FROM seen").fetch_one(&db.pool).await.unwrap();
    assert_eq!(seen.split('-').nth(1), Some(trace_id.as_str()), "the handler ran outside the writer's trace: {seen}");
    assert_ne!(seen, written, "the handler should have a span of its own in that trace");

    relay_stop.cancel();
    stop.cancel();
    let _ = tokio::join!(relay, handle);
    db.drop_schema().await;
}
