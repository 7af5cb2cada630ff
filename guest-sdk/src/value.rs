//! SQL values as they cross the boundary, and the conversions from Rust values.

use migrun_types::ValueKind;
use std::fmt;

/// One SQL value, in the contract's canonical forms.
///
/// Temporal, uuid and decimal values travel as canonical text (see the
/// newtypes [`Uuid`], [`Date`], [`Time`], [`Timestamp`], [`Timestamptz`],
/// [`Decimal`]), so a plugin needs no date or decimal library and reads the
/// same value from every dialect. Build values with `From`
/// (`Value::from(42)`, `Value::from(Some("x"))`) or the [`params!`](crate::params) macro.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer of up to 64 bits.
    Int(i64),
    /// A double precision float.
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A JSON document as its text.
    Json(String),
    /// A UUID, lowercase hyphenated.
    Uuid(String),
    /// A date, `YYYY-MM-DD`.
    Date(String),
    /// A time of day without zone, `HH:MM:SS[.ffffff]`.
    Time(String),
    /// A date and time without zone, `YYYY-MM-DDTHH:MM:SS[.ffffff]`.
    Timestamp(String),
    /// An instant in UTC, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
    Timestamptz(String),
    /// An exact decimal as text, `-12.3400`.
    Decimal(String),
    /// A list of 32-bit floats (an embedding).
    Float32Array(Vec<f32>),
    /// A list of texts.
    TextArray(Vec<String>),
    /// A value of a type the host does not model (pgvector `sparsevec`, `ltree`,
    /// `interval`, PostGIS `geometry`, `int8[]`, …), in PostgreSQL's binary form, tagged
    /// with the type's name. Read from PostgreSQL results only; pass it on unchanged into a
    /// column of the same type on a PostgreSQL connection (contract 0.2.0).
    Typed {
        /// The type's name as the database reported it (`ltree`, `int8[]`).
        type_name: String,
        /// The value in the type's binary (`send`/`recv`) format.
        bytes: Vec<u8>,
    },
}

