//! Contract tests every transport must pass: the same functions run against the in-process
//! bus and against RabbitMQ (`GLANCE_TEST_AMQP_URL`, started by `scripts/test.sh`).

use std::sync::Arc;
use std::time::Duration;

use glance_bus::{serve, Amqp, Bus, BusError, InProcess, Router, Transport};
use glance_proto::Rpc;
use serde::{Deserialize, Serialize};

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

async fn amqp() -> Option<Arc<dyn Transport>> {
    match std::env::var("GLANCE_TEST_AMQP_URL") {
        Ok(url) => Some(Arc::new(
            Amqp::connect(&url, 32).await.expect("connect to RabbitMQ"),
        )),
        Err(_) if std::env::var("GLANCE_REQUIRE_RABBITMQ").as_deref() == Ok("1") => {
            panic!("GLANCE_REQUIRE_RABBITMQ=1 but GLANCE_TEST_AMQP_URL is unset")
        }
        Err(_) => {
            eprintln!("GLANCE_TEST_AMQP_URL unset: RabbitMQ contract tests not run (scripts/test.sh sets it)");
            None
        }
    }
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
                    if let Some(t) = amqp().await {
                        super::$name(t).await;
                    }
                }
            )+
        }
    };
}

contract!(
    a_request_gets_its_typed_reply,
    many_concurrent_requests_each_get_their_own_reply,
    a_request_nobody_can_handle_fails_fast_or_times_out,
);

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
        if let Some(t) = amqp().await {
            super::a_broadcast_reaches_every_subscriber_of_its_topic(t).await;
        }
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
