//! KalamDB column types: how the SQL type of a column definition becomes an Arrow field, how a
//! stored field is named back (DESCRIBE TABLE, `system.columns`, `system.tables`), and how a
//! written value is brought to its column's type.
//!
//! The types DataFusion already knows keep its mapping (integers, floats, booleans, text as
//! Utf8View, DECIMAL(p,s), DATE, arrays of them). [`KalamTypePlanner`] adds KalamDB's own and
//! pins time to PostgreSQL's unit, the microsecond:
//!
//! | SQL | Arrow | field metadata |
//! |---|---|---|
//! | `UUID` | FixedSizeBinary(16) | `ARROW:extension:name` = `arrow.uuid` |
//! | `JSON`, `JSONB` | Utf8 holding JSON text | `arrow.json` |
//! | `FILE` | Utf8 holding a JSON object (a FileRef) | `arrow.json`, `kalamdb.type` = `FILE` |
//! | `EMBEDDING(n)` | FixedSizeList<Float32>(n) | |
//! | `TIMESTAMP` | Timestamp(µs) | |
//! | `TIMESTAMPTZ`, `TIMESTAMP WITH TIME ZONE` | Timestamp(µs, UTC) | |
//! | `TIME` | Time64(µs) | |
//! | `BYTEA`, `BYTES`, `BINARY`, `VARBINARY`, `BLOB` | Binary | |
//!
//! The extension names are Arrow's canonical ones, so a client tells a uuid from other 16-byte
//! binaries and JSON from text without knowing KalamDB.
//!
//! Every write goes through [`conform`]: values arrive in whatever type the client or the SQL
//! produced and become the column's type exactly, or the write is refused with what to do:
//! an integer that does not fit, UUID text that is not a UUID, JSON that does not parse.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, Float64Array, Int64Array, new_null_array};
use arrow_cast::CastOptions;
use arrow_schema::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::{Between, InList, ScalarFunction};
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::{DataType as SqlType, TimezoneInfo};

/// Field metadata key of an Arrow extension type's name.
pub const EXTENSION_NAME: &str = "ARROW:extension:name";
/// Field metadata key of an Arrow extension type's parameters.
pub const EXTENSION_METADATA: &str = "ARROW:extension:metadata";
/// Field metadata key naming a KalamDB type that no Arrow extension describes (`FILE`).
pub const KALAMDB_TYPE: &str = "kalamdb.type";
const UUID_EXTENSION: &str = "arrow.uuid";
const JSON_EXTENSION: &str = "arrow.json";
const FILE_TYPE: &str = "FILE";

/// Most dimensions an EMBEDDING column may declare (pgvector's limit for `vector(n)`).
pub const EMBEDDING_DIMENSIONS_MAX: u64 = 16_000;

/// How much of a refused value an error message quotes.
const QUOTED_CHARS_MAX: usize = 40;

/// A UUID column.
pub fn uuid_field(name: &str) -> Field {
    Field::new(name, DataType::FixedSizeBinary(16), true)
        .with_metadata(HashMap::from([(EXTENSION_NAME.into(), UUID_EXTENSION.into())]))
}

/// A JSON column (JSON and JSONB are the same KalamDB type).
pub fn json_field(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([
        (EXTENSION_NAME.into(), JSON_EXTENSION.into()),
        // arrow.json's parameters are an empty string or an empty JSON object.
        (EXTENSION_METADATA.into(), String::new()),
    ]))
}

/// A FILE column: JSON holding a FileRef object.
pub fn file_field(name: &str) -> Field {
    let mut field = json_field(name);
    let mut metadata = field.metadata().clone();
    metadata.insert(KALAMDB_TYPE.into(), FILE_TYPE.into());
    field.set_metadata(metadata);
    field
}

/// An EMBEDDING(n) column.
pub fn embedding_field(name: &str, dimensions: i32) -> Field {
    Field::new(name, DataType::new_fixed_size_list(DataType::Float32, dimensions, true), true)
}

pub fn is_uuid(field: &Field) -> bool {
    field.metadata().get(EXTENSION_NAME).is_some_and(|n| n == UUID_EXTENSION)
        && field.data_type() == &DataType::FixedSizeBinary(16)
}

