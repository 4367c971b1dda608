//! The API's one route table. Every module adds its resources through [`Routes`], which
//! registers them with actix-web and writes down each path with its methods, so what is
//! served can be listed ([`table`]) and compared with the OpenAPI document
//! (`services/api/openapi.json`) without a second list kept by hand.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Responder};

use crate::error::ApiError;

/// One served path (actix-web's pattern, e.g. `/v2/images/{id}`) and the methods it has
/// handlers for, in the order they were added. `any` is for a path that answers every
/// method alike (the `/v2` redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub methods: Vec<Method>,
    pub any: bool,
}

/// A resource being built: actix-web's [`actix_web::Resource`] plus what it records.
pub struct Resource {
    route: Route,
    inner: actix_web::Resource,
}

impl Resource {
    pub fn new(path: impl Into<String>) -> Self {
        let path = path.into();
        Self {
            inner: web::resource(path.as_str()),
            route: Route {
                path,
                methods: Vec::new(),
                any: false,
            },
        }
    }

    fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route.methods.push(method.clone());
        self.inner = self.inner.route(web::method(method).to(handler));
        self
    }

    pub fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::GET, handler)
    }

    pub fn head<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::HEAD, handler)
    }

    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::POST, handler)
    }

    pub fn put<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::PUT, handler)
    }

    pub fn patch<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::PATCH, handler)
    }

    pub fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::DELETE, handler)
    }

    /// One handler for every method.
    pub fn any<F, Args>(mut self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route.any = true;
        self.inner = self.inner.to(handler);
        self
    }

    /// What the other methods get: [`not_allowed`] or [`no_other_methods`].
    pub fn others(mut self, route: actix_web::Route) -> Self {
        self.inner = self.inner.default_service(route);
        self
    }
}

/// Where the modules add their resources (see the module's comment).
pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    table: Vec<Route>,
}

impl<'a> Routes<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig) -> Self {
        Self {
            cfg,
            table: Vec::new(),
        }
    }

    pub fn add(&mut self, resource: Resource) -> &mut Self {
        self.table.push(resource.route);
        self.cfg.service(resource.inner);
        self
    }

    /// Routes a nested function adds, for `r.with(members::routes)`.
    pub fn with(&mut self, f: impl FnOnce(&mut Routes<'a>)) -> &mut Self {
        f(self);
        self
    }

    /// The router's answer for paths no resource matches.
    pub fn fallback(&mut self, route: actix_web::Route) -> &mut Self {
        self.cfg.default_service(route);
        self
    }

    pub fn into_table(self) -> Vec<Route> {
        self.table
    }
}

/// The routes `f` adds, in the order actix-web tries them (the first whose pattern matches
/// a path serves it).
pub fn table(f: impl FnOnce(&mut Routes<'_>)) -> Vec<Route> {
    let mut table = Vec::new();
    // `App::configure` runs the function at once on a fresh `ServiceConfig`; the app itself
    // is never started.
    let _ = actix_web::App::new().configure(|cfg| {
        let mut routes = Routes::new(cfg);
        f(&mut routes);
        table = routes.into_table();
    });
    table
}

/// Glance's 405 with the `Allow` header it sends for the path.
pub(crate) fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow)) })
}

/// Other methods on a path for which Glance's router has no "reject" route: the path is not
/// found for the methods routes knows, and a method nobody knows is not implemented.
pub(crate) fn no_other_methods() -> actix_web::Route {
    web::to(|req: HttpRequest| async move {
        let known = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ];
        Err::<HttpResponse, _>(if known.contains(req.method()) {
            ApiError::NotFound("The resource could not be found.".into())
        } else {
            ApiError::NotImplemented
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ok() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[test]
    fn the_table_lists_each_resource_with_its_methods_in_order() {
        let table = table(|r| {
            r.add(Resource::new("/a").get(ok).delete(ok))
                .add(Resource::new("/b/{id}").any(ok));
        });
        assert_eq!(
            table,
            vec![
                Route {
                    path: "/a".into(),
                    methods: vec![Method::GET, Method::DELETE],
                    any: false
                },
                Route {
                    path: "/b/{id}".into(),
                    methods: vec![],
                    any: true
                },
            ]
        );
    }

    #[actix_web::test]
    async fn what_the_table_lists_is_what_is_served() {
        use actix_web::{http::StatusCode, test, App};
        let app = test::init_service(App::new().configure(|cfg| {
            Routes::new(cfg).add(Resource::new("/a").get(ok).others(not_allowed("GET")));
        }))
        .await;
        let get = test::call_service(&app, test::TestRequest::get().uri("/a").to_request()).await;
        assert_eq!(get.status(), StatusCode::OK);
        let post = test::call_service(&app, test::TestRequest::post().uri("/a").to_request()).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers().get("allow").unwrap(), "GET");
    }
}
