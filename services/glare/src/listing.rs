//! `GET /artifacts/{type}`: Glare's filter syntax (`field=[and:|or:][op:]value`, `tags`,
//! `tags-any`, `metadata.key`, `version=latest`), `sort`, `limit`/`marker` and the page
//! document with `first`, `next` and `total_count`.
//!
//! The registry returns the caller's visible artifacts of the type (only those of the
//! names an and-ed `name` filter allows, which it applies in SQL); filtering, ordering and
//! paging happen here, where the type's fields are known. Without a name filter that reads
//! a type's whole visible set per request: fine for the thousands of artifacts a cloud
//! keeps, and the place to push more filters into SQL if it ever is not.

use std::cmp::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::DateTime;
use glance_domain::{Artifact, Semver};
use serde_json::{json, Value};

use crate::artifacts::find_type;
use crate::error::{GlareError, GlareResult};
use crate::identity::Caller;
use crate::model::{field_value, render};
use crate::types::{ArtifactType, Field, Kind, Op};
use crate::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combiner {
    And,
    Or,
}

#[derive(Debug)]
enum Test {
    /// A field (with a key for a dict field) compared to values.
    Field {
        field: &'static Field,
        key: Option<String>,
        op: Op,
        values: Vec<String>,
    },
    /// `tags` (all of them) or `tags-any` (one of them).
    Tags { any: bool, tags: Vec<String> },
}

#[derive(Debug)]
struct Filter {
    combiner: Combiner,
    test: Test,
}

#[derive(Debug)]
pub struct Query {
    filters: Vec<Filter>,
    sort: Vec<(&'static Field, bool)>,
    limit: usize,
    marker: Option<String>,
    latest: bool,
}

fn bad(msg: impl Into<String>) -> GlareError {
    GlareError::BadRequest(msg.into())
}

/// `[and:|or:][op:]value`; a value that is a date with colons keeps them.
fn split_filter(raw: &str) -> GlareResult<(Combiner, Op, String)> {
    let mut rest = raw;
    let mut combiner = Combiner::And;
    for (prefix, c) in [("and:", Combiner::And), ("or:", Combiner::Or)] {
        if let Some(r) = rest.strip_prefix(prefix) {
            combiner = c;
            rest = r;
        }
    }
    if let Some((op, value)) = rest.split_once(':') {
        if let Some(op) = Op::parse(op) {
            return Ok((combiner, op, value.to_owned()));
        }
        if DateTime::parse_from_rfc3339(rest).is_err() {
            return Err(bad(format!("Unsupported filter type '{op}'.")));
        }
    }
    Ok((combiner, Op::Eq, rest.to_owned()))
}

fn values_of(op: Op, value: String) -> Vec<String> {
    if op == Op::In {
        value
            .split(',')
            .map(|v| v.trim().trim_matches('"').to_owned())
            .collect()
    } else {
        vec![value]
    }
}

fn parse_filter(t: &'static ArtifactType, name: &str, raw: &str) -> GlareResult<Filter> {
    if name == "tags" || name == "tags-any" {
        let (combiner, rest) = match raw.split_once(':') {
            Some(("and", rest)) => (Combiner::And, rest),
            Some(("or", rest)) => (Combiner::Or, rest),
            _ => (Combiner::And, raw),
        };
        if rest.contains(':') {
            return Err(bad("Tags are filtered without operator"));
        }
        let tags = rest.split(',').map(str::to_owned).collect();
        return Ok(Filter {
            combiner,
            test: Test::Tags {
                any: name == "tags-any",
                tags,
            },
        });
    }
    let (field_name, key) = match name.rsplit_once('.') {
        Some((f, k)) => (f, Some(k.to_owned())),
        None => (name, None),
    };
    let field = t
        .field(field_name)
        .ok_or_else(|| bad(format!("Unable filter '{field_name}'")))?;
    let is_dict = matches!(field.kind, Kind::StringDict | Kind::LinkDict);
    if key.is_some() && !is_dict {
        return Err(bad(format!("Field {field_name} is not Dict")));
    }
    let (combiner, op, value) = split_filter(raw)?;
    if is_dict {
        if !matches!(op, Op::Eq | Op::In) {
            return Err(bad(format!(
                "Unsupported filter type '{}'. The following filters are supported: eq, in",
                op.name()
            )));
        }
    } else if !field.filter_ops.contains(&op) {
        let ops: Vec<&str> = field.filter_ops.iter().map(|o| o.name()).collect();
        return Err(bad(format!(
            "Unsupported filter type '{}'.The following filters are supported {ops:?}",
            op.name()
        )));
    }
    let values = values_of(op, value);
    for v in &values {
        let ok = match (field.kind, field.name) {
            (_, "version") => v.parse::<Semver>().is_ok(),
            (Kind::Integer, _) => v.parse::<i64>().is_ok(),
            (Kind::DateTime, _) => DateTime::parse_from_rfc3339(v).is_ok(),
            _ => true,
        };
        if !ok {
            return Err(bad(format!("Invalid filter value: {v}")));
        }
    }
    Ok(Filter {
        combiner,
        test: Test::Field {
            field,
            key,
            op,
            values,
        },
    })
}

pub fn parse(t: &'static ArtifactType, query: &str, state: &AppState) -> GlareResult<Query> {
    let config = state.config();
    let mut q = Query {
        filters: Vec::new(),
        sort: Vec::new(),
        limit: config.glare.default_api_limit as usize,
        marker: None,
        latest: false,
    };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "marker" => q.marker = Some(value.into_owned()),
            "limit" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| bad("Limit param must be an integer."))?;
                if n < 0 {
                    return Err(bad("Limit param must be positive."));
                }
                q.limit = (n as usize).min(config.glare.max_api_limit as usize);
            }
            "sort" => {
                for part in value.trim().split(',') {
                    let (key, dir) = part.split_once(':').unwrap_or((part, ""));
                    let ascending = match dir {
                        "asc" => true,
                        "desc" | "" => false,
                        other => {
                            return Err(bad(format!(
                                "Sort direction must be one of [\"asc\", \"desc\"]. Got {other} direction"
                            )))
                        }
                    };
                    let field = t
                        .field(key)
                        .ok_or_else(|| bad(format!("The field {key} doesn't exist.")))?;
                    if !field.sortable {
                        return Err(bad(format!("The field {key} is not sortable.")));
                    }
                    q.sort.push((field, ascending));
                }
            }
            "version" if value == "latest" => q.latest = true,
            name => q.filters.push(parse_filter(t, name, &value)?),
        }
    }
    // Glare's default order, after what was asked: newest first, then by id.
    for (name, ascending) in [("created_at", false), ("id", true)] {
        if !q.sort.iter().any(|(f, _)| f.name == name) {
            q.sort
                .push((t.field(name).expect("a base field"), ascending));
        }
    }
    Ok(q)
}

