//! The import worker: an actor in every API process that consumes `glance.v1.import` and
//! runs each import (Glance's `api_image_import` flow) to success or a recorded failure.
//!
//! At-least-once delivery means an import may run twice: after a worker died mid-import
//! the broker hands the message to another worker, which finds the task `processing` and
//! runs it again. Every step is idempotent: stores that already hold the image are skipped,
//! the staged file is only removed at the end, and each image change is a compare-and-set
//! save under the image's import lock (`os_glance_import_task`). A task that stops making
//! progress (its heartbeat stops) is failed by any worker's recovery sweep, so an image is
//! never left `importing` forever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::web;
use bytes::Bytes;
use chrono::Utc;
use futures::{Stream, StreamExt};
use glance_bus::{consume_work, BusError, Outcome, Subscription, Transport};
use glance_domain::{Image, ImageStatus, Location, RequestContext};
use glance_proto::tasks::{
    ImportImage, ImportMethod, ListTasks, Task, TaskStatus, IMPORT_KEY, IMPORT_QUEUE,
};
use glance_proto::Headers;
use glance_store::{Backend, Store};

use super::download::RemoteImage;
use super::pipeline::{self, Checks, PipelineError, Stored};
use super::plugins::{self, ImageChanges, Prepared};
use super::registry::{image_stores, merge_store_list, FAILED, IMPORTING, IMPORT_TASK};
use super::{download, fetch, ImportState};
use crate::error::ApiError;
use crate::AppState;

/// Why an import attempt stopped.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt (the registry was unreachable): the message is requeued.
    Transient(String),
    /// Final: the task fails and the image is put back.
    Fatal(String),
    /// Another task owns the image now: fail this task, touch nothing else.
    LockLost,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        if e.is_transient() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Fatal(e.to_string())
        }
    }
}

/// The actor: owns the consumer loop and the stale-task sweep of one process.
pub struct ImportWorker {
    runner: Arc<Runner>,
    subscription: Option<Box<dyn Subscription>>,
    stop: tokio::sync::watch::Sender<bool>,
    /// Turns true once the consumer has stopped and the imports it had in hand are done.
    drained: tokio::sync::watch::Receiver<bool>,
    drained_tx: Option<tokio::sync::watch::Sender<bool>>,
    /// Whether the actor runs on an actix system of its own, to stop once drained.
    own_system: bool,
}

/// Stops taking imports; answers once those in hand have finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopImports;

impl ImportWorker {
    /// Binds the import queue on `transport` and starts consuming it.
    pub async fn start(
        state: web::Data<AppState>,
        transport: Arc<dyn Transport>,
    ) -> Result<Addr<ImportWorker>, BusError> {
        transport
            .declare_work_queue(IMPORT_QUEUE, &[IMPORT_KEY.to_owned()])
            .await?;
        let subscription = transport.subscribe(IMPORT_QUEUE).await?;
        let (stop, _) = tokio::sync::watch::channel(false);
        let (drained_tx, drained) = tokio::sync::watch::channel(false);
        let mut worker = ImportWorker {
            runner: Arc::new(Runner { state }),
            subscription: Some(subscription),
            stop,
            drained,
            drained_tx: Some(drained_tx),
            own_system: false,
        };
        if actix_rt::System::try_current().is_some() {
            return Ok(worker.start());
        }
        worker.own_system = true;
        // Hosted outside an actix system (a plain tokio runtime, as in tests): give the
        // actor a system of its own on a thread of its own.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("import-worker".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let _ = tx.send(worker.start());
                });
                let _ = system.run();
            })
            .map_err(|e| BusError::Unavailable(format!("cannot start the import worker: {e}")))?;
        rx.await
            .map_err(|_| BusError::Unavailable("the import worker did not start".into()))
    }
}

