//! JSON Patch (RFC 6902) over an artifact's JSON document: parsing the operations and
//! applying one at a time, so each can be checked against the rules as Glare does.

use serde_json::Value;

use crate::error::GlareError;

#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Vec<String>,
    pub from: Option<Vec<String>>,
    pub value: Option<Value>,
}

impl Operation {
    /// The top-level field this operation touches.
    pub fn field(&self) -> &str {
        self.path.first().map_or("", String::as_str)
    }

    /// Whether it replaces or removes a whole top-level field.
    pub fn is_top_level(&self) -> bool {
        self.path.len() == 1
    }
}

fn bad(msg: impl Into<String>) -> GlareError {
    GlareError::BadRequest(msg.into())
}

/// `/a/b~1c` -> `["a", "b/c"]`.
fn pointer(text: &str) -> Result<Vec<String>, GlareError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let rest = text
        .strip_prefix('/')
        .ok_or_else(|| bad(format!("Location must start with /: {text}")))?;
    Ok(rest
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect())
}

pub fn parse(body: &Value) -> Result<Vec<Operation>, GlareError> {
    let Value::Array(ops) = body else {
        return Err(bad("JSON patch must be a list of operations."));
    };
    ops.iter()
        .map(|op| {
            let Value::Object(o) = op else {
                return Err(bad("Every JSON patch operation must be an object."));
            };
            let name = o
                .get("op")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Operation must have an 'op' member."))?;
            let kind = match name {
                "add" => OpKind::Add,
                "remove" => OpKind::Remove,
                "replace" => OpKind::Replace,
                "move" => OpKind::Move,
                "copy" => OpKind::Copy,
                "test" => OpKind::Test,
                other => return Err(bad(format!("Unknown operation {other:?}"))),
            };
            let path = o
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Operation must have a 'path' member."))?;
            let path = pointer(path)?;
            if path.is_empty() {
                return Err(bad("Operation cannot change the whole document."));
            }
            let from = match kind {
                OpKind::Move | OpKind::Copy => {
                    Some(pointer(o.get("from").and_then(Value::as_str).ok_or_else(
                        || bad("Operation must have a 'from' member."),
                    )?)?)
                }
                _ => None,
            };
            let value = match kind {
                OpKind::Add | OpKind::Replace | OpKind::Test => Some(
                    o.get("value")
                        .cloned()
                        .ok_or_else(|| bad("The operation does not contain a 'value' member"))?,
                ),
                _ => None,
            };
            Ok(Operation {
                op: kind,
                path,
                from,
                value,
            })
        })
        .collect()
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn parent<'a>(doc: &'a mut Value, path: &[String]) -> Result<&'a mut Value, GlareError> {
    let (_, up) = path.split_last().expect("non-empty path");
    let mut v = doc;
    for key in up {
        v = match v {
            Value::Object(map) => map.get_mut(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| bad(format!("can't find member '{key}'")))?;
    }
    Ok(v)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), GlareError> {
    let key = path.last().expect("non-empty path");
    match parent(doc, path)? {
        Value::Object(map) => {
            map.insert(key.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let at = if key == "-" {
                items.len()
            } else {
                key.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| bad(format!("invalid array index '{key}'")))?
            };
            items.insert(at, value);
            Ok(())
        }
        Value::Null => Err(bad(format!("can't add '{key}' to a null value"))),
        _ => Err(bad(format!("can't add member '{key}' here"))),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, GlareError> {
    let key = path.last().expect("non-empty path");
    match parent(doc, path)? {
        Value::Object(map) => map
            .remove(key)
            .ok_or_else(|| bad(format!("can't remove non-existent object '{key}'"))),
        Value::Array(items) => {
            let i = key
                .parse::<usize>()
                .ok()
                .filter(|i| *i < items.len())
                .ok_or_else(|| bad(format!("can't remove invalid list member '{key}'")))?;
            Ok(items.remove(i))
        }
        _ => Err(bad(format!("can't remove '{key}' here"))),
    }
}

/// Applies one operation to `doc`.
pub fn apply(doc: &mut Value, op: &Operation) -> Result<(), GlareError> {
    match op.op {
        OpKind::Add => add(doc, &op.path, op.value.clone().expect("parsed")),
        OpKind::Remove => remove(doc, &op.path).map(|_| ()),
        OpKind::Replace => {
            if get(doc, &op.path).is_none() {
                return Err(bad(format!(
                    "can't replace non-existent object '{}'",
                    op.path.last().expect("non-empty path")
                )));
            }
            remove(doc, &op.path)?;
            add(doc, &op.path, op.value.clone().expect("parsed"))
        }
        OpKind::Move => {
            let from = op.from.as_deref().unwrap_or_default();
            let value = remove(doc, from)?;
            add(doc, &op.path, value)
        }
        OpKind::Copy => {
            let from = op.from.as_deref().unwrap_or_default();
            let value = get(doc, from)
                .cloned()
                .ok_or_else(|| bad("can't copy from a non-existent location"))?;
            add(doc, &op.path, value)
        }
        OpKind::Test => {
            if get(doc, &op.path) == op.value.as_ref() {
                Ok(())
            } else {
                Err(GlareError::Conflict("Test operation failed".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, ops: Value) -> Result<Value, GlareError> {
        let mut doc = doc;
        for op in parse(&ops)? {
            apply(&mut doc, &op)?;
        }
        Ok(doc)
    }

    #[test]
    fn a_tag_is_appended_and_a_metadata_key_added() {
        let doc = run(
            json!({"tags": ["a"], "metadata": {}}),
            json!([{"op": "add", "path": "/tags/-", "value": "b"},
                   {"op": "add", "path": "/metadata/k", "value": "v"}]),
        )
        .unwrap();
        assert_eq!(doc, json!({"tags": ["a", "b"], "metadata": {"k": "v"}}));
    }

    #[test]
    fn replacing_what_is_not_there_is_refused() {
        assert!(run(
            json!({}),
            json!([{"op": "replace", "path": "/x/y", "value": 1}])
        )
        .is_err());
        assert!(run(json!({}), json!({"op": "add"})).is_err());
        assert!(run(json!({}), json!([{"op": "jump", "path": "/x"}])).is_err());
    }
}
