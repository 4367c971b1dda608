//! Who may do what: Glance's named policy rules (the secure-RBAC defaults of
//! `glance/policies/*.py`) in oslo.policy's expression language, with an optional override
//! file (`[oslo_policy] policy_file`, JSON or YAML) read with the rest of the configuration.
//!
//! An expression combines checks with `and`, `or`, `not` and parentheses:
//! `role:X` (the caller has role X), `rule:Y` (rule Y holds), `@` (always), `!` (never),
//! `KEY:%(attr)s` (the caller's `KEY`, e.g. `project_id`, equals the target's `attr`),
//! `'literal':%(attr)s` (the target's `attr` is that literal), and `KEY:value`.
//! Checks that cannot be parsed deny, as oslo.policy's do.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use glance_domain::{Image, RequestContext};

/// Rules shared by the defaults below (`glance/policies/base.py`).
const ADMIN: &str = "rule:context_is_admin";
const ADMIN_OR_PROJECT_MEMBER: &str =
    "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
const ADMIN_OR_PROJECT_READER: &str =
    "rule:context_is_admin or (role:reader and project_id:%(project_id)s)";
const ADMIN_OR_PROJECT_READER_GET_IMAGE: &str = "rule:context_is_admin or (role:reader and \
     (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s \
     or 'public':%(visibility)s or 'shared':%(visibility)s))";
const ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE: &str = "rule:context_is_admin or (role:member and \
     (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s \
     or 'public':%(visibility)s or 'shared':%(visibility)s))";
const ADMIN_OR_PROJECT_MEMBER_CREATE_IMAGE: &str = "rule:context_is_admin or \
     (role:member and project_id:%(project_id)s and project_id:%(owner)s)";
const ADMIN_OR_SHARED_MEMBER: &str =
    "rule:context_is_admin or (role:member and project_id:%(member_id)s)";
/// Glance's `ADMIN_OR_PROJECT_READER_GET_NAMESPACE`: the namespace's project or a public one.
const ADMIN_OR_PROJECT_READER_GET_NAMESPACE: &str = "rule:context_is_admin or (role:reader and \
     (project_id:%(project_id)s or 'public':%(visibility)s))";
const METADEF_ADMIN: &str = "rule:metadef_admin";
const ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER: &str = "rule:context_is_admin or \
     (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))";

