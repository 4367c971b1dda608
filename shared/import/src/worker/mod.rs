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
//!
//! Here: the two workers (`import` consumes the queue, `import-recovery` fails stalled
//! imports) and how each message is handled. An import's steps are in [`run`], how it
//! ends (success, failure, the image put back) in [`finish`].

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use glance_bus::{BusError, Outcome, Transport};
use glance_domain::{Image, RequestContext};
use glance_proto::registry::RegistryError;
use glance_proto::tasks::{
    ImportImage, ImportMethod, ListTasks, Task, TaskStatus, IMPORT_KEY, IMPORT_QUEUE,
};
use glance_proto::Headers;
use glance_registry_client::CallError;
use glance_service::{Consumer, Periodic, Workers};

use crate::Importer;

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

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient(why) | Failure::Fatal(why) => f.write_str(why),
            Failure::LockLost => f.write_str("another task took over the image's import lock"),
        }
    }
}

impl crate::Transient for Failure {
    fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient(_))
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        if e.is_transient() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Fatal(e.to_string())
        }
    }
}

/// Starts the import workers of this process on `workers`, whose in-flight count is the
/// API's (`Application::workers`): `import` consumes `glance.v1.import` (bound when this
/// returns), `import-recovery` fails imports whose worker stopped.
pub async fn start(
    importer: Arc<Importer>,
    transport: Arc<dyn Transport>,
    workers: &Workers,
) -> Result<(), BusError> {
    transport
        .declare_work_queue(IMPORT_QUEUE, &[IMPORT_KEY.to_owned()])
        .await?;
    let subscription = transport.subscribe(IMPORT_QUEUE).await?;
    let config = importer.settings().import;
    tracing::info!(
        queue = IMPORT_QUEUE,
        concurrency = config.worker.concurrency,
        "import worker consuming"
    );
    let runner = Arc::new(Runner { import: importer });
    let handler = runner.clone();
    workers.spawn(Consumer::<ImportImage>::new(
        "import",
        subscription,
        config.worker.concurrency,
        move |work, headers| {
            let runner = handler.clone();
            async move { runner.handle(work, headers).await }
        },
    ));
    let every = (config.worker.stale_after / 4).max(Duration::from_secs(1));
    workers.spawn(
        Periodic::new("import-recovery", every, move || {
            let runner = runner.clone();
            async move { runner.recover_stale().await }
        })
        .first_after(every),
    );
    Ok(())
}

struct Runner {
    import: Arc<Importer>,
}

/// Everything one run needs, taken from the configuration when it starts.
struct Run<'a> {
    ctx: RequestContext,
    work: &'a ImportWork,
    import: &'a Importer,
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
        let import = &*self.import;
        let ttl = import.settings().import.task_ttl_hours;
        let request_id = headers
            .request_id
            .clone()
            .unwrap_or_else(|| msg.task_id.clone());
        let ctx = RequestContext::admin(request_id);
        let task = match import.tasks.get(&ctx, &msg.task_id).await {
            Ok(task) => task,
            Err(e) if e.missing().is_some() => return Outcome::Reject("no such task".into()),
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
                    import.notifier.task(&ctx, "task.processing", &t).await;
                    t
                }
                Err(CallError::Refused(RegistryError::Conflict(_))) => {
                    match import.tasks.get(&ctx, &msg.task_id).await {
                        Ok(t) if !t.status.is_final() => t,
                        Ok(_) => return Outcome::Done,
                        Err(e) => return Outcome::Retry(e.to_string()),
                    }
                }
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
        let config = self.import.settings().import;
        let ctx = RequestContext::admin(glance_telemetry::new_request_id());
        let before =
            Utc::now() - chrono::Duration::from_std(config.worker.stale_after).unwrap_or_default();
        let stale = self
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
            let work = ImportWork::new(msg, self.import.stores.is_multi());
            let run = Run {
                ctx: ctx.clone(),
                work: &work,
                import: &self.import,
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

mod finish;
mod run;
