//! The artifact repository (`glance-glare`): one row per artifact.
//!
//! The columns every artifact has are columns; the type's own fields, description, tags,
//! metadata and blobs are one JSON document (`fields`), which only the glare service
//! interprets. `revision` is the compare-and-set counter of saves.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden, Clone, Copy)]
enum GlareArtifacts {
    Table,
    Id,
    TypeName,
    Name,
    Version,
    Owner,
    Visibility,
    Status,
    CreatedAt,
    UpdatedAt,
    ActivatedAt,
    Fields,
    Revision,
}

/// `PUT /quotas`: per project, `max_artifact_number[:type]` and `max_uploaded_data[:type]`.
#[derive(DeriveIden, Clone, Copy)]
enum GlareQuotas {
    Table,
    ProjectId,
    QuotaName,
    QuotaValue,
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000016_glare"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use GlareArtifacts as A;
        let mut t = Table::create();
        t.table(A::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(A::Id)
                    .string_len(36)
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(A::TypeName).string_len(255).not_null())
            .col(ColumnDef::new(A::Name).string_len(255).not_null())
            .col(ColumnDef::new(A::Version).string_len(255).not_null())
            .col(ColumnDef::new(A::Owner).string_len(255).not_null())
            .col(ColumnDef::new(A::Visibility).string_len(32).not_null())
            .col(ColumnDef::new(A::Status).string_len(32).not_null())
            .col(
                ColumnDef::new(A::CreatedAt)
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .col(
                ColumnDef::new(A::UpdatedAt)
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .col(
                ColumnDef::new(A::ActivatedAt)
                    .timestamp_with_time_zone()
                    .null(),
            )
            .col(ColumnDef::new(A::Fields).text().not_null())
            .col(
                ColumnDef::new(A::Revision)
                    .big_integer()
                    .not_null()
                    .default(0),
            );
        m.create_table(t.to_owned()).await?;
        // Listing by type and scope; the uniqueness check by type, name and version.
        for (name, cols) in [
            ("ix_glare_artifacts_type_owner", [A::TypeName, A::Owner]),
            ("ix_glare_artifacts_type_name", [A::TypeName, A::Name]),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(A::Table)
                    .col(cols[0])
                    .col(cols[1])
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        use GlareQuotas as Q;
        let mut t = Table::create();
        t.table(Q::Table)
            .if_not_exists()
            .col(ColumnDef::new(Q::ProjectId).string_len(255).not_null())
            .col(ColumnDef::new(Q::QuotaName).string_len(255).not_null())
            .col(ColumnDef::new(Q::QuotaValue).big_integer().not_null())
            .primary_key(Index::create().col(Q::ProjectId).col(Q::QuotaName));
        m.create_table(t.to_owned()).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(GlareQuotas::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(GlareArtifacts::Table).to_owned())
            .await
    }
}
