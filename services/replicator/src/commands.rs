//! The five commands, with Glance's semantics carried over to v2: what is copied, what is
//! skipped, and a tally of what was done. Per-image failures are reported and counted and
//! the run goes on; the exit status says whether any image failed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::Stream;
use md5::{Digest, Md5};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fields::{self, Policy};
use crate::server::{body_stream, progress, Glance, ServerError};

/// Largest metadata file `load` reads: an image document is a few kB (Glance caps
/// properties well below this), so anything bigger is not one.
const MAX_METADATA_BYTES: u64 = 4 << 20;

/// What one run of a command needs besides its servers.
pub struct Run {
    pub policy: Policy,
    pub chunksize: usize,
    pub metaonly: bool,
}

/// What was done to how many images.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} unchanged, {} skipped, {} failed",
            self.created, self.updated, self.unchanged, self.skipped, self.failed
        )
    }
}

fn id_of(image: &Value) -> &str {
    image["id"].as_str().unwrap_or_default()
}

fn status_of(image: &Value) -> &str {
    image["status"].as_str().unwrap_or_default()
}

fn label(image: &Value) -> String {
    match image["name"].as_str() {
        Some(name) => format!("{} ({name})", id_of(image)),
        None => id_of(image).to_owned(),
    }
}

/// Glance's `_human_readable_size`: binary units, one decimal.
pub fn human_size(bytes: u64) -> String {
    let mut n = bytes as f64;
    for unit in ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
        if n < 1024.0 {
            return format!("{n:.1} {unit}B");
        }
        n /= 1024.0;
    }
    format!("{n:.1} ZiB")
}

/// `size`: the bytes a dump of the server's active images would take.
pub async fn size(server: &Glance) -> anyhow::Result<()> {
    let images = server.list().await?;
    let active: Vec<&Value> = images.iter().filter(|i| status_of(i) == "active").collect();
    let total: u64 = active.iter().filter_map(|i| i["size"].as_u64()).sum();
    for image in &active {
        tracing::debug!(image = %label(image), size = %image["size"], "counted");
    }
    println!(
        "Total size is {total} bytes ({}) across {} images",
        human_size(total),
        active.len()
    );
    Ok(())
}

/// Checks that the data the target now holds is the source's: size, MD5 and multihash.
fn verify(source: &Value, target: &Value) -> Result<(), String> {
    let mut bad = Vec::new();
    for key in ["size", "checksum"] {
        if !source[key].is_null() && source[key] != target[key] {
            bad.push(format!("{key} {} != {}", source[key], target[key]));
        }
    }
    if !source["os_hash_value"].is_null()
        && source["os_hash_algo"] == target["os_hash_algo"]
        && source["os_hash_value"] != target["os_hash_value"]
    {
        bad.push("os_hash_value differs".to_owned());
    }
    if status_of(target) != "active" {
        bad.push(format!("target status is {}", status_of(target)));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "data on the target does not match the source: {}",
            bad.join("; ")
        ))
    }
}

/// Where a changed image's data comes from.
enum Data<'a> {
    Live(&'a Glance),
    File(PathBuf),
}

impl Run {
    /// Creates `source` on `target` with the same id (without `owner` if the target does
    /// not let us set it, which it then never will in this run).
    async fn create(&mut self, target: &Glance, source: &Value) -> anyhow::Result<Value> {
        let body = self.policy.create_body(source);
        match target.create(&body).await {
            Err(e)
                if e.status() == Some(reqwest::StatusCode::FORBIDDEN)
                    && self.policy.owner_copied()
                    && body.get("owner").is_some() =>
            {
                eprintln!(
                    "WARNING: {} refused to set owner ({e}); images will be owned by the target token's project",
                    target.name()
                );
                self.policy.skip_owner();
                Ok(target.create(&self.policy.create_body(source)).await?)
            }
            Err(e) if e.status() == Some(reqwest::StatusCode::CONFLICT) => Err(anyhow::anyhow!(
                "{e} (the id is taken on the target: the image is there but we have no permission \
                 to see it, or it was deleted there)"
            )),
            other => Ok(other?),
        }
    }

