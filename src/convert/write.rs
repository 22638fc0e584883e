//! PostgreSQL rows into Arrow record batches, for writes: one builder per column, appended to
//! a row at a time and finished into a batch of at most the batch size, so a long INSERT holds
//! one batch, not the statement.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use pgrx::pg_sys::{self, Datum, Oid};
use pgrx::{FromDatum, PgSqlErrorCode};

use super::{EPOCH_OFFSET_DAYS, EPOCH_OFFSET_MICROS, numeric_typmod, pg_type_name};
use crate::error::{KalamError, Result};

/// The hint given when a column's type cannot be written.
pub const WRITABLE_TYPES_HINT: &str = "pg_kalam writes smallint, integer, bigint, real, double precision, \
     boolean, numeric(p,s), text, varchar, char, json, jsonb, bytea, uuid, date, time, timestamp and \
     timestamptz, and one-dimensional arrays of boolean, smallint, integer, bigint, real and double precision.";

/// A list of `item` values, as arrays are sent (and read back).
fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// One column being written.
pub struct WriteColumn {
    pub name: String,
    pg_type: Oid,
    /// numeric(p,s): its scale.
    scale: i8,
    /// json/jsonb: the type's output function, looked up once.
    output: Oid,
    builder: Box<dyn ArrayBuilder>,
    data_type: DataType,
}

