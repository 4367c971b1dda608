//! The version document, served without identity at `/` (300) and `/versions` (200).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::AppState;

/// Minor versions of Images API v2 we advertise, newest first. 2.18 (cache clean/prune)
/// is only current when a cache is configured, as in Glance.
fn minors(cache_enabled: bool) -> Vec<(u32, &'static str)> {
    let newest = if cache_enabled { 18 } else { 17 };
    (0..=newest)
        .rev()
        .map(|m| (m, if m == newest { "CURRENT" } else { "SUPPORTED" }))
        .collect()
}

fn document(req: &HttpRequest, state: &AppState) -> Value {
    let info = req.connection_info();
    let base = format!("{}://{}", info.scheme(), info.host());
    let versions: Vec<Value> = minors(state.config().cache_enabled)
        .into_iter()
        .map(|(minor, status)| {
            json!({
                "id": format!("v2.{minor}"),
                "status": status,
                "links": [{"rel": "self", "href": format!("{base}/v2/")}],
            })
        })
        .collect();
    json!({ "versions": versions })
}

pub async fn multiple_choices(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::MultipleChoices().json(document(&req, &state))
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&req, &state))
}

#[cfg(test)]
mod tests {
    #[test]
    fn exactly_one_version_is_current() {
        for cache in [false, true] {
            let v = super::minors(cache);
            assert_eq!(v.iter().filter(|(_, s)| *s == "CURRENT").count(), 1);
            assert_eq!(v.last().unwrap().0, 0);
        }
        assert_eq!(super::minors(true)[0].0, 18);
    }
}
