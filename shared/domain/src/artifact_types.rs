//! The artifact types Glare enables by default and their fields: one table per type, read
//! by validation, the lifecycle rules, listing (filter operators, sortable fields) and the
//! JSON schemas (`/schemas`).

/// What a field holds, with Glare's name for it (`glareType` in the schemas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    DateTime,
    StringList,
    StringDict,
    LinkList,
    LinkDict,
    Blob,
    BlobDict,
}

impl Kind {
    pub fn glare_type(self) -> &'static str {
        match self {
            Kind::String => "String",
            Kind::Integer => "Integer",
            Kind::DateTime => "DateTime",
            Kind::StringList => "StringList",
            Kind::StringDict => "StringDict",
            Kind::LinkList => "LinkList",
            Kind::LinkDict => "LinkDict",
            Kind::Blob => "Blob",
            Kind::BlobDict => "BlobDict",
        }
    }

    pub fn is_blob(self) -> bool {
        matches!(self, Kind::Blob | Kind::BlobDict)
    }
}

/// A list filter's comparison (`field=[and:|or:][op:]value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    In,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::In => "in",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Like => "like",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        [
            Op::Eq,
            Op::Neq,
            Op::In,
            Op::Gt,
            Op::Gte,
            Op::Lt,
            Op::Lte,
            Op::Like,
        ]
        .into_iter()
        .find(|op| op.name() == s)
    }
}

const STRING_OPS: &[Op] = &[Op::Eq, Op::Neq, Op::In];
const NAME_OPS: &[Op] = &[Op::Like, Op::Eq, Op::Neq, Op::In];
const NUMBER_OPS: &[Op] = &[Op::Eq, Op::Neq, Op::In, Op::Gt, Op::Gte, Op::Lt, Op::Lte];
const TIME_OPS: &[Op] = &[Op::Lt, Op::Gt];
const LINK_OPS: &[Op] = &[Op::Eq, Op::Neq];

/// What a field is when the request does not set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    Null,
    Str(&'static str),
    EmptyList,
    EmptyDict,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    /// Changeable once the artifact is active.
    pub mutable: bool,
    pub sortable: bool,
    /// Must be set (not null) before `drafted` -> `active`.
    pub required_on_activate: bool,
    /// Set by the service only (`readOnly` in the schema).
    pub system: bool,
    pub nullable: bool,
    pub filter_ops: &'static [Op],
    /// The values a string may take, when limited.
    pub allowed: &'static [&'static str],
    pub max_length: Option<usize>,
    pub minimum: Option<i64>,
    pub default: Default,
    /// A string that must be a UUID.
    pub uuid: bool,
    /// Largest blob, for blob fields.
    pub max_blob_size: u64,
}

/// Glare's default blob limit (10 MiB).
const BLOB_LIMIT: u64 = 10 * 1024 * 1024;

const fn field(name: &'static str, kind: Kind, description: &'static str) -> Field {
    let filter_ops: &[Op] = match kind {
        Kind::String | Kind::StringList | Kind::StringDict => STRING_OPS,
        Kind::Integer => NUMBER_OPS,
        Kind::DateTime => TIME_OPS,
        Kind::LinkList | Kind::LinkDict => LINK_OPS,
        Kind::Blob | Kind::BlobDict => &[],
    };
    let default = match kind {
        Kind::StringList | Kind::LinkList => Default::EmptyList,
        Kind::StringDict | Kind::LinkDict | Kind::BlobDict => Default::EmptyDict,
        _ => Default::Null,
    };
    Field {
        name,
        kind,
        description,
        mutable: false,
        sortable: false,
        required_on_activate: true,
        system: false,
        nullable: true,
        filter_ops,
        allowed: &[],
        max_length: match kind {
            Kind::String | Kind::StringList | Kind::StringDict => Some(255),
            _ => None,
        },
        minimum: None,
        default,
        uuid: false,
        max_blob_size: BLOB_LIMIT,
    }
}

