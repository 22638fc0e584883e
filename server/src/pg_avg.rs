//! `pg_numeric_avg(sum, count)`: PostgreSQL's `avg` of integers and numerics, from the exact
//! sum of the values (a DECIMAL of scale s) and their count. PostgreSQL divides the two with
//! its numeric division, which rounds (half away from zero) at a scale it picks from the two
//! numbers: at least 16 significant digits, and never fewer decimals than the sum has. The
//! value this returns is that rounded quotient, exactly, as a `DECIMAL(76, s + 40)` (the
//! rounded digits followed by zeros): PostgreSQL's scale for an average of fewer than 10^10
//! values of scale s is at most s + 37. A scale past s + 40 fails the query rather than
//! rounding differently. The average of no values (count 0, sum NULL) is NULL.
//!
//! pg_kalam sends it where an average is compared on the server, such as TPC-H Q17's
//! `l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)`:
//! compared with another number, only the exact rounded value gives PostgreSQL's answer.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Decimal256Type, Int64Type};
use arrow_array::{Array, ArrayRef, Decimal256Array};
use arrow_buffer::i256;
use arrow_schema::DataType;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The name the server lists and pg_kalam calls.
pub const NAME: &str = "pg_numeric_avg";

/// Decimals the result has beyond the sum's.
pub const EXTRA_SCALE: i8 = 40;

