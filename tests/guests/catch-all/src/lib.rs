//! A plugin that declares a catch-all write pattern, `<table>`: every table of
//! the connection's default schema. A restore of its backup would drop every
//! table created since and overwrite every table that existed, whoever owns
//! them, so the host must refuse it when it reads `describe`. Its unit would
//! write `victim` if it ever ran.

use migrun_sdk::{Connection, Need, Plugin, PluginInfo, Result, Unit, params};

struct CatchAll;

impl Plugin for CatchAll {
    fn describe() -> PluginInfo {
        PluginInfo::new("catch-all", env!("CARGO_PKG_VERSION"))
            .description("Declares that it writes every table, for migrun's restore tests")
            .connection(Need::read_write("target", "any table at all").writes(["<table>"]))
    }

    fn configure(_config: &migrun_sdk::Config) -> Result<Self> {
        Ok(CatchAll)
    }

    fn units(&self) -> Result<Vec<Unit>> {
        Ok(vec![Unit::new("write", "deletes victim's rows")])
    }

    fn run_unit(&mut self, _unit: &str) -> Result<()> {
        let target = Connection::open("target")?;
        target.execute("DELETE FROM victim", params![])?;
        Ok(())
    }
}

migrun_sdk::export_plugin!(CatchAll);