impl Value {
    /// Which case of the WIT `value` variant this is.
    pub fn value_kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Boolean,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Text(_) => ValueKind::Text,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Json(_) => ValueKind::Json,
            Value::Uuid(_) => ValueKind::Uuid,
            Value::Date(_) => ValueKind::Date,
            Value::Time(_) => ValueKind::Time,
            Value::Timestamp(_) => ValueKind::Timestamp,
            Value::Timestamptz(_) => ValueKind::Timestamptz,
            Value::Decimal(_) => ValueKind::Decimal,
            Value::Float32Array(_) => ValueKind::Float32Array,
            Value::TextArray(_) => ValueKind::TextArray,
            Value::Typed { .. } => ValueKind::Typed,
        }
    }

    /// The kind's name as the WIT spells it (`int`, `timestamptz`, …), for messages.
    pub fn kind(&self) -> &'static str {
        self.value_kind().as_str()
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer, if this is an `int`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, if this is a `boolean`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The float, if this is a `float`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The text of any value carried as text (`text`, `json`, `uuid`, the temporal kinds, `decimal`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s)
            | Value::Json(s)
            | Value::Uuid(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::Timestamptz(s)
            | Value::Decimal(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is `bytes`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Canonical text, `NULL` for null, lowercase hex for bytes and JSON arrays for lists;
/// meant for logs and check details, never for building SQL (bind parameters instead).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => {
                f.write_str("0x")?;
                b.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
            }
            Value::Json(s)
            | Value::Uuid(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::Timestamptz(s)
            | Value::Decimal(s) => f.write_str(s),
            Value::Float32Array(v) => write!(f, "{v:?}"),
            Value::TextArray(v) => write!(f, "{v:?}"),
            Value::Typed { type_name, bytes } => {
                write!(f, "{type_name}:")?;
                bytes.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
            }
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<Vec<f32>> for Value {
    fn from(v: Vec<f32>) -> Self {
        Value::Float32Array(v)
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::TextArray(v)
    }
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Self {
        v.clone()
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Defines a newtype over the canonical text of one value kind.
macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident => $variant:ident, $magic:literal) => {
        $(#[$doc])*
        ///
        /// It converts into the matching [`Value`] variant, deserializes from that
        /// column's text, and serializes (through [`to_values`](crate::to_values)) back to that variant.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps canonical text; the host validates it when the value is bound.
            pub fn new(text: impl Into<String>) -> Self {
                $name(text.into())
            }

            /// The canonical text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for Value {
            fn from(v: $name) -> Self {
                Value::$variant(v.0)
            }
        }

        impl From<&$name> for Value {
            fn from(v: &$name) -> Self {
                Value::$variant(v.0.clone())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map($name)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // The marker name lets the SDK's serializer pick the right variant;
                // any other serializer sees a plain newtype around a string.
                s.serialize_newtype_struct($magic, &self.0)
            }
        }
    };
}

text_newtype!(
    /// A UUID in lowercase hyphenated form (`67e55044-10b1-426f-9247-bb680e5fe0c8`).
    Uuid => Uuid, "$migrun::uuid"
);
text_newtype!(
    /// A JSON document as its text.
    Json => Json, "$migrun::json"
);
text_newtype!(
    /// An exact decimal number as text (`-12.3400`), never rounded through a float.
    Decimal => Decimal, "$migrun::decimal"
);
text_newtype!(
    /// A calendar date, `YYYY-MM-DD`.
    Date => Date, "$migrun::date"
);
text_newtype!(
    /// A time of day without zone, `HH:MM:SS` or `HH:MM:SS.ffffff`.
    Time => Time, "$migrun::time"
);
text_newtype!(
    /// A date and time without zone, `YYYY-MM-DDTHH:MM:SS[.ffffff]`.
    Timestamp => Timestamp, "$migrun::timestamp"
);
text_newtype!(
    /// An instant in UTC, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`.
    Timestamptz => Timestamptz, "$migrun::timestamptz"
);

/// The value for a newtype marker name written by the text newtypes' `Serialize`;
/// the text back when `name` is no marker.
pub(crate) fn from_marker(name: &str, text: String) -> Result<Value, String> {
    Ok(match name {
        "$migrun::uuid" => Value::Uuid(text),
        "$migrun::json" => Value::Json(text),
        "$migrun::decimal" => Value::Decimal(text),
        "$migrun::date" => Value::Date(text),
        "$migrun::time" => Value::Time(text),
        "$migrun::timestamp" => Value::Timestamp(text),
        "$migrun::timestamptz" => Value::Timestamptz(text),
        _ => return Err(text),
    })
}

/// Builds a `Vec<Value>` of query parameters from Rust values.
///
/// Each argument goes through `Value::from`, so integers, floats, booleans,
/// strings, bytes, `Option`s and the text newtypes all work.
///
/// ```
/// use migrun_sdk::{params, Timestamp, Value};
///
/// let email: Option<&str> = None;
/// let p = params![42, "alice", email, Timestamp::new("2024-01-01T00:00:00")];
/// assert_eq!(p[0], Value::Int(42));
/// assert_eq!(p[2], Value::Null);
/// assert_eq!(p[3], Value::Timestamp("2024-01-01T00:00:00".into()));
/// assert!(params![].is_empty());
/// ```
#[macro_export]
macro_rules! params {
    () => {
        ::std::vec::Vec::<$crate::Value>::new()
    };
    ($($value:expr),+ $(,)?) => {
        ::std::vec![$($crate::Value::from($value)),+]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Value::from(7u32), Value::Int(7));
        assert_eq!(Value::from(-7i8), Value::Int(-7));
        assert_eq!(Value::from(1.5f32), Value::Float(1.5));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(Some("x")), Value::Text("x".into()));
        assert_eq!(Value::from(vec![1u8, 2]), Value::Bytes(vec![1, 2]));
        assert_eq!(
            Value::from(Decimal::new("1.50")),
            Value::Decimal("1.50".into())
        );
        assert_eq!(Value::from(Json::new("{}")), Value::Json("{}".into()));
        assert_eq!(
            Value::from(Uuid::new("67e55044-10b1-426f-9247-bb680e5fe0c8")).kind(),
            "uuid"
        );
    }

    #[test]
    fn display_is_readable() {
        assert_eq!(Value::Null.to_string(), "NULL");
        assert_eq!(Value::Text("it's".into()).to_string(), "\"it's\"");
        assert_eq!(Value::Bytes(vec![0, 255]).to_string(), "0x00ff");
        assert_eq!(
            Value::Timestamp("2024-01-01T00:00:00".into()).to_string(),
            "2024-01-01T00:00:00"
        );
    }
}
