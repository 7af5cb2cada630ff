//! Query results: columns, rows, and typed access to them.

use std::rc::Rc;

use serde::de::{Deserialize, DeserializeOwned};

use crate::de::{RowDeserializer, ValueDeserializer};
use crate::{Error, Result, Value};

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    type_name: String,
}

impl Column {
    /// A column named `name` whose database type is `type_name`.
    pub fn new(name: impl Into<String>, type_name: impl Into<String>) -> Self {
        Column {
            name: name.into(),
            type_name: type_name.into(),
        }
    }

    /// The column name as the database reports it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's own type name (`int8`, `VARCHAR`, …), for diagnostics.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }
}

/// One row: its values in column order, with the columns shared by every row of the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Rc<[Column]>,
    values: Vec<Value>,
}

impl Row {
    /// A row of `values` under `columns` (one value per column).
    ///
    /// Results come from the database already built; this is for tests and
    /// for code that assembles rows itself.
    pub fn new(columns: impl Into<Rc<[Column]>>, values: Vec<Value>) -> Self {
        Row {
            columns: columns.into(),
            values,
        }
    }

    /// The columns of the result.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, in column order, taken out of the row (for instance to bulk-insert them).
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The position of the column called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The raw value of the column called `name`.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.index_of(name).and_then(|i| self.values.get(i))
    }

    /// The value of the column called `name`, decoded into `T` (use `Option<T>` for nullable columns).
    ///
    /// ```
    /// use migrun_sdk::{Column, Row, Value};
    ///
    /// let row = Row::new(
    ///     vec![Column::new("id", "int8"), Column::new("email", "text")],
    ///     vec![Value::Int(7), Value::Null],
    /// );
    /// assert_eq!(row.get::<i64>("id").unwrap(), 7);
    /// assert_eq!(row.get::<Option<String>>("email").unwrap(), None);
    /// assert!(row.get::<String>("email").is_err());
    /// assert!(row.get::<i64>("missing").is_err());
    /// ```
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        let index = self.index_of(name).ok_or_else(|| {
            let known: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
            Error::Failed(format!(
                "no column `{name}` in the result (columns: {})",
                known.join(", ")
            ))
        })?;
        decode_at(&self.columns[index], &self.values[index])
    }

    /// The value at `index` decoded into `T`.
    pub fn get_at<T: DeserializeOwned>(&self, index: usize) -> Result<T> {
        match (self.columns.get(index), self.values.get(index)) {
            (Some(column), Some(value)) => decode_at(column, value),
            _ => Err(Error::Failed(format!(
                "column index {index} out of range: the row has {} values",
                self.values.len()
            ))),
        }
    }

    /// The whole row decoded into `T`: a struct (fields by column name), a tuple
    /// (by position), or a single value when the row has one column.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        T::deserialize(RowDeserializer::new(&self.columns, &self.values)).map_err(Error::from)
    }

    /// Sets the value of the column called `name`, or adds the column at the end when the
    /// row has none of that name: how a [`TableCopy`](crate::TableCopy) mapping changes a
    /// row before it is written.
    ///
    /// ```
    /// use migrun_sdk::{Column, Row, Value};
    ///
    /// let mut row = Row::new(vec![Column::new("email", "text")], vec![Value::from("A@X.ORG")]);
    /// let email: String = row.get("email").unwrap();
    /// row.set("email", email.to_lowercase());
    /// row.set("source", "legacy");
    /// assert_eq!(row.get::<String>("email").unwrap(), "a@x.org");
    /// assert_eq!(row.columns()[1].name(), "source");
    /// ```
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.index_of(name) {
            Some(i) => self.values[i] = value,
            None => {
                let mut columns = self.columns.to_vec();
                columns.push(Column::new(name, ""));
                self.columns = columns.into();
                self.values.push(value);
            }
        }
    }

    /// Removes the column called `name` and returns its value (`None` when there is none).
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.index_of(name)?;
        let mut columns = self.columns.to_vec();
        columns.remove(i);
        self.columns = columns.into();
        Some(self.values.remove(i))
    }

    /// Renames the column `from` to `to` (for a target column of another name); an error
    /// when the row has no column `from`.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let i = self.index_of(from).ok_or_else(|| {
            Error::Failed(format!(
                "cannot rename `{from}`: the row has no such column"
            ))
        })?;
        let mut columns = self.columns.to_vec();
        columns[i] = Column::new(to, columns[i].type_name.clone());
        self.columns = columns.into();
        Ok(())
    }

    /// The columns, shared with the other rows of the same result.
    pub(crate) fn shared_columns(&self) -> Rc<[Column]> {
        Rc::clone(&self.columns)
    }
}

fn decode_at<T: DeserializeOwned>(column: &Column, value: &Value) -> Result<T> {
    T::deserialize(ValueDeserializer::new(value))
        .map_err(|e| Error::Failed(format!("column `{}`: {e}", column.name)))
}

/// The result of a query: its columns and all of its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    columns: Rc<[Column]>,
    rows: Vec<Row>,
}

impl Rows {
    /// A result with `columns` and the given rows of values.
    pub fn new(columns: Vec<Column>, rows: Vec<Vec<Value>>) -> Self {
        let columns: Rc<[Column]> = columns.into();
        let rows = rows
            .into_iter()
            .map(|values| Row {
                columns: Rc::clone(&columns),
                values,
            })
            .collect();
        Rows { columns, rows }
    }

    /// The columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows by reference.
    pub fn iter(&self) -> std::slice::Iter<'_, Row> {
        self.rows.iter()
    }

    /// Every row decoded into `T` (see [`Row::deserialize`]).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.rows.iter().map(Row::deserialize).collect()
    }
}

impl IntoIterator for Rows {
    type Item = Row;
    type IntoIter = std::vec::IntoIter<Row>;

    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter()
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = &'a Row;
    type IntoIter = std::slice::Iter<'a, Row>;

    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}

/// Builds rows under shared columns (used by cursors, which receive columns once).
pub(crate) fn rows_under(columns: &Rc<[Column]>, rows: Vec<Vec<Value>>) -> Vec<Row> {
    rows.into_iter()
        .map(|values| Row {
            columns: Rc::clone(columns),
            values,
        })
        .collect()
}
