//! [`BulkWriteKind`]: which structured write a plugin asked for (contract 0.2.0).

/// A structured write by key, as the WIT's `connection.bulk-update`, `bulk-upsert` and
/// `bulk-delete` name them (and the journal, the plan and the replay diff after them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum BulkWriteKind {
    /// `bulk-update`: sets columns of the rows whose key matches; a key that matches no
    /// row changes nothing.
    Update,
    /// `bulk-upsert`: inserts each row, or sets its columns where the key exists already.
    Upsert,
    /// `bulk-delete`: deletes the rows whose key matches.
    Delete,
}

impl BulkWriteKind {
    /// `update`, `upsert` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkWriteKind::Update => "update",
            BulkWriteKind::Upsert => "upsert",
            BulkWriteKind::Delete => "delete",
        }
    }

    /// The WIT function's name: `bulk-update`, `bulk-upsert`, `bulk-delete`.
    pub fn call_name(self) -> &'static str {
        match self {
            BulkWriteKind::Update => "bulk-update",
            BulkWriteKind::Upsert => "bulk-upsert",
            BulkWriteKind::Delete => "bulk-delete",
        }
    }
}

impl core::fmt::Display for BulkWriteKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