impl Field {
    const fn mutable(mut self) -> Self {
        self.mutable = true;
        self
    }
    const fn sortable(mut self) -> Self {
        self.sortable = true;
        self
    }
    const fn optional(mut self) -> Self {
        self.required_on_activate = false;
        self
    }
    const fn system(mut self) -> Self {
        self.system = true;
        self
    }
    const fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
    const fn ops(mut self, ops: &'static [Op]) -> Self {
        self.filter_ops = ops;
        self
    }
    const fn one_of(mut self, values: &'static [&'static str]) -> Self {
        self.allowed = values;
        self.max_length = None;
        self
    }
    const fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }
    /// No length limit (semver versions: the pattern is their rule).
    const fn unbounded(mut self) -> Self {
        self.max_length = None;
        self
    }
    const fn minimum(mut self, n: i64) -> Self {
        self.minimum = Some(n);
        self
    }
    const fn default(mut self, d: Default) -> Self {
        self.default = d;
        self
    }
    const fn uuid(mut self) -> Self {
        self.uuid = true;
        self
    }
    const fn blob_limit(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }
}

/// The fields every type has, in Glare's order.
pub const BASE_FIELDS: &[Field] = &[
    field("id", Kind::String, "The artifact's UUID.")
        .system()
        .not_null()
        .sortable()
        .uuid()
        .ops(STRING_OPS),
    field("name", Kind::String, "The artifact's name.")
        .not_null()
        .sortable()
        .optional()
        .ops(NAME_OPS),
    field(
        "owner",
        Kind::String,
        "The project that created the artifact.",
    )
    .system()
    .not_null()
    .sortable()
    .optional(),
    field(
        "status",
        Kind::String,
        "Where the artifact is in its lifecycle.",
    )
    .not_null()
    .mutable()
    .sortable()
    .one_of(&["drafted", "active", "deactivated", "deleted"])
    .default(Default::Str("drafted")),
    field(
        "created_at",
        Kind::DateTime,
        "When the artifact was created.",
    )
    .system()
    .not_null()
    .sortable(),
    field(
        "updated_at",
        Kind::DateTime,
        "When the artifact last changed.",
    )
    .system()
    .not_null()
    .mutable()
    .sortable(),
    field(
        "activated_at",
        Kind::DateTime,
        "When the artifact became active.",
    )
    .system()
    .sortable()
    .optional(),
    field(
        "description",
        Kind::String,
        "What the artifact is, in words.",
    )
    .mutable()
    .optional()
    .max_length(4096)
    .ops(&[])
    .default(Default::Str("")),
    field("tags", Kind::StringList, "Labels for finding the artifact.")
        .mutable()
        .optional()
        .ops(&[]),
    field("metadata", Kind::StringDict, "Free-form key/value pairs.").optional(),
    field("visibility", Kind::String, "Who can see the artifact.")
        .not_null()
        .mutable()
        .sortable()
        .one_of(&["private", "public"])
        .default(Default::Str("private")),
    field("version", Kind::String, "The artifact's semantic version.")
        .unbounded()
        .not_null()
        .sortable()
        .optional()
        .ops(NUMBER_OPS)
        .default(Default::Str("0.0.0")),
    field(
        "display_type_name",
        Kind::String,
        "The type's human-readable name.",
    )
    .system()
    .sortable()
    .ops(NAME_OPS),
];

/// The base fields that are columns of the registry's record, not `Artifact::fields`.
pub const COLUMN_FIELDS: &[&str] = &[
    "id",
    "name",
    "owner",
    "status",
    "created_at",
    "updated_at",
    "activated_at",
    "visibility",
    "version",
    "display_type_name",
];

const IMAGE_FIELDS: &[Field] = &[
    field(
        "container_format",
        Kind::String,
        "The image's container format.",
    )
    .one_of(&["ami", "ari", "aki", "bare", "ovf", "ova", "docker"]),
    field("disk_format", Kind::String, "The image's disk format.").one_of(&[
        "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
    ]),
    field(
        "min_ram",
        Kind::Integer,
        "RAM (MB) needed to boot the image.",
    )
    .optional()
    .minimum(0),
    field(
        "min_disk",
        Kind::Integer,
        "Disk (GB) needed to boot the image.",
    )
    .optional()
    .minimum(0),
    field("image", Kind::Blob, "The image's bytes.")
        .optional()
        .blob_limit(1_073_741_824_000),
    field(
        "kernel_id",
        Kind::String,
        "The kernel image of an AMI-style image.",
    )
    .optional()
    .uuid(),
    field(
        "ramdisk_id",
        Kind::String,
        "The ramdisk image of an AMI-style image.",
    )
    .optional()
    .uuid(),
    field(
        "instance_uuid",
        Kind::String,
        "The server this image is a snapshot of.",
    )
    .optional(),
    field(
        "architecture",
        Kind::String,
        "The CPU architecture the image needs.",
    )
    .optional(),
    field(
        "os_distro",
        Kind::String,
        "The operating system's distribution.",
    )
    .optional(),
    field(
        "os_version",
        Kind::String,
        "The operating system's version.",
    )
    .optional(),
];

