//! One import's steps (`Run`): the image under its import lock, the heartbeat, the data
//! from the staging area, a URL or another region to every target store, the plugins, and
//! the records that say where the data is.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use glance_domain::{Image, ImageStatus, Location};
use glance_proto::tasks::{ImportMethod, Task, TaskStatus};
use glance_store::{Backend, Store};

use glance_proto::registry::RegistryError;
use glance_registry_client::CallError;

use crate::download::RemoteImage;
use crate::pipeline::{self, Checks, PipelineError, Stored};
use crate::plugins::{self, ImageChanges, Prepared};
use crate::tasks::{image_stores, merge_store_list, FAILED, IMPORTING, IMPORT_TASK};
use crate::{download, fetch};

use super::{Failure, MetadataRevert, Run};

impl Run<'_> {
    pub(super) fn image_id(&self) -> glance_domain::ImageId {
        self.work.msg.image_id
    }

    /// The image, if this task still holds its import lock.
    pub(super) async fn image(&self) -> Result<Image, Failure> {
        let image = match self.import.image(&self.ctx, self.image_id()).await {
            Ok(image) => image,
            Err(e) if e.missing().is_some() => {
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
    pub(super) async fn update(&self, change: impl Fn(&mut Image)) -> Result<Image, Failure> {
        for _ in 0..5 {
            let mut image = self.image().await?;
            let from = image.status;
            change(&mut image);
            match self.import.save(&self.ctx, image, Some(from)).await {
                Ok(saved) => return Ok(saved),
                Err(CallError::Refused(RegistryError::Conflict(_))) => continue,
                Err(e) if e.missing().is_some() => {
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
    pub(super) fn heartbeat(&self, task: Task, ttl: u32) -> tokio::task::JoinHandle<()> {
        let tasks = self.import.tasks.clone();
        let ctx = self.ctx.clone();
        let progress = self.progress.clone();
        let every =
            (self.import.settings().import.worker.stale_after / 4).max(Duration::from_secs(1));
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

    pub(super) async fn run(&self) -> Result<(), Failure> {
        let config = self.import.settings();
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
            crate::remove_staged(staging, image.id).await;
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
    pub(super) async fn glance_download(
        &self,
        remote_id: &str,
        region: &str,
        interface: &str,
    ) -> Result<(), Failure> {
        let config = self.import.settings();
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
    pub(super) async fn take_remote_metadata(&self, source: &RemoteImage) -> Result<(), Failure> {
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

    pub(super) fn count<S>(
        &self,
        source: S,
    ) -> impl Stream<Item = Result<Bytes, PipelineError>> + Send
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

    pub(super) async fn store_from(
        &self,
        from: &dyn glance_store::Store,
        location: &str,
        to: &Backend,
        image: &Image,
        new_data: bool,
    ) -> Result<Stored, PipelineError> {
        let config = self.import.settings();
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
    pub(super) async fn earlier_output(&self, image: &Image) -> Option<(Backend, String)> {
        if self.import.settings().import.plugins.chain.is_empty() || image.checksum.is_none() {
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
    pub(super) async fn prepare(&self, image: &Image) -> Result<Prepared, Failure> {
        let config = self.import.settings();
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
    pub(super) async fn store_prepared(
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
        let config = self.import.settings();
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
    pub(super) async fn record(
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
                    image.virtual_size = crate::recorded_virtual_size(stored.virtual_size);
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
            self.import
                .remove_data(&self.ctx, self.image_id(), [stored.location.clone()])
                .await;
        }
        saved.map(|_| ())
    }

    /// A store a previous attempt already filled: finish its bookkeeping.
    pub(super) async fn stored_elsewhere(
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
}
