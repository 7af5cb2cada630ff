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

use serde::{Deserialize, Serialize};

use super::{Connection, DbError, DbErrorKind, Dialect};
use crate::value::Value;

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
    fn new(name: impl Into<String>, via: Option<&str>, risk: Risk, why: &str) -> Self {
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
    match conn.dialect() {
        Dialect::Sqlite => Ok(RolePrivileges {
            role: String::new(),
            dangerous: Vec::new(),
        }),
        Dialect::Postgres => inspect_postgres(conn).await,
        Dialect::MySql => inspect_mysql(conn).await,
    }
}

/// A role the PostgreSQL login role is a member of (or the login role itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgRole {
    /// `rolname`.
    pub name: String,
    /// `rolsuper`.
    pub superuser: bool,
    /// `rolcreaterole`.
    pub create_role: bool,
    /// `rolbypassrls`.
    pub bypass_rls: bool,
}

async fn inspect_postgres(conn: &mut Connection) -> Result<RolePrivileges, DbError> {
    let rows = conn
        .host_query(
            "SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolbypassrls, session_user::text \
             FROM pg_catalog.pg_roles r \
             WHERE pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER') \
             ORDER BY r.rolname",
            &[],
        )
        .await?;
    let mut login = None;
    let mut roles = Vec::new();
    for row in rows {
        let [name, superuser, create_role, bypass_rls, session] = row.as_slice() else {
            return Err(unexpected("pg_roles"));
        };
        login = text(session);
        roles.push(PgRole {
            name: text(name).ok_or_else(|| unexpected("pg_roles.rolname"))?,
            superuser: matches!(superuser, Value::Bool(true)),
            create_role: matches!(create_role, Value::Bool(true)),
            bypass_rls: matches!(bypass_rls, Value::Bool(true)),
        });
    }
    let login =
        login.ok_or_else(|| unexpected("pg_has_role: the login role is not its own member"))?;
    Ok(classify_postgres(&login, &roles))
}

/// What PostgreSQL roles reachable from `login` (itself included) can do:
/// superuser (the login role's own, or one it can `SET ROLE` to — then it
/// alone is reported, it implies the rest), the predefined roles that reach
/// the server's files and programs, `CREATEROLE`, `BYPASSRLS`,
/// `pg_write_all_data` and `pg_signal_backend`.
pub fn classify_postgres(login: &str, roles: &[PgRole]) -> RolePrivileges {
    fn via<'a>(role: &'a PgRole, login: &str) -> Option<&'a str> {
        (role.name != login).then_some(role.name.as_str())
    }
    let mut dangerous = Vec::new();
    // The login role's own attributes first, then the rest by name.
    let mut ordered: Vec<&PgRole> = roles.iter().collect();
    ordered.sort_by_key(|r| (r.name != login, r.name.clone()));
    if let Some(superuser) = ordered.iter().find(|r| r.superuser) {
        dangerous.push(DangerousPrivilege::new(
            "superuser",
            via(superuser, login),
            Risk::Superuser,
            "bypasses every permission check: runs programs as the database server's OS user \
             (COPY … TO PROGRAM inside DO), reads and writes its files, changes server settings \
             (ALTER SYSTEM, SET on superuser-only parameters), terminates any session",
        ));
        return RolePrivileges {
            role: login.to_owned(),
            dangerous,
        };
    }
    for role in &ordered {
        let found: Option<(Risk, &str)> = match role.name.as_str() {
            "pg_execute_server_program" => Some((
                Risk::ServerPrograms,
                "runs programs on the database server as its OS user (COPY … TO/FROM PROGRAM)",
            )),
            "pg_write_server_files" => Some((
                Risk::ServerFiles,
                "writes files on the database server (COPY … TO '/path')",
            )),
            "pg_read_server_files" => Some((
                Risk::ServerFiles,
                "reads any file the database server can read (COPY … FROM '/path', pg_read_file)",
            )),
            "pg_signal_backend" => Some((
                Risk::OtherSessions,
                "cancels and terminates other sessions (the application's, another migrun's lock holder)",
            )),
            "pg_write_all_data" => Some((
                Risk::WriteAnywhere,
                "writes every table of the database whatever its grants",
            )),
            _ => None,
        };
        if let Some((risk, why)) = found {
            // Membership in a predefined role is reported under its own name.
            dangerous.push(DangerousPrivilege::new(&role.name, None, risk, why));
        }
    }
    for role in &ordered {
        if role.create_role {
            dangerous.push(DangerousPrivilege::new(
                "CREATEROLE",
                via(role, login),
                Risk::Accounts,
                "creates roles and grants membership in non-superuser roles, the predefined \
                 file and program roles included (on a read-write connection)",
            ));
        }
        if role.bypass_rls {
            dangerous.push(DangerousPrivilege::new(
                "BYPASSRLS",
                via(role, login),
                Risk::RowSecurity,
                "reads and writes rows that row-level security policies hide",
            ));
        }
    }
    RolePrivileges {
        role: login.to_owned(),
        dangerous,
    }
}

