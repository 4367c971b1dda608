//! `GET /v2/images` query parameters into a registry [`ListImages`], with Glance's checks.

use chrono::{DateTime, Utc};
use glance_domain::{ImageId, ImageStatus, RequestContext};
use glance_proto::registry::{
    CmpOp, ImageFilters, ListImages, MemberStatusFilter, SortColumn, SortDir, SortKey,
    VisibilityFilter,
};

use crate::{bad, ParseResult};

/// A `sort_dir` query parameter of the tasks and metadefs lists: `true` for `asc`.
pub fn ascending_param(value: &str) -> ParseResult<bool> {
    match value {
        "asc" => Ok(true),
        "desc" => Ok(false),
        other => Err(bad(format!("Invalid sort direction: {other}"))),
    }
}

/// A `limit` query parameter as Glance reads it for every listing: an integer, not
/// negative, capped at `max` (a number too big for us is simply more than `max`).
pub fn limit_param(value: &str, max: u32) -> ParseResult<u32> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let n: i64 = match value.parse() {
        Ok(n) => n,
        Err(_) if digits => i64::MAX,
        Err(_) => return Err(bad("limit param must be an integer")),
    };
    if n < 0 {
        return Err(bad("limit param must be positive"));
    }
    Ok(n.min(i64::from(max)) as u32)
}

/// The filters on `name`, `id`, `status`, `container_format` and `disk_format` as Glance's
/// database layer reads them: `in:a,"b,c"` (a list, double quotes around items with
/// commas), `eq:a` or a plain value (one), an ISO 8601 time as it is, and any other text
/// before a colon is an unknown operator (400).
fn column_filter(key: &str, value: &str) -> ParseResult<Vec<String>> {
    let Some((op, rest)) = value.split_once(':') else {
        return Ok(vec![value.to_owned()]);
    };
    if parse_time(value).is_some() {
        return Ok(vec![value.to_owned()]);
    }
    match op {
        "in" => quoted_list(rest),
        "eq" => Ok(vec![rest.to_owned()]),
        _ => Err(bad(format!(
            "Unable to filter by unknown operator '{op}' on {key}."
        ))),
    }
}

/// `a,"b,c",d` -> `a`, `b,c`, `d` (api-wg's quoting of list filters).
fn quoted_list(value: &str) -> ParseResult<Vec<String>> {
    let mut items = Vec::new();
    let mut chars = value.chars().peekable();
    while chars.peek().is_some() {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => item.push(c),
                }
            }
            if !closed {
                return Err(bad(format!(
                    "Invalid filter value {value}. The quote is not closed."
                )));
            }
            match chars.next() {
                None | Some(',') => {}
                Some(_) => {
                    return Err(bad(format!(
                    "Invalid filter value {value}. There is no comma after closing quotation mark."
                )))
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(bad(format!(
                        "Invalid filter value {value}. There is no comma before opening quotation mark."
                    )));
                }
                item.push(c);
            }
        }
        items.push(item);
    }
    Ok(items)
}

/// ISO 8601 as oslo's `parse_isotime` takes it: a full timestamp or a date.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// Glance's schema for these filters is a JSON boolean: only `true` and `false`.
fn boolean(key: &str, value: &str) -> ParseResult<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!("Invalid value '{value}' for {key} filter"))),
    }
}

/// `os_hidden` is read by Glance's controller itself, case-insensitively: `True`, which
/// openstacksdk sends for every list, is as good as `true` (unlike for `protected`).
fn hidden(value: &str) -> ParseResult<bool> {
    boolean("os_hidden", &value.to_ascii_lowercase())
        .map_err(|_| bad(format!("Invalid value '{value}' for os_hidden filter")))
}

