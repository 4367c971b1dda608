//! The metadefs API (`/v2/metadefs/...`, Glance's `api/v2/metadef_*.py`): namespaces,
//! their objects, properties and tags, and resource types with their associations.
//!
//! Handlers parse and render; [`Client`] asks the registry over the bus; the policy is
//! Glance's: any reader may read the namespaces they see (public ones and their project's),
//! only admins write. As in Glance, a namespace the caller may not read answers 404 before
//! any write rule is checked, and a write refused by policy answers 403.

mod elements;
mod namespaces;
mod render;
mod resource_types;

use glance_bus::Bus;
use glance_domain::RequestContext;
use glance_proto::metadefs::{
    Association, Contents, CreateAssociation, CreateElements, CreateNamespace, DeleteAssociation,
    DeleteElements, DeleteNamespace, Element, ElementKind, GetElement, GetNamespace, ListElements,
    ListNamespaces, ListedNamespace, Namespace, ResourceType, UpdateElement, UpdateNamespace,
};
use glance_proto::registry::RegistryError;
use glance_proto::Rpc;

use crate::error::{ApiError, ApiResult};
use crate::gateway::forbidden;
use crate::policy::{Policy, Target};
use crate::routing::{not_allowed, Resource, Routes};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    use elements as el;
    use namespaces as ns;
    use resource_types as rt;
    const NS: &str = "/v2/metadefs/namespaces/{namespace}";
    r.add(
        Resource::new("/v2/metadefs/namespaces")
            .get(ns::list)
            .post(ns::create)
            .others(not_allowed("GET, POST")),
    )
    .add(
        Resource::new(NS)
            .get(ns::show)
            .put(ns::update)
            .delete(ns::delete)
            .others(not_allowed("GET, PUT, DELETE")),
    )
    .add(
        Resource::new(format!("{NS}/objects"))
            .get(el::list_objects)
            .post(el::create_object)
            .delete(el::delete_objects)
            .others(not_allowed("GET, POST, DELETE")),
    )
    .add(
        Resource::new(format!("{NS}/objects/{{name}}"))
            .get(el::show_object)
            .put(el::update_object)
            .delete(el::delete_object)
            .others(not_allowed("GET, PUT, DELETE")),
    )
    .add(
        Resource::new(format!("{NS}/properties"))
            .get(el::list_properties)
            .post(el::create_property)
            .delete(el::delete_properties)
            .others(not_allowed("GET, POST, DELETE")),
    )
    .add(
        Resource::new(format!("{NS}/properties/{{name}}"))
            .get(el::show_property)
            .put(el::update_property)
            .delete(el::delete_property)
            .others(not_allowed("GET, PUT, DELETE")),
    )
    .add(
        Resource::new(format!("{NS}/tags"))
            .get(el::list_tags)
            .post(el::create_tags)
            .delete(el::delete_tags)
            .others(not_allowed("GET, POST, DELETE")),
    )
    .add(
        Resource::new(format!("{NS}/tags/{{name}}"))
            .get(el::show_tag)
            .post(el::create_tag)
            .put(el::update_tag)
            .delete(el::delete_tag)
            .others(not_allowed("GET, POST, PUT, DELETE")),
    )
    .add(
        Resource::new(format!("{NS}/resource_types"))
            .get(rt::list_associations)
            .post(rt::associate)
            .others(not_allowed("GET, POST")),
    )
    .add(
        Resource::new(format!("{NS}/resource_types/{{name}}"))
            .delete(rt::dissociate)
            .others(not_allowed("DELETE")),
    )
    .add(
        Resource::new("/v2/metadefs/resource_types")
            .get(rt::list)
            .others(not_allowed("GET")),
    );
}

/// Registry refusals in the metadefs' words: a protected namespace refuses deletes (403).
fn refused(e: RegistryError) -> ApiError {
    match e {
        RegistryError::NotFound(missing) => ApiError::NotFound(missing.to_string()),
        RegistryError::Conflict(msg) => ApiError::Forbidden(msg),
        RegistryError::Duplicate(msg) => ApiError::Conflict(msg),
        RegistryError::Invalid(msg) => ApiError::BadRequest(msg),
        RegistryError::Unavailable(msg) => ApiError::ServiceUnavailable(msg),
        RegistryError::Internal(msg) => ApiError::Internal(msg),
    }
}

/// The registry's metadefs requests, for handlers.
#[derive(Clone)]
pub struct Client {
    bus: Bus,
}