impl WriteColumn {
    /// The column `name` of `pg_type(typmod)`, or an error saying why it cannot be written.
    pub fn new(name: &str, pg_type: Oid, typmod: i32, table: &str) -> Result<Self> {
        let text = matches!(
            pg_type,
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID | pg_sys::JSONOID | pg_sys::JSONBOID
        );
        if text && !crate::runtime::database_is_utf8() {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("column \"{name}\" of foreign table \"{table}\": pg_kalam writes text only from a UTF-8 database"),
            )
            .with_hint("Create the database with ENCODING 'UTF8' to write text to KalamDB."));
        }
        let (builder, data_type, scale): (Box<dyn ArrayBuilder>, DataType, i8) = match pg_type {
            pg_sys::INT2OID => (Box::new(Int16Builder::new()), DataType::Int16, 0),
            pg_sys::INT4OID => (Box::new(Int32Builder::new()), DataType::Int32, 0),
            pg_sys::INT8OID => (Box::new(Int64Builder::new()), DataType::Int64, 0),
            pg_sys::FLOAT4OID => (Box::new(Float32Builder::new()), DataType::Float32, 0),
            pg_sys::FLOAT8OID => (Box::new(Float64Builder::new()), DataType::Float64, 0),
            pg_sys::BOOLOID => (Box::new(BooleanBuilder::new()), DataType::Boolean, 0),
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID | pg_sys::JSONOID | pg_sys::JSONBOID => {
                (Box::new(StringBuilder::new()), DataType::Utf8, 0)
            }
            pg_sys::BYTEAOID => (Box::new(BinaryBuilder::new()), DataType::Binary, 0),
            pg_sys::BOOLARRAYOID => {
                (Box::new(ListBuilder::new(BooleanBuilder::new())), list_of(DataType::Boolean), 0)
            }
            pg_sys::INT2ARRAYOID => {
                (Box::new(ListBuilder::new(Int16Builder::new())), list_of(DataType::Int16), 0)
            }
            pg_sys::INT4ARRAYOID => {
                (Box::new(ListBuilder::new(Int32Builder::new())), list_of(DataType::Int32), 0)
            }
            pg_sys::INT8ARRAYOID => {
                (Box::new(ListBuilder::new(Int64Builder::new())), list_of(DataType::Int64), 0)
            }
            pg_sys::FLOAT4ARRAYOID => {
                (Box::new(ListBuilder::new(Float32Builder::new())), list_of(DataType::Float32), 0)
            }
            pg_sys::FLOAT8ARRAYOID => {
                (Box::new(ListBuilder::new(Float64Builder::new())), list_of(DataType::Float64), 0)
            }
            pg_sys::UUIDOID => (Box::new(FixedSizeBinaryBuilder::new(16)), DataType::FixedSizeBinary(16), 0),
            pg_sys::DATEOID => (Box::new(Date32Builder::new()), DataType::Date32, 0),
            pg_sys::TIMEOID => (
                Box::new(Time64MicrosecondBuilder::new()),
                DataType::Time64(arrow_schema::TimeUnit::Microsecond),
                0,
            ),
            pg_sys::TIMESTAMPOID => (
                Box::new(TimestampMicrosecondBuilder::new()),
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
                0,
            ),
            pg_sys::TIMESTAMPTZOID => (
                Box::new(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())),
                0,
            ),
            pg_sys::NUMERICOID => match numeric_typmod(typmod) {
                Some((precision, scale)) if precision <= 38 && (0..=precision).contains(&scale) => {
                    let data_type = DataType::Decimal128(precision as u8, scale as i8);
                    let builder = Decimal128Builder::new().with_data_type(data_type.clone());
                    (Box::new(builder), data_type, scale as i8)
                }
                _ => {
                    return Err(KalamError::new(
                        PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
                        format!(
                            "column \"{name}\" of foreign table \"{table}\" is a numeric without a precision \
                             and scale of at most 38 digits, which pg_kalam cannot write exactly"
                        ),
                    )
                    .with_hint("Declare the column numeric(p,s) with p <= 38 and 0 <= s <= p, as the KalamDB column is."));
                }
            },
            other => {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
                    format!(
                        "column \"{name}\" of foreign table \"{table}\" has type {}, which pg_kalam cannot write yet",
                        pg_type_name(other)
                    ),
                )
                .with_hint(WRITABLE_TYPES_HINT));
            }
        };
        let mut output = pg_sys::InvalidOid;
        if matches!(pg_type, pg_sys::JSONOID | pg_sys::JSONBOID) {
            let mut varlena = false;
            // SAFETY: a syscache lookup of a built-in type.
            unsafe { pg_sys::getTypeOutputInfo(pg_type, &mut output, &mut varlena) };
        }
        Ok(Self { name: name.to_string(), pg_type, scale, output, builder, data_type })
    }

    /// Appends one value.
    ///
    /// # Safety
    /// `datum` must be a valid datum of the column's type (or `is_null`).
    pub unsafe fn append(&mut self, datum: Datum, is_null: bool) -> Result<()> {
        macro_rules! builder {
            ($t:ty) => {
                self.builder.as_any_mut().downcast_mut::<$t>().expect("the builder of the column's type")
            };
        }
        // An array, detoasted once, checked and read as a list of `$element`.
        macro_rules! append_list {
            ($element:ty, $item:ty) => {{
                let datum = self.detoasted_array(datum)?;
                let array = pgrx::Array::<$element>::from_datum(datum, false).expect("not null");
                builder!(ListBuilder<$item>).append_value(array.iter());
            }};
        }
        if is_null {
            // Every builder of this module takes a null the same way.
            match self.pg_type {
                pg_sys::INT2OID => builder!(Int16Builder).append_null(),
                pg_sys::INT4OID => builder!(Int32Builder).append_null(),
                pg_sys::INT8OID => builder!(Int64Builder).append_null(),
                pg_sys::FLOAT4OID => builder!(Float32Builder).append_null(),
                pg_sys::FLOAT8OID => builder!(Float64Builder).append_null(),
                pg_sys::BOOLOID => builder!(BooleanBuilder).append_null(),
                pg_sys::BYTEAOID => builder!(BinaryBuilder).append_null(),
                pg_sys::UUIDOID => builder!(FixedSizeBinaryBuilder).append_null(),
                pg_sys::DATEOID => builder!(Date32Builder).append_null(),
                pg_sys::TIMEOID => builder!(Time64MicrosecondBuilder).append_null(),
                pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => {
                    builder!(TimestampMicrosecondBuilder).append_null()
                }
                pg_sys::NUMERICOID => builder!(Decimal128Builder).append_null(),
                pg_sys::BOOLARRAYOID => builder!(ListBuilder<BooleanBuilder>).append_null(),
                pg_sys::INT2ARRAYOID => builder!(ListBuilder<Int16Builder>).append_null(),
                pg_sys::INT4ARRAYOID => builder!(ListBuilder<Int32Builder>).append_null(),
                pg_sys::INT8ARRAYOID => builder!(ListBuilder<Int64Builder>).append_null(),
                pg_sys::FLOAT4ARRAYOID => builder!(ListBuilder<Float32Builder>).append_null(),
                pg_sys::FLOAT8ARRAYOID => builder!(ListBuilder<Float64Builder>).append_null(),
                _ => builder!(StringBuilder).append_null(),
            }
            return Ok(());
        }
        // SAFETY: per the contract, the datum is of the column's type; by-reference values are
        // read (and detoasted) by pgrx.
        unsafe {
            match self.pg_type {
                pg_sys::INT2OID => builder!(Int16Builder).append_value(datum.value() as i16),
                pg_sys::INT4OID => builder!(Int32Builder).append_value(datum.value() as i32),
                pg_sys::INT8OID => builder!(Int64Builder).append_value(datum.value() as i64),
                pg_sys::FLOAT4OID => {
                    builder!(Float32Builder).append_value(f32::from_bits(datum.value() as u32))
                }
                pg_sys::FLOAT8OID => {
                    builder!(Float64Builder).append_value(f64::from_bits(datum.value() as u64))
                }
                pg_sys::BOOLOID => builder!(BooleanBuilder).append_value(datum.value() != 0),
                pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => {
                    let text = <&str>::from_datum(datum, false).expect("not null");
                    builder!(StringBuilder).append_value(text);
                }
                pg_sys::JSONOID | pg_sys::JSONBOID => {
                    let text = pg_sys::OidOutputFunctionCall(self.output, datum);
                    let value = std::ffi::CStr::from_ptr(text).to_str().map_err(|_| {
                        KalamError::new(
                            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                            format!("column \"{}\": JSON text that is not UTF-8", self.name),
                        )
                    })?;
                    builder!(StringBuilder).append_value(value);
                    pg_sys::pfree(text.cast());
                }
                pg_sys::BYTEAOID => {
                    let bytes = <&[u8]>::from_datum(datum, false).expect("not null");
                    builder!(BinaryBuilder).append_value(bytes);
                }
                pg_sys::UUIDOID => {
                    let uuid = pgrx::Uuid::from_datum(datum, false).expect("not null");
                    builder!(FixedSizeBinaryBuilder).append_value(uuid.as_bytes()).expect("16 bytes");
                }
                pg_sys::DATEOID => {
                    let days = datum.value() as i32;
                    let days = days.checked_add(EPOCH_OFFSET_DAYS).ok_or_else(|| self.infinite("date"))?;
                    if matches!(datum.value() as i32, i32::MIN | i32::MAX) {
                        return Err(self.infinite("date"));
                    }
                    builder!(Date32Builder).append_value(days);
                }
                pg_sys::TIMEOID => {
                    let micros = datum.value() as i64;
                    // PostgreSQL's time takes 24:00:00; a time of day in Arrow ends before it.
                    if micros >= 86_400_000_000 {
                        return Err(KalamError::new(
                            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
                            format!("column \"{}\": 24:00:00 cannot be stored in a KalamDB TIME", self.name),
                        ));
                    }
                    builder!(Time64MicrosecondBuilder).append_value(micros);
                }
                pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => {
                    let micros = datum.value() as i64;
                    if matches!(micros, i64::MIN | i64::MAX) {
                        return Err(self.infinite("timestamp"));
                    }
                    let micros = micros.checked_add(EPOCH_OFFSET_MICROS).ok_or_else(|| {
                        KalamError::new(
                            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
                            format!(
                                "column \"{}\": a timestamp after 294247 AD cannot be stored in KalamDB",
                                self.name
                            ),
                        )
                    })?;
                    builder!(TimestampMicrosecondBuilder).append_value(micros);
                }
                pg_sys::NUMERICOID => {
                    let numeric = pgrx::AnyNumeric::from_datum(datum, false).expect("not null");
                    let unscaled = unscaled(&numeric.to_string(), self.scale).ok_or_else(|| {
                        KalamError::new(
                            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                            format!(
                                "column \"{}\": {numeric} cannot be stored in a KalamDB DECIMAL",
                                self.name
                            ),
                        )
                        .with_hint("NaN and infinity have no KalamDB counterpart.")
                    })?;
                    builder!(Decimal128Builder).append_value(unscaled);
                }
                pg_sys::BOOLARRAYOID => append_list!(bool, BooleanBuilder),
                pg_sys::INT2ARRAYOID => append_list!(i16, Int16Builder),
                pg_sys::INT4ARRAYOID => append_list!(i32, Int32Builder),
                pg_sys::INT8ARRAYOID => append_list!(i64, Int64Builder),
                pg_sys::FLOAT4ARRAYOID => append_list!(f32, Float32Builder),
                pg_sys::FLOAT8ARRAYOID => append_list!(f64, Float64Builder),
                _ => unreachable!("refused by WriteColumn::new"),
            }
        }
        Ok(())
    }

    /// The array `datum` detoasted, when it is a list: one dimension (or none: empty) counted
    /// from 1, as it reads back; anything else would not come back the same.
    ///
    /// # Safety
    /// `datum` must be an array datum (not null).
    unsafe fn detoasted_array(&self, datum: Datum) -> Result<Datum> {
        // SAFETY: per the contract; the detoasted copy (if any) is freed with the row context.
        let (array, ndim, lower) = unsafe {
            let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *const pg_sys::ArrayType;
            let ndim = (*array).ndim;
            // ARR_LBOUND: the lower bounds follow the dimensions, after the header.
            let dims = (array as *const u8).add(std::mem::size_of::<pg_sys::ArrayType>()) as *const i32;
            (array, ndim, if ndim >= 1 { *dims.add(ndim as usize) } else { 1 })
        };
        if ndim > 1 {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "column \"{}\": an array of {ndim} dimensions cannot be stored in KalamDB",
                    self.name
                ),
            )
            .with_hint("KalamDB lists have one dimension."));
        }
        if lower != 1 {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_ARRAY_ELEMENT_ERROR,
                format!(
                    "column \"{}\": an array whose subscripts start at {lower} cannot be stored in KalamDB, whose lists start at 1",
                    self.name
                ),
            ));
        }
        Ok(Datum::from(array))
    }

    fn infinite(&self, kind: &str) -> KalamError {
        KalamError::new(
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("column \"{}\": an infinite {kind} cannot be stored in KalamDB", self.name),
        )
    }

    fn field(&self) -> Field {
        Field::new(&self.name, self.data_type.clone(), true)
    }
}

