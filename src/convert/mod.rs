//! Arrow columns into PostgreSQL datums, a whole column at a time.
//!
//! A [`Converter`] is chosen once per scan column, when the result schema is known, from the
//! pair (PostgreSQL type, Arrow type); converting a batch is then one tight loop per column
//! with no per-value type dispatch. By-reference values (text) are built with a single copy,
//! in the memory context current during [`Converter::convert`] (the scan's per-batch context).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::{DataType, TimeUnit};
use pgrx::PgSqlErrorCode;
use pgrx::pg_sys::{self, Datum, Oid};

use crate::error::{KalamError, Result};

mod arena;
mod array;
mod numeric;
pub mod write;

pub use arena::Arena;

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
     boolean, numeric, text, varchar, char, json, jsonb, bytea, uuid, date, time, timestamp, timestamptz, \
     and arrays of boolean, smallint, integer, bigint, real and double precision.";

/// Which Arrow string layout a text-like column has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strings {
    Utf8,
    LargeUtf8,
    Utf8View,
}

/// Which Arrow binary layout a bytea column has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binaries {
    Binary,
    LargeBinary,
    BinaryView,
    Fixed,
}

/// Which Arrow list layout an array column has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lists {
    List,
    LargeList,
    FixedSize(i32),
}

/// The declared length of a `varchar(n)` or `char(n)` column, which every value must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    Any,
    /// At most n characters.
    Varchar(usize),
    /// Exactly n characters: shorter values are padded with spaces, as `bpchar` input does.
    Bpchar(usize),
}

/// How one Arrow column becomes datums of one PostgreSQL type. Chosen once per scan column.
#[derive(Debug)]
pub enum Converter {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Text(Strings, Length),
    /// json or jsonb: the text goes through the type's input function, which checks it.
    Json(Strings, Box<InputFunction>),
    Bytea(Binaries),
    Uuid,
    /// Decimal128 (Decimal256 if `wide`) with the remote scale, written with display scale
    /// `dscale`.
    Numeric {
        scale: i32,
        dscale: i32,
        wide: bool,
    },
    /// Arrow timestamps of any unit, to PostgreSQL microseconds since 2000-01-01.
    Timestamp(TimeUnit),
    Date32,
    /// Time32/Time64 of any unit, to microseconds since midnight.
    Time(TimeUnit),
    Array(Lists, array::Element),
}

/// A type's input function, looked up once per scan.
pub struct InputFunction {
    flinfo: pg_sys::FmgrInfo,
    io_param: Oid,
}

impl std::fmt::Debug for InputFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InputFunction({:?})", self.flinfo.fn_oid)
    }
}

impl InputFunction {
    fn lookup(pg_type: Oid) -> Box<Self> {
        // SAFETY: catalog lookups for a built-in type; fmgr_info fills the struct in place and
        // the Box keeps it at one address for the scan's life.
        unsafe {
            let (mut function, mut io_param) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
            pg_sys::getTypeInputInfo(pg_type, &mut function, &mut io_param);
            let mut input = Box::new(InputFunction { flinfo: std::mem::zeroed(), io_param });
            pg_sys::fmgr_info(function, &mut input.flinfo);
            input
        }
    }
}

/// The Arrow type pg_kalam expects for a PostgreSQL type (what it asks the server for).
pub fn arrow_type_for(pg_type: Oid, typmod: i32) -> Option<DataType> {
    Some(match pg_type {
        pg_sys::INT2OID => DataType::Int16,
        pg_sys::INT4OID => DataType::Int32,
        pg_sys::INT8OID => DataType::Int64,
        pg_sys::FLOAT4OID => DataType::Float32,
        pg_sys::FLOAT8OID => DataType::Float64,
        pg_sys::BOOLOID => DataType::Boolean,
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID | pg_sys::JSONOID | pg_sys::JSONBOID => {
            DataType::Utf8
        }
        pg_sys::BYTEAOID => DataType::Binary,
        pg_sys::UUIDOID => DataType::FixedSizeBinary(16),
        pg_sys::NUMERICOID => match numeric_typmod(typmod) {
            Some((precision, scale)) => DataType::Decimal128(precision as u8, scale as i8),
            None => DataType::Decimal128(38, 10),
        },
        pg_sys::TIMESTAMPOID => DataType::Timestamp(TimeUnit::Microsecond, None),
        pg_sys::TIMESTAMPTZOID => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        pg_sys::DATEOID => DataType::Date32,
        pg_sys::TIMEOID => DataType::Time64(TimeUnit::Microsecond),
        other => {
            let (_, element) = array::Element::for_array_type(other)?;
            DataType::List(std::sync::Arc::new(arrow_schema::Field::new("item", element, true)))
        }
    })
}

