//! The reverse of row decoding: a serde `Serialize` struct turned into a row of values.
//!
//! Useful with [`BulkWriter::push_serialize`](crate::BulkWriter::push_serialize)
//! and `INSERT` parameters. Fields map by kind: integers to `int` (u64 and
//! 128-bit only when they fit), floats, booleans, strings, `Option::None` to
//! NULL, bytes marked `#[serde(with = "serde_bytes")]` to `bytes`, unit enum
//! variants to their name as text, and the SDK's text newtypes ([`Timestamp`](crate::Timestamp),
//! [`Uuid`](crate::Uuid), [`Decimal`](crate::Decimal), …) to their own kinds. Lists and
//! nested structs have no SQL shape and are refused with an explanation.

use std::fmt;

use serde::ser::{self, Impossible, Serialize};

use crate::value::from_marker;
use crate::{Error, Result, Value};

/// A serialization failure; becomes [`Error::Failed`].
#[derive(Debug)]
struct SerError(String);

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError(msg.to_string())
    }
}

impl From<SerError> for Error {
    fn from(e: SerError) -> Self {
        Error::Failed(format!("cannot turn the value into a row: {}", e.0))
    }
}

/// The fields of a struct (or the elements of a tuple) as `(name, value)` pairs, in order.
///
/// Tuple elements have no names and get `""`.
///
/// ```
/// use migrun_sdk::{to_named_values, Timestamp, Value};
///
/// #[derive(serde::Serialize)]
/// struct AuthUser<'a> {
///     id: i64,
///     email: Option<&'a str>,
///     created_at: Timestamp,
/// }
/// let row = to_named_values(&AuthUser {
///     id: 1,
///     email: None,
///     created_at: Timestamp::new("2024-01-01T00:00:00"),
/// })
/// .unwrap();
/// assert_eq!(row[0], ("id", Value::Int(1)));
/// assert_eq!(row[1], ("email", Value::Null));
/// assert_eq!(row[2].1, Value::Timestamp("2024-01-01T00:00:00".into()));
/// ```
pub fn to_named_values<T: Serialize + ?Sized>(row: &T) -> Result<Vec<(&'static str, Value)>> {
    Ok(row.serialize(RowSerializer)?)
}

/// The fields of a struct (or the elements of a tuple) as values, in order.
pub fn to_values<T: Serialize + ?Sized>(row: &T) -> Result<Vec<Value>> {
    Ok(to_named_values(row)?.into_iter().map(|(_, v)| v).collect())
}

/// Serializes one value.
struct ValueSerializer;

