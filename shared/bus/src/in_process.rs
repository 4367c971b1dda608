use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use glance_proto::Envelope;
use tokio::sync::oneshot;

use crate::{BusError, Delivery, Responder, Subscription, Transport};

/// The embedded bus: one MPMC channel per queue, replies on oneshot channels. Payloads are
/// still serialized to JSON values, so handlers see exactly what AMQP would give them.
#[derive(Clone, Default)]
pub struct InProcess {
    queues: Arc<Mutex<HashMap<String, Queue>>>,
}

#[derive(Clone)]
struct Queue {
    tx: async_channel::Sender<InMessage>,
    rx: async_channel::Receiver<InMessage>,
}

struct InMessage {
    envelope: Envelope,
    reply_to: Option<oneshot::Sender<Envelope>>,
}

impl InProcess {
    pub fn new() -> Self {
        Self::default()
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
        let (tx, rx) = oneshot::channel();
        let q = self.queue(queue);
        q.tx.send(InMessage {
            envelope: request,
            reply_to: Some(tx),
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
        Ok(Box::new(InSubscription {
            rx: self.queue(queue).rx,
            tx: self.queue(queue).tx,
        }))
    }
}

struct InSubscription {
    rx: async_channel::Receiver<InMessage>,
    tx: async_channel::Sender<InMessage>,
}

#[async_trait]
impl Subscription for InSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        let msg = self.rx.recv().await.ok()?;
        Some(Delivery {
            envelope: msg.envelope.clone(),
            responder: Box::new(InResponder {
                msg: Some(msg),
                requeue: self.tx.clone(),
            }),
        })
    }
}

struct InResponder {
    msg: Option<InMessage>,
    requeue: async_channel::Sender<InMessage>,
}

#[async_trait]
impl Responder for InResponder {
    async fn reply(mut self: Box<Self>, reply: Envelope) -> Result<(), BusError> {
        if let Some(tx) = self.msg.take().and_then(|m| m.reply_to) {
            // The requester may have timed out and gone; that is not our failure.
            let _ = tx.send(reply);
        }
        Ok(())
    }

    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        self.msg.take();
        Ok(())
    }

    async fn reject(mut self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        if let (true, Some(msg)) = (requeue, self.msg.take()) {
            self.requeue
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
        if let Some(msg) = self.msg.take() {
            let _ = self.requeue.try_send(msg);
        }
    }
}
