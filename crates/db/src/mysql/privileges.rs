//! What a MySQL/MariaDB account can do beyond its tables: its global
//! privileges and those of every role it may `SET ROLE` to, each activated in
//! turn and read with `SHOW GRANTS`, classified by [`classify_mysql`] (see
//! `db::privileges`).

use futures::future::BoxFuture;

use super::MySqlDriver;
use crate::driver::PrivilegeCatalog;
use crate::privileges::{DangerousPrivilege, Risk, RolePrivileges, text, unexpected};
use crate::{Connection, DbError, Dialect};
use migrun_types::value::Value;

impl PrivilegeCatalog for MySqlDriver {
    fn role_privileges<'a>(
        &'a self,
        conn: &'a mut Connection,
    ) -> BoxFuture<'a, Result<RolePrivileges, DbError>> {
        Box::pin(role_privileges(conn))
    }
}

async fn role_privileges(conn: &mut Connection) -> Result<RolePrivileges, DbError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
