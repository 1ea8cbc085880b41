//! API keys with a lifecycle and a say over personal data, and a history that outlives its
//! integration.
//!
//! - `api_keys.expires_at`: past it the key is refused like an unknown one (NULL: never).
//! - `api_keys.personal_data`: whether the key reads customers' documents and names (LGPD);
//!   keys that exist keep what they could read (true), new VIEWER keys are made without it.
//! - `history_entries.integration_id` loses its foreign key: deleting an integration keeps its
//!   history, the entry of the deletion included. SQLite cannot drop a constraint, so the
//!   table is rebuilt with the same columns, rows and index.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000016_key_lifecycle"
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    ExpiresAt,
    PersonalData,
}

const SQLITE_HISTORY: &[&str] = &[
    r#"CREATE TABLE "history_entries_new" ( "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "integration_id" integer NULL, "api_key_id" integer NULL, "actor" varchar NOT NULL, "action" varchar NOT NULL, "summary" text NOT NULL, "before" json_text NULL, "after" json_text NULL, "created_at" timestamp_with_timezone_text NOT NULL, FOREIGN KEY ("api_key_id") REFERENCES "api_keys" ("id") ON DELETE SET NULL )"#,
    r#"INSERT INTO "history_entries_new" SELECT "id", "integration_id", "api_key_id", "actor", "action", "summary", "before", "after", "created_at" FROM "history_entries""#,
    r#"DROP TABLE "history_entries""#,
    r#"ALTER TABLE "history_entries_new" RENAME TO "history_entries""#,
    r#"CREATE INDEX "idx_history_integration" ON "history_entries" ("integration_id", "id")"#,
];

const POSTGRES_HISTORY: &str = r#"DO $$ DECLARE c text; BEGIN
  SELECT conname INTO c FROM pg_constraint
   WHERE conrelid = 'history_entries'::regclass AND contype = 'f'
     AND confrelid = 'integrations'::regclass;
  IF c IS NOT NULL THEN EXECUTE format('ALTER TABLE history_entries DROP CONSTRAINT %I', c); END IF;
END $$"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(
                        ColumnDef::new(ApiKeys::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(
                        ColumnDef::new(ApiKeys::PersonalData)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            db.execute_unprepared(POSTGRES_HISTORY).await?;
        } else {
            // One batch, so that every statement runs on the same connection: on a pool, the
            // rename could otherwise run on a connection whose snapshot still has the old table.
            db.execute_unprepared(&SQLITE_HISTORY.join(";\n")).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [ApiKeys::ExpiresAt, ApiKeys::PersonalData] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
