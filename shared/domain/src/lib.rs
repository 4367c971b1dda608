//! Glance's domain vocabulary, as types that can only hold valid values.
//!
//! Everything that crosses the bus or reaches the database is built from these, so a bad
//! status string or a malformed id is rejected once, at the edge, and never travels further.

pub mod artifact;
pub mod artifact_types;
mod context;
mod formats;
mod image;
pub mod metadef;
mod status;

pub use artifact::{Artifact, ArtifactStatus, ArtifactVisibility, Semver};
pub use context::RequestContext;
pub use formats::{ContainerFormat, DiskFormat};
pub use image::{Image, ImageId, Location, MemberStatus, Visibility};
pub use status::ImageStatus;

/// A value that did not parse into one of the domain's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid value '{value}' for {what}")]
pub struct InvalidValue {
    pub what: &'static str,
    pub value: String,
}

impl InvalidValue {
    pub fn new(what: &'static str, value: impl Into<String>) -> Self {
        Self {
            what,
            value: value.into(),
        }
    }
}

/// Implements `as_str`, `FromStr`, `Display` and string serde for a fieldless enum whose
/// variants map one-to-one onto Glance's wire strings.
macro_rules! wire_enum {
    ($name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::InvalidValue::new($what, other)),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use wire_enum;
