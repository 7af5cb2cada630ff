//! SQLite has no roles: a file grants nothing beyond its tables.

use futures::future::BoxFuture;

use super::SqliteDriver;
use crate::db::driver::PrivilegeCatalog;
use crate::db::privileges::RolePrivileges;
use crate::db::{Connection, DbError};

impl PrivilegeCatalog for SqliteDriver {
    fn role_privileges<'a>(
        &'a self,
        _conn: &'a mut Connection,
    ) -> BoxFuture<'a, Result<RolePrivileges, DbError>> {
        Box::pin(async {
            Ok(RolePrivileges {
                role: String::new(),
                dangerous: Vec::new(),
            })
        })
    }
}
