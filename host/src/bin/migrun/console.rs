//! Terminal output while a run happens: progress bars with ETA on a terminal,
//! plain lines otherwise (CI logs, pipes). Everything goes to stderr so that
//! stdout carries only the report (text or `--json`).
//!
//! At scale (more than [`MANY_UNITS`] units to run) a terminal shows one bar over
//! the units — done, failed, left, ETA — instead of a line and bars per unit; the
//! failed units are still printed one line each. Without a terminal the lines
//! stay (a log keeps each unit) and a line sums the units up every 10%. With
//! `--json`, each unit's start and end is a JSON line on stderr (schema
//! `migrun.event/1`, see docs/OPERATIONS.md), for dashboards.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use migrun::observer::{CheckResult, Level, LogEvent, Progress, RunObserver, UnitEnd};
use migrun::printable::{printable, printable_json, printable_text};

/// Sets up `tracing` to stderr: warnings by default, more with `-v`, or `MIGRUN_LOG`.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,plugin=off",
        1 => "info,plugin=off",
        2 => "debug,sqlx=warn,wasmtime=info,cranelift=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIGRUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Whether to colour what goes to `stream`: only when that stream itself is a terminal (a
/// redirected stderr gets no escape sequences even if stdout is a terminal, and the other way
/// round), and never when `NO_COLOR` is set to anything but the empty string (no-color.org).
pub fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Above this many units to run, a terminal shows one bar over the units instead of a line
/// (and bars) per unit, and a log gets a summary line every 10%.
pub const MANY_UNITS: u64 = 20;

/// Schema of the `--json` event lines on stderr.
pub const EVENT_SCHEMA: &str = "migrun.event/1";

/// The units of a run as they end: what the overall bar and the events count.
#[derive(Default)]
struct UnitCounts {
    /// What is counted: `unit` for a run's units, `tenant` for a run over tenants.
    noun: &'static str,
    /// Units that will run (told by `units_planned`).
    to_run: u64,
    /// Units selected, skipped ones included.
    selected: u64,
    /// Units that ended, failed ones included.
    done: u64,
    /// Of them, failed.
    failed: u64,
    /// When the first unit started.
    since: Option<Instant>,
    /// The last tenth of the units a log's summary line was printed for.
    printed_tenth: u64,
}

impl UnitCounts {
    fn left(&self) -> u64 {
        self.to_run.saturating_sub(self.done)
    }

    /// `120/1000 units done, 3 failed, 880 left, ETA 2m05s`.
    fn summary(&self) -> String {
        let eta = self
            .since
            .and_then(|since| eta(since.elapsed(), self.done, self.left()))
            .map(|eta| format!(", ETA {eta}"))
            .unwrap_or_default();
        format!(
            "{}/{} {}s done, {} failed, {} left{eta}",
            self.done,
            self.to_run,
            self.noun,
            self.failed,
            self.left()
        )
    }
}

