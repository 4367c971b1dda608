use sea_orm::entity::prelude::*;

/// A task (Glance's `tasks` table): an import, with who asked and when it expires.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(column_name = "type")]
    pub kind: String,
    pub status: String,
    pub owner: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    pub image_id: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    pub deleted: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_one = "super::task_info::Entity")]
    Info,
}

impl Related<super::task_info::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Info.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