/// Compares a stored value with a filter's value, as the field's kind orders them.
fn compare(field: &Field, stored: &Value, wanted: &str) -> Option<Ordering> {
    match stored {
        Value::Null => None,
        Value::Number(n) => Some(n.as_i64()?.cmp(&wanted.parse::<i64>().ok()?)),
        Value::String(s) if field.name == "version" => Some(
            s.parse::<Semver>()
                .ok()?
                .cmp(&wanted.parse::<Semver>().ok()?),
        ),
        Value::String(s) if field.kind == Kind::DateTime => {
            let a = DateTime::parse_from_rfc3339(s).ok()?;
            let b = DateTime::parse_from_rfc3339(wanted).ok()?;
            Some(a.cmp(&b))
        }
        Value::String(s) => Some(s.as_str().cmp(wanted)),
        _ => None,
    }
}

/// SQL's LIKE: `%` any run of characters, `_` one character.
fn like(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(&t[i..], rest)),
            Some(('_', rest)) => !t.is_empty() && go(&t[1..], rest),
            Some((c, rest)) => t.first() == Some(c) && go(&t[1..], rest),
        }
    }
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&t, &p)
}

fn matches_one(field: &Field, op: Op, stored: &Value, wanted: &str) -> bool {
    let order = compare(field, stored, wanted);
    match op {
        Op::Eq | Op::In => order == Some(Ordering::Equal),
        Op::Neq => order != Some(Ordering::Equal),
        Op::Gt => order == Some(Ordering::Greater),
        Op::Gte => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => order == Some(Ordering::Less),
        Op::Lte => matches!(order, Some(Ordering::Less | Ordering::Equal)),
        Op::Like => stored.as_str().is_some_and(|s| like(s, wanted)),
    }
}

fn passes(t: &ArtifactType, a: &Artifact, test: &Test) -> bool {
    match test {
        Test::Tags { any, tags } => {
            let have = a.fields.get("tags").and_then(Value::as_array);
            let has =
                |tag: &String| have.is_some_and(|h| h.iter().any(|v| v.as_str() == Some(tag)));
            if *any {
                tags.iter().any(has)
            } else {
                tags.iter().all(has)
            }
        }
        Test::Field {
            field,
            key,
            op,
            values,
        } => {
            let stored = field_value(t, a, field);
            let any_value = |v: &Value| values.iter().any(|w| matches_one(field, *op, v, w));
            match (&stored, key) {
                (Value::Object(map), Some(k)) => map.get(k).is_some_and(any_value),
                // A dict without a key: whether it has one of the keys named.
                (Value::Object(map), None) => values.iter().any(|w| map.contains_key(w)),
                (Value::Array(items), _) => items.iter().any(any_value),
                (value, _) if *op == Op::Neq => {
                    values.iter().all(|w| matches_one(field, *op, value, w))
                }
                (value, _) => any_value(value),
            }
        }
    }
}

