//! Arrow columns into PostgreSQL datums, a whole column at a time.
//!
//! A [`Converter`] is chosen once per scan column, when the result schema is known, from the
//! pair (PostgreSQL type, Arrow type); converting a batch is then one tight loop per column
//! with no per-value type dispatch. By-reference values (text) are built with a single copy,
//! in the memory context current during [`Converter::convert`] (the scan's per-batch context).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::{DataType, TimeUnit};
use pgrx::PgSqlErrorCode;
use pgrx::pg_sys::{self, Datum, Oid};

use crate::error::{KalamError, Result};

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_OFFSET_DAYS: i32 = 10_957;
/// The same offset in microseconds.
const EPOCH_OFFSET_MICROS: i64 = EPOCH_OFFSET_DAYS as i64 * 86_400 * 1_000_000;
/// PostgreSQL's valid dates, in days since 2000-01-01: from 4714-11-24 BC (Julian day 0) up to
/// but excluding Julian day 2147483494 (`IS_VALID_DATE`).
const DATE_DAYS_MIN: i32 = -2_451_545;
const DATE_DAYS_END: i32 = 2_147_483_494 - 2_451_545;
/// PostgreSQL's valid timestamps, in microseconds since 2000-01-01: `MIN_TIMESTAMP` up to but
/// excluding `END_TIMESTAMP` (4714-11-24 BC to 294277-01-01).
const TIMESTAMP_MICROS_MIN: i64 = -211_813_488_000_000_000;
const TIMESTAMP_MICROS_END: i64 = 9_223_371_331_200_000_000;
/// Largest string a text datum can hold (1 GB less the varlena header).
const TEXT_BYTES_MAX: usize = 0x3fff_ffff - 4;

/// The hint given when a column's type cannot be read.
pub const SUPPORTED_TYPES_HINT: &str = "pg_kalam reads smallint, integer, bigint, real, double precision, \
     boolean, text, varchar, char, date, timestamp and timestamptz columns.";

/// How one Arrow column becomes datums of one PostgreSQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converter {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Utf8,
    LargeUtf8,
    Utf8View,
    /// Arrow timestamps of any unit, to PostgreSQL microseconds since 2000-01-01.
    Timestamp(TimeUnit),
    Date32,
}

/// The Arrow type pg_kalam expects for a PostgreSQL type (what it asks the server for).
pub fn arrow_type_for(pg_type: Oid) -> Option<DataType> {
    Some(match pg_type {
        pg_sys::INT2OID => DataType::Int16,
        pg_sys::INT4OID => DataType::Int32,
        pg_sys::INT8OID => DataType::Int64,
        pg_sys::FLOAT4OID => DataType::Float32,
        pg_sys::FLOAT8OID => DataType::Float64,
        pg_sys::BOOLOID => DataType::Boolean,
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => DataType::Utf8,
        pg_sys::TIMESTAMPOID => DataType::Timestamp(TimeUnit::Microsecond, None),
        pg_sys::TIMESTAMPTZOID => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        pg_sys::DATEOID => DataType::Date32,
        _ => return None,
    })
}

/// PostgreSQL's name of a type, for messages.
pub fn pg_type_name(pg_type: Oid) -> String {
    // SAFETY: format_type_be accepts any OID and returns a palloc'd C string.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(pg_type)).to_string_lossy().into_owned() }
}

impl Converter {
    /// Picks the converter for a column, or explains why the remote type does not fit.
    pub fn resolve(pg_type: Oid, remote: &DataType, column: &str) -> Result<Converter> {
        use Converter as C;
        let converter = match (pg_type, remote) {
            (pg_sys::INT2OID, DataType::Int16) => C::Int16,
            (pg_sys::INT4OID, DataType::Int32) => C::Int32,
            (pg_sys::INT8OID, DataType::Int64) => C::Int64,
            (pg_sys::FLOAT4OID, DataType::Float32) => C::Float32,
            (pg_sys::FLOAT8OID, DataType::Float64) => C::Float64,
            (pg_sys::BOOLOID, DataType::Boolean) => C::Bool,
            (pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID, DataType::Utf8) => C::Utf8,
            (pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID, DataType::LargeUtf8) => C::LargeUtf8,
            (pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID, DataType::Utf8View) => C::Utf8View,
            (pg_sys::TIMESTAMPOID, DataType::Timestamp(unit, None)) => C::Timestamp(*unit),
            (pg_sys::TIMESTAMPTZOID, DataType::Timestamp(unit, Some(_))) => C::Timestamp(*unit),
            (pg_sys::DATEOID, DataType::Date32) => C::Date32,
            _ => {
                let supported = arrow_type_for(pg_type).is_some();
                let error = KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
                    format!(
                        "column \"{column}\" has type {} but the KalamDB server sends {remote}",
                        pg_type_name(pg_type)
                    ),
                );
                return Err(if supported {
                    error.with_hint(
                        "Declare the foreign table column with the type that matches the remote column.",
                    )
                } else {
                    error.with_hint(SUPPORTED_TYPES_HINT)
                });
            }
        };
        Ok(converter)
    }

    /// Converts `array` into `values`/`nulls` (both cleared and refilled to `array.len()`).
    /// Must run with the per-batch memory context current: text datums are allocated there.
    /// `utf8`: the database encoding is UTF-8, so strings need no transcoding.
    pub fn convert(
        self,
        array: &dyn Array,
        column: &str,
        utf8: bool,
        (values, nulls): (&mut Vec<Datum>, &mut Vec<bool>),
    ) -> Result<()> {
        let len = array.len();
        values.clear();
        values.resize(len, Datum::from(0usize));
        nulls.clear();
        match array.logical_nulls() {
            Some(mask) => nulls.extend(mask.iter().map(|valid| !valid)),
            None => nulls.resize(len, false),
        }
        use Converter as C;
        match self {
            C::Int16 => fill(array.as_primitive::<Int16Type>(), values, Datum::from),
            C::Int32 => fill(array.as_primitive::<Int32Type>(), values, Datum::from),
            C::Int64 => fill(array.as_primitive::<Int64Type>(), values, Datum::from),
            C::Float32 => fill(array.as_primitive::<Float32Type>(), values, |v| Datum::from(v.to_bits())),
            C::Float64 => fill(array.as_primitive::<Float64Type>(), values, |v| Datum::from(v.to_bits())),
            C::Bool => {
                let array = array.as_boolean();
                for (i, value) in values.iter_mut().enumerate() {
                    *value = Datum::from(array.value(i));
                }
            }
            C::Date32 => dates(array.as_primitive::<Date32Type>(), column, values, nulls)?,
            C::Timestamp(unit) => timestamps(array, unit, column, values, nulls)?,
            C::Utf8 => texts(array.as_string::<i32>().iter(), column, utf8, values)?,
            C::LargeUtf8 => texts(array.as_string::<i64>().iter(), column, utf8, values)?,
            C::Utf8View => texts(array.as_string_view().iter(), column, utf8, values)?,
        }
        Ok(())
    }
}

