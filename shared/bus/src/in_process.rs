use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use glance_proto::Envelope;
use tokio::sync::{mpsc, oneshot};

use crate::{BusError, Delivery, Responder, Subscription, Transport};

/// The embedded bus: one MPMC channel per queue, replies on oneshot channels. Payloads are
/// still serialized to JSON values, so handlers see exactly what AMQP would give them.
#[derive(Clone, Default)]
pub struct InProcess {
    queues: Arc<Mutex<HashMap<String, Queue>>>,
    topics: Arc<Mutex<Vec<TopicSub>>>,
    /// `(queue, pattern)` bindings of the work exchange.
    work: Arc<Mutex<Vec<(String, String)>>>,
    events: Arc<Mutex<Vec<EventSub>>>,
    inline: Arc<std::sync::RwLock<HashMap<String, crate::Router>>>,
}

struct TopicSub {
    topics: Vec<String>,
    tx: async_channel::Sender<InMessage>,
}

struct EventSub {
    patterns: Vec<String>,
    dest: EventDest,
}

enum EventDest {
    /// A subscriber's own copy.
    Private(async_channel::Sender<InMessage>),
    /// A shared named queue.
    Named(String),
}

enum ReplyTo {
    One(oneshot::Sender<Envelope>),
    Many(mpsc::UnboundedSender<Envelope>),
}

#[derive(Clone)]
struct Queue {
    tx: async_channel::Sender<InMessage>,
    rx: async_channel::Receiver<InMessage>,
}

struct InMessage {
    envelope: Envelope,
    reply_to: Option<ReplyTo>,
    /// Times this message was given back; bounded like AMQP's, then it is dropped.
    attempts: i64,
}

impl InProcess {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers requests to `queue` with `router` on the caller's own task: the same
    /// serialized contract, without the thread hops of a consumer loop. For the embedded
    /// mode, where one process holds the only consumer anyway.
    pub fn serve_inline(&self, queue: &str, router: crate::Router) {
        self.inline
            .write()
            .expect("bus registry poisoned")
            .insert(queue.to_owned(), router);
    }

    async fn send_to_queue(&self, queue: &str, envelope: Envelope) -> Result<(), BusError> {
        self.queue(queue)
            .tx
            .send(InMessage {
                envelope,
                reply_to: None,
                attempts: 0,
            })
            .await
            .map_err(|_| BusError::Unavailable(format!("queue {queue} is closed")))
    }

    fn queue(&self, name: &str) -> Queue {
        let mut queues = self.queues.lock().expect("bus registry poisoned");
        queues
            .entry(name.to_owned())
            .or_insert_with(|| {
                // Bounded so a stalled consumer pushes back on producers instead of
                // growing memory without limit.
                let (tx, rx) = async_channel::bounded(4096);
                Queue { tx, rx }
            })
            .clone()
    }
}