/// JSON and FILE columns.
pub fn is_json(field: &Field) -> bool {
    field.metadata().get(EXTENSION_NAME).is_some_and(|n| n == JSON_EXTENSION)
}

pub fn is_file(field: &Field) -> bool {
    is_json(field) && field.metadata().get(KALAMDB_TYPE).is_some_and(|t| t == FILE_TYPE)
}

/// The KalamDB type of a stored column, as DDL would write it.
pub fn type_name(field: &Field) -> String {
    if is_file(field) {
        return FILE_TYPE.into();
    }
    if is_json(field) {
        return "JSON".into();
    }
    if is_uuid(field) {
        return "UUID".into();
    }
    data_type_name(field.data_type())
}

fn data_type_name(data_type: &DataType) -> String {
    use DataType::*;
    let name = match data_type {
        Boolean => "BOOLEAN",
        Int8 => "TINYINT",
        Int16 => "SMALLINT",
        Int32 => "INT",
        Int64 => "BIGINT",
        UInt8 => "TINYINT UNSIGNED",
        UInt16 => "SMALLINT UNSIGNED",
        UInt32 => "INT UNSIGNED",
        UInt64 => "BIGINT UNSIGNED",
        Float32 => "FLOAT",
        Float64 => "DOUBLE",
        Utf8 | LargeUtf8 | Utf8View => "TEXT",
        Binary | LargeBinary | BinaryView => "BYTES",
        Date32 | Date64 => "DATE",
        Time32(_) | Time64(_) => "TIME",
        Timestamp(_, None) => "TIMESTAMP",
        Timestamp(_, Some(_)) => "TIMESTAMPTZ",
        FixedSizeBinary(n) => return format!("BINARY({n})"),
        Decimal128(p, s) | Decimal256(p, s) => return format!("DECIMAL({p},{s})"),
        FixedSizeList(item, n) if item.data_type() == &Float32 => return format!("EMBEDDING({n})"),
        List(item) | LargeList(item) | FixedSizeList(item, _) => return format!("{}[]", type_name(item)),
        other => return other.to_string(),
    };
    name.into()
}

/// The Arrow field of a KalamDB type DataFusion does not map the way KalamDB does; `None` for
/// the types DataFusion's own mapping covers.
pub fn kalam_field(sql_type: &SqlType) -> Result<Option<Field>> {
    let plain = |data_type| Some(Field::new("", data_type, true));
    let micros_with = |tz: &TimezoneInfo| -> Option<Arc<str>> {
        matches!(tz, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone).then(|| "UTC".into())
    };
    Ok(match sql_type {
        SqlType::Uuid => Some(uuid_field("")),
        SqlType::JSON | SqlType::JSONB => Some(json_field("")),
        SqlType::Bytea
        | SqlType::Bytes(_)
        | SqlType::Binary(_)
        | SqlType::Varbinary(_)
        | SqlType::Blob(_) => plain(DataType::Binary),
        SqlType::Timestamp(precision, tz) => {
            check_time_precision(*precision, sql_type)?;
            plain(DataType::Timestamp(TimeUnit::Microsecond, micros_with(tz)))
        }
        SqlType::Datetime(precision) | SqlType::TimestampNtz(precision) => {
            check_time_precision(*precision, sql_type)?;
            plain(DataType::Timestamp(TimeUnit::Microsecond, None))
        }
        SqlType::Time(precision, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            check_time_precision(*precision, sql_type)?;
            plain(DataType::Time64(TimeUnit::Microsecond))
        }
        SqlType::Time(..) => {
            return Err(unsupported(sql_type, "TIME WITH TIME ZONE is not stored: use TIMESTAMPTZ or TIME"));
        }
        SqlType::Custom(name, args) => {
            let name = name.to_string().to_ascii_uppercase();
            match (name.as_str(), args.as_slice()) {
                ("FILE", []) => Some(file_field("")),
                ("EMBEDDING", [dimensions]) => Some(embedding_field("", embedding_dimensions(dimensions)?)),
                ("EMBEDDING", _) => {
                    return Err(unsupported(sql_type, "give the number of dimensions: EMBEDDING(384)"));
                }
                _ => return Err(unknown_type(sql_type)),
            }
        }
        _ => None,
    })
}

