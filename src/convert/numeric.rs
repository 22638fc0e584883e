//! Decimal128 and Decimal256 → PostgreSQL `numeric`, built directly in numeric's on-disk form
//! (no text in between, but for the rare 256-bit value past 128 bits).
//!
//! A numeric is a varlena holding base-10000 digits (most significant first), the weight of the
//! first digit (its power of 10000), a sign and a display scale. PostgreSQL writes the short
//! header whenever the display scale and weight fit it, and strips zero digits at both ends;
//! this module does the same, so the bytes equal what `numeric_in` would make. The end-to-end
//! type tests compare every value with PostgreSQL's own parse of the server's text for it.

use arrow_buffer::i256;
use pgrx::pg_sys::{self, Datum};

/// Header bits (PostgreSQL's `numeric.c`).
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_SHORT: u16 = 0x8000;
const NUMERIC_SHORT_SIGN_MASK: u16 = 0x2000;
const NUMERIC_SHORT_DSCALE_SHIFT: u16 = 7;
const NUMERIC_SHORT_DSCALE_MAX: i32 = 63;
const NUMERIC_SHORT_WEIGHT_SIGN_MASK: u16 = 0x0040;
const NUMERIC_SHORT_WEIGHT_MASK: u16 = 0x003F;
const NUMERIC_SHORT_WEIGHT_MAX: i32 = 63;
const NUMERIC_SHORT_WEIGHT_MIN: i32 = -64;
const NUMERIC_DSCALE_MASK: u16 = 0x3FFF;
/// Decimal digits per numeric digit.
const DEC_DIGITS: i32 = 4;
const NBASE: u64 = 10_000;
/// Base-10000 digits of an i128 at most: 39 decimal digits, plus 3 of alignment.
const DIGITS_MAX: usize = 11;

/// Where a decimal's numeric digits are in the array [`digits`] fills: `low..high`, least
/// significant first, with no zero at either end; `weight` is the power of 10000 of the most
/// significant one. (The digits stay in the caller's array: returning them in a struct made
/// every value pay for copying the array right after writing it.)
pub struct Digits {
    pub negative: bool,
    pub weight: i32,
    low: usize,
    high: usize,
}

impl Digits {
    pub fn count(&self) -> usize {
        self.high - self.low
    }
}

/// 16 decimal digits: four numeric digits, extracted with 64-bit arithmetic.
const CHUNK: u128 = 10_000_000_000_000_000;

/// Appends `count` numeric digits of `chunk`, least significant first.
fn push(digits: &mut [i16; DIGITS_MAX], n: &mut usize, mut chunk: u64, count: usize) {
    for _ in 0..count {
        digits[*n] = (chunk % NBASE) as i16;
        chunk /= NBASE;
        *n += 1;
    }
}

/// Splits `unscaled × 10^-scale` into numeric digits (most significant first), without zeros
/// at either end.
#[inline(always)]
pub fn digits(unscaled: i128, scale: i32, low_first: &mut [i16; DIGITS_MAX]) -> Digits {
    let negative = unscaled < 0;
    let magnitude = unscaled.unsigned_abs();
    // Align the least significant decimal digit to a group boundary: its exponent becomes a
    // multiple of 4.
    let exponent = -scale;
    let shift = exponent.rem_euclid(DEC_DIGITS);
    let group = (exponent - shift) / DEC_DIGITS;
    let mut n = 0;
    // The common case: up to 15 significant digits, aligned in 64-bit arithmetic.
    const FAST_MAX: u128 = 1_000_000_000_000_000;
    const POW10: [u64; 4] = [1, 10, 100, 1000];
    if magnitude < FAST_MAX {
        let mut aligned = magnitude as u64 * POW10[shift as usize];
        while aligned != 0 {
            low_first[n] = (aligned % NBASE) as i16;
            aligned /= NBASE;
            n += 1;
        }
    } else {
        wide_digits(magnitude, shift, low_first, &mut n);
    }
    trimmed(low_first, n, group, negative)
}

/// The digits `low_first[..n]` (the lowest of power `group` of 10000) without zeros at
/// either end.
#[inline(always)]
fn trimmed(low_first: &[i16], mut n: usize, mut group: i32, negative: bool) -> Digits {
    let mut low = 0;
    while low < n && low_first[low] == 0 {
        low += 1;
        group += 1;
    }
    while n > low && low_first[n - 1] == 0 {
        n -= 1;
    }
    if low == n {
        return Digits { negative: false, weight: 0, low: 0, high: 0 };
    }
    Digits { negative, weight: group + (n - low) as i32 - 1, low, high: n }
}