#[async_trait]
impl Transport for InProcess {
    async fn request(
        &self,
        queue: &str,
        request: Envelope,
        timeout: Duration,
    ) -> Result<Envelope, BusError> {
        let inline = self
            .inline
            .read()
            .expect("bus registry poisoned")
            .get(queue)
            .cloned();
        if let Some(router) = inline {
            return match tokio::time::timeout(timeout, router.dispatch(request)).await {
                Ok(reply) => reply,
                Err(_) => Err(BusError::Timeout {
                    queue: queue.to_owned(),
                    timeout,
                }),
            };
        }
        let (tx, rx) = oneshot::channel();
        let q = self.queue(queue);
        q.tx.send(InMessage {
            envelope: request,
            reply_to: Some(ReplyTo::One(tx)),
            attempts: 0,
        })
        .await
        .map_err(|_| BusError::Unavailable(format!("queue {queue} is closed")))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(BusError::Unavailable(format!(
                "the consumer of {queue} dropped the request"
            ))),
            Err(_) => Err(BusError::Timeout {
                queue: queue.to_owned(),
                timeout,
            }),
        }
    }

    async fn subscribe(&self, queue: &str) -> Result<Box<dyn Subscription>, BusError> {
        let q = self.queue(queue);
        Ok(Box::new(InSubscription {
            rx: q.rx,
            requeue: Some(q.tx),
        }))
    }

    async fn scatter(
        &self,
        topic: &str,
        request: Envelope,
        window: Duration,
    ) -> Result<Vec<Envelope>, BusError> {
        let targets: Vec<async_channel::Sender<InMessage>> = {
            let mut subs = self.topics.lock().expect("bus registry poisoned");
            subs.retain(|s| !s.tx.is_closed());
            subs.iter()
                .filter(|s| s.topics.iter().any(|t| t == topic))
                .map(|s| s.tx.clone())
                .collect()
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        for target in &targets {
            let _ = target
                .send(InMessage {
                    envelope: request.clone(),
                    reply_to: Some(ReplyTo::Many(tx.clone())),
                    attempts: 0,
                })
                .await;
        }
        drop(tx);
        let mut replies = Vec::with_capacity(targets.len());
        let deadline = tokio::time::Instant::now() + window;
        // In process we know how many can answer, so stop as soon as all have.
        while replies.len() < targets.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(reply)) => replies.push(reply),
                _ => break,
            }
        }
        Ok(replies)
    }

    fn inline_router(&self, queue: &str) -> Option<crate::Router> {
        self.inline
            .read()
            .expect("bus registry poisoned")
            .get(queue)
            .cloned()
    }

    async fn declare_work_queue(&self, queue: &str, bindings: &[String]) -> Result<(), BusError> {
        self.queue(queue);
        let mut work = self.work.lock().expect("bus registry poisoned");
        for pattern in bindings {
            let binding = (queue.to_owned(), pattern.clone());
            if !work.contains(&binding) {
                work.push(binding);
            }
        }
        Ok(())
    }

    async fn publish_work(&self, key: &str, work: Envelope) -> Result<(), BusError> {
        let mut queues: Vec<String> = self
            .work
            .lock()
            .expect("bus registry poisoned")
            .iter()
            .filter(|(_, pattern)| crate::topic_matches(pattern, key))
            .map(|(queue, _)| queue.clone())
            .collect();
        queues.sort();
        queues.dedup();
        if queues.is_empty() {
            return Err(BusError::NoRoute(key.to_owned()));
        }
        for queue in queues {
            self.send_to_queue(&queue, work.clone()).await?;
        }
        Ok(())
    }

    async fn publish_event(&self, topic: &str, event: Envelope) -> Result<(), BusError> {
        let (private, mut named) = {
            let mut subs = self.events.lock().expect("bus registry poisoned");
            subs.retain(|s| !matches!(&s.dest, EventDest::Private(tx) if tx.is_closed()));
            let mut private = Vec::new();
            let mut named = Vec::new();
            for sub in subs
                .iter()
                .filter(|s| s.patterns.iter().any(|p| crate::topic_matches(p, topic)))
            {
                match &sub.dest {
                    EventDest::Private(tx) => private.push(tx.clone()),
                    EventDest::Named(queue) => named.push(queue.clone()),
                }
            }
            (private, named)
        };
        for tx in private {
            let _ = tx
                .send(InMessage {
                    envelope: event.clone(),
                    reply_to: None,
                    attempts: 0,
                })
                .await;
        }
        named.sort();
        named.dedup();
        for queue in named {
            self.send_to_queue(&queue, event.clone()).await?;
        }
        Ok(())
    }

    async fn subscribe_events(
        &self,
        patterns: &[String],
        queue: Option<&str>,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let mut subs = self.events.lock().expect("bus registry poisoned");
        match queue {
            Some(name) => {
                let q = self.queue(name);
                subs.push(EventSub {
                    patterns: patterns.to_vec(),
                    dest: EventDest::Named(name.to_owned()),
                });
                Ok(Box::new(InSubscription {
                    rx: q.rx,
                    requeue: Some(q.tx),
                }))
            }
            None => {
                let (tx, rx) = async_channel::bounded(4096);
                subs.push(EventSub {
                    patterns: patterns.to_vec(),
                    dest: EventDest::Private(tx.clone()),
                });
                Ok(Box::new(InSubscription {
                    rx,
                    requeue: Some(tx),
                }))
            }
        }
    }

    async fn subscribe_topics(&self, topics: &[String]) -> Result<Box<dyn Subscription>, BusError> {
        let (tx, rx) = async_channel::bounded(64);
        self.topics
            .lock()
            .expect("bus registry poisoned")
            .push(TopicSub {
                topics: topics.to_vec(),
                tx,
            });
        Ok(Box::new(InSubscription { rx, requeue: None }))
    }
}

struct InSubscription {
    rx: async_channel::Receiver<InMessage>,
    /// Where an unsettled message goes back to; broadcasts are not requeued.
    requeue: Option<async_channel::Sender<InMessage>>,
}

#[async_trait]
impl Subscription for InSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        let msg = self.rx.recv().await.ok()?;
        Some(Delivery {
            envelope: msg.envelope.clone(),
            responder: Box::new(InResponder {
                msg: Some(msg),
                requeue: self.requeue.clone(),
            }),
        })
    }
}

struct InResponder {
    msg: Option<InMessage>,
    requeue: Option<async_channel::Sender<InMessage>>,
}

#[async_trait]
impl Responder for InResponder {
    async fn reply(mut self: Box<Self>, reply: Envelope) -> Result<(), BusError> {
        // The requester may have timed out and gone; that is not our failure.
        match self.msg.take().and_then(|m| m.reply_to) {
            Some(ReplyTo::One(tx)) => {
                let _ = tx.send(reply);
            }
            Some(ReplyTo::Many(tx)) => {
                let _ = tx.send(reply);
            }
            None => {}
        }
        Ok(())
    }

    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        self.msg.take();
        Ok(())
    }

    fn retries(&self) -> i64 {
        self.msg.as_ref().map_or(0, |m| m.attempts)
    }

    async fn reject(mut self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        if let (true, Some(mut msg), Some(queue)) = (requeue, self.msg.take(), self.requeue.clone())
        {
            msg.attempts += 1;
            if msg.attempts >= crate::amqp::MAX_ATTEMPTS {
                tracing::error!(kind = %msg.envelope.headers.kind, "message failed too often; dropped");
                return Ok(());
            }
            queue
                .send(msg)
                .await
                .map_err(|_| BusError::Unavailable("queue closed".into()))?;
        }
        Ok(())
    }
}

impl Drop for InResponder {
    /// An unsettled delivery goes back to its queue, as AMQP does when a consumer dies.
    fn drop(&mut self) {
        if let (Some(msg), Some(queue)) = (self.msg.take(), &self.requeue) {
            let _ = queue.try_send(msg);
        }
    }
}
