//! On PostgreSQL, the ports' reference to their splitter is checked once per statement instead of
//! once per row.
//!
//! A foreign key runs a lookup (`SELECT … FOR KEY SHARE`) for every port written: 265,000 of
//! them in a full sync of 20,000 boxes, a third of the time PostgreSQL spent inserting ports
//! (docs/BENCHMARKS.md, "PostgreSQL at SQLite's pace"). Statement-level triggers keep the same
//! guarantees with one lookup per statement:
//! - after an INSERT or UPDATE of ports, the splitters the new rows name are locked `FOR KEY SHARE`
//!   (as the foreign key does, so that none can be deleted before the writer commits), and one
//!   that is missing fails the statement with the foreign key's SQLSTATE (23503);
//! - after a DELETE of splitters (a sync's deletions, or the cascade from a deleted integration),
//!   their ports are deleted, as `ON DELETE CASCADE` did; the bindings' own key still empties
//!   `port_id`.
//!
//! SQLite keeps its foreign key: its checks cost an index probe in the same process.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000017_port_splitter_check"
    }
}

const UP: &str = r#"
DO $$ DECLARE c text; BEGIN
  SELECT conname INTO c FROM pg_constraint
   WHERE conrelid = 'ports'::regclass AND contype = 'f' AND confrelid = 'splitters'::regclass;
  IF c IS NOT NULL THEN EXECUTE format('ALTER TABLE ports DROP CONSTRAINT %I', c); END IF;
END $$;

CREATE FUNCTION ports_name_splitters() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE ids bigint[]; found bigint;
BEGIN
  ids := ARRAY(SELECT DISTINCT splitter_id FROM new_ports);
  SELECT count(*) INTO found FROM (SELECT 1 FROM splitters WHERE id = ANY(ids) FOR KEY SHARE) l;
  IF found <> cardinality(ids) THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
      MESSAGE = 'insert or update on table "ports" names a splitter that does not exist';
  END IF;
  RETURN NULL;
END $f$;

CREATE TRIGGER ports_name_splitters_insert AFTER INSERT ON ports
  REFERENCING NEW TABLE AS new_ports FOR EACH STATEMENT EXECUTE FUNCTION ports_name_splitters();
CREATE TRIGGER ports_name_splitters_update AFTER UPDATE ON ports
  REFERENCING NEW TABLE AS new_ports FOR EACH STATEMENT EXECUTE FUNCTION ports_name_splitters();

CREATE FUNCTION splitters_take_their_ports() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  DELETE FROM ports WHERE splitter_id = ANY(ARRAY(SELECT id FROM old_splitters));
  RETURN NULL;
END $f$;

CREATE TRIGGER splitters_take_their_ports AFTER DELETE ON splitters
  REFERENCING OLD TABLE AS old_splitters FOR EACH STATEMENT EXECUTE FUNCTION splitters_take_their_ports();
"#;

const DOWN: &str = r#"
DROP TRIGGER IF EXISTS splitters_take_their_ports ON splitters;
DROP FUNCTION IF EXISTS splitters_take_their_ports();
DROP TRIGGER IF EXISTS ports_name_splitters_insert ON ports;
DROP TRIGGER IF EXISTS ports_name_splitters_update ON ports;
DROP FUNCTION IF EXISTS ports_name_splitters();
ALTER TABLE ports ADD CONSTRAINT ports_splitter_id_fkey FOREIGN KEY (splitter_id)
  REFERENCES splitters (id) ON DELETE CASCADE;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager.get_connection().execute_unprepared(UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            manager.get_connection().execute_unprepared(DOWN).await?;
        }
        Ok(())
    }
}