/// Precision and scale of a `numeric(p,s)` typmod; `None` for unconstrained numeric.
pub(crate) fn numeric_typmod(typmod: i32) -> Option<(i32, i32)> {
    if typmod < pg_sys::VARHDRSZ as i32 {
        return None;
    }
    let packed = typmod - pg_sys::VARHDRSZ as i32;
    // The scale is an 11-bit two's complement field (PostgreSQL 15 allows negative scales).
    let scale = ((packed & 0x7ff) ^ 1024) - 1024;
    Some(((packed >> 16) & 0xffff, scale))
}

/// PostgreSQL's name of a type, for messages.
pub fn pg_type_name(pg_type: Oid) -> String {
    // SAFETY: format_type_be accepts any OID and returns a palloc'd C string.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(pg_type)).to_string_lossy().into_owned() }
}

fn strings(remote: &DataType) -> Option<Strings> {
    match remote {
        DataType::Utf8 => Some(Strings::Utf8),
        DataType::LargeUtf8 => Some(Strings::LargeUtf8),
        DataType::Utf8View => Some(Strings::Utf8View),
        _ => None,
    }
}

fn mismatch(column: &str, pg_type: Oid, typmod: i32, remote: &DataType, why: Option<String>) -> KalamError {
    // SAFETY: format_type_with_typemod accepts any type and typmod; returns a palloc'd string.
    let local = unsafe {
        std::ffi::CStr::from_ptr(pg_sys::format_type_with_typemod(pg_type, typmod))
            .to_string_lossy()
            .into_owned()
    };
    let error = KalamError::new(
        PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
        format!("column \"{column}\" has type {local} but the KalamDB server sends {remote}"),
    );
    match (why, arrow_type_for(pg_type, typmod).is_some()) {
        (Some(why), _) => error
            .with_detail(why)
            .with_hint("Declare the foreign table column with a type that holds every remote value."),
        (None, true) => {
            error.with_hint("Declare the foreign table column with the type that matches the remote column.")
        }
        (None, false) => error.with_hint(SUPPORTED_TYPES_HINT),
    }
}