async fn inspect_mysql(conn: &mut Connection) -> Result<RolePrivileges, DbError> {
    let identity = conn
        .host_query("SELECT CURRENT_USER(), CURRENT_ROLE()", &[])
        .await?;
    let (account, current_role) = match identity.first().map(Vec::as_slice) {
        Some([user, role]) => (
            text(user).ok_or_else(|| unexpected("CURRENT_USER()"))?,
            // MySQL 8 answers `NONE` where MariaDB answers NULL.
            text(role).filter(|r| r != "NONE"),
        ),
        _ => return Err(unexpected("CURRENT_USER()")),
    };
    // CURRENT_USER() is `user@host`; a host never holds `@`, a user name may.
    let (user, host) = account
        .rsplit_once('@')
        .ok_or_else(|| unexpected("CURRENT_USER() without a host"))?;
    let grantee = format!("'{user}'@'{host}'");
    let rows = conn
        .host_query(
            "SELECT PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?",
            &[Value::Text(grantee.clone())],
        )
        .await?;
    if rows.is_empty() {
        // Every account has at least USAGE: no row means we did not find it.
        return Err(unexpected(&format!(
            "information_schema.USER_PRIVILEGES holds no row for {grantee}"
        )));
    }
    let mut granted: Vec<(String, Option<String>)> = Vec::new();
    for row in &rows {
        let [privilege, grantable] = row.as_slice() else {
            return Err(unexpected("USER_PRIVILEGES"));
        };
        let privilege = text(privilege).ok_or_else(|| unexpected("PRIVILEGE_TYPE"))?;
        granted.push((privilege, None));
        if text(grantable).as_deref() == Some("YES") {
            granted.push(("GRANT OPTION".to_owned(), None));
        }
    }
    // Roles the account may activate (directly granted; nested ones come with them).
    let roles = conn
        .host_query(
            "SELECT ROLE_NAME FROM information_schema.APPLICABLE_ROLES WHERE GRANTEE = ?",
            &[Value::Text(account.clone())],
        )
        .await?;
    let roles: Vec<String> = roles
        .iter()
        .filter_map(|r| r.first().and_then(text))
        .collect();
    if !roles.is_empty() {
        let read = read_role_grants(conn, &roles).await;
        let restore = match &current_role {
            Some(role) => format!("SET ROLE {}", Dialect::MySql.quote_identifier(role)?),
            None => "SET ROLE NONE".to_owned(),
        };
        conn.host_simple(&restore).await?;
        for (role, lines) in read? {
            for line in lines {
                if let Some((privileges, grant_option)) = parse_global_grant(&line) {
                    for privilege in privileges {
                        granted.push((privilege, Some(role.clone())));
                    }
                    if grant_option {
                        granted.push(("GRANT OPTION".to_owned(), Some(role.clone())));
                    }
                }
            }
        }
    }
    Ok(classify_mysql(&account, &granted))
}

/// `SHOW GRANTS` with each role active in turn (its nested roles come along).
async fn read_role_grants(
    conn: &mut Connection,
    roles: &[String],
) -> Result<Vec<(String, Vec<String>)>, DbError> {
    let mut out = Vec::new();
    for role in roles {
        conn.host_simple(&format!(
            "SET ROLE {}",
            Dialect::MySql.quote_identifier(role)?
        ))
        .await?;
        let rows = conn.host_text_query("SHOW GRANTS").await?;
        out.push((
            role.clone(),
            rows.iter()
                .filter_map(|r| r.first().and_then(text))
                .collect(),
        ));
    }
    Ok(out)
}

/// The privileges of one `SHOW GRANTS` line that grants on `*.*`
/// (`GRANT SELECT, PROCESS ON *.* TO `r``), and whether it is `WITH GRANT
/// OPTION`; `None` for any other line (a database's grants, a role grant).
pub fn parse_global_grant(line: &str) -> Option<(Vec<String>, bool)> {
    let rest = line.strip_prefix("GRANT ")?;
    let (privileges, after) = rest.split_once(" ON *.* TO ")?;
    let privileges = privileges
        .split(',')
        .map(|p| p.trim().to_ascii_uppercase())
        .filter(|p| !p.is_empty())
        .collect();
    Some((privileges, after.trim_end().ends_with("WITH GRANT OPTION")))
}

