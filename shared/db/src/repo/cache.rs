//! Records and list pages kept in memory, for a registry that is its database's only
//! writer (SQLite, embedded): every write goes through this process, so every write can
//! invalidate. With several registries on one database (PostgreSQL) it must stay off, since
//! another process's write could not reach it.
//!
//! Staleness is ruled out by a generation counter, bumped after every committed write: a
//! read notes the generation before it starts and keeps what it read only if no write
//! committed meanwhile, and a page is served only at the generation it was read at.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use glance_domain::{Image, ImageId, RequestContext, Visibility};
use glance_proto::registry::ListImages;

/// Pages kept at most; past this the page map starts over (pages die at the next write
/// anyway, so there is no recency worth tracking).
const MAX_PAGES: usize = 1024;

#[derive(Debug)]
pub(crate) struct RecordCache {
    records: RwLock<HashMap<ImageId, Image>>,
    pages: RwLock<HashMap<String, (u64, Vec<Image>)>>,
    capacity: usize,
    generation: AtomicU64,
}

impl RecordCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            records: RwLock::new(HashMap::new()),
            pages: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            generation: AtomicU64::new(0),
        }
    }

    /// Take this before reading the database; pass it back to `keep_*`.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// A kept record, if `ctx` may see it without a membership lookup (a member of a shared
    /// image goes to the database, which knows the members).
    pub(crate) fn record(&self, ctx: &RequestContext, id: &ImageId) -> Option<Image> {
        let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
        let image = records.get(id)?;
        let visible = ctx.is_admin
            || image.owner.is_none()
            || matches!(image.visibility, Visibility::Public | Visibility::Community)
            || ctx.owns(image.owner.as_deref());
        visible.then(|| image.clone())
    }

    pub(crate) fn keep_record(&self, image: &Image, read_at: u64) {
        if image.status.is_deleted() {
            return;
        }
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation() != read_at {
            return;
        }
        if records.len() >= self.capacity && !records.contains_key(&image.id) {
            // Crude but bounded: start over rather than track recency on the read path.
            records.clear();
        }
        records.insert(image.id, image.clone());
    }

    /// What decides a page: everything in the request but its id.
    pub(crate) fn page_key(req: &ListImages) -> String {
        serde_json::to_string(&(
            &req.ctx.project_id,
            &req.ctx.roles,
            req.ctx.is_admin,
            &req.filters,
            &req.sort,
            req.limit,
            &req.marker,
        ))
        .expect("list requests serialise")
    }

    pub(crate) fn page(&self, key: &str) -> Option<Vec<Image>> {
        let pages = self.pages.read().unwrap_or_else(PoisonError::into_inner);
        match pages.get(key) {
            Some((generation, page)) if *generation == self.generation() => Some(page.clone()),
            _ => None,
        }
    }

    pub(crate) fn keep_page(&self, key: String, page: &[Image], read_at: u64) {
        let mut pages = self.pages.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation() != read_at {
            return;
        }
        if pages.len() >= MAX_PAGES {
            pages.clear();
        }
        pages.insert(key, (read_at, page.to_vec()));
    }

    /// After a committed write to `id` (a membership change counts: it changes who sees
    /// what).
    pub(crate) fn written(&self, id: &ImageId) {
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        records.remove(id);
    }
}