impl Converter {
    /// Picks the converter for a column, or explains why the remote type does not fit.
    pub fn resolve(pg_type: Oid, typmod: i32, remote: &DataType, column: &str) -> Result<Converter> {
        use Converter as C;
        let fail = |why: Option<String>| Err(mismatch(column, pg_type, typmod, remote, why));
        let converter = match (pg_type, remote) {
            (pg_sys::INT2OID, DataType::Int16) => C::Int16,
            (pg_sys::INT4OID, DataType::Int32) => C::Int32,
            (pg_sys::INT8OID, DataType::Int64) => C::Int64,
            (pg_sys::FLOAT4OID, DataType::Float32) => C::Float32,
            (pg_sys::FLOAT8OID, DataType::Float64) => C::Float64,
            (pg_sys::BOOLOID, DataType::Boolean) => C::Bool,
            (pg_sys::TEXTOID, _) if strings(remote).is_some() => {
                C::Text(strings(remote).unwrap(), Length::Any)
            }
            (pg_sys::VARCHAROID | pg_sys::BPCHAROID, _) if strings(remote).is_some() => {
                let n = typmod - pg_sys::VARHDRSZ as i32;
                let length = match (pg_type, n) {
                    (_, n) if n < 0 => Length::Any,
                    (pg_sys::VARCHAROID, n) => Length::Varchar(n as usize),
                    (_, n) => Length::Bpchar(n as usize),
                };
                C::Text(strings(remote).unwrap(), length)
            }
            (pg_sys::JSONOID | pg_sys::JSONBOID, _) if strings(remote).is_some() => {
                C::Json(strings(remote).unwrap(), InputFunction::lookup(pg_type))
            }
            (pg_sys::BYTEAOID, DataType::Binary) => C::Bytea(Binaries::Binary),
            (pg_sys::BYTEAOID, DataType::LargeBinary) => C::Bytea(Binaries::LargeBinary),
            (pg_sys::BYTEAOID, DataType::BinaryView) => C::Bytea(Binaries::BinaryView),
            (pg_sys::BYTEAOID, DataType::FixedSizeBinary(_)) => C::Bytea(Binaries::Fixed),
            (pg_sys::UUIDOID, DataType::FixedSizeBinary(16)) => C::Uuid,
            (
                pg_sys::NUMERICOID,
                DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale),
            ) => {
                let wide = matches!(remote, DataType::Decimal256(..));
                let (precision, scale) = (*precision as i32, *scale as i32);
                match numeric_typmod(typmod) {
                    None => C::Numeric { scale, dscale: scale.max(0), wide },
                    // Every remote value must fit without rounding: no more fractional digits
                    // and no more integral digits than the column declares.
                    Some((p, s)) if scale <= s && precision - scale <= p - s => {
                        C::Numeric { scale, dscale: s.max(0), wide }
                    }
                    Some(_) => {
                        return fail(Some(format!("Values of {remote} do not all fit without rounding.")));
                    }
                }
            }
            (pg_sys::TIMESTAMPOID, DataType::Timestamp(unit, None)) => C::Timestamp(*unit),
            (pg_sys::TIMESTAMPTZOID, DataType::Timestamp(unit, Some(_))) => C::Timestamp(*unit),
            (pg_sys::DATEOID, DataType::Date32) => C::Date32,
            (pg_sys::TIMEOID, DataType::Time32(unit) | DataType::Time64(unit)) => C::Time(*unit),
            (_, DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _)) => {
                let Some((element, expected)) = array::Element::for_array_type(pg_type) else {
                    return fail(None);
                };
                if field.data_type() != &expected {
                    return fail(None);
                }
                let layout = match remote {
                    DataType::List(_) => Lists::List,
                    DataType::LargeList(_) => Lists::LargeList,
                    DataType::FixedSizeList(_, size) => Lists::FixedSize(*size),
                    _ => unreachable!("matched above"),
                };
                C::Array(layout, element)
            }
            _ => return fail(None),
        };
        Ok(converter)
    }

    /// Converts `array` into `values`/`nulls` (both refilled to `array.len()`). The value of a
    /// NULL is left as it was, possibly a pointer to a buffer since reused or freed: PostgreSQL
    /// never reads the value of an attribute whose null flag is set. By-reference values go
    /// into `arena`, or, for the few kinds built by PostgreSQL functions (arrays, json, text in
    /// a database that is not UTF-8), into the current memory context, which must be the
    /// per-batch one.
    /// `utf8`: the database encoding is UTF-8, so strings need no transcoding.
    pub fn convert(
        &self,
        array: &dyn Array,
        column: &str,
        utf8: bool,
        (values, nulls, arena): (&mut Vec<Datum>, &mut Vec<bool>, &mut Arena),
    ) -> Result<()> {
        let len = array.len();
        values.resize(len, Datum::from(0usize));
        nulls.clear();
        match array.logical_nulls().filter(|mask| mask.null_count() > 0) {
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
            C::Timestamp(unit) => timestamps(array, *unit, column, values, nulls)?,
            C::Time(unit) => times(array, *unit, column, values, nulls)?,
            C::Text(layout, length) if utf8 => match layout {
                Strings::Utf8 => {
                    let array = array.as_string::<i32>();
                    let text = Texts::contiguous(array.value_offsets(), array.value_data());
                    text.convert(|i| array.value(i).as_bytes(), *length, column, values, nulls, arena)?
                }
                Strings::LargeUtf8 => {
                    let array = array.as_string::<i64>();
                    let text = Texts::contiguous(array.value_offsets(), array.value_data());
                    text.convert(|i| array.value(i).as_bytes(), *length, column, values, nulls, arena)?
                }
                Strings::Utf8View => {
                    let array = array.as_string_view();
                    let text = Texts::views(array.views());
                    text.convert(|i| array.value(i).as_bytes(), *length, column, values, nulls, arena)?
                }
            },
            C::Text(layout, length) => {
                let strings: &mut dyn Iterator<Item = Option<&str>> = match layout {
                    Strings::Utf8 => &mut array.as_string::<i32>().iter(),
                    Strings::LargeUtf8 => &mut array.as_string::<i64>().iter(),
                    Strings::Utf8View => &mut array.as_string_view().iter(),
                };
                transcoded_texts(strings, column, *length, values)?;
            }
            C::Json(layout, input) => {
                let strings: &mut dyn Iterator<Item = Option<&str>> = match layout {
                    Strings::Utf8 => &mut array.as_string::<i32>().iter(),
                    Strings::LargeUtf8 => &mut array.as_string::<i64>().iter(),
                    Strings::Utf8View => &mut array.as_string_view().iter(),
                };
                json(strings, column, input, values)?;
            }
            C::Bytea(layout) => match layout {
                Binaries::Binary => {
                    let array = array.as_binary::<i32>();
                    let bytes = offset_span(array.value_offsets()).len();
                    byteas(|i| array.value(i), bytes, column, values, nulls, arena)?
                }
                Binaries::LargeBinary => {
                    let array = array.as_binary::<i64>();
                    let bytes = offset_span(array.value_offsets()).len();
                    byteas(|i| array.value(i), bytes, column, values, nulls, arena)?
                }
                Binaries::BinaryView => {
                    let array = array.as_binary_view();
                    let bytes = view_bytes(array.views());
                    byteas(|i| array.value(i), bytes, column, values, nulls, arena)?
                }
                Binaries::Fixed => {
                    let array = array.as_fixed_size_binary();
                    let bytes = array.value_length() as usize * len;
                    byteas(|i| array.value(i), bytes, column, values, nulls, arena)?
                }
            },
            C::Uuid => {
                let array = array.as_fixed_size_binary();
                arena.reset(len * 24, column)?;
                for (i, value) in values.iter_mut().enumerate() {
                    if !nulls[i] {
                        *value = arena.fixed(array.value(i));
                    }
                }
            }
            C::Numeric { scale, dscale, wide: true } => {
                let array = array.as_primitive::<Decimal256Type>();
                arena.reset(len * numeric::WIDE_DATUM_BYTES_MAX.next_multiple_of(4), column)?;
                for (i, (value, unscaled)) in values.iter_mut().zip(array.values().iter()).enumerate() {
                    if !nulls[i] {
                        *value = numeric::datum_wide(*unscaled, *scale, *dscale, arena);
                    }
                }
            }
            C::Numeric { scale, dscale, wide: false } => {
                let array = array.as_primitive::<Decimal128Type>();
                arena.reset(len * numeric::DATUM_BYTES_MAX.next_multiple_of(4), column)?;
                for (i, (value, unscaled)) in values.iter_mut().zip(array.values().iter()).enumerate() {
                    if !nulls[i] {
                        *value = numeric::datum(*unscaled, *scale, *dscale, arena);
                    }
                }
            }
            C::Array(layout, element) => lists(array, *layout, *element, values, nulls),
        }
        Ok(())
    }
}