impl Actor for ImportWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(subscription) = self.subscription.take() else {
            return;
        };
        let runner = self.runner.clone();
        let config = runner.state.config().import.clone();
        let stop = self.stop.subscribe();
        tracing::info!(
            queue = IMPORT_QUEUE,
            concurrency = config.worker.concurrency,
            "import worker consuming"
        );
        let drained = self.drained_tx.take();
        let own_system = self.own_system;
        let concurrency = config.worker.concurrency;
        actix::spawn(async move {
            consume_work::<ImportImage, _, _>(
                subscription,
                concurrency,
                stop,
                move |work, headers| {
                    let runner = runner.clone();
                    async move { runner.handle(work, headers).await }
                },
            )
            .await;
            tracing::info!("import worker stopped");
            if let Some(drained) = drained {
                let _ = drained.send(true);
            }
            if own_system {
                actix_rt::System::current().stop();
            }
        });
        let sweep = (config.worker.stale_after / 4).max(Duration::from_secs(1));
        ctx.run_interval(sweep, |act, _| {
            let runner = act.runner.clone();
            actix::spawn(async move { runner.recover_stale().await });
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        let _ = self.stop.send(true);
        Running::Stop
    }
}

impl Handler<StopImports> for ImportWorker {
    type Result = actix::ResponseFuture<()>;
    fn handle(&mut self, _: StopImports, ctx: &mut Self::Context) -> Self::Result {
        let _ = self.stop.send(true);
        ctx.stop();
        let mut drained = self.drained.clone();
        Box::pin(async move {
            let _ = drained.wait_for(|done| *done).await;
        })
    }
}

struct Runner {
    state: web::Data<AppState>,
}

/// Everything one run needs, taken from the configuration when it starts.
struct Run<'a> {
    ctx: RequestContext,
    work: &'a ImportWork,
    import: &'a ImportState,
    state: &'a AppState,
    progress: Arc<AtomicU64>,
    /// What glance-download changed on the image before its data arrived, put back if the
    /// import fails (Glance's `_ImportMetadata.revert`).
    revert: std::sync::Mutex<Option<MetadataRevert>>,
}

/// The image's formats and the old values of the properties glance-download set.
#[derive(Debug, Clone)]
struct MetadataRevert {
    disk_format: Option<glance_domain::DiskFormat>,
    container_format: Option<glance_domain::ContainerFormat>,
    /// Each copied property and its value before (`None`: it was not set).
    properties: Vec<(String, Option<String>)>,
}

impl MetadataRevert {
    fn apply(&self, image: &mut Image) {
        image.disk_format = self.disk_format;
        image.container_format = self.container_format;
        for (key, old) in &self.properties {
            match old {
                Some(v) => image.properties.insert(key.clone(), v.clone()),
                None => image.properties.remove(key),
            };
        }
    }
}

/// The message and what it implies.
struct ImportWork {
    msg: ImportImage,
    /// `None` is the single store of a deployment without `enabled_backends`.
    targets: Vec<Option<String>>,
}

impl ImportWork {
    fn new(msg: ImportImage, multi: bool) -> Self {
        let targets = if multi {
            msg.stores.iter().cloned().map(Some).collect()
        } else {
            vec![None]
        };
        Self { msg, targets }
    }

    fn copy(&self) -> bool {
        self.msg.method == ImportMethod::CopyImage
    }

    fn store_ids(&self) -> Vec<String> {
        self.targets.iter().flatten().cloned().collect()
    }
}

