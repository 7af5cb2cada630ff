//! What a PostgreSQL login role can do beyond its tables: every role it can
//! `SET ROLE` to (itself included) read from `pg_roles`, classified by
//! [`classify_postgres`] (see `db::privileges`).

use futures::future::BoxFuture;

use super::PgDriver;
use crate::driver::PrivilegeCatalog;
use crate::privileges::{DangerousPrivilege, Risk, RolePrivileges, text, unexpected};
use crate::{Connection, DbError};
use migrun_types::value::Value;

impl PrivilegeCatalog for PgDriver {
    fn role_privileges<'a>(
        &'a self,
        conn: &'a mut Connection,
    ) -> BoxFuture<'a, Result<RolePrivileges, DbError>> {
        Box::pin(role_privileges(conn))
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

async fn role_privileges(conn: &mut Connection) -> Result<RolePrivileges, DbError> {
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
}
