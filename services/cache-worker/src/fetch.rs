//! One prefetch: the image record from the registry, the bytes from the store, verified
//! into the cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use glance_bus::{Bus, Outcome};
use glance_cache::{
    blocking, tee, CacheError, CacheSettings, Expected, ImageCache, TeeOutcome, WhenBehind,
};
use glance_domain::{ImageId, ImageStatus, RequestContext};
use glance_proto::registry::GetImage;
use glance_registry_client::RegistryClient;
use glance_store::{Store, StoreError};

/// What became of one prefetch.
#[derive(Debug)]
pub enum Fetched {
    /// Now cached (or it already was).
    Cached,
    /// Nothing to fetch: the image is gone, not active, or has no data.
    Skipped(String),
    /// Failed in a way that may pass (the store, the registry, the disk).
    Failed(String),
    /// The store's data does not match the record: it will not get better by retrying.
    Invalid(String),
}

impl From<Fetched> for Outcome {
    fn from(f: Fetched) -> Self {
        match f {
            Fetched::Cached | Fetched::Skipped(_) => Outcome::Done,
            Fetched::Failed(why) => Outcome::Retry(why),
            Fetched::Invalid(why) => Outcome::Reject(why),
        }
    }
}

#[derive(Clone)]
pub struct Fetcher {
    registry: RegistryClient,
    store: Arc<dyn Store>,
    pub cache: ImageCache,
    /// Bytes per second to read the store at (0 = as fast as it goes).
    rate_limit: u64,
}

impl Fetcher {
    /// Fetches into `cache` from `store`, asking the registry over `bus` for each record,
    /// at `[glance_cache] fetch_rate_limit` of `settings`.
    pub fn new(
        bus: Bus,
        store: Arc<dyn Store>,
        cache: ImageCache,
        settings: &CacheSettings,
    ) -> Self {
        Self {
            registry: RegistryClient::new(bus),
            store,
            cache,
            rate_limit: settings.fetch_rate_limit,
        }
    }

    #[tracing::instrument(skip_all, fields(image_id = %id))]
    pub async fn fetch(&self, id: ImageId, request_id: Option<String>) -> Fetched {
        let cache = self.cache.clone();
        if blocking(move || {
            let cached = cache.is_cached(id);
            if cached {
                let _ = cache.delete_queued(id);
            } else {
                let _ = cache.queue(id);
            }
            cached
        })
        .await
        {
            return Fetched::Cached;
        }
        let request_id = request_id.unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
        let req = GetImage {
            ctx: RequestContext::admin(request_id.clone()),
            id,
            include_deleted: false,
        };
        let image = match self.registry.call(Some(request_id), &req).await {
            Ok(image) => image,
            Err(e) if e.missing().is_some() => {
                return self.skip(id, "the image does not exist").await
            }
            Err(e) => return Fetched::Failed(format!("registry: {e}")),
        };
        if image.status != ImageStatus::Active {
            return self
                .skip(id, &format!("the image is {}, not active", image.status))
                .await;
        }
        let Some(location) = image.locations.first() else {
            return self.skip(id, "the image has no data").await;
        };
        let expected = Expected::of(&image);
        if !expected.verifiable() {
            return self.skip(id, "the image has no checksum to verify").await;
        }
        let stream = match self.store.read(&location.url, None).await {
            Ok(s) => s,
            Err(StoreError::NotFound(loc)) => {
                return Fetched::Failed(format!("no data at {loc}"));
            }
            Err(e) => return Fetched::Failed(format!("store: {e}")),
        };
        let cache = self.cache.clone();
        let writer = match blocking(move || cache.writer(id, expected)).await {
            Ok(w) => w,
            Err(e) => return Fetched::Failed(format!("cache: {e}")),
        };
        // Filling the entry is the point here, so the read waits for the writer.
        let (teed, done) = tee(throttle(stream, self.rate_limit), writer, WhenBehind::Wait);
        let mut teed = Box::pin(teed);
        while let Some(chunk) = teed.next().await {
            if let Err(e) = chunk {
                return Fetched::Failed(format!("store read: {e}"));
            }
        }
        drop(teed);
        match done.await {
            Ok(TeeOutcome::Cached(entry)) => {
                tracing::info!(size = entry.size, "prefetched into the image cache");
                Fetched::Cached
            }
            Ok(TeeOutcome::Failed(CacheError::Mismatch { what, .. })) => Fetched::Invalid(what),
            Ok(TeeOutcome::Failed(e)) => Fetched::Failed(e.to_string()),
            Ok(TeeOutcome::Abandoned | TeeOutcome::FellBehind) | Err(_) => {
                Fetched::Failed("the fetch was abandoned".into())
            }
        }
    }

    async fn skip(&self, id: ImageId, why: &str) -> Fetched {
        let cache = self.cache.clone();
        let _ = blocking(move || cache.delete_queued(id)).await;
        tracing::info!(image_id = %id, reason = why, "prefetch skipped");
        Fetched::Skipped(why.to_owned())
    }
}

/// Paces `stream` to `rate` bytes per second (0 = unpaced).
fn throttle<S, E>(stream: S, rate: u64) -> impl futures::Stream<Item = Result<Bytes, E>>
where
    S: futures::Stream<Item = Result<Bytes, E>>,
{
    let start = Instant::now();
    let mut sent = 0u64;
    stream.then(move |item| {
        if let Ok(chunk) = &item {
            sent += chunk.len() as u64;
        }
        let due = (rate > 0).then(|| start + Duration::from_secs_f64(sent as f64 / rate as f64));
        async move {
            if let Some(due) = due {
                tokio::time::sleep_until(due.into()).await;
            }
            item
        }
    })
}