fn time_filter(key: &str, value: &str) -> ParseResult<(CmpOp, DateTime<Utc>)> {
    let (op, when) = match value.split_once(':') {
        Some((op @ ("eq" | "neq" | "gt" | "gte" | "lt" | "lte"), rest)) => (op, rest),
        _ => ("eq", value),
    };
    let op = match op {
        "eq" => CmpOp::Eq,
        "neq" => CmpOp::Neq,
        "gt" => CmpOp::Gt,
        "gte" => CmpOp::Gte,
        "lt" => CmpOp::Lt,
        _ => CmpOp::Lte,
    };
    let when = parse_time(when).ok_or_else(|| {
        bad(format!(
            "Invalid {key} value: '{value}'. Use ISO 8601, e.g. gt:2024-01-31T23:59:59Z"
        ))
    })?;
    Ok((op, when))
}

/// Any integer, negative ones included (they simply bound nothing).
fn size(key: &str, value: &str) -> ParseResult<i64> {
    value.trim().parse::<i64>().map_err(|_| {
        bad(format!(
            "Unable to filter on a range with a non-numeric value ({key}={value})."
        ))
    })
}

/// Glance's `_available_sort_keys`.
const SORT_KEYS: &str =
    "name, status, container_format, disk_format, size, id, created_at, updated_at";

fn sort_column(key: &str) -> ParseResult<SortColumn> {
    let known = SORT_KEYS.split(", ").any(|k| k == key);
    known
        .then(|| SortColumn::parse(key))
        .flatten()
        .ok_or_else(|| {
            bad(format!(
                "Invalid sort key: {key}. It must be one of the following: {SORT_KEYS}."
            ))
        })
}

fn sort_dir(dir: &str) -> ParseResult<SortDir> {
    match dir {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        other => Err(bad(format!(
            "Invalid sort direction: {other}. It must be one of the following: asc, desc."
        ))),
    }
}

/// A listing's page sizes: `[DEFAULT] limit_param_default` and `api_limit_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub default: u32,
    pub max: u32,
}

impl Default for Limits {
    /// Glance's defaults.
    fn default() -> Self {
        Self {
            default: 25,
            max: 1000,
        }
    }
}

/// Parses the query string of an image list.
pub fn parse(query: &str, ctx: &RequestContext, limits: Limits) -> ParseResult<ListImages> {
    let mut filters = ImageFilters::default();
    let mut limit = limits.default;
    let mut marker = None;
    let mut sort_keys: Vec<String> = Vec::new();
    let mut sort_dirs: Vec<String> = Vec::new();
    let mut sort_param: Option<String> = None;

    if query_is_not_utf8(query) {
        return Err(bad("Query string is not valid UTF-8."));
    }
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "limit" => limit = limit_param(&value, limits.max)?,
            "marker" => {
                marker = Some(value.parse::<ImageId>().map_err(|_| {
                    bad(format!("Invalid marker. Image {value} could not be found."))
                })?)
            }
            "sort_key" => sort_keys.push(value),
            "sort_dir" => sort_dirs.push(value),
            "sort" => sort_param = Some(value),
            // Values that name no image match nothing, as in Glance's SQL; they are not
            // errors.
            "id" => {
                let ids = column_filter("id", &value)?
                    .iter()
                    .filter_map(|s| s.parse::<ImageId>().ok())
                    .collect();
                filters.ids = Some(ids);
            }
            "name" => filters.names = Some(column_filter("name", &value)?),
            "status" => {
                let statuses = column_filter("status", &value)?
                    .iter()
                    .filter_map(|s| s.parse::<ImageStatus>().ok())
                    .filter(|s| s.as_str() != "all")
                    .collect();
                filters.statuses = Some(statuses);
            }
            "visibility" => {
                filters.visibility = Some(match value.as_str() {
                    "public" => VisibilityFilter::Public,
                    "private" => VisibilityFilter::Private,
                    "shared" => VisibilityFilter::Shared,
                    "community" => VisibilityFilter::Community,
                    "all" => VisibilityFilter::All,
                    // An empty visibility is a visibility no image has.
                    "" => {
                        filters.ids = Some(Vec::new());
                        VisibilityFilter::All
                    }
                    _ => return Err(bad(format!("Invalid visibility value: {value}"))),
                })
            }
            "owner" => filters.owners = Some(vec![value]),
            "container_format" => {
                filters.container_formats = Some(column_filter("container_format", &value)?)
            }
            "disk_format" => filters.disk_formats = Some(column_filter("disk_format", &value)?),
            "size_min" => filters.size_min = Some(size("size_min", &value)?),
            "size_max" => filters.size_max = Some(size("size_max", &value)?),
            "tag" => filters.tags.push(value),
            "protected" => filters.protected = Some(boolean("protected", &value)?),
            "os_hidden" => filters.os_hidden = Some(hidden(&value)?),
            "member_status" => {
                filters.member_status = Some(match value.as_str() {
                    "pending" => MemberStatusFilter::Pending,
                    "accepted" => MemberStatusFilter::Accepted,
                    "rejected" => MemberStatusFilter::Rejected,
                    "all" => MemberStatusFilter::All,
                    _ => return Err(bad(format!("Invalid status value: {value}"))),
                })
            }
            "created_at" => filters.created_at.push(time_filter("created_at", &value)?),
            "updated_at" => filters.updated_at.push(time_filter("updated_at", &value)?),
            other => {
                filters.properties.insert(other.to_owned(), value);
            }
        }
    }

    let sort = sorting(sort_param, sort_keys, sort_dirs)?;
    Ok(ListImages {
        ctx: ctx.clone(),
        filters,
        sort,
        limit,
        marker,
    })
}

