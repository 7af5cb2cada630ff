//! [`CallObserver`]: the one hook through which something outside the session
//! watches the calls it runs live — the dry-run's plan and its lint.
//!
//! The session knows nothing of plans or lint rules: it says which statement is
//! about to run on a writable connection (with that connection, idle, so the
//! observer may read from it — lint looks up row counts), what every live call
//! answered, and when a checkpoint was saved. Calls answered from a journal
//! (replays) are not observed: nothing ran.

use futures::future::BoxFuture;

use migrun_db as db;
use migrun_journal::{CallResult, HostCall};

/// Watches the calls a [`Session`](super::Session) runs live. Installed by the runner
/// ([`Session::observe_calls`](super::Session::observe_calls)); none in a live run or replay.
pub trait CallObserver: Send {
    /// `sql` is about to run through `execute` on the writable connection `conn`
    /// (idle, in the unit's transaction). Reading from it is allowed; writing is not.
    fn before_write<'a>(
        &'a mut self,
        conn: &'a mut db::Connection,
        sql: &'a str,
    ) -> BoxFuture<'a, ()>;

    /// A call ran live (and was recorded) with `result`.
    fn after_call(&mut self, call: &HostCall, result: &CallResult);

    /// `checkpoint.save` of `unit` succeeded.
    fn checkpoint_saved(&mut self, unit: &str);
}
