//! The WebAssembly runtime: one [`Runtime`] (engine + a linker per contract line) per process,
//! one [`PluginInstance`] (store + instance) per run.
//!
//! The engine is configured for determinism (NaN canonicalisation,
//! deterministic relaxed SIMD, no threads) and for control: fuel for
//! deterministic CPU limits, epoch interruption for the wall-clock limit, a
//! memory limiter. Every export call gets a fresh fuel budget and a fresh
//! deadline; what stops it is classified into a typed [`CallError`] so the
//! runner can say precisely why a unit was rolled back.
//!
//! A component's contract version is read from its import/export names and
//! checked *before* instantiation ([`LoadedPlugin::load`]). Each
//! [`ContractLine`] (semver-compatible releases) has its own linker, built
//! from that line's newest `Host` implementations; the release picks the line
//! and the export bindings, each converting into the host's types.

#![deny(missing_docs)]

pub mod cache;
pub mod capability;
pub mod contract;
pub mod observer;
pub mod printable;
pub mod sandbox;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capability::backup::BackupCtx;
use crate::capability::checks::ChecksCtx;
use crate::capability::database::DatabaseCtx;
use crate::capability::files::FilesCtx;
use crate::capability::log::LogCtx;
use crate::contract::v0_1_1::host::{backup, checkpoint, checks, database, log};
use crate::contract::{
    ContractError, ContractLine, ContractRelease, ContractVersion, PluginError, PluginInfo,
    UnitInfo, UnsupportedDeclaration, v0_1_0, v0_1_1, v0_2_0,
};
use crate::observer::{Level, RunObserver};
use cache::{CompileSource, ComponentCache};
use migrun_config::Limits;
use migrun_session::tape::{Tape, TapeError};
use sandbox::{CapturedOutput, LimitExceeded, MemoryLimiter, SandboxSeeds};

/// How often the epoch advances; the wall-clock limit is checked at this granularity.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The profiling switch: `perfmap` makes wasmtime write a perf map of the compiled guest code.
const PROFILE_ENV: &str = "MIGRUN_BENCH_PROFILE";

/// Extra time a call gets beyond its limit before the host abandons a stuck host call (a
/// database that stopped answering); plain WebAssembly is stopped by the epoch at the limit.
const HOST_GRACE: Duration = Duration::from_secs(5);

/// Why a plugin could not be loaded. Nothing ran.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The path given.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    Malformed(String),
    /// The component targets a contract this host does not speak.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The component imports something the sandbox does not provide.
    #[error("the plugin cannot be instantiated: {0}")]
    Instantiate(String),
}

/// A plugin call that did not return normally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The plugin returned an error value.
    #[error("{0}")]
    Plugin(PluginError),
    /// A sandbox limit stopped it.
    #[error("{0}")]
    Limit(LimitExceeded),
    /// It trapped (a panic, an `unreachable`, a stack overflow, …).
    #[error("the plugin crashed: {message}{}", stderr_suffix(.stderr))]
    Crashed {
        /// The trap.
        message: String,
        /// The tail of what the plugin wrote to stderr (a Rust panic message lands there).
        stderr: String,
    },
    /// An earlier trap left the instance unusable.
    #[error("the plugin cannot be called again after it trapped")]
    Dead,
    /// The journal could not be written, or a replay diverged from it.
    #[error(transparent)]
    Tape(TapeError),
    /// The operator interrupted the run (SIGINT).
    #[error("interrupted by the operator (SIGINT)")]
    Interrupted,
    /// The plugin declared something this host cannot honour yet; nothing of it ran.
    #[error(transparent)]
    Unsupported(UnsupportedDeclaration),
}

/// The trap raised at the plugin's next epoch tick after the interrupt flag is set.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

fn stderr_suffix(stderr: &str) -> String {
    let tail = stderr.trim();
    if tail.is_empty() {
        String::new()
    } else {
        format!("; plugin stderr: {tail}")
    }
}

/// The engine and linkers shared by every run of the process.
pub struct Runtime {
    engine: Engine,
    /// The 0.1.x line: the 0.1.1 implementations, which also serve 0.1.0 imports.
    linker_v0_1: Linker<RunState>,
    /// The 0.2.x line.
    linker_v0_2: Linker<RunState>,
    /// Compiled components on disk ([`cache`]); `None` when disabled or no folder is known.
    cache: Option<ComponentCache>,
}