/// Whether the query's percent-escapes spell something that is not UTF-8 (webob refuses it
/// with 400; `url` would quietly put U+FFFD in its place).
fn query_is_not_utf8(query: &str) -> bool {
    let b = query.as_bytes();
    let mut raw = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                raw.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        raw.push(b[i]);
        i += 1;
    }
    std::str::from_utf8(&raw).is_err()
}

/// `sort=name:asc,size` or repeated `sort_key`/`sort_dir`, never both (Glance's rules).
fn sorting(
    sort_param: Option<String>,
    keys: Vec<String>,
    dirs: Vec<String>,
) -> ParseResult<Vec<SortKey>> {
    if let Some(sort) = sort_param {
        if !keys.is_empty() || !dirs.is_empty() {
            return Err(bad(
                "The 'sort' param cannot be combined with 'sort_key' or 'sort_dir'.",
            ));
        }
        if sort.trim().is_empty() {
            return Err(bad("Sort param must not be empty."));
        }
        return sort
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let (key, dir) = item.split_once(':').unwrap_or((item, "desc"));
                let dir = if dir.trim().is_empty() { "desc" } else { dir };
                Ok(SortKey {
                    column: sort_column(key.trim())?,
                    dir: sort_dir(dir.trim())?,
                })
            })
            .collect();
    }
    if dirs.len() > 1 && dirs.len() != keys.len() {
        return Err(bad(
            "Number of sort dirs does not match the number of sort keys",
        ));
    }
    if keys.is_empty() {
        return match dirs.first() {
            Some(dir) => Ok(vec![SortKey {
                column: SortColumn::CreatedAt,
                dir: sort_dir(dir)?,
            }]),
            None => Ok(Vec::new()),
        };
    }
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            let dir = dirs
                .get(i)
                .or(dirs.first())
                .map(String::as_str)
                .unwrap_or("desc");
            Ok(SortKey {
                column: sort_column(key)?,
                dir: sort_dir(dir)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseError;

    fn cfg() -> Limits {
        Limits::default()
    }

    #[test]
    fn in_lists_and_repeated_tags_are_understood() {
        let q = parse(
            "name=in:a,b&tag=x&tag=y&hw_disk_bus=scsi",
            &RequestContext::default(),
            cfg(),
        )
        .unwrap();
        assert_eq!(q.filters.names, Some(vec!["a".into(), "b".into()]));
        assert_eq!(q.filters.tags, vec!["x", "y"]);
        assert_eq!(q.filters.properties["hw_disk_bus"], "scsi");
    }

    #[test]
    fn limit_is_capped_at_api_limit_max() {
        let q = parse("limit=100000", &RequestContext::default(), cfg()).unwrap();
        assert_eq!(q.limit, cfg().max);
        assert!(parse("limit=-1", &RequestContext::default(), cfg()).is_err());
    }

    #[test]
    fn sort_cannot_be_mixed_with_sort_key() {
        assert!(parse(
            "sort=name:asc&sort_key=size",
            &RequestContext::default(),
            cfg()
        )
        .is_err());
        let q = parse("sort=name:asc,size", &RequestContext::default(), cfg()).unwrap();
        assert_eq!(q.sort.len(), 2);
        assert_eq!(q.sort[1].dir, SortDir::Desc);
    }

    #[test]
    fn a_limit_is_a_non_negative_integer_capped_at_the_maximum() {
        assert_eq!(limit_param("5", 1000).unwrap(), 5);
        assert_eq!(limit_param("5000", 1000).unwrap(), 1000);
        // Beyond u32 and i64 alike: more than the maximum, not wrapped around.
        assert_eq!(limit_param("4294967297", 1000).unwrap(), 1000);
        assert_eq!(limit_param("99999999999999999999", 1000).unwrap(), 1000);
        for refused in ["-1", "x", "", "1.5"] {
            assert!(limit_param(refused, 1000).is_err(), "{refused}");
        }
    }

    #[test]
    fn bad_filters_are_bad_requests() {
        for q in [
            "sort_key=bogus",
            "sort_dir=sideways",
            "size_min=big",
            "created_at=gt:yesterday",
            "protected=maybe",
            "visibility=secret",
            "marker=not-a-uuid",
        ] {
            assert!(
                matches!(
                    parse(q, &RequestContext::default(), cfg()),
                    Err(ParseError::BadRequest(_))
                ),
                "{q}"
            );
        }
    }

    #[test]
    fn time_filters_take_operators() {
        let q = parse(
            "created_at=gte:2024-01-01T00:00:00Z",
            &RequestContext::default(),
            cfg(),
        )
        .unwrap();
        assert_eq!(q.filters.created_at[0].0, CmpOp::Gte);
    }

    fn list(q: &str) -> ParseResult<ListImages> {
        parse(q, &RequestContext::default(), cfg())
    }

    #[test]
    fn values_no_image_has_match_nothing_rather_than_fail() {
        // Glance 33 answers these with 200 and an empty (or full) list.
        let q = list("status=bogus").unwrap();
        assert_eq!(q.filters.statuses, Some(vec![]));
        assert_eq!(
            list("status=ACTIVE").unwrap().filters.statuses,
            Some(vec![])
        );
        assert_eq!(list("id=abc").unwrap().filters.ids, Some(vec![]));
        assert_eq!(list("visibility=").unwrap().filters.ids, Some(vec![]));
        assert_eq!(list("size_min=-1").unwrap().filters.size_min, Some(-1));
        assert_eq!(list("limit=99999999999999999999").unwrap().limit, cfg().max);
        assert!(list("created_at=gt:2999-01-01").is_ok());
        assert!(list("sort=name:").is_ok());
        assert_eq!(
            list("owner=in:a,b").unwrap().filters.owners,
            Some(vec!["in:a,b".into()])
        );
        assert_eq!(
            list("name=eq:l-1").unwrap().filters.names,
            Some(vec!["l-1".into()])
        );
        assert_eq!(
            list("name=in:a,%22b,c%22").unwrap().filters.names,
            Some(vec!["a".into(), "b,c".into()])
        );
    }

    #[test]
    fn what_glance_refuses_is_refused() {
        for q in [
            "name=neq:x",
            "name=a:b",
            "sort=",
            "sort_key=owner",
            "sort_key=min_disk",
            "sort_key=visibility",
            "sort_key=virtual_size",
            "protected=True",
            "protected=1",
            "os_hidden=1",
            "a=%ff",
        ] {
            assert!(matches!(list(q), Err(ParseError::BadRequest(_))), "{q}");
        }
    }
}
