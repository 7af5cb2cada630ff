//! The configuration the host hands to [`Plugin::configure`](crate::Plugin::configure).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// The plugin's configuration: the keys it declared, defaults applied, every value a string.
///
/// Typed getters turn the strings into values with errors that name the key:
///
/// ```
/// use migrun_sdk::Config;
///
/// let config: Config = [("batch_size", "500"), ("mode", "fast"), ("bad", "x")].into_iter().collect();
/// assert_eq!(config.parse::<u32>("batch_size").unwrap(), 500);
/// assert_eq!(config.get("mode"), Some("fast"));
/// assert_eq!(config.get_or("missing", "slow"), "slow");
/// assert_eq!(config.parse_or("missing", 7u32).unwrap(), 7);
/// assert_eq!(
///     config.parse::<u32>("bad").unwrap_err().to_string(),
///     "config key `bad`: cannot parse \"x\" as u32: invalid digit found in string"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// An empty configuration.
    pub fn new() -> Self {
        Config::default()
    }

    /// The value of `key`, if it was given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of `key`, or `default` when it was not given.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The value of `key`; an error naming the key when it was not given.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            Error::Failed(format!("config key `{key}` is required but was not given"))
        })
    }

    /// The value of `key` parsed as `T`; an error when it is missing or does not parse.
    pub fn parse<T>(&self, key: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        parse_value(key, self.require(key)?)
    }

    /// The value of `key` parsed as `T`, or `default` when it was not given.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        Ok(self.parse_opt(key)?.unwrap_or(default))
    }

    /// The value of `key` parsed as `T`, if it was given.
    pub fn parse_opt<T>(&self, key: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.get(key).map(|v| parse_value(key, v)).transpose()
    }

    /// The value of `key` as a boolean: `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`,
    /// in any case; `default` when it was not given.
    ///
    /// ```
    /// # use migrun_sdk::Config;
    /// let config: Config = [("dry", "Yes")].into_iter().collect();
    /// assert!(config.flag("dry", false).unwrap());
    /// assert!(!config.flag("other", false).unwrap());
    /// ```
    pub fn flag(&self, key: &str, default: bool) -> Result<bool> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(Error::Failed(format!(
                "config key `{key}`: expected true/false (or yes/no, on/off, 1/0), got {v:?}"
            ))),
        }
    }

    /// The value of `key` as a plain SQL identifier, for a table or column name the plugin
    /// puts into SQL: ASCII letters, digits and `_`, not starting with a digit, at most 48
    /// characters (room for names derived from it — a trigger, an index — within
    /// PostgreSQL's 63). An error naming the key when it is missing or not plain.
    ///
    /// ```
    /// # use migrun_sdk::Config;
    /// let config: Config = [("table", "orders"), ("column", "price; DROP")].into_iter().collect();
    /// assert_eq!(config.identifier("table").unwrap(), "orders");
    /// assert!(config.identifier("column").is_err());
    /// assert!(config.identifier("missing").is_err());
    /// ```
    pub fn identifier(&self, key: &str) -> Result<String> {
        let name = self.require(key)?;
        let plain = !name.is_empty()
            && name.len() <= 48
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !plain {
            return Err(Error::Failed(format!(
                "config key `{key}`: `{name}` is not a plain identifier (letters, digits and `_`, \
                 at most 48, not starting with a digit); nothing was changed"
            )));
        }
        Ok(name.to_owned())
    }

    /// [`identifier`](Self::identifier) for an optional name: `None` when the key was not
    /// given or is empty (`key = ""`: "use the table's primary key").
    pub fn identifier_opt(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(_) => self.identifier(key).map(Some),
        }
    }

    /// The value of `key` as a count of at least 1 (`batch_size`): an error naming the key
    /// when it is missing, not a number, or 0.
    ///
    /// ```
    /// # use migrun_sdk::Config;
    /// let config: Config = [("batch_size", "500"), ("zero", "0")].into_iter().collect();
    /// assert_eq!(config.positive("batch_size").unwrap(), 500);
    /// assert!(config.positive("zero").unwrap_err().to_string().contains("at least 1"));
    /// ```
    pub fn positive(&self, key: &str) -> Result<u32> {
        match self.parse::<u32>(key)? {
            0 => Err(Error::Failed(format!(
                "config key `{key}` must be at least 1"
            ))),
            n => Ok(n),
        }
    }

    /// Whether `key` was given.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The keys and values, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of keys given.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key was given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn parse_value<T>(key: &str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    value.trim().parse().map_err(|e| {
        Error::Failed(format!(
            "config key `{key}`: cannot parse {value:?} as {}: {e}",
            short_type_name::<T>()
        ))
    })
}

/// `u32` rather than `core::primitive::u32`, `Duration` rather than `core::time::Duration`.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    match base.rfind("::") {
        Some(i) if !full.contains('<') => &full[i + 2..],
        _ => full,
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Config {
            values: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        [
            ("batch_size", " 1000 "),
            ("sample_size", "-3"),
            ("ratio", "0.25"),
            ("name", "auth"),
            ("empty", ""),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn typed_getters() {
        let c = config();
        assert_eq!(
            c.parse::<u32>("batch_size").unwrap(),
            1000,
            "surrounding blanks are ignored"
        );
        assert_eq!(c.parse::<f64>("ratio").unwrap(), 0.25);
        assert_eq!(c.parse::<String>("name").unwrap(), "auth");
        assert_eq!(c.get("empty"), Some(""));
        assert_eq!(c.parse_opt::<u32>("nope").unwrap(), None);
        assert_eq!(c.len(), 5);
        assert!(c.contains("ratio") && !c.is_empty());
        assert_eq!(c.iter().next(), Some(("batch_size", " 1000 ")));
    }

    #[test]
    fn errors_name_key_value_and_type() {
        let c = config();
        assert_eq!(
            c.parse::<u32>("sample_size").unwrap_err().to_string(),
            "config key `sample_size`: cannot parse \"-3\" as u32: invalid digit found in string"
        );
        assert_eq!(
            c.parse::<u32>("missing").unwrap_err().to_string(),
            "config key `missing` is required but was not given"
        );
        assert!(
            c.parse::<u32>("empty")
                .unwrap_err()
                .to_string()
                .contains("cannot parse \"\" as u32")
        );
        assert!(
            c.parse_or::<u32>("sample_size", 1).is_err(),
            "a bad value is not replaced by the default"
        );
        assert!(c.flag("name", true).is_err());
    }
}
