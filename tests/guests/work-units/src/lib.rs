//! A plugin of many small units, like seed 001's one unit per engine: the
//! ledger, crash-resume and `--shard` tests run it to prove that every unit
//! runs exactly once.
//!
//! Each unit `unit-NN` inserts its name into `work_log(unit PRIMARY KEY)` on
//! `target` (the table is created by the test), so a unit that ran twice
//! would fail on the key, and the table lists exactly the units that ran.
//! Config `units` sets how many there are (default 24); `spin` makes each
//! unit compute for a while first, so that parallel workers overlap.
//! `fail` and `panic` (comma-separated unit names) make those units fail —
//! returning an error, or trapping — *after* they inserted their row, so a
//! test sees that the host rolled the row back (`--keep-going` tests).

use std::hint::black_box;

use migrun_sdk::{Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Unit, params};

struct WorkUnits {
    units: u32,
    spin: u64,
    fail: Vec<String>,
    panic: Vec<String>,
}

/// A comma-separated list of unit names (empty: none).
fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Plugin for WorkUnits {
    fn describe() -> PluginInfo {
        PluginInfo::new("work-units", env!("CARGO_PKG_VERSION"))
            .description("one row per unit into work_log, for ledger and sharding tests")
            .connection(Need::read_write("target", "holds work_log").writes(["work_log"]))
            .config_key(ConfigKey::new("units", "how many units").default("24"))
            .config_key(ConfigKey::new("spin", "iterations of busy work per unit").default("0"))
            .config_key(
                ConfigKey::new("fail", "units that return an error after their insert").default(""),
            )
            .config_key(ConfigKey::new("panic", "units that trap after their insert").default(""))
    }

    fn configure(config: &Config) -> Result<Self> {
        Ok(WorkUnits {
            units: config.parse("units")?,
            spin: config.parse("spin")?,
            fail: names(config.get_or("fail", "")),
            panic: names(config.get_or("panic", "")),
        })
    }

    fn units(&self) -> Result<Vec<Unit>> {
        Ok((0..self.units)
            .map(|i| Unit::new(format!("unit-{i:02}"), "records itself in work_log"))
            .collect())
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        let mut acc = 0u64;
        for i in 0..self.spin {
            acc = black_box(acc.wrapping_add(i));
        }
        black_box(acc);
        let target = Connection::open("target")?;
        let sql = format!(
            "INSERT INTO work_log (unit) VALUES ({})",
            target.placeholder(1)
        );
        target.execute(&sql, params![unit])?;
        if self.fail.iter().any(|f| f == unit) {
            return Err(migrun_sdk::Error::failed(format!(
                "{unit} is configured to fail (config `fail`)"
            )));
        }
        if self.panic.iter().any(|p| p == unit) {
            panic!("{unit} is configured to trap (config `panic`)");
        }
        Ok(())
    }
}

migrun_sdk::export_plugin!(WorkUnits);
