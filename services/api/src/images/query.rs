//! `GET /v2/images` query parameters into a registry [`ListImages`], with Glance's checks.

use chrono::{DateTime, Utc};
use glance_domain::{ImageId, ImageStatus, RequestContext};
use glance_proto::registry::{
    CmpOp, ImageFilters, ListImages, MemberStatusFilter, SortColumn, SortDir, SortKey,
    VisibilityFilter,
};

use crate::error::{ApiError, ApiResult};
use crate::ApiConfig;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// Splits `in:a,b` into its items; a plain value is a list of one.
fn in_list(value: &str) -> Vec<String> {
    match value.strip_prefix("in:") {
        Some(rest) => rest.split(',').map(|s| s.trim().to_owned()).collect(),
        None => vec![value.to_owned()],
    }
}

fn boolean(key: &str, value: &str) -> ApiResult<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(format!("Invalid value '{value}' for {key} filter"))),
    }
}

fn time_filter(key: &str, value: &str) -> ApiResult<(CmpOp, DateTime<Utc>)> {
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
    let when = DateTime::parse_from_rfc3339(when)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc())
        })
        .map_err(|_| {
            bad(format!(
                "Invalid {key} value: '{value}'. Use ISO 8601, e.g. gt:2024-01-31T23:59:59Z"
            ))
        })?;
    Ok((op, when))
}

fn size(key: &str, value: &str) -> ApiResult<i64> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            bad(format!(
                "Invalid value for {key}: '{value}' is not a non-negative integer"
            ))
        })
}

const SORT_KEYS: &str = "name, status, container_format, disk_format, size, virtual_size, id, created_at, updated_at, min_disk, min_ram, owner, visibility";

fn sort_column(key: &str) -> ApiResult<SortColumn> {
    SortColumn::parse(key).ok_or_else(|| {
        bad(format!(
            "Invalid sort key: {key}. It must be one of the following: {SORT_KEYS}."
        ))
    })
}

fn sort_dir(dir: &str) -> ApiResult<SortDir> {
    match dir {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        other => Err(bad(format!(
            "Invalid sort direction: {other}. It must be one of the following: asc, desc."
        ))),
    }
}

/// Parses the query string of an image list.
pub fn parse(query: &str, ctx: &RequestContext, cfg: &ApiConfig) -> ApiResult<ListImages> {
    let mut filters = ImageFilters::default();
    let mut limit = cfg.limit_param_default;
    let mut marker = None;
    let mut sort_keys: Vec<String> = Vec::new();
    let mut sort_dirs: Vec<String> = Vec::new();
    let mut sort_param: Option<String> = None;

    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "limit" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| bad("limit param must be an integer"))?;
                if n < 0 {
                    return Err(bad("limit param must be positive"));
                }
                limit = (n.min(cfg.api_limit_max as i64)) as u32;
            }
            "marker" => {
                marker = Some(value.parse::<ImageId>().map_err(|_| {
                    bad(format!("Invalid marker. Image {value} could not be found."))
                })?)
            }
            "sort_key" => sort_keys.push(value),
            "sort_dir" => sort_dirs.push(value),
            "sort" => sort_param = Some(value),
            "id" => {
                let ids = in_list(&value)
                    .iter()
                    .map(|s| s.parse::<ImageId>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad(format!("Invalid id filter: '{value}'")))?;
                filters.ids = Some(ids);
            }
            "name" => filters.names = Some(in_list(&value)),
            "status" => {
                let statuses = in_list(&value)
                    .iter()
                    .map(|s| s.to_ascii_lowercase().parse::<ImageStatus>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad(format!("Invalid status value: {value}")))?;
                filters.statuses = Some(statuses);
            }
            "visibility" => {
                filters.visibility = Some(match value.as_str() {
                    "public" => VisibilityFilter::Public,
                    "private" => VisibilityFilter::Private,
                    "shared" => VisibilityFilter::Shared,
                    "community" => VisibilityFilter::Community,
                    "all" => VisibilityFilter::All,
                    _ => return Err(bad(format!("Invalid visibility value: {value}"))),
                })
            }
            "owner" => filters.owners = Some(in_list(&value)),
            "container_format" => filters.container_formats = Some(in_list(&value)),
            "disk_format" => filters.disk_formats = Some(in_list(&value)),
            "size_min" => filters.size_min = Some(size("size_min", &value)?),
            "size_max" => filters.size_max = Some(size("size_max", &value)?),
            "tag" => filters.tags.push(value),
            "protected" => filters.protected = Some(boolean("protected", &value)?),
            "os_hidden" => filters.os_hidden = Some(boolean("os_hidden", &value)?),
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

/// `sort=name:asc,size` or repeated `sort_key`/`sort_dir`, never both (Glance's rules).
fn sorting(
    sort_param: Option<String>,
    keys: Vec<String>,
    dirs: Vec<String>,
) -> ApiResult<Vec<SortKey>> {
    if let Some(sort) = sort_param {
        if !keys.is_empty() || !dirs.is_empty() {
            return Err(bad(
                "The 'sort' param cannot be combined with 'sort_key' or 'sort_dir'.",
            ));
        }
        return sort
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let (key, dir) = item.split_once(':').unwrap_or((item, "desc"));
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

    fn cfg() -> ApiConfig {
        ApiConfig::default()
    }

    #[test]
    fn in_lists_and_repeated_tags_are_understood() {
        let q = parse(
            "name=in:a,b&tag=x&tag=y&hw_disk_bus=scsi",
            &RequestContext::default(),
            &cfg(),
        )
        .unwrap();
        assert_eq!(q.filters.names, Some(vec!["a".into(), "b".into()]));
        assert_eq!(q.filters.tags, vec!["x", "y"]);
        assert_eq!(q.filters.properties["hw_disk_bus"], "scsi");
    }

    #[test]
    fn limit_is_capped_at_api_limit_max() {
        let q = parse("limit=100000", &RequestContext::default(), &cfg()).unwrap();
        assert_eq!(q.limit, cfg().api_limit_max);
        assert!(parse("limit=-1", &RequestContext::default(), &cfg()).is_err());
    }

    #[test]
    fn sort_cannot_be_mixed_with_sort_key() {
        assert!(parse(
            "sort=name:asc&sort_key=size",
            &RequestContext::default(),
            &cfg()
        )
        .is_err());
        let q = parse("sort=name:asc,size", &RequestContext::default(), &cfg()).unwrap();
        assert_eq!(q.sort.len(), 2);
        assert_eq!(q.sort[1].dir, SortDir::Desc);
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
                    parse(q, &RequestContext::default(), &cfg()),
                    Err(ApiError::BadRequest(_))
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
            &cfg(),
        )
        .unwrap();
        assert_eq!(q.filters.created_at[0].0, CmpOp::Gte);
    }
}
