//! SQL text plus typed parameters, so the domain decides every statement and the
//! guest only maps parameters onto its driver and executes.

use crate::database::timestamp::UtcDateTime;
use serde_json::value::RawValue;
use std::borrow::Cow;
use uuid::Uuid;

/// A statement parameter. The variant fixes the Postgres type the driver binds:
/// `Int32` for INTEGER columns, `Int64` for BIGINT contexts such as `LIMIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlParam {
    Text(String),
    Uuid(Uuid),
    Int32(i32),
    Int64(i64),
    /// SQL NULL; Postgres infers its type from where it is used.
    Null,
}

impl SqlParam {
    /// Text, or NULL for `None`.
    pub fn optional_text(text: Option<&str>) -> Self {
        text.map_or(Self::Null, |text| Self::Text(text.to_owned()))
    }
}

/// One SQL statement with its positional parameters (`$1` is `params[0]`).
/// Its text is a constant, or assembled from constant pieces where the
/// filters a request asks for decide its shape (the history pages): values
/// are always parameters, never text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: Cow<'static, str>,
    pub params: Vec<SqlParam>,
}

impl Statement {
    pub fn new(sql: impl Into<Cow<'static, str>>, params: Vec<SqlParam>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }

    pub fn without_params(sql: &'static str) -> Self {
        Self::new(sql, Vec::new())
    }
}

/// The rows of a page statement that asked for one row more than `limit`:
/// the first `limit` of them, and whether there were more.
pub fn split_page<T>(mut rows: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let limit = limit as usize;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    (rows, has_more)
}

/// One result row, read by column position. Each SELECT in this crate sits
/// next to the function that decodes its rows through this trait, and a unit
/// test decodes a [`fake::FakeRow`] laid out by the SELECT's own column list,
/// so a reordered SELECT fails that test. The guest's rows implement it.
pub trait Row {
    type Error;
    fn text(&self, column: usize) -> Result<String, Self::Error>;
    /// A text column that may be NULL.
    fn optional_text(&self, column: usize) -> Result<Option<String>, Self::Error>;
    /// JSON selected as text, checked and kept verbatim.
    fn json_text(&self, column: usize) -> Result<Box<RawValue>, Self::Error>;
    fn uuid(&self, column: usize) -> Result<Uuid, Self::Error>;
    /// A UUID column that may be NULL.
    fn optional_uuid(&self, column: usize) -> Result<Option<Uuid>, Self::Error>;
    /// A TIMESTAMP column, read as UTC.
    fn timestamp(&self, column: usize) -> Result<UtcDateTime, Self::Error>;
    fn boolean(&self, column: usize) -> Result<bool, Self::Error>;
    /// A BOOLEAN column that may be NULL.
    fn optional_boolean(&self, column: usize) -> Result<Option<bool>, Self::Error>;
    /// A BIGINT column.
    fn int64(&self, column: usize) -> Result<i64, Self::Error>;
    /// An INTEGER column.
    fn int32(&self, column: usize) -> Result<i32, Self::Error>;
}

/// Rows for the decoders' unit tests.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::collections::HashMap;

    /// A value of a [`FakeRow`].
    #[derive(Debug, Clone)]
    pub enum Value {
        Text(&'static str),
        Null,
        Uuid(Uuid),
        Timestamp(UtcDateTime),
        Boolean(bool),
        Int64(i64),
        Int32(i32),
    }

    /// A row whose columns are laid out as a SELECT lists them, each filled
    /// with the value given for its expression (as written in the SELECT).
    pub struct FakeRow(Vec<Value>);

    impl FakeRow {
        /// Panics when the SELECT lists an expression without a value, or a
        /// value names no column of the SELECT.
        pub fn laid_out_by(sql: &str, values: &[(&str, Value)]) -> Self {
            let mut values: HashMap<&str, Value> = values.iter().cloned().collect();
            let row = select_list(sql)
                .into_iter()
                .map(|expression| {
                    values
                        .remove(expression.as_str())
                        .unwrap_or_else(|| panic!("no value for column {expression}"))
                })
                .collect();
            assert!(values.is_empty(), "columns the SELECT lacks: {values:?}");
            Self(row)
        }

