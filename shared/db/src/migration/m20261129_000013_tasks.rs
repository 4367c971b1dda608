//! Tasks (Glance's `tasks` and `task_info` tables), for interoperable import.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    Id,
    Type,
    Status,
    Owner,
    ExpiresAt,
    ImageId,
    RequestId,
    UserId,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
    Deleted,
}

#[derive(DeriveIden)]
enum TaskInfo {
    Table,
    TaskId,
    Input,
    Result,
    Message,
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000013_tasks"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tasks::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Tasks::Id)
                        .string_len(36)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Tasks::Type).string_len(30).not_null())
                .col(ColumnDef::new(Tasks::Status).string_len(30).not_null())
                .col(ColumnDef::new(Tasks::Owner).string_len(255).null())
                .col(
                    ColumnDef::new(Tasks::ExpiresAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(Tasks::ImageId).string_len(36).null())
                .col(ColumnDef::new(Tasks::RequestId).string_len(64).null())
                .col(ColumnDef::new(Tasks::UserId).string_len(64).null())
                .col(
                    ColumnDef::new(Tasks::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Tasks::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Tasks::DeletedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(Tasks::Deleted)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TaskInfo::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(TaskInfo::TaskId)
                        .string_len(36)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(TaskInfo::Input).text().null())
                .col(ColumnDef::new(TaskInfo::Result).text().null())
                .col(ColumnDef::new(TaskInfo::Message).text().null())
                .foreign_key(
                    ForeignKey::create()
                        .from(TaskInfo::Table, TaskInfo::TaskId)
                        .to(Tasks::Table, Tasks::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (name, columns) in [
            ("ix_tasks_image_id", &[Tasks::ImageId][..]),
            ("ix_tasks_owner", &[Tasks::Owner][..]),
            ("ix_tasks_status", &[Tasks::Status][..]),
            (
                "ix_tasks_deleted_created_at",
                &[Tasks::Deleted, Tasks::CreatedAt][..],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Tasks::Table).if_not_exists();
            for column in columns {
                index.col(*column);
            }
            m.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(TaskInfo::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Tasks::Table).to_owned())
            .await
    }
}
