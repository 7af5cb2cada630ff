//! Where the two sources live: seed 001's survey confirmed that `DB_ACCOUNTS` and
//! `DB_SHARD` are "two distinct physical clusters" before the cross-database ETL was
//! chosen. This module asks each source which cluster it is — PostgreSQL's
//! `system_identifier` (`pg_control_system()`, the same on a primary and its
//! replicas, different for every `initdb`), with the server's address, port and
//! database — and compares the two.
//!
//! Rehearsals (and this crate's tests) often put both sources on one server, so
//! "same cluster" is a warning by default; config key `require_distinct_clusters =
//! true` makes it a failed survey check and a refused migration.

use migrun_sdk::{Connection, Result, params};
use serde::Deserialize;

/// Which server and database a connection reached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Server {
    /// `pg_control_system().system_identifier`, when the role may call it.
    pub system_identifier: Option<String>,
    /// `inet_server_addr()`; `None` over a Unix socket.
    pub host: Option<String>,
    /// `inet_server_port()`; `None` over a Unix socket.
    pub port: Option<i64>,
    /// `current_database()`.
    pub database: String,
}

impl Server {
    /// The server behind `conn`. `pg_control_system()` is asked only when the role may
    /// execute it (a failed statement would end the read-only transaction).
    pub fn of(conn: &Connection) -> Result<Server> {
        let allowed: bool = conn.query_scalar(
            "SELECT has_function_privilege('pg_control_system()', 'EXECUTE')",
            params![],
        )?;
        let identifier = if allowed {
            "(SELECT system_identifier::text FROM pg_control_system())"
        } else {
            "NULL::text"
        };
        conn.query_one_as(
            &format!(
                "SELECT {identifier} AS system_identifier, host(inet_server_addr()) AS host, \
                 inet_server_port()::bigint AS port, current_database()::text AS database"
            ),
            params![],
        )
    }

    fn address(&self) -> String {
        match (&self.host, self.port) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => "a local socket".to_owned(),
        }
    }
}

/// What the two sources' servers say about each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// Different system identifiers: two clusters, as in production.
    Distinct(String),
    /// One system identifier (or, without one, one address): a single cluster.
    Same(String),
    /// Neither says: a role without `pg_control_system()` on different addresses.
    Unconfirmed(String),
}

impl Topology {
    /// Compares the servers of `accounts` and `shard`.
    pub fn of(accounts: &Server, shard: &Server) -> Topology {
        let both = format!(
            "accounts: database {} at {}; shard: database {} at {}",
            accounts.database,
            accounts.address(),
            shard.database,
            shard.address()
        );
        match (&accounts.system_identifier, &shard.system_identifier) {
            (Some(a), Some(s)) if a == s => Topology::Same(format!(
                "accounts and shard are on the same PostgreSQL cluster (system identifier {a}; {both})"
            )),
            (Some(a), Some(s)) => Topology::Distinct(format!(
                "two distinct PostgreSQL clusters (system identifiers {a} and {s}; {both})"
            )),
            _ if accounts.host.is_some()
                && accounts.host == shard.host
                && accounts.port == shard.port =>
            {
                Topology::Same(format!(
                    "accounts and shard are on the same PostgreSQL server ({both}; a role may not \
                     read pg_control_system())"
                ))
            }
            _ => Topology::Unconfirmed(format!(
                "the clusters could not be compared: a role may not execute pg_control_system() \
                 ({both}); grant it to confirm two distinct clusters"
            )),
        }
    }

    /// Reads and compares both sources.
    pub fn read(accounts: &Connection, shard: &Connection) -> Result<Topology> {
        Ok(Topology::of(&Server::of(accounts)?, &Server::of(shard)?))
    }

    /// Whether the sources are known to be two clusters.
    pub fn is_distinct(&self) -> bool {
        matches!(self, Topology::Distinct(_))
    }

    /// What was found, in words.
    pub fn detail(&self) -> &str {
        match self {
            Topology::Distinct(d) | Topology::Same(d) | Topology::Unconfirmed(d) => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: Option<&str>, host: &str, port: i64, db: &str) -> Server {
        Server {
            system_identifier: id.map(str::to_owned),
            host: Some(host.to_owned()),
            port: Some(port),
            database: db.to_owned(),
        }
    }

    #[test]
    fn system_identifiers_decide() {
        let a = server(Some("7301"), "10.0.0.1", 5432, "accounts");
        let same = server(Some("7301"), "10.0.0.2", 5432, "shard");
        let other = server(Some("7302"), "10.0.0.1", 5432, "shard");
        assert!(matches!(Topology::of(&a, &same), Topology::Same(_)));
        assert!(Topology::of(&a, &other).is_distinct());
        assert!(
            Topology::of(&a, &same)
                .detail()
                .contains("same PostgreSQL cluster (system identifier 7301")
        );
    }

    #[test]
    fn without_identifiers_only_one_address_is_conclusive() {
        let a = server(None, "10.0.0.1", 5432, "accounts");
        assert!(matches!(
            Topology::of(&a, &server(None, "10.0.0.1", 5432, "shard")),
            Topology::Same(_)
        ));
        assert!(matches!(
            Topology::of(&a, &server(None, "10.0.0.2", 5432, "shard")),
            Topology::Unconfirmed(_)
        ));
    }
}
