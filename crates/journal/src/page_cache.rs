//! Keeping journals out of the page cache: [`WriteBehind`] for the writer,
//! [`ReadBehind`] for readers.
//!
//! Why: a bulk copy's journal is about as large as the data it moved (every
//! embedding, once). Left in the page cache it pushes the database's own pages
//! out, and on a virtual machine whose memory the hypervisor backs on first
//! touch (and takes back when it is freed for a while), every fresh page-cache
//! page also costs a fault on the host. Measured on the 2-core VM of
//! docs/PERFORMANCE.md: writing 390 MB through fresh page cache took 1.5–1.9 s of
//! system time — most of the journal thread's work — against 0.15–0.19 s when
//! each written range is flushed and dropped so that its pages are reused;
//! reading it back cold took 0.65–0.96 s of system time against 0.06–0.10 s when
//! each range read is dropped.
//!
//! **Writing.** Every [`STEP_BYTES`] written, the writeback of the new range is
//! started (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait) and
//! the range before it — started one step earlier, so normally on disk by now —
//! is waited for and dropped (`posix_fadvise(POSIX_FADV_DONTNEED)`). After an
//! fsync every written byte is clean and is dropped at once. The page holding
//! the end of the file stays cached: the next frame appends to it.
//!
//! **Reading.** Every [`STEP_BYTES`] read, what was read is dropped and the next
//! two steps are asked for (`POSIX_FADV_WILLNEED`), so the disk reads ahead while
//! the reader decodes.
//!
//! This is about memory, not durability: commits are made durable by the
//! writer's fsync ([`crate::writer`]), never by anything here, and every call
//! here is advice — an error is logged and ignored. Linux only; elsewhere both
//! count bytes and do nothing else.

use std::fs::File;
use std::io::Read;

/// Bytes written (or read) between two steps (see the module documentation).
pub(crate) const STEP_BYTES: u64 = 8 << 20;

/// Where the written bytes of one journal file stand: written, handed to the disk,
/// dropped from the page cache.
pub(crate) struct WriteBehind {
    /// Bytes written to the file (handed to the operating system) so far.
    written: u64,
    /// The end of the range whose writeback was last started.
    started: u64,
    /// Everything before this offset was dropped from the page cache.
    dropped: u64,
}

impl WriteBehind {
    /// A file of which `written` bytes were written already (the magic line).
    pub(crate) fn new(written: u64) -> WriteBehind {
        WriteBehind {
            written,
            started: 0,
            dropped: 0,
        }
    }

    /// `bytes` more were written to the file.
    pub(crate) fn wrote(&mut self, bytes: u64) {
        self.written += bytes;
    }

    /// Whether a step is due: [`STEP_BYTES`] written since the last one. The caller
    /// flushes its buffer into the file before [`WriteBehind::step`].
    pub(crate) fn due(&self) -> bool {
        self.written - self.started >= STEP_BYTES
    }

    /// Starts the writeback of what was written since the last step, and drops what the
    /// step before started.
    pub(crate) fn step(&mut self, file: &File) {
        let (started, written) = (self.started, self.written);
        if written > started {
            advise::start_writeback(file, started, written - started);
        }
        if started > self.dropped {
            advise::wait_and_drop(file, self.dropped, started - self.dropped);
            self.dropped = started;
        }
        self.started = written;
    }

    /// Everything written was just fsynced: drop it all from the page cache.
    pub(crate) fn synced(&mut self, file: &File) {
        if self.written > self.dropped {
            advise::drop_clean(file, self.dropped, self.written - self.dropped);
        }
        self.dropped = self.written;
        self.started = self.written;
    }
}

/// A journal file read from start to end, each range dropped from the page cache
/// once read (see the module documentation).
pub(crate) struct ReadBehind {
    file: File,
    read: u64,
    dropped: u64,
}

impl ReadBehind {
    /// `file`, read from its current position (its start).
    pub(crate) fn new(file: File) -> ReadBehind {
        advise::sequential(&file);
        ReadBehind {
            file,
            read: 0,
            dropped: 0,
        }
    }
}

impl Read for ReadBehind {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read += n as u64;
        if self.read - self.dropped >= STEP_BYTES {
            advise::drop_clean(&self.file, self.dropped, self.read - self.dropped);
            self.dropped = self.read;
            // The next two steps asked for now: the disk reads them while this one
            // is decoded (the kernel's own read-ahead is a few hundred KiB).
            advise::will_need(&self.file, self.read, 2 * STEP_BYTES);
        }
        Ok(n)
    }
}

#[cfg(target_os = "linux")]
mod advise {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// The page size these offsets are rounded to (4 KiB: a larger page only keeps a
    /// little more cached).
    const PAGE: u64 = 4096;

    fn range(offset: u64, len: u64) -> (libc::off64_t, libc::off64_t) {
        // From the start of the page `offset` is in: that page was completed by
        // the writes after it.
        let start = offset / PAGE * PAGE;
        let len = offset + len - start;
        (start as libc::off64_t, len as libc::off64_t)
    }

    pub(super) fn start_writeback(file: &File, offset: u64, len: u64) {
        let (start, len) = range(offset, len);
        // SAFETY: a plain syscall on an open descriptor; no memory is passed.
        let rc = unsafe {
            libc::sync_file_range(file.as_raw_fd(), start, len, libc::SYNC_FILE_RANGE_WRITE)
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "journal: sync_file_range");
        }
    }

    pub(super) fn wait_and_drop(file: &File, offset: u64, len: u64) {
        let (start, rounded) = range(offset, len);
        // SAFETY: as above.
        let rc = unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                start,
                rounded,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "journal: sync_file_range");
            return;
        }
        drop_clean(file, offset, len);
    }

    pub(super) fn sequential(file: &File) {
        fadvise(file, 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }

    pub(super) fn will_need(file: &File, offset: u64, len: u64) {
        let (start, len) = range(offset, len);
        fadvise(file, start, len, libc::POSIX_FADV_WILLNEED);
    }

    /// The kernel keeps a partly covered last page.
    pub(super) fn drop_clean(file: &File, offset: u64, len: u64) {
        let (start, len) = range(offset, len);
        fadvise(file, start, len, libc::POSIX_FADV_DONTNEED);
    }

    fn fadvise(file: &File, start: libc::off64_t, len: libc::off64_t, advice: libc::c_int) {
        // SAFETY: a plain syscall on an open descriptor; no memory is passed.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), start, len, advice) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::from_raw_os_error(rc), "journal: posix_fadvise");
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod advise {
    use std::fs::File;

    pub(super) fn sequential(_: &File) {}
    pub(super) fn will_need(_: &File, _: u64, _: u64) {}
    pub(super) fn start_writeback(_: &File, _: u64, _: u64) {}
    pub(super) fn wait_and_drop(_: &File, _: u64, _: u64) {}
    pub(super) fn drop_clean(_: &File, _: u64, _: u64) {}
}
