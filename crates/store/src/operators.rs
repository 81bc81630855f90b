//! The `operators` table: personal tokens (digests only) and their permissions.

use diesel::prelude::*;
use powernode_domain::Permission;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::schema::operators;

#[derive(Queryable, Selectable)]
#[diesel(table_name = operators, check_for_backend(diesel::pg::Pg))]
struct OperatorRow {
    id: Uuid,
    name: String,
    permissions: Vec<Option<String>>,
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
    disabled_at: Option<OffsetDateTime>,
    last_used_at: Option<OffsetDateTime>,
    session_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: Uuid,
    pub name: String,
    pub permissions: Vec<Permission>,
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub disabled_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    /// Web UI sessions carry it; bumping it ends every session of this operator.
    pub session_epoch: i32,
}

impl Operator {
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }
}

impl TryFrom<OperatorRow> for Operator {
    type Error = StoreError;

    fn try_from(row: OperatorRow) -> Result<Self, StoreError> {
        let permissions = row
            .permissions
            .into_iter()
            .map(|p| {
                let p = p.unwrap_or_default();
                p.parse().map_err(|_| StoreError::CorruptRow {
                    table: "operators",
                    column: "permissions",
                    value: p,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Operator {
            id: row.id,
            name: row.name,
            permissions,
            created_by: row.created_by,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
            last_used_at: row.last_used_at,
            session_epoch: row.session_epoch,
        })
    }
}

pub struct NewOperator<'a> {
    pub name: &'a str,
    pub token_digest: &'a str,
    pub permissions: &'a [Permission],
    pub created_by: Option<Uuid>,
}

pub fn insert(conn: &mut PgConnection, new: &NewOperator<'_>) -> Result<Operator, StoreError> {
    let permissions: Vec<Option<String>> = new
        .permissions
        .iter()
        .map(|p| Some(p.as_str().to_owned()))
        .collect();
    diesel::insert_into(operators::table)
        .values((
            operators::id.eq(Uuid::now_v7()),
            operators::name.eq(new.name),
            operators::token_digest.eq(new.token_digest),
            operators::permissions.eq(permissions),
            operators::created_by.eq(new.created_by),
        ))
        .returning(OperatorRow::as_returning())
        .get_result(conn)?
        .try_into()
}

/// The enabled operator holding the token with this digest, stamping `last_used_at`.
pub fn authenticate(conn: &mut PgConnection, digest: &str) -> Result<Option<Operator>, StoreError> {
    diesel::update(
        operators::table
            .filter(operators::token_digest.eq(digest))
            .filter(operators::disabled_at.is_null()),
    )
    .set(operators::last_used_at.eq(crate::now_nullable()))
    .returning(OperatorRow::as_returning())
    .get_result(conn)
    .optional()?
    .map(Operator::try_from)
    .transpose()
}

pub fn list(conn: &mut PgConnection) -> Result<Vec<Operator>, StoreError> {
    operators::table
        .select(OperatorRow::as_select())
        .order((operators::created_at.asc(), operators::id.asc()))
        .load(conn)?
        .into_iter()
        .map(Operator::try_from)
        .collect()
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Operator>, StoreError> {
    operators::table
        .find(id)
        .select(OperatorRow::as_select())
        .first(conn)
        .optional()?
        .map(Operator::try_from)
        .transpose()
}

/// Disables an enabled operator; `None` when it does not exist or is already disabled.
pub fn disable(conn: &mut PgConnection, id: Uuid) -> Result<Option<Operator>, StoreError> {
    diesel::update(
        operators::table
            .find(id)
            .filter(operators::disabled_at.is_null()),
    )
    // Ends every web UI session too (re-enabling must not revive old cookies).
    .set((
        operators::disabled_at.eq(crate::now_nullable()),
        operators::session_epoch.eq(operators::session_epoch + 1),
    ))
    .returning(OperatorRow::as_returning())
    .get_result(conn)
    .optional()?
    .map(Operator::try_from)
    .transpose()
}

/// Whether an enabled operator holds `system.operators.admin`.
pub fn enabled_admin_exists(conn: &mut PgConnection) -> Result<bool, StoreError> {
    let admin = Permission::OperatorsAdmin.as_str();
    Ok(diesel::select(diesel::dsl::exists(
        operators::table
            .filter(operators::disabled_at.is_null())
            .filter(operators::permissions.contains(vec![Some(admin.to_owned())])),
    ))
    .get_result(conn)?)
}

/// An enabled operator by id (web UI sessions re-check it on every request).
pub fn find_enabled(conn: &mut PgConnection, id: Uuid) -> Result<Option<Operator>, StoreError> {
    Ok(find(conn, id)?.filter(|o| o.disabled_at.is_none()))
}

/// Ends every web UI session of this operator.
pub fn bump_session_epoch(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    diesel::update(operators::table.find(id))
        .set(operators::session_epoch.eq(operators::session_epoch + 1))
        .execute(conn)?;
    Ok(())
}
