//! Memory for one column's by-reference values (text, bytea, numeric, uuid) of the rows being
//! converted.
//!
//! A batch's values of one column are written one after another into a buffer the column keeps
//! for the whole scan: no allocation (and no call into PostgreSQL) per value. The buffer is
//! sized for the batch before its values are written, so it never moves while they are in use;
//! the next batch overwrites them, which is when the previous batch's datums are dropped anyway
//! (the scan slot is cleared first). The buffer grows to the largest batch of the scan and is
//! freed with the scan state, also on error and abort.

use pgrx::PgSqlErrorCode;
use pgrx::pg_sys::{self, Datum};

use crate::error::{KalamError, Result};

/// The largest varlena with a 1-byte header (header included).
const SHORT_VARLENA_MAX: usize = 0x7f;
/// Bytes a value may need beyond its payload: a 4-byte header and up to 3 bytes of alignment.
pub const VARLENA_OVERHEAD: usize = 4 + 3;

// The headers below are written as PostgreSQL lays them out on little-endian machines.
#[cfg(target_endian = "big")]
compile_error!("pg_kalam writes varlena headers in little-endian layout");

/// A buffer grown past this is given back when a batch needs less than a quarter of it.
const KEEP_BYTES: usize = 1 << 20;

#[derive(Default)]
pub struct Arena {
    /// Whole words, so that the start is 8-byte aligned. Values are written into the spare
    /// capacity through raw pointers (the length stays 0): nothing is zeroed first, and only
    /// bytes written are ever read (PostgreSQL reads a value's own bytes, not the padding).
    words: Vec<u64>,
    used: usize,
}

impl Arena {
    /// Forgets the values written so far and makes room for `bytes` bytes of new ones.
    pub fn reset(&mut self, bytes: usize, column: &str) -> Result<()> {
        self.used = 0;
        let words = bytes.div_ceil(8);
        let capacity = self.words.capacity();
        if words > capacity || (capacity * 8 > KEEP_BYTES && words * 4 < capacity) {
            // The old values are dead: drop them rather than copy them into the new buffer.
            self.words = Vec::new();
            self.words.try_reserve_exact(words).map_err(|_| {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
                    format!("out of memory converting {bytes} bytes of column \"{column}\""),
                )
                .with_hint("Lower the foreign table's scan_batch_rows option.")
            })?;
        }
        Ok(())
    }

    /// Gives the buffer back (end of scan).
    pub fn release(&mut self) {
        *self = Arena::default();
    }

    /// `size` bytes at an `align`-byte boundary. Every caller reserved at least this much in
    /// [`Arena::reset`]; running past it is a bug, and an ERROR rather than a wild write.
    #[inline]
    fn take(&mut self, size: usize, align: usize) -> *mut u8 {
        let start = self.used.next_multiple_of(align);
        let end = start + size;
        assert!(end <= self.words.capacity() * 8, "pg_kalam: batch buffer sized too small");
        self.used = end;
        // SAFETY: start..end lies inside the allocation (checked above).
        unsafe { (self.words.as_mut_ptr() as *mut u8).add(start) }
    }

    /// A varlena holding `bytes` followed by `pad` spaces. Values up to 126 bytes get a 1-byte
    /// header (as PostgreSQL stores them in tuples, and reads them anywhere); longer ones a
    /// 4-byte header at a 4-byte boundary. Needs at most `bytes.len() + pad + VARLENA_OVERHEAD`.
    #[inline]
    pub fn varlena(&mut self, bytes: &[u8], pad: usize) -> Datum {
        let payload = bytes.len() + pad;
        // SAFETY: `take` returns header + payload writable bytes.
        unsafe {
            let (ptr, data) = if 1 + payload <= SHORT_VARLENA_MAX {
                let ptr = self.take(1 + payload, 1);
                // SET_VARSIZE_SHORT on a little-endian machine.
                *ptr = (((1 + payload) as u8) << 1) | 0x01;
                (ptr, ptr.add(1))
            } else {
                let ptr = self.take(4 + payload, 4);
                super::set_varsize(ptr, 4 + payload);
                (ptr, ptr.add(4))
            };
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
            std::ptr::write_bytes(data.add(bytes.len()), b' ', pad);
            Datum::from(ptr)
        }
    }

    /// `size` bytes at a 4-byte boundary for a value built in place (numeric).
    #[inline]
    pub fn aligned(&mut self, size: usize) -> *mut u8 {
        self.take(size, pg_sys::ALIGNOF_INT as usize)
    }

    /// A copy of `bytes` as a fixed-length by-reference value (uuid).
    #[inline]
    pub fn fixed(&mut self, bytes: &[u8]) -> Datum {
        let ptr = self.take(bytes.len(), pg_sys::MAXIMUM_ALIGNOF as usize);
        // SAFETY: `take` returns bytes.len() writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
        Datum::from(ptr)
    }
}
