//! The OpenAPI 3 document of the API as this service serves it (`services/api/openapi.json`),
//! at `GET /v2/openapi.json` and `GET /openapi.json`. Like `/versions` it needs no identity:
//! it describes the API, it holds nothing of anyone's. `tests/tests/openapi.rs` checks it
//! against [`crate::route_table`], and `scripts/test.sh` runs schemathesis against it.

use actix_web::HttpResponse;

use crate::routing::{not_allowed, Resource, Routes};

/// The document, as reviewed in the repository.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The paths it is served at; the front door lets callers without identity through to them.
pub const PATHS: [&str; 2] = ["/openapi.json", "/v2/openapi.json"];

pub fn routes(r: &mut Routes) {
    for path in PATHS {
        r.add(Resource::new(path).get(document).others(not_allowed("GET")));
    }
}

async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json_of_openapi_3() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert!(doc["paths"]["/v2/images"]["get"].is_object());
    }
}
