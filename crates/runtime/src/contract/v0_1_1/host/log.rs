//! The contract 0.1.1 `log` interface over the version-free [`LogCtx`]
//! (`crate::capability::log`): the generated `Host` trait implemented as a thin
//! conversion, and the `add_to_linker` of the 0.1.x linker.

use crate::capability::log::LogCtx;
use crate::contract::v0_1_1::log;
use crate::observer::Level;
use wasmtime::component::{HasData, Linker};

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

impl From<log::Level> for Level {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        }
    }
}

/// Contract 0.1.1 (and 0.1.0, linked semver-compatibly).
impl log::Host for LogCtx {
    async fn write(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.plugin_message(level.into(), message, fields)
    }

    async fn progress(
        &mut self,
        task: String,
        done: u64,
        total: Option<u64>,
    ) -> wasmtime::Result<()> {
        self.plugin_progress(task, done, total)
    }
}
