//! PostgreSQL: sequences advance outside transactions, so a dry-run snapshots
//! them first and puts back what its rollback does not undo (see the module
//! docs of `dry_run`).

use futures::future::BoxFuture;

use super::PgDriver;
use crate::driver::DryRunMechanics;
use crate::dry_run::{
    Active, DryRunMode, DryRunRestore, SEQUENCES_PER_QUERY, Sequence, boolean, int, text,
};
use crate::{Connection, DbError};
use migrun_types::value::Value;

impl DryRunMechanics for PgDriver {
    fn enter_dry_run<'a>(
        &'a self,
        conn: &'a mut Connection,
        _run_id: &'a str,
        _writes: &'a [String],
    ) -> BoxFuture<'a, Result<DryRunMode, DbError>> {
        Box::pin(async move {
            let sequences = conn.snapshot_sequences().await?;
            let unrestorable: Vec<String> = sequences
                .iter()
                .filter(|s| s.state.is_none() || !s.updatable)
                .map(|s| s.display.clone())
                .collect();
            let mode = DryRunMode::Sequences {
                sequences: sequences.len(),
                unrestorable,
            };
            conn.dry_run = Some(Active::Sequences(sequences));
            Ok(mode)
        })
    }
}

impl Connection {
    /// Why `sequence` must not be put back from `now` to `before`, if another
    /// session evidently used it (see the module docs); `None` when only this
    /// session did.
    pub(crate) async fn used_elsewhere(
        &mut self,
        sequence: &Sequence,
        before: (i64, bool),
        now: (i64, bool),
    ) -> Result<Option<String>, DbError> {
        // 1. The last value this session took, and what it may have cached beyond it.
        let mine = match self
            .host_query(
                "SELECT currval($1::oid::regclass)",
                &[Value::Int(sequence.oid)],
            )
            .await
        {
            Ok(rows) => rows.first().and_then(|r| r.first()).and_then(int),
            Err(e) if e.code.as_deref() == Some("55000") => None,
            Err(e) => return Err(e),
        };
        let Some(mine) = mine else {
            return Ok(Some(
                "another session advanced it; the dry-run took no value from it".into(),
            ));
        };
        let cached = sequence.increment.saturating_mul(sequence.cache - 1);
        let (low, high) = if sequence.increment > 0 {
            (mine, mine.saturating_add(cached))
        } else {
            (mine.saturating_add(cached), mine)
        };
        if !(low..=high).contains(&now.0) {
            return Ok(Some(format!(
                "another session took values after the dry-run's last one, {mine}"
            )));
        }
        // 2. Committed rows beyond the snapshot can only be another session's.
        if let Some((table, column)) = &sequence.owner {
            let op = match (sequence.increment > 0, before.1) {
                (true, true) => ">",
                (true, false) => ">=",
                (false, true) => "<",
                (false, false) => "<=",
            };
            let rows = self
                .host_query(
                    &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} {op} $1)"),
                    &[Value::Int(before.0)],
                )
                .await?;
            if rows.first().and_then(|r| r.first()).and_then(boolean) == Some(true) {
                return Ok(Some(format!(
                    "committed rows of {table} hold values beyond {}: another session used it",
                    before.0
                )));
            }
        }
        Ok(None)
    }

    pub(crate) async fn snapshot_sequences(&mut self) -> Result<Vec<Sequence>, DbError> {
        const LIST: &str = "\
            SELECT c.oid::int8, n.nspname || '.' || c.relname, \
                   quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                   s.seqincrement, s.seqcache, \
                   has_sequence_privilege(c.oid, 'SELECT'), has_sequence_privilege(c.oid, 'UPDATE'), \
                   owner.tbl, owner.col \
            FROM pg_class c \
            JOIN pg_namespace n ON n.oid = c.relnamespace \
            JOIN pg_sequence s ON s.seqrelid = c.oid \
            LEFT JOIN LATERAL ( \
                SELECT quote_ident(tn.nspname) || '.' || quote_ident(t.relname) AS tbl, quote_ident(a.attname) AS col \
                FROM pg_depend d \
                JOIN pg_class t ON t.oid = d.refobjid \
                JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 \
                LIMIT 1) owner ON true \
            WHERE c.relkind = 'S' \
              AND (has_sequence_privilege(c.oid, 'USAGE') OR has_sequence_privilege(c.oid, 'UPDATE')) \
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
            ORDER BY 2";
        let rows = self.host_query(LIST, &[]).await?;
        let mut sequences = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |i: usize| row.get(i).cloned().unwrap_or(Value::Null);
            let (Some(oid), Some(display), Some(quoted)) =
                (int(&get(0)), text(&get(1)), text(&get(2)))
            else {
                continue;
            };
            let readable = boolean(&get(5)).unwrap_or(false);
            sequences.push(Sequence {
                oid,
                display,
                quoted,
                increment: int(&get(3)).unwrap_or(1),
                cache: int(&get(4)).unwrap_or(1).max(1),
                owner: text(&get(7)).zip(text(&get(8))),
                state: readable.then_some((0, false)),
                updatable: boolean(&get(6)).unwrap_or(false),
            });
        }
        let states = self.sequence_states(&sequences).await?;
        for (sequence, state) in sequences.iter_mut().zip(states) {
            sequence.state = state;
        }
        Ok(sequences)
    }

    /// `(last_value, is_called)` of each readable sequence (`None` for the others).
    pub(crate) async fn sequence_states(
        &mut self,
        sequences: &[Sequence],
    ) -> Result<Vec<Option<(i64, bool)>>, DbError> {
        let mut states = vec![None; sequences.len()];
        let readable: Vec<usize> = (0..sequences.len())
            .filter(|&i| sequences[i].state.is_some())
            .collect();
        for chunk in readable.chunks(SEQUENCES_PER_QUERY) {
            let sql = chunk
                .iter()
                .map(|&i| {
                    format!(
                        "SELECT {i}::int8, last_value, is_called FROM {}",
                        sequences[i].quoted
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            for row in self.host_query(&sql, &[]).await? {
                if let (Some(i), Some(last), Some(called)) = (
                    row.first().and_then(int),
                    row.get(1).and_then(int),
                    row.get(2).and_then(boolean),
                ) && let Some(slot) = states.get_mut(i as usize)
                {
                    *slot = Some((last, called));
                }
            }
        }
        Ok(states)
    }

    pub(crate) async fn restore_sequences(
        &mut self,
        mut sequences: Vec<Sequence>,
        restore: &mut DryRunRestore,
    ) {
        let now = match self.sequence_states(&sequences).await {
            Ok(now) => now,
            Err(e) => {
                restore.problems.push(format!(
                    "cannot read the sequences after the dry-run, none restored: {e}"
                ));
                return;
            }
        };
        for (sequence, now) in sequences.iter_mut().zip(now) {
            let (Some(before), Some(now)) = (sequence.state, now) else {
                continue;
            };
            if before == now {
                continue;
            }
            let name = sequence.display.clone();
            let moved = format!("{} → {}", show_state(before), show_state(now));
            if !sequence.updatable {
                restore.problems.push(format!(
                    "sequence {name} moved ({moved}) and cannot be reset: no UPDATE privilege on it"
                ));
                continue;
            }
            match self.used_elsewhere(sequence, before, now).await {
                Ok(Some(why)) => {
                    restore
                        .left
                        .push(format!("sequence {name} at {} ({why})", show_state(now)));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    restore.left.push(format!(
                        "sequence {name} at {} (cannot tell whether another session used it: {e})",
                        show_state(now)
                    ));
                    continue;
                }
            }
            let set = self
                .host_query(
                    "SELECT setval($1::oid::regclass, $2, $3)",
                    &[
                        Value::Int(sequence.oid),
                        Value::Int(before.0),
                        Value::Bool(before.1),
                    ],
                )
                .await;
            match set {
                Ok(_) => restore.restored.push(format!(
                    "sequence {name}: {} → {}",
                    show_state(now),
                    show_state(before)
                )),
                Err(e) => restore.problems.push(format!(
                    "sequence {name} moved ({moved}) and cannot be reset: {e}"
                )),
            }
        }
    }
}

pub(crate) fn show_state((last, called): (i64, bool)) -> String {
    if called {
        format!("{last}")
    } else {
        format!("{last} (not yet called)")
    }
}