/// The CLI's observer.
pub struct Console {
    terminal: bool,
    /// `--json`: units' starts and ends as JSON lines on stderr instead of lines for people.
    json: bool,
    units: Mutex<UnitCounts>,
    /// The one bar over the units, on a terminal when there are many.
    overall: Mutex<Option<ProgressBar>>,
    bars: MultiProgress,
    /// One bar per (unit, task): with `--jobs` several units run at once, each with its bars.
    tasks: Mutex<HashMap<(Option<String>, String), ProgressBar>>,
    /// Last percentage printed per task in line mode, so logs get a line per 10%, not per batch.
    printed: Mutex<HashMap<String, u64>>,
    /// When each task was first heard of and how much was done then (line mode's ETA; a
    /// resumed backfill starts far from zero and must not count that as speed).
    first_seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Console {
    /// A console; progress bars only when stderr is a terminal; `json`: unit events as JSON
    /// lines (`migrun.event/1`).
    pub fn new(json: bool) -> Console {
        Console::counting(json, "unit")
    }

    /// A console for a run over tenants: the bar, the summaries and the `--json` events
    /// (`tenant-started`, `tenant-finished`) count tenants.
    pub fn for_tenants(json: bool) -> Console {
        Console::counting(json, "tenant")
    }

    fn counting(json: bool, noun: &'static str) -> Console {
        let terminal = std::io::stderr().is_terminal();
        let bars = MultiProgress::with_draw_target(if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Console {
            terminal,
            json,
            units: Mutex::new(UnitCounts {
                noun,
                ..UnitCounts::default()
            }),
            overall: Mutex::new(None),
            bars,
            tasks: Mutex::new(HashMap::new()),
            printed: Mutex::new(HashMap::new()),
            first_seen: Mutex::new(HashMap::new()),
        }
    }

    /// Finishes every bar so the report prints below them.
    pub fn finish(&self) {
        for (_, bar) in self.tasks.lock().expect("console lock").drain() {
            bar.finish();
        }
        if let Some(bar) = self.overall.lock().expect("console lock").take() {
            bar.finish();
        }
    }

    /// Whether the units are summed up (one bar, or a log's summary lines) rather than
    /// shown one by one.
    fn many_units(&self) -> bool {
        self.units.lock().expect("console lock").to_run > MANY_UNITS
    }

    /// Prints one `--json` event line on stderr: `{"schema":"migrun.event/1","event":…}`.
    fn event(&self, event: &str, mut fields: serde_json::Value) {
        if let Some(object) = fields.as_object_mut() {
            let mut line = serde_json::Map::new();
            line.insert("schema".into(), EVENT_SCHEMA.into());
            line.insert("event".into(), event.into());
            line.insert(
                "at".into(),
                chrono::Utc::now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .into(),
            );
            line.extend(std::mem::take(object));
            let text = printable_json(&serde_json::Value::Object(line).to_string()).into_owned();
            if self.terminal {
                self.bars.suspend(|| eprintln!("{text}"));
            } else {
                eprintln!("{text}");
            }
        }
    }

    /// Prints one line to stderr; whatever a plugin put in it was escaped by the caller,
    /// and [`printable_text`] is the last boundary for anything missed.
    fn line(&self, text: String) {
        let text = printable_text(&text);
        if self.terminal {
            self.bars.suspend(|| eprintln!("{text}"));
        } else {
            eprintln!("{text}");
        }
    }
}

impl Console {
    /// Whether the one bar over the units is shown.
    fn overall_bar(&self) -> bool {
        self.overall.lock().expect("console lock").is_some()
    }
}

/// The time left at the speed seen so far (`done` items in `elapsed`), as `1m05s`; none
/// before anything was done or once nothing is left.
fn eta(elapsed: Duration, done: u64, left: u64) -> Option<String> {
    if done == 0 || left == 0 {
        return None;
    }
    let secs = (elapsed.as_secs_f64() * left as f64 / done as f64).round() as u64;
    Some(if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    })
}

impl RunObserver for Console {
    fn phase_started(&self, phase: &str) {
        let unit = phase.starts_with("unit ") || phase.starts_with("tenant ");
        // Units are events in `--json`, and counted by the one bar when there are many.
        if unit && (self.json || (self.terminal && self.many_units())) {
            return;
        }
        if phase != "describe" {
            self.line(format!("▸ {}", printable(phase)));
        }
    }