impl Client {
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }

    async fn call<R>(&self, ctx: &RequestContext, req: R) -> ApiResult<R::Reply>
    where
        R: Rpc,
    {
        Ok(self.bus.call(Some(ctx.request_id.clone()), &req).await?)
    }

    pub async fn list(&self, req: ListNamespaces) -> ApiResult<Vec<ListedNamespace>> {
        let ctx = req.ctx.clone();
        self.call(&ctx, req).await?.map_err(refused)
    }

    pub async fn namespace(&self, ctx: &RequestContext, name: &str) -> ApiResult<Contents> {
        let req = GetNamespace {
            ctx: ctx.clone(),
            namespace: name.to_owned(),
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn create(&self, ctx: &RequestContext, contents: Contents) -> ApiResult<Contents> {
        let req = CreateNamespace {
            ctx: ctx.clone(),
            contents,
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn update(
        &self,
        ctx: &RequestContext,
        name: &str,
        update: Namespace,
    ) -> ApiResult<Namespace> {
        let req = UpdateNamespace {
            ctx: ctx.clone(),
            namespace: name.to_owned(),
            update,
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn delete(&self, ctx: &RequestContext, name: &str) -> ApiResult<()> {
        let req = DeleteNamespace {
            ctx: ctx.clone(),
            namespace: name.to_owned(),
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn elements(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
    ) -> ApiResult<Vec<Element>> {
        let req = ListElements {
            ctx: ctx.clone(),
            namespace: namespace.to_owned(),
            kind,
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn element(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
        name: &str,
    ) -> ApiResult<Element> {
        let req = GetElement {
            ctx: ctx.clone(),
            namespace: namespace.to_owned(),
            kind,
            name: name.to_owned(),
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn add(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
        elements: Vec<Element>,
        replace: bool,
    ) -> ApiResult<Vec<Element>> {
        let req = CreateElements {
            ctx: ctx.clone(),
            namespace: namespace.to_owned(),
            kind,
            elements,
            replace,
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn replace(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
        name: &str,
        element: Element,
    ) -> ApiResult<Element> {
        let req = UpdateElement {
            ctx: ctx.clone(),
            namespace: namespace.to_owned(),
            kind,
            name: name.to_owned(),
            element,
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn remove(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
        name: Option<&str>,
    ) -> ApiResult<()> {
        let req = DeleteElements {
            ctx: ctx.clone(),
            namespace: namespace.to_owned(),
            kind,
            name: name.map(str::to_owned),
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn resource_types(&self, ctx: &RequestContext) -> ApiResult<Vec<ResourceType>> {
        let req = glance_proto::metadefs::ListResourceTypes { ctx: ctx.clone() };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn associate(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        association: Association,
    ) -> ApiResult<Association> {
        let req = CreateAssociation {
            ctx: ctx.clone(),
            namespace: namespace.to_owned(),
            association,
        };
        self.call(ctx, req).await?.map_err(refused)
    }

    pub async fn dissociate(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        name: &str,
    ) -> ApiResult<()> {
        let req = DeleteAssociation {
            ctx: ctx.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.call(ctx, req).await?.map_err(refused)
    }
}

/// Glance's `MetadefAPIPolicy` target for a namespace: its owner and visibility.
fn target(ns: &Namespace) -> Target {
    Target::new()
        .with("project_id", ns.owner.clone())
        .with("owner", ns.owner.clone())
        .with("visibility", Some(ns.visibility.clone()))
}

/// Glance's `MetadefAPIPolicy._enforce`: a refused rule is 404 when the caller may not
/// even read the target (so namespaces they cannot see stay unseen), 403 otherwise.
fn enforce(policy: &Policy, ctx: &RequestContext, target: &Target, rule: &str) -> ApiResult<()> {
    if policy.check(rule, ctx, target) {
        return Ok(());
    }
    if rule == "get_metadef_namespace" || !policy.check("get_metadef_namespace", ctx, target) {
        return Err(ApiError::NotFound(
            "The resource could not be found.".into(),
        ));
    }
    Err(forbidden(rule))
}

/// Checks rules that are not about one namespace (creating one, listing): the caller's
/// own project is the target.
fn authorize(policy: &Policy, ctx: &RequestContext, rules: &[&str]) -> ApiResult<()> {
    let target = Target::new().with("project_id", ctx.project_id.clone());
    rules
        .iter()
        .try_for_each(|rule| enforce(policy, ctx, &target, rule))
}

/// The namespace `name` with its contents, if the caller may read it (404 otherwise),
/// after checking each of `rules` on it.
async fn readable(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    rules: &[&str],
) -> ApiResult<Contents> {
    let contents = state.metadefs.namespace(ctx, name).await?;
    let config = state.config();
    let policy = &config.access.policy;
    let target = target(&contents.namespace);
    enforce(policy, ctx, &target, "get_metadef_namespace")?;
    rules
        .iter()
        .try_for_each(|rule| enforce(policy, ctx, &target, rule))?;
    Ok(contents)
}

/// A request body as a JSON object; Glance's 400 for no body or not JSON.
fn body_json(body: &[u8]) -> ApiResult<serde_json::Value> {
    if body.is_empty() {
        return Err(ApiError::BadRequest("Body expected in request.".into()));
    }
    crate::error::parse_json(body)
}

/// Glance's read-only members refused in request bodies (403, as its deserializers do).
fn refuse_read_only(doc: &serde_json::Value) -> ApiResult<()> {
    for key in ["self", "schema", "created_at", "updated_at"] {
        if doc.get(key).is_some() {
            return Err(ApiError::Forbidden(format!(
                "Attribute '{key}' is read-only."
            )));
        }
    }
    Ok(())
}

/// A schema refusal in Glance's words.
fn mismatch(schema: &str, e: glance_domain::metadef::SchemaError) -> ApiError {
    ApiError::BadRequest(format!(
        "Provided object does not match schema '{schema}': {e}"
    ))
}