/// Glance's default rules (secure RBAC, `enforce_new_defaults = True`), as Glance 33 ships
/// them (checked against it: deactivate and reactivate are open to project members).
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("default", ""),
    ("context_is_admin", "role:admin"),
    ("service_api", "role:service or role:admin"),
    ("add_image", ADMIN_OR_PROJECT_MEMBER_CREATE_IMAGE),
    ("delete_image", ADMIN_OR_PROJECT_MEMBER),
    ("get_image", ADMIN_OR_PROJECT_READER_GET_IMAGE),
    ("get_images", ADMIN_OR_PROJECT_READER),
    ("modify_image", ADMIN_OR_PROJECT_MEMBER),
    ("publicize_image", ADMIN),
    ("communitize_image", ADMIN_OR_PROJECT_MEMBER),
    ("download_image", ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE),
    ("upload_image", ADMIN_OR_PROJECT_MEMBER),
    ("get_image_location", ADMIN_OR_PROJECT_READER),
    ("set_image_location", ADMIN_OR_PROJECT_MEMBER),
    ("delete_image_location", ADMIN),
    (
        "add_image_location",
        "rule:service_api or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
    ),
    ("fetch_image_location", "rule:service_api"),
    ("add_member", ADMIN_OR_PROJECT_MEMBER),
    ("delete_member", ADMIN_OR_PROJECT_MEMBER),
    ("get_member", ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER),
    ("get_members", ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER),
    ("modify_member", ADMIN_OR_SHARED_MEMBER),
    ("deactivate", ADMIN_OR_PROJECT_MEMBER),
    ("reactivate", ADMIN_OR_PROJECT_MEMBER),
    ("copy_image", ADMIN),
    ("manage_image_cache", ADMIN),
    // Cache management (`glance/policies/cache.py`).
    ("cache_image", ADMIN),
    ("cache_list", ADMIN),
    ("cache_delete", ADMIN),
    ("cache_clean", ADMIN),
    ("cache_prune", ADMIN),
    ("list_cached_nodes", ADMIN),
    // Tasks (`glance/policies/tasks.py`): the API itself is admin only.
    ("get_task", "rule:default"),
    ("get_tasks", "rule:default"),
    ("add_task", "rule:default"),
    ("modify_task", "rule:default"),
    ("tasks_api_access", ADMIN),
    // Metadata definitions (`glance/policies/metadef.py`): reading needs the reader role on
    // a namespace of one's project or a public one; writing is for admins.
    ("metadef_default", ""),
    ("metadef_admin", ADMIN),
    (
        "get_metadef_namespace",
        ADMIN_OR_PROJECT_READER_GET_NAMESPACE,
    ),
    ("get_metadef_namespaces", ADMIN_OR_PROJECT_READER),
    ("modify_metadef_namespace", METADEF_ADMIN),
    ("add_metadef_namespace", METADEF_ADMIN),
    ("delete_metadef_namespace", METADEF_ADMIN),
    ("get_metadef_object", ADMIN_OR_PROJECT_READER_GET_NAMESPACE),
    ("get_metadef_objects", ADMIN_OR_PROJECT_READER_GET_NAMESPACE),
    ("modify_metadef_object", METADEF_ADMIN),
    ("add_metadef_object", METADEF_ADMIN),
    ("delete_metadef_object", METADEF_ADMIN),
    (
        "list_metadef_resource_types",
        ADMIN_OR_PROJECT_READER_GET_NAMESPACE,
    ),
    (
        "get_metadef_resource_type",
        ADMIN_OR_PROJECT_READER_GET_NAMESPACE,
    ),
    ("add_metadef_resource_type_association", METADEF_ADMIN),
    ("remove_metadef_resource_type_association", METADEF_ADMIN),
    (
        "get_metadef_property",
        ADMIN_OR_PROJECT_READER_GET_NAMESPACE,
    ),
    (
        "get_metadef_properties",
        ADMIN_OR_PROJECT_READER_GET_NAMESPACE,
    ),
    ("modify_metadef_property", METADEF_ADMIN),
    ("add_metadef_property", METADEF_ADMIN),
    ("remove_metadef_property", METADEF_ADMIN),
    ("get_metadef_tag", ADMIN_OR_PROJECT_READER_GET_NAMESPACE),
    ("get_metadef_tags", ADMIN_OR_PROJECT_READER_GET_NAMESPACE),
    ("modify_metadef_tag", METADEF_ADMIN),
    ("add_metadef_tag", METADEF_ADMIN),
    ("add_metadef_tags", METADEF_ADMIN),
    ("delete_metadef_tag", METADEF_ADMIN),
    ("delete_metadef_tags", METADEF_ADMIN),
    (
        "stores_info_detail",
        "rule:context_is_admin or rule:service_api",
    ),
];

/// A parsed rule expression.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    Always,
    Never,
    Role(String),
    Rule(String),
    /// `'literal':%(attr)s`: the target's attribute equals the literal.
    Literal {
        value: String,
        attr: String,
    },
    /// `key:%(attr)s` or `key:value`: the caller's `key` equals the target's attribute or
    /// the value.
    Generic {
        key: String,
        matches: Match,
    },
    Not(Box<Check>),
    And(Vec<Check>),
    Or(Vec<Check>),
}

#[derive(Debug, Clone, PartialEq)]
enum Match {
    Attr(String),
    Value(String),
}

