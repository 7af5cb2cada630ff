//! What a connection's role can do beyond its tables, checked once at the
//! start of a run, before any plugin code touches the connection.
//!
//! A read-only session stops writes to tables, and nothing else: a role that
//! may reach the database server's files, run programs there, change
//! server-wide settings or administer other sessions keeps those powers on a
//! read-only connection (see docs/SECURITY.md, "Privileges checked at
//! start"). This module owns finding such privileges ([`inspect`]),
//! classifying them ([`DangerousPrivilege`], [`Risk`]) and the decision the
//! run takes at start ([`check_at_start`]): a read-only connection holding a
//! privilege a read-only session does not contain is refused unless the
//! operator allows it (`allow_privileged = true`); anything else found is a
//! [`PrivilegeWarning`] for the report and the plan.
//!
//! - PostgreSQL: every role the login role can `SET ROLE` to
//!   (`pg_has_role(session_user, …, 'MEMBER')`, itself included) is read
//!   from `pg_roles`: superuser, `CREATEROLE`, `BYPASSRLS`, and membership in
//!   the predefined roles that reach the server's files and programs
//!   (`pg_execute_server_program`, `pg_write_server_files`,
//!   `pg_read_server_files`), other sessions (`pg_signal_backend`) or every
//!   table (`pg_write_all_data`).
//! - MySQL/MariaDB: the account's global privileges (`ON *.*`) from
//!   `information_schema.USER_PRIVILEGES`, and those of every role it may
//!   `SET ROLE` to (`information_schema.APPLICABLE_ROLES`): each is activated
//!   in turn and its grants read with `SHOW GRANTS`, then the session's role
//!   is put back. Anything on `*.*` beyond reading is flagged (deny by
//!   default: a privilege this module does not know is flagged too).
//! - SQLite: nothing to check; a file has no roles.
//!
//! The dialect-independent model and decision live here; each dialect's
//! reading and classifying is its `db/<dialect>/privileges.rs`
//! (`driver::PrivilegeCatalog`).

use serde::{Deserialize, Serialize};

use super::{Connection, DbError, DbErrorKind};
use crate::driver_for;
use migrun_types::value::Value;

/// Why a privilege matters. [`Risk::escapes_read_only`] says which ones a
/// read-only session does not contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    /// PostgreSQL superuser: every other risk at once.
    Superuser,
    /// Runs programs on the database server as its OS user.
    ServerPrograms,
    /// Reads or writes files on the database server.
    ServerFiles,
    /// Changes server-wide settings, logs, replication or the server's life.
    ServerSettings,
    /// Sees, cancels or kills other sessions.
    OtherSessions,
    /// Creates accounts or roles, or hands privileges on.
    Accounts,
    /// Writes or changes every database on the server.
    WriteAnywhere,
    /// Reads and writes rows that row-level security hides.
    RowSecurity,
}

impl Risk {
    /// Whether a read-only session leaves this power intact. A read-only
    /// connection holding such a privilege is refused unless the operator
    /// allows it; the others only earn a warning (the session's read-only
    /// transaction stops them: creating a role, writing a table).
    pub fn escapes_read_only(self) -> bool {
        match self {
            Risk::Superuser
            | Risk::ServerPrograms
            | Risk::ServerFiles
            | Risk::ServerSettings
            | Risk::OtherSessions
            | Risk::WriteAnywhere => true,
            Risk::Accounts | Risk::RowSecurity => false,
        }
    }
}

/// One privilege of a connection's role that reaches beyond its tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DangerousPrivilege {
    /// As the database names it: `superuser`, `pg_read_server_files`, `FILE`, `INSERT ON *.*`.
    pub name: String,
    /// The role it comes from, when not the login role itself (the plugin
    /// could `SET ROLE` to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Why it matters.
    pub risk: Risk,
    /// What a plugin could do with it, for people.
    pub why: String,
}

impl DangerousPrivilege {
    pub(super) fn new(name: impl Into<String>, via: Option<&str>, risk: Risk, why: &str) -> Self {
        DangerousPrivilege {
            name: name.into(),
            via: via.map(str::to_owned),
            risk,
            why: why.to_owned(),
        }
    }

    /// `FILE (via role `r`)`, for messages.
    pub fn label(&self) -> String {
        match &self.via {
            Some(role) => format!("{} (via role `{role}`)", self.name),
            None => self.name.clone(),
        }
    }
}

/// What [`inspect`] found about one connection's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolePrivileges {
    /// The login role (`postgres`, `root@localhost`); empty on SQLite.
    pub role: String,
    /// Its privileges that reach beyond its tables, the login role's own first.
    pub dangerous: Vec<DangerousPrivilege>,
}

impl RolePrivileges {
    /// The privileges a read-only session does not contain.
    pub fn escaping_read_only(&self) -> Vec<&DangerousPrivilege> {
        self.dangerous
            .iter()
            .filter(|p| p.risk.escapes_read_only())
            .collect()
    }

