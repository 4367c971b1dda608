//! Indexes for the list query, and the unique `(image_id, name)` key on properties that lets
//! a save revive a dropped property's row instead of inserting a second one.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000002_list_indexes"
    }
}

/// `(name, table, columns)` of the indexes this migration adds.
const INDEXES: &[(&str, &str, &[&str])] = &[
    // The default listing is `WHERE deleted = false ORDER BY created_at DESC, id DESC`; this
    // serves it in order, so a page is a short index walk. It supersedes
    // `ix_images_deleted_created`.
    (
        "ix_images_deleted_created_at_id",
        "images",
        &["deleted", "created_at", "id"],
    ),
    ("ix_images_updated_at", "images", &["updated_at"]),
    ("ix_images_checksum", "images", &["checksum"]),
    ("ix_images_os_hash_value", "images", &["os_hash_value"]),
    // Correlated tag and membership lookups (`image_id = images.id AND value = ?`).
    (
        "ix_image_tags_image_id_value",
        "image_tags",
        &["image_id", "value"],
    ),
    (
        "ix_image_members_image_id_member",
        "image_members",
        &["image_id", "member"],
    ),
];

fn create(name: &str, table: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Alias::new(table)).if_not_exists();
    for column in columns {
        index.col(Alias::new(*column));
    }
    index.to_owned()
}

fn drop(name: &str, table: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(Alias::new(table))
        .if_exists()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns) in INDEXES {
            m.create_index(create(name, table, columns)).await?;
        }
        m.drop_index(drop("ix_images_deleted_created", "images"))
            .await?;
        // Not (name, value) on properties: values are unbounded TEXT, and a PostgreSQL
        // b-tree refuses entries over ~2.7 kB, so indexing them would make long values
        // unstorable. The property filter is a correlated lookup this key serves.
        m.drop_index(drop(
            "ix_image_properties_image_id_name",
            "image_properties",
        ))
        .await?;
        m.create_index(
            create(
                "ix_image_properties_image_id_name",
                "image_properties",
                &["image_id", "name"],
            )
            .unique()
            .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(drop(
            "ix_image_properties_image_id_name",
            "image_properties",
        ))
        .await?;
        m.create_index(create(
            "ix_image_properties_image_id_name",
            "image_properties",
            &["image_id", "name"],
        ))
        .await?;
        m.create_index(create(
            "ix_images_deleted_created",
            "images",
            &["deleted", "created_at"],
        ))
        .await?;
        for (name, table, _) in INDEXES {
            m.drop_index(drop(name, table)).await?;
        }
        Ok(())
    }
}
