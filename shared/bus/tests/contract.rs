//! Contract tests every transport must pass: the same functions run against the in-process
//! bus and against RabbitMQ (`GLANCE_TEST_AMQP_URL`, started by `scripts/test.sh`).

use std::sync::Arc;
use std::time::Duration;

use glance_bus::{consume_work, Outcome};
use glance_bus::{serve, Amqp, Bus, BusError, InProcess, Router, Transport};
use glance_proto::{Event, Rpc, Work};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Double(u64);

impl Rpc for Double {
    const NAME: &'static str = "test.double";
    const QUEUE: &'static str = "glance.test.contract";
    type Reply = u64;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unrouted;

impl Rpc for Unrouted {
    const NAME: &'static str = "test.unrouted";
    const QUEUE: &'static str = "glance.test.contract";
    type Reply = ();
}

async fn start_server(transport: Arc<dyn Transport>) {
    let router = Router::new().route::<Double, _, _>(|Double(n)| async move { n * 2 });
    // Subscribe before returning so no request is published to an empty queue.
    let sub = transport.subscribe(Double::QUEUE).await.unwrap();
    tokio::spawn(async move { glance_bus::router::serve_subscription(sub, router, 8).await });
}

async fn a_request_gets_its_typed_reply(transport: Arc<dyn Transport>) {
    start_server(transport.clone()).await;
    let bus = Bus::new(transport);
    assert_eq!(
        bus.call(Some("req-1".into()), &Double(21)).await.unwrap(),
        42
    );
}

async fn many_concurrent_requests_each_get_their_own_reply(transport: Arc<dyn Transport>) {
    start_server(transport.clone()).await;
    start_server(transport.clone()).await;
    let bus = Bus::new(transport);
    let calls = (0..300u64).map(|n| {
        let bus = bus.clone();
        async move { (n, bus.call(None, &Double(n)).await.unwrap()) }
    });
    for (n, reply) in futures::future::join_all(calls).await {
        assert_eq!(reply, n * 2);
    }
}

async fn a_request_nobody_can_handle_fails_fast_or_times_out(transport: Arc<dyn Transport>) {
    start_server(transport.clone()).await;
    let bus = Bus::new(transport).with_timeout(Duration::from_millis(500));
    let err = bus.call(None, &Unrouted).await.unwrap_err();
    assert!(
        matches!(err, BusError::Timeout { .. } | BusError::Unavailable(_)),
        "{err:?}"
    );
}

/// The test broker: unconfigured, the RabbitMQ half of a contract test fails rather than
/// passing untested.
async fn amqp() -> Arc<dyn Transport> {
    let url = std::env::var("GLANCE_TEST_AMQP_URL")
        .expect("GLANCE_TEST_AMQP_URL is unset: run ./scripts/test.sh (it starts RabbitMQ)");
    Arc::new(Amqp::connect(&url, 32).await.expect("connect to RabbitMQ"))
}

macro_rules! contract {
    ($($name:ident),+ $(,)?) => {
        mod in_process {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(Arc::new(InProcess::new())).await;
                }
            )+
        }
        mod rabbitmq {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(amqp().await).await;
                }
            )+
        }
    };
}

contract!(
    a_request_gets_its_typed_reply,
    many_concurrent_requests_each_get_their_own_reply,
    a_request_nobody_can_handle_fails_fast_or_times_out,
    competing_workers_handle_each_item_once,
    work_nobody_is_bound_to_is_refused,
    work_for_all_reaches_every_bound_queue_and_work_for_one_only_it,
    failed_work_is_retried_and_abandoned_work_redelivered,
    events_reach_matching_subscribers_and_shared_queues_once,
);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item(u64);

impl Work for Item {
    const NAME: &'static str = "test.item";
}

/// Names unique to one test run: RabbitMQ keeps durable queues between runs.
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

type Seen = Arc<Mutex<HashMap<u64, u32>>>;

