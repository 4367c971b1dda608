//! Upload leases on `images`: who holds an image being written and until when (see
//! `glance_proto::leases`). Both columns are empty outside an upload.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden, Clone, Copy)]
enum Images {
    Table,
    LeaseHolder,
    LeaseExpiresAt,
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000014_upload_leases"
    }
}

const INDEX: &str = "ix_images_lease_expires_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER: SQLite takes no more.
        m.alter_table(
            Table::alter()
                .table(Images::Table)
                .add_column(ColumnDef::new(Images::LeaseHolder).string_len(255).null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Images::Table)
                .add_column(
                    ColumnDef::new(Images::LeaseExpiresAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        // The sweep's lookup of leases that ran out.
        m.create_index(
            Index::create()
                .name(INDEX)
                .table(Images::Table)
                .col(Images::LeaseExpiresAt)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(INDEX).table(Images::Table).to_owned())
            .await?;
        for column in [Images::LeaseExpiresAt, Images::LeaseHolder] {
            m.alter_table(
                Table::alter()
                    .table(Images::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