/// PostgreSQL's `NUMERIC_MIN_SIG_DIGITS`: a quotient has at least this many significant digits.
const MIN_SIGNIFICANT_DIGITS: i32 = 16;

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgNumericAvg { signature: Signature::any(2, Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgNumericAvg {
    signature: Signature,
}

impl ScalarUDFImpl for PgNumericAvg {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Decimal128(_, scale) | DataType::Decimal256(_, scale), DataType::Int64]
                if (0..=76 - EXTRA_SCALE).contains(scale) =>
            {
                Ok(DataType::Decimal256(76, scale + EXTRA_SCALE))
            }
            other => plan_err!("{NAME} takes a DECIMAL of scale 0 to 36 and a BIGINT count, not {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [sums, counts] = &arrays[..] else { return exec_err!("{NAME} takes two arguments") };
        let (sums, scale): (Vec<Option<i256>>, i8) = match sums.data_type() {
            DataType::Decimal128(_, scale) => (
                sums.as_primitive::<Decimal128Type>().iter().map(|v| v.map(i256::from_i128)).collect(),
                *scale,
            ),
            DataType::Decimal256(_, scale) => {
                (sums.as_primitive::<Decimal256Type>().iter().collect(), *scale)
            }
            other => return exec_err!("{NAME} of {other:?}"),
        };
        let counts = counts.as_primitive::<Int64Type>();
        let mut averages = Vec::with_capacity(sums.len());
        for (sum, count) in sums.into_iter().zip(counts.iter()) {
            averages.push(match (sum, count) {
                (Some(sum), Some(count)) if count > 0 => Some(average(sum, scale, count)?),
                _ => None,
            });
        }
        let array = Decimal256Array::from(averages).with_precision_and_scale(76, scale + EXTRA_SCALE)?;
        let array: ArrayRef = Arc::new(array);
        Ok(if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

/// `sum × 10^-scale / count` as PostgreSQL's numeric division rounds it, unscaled at
/// `scale + EXTRA_SCALE`.
fn average(sum: i256, scale: i8, count: i64) -> Result<i256> {
    let scale = i32::from(scale);
    let rscale = division_scale(sum, scale, count);
    let out_scale = scale + i32::from(EXTRA_SCALE);
    if rscale > out_scale {
        return exec_err!("numeric average needs {rscale} decimals, more than the server's {out_scale}");
    }
    let overflow = || datafusion::error::DataFusionError::Execution("numeric average out of range".into());
    let numerator = sum.checked_mul(pow10(rscale - scale).ok_or_else(overflow)?).ok_or_else(overflow)?;
    let divisor = i256::from_i128(i128::from(count));
    let (quotient, remainder) = (numerator.wrapping_div(divisor), numerator.wrapping_rem(divisor));
    // Half away from zero: the dropped part is at least half the divisor.
    let twice = remainder.wrapping_abs().checked_mul(i256::from_i128(2)).ok_or_else(overflow)?;
    let rounded = if twice >= divisor {
        if numerator < i256::ZERO { quotient - i256::ONE } else { quotient + i256::ONE }
    } else {
        quotient
    };
    rounded.checked_mul(pow10(out_scale - rscale).ok_or_else(overflow)?).ok_or_else(overflow)
}

/// PostgreSQL's `select_div_scale` for `sum × 10^-scale` divided by `count` (a positive
/// integer): from the weights (in base-10000 digits) and the first base-10000 digits of both.
fn division_scale(sum: i256, scale: i32, count: i64) -> i32 {
    let (weight1, first1) = base10000_lead(sum.wrapping_abs(), scale);
    let (weight2, first2) = base10000_lead(i256::from_i128(i128::from(count)), 0);
    let mut qweight = weight1 - weight2;
    if first1 <= first2 {
        qweight -= 1;
    }
    (MIN_SIGNIFICANT_DIGITS - qweight * 4).max(scale).clamp(0, 1000)
}

/// The weight and the value of the first nonzero base-10000 digit of `magnitude × 10^-scale`
/// ((0, 0) for zero).
fn base10000_lead(magnitude: i256, scale: i32) -> (i32, i256) {
    if magnitude == i256::ZERO {
        return (0, i256::ZERO);
    }
    let digits = magnitude.to_string().len() as i32;
    // The exponent of the leading decimal digit, and the base-10000 digit holding it.
    let exponent = digits - 1 - scale;
    let weight = exponent.div_euclid(4);
    let shift = scale + 4 * weight;
    let first = if shift >= 0 {
        magnitude.wrapping_div(pow10(shift).unwrap_or(i256::MAX))
    } else {
        magnitude.wrapping_mul(pow10(-shift).unwrap_or(i256::ONE))
    };
    (weight, first)
}

fn pow10(exponent: i32) -> Option<i256> {
    let exponent = u32::try_from(exponent).ok()?;
    i256::from_i128(10).checked_pow(exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avg(sum: i128, scale: i8, count: i64) -> String {
        let value = average(i256::from_i128(sum), scale, count).unwrap();
        let text = value.to_string();
        let out_scale = (scale + EXTRA_SCALE) as usize;
        let (negative, digits) = match text.strip_prefix('-') {
            Some(d) => (true, d.to_string()),
            None => (false, text),
        };
        let padded = format!("{digits:0>width$}", width = out_scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - out_scale);
        let fraction = fraction.trim_end_matches('0');
        format!(
            "{}{whole}{}{fraction}",
            if negative { "-" } else { "" },
            if fraction.is_empty() { "" } else { "." }
        )
    }

    // Goal: the value is PostgreSQL's `avg` (as `SELECT avg(x)` prints it, trailing zeros
    // aside), rounded where PostgreSQL rounds.
    #[test]
    fn averages_round_as_postgresql_divides() {
        let cases = [
            // avg(1, 2, 2) = 1.6666666666666667 (16 digits).
            (5, 0, 3, "1.6666666666666667"),
            // avg of 25.50 and 25.00 over 2 rows: exact.
            (5050, 2, 2, "25.25"),
            // 2/3 = 0.66666666666666666667 (20 decimals: the quotient's weight is -1).
            (2, 0, 3, "0.66666666666666666667"),
            // -2/3 rounds away from zero.
            (-2, 0, 3, "-0.66666666666666666667"),
            // 10000/3: weight 0 against 0, first digits 1 <= 3: 3333.3333333333333333.
            (10000, 0, 3, "3333.3333333333333333"),
            // 1 / 7 with the sum's scale 2: 0.01/7 = 0.00142857142857142857.
            (1, 2, 7, "0.00142857142857142857"),
            // 0 over 5 rows: 0.
            (0, 2, 5, "0"),
            // Half away from zero: 1/8 at 16 digits is exact; 5/2 = 2.5 exact.
            (5, 0, 2, "2.5"),
        ];
        for (sum, scale, count, expected) in cases {
            assert_eq!(avg(sum, scale, count), expected, "avg of sum {sum} (scale {scale}) over {count}");
        }
    }

    // Goal: PostgreSQL's scale for the quotient (select_div_scale), including its first-digit
    // comparison.
    #[test]
    fn division_scale_is_postgresqls() {
        // 5 / 3: weights 0 and 0, first digits 5 > 3: 16 decimals.
        assert_eq!(division_scale(i256::from_i128(5), 0, 3), 16);
        // 2 / 3: 2 <= 3, so the quotient's weight is -1: 20 decimals.
        assert_eq!(division_scale(i256::from_i128(2), 0, 3), 20);
        // 123456 / 2 (weight 1): 12 decimals.
        assert_eq!(division_scale(i256::from_i128(123_456), 0, 2), 12);
        // The sum's own scale, when larger, is kept: 10^10 (scale 20) / 1 has 20 decimals.
        assert_eq!(division_scale(i256::from_i128(10_i128.pow(30)), 20, 1), 20);
        // A tiny sum: 5 × 10^-20 / 1 has 36 decimals.
        assert_eq!(division_scale(i256::from_i128(5), 20, 1), 36);
    }
}