    /// Makes the target's copyable fields equal the source's; whether anything changed.
    async fn update(
        &mut self,
        target: &Glance,
        source: &Value,
        current: &Value,
    ) -> anyhow::Result<bool> {
        let changes = self.policy.diff(source, current);
        if changes.is_empty() {
            return Ok(false);
        }
        let id = id_of(source);
        match target.patch(id, &fields::patch(&changes)).await {
            Err(e)
                if e.status() == Some(reqwest::StatusCode::FORBIDDEN)
                    && self.policy.owner_copied()
                    && changes.iter().any(|c| c.field() == "owner") =>
            {
                eprintln!(
                    "WARNING: {} refused to change owner ({e}); owner is left alone",
                    target.name()
                );
                self.policy.skip_owner();
                let changes = self.policy.diff(source, current);
                if changes.is_empty() {
                    return Ok(false);
                }
                target.patch(id, &fields::patch(&changes)).await?;
                println!("updated {}: {}", label(source), fields::names(&changes));
            }
            other => {
                other?;
                println!("updated {}: {}", label(source), fields::names(&changes));
            }
        }
        Ok(true)
    }

    /// Sends the data of `source` to the (queued) target image and checks what arrived.
    async fn upload(&self, target: &Glance, source: &Value, data: Data<'_>) -> anyhow::Result<()> {
        let id = id_of(source);
        let size = source["size"].as_u64();
        let bar = progress(id, size);
        match data {
            Data::Live(from) => {
                let Some(res) = from.download(id).await? else {
                    anyhow::bail!("{} has no data for {id}", from.name());
                };
                target
                    .upload(id, body_stream(res, bar.clone()), size)
                    .await?;
            }
            Data::File(path) => {
                let file = tokio::fs::File::open(&path)
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let len = file.metadata().await?.len();
                target
                    .upload(
                        id,
                        file_stream(file, self.chunksize, bar.clone()),
                        Some(len),
                    )
                    .await?;
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let arrived = target
            .show(id)
            .await?
            .with_context(|| format!("{id} vanished from {} after its upload", target.name()))?;
        verify(source, &arrived).map_err(|e| anyhow::anyhow!(e))
    }

    /// Replicates one image onto `target`: what livecopy and load share. `data` is where
    /// the bytes come from when the image must be created (None: it cannot be).
    async fn replicate(
        &mut self,
        target: &Glance,
        source: &Value,
        data: Option<Data<'_>>,
        update_inactive: bool,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let id = id_of(source);
        let present = target.show(id).await?;
        let source_active = status_of(source) == "active";
        match present {
            // An earlier run created it and failed to send the data: finish the job.
            Some(current)
                if status_of(&current) == "queued"
                    && source_active
                    && data.is_some()
                    && !self.metaonly =>
            {
                self.update(target, source, &current).await?;
                self.upload(target, source, data.expect("checked")).await?;
                println!(
                    "created {} (data sent to the queued target image)",
                    label(source)
                );
                tally.created += 1;
            }
            Some(current) if update_inactive || status_of(&current) == "active" => {
                if self.update(target, source, &current).await? {
                    tally.updated += 1;
                } else {
                    tracing::info!(image = %label(source), "unchanged");
                    tally.unchanged += 1;
                }
            }
            Some(current) => {
                println!(
                    "skipped {}: target image is {}",
                    label(source),
                    status_of(&current)
                );
                tally.skipped += 1;
            }
            None if !source_active => {
                println!(
                    "skipped {}: source image is {}",
                    label(source),
                    status_of(source)
                );
                tally.skipped += 1;
            }
            None if self.metaonly => {
                println!(
                    "skipped {}: absent from the target (--metaonly)",
                    label(source)
                );
                tally.skipped += 1;
            }
            None => match data {
                None => {
                    println!("skipped {}: no image data to load", label(source));
                    tally.skipped += 1;
                }
                Some(data) => {
                    self.create(target, source).await?;
                    self.upload(target, source, data).await?;
                    println!("created {}", label(source));
                    tally.created += 1;
                }
            },
        }
        Ok(())
    }

    /// `livecopy`: replicates every source image onto the target.
    pub async fn livecopy(&mut self, from: &Glance, to: &Glance) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        for source in from.list().await? {
            if let Err(e) = self
                .replicate(to, &source, Some(Data::Live(from)), false, &mut tally)
                .await
            {
                eprintln!("ERROR: image {}: {e:#}", label(&source));
                tally.failed += 1;
            }
        }
        Ok(tally)
    }

    /// `load`: replicates every image dumped in `dir` onto the target.
    pub async fn load(&mut self, to: &Glance, dir: &Path) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        for (id, meta) in dumped(dir)? {
            let outcome = async {
                let len = tokio::fs::metadata(&meta).await?.len();
                anyhow::ensure!(
                    len <= MAX_METADATA_BYTES,
                    "{} is {len} bytes: too large for an image document",
                    meta.display()
                );
                let text = tokio::fs::read_to_string(&meta)
                    .await
                    .with_context(|| format!("cannot read {}", meta.display()))?;
                let source: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not an image document", meta.display()))?;
                anyhow::ensure!(
                    id_of(&source) == id,
                    "{} describes image {:?}",
                    meta.display(),
                    id_of(&source)
                );
                let img = dir.join(format!("{id}.img"));
                let data = img.is_file().then_some(Data::File(img));
                self.replicate(to, &source, data, true, &mut tally).await
            }
            .await;
            if let Err(e) = outcome {
                eprintln!("ERROR: image {id}: {e:#}");
                tally.failed += 1;
            }
        }
        Ok(tally)
    }

