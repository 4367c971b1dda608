//! What consumers hold: a subscription to a queue (re-opened after a reconnect), and the
//! responder of each delivery, which acks, rejects, requeues with a bumped attempt count, or
//! dead-letters it.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use glance_proto::Envelope;
use lapin::options::{BasicAckOptions, BasicRejectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

use super::{properties, publish, unavailable, Amqp, ATTEMPT_HEADER, MAX_ATTEMPTS};
use crate::{BusError, Delivery, Responder, Subscription};
/// What a subscription consumes, kept so it can re-subscribe after a reconnect.
#[derive(Clone)]
pub(super) enum Source {
    Queue(String),
    /// A queue bound to `exchange` under `patterns`: a named durable one, or a private one.
    Bound {
        exchange: &'static str,
        patterns: Vec<String>,
        queue: Option<String>,
    },
}

pub(super) async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    patterns: &[String],
) -> Result<(), BusError> {
    for pattern in patterns {
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                pattern.as_str().into(),
                lapin::options::QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Declares a queue only this connection uses, gone when it closes: `<prefix>.<uuid>`.
pub(super) async fn declare_private(channel: &Channel, prefix: &str) -> Result<String, BusError> {
    let queue = format!("{prefix}.{}", uuid::Uuid::new_v4().simple());
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok(queue)
}

pub(super) struct AmqpSubscription {
    amqp: Amqp,
    source: Source,
    consumer: lapin::Consumer,
    channel: Channel,
    queue: String,
}

impl AmqpSubscription {
    pub(super) async fn open(
        amqp: Amqp,
        source: Source,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let (consumer, channel, queue) = amqp.consumer(&source).await?;
        Ok(Box::new(Self {
            amqp,
            source,
            consumer,
            channel,
            queue,
        }))
    }

    /// Re-subscribes after the broker went away, backing off up to 5 s between tries.
    async fn reopen(&mut self) {
        let mut delay = Duration::from_millis(100);
        loop {
            tokio::time::sleep(delay).await;
            match self.amqp.consumer(&self.source).await {
                Ok((consumer, channel, queue)) => {
                    tracing::info!(queue = %queue, "re-subscribed after reconnect");
                    self.consumer = consumer;
                    self.channel = channel;
                    self.queue = queue;
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "broker still unavailable");
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            let delivery = match self.consumer.next().await {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, queue = %self.queue, "consumer failed; reconnecting");
                    self.reopen().await;
                    continue;
                }
                None => {
                    tracing::warn!(queue = %self.queue, "consumer ended; reconnecting");
                    self.reopen().await;
                    continue;
                }
            };
            match Envelope::from_bytes(&delivery.data) {
                Ok(envelope) => {
                    return Some(Delivery {
                        envelope,
                        responder: Box::new(AmqpResponder {
                            channel: self.channel.clone(),
                            queue: self.queue.clone(),
                            delivery,
                        }),
                    })
                }
                Err(e) => {
                    // Poison: nothing will ever parse it. Straight to the dead-letter queue.
                    tracing::error!(error = %e, queue = %self.queue, "unparseable message dead-lettered");
                    let _ = delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await;
                }
            }
        }
    }
}

struct AmqpResponder {
    channel: Channel,
    queue: String,
    delivery: lapin::message::Delivery,
}

fn attempt(props: &BasicProperties) -> i64 {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(&ShortString::from(ATTEMPT_HEADER)).cloned())
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(n),
            AMQPValue::LongInt(n) => Some(n as i64),
            _ => None,
        })
        .unwrap_or(0)
}

#[async_trait]
impl Responder for AmqpResponder {
    async fn reply(self: Box<Self>, reply: Envelope) -> Result<(), BusError> {
        let props = &self.delivery.properties;
        if let (Some(reply_to), Some(cid)) =
            (props.reply_to().clone(), props.correlation_id().clone())
        {
            let out = properties(&reply).with_correlation_id(cid);
            publish(&self.channel, reply_to.as_str(), &reply.to_bytes(), out).await?;
        }
        self.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn retries(&self) -> i64 {
        attempt(&self.delivery.properties)
    }

    /// Requeues by republishing with an attempt counter (classic queues count nothing), so
    /// a message that keeps failing reaches the dead-letter queue instead of looping.
    async fn reject(self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        let tries = attempt(&self.delivery.properties) + 1;
        if requeue && tries < MAX_ATTEMPTS {
            let mut props = self.delivery.properties.clone();
            let mut headers = props.headers().clone().unwrap_or_default();
            headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(tries));
            props = props.with_headers(headers);
            publish(&self.channel, &self.queue, &self.delivery.data, props).await?;
            self.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(unavailable)?;
        } else {
            self.delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}
