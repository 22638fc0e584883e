//! `pg_numeric_sum(decimal)`: the exact sum of decimals, as PostgreSQL's `sum(numeric)` is
//! exact, or an error: DataFusion's own `sum` of 128-bit decimals wraps around when the sum
//! leaves the 128-bit range, and so would answer a wrong number where PostgreSQL answers the
//! right one. This one adds with overflow checks and keeps the sum within 38 digits (the type's
//! precision), failing the query (`numeric sum out of range`) beyond. pg_kalam sums computed
//! numeric expressions with it when the server lists it (GetSqlInfo, with the functions of
//! [`crate::pg_functions`]).

use arrow_array::cast::AsArray;
use arrow_array::types::Decimal128Type;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

/// The name the server lists and pg_kalam calls.
pub const NAME: &str = "pg_numeric_sum";

/// The largest magnitude of a 38-digit decimal, plus one.
const LIMIT: i128 = 10i128.pow(38);

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
            [DataType::Decimal128(_, scale)] => Ok(DataType::Decimal128(38, *scale)),
            other => plan_err!("{NAME} takes one DECIMAL, not {other:?}"),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Sum { sum: None, data_type: args.return_field.data_type().clone() }))
    }
}

#[derive(Debug)]
struct Sum {
    /// `None` until a value that is not NULL arrives (the sum of no values is NULL).
    sum: Option<i128>,
    data_type: DataType,
}

impl Sum {
    fn add(&mut self, value: i128) -> Result<()> {
        let sum = self.sum.unwrap_or(0).checked_add(value).filter(|s| s.unsigned_abs() < LIMIT as u128);
        match sum {
            Some(sum) => {
                self.sum = Some(sum);
                Ok(())
            }
            None => exec_err!("numeric sum out of range: it needs more than 38 digits"),
        }
    }
}

impl Accumulator for Sum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = values[0].as_primitive::<Decimal128Type>();
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
        let DataType::Decimal128(precision, scale) = self.data_type else {
            return exec_err!("{NAME} of {:?}", self.data_type);
        };
        Ok(ScalarValue::Decimal128(self.sum, precision, scale))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Decimal128Array;

    use super::*;

    fn batch(values: &[Option<i128>]) -> ArrayRef {
        Arc::new(Decimal128Array::from(values.to_vec()).with_precision_and_scale(38, 2).unwrap())
    }

    // Goal: sums are exact, NULLs are skipped (no values: NULL), and a sum past 38 digits is an
    // error, never a wrapped-around number.
    #[test]
    fn sums_exactly_or_fails() {
        let mut sum = Sum { sum: None, data_type: DataType::Decimal128(38, 2) };
        sum.update_batch(&[batch(&[None, None])]).unwrap();
        assert_eq!(sum.evaluate().unwrap(), ScalarValue::Decimal128(None, 38, 2));
        sum.update_batch(&[batch(&[Some(150), None, Some(-25)])]).unwrap();
        sum.merge_batch(&[batch(&[Some(1)])]).unwrap();
        assert_eq!(sum.evaluate().unwrap(), ScalarValue::Decimal128(Some(126), 38, 2));
        let near = LIMIT - 1;
        let mut big = Sum { sum: None, data_type: DataType::Decimal128(38, 2) };
        big.update_batch(&[batch(&[Some(near)])]).unwrap();
        let error = big.update_batch(&[batch(&[Some(1)])]).unwrap_err().to_string();
        assert!(error.contains("numeric sum out of range"), "{error}");
        let mut wrap = Sum { sum: Some(i128::MAX), data_type: DataType::Decimal128(38, 2) };
        assert!(wrap.add(1).is_err());
    }
}
