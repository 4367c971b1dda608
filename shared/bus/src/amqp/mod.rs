//! The AMQP transport (RabbitMQ), for the distributed mode.
//!
//! * Work queues are durable, with a dead-letter queue `<queue>.dead` for messages that
//!   cannot be handled or that failed `MAX_ATTEMPTS` times.
//! * Every publish waits for the broker's confirm.
//! * A delivery is acked only when its handler has replied or acked, so a consumer that
//!   dies mid-work leaves the message to be redelivered to another.
//! * Requests carry `reply_to` (this process's exclusive reply queue) and a correlation id;
//!   a request whose caller has given up expires in the queue instead of being served late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use glance_proto::names::{EVENTS_EXCHANGE, WORK_EXCHANGE};
use glance_proto::Envelope;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::oneshot;

mod delivery;

use delivery::{bind, declare_private, AmqpSubscription, Source};

use crate::{BusError, Subscription, Transport};

/// How many times a message may fail before it is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 5;
const ATTEMPT_HEADER: &str = "x-glance-attempt";

/// Longest a connection, or a subscription on it, may take to set up. A broker that accepts
/// the socket but never finishes the handshake (one still booting, say) must not hold the
/// link, and with it every caller and every re-subscription, forever.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Control broadcasts go through this topic exchange; each process binds its own queue.
pub const CONTROL_EXCHANGE: &str = "glance.control";

enum Waiter {
    One(oneshot::Sender<Envelope>),
    Many(tokio::sync::mpsc::UnboundedSender<Envelope>),
}

type Pending = Arc<Mutex<HashMap<String, Waiter>>>;

/// One live connection with its publishing channel and this process's reply queue.
struct Link {
    conn: Connection,
    /// Confirmed publishing, for messages that carry work.
    publisher: Channel,
    /// Unconfirmed publishing, for requests whose caller waits for a reply anyway: a lost
    /// request ends in the caller's timeout, and skipping the confirm saves a round trip.
    rpc: Channel,
    reply_queue: String,
    /// Cleared when the reply consumer ends: a link whose replies can no longer arrive is
    /// dead, whatever the connection's status still says.
    replies_alive: Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    fn usable(&self) -> bool {
        self.conn.status().connected()
            && self.replies_alive.load(std::sync::atomic::Ordering::SeqCst)
    }
}

struct Shared {
    url: String,
    prefetch: u16,
    pending: Pending,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
}