    fn units_planned(&self, selected: u64, to_run: u64) {
        let mut units = self.units.lock().expect("console lock");
        units.selected = selected;
        units.to_run = to_run;
        let noun = units.noun;
        if self.json {
            self.event(
                &format!("{noun}s"),
                serde_json::json!({
                    "selected": selected,
                    "to_run": to_run,
                    "skipped": selected.saturating_sub(to_run),
                }),
            );
        }
        if self.terminal && to_run > MANY_UNITS {
            let bar = self.bars.add(ProgressBar::new(to_run));
            bar.set_style(
                ProgressStyle::with_template(&format!("  {noun}s [{{bar:30}}] {{msg}}"))
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(units.summary());
            bar.enable_steady_tick(Duration::from_millis(500));
            *self.overall.lock().expect("console lock") = Some(bar);
        }
    }

    fn unit_started(&self, unit: &str, scope: Option<&str>) {
        let mut units = self.units.lock().expect("console lock");
        units.since.get_or_insert_with(Instant::now);
        let noun = units.noun;
        drop(units);
        if self.json {
            let mut fields = serde_json::Map::new();
            fields.insert(noun.into(), unit.into());
            if noun == "unit" {
                fields.insert("scope".into(), scope.into());
            }
            self.event(&format!("{noun}-started"), fields.into());
        }
    }

    fn unit_finished(&self, end: &UnitEnd) {
        let mut units = self.units.lock().expect("console lock");
        units.done += 1;
        if end.status == "failed" {
            units.failed += 1;
        }
        let (done, failed, left, to_run) = (units.done, units.failed, units.left(), units.to_run);
        let summary = units.summary();
        let noun = units.noun;
        let tenth = (done * 10).checked_div(to_run).unwrap_or(0);
        let summary_due =
            !self.terminal && !self.json && to_run > MANY_UNITS && tenth > units.printed_tenth;
        if summary_due {
            units.printed_tenth = tenth;
        }
        drop(units);
        if self.json {
            let mut fields = serde_json::to_value(end).unwrap_or_default();
            if let Some(object) = fields.as_object_mut() {
                if let Some(name) = object.remove("unit") {
                    object.insert(noun.into(), name);
                }
                object.insert("done".into(), done.into());
                object.insert("failed".into(), failed.into());
                object.insert("left".into(), left.into());
            }
            self.event(&format!("{noun}-finished"), fields);
        }
        if let Some(bar) = self.overall.lock().expect("console lock").as_ref() {
            bar.set_position(done);
            bar.set_message(summary.clone());
            if end.status == "failed" {
                let scope = end
                    .scope
                    .as_deref()
                    .map(|s| format!("@{s}"))
                    .unwrap_or_default();
                self.line(format!(
                    "✗ {noun} {}{} failed: {}",
                    printable(&end.unit),
                    printable(&scope),
                    printable(end.error.as_deref().unwrap_or(""))
                ));
            }
        }
        if summary_due {
            self.line(format!("  {noun}s: {summary}"));
        }
    }

    fn phase_finished(&self, phase: &str, ok: bool) {
        let mut tasks = self.tasks.lock().expect("console lock");
        // A unit's end ends its own bars only: other units may still be running (`--jobs`).
        let unit = phase.strip_prefix("unit ");
        let ended: Vec<_> = tasks
            .keys()
            .filter(|(u, _)| unit.is_none() || u.as_deref() == unit)
            .cloned()
            .collect();
        for key in ended {
            if let Some(bar) = tasks.remove(&key) {
                if ok { bar.finish() } else { bar.abandon() }
            }
        }
        drop(tasks);
        // A unit's failure is its `--json` event, or a line of the overall bar's (with its error).
        let counted = unit.is_some() && (self.json || self.overall_bar());
        if !ok && !counted {
            self.line(format!("✗ {} failed", printable(phase)));
        }
    }

    fn lock_warning(&self, unit: Option<&str>, w: &migrun::observer::LockWarning) {
        let place = match (unit, &w.connection) {
            (Some(unit), Some(conn)) => {
                format!(" (unit {}, on `{}`)", printable(unit), printable(conn))
            }
            (Some(unit), None) => format!(" (unit {})", printable(unit)),
            (None, Some(conn)) => format!(" (on `{}`)", printable(conn)),
            (None, None) => String::new(),
        };
        let hazard = if migrun::lint::DEPLOYMENT_RULES.contains(&w.rule.as_str()) {
            "deployment hazard"
        } else {
            "lock hazard"
        };
        self.line(format!(
            "  warning: {hazard}{place}: {}",
            printable(&w.problem)
        ));
        self.line(format!("           safer: {}", printable(&w.safer)));
    }

    fn log(&self, event: &LogEvent) {
        if event.level < Level::Info {
            return;
        }
        let mark = match event.level {
            Level::Warn => "warning: ",
            Level::Error => "error: ",
            _ => "",
        };
        let fields = crate::render::fields_text(&event.fields);
        self.line(format!(
            "  {mark}{}{}",
            printable(&event.message),
            if fields.is_empty() {
                String::new()
            } else {
                format!("  {fields}")
            }
        ));
    }

    fn progress(&self, p: &Progress) {
        // Under the one bar over many units, a unit's own progress is not drawn: thousands
        // of short-lived bars would scroll the screen.
        if self.overall_bar() && p.unit.is_some() {
            return;
        }
        if self.terminal {
            let mut tasks = self.tasks.lock().expect("console lock");
            let bar = tasks
                .entry((p.unit.clone(), p.task.clone()))
                .or_insert_with(|| {
                    let bar = self.bars.add(match p.total {
                        Some(total) => ProgressBar::new(total),
                        None => ProgressBar::new_spinner(),
                    });
                    let style = if p.total.is_some() {
                        ProgressStyle::with_template(
                            "  {msg:<20} [{bar:30}] {pos}/{len} ({per_sec}, ETA {eta})",
                        )
                        .expect("valid template")
                        .progress_chars("=> ")
                    } else {
                        ProgressStyle::with_template("  {msg:<20} {spinner} {pos} ({per_sec})")
                            .expect("valid template")
                    };
                    bar.set_style(style);
                    bar.set_message(match p.unit.as_deref() {
                        Some(unit) if unit != p.task => {
                            format!("{} {}", printable(unit), printable(&p.task))
                        }
                        _ => printable(&p.task).into_owned(),
                    });
                    // A resumed task starts where the earlier run stopped: the ETA counts from here.
                    bar.set_position(p.done);
                    bar.reset_eta();
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bar
                });
            if let Some(total) = p.total {
                bar.set_length(total);
            }
            bar.set_position(p.done);
        } else {
            let (since, done_then) = *self
                .first_seen
                .lock()
                .expect("console lock")
                .entry(p.task.clone())
                .or_insert((Instant::now(), p.done));
            let percent = p.total.filter(|t| *t > 0).map(|t| p.done * 100 / t);
            let mut printed = self.printed.lock().expect("console lock");
            let last = printed.get(&p.task).copied();
            let due = match (percent, last) {
                (Some(pc), Some(l)) => pc >= l + 10 || (pc == 100 && l != 100),
                (Some(_), None) => true,
                (None, _) => true,
            };
            if due {
                printed.insert(p.task.clone(), percent.unwrap_or(0));
                drop(printed);
                match p.total {
                    Some(total) => self.line(format!(
                        "  {}: {}/{} ({}%{})",
                        printable(&p.task),
                        p.done,
                        total,
                        percent.unwrap_or(0),
                        eta(
                            since.elapsed(),
                            p.done.saturating_sub(done_then),
                            total.saturating_sub(p.done)
                        )
                        .map(|eta| format!(", ETA {eta}"))
                        .unwrap_or_default()
                    )),
                    None => self.line(format!("  {}: {}", printable(&p.task), p.done)),
                }
            }
        }
    }

    fn check(&self, c: &CheckResult) {
        self.line(format!(
            "  {} {}{}",
            if c.ok { "✓" } else { "✗" },
            printable(&c.name),
            if c.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", printable(&c.detail))
            }
        ));
    }

    fn messages_not_kept(&self) {
        self.line(
            "  … the plugin's further messages are not shown: past migrun's bound (the report \
             counts them, the journal has them)"
                .to_owned(),
        );
    }

    fn checks_not_kept(&self) {
        self.line(
            "  … the plugin's further checks are not shown: past migrun's bound (the report \
             counts them; a failed one still fails the run)"
                .to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_extrapolates_the_speed_seen() {
        assert_eq!(eta(Duration::from_secs(10), 100, 50), Some("5s".into()));
        assert_eq!(eta(Duration::from_secs(30), 100, 300), Some("1m30s".into()));
        assert_eq!(eta(Duration::from_secs(3), 0, 10), None);
        assert_eq!(eta(Duration::from_secs(3), 10, 0), None);
    }
}
