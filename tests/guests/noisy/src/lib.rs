//! A plugin that attacks the operator instead of the database: it floods the
//! log, the checks and the progress bars, and hides terminal control sequences
//! in everything it names. The output-bound tests run it; nothing here is a
//! pattern to copy.
//!
//! `target` (read-write) declares `noisy_log(unit text)`, created by the test;
//! each unit records its name there, so a committed unit is visible.
//!
//! | `behaviour` | what it does |
//! |---|---|
//! | `flood` | unit `flood` writes `megabytes` MB of warnings (64 KiB each, with a field), then 20,000 passing checks with 1 KiB details (the last one failing when `last_check_fails`) and progress for 10,000 distinct tasks with long names, then commits its row |
//! | `repeats` | unit `repeats` warns 400 times `cannot parse amount; amount_cents stays NULL` with the row's fields (`id`, `amount_text`), as a plugin skipping bad rows does, reports one failing check, then commits its row |
//! | `escapes` | one unit whose name holds [`TRAPS`]; it logs at every level, reports a passing check and progress, all with [`TRAPS`] in the text, names and fields, then commits its row |

use migrun_sdk::log::{Level, write};
use migrun_sdk::{
    Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Unit, bail, check, params,
    progress,
};

/// Sequences that act on a terminal: clear screen (CSI), OSC 52 clipboard write ended by
/// BEL, a one-byte C1 CSI (U+009B), a carriage return, DEL, and a right-to-left override.
const TRAPS: &str = "\u{1b}[2J\u{1b}]52;c;bWlncnVuIHB3bmVk\u{7}\u{9b}31m\r\u{7f}\u{202e}";

struct Noisy {
    behaviour: String,
    megabytes: u64,
    last_check_fails: bool,
}

impl Noisy {
    fn unit_name(&self) -> String {
        match self.behaviour.as_str() {
            "flood" => "flood".to_owned(),
            "repeats" => "repeats".to_owned(),
            _ => format!("escapes{TRAPS}unit"),
        }
    }
}

impl Plugin for Noisy {
    fn describe() -> PluginInfo {
        PluginInfo::new("noisy", env!("CARGO_PKG_VERSION"))
            .description("Floods its output and hides terminal escapes in it, for migrun's tests")
            .connection(Need::read_write("target", "holds noisy_log").writes(["noisy_log"]))
            .config_key(ConfigKey::new("behaviour", "flood, repeats or escapes").required())
            .config_key(ConfigKey::new("megabytes", "MB of warnings to flood").default("50"))
            .config_key(
                ConfigKey::new("last_check_fails", "whether the flood's last check fails")
                    .default("false"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let behaviour = config.require("behaviour")?.to_owned();
        if !matches!(behaviour.as_str(), "flood" | "repeats" | "escapes") {
            bail!("unknown behaviour {behaviour:?}; expected flood, repeats or escapes");
        }
        Ok(Noisy {
            behaviour,
            megabytes: config.parse("megabytes")?,
            last_check_fails: config.parse("last_check_fails")?,
        })
    }

    fn units(&self) -> Result<Vec<Unit>> {
        Ok(vec![Unit::new(
            self.unit_name(),
            "misbehaves on the output",
        )])
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        match self.behaviour.as_str() {
            "flood" => flood(self.megabytes, self.last_check_fails),
            "repeats" => repeats(),
            _ => escapes(),
        }
        let target = Connection::open("target")?;
        let sql = format!(
            "INSERT INTO noisy_log (unit) VALUES ({})",
            target.placeholder(1)
        );
        target.execute(&sql, params![unit])?;
        Ok(())
    }
}

fn flood(megabytes: u64, last_check_fails: bool) {
    let block = "w".repeat(64 << 10);
    let messages = megabytes * 1_000_000 / block.len() as u64 + 1;
    for i in 0..messages {
        write(Level::Warn, &block, &[("n".to_owned(), i.to_string())]);
    }
    let detail = "d".repeat(1 << 10);
    for i in 0..20_000 {
        let ok = !(last_check_fails && i == 19_999);
        check(&format!("flood check {i}"), ok, &detail);
    }
    let long = "t".repeat(200);
    for i in 0..10_000u64 {
        progress(&format!("task {i} {long}"), 1, Some(2));
    }
}

fn repeats() {
    for id in 1..=400u64 {
        let amount = if id % 2 == 0 { "n/a" } else { "12,50 EUR" };
        write(
            Level::Warn,
            "cannot parse amount; amount_cents stays NULL",
            &[
                ("id".to_owned(), (id * 7).to_string()),
                ("amount_text".to_owned(), amount.to_owned()),
            ],
        );
    }
    check("every amount parsed", false, "400 of 1000 rows kept NULL");
}

fn escapes() {
    let fields = [(format!("key{TRAPS}"), format!("value{TRAPS}"))];
    for level in [Level::Info, Level::Warn, Level::Error] {
        write(level, &format!("message{TRAPS}\nforged line"), &fields);
    }
    check(
        &format!("check{TRAPS}name"),
        true,
        &format!("detail{TRAPS}"),
    );
    progress(&format!("task{TRAPS}"), 1, Some(2));
    progress(&format!("task{TRAPS}"), 2, Some(2));
}

migrun_sdk::export_plugin!(Noisy);