fn start_worker(
    transport: &Arc<dyn Transport>,
    sub: Box<dyn glance_bus::Subscription>,
    seen: Seen,
) -> tokio::sync::watch::Sender<bool> {
    let _ = transport;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(consume_work(sub, 4, stop, move |Item(n), _headers| {
        let seen = seen.clone();
        async move {
            *seen.lock().unwrap().entry(n).or_default() += 1;
            // Work takes time, so one worker cannot drain the queue before the other
            // has taken anything.
            tokio::time::sleep(Duration::from_millis(2)).await;
            Outcome::Done
        }
    }));
    stop_tx
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn competing_workers_handle_each_item_once(transport: Arc<dyn Transport>) {
    let queue = unique("glance.test.work.");
    let key = unique("test.work.");
    transport
        .declare_work_queue(&queue, std::slice::from_ref(&key))
        .await
        .unwrap();
    let (a, b): (Seen, Seen) = (Arc::default(), Arc::default());
    let _stop_a = start_worker(
        &transport,
        transport.subscribe(&queue).await.unwrap(),
        a.clone(),
    );
    let _stop_b = start_worker(
        &transport,
        transport.subscribe(&queue).await.unwrap(),
        b.clone(),
    );
    let bus = Bus::new(transport.clone());
    for n in 0..200 {
        bus.publish_work(&key, None, &Item(n)).await.unwrap();
    }
    let total = || a.lock().unwrap().len() + b.lock().unwrap().len();
    wait_for("200 items", || total() >= 200).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (a, b) = (a.lock().unwrap(), b.lock().unwrap());
    for n in 0..200 {
        let times = a.get(&n).copied().unwrap_or(0) + b.get(&n).copied().unwrap_or(0);
        assert_eq!(times, 1, "item {n} handled {times} times");
    }
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both workers should have had a share"
    );
}

async fn work_nobody_is_bound_to_is_refused(transport: Arc<dyn Transport>) {
    let bus = Bus::new(transport);
    let err = bus
        .publish_work(&unique("test.nobody."), None, &Item(1))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::NoRoute(_)), "{err:?}");
}

async fn work_for_all_reaches_every_bound_queue_and_work_for_one_only_it(
    transport: Arc<dyn Transport>,
) {
    let prefix = unique("test.fanout");
    let all = format!("{prefix}.all");
    let mut seen = Vec::new();
    let mut stops = Vec::new();
    for node in ["n1", "n2"] {
        let queue = unique(&format!("glance.test.{node}."));
        transport
            .declare_work_queue(&queue, &[all.clone(), format!("{prefix}.{node}")])
            .await
            .unwrap();
        let s: Seen = Arc::default();
        stops.push(start_worker(
            &transport,
            transport.subscribe(&queue).await.unwrap(),
            s.clone(),
        ));
        seen.push(s);
    }
    let bus = Bus::new(transport.clone());
    bus.publish_work(&all, None, &Item(1)).await.unwrap();
    bus.publish_work(&format!("{prefix}.n2"), None, &Item(2))
        .await
        .unwrap();
    wait_for("fan-out", || {
        seen[0].lock().unwrap().len() == 1 && seen[1].lock().unwrap().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*seen[0].lock().unwrap(), HashMap::from([(1, 1)]));
    assert_eq!(*seen[1].lock().unwrap(), HashMap::from([(1, 1), (2, 1)]));
}

async fn failed_work_is_retried_and_abandoned_work_redelivered(transport: Arc<dyn Transport>) {
    let queue = unique("glance.test.retry.");
    let key = unique("test.retry.");
    transport
        .declare_work_queue(&queue, std::slice::from_ref(&key))
        .await
        .unwrap();
    let bus = Bus::new(transport.clone());
    bus.publish_work(&key, None, &Item(7)).await.unwrap();

    // A worker takes the item and dies without settling it.
    let mut doomed = transport.subscribe(&queue).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), doomed.next())
        .await
        .expect("the item is delivered")
        .unwrap();
    assert_eq!(delivery.envelope.headers.kind, Item::NAME);
    drop(delivery);
    drop(doomed);

    // The next worker fails once, then succeeds: the item is seen twice and settled.
    let attempts: Seen = Arc::default();
    let counted = attempts.clone();
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let sub = transport.subscribe(&queue).await.unwrap();
    tokio::spawn(consume_work(sub, 1, stop, move |Item(n), _| {
        let counted = counted.clone();
        async move {
            let mut seen = counted.lock().unwrap();
            let times = seen.entry(n).or_default();
            *times += 1;
            if *times == 1 {
                Outcome::Retry("first try fails".into())
            } else {
                Outcome::Done
            }
        }
    }));
    wait_for("a retry", || attempts.lock().unwrap().get(&7) == Some(&2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        attempts.lock().unwrap().get(&7),
        Some(&2),
        "settled after the retry"
    );
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Happened {
    topic: String,
    n: u64,
}

impl Event for Happened {
    fn topic(&self) -> &str {
        &self.topic
    }
}

async fn events_reach_matching_subscribers_and_shared_queues_once(transport: Arc<dyn Transport>) {
    let root = unique("ev");
    let collect = |mut sub: Box<dyn glance_bus::Subscription>, into: Arc<Mutex<Vec<String>>>| {
        tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                into.lock().unwrap().push(d.envelope.headers.kind.clone());
                d.responder.ack().await.unwrap();
            }
        });
    };
    let wide: Arc<Mutex<Vec<String>>> = Arc::default();
    let narrow: Arc<Mutex<Vec<String>>> = Arc::default();
    let shared: Arc<Mutex<Vec<String>>> = Arc::default();
    collect(
        transport
            .subscribe_events(&[format!("{root}.#")], None)
            .await
            .unwrap(),
        wide.clone(),
    );
    collect(
        transport
            .subscribe_events(&[format!("{root}.image.delete")], None)
            .await
            .unwrap(),
        narrow.clone(),
    );
    let queue = unique("glance.test.events.");
    for _ in 0..2 {
        collect(
            transport
                .subscribe_events(&[format!("{root}.image.*")], Some(&queue))
                .await
                .unwrap(),
            shared.clone(),
        );
    }
    let bus = Bus::new(transport.clone());
    for (n, what) in ["image.create", "image.delete", "image.member.create"]
        .iter()
        .enumerate()
    {
        let event = Happened {
            topic: format!("{root}.{what}"),
            n: n as u64,
        };
        bus.publish_event(None, &event).await.unwrap();
    }
    wait_for("events", || wide.lock().unwrap().len() == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *narrow.lock().unwrap(),
        vec![format!("{root}.image.delete")]
    );
    let mut shared = shared.lock().unwrap().clone();
    shared.sort();
    assert_eq!(
        shared,
        vec![
            format!("{root}.image.create"),
            format!("{root}.image.delete")
        ],
        "a shared queue gets one copy, whichever subscriber takes it"
    );
}