/// Marks the end of a 4-byte-header varlena of `size` bytes (PostgreSQL's `SET_VARSIZE`).
///
/// # Safety
/// `ptr` must point to at least 4 writable bytes.
unsafe fn set_varsize(ptr: *mut u8, size: usize) {
    // SAFETY: per the contract; the length is stored shifted left by 2 on little-endian machines.
    unsafe { (ptr as *mut u32).write_unaligned((size as u32) << 2) };
}

fn lists(array: &dyn Array, layout: Lists, element: array::Element, values: &mut [Datum], nulls: &[bool]) {
    match layout {
        Lists::List => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let bounds = |i: usize| (offsets[i] as usize, offsets[i + 1] as usize);
            list_values(list.values(), bounds, element, values, nulls);
        }
        Lists::LargeList => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets();
            let bounds = |i: usize| (offsets[i] as usize, offsets[i + 1] as usize);
            list_values(list.values(), bounds, element, values, nulls);
        }
        Lists::FixedSize(size) => {
            let list = array.as_fixed_size_list();
            let bounds =
                |i: usize| (list.value_offset(i) as usize, list.value_offset(i) as usize + size as usize);
            list_values(list.values(), bounds, element, values, nulls);
        }
    }
}

fn list_values(
    child: &ArrayRef,
    bounds: impl Fn(usize) -> (usize, usize),
    element: array::Element,
    values: &mut [Datum],
    nulls: &[bool],
) {
    let child_values = array::child_values(child, element);
    let child_nulls = child.logical_nulls();
    for (i, value) in values.iter_mut().enumerate() {
        if !nulls[i] {
            let (start, end) = bounds(i);
            *value = array::datum(element, child_nulls.as_ref(), &child_values, start, end);
        }
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

/// The string bytes of a column slice, for sizing its arena and checking for NUL bytes.
struct Texts<'a> {
    /// Bytes of every value, NULLs included (whose length is normally 0).
    bytes: usize,
    /// The values' bytes when they are contiguous (Utf8, LargeUtf8): checked for NUL at once.
    contiguous: Option<&'a [u8]>,
}

impl<'a> Texts<'a> {
    fn contiguous<O: arrow_array::OffsetSizeTrait>(offsets: &[O], data: &'a [u8]) -> Self {
        let span = offset_span(offsets);
        Texts { bytes: span.len(), contiguous: Some(&data[span]) }
    }

    fn views(views: &[u128]) -> Self {
        Texts { bytes: view_bytes(views), contiguous: None }
    }

    /// Text datums, one copy each, into `arena`. PostgreSQL text cannot hold NUL bytes or more
    /// than 1 GB, so such values are errors, as are values longer than a `varchar(n)`/`char(n)`
    /// column allows; `char(n)` values are padded to n.
    fn convert(
        &self,
        value: impl Fn(usize) -> &'a [u8],
        length: Length,
        column: &str,
        values: &mut [Datum],
        nulls: &[bool],
        arena: &mut Arena,
    ) -> Result<()> {
        let rows = values.len();
        // char(n) pads each value with at most n spaces.
        let padding = match length {
            Length::Bpchar(n) => n * nulls.iter().filter(|null| !**null).count(),
            _ => 0,
        };
        arena.reset(self.bytes + rows * arena::VARLENA_OVERHEAD + padding, column)?;
        // One search over contiguous values; a value is searched alone only if it may hold NUL.
        let check_each = self.contiguous.is_none_or(|bytes| bytes.contains(&0));
        for (i, value_out) in values.iter_mut().enumerate() {
            if nulls[i] {
                continue;
            }
            let bytes = value(i);
            if bytes.len() > TEXT_BYTES_MAX || (check_each && has_nul(bytes)) {
                return Err(unstorable_text(bytes, column));
            }
            *value_out = match length {
                Length::Any => arena.varlena(bytes, 0),
                Length::Varchar(n) => {
                    // SAFETY: Arrow string arrays hold valid UTF-8.
                    let s = unsafe { std::str::from_utf8_unchecked(bytes) };
                    let s = if s.len() > n { fit_length(s, n, column, "character varying")? } else { s };
                    arena.varlena(s.as_bytes(), 0)
                }
                Length::Bpchar(n) => {
                    // SAFETY: as above.
                    let s = unsafe { std::str::from_utf8_unchecked(bytes) };
                    let s = if s.len() > n { fit_length(s, n, column, "character")? } else { s };
                    arena.varlena(s.as_bytes(), n.saturating_sub(s.chars().count()))
                }
            };
        }
        Ok(())
    }
}

/// Where the values of an offset-based array (a slice of one, too) lie in its data buffer.
fn offset_span<O: arrow_array::OffsetSizeTrait>(offsets: &[O]) -> std::ops::Range<usize> {
    offsets[0].as_usize()..offsets[offsets.len() - 1].as_usize()
}

/// Bytes of the values of a view array: the sum of their lengths (the low 32 bits of a view).
fn view_bytes(views: &[u128]) -> usize {
    views.iter().map(|&view| view as u32 as usize).sum()
}

/// Whether `bytes` holds a NUL. Values up to 64 bytes, the most common, are read 8 bytes at a
/// time (the last word may overlap the one before), without a call.
#[inline]
fn has_nul(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Exactly when some byte of the word is zero.
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let len = bytes.len();
    if len < 8 {
        return bytes.iter().fold(false, |nul, &b| nul | (b == 0));
    }
    if len > 64 {
        return bytes.contains(&0);
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let mut nul = zero_byte(word(len - 8));
    for at in (0..len - 8).step_by(8) {
        nul |= zero_byte(word(at));
    }
    nul
}

/// Text datums in a database whose encoding is not UTF-8: PostgreSQL converts (and checks)
/// each value, which costs a second copy. Checked as in [`Texts::convert`].
fn transcoded_texts(
    strings: &mut dyn Iterator<Item = Option<&str>>,
    column: &str,
    length: Length,
    values: &mut [Datum],
) -> Result<()> {
    let mut padded = String::new();
    for (value, string) in values.iter_mut().zip(strings) {
        let Some(mut s) = string else { continue };
        check_text(s.as_bytes(), column)?;
        match length {
            Length::Any => {}
            Length::Varchar(n) => {
                if s.len() > n {
                    s = fit_length(s, n, column, "character varying")?;
                }
            }
            Length::Bpchar(n) => {
                if s.len() > n {
                    s = fit_length(s, n, column, "character")?;
                }
                let chars = s.chars().count();
                if chars < n {
                    padded.clear();
                    padded.push_str(s);
                    padded.extend(std::iter::repeat_n(' ', n - chars));
                    s = &padded;
                }
            }
        }
        *value = transcoded_text_datum(s.as_bytes());
    }
    Ok(())
}

/// A value for a column of at most `n` characters: itself, or, as PostgreSQL's input does, the
/// value cut to n when only spaces are cut; else an error.
fn fit_length<'a>(s: &'a str, n: usize, column: &str, type_name: &str) -> Result<&'a str> {
    match s.char_indices().nth(n) {
        None => Ok(s),
        Some((end, _)) if s[end..].bytes().all(|b| b == b' ') => Ok(&s[..end]),
        Some(_) => Err(KalamError::new(
            PgSqlErrorCode::ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
            format!("value too long for type {type_name}({n}) in column \"{column}\""),
        )
        .with_detail(format!("The remote value has {} characters.", s.chars().count()))
        .with_hint("Declare the column with a larger length, or as text.")),
    }
}

