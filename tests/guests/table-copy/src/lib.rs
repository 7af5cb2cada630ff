//! Copies `select` on the read-only `source` into `into` on the read-write `target` with
//! [`TableCopy`], keyed by `key` (comma-separated: a composite key), `batch_size` rows per
//! batch, `fail_after_batches` to rehearse an interruption and `pause_ms` between batches
//! (so a test can kill the run mid-copy). `upsert = true` writes with bulk upserts.
//!
//! The mapping proves it ran: `name` is upper-cased, and a row whose `name` starts with
//! `skip` is skipped. The unit logs the copy's report as one `copied` message with the
//! fields `read`, `written`, `skipped`, `batches`, `copied` and `resumed_after`.

use migrun_sdk::{
    Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Steps, TableCopy, Unit, info,
};

struct TableCopyGuest {
    select: String,
    key: Vec<String>,
    into: String,
    batch_size: u32,
    fail_after: u64,
    upsert: bool,
    pause: std::time::Duration,
}

impl Plugin for TableCopyGuest {
    fn describe() -> PluginInfo {
        PluginInfo::new("table-copy", env!("CARGO_PKG_VERSION"))
            .description("copies a query into a table in keyset batches, a checkpoint per batch")
            .connection(Need::read_only("source", "where the rows come from"))
            .connection(Need::read_write("target", "where they go").writes(["${into}"]))
            .config_key(ConfigKey::new("select", "the rows to copy").default("SELECT * FROM items"))
            .config_key(ConfigKey::new("key", "the key columns, comma-separated").default("id"))
            .config_key(ConfigKey::new("into", "the target table").default("copied"))
            .config_key(ConfigKey::new("batch_size", "rows per batch").default("3"))
            .config_key(ConfigKey::new("fail_after_batches", "fail after n batches").default("0"))
            .config_key(ConfigKey::new("upsert", "write with bulk upserts").default("false"))
            .config_key(ConfigKey::new("pause_ms", "pause between batches").default("0"))
    }

    fn configure(config: &Config) -> Result<Self> {
        Ok(TableCopyGuest {
            select: config.require("select")?.to_owned(),
            key: config
                .require("key")?
                .split(',')
                .map(|k| k.trim().to_owned())
                .collect(),
            into: config.require("into")?.to_owned(),
            batch_size: config.parse("batch_size")?,
            fail_after: config.parse("fail_after_batches")?,
            upsert: config.flag("upsert", false)?,
            pause: std::time::Duration::from_millis(config.parse("pause_ms")?),
        })
    }

    fn steps() -> Steps<Self> {
        Steps::new().step(
            Unit::new("copy", "copies the rows, a checkpoint per batch"),
            Self::copy,
        )
    }
}

impl TableCopyGuest {
    fn copy(&mut self) -> Result<()> {
        let source = Connection::open("source")?;
        let target = Connection::open("target")?;
        let mut copy = TableCopy::new(&source, &target, &self.into)
            .select(&self.select)
            .key(self.key.clone())
            .batch_size(self.batch_size)
            .fail_after(self.fail_after)
            .pause(self.pause);
        if self.upsert {
            copy = copy.upsert();
        }
        let report = copy.run(|mut row| {
            let name: Option<String> = row.get("name")?;
            if name.as_deref().is_some_and(|n| n.starts_with("skip")) {
                return Ok(None);
            }
            row.set("name", name.map(|n| n.to_uppercase()));
            Ok(Some(row))
        })?;
        let resumed_after = report
            .resumed_after
            .map(|key| {
                key.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        info!(
            read = report.read,
            written = report.written,
            skipped = report.skipped,
            batches = report.batches,
            copied = report.copied,
            resumed_after = resumed_after;
            "copied"
        );
        Ok(())
    }
}

migrun_sdk::export_plugin!(TableCopyGuest);