impl Runner {
    async fn handle(&self, msg: ImportImage, headers: Headers) -> Outcome {
        let _busy = self.state.in_flight.enter();
        let import = &self.state.import;
        let ttl = self.state.config().import.task_ttl_hours;
        let request_id = headers
            .request_id
            .clone()
            .unwrap_or_else(|| msg.task_id.clone());
        let ctx = RequestContext::admin(request_id);
        let task = match import.tasks.get(&ctx, &msg.task_id).await {
            Ok(task) => task,
            Err(ApiError::NotFound(_)) => return Outcome::Reject("no such task".into()),
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        if task.status.is_final() {
            return Outcome::Done;
        }
        let task = if task.status == TaskStatus::Pending {
            let processing = Task {
                status: TaskStatus::Processing,
                ..task
            };
            match import
                .tasks
                .save(&ctx, processing, Some(TaskStatus::Pending), ttl)
                .await
            {
                Ok(t) => {
                    let notifier = self.state.gateway.notifier();
                    notifier.task(&ctx, "task.processing", &t).await;
                    t
                }
                Err(ApiError::Conflict(_)) => match import.tasks.get(&ctx, &msg.task_id).await {
                    Ok(t) if !t.status.is_final() => t,
                    Ok(_) => return Outcome::Done,
                    Err(e) => return Outcome::Retry(e.to_string()),
                },
                Err(e) => return Outcome::Retry(e.to_string()),
            }
        } else {
            tracing::warn!(task_id = %task.id, "resuming an import another worker left unfinished");
            task
        };
        let work = ImportWork::new(msg, import.stores.is_multi());
        let run = Run {
            ctx,
            work: &work,
            import,
            state: &self.state,
            progress: Arc::default(),
            revert: Default::default(),
        };
        let heartbeat = run.heartbeat(task.clone(), ttl);
        let outcome = run.run().await;
        heartbeat.abort();
        match outcome {
            Ok(()) => run.succeed(task, ttl).await,
            Err(Failure::Transient(why)) => Outcome::Retry(why),
            Err(Failure::Fatal(why)) => {
                tracing::warn!(task_id = %task.id, image_id = %work.msg.image_id, reason = %why, "import failed");
                run.fail(task, &why, true, ttl).await;
                Outcome::Done
            }
            Err(Failure::LockLost) => {
                let why = "Another operation took over the image's import lock";
                run.fail(task, why, false, ttl).await;
                Outcome::Done
            }
        }
    }

    /// Fails imports whose worker stopped (no heartbeat for `stale_after`), so their images
    /// leave `importing`. Any worker may do it; the compare-and-set on the task makes it
    /// happen once.
    async fn recover_stale(&self) {
        let config = self.state.config().import.clone();
        let ctx = RequestContext::admin(glance_telemetry::new_request_id());
        let before =
            Utc::now() - chrono::Duration::from_std(config.worker.stale_after).unwrap_or_default();
        let stale = self
            .state
            .import
            .tasks
            .list(ListTasks {
                ctx: ctx.clone(),
                status: Some(TaskStatus::Processing),
                kind: Some(Task::IMPORT_TYPE.into()),
                updated_before: Some(before),
                limit: 20,
                ..Default::default()
            })
            .await;
        for task in stale.unwrap_or_default() {
            let Some(msg) = work_from_input(&task, &ctx) else {
                continue;
            };
            let work = ImportWork::new(msg, self.state.import.stores.is_multi());
            let run = Run {
                ctx: ctx.clone(),
                work: &work,
                import: &self.state.import,
                state: &self.state,
                progress: Arc::default(),
                revert: Default::default(),
            };
            tracing::warn!(task_id = %task.id, "import stalled; failing it and recovering the image");
            let why = "The import stopped making progress (its worker died or hung); the image was put back";
            run.fail(task, why, true, config.task_ttl_hours).await;
        }
    }
}

/// Rebuilds the work of a task from its Glance-shaped input.
fn work_from_input(task: &Task, ctx: &RequestContext) -> Option<ImportImage> {
    let input = &task.input;
    let req = input.get("import_req")?;
    Some(ImportImage {
        task_id: task.id.clone(),
        image_id: input.get("image_id")?.as_str()?.parse().ok()?,
        method: serde_json::from_value(req.get("method")?.clone()).ok()?,
        stores: input
            .get("backend")
            .and_then(|b| serde_json::from_value::<Vec<Option<String>>>(b.clone()).ok())
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect(),
        all_stores_must_succeed: req
            .get("all_stores_must_succeed")
            .and_then(|v| v.as_bool())
            .unwrap_or(true),
        ctx: ctx.clone(),
        // Only to fail the task: the token is not kept anywhere but in the message.
        remote: None,
    })
}

impl Run<'_> {
    fn image_id(&self) -> glance_domain::ImageId {
        self.work.msg.image_id
    }

