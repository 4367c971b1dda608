//! The first schema: Glance's image tables. Applied databases exist, so this file stays
//! as it was released; later changes are later migrations.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Images {
    Table,
    Id,
    Name,
    Size,
    VirtualSize,
    Status,
    DiskFormat,
    ContainerFormat,
    Checksum,
    OsHashAlgo,
    OsHashValue,
    Owner,
    MinDisk,
    MinRam,
    Protected,
    OsHidden,
    Visibility,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
    Deleted,
}

#[derive(DeriveIden)]
enum ImageProperties {
    Table,
    Id,
    ImageId,
    Name,
    Value,
}

#[derive(DeriveIden)]
enum ImageTags {
    Table,
    Id,
    ImageId,
    Value,
}

#[derive(DeriveIden)]
enum ImageLocations {
    Table,
    Id,
    ImageId,
    Value,
    MetaData,
    Status,
}

#[derive(DeriveIden)]
enum ImageMembers {
    Table,
    Id,
    ImageId,
    Member,
    CanShare,
    Status,
}

#[derive(DeriveIden)]
enum Common {
    CreatedAt,
    UpdatedAt,
    DeletedAt,
    Deleted,
}

/// Columns every child table shares: timestamps and the soft-delete pair.
fn audit(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(
            ColumnDef::new(Common::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Common::UpdatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Common::DeletedAt)
                .timestamp_with_time_zone()
                .null(),
        )
        .col(
            ColumnDef::new(Common::Deleted)
                .boolean()
                .not_null()
                .default(false),
        )
}

fn child_fk<T: Iden + 'static>(table: T, column: impl Iden + 'static) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Images::Table, Images::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000001_initial_schema"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Images::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(Images::Id)
                        .string_len(36)
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Images::Name).string_len(255).null())
                .col(ColumnDef::new(Images::Size).big_integer().null())
                .col(ColumnDef::new(Images::VirtualSize).big_integer().null())
                .col(ColumnDef::new(Images::Status).string_len(30).not_null())
                .col(ColumnDef::new(Images::DiskFormat).string_len(20).null())
                .col(
                    ColumnDef::new(Images::ContainerFormat)
                        .string_len(20)
                        .null(),
                )
                .col(ColumnDef::new(Images::Checksum).string_len(32).null())
                .col(ColumnDef::new(Images::OsHashAlgo).string_len(64).null())
                .col(ColumnDef::new(Images::OsHashValue).string_len(128).null())
                .col(ColumnDef::new(Images::Owner).string_len(255).null())
                .col(
                    ColumnDef::new(Images::MinDisk)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(Images::MinRam)
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(Images::Protected)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .col(
                    ColumnDef::new(Images::OsHidden)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .col(ColumnDef::new(Images::Visibility).string_len(20).not_null())
                .col(
                    ColumnDef::new(Images::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Images::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Images::DeletedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(Images::Deleted)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            (
                "ix_images_deleted_created",
                vec![Images::Deleted, Images::CreatedAt],
            ),
            ("ix_images_owner", vec![Images::Owner]),
            ("ix_images_visibility", vec![Images::Visibility]),
            ("ix_images_name", vec![Images::Name]),
            ("ix_images_status", vec![Images::Status]),
        ] {
            let mut idx = Index::create();
            idx.name(name).table(Images::Table).if_not_exists();
            for c in cols {
                idx.col(c);
            }
            m.create_index(idx.to_owned()).await?;
        }

        let mut props = Table::create();
        props
            .table(ImageProperties::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(ImageProperties::Id)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(ImageProperties::ImageId)
                    .string_len(36)
                    .not_null(),
            )
            .col(
                ColumnDef::new(ImageProperties::Name)
                    .string_len(255)
                    .not_null(),
            )
            .col(ColumnDef::new(ImageProperties::Value).text().not_null());
        audit(&mut props).foreign_key(&mut child_fk(
            ImageProperties::Table,
            ImageProperties::ImageId,
        ));
        m.create_table(props.to_owned()).await?;
        m.create_index(
            Index::create()
                .name("ix_image_properties_image_id_name")
                .table(ImageProperties::Table)
                .col(ImageProperties::ImageId)
                .col(ImageProperties::Name)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_image_properties_name_value")
                .table(ImageProperties::Table)
                .col(ImageProperties::Name)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        let mut tags = Table::create();
        tags.table(ImageTags::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(ImageTags::Id)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(ColumnDef::new(ImageTags::ImageId).string_len(36).not_null())
            .col(ColumnDef::new(ImageTags::Value).string_len(255).not_null());
        audit(&mut tags).foreign_key(&mut child_fk(ImageTags::Table, ImageTags::ImageId));
        m.create_table(tags.to_owned()).await?;
        for (name, col) in [
            ("ix_image_tags_image_id", ImageTags::ImageId),
            ("ix_image_tags_value", ImageTags::Value),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(ImageTags::Table)
                    .col(col)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }

        let mut locs = Table::create();
        locs.table(ImageLocations::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(ImageLocations::Id)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(ImageLocations::ImageId)
                    .string_len(36)
                    .not_null(),
            )
            .col(ColumnDef::new(ImageLocations::Value).text().not_null())
            .col(ColumnDef::new(ImageLocations::MetaData).text().not_null())
            .col(
                ColumnDef::new(ImageLocations::Status)
                    .string_len(30)
                    .not_null(),
            );
        audit(&mut locs).foreign_key(&mut child_fk(
            ImageLocations::Table,
            ImageLocations::ImageId,
        ));
        m.create_table(locs.to_owned()).await?;
        m.create_index(
            Index::create()
                .name("ix_image_locations_image_id")
                .table(ImageLocations::Table)
                .col(ImageLocations::ImageId)
                .if_not_exists()
                .to_owned(),
        )
        .await?;

        let mut members = Table::create();
        members
            .table(ImageMembers::Table)
            .if_not_exists()
            .col(
                ColumnDef::new(ImageMembers::Id)
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(ImageMembers::ImageId)
                    .string_len(36)
                    .not_null(),
            )
            .col(
                ColumnDef::new(ImageMembers::Member)
                    .string_len(255)
                    .not_null(),
            )
            .col(
                ColumnDef::new(ImageMembers::CanShare)
                    .boolean()
                    .not_null()
                    .default(false),
            )
            .col(
                ColumnDef::new(ImageMembers::Status)
                    .string_len(20)
                    .not_null(),
            );
        audit(&mut members).foreign_key(&mut child_fk(ImageMembers::Table, ImageMembers::ImageId));
        m.create_table(members.to_owned()).await?;
        for (name, col) in [
            ("ix_image_members_image_id", ImageMembers::ImageId),
            ("ix_image_members_member", ImageMembers::Member),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(ImageMembers::Table)
                    .col(col)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ImageMembers::Table.into_iden(),
            ImageLocations::Table.into_iden(),
            ImageTags::Table.into_iden(),
            ImageProperties::Table.into_iden(),
            Images::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