/// Times are kept to the microsecond: a precision other than 6 would promise a rounding the
/// server does not do.
fn check_time_precision(precision: Option<u64>, sql_type: &SqlType) -> Result<()> {
    match precision {
        Some(p) if p != 6 => {
            Err(unsupported(sql_type, "times are kept in microseconds: leave the precision out or write 6"))
        }
        _ => Ok(()),
    }
}

fn embedding_dimensions(text: &str) -> Result<i32> {
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=EMBEDDING_DIMENSIONS_MAX).contains(&n) => Ok(n as i32),
        _ => Err(DataFusionError::Plan(format!(
            "EMBEDDING({text}) is not valid: give 1 to {EMBEDDING_DIMENSIONS_MAX} dimensions"
        ))),
    }
}

/// The column types a table can have, for the error that names an unknown one.
pub const TYPE_NAMES: &str = "BOOLEAN, SMALLINT, INT, BIGINT, REAL, DOUBLE, DECIMAL(p,s), TEXT, VARCHAR, \
     BYTES, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, UUID, JSON, FILE, EMBEDDING(n), or an array such as INT[]";

fn unknown_type(sql_type: &SqlType) -> DataFusionError {
    DataFusionError::Plan(format!("unknown type {sql_type}: use one of {TYPE_NAMES}"))
}

fn unsupported(sql_type: &SqlType, what_to_do: &str) -> DataFusionError {
    DataFusionError::Plan(format!("type {sql_type} is not supported: {what_to_do}"))
}

/// Plugs [`kalam_field`] into DataFusion's SQL planner: column definitions and `CAST(... AS t)`.
#[derive(Debug)]
pub struct KalamTypePlanner;

impl TypePlanner for KalamTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlType) -> Result<Option<FieldRef>> {
        Ok(kalam_field(sql_type)?.map(Arc::new))
    }
}

/// Brings `column` to the type of `field`, exactly: a value that does not fit is an error
/// (never a silent NULL or a truncated value). Errors say what is wrong with the value; the
/// caller names the column.
pub fn conform(field: &Field, column: ArrayRef) -> Result<ArrayRef, String> {
    let column = if is_uuid(field) {
        uuid_array(&column)?
    } else if column.data_type() == field.data_type() {
        column
    } else {
        cast_exactly(&column, field.data_type())?
    };
    if is_json(field) {
        check_json(&column, is_file(field))?;
    }
    Ok(column)
}

/// Arrow's cast where it is exact; where it would truncate or saturate, what PostgreSQL's
/// assignment does instead: a float becomes the nearest integer (ties to even, as `rint`), a
/// numeric the nearest integer (ties away from zero), a finer time the nearest microsecond (ties
/// to even); a double that a real cannot hold is an error. Values that do not fit are errors.
fn cast_exactly(column: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    use DataType::*;
    let exact = CastOptions { safe: false, ..CastOptions::default() };
    let cast = |column: &ArrayRef, to: &DataType| {
        arrow_cast::cast_with_options(column, to, &exact).map_err(|e| e.to_string())
    };
    match (column.data_type(), to) {
        (Float16 | Float32 | Float64, to) if to.is_integer() => {
            let floats = cast(column, &Float64)?;
            let rounded: Float64Array = floats.as_primitive::<Float64Type>().unary(f64::round_ties_even);
            cast(&(Arc::new(rounded) as ArrayRef), to)
        }
        (Decimal128(p, s) | Decimal256(p, s), to) if to.is_integer() && *s > 0 => {
            let whole = if matches!(column.data_type(), Decimal128(..)) {
                Decimal128(*p, 0)
            } else {
                Decimal256(*p, 0)
            };
            cast(&cast(column, &whole)?, to)
        }
        (Float64, Float32) => {
            let narrowed = cast(column, to)?;
            let (wide, narrow) =
                (column.as_primitive::<Float64Type>(), narrowed.as_primitive::<Float32Type>());
            for (w, n) in wide.iter().zip(narrow.iter()) {
                if let (Some(w), Some(n)) = (w, n)
                    && ((n.is_infinite() && w.is_finite()) || (n == 0.0 && w != 0.0))
                {
                    return Err(format!("{w} is out of range for a REAL"));
                }
            }
            Ok(narrowed)
        }
        (Timestamp(from, _), Timestamp(unit, _)) | (Time64(from), Time64(unit)) if finer(*from, *unit) => {
            let ticks = cast(column, &Int64)?;
            let divisor = ticks_per(*from) / ticks_per(*unit);
            let rounded: Int64Array = ticks.as_primitive::<Int64Type>().unary(|t| div_ties_even(t, divisor));
            cast(&(Arc::new(rounded) as ArrayRef), to)
        }
        _ => cast(column, to),
    }
}