/// What a rule is checked against: the resource's attributes (`project_id` is the owner).
#[derive(Debug, Clone, Default)]
pub struct Target(BTreeMap<&'static str, String>);

impl Target {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, key: &'static str, value: Option<impl Into<String>>) -> Self {
        if let Some(v) = value {
            self.0.insert(key, v.into());
        }
        self
    }

    /// Glance's `ImageTarget`: the owner as `project_id` (and `owner`), the visibility, and
    /// as `member_id` the caller's project when the caller sees the image as a member.
    pub fn image(image: &Image, ctx: &RequestContext) -> Self {
        let member = (image.visibility == glance_domain::Visibility::Shared
            && !ctx.owns(image.owner.as_deref()))
        .then(|| ctx.project_id.clone())
        .flatten();
        Self::new()
            .with("project_id", image.owner.clone())
            .with("owner", image.owner.clone())
            .with("visibility", Some(image.visibility.as_str()))
            .with("image_id", Some(image.id.to_string()))
            .with("member_id", member)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// The effective rules: the defaults, overridden rule by rule from the policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<String, Check>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::with_overrides(std::iter::empty()).expect("default rules parse")
    }
}

impl Policy {
    /// The defaults with `overrides` (rule name -> expression) on top.
    pub fn with_overrides<'a>(
        overrides: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut rules = HashMap::new();
        for (name, expr) in DEFAULT_RULES.iter().copied().chain(overrides) {
            let check = parse(expr).map_err(|e| format!("policy rule {name:?}: {e}"))?;
            rules.insert(name.to_owned(), check);
        }
        Ok(Self { rules })
    }

    /// Reads `path` (a JSON object, or YAML of `"name": "expression"` lines, as Glance's
    /// `policy.yaml`) on top of the defaults.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read policy file {}: {e}", path.display()))?;
        let pairs =
            parse_policy_file(&text).map_err(|e| format!("policy file {}: {e}", path.display()))?;
        Self::with_overrides(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Whether `rule` allows `ctx` on `target`. A rule nobody defined falls back to
    /// `default`, as in oslo.policy.
    pub fn check(&self, rule: &str, ctx: &RequestContext, target: &Target) -> bool {
        let check = self.rules.get(rule).or_else(|| self.rules.get("default"));
        check.is_some_and(|c| self.eval(c, ctx, target, 0))
    }

    /// `context_is_admin` for a caller with these roles.
    pub fn is_admin(&self, roles: &[String]) -> bool {
        let ctx = RequestContext {
            roles: roles.to_vec(),
            ..RequestContext::default()
        };
        self.check("context_is_admin", &ctx, &Target::new())
    }

    fn eval(&self, check: &Check, ctx: &RequestContext, target: &Target, depth: u8) -> bool {
        // A rule referring to itself would never end; deny rather than overflow.
        if depth > 32 {
            return false;
        }
        match check {
            Check::Always => true,
            Check::Never => false,
            Check::Role(role) => ctx.has_role(role),
            Check::Rule(name) => self
                .rules
                .get(name)
                .is_some_and(|c| self.eval(c, ctx, target, depth + 1)),
            Check::Literal { value, attr } => target.get(attr) == Some(value.as_str()),
            Check::Generic { key, matches } => {
                let wanted = match matches {
                    Match::Attr(attr) => match target.get(attr) {
                        Some(v) => v.to_owned(),
                        None => return false,
                    },
                    Match::Value(v) => v.clone(),
                };
                match key.as_str() {
                    "project_id" | "tenant" | "tenant_id" => {
                        ctx.project_id.as_deref() == Some(wanted.as_str())
                    }
                    "user_id" | "user" => ctx.user_id.as_deref() == Some(wanted.as_str()),
                    "is_admin" => ctx.is_admin.to_string().eq_ignore_ascii_case(&wanted),
                    "role" | "roles" => ctx.has_role(&wanted),
                    _ => false,
                }
            }
            Check::Not(inner) => !self.eval(inner, ctx, target, depth + 1),
            Check::And(all) => all.iter().all(|c| self.eval(c, ctx, target, depth + 1)),
            Check::Or(any) => any.iter().any(|c| self.eval(c, ctx, target, depth + 1)),
        }
    }
}