/// The AMQP transport. Cheap to clone. If the broker goes away, calls fail fast with
/// `Unavailable` (503 at the API) and the next call after it is back reconnects;
/// subscriptions re-subscribe by themselves with backoff.
#[derive(Clone)]
pub struct Amqp {
    shared: Arc<Shared>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl Amqp {
    /// Connects to `url` (`amqp://` or Glance's `rabbit://`); fails if the broker cannot be
    /// reached now, so a misconfigured process says so at start.
    pub async fn connect(url: &str, prefetch: u16) -> Result<Self, BusError> {
        let amqp = Self {
            shared: Arc::new(Shared {
                url: normalize_url(url),
                prefetch,
                pending: Arc::default(),
                link: tokio::sync::Mutex::new(None),
            }),
        };
        amqp.link().await?;
        Ok(amqp)
    }

    /// The live link, reconnecting (once, for all callers) if the last one died.
    async fn link(&self) -> Result<Arc<Link>, BusError> {
        let mut guard = self.shared.link.lock().await;
        if let Some(link) = guard.as_ref() {
            if link.usable() {
                return Ok(link.clone());
            }
            tracing::warn!("broker connection lost; reconnecting");
        }
        let opened = tokio::time::timeout(SETUP_TIMEOUT, self.open_link())
            .await
            .map_err(|_| unavailable("the broker did not finish the connection handshake"))??;
        let link = Arc::new(opened);
        *guard = Some(link.clone());
        tracing::info!("connected to the broker");
        Ok(link)
    }

    async fn open_link(&self) -> Result<Link, BusError> {
        let conn = Connection::connect(
            &self.shared.url,
            ConnectionProperties::default().with_connection_name("glance".into()),
        )
        .await
        .map_err(unavailable)?;
        let publisher = conn.create_channel().await.map_err(unavailable)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        for exchange in [CONTROL_EXCHANGE, WORK_EXCHANGE, EVENTS_EXCHANGE] {
            publisher
                .exchange_declare(
                    exchange.into(),
                    lapin::ExchangeKind::Topic,
                    lapin::options::ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)?;
        }

        let replies = conn.create_channel().await.map_err(unavailable)?;
        let reply_queue = declare_private(&replies, "glance.reply").await?;
        let mut consumer = replies
            .basic_consume(
                reply_queue.as_str().into(),
                "replies".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        let pending_for_task = self.shared.pending.clone();
        let replies_alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let alive_for_task = replies_alive.clone();
        tokio::spawn(async move {
            let _keep_channel = replies;
            while let Some(Ok(delivery)) = consumer.next().await {
                let Some(cid) = delivery.properties.correlation_id().as_ref() else {
                    continue;
                };
                let Ok(env) = Envelope::from_bytes(&delivery.data) else {
                    continue;
                };
                let mut pending = pending_for_task.lock().expect("pending map poisoned");
                match pending.get(cid.as_str()) {
                    Some(Waiter::Many(tx)) => {
                        let _ = tx.send(env);
                    }
                    Some(Waiter::One(_)) => {
                        if let Some(Waiter::One(tx)) = pending.remove(cid.as_str()) {
                            let _ = tx.send(env);
                        }
                    }
                    None => {}
                }
            }
            // The connection is gone: fail every waiting call now (503 at the API) rather
            // than let each run into its timeout.
            pending_for_task
                .lock()
                .expect("pending map poisoned")
                .clear();
            alive_for_task.store(false, std::sync::atomic::Ordering::SeqCst);
            tracing::warn!("reply consumer ended");
        });
        let rpc = conn.create_channel().await.map_err(unavailable)?;
        Ok(Link {
            conn,
            publisher,
            rpc,
            reply_queue,
            replies_alive,
        })
    }

    /// Forgets `link` if it is still the current one, so the next call reconnects.
    async fn drop_link(&self, link: &Arc<Link>) {
        let mut guard = self.shared.link.lock().await;
        if guard.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
            *guard = None;
        }
    }

    async fn declare(channel: &Channel, queue: &str) -> Result<(), BusError> {
        let dead = format!("{queue}.dead");
        channel
            .queue_declare(
                dead.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::durable(), args)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Opens a consumer for `source` on the current link.
    async fn consumer(
        &self,
        source: &Source,
    ) -> Result<(lapin::Consumer, Channel, String), BusError> {
        let link = self.link().await?;
        match tokio::time::timeout(SETUP_TIMEOUT, self.consume_on(&link, source)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                // A connection that stops answering only looks alive: the next try starts
                // from a fresh one.
                self.drop_link(&link).await;
                Err(unavailable(
                    "the broker did not answer while subscribing; reconnecting",
                ))
            }
        }
    }

    async fn consume_on(
        &self,
        link: &Link,
        source: &Source,
    ) -> Result<(lapin::Consumer, Channel, String), BusError> {
        let channel = link.conn.create_channel().await.map_err(unavailable)?;
        let queue = match source {
            Source::Queue(queue) => {
                Self::declare(&channel, queue).await?;
                queue.clone()
            }
            Source::Bound {
                exchange,
                patterns,
                queue,
            } => {
                let queue = match queue {
                    Some(queue) => {
                        Self::declare(&channel, queue).await?;
                        queue.clone()
                    }
                    None => declare_private(&channel, exchange).await?,
                };
                bind(&channel, &queue, exchange, patterns).await?;
                queue
            }
        };
        channel
            .basic_qos(self.shared.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("glance-{}", uuid::Uuid::new_v4().simple())
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok((consumer, channel, queue))
    }
}

/// Glance writes `rabbit://user:pass@host:port/vhost`; lapin speaks `amqp://`. As in
/// oslo.messaging, a `rabbit://` URL with no virtual host (`.../` or none) means RabbitMQ's
/// default one, `/`; in an `amqp://` URI that would be the empty name.
pub fn normalize_url(url: &str) -> String {
    let Some(rest) = url.strip_prefix("rabbit://") else {
        return url.to_owned();
    };
    let host_start = rest.rfind('@').map_or(0, |at| at + 1);
    let (authority, path) = match rest[host_start..].find('/') {
        Some(slash) => rest.split_at(host_start + slash),
        None => (rest, ""),
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() || path.starts_with('?') {
        format!("amqp://{authority}/%2f{path}")
    } else {
        format!("amqp://{authority}/{path}")
    }
}

fn properties(env: &Envelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(rid) = &env.headers.request_id {
        headers.insert(
            "request_id".into(),
            AMQPValue::LongString(rid.as_str().into()),
        );
    }
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id(env.headers.message_id.to_string().into())
        .with_type(env.headers.kind.as_str().into())
        .with_headers(headers)
}

async fn publish(
    channel: &Channel,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), BusError> {
    publish_to(channel, "", routing_key, body, props).await
}

async fn publish_to(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), BusError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .map_err(unavailable)?
        .await
        .map_err(unavailable)?;
    if confirm.is_nack() {
        return Err(BusError::Unavailable(format!(
            "the broker refused a message for {routing_key}"
        )));
    }
    Ok(())
}

#[async_trait]
impl Transport for Amqp {
    async fn request(
        &self,
        queue: &str,
        request: Envelope,
        timeout: Duration,
    ) -> Result<Envelope, BusError> {
        let link = self.link().await?;
        let cid = request.headers.message_id.to_string();
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .expect("pending map poisoned")
            .insert(cid.clone(), Waiter::One(tx));
        let props = properties(&request)
            .with_correlation_id(cid.as_str().into())
            .with_reply_to(link.reply_queue.as_str().into())
            .with_expiration(timeout.as_millis().to_string().into());
        let sent = publish(&link.rpc, queue, &request.to_bytes(), props).await;
        if let Err(e) = sent {
            self.shared
                .pending
                .lock()
                .expect("pending map poisoned")
                .remove(&cid);
            self.drop_link(&link).await;
            return Err(e);
        }
        let outcome = tokio::time::timeout(timeout, rx).await;
        self.shared
            .pending
            .lock()
            .expect("pending map poisoned")
            .remove(&cid);
        match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(BusError::Unavailable("reply channel closed".into())),
            Err(_) => Err(BusError::Timeout {
                queue: queue.to_owned(),
                timeout,
            }),
        }
    }

    async fn subscribe(&self, queue: &str) -> Result<Box<dyn Subscription>, BusError> {
        AmqpSubscription::open(self.clone(), Source::Queue(queue.to_owned())).await
    }

    async fn scatter(
        &self,
        topic: &str,
        request: Envelope,
        window: Duration,
    ) -> Result<Vec<Envelope>, BusError> {
        let link = self.link().await?;
        let cid = request.headers.message_id.to_string();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.shared
            .pending
            .lock()
            .expect("pending map poisoned")
            .insert(cid.clone(), Waiter::Many(tx));
        let props = properties(&request)
            .with_correlation_id(cid.as_str().into())
            .with_reply_to(link.reply_queue.as_str().into())
            .with_expiration(window.as_millis().to_string().into());
        let sent = publish_to(
            &link.publisher,
            CONTROL_EXCHANGE,
            topic,
            &request.to_bytes(),
            props,
        )
        .await;
        let mut replies = Vec::new();
        if sent.is_ok() {
            let deadline = tokio::time::Instant::now() + window;
            while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                replies.push(reply);
            }
        }
        self.shared
            .pending
            .lock()
            .expect("pending map poisoned")
            .remove(&cid);
        sent.map(|()| replies)
    }

