//! `/quotas` and `/project-quotas`: not served yet (see docs/glare.md); every call is a
//! 501 in Glare's error shape rather than a made-up answer.

use actix_web::{web, HttpResponse};

use crate::error::GlareError;
use crate::identity::Caller;

async fn not_yet(_caller: Caller) -> Result<HttpResponse, GlareError> {
    Err(GlareError::NotImplemented(
        "Quotas are not implemented by this artifact repository yet.".into(),
    ))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/quotas", web::get().to(not_yet))
        .route("/quotas", web::put().to(not_yet))
        .route("/project-quotas", web::get().to(not_yet))
        .route("/project-quotas/{project}", web::get().to(not_yet));
}
