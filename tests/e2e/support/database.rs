//! A database of its own per test, on each dialect.
//!
//! [`TestDatabase::create`] makes a uniquely named database on the PostgreSQL
//! or MariaDB server (a SQLite file in a fresh temporary directory) and drops
//! it again when the value is dropped. An unreachable server makes the test
//! skip its dialect, unless `MIGRUN_REQUIRE_DBS=1` (CI), where it fails loudly.
//!
//! Server base URLs (no database path): `MIGRUN_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432`) and `MIGRUN_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`).
//!
//! Each server database comes with a least-privilege reader ([`TestDatabase::ro_url`]):
//! migrun refuses a read-only connection whose role is a superuser or holds
//! server-wide privileges (docs/SECURITY.md, "Privileges checked at start"),
//! so tests configure read-only connections through it, as operators should.

#![allow(
    dead_code,
    reason = "each test topic uses a different part of the fixture"
)]

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use migrun::db::{Access, Connection, Dialect};
use migrun::value::Value;

/// Every dialect, in the order tests run them.
pub const DIALECTS: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database that exists for one test.
pub struct TestDatabase {
    /// Its dialect.
    pub dialect: Dialect,
    /// The URL that reaches it (for configuration files and [`Connection::connect`]).
    pub url: String,
    /// The database's name on the server (the file name on SQLite).
    pub name: String,
    /// A URL for read-only connections, as a role that may only read this database:
    /// PostgreSQL `<name>_ro` (LOGIN; CONNECT, USAGE and SELECT on what exists and, by
    /// default privileges, on tables, sequences and schemas created later by the admin
    /// role), MariaDB `'<name>_ro'@'%'` (SELECT and SHOW VIEW on this database only).
    /// Dropped with the database. The same file as `url` on SQLite.
    pub ro_url: String,
    /// The URL of an ordinary writer of this database, with no server-wide privilege:
    /// PostgreSQL `<name>_rw` (LOGIN; all privileges on the database, its `public`
    /// schema and what the test creates there), MariaDB `'<name>_rw'@'%'` (all
    /// privileges on this database, and on the dry-run scratch databases). What the
    /// hostile-plugin tests give a plugin: "ordinary write grants". SQLite: `url`.
    pub rw_url: String,
    /// The server URL used to create and drop it (None on SQLite).
    admin_url: Option<String>,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
}

