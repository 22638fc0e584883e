//! `SNOWFLAKE_ID()`: unique, time-ordered 63-bit ids, usable as a column default
//! (`id BIGINT DEFAULT SNOWFLAKE_ID()`).
//!
//! Layout of an id, high to low: 41 bits of milliseconds since [`EPOCH_MS`] (about 69 years),
//! 10 bits of node id, 12 bits of sequence. Ids from one server are strictly increasing: when
//! more than 4,096 are asked for within one millisecond, the sequence carries into the next
//! millisecond, so uniqueness never depends on the clock (a clock that steps back does not
//! repeat an id either).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::Int64Array;
use arrow_schema::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// 2024-01-01T00:00:00Z, in milliseconds since the Unix epoch.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
/// Node id of this server (one node until clustering exists).
const NODE_ID: u64 = 1;

/// The last id handed out by this process.
static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// The next id: at least the current time's first id, and always above the previous one.
pub fn next_id() -> i64 {
    next_ids(1)
}

/// Reserves `count` consecutive ids (one clock read, one atomic update) and returns the first.
pub fn next_ids(count: usize) -> i64 {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let floor = (now_ms.saturating_sub(EPOCH_MS) << (NODE_BITS + SEQUENCE_BITS)) | (NODE_ID << SEQUENCE_BITS);
    let count = count.max(1) as u64;
    let previous = LAST_ID
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(floor.max(last + 1) + count - 1))
        .expect("the update closure always returns Some");
    floor.max(previous + 1) as i64
}

/// Makes every later id larger than `id` (ids recovered from disk after a restart).
pub fn observe(id: i64) {
    LAST_ID.fetch_max(id.max(0) as u64, Ordering::Relaxed);
}

/// The smallest id that can be handed out at `unix_ms` (for "rows newer than" filters).
pub fn floor_at_ms(unix_ms: u64) -> i64 {
    (unix_ms.saturating_sub(EPOCH_MS) << (NODE_BITS + SEQUENCE_BITS)) as i64
}

/// The SQL function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SnowflakeId {
    signature: Signature,
}

impl SnowflakeId {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self { signature: Signature::nullary(Volatility::Volatile) })
    }
}

impl ScalarUDFImpl for SnowflakeId {
    fn name(&self) -> &str {
        "snowflake_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let first = next_ids(args.number_rows);
        let ids = Int64Array::from_iter_values(first..first + args.number_rows as i64);
        Ok(ColumnarValue::Array(Arc::new(ids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: ids are positive, strictly increasing across a burst far above 4,096 per
    // millisecond, and carry the current time in their high bits.
    #[test]
    fn ids_increase_and_carry_time() {
        let ids: Vec<i64> = (0..100_000).map(|_| next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids[0] > 0);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let id_ms = (ids[0] as u64 >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS;
        assert!(id_ms <= now_ms + 1_000 && now_ms - id_ms < 60_000, "id time {id_ms} vs now {now_ms}");
        assert_eq!((ids[0] as u64 >> SEQUENCE_BITS) & ((1 << NODE_BITS) - 1), NODE_ID);
    }
}
