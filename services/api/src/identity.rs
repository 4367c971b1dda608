//! Who is calling: the request id every response carries, and the [`Caller`] extractor that
//! turns headers into a [`RequestContext`] according to `auth_strategy`.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures::future::{Either, LocalBoxFuture};
use glance_config::AuthStrategy;
use glance_domain::RequestContext;
use tracing::Instrument;

use crate::error::ApiError;
use crate::keystone::{KeystoneAuth, Rejection};
use crate::{ApiConfig, AppState};

pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// The request id of the current request, stored in its extensions by [`RequestId`].
#[derive(Clone)]
pub struct RequestIdValue(pub String);

pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestIdValue>()
        .map(|r| r.0.clone())
        .unwrap_or_else(glance_telemetry::new_request_id)
}

/// Middleware: mints `req-<uuid>` for every request, runs the request inside a span that
/// carries it, and sets `x-openstack-request-id` on every response, errors included.
pub struct RequestId;

impl<S, B> Transform<S, ServiceRequest> for RequestId
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestIdMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestIdMiddleware { service }))
    }
}

pub struct RequestIdMiddleware<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestIdMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = glance_telemetry::new_request_id();
        req.extensions_mut().insert(RequestIdValue(id.clone()));
        let in_flight = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.in_flight.enter());
        let span = tracing::info_span!(
            "http",
            request_id = %id,
            method = %req.method(),
            path = %req.path(),
        );
        let format = crate::error::ErrorFormat::from_accept(
            req.headers()
                .get(actix_web::http::header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        );
        let fut = crate::error::ERROR_FORMAT.scope(format, self.service.call(req));
        Box::pin(
            async move {
                let _in_flight = in_flight;
                let mut res = fut.await?;
                res.headers_mut().insert(
                    HeaderName::from_static(REQUEST_ID_HEADER),
                    HeaderValue::from_str(&id).expect("request ids are ASCII"),
                );
                tracing::debug!(status = res.status().as_u16(), "done");
                Ok(res)
            }
            .instrument(span),
        )
    }
}

/// The caller's identity, extracted per `auth_strategy`.
pub struct Caller(pub RequestContext);

/// The caller's validated Keystone token (its catalog among the rest), in the request's
/// extensions under `auth_strategy = keystone`, for what needs more than the context.
#[derive(Clone)]
pub struct KeystoneToken(pub Arc<glance_keystone::TokenInfo>);

/// The caller as the front door resolved it (see [`resolve_once`]), kept in the request's
/// extensions so handlers do not validate a token twice.
#[derive(Clone)]
struct Resolved(RequestContext);

/// The caller's context under the configured strategy, asynchronously (Keystone asks over
/// the network; the others read headers or the token file).
pub async fn resolve(req: &HttpRequest, config: &ApiConfig) -> Result<RequestContext, ApiError> {
    match (config.auth_strategy, &config.keystone) {
        (AuthStrategy::Keystone, Some(keystone)) => keystone_context(req, config, keystone).await,
        _ => authenticate(req, config),
    }
}

/// [`resolve`], remembered for the rest of the request: the [`Caller`] extractor then
/// answers from it.
pub async fn resolve_once(req: &HttpRequest, config: &ApiConfig) -> Result<(), ApiError> {
    let ctx = resolve(req, config).await?;
    req.extensions_mut().insert(Resolved(ctx));
    Ok(())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Either<
        Ready<Result<Self, Self::Error>>,
        LocalBoxFuture<'static, Result<Self, Self::Error>>,
    >;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        if let Some(Resolved(ctx)) = req.extensions().get::<Resolved>() {
            return Either::Left(ready(Ok(Caller(ctx.clone()))));
        }
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered");
        let config = state.config();
        match (config.auth_strategy, config.keystone.clone()) {
            (AuthStrategy::Keystone, Some(keystone)) => {
                let req = req.clone();
                Either::Right(Box::pin(async move {
                    keystone_context(&req, &config, &keystone).await.map(Caller)
                }))
            }
            _ => Either::Left(ready(authenticate(req, &config).map(Caller))),
        }
    }
}