impl Runtime {
    /// The process-wide runtime (one `Engine` per process, with its epoch ticker).
    pub fn shared() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| Runtime::new().expect("the wasmtime engine configuration is valid"))
    }

    fn new() -> wasmtime::Result<Runtime> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .max_wasm_stack(1 << 20);
        // Profiling aid, not a user option (docs/PERFORMANCE.md, "Profiling a guest"):
        // `MIGRUN_BENCH_PROFILE=perfmap` writes /tmp/perf-<pid>.map, so `perf record`
        // names the guest's functions (those of its name section) instead of raw addresses.
        if std::env::var_os(PROFILE_ENV).is_some_and(|v| v == "perfmap") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // No threads: wasmtime is built without its `threads` feature, so shared
        // memories and atomics-based parallelism cannot be enabled at all.
        let engine = Engine::new(&config)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("migrun-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(wasmtime::Error::new)?;

        let linker_v0_1 = Runtime::linker(&engine, ContractLine::V0_1)?;
        let linker_v0_2 = Runtime::linker(&engine, ContractLine::V0_2)?;
        let cache = ComponentCache::from_env(&engine);
        Ok(Runtime {
            engine,
            linker_v0_1,
            linker_v0_2,
            cache,
        })
    }

    /// The linker of one contract line: locked-down WASI plus that line's interfaces.
    fn linker(engine: &Engine, line: ContractLine) -> wasmtime::Result<Linker<RunState>> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        match line {
            ContractLine::V0_1 => {
                database::add_to_linker(&mut linker, |s: &mut RunState| &mut s.database)?;
                log::add_to_linker(&mut linker, |s: &mut RunState| &mut s.log)?;
                checks::add_to_linker(&mut linker, |s: &mut RunState| &mut s.checks)?;
                backup::add_to_linker(&mut linker, |s: &mut RunState| &mut s.backup)?;
                checkpoint::add_to_linker(&mut linker, |s: &mut RunState| &mut s.database)?;
            }
            ContractLine::V0_2 => v0_2_0::host::add_to_linker(
                &mut linker,
                v0_2_0::host::ContextAccessors {
                    database: |s: &mut RunState| &mut s.database,
                    log: |s: &mut RunState| &mut s.log,
                    checks: |s: &mut RunState| &mut s.checks,
                    backup: |s: &mut RunState| &mut s.backup,
                    files: |s: &mut RunState| &mut s.files,
                },
            )?,
        }
        Ok(linker)
    }

    /// The linker serving `line`.
    fn linker_for(&self, line: ContractLine) -> &Linker<RunState> {
        match line {
            ContractLine::V0_1 => &self.linker_v0_1,
            ContractLine::V0_2 => &self.linker_v0_2,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled-component cache in use, if any.
    pub fn cache(&self) -> Option<&ComponentCache> {
        self.cache.as_ref()
    }
}

/// A compiled plugin whose contract version has been checked.
pub struct LoadedPlugin {
    component: Component,
    /// Lowercase hex sha256 of the component's bytes.
    pub sha256: String,
    /// The contract version it targets.
    pub contract: ContractVersion,
    /// Size of the component in bytes.
    pub size: usize,
    /// The component's bytes (kept to store a copy next to each journal).
    pub bytes: Arc<[u8]>,
    /// Whether its machine code came from the compiled-component cache.
    pub compiled: CompileSource,
}

impl LoadedPlugin {
    /// Reads and loads a plugin file.
    pub fn load_file(runtime: &Runtime, path: &std::path::Path) -> Result<LoadedPlugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        LoadedPlugin::load(runtime, &bytes)
    }

    /// Compiles `bytes` (or reads their compiled form from the runtime's
    /// cache) and checks the contract version before anything is instantiated.
    pub fn load(runtime: &Runtime, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        LoadedPlugin::load_with_cache(runtime, bytes, runtime.cache.as_ref())
    }

    /// [`LoadedPlugin::load`] with an explicit cache (`None`: always compile).
    pub fn load_with_cache(
        runtime: &Runtime,
        bytes: &[u8],
        cache: Option<&ComponentCache>,
    ) -> Result<LoadedPlugin, LoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
            return Err(LoadError::Malformed(
                "this is a core WebAssembly module, not a component; build for wasm32-wasip2 or wrap it with `wasm-tools component new`".into(),
            ));
        }
        let malformed = |e: wasmtime::Error| LoadError::Malformed(format!("{e:#}"));
        let (component, compiled) = match cache {
            Some(cache) => cache
                .load_or_compile(&runtime.engine, bytes, &sha256)
                .map_err(malformed)?,
            None => (
                Component::new(&runtime.engine, bytes).map_err(malformed)?,
                CompileSource::Uncached,
            ),
        };
        let contract = contract::detect_version(&runtime.engine, &component)?;
        Ok(LoadedPlugin {
            component,
            sha256,
            contract,
            size: bytes.len(),
            bytes: Arc::from(bytes),
            compiled,
        })
    }

    /// The names the component imports (for `migrun inspect`).
    pub fn imports(&self, runtime: &Runtime) -> Vec<String> {
        self.component
            .component_type()
            .imports(&runtime.engine)
            .map(|(n, _)| n.to_owned())
            .collect()
    }
}

