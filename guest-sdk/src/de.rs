//! A small `serde::Deserializer` over one value and over one row.
//!
//! Rows decode into structs by column name, into tuples by position, and —
//! when a row has a single column — into that column's value. Values decode
//! by kind: ints into any integer type (range-checked by serde), floats,
//! booleans (also from the 0/1 integers MySQL and SQLite use), text and every
//! text-carried kind (json, uuid, temporal, decimal) into strings, bytes into
//! `Vec<u8>` or `serde_bytes`, NULL into `Option::None`.

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

use crate::row::Column;
use crate::{Error, Value};

/// A decoding failure; becomes [`Error::Failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

impl From<DeError> for Error {
    fn from(e: DeError) -> Self {
        Error::Failed(format!("cannot decode row: {}", e.0))
    }
}

/// Deserializes one value.
pub(crate) struct ValueDeserializer<'de> {
    value: &'de Value,
}

impl<'de> ValueDeserializer<'de> {
    pub(crate) fn new(value: &'de Value) -> Self {
        ValueDeserializer { value }
    }

    fn unexpected(&self) -> Unexpected<'de> {
        match self.value {
            Value::Null => Unexpected::Other("NULL (use Option<T> for nullable columns)"),
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Int(i) => Unexpected::Signed(*i),
            Value::Float(f) => Unexpected::Float(*f),
            Value::Text(s) => Unexpected::Str(s),
            Value::Bytes(b) => Unexpected::Bytes(b),
            Value::Json(_) => Unexpected::Other("a json value"),
            Value::Uuid(_) => Unexpected::Other("a uuid value"),
            Value::Date(_) => Unexpected::Other("a date value"),
            Value::Time(_) => Unexpected::Other("a time value"),
            Value::Timestamp(_) => Unexpected::Other("a timestamp value"),
            Value::Timestamptz(_) => Unexpected::Other("a timestamptz value"),
            Value::Decimal(_) => Unexpected::Other("a decimal value"),
            Value::Float32Array(_) => Unexpected::Other("a float32-array value"),
            Value::TextArray(_) => Unexpected::Other("a text-array value"),
            Value::Typed { .. } => {
                Unexpected::Other("a typed value (a type the host does not model)")
            }
        }
    }

    fn invalid<V: Visitor<'de>, T>(&self, visitor: &V) -> Result<T, DeError> {
        Err(de::Error::invalid_type(self.unexpected(), visitor))
    }

    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Bool(b) => visitor.visit_u64(u64::from(*b)),
            // An exact decimal with no fraction (PostgreSQL's SUM of integers is numeric).
            Value::Decimal(s) => match parse_integral_decimal(s) {
                Some(i) => match (i64::try_from(i), u64::try_from(i)) {
                    (Ok(i), _) => visitor.visit_i64(i),
                    (_, Ok(u)) => visitor.visit_u64(u),
                    _ => visitor.visit_i128(i),
                },
                None => self.invalid(&visitor),
            },
            _ => self.invalid(&visitor),
        }
    }

    fn float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Int(i) => visitor.visit_f64(*i as f64),
            Value::Decimal(s) => match s.trim().parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(_) => self.invalid(&visitor),
            },
            _ => self.invalid(&visitor),
        }
    }
}

/// `"12"`, `"-12.000"` → 12; anything with a non-zero fraction or exponent → `None`.
fn parse_integral_decimal(s: &str) -> Option<i128> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    int.parse().ok()
}

macro_rules! forward_integers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.integer(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b),
            Value::Float32Array(v) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(v.iter().copied()))
            }
            Value::TextArray(v) => visitor.visit_seq(de::value::SeqDeserializer::new(
                v.iter().map(String::as_str),
            )),
            Value::Typed { .. } => self.invalid(&visitor),
            other => visitor.visit_borrowed_str(other.as_str().unwrap_or_default()),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(0) => visitor.visit_bool(false),
            Value::Int(1) => visitor.visit_bool(true),
            _ => self.invalid(&visitor),
        }
    }

    forward_integers!(
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Bytes(b) => match std::str::from_utf8(b) {
                // Some MySQL catalogs report text as binary strings.
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => self.invalid(&visitor),
            },
            other => match other.as_str() {
                Some(s) => visitor.visit_borrowed_str(s),
                None => self.invalid(&visitor),
            },
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b),
            Value::Text(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Bytes(b) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(b.iter().copied()))
            }
            Value::Float32Array(v) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(v.iter().copied()))
            }
            Value::TextArray(v) => visitor.visit_seq(de::value::SeqDeserializer::new(
                v.iter().map(String::as_str),
            )),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.invalid(&visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.invalid(&visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // Text decodes into a unit variant of the same name (`"admin"` → `Role::Admin`
        // with the usual serde renames).
        match self.value {
            Value::Text(s) => visitor.visit_enum(BorrowedStrDeserializer::<DeError>::new(s)),
            _ => self.invalid(&visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

impl<'de> IntoDeserializer<'de, DeError> for &'de Value {
    type Deserializer = ValueDeserializer<'de>;

    fn into_deserializer(self) -> Self::Deserializer {
        ValueDeserializer::new(self)
    }
}

/// Deserializes one row.
pub(crate) struct RowDeserializer<'de> {
    columns: &'de [Column],
    values: &'de [Value],
}

impl<'de> RowDeserializer<'de> {
    pub(crate) fn new(columns: &'de [Column], values: &'de [Value]) -> Self {
        RowDeserializer { columns, values }
    }

    /// The only value of a one-column row, for decoding a row into a scalar.
    fn single(&self) -> Result<ValueDeserializer<'de>, DeError> {
        match self.values {
            [value] => Ok(ValueDeserializer::new(value)),
            _ => Err(DeError(format!(
                "a single value needs a one-column row, this row has {} columns ({})",
                self.values.len(),
                self.column_list()
            ))),
        }
    }

    fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(Column::name).collect();
        names.join(", ")
    }

    fn with_column(&self, index: usize, e: DeError) -> DeError {
        match self.columns.get(index) {
            Some(c) => DeError(format!("column `{}`: {}", c.name(), e.0)),
            None => e,
        }
    }
}