/// Rejects what PostgreSQL text cannot store: NUL bytes and values over 1 GB.
fn check_text(bytes: &[u8], column: &str) -> Result<()> {
    if bytes.len() <= TEXT_BYTES_MAX && !bytes.contains(&0) {
        return Ok(());
    }
    Err(unstorable_text(bytes, column))
}

fn unstorable_text(bytes: &[u8], column: &str) -> KalamError {
    let detail = if bytes.len() > TEXT_BYTES_MAX {
        format!("The value is {} bytes long; text holds at most 1 GB.", bytes.len())
    } else {
        "The value contains a NUL character (0x00).".to_string()
    };
    KalamError::new(
        PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        format!("column \"{column}\" holds a value PostgreSQL text cannot store"),
    )
    .with_detail(detail)
}

/// A text datum of UTF-8 `bytes` (checked by [`check_text`]) in the database encoding, in the
/// current memory context.
fn transcoded_text_datum(bytes: &[u8]) -> Datum {
    // SAFETY: `bytes` is valid for its length; both functions copy what they keep into the
    // current memory context. pg_any_to_server returns a NUL-terminated string and raises an
    // ERROR for characters the database encoding cannot represent.
    unsafe {
        let ptr = bytes.as_ptr() as *const std::ffi::c_char;
        let ptr = pg_sys::pg_any_to_server(ptr, bytes.len() as i32, pg_sys::pg_enc::PG_UTF8 as i32);
        let len = std::ffi::CStr::from_ptr(ptr).to_bytes().len() as i32;
        Datum::from(pg_sys::cstring_to_text_with_len(ptr, len))
    }
}