/// Everything one run's store holds: WASI's locked-down context and one context per capability.
pub struct RunState {
    wasi: WasiCtx,
    wasi_table: ResourceTable,
    /// The `database` capability.
    pub database: DatabaseCtx,
    /// The `log` capability.
    pub log: LogCtx,
    /// The `checks` capability.
    pub checks: ChecksCtx,
    /// The `backup` capability.
    pub backup: BackupCtx,
    /// The `files` capability (contract 0.2.0).
    pub files: FilesCtx,
    limiter: MemoryLimiter,
    deadline: Option<Instant>,
    timeout: Duration,
    interrupt: Arc<AtomicBool>,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.wasi_table,
        }
    }
}

impl RunState {
    /// The state of a new run.
    pub fn new(
        database: DatabaseCtx,
        observer: Arc<dyn RunObserver>,
        tape: Tape,
        seeds: SandboxSeeds,
        limits: &Limits,
    ) -> Self {
        let stdout = CapturedOutput::default();
        let stderr = CapturedOutput::default();
        RunState {
            wasi: sandbox::wasi_ctx(seeds, stdout.clone(), stderr.clone()),
            wasi_table: ResourceTable::new(),
            database,
            log: LogCtx::new(observer.clone(), tape.clone()),
            checks: ChecksCtx::new(observer, tape.clone()),
            backup: BackupCtx::new(tape.clone()),
            files: FilesCtx::new(tape),
            limiter: MemoryLimiter::new(limits.memory_mib),
            deadline: None,
            timeout: Duration::from_secs(limits.timeout_secs),
            interrupt: Arc::new(AtomicBool::new(false)),
            stdout,
            stderr,
        }
    }

    /// Shares the flag that, once set, stops the plugin at its next epoch tick (SIGINT).
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = flag;
    }

    /// Points every capability at `tape` (once the journal exists, after `describe`).
    pub fn set_tape(&mut self, tape: Tape) {
        self.log.set_tape(tape.clone());
        self.checks.set_tape(tape.clone());
        self.backup.set_tape(tape.clone());
        self.files.set_tape(tape);
    }

    /// Moves what the plugin printed into the log (stdout as info, stderr as warnings).
    fn drain_output(&mut self) -> String {
        for line in self.stdout.take().lines().filter(|l| !l.trim().is_empty()) {
            self.log.record(
                Level::Info,
                line.to_owned(),
                vec![("stream".into(), "stdout".into())],
            );
        }
        let stderr = self.stderr.take();
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            self.log.record(
                Level::Warn,
                line.to_owned(),
                vec![("stream".into(), "stderr".into())],
            );
        }
        stderr
    }
}

/// Calls one export of the `plugin` interface under the sandbox's limits: a fresh fuel
/// budget and deadline ([`PluginInstance::arm`]), a host-side timeout for stuck host calls,
/// and the classification of how it ended ([`PluginInstance::settle`]).
macro_rules! call_export {
    ($self:ident, $method:ident($($arg:expr),*), $convert:expr) => {{
        $self.arm()?;
        let limit = $self.host_deadline();
        let result = {
            let store = &mut $self.store;
            let fut = async {
                // Each arm converts its version's generated types to the host's
                // (the `From` conversions of `contract::v0_x_y`).
                match &$self.bindings {
                    Bindings::V0_1_0(b) => b
                        .migrun_plugin_plugin()
                        .$method(store $(, $arg)*)
                        .await
                        .map($convert),
                    Bindings::V0_1_1(b) => b
                        .migrun_plugin_plugin()
                        .$method(store $(, $arg)*)
                        .await
                        .map($convert),
                    Bindings::V0_2_0(b) => b
                        .migrun_plugin_plugin()
                        .$method(store $(, $arg)*)
                        .await
                        .map($convert),
                }
            };
            tokio::time::timeout(limit, fut).await
        };
        $self.settle(result)
    }};
}

