//! The Images API v2 server.
//!
//! [`Application::build`] binds the HTTP server over a [`Bus`] to the registry and a
//! [`Store`] for image bytes; `main.rs` files only wire configuration into it, so tests and
//! the all-in-one binary start exactly the server operators run.

pub mod access;
pub mod cache;
pub mod data;
pub mod drain;
pub mod error;
mod front;
pub mod gateway;
pub mod health;
pub mod identity;
pub mod images;
pub mod import;
pub mod keystone;
pub mod lifecycle;
pub mod members;
pub mod metadefs;
pub use glance_notify as notify;
pub mod openapi;
pub mod policy;
pub mod protections;
pub mod routing;
pub mod schemas;
pub mod tasks;
pub mod tokens;
pub mod versions;

use std::net::TcpListener;
use std::sync::{Arc, RwLock};

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use glance_bus::Bus;
use glance_config::{AuthStrategy, Settings};
use glance_service::{InFlight, Workers};
use glance_store::Store;

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::routing::{not_allowed, Resource, Routes};

/// The API's view of configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub auth_strategy: AuthStrategy,
    pub image_size_cap: u64,
    pub api_limit_max: u32,
    pub limit_param_default: u32,
    pub hashing_algorithm: String,
    pub delayed_delete: bool,
    pub require_image_format_match: bool,
    pub disk_formats: Vec<String>,
    pub container_formats: Vec<String>,
    pub cache_enabled: bool,
    /// The node-local image cache and its workers' options (see [`cache`]).
    pub cache: glance_cache::CacheSettings,
    pub workers: usize,
    /// Policy, token file, property protections and quotas (see [`access`]).
    pub access: Arc<access::Access>,
    /// Which notifications to publish (see [`notify`]).
    pub notifications: notify::NotifyConfig,
    /// Import methods, stores, web-download filtering, tasks (see [`import`]).
    pub import: Arc<import::ImportConfig>,
    /// Runtime threads and image-show batching of the distributed mode (read at start).
    pub mesh: glance_config::MeshSettings,
    /// The Keystone validator, when `[keystone_authtoken]` is configured (see [`keystone`]).
    pub keystone: Option<Arc<keystone::KeystoneAuth>>,
    /// Upload leases and the sweep of abandoned uploads (see [`data::sweep`]).
    pub upload: glance_config::UploadSettings,
}

impl Default for ApiConfig {
    fn default() -> Self {
        let raw = glance_config::RawConfig::defaults();
        let settings = Settings::from_raw(&raw).expect("defaults are valid");
        Self::from_settings(&settings, AuthStrategy::NoAuth)
    }
}

impl ApiConfig {
    pub fn from_settings(s: &Settings, default_auth: AuthStrategy) -> Self {
        Self {
            auth_strategy: s.auth_strategy.unwrap_or(default_auth),
            image_size_cap: s.image_size_cap,
            api_limit_max: s.api_limit_max,
            limit_param_default: s.limit_param_default,
            hashing_algorithm: s.hashing_algorithm.clone(),
            delayed_delete: s.delayed_delete,
            require_image_format_match: s.require_image_format_match,
            disk_formats: s.disk_formats.clone(),
            container_formats: s.container_formats.clone(),
            cache_enabled: s.image_cache_dir.is_some(),
            cache: cache::settings_from(s),
            workers: s
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            access: Arc::default(),
            notifications: notify::NotifyConfig::default(),
            import: Arc::default(),
            mesh: glance_config::MeshSettings::default(),
            keystone: None,
            upload: glance_config::UploadSettings::default(),
        }
    }

    /// Everything the API reads from configuration: the core [`Settings`] and each
    /// feature's own options (which may name files, read here, so a bad file refuses the
    /// whole configuration).
    pub fn from_raw(
        raw: &glance_config::RawConfig,
        default_auth: AuthStrategy,
    ) -> Result<Self, String> {
        let settings = Settings::from_raw(raw).map_err(|e| e.to_string())?;
        let mut config = Self::from_settings(&settings, default_auth);
        config.access = Arc::new(access::Access::from_raw(raw)?);
        config.cache = glance_cache::CacheSettings::from_raw(raw).map_err(|e| e.to_string())?;
        config.notifications = notify::NotifyConfig::from_raw(raw);
        config.import = Arc::new(import::ImportConfig::from_raw(raw)?);
        config.mesh = glance_config::MeshSettings::from_raw(raw).map_err(|e| e.to_string())?;
        config.upload = glance_config::UploadSettings::from_raw(raw).map_err(|e| e.to_string())?;
        if config.auth_strategy == AuthStrategy::Tokens && config.access.tokens.is_none() {
            return Err("auth_strategy = tokens needs [glance_auth] token_file".into());
        }
        config.keystone = match keystone::KeystoneSettings::from_raw(raw)? {
            Some(settings) => Some(Arc::new(keystone::KeystoneAuth::new(settings)?)),
            None => None,
        };
        if config.auth_strategy == AuthStrategy::Keystone && config.keystone.is_none() {
            return Err(KEYSTONE_NEEDS_SETTINGS.into());
        }
        Ok(config)
    }
}

