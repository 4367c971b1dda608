//! Who is calling: the image API's identity layer (`glance_api::identity`), so the
//! artifact API takes exactly the credentials the image API takes under the same
//! `auth_strategy` (Keystone tokens, the token file, trusted headers only when configured).

use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use glance_domain::RequestContext;

use crate::error::GlareError;
use crate::AppState;

/// The caller's context, resolved once per request.
pub struct Caller(pub RequestContext);

impl Caller {
    /// The project artifacts created by this caller belong to.
    pub fn project(&self) -> String {
        self.0.project_id.clone().unwrap_or_default()
    }

    pub fn is_admin(&self) -> bool {
        self.0.is_admin
    }
}

impl FromRequest for Caller {
    type Error = GlareError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .expect("AppState is registered");
            let identity = state.config().identity.clone();
            let ctx = glance_api::identity::resolve(&req, &identity).await?;
            Ok(Caller(ctx))
        })
    }
}
