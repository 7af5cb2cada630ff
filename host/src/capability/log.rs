//! The `log` interface: the plugin's structured messages and progress.
//!
//! Messages go to `tracing` (target `plugin`), to the run's
//! [`RunObserver`](crate::observer::RunObserver) (the CLI's lines and progress
//! bars) and into the run report. Warnings are kept for the summary: a
//! dropped row or a lossy mapping must not scroll away unseen.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::contract::v0_1_1::log;
use crate::journal::{CallResult, HostCall};
use crate::observer::{Level, LogEvent, Progress, RunObserver};
use crate::tape::{Answer, Tape};

/// Bound on messages kept for the report; later ones are still shown and traced, only not kept.
const MAX_KEPT_MESSAGES: usize = 10_000;

/// The log state of one run.
pub struct LogCtx {
    observer: Arc<dyn RunObserver>,
    tape: Tape,
    unit: Option<String>,
    kept: Vec<LogEvent>,
    dropped: u64,
}

impl LogCtx {
    /// A log context reporting to `observer`.
    pub fn new(observer: Arc<dyn RunObserver>, tape: Tape) -> Self {
        LogCtx {
            observer,
            tape,
            unit: None,
            kept: Vec::new(),
            dropped: 0,
        }
    }

    /// Sets the tape calls go through.
    pub fn set_tape(&mut self, tape: Tape) {
        self.tape = tape;
    }

    /// Sets the unit that messages are attributed to.
    pub fn set_unit(&mut self, unit: Option<String>) {
        self.unit = unit;
    }

    /// Records a message (from the plugin, or the plugin's captured stdout/stderr).
    pub fn record(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let event = LogEvent {
            unit: self.unit.clone(),
            level,
            message,
            fields,
        };
        match level {
            Level::Trace => {
                tracing::trace!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{}", event.message)
            }
            Level::Debug => {
                tracing::debug!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{}", event.message)
            }
            Level::Info => {
                tracing::info!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{}", event.message)
            }
            Level::Warn => {
                tracing::warn!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{}", event.message)
            }
            Level::Error => {
                tracing::error!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{}", event.message)
            }
        }
        self.observer.log(&event);
        if self.kept.len() < MAX_KEPT_MESSAGES || level >= Level::Warn {
            self.kept.push(event);
        } else {
            self.dropped += 1;
        }
    }

    /// The messages kept so far, and how many info-or-lower ones were not kept.
    pub fn take_messages(&mut self) -> (Vec<LogEvent>, u64) {
        (
            std::mem::take(&mut self.kept),
            std::mem::take(&mut self.dropped),
        )
    }
}

struct Log;

impl HasData for Log {
    type Data<'a> = &'a mut LogCtx;
}

/// Adds the `log` interface to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, Log>(linker, get)
}

impl log::Host for LogCtx {
    async fn write(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        let call = HostCall::Log {
            level,
            message,
            fields,
        };
        pass_tape(&self.tape, &call)?;
        let HostCall::Log {
            level,
            message,
            fields,
        } = call
        else {
            unreachable!()
        };
        self.record(level, message, fields);
        Ok(())
    }

    async fn progress(
        &mut self,
        task: String,
        done: u64,
        total: Option<u64>,
    ) -> wasmtime::Result<()> {
        let call = HostCall::Progress { task, done, total };
        pass_tape(&self.tape, &call)?;
        let HostCall::Progress { task, done, total } = call else {
            unreachable!()
        };
        tracing::debug!(target: "plugin", unit = ?self.unit, task, done, total, "progress");
        self.observer.progress(&Progress {
            unit: self.unit.clone(),
            task,
            done,
            total,
        });
        Ok(())
    }
}

/// Records a call that has no answer (live) or checks it against the journal (replay).
pub(crate) fn pass_tape(tape: &Tape, call: &HostCall) -> wasmtime::Result<()> {
    match tape.answer(call).map_err(wasmtime::Error::new)? {
        Answer::Live => tape
            .record(call, &CallResult::Unit)
            .map_err(wasmtime::Error::new),
        Answer::Recorded(_) => Ok(()),
    }
}
