use sea_orm::entity::prelude::*;

/// One row of `images`. Enumerated values (status, visibility, formats) are kept as Glance's
/// wire strings so the table stays readable and compatible with Glance's own.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "images")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: Option<String>,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub status: String,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub owner: Option<String>,
    pub min_disk: i32,
    pub min_ram: i32,
    pub protected: bool,
    pub os_hidden: bool,
    pub visibility: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    pub deleted: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::image_property::Entity")]
    Properties,
    #[sea_orm(has_many = "super::image_tag::Entity")]
    Tags,
    #[sea_orm(has_many = "super::image_location::Entity")]
    Locations,
    #[sea_orm(has_many = "super::image_member::Entity")]
    Members,
}

impl Related<super::image_property::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Properties.def()
    }
}

impl Related<super::image_tag::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tags.def()
    }
}

impl Related<super::image_location::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Locations.def()
    }
}

impl Related<super::image_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Members.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