    async fn subscribe_topics(&self, topics: &[String]) -> Result<Box<dyn Subscription>, BusError> {
        let source = Source::Bound {
            exchange: CONTROL_EXCHANGE,
            patterns: topics.to_vec(),
            queue: None,
        };
        AmqpSubscription::open(self.clone(), source).await
    }

    async fn declare_work_queue(&self, queue: &str, bindings: &[String]) -> Result<(), BusError> {
        let link = self.link().await?;
        Self::declare(&link.publisher, queue).await?;
        bind(&link.publisher, queue, WORK_EXCHANGE, bindings).await
    }

    async fn publish_work(&self, key: &str, work: Envelope) -> Result<(), BusError> {
        let link = self.link().await?;
        let props = properties(&work).with_delivery_mode(2);
        let confirm = link
            .publisher
            .basic_publish(
                WORK_EXCHANGE.into(),
                key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &work.to_bytes(),
                props,
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        if !confirm.is_ack() {
            return Err(BusError::Unavailable(format!(
                "the broker refused work for {key}"
            )));
        }
        if confirm.take_message().is_some() {
            return Err(BusError::NoRoute(key.to_owned()));
        }
        Ok(())
    }

    async fn publish_event(&self, topic: &str, event: Envelope) -> Result<(), BusError> {
        let link = self.link().await?;
        let props = properties(&event).with_delivery_mode(2);
        publish_to(
            &link.publisher,
            EVENTS_EXCHANGE,
            topic,
            &event.to_bytes(),
            props,
        )
        .await
    }

    async fn subscribe_events(
        &self,
        patterns: &[String],
        queue: Option<&str>,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let source = Source::Bound {
            exchange: EVENTS_EXCHANGE,
            patterns: patterns.to_vec(),
            queue: queue.map(str::to_owned),
        };
        AmqpSubscription::open(self.clone(), source).await
    }
}

impl Amqp {
    /// Declares `queue` (and its dead-letter queue) so requests can be published before any
    /// consumer exists.
    pub async fn ensure_queue(&self, queue: &str) -> Result<(), BusError> {
        let link = self.link().await?;
        Self::declare(&link.publisher, queue).await
    }
}

#[cfg(test)]
mod url_tests {
    use super::normalize_url;

    #[test]
    fn a_rabbit_url_without_a_vhost_means_the_default_one() {
        assert_eq!(
            normalize_url("rabbit://u:p@h:5672/"),
            "amqp://u:p@h:5672/%2f"
        );
        assert_eq!(
            normalize_url("rabbit://u:p@h:5672"),
            "amqp://u:p@h:5672/%2f"
        );
        assert_eq!(
            normalize_url("rabbit://h/?heartbeat=5"),
            "amqp://h/%2f?heartbeat=5"
        );
    }

    #[test]
    fn a_named_vhost_and_amqp_urls_are_kept() {
        assert_eq!(
            normalize_url("rabbit://u:p@h:5672/glance"),
            "amqp://u:p@h:5672/glance"
        );
        assert_eq!(normalize_url("rabbit://u:p@h/%2f"), "amqp://u:p@h/%2f");
        assert_eq!(normalize_url("amqp://u:p@h:5672/"), "amqp://u:p@h:5672/");
    }
}