fn ticks_per(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

fn finer(from: TimeUnit, to: TimeUnit) -> bool {
    ticks_per(from) > ticks_per(to)
}

/// `value / divisor` rounded to the nearest integer, ties to even.
fn div_ties_even(value: i64, divisor: i64) -> i64 {
    let (quotient, remainder) = (value.div_euclid(divisor), value.rem_euclid(divisor));
    match (2 * remainder).cmp(&divisor) {
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal if quotient % 2 != 0 => quotient + 1,
        _ => quotient,
    }
}

/// Every value of a JSON column parses as JSON (RFC 8259, as PostgreSQL's json input); a FILE
/// value is a JSON object.
fn check_json(column: &ArrayRef, objects_only: bool) -> Result<(), String> {
    let check = |text: &str| -> Result<(), String> {
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| format!("{} is not valid JSON ({e})", quote(text)))?;
        if objects_only && !text.trim_start().starts_with('{') {
            return Err(format!(
                "{} is not a FileRef: a FILE value is a JSON object such as {{\"id\": \"...\", \"name\": \"...\"}}",
                quote(text)
            ));
        }
        Ok(())
    };
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().iter().flatten().try_for_each(check),
        DataType::LargeUtf8 => column.as_string::<i64>().iter().flatten().try_for_each(check),
        DataType::Utf8View => column.as_string_view().iter().flatten().try_for_each(check),
        other => Err(format!("a JSON column holds text, not {other}")),
    }
}

/// A UUID array from UUID text (PostgreSQL's input forms), 16-byte binaries, or NULLs.
pub fn uuid_array(column: &ArrayRef) -> Result<ArrayRef, String> {
    let from_text = |values: &mut dyn Iterator<Item = Option<&str>>| -> Result<ArrayRef, String> {
        let parsed = values
            .map(|v| v.map(|text| parse_uuid(text).ok_or_else(|| not_a_uuid(text))).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(parsed.into_iter(), 16)
                .map_err(|e| e.to_string())?,
        ))
    };
    let from_bytes = |values: &mut dyn Iterator<Item = Option<&[u8]>>| -> Result<ArrayRef, String> {
        let checked = values
            .map(|v| {
                v.map(|bytes| {
                    if bytes.len() == 16 {
                        Ok(bytes)
                    } else {
                        Err(format!("a UUID is 16 bytes, this value has {}", bytes.len()))
                    }
                })
                .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(checked.into_iter(), 16)
                .map_err(|e| e.to_string())?,
        ))
    };
    match column.data_type() {
        DataType::FixedSizeBinary(16) => Ok(column.clone()),
        DataType::Null => Ok(new_null_array(&DataType::FixedSizeBinary(16), column.len())),
        DataType::Utf8 => from_text(&mut column.as_string::<i32>().iter()),
        DataType::LargeUtf8 => from_text(&mut column.as_string::<i64>().iter()),
        DataType::Utf8View => from_text(&mut column.as_string_view().iter()),
        DataType::Binary => from_bytes(&mut column.as_binary::<i32>().iter()),
        DataType::LargeBinary => from_bytes(&mut column.as_binary::<i64>().iter()),
        DataType::BinaryView => from_bytes(&mut column.as_binary_view().iter()),
        DataType::FixedSizeBinary(_) => from_bytes(&mut column.as_fixed_size_binary().iter()),
        other => Err(format!("a UUID is given as text or 16 bytes, not {other}")),
    }
}