macro_rules! forward_to_single {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.single()?.$method(visitor).map_err(|e| self.with_column(0, e))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for RowDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    forward_to_single!(
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_option
        deserialize_unit deserialize_identifier
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.single()?.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_seq(RowSeq { row: self, next: 0 })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if len != self.values.len() {
            return Err(DeError(format!(
                "a tuple of {len} needs {len} columns, this row has {} ({})",
                self.values.len(),
                self.column_list()
            )));
        }
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(RowMap { row: self, next: 0 })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct RowSeq<'de> {
    row: RowDeserializer<'de>,
    next: usize,
}

impl<'de> de::SeqAccess<'de> for RowSeq<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let index = self.next;
        let Some(value) = self.row.values.get(index) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(ValueDeserializer::new(value))
            .map(Some)
            .map_err(|e| self.row.with_column(index, e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.values.len() - self.next)
    }
}

struct RowMap<'de> {
    row: RowDeserializer<'de>,
    next: usize,
}

impl<'de> de::MapAccess<'de> for RowMap<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.row.columns.get(self.next) {
            Some(column) if self.next < self.row.values.len() => seed
                .deserialize(BorrowedStrDeserializer::new(column.name()))
                .map(Some),
            _ => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let index = self.next;
        self.next += 1;
        let value = self
            .row
            .values
            .get(index)
            .ok_or_else(|| DeError("value requested past the end of the row".into()))?;
        seed.deserialize(ValueDeserializer::new(value))
            .map_err(|e| self.row.with_column(index, e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.values.len().saturating_sub(self.next))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use crate::{Column, Decimal, Row, Rows, Timestamp, Value};

    fn cols(names: &[&str]) -> Vec<Column> {
        names.iter().map(|n| Column::new(*n, "test")).collect()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct User {
        id: i64,
        name: String,
        email: Option<String>,
        sign_in_count: u32,
        admin: bool,
        score: f64,
        created_at: Timestamp,
        avatar: Option<Vec<u8>>,
        #[serde(with = "serde_bytes")]
        salt: Vec<u8>,
        balance: Decimal,
    }

    fn user_rows() -> Rows {
        Rows::new(
            cols(&[
                "id",
                "name",
                "email",
                "sign_in_count",
                "admin",
                "score",
                "created_at",
                "avatar",
                "salt",
                "balance",
                "ignored_extra",
            ]),
            vec![
                vec![
                    Value::Int(1),
                    Value::Text("Zoë O'Brien".into()),
                    Value::Text("zoe@example.com".into()),
                    Value::Int(3),
                    Value::Int(1),
                    Value::Float(1.5),
                    Value::Timestamp("2024-01-02T03:04:05.123456".into()),
                    Value::Bytes(vec![1, 2]),
                    Value::Bytes(vec![9]),
                    Value::Decimal("-12.3400".into()),
                    Value::Null,
                ],
                vec![
                    Value::Int(2),
                    Value::Text("李".into()),
                    Value::Null,
                    Value::Int(0),
                    Value::Bool(false),
                    Value::Int(2),
                    Value::Timestamp("2024-01-02T03:04:05".into()),
                    Value::Null,
                    Value::Bytes(vec![]),
                    Value::Decimal("0".into()),
                    Value::Text("x".into()),
                ],
            ],
        )
    }

    #[test]
    fn rows_decode_into_structs_by_column_name() {
        let users: Vec<User> = user_rows().deserialize().unwrap();
        assert_eq!(
            users[0],
            User {
                id: 1,
                name: "Zoë O'Brien".into(),
                email: Some("zoe@example.com".into()),
                sign_in_count: 3,
                admin: true,
                score: 1.5,
                created_at: Timestamp::new("2024-01-02T03:04:05.123456"),
                avatar: Some(vec![1, 2]),
                salt: vec![9],
                balance: Decimal::new("-12.3400"),
            }
        );
        assert_eq!(users[1].email, None);
        assert_eq!(users[1].score, 2.0);
        assert!(!users[1].admin);
    }

    #[test]
    fn borrowed_strings_decode_from_a_row() {
        #[derive(Deserialize)]
        struct Name<'a> {
            name: &'a str,
        }
        let rows = user_rows();
        let name: Name<'_> = rows.rows()[1].deserialize().unwrap();
        assert_eq!(name.name, "李");
    }

    #[test]
    fn null_into_non_option_names_the_column() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Strict {
            email: String,
        }
        let err = user_rows().rows()[1]
            .deserialize::<Strict>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("column `email`"), "{err}");
        assert!(err.contains("NULL"), "{err}");
        assert!(err.contains("Option<T>"), "{err}");
    }

    #[test]
    fn missing_columns_and_out_of_range_ints_are_errors() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct NeedsAge {
            age: i32,
        }
        let err = user_rows()
            .deserialize::<NeedsAge>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `age`"), "{err}");

        let row = Row::new(cols(&["n"]), vec![Value::Int(300)]);
        let err = row.get::<u8>("n").unwrap_err().to_string();
        assert!(err.contains("column `n`") && err.contains("300"), "{err}");
        let row = Row::new(cols(&["n"]), vec![Value::Int(-1)]);
        assert!(row.get::<u64>("n").is_err());
    }

    #[test]
    fn wrong_kinds_are_errors() {
        let row = Row::new(
            cols(&["t", "b"]),
            vec![
                Value::Timestamp("2024-01-01T00:00:00".into()),
                Value::Int(2),
            ],
        );
        let err = row.get::<i64>("t").unwrap_err().to_string();
        assert!(err.contains("timestamp"), "{err}");
        assert!(row.get::<bool>("b").is_err(), "2 is not a boolean");
        assert_eq!(row.get::<String>("t").unwrap(), "2024-01-01T00:00:00");
    }

    #[test]
    fn tuples_and_scalars() {
        let row = Row::new(cols(&["id", "email"]), vec![Value::Int(7), Value::Null]);
        let (id, email): (i64, Option<String>) = row.deserialize().unwrap();
        assert_eq!((id, email), (7, None));
        assert!(row.deserialize::<(i64,)>().is_err(), "arity must match");
        assert!(
            row.deserialize::<i64>().is_err(),
            "a scalar needs one column"
        );

        let count = Row::new(cols(&["count"]), vec![Value::Int(42)]);
        assert_eq!(count.deserialize::<u64>().unwrap(), 42);
        // PostgreSQL's SUM over integers is numeric.
        let sum = Row::new(cols(&["sum"]), vec![Value::Decimal("42".into())]);
        assert_eq!(sum.deserialize::<i64>().unwrap(), 42);
        let frac = Row::new(cols(&["sum"]), vec![Value::Decimal("4.2".into())]);
        assert!(frac.deserialize::<i64>().is_err());
        assert_eq!(frac.deserialize::<f64>().unwrap(), 4.2);
    }

    #[test]
    fn newtypes_enums_arrays_and_maps() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct UserId(i64);
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Provider {
            Neopass,
            Email,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct R {
            id: UserId,
            provider: Option<Provider>,
            tags: Vec<String>,
            embedding: Vec<f32>,
        }
        let row = Row::new(
            cols(&["id", "provider", "tags", "embedding"]),
            vec![
                Value::Int(5),
                Value::Text("neopass".into()),
                Value::TextArray(vec!["a".into(), "b".into()]),
                Value::Float32Array(vec![0.5, 1.0]),
            ],
        );
        let r: R = row.deserialize().unwrap();
        assert_eq!(r.id, UserId(5));
        assert_eq!(r.provider, Some(Provider::Neopass));
        assert_eq!(r.tags, ["a", "b"]);
        assert_eq!(r.embedding, [0.5, 1.0]);
        let _ = Provider::Email;

        let map: BTreeMap<String, Option<String>> = Row::new(
            cols(&["a", "b"]),
            vec![Value::Text("x".into()), Value::Null],
        )
        .deserialize()
        .unwrap();
        assert_eq!(map["a"].as_deref(), Some("x"));
        assert_eq!(map["b"], None);
    }

    #[test]
    fn binary_text_from_mysql_catalogs_decodes_as_string() {
        let row = Row::new(
            cols(&["index_name"]),
            vec![Value::Bytes(b"PRIMARY".to_vec())],
        );
        assert_eq!(row.get::<String>("index_name").unwrap(), "PRIMARY");
    }
}