    /// `dump`: writes each image's JSON, and the data of active ones, into `dir`.
    pub async fn dump(&self, from: &Glance, dir: &Path) -> anyhow::Result<Tally> {
        anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
        let mut tally = Tally::default();
        for image in from.list().await? {
            match self.dump_one(from, &image, dir).await {
                Ok(true) => tally.created += 1,
                Ok(false) => tally.skipped += 1,
                Err(e) => {
                    eprintln!("ERROR: image {}: {e:#}", label(&image));
                    tally.failed += 1;
                }
            }
        }
        Ok(tally)
    }

    /// Dumps one image; false when its metadata file was already there. The data goes first
    /// and the metadata last, each through a temporary name, so an interrupted dump is
    /// redone rather than skipped next time.
    async fn dump_one(&self, from: &Glance, image: &Value, dir: &Path) -> anyhow::Result<bool> {
        let id = id_of(image);
        anyhow::ensure!(
            uuid::Uuid::parse_str(id).is_ok(),
            "the server listed an image with id {id:?}"
        );
        let meta = dir.join(id);
        if meta.exists() {
            tracing::info!(image = %label(image), "already dumped");
            return Ok(false);
        }
        if status_of(image) == "active" && !self.metaonly {
            if let Some(res) = from.download(id).await? {
                let img = dir.join(format!("{id}.img"));
                self.write_data(res, image, &img).await?;
            }
        }
        let part = dir.join(format!("{id}.part"));
        tokio::fs::write(&part, serde_json::to_vec_pretty(image)?)
            .await
            .with_context(|| format!("cannot write {}", part.display()))?;
        tokio::fs::rename(&part, &meta).await?;
        println!("dumped {}", label(image));
        Ok(true)
    }