fn unsupported<T>(what: &str) -> Result<T, SerError> {
    Err(SerError(format!(
        "{what} has no SQL value shape; build a migrun_sdk::Value for it instead"
    )))
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = SerError;
    type SerializeSeq = Impossible<Value, SerError>;
    type SerializeTuple = Impossible<Value, SerError>;
    type SerializeTupleStruct = Impossible<Value, SerError>;
    type SerializeTupleVariant = Impossible<Value, SerError>;
    type SerializeMap = Impossible<Value, SerError>;
    type SerializeStruct = Impossible<Value, SerError>;
    type SerializeStructVariant = Impossible<Value, SerError>;

    fn serialize_bool(self, v: bool) -> Result<Value, SerError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, SerError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, SerError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, SerError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, SerError> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, SerError> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| SerError(format!("{v} does not fit a 64-bit int; use a Decimal")))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, SerError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, SerError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, SerError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, SerError> {
        self.serialize_i128(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<Value, SerError> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| SerError(format!("{v} does not fit a 64-bit int; use a Decimal")))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, SerError> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, SerError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, SerError> {
        Ok(Value::Text(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, SerError> {
        Ok(Value::Text(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerError> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, SerError> {
        Ok(Value::Text(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, SerError> {
        let inner = value.serialize(ValueSerializer)?;
        match inner {
            Value::Text(text) => Ok(from_marker(name, text).unwrap_or_else(Value::Text)),
            other => Ok(other),
        }
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _value: &T,
    ) -> Result<Value, SerError> {
        unsupported(&format!("enum variant {name}::{variant} with data"))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        unsupported("a list (for bytes, mark the field #[serde(with = \"serde_bytes\")])")
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, SerError> {
        unsupported("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        unsupported(&format!("tuple struct {name}"))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        unsupported(&format!("enum variant {name}::{variant}"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        unsupported("a map (serialize JSON to text and wrap it in migrun_sdk::Json)")
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        unsupported(&format!("nested struct {name}"))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        unsupported(&format!("enum variant {name}::{variant}"))
    }
}

type Named = Vec<(&'static str, Value)>;

/// Serializes the top level: a struct or a tuple.
struct RowSerializer;

struct Fields(Named);

impl ser::SerializeStruct for Fields {
    type Ok = Named;
    type Error = SerError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        let value = value
            .serialize(ValueSerializer)
            .map_err(|e| SerError(format!("field `{key}`: {}", e.0)))?;
        self.0.push((key, value));
        Ok(())
    }

    fn end(self) -> Result<Named, SerError> {
        Ok(self.0)
    }
}

impl ser::SerializeTuple for Fields {
    type Ok = Named;
    type Error = SerError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        let index = self.0.len();
        let value = value
            .serialize(ValueSerializer)
            .map_err(|e| SerError(format!("element {index}: {}", e.0)))?;
        self.0.push(("", value));
        Ok(())
    }

    fn end(self) -> Result<Named, SerError> {
        Ok(self.0)
    }
}

impl ser::SerializeTupleStruct for Fields {
    type Ok = Named;
    type Error = SerError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        ser::SerializeTuple::serialize_element(self, value)
    }

    fn end(self) -> Result<Named, SerError> {
        Ok(self.0)
    }
}

fn not_a_row<T>(what: &str) -> Result<T, SerError> {
    Err(SerError(format!(
        "a row must be a struct or a tuple, not {what}"
    )))
}

impl ser::Serializer for RowSerializer {
    type Ok = Named;
    type Error = SerError;
    type SerializeSeq = Impossible<Named, SerError>;
    type SerializeTuple = Fields;
    type SerializeTupleStruct = Fields;
    type SerializeTupleVariant = Impossible<Named, SerError>;
    type SerializeMap = Impossible<Named, SerError>;
    type SerializeStruct = Fields;
    type SerializeStructVariant = Impossible<Named, SerError>;

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Fields, SerError> {
        Ok(Fields(Vec::with_capacity(len)))
    }
    fn serialize_tuple(self, len: usize) -> Result<Fields, SerError> {
        Ok(Fields(Vec::with_capacity(len)))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Fields, SerError> {
        Ok(Fields(Vec::with_capacity(len)))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Named, SerError> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Named, SerError> {
        value.serialize(self)
    }

    fn serialize_bool(self, _v: bool) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_i8(self, _v: i8) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_i16(self, _v: i16) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_i32(self, _v: i32) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_i64(self, _v: i64) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_u8(self, _v: u8) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_u16(self, _v: u16) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_u32(self, _v: u32) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_u64(self, _v: u64) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_f32(self, _v: f32) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_f64(self, _v: f64) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_char(self, _v: char) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_str(self, _v: &str) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<Named, SerError> {
        not_a_row("a single value")
    }
    fn serialize_none(self) -> Result<Named, SerError> {
        not_a_row("None")
    }
    fn serialize_unit(self) -> Result<Named, SerError> {
        not_a_row("()")
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Named, SerError> {
        not_a_row(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<Named, SerError> {
        not_a_row(name)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Named, SerError> {
        not_a_row(name)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        not_a_row("a list")
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        not_a_row(name)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        not_a_row("a map")
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        not_a_row(name)
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::{Date, Decimal, Json, Uuid};

    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        Admin,
    }

    #[derive(Serialize)]
    struct Everything {
        id: u64,
        flag: bool,
        ratio: f32,
        name: String,
        nick: Option<String>,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
        role: Role,
        born: Date,
        key: Uuid,
        price: Decimal,
        extra: Json,
    }

    #[test]
    fn structs_become_named_values() {
        let row = to_named_values(&Everything {
            id: 7,
            flag: true,
            ratio: 0.5,
            name: "Zoë".into(),
            nick: None,
            blob: vec![1],
            role: Role::Admin,
            born: Date::new("2000-02-29"),
            key: Uuid::new("67e55044-10b1-426f-9247-bb680e5fe0c8"),
            price: Decimal::new("1.50"),
            extra: Json::new("{\"a\":1}"),
        })
        .unwrap();
        let names: Vec<&str> = row.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "id", "flag", "ratio", "name", "nick", "blob", "role", "born", "key", "price",
                "extra"
            ]
        );
        let values: Vec<Value> = row.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            [
                Value::Int(7),
                Value::Bool(true),
                Value::Float(0.5),
                Value::Text("Zoë".into()),
                Value::Null,
                Value::Bytes(vec![1]),
                Value::Text("admin".into()),
                Value::Date("2000-02-29".into()),
                Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
                Value::Decimal("1.50".into()),
                Value::Json("{\"a\":1}".into()),
            ]
        );
    }

    #[test]
    fn tuples_and_refusals() {
        assert_eq!(
            to_values(&(1, "a", None::<i32>)).unwrap(),
            [Value::Int(1), Value::Text("a".into()), Value::Null]
        );
        let err = to_values(&42).unwrap_err().to_string();
        assert!(err.contains("struct or a tuple"), "{err}");
        #[derive(Serialize)]
        struct WithList {
            tags: Vec<u8>,
        }
        let err = to_values(&WithList { tags: vec![1] })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `tags`") && err.contains("serde_bytes"),
            "{err}"
        );
        assert!(to_values(&(u64::MAX,)).is_err());
    }
}