/// The numeric digits, least significant first, of a magnitude of 16 digits or more, shifted
/// left by `shift` decimal digits.
fn wide_digits(magnitude: u128, shift: i32, low_first: &mut [i16; DIGITS_MAX], n: &mut usize) {
    match magnitude.checked_mul(10u128.pow(shift as u32)) {
        Some(aligned) if aligned <= u64::MAX as u128 => push(low_first, n, aligned as u64, 5),
        Some(aligned) => {
            push(low_first, n, (aligned % CHUNK) as u64, 4);
            push(low_first, n, ((aligned / CHUNK) % CHUNK) as u64, 4);
            push(low_first, n, (aligned / CHUNK / CHUNK) as u64, 3);
        }
        None => {
            // Only values above 10^35 with a shift: the lowest digit takes the shift in decimal
            // digits, the rest is aligned already.
            let mut rest = magnitude;
            let mut first = 0u64;
            let mut multiplier = 10u64.pow(shift as u32);
            for _ in 0..(DEC_DIGITS - shift) {
                first += (rest % 10) as u64 * multiplier;
                rest /= 10;
                multiplier *= 10;
            }
            push(low_first, n, first, 1);
            push(low_first, n, (rest % CHUNK) as u64, 4);
            push(low_first, n, ((rest / CHUNK) % CHUNK) as u64, 4);
            push(low_first, n, (rest / CHUNK / CHUNK) as u64, 2);
        }
    }
}

/// The most bytes a numeric datum takes: a varlena header, the long numeric header, the digits.
pub const DATUM_BYTES_MAX: usize = pg_sys::VARHDRSZ + 4 + 2 * DIGITS_MAX;

/// Writes a numeric datum into `arena`, which must have [`DATUM_BYTES_MAX`] bytes left.
#[inline]
pub fn datum(unscaled: i128, scale: i32, dscale: i32, arena: &mut super::arena::Arena) -> Datum {
    let mut low_first = [0i16; DIGITS_MAX];
    let digits = digits(unscaled, scale, &mut low_first);
    write(&low_first, &digits, dscale, arena)
}

/// Base-10000 digits of a 76-digit decimal at most, plus 3 decimal digits of alignment.
const WIDE_DIGITS_MAX: usize = 20;

/// The most bytes a numeric datum of [`datum_wide`] takes.
pub const WIDE_DATUM_BYTES_MAX: usize = pg_sys::VARHDRSZ + 4 + 2 * WIDE_DIGITS_MAX;

/// Writes the numeric datum of a 256-bit decimal (of at most 76 digits) into `arena`, which
/// must have [`WIDE_DATUM_BYTES_MAX`] bytes left. Wide decimals are sums, one per group: one
/// past 128 bits is split through its decimal text.
pub fn datum_wide(unscaled: i256, scale: i32, dscale: i32, arena: &mut super::arena::Arena) -> Datum {
    if let Some(narrow) = unscaled.to_i128() {
        return datum(narrow, scale, dscale, arena);
    }
    let exponent = -scale;
    let shift = exponent.rem_euclid(DEC_DIGITS);
    // The decimal digits, the lowest of power `exponent - shift` of 10 (a multiple of 4).
    let text = unscaled.to_string();
    let mut decimal: Vec<u8> = text.bytes().filter(u8::is_ascii_digit).map(|d| d - b'0').collect();
    decimal.extend(std::iter::repeat_n(0, shift as usize));
    let mut low_first = [0i16; WIDE_DIGITS_MAX];
    let mut n = 0;
    for chunk in decimal.rchunks(DEC_DIGITS as usize).take(WIDE_DIGITS_MAX) {
        low_first[n] = chunk.iter().fold(0i16, |number, &d| number * 10 + d as i16);
        n += 1;
    }
    let digits = trimmed(&low_first, n, (exponent - shift) / DEC_DIGITS, unscaled.is_negative());
    write(&low_first, &digits, dscale, arena)
}

/// Writes `digits` of `low_first` as a numeric datum into `arena` (which has room for it).
#[inline(always)]
fn write(low_first: &[i16], digits: &Digits, dscale: i32, arena: &mut super::arena::Arena) -> Datum {
    let (negative, weight) = (digits.negative, digits.weight);
    let short = dscale <= NUMERIC_SHORT_DSCALE_MAX
        && (NUMERIC_SHORT_WEIGHT_MIN..=NUMERIC_SHORT_WEIGHT_MAX).contains(&weight);
    let header_bytes = if short { 2 } else { 4 };
    let size = pg_sys::VARHDRSZ + header_bytes + 2 * digits.count();
    let ptr = arena.aligned(size);
    // SAFETY: the arena returned `size` writable bytes; every byte is written below.
    unsafe {
        super::set_varsize(ptr, size);
        let mut at = ptr.add(pg_sys::VARHDRSZ) as *mut u16;
        if short {
            let mut header = NUMERIC_SHORT | ((dscale as u16) << NUMERIC_SHORT_DSCALE_SHIFT);
            if negative {
                header |= NUMERIC_SHORT_SIGN_MASK;
            }
            if weight < 0 {
                header |= NUMERIC_SHORT_WEIGHT_SIGN_MASK;
            }
            header |= (weight as u16) & NUMERIC_SHORT_WEIGHT_MASK;
            at.write_unaligned(header);
            at = at.add(1);
        } else {
            let sign = if negative { NUMERIC_NEG } else { 0 };
            at.write_unaligned(sign | (dscale as u16 & NUMERIC_DSCALE_MASK));
            (at.add(1) as *mut i16).write_unaligned(weight as i16);
            at = at.add(2);
        }
        let at = at as *mut i16;
        for (i, digit) in low_first[digits.low..digits.high].iter().rev().enumerate() {
            at.add(i).write_unaligned(*digit);
        }
        Datum::from(ptr)
    }
}