/// A policy file: JSON, or the flat YAML mapping Glance's `policy.yaml` is.
fn parse_policy_file(text: &str) -> Result<Vec<(String, String)>, String> {
    if let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(text) {
        return Ok(map.into_iter().collect());
    }
    let unquote = |s: &str| -> String {
        let s = s.trim();
        for q in ['"', '\''] {
            if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
                return s[1..s.len() - 1].to_owned();
            }
        }
        s.to_owned()
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
            continue;
        }
        // The key ends at the first `:` outside quotes.
        let split = if let Some(rest) = trimmed.strip_prefix('"') {
            rest.find('"').map(|i| i + 2)
        } else if let Some(rest) = trimmed.strip_prefix('\'') {
            rest.find('\'').map(|i| i + 2)
        } else {
            trimmed.find(':')
        };
        let Some(end) = split else {
            return Err(format!("line {}: expected \"rule\": \"expression\"", n + 1));
        };
        let (key, rest) = trimmed.split_at(end);
        let Some(value) = rest.trim_start().strip_prefix(':') else {
            return Err(format!("line {}: expected \"rule\": \"expression\"", n + 1));
        };
        out.push((unquote(key), unquote(value)));
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Check(String),
}

/// oslo.policy's tokenizer: whitespace-separated words, with leading `(` and trailing `)`
/// split off (so `%(project_id)s` inside a check survives).
fn tokenize(expr: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for word in expr.split_whitespace() {
        let mut word = word;
        while let Some(rest) = word.strip_prefix('(') {
            tokens.push(Token::Open);
            word = rest;
        }
        let mut closing = 0;
        // A check never ends in `)` (`%(attr)s` ends in `s`), so every trailing `)` closes.
        while let Some(rest) = word.strip_suffix(')') {
            closing += 1;
            word = rest;
        }
        if !word.is_empty() {
            tokens.push(match word.to_ascii_lowercase().as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Check(word.to_owned()),
            });
        }
        tokens.extend(std::iter::repeat_n(Token::Close, closing));
    }
    tokens
}

