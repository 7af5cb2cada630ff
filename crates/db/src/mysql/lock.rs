//! MySQL/MariaDB run lock: `GET_LOCK(name, 0)`, tied to the host-only session
//! holding it. `GET_LOCK` names are global to the server, not to a database,
//! so the name is scoped by the current database (`<database>:<name>`), hashed
//! when that exceeds MySQL's 64 characters. MariaDB has no shared locks. The
//! holder is the `PROCESSLIST` entry of `IS_USED_LOCK`.

use sha2::Digest;

use super::MySqlDriver;
use crate::driver::{HostStatement, LockSql, text_of};
use migrun_types::value::Value;

/// The lock name scoped by the current database, from three copies of the name.
const SCOPED_NAME: &str = "IF(CHAR_LENGTH(CONCAT(DATABASE(), ':', ?)) <= 64, \
     CONCAT(DATABASE(), ':', ?), CONCAT('migrun:', LEFT(SHA2(CONCAT(DATABASE(), ':', ?), 256), 40)))";

/// MySQL lock names are limited to 64 characters.
fn bounded_name(name: &str) -> String {
    if name.len() <= 64 {
        name.to_owned()
    } else {
        format!(
            "migrun:{}",
            &hex::encode(sha2::Sha256::digest(name.as_bytes()))[..40]
        )
    }
}

fn scoped_params(name: &str) -> Vec<Value> {
    vec![Value::Text(bounded_name(name)); 3]
}

impl LockSql for MySqlDriver {
    fn try_lock(&self, name: &str) -> Option<HostStatement> {
        Some(HostStatement::new(
            format!("SELECT GET_LOCK({SCOPED_NAME}, 0)"),
            scoped_params(name),
        ))
    }

    fn lock_holder(&self, name: &str) -> Option<HostStatement> {
        Some(HostStatement::new(
            format!(
                "SELECT p.ID, p.USER, p.HOST FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK({SCOPED_NAME})"
            ),
            scoped_params(name),
        ))
    }

    fn describe_lock_holder(&self, r: &[Value]) -> String {
        format!(
            "held by MariaDB connection {} ({}@{})",
            r[0],
            text_of(&r[1]),
            text_of(&r[2])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_scoped_and_bounded() {
        let d = MySqlDriver;
        let take = d.try_lock("migrun:migrun_ledger").unwrap();
        assert!(
            take.sql
                .starts_with("SELECT GET_LOCK(IF(CHAR_LENGTH(CONCAT(DATABASE()")
        );
        assert!(take.sql.ends_with(", 0)"));
        assert_eq!(take.sql.matches('?').count(), take.params.len());
        assert_eq!(take.params, scoped_params("migrun:migrun_ledger"));
        let holder = d.lock_holder("migrun:migrun_ledger").unwrap();
        assert!(holder.sql.contains("IS_USED_LOCK("));
        assert_eq!(holder.params, take.params);
        assert!(d.try_lock_shared("x").is_none());
        let long = "x".repeat(100);
        let bounded = bounded_name(&long);
        assert!(bounded.starts_with("migrun:") && bounded.len() == 47);
        assert_eq!(
            d.describe_lock_holder(&[
                Value::Int(9),
                Value::Bytes(b"app".to_vec()),
                Value::Text("localhost".into())
            ]),
            "held by MariaDB connection 9 (app@localhost)"
        );
    }
}