    /// Streams a download into `path`, checking its size and MD5 against the metadata.
    async fn write_data(
        &self,
        mut res: reqwest::Response,
        image: &Value,
        path: &Path,
    ) -> anyhow::Result<()> {
        let part = path.with_extension("img.part");
        let file = tokio::fs::File::create(&part)
            .await
            .with_context(|| format!("cannot create {}", part.display()))?;
        let mut out = tokio::io::BufWriter::with_capacity(self.chunksize, file);
        let bar = progress(id_of(image), image["size"].as_u64());
        let mut md5 = Md5::new();
        let mut written: u64 = 0;
        while let Some(chunk) = res.chunk().await.context("download interrupted")? {
            md5.update(&chunk);
            written += chunk.len() as u64;
            out.write_all(&chunk).await?;
            if let Some(b) = &bar {
                b.inc(chunk.len() as u64);
            }
        }
        out.flush().await?;
        out.into_inner().sync_all().await?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let checksum = hex::encode(md5.finalize());
        let size_ok = image["size"].as_u64().is_none_or(|n| n == written);
        let sum_ok = image["checksum"].as_str().is_none_or(|c| c == checksum);
        if !(size_ok && sum_ok) {
            let _ = tokio::fs::remove_file(&part).await;
            anyhow::bail!(
                "downloaded {written} bytes with MD5 {checksum}, but the image has size {} and checksum {}",
                image["size"],
                image["checksum"]
            );
        }
        tokio::fs::rename(&part, path).await?;
        Ok(())
    }
}

/// The metadata files of a dump: entries named by a UUID, sorted.
fn dumped(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if uuid::Uuid::parse_str(&name).is_ok() && entry.path().is_file() {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A file as a stream of `chunk`-byte reads.
fn file_stream(
    file: tokio::fs::File,
    chunk: usize,
    bar: Option<indicatif::ProgressBar>,
) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures::stream::try_unfold((file, bar), move |(mut file, bar)| async move {
        let mut buf = bytes::BytesMut::with_capacity(chunk);
        while buf.len() < chunk {
            if file.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        if let Some(b) = &bar {
            b.inc(buf.len() as u64);
        }
        Ok(Some((buf.freeze(), (file, bar))))
    })
}

/// How one source image stands against the target, for `compare`.
#[derive(Debug, PartialEq, Eq)]
pub enum Difference {
    Missing,
    Fields(String),
}

/// `compare`: each source image missing from the target or differing from it.
pub async fn compare(
    policy: &Policy,
    from: &Glance,
    to: &Glance,
) -> Result<Vec<(String, Difference)>, ServerError> {
    let mut out = Vec::new();
    let mut same = 0usize;
    for source in from.list().await? {
        let id = id_of(&source).to_owned();
        match to.show(&id).await? {
            None if status_of(&source) == "active" => {
                println!("{}: missing", label(&source));
                out.push((id, Difference::Missing));
            }
            None => {
                tracing::info!(image = %label(&source), "absent from the target but not active")
            }
            Some(target) => {
                let mut differing: Vec<String> = policy
                    .diff(&source, &target)
                    .iter()
                    .map(|c| c.field().to_owned())
                    .collect();
                let both_active = status_of(&source) == "active" && status_of(&target) == "active";
                if both_active && source["checksum"] != target["checksum"] {
                    differing.push("data (checksum)".into());
                }
                if differing.is_empty() {
                    same += 1;
                } else {
                    let fields = differing.join(", ");
                    println!("{}: differs: {fields}", label(&source));
                    out.push((id, Difference::Fields(fields)));
                }
            }
        }
    }
    let missing = out
        .iter()
        .filter(|(_, d)| *d == Difference::Missing)
        .count();
    println!(
        "Compared: {missing} missing, {} differ, {same} identical",
        out.len() - missing
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_read_as_glance_prints_them() {
        assert_eq!(human_size(0), "0.0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn an_upload_that_changed_the_bytes_is_an_error() {
        let src =
            json!({"size": 3, "checksum": "a", "os_hash_algo": "sha512", "os_hash_value": "x"});
        let mut dst = src.clone();
        dst["status"] = json!("active");
        assert!(verify(&src, &dst).is_ok());
        dst["os_hash_value"] = json!("y");
        assert!(verify(&src, &dst).unwrap_err().contains("os_hash_value"));
        dst["os_hash_value"] = json!("x");
        dst["size"] = json!(4);
        assert!(verify(&src, &dst).unwrap_err().contains("size"));
    }

    #[tokio::test]
    async fn a_file_streams_in_chunks_of_the_asked_size() {
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let chunks: Vec<bytes::Bytes> = file_stream(file, 4096, None).try_collect().await.unwrap();
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![4096, 4096, 1808]);
    }
}
