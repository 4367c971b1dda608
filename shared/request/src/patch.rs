//! Glance's JSON-patch dialects for `PATCH /v2/images/{id}`:
//! `application/openstack-images-v2.1-json-patch` (`{"op": "replace", "path": ..}`) and
//! the older `-v2.0-` (`{"replace": path, ..}`), with `add`, `replace` and `remove`.

use serde_json::Value;

use crate::{bad, ParseError, ParseResult};

pub const MEDIA_TYPE_V21: &str = "application/openstack-images-v2.1-json-patch";
pub const MEDIA_TYPE_V20: &str = "application/openstack-images-v2.0-json-patch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V20,
    V21,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: Op,
    /// The top-level attribute or property the path names (JSON-pointer unescaped).
    pub key: String,
    pub value: Option<Value>,
}

pub fn dialect(content_type: Option<&str>) -> ParseResult<Dialect> {
    let ct = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    match ct {
        MEDIA_TYPE_V21 => Ok(Dialect::V21),
        MEDIA_TYPE_V20 => Ok(Dialect::V20),
        _ => Err(ParseError::UnsupportedPatchType(format!(
            "Image PATCH expects Content-Type one of: {MEDIA_TYPE_V20}, {MEDIA_TYPE_V21}"
        ))),
    }
}

/// Parses a patch document into changes, refusing anything Glance refuses.
pub fn parse(body: &[u8], dialect: Dialect) -> ParseResult<Vec<Change>> {
    let doc = crate::parse_json(body)?;
    let items = doc
        .as_array()
        .ok_or_else(|| bad("Request body must be a JSON array of operation objects."))?;
    items.iter().map(|item| parse_one(item, dialect)).collect()
}

fn parse_one(item: &Value, dialect: Dialect) -> ParseResult<Change> {
    let obj = item
        .as_object()
        .ok_or_else(|| bad("Operations must be JSON objects."))?;
    let (op_name, path) = match dialect {
        Dialect::V21 => {
            let op = obj
                .get("op")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Unable to find 'op' in JSON Schema change"))?;
            let path = obj
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Unable to find 'path' in JSON Schema change"))?;
            (op, path)
        }
        Dialect::V20 => {
            let found: Vec<(&str, &str)> = ["add", "replace", "remove"]
                .into_iter()
                .filter_map(|op| obj.get(op).and_then(Value::as_str).map(|p| (op, p)))
                .collect();
            match found.as_slice() {
                [(op, path)] => (*op, *path),
                _ => {
                    return Err(bad(
                        "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                    ))
                }
            }
        }
    };
    let op = match op_name {
        "add" => Op::Add,
        "replace" => Op::Replace,
        "remove" => Op::Remove,
        other => {
            return Err(bad(format!(
                "Invalid operation: `{other}`: Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\"."
            )))
        }
    };
    let key = parse_path(path)?;
    let value = match op {
        Op::Remove => None,
        _ => Some(obj.get("value").cloned().ok_or_else(|| {
            bad(format!(
                "Operation \"{op_name}\" requires a member named \"value\"."
            ))
        })?),
    };
    Ok(Change { op, key, value })
}

/// Paths are JSON pointers naming one top-level member: `/name`, `/hw_disk_bus`, `/a~1b`.
fn parse_path(path: &str) -> ParseResult<String> {
    let invalid = || bad(format!("Invalid JSON pointer for this resource: '{path}'"));
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    if rest.is_empty() || rest.contains('/') {
        // `/locations/0` style paths address locations, which need show_multiple_locations.
        return Err(invalid());
    }
    if rest.contains('~') {
        let mut out = String::with_capacity(rest.len());
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            if c == '~' {
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(invalid()),
                }
            } else {
                out.push(c);
            }
        }
        return Ok(out);
    }
    Ok(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_parse_to_the_same_changes() {
        let v21 = parse(
            br#"[{"op":"replace","path":"/name","value":"x"}]"#,
            Dialect::V21,
        )
        .unwrap();
        let v20 = parse(br#"[{"replace":"/name","value":"x"}]"#, Dialect::V20).unwrap();
        assert_eq!(v21, v20);
        assert_eq!(v21[0].key, "name");
    }

    #[test]
    fn json_pointer_escapes_are_unescaped() {
        let c = parse(
            br#"[{"op":"add","path":"/a~1b~0c","value":"v"}]"#,
            Dialect::V21,
        )
        .unwrap();
        assert_eq!(c[0].key, "a/b~c");
    }

    #[test]
    fn unsupported_operations_are_bad_requests() {
        for body in [
            &br#"[{"op":"move","path":"/name","from":"/x"}]"#[..],
            br#"[{"op":"replace","path":"name","value":"x"}]"#,
            br#"[{"op":"replace","path":"/name"}]"#,
            br#"{"op":"replace"}"#,
            br#"not json"#,
        ] {
            assert!(matches!(
                parse(body, Dialect::V21),
                Err(ParseError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn other_media_types_are_refused_with_415() {
        assert!(matches!(
            dialect(Some("application/json")),
            Err(ParseError::UnsupportedPatchType(_))
        ));
        assert_eq!(dialect(Some(MEDIA_TYPE_V21)).unwrap(), Dialect::V21);
    }
}