/// `text`, a numeric PostgreSQL printed with exactly `scale` digits after the point (its
/// column's typmod), as an unscaled integer; `None` for NaN, infinity or a value over 38 digits.
fn unscaled(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = usize::try_from(scale).ok()?;
    // The typmod already rounded the value to `scale` digits; pad what PostgreSQL left out.
    if fraction.len() > scale {
        return None;
    }
    let mut value: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()).chain(std::iter::repeat_n(b'0', scale - fraction.len())) {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

/// The columns of a write and the rows appended to them since the last batch.
pub struct RowBuffer {
    columns: Vec<WriteColumn>,
    schema: SchemaRef,
    rows: usize,
}

impl RowBuffer {
    pub fn new(columns: Vec<WriteColumn>) -> Self {
        let schema = Arc::new(Schema::new(columns.iter().map(WriteColumn::field).collect::<Vec<_>>()));
        Self { columns, schema, rows: 0 }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends a row: one value per column, in the columns' order. A value that cannot be
    /// stored is an error and leaves the buffer as it was before the row.
    ///
    /// # Safety
    /// `values` and `nulls` must hold a valid datum of each column's type.
    pub unsafe fn append(&mut self, values: &[Datum], nulls: &[bool]) -> Result<()> {
        for (i, column) in self.columns.iter_mut().enumerate() {
            // SAFETY: per the contract.
            if let Err(e) = unsafe { column.append(values[i], nulls[i]) } {
                // Columns before this one took the row: the batch is dropped with the statement,
                // which fails; nothing of it is sent.
                return Err(e);
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows appended since the last call, as a batch (the buffer is empty afterwards).
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|c| c.builder.finish()).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| {
            KalamError::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("cannot build the batch: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::unscaled;

    #[test]
    fn numerics_become_unscaled_integers() {
        assert_eq!(unscaled("12.30", 2), Some(1230));
        assert_eq!(unscaled("-0.05", 2), Some(-5));
        assert_eq!(unscaled("7", 3), Some(7000));
        assert_eq!(unscaled("NaN", 2), None);
        assert_eq!(unscaled("Infinity", 0), None);
        assert_eq!(unscaled(&"9".repeat(39), 0), None);
    }
}
