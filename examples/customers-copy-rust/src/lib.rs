//! Copies `customers` from a PostgreSQL `source` (read-only) into a SQLite `target`:
//! emails trimmed and lower-cased, country names mapped to ISO 3166 codes (an unknown
//! country is logged by key and left NULL), and a count check in `verify`. `TableCopy`
//! does the paging: one keyset query, one bulk insert and one checkpoint per batch, so
//! an interrupted copy resumes after the last key it committed.

use migrun_sdk::{
    Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Steps, TableCopy, Unit, check,
    info, params, warn,
};

/// Country names (lower case) and the codes themselves → ISO 3166-1 alpha-2.
#[rustfmt::skip]
const COUNTRIES: &[(&str, &str)] = &[
    ("united states", "US"), ("usa", "US"), ("canada", "CA"), ("mexico", "MX"),
    ("brazil", "BR"), ("united kingdom", "GB"), ("uk", "GB"), ("ireland", "IE"),
    ("france", "FR"), ("germany", "DE"), ("deutschland", "DE"), ("spain", "ES"),
    ("italy", "IT"), ("netherlands", "NL"), ("sweden", "SE"), ("japan", "JP"),
    ("india", "IN"), ("australia", "AU"),
];

fn iso_code(country: &str) -> Option<&'static str> {
    let country = country.trim().to_lowercase();
    COUNTRIES
        .iter()
        .find(|(name, code)| *name == country || code.eq_ignore_ascii_case(&country))
        .map(|(_, code)| *code)
}

struct CustomersCopy {
    batch_size: u32,
    fail_after: u64,
}

impl Plugin for CustomersCopy {
    fn describe() -> PluginInfo {
        PluginInfo::new("customers-copy", env!("CARGO_PKG_VERSION"))
            .description("copies customers: emails lower-cased, countries as ISO codes")
            .connection(Need::read_only("source", "PostgreSQL, holds customers"))
            .connection(Need::read_write("target", "SQLite, receives them").writes(["customers"]))
            .config_key(ConfigKey::new("batch_size", "rows per batch").default("1000"))
            .config_key(ConfigKey::new("fail_after_batches", "fail after n batches").default("0"))
    }

    fn configure(config: &Config) -> Result<Self> {
        Ok(CustomersCopy {
            batch_size: config.positive("batch_size")?,
            fail_after: config.parse("fail_after_batches")?,
        })
    }

    fn steps() -> Steps<Self> {
        Steps::new()
            .step(Unit::new("create-table", "the table"), Self::create)
            .step(Unit::new("copy", "copies customers by id"), Self::copy)
    }

    fn verify(&mut self) -> Result<()> {
        let count = "SELECT COUNT(*) FROM customers";
        let source: i64 = Connection::open("source")?.query_scalar(count, params![])?;
        let target: i64 = Connection::open("target")?.query_scalar(count, params![])?;
        let detail = format!("source: {source}, target: {target}");
        check("every customer was copied", source == target, &detail);
        Ok(())
    }
}

impl CustomersCopy {
    fn create(&mut self) -> Result<()> {
        let sql = "CREATE TABLE IF NOT EXISTS customers (id BIGINT PRIMARY KEY, \
                   name TEXT NOT NULL, email TEXT, country_code CHAR(2))";
        Connection::open("target")?.execute(sql, params![])?;
        Ok(())
    }

    fn copy(&mut self) -> Result<()> {
        let (source, target) = (Connection::open("source")?, Connection::open("target")?);
        let report = TableCopy::new(&source, &target, "customers")
            .select("SELECT id, name, email, country AS country_code FROM customers")
            .key(["id"])
            .batch_size(self.batch_size)
            .fail_after(self.fail_after)
            .run(|mut row| {
                let email: Option<String> = row.get("email")?;
                let country: Option<String> = row.get("country_code")?;
                let code = country.as_deref().and_then(iso_code);
                if let (Some(country), None) = (&country, code) {
                    warn!(id = row.get::<i64>("id")?, country = country; "unknown country; country_code stays NULL");
                }
                row.set("email", email.map(|e| e.trim().to_lowercase()));
                row.set("country_code", code);
                Ok(Some(row))
            })?;
        info!(read = report.read, written = report.written, copied = report.copied; "copied customers");
        Ok(())
    }
}

migrun_sdk::export_plugin!(CustomersCopy);
