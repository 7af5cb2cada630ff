//! What a plugin's WASI world looks like: nothing but deterministic stand-ins.
//!
//! Full WASI is linked (Python and JavaScript guests break when parts of it
//! trap), but every door is shut: no preopened directories, no environment,
//! no arguments, no sockets or name lookups, no stdin. Clocks and randomness
//! are the host's deterministic stand-ins, seeded by [`SandboxSeeds`], so two
//! runs with the same seeds and the same database answers compute the same
//! writes. stdout/stderr are captured and turned into log lines (and, for a
//! crash, into the error message: a Rust panic message lands on stderr).
//!
//! The memory cap is enforced here too, by [`MemoryLimiter`], which fails a
//! growth past the cap with a typed [`LimitExceeded::Memory`] instead of
//! letting each guest language react to a failed `memory.grow` its own way.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::SeedableRng;
use serde::Serialize;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// A limit the plugin ran into. The call that hit it is aborted; its unit is rolled back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// The call used up its fuel.
    #[error(
        "fuel limit exhausted: the call used all {limit} units of fuel without returning (an endless loop, or raise [limits] fuel)"
    )]
    Fuel {
        /// The fuel each call gets.
        limit: u64,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error(
        "memory limit exceeded: the plugin asked for {requested_mib} MiB of linear memory, the limit is {limit_mib} MiB (raise [limits] memory_mib)"
    )]
    Memory {
        /// The cap.
        limit_mib: u64,
        /// What it asked for.
        requested_mib: u64,
    },
    /// The call ran longer than the wall-clock limit.
    #[error(
        "timeout: the call ran longer than {limit_secs} s of wall-clock time (raise [limits] timeout_secs)"
    )]
    Timeout {
        /// The limit, in seconds.
        limit_secs: u64,
    },
}

pub use migrun_journal::SandboxSeeds;

/// Each clock reading advances the deterministic clocks by this much, so
/// that durations measured by the plugin are positive but do not depend on
/// how fast the machine is.
const CLOCK_TICK_NANOS: u64 = 1_000;

/// A wall clock that starts at a seed and advances one tick per reading.
struct DeterministicWallClock {
    start: u64,
    readings: AtomicU64,
}

impl HostWallClock for DeterministicWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(CLOCK_TICK_NANOS)
    }
    fn now(&self) -> Duration {
        let n = self.readings.fetch_add(1, Ordering::Relaxed);
        Duration::from_nanos(self.start + n * CLOCK_TICK_NANOS)
    }
}

/// A monotonic clock that starts far from zero (some guests compute negative times from 0)
/// and advances one tick per reading.
struct DeterministicMonotonicClock {
    readings: AtomicU64,
}

const MONOTONIC_START_NANOS: u64 = 1 << 40;

impl HostMonotonicClock for DeterministicMonotonicClock {
    fn resolution(&self) -> u64 {
        CLOCK_TICK_NANOS
    }
    fn now(&self) -> u64 {
        MONOTONIC_START_NANOS + self.readings.fetch_add(1, Ordering::Relaxed) * CLOCK_TICK_NANOS
    }
}

/// Builds the locked-down WASI context of one run.
pub fn wasi_ctx(seeds: SandboxSeeds, stdout: CapturedOutput, stderr: CapturedOutput) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(stdout)
        .stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .wall_clock(DeterministicWallClock {
            start: seeds.clock_start_unix_nanos,
            readings: AtomicU64::new(0),
        })
        .monotonic_clock(DeterministicMonotonicClock {
            readings: AtomicU64::new(0),
        })
        .secure_random(rand::rngs::StdRng::seed_from_u64(seeds.random_seed))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(
            seeds.random_seed ^ 0x9e37_79b9_7f4a_7c15,
        ))
        .insecure_random_seed(u128::from(seeds.random_seed));
    builder.build()
}

/// Bound on captured output kept between two drains; older bytes are dropped.
const CAPTURE_LIMIT: usize = 256 * 1024;

/// A guest's stdout or stderr, captured in memory (the tail of it, bounded).
#[derive(Clone, Default)]
pub struct CapturedOutput {
    buffer: Arc<Mutex<VecDeque<u8>>>,
}

impl CapturedOutput {
    /// Takes what was written since the last call, as lossy UTF-8.
    pub fn take(&self) -> String {
        let mut buffer = self.buffer.lock().expect("capture lock");
        let bytes: Vec<u8> = buffer.drain(..).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut buffer = self.buffer.lock().expect("capture lock");
        buffer.extend(buf);
        let excess = buffer.len().saturating_sub(CAPTURE_LIMIT);
        buffer.drain(..excess);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Caps linear memory and table growth.
pub struct MemoryLimiter {
    limit_bytes: usize,
}

/// Bound on table elements; generous for every guest language seen (Python creates many).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    /// A limiter capping each linear memory at `limit_mib` MiB.
    pub fn new(limit_mib: u64) -> Self {
        MemoryLimiter {
            limit_bytes: usize::try_from(limit_mib.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit_mib: (self.limit_bytes / (1024 * 1024)) as u64,
                requested_mib: (desired / (1024 * 1024)) as u64,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_are_deterministic_and_advance() {
        let wall = DeterministicWallClock {
            start: 1_700_000_000_000_000_000,
            readings: AtomicU64::new(0),
        };
        let a = wall.now();
        let b = wall.now();
        assert_eq!(a, Duration::from_nanos(1_700_000_000_000_000_000));
        assert_eq!(b - a, Duration::from_nanos(CLOCK_TICK_NANOS));
    }

    #[test]
    fn memory_limit_is_typed() {
        let mut limiter = MemoryLimiter::new(1);
        assert!(limiter.memory_growing(0, 1024 * 1024, None).unwrap());
        let err = limiter
            .memory_growing(0, 2 * 1024 * 1024, None)
            .unwrap_err();
        assert_eq!(
            err.downcast_ref::<LimitExceeded>(),
            Some(&LimitExceeded::Memory {
                limit_mib: 1,
                requested_mib: 2
            })
        );
    }
}
