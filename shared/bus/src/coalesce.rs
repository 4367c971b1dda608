//! Coalescing many small requests into few batched ones.
//!
//! Under load most of a request's cost on the bus is per message, not per byte: a wake-up of
//! the sender's I/O thread, the broker's routing and acknowledgement, the consumer's wake-up,
//! a database round trip. A [`Coalescer`] keeps at most `max_in_flight` batches on the wire;
//! a call that finds a free slot is sent at once, alone (so a quiet service adds no
//! latency), and calls that arrive while every slot is busy wait and leave together, as one
//! batch, when a slot frees. The busier the service, the bigger the batches.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::BusError;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type SendBatch<T, U> = dyn Fn(Vec<T>) -> BoxFuture<Result<Vec<U>, BusError>> + Send + Sync;
type Waiting<T, U> = Vec<(T, oneshot::Sender<Result<U, BusError>>)>;

/// Batches calls of `T` into calls of `Vec<T>` answered by a `Vec<U>` in the same order.
/// Cheap to clone.
pub struct Coalescer<T, U> {
    inner: Arc<Inner<T, U>>,
}

impl<T, U> Clone for Coalescer<T, U> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<T, U> {
    send: Box<SendBatch<T, U>>,
    max_in_flight: usize,
    max_batch: usize,
    state: Mutex<State<T, U>>,
}

struct State<T, U> {
    waiting: Waiting<T, U>,
    in_flight: usize,
}

impl<T, U> Coalescer<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
{
    /// `send` carries one batch and answers it in order; at most `max_in_flight` run at once,
    /// each with at most `max_batch` items.
    pub fn new<F, Fut>(max_in_flight: usize, max_batch: usize, send: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<U>, BusError>> + Send + 'static,
    {
        Self {
            inner: Arc::new(Inner {
                send: Box::new(move |batch| Box::pin(send(batch))),
                max_in_flight: max_in_flight.max(1),
                max_batch: max_batch.max(1),
                state: Mutex::new(State {
                    waiting: Vec::new(),
                    in_flight: 0,
                }),
            }),
        }
    }

    /// Sends `item` in the next batch and waits for its answer. The batch is sent by a task
    /// of its own, so a caller that gives up does not cancel the others' answers.
    pub async fn call(&self, item: T) -> Result<U, BusError> {
        let (tx, rx) = oneshot::channel();
        let batch = {
            let mut state = self.inner.state.lock().expect("coalescer state poisoned");
            state.waiting.push((item, tx));
            if state.in_flight < self.inner.max_in_flight {
                state.in_flight += 1;
                Some(self.inner.take(&mut state))
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            tokio::spawn(self.inner.clone().run(batch));
        }
        rx.await
            .map_err(|_| BusError::Unavailable("a batched request was dropped".into()))?
    }
}

impl<T, U> Inner<T, U> {
    fn take(&self, state: &mut State<T, U>) -> Waiting<T, U> {
        let n = state.waiting.len().min(self.max_batch);
        state.waiting.drain(..n).collect()
    }

    /// Sends `batch`, then whatever gathered meanwhile, until nothing waits.
    async fn run(self: Arc<Self>, mut batch: Waiting<T, U>) {
        loop {
            let (items, waiters): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
            let count = waiters.len();
            match (self.send)(items).await {
                Ok(answers) if answers.len() == count => {
                    for (waiter, answer) in waiters.into_iter().zip(answers) {
                        let _ = waiter.send(Ok(answer));
                    }
                }
                Ok(answers) => {
                    let e = BusError::Malformed(format!(
                        "{} answers to a batch of {count}",
                        answers.len()
                    ));
                    for waiter in waiters {
                        let _ = waiter.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for waiter in waiters {
                        let _ = waiter.send(Err(e.clone()));
                    }
                }
            }
            let mut state = self.state.lock().expect("coalescer state poisoned");
            if state.waiting.is_empty() {
                state.in_flight -= 1;
                return;
            }
            batch = self.take(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A sender that doubles each item, records batch sizes, and holds each batch until
    /// `gate` lets it go.
    fn doubler(
        sizes: Arc<Mutex<Vec<usize>>>,
        gate: Arc<tokio::sync::Semaphore>,
    ) -> Coalescer<u32, u32> {
        Coalescer::new(1, 8, move |batch: Vec<u32>| {
            sizes.lock().unwrap().push(batch.len());
            let gate = gate.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                Ok(batch.into_iter().map(|n| n * 2).collect())
            }
        })
    }

    #[tokio::test]
    async fn a_lone_call_goes_at_once_and_later_calls_gather_behind_it() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let c = doubler(sizes.clone(), gate.clone());
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.call(1).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            *sizes.lock().unwrap(),
            vec![1],
            "the first call leaves alone"
        );
        let rest: Vec<_> = (2..=11)
            .map(|n| {
                let c = c.clone();
                tokio::spawn(async move { c.call(n).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            *sizes.lock().unwrap(),
            vec![1],
            "one batch in flight at most"
        );
        gate.add_permits(3);
        assert_eq!(first.await.unwrap().unwrap(), 2);
        for (n, call) in (2..=11).zip(rest) {
            assert_eq!(call.await.unwrap().unwrap(), n * 2, "answers stay in order");
        }
        assert_eq!(
            *sizes.lock().unwrap(),
            vec![1, 8, 2],
            "the waiting ten leave as batches of at most eight"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_calls_and_the_next_batch_still_goes() {
        let sent = Arc::new(AtomicUsize::new(0));
        let c: Coalescer<u32, u32> = Coalescer::new(2, 4, {
            let sent = sent.clone();
            move |batch: Vec<u32>| {
                let first = sent.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        Err(BusError::Unavailable("broker gone".into()))
                    } else {
                        Ok(batch)
                    }
                }
            }
        });
        let err = c.call(7).await.unwrap_err();
        assert!(matches!(err, BusError::Unavailable(_)), "{err:?}");
        assert_eq!(c.call(8).await.unwrap(), 8);
    }

    #[tokio::test]
    async fn a_short_answer_is_an_error_not_a_mismatch() {
        let c: Coalescer<u32, u32> = Coalescer::new(1, 4, |_batch: Vec<u32>| async { Ok(vec![]) });
        let err = c.call(1).await.unwrap_err();
        assert!(matches!(err, BusError::Malformed(_)), "{err:?}");
    }
}
