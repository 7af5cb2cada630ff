//! The `log` interface: the plugin's structured messages and progress.
//!
//! Messages go to `tracing` (target `plugin`), to the run's
//! [`RunObserver`](crate::observer::RunObserver) (the CLI's lines and progress
//! bars) and into the run report. Warnings are kept for the summary: a
//! dropped row or a lossy mapping must not scroll away unseen.
//!
//! What the host keeps and shows is bounded in bytes per run, whatever the
//! plugin sends: each message is cut to [`MAX_MESSAGE_BYTES`] (fields to
//! [`MAX_FIELDS_BYTES`]), warnings and errors share [`KEPT_WARNING_BYTES`],
//! lower levels [`KEPT_INFO_BYTES`]; past a budget a message is neither
//! kept, traced nor shown, only counted ([`MessagesNotKept`], summarised in
//! the report). Progress is shown for at most [`MAX_TASKS`] task names of at
//! most [`MAX_TASK_NAME_BYTES`]. The run never fails for it, and the journal
//! still records every call exactly as sent.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::observer::{Level, LogEvent, MessagesNotKept, Progress, RunObserver};
use crate::printable::{printable, truncated};
use migrun_journal::{CallResult, HostCall};
use migrun_session::tape::{Answer, Tape};

/// Bytes of one message kept or shown; the rest is cut, saying how much.
pub const MAX_MESSAGE_BYTES: usize = 4 << 10;
/// Bytes of one message's fields (names and values) kept or shown.
pub const MAX_FIELDS_BYTES: usize = 1 << 10;
/// Bytes of warning and error messages kept per run.
pub const KEPT_WARNING_BYTES: usize = 1 << 20;
/// Bytes of info, debug and trace messages kept per run.
pub const KEPT_INFO_BYTES: usize = 256 << 10;
/// Distinct progress tasks shown per run; progress of later tasks is not shown.
pub const MAX_TASKS: usize = 64;
/// Bytes of a progress task's name shown.
pub const MAX_TASK_NAME_BYTES: usize = 80;

/// The log state of one run.
pub struct LogCtx {
    observer: Arc<dyn RunObserver>,
    tape: Tape,
    unit: Option<String>,
    kept: Vec<LogEvent>,
    kept_warning_bytes: usize,
    kept_info_bytes: usize,
    not_kept: MessagesNotKept,
    tasks: BTreeSet<String>,
}

impl LogCtx {
    /// A log context reporting to `observer`.
    pub fn new(observer: Arc<dyn RunObserver>, tape: Tape) -> Self {
        LogCtx {
            observer,
            tape,
            unit: None,
            kept: Vec::new(),
            kept_warning_bytes: 0,
            kept_info_bytes: 0,
            not_kept: MessagesNotKept::default(),
            tasks: BTreeSet::new(),
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

    /// Records a message (from the plugin, or the plugin's captured stdout/stderr):
    /// kept, traced and shown while its level's budget lasts, counted afterwards.
    pub fn record(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let sent = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let message = truncated(&message, MAX_MESSAGE_BYTES).into_owned();
        let mut fields_bytes = 0;
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .take_while(|(k, v)| {
                fields_bytes += k.len() + v.len();
                fields_bytes <= MAX_FIELDS_BYTES
            })
            .collect();
        let size = message.len()
            + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + self.unit.as_ref().map_or(0, String::len);
        let (used, budget) = if level >= Level::Warn {
            (&mut self.kept_warning_bytes, KEPT_WARNING_BYTES)
        } else {
            (&mut self.kept_info_bytes, KEPT_INFO_BYTES)
        };
        if *used + size > budget {
            let first = self.not_kept.messages == 0;
            self.not_kept.count(level, sent as u64);
            if first {
                self.observer.messages_not_kept();
            }
            return;
        }
        *used += size;
        let event = LogEvent {
            unit: self.unit.clone(),
            level,
            message,
            fields,
        };
        let shown = printable(&event.message);
        match level {
            Level::Trace => {
                tracing::trace!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{shown}")
            }
            Level::Debug => {
                tracing::debug!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{shown}")
            }
            Level::Info => {
                tracing::info!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{shown}")
            }
            Level::Warn => {
                tracing::warn!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{shown}")
            }
            Level::Error => {
                tracing::error!(target: "plugin", unit = ?event.unit, fields = ?event.fields, "{shown}")
            }
        }
        self.observer.log(&event);
        self.kept.push(event);
    }

    /// The messages kept so far, and what was not kept.
    pub fn take_messages(&mut self) -> (Vec<LogEvent>, MessagesNotKept) {
        (
            std::mem::take(&mut self.kept),
            std::mem::take(&mut self.not_kept),
        )
    }

    /// The task name to show for `task`, or `None` once [`MAX_TASKS`] others are shown.
    fn shown_task(&mut self, task: &str) -> Option<String> {
        let name = truncated(task, MAX_TASK_NAME_BYTES).into_owned();
        if self.tasks.contains(&name) {
            return Some(name);
        }
        if self.tasks.len() >= MAX_TASKS {
            return None;
        }
        self.tasks.insert(name.clone());
        Some(name)
    }
}

impl LogCtx {
    /// `log.write`, in any contract version: through the tape, then [`LogCtx::record`].
    pub fn plugin_message(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
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

    /// `log.progress`, in any contract version: through the tape, then to the observer.
    pub fn plugin_progress(
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
        let Some(task) = self.shown_task(&task) else {
            return Ok(());
        };
        tracing::debug!(target: "plugin", unit = ?self.unit, task = %printable(&task), done, total, "progress");
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
