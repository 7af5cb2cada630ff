//! Terminal output while a run happens: progress bars with ETA on a terminal,
//! plain lines otherwise (CI logs, pipes). Everything goes to stderr so that
//! stdout carries only the report (text or `--json`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use migrun::observer::{CheckResult, Level, LogEvent, Progress, RunObserver};
use migrun::printable::{printable, printable_text};

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

/// The CLI's observer.
pub struct Console {
    terminal: bool,
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
    /// A console; progress bars only when stderr is a terminal.
    pub fn new(_json: bool) -> Console {
        let terminal = std::io::stderr().is_terminal();
        let bars = MultiProgress::with_draw_target(if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Console {
            terminal,
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
        if phase != "describe" {
            self.line(format!("▸ {}", printable(phase)));
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
        if !ok {
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
        self.line(format!(
            "  warning: lock hazard{place}: {}",
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
