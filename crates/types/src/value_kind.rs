//! [`ValueKind`]: the cases of the WIT `value` variant, by name.

use std::fmt;

/// Which case of the WIT `value` variant a value is. The host's value and
/// the SDK's carry different payloads (the host parses temporal text into
/// typed values, the SDK keeps the canonical text); both name their kind
/// through this one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// SQL NULL.
    Null,
    /// `boolean`.
    Boolean,
    /// `int` (s64).
    Int,
    /// `float` (f64).
    Float,
    /// `text`.
    Text,
    /// `bytes`.
    Bytes,
    /// `json`, as text.
    Json,
    /// `uuid`, as canonical text.
    Uuid,
    /// `date`, `YYYY-MM-DD`.
    Date,
    /// `time`, `HH:MM:SS[.ffffff]`.
    Time,
    /// `timestamp`, `YYYY-MM-DDTHH:MM:SS[.ffffff]`.
    Timestamp,
    /// `timestamptz`, in UTC with a trailing `Z`.
    Timestamptz,
    /// `decimal`, plain notation.
    Decimal,
    /// `float32-array` (embeddings).
    Float32Array,
    /// `text-array`.
    TextArray,
    /// `typed` (contract 0.2.0): a value of a type the host does not model,
    /// in its dialect's binary form, tagged with the type's name.
    Typed,
}

impl ValueKind {
    /// Every kind, in the WIT's order.
    pub const ALL: [ValueKind; 16] = [
        ValueKind::Null,
        ValueKind::Boolean,
        ValueKind::Int,
        ValueKind::Float,
        ValueKind::Text,
        ValueKind::Bytes,
        ValueKind::Json,
        ValueKind::Uuid,
        ValueKind::Date,
        ValueKind::Time,
        ValueKind::Timestamp,
        ValueKind::Timestamptz,
        ValueKind::Decimal,
        ValueKind::Float32Array,
        ValueKind::TextArray,
        ValueKind::Typed,
    ];

    /// The kind's name as the WIT spells it (`int`, `timestamptz`, `float32-array`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Boolean => "boolean",
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::Text => "text",
            ValueKind::Bytes => "bytes",
            ValueKind::Json => "json",
            ValueKind::Uuid => "uuid",
            ValueKind::Date => "date",
            ValueKind::Time => "time",
            ValueKind::Timestamp => "timestamp",
            ValueKind::Timestamptz => "timestamptz",
            ValueKind::Decimal => "decimal",
            ValueKind::Float32Array => "float32-array",
            ValueKind::TextArray => "text-array",
            ValueKind::Typed => "typed",
        }
    }

    /// The kind named `name` as the WIT spells it.
    pub fn from_name(name: &str) -> Option<ValueKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ValueKind::ALL {
            assert_eq!(ValueKind::from_name(kind.as_str()), Some(kind));
        }
    }
}
