//! Terminal output while a run happens: progress bars with ETA on a terminal,
//! plain lines otherwise (CI logs, pipes). Everything goes to stderr so that
//! stdout carries only the report (text or `--json`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use migrun::observer::{CheckResult, Level, LogEvent, Progress, RunObserver};

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
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The CLI's observer.
pub struct Console {
    terminal: bool,
    bars: MultiProgress,
    tasks: Mutex<HashMap<String, ProgressBar>>,
    /// Last percentage printed per task in line mode, so logs get a line per 10%, not per batch.
    printed: Mutex<HashMap<String, u64>>,
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
        }
    }

    /// Finishes every bar so the report prints below them.
    pub fn finish(&self) {
        for (_, bar) in self.tasks.lock().expect("console lock").drain() {
            bar.finish();
        }
    }

    fn line(&self, text: String) {
        if self.terminal {
            self.bars.suspend(|| eprintln!("{text}"));
        } else {
            eprintln!("{text}");
        }
    }
}

impl RunObserver for Console {
    fn phase_started(&self, phase: &str) {
        if phase != "describe" {
            self.line(format!("▸ {phase}"));
        }
    }

    fn phase_finished(&self, phase: &str, ok: bool) {
        let mut tasks = self.tasks.lock().expect("console lock");
        for (_, bar) in tasks.drain() {
            if ok { bar.finish() } else { bar.abandon() }
        }
        drop(tasks);
        if !ok {
            self.line(format!("✗ {phase} failed"));
        }
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
        let fields: Vec<String> = event
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        self.line(format!(
            "  {mark}{}{}",
            event.message,
            if fields.is_empty() {
                String::new()
            } else {
                format!("  {}", fields.join(" "))
            }
        ));
    }

    fn progress(&self, p: &Progress) {
        if self.terminal {
            let mut tasks = self.tasks.lock().expect("console lock");
            let bar = tasks.entry(p.task.clone()).or_insert_with(|| {
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
                bar.set_message(p.task.clone());
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
            if let Some(total) = p.total {
                bar.set_length(total);
            }
            bar.set_position(p.done);
        } else {
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
                        "  {}: {}/{} ({}%)",
                        p.task,
                        p.done,
                        total,
                        percent.unwrap_or(0)
                    )),
                    None => self.line(format!("  {}: {}", p.task, p.done)),
                }
            }
        }
    }

    fn check(&self, c: &CheckResult) {
        self.line(format!(
            "  {} {}{}",
            if c.ok { "✓" } else { "✗" },
            c.name,
            if c.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", c.detail)
            }
        ));
    }
}