fn not_a_uuid(text: &str) -> String {
    format!(
        "{} is not a UUID: write 32 hexadecimal digits, e.g. a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        quote(text)
    )
}

/// Parses UUID text as PostgreSQL's `uuid` input does: 32 hex digits, a hyphen allowed after
/// any group of four (but not at the end), optionally in braces.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let mut rest = text.as_bytes();
    let braces = rest.first() == Some(&b'{');
    if braces {
        rest = &rest[1..];
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut uuid = [0u8; 16];
    for (i, byte) in uuid.iter_mut().enumerate() {
        let [high, low, ..] = rest else { return None };
        *byte = hex(*high)? << 4 | hex(*low)?;
        rest = &rest[2..];
        if rest.first() == Some(&b'-') && i % 2 == 1 && i < 15 {
            rest = &rest[1..];
        }
    }
    if braces {
        rest = rest.strip_prefix(b"}")?;
    }
    rest.is_empty().then_some(uuid)
}

/// Formats a UUID as PostgreSQL prints one.
pub fn format_uuid(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if hex.len() != 32 {
        return hex;
    }
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn quote(text: &str) -> String {
    let mut shown: String = text.chars().take(QUOTED_CHARS_MAX).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    format!("'{shown}'")
}

/// `to_uuid(text or bytes)`: the UUID a text or a 16-byte binary spells; NULL stays NULL.
/// Writes to UUID columns are given it around the values the statement supplies.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToUuid {
    signature: Signature,
}

impl ToUuid {
    pub const NAME: &str = "to_uuid";

    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self { signature: Signature::any(1, Volatility::Immutable) })
    }
}

impl ScalarUDFImpl for ToUuid {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::FixedSizeBinary(16))
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(uuid_field(Self::NAME)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let convert = |array: &ArrayRef| uuid_array(array).map_err(DataFusionError::Execution);
        match &args.args[0] {
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(convert(array)?)),
            ColumnarValue::Scalar(scalar) => {
                let uuids = convert(&scalar.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&uuids, 0)?))
            }
        }
    }
}

/// Lets SQL compare UUID columns with UUID text, as PostgreSQL does: in `u = '...'`, the other
/// comparisons, `u IN ('...', ...)`, `u BETWEEN '...' AND '...'` and `CAST('...' AS UUID)`, the
/// text is given to
/// [`ToUuid`]. Runs before DataFusion's type coercion, which would refuse FixedSizeBinary(16)
/// against text.
#[derive(Debug)]
pub struct UuidText;

impl AnalyzerRule for UuidText {
    fn name(&self) -> &str {
        "kalamdb_uuid_text"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let schema = merge_schema(&plan.inputs());
            plan.map_expressions(|expr| expr.transform_up(|expr| uuid_text(expr, &schema)))
        })
        .data()
    }
}

fn uuid_text(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let is_uuid_expr = |e: &Expr| e.to_field(schema).is_ok_and(|(_, field)| is_uuid(&field));
    let is_text = |e: &Expr| {
        e.get_type(schema)
            .is_ok_and(|t| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
    };
    let to_uuid = |e: Expr| Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(ToUuid::udf()), vec![e]));
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) => {
            let (left, right) = match (is_uuid_expr(&left), is_uuid_expr(&right)) {
                (true, false) if is_text(&right) => (*left, to_uuid(*right)),
                (false, true) if is_text(&left) => (to_uuid(*left), *right),
                _ => return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }))),
            };
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right))))
        }
        Expr::InList(InList { expr, list, negated }) if is_uuid_expr(&expr) && list.iter().any(is_text) => {
            let list =
                list.into_iter().map(|item| if is_text(&item) { to_uuid(item) } else { item }).collect();
            Transformed::yes(Expr::InList(InList { expr, list, negated }))
        }
        Expr::Between(Between { expr, negated, low, high })
            if is_uuid_expr(&expr) && (is_text(&low) || is_text(&high)) =>
        {
            let side = |e: Box<Expr>| Box::new(if is_text(&e) { to_uuid(*e) } else { *e });
            Transformed::yes(Expr::Between(Between { expr, negated, low: side(low), high: side(high) }))
        }
        Expr::Cast(Cast { expr, field }) if is_uuid(&field) && is_text(&expr) => {
            Transformed::yes(to_uuid(*expr))
        }
        expr => Transformed::no(expr),
    })
}

