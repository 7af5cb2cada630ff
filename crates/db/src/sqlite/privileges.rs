//! SQLite has no roles: a file grants nothing beyond its tables.

use futures::future::BoxFuture;

use super::SqliteDriver;
use crate::driver::PrivilegeCatalog;
use crate::privileges::RolePrivileges;
use crate::{Connection, DbError};

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