fn sort_key_cmp(t: &ArtifactType, a: &Artifact, b: &Artifact, f: &Field) -> Ordering {
    match f.name {
        "version" => a.version.cmp(&b.version),
        "created_at" => a.created_at.cmp(&b.created_at),
        "updated_at" => a.updated_at.cmp(&b.updated_at),
        "activated_at" => a.activated_at.cmp(&b.activated_at),
        "id" => a.id.to_string().cmp(&b.id.to_string()),
        _ => {
            let (x, y) = (field_value(t, a, f), field_value(t, b, f));
            match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => x.as_str().cmp(&y.as_str()),
            }
        }
    }
}

/// The filtered, ordered artifacts (every page), and the page asked for.
impl Query {
    /// The names an `and` filter `name=[eq:|in:]...` allows: every result has one of them
    /// (or-ed filters can only narrow what the and-ed ones allow), so the registry can
    /// apply it in SQL. Empty when there is none.
    fn names(&self) -> Vec<String> {
        self.filters
            .iter()
            .filter(|f| f.combiner == Combiner::And)
            .find_map(|f| match &f.test {
                Test::Field {
                    field,
                    key: None,
                    op: Op::Eq | Op::In,
                    values,
                } if field.name == "name" && !values.is_empty() => Some(values.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }
}

pub fn select(
    t: &ArtifactType,
    q: &Query,
    all: Vec<Artifact>,
) -> GlareResult<(usize, Vec<Artifact>)> {
    let mut found: Vec<Artifact> = all
        .into_iter()
        .filter(|a| {
            let ands = q.filters.iter().filter(|f| f.combiner == Combiner::And);
            let mut ors = q
                .filters
                .iter()
                .filter(|f| f.combiner == Combiner::Or)
                .peekable();
            ands.into_iter().all(|f| passes(t, a, &f.test))
                && (ors.peek().is_none() || ors.any(|f| passes(t, a, &f.test)))
        })
        .collect();
    if q.latest {
        let mut best: std::collections::HashMap<String, Semver> = Default::default();
        for a in &found {
            let e = best
                .entry(a.name.clone())
                .or_insert_with(|| a.version.clone());
            if a.version > *e {
                *e = a.version.clone();
            }
        }
        found.retain(|a| best.get(&a.name) == Some(&a.version));
    }
    found.sort_by(|a, b| {
        q.sort.iter().fold(Ordering::Equal, |acc, (f, ascending)| {
            acc.then_with(|| {
                let o = sort_key_cmp(t, a, b, f);
                if *ascending {
                    o
                } else {
                    o.reverse()
                }
            })
        })
    });
    let total = found.len();
    let start = match &q.marker {
        Some(marker) => {
            found
                .iter()
                .position(|a| a.id.to_string() == *marker)
                .ok_or_else(|| GlareError::artifact_not_found(marker))?
                + 1
        }
        None => 0,
    };
    let page = found.into_iter().skip(start).take(q.limit).collect();
    Ok((total, page))
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> GlareResult<HttpResponse> {
    let t = find_type(&path.into_inner())?;
    let q = parse(t, req.query_string(), &state)?;
    let type_name = if t.is_all() { None } else { Some(t.name) };
    let all = state
        .gateway
        .list_named(&caller.0, type_name, q.names())
        .await?;
    let (total, page) = select(t, &q, all)?;
    // `first` repeats the query without its marker; `next` adds the last id when full.
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let base = format!("/artifacts/{}", t.name);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&kept)
        .finish();
    let first = if query.is_empty() {
        base.clone()
    } else {
        format!("{base}?{query}")
    };
    let mut doc = json!({
        "type_name": t.name,
        "artifacts": page.iter().map(|a| render(t, a)).collect::<Vec<_>>(),
        "first": first,
        "schema": format!("/schemas/{}", t.name),
        "total_count": total,
    });
    if q.limit > 0 && page.len() == q.limit {
        let last = page.last().expect("a full page").id;
        let sep = if query.is_empty() { '?' } else { '&' };
        doc["next"] = json!(format!("{first}{sep}marker={last}"));
    }
    Ok(HttpResponse::Ok().json(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_sql_wildcards() {
        assert!(like("smoke-abc", "smoke%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
    }
}
