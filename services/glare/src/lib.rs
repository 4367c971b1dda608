//! `glance-glare`: the artifact repository, serving standalone Glare's artifacts API v1
//! (what python-glareclient and Glare 5.0.1 speak) over the registry on the bus and the
//! image stores.
//!
//! [`Application::build`] binds the HTTP server; `main.rs` only wires configuration into
//! it, and the all-in-one builds the same application against its in-process bus.

pub mod artifacts;
pub mod blobs;
pub mod error;
pub mod gateway;
pub mod identity;
pub mod lifecycle;
pub mod listing;
pub mod model;
pub mod notify;
pub mod patch;
pub mod policy;
pub mod quotas;
pub mod schemas;
pub mod sweep;
pub use glance_domain::artifact_types as types;
pub mod versions;

use std::net::TcpListener;
use std::sync::{Arc, RwLock};

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use glance_api::ApiConfig;
use glance_bus::Bus;
use glance_config::{AuthStrategy, GlareSettings, RawConfig};
use glance_service::{InFlight, Workers};
use glance_store::Store;

use crate::error::GlareError;
use crate::gateway::Gateway;

/// What the artifact API reads from configuration.
#[derive(Clone)]
pub struct GlareConfig {
    pub glare: GlareSettings,
    /// Identity exactly as the image API's (`auth_strategy`, Keystone, token file,
    /// policy's admin rule): the image API's own configuration type.
    pub identity: ApiConfig,
}

impl GlareConfig {
    /// `default_auth` is the strategy when `auth_strategy` is not set (as for glance-api:
    /// Keystone unless the listener is loopback).
    pub fn from_raw(raw: &RawConfig, default_auth: AuthStrategy) -> Result<Self, String> {
        Ok(Self {
            glare: GlareSettings::from_raw(raw).map_err(|e| e.to_string())?,
            identity: ApiConfig::from_raw(raw, default_auth)?,
        })
    }
}

pub struct AppState {
    config: RwLock<Arc<GlareConfig>>,
    pub gateway: Gateway,
    pub in_flight: InFlight,
}

impl AppState {
    pub fn config(&self) -> Arc<GlareConfig> {
        self.config.read().expect("config lock poisoned").clone()
    }

    /// Swapped whole on `glance-control glare reload`.
    pub fn set_config(&self, config: GlareConfig) {
        self.gateway
            .notifier()
            .set_config(config.identity.notifications.clone());
        *self.config.write().expect("config lock poisoned") = Arc::new(config);
    }
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    workers: Workers,
}

impl Application {
    /// Builds the server on an already-bound listener (bind port 0 in tests). Blobs go to
    /// `store` (the image stores' default backend).
    pub fn build(
        config: GlareConfig,
        bus: Bus,
        store: Arc<dyn Store>,
        listener: TcpListener,
    ) -> std::io::Result<Application> {
        let port = listener.local_addr()?.port();
        let workers = config.identity.workers;
        let config_notifications = config.identity.notifications.clone();
        let state = web::Data::new(AppState {
            config: RwLock::new(Arc::new(config)),
            gateway: Gateway::new(bus, store, config_notifications),
            in_flight: InFlight::default(),
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(versions::negotiate))
                .wrap(actix_web::middleware::from_fn(count_in_flight))
                .wrap(actix_web::middleware::from_fn(json_charset))
                .wrap(actix_web::middleware::from_fn(options))
                .wrap(glance_api::identity::RequestId)
                .configure(routes)
        })
        .workers(workers)
        .listen(listener)?
        .run();
        // The blob sweep's work counts with the requests in `status`.
        let workers = Workers::with_in_flight(app_state.in_flight.clone());
        workers.spawn(sweep::worker(app_state.clone()));
        Ok(Application {
            port,
            server,
            state: app_state,
            workers,
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

    /// The process's background work: the blob sweep (see [`sweep`]).
    pub fn workers(&self) -> Workers {
        self.workers.clone()
    }

    /// Serves until stopped, then stops the workers.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.workers.stop();
        served
    }
}

/// Counts the requests being served, for `glance-control glare status`.
async fn count_in_flight(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let _working = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.in_flight.enter());
    next.call(req).await
}

/// `OPTIONS` on any path: 200 with an empty body, as Glare's server answers it.
async fn options(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    if req.method() == actix_web::http::Method::OPTIONS {
        let res = HttpResponse::Ok().finish();
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Glare labels its JSON `application/json; charset=UTF-8` (and its schemas likewise), as
/// webob does.
async fn json_charset(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
    // Its version document, its quota update and the redirect to an external blob are the
    // exceptions (set by hand there).
    let plain = matches!(req.path(), "/" | "/versions")
        || (req.path() == "/quotas" && req.method() == actix_web::http::Method::PUT);
    let mut res = next.call(req).await?;
    let plain = plain || res.status().is_redirection();
    let headers = res.headers_mut();
    let labelled = match headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some("application/json") if !plain => "application/json; charset=UTF-8",
        Some("application/schema+json") => "application/schema+json; charset=UTF-8",
        _ => return Ok(res),
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(labelled));
    Ok(res)
}

pub(crate) fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(GlareError::MethodNotAllowed(allow)) })
}

/// Every route, with a 405 and `Allow` for other methods on a known path.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let blob = |path: &str| {
        web::resource(path)
            .route(web::get().to(blobs::download))
            .route(web::put().to(blobs::upload))
            .route(web::delete().to(blobs::delete))
            .default_service(not_allowed("GET, PUT, DELETE"))
    };
    // Glare's version app answers any method there.
    for path in ["/", "/versions"] {
        cfg.service(web::resource(path).default_service(web::to(versions::list)));
    }
    cfg.service(web::resource("/healthcheck").route(
        web::get().to(|| async { HttpResponse::Ok().content_type("text/plain").body("OK") }),
    ))
    .service(
        web::resource("/schemas")
            .route(web::get().to(schemas::all))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/schemas/{type}")
            .route(web::get().to(schemas::one))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/artifacts/{type}")
            .route(web::get().to(listing::list))
            .route(web::post().to(artifacts::create))
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/artifacts/{type}/{id}")
            .route(web::get().to(artifacts::show))
            .route(web::patch().to(artifacts::update))
            .route(web::delete().to(artifacts::delete))
            .default_service(not_allowed("GET, PATCH, DELETE")),
    )
    .service(blob("/artifacts/{type}/{id}/{blob}"))
    .service(blob("/artifacts/{type}/{id}/{blob}/{key:.+}"))
    .configure(quotas::routes)
    .default_service(web::to(|| async {
        Err::<HttpResponse, _>(GlareError::not_found("The resource could not be found."))
    }));
}