fn is_comparison(op: Operator) -> bool {
    use Operator::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BinaryArray, Int64Array, StringArray};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn sql_type(text: &str) -> SqlType {
        Parser::new(&PostgreSqlDialect {}).try_with_sql(text).unwrap().parse_data_type().unwrap()
    }

    // Goal: each KalamDB type becomes its Arrow field and is named back the way DDL writes it.
    #[test]
    fn kalamdb_types_map_to_arrow_and_back() {
        let cases = [
            ("UUID", DataType::FixedSizeBinary(16), "UUID"),
            ("JSON", DataType::Utf8, "JSON"),
            ("JSONB", DataType::Utf8, "JSON"),
            ("FILE", DataType::Utf8, "FILE"),
            ("EMBEDDING(384)", DataType::new_fixed_size_list(DataType::Float32, 384, true), "EMBEDDING(384)"),
            ("TIMESTAMP", DataType::Timestamp(TimeUnit::Microsecond, None), "TIMESTAMP"),
            ("TIMESTAMP(6)", DataType::Timestamp(TimeUnit::Microsecond, None), "TIMESTAMP"),
            ("TIMESTAMPTZ", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), "TIMESTAMPTZ"),
            (
                "TIMESTAMP WITH TIME ZONE",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "TIMESTAMPTZ",
            ),
            ("TIME", DataType::Time64(TimeUnit::Microsecond), "TIME"),
            ("BYTEA", DataType::Binary, "BYTES"),
            ("BINARY", DataType::Binary, "BYTES"),
            ("VARBINARY", DataType::Binary, "BYTES"),
            ("BYTES", DataType::Binary, "BYTES"),
        ];
        for (sql, data_type, name) in cases {
            let field = kalam_field(&sql_type(sql)).unwrap().unwrap_or_else(|| panic!("{sql} not mapped"));
            assert_eq!(field.data_type(), &data_type, "{sql}");
            assert_eq!(type_name(&field), name, "{sql}");
        }
        // DataFusion's own mapping is kept for the rest.
        for sql in ["INT", "BIGINT", "TEXT", "VARCHAR", "DECIMAL(10,2)", "INT[]", "DOUBLE", "DATE"] {
            assert!(kalam_field(&sql_type(sql)).unwrap().is_none(), "{sql}");
        }
        assert_eq!(data_type_name(&DataType::Decimal128(10, 2)), "DECIMAL(10,2)");
        let ints = DataType::new_list(DataType::Int32, true);
        assert_eq!(data_type_name(&ints), "INT[]");
        let refused = [
            "EMBEDDING(0)",
            "EMBEDDING(16001)",
            "EMBEDDING(x)",
            "TIMESTAMP(9)",
            "TIMESTAMP(3)",
            "TIME(0)",
            "TIME WITH TIME ZONE",
            "FOO",
        ];
        for bad in refused {
            assert!(kalam_field(&sql_type(bad)).is_err(), "{bad} must be refused");
        }
    }

    // Goal: where Arrow's cast would truncate or saturate, a write rounds as PostgreSQL's
    // assignment does (floats and times ties to even, numerics away from zero) or is refused.
    #[test]
    fn conform_rounds_as_postgres_assigns() {
        use arrow_array::{
            Decimal128Array, Float32Array, TimestampMicrosecondArray, TimestampNanosecondArray,
        };
        let ints = |column: ArrayRef, to: DataType| -> Vec<Option<i64>> {
            let out = conform(&Field::new("n", to, true), column).unwrap();
            let out = arrow_cast::cast(&out, &DataType::Int64).unwrap();
            out.as_primitive::<Int64Type>().iter().collect()
        };
        let floats: ArrayRef =
            Arc::new(Float64Array::from(vec![Some(2.7), Some(-2.7), Some(2.5), Some(3.5), Some(-0.5), None]));
        assert_eq!(ints(floats, DataType::Int64), [Some(3), Some(-3), Some(2), Some(4), Some(0), None]);
        let decimals: ArrayRef = Arc::new(
            Decimal128Array::from(vec![12399, -12500, 12500, 99999]).with_precision_and_scale(5, 4).unwrap(),
        );
        assert_eq!(ints(decimals, DataType::Int32), [Some(1), Some(-1), Some(1), Some(10)]);
        for bad in [f64::NAN, f64::INFINITY, 3e9] {
            let column: ArrayRef = Arc::new(Float64Array::from(vec![bad]));
            assert!(conform(&Field::new("n", DataType::Int32, true), column).is_err(), "{bad}");
        }
        let real = Field::new("r", DataType::Float32, true);
        let fits: ArrayRef = Arc::new(Float64Array::from(vec![1.5, f64::INFINITY, 0.0]));
        let out = conform(&real, fits).unwrap();
        assert_eq!(out.as_any().downcast_ref::<Float32Array>().unwrap().values(), &[1.5, f32::INFINITY, 0.0]);
        for bad in [1e300, 1e-300] {
            let column: ArrayRef = Arc::new(Float64Array::from(vec![bad]));
            assert!(conform(&real, column).unwrap_err().contains("out of range for a REAL"), "{bad}");
        }
        let micros = Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true);
        let nanos: ArrayRef =
            Arc::new(TimestampNanosecondArray::from(vec![1_999, 1_500, 2_500, -1_500, 1_000_499]));
        let out = conform(&micros, nanos).unwrap();
        let out = out.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(out.values(), &[2, 2, 2, -2, 1_000]);
    }

    // Goal: UUID text is read exactly as PostgreSQL's uuid input reads it.
    #[test]
    fn uuid_text_forms() {
        let canonical = parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        assert_eq!(format_uuid(&canonical), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        for same in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
        ] {
            assert_eq!(parse_uuid(same), Some(canonical), "{same}");
        }
        for bad in [
            "",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?} must be refused");
        }
    }

    // Goal: writes are converted exactly or refused with the reason: integers that do not fit,
    // bad UUID text or length, malformed JSON, a FILE that is not an object.
    #[test]
    fn conform_converts_exactly_or_refuses() {
        let int = Field::new("n", DataType::Int32, true);
        let fits: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(i32::MAX as i64)]));
        assert_eq!(
            conform(&int, fits).unwrap().as_any().downcast_ref::<arrow_array::Int32Array>().unwrap().value(2),
            i32::MAX
        );
        let too_big: ArrayRef = Arc::new(Int64Array::from(vec![1, i32::MAX as i64 + 1]));
        assert!(conform(&int, too_big).is_err());

        let uuid = uuid_field("u");
        let text: ArrayRef =
            Arc::new(StringArray::from(vec![Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), None]));
        let converted = conform(&uuid, text).unwrap();
        assert_eq!(converted.data_type(), &DataType::FixedSizeBinary(16));
        assert!(converted.is_null(1));
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["not-a-uuid"]));
        assert!(conform(&uuid, bad).unwrap_err().contains("'not-a-uuid' is not a UUID"));
        let short: ArrayRef = Arc::new(BinaryArray::from(vec![&b"0123456789"[..]]));
        assert!(conform(&uuid, short).unwrap_err().contains("16 bytes, this value has 10"));

        let json = json_field("j");
        let good: ArrayRef =
            Arc::new(StringArray::from(vec![Some(r#"{"a": [1, 2e400, null]}"#), Some("3"), None]));
        assert!(conform(&json, good).is_ok());
        let bad: ArrayRef = Arc::new(StringArray::from(vec![r#"{"a": 1"#]));
        assert!(conform(&json, bad).unwrap_err().contains("is not valid JSON"));
        let file = file_field("f");
        let not_object: ArrayRef = Arc::new(StringArray::from(vec!["[1]"]));
        assert!(conform(&file, not_object).unwrap_err().contains("is not a FileRef"));
        let object: ArrayRef = Arc::new(StringArray::from(vec![r#" {"id": "f1", "name": "a.png"}"#]));
        assert!(conform(&file, object).is_ok());
    }
}
