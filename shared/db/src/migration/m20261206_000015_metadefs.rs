//! The metadefs catalog: Glance's `metadef_*` tables.
//!
//! As in Glance, objects and properties keep their schema as JSON text (`json_schema`):
//! for an object its `description`, `required` and `properties`, for a property everything
//! but its name. Children go with their namespace (`ON DELETE CASCADE`); resource types
//! outlive the namespaces associated with them.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden, Clone, Copy)]
enum MetadefNamespaces {
    Table,
    Id,
    Namespace,
    DisplayName,
    Description,
    Visibility,
    Protected,
    Owner,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MetadefObjects {
    Table,
}

#[derive(DeriveIden, Clone, Copy)]
enum MetadefProperties {
    Table,
}

#[derive(DeriveIden, Clone, Copy)]
enum MetadefTags {
    Table,
}

/// The columns the three element tables share.
#[derive(DeriveIden, Clone, Copy)]
enum Element {
    Id,
    NamespaceId,
    Name,
    JsonSchema,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MetadefResourceTypes {
    Table,
    Id,
    Name,
    Protected,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MetadefNamespaceResourceTypes {
    Table,
    Id,
    ResourceTypeId,
    NamespaceId,
    PropertiesTarget,
    Prefix,
    CreatedAt,
    UpdatedAt,
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000015_metadefs"
    }
}

fn timestamps(t: &mut TableCreateStatement, created: impl IntoIden, updated: impl IntoIden) {
    t.col(
        ColumnDef::new(created)
            .timestamp_with_time_zone()
            .not_null(),
    )
    .col(ColumnDef::new(updated).timestamp_with_time_zone().null());
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use MetadefNamespaces as N;
        let mut t = Table::create();
        t.table(N::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(N::Id)
                    .integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(N::Namespace)
                    .string_len(80)
                    .not_null()
                    .unique_key(),
            )
            .col(ColumnDef::new(N::DisplayName).string_len(80).null())
            .col(ColumnDef::new(N::Description).text().null())
            .col(ColumnDef::new(N::Visibility).string_len(32).not_null())
            .col(
                ColumnDef::new(N::Protected)
                    .boolean()
                    .not_null()
                    .default(false),
            )
            .col(ColumnDef::new(N::Owner).string_len(255).null());
        timestamps(&mut t, N::CreatedAt, N::UpdatedAt);
        m.create_table(t.to_owned()).await?;

        for (table, with_schema, unique) in [
            (
                MetadefObjects::Table.into_iden(),
                true,
                "uq_metadef_objects_namespace_id_name",
            ),
            (
                MetadefProperties::Table.into_iden(),
                true,
                "uq_metadef_properties_namespace_id_name",
            ),
            (
                MetadefTags::Table.into_iden(),
                false,
                "uq_metadef_tags_namespace_id_name",
            ),
        ] {
            let mut t = Table::create();
            t.table(table.clone())
                .if_not_exists()
                .col(
                    ColumnDef::new(Element::Id)
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(Element::NamespaceId).integer().not_null())
                .col(ColumnDef::new(Element::Name).string_len(80).not_null());
            if with_schema {
                t.col(ColumnDef::new(Element::JsonSchema).text().not_null());
            }
            timestamps(&mut t, Element::CreatedAt, Element::UpdatedAt);
            t.foreign_key(
                ForeignKey::create()
                    .from(table.clone(), Element::NamespaceId)
                    .to(N::Table, N::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            );
            m.create_table(t.to_owned()).await?;
            m.create_index(
                Index::create()
                    .name(unique)
                    .table(table)
                    .col(Element::NamespaceId)
                    .col(Element::Name)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }

        use MetadefResourceTypes as R;
        let mut t = Table::create();
        t.table(R::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(R::Id)
                    .integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(R::Name)
                    .string_len(80)
                    .not_null()
                    .unique_key(),
            )
            .col(
                ColumnDef::new(R::Protected)
                    .boolean()
                    .not_null()
                    .default(false),
            );
        timestamps(&mut t, R::CreatedAt, R::UpdatedAt);
        m.create_table(t.to_owned()).await?;

        use MetadefNamespaceResourceTypes as A;
        let mut t = Table::create();
        // Glance keys associations by (resource type, namespace); the id is ours, so a
        // namespace's associations list in the order they were made, as in Glance's files.
        t.table(A::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(A::Id)
                    .integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(ColumnDef::new(A::ResourceTypeId).integer().not_null())
            .col(ColumnDef::new(A::NamespaceId).integer().not_null())
            .col(ColumnDef::new(A::PropertiesTarget).string_len(80).null())
            .col(ColumnDef::new(A::Prefix).string_len(80).null())
            .foreign_key(
                ForeignKey::create()
                    .from(A::Table, A::ResourceTypeId)
                    .to(R::Table, R::Id),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(A::Table, A::NamespaceId)
                    .to(N::Table, N::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            );
        timestamps(&mut t, A::CreatedAt, A::UpdatedAt);
        m.create_table(t.to_owned()).await?;
        m.create_index(
            Index::create()
                .name("uq_metadef_ns_res_types_type_namespace")
                .table(A::Table)
                .col(A::ResourceTypeId)
                .col(A::NamespaceId)
                .unique()
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_metadef_ns_res_types_namespace_id")
                .table(A::Table)
                .col(A::NamespaceId)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MetadefNamespaceResourceTypes::Table.into_iden(),
            MetadefResourceTypes::Table.into_iden(),
            MetadefTags::Table.into_iden(),
            MetadefProperties::Table.into_iden(),
            MetadefObjects::Table.into_iden(),
            MetadefNamespaces::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
