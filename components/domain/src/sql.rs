//! SQL text plus typed parameters, so the domain decides every statement and the
//! guest only maps parameters onto its driver and executes.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<SqlParam>,
}

impl Statement {
    pub fn new(sql: &'static str, params: Vec<SqlParam>) -> Self {
        Self { sql, params }
    }

    pub fn without_params(sql: &'static str) -> Self {
        Self::new(sql, Vec::new())
    }
}