fn parse(expr: &str) -> Result<Check, String> {
    let tokens = tokenize(expr);
    if tokens.is_empty() {
        // An empty rule allows everyone (oslo.policy).
        return Ok(Check::Always);
    }
    let mut parser = Parser { tokens, pos: 0 };
    let check = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(format!("unexpected {:?}", parser.tokens[parser.pos]));
    }
    Ok(check)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Result<Check, String> {
        let mut any = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 {
            any.pop().expect("one")
        } else {
            Check::Or(any)
        })
    }

    fn and(&mut self) -> Result<Check, String> {
        let mut all = vec![self.not()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            all.push(self.not()?);
        }
        Ok(if all.len() == 1 {
            all.pop().expect("one")
        } else {
            Check::And(all)
        })
    }

    fn not(&mut self) -> Result<Check, String> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Ok(Check::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Check, String> {
        let token = self.peek().cloned().ok_or("expression ends too early")?;
        self.pos += 1;
        match token {
            Token::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err("missing )".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Token::Check(text) => Ok(check(&text)),
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn check(text: &str) -> Check {
    match text {
        "@" => return Check::Always,
        "!" => return Check::Never,
        _ => {}
    }
    let Some((kind, value)) = text.split_once(':') else {
        return Check::Never;
    };
    let attr = value
        .strip_prefix("%(")
        .and_then(|v| v.strip_suffix(")s"))
        .map(str::to_owned);
    let quoted = (kind.len() >= 2
        && ((kind.starts_with('\'') && kind.ends_with('\''))
            || (kind.starts_with('"') && kind.ends_with('"'))))
    .then(|| kind[1..kind.len() - 1].to_owned());
    match (kind, quoted, attr) {
        ("role", _, None) => Check::Role(value.to_owned()),
        ("rule", _, None) => Check::Rule(value.to_owned()),
        (_, Some(literal), Some(attr)) => Check::Literal {
            value: literal,
            attr,
        },
        (_, Some(literal), None) => {
            if literal == value {
                Check::Always
            } else {
                Check::Never
            }
        }
        (key, None, Some(attr)) => Check::Generic {
            key: key.to_owned(),
            matches: Match::Attr(attr),
        },
        (key, None, None) => Check::Generic {
            key: key.to_owned(),
            matches: Match::Value(value.to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_domain::{ImageId, Visibility};

    fn ctx(project: &str, roles: &[&str]) -> RequestContext {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        RequestContext {
            request_id: "req".into(),
            user_id: Some("u".into()),
            project_id: Some(project.into()),
            is_admin: roles.iter().any(|r| r == "admin"),
            roles,
            ..RequestContext::default()
        }
    }

    fn image(owner: &str, visibility: Visibility) -> Image {
        let mut image = Image::new(ImageId::new(), Some(owner.into()), chrono::Utc::now());
        image.visibility = visibility;
        image
    }

    #[test]
    fn every_default_rule_parses() {
        for (name, expr) in DEFAULT_RULES {
            assert!(parse(expr).is_ok(), "{name}");
        }
        let parsed = parse(ADMIN_OR_PROJECT_READER_GET_IMAGE).unwrap();
        assert!(
            matches!(parsed, Check::Or(ref v) if v.len() == 2),
            "{parsed:?}"
        );
    }

    #[test]
    fn a_reader_sees_but_cannot_modify_their_projects_image() {
        let p = Policy::default();
        let img = image("A", Visibility::Private);
        let reader = ctx("A", &["reader"]);
        let t = Target::image(&img, &reader);
        assert!(p.check("get_image", &reader, &t));
        assert!(!p.check("modify_image", &reader, &t));
        assert!(!p.check("download_image", &reader, &t));
    }

    #[test]
    fn another_projects_member_downloads_only_what_is_shared_with_it() {
        let p = Policy::default();
        let b = ctx("B", &["member", "reader"]);
        let private = image("A", Visibility::Private);
        let public = image("A", Visibility::Public);
        assert!(!p.check("get_image", &b, &Target::image(&private, &b)));
        assert!(p.check("download_image", &b, &Target::image(&public, &b)));
        assert!(!p.check("modify_image", &b, &Target::image(&public, &b)));
    }

    #[test]
    fn only_an_admin_publicizes_but_project_members_deactivate() {
        let p = Policy::default();
        let img = image("A", Visibility::Private);
        let member = ctx("A", &["member"]);
        let reader = ctx("A", &["reader"]);
        let admin = ctx("X", &["admin"]);
        assert!(!p.check("publicize_image", &member, &Target::image(&img, &member)));
        assert!(p.check("publicize_image", &admin, &Target::image(&img, &admin)));
        for rule in ["deactivate", "reactivate", "communitize_image"] {
            assert!(
                p.check(rule, &member, &Target::image(&img, &member)),
                "{rule}"
            );
            assert!(
                !p.check(rule, &reader, &Target::image(&img, &reader)),
                "{rule}"
            );
        }
    }

    #[test]
    fn overrides_replace_single_rules_and_understand_not_and_literals() {
        let p = Policy::with_overrides(
            [
                ("publicize_image", "role:member and not role:reader"),
                ("deactivate", "!"),
                ("x", "'shared':%(visibility)s"),
            ]
            .into_iter(),
        )
        .unwrap();
        let img = image("A", Visibility::Shared);
        let member = ctx("A", &["member"]);
        let t = Target::image(&img, &member);
        assert!(p.check("publicize_image", &member, &t));
        assert!(!p.check("publicize_image", &ctx("A", &["member", "reader"]), &t));
        assert!(!p.check("deactivate", &ctx("X", &["admin"]), &t));
        assert!(p.check("x", &member, &t));
        assert!(
            p.check("modify_image", &member, &t),
            "untouched rules keep defaults"
        );
    }

    #[test]
    fn policy_files_may_be_json_or_yaml() {
        let yaml = "# comment\n\"deactivate\": \"role:member\"\nreactivate: '@'\n";
        assert_eq!(
            parse_policy_file(yaml).unwrap(),
            vec![
                ("deactivate".to_owned(), "role:member".to_owned()),
                ("reactivate".to_owned(), "@".to_owned())
            ]
        );
        let json = r#"{"deactivate": "role:member"}"#;
        assert_eq!(parse_policy_file(json).unwrap().len(), 1);
    }

    #[test]
    fn a_malformed_rule_is_refused() {
        assert!(Policy::with_overrides([("a", "(role:x or")].into_iter()).is_err());
    }
}
