//! `/healthcheck`, as Glance serves it through oslo.middleware's healthcheck: no identity,
//! `GET` answers 200 with the text `OK`, `HEAD` 204 with no body. Load balancers and the
//! compose file's container health checks poll it; it says the HTTP server is taking
//! requests, nothing about the registry behind it (a broker outage is a 503 on real calls,
//! and taking every API node out of rotation for it would help nobody).

use actix_web::HttpResponse;

use crate::routing::{Resource, Routes};

pub fn routes(r: &mut Routes) {
    r.add(
        Resource::new("/healthcheck")
            .get(get)
            .head(head)
            .others(crate::routing::not_allowed("GET, HEAD")),
    );
}

async fn get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain;charset=utf-8")
        .body("OK")
}

async fn head() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[cfg(test)]
mod tests {
    use actix_web::{http::StatusCode, test, App};

    use crate::routing::Routes;

    #[actix_web::test]
    async fn a_healthcheck_answers_ok_without_identity() {
        let app = test::init_service(App::new().configure(|cfg| {
            super::routes(&mut Routes::new(cfg));
        }))
        .await;
        let resp = test::call_service(
            &app,
            test::TestRequest::get().uri("/healthcheck").to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        // oslo.middleware's answer, as the reference Glance sends it.
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "text/plain;charset=utf-8"
        );
        assert_eq!(test::read_body(resp).await, "OK");
        let resp = test::call_service(
            &app,
            test::TestRequest::default()
                .method(actix_web::http::Method::HEAD)
                .uri("/healthcheck")
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }
}