        fn value(&self, column: usize) -> Result<&Value, String> {
            self.0
                .get(column)
                .ok_or_else(|| format!("no column {column}"))
        }
    }

    /// The expressions between the main SELECT (the first outside any
    /// parentheses, so after a WITH clause) and its FROM (the first outside
    /// any parentheses, so after subqueries), or after the RETURNING of a
    /// statement that writes, split at top-level commas.
    fn select_list(sql: &str) -> Vec<String> {
        let (start, end) = match top_level(sql, "RETURNING") {
            Some(at) => (at + "RETURNING".len(), sql.len()),
            None => {
                let start = main_select(sql) + "SELECT".len();
                (
                    start,
                    start + top_level(&sql[start..], "FROM").expect("a FROM"),
                )
            }
        };
        let mut expressions = vec![String::new()];
        let mut depth = 0;
        for c in sql[start..end].chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    expressions.push(String::new());
                    continue;
                }
                _ => {}
            }
            expressions.last_mut().expect("never empty").push(c);
        }
        expressions.iter().map(|e| e.trim().to_owned()).collect()
    }

    fn main_select(sql: &str) -> usize {
        top_level(sql, "SELECT").unwrap_or_else(|| panic!("no SELECT outside parentheses in {sql}"))
    }

    /// Where `keyword` first occurs outside any parentheses.
    fn top_level(sql: &str, keyword: &str) -> Option<usize> {
        let mut depth = 0;
        for (at, c) in sql.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 && sql[at..].starts_with(keyword) => return Some(at),
                _ => {}
            }
        }
        None
    }

    fn wrong(column: usize, expected: &str, found: &Value) -> String {
        format!("column {column}: expected {expected}, found {found:?}")
    }

    impl Row for FakeRow {
        type Error = String;

        fn text(&self, column: usize) -> Result<String, String> {
            match self.value(column)? {
                Value::Text(text) => Ok((*text).to_owned()),
                other => Err(wrong(column, "text", other)),
            }
        }

        fn optional_text(&self, column: usize) -> Result<Option<String>, String> {
            match self.value(column)? {
                Value::Null => Ok(None),
                _ => self.text(column).map(Some),
            }
        }

        fn json_text(&self, column: usize) -> Result<Box<RawValue>, String> {
            RawValue::from_string(self.text(column)?).map_err(|error| error.to_string())
        }

        fn uuid(&self, column: usize) -> Result<Uuid, String> {
            match self.value(column)? {
                Value::Uuid(id) => Ok(*id),
                other => Err(wrong(column, "a UUID", other)),
            }
        }

        fn optional_uuid(&self, column: usize) -> Result<Option<Uuid>, String> {
            match self.value(column)? {
                Value::Null => Ok(None),
                _ => self.uuid(column).map(Some),
            }
        }

        fn timestamp(&self, column: usize) -> Result<UtcDateTime, String> {
            match self.value(column)? {
                Value::Timestamp(at) => Ok(*at),
                other => Err(wrong(column, "a timestamp", other)),
            }
        }

        fn boolean(&self, column: usize) -> Result<bool, String> {
            match self.value(column)? {
                Value::Boolean(flag) => Ok(*flag),
                other => Err(wrong(column, "a boolean", other)),
            }
        }

        fn optional_boolean(&self, column: usize) -> Result<Option<bool>, String> {
            match self.value(column)? {
                Value::Null => Ok(None),
                _ => self.boolean(column).map(Some),
            }
        }

        fn int64(&self, column: usize) -> Result<i64, String> {
            match self.value(column)? {
                Value::Int64(n) => Ok(*n),
                other => Err(wrong(column, "a BIGINT", other)),
            }
        }

        fn int32(&self, column: usize) -> Result<i32, String> {
            match self.value(column)? {
                Value::Int32(n) => Ok(*n),
                other => Err(wrong(column, "an INTEGER", other)),
            }
        }
    }

    #[test]
    fn the_select_list_is_split_at_top_level_commas() {
        assert_eq!(
            select_list("SELECT id, coalesce(a, b) AS c, \"traceId\"\nFROM t"),
            ["id", "coalesce(a, b) AS c", "\"traceId\""]
        );
    }
}