/// json/jsonb datums through the type's input function, which rejects malformed JSON; the
/// error then names the column.
fn json<'a>(
    strings: &mut dyn Iterator<Item = Option<&'a str>>,
    column: &str,
    input: &InputFunction,
    values: &mut [Datum],
) -> Result<()> {
    for (value, string) in values.iter_mut().zip(strings) {
        let Some(s) = string else { continue };
        check_text(s.as_bytes(), column)?;
        // SAFETY: pnstrdup makes the NUL-terminated copy the input function needs; the input
        // function allocates its result in the current context. An ERROR it raises is caught
        // and re-raised naming the column.
        let parsed = pgrx::PgTryBuilder::new(|| unsafe {
            let text = pg_sys::pnstrdup(s.as_ptr() as *const std::ffi::c_char, s.len());
            let flinfo = &input.flinfo as *const pg_sys::FmgrInfo as *mut pg_sys::FmgrInfo;
            Ok(pg_sys::InputFunctionCall(flinfo, text, input.io_param, -1))
        })
        .catch_others(|caught| {
            let reason = match &caught {
                pgrx::pg_sys::panic::CaughtError::PostgresError(report)
                | pgrx::pg_sys::panic::CaughtError::ErrorReport(report)
                | pgrx::pg_sys::panic::CaughtError::RustPanic { ereport: report, .. } => {
                    report.message().to_string()
                }
            };
            Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                format!("column \"{column}\" holds malformed JSON: {reason}"),
            ))
        })
        .execute();
        *value = parsed?;
    }
    Ok(())
}