/// The caller's context under the configured strategy; with an identity (not `noauth`),
/// `is_admin` is the policy's `context_is_admin` for the caller's roles. Keystone's is
/// asynchronous: see [`resolve`] and [`keystone_context`]; here it is always refused.
pub fn authenticate(req: &HttpRequest, config: &ApiConfig) -> Result<RequestContext, ApiError> {
    let mut ctx = match (config.auth_strategy, &config.access.tokens) {
        (AuthStrategy::Tokens, Some(tokens)) => {
            let token = header(req, "x-auth-token").ok_or(ApiError::Unauthorized)?;
            let who = tokens.validate(token).ok_or(ApiError::Unauthorized)?;
            RequestContext {
                request_id: request_id(req),
                user_id: Some(who.user_id),
                project_id: Some(who.project_id),
                roles: who.roles,
                ..RequestContext::default()
            }
        }
        (strategy, _) => context_from_headers(req, strategy)?,
    };
    if config.auth_strategy != AuthStrategy::NoAuth {
        imply_roles(&mut ctx.roles);
        ctx.is_admin = config.access.policy.is_admin(&ctx.roles);
    }
    Ok(ctx)
}

/// `auth_strategy = keystone`: the context of the user whose `X-Auth-Token` Keystone
/// vouches for (with an `X-Service-Token`, that one must be valid too).
pub async fn keystone_context(
    req: &HttpRequest,
    config: &ApiConfig,
    keystone: &KeystoneAuth,
) -> Result<RequestContext, ApiError> {
    let token = header(req, "x-auth-token").or_else(|| header(req, "x-storage-token"));
    let service = header(req, "x-service-token");
    let info =
        keystone
            .authenticate(token, service)
            .await
            .map_err(|rejection| match rejection {
                Rejection::Unauthenticated => ApiError::TokenRejected(keystone.challenge()),
                Rejection::Unavailable(_) => ApiError::ServiceUnavailable(
                    "The Keystone service is temporarily unavailable.".into(),
                ),
            })?;
    let mut ctx = RequestContext {
        request_id: request_id(req),
        user_id: Some(info.user_id.clone()),
        project_id: info.project_id.clone(),
        roles: info.roles.clone(),
        user_domain_id: info.user_domain_id.clone(),
        project_domain_id: info.project_domain_id.clone(),
        domain_id: info.domain_id.clone(),
        is_admin_project: info.is_admin_project,
        ..RequestContext::default()
    };
    imply_roles(&mut ctx.roles);
    ctx.is_admin = config.access.policy.is_admin(&ctx.roles);
    req.extensions_mut().insert(KeystoneToken(info));
    Ok(ctx)
}

/// Keystone's default role implications (admin implies member, member implies reader),
/// which a Keystone token already carries; a proxy or token file naming only the highest
/// role gets the same rights.
fn imply_roles(roles: &mut Vec<String>) {
    for (role, implied) in [("admin", "member"), ("member", "reader")] {
        if roles.iter().any(|r| r == role) && !roles.iter().any(|r| r == implied) {
            roles.push(implied.to_owned());
        }
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub fn context_from_headers(
    req: &HttpRequest,
    strategy: AuthStrategy,
) -> Result<RequestContext, ApiError> {
    let request_id = request_id(req);
    match strategy {
        // Glance's unauthenticated context: an admin with no project.
        AuthStrategy::NoAuth => Ok(RequestContext {
            request_id,
            user_id: header(req, "x-user-id").map(str::to_owned),
            project_id: header(req, "x-project-id")
                .or_else(|| header(req, "x-tenant-id"))
                .map(str::to_owned),
            roles: vec!["admin".into(), "member".into(), "reader".into()],
            is_admin: true,
            ..RequestContext::default()
        }),
        // Tokens need the token file, Keystone its settings: see [`authenticate`] and
        // [`keystone_context`]. Without them nobody is known.
        AuthStrategy::Tokens | AuthStrategy::Keystone => Err(ApiError::Unauthorized),
        AuthStrategy::TrustedHeaders => {
            if header(req, "x-identity-status") != Some("Confirmed") {
                return Err(ApiError::Unauthorized);
            }
            let roles: Vec<String> = header(req, "x-roles")
                .unwrap_or_default()
                .split(',')
                .map(|r| r.trim().to_ascii_lowercase())
                .filter(|r| !r.is_empty())
                .collect();
            let is_admin = roles.iter().any(|r| r == "admin");
            Ok(RequestContext {
                request_id,
                user_id: header(req, "x-user-id").map(str::to_owned),
                project_id: header(req, "x-project-id")
                    .or_else(|| header(req, "x-tenant-id"))
                    .map(str::to_owned),
                roles,
                is_admin,
                user_domain_id: header(req, "x-user-domain-id").map(str::to_owned),
                project_domain_id: header(req, "x-project-domain-id").map(str::to_owned),
                domain_id: header(req, "x-domain-id").map(str::to_owned),
                is_admin_project: header(req, "x-is-admin-project")
                    .is_none_or(|v| !v.eq_ignore_ascii_case("false")),
            })
        }
    }
}