/// The instantiated component's exports, in the contract version it targets.
enum Bindings {
    V0_1_0(v0_1_0::Migration),
    V0_1_1(v0_1_1::Migration),
    V0_2_0(v0_2_0::Migration),
}

/// One instantiated plugin with its store: the unit of isolation of a run.
pub struct PluginInstance {
    store: Store<RunState>,
    bindings: Bindings,
    limits: Limits,
    dead: bool,
    /// The component and its release, to start it again ([`PluginInstance::restart`]).
    component: Component,
    release: ContractRelease,
}

impl PluginInstance {
    /// Instantiates `plugin` in a fresh store holding `state`.
    pub async fn instantiate(
        runtime: &Runtime,
        plugin: &LoadedPlugin,
        state: RunState,
        limits: Limits,
    ) -> Result<PluginInstance, LoadError> {
        Self::instantiate_component(
            runtime,
            &plugin.component,
            plugin.contract.release(),
            state,
            limits,
        )
        .await
    }

    /// Whether an earlier trap or limit left this instance unusable ([`CallError::Dead`]).
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// A fresh instance of the same component in place of this one, keeping its state
    /// (connections, messages, checks, tape, seeds' clock): what `--keep-going` runs the next
    /// unit on after a unit trapped or hit a limit. The new instance starts from a fresh
    /// linear memory, so the plugin knows nothing yet: the caller configures it again. If
    /// instantiating fails (it did not the first time), the state is lost with the store
    /// (connections dropped: the databases roll back what was open) and the error returned.
    pub async fn restart(&mut self, runtime: &Runtime) -> Result<(), LoadError> {
        let placeholder = RunState::new(
            DatabaseCtx::new(migrun_session::Session::empty(Tape::Off)),
            Arc::new(crate::observer::Silent),
            Tape::Off,
            SandboxSeeds {
                clock_start_unix_nanos: 0,
                random_seed: 0,
            },
            &self.limits,
        );
        let state = std::mem::replace(self.store.data_mut(), placeholder);
        *self = Self::instantiate_component(
            runtime,
            &self.component.clone(),
            self.release,
            state,
            self.limits,
        )
        .await?;
        Ok(())
    }

