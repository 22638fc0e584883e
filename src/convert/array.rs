//! Arrow lists of fixed-width scalars → one-dimensional PostgreSQL arrays (`float4[]` for
//! embeddings, `int8[]`, ...), each built in a single allocation in the array's on-disk form.
//!
//! Layout (PostgreSQL's `array.h`): a varlena header, `ndim`, `dataoffset` (0 without NULLs),
//! the element type, one dimension and its lower bound (1), then, when some element is NULL, a
//! bitmap (bit set = present, least significant bit first, as in Arrow), then the present
//! elements packed at the element alignment, starting at a MAXALIGN'd offset. An empty list
//! becomes the empty array (no dimensions), as PostgreSQL writes it.

use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use pgrx::pg_sys::{self, Datum, Oid};

/// Element types an array column may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
}

impl Element {
    /// The element of a PostgreSQL array type, with the Arrow type it is read from.
    pub fn for_array_type(array_type: Oid) -> Option<(Element, DataType)> {
        Some(match array_type {
            pg_sys::BOOLARRAYOID => (Element::Bool, DataType::Boolean),
            pg_sys::INT2ARRAYOID => (Element::Int16, DataType::Int16),
            pg_sys::INT4ARRAYOID => (Element::Int32, DataType::Int32),
            pg_sys::INT8ARRAYOID => (Element::Int64, DataType::Int64),
            pg_sys::FLOAT4ARRAYOID => (Element::Float32, DataType::Float32),
            pg_sys::FLOAT8ARRAYOID => (Element::Float64, DataType::Float64),
            _ => return None,
        })
    }

    fn oid(self) -> Oid {
        match self {
            Element::Bool => pg_sys::BOOLOID,
            Element::Int16 => pg_sys::INT2OID,
            Element::Int32 => pg_sys::INT4OID,
            Element::Int64 => pg_sys::INT8OID,
            Element::Float32 => pg_sys::FLOAT4OID,
            Element::Float64 => pg_sys::FLOAT8OID,
        }
    }

    /// Bytes per element; each type's alignment equals its size.
    fn width(self) -> usize {
        match self {
            Element::Bool => 1,
            Element::Int16 => 2,
            Element::Int32 | Element::Float32 => 4,
            Element::Int64 | Element::Float64 => 8,
        }
    }
}

/// Size of `ArrayType` (varlena header, ndim, dataoffset, element type) plus one dimension and
/// its lower bound.
const HEADER_BYTES: usize = 16 + 8;

fn maxalign(n: usize) -> usize {
    n.next_multiple_of(pg_sys::MAXIMUM_ALIGNOF as usize)
}

/// The raw little-endian bytes of a primitive child array, or the unpacked bytes of a boolean
/// one (PostgreSQL stores one byte per bool).
pub enum ChildValues<'a> {
    Bytes(&'a [u8]),
    Bools(arrow_array::BooleanArray),
}

/// The child values of a list column, checked against the element type by the caller.
pub fn child_values(values: &ArrayRef, element: Element) -> ChildValues<'_> {
    fn raw<T: arrow_array::ArrowPrimitiveType>(values: &ArrayRef) -> &[u8] {
        let slice = values.as_primitive::<T>().values();
        // SAFETY: a primitive slice viewed as its bytes; all Arrow primitives are plain data.
        unsafe { std::slice::from_raw_parts(slice.as_ptr() as *const u8, std::mem::size_of_val(&slice[..])) }
    }
    match element {
        Element::Bool => ChildValues::Bools(values.as_boolean().clone()),
        Element::Int16 => ChildValues::Bytes(raw::<Int16Type>(values)),
        Element::Int32 => ChildValues::Bytes(raw::<Int32Type>(values)),
        Element::Int64 => ChildValues::Bytes(raw::<Int64Type>(values)),
        Element::Float32 => ChildValues::Bytes(raw::<Float32Type>(values)),
        Element::Float64 => ChildValues::Bytes(raw::<Float64Type>(values)),
    }
}

/// Builds the array of child elements `start..end` (palloc'd in the current memory context).
/// `child_nulls`: the child's null buffer, looked up once per column.
pub fn datum(
    element: Element,
    child_nulls: Option<&NullBuffer>,
    values: &ChildValues,
    start: usize,
    end: usize,
) -> Datum {
    let count = end - start;
    if count == 0 {
        // SAFETY: construct_empty_array pallocs an empty array of the element type.
        return Datum::from(unsafe { pg_sys::construct_empty_array(element.oid()) });
    }
    let width = element.width();
    let missing = child_nulls.map_or(0, |n| n.slice(start, count).null_count());
    let nulls = child_nulls.filter(|_| missing > 0);
    let present = count - missing;
    let bitmap_bytes = if nulls.is_some() { count.div_ceil(8) } else { 0 };
    let data_offset = maxalign(HEADER_BYTES + bitmap_bytes);
    let size = data_offset + present * width;
    // SAFETY: palloc0 returns `size` zeroed bytes; every write below stays inside them.
    unsafe {
        let ptr = pg_sys::palloc0(size) as *mut u8;
        super::set_varsize(ptr, size);
        (ptr.add(4) as *mut i32).write(1); // ndim
        (ptr.add(8) as *mut i32).write(if nulls.is_some() { data_offset as i32 } else { 0 });
        (ptr.add(12) as *mut Oid).write(element.oid());
        (ptr.add(16) as *mut i32).write(count as i32); // dims[0]
        (ptr.add(20) as *mut i32).write(1); // lbound[0]
        let data = ptr.add(data_offset);
        match &nulls {
            None => match values {
                ChildValues::Bytes(bytes) => {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr().add(start * width), data, count * width)
                }
                ChildValues::Bools(bools) => {
                    for i in 0..count {
                        *data.add(i) = bools.value(start + i) as u8;
                    }
                }
            },
            Some(nulls) => {
                let bitmap = ptr.add(HEADER_BYTES);
                let mut at = 0;
                for i in 0..count {
                    if nulls.is_null(start + i) {
                        continue;
                    }
                    *bitmap.add(i / 8) |= 1 << (i % 8);
                    match values {
                        ChildValues::Bytes(bytes) => std::ptr::copy_nonoverlapping(
                            bytes.as_ptr().add((start + i) * width),
                            data.add(at * width),
                            width,
                        ),
                        ChildValues::Bools(bools) => *data.add(at) = bools.value(start + i) as u8,
                    }
                    at += 1;
                }
            }
        }
        Datum::from(ptr)
    }
}