#[tokio::test]
async fn serve_returns_when_the_subscription_fails() {
    // `serve` itself is what services call; make sure it subscribes and runs.
    let transport: Arc<dyn Transport> = Arc::new(InProcess::new());
    let router = Router::new().route::<Double, _, _>(|Double(n)| async move { n + 1 });
    let t = transport.clone();
    tokio::spawn(async move { serve(t, Double::QUEUE, router, 1).await });
    let bus = Bus::new(transport);
    assert_eq!(bus.call(None, &Double(1)).await.unwrap(), 2);
}

async fn a_broadcast_reaches_every_subscriber_of_its_topic(transport: Arc<dyn Transport>) {
    let topic = format!("control.test{}.all", std::process::id());
    for i in 0..3u64 {
        let mut sub = transport
            .subscribe_topics(std::slice::from_ref(&topic))
            .await
            .unwrap();
        tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                let reply = d.envelope.reply(&i).unwrap();
                d.responder.reply(reply).await.unwrap();
            }
        });
    }
    let mut other = transport
        .subscribe_topics(&["control.elsewhere.all".into()])
        .await
        .unwrap();
    tokio::spawn(async move { while other.next().await.is_some() {} });
    let req = glance_proto::Envelope::new("test.status", None, &()).unwrap();
    let replies = transport
        .scatter(&topic, req, Duration::from_millis(1500))
        .await
        .unwrap();
    let mut got: Vec<u64> = replies
        .iter()
        .map(|r| serde_json::from_value(r.payload.clone()).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec![0, 1, 2]);
}

mod broadcast_in_process {
    use super::*;
    #[tokio::test(flavor = "multi_thread")]
    async fn a_broadcast_reaches_every_subscriber_of_its_topic() {
        super::a_broadcast_reaches_every_subscriber_of_its_topic(Arc::new(InProcess::new())).await;
    }
}

mod broadcast_rabbitmq {
    use super::*;
    #[tokio::test(flavor = "multi_thread")]
    async fn a_broadcast_reaches_every_subscriber_of_its_topic() {
        super::a_broadcast_reaches_every_subscriber_of_its_topic(amqp().await).await;
    }
}

#[tokio::test]
async fn an_inline_router_answers_with_the_same_result_without_a_consumer() {
    let bus_side = InProcess::new();
    bus_side.serve_inline(
        Double::QUEUE,
        Router::new().route::<Double, _, _>(|Double(n)| async move { n * 3 }),
    );
    let transport: Arc<dyn Transport> = Arc::new(bus_side);
    let bus = Bus::new(transport.clone());
    assert_eq!(bus.call(None, &Double(5)).await.unwrap(), 15);
    // The serialized path through the same transport gives the same answer.
    let env = glance_proto::Envelope::new(Double::NAME, None, &Double(5)).unwrap();
    let reply = transport
        .request(Double::QUEUE, env, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(serde_json::from_value::<u64>(reply.payload).unwrap(), 15);
}