/// Copies a primitive column; null slots get a value too (it is never read).
fn fill<T: ArrowPrimitiveType>(
    array: &PrimitiveArray<T>,
    values: &mut [Datum],
    to_datum: impl Fn(T::Native) -> Datum,
) {
    for (value, native) in values.iter_mut().zip(array.values().iter()) {
        *value = to_datum(*native);
    }
}

/// Text datums, one copy each. PostgreSQL text cannot hold NUL bytes or more than 1 GB, so
/// such values are errors; in a database that is not UTF-8 the string is converted (and
/// checked) by PostgreSQL, which costs a second copy.
fn texts<'a>(
    strings: impl Iterator<Item = Option<&'a str>>,
    column: &str,
    utf8: bool,
    values: &mut [Datum],
) -> Result<()> {
    for (value, string) in values.iter_mut().zip(strings) {
        let Some(s) = string else { continue };
        if s.len() > TEXT_BYTES_MAX || s.as_bytes().contains(&0) {
            let detail = if s.len() > TEXT_BYTES_MAX {
                format!("The value is {} bytes long; text holds at most 1 GB.", s.len())
            } else {
                "The value contains a NUL character (0x00).".to_string()
            };
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                format!("column \"{column}\" holds a value PostgreSQL text cannot store"),
            )
            .with_detail(detail));
        }
        let (mut bytes, mut len) = (s.as_ptr() as *const std::ffi::c_char, s.len() as i32);
        // SAFETY: `bytes` is valid for `len` bytes; both functions copy what they keep into the
        // current (per-batch) memory context. pg_any_to_server returns a NUL-terminated string
        // and raises an ERROR for characters the database encoding cannot represent.
        unsafe {
            if !utf8 {
                bytes = pg_sys::pg_any_to_server(bytes, len, pg_sys::pg_enc::PG_UTF8 as i32);
                len = std::ffi::CStr::from_ptr(bytes).to_bytes().len() as i32;
            }
            *value = Datum::from(pg_sys::cstring_to_text_with_len(bytes, len));
        }
    }
    Ok(())
}

fn out_of_range(kind: &str, column: &str, raw: String) -> KalamError {
    KalamError::new(
        PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
        format!("{kind} out of PostgreSQL's range in column \"{column}\": {raw}"),
    )
}

fn dates(
    array: &PrimitiveArray<Date32Type>,
    column: &str,
    values: &mut [Datum],
    nulls: &[bool],
) -> Result<()> {
    for (i, (value, &days)) in values.iter_mut().zip(array.values().iter()).enumerate() {
        if nulls[i] {
            continue;
        }
        let pg_days = days
            .checked_sub(EPOCH_OFFSET_DAYS)
            .filter(|d| (DATE_DAYS_MIN..DATE_DAYS_END).contains(d))
            .ok_or_else(|| out_of_range("date", column, format!("{days} days since 1970-01-01")))?;
        *value = Datum::from(pg_days);
    }
    Ok(())
}

/// Arrow timestamps of any unit: microseconds since 1970, shifted to PostgreSQL's epoch.
/// Nanoseconds are floored to the microsecond; out-of-range values are errors.
fn timestamps(
    array: &dyn Array,
    unit: TimeUnit,
    column: &str,
    values: &mut [Datum],
    nulls: &[bool],
) -> Result<()> {
    let to_micros: fn(i64) -> Option<i64> = match unit {
        TimeUnit::Second => |v| v.checked_mul(1_000_000),
        TimeUnit::Millisecond => |v| v.checked_mul(1_000),
        TimeUnit::Microsecond => Some,
        TimeUnit::Nanosecond => |v| Some(v.div_euclid(1_000)),
    };
    let raw: &[i64] = match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
    };
    for (i, (value, &v)) in values.iter_mut().zip(raw.iter()).enumerate() {
        if nulls[i] {
            continue;
        }
        let micros = to_micros(v)
            .and_then(|m| m.checked_sub(EPOCH_OFFSET_MICROS))
            .filter(|m| (TIMESTAMP_MICROS_MIN..TIMESTAMP_MICROS_END).contains(m))
            .ok_or_else(|| out_of_range("timestamp", column, format!("{v} {unit:?}s since 1970")))?;
        *value = Datum::from(micros);
    }
    Ok(())
}
