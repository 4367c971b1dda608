//! Property protections (`[DEFAULT] property_protection_file`, Glance's
//! `glance/common/property_utils.py`): which callers may create, read, update or delete
//! which extra properties.
//!
//! The file is INI: each section name is a regex searched in the property name, each with
//! `create`, `read`, `update` and `delete` keys naming roles (`rule_format = roles`, comma
//! separated) or one policy rule (`rule_format = policies`); `@` is everyone, `!` or empty
//! nobody. The first matching section in file order decides; no match denies. Core
//! attributes are never covered.

use std::path::Path;

use glance_domain::RequestContext;
use regex::Regex;

use crate::policy::{Policy, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropOp {
    Create,
    Read,
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleFormat {
    Roles,
    Policies,
}

impl std::str::FromStr for RuleFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "roles" => Ok(RuleFormat::Roles),
            "policies" => Ok(RuleFormat::Policies),
            other => Err(format!(
                "property_protection_rule_format must be roles or policies, not {other:?}"
            )),
        }
    }
}

#[derive(Debug, Clone)]
enum Who {
    Everyone,
    Nobody,
    Roles(Vec<String>),
    Rule(String),
}

#[derive(Debug, Clone)]
struct Section {
    pattern: Regex,
    create: Who,
    read: Who,
    update: Who,
    delete: Who,
}

#[derive(Debug, Clone)]
pub struct PropertyProtections {
    sections: Vec<Section>,
}

impl PropertyProtections {
    pub fn load(path: &Path, format: RuleFormat) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read property protection file {}: {e}",
                path.display()
            )
        })?;
        Self::parse(&text, format)
            .map_err(|e| format!("property protection file {}: {e}", path.display()))
    }

    pub fn parse(text: &str, format: RuleFormat) -> Result<Self, String> {
        // Glance injects this first and ignores user sections for the reserved namespace.
        let mut sections = vec![Section {
            pattern: Regex::new("^os_glance").expect("valid regex"),
            create: Who::Everyone,
            read: Who::Everyone,
            update: Who::Everyone,
            delete: Who::Everyone,
        }];
        let mut current: Option<(String, [Option<Who>; 4])> = None;
        let finish = |current: Option<(String, [Option<Who>; 4])>,
                      sections: &mut Vec<Section>|
         -> Result<(), String> {
            let Some((name, [create, read, update, delete])) = current else {
                return Ok(());
            };
            if name.starts_with("os_glance") {
                return Ok(());
            }
            let missing = |w: Option<Who>, op: &str| {
                w.ok_or_else(|| format!("section [{name}] lacks `{op}`"))
            };
            sections.push(Section {
                pattern: Regex::new(&name)
                    .map_err(|e| format!("section [{name}] is not a valid regex: {e}"))?,
                create: missing(create, "create")?,
                read: missing(read, "read")?,
                update: missing(update, "update")?,
                delete: missing(delete, "delete")?,
            });
            Ok(())
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                finish(current.take(), &mut sections)?;
                current = Some((name.to_owned(), [None, None, None, None]));
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line {}: expected `key = value`", n + 1));
            };
            let Some((_, slots)) = current.as_mut() else {
                return Err(format!("line {}: an option outside any section", n + 1));
            };
            let slot = match key.trim() {
                "create" => &mut slots[0],
                "read" => &mut slots[1],
                "update" => &mut slots[2],
                "delete" => &mut slots[3],
                other => return Err(format!("line {}: unknown operation {other:?}", n + 1)),
            };
            *slot = Some(who(value.trim(), format).map_err(|e| format!("line {}: {e}", n + 1))?);
        }
        finish(current.take(), &mut sections)?;
        Ok(Self { sections })
    }

    /// Whether `ctx` may do `op` on the extra property `name`.
    pub fn allows(&self, ctx: &RequestContext, policy: &Policy, name: &str, op: PropOp) -> bool {
        let Some(section) = self.sections.iter().find(|s| s.pattern.is_match(name)) else {
            return false;
        };
        let who = match op {
            PropOp::Create => &section.create,
            PropOp::Read => &section.read,
            PropOp::Update => &section.update,
            PropOp::Delete => &section.delete,
        };
        match who {
            Who::Everyone => true,
            Who::Nobody => false,
            Who::Roles(roles) => roles.iter().any(|r| ctx.has_role(r)),
            Who::Rule(rule) => policy.check(rule, ctx, &Target::new()),
        }
    }
}

fn who(value: &str, format: RuleFormat) -> Result<Who, String> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() || items == ["!"] {
        return Ok(Who::Nobody);
    }
    if items.contains(&"@") || items.contains(&"!") {
        if items.len() > 1 {
            return Err("`@` and `!` cannot be combined with anything else".into());
        }
        return Ok(Who::Everyone);
    }
    match format {
        RuleFormat::Roles => Ok(Who::Roles(
            items.iter().map(|r| r.to_ascii_lowercase()).collect(),
        )),
        RuleFormat::Policies if items.len() == 1 => Ok(Who::Rule(items[0].to_owned())),
        RuleFormat::Policies => Err("with rule format `policies`, name one rule".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(roles: &[&str]) -> RequestContext {
        RequestContext {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..RequestContext::default()
        }
    }

    const FILE: &str = "\
[^x_billing_]
create = admin
read = admin,member
update = admin
delete = !

[.*]
create = @
read = @
update = @
delete = @
";

    #[test]
    fn the_first_matching_section_decides() {
        let p = PropertyProtections::parse(FILE, RuleFormat::Roles).unwrap();
        let policy = Policy::default();
        let member = ctx(&["member"]);
        let admin = ctx(&["admin"]);
        assert!(!p.allows(&member, &policy, "x_billing_code", PropOp::Create));
        assert!(p.allows(&member, &policy, "x_billing_code", PropOp::Read));
        assert!(p.allows(&admin, &policy, "x_billing_code", PropOp::Create));
        assert!(!p.allows(&admin, &policy, "x_billing_code", PropOp::Delete));
        assert!(p.allows(&member, &policy, "os_distro", PropOp::Delete));
        assert!(p.allows(&member, &policy, "os_glance_x", PropOp::Create));
    }

    #[test]
    fn the_policies_format_names_a_rule() {
        let p = PropertyProtections::parse(
            "[.*]\ncreate = context_is_admin\nread = @\nupdate = context_is_admin\ndelete = !\n",
            RuleFormat::Policies,
        )
        .unwrap();
        let policy = Policy::default();
        assert!(p.allows(&ctx(&["admin"]), &policy, "x", PropOp::Create));
        assert!(!p.allows(&ctx(&["member"]), &policy, "x", PropOp::Create));
        assert!(p.allows(&ctx(&["member"]), &policy, "x", PropOp::Read));
        assert!(PropertyProtections::parse(
            "[.*]\ncreate = a,b\nread = @\nupdate = @\ndelete = @\n",
            RuleFormat::Policies
        )
        .is_err());
    }

    #[test]
    fn no_match_denies_and_missing_operations_are_refused() {
        let p = PropertyProtections::parse(
            "[^a]\ncreate = @\nread = @\nupdate = @\ndelete = @\n",
            RuleFormat::Roles,
        )
        .unwrap();
        assert!(!p.allows(&ctx(&["admin"]), &Policy::default(), "b", PropOp::Read));
        assert!(PropertyProtections::parse("[^a]\ncreate = @\n", RuleFormat::Roles).is_err());
    }
}