const KEYSTONE_NEEDS_SETTINGS: &str = "auth_strategy = keystone (the default when bind_host is \
    not a loopback address) needs [keystone_authtoken] auth_url, username, password, \
    project_name, user_domain_name and project_domain_name (GLANCE__KEYSTONE_AUTHTOKEN__AUTH_URL, \
    ...); or set [DEFAULT] auth_strategy to tokens, or to trusted-headers behind a proxy that \
    authenticates";

/// Shared by every request.
pub struct AppState {
    /// Swapped whole on `glance-control reload`; a request keeps the config it started with.
    config: RwLock<Arc<ApiConfig>>,
    pub gateway: Gateway,
    /// Every configured store behind one [`Store`]: reads go to the store that holds the
    /// location, writes to the default one. Typed access to each is in `import.stores`.
    pub store: Arc<dyn Store>,
    pub in_flight: InFlight,
    /// Stores by id, staging and task records (see [`import`]).
    pub import: import::ImportState,
    /// This node's image cache, when `image_cache_dir` is set.
    pub cache: Option<Arc<cache::NodeCache>>,
    /// Names this process in the upload leases it holds (`host:pid:nonce`).
    pub instance: String,
    /// The metadefs catalog's registry requests (see [`metadefs`]).
    pub metadefs: metadefs::Client,
}

impl AppState {
    pub fn config(&self) -> Arc<ApiConfig> {
        self.config.read().expect("config lock poisoned").clone()
    }

    pub fn set_config(&self, config: ApiConfig) {
        *self.config.write().expect("config lock poisoned") = Arc::new(config);
    }

    /// Removes image data at `locations` whose record no longer points to it. Data a store
    /// would not remove becomes a scrub job, retried by the scrubbers until it is gone,
    /// rather than an orphan.
    pub async fn remove_data(
        &self,
        ctx: &glance_domain::RequestContext,
        id: glance_domain::ImageId,
        locations: impl IntoIterator<Item = String>,
    ) {
        glance_import::remove_data(self.store.as_ref(), self.gateway.bus(), ctx, id, locations)
            .await
    }
}

pub struct Application {
    port: u16,
    workers: Workers,
    server: Server,
    state: web::Data<AppState>,
    connections: drain::Connections,
}