const HEAT_TEMPLATE_FIELDS: &[Field] = &[
    field(
        "environments",
        Kind::LinkDict,
        "Environments that go with this template.",
    )
    .mutable(),
    field("template", Kind::Blob, "The template's body."),
    field(
        "nested_templates",
        Kind::BlobDict,
        "Nested templates, by name.",
    )
    .ops(&[]),
    field(
        "default_envs",
        Kind::StringDict,
        "Default environments, by name.",
    )
    .mutable(),
];

const HEAT_ENVIRONMENT_FIELDS: &[Field] =
    &[field("environment", Kind::Blob, "The environment's body.")];

const MURANO_FIELDS: &[Field] = &[
    field("package", Kind::Blob, "The package archive.")
        .blob_limit(104_857_600)
        .optional(),
    field(
        "type",
        Kind::String,
        "Whether the package is an application or a library.",
    )
    .one_of(&["Application", "Library"])
    .default(Default::Str("Application")),
    field(
        "display_name",
        Kind::String,
        "The package's human-readable name.",
    )
    .mutable(),
    field(
        "categories",
        Kind::StringList,
        "Categories the package belongs to.",
    )
    .mutable(),
    field(
        "class_definitions",
        Kind::StringList,
        "Classes the package defines.",
    ),
    field(
        "inherits",
        Kind::StringDict,
        "Classes the package's classes inherit from.",
    ),
    field(
        "keywords",
        Kind::StringList,
        "Words to find the package by.",
    )
    .mutable(),
    field("dependencies", Kind::LinkList, "Packages this one needs.").optional(),
];

const TOSCA_FIELDS: &[Field] = &[
    field(
        "template_format",
        Kind::String,
        "The TOSCA template's format.",
    ),
    field("template", Kind::Blob, "The template's body."),
];

/// `all` has the base fields and the name of each artifact's own type.
const ALL_FIELDS: &[Field] = &[field("type_name", Kind::String, "The artifact's type.")
    .sortable()
    .ops(NAME_OPS)];

#[derive(Debug)]
pub struct ArtifactType {
    pub name: &'static str,
    pub display_name: &'static str,
    /// The type's own fields, before the base ones.
    pub fields: &'static [Field],
    /// Lists every type and accepts no writes.
    pub read_only: bool,
}

pub const TYPES: &[ArtifactType] = &[
    ArtifactType {
        name: "all",
        display_name: "All Artifacts",
        fields: ALL_FIELDS,
        read_only: true,
    },
    ArtifactType {
        name: "tosca_templates",
        display_name: "TOSCA Templates",
        fields: TOSCA_FIELDS,
        read_only: false,
    },
    ArtifactType {
        name: "murano_packages",
        display_name: "Murano packages",
        fields: MURANO_FIELDS,
        read_only: false,
    },
    ArtifactType {
        name: "heat_templates",
        display_name: "Heat Templates",
        fields: HEAT_TEMPLATE_FIELDS,
        read_only: false,
    },
    ArtifactType {
        name: "heat_environments",
        display_name: "Heat Environments",
        fields: HEAT_ENVIRONMENT_FIELDS,
        read_only: false,
    },
    ArtifactType {
        name: "images",
        display_name: "Images",
        fields: IMAGE_FIELDS,
        read_only: false,
    },
];

impl ArtifactType {
    pub fn find(name: &str) -> Option<&'static ArtifactType> {
        TYPES.iter().find(|t| t.name == name)
    }

    pub fn is_all(&self) -> bool {
        self.read_only
    }

    /// Every field: the type's own, then the base ones.
    pub fn all_fields(&self) -> impl Iterator<Item = &'static Field> {
        self.fields.iter().chain(BASE_FIELDS.iter())
    }

    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.all_fields().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_need_their_formats_but_not_their_blob_to_activate() {
        let images = ArtifactType::find("images").unwrap();
        let required: Vec<&str> = images
            .fields
            .iter()
            .filter(|f| f.required_on_activate)
            .map(|f| f.name)
            .collect();
        assert_eq!(required, ["container_format", "disk_format"]);
    }

    #[test]
    fn only_all_is_read_only_and_every_type_is_found_by_name() {
        for t in TYPES {
            assert_eq!(
                ArtifactType::find(t.name).unwrap().read_only,
                t.name == "all"
            );
        }
        assert!(ArtifactType::find("secrets").is_none());
    }
}