    /// `superuser (what it allows); FILE (via role `x`) (what it allows)`, for messages.
    pub fn explain(privileges: &[&DangerousPrivilege]) -> String {
        privileges
            .iter()
            .map(|p| format!("{} — {}", p.label(), p.why))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `superuser, pg_read_server_files (via role `x`)`, for messages.
    pub fn names(privileges: &[&DangerousPrivilege]) -> String {
        privileges
            .iter()
            .map(|p| p.label())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A connection whose role holds dangerous privileges, as the run report and
/// the dry-run plan show it: a read-write connection, a read-only one whose
/// privileges a read-only session contains, or a read-only one the operator
/// allowed (`allow_privileged = true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivilegeWarning {
    /// The connection.
    pub connection: String,
    /// The access the plugin got through it.
    pub access: super::Access,
    /// The login role.
    pub role: String,
    /// What it holds.
    pub privileges: Vec<DangerousPrivilege>,
    /// Whether the operator allowed it (`allow_privileged = true`).
    pub allowed: bool,
    /// The warning, for people.
    pub message: String,
}

impl PrivilegeWarning {
    /// The warning for `found` on `connection`; `None` when the role holds nothing dangerous.
    pub fn new(
        connection: &str,
        access: super::Access,
        found: &RolePrivileges,
        allowed: bool,
    ) -> Option<PrivilegeWarning> {
        if found.dangerous.is_empty() {
            return None;
        }
        let all: Vec<&DangerousPrivilege> = found.dangerous.iter().collect();
        let mut message = format!(
            "role `{}` holds privileges beyond its tables: {}",
            found.role,
            RolePrivileges::explain(&all)
        );
        if allowed && access == super::Access::ReadOnly && !found.escaping_read_only().is_empty() {
            message.push_str(
                "; a read-only session does not contain them — the run went on because the config sets `allow_privileged = true` for this connection",
            );
        } else {
            message.push_str(
                "; a plugin can use them through this connection — grant a least-privilege role (docs/SECURITY.md, \"Least-privilege roles\")",
            );
        }
        Some(PrivilegeWarning {
            connection: connection.to_owned(),
            access,
            role: found.role.clone(),
            privileges: found.dangerous.clone(),
            allowed,
            message,
        })
    }
}

/// Why a run is refused at start. Nothing has run when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeRefusal {
    /// A read-only connection's role holds privileges a read-only session does not
    /// contain, and the operator did not allow it.
    #[error(
        "connection `{connection}` is read-only, but its role `{role}` holds privileges a read-only session does not contain: {found}. A plugin could use them through this connection whatever its access. Connect it as a role that may only read (docs/SECURITY.md, \"Least-privilege roles\"), or accept the risk with `allow_privileged = true` under [connections.{connection}] in migrun.toml. Nothing ran and no database was changed"
    )]
    Privileged {
        /// The connection.
        connection: String,
        /// The login role.
        role: String,
        /// The privileges, each with what it allows.
        found: String,
    },
    /// The connection's privileges could not be read, and the operator did not allow
    /// running without knowing.
    #[error(
        "connection `{connection}`: {error}; set `allow_privileged = true` under [connections.{connection}] to run without knowing. Nothing ran and no database was changed"
    )]
    Unreadable {
        /// The connection.
        connection: String,
        /// Why.
        error: DbError,
    },
}

/// The start-of-run check of one connection the plugin gets with `access`:
/// `Err` for a read-only connection whose role holds privileges a read-only
/// session does not contain (unless `allowed`, the operator's
/// `allow_privileged = true`) or whose privileges cannot be read (unless
/// `allowed`); otherwise the warning to show, if the role holds anything
/// dangerous, or if it could not be read and `allowed` let the run go on.
pub async fn check_at_start(
    conn: &mut Connection,
    access: super::Access,
    allowed: bool,
) -> Result<Option<PrivilegeWarning>, PrivilegeRefusal> {
    let found = match inspect(conn).await {
        Ok(found) => found,
        Err(error) if allowed => {
            return Ok(Some(PrivilegeWarning {
                connection: conn.name().to_owned(),
                access,
                role: String::new(),
                privileges: Vec::new(),
                allowed,
                message: format!(
                    "privileges not checked ({error}); the run went on because the config sets `allow_privileged = true` for this connection"
                ),
            }));
        }
        Err(error) => {
            return Err(PrivilegeRefusal::Unreadable {
                connection: conn.name().to_owned(),
                error,
            });
        }
    };
    let escaping = found.escaping_read_only();
    if access == super::Access::ReadOnly && !escaping.is_empty() && !allowed {
        return Err(PrivilegeRefusal::Privileged {
            connection: conn.name().to_owned(),
            role: found.role.clone(),
            found: RolePrivileges::explain(&escaping),
        });
    }
    let warning = PrivilegeWarning::new(conn.name(), access, &found, allowed);
    if let Some(warning) = &warning {
        tracing::warn!(connection = %warning.connection, "{}", warning.message);
    }
    Ok(warning)
}

/// Reads what `conn`'s role may do beyond its tables. Runs only host SQL,
/// reads the catalog and, on MySQL/MariaDB, activates each of the account's
/// roles in turn and restores the session's role. Call it before any plugin
/// code uses the connection.
pub async fn inspect(conn: &mut Connection) -> Result<RolePrivileges, DbError> {
    driver_for(conn.dialect()).role_privileges(conn).await
}

pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::Text(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

pub(super) fn unexpected(what: &str) -> DbError {
    DbError::new(
        DbErrorKind::Usage,
        format!("cannot read the connection's privileges: unexpected answer from {what}"),
    )
}
