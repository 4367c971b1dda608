//! Contract tests every transport must pass. The AMQP transport runs the same functions.

use std::sync::Arc;
use std::time::Duration;

use glance_bus::{serve, Bus, InProcess, Router, Transport};
use glance_proto::Rpc;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Double(u64);

impl Rpc for Double {
    const NAME: &'static str = "test.double";
    const QUEUE: &'static str = "test.contract";
    type Reply = u64;
}

#[derive(Debug, Serialize, Deserialize)]
struct Unrouted;

impl Rpc for Unrouted {
    const NAME: &'static str = "test.unrouted";
    const QUEUE: &'static str = "test.contract";
    type Reply = ();
}

fn start_server(transport: Arc<dyn Transport>) {
    let router = Router::new().route::<Double, _, _>(|Double(n)| async move { n * 2 });
    tokio::spawn(async move { serve(transport, Double::QUEUE, router, 8).await });
}

#[tokio::test]
async fn a_request_gets_its_typed_reply() {
    let transport: Arc<dyn Transport> = Arc::new(InProcess::new());
    start_server(transport.clone());
    let bus = Bus::new(transport);
    assert_eq!(bus.call(Some("req-1".into()), &Double(21)).await.unwrap(), 42);
}

#[tokio::test]
async fn many_concurrent_requests_each_get_their_own_reply() {
    let transport: Arc<dyn Transport> = Arc::new(InProcess::new());
    start_server(transport.clone());
    start_server(transport.clone());
    let bus = Bus::new(transport);
    let calls = (0..500u64).map(|n| {
        let bus = bus.clone();
        async move { (n, bus.call(None, &Double(n)).await.unwrap()) }
    });
    for (n, reply) in futures::future::join_all(calls).await {
        assert_eq!(reply, n * 2);
    }
}

#[tokio::test]
async fn a_request_nobody_answers_times_out() {
    let transport: Arc<dyn Transport> = Arc::new(InProcess::new());
    start_server(transport.clone());
    let bus = Bus::new(transport).with_timeout(Duration::from_millis(200));
    let err = bus.call(None, &Unrouted).await.unwrap_err();
    assert!(
        matches!(err, glance_bus::BusError::Timeout { .. } | glance_bus::BusError::Unavailable(_)),
        "{err:?}"
    );
}
