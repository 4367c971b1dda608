//! Tables, close to Glance's own schema so operators recognise them.

pub mod image;
pub mod image_location;
pub mod image_member;
pub mod image_property;
pub mod image_tag;