/// bytea datums, one copy each, into `arena`; `bytes`: the payload bytes of all the values.
fn byteas<'a>(
    value: impl Fn(usize) -> &'a [u8],
    bytes: usize,
    column: &str,
    values: &mut [Datum],
    nulls: &[bool],
    arena: &mut Arena,
) -> Result<()> {
    arena.reset(bytes + values.len() * arena::VARLENA_OVERHEAD, column)?;
    for (i, value_out) in values.iter_mut().enumerate() {
        if nulls[i] {
            continue;
        }
        let bytes = value(i);
        if bytes.len() > TEXT_BYTES_MAX {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "column \"{column}\" holds a value of {} bytes; bytea holds at most 1 GB",
                    bytes.len()
                ),
            ));
        }
        *value_out = arena.varlena(bytes, 0);
    }
    Ok(())
}

/// Time of day in any unit, to PostgreSQL's microseconds since midnight (24:00:00 included).
fn times(
    array: &dyn Array,
    unit: TimeUnit,
    column: &str,
    values: &mut [Datum],
    nulls: &[bool],
) -> Result<()> {
    match unit {
        TimeUnit::Second => time_values(
            array.as_primitive::<Time32SecondType>(),
            |v| v as i64 * 1_000_000,
            column,
            values,
            nulls,
        ),
        TimeUnit::Millisecond => time_values(
            array.as_primitive::<Time32MillisecondType>(),
            |v| v as i64 * 1_000,
            column,
            values,
            nulls,
        ),
        TimeUnit::Microsecond => {
            time_values(array.as_primitive::<Time64MicrosecondType>(), |v| v, column, values, nulls)
        }
        TimeUnit::Nanosecond => time_values(
            array.as_primitive::<Time64NanosecondType>(),
            |v| v.div_euclid(1_000),
            column,
            values,
            nulls,
        ),
    }
}

fn time_values<T: ArrowPrimitiveType>(
    array: &PrimitiveArray<T>,
    to_micros: impl Fn(T::Native) -> i64,
    column: &str,
    values: &mut [Datum],
    nulls: &[bool],
) -> Result<()> {
    const DAY_MICROS: i64 = 86_400_000_000;
    for (i, (value, raw)) in values.iter_mut().zip(array.values().iter()).enumerate() {
        if nulls[i] {
            continue;
        }
        let micros = to_micros(*raw);
        if !(0..=DAY_MICROS).contains(&micros) {
            return Err(out_of_range("time", column, format!("{micros} microseconds since midnight")));
        }
        *value = Datum::from(micros);
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
