//! `inject_image_metadata`: sets `[inject_metadata_properties] inject` on images imported by
//! a caller who has none of `ignore_user_roles`. Keys in Glance's reserved `os_glance_`
//! namespace are dropped, as Glance's `set_image_extra_properties` does.

use super::Step;

/// Glance's `GLANCE_RESERVED_NS`.
const RESERVED: &str = "os_glance";

pub(super) fn run(step: &mut Step<'_>) {
    let ignored = &step.config.ignore_user_roles;
    if step.caller.roles.iter().any(|role| ignored.contains(role)) {
        return;
    }
    for (key, value) in &step.config.inject {
        if key.starts_with(RESERVED) {
            tracing::warn!(image_id = %step.image.id, key, "dropping a reserved property during metadata injection");
            continue;
        }
        step.changes.properties.insert(key.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ImageChanges, PluginsConfig};
    use super::*;
    use glance_domain::{DiskFormat, Image, ImageId, RequestContext};

    fn inject(roles: &[&str]) -> ImageChanges {
        let config = PluginsConfig {
            chain: Vec::new(),
            output_format: DiskFormat::Raw,
            inject: [("hw_rng", "yes"), ("os_glance_x", "no")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ignore_user_roles: vec!["admin".into()],
        };
        let mut caller = RequestContext::admin("req");
        caller.roles = roles.iter().map(|r| r.to_string()).collect();
        let mut step = Step {
            config: &config,
            image: Image::new(ImageId::new(), None, chrono::Utc::now()),
            caller: &caller,
            data: "/nonexistent".into(),
            cap: 0,
            work_dir: "/nonexistent".into(),
            changes: ImageChanges::default(),
        };
        run(&mut step);
        step.changes
    }

    #[test]
    fn a_member_gets_the_properties_but_not_reserved_ones() {
        let changes = inject(&["member", "reader"]);
        assert_eq!(changes.properties.len(), 1);
        assert_eq!(changes.properties["hw_rng"], "yes");
    }

    #[test]
    fn an_ignored_role_gets_nothing() {
        assert!(inject(&["admin", "member"]).properties.is_empty());
    }
}