impl Application {
    /// Builds the server on an already-bound listener (bind port 0 in tests).
    pub fn build(
        config: ApiConfig,
        bus: Bus,
        stores: glance_store::Stores,
        listener: TcpListener,
    ) -> std::io::Result<Application> {
        let port = listener.local_addr()?.port();
        match config.auth_strategy {
            AuthStrategy::NoAuth => {
                tracing::warn!("auth_strategy is noauth: every caller is an admin")
            }
            AuthStrategy::TrustedHeaders => tracing::warn!(
                "auth_strategy is trusted-headers: callers' X-Roles and X-Project-Id are \
                 believed as sent, so this API must only be reachable through a proxy that \
                 authenticates them (keystonemiddleware or the like)"
            ),
            AuthStrategy::Keystone if config.keystone.is_none() => {
                return Err(std::io::Error::other(KEYSTONE_NEEDS_SETTINGS))
            }
            AuthStrategy::Keystone | AuthStrategy::Tokens => {}
        }
        let workers = config.workers;
        let node_cache = cache::NodeCache::open(&config.cache, bus.clone())?;
        let store: Arc<dyn Store> = Arc::new(stores.clone());
        let import = import::ImportState::new(bus.clone(), stores);
        let metadefs = metadefs::Client::new(bus.clone());
        let gateway = Gateway::new(bus)
            .with_notifications(config.notifications.clone())
            .with_show_batches(
                config.mesh.show_batches_in_flight,
                config.mesh.show_batch_size,
            )
            .with_list_batches(
                config.mesh.list_batches_in_flight,
                config.mesh.list_batch_size,
            );
        let state = web::Data::new(AppState {
            config: RwLock::new(Arc::new(config)),
            gateway,
            store,
            in_flight: InFlight::default(),
            cache: node_cache,
            import,
            instance: data::lease::instance_name(),
            metadefs,
        });
        // Its work counts with the requests, so `status` shows one figure for both.
        let background = Workers::with_in_flight(state.in_flight.clone());
        background.spawn(data::sweep::worker(state.clone()));
        if let Some(node) = &state.cache {
            background.spawn(node.clone().starter(background.clone()));
        }
        let app_state = state.clone();
        let connections = drain::Connections::default();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .wrap(actix_web::middleware::from_fn(front::front_door))
                .wrap(identity::RequestId)
                .wrap(actix_web::middleware::from_fn(drain::mark_started))
                .configure(routes)
        })
        .on_connect(connections.on_connect())
        .workers(workers)
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            workers: background,
            server,
            state: app_state,
            connections,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// The process's background work: the upload sweep and the cache node's listeners from
    /// the start, and whatever the binary adds (the import worker; in the all-in-one, the
    /// scrubber and cache worker too). A shutdown stops and drains them before HTTP.
    pub fn workers(&self) -> Workers {
        self.workers.clone()
    }

    /// The server's open connections, for a drain (see [`drain`]).
    pub fn connections(&self) -> drain::Connections {
        self.connections.clone()
    }

    /// Starts the workers and the accept loop, and returns once connections are being
    /// accepted (actix-server does both on the server's first poll). A service that announces
    /// itself (`glance-control` status) only after this is serving when it does: a rolling
    /// restart moves on to the next instance only once this one takes connections again.
    pub async fn start(mut self) -> std::io::Result<Running> {
        if let std::task::Poll::Ready(result) = futures::poll!(&mut self.server) {
            result?;
            return Err(std::io::Error::other(
                "the HTTP server stopped as it started",
            ));
        }
        Ok(Running(self.server))
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// A started server (see [`Application::start`]).
pub struct Running(Server);

impl Running {
    pub async fn until_stopped(self) -> std::io::Result<()> {
        self.0.await
    }
}

async fn schema(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    schemas::raw(&name)
        .map(|doc| {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(doc)
        })
        .ok_or_else(|| ApiError::NotFound("The resource could not be found.".into()))
}

/// Every route, with Glance's 405 + `Allow` for other methods on a known path.
pub fn routes(cfg: &mut web::ServiceConfig) {
    register(&mut Routes::new(cfg));
}

/// Every route the API serves, in the order the router tries them (see [`routing`]).
pub fn route_table() -> Vec<routing::Route> {
    routing::table(register)
}

fn register(r: &mut Routes) {
    use data::{download, upload};
    use images::handlers as img;
    r.with(health::routes)
        .add(
            Resource::new("/")
                .get(versions::multiple_choices)
                .others(not_allowed("GET")),
        )
        .add(Resource::new("/v2").any(|req: HttpRequest| async move {
            // Routes' redirect to the collection root, as Glance's router answers it.
            let info = req.connection_info();
            HttpResponse::Found()
                .insert_header((
                    header::LOCATION,
                    format!("{}://{}/v2/", info.scheme(), info.host()),
                ))
                .content_type("text/plain; charset=utf8")
                .finish()
        }))
        .add(
            Resource::new("/versions")
                .get(versions::list)
                .others(not_allowed("GET")),
        )
        .with(openapi::routes)
        .add(
            Resource::new("/v2/schemas/{name:.+}")
                .get(schema)
                .others(not_allowed("GET")),
        )
        .add(
            Resource::new("/v2/images")
                .get(img::list)
                .post(img::create)
                .others(not_allowed("GET, POST")),
        )
        .add(
            Resource::new("/v2/images/{id}")
                .get(img::show)
                .patch(img::update)
                .delete(img::delete)
                .others(not_allowed("GET, PATCH, DELETE")),
        )
        .add(
            Resource::new("/v2/images/{id}/file")
                .get(download::download)
                .put(upload::upload)
                .others(not_allowed("GET, PUT")),
        )
        .add(
            Resource::new("/v2/images/{id}/tags/{tag}")
                .put(img::add_tag)
                .delete(img::delete_tag)
                .others(not_allowed("PUT, DELETE")),
        )
        .with(members::routes)
        .with(cache::routes)
        .with(images::actions::routes)
        .with(images::locations::routes)
        .with(import::routes)
        .with(tasks::routes)
        .with(metadefs::routes)
        .fallback(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NotFound(
                "The resource could not be found.".into(),
            ))
        }));
}