/// The server base URL for `dialect`, from the environment or the default.
pub fn server_url(dialect: Dialect) -> Option<String> {
    let (var, default) = match dialect {
        Dialect::Postgres => ("MIGRUN_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432"),
        Dialect::MySql => ("MIGRUN_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
        Dialect::Sqlite => return None,
    };
    let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    Some(url.trim_end_matches('/').to_owned())
}

/// Whether a missing server or toolchain fails the test instead of skipping it (CI).
pub fn require_dbs() -> bool {
    std::env::var("MIGRUN_REQUIRE_DBS").is_ok_and(|v| v == "1")
}

/// The password of every test database's reader (trust auth ignores it; other setups need it).
const READER_PASSWORD: &str = "migrun-reader";

/// `url` with its user (and password) replaced: `postgres://a@h:1/db` → `postgres://u:p@h:1/db`.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "migrun_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

impl TestDatabase {
    /// Creates a fresh database; `None` when the server cannot be reached
    /// (a panic instead when `MIGRUN_REQUIRE_DBS=1`).
    pub async fn create(dialect: Dialect) -> Option<TestDatabase> {
        let server = server_url(dialect);
        Self::create_on(dialect, server).await
    }

    /// A fresh database on the shared pgvector server (PostgreSQL 18 with
    /// pgvector, [`super::pg_server::pgvector`]), with the `vector` extension
    /// created; `None` when that server is unavailable (a panic instead when
    /// `MIGRUN_REQUIRE_DBS=1`).
    pub async fn pgvector() -> Option<TestDatabase> {
        let db = Self::on_pgvector_server().await?;
        db.exec("CREATE EXTENSION IF NOT EXISTS vector").await;
        Some(db)
    }

    /// A fresh database on the shared pgvector server, without any extension.
    pub async fn on_pgvector_server() -> Option<TestDatabase> {
        let server = tokio::task::spawn_blocking(super::pg_server::pgvector)
            .await
            .expect("start the pgvector server")?;
        Self::create_on(Dialect::Postgres, Some(server.base_url())).await
    }

    async fn create_on(dialect: Dialect, server: Option<String>) -> Option<TestDatabase> {
        let name = unique_name();
        if dialect == Dialect::Sqlite {
            let dir = tempfile::tempdir().expect("create a temporary directory");
            let path = dir.path().join(format!("{name}.sqlite"));
            let url = format!("sqlite://{}", path.display());
            // Create the file, so that read-only connections can open it at once.
            Connection::connect("test-admin", &url, Access::ReadWrite)
                .await
                .expect("create SQLite file")
                .close()
                .await;
            return Some(TestDatabase {
                dialect,
                ro_url: url.clone(),
                rw_url: url.clone(),
                url,
                name,
                admin_url: None,
                _dir: Some(dir),
            });
        }
        let server = server.expect("server dialect");
        let admin_url = match dialect {
            Dialect::Postgres => format!("{server}/postgres"),
            _ => server.clone(),
        };
        let mut admin = match Connection::connect("test-admin", &admin_url, Access::ReadWrite).await
        {
            Ok(admin) => admin,
            Err(e) if require_dbs() => {
                panic!("MIGRUN_REQUIRE_DBS=1 but the {dialect} test server is unreachable: {e}")
            }
            Err(e) => {
                super::skips::skipped(&format!("{dialect} test server unreachable ({e})"));
                return None;
            }
        };
        let create = match dialect {
            Dialect::MySql => {
                format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            }
            _ => format!("CREATE DATABASE \"{name}\""),
        };
        admin
            .execute(&create, &[])
            .await
            .unwrap_or_else(|e| panic!("{create}: {e}"));
        let reader = format!("{name}_ro");
        let writer = format!("{name}_rw");
        let url = format!("{server}/{name}");
        let mut grants = match dialect {
            Dialect::MySql => vec![
                format!("CREATE USER '{reader}'@'%' IDENTIFIED BY '{READER_PASSWORD}'"),
                format!("GRANT SELECT, SHOW VIEW ON `{name}`.* TO '{reader}'@'%'"),
                format!("CREATE USER '{writer}'@'%' IDENTIFIED BY '{READER_PASSWORD}'"),
                format!("GRANT ALL PRIVILEGES ON `{name}`.* TO '{writer}'@'%'"),
                format!("GRANT ALL PRIVILEGES ON `migrun\\_dryrun\\_%`.* TO '{writer}'@'%'"),
            ],
            _ => vec![
                format!("CREATE ROLE \"{reader}\" LOGIN PASSWORD '{READER_PASSWORD}'"),
                format!("GRANT CONNECT ON DATABASE \"{name}\" TO \"{reader}\""),
                format!("CREATE ROLE \"{writer}\" LOGIN PASSWORD '{READER_PASSWORD}'"),
                format!("GRANT ALL ON DATABASE \"{name}\" TO \"{writer}\""),
            ],
        };
        for sql in grants.drain(..) {
            admin
                .execute(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        admin.close().await;
        if dialect == Dialect::Postgres {
            // Schema-level grants are made inside the database; default privileges
            // cover what the test (as the admin role) creates later.
            let mut inside = Connection::connect("test-admin", &url, Access::ReadWrite)
                .await
                .unwrap_or_else(|e| panic!("connect to {name}: {e}"));
            for sql in [
                format!("GRANT USAGE ON SCHEMA public TO \"{reader}\""),
                format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{reader}\""),
                format!("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO \"{reader}\""),
                format!("ALTER DEFAULT PRIVILEGES GRANT SELECT ON SEQUENCES TO \"{reader}\""),
                format!("ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO \"{reader}\""),
                format!("GRANT ALL ON SCHEMA public TO \"{writer}\""),
                format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO \"{writer}\""),
                format!("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO \"{writer}\""),
                format!("ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO \"{writer}\""),
            ] {
                inside
                    .execute(&sql, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            inside.close().await;
        }
        Some(TestDatabase {
            dialect,
            ro_url: with_user(&url, &reader, READER_PASSWORD),
            rw_url: with_user(&url, &writer, READER_PASSWORD),
            url,
            name,
            admin_url: Some(admin_url),
            _dir: None,
        })
    }

    /// The URL that reaches this database.
    pub fn url_for(&self) -> &str {
        &self.url
    }

    /// A connection to this database named `test` with `access`.
    pub async fn connect(&self, access: Access) -> Connection {
        Connection::connect("test", &self.url, access)
            .await
            .unwrap_or_else(|e| panic!("connect to the {} test database: {e}", self.dialect))
    }

    /// Runs one seeding statement through a fresh read-write connection; panics on failure.
    pub async fn exec(&self, sql: &str) {
        self.exec_with(sql, &[]).await;
    }

    /// Runs one administrative statement as the server's administrator, straight through
    /// sqlx: for what migrun's plugin-facing API refuses on purpose (`SET DEFAULT ROLE`,
    /// say), which a test's setup may need. Panics on failure.
    pub async fn admin_exec(&self, sql: &str) {
        use sqlx::{Connection as _, Executor as _};
        let result = match self.dialect {
            Dialect::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                let r = conn.execute(sqlx::raw_sql(sql)).await.map(|_| ());
                let _ = conn.close().await;
                r
            }
            Dialect::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let r = conn.execute(sqlx::raw_sql(sql)).await.map(|_| ());
                let _ = conn.close().await;
                r
            }
            Dialect::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                let r = conn.execute(sqlx::raw_sql(sql)).await.map(|_| ());
                let _ = conn.close().await;
                r
            }
        };
        result.unwrap_or_else(|e| panic!("{} admin statement failed: {sql}: {e}", self.dialect));
    }

    /// Runs one seeding statement with parameters; panics on failure.
    pub async fn exec_with(&self, sql: &str, params: &[Value]) -> u64 {
        let mut conn = self.connect(Access::ReadWrite).await;
        let n = conn
            .execute(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{} seeding failed: {sql}: {e}", self.dialect));
        conn.close().await;
        n
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.take() else {
            return; // SQLite: the temporary directory goes with `_dir`.
        };
        let (dialect, name) = (self.dialect, self.name.clone());
        // Drop cannot be async and may run inside the test's runtime: use a
        // thread with a runtime of its own, and wait for it so the database is
        // gone before the test process exits.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let statements = match dialect {
                    Dialect::MySql => [
                        format!("DROP DATABASE IF EXISTS `{name}`"),
                        format!("DROP USER IF EXISTS '{name}_ro'@'%'"),
                        format!("DROP USER IF EXISTS '{name}_rw'@'%'"),
                    ],
                    _ => [
                        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                        format!("DROP ROLE IF EXISTS \"{name}_ro\""),
                        format!("DROP ROLE IF EXISTS \"{name}_rw\""),
                    ],
                };
                match Connection::connect("test-admin", &admin_url, Access::ReadWrite).await {
                    Ok(mut admin) => {
                        for sql in &statements {
                            if let Err(e) = admin.execute(sql, &[]).await {
                                eprintln!("warning: {sql}: {e}");
                            }
                        }
                        admin.close().await;
                    }
                    Err(e) => eprintln!("warning: cannot drop test database {name}: {e}"),
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Runs `test` once per dialect, each time on a fresh database; prints which
/// dialects were skipped because their server is unreachable.
pub async fn for_each_dialect<F, Fut>(test: F)
where
    F: Fn(TestDatabase) -> Fut,
    Fut: Future<Output = ()>,
{
    for dialect in DIALECTS {
        match TestDatabase::create(dialect).await {
            Some(db) => {
                eprintln!("--- on {dialect}");
                test(db).await;
            }
            None => eprintln!("--- skipped {dialect}: server unreachable (recorded above)"),
        }
    }
}
