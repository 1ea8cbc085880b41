//! The master key against the database: checked at every start, rotated on purpose.
//!
//! `gateway_secrets.master_key_check` holds a known text sealed with the master key. Start-up
//! opens it, so a wrong `MASTER_KEY` stops the process with one line instead of failing every
//! sync; a database from before the check gets one at its first start, once the passwords it
//! already holds are shown to open with the key. [`rotate`] re-seals every platform password and
//! the check in one transaction.

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait,
};

use entity::{gateway_secret, integration};

use crate::crypto::MasterKey;
use crate::{Error, Result};

/// The row of the check value.
const CHECK: &str = "master_key_check";
/// What the check value seals.
const CHECK_TEXT: &str = "mapping-gateway master key check";
/// Its associated data: the check opens only as itself.
const CHECK_CONTEXT: &[u8] = b"gateway_secrets:master_key_check";

/// Whether `master` is the key the database's secrets are sealed with; records the check value
/// when there is none yet. `MASTER_KEY_MISMATCH` when it is not.
pub async fn ensure(db: &DatabaseConnection, master: &MasterKey) -> Result<()> {
    if let Some(sealed) = check_value(db).await? {
        return opens(master, &sealed);
    }
    for row in sealed_passwords(db).await? {
        master.open_password(&row)?;
    }
    record(db, master).await?;
    // Another instance may have recorded its own first: the value now there must open.
    let sealed = check_value(db).await?.ok_or_else(|| {
        Error::internal(anyhow::anyhow!(
            "the master key check vanished after it was written"
        ))
    })?;
    opens(master, &sealed)
}

/// What [`rotate`] did, or would do.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The secrets were (or would be) re-sealed: this many platform passwords, and the check.
    Resealed {
        /// Platform passwords re-sealed.
        passwords: usize,
    },
    /// The secrets already open with the new key: nothing to do.
    AlreadyDone,
}

/// Re-seals every platform password and the check value from `old` to `new` in one
/// transaction; with `dry_run`, works it all out and writes nothing. Running it again after it
/// succeeded finds the check sealed with `new` and changes nothing.
pub async fn rotate(
    db: &DatabaseConnection,
    old: &MasterKey,
    new: &MasterKey,
    dry_run: bool,
) -> Result<Rotation> {
    if let Some(sealed) = check_value(db).await? {
        if opens(new, &sealed).is_ok() {
            return Ok(Rotation::AlreadyDone);
        }
    }
    ensure(db, old).await?;
    let txn = db.begin().await?;
    let rows = sealed_passwords(&txn).await?;
    for row in &rows {
        let password = old.open_password(row)?.unwrap_or_default();
        let sealed = new.seal_password(row.id, &password)?;
        integration::Entity::update_many()
            .col_expr(integration::Column::PasswordCiphertext, Expr::value(sealed))
            .filter(integration::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
    }
    gateway_secret::Entity::update_many()
        .col_expr(
            gateway_secret::Column::Sealed,
            Expr::value(new.encrypt(CHECK_TEXT, CHECK_CONTEXT)?),
        )
        .col_expr(gateway_secret::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(gateway_secret::Column::Name.eq(CHECK))
        .exec(&txn)
        .await?;
    if dry_run {
        txn.rollback().await?;
    } else {
        txn.commit().await?;
    }
    Ok(Rotation::Resealed {
        passwords: rows.len(),
    })
}

async fn check_value(db: &impl ConnectionTrait) -> Result<Option<Vec<u8>>> {
    Ok(gateway_secret::Entity::find_by_id(CHECK.to_owned())
        .one(db)
        .await?
        .map(|row| row.sealed))
}

async fn sealed_passwords(db: &impl ConnectionTrait) -> Result<Vec<integration::Model>> {
    Ok(integration::Entity::find()
        .filter(integration::Column::PasswordCiphertext.is_not_null())
        .all(db)
        .await?)
}

/// Writes the check value sealed with `master` unless one is there.
async fn record(db: &impl ConnectionTrait, master: &MasterKey) -> Result<()> {
    let row = gateway_secret::ActiveModel {
        name: Set(CHECK.to_owned()),
        sealed: Set(master.encrypt(CHECK_TEXT, CHECK_CONTEXT)?),
        updated_at: Set(Utc::now()),
    };
    gateway_secret::Entity::insert(row)
        .on_conflict(
            OnConflict::column(gateway_secret::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .try_insert()
        .exec(db)
        .await?;
    Ok(())
}

fn opens(master: &MasterKey, sealed: &[u8]) -> Result<()> {
    match master.decrypt(sealed, CHECK_CONTEXT) {
        Ok(text) if text == CHECK_TEXT => Ok(()),
        _ => Err(Error::MasterKeyMismatch),
    }
}