    /// The image, if this task still holds its import lock.
    async fn image(&self) -> Result<Image, Failure> {
        let image = match self.state.gateway.get(&self.ctx, self.image_id()).await {
            Ok(image) => image,
            Err(ApiError::NotFound(_)) => {
                return Err(Failure::Fatal(
                    "Image has been deleted, aborting import.".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        if image.properties.get(IMPORT_TASK) != Some(&self.work.msg.task_id) {
            return Err(Failure::LockLost);
        }
        Ok(image)
    }

    /// Saves `change(image)` with a compare-and-set on status, retrying a few lost races
    /// (a concurrent PATCH of an unrelated property).
    async fn update(&self, change: impl Fn(&mut Image)) -> Result<Image, Failure> {
        for _ in 0..5 {
            let mut image = self.image().await?;
            let from = image.status;
            change(&mut image);
            match self.state.gateway.save(&self.ctx, image, Some(from)).await {
                Ok(saved) => return Ok(saved),
                Err(ApiError::Conflict(_)) => continue,
                Err(ApiError::NotFound(_)) => {
                    return Err(Failure::Fatal(
                        "Image has been deleted, aborting import.".into(),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Failure::Transient(
            "the image kept changing under the import".into(),
        ))
    }

    /// Saves the task every quarter of `stale_after` with the bytes copied so far, so the
    /// recovery sweep can tell a slow import from a dead one.
    fn heartbeat(&self, task: Task, ttl: u32) -> tokio::task::JoinHandle<()> {
        let tasks = self.import.tasks.clone();
        let ctx = self.ctx.clone();
        let progress = self.progress.clone();
        let every = (self.state.config().import.worker.stale_after / 4).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let copied = progress.load(Ordering::Relaxed) >> 20;
                let beat = Task {
                    status: TaskStatus::Processing,
                    message: format!("Copied {copied} MiB"),
                    ..task.clone()
                };
                if let Err(e) = tasks
                    .save(&ctx, beat, Some(TaskStatus::Processing), ttl)
                    .await
                {
                    tracing::warn!(error = %e, "import heartbeat not saved");
                }
            }
        })
    }

    async fn run(&self) -> Result<(), Failure> {
        let config = self.state.config();
        let stores = &self.import.stores;
        let staging = stores.staging();
        let image = self.image().await?;
        let staged = staging.location_of(image.id);

        // Where the bytes come from: the staging area (filled now for web-download), or
        // for copy-image the store the image is already in.
        let source: Option<(Backend, String)> = match &self.work.msg.method {
            ImportMethod::GlanceDirect => {
                if staging.size(&staged).await.is_err() {
                    return Err(Failure::Fatal(
                        "Staged image data not found: stage the data again".into(),
                    ));
                }
                None
            }
            ImportMethod::WebDownload { uri } => {
                let http = fetch::client(&config.import.filter, &config.import.worker);
                let body = fetch::open(
                    &http,
                    &config.import.filter,
                    uri,
                    config.image_size_cap,
                    config.import.worker.read_timeout,
                )
                .await
                .map_err(|e| Failure::Fatal(e.to_string()))?;
                let checks = Checks {
                    cap: config.image_size_cap,
                    inspect: None,
                    strict_format: false,
                    // The download is checked when it is imported from staging.
                    expect: &Image::new(image.id, None, image.created_at),
                    hashing_algorithm: &config.hashing_algorithm,
                };
                pipeline::store_stream(self.count(body), &**staging, checks)
                    .await
                    .map_err(|e| Failure::Fatal(e.to_string()))?;
                self.progress.store(0, Ordering::Relaxed);
                None
            }
            ImportMethod::GlanceDownload {
                glance_image_id,
                glance_region,
                glance_service_interface,
            } => {
                self.glance_download(glance_image_id, glance_region, glance_service_interface)
                    .await?;
                None
            }
            ImportMethod::CopyImage => {
                let mut found = None;
                for location in image.locations.iter().filter(|l| l.status == "active") {
                    if let Some(b) = stores
                        .owner_of(
                            &location.url,
                            location.metadata.get("store").map(String::as_str),
                        )
                        .await
                    {
                        found = Some((b.clone(), location.url.clone()));
                        break;
                    }
                }
                Some(found.ok_or_else(|| {
                    Failure::Fatal("The image has no data in any configured store".into())
                })?)
            }
        };

        // The import plugins' result, made when a store first needs the staged data.
        let mut prepared: Option<Prepared> = None;
        let last = self.work.targets.len().saturating_sub(1);
        for (idx, target) in self.work.targets.iter().enumerate() {
            let image = self.image().await?;
            let done = match target {
                Some(id) => image_stores(&image).contains(id),
                None => !image.locations.is_empty(),
            };
            let set_active =
                !self.work.copy() && (!self.work.msg.all_stores_must_succeed || idx == last);
            if done {
                // A previous attempt got this far before it died.
                self.stored_elsewhere(target, set_active).await?;
                continue;
            }
            let backend = match target {
                Some(id) => stores
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Failure::Fatal(format!("Store {id} is not configured here")))?,
                None => stores.default_backend().clone(),
            };
            let result = match &source {
                Some((from, location)) => {
                    self.store_from(&*from.store, location, &backend, &image, false)
                        .await
                }
                None => {
                    let earlier = match prepared {
                        None => self.earlier_output(&image).await,
                        Some(_) => None,
                    };
                    match earlier {
                        Some((from, location)) => {
                            self.store_from(&*from.store, &location, &backend, &image, false)
                                .await
                        }
                        None => {
                            let prepared = match &mut prepared {
                                Some(prepared) => prepared,
                                empty => empty.insert(self.prepare(&image).await?),
                            };
                            self.store_prepared(prepared, &backend, &image).await
                        }
                    }
                }
            };
            let changes = prepared.as_ref().map(|p| &p.changes);
            match result {
                Ok(stored) => self.record(target, stored, set_active, changes).await?,
                Err(e) if self.work.msg.all_stores_must_succeed => {
                    return Err(Failure::Fatal(match target {
                        Some(id) => format!("Import to store {id} failed: {e}"),
                        None => e.to_string(),
                    }))
                }
                Err(e) => {
                    tracing::warn!(store = ?target, error = %e, "import to one store failed; continuing as all_stores_must_succeed is false");
                    let failed = target.clone().into_iter().collect::<Vec<_>>();
                    self.update(|image| {
                        merge_store_list(image, IMPORTING, &failed, true);
                        merge_store_list(image, FAILED, &failed, false);
                    })
                    .await?;
                }
            }
        }
        let image = self.image().await?;
        if !self.work.copy() {
            let _ = staging.delete(&staged).await;
            plugins::discard(staging, image.id).await;
            if image.status != ImageStatus::Active {
                return Err(Failure::Fatal("None of the uploads finished!".into()));
            }
        }
        Ok(())
    }

    /// glance-download's first steps (Glance's `_ImportMetadata` and
    /// `_DownloadGlanceImage`): read the remote image's record as the caller, give the image
    /// its formats and the listed properties, and stage the remote data, checked against the
    /// record. The rest is an ordinary import from staging.
    async fn glance_download(
        &self,
        remote_id: &str,
        region: &str,
        interface: &str,
    ) -> Result<(), Failure> {
        let config = self.state.config();
        let fatal = Failure::Fatal;
        let remote = self.work.msg.remote.as_ref();
        let endpoint = remote.and_then(|r| r.endpoint.as_deref()).ok_or_else(|| {
            fatal(format!(
                "{interface} glance endpoint not found for region {region}"
            ))
        })?;
        let token = remote.and_then(|r| r.token.as_ref());
        let filter = &config.import.filter;
        let worker = &config.import.worker;
        let http = fetch::same_origin_client(filter, worker);
        let url = format!("{endpoint}/v2/images/{remote_id}");
        tracing::info!(%url, "Fetching glance image metadata from remote host");
        let record = download::read_record(&http, filter, &url, token, worker.read_timeout)
            .await
            .map_err(fatal)?;
        let source =
            RemoteImage::from_record(&record, remote_id, &config.import.download_properties)
                .map_err(fatal)?;
        self.take_remote_metadata(&source).await?;

        let url = format!("{url}/file");
        tracing::info!(%url, "Downloading glance image");
        let mut request = http.get(&url);
        if let Some(token) = token {
            request = request.header("x-auth-token", token.expose());
        }
        let body = fetch::open_request(
            request,
            filter,
            &url,
            config.image_size_cap,
            worker.read_timeout,
        )
        .await
        .map_err(|e| fatal(e.to_string()))?;
        let image = self.image().await?;
        let mut expect = Image::new(image.id, None, image.created_at);
        // Hashed as the remote hashed it, so its multihash can be compared.
        expect.os_hash_algo = source.comparable_algo().map(str::to_owned);
        let checks = Checks {
            cap: config.image_size_cap,
            inspect: None,
            strict_format: false,
            // Inspected when it is imported from staging.
            expect: &expect,
            hashing_algorithm: &config.hashing_algorithm,
        };
        let staging = self.import.stores.staging();
        let stored = pipeline::store_stream(self.count(body), &**staging, checks)
            .await
            .map_err(|e| fatal(e.to_string()))?;
        self.progress.store(0, Ordering::Relaxed);
        source
            .verify(&stored, &self.work.msg.task_id)
            .map_err(fatal)
    }

    /// Gives the image the remote image's formats and listed properties, remembering what
    /// they were when the import was accepted, for [`Run::fail`].
    async fn take_remote_metadata(&self, source: &RemoteImage) -> Result<(), Failure> {
        let before = self
            .work
            .msg
            .remote
            .as_ref()
            .map(|r| r.before.clone())
            .unwrap_or_default();
        *self.revert.lock().expect("not poisoned") = Some(MetadataRevert {
            disk_format: before.disk_format,
            container_format: before.container_format,
            properties: source
                .properties
                .keys()
                .map(|k| (k.clone(), before.properties.get(k).cloned()))
                .collect(),
        });
        self.update(|image| {
            if let Some(f) = source.disk_format {
                image.disk_format = Some(f);
            }
            if let Some(f) = source.container_format {
                image.container_format = Some(f);
            }
            image.properties.extend(source.properties.clone());
        })
        .await
        .map(|_| ())
    }

    fn count<S>(&self, source: S) -> impl Stream<Item = Result<Bytes, PipelineError>> + Send
    where
        S: Stream<Item = Result<Bytes, PipelineError>> + Send,
    {
        let progress = self.progress.clone();
        source.inspect(move |chunk| {
            if let Ok(c) = chunk {
                progress.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
        })
    }

    async fn store_from(
        &self,
        from: &dyn glance_store::Store,
        location: &str,
        to: &Backend,
        image: &Image,
        new_data: bool,
    ) -> Result<Stored, PipelineError> {
        let config = self.state.config();
        let source = pipeline::read_store(from, location).await?;
        let checks = Checks {
            cap: config.image_size_cap,
            inspect: if new_data { image.disk_format } else { None },
            strict_format: config.require_image_format_match,
            expect: image,
            hashing_algorithm: &config.hashing_algorithm,
        };
        pipeline::store_stream(self.count(source), &*to.store, checks).await
    }

    /// On a rerun with import plugins, data an earlier attempt stored from their output: the
    /// image already describes it (its formats and checksums changed), so the remaining
    /// stores copy it, checked against those checksums, rather than convert the staged
    /// original again.
    async fn earlier_output(&self, image: &Image) -> Option<(Backend, String)> {
        if self.state.config().import.plugins.chain.is_empty() || image.checksum.is_none() {
            return None;
        }
        let targets = self.work.store_ids();
        for location in image.locations.iter().filter(|l| l.status == "active") {
            let store = location.metadata.get("store");
            if store.is_some_and(|s| targets.contains(s)) {
                let owner = self
                    .import
                    .stores
                    .owner_of(&location.url, store.map(String::as_str))
                    .await;
                if let Some(backend) = owner {
                    return Some((backend.clone(), location.url.clone()));
                }
            }
        }
        None
    }

    /// Runs the import plugins on the staged data of `image`.
    async fn prepare(&self, image: &Image) -> Result<Prepared, Failure> {
        let config = self.state.config();
        plugins::prepare(
            &config.import.plugins,
            self.import.stores.staging(),
            image,
            &self.work.msg.ctx,
            config.image_size_cap,
        )
        .await
        .map_err(|e| Failure::Fatal(e.to_string()))
    }

    /// Stores what the plugins left: the staged data, or their output checked against the
    /// image as they changed it.
    async fn store_prepared(
        &self,
        prepared: &Prepared,
        to: &Backend,
        image: &Image,
    ) -> Result<Stored, PipelineError> {
        let staging = self.import.stores.staging();
        let mut image = image.clone();
        prepared.changes.apply(&mut image);
        let Some(path) = &prepared.data else {
            let staged = staging.location_of(image.id);
            return self.store_from(&**staging, &staged, to, &image, true).await;
        };
        let config = self.state.config();
        let checks = Checks {
            cap: config.image_size_cap,
            inspect: image.disk_format,
            strict_format: config.require_image_format_match,
            expect: &image,
            hashing_algorithm: &config.hashing_algorithm,
        };
        let source = pipeline::read_file(path).await?;
        pipeline::store_stream(self.count(source), &*to.store, checks).await
    }

    /// Records data now in `target`: its location, the checksums if the image had none,
    /// what the import plugins changed, and `active` when this was the store that
    /// completes the import.
    async fn record(
        &self,
        target: &Option<String>,
        stored: Stored,
        set_active: bool,
        changes: Option<&ImageChanges>,
    ) -> Result<(), Failure> {
        let saved = self
            .update(|image| {
                if let Some(changes) = changes {
                    changes.apply(image);
                }
                if image.checksum.is_none() {
                    image.checksum = Some(stored.md5.clone());
                    image.os_hash_algo = Some(stored.os_hash_algo.clone());
                    image.os_hash_value = Some(stored.multihash.clone());
                    image.size = Some(stored.size as i64);
                    image.virtual_size = crate::data::recorded_virtual_size(stored.virtual_size);
                }
                let mut metadata = std::collections::BTreeMap::new();
                if let Some(id) = target {
                    metadata.insert("store".to_owned(), id.clone());
                    merge_store_list(image, IMPORTING, std::slice::from_ref(id), true);
                }
                image.locations.push(Location {
                    url: stored.location.clone(),
                    metadata,
                    status: "active".into(),
                });
                if set_active {
                    image.status = ImageStatus::Active;
                }
            })
            .await;
        if saved.is_err() {
            // Not recorded, so nobody will ever delete it: do it now.
            self.state
                .remove_data(&self.ctx, self.image_id(), [stored.location.clone()])
                .await;
        }
        saved.map(|_| ())
    }

    /// A store a previous attempt already filled: finish its bookkeeping.
    async fn stored_elsewhere(
        &self,
        target: &Option<String>,
        set_active: bool,
    ) -> Result<(), Failure> {
        self.update(|image| {
            if let Some(id) = target {
                merge_store_list(image, IMPORTING, std::slice::from_ref(id), true);
            }
            if set_active {
                image.status = ImageStatus::Active;
            }
        })
        .await
        .map(|_| ())
    }

    /// Drops the import lock and records the task's success, riding out a registry or
    /// database that is away for a moment; if it stays away, the message goes back to the
    /// queue and the next attempt finds the data in place and finishes the bookkeeping.
    async fn succeed(&self, task: Task, ttl: u32) -> Outcome {
        let unlocked = persist("dropping the import lock", || async {
            self.update(|image| {
                image.properties.remove(IMPORT_TASK);
            })
            .await
            .map_err(|f| match f {
                Failure::Transient(m) => ApiError::ServiceUnavailable(m),
                other => ApiError::Internal(format!("{other:?}")),
            })
        })
        .await;
        if let Err(e) = unlocked {
            tracing::warn!(error = %e, "could not drop the import lock");
        }
        let done = Task {
            status: TaskStatus::Success,
            result: Some(serde_json::json!({"image_id": self.image_id().to_string()})),
            // Glance's last progress report stays as the message of a finished import.
            message: format!("Copied {} MiB", self.progress.load(Ordering::Relaxed) >> 20),
            ..task
        };
        let saved = persist("recording the import's success", || {
            self.import.tasks.save(&self.ctx, done.clone(), None, ttl)
        })
        .await;
        match saved {
            Ok(done) => self.notify("task.success", &done).await,
            Err(e) if e.is_transient() => {
                return Outcome::Retry(format!("could not record the import's success: {e}"))
            }
            Err(e) => tracing::warn!(error = %e, "could not record the import's success"),
        }
        tracing::info!(image_id = %self.image_id(), method = self.work.msg.method.name(), "image imported");
        Outcome::Done
    }

    /// Glance's revert: the stores this import wrote to are dropped, its stores move from
    /// importing to failed, the image goes back to `queued` (not for copy-image), the lock
    /// is released and the task records why.
    async fn fail(&self, task: Task, why: &str, restore_image: bool, ttl: u32) {
        if restore_image {
            let targets = self.work.store_ids();
            let copy = self.work.copy();
            let dropped = std::sync::Mutex::new(Vec::new());
            let revert = self.revert.lock().expect("not poisoned").clone();
            let restored = self
                .update(|image| {
                    if let Some(revert) = &revert {
                        revert.apply(image);
                    }
                    let (gone, kept): (Vec<Location>, Vec<Location>) =
                        std::mem::take(&mut image.locations)
                            .into_iter()
                            .partition(|l| match l.metadata.get("store") {
                                Some(store) => targets.contains(store),
                                None => !copy,
                            });
                    image.locations = kept;
                    *dropped.lock().expect("not poisoned") = gone;
                    merge_store_list(image, IMPORTING, &targets, true);
                    merge_store_list(image, FAILED, &targets, false);
                    if image.locations.is_empty() {
                        image.checksum = None;
                        image.os_hash_algo = None;
                        image.os_hash_value = None;
                        image.size = None;
                        image.virtual_size = None;
                    }
                    if !copy && image.status != ImageStatus::Queued {
                        image.status = ImageStatus::Queued;
                        image.size = None;
                        image.virtual_size = None;
                    }
                    image.properties.remove(IMPORT_TASK);
                })
                .await;
            match restored {
                Ok(_) => {
                    let dropped = dropped.into_inner().expect("not poisoned");
                    self.state
                        .remove_data(
                            &self.ctx,
                            self.image_id(),
                            dropped.into_iter().map(|l| l.url),
                        )
                        .await;
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "could not put the image back after a failed import")
                }
            }
            if !copy {
                let staging = self.import.stores.staging();
                let _ = staging.delete(&staging.location_of(self.image_id())).await;
                plugins::discard(staging, self.image_id()).await;
            }
        }
        let failed = Task {
            status: TaskStatus::Failure,
            message: why.to_owned(),
            ..task
        };
        let saved = persist("recording the import's failure", || {
            self.import.tasks.save(&self.ctx, failed.clone(), None, ttl)
        })
        .await;
        match saved {
            Ok(failed) => self.notify("task.failure", &failed).await,
            Err(e) => tracing::warn!(error = %e, "could not record the import's failure"),
        }
    }

    /// A task notification, under the request id of the import's request.
    async fn notify(&self, event_type: &str, task: &Task) {
        let notifier = self.state.gateway.notifier();
        notifier.task(&self.ctx, event_type, task).await;
    }
}

/// Runs `op` again while it fails transiently (the registry or its database away for a
/// moment: a restart, a failover), backing off up to 2 s between tries, for up to 30 s.
async fn persist<T, F, Fut>(what: &str, mut op: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(100);
    loop {
        match op().await {
            Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %e, retry_in = ?pause, "{what} failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}
