//! Conversions between `spin:postgres@4.2.0` values and tokio-postgres types.
//!
//! The mapping follows Spin's own Postgres host, so a component sees the same
//! values under `spin up` and under chat-host. Types outside the mapping come
//! back as `unsupported` with Postgres' binary encoding, as Spin does.

use super::bindings::{Column, DbDataType, DbValue, ParameterValue};
use bytes::BytesMut;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use std::error::Error as StdError;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn StdError + Sync + Send>;

/// Describes a result column the way the guest expects.
pub fn column(column: &tokio_postgres::Column) -> Column {
    Column {
        name: column.name().to_owned(),
        data_type: data_type(column.type_()),
    }
}

fn data_type(pg_type: &Type) -> DbDataType {
    match *pg_type {
        Type::BOOL => DbDataType::Boolean,
        Type::BYTEA => DbDataType::Binary,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        _ => DbDataType::Other(pg_type.name().to_owned()),
    }
}

/// Converts one result row.
pub fn row(row: &Row) -> Result<Vec<DbValue>, tokio_postgres::Error> {
    (0..row.len()).map(|index| value(row, index)).collect()
}

fn value(row: &Row, index: usize) -> Result<DbValue, tokio_postgres::Error> {
    fn get<'a, T: FromSql<'a>>(
        row: &'a Row,
        index: usize,
        wrap: impl FnOnce(T) -> DbValue,
    ) -> Result<DbValue, tokio_postgres::Error> {
        Ok(row
            .try_get::<_, Option<T>>(index)?
            .map_or(DbValue::DbNull, wrap))
    }
    match *row.columns()[index].type_() {
        Type::BOOL => get(row, index, DbValue::Boolean),
        Type::BYTEA => get(row, index, DbValue::Binary),
        Type::FLOAT4 => get(row, index, DbValue::Floating32),
        Type::FLOAT8 => get(row, index, DbValue::Floating64),
        Type::INT2 => get(row, index, DbValue::Int16),
        Type::INT4 => get(row, index, DbValue::Int32),
        Type::INT8 => get(row, index, DbValue::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, index, DbValue::Str),
        Type::TIMESTAMP => get(row, index, |v: NaiveDateTime| {
            DbValue::Datetime(datetime_to_wit(v))
        }),
        Type::TIMESTAMPTZ => get(row, index, |v: chrono::DateTime<chrono::Utc>| {
            DbValue::Datetime(datetime_to_wit(v.naive_utc()))
        }),
        Type::DATE => get(row, index, |v: NaiveDate| {
            DbValue::Date((v.year(), v.month() as u8, v.day() as u8))
        }),
        Type::TIME => get(row, index, |v: NaiveTime| DbValue::Time(time_to_wit(v))),
        Type::UUID => get(row, index, |v: uuid::Uuid| DbValue::Uuid(v.to_string())),
        Type::JSONB => get(row, index, |v: serde_json::Value| {
            DbValue::Jsonb(serde_json::to_vec(&v).unwrap_or_default())
        }),
        Type::INT4_ARRAY => get(row, index, DbValue::ArrayInt32),
        Type::INT8_ARRAY => get(row, index, DbValue::ArrayInt64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get(row, index, DbValue::ArrayStr)
        }
        _ => get(row, index, |raw: RawValue| DbValue::Unsupported(raw.0)),
    }
}

fn datetime_to_wit(v: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    let (date, time) = (v.date(), v.time());
    (
        date.year(),
        date.month() as u8,
        date.day() as u8,
        time.hour() as u8,
        time.minute() as u8,
        time.second() as u8,
        time.nanosecond(),
    )
}

fn time_to_wit(v: NaiveTime) -> (u8, u8, u8, u32) {
    (
        v.hour() as u8,
        v.minute() as u8,
        v.second() as u8,
        v.nanosecond(),
    )
}

/// Any column value, kept in Postgres' binary encoding.
struct RawValue(Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Self(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A guest parameter, ready to be bound to a statement.
pub type SqlParam = Box<dyn ToSql + Send + Sync>;

/// Converts the guest's parameters; the message names the bad parameter.
pub fn params(values: Vec<ParameterValue>) -> Result<Vec<SqlParam>, String> {
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| param(value).map_err(|e| format!("parameter ${}: {e}", index + 1)))
        .collect()
}

fn param(value: ParameterValue) -> Result<SqlParam, String> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(v),
        ParameterValue::Int8(v) => Box::new(v),
        ParameterValue::Int16(v) => Box::new(v),
        ParameterValue::Int32(v) => Box::new(v),
        ParameterValue::Int64(v) => Box::new(v),
        ParameterValue::Floating32(v) => Box::new(v),
        ParameterValue::Floating64(v) => Box::new(v),
        ParameterValue::Str(v) => Box::new(v),
        ParameterValue::Binary(v) => Box::new(v),
        ParameterValue::Date((y, m, d)) => {
            Box::new(NaiveDate::from_ymd_opt(y, m.into(), d.into()).ok_or("invalid date")?)
        }
        ParameterValue::Time((h, m, s, ns)) => Box::new(
            NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns).ok_or("invalid time")?,
        ),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => Box::new(
            NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                .and_then(|date| date.and_hms_nano_opt(h.into(), mi.into(), s.into(), ns))
                .ok_or("invalid date-time")?,
        ),
        ParameterValue::Timestamp(secs) => Box::new(
            chrono::DateTime::from_timestamp(secs, 0)
                .ok_or("timestamp out of range")?
                .naive_utc(),
        ),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(&v).map_err(|_| format!("invalid UUID {v:?}"))?)
        }
        ParameterValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&v)
                .map_err(|e| format!("invalid JSON: {e}"))?,
        ),
        ParameterValue::ArrayInt32(v) => Box::new(v),
        ParameterValue::ArrayInt64(v) => Box::new(v),
        ParameterValue::ArrayStr(v) => Box::new(v),
        ParameterValue::DbNull => Box::new(Null),
        ParameterValue::Decimal(_)
        | ParameterValue::RangeInt32(_)
        | ParameterValue::RangeInt64(_)
        | ParameterValue::RangeDecimal(_)
        | ParameterValue::ArrayDecimal(_)
        | ParameterValue::Interval(_) => {
            return Err(
                "decimal, range and interval parameters are not supported by chat-host".into(),
            );
        }
    })
}

/// SQL NULL for a parameter of any type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_parameters_with_their_position() {
        let err = params(vec![
            ParameterValue::Str("ok".into()),
            ParameterValue::Uuid("not-a-uuid".into()),
        ])
        .err()
        .unwrap();
        assert_eq!(err, "parameter $2: invalid UUID \"not-a-uuid\"");
        let err = params(vec![ParameterValue::Date((2024, 2, 30))])
            .err()
            .unwrap();
        assert_eq!(err, "parameter $1: invalid date");
    }

    #[test]
    fn maps_column_types_like_spin() {
        assert!(matches!(data_type(&Type::VARCHAR), DbDataType::Str));
        assert!(matches!(
            data_type(&Type::TIMESTAMPTZ),
            DbDataType::Datetime
        ));
        assert!(matches!(data_type(&Type::JSON), DbDataType::Other(name) if name == "json"));
    }

    #[test]
    fn splits_date_times_into_the_wit_tuple() {
        let v = NaiveDate::from_ymd_opt(2026, 11, 26)
            .unwrap()
            .and_hms_nano_opt(6, 5, 4, 3_000)
            .unwrap();
        assert_eq!(datetime_to_wit(v), (2026, 11, 26, 6, 5, 4, 3_000));
    }
}