/// Global privileges that only read, or do nothing beyond the session: not flagged.
const MYSQL_HARMLESS: &[&str] = &[
    "USAGE",
    "SELECT",
    "SHOW VIEW",
    "SHOW DATABASES",
    "CREATE TEMPORARY TABLES",
    "REFERENCES",
    "BINLOG MONITOR",
    "REPLICATION CLIENT",
    "SLAVE MONITOR",
    "REPLICA MONITOR",
    "REPLICATION SLAVE",
];

/// What MySQL/MariaDB global privileges (`(privilege, via role)`) can do.
/// Deny by default: every privilege on `*.*` but [`MYSQL_HARMLESS`] is
/// flagged; a privilege reached through several roles is reported once.
pub fn classify_mysql(account: &str, granted: &[(String, Option<String>)]) -> RolePrivileges {
    let mut dangerous: Vec<DangerousPrivilege> = Vec::new();
    let mut ordered: Vec<&(String, Option<String>)> = granted.iter().collect();
    // The account's own privileges before its roles'.
    ordered.sort_by_key(|(_, via)| via.is_some());
    for (privilege, via) in ordered {
        let privilege = privilege.trim().to_ascii_uppercase();
        if MYSQL_HARMLESS.contains(&privilege.as_str()) {
            continue;
        }
        let already = |d: &DangerousPrivilege| {
            d.name == privilege
                || (d.risk == Risk::WriteAnywhere
                    && d.name
                        .trim_end_matches(" ON *.*")
                        .split(", ")
                        .any(|n| n == privilege))
        };
        if dangerous.iter().any(already) {
            continue;
        }
        let (name, risk, why): (String, Risk, &str) = match privilege.as_str() {
            "SUPER" => (
                privilege.clone(),
                Risk::ServerSettings,
                "changes server-wide settings (SET GLOBAL: a log file with a chosen name and content, init_connect), kills other sessions, writes while the server is read_only",
            ),
            "FILE" => (
                privilege.clone(),
                Risk::ServerFiles,
                "reads and writes files on the database server (SELECT … INTO OUTFILE/DUMPFILE, LOAD DATA INFILE, LOAD_FILE())",
            ),
            "RELOAD" => (
                privilege.clone(),
                Risk::ServerSettings,
                "flushes logs, caches and privileges server-wide (FLUSH …)",
            ),
            "SHUTDOWN" => (
                privilege.clone(),
                Risk::ServerSettings,
                "shuts the database server down (SHUTDOWN)",
            ),
            "PROCESS" => (
                privilege.clone(),
                Risk::OtherSessions,
                "sees every session's statements, with any secret in them (SHOW PROCESSLIST)",
            ),
            "CONNECTION ADMIN" => (
                privilege.clone(),
                Risk::OtherSessions,
                "kills other sessions and sets connection settings server-wide (init_connect, max_connections)",
            ),
            "READ_ONLY ADMIN" => (
                privilege.clone(),
                Risk::ServerSettings,
                "writes while the server is read_only, and switches read_only",
            ),
            "BINLOG ADMIN"
            | "BINLOG REPLAY"
            | "REPLICATION MASTER ADMIN"
            | "REPLICATION SLAVE ADMIN"
            | "REPLICA ADMIN" => (
                privilege.clone(),
                Risk::ServerSettings,
                "changes the binary log or replication server-wide",
            ),
            "FEDERATED ADMIN" => (
                privilege.clone(),
                Risk::ServerSettings,
                "creates servers for FEDERATED and CONNECT tables: connections to other hosts",
            ),
            "SET USER" => (
                privilege.clone(),
                Risk::Accounts,
                "creates routines and views that run as any other account (DEFINER)",
            ),
            "CREATE USER" => (
                privilege.clone(),
                Risk::Accounts,
                "creates, renames and drops accounts and roles",
            ),
            "GRANT OPTION" => (
                privilege.clone(),
                Risk::Accounts,
                "hands its privileges on to other accounts",
            ),
            _ => (
                format!("{privilege} ON *.*"),
                Risk::WriteAnywhere,
                "a server-wide privilege beyond reading: applies to every database, `mysql` (the accounts) included",
            ),
        };
        // Privileges beyond reading on `*.*` are one entry per role: `INSERT, UPDATE ON *.*`.
        if risk == Risk::WriteAnywhere
            && let Some(group) = dangerous
                .iter_mut()
                .find(|d| d.risk == Risk::WriteAnywhere && d.via == *via)
        {
            group.name = format!("{}, {name}", group.name.trim_end_matches(" ON *.*"));
            continue;
        }
        dangerous.push(DangerousPrivilege::new(name, via.as_deref(), risk, why));
    }
    RolePrivileges {
        role: account.to_owned(),
        dangerous,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Text(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn unexpected(what: &str) -> DbError {
    DbError::new(
        DbErrorKind::Usage,
        format!("cannot read the connection's privileges: unexpected answer from {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> PgRole {
        PgRole {
            name: name.to_owned(),
            superuser: false,
            create_role: false,
            bypass_rls: false,
        }
    }

    #[test]
    fn postgres_superuser_is_reported_alone_even_through_set_role() {
        let own = classify_postgres(
            "postgres",
            &[
                PgRole {
                    superuser: true,
                    ..role("postgres")
                },
                role("pg_read_server_files"),
            ],
        );
        assert_eq!(own.dangerous.len(), 1, "{own:?}");
        assert_eq!(own.dangerous[0].label(), "superuser");
        let through = classify_postgres(
            "app",
            &[
                role("app"),
                PgRole {
                    superuser: true,
                    ..role("admins")
                },
            ],
        );
        assert_eq!(
            through.dangerous[0].label(),
            "superuser (via role `admins`)"
        );
        assert_eq!(through.escaping_read_only().len(), 1);
    }

    #[test]
    fn postgres_file_roles_refuse_read_only_and_others_only_warn() {
        let found = classify_postgres(
            "app",
            &[
                PgRole {
                    create_role: true,
                    bypass_rls: true,
                    ..role("app")
                },
                role("pg_read_server_files"),
                role("pg_write_all_data"),
                role("pg_monitor"),
            ],
        );
        let names: Vec<String> = found.dangerous.iter().map(|d| d.label()).collect();
        assert_eq!(
            names,
            [
                "pg_read_server_files",
                "pg_write_all_data",
                "CREATEROLE",
                "BYPASSRLS"
            ]
        );
        let escaping: Vec<&str> = found
            .escaping_read_only()
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(escaping, ["pg_read_server_files", "pg_write_all_data"]);
        assert!(
            classify_postgres("app", &[role("app")])
                .dangerous
                .is_empty()
        );
    }

    #[test]
    fn show_grants_lines_on_star_star_are_parsed() {
        assert_eq!(
            parse_global_grant("GRANT SELECT, PROCESS ON *.* TO `exp_r`"),
            Some((vec!["SELECT".to_owned(), "PROCESS".to_owned()], false))
        );
        assert_eq!(
            parse_global_grant(
                "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"
            ),
            Some((vec!["ALL PRIVILEGES".to_owned()], true))
        );
        assert_eq!(parse_global_grant("GRANT SELECT ON `app`.* TO `r`"), None);
        assert_eq!(parse_global_grant("GRANT `exp_r2` TO `exp_r`"), None);
    }

    #[test]
    fn mysql_flags_everything_beyond_reading_on_star_star() {
        let granted = |list: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
            list.iter()
                .map(|(p, via)| ((*p).to_owned(), via.map(str::to_owned)))
                .collect()
        };
        let reader = classify_mysql(
            "r@%",
            &granted(&[("USAGE", None), ("SELECT", None), ("SHOW VIEW", None)]),
        );
        assert!(reader.dangerous.is_empty(), "{reader:?}");
        let found = classify_mysql(
            "u@%",
            &granted(&[
                ("USAGE", None),
                ("PROCESS", Some("ops")),
                ("FILE", Some("ops")),
                ("INSERT", None),
                ("FILE", None),
                ("SOME FUTURE ADMIN", None),
                ("GRANT OPTION", None),
            ]),
        );
        let names: Vec<String> = found.dangerous.iter().map(|d| d.label()).collect();
        assert_eq!(
            names,
            [
                "INSERT, SOME FUTURE ADMIN ON *.*",
                "FILE",
                "GRANT OPTION",
                "PROCESS (via role `ops`)"
            ]
        );
        let escaping: Vec<String> = found
            .escaping_read_only()
            .iter()
            .map(|d| d.label())
            .collect();
        assert_eq!(
            escaping,
            [
                "INSERT, SOME FUTURE ADMIN ON *.*",
                "FILE",
                "PROCESS (via role `ops`)"
            ]
        );
    }
}
