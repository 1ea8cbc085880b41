//! On PostgreSQL, an update of ports checks the splitter only of the rows it moves to another
//! splitter.
//!
//! Migration 17's statement-level trigger locked (`FOR KEY SHARE`) the splitter of every row an
//! `UPDATE` of ports wrote, moved or not: an incremental run rewrites ports' state in place, and
//! each of those locks marks the splitter's row, a dirtied page and a WAL record per splitter (a
//! 1% run at 200,000 boxes wrote 68,600 WAL records with it, 42,000 without; docs/BENCHMARKS.md,
//! "Ports written where they stand"). A row-level trigger on `UPDATE OF splitter_id`, fired only
//! when the value changes, does what a foreign key does on update: lock the new splitter, refuse
//! a missing one with the foreign key's SQLSTATE (23503). Inserts keep their statement-level
//! check, deletions of splitters their statement-level cascade.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000020_port_moves_checked"
    }
}

const UP: &str = r#"
DROP TRIGGER IF EXISTS ports_name_splitters_update ON ports;

CREATE FUNCTION port_names_its_splitter() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM 1 FROM splitters WHERE id = NEW.splitter_id FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
      MESSAGE = 'insert or update on table "ports" names a splitter that does not exist';
  END IF;
  RETURN NULL;
END $f$;

CREATE TRIGGER port_moves_to_a_splitter AFTER UPDATE OF splitter_id ON ports FOR EACH ROW
  WHEN (OLD.splitter_id IS DISTINCT FROM NEW.splitter_id)
  EXECUTE FUNCTION port_names_its_splitter();
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS port_moves_to_a_splitter ON ports;
DROP FUNCTION IF EXISTS port_names_its_splitter();
CREATE TRIGGER ports_name_splitters_update AFTER UPDATE ON ports
  REFERENCING NEW TABLE AS new_ports FOR EACH STATEMENT EXECUTE FUNCTION ports_name_splitters();
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(manager, DOWN).await
    }
}
