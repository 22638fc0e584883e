//! `pg_numeric_sum(decimal)`: the exact sum of decimals, as PostgreSQL's `sum(numeric)` is
//! exact, or an error: DataFusion's own `sum` of 128-bit decimals wraps around when the sum
//! leaves the 128-bit range, and so would answer a wrong number where PostgreSQL answers the
//! right one. This one adds with overflow checks and keeps the sum within its type's digits
//! (38 for a DECIMAL of up to 38 digits, 76 for a wider one), failing the query
//! (`numeric sum out of range`) beyond. pg_kalam sums computed numeric expressions with it when
//! the server lists it (GetSqlInfo, with the functions of [`crate::pg_functions`]); products of
//! more than 38 digits (`price * (1 - discount) * (1 + tax)`) it computes and sums as
//! `DECIMAL(76, s)`.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Decimal256Type, DecimalType};
use arrow_array::{Array, ArrayRef, ArrowNativeTypeOp};
use arrow_schema::DataType;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

/// The name the server lists and pg_kalam calls.
pub const NAME: &str = "pg_numeric_sum";

pub fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(PgNumericSum { signature: Signature::any(1, Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgNumericSum {
    signature: Signature,
}

impl AggregateUDFImpl for PgNumericSum {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Decimal128(_, scale)] => {
                Ok(DataType::Decimal128(Decimal128Type::MAX_PRECISION, *scale))
            }
            [DataType::Decimal256(_, scale)] => {
                Ok(DataType::Decimal256(Decimal256Type::MAX_PRECISION, *scale))
            }
            other => plan_err!("{NAME} takes one DECIMAL, not {other:?}"),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(match *args.return_field.data_type() {
            DataType::Decimal256(_, scale) => Box::new(Sum::<Decimal256Type>::new(scale)),
            DataType::Decimal128(_, scale) => Box::new(Sum::<Decimal128Type>::new(scale)),
            ref other => return exec_err!("{NAME} of {other:?}"),
        })
    }
}

struct Sum<T: DecimalType> {
    /// `None` until a value that is not NULL arrives (the sum of no values is NULL).
    sum: Option<T::Native>,
    scale: i8,
}

impl<T: DecimalType> std::fmt::Debug for Sum<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sum").field("sum", &self.sum).field("scale", &self.scale).finish()
    }
}

impl<T: DecimalType> Sum<T> {
    fn new(scale: i8) -> Self {
        Sum { sum: None, scale }
    }

    fn add(&mut self, value: T::Native) -> Result<()> {
        let sum = self
            .sum
            .unwrap_or(T::Native::ZERO)
            .add_checked(value)
            .ok()
            .filter(|s| T::is_valid_decimal_precision(*s, T::MAX_PRECISION));
        match sum {
            Some(sum) => {
                self.sum = Some(sum);
                Ok(())
            }
            None => exec_err!("numeric sum out of range: it needs more than {} digits", T::MAX_PRECISION),
        }
    }
}

impl<T: DecimalType> Accumulator for Sum<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = values[0].as_primitive::<T>();
        if values.null_count() == values.len() {
            return Ok(());
        }
        for value in values.iter().flatten() {
            self.add(value)?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let array = arrow_array::PrimitiveArray::<T>::from_iter([self.sum])
            .with_precision_and_scale(T::MAX_PRECISION, self.scale)?;
        ScalarValue::try_from_array(&array, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Decimal128Array, Decimal256Array};
    use arrow_buffer::i256;

    use super::*;

    fn batch(values: &[Option<i128>]) -> ArrayRef {
        Arc::new(Decimal128Array::from(values.to_vec()).with_precision_and_scale(38, 2).unwrap())
    }

    fn wide(values: &[Option<i256>]) -> ArrayRef {
        Arc::new(Decimal256Array::from(values.to_vec()).with_precision_and_scale(76, 6).unwrap())
    }

    // Goal: sums are exact, NULLs are skipped (no values: NULL), and a sum past 38 digits is an
    // error, never a wrapped-around number.
    #[test]
    fn sums_exactly_or_fails() {
        let mut sum = Sum::<Decimal128Type>::new(2);
        sum.update_batch(&[batch(&[None, None])]).unwrap();
        assert_eq!(sum.evaluate().unwrap(), ScalarValue::Decimal128(None, 38, 2));
        sum.update_batch(&[batch(&[Some(150), None, Some(-25)])]).unwrap();
        sum.merge_batch(&[batch(&[Some(1)])]).unwrap();
        assert_eq!(sum.evaluate().unwrap(), ScalarValue::Decimal128(Some(126), 38, 2));
        let near = 10i128.pow(38) - 1;
        let mut big = Sum::<Decimal128Type>::new(2);
        big.update_batch(&[batch(&[Some(near)])]).unwrap();
        let error = big.update_batch(&[batch(&[Some(1)])]).unwrap_err().to_string();
        assert!(error.contains("numeric sum out of range"), "{error}");
        let mut wrap = Sum::<Decimal128Type> { sum: Some(i128::MAX), scale: 2 };
        assert!(wrap.add(1).is_err());
    }

    // Goal: a 76-digit sum is exact past 38 digits and fails past 76.
    #[test]
    fn wide_sums_exactly_or_fails() {
        let udaf = udaf();
        assert_eq!(udaf.return_type(&[DataType::Decimal256(47, 6)]).unwrap(), DataType::Decimal256(76, 6));
        let mut sum = Sum::<Decimal256Type>::new(6);
        let past_38 = i256::from_i128(10i128.pow(38) - 1);
        sum.update_batch(&[wide(&[Some(past_38), None, Some(past_38)])]).unwrap();
        let expected = past_38.checked_mul(i256::from_i128(2)).unwrap();
        assert_eq!(sum.evaluate().unwrap(), ScalarValue::Decimal256(Some(expected), 76, 6));
        let near = i256::from_i128(10).pow_wrapping(76).checked_sub(i256::ONE).unwrap();
        let mut big = Sum::<Decimal256Type>::new(6);
        big.update_batch(&[wide(&[Some(near)])]).unwrap();
        let error = big.update_batch(&[wide(&[Some(i256::ONE)])]).unwrap_err().to_string();
        assert!(error.contains("more than 76 digits"), "{error}");
    }
}