    async fn instantiate_component(
        runtime: &Runtime,
        component: &Component,
        release: ContractRelease,
        state: RunState,
        limits: Limits,
    ) -> Result<PluginInstance, LoadError> {
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if ctx.data().interrupt.load(Ordering::Relaxed) {
                return Err(wasmtime::Error::new(Interrupted));
            }
            match ctx.data().deadline {
                Some(deadline) if Instant::now() >= deadline => {
                    Err(wasmtime::Error::new(LimitExceeded::Timeout {
                        limit_secs: ctx.data().timeout.as_secs(),
                    }))
                }
                _ => Ok(UpdateDeadline::Yield(1)),
            }
        });
        store
            .set_fuel(limits.fuel)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let linker = runtime.linker_for(release.line());
        let bindings = match release {
            ContractRelease::V0_1_0 => {
                v0_1_0::Migration::instantiate_async(&mut store, component, linker)
                    .await
                    .map(Bindings::V0_1_0)
            }
            ContractRelease::V0_1_1 => {
                v0_1_1::Migration::instantiate_async(&mut store, component, linker)
                    .await
                    .map(Bindings::V0_1_1)
            }
            ContractRelease::V0_2_0 => {
                v0_2_0::Migration::instantiate_async(&mut store, component, linker)
                    .await
                    .map(Bindings::V0_2_0)
            }
        }
        .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        Ok(PluginInstance {
            store,
            bindings,
            limits,
            dead: false,
            component: component.clone(),
            release,
        })
    }

    /// The store's data: the capability contexts.
    pub fn state(&mut self) -> &mut RunState {
        self.store.data_mut()
    }

    /// Consumes the instance, returning its state (to close connections).
    pub fn into_state(self) -> RunState {
        self.store.into_data()
    }

    /// Calls `describe`.
    pub async fn describe(&mut self) -> Result<PluginInfo, CallError> {
        call_export!(self, call_describe(), PluginInfo::from)
    }

    /// Calls `configure`.
    pub async fn configure(&mut self, values: Vec<(String, String)>) -> Result<(), CallError> {
        call_export!(self, call_configure(&values), |r| r
            .map_err(PluginError::from))?
        .map_err(CallError::Plugin)
    }

    /// Calls `list-units`. A unit declared in a way this host cannot honour
    /// ([`UnitInfo::refusal`]) fails the call, so no unit runs; what it accepts
    /// without acting on ([`UnitInfo::warning`]) is logged as a warning.
    pub async fn list_units(&mut self) -> Result<Vec<UnitInfo>, CallError> {
        let units: Vec<UnitInfo> = call_export!(self, call_list_units(), |r| r
            .map(|units| units.into_iter().map(UnitInfo::from).collect())
            .map_err(PluginError::from))?
        .map_err(CallError::Plugin)?;
        if let Some(refused) = units
            .iter()
            .find_map(UnitInfo::refusal)
            .or_else(|| crate::contract::scoped_twice(&units))
        {
            return Err(CallError::Unsupported(refused));
        }
        for warning in units.iter().filter_map(UnitInfo::warning) {
            self.store
                .data_mut()
                .log
                .record(Level::Warn, warning, Vec::new());
        }
        Ok(units)
    }

    /// Calls `run-unit`.
    pub async fn run_unit(&mut self, unit: &str) -> Result<(), CallError> {
        call_export!(self, call_run_unit(unit), |r| r.map_err(PluginError::from))?
            .map_err(CallError::Plugin)
    }

    /// Calls `verify`.
    pub async fn verify(&mut self) -> Result<(), CallError> {
        call_export!(self, call_verify(), |r| r.map_err(PluginError::from))?
            .map_err(CallError::Plugin)
    }

    /// Gives the next call a fresh fuel budget and deadline.
    fn arm(&mut self) -> Result<(), CallError> {
        if self.dead {
            return Err(CallError::Dead);
        }
        self.store
            .set_fuel(self.limits.fuel)
            .map_err(|e| CallError::Crashed {
                message: format!("{e:#}"),
                stderr: String::new(),
            })?;
        let timeout = Duration::from_secs(self.limits.timeout_secs);
        self.store.data_mut().deadline = Some(Instant::now() + timeout);
        self.store.set_epoch_deadline(1);
        Ok(())
    }

    fn host_deadline(&self) -> Duration {
        Duration::from_secs(self.limits.timeout_secs) + HOST_GRACE
    }

    /// Classifies how a call ended; any trap or limit makes the instance unusable.
    fn settle<T>(
        &mut self,
        result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, CallError> {
        self.store.data_mut().deadline = None;
        let stderr = self.store.data_mut().drain_output();
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_elapsed) => {
                self.dead = true;
                return Err(CallError::Limit(LimitExceeded::Timeout {
                    limit_secs: self.limits.timeout_secs,
                }));
            }
        };
        self.dead = true;
        let error = match error.downcast::<TapeError>() {
            Ok(tape) => return Err(CallError::Tape(tape)),
            Err(error) => error,
        };
        if error.downcast_ref::<Interrupted>().is_some() {
            return Err(CallError::Interrupted);
        }
        if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
            return Err(CallError::Limit(limit.clone()));
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Err(CallError::Limit(LimitExceeded::Fuel {
                limit: self.limits.fuel,
            })),
            Some(Trap::StackOverflow) => Err(CallError::Crashed {
                message: "stack overflow (unbounded recursion?)".into(),
                stderr,
            }),
            // Rust and C keep their stack in linear memory, below the data: running off
            // its end is an out-of-bounds access long before wasm's own stack overflows.
            Some(Trap::MemoryOutOfBounds) => Err(CallError::Crashed {
                message: format!(
                    "{} (in Rust and C guests usually a stack overflow from unbounded recursion)",
                    Trap::MemoryOutOfBounds
                ),
                stderr,
            }),
            Some(trap) => Err(CallError::Crashed {
                message: trap.to_string(),
                stderr,
            }),
            None => Err(CallError::Crashed {
                message: format!("{error:#}"),
                stderr,
            }),
        }
    }
}
