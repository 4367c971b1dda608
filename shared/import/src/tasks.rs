//! Task records over the bus, and the image changes an import makes (Glance's
//! `ImportActionWrapper`), each a compare-and-set save.

use glance_domain::{Image, ImageId, RequestContext};
use glance_proto::tasks::{CreateTask, GetTask, ListTasks, SaveTask, Task, TaskStatus};
use glance_registry_client::{CallError, RegistryClient};

/// The property that holds the id of the import task owning the image (the import lock).
pub const IMPORT_TASK: &str = "os_glance_import_task";
/// Stores an import is still writing to.
pub const IMPORTING: &str = "os_glance_importing_to_stores";
/// Stores an import failed to write to.
pub const FAILED: &str = "os_glance_failed_import";

#[derive(Clone)]
pub struct TaskClient {
    registry: RegistryClient,
}

impl TaskClient {
    pub fn new(registry: RegistryClient) -> Self {
        Self { registry }
    }

    pub async fn create(&self, ctx: &RequestContext, task: Task) -> Result<Task, CallError> {
        let req = CreateTask {
            ctx: ctx.clone(),
            task,
        };
        self.registry.call(Some(ctx.request_id.clone()), &req).await
    }

    pub async fn get(&self, ctx: &RequestContext, id: &str) -> Result<Task, CallError> {
        let req = GetTask {
            ctx: ctx.clone(),
            id: id.to_owned(),
        };
        self.registry.call(Some(ctx.request_id.clone()), &req).await
    }

    pub async fn list(&self, req: ListTasks) -> Result<Vec<Task>, CallError> {
        self.registry
            .call(Some(req.ctx.request_id.clone()), &req)
            .await
    }

    pub async fn save(
        &self,
        ctx: &RequestContext,
        task: Task,
        from_status: Option<TaskStatus>,
        ttl_hours: u32,
    ) -> Result<Task, CallError> {
        let req = SaveTask {
            ctx: ctx.clone(),
            task,
            from_status,
            ttl_hours,
        };
        self.registry.call(Some(ctx.request_id.clone()), &req).await
    }

    pub async fn for_image(
        &self,
        ctx: &RequestContext,
        image_id: ImageId,
    ) -> Result<Vec<Task>, CallError> {
        self.list(ListTasks {
            ctx: ctx.clone(),
            image_id: Some(image_id),
            limit: 1000,
            ..Default::default()
        })
        .await
    }
}

/// A comma-separated store list property, as a set in Glance's order (sorted).
pub fn store_list(image: &Image, key: &str) -> Vec<String> {
    let mut v: Vec<String> = image
        .properties
        .get(key)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// Glance's `merge_store_list`: adds (or removes) `stores` in the list property `key`.
pub fn merge_store_list(image: &mut Image, key: &str, stores: &[String], subtract: bool) {
    let mut list = store_list(image, key);
    if subtract {
        list.retain(|s| !stores.contains(s));
    } else {
        list.extend(stores.iter().filter(|s| !s.is_empty()).cloned());
        list.sort();
        list.dedup();
    }
    image.properties.insert(key.to_owned(), list.join(","));
}

/// The store ids an image's data is in (locations' `store` metadata), Glance's `stores`.
pub fn image_stores(image: &Image) -> Vec<String> {
    image
        .locations
        .iter()
        .filter_map(|l| l.metadata.get("store").cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_lists_merge_as_sorted_sets() {
        let mut image = Image::new(ImageId::new(), None, chrono::Utc::now());
        merge_store_list(&mut image, IMPORTING, &["b".into(), "a".into()], false);
        merge_store_list(&mut image, IMPORTING, &["a".into()], false);
        assert_eq!(image.properties[IMPORTING], "a,b");
        merge_store_list(&mut image, IMPORTING, &["a".into(), "c".into()], true);
        assert_eq!(image.properties[IMPORTING], "b");
    }
}
