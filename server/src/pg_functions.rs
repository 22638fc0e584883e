//! Functions with PostgreSQL's semantics, for the expressions pg_kalam ships: where DataFusion's
//! own operators give another answer than PostgreSQL's, pg_kalam calls these instead. The
//! server lists them in GetSqlInfo ([`kalam_flight::protocol::PG_FUNCTIONS_INFO`]), so a client
//! uses them only on a server that has them.
//!
//! - `pg_float(x)`: the float as PostgreSQL compares it. DataFusion orders NaNs by their bits:
//!   a NaN with its sign bit set (what `0/0` gives on x86) is below every number and unequal to
//!   a positive NaN; PostgreSQL has every NaN equal to every other and above all numbers, and
//!   `-0 = 0`. Mapping every NaN to the one positive NaN, and `-0` to `0`, makes the two the same.
//! - The JSON operators `->`, `->>`, `#>`, `#>>`, `?`, `?|`, `?&`, `@>` on JSON text, as json or
//!   jsonb (see [`crate::pgjson`]).
//! - `pg_ascii_lower(text)`: the text with `A`-`Z` lowered and every other character kept, as
//!   PostgreSQL lowers text under a C or POSIX `LC_CTYPE`; `ILIKE` there is `LIKE` on both sides
//!   lowered so. DataFusion's `lower` lowers every letter (`K`, the Kelvin sign, becomes `k`),
//!   and `translate` maps grapheme clusters, not characters.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, StringArray};
use arrow_schema::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::pgjson::{self, Node};

/// Every function of this module, registered on the server's session.
pub fn all() -> Vec<ScalarUDF> {
    let mut functions =
        vec![ScalarUDF::new_from_impl(PgFloat::new()), ScalarUDF::new_from_impl(PgAsciiLower::new())];
    for kind in JsonKind::ALL {
        functions.push(ScalarUDF::new_from_impl(PgJson::new(kind)));
    }
    functions
}

/// Their names, as GetSqlInfo lists them.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = all().iter().map(|f| f.name().to_string()).collect();
    names.push(crate::pg_sum::NAME.to_string());
    names.push(crate::pg_avg::NAME.to_string());
    names
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgFloat {
    signature: Signature,
}

impl PgFloat {
    fn new() -> Self {
        Self {
            signature: Signature::uniform(
                1,
                vec![DataType::Float32, DataType::Float64],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for PgFloat {
    fn name(&self) -> &str {
        "pg_float"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let out: ArrayRef = match array.data_type() {
            DataType::Float64 => Arc::new(
                array
                    .as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(|x| if x.is_nan() { f64::NAN } else { x + 0.0 }),
            ) as ArrayRef,
            DataType::Float32 => Arc::new(
                array
                    .as_primitive::<Float32Type>()
                    .unary::<_, Float32Type>(|x| if x.is_nan() { f32::NAN } else { x + 0.0 }),
            ),
            other => return exec_err!("pg_float takes a float, not {other}"),
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgAsciiLower {
    signature: Signature,
}

impl PgAsciiLower {
    fn new() -> Self {
        Self { signature: Signature::string(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for PgAsciiLower {
    fn name(&self) -> &str {
        "pg_ascii_lower"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let text = argument(&args.args[0], Some(&DataType::Utf8))?;
        let strings = text.array.as_string::<i32>();
        let lowered: StringArray = strings.iter().map(|s| s.map(str::to_ascii_lowercase)).collect();
        Ok(if text.scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&lowered, 0)?)
        } else {
            ColumnarValue::Array(Arc::new(lowered))
        })
    }
}

/// The JSON operators, by what they return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum JsonKind {
    Field,
    FieldText,
    Element,
    ElementText,
    Path,
    PathText,
    Exists,
    ExistsAny,
    ExistsAll,
    Contains,
}

impl JsonKind {
    const ALL: [JsonKind; 10] = [
        JsonKind::Field,
        JsonKind::FieldText,
        JsonKind::Element,
        JsonKind::ElementText,
        JsonKind::Path,
        JsonKind::PathText,
        JsonKind::Exists,
        JsonKind::ExistsAny,
        JsonKind::ExistsAll,
        JsonKind::Contains,
    ];

    fn name(self) -> &'static str {
        match self {
            JsonKind::Field => "pg_json_field",
            JsonKind::FieldText => "pg_json_field_text",
            JsonKind::Element => "pg_json_element",
            JsonKind::ElementText => "pg_json_element_text",
            JsonKind::Path => "pg_json_path",
            JsonKind::PathText => "pg_json_path_text",
            JsonKind::Exists => "pg_jsonb_exists",
            JsonKind::ExistsAny => "pg_jsonb_exists_any",
            JsonKind::ExistsAll => "pg_jsonb_exists_all",
            JsonKind::Contains => "pg_jsonb_contains",
        }
    }

    fn returns_bool(self) -> bool {
        matches!(self, JsonKind::Exists | JsonKind::ExistsAny | JsonKind::ExistsAll | JsonKind::Contains)
    }

    /// Whether the last argument says jsonb (true) or json (false).
    fn has_jsonb_flag(self) -> bool {
        !self.returns_bool()
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgJson {
    kind: JsonKind,
    signature: Signature,
}

impl PgJson {
    fn new(kind: JsonKind) -> Self {
        Self { kind, signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

/// One argument of a row: the value of an array or a scalar.
struct Argument {
    array: ArrayRef,
    scalar: bool,
}

impl Argument {
    fn row(&self, row: usize) -> usize {
        if self.scalar { 0 } else { row }
    }
}

fn argument(value: &ColumnarValue, to: Option<&DataType>) -> Result<Argument> {
    let (array, scalar) = match value {
        ColumnarValue::Array(array) => (array.clone(), false),
        ColumnarValue::Scalar(scalar) => (scalar.to_array()?, true),
    };
    let array = match to {
        Some(to) if array.data_type() != to => arrow_cast::cast(&array, to)?,
        _ => array,
    };
    Ok(Argument { array, scalar })
}

impl ScalarUDFImpl for PgJson {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.kind.returns_bool() { DataType::Boolean } else { DataType::Utf8 })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let expected = if self.kind.has_jsonb_flag() { 3 } else { 2 };
        if args.args.len() != expected {
            return exec_err!("{} takes {expected} arguments", self.name());
        }
        let rows = args.number_rows;
        let doc = argument(&args.args[0], Some(&DataType::Utf8))?;
        let doc = (doc.array.as_string::<i32>().clone(), doc.scalar);
        let jsonb = if self.kind.has_jsonb_flag() {
            match &args.args[2] {
                ColumnarValue::Scalar(ScalarValue::Boolean(Some(b))) => *b,
                _ => return exec_err!("{}: the jsonb flag is a constant boolean", self.name()),
            }
        } else {
            true
        };
        let key = match self.kind {
            JsonKind::Element | JsonKind::ElementText => argument(&args.args[1], Some(&DataType::Int64))?,
            JsonKind::Path | JsonKind::PathText | JsonKind::ExistsAny | JsonKind::ExistsAll => {
                argument(&args.args[1], None)?
            }
            _ => argument(&args.args[1], Some(&DataType::Utf8))?,
        };
        let doc_at = |row: usize| -> Option<&str> {
            let (array, scalar) = &doc;
            let row = if *scalar { 0 } else { row };
            array.is_valid(row).then(|| array.value(row))
        };
        if self.kind.returns_bool() {
            // A constant to contain (the usual `payload @> '{...}'`) is parsed once.
            let constant = if self.kind == JsonKind::Contains && key.scalar && key.array.is_valid(0) {
                Some(key.array.as_string::<i32>().value(0).to_string())
            } else {
                None
            };
            let other = constant.as_deref().map(pgjson::parse).transpose().map_err(json_error)?;
            let mut out = BooleanBuilder::with_capacity(rows);
            for row in 0..rows {
                match (doc_at(row), key.array.is_valid(key.row(row))) {
                    (Some(text), true) => {
                        out.append_option(self.test(text, &key, key.row(row), other.as_ref())?)
                    }
                    _ => out.append_null(),
                }
            }
            let out: BooleanArray = out.finish();
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        for row in 0..rows {
            match (doc_at(row), key.array.is_valid(key.row(row))) {
                (Some(text), true) => {
                    out.append_option(self.extract(text, &key, key.row(row), jsonb)?.as_deref())
                }
                _ => out.append_null(),
            }
        }
        let out: StringArray = out.finish();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn json_error(message: String) -> DataFusionError {
    DataFusionError::Execution(message)
}

/// The text elements of a list argument's row; NULL elements are skipped (`?|`, `?&`) or
/// make the whole path NULL (`#>`), as `null_elements` says.
fn text_list(list: &Argument, row: usize) -> Result<Vec<Option<String>>> {
    let values = match list.array.data_type() {
        DataType::List(_) => list.array.as_list::<i32>().value(row),
        DataType::LargeList(_) => list.array.as_list::<i64>().value(row),
        DataType::FixedSizeList(..) => list.array.as_fixed_size_list().value(row),
        other => return exec_err!("a list of text was expected, not {other}"),
    };
    let values = arrow_cast::cast(&values, &DataType::Utf8)?;
    let values = values.as_string::<i32>();
    Ok((0..values.len()).map(|i| values.is_valid(i).then(|| values.value(i).to_string())).collect())
}

impl PgJson {
    /// `->`, `->>`, `#>`, `#>>`: the value is found without building the document's tree (the
    /// document is still checked to be JSON), and only the value found is parsed.
    fn extract<'t>(
        &self,
        text: &'t str,
        key: &Argument,
        row: usize,
        jsonb: bool,
    ) -> Result<Option<Cow<'t, str>>> {
        let found: Option<&str> = match self.kind {
            JsonKind::Field | JsonKind::FieldText => {
                pgjson::find_field(text, key.array.as_string::<i32>().value(row)).map_err(json_error)?
            }
            JsonKind::Element | JsonKind::ElementText => {
                pgjson::find_element(text, key.array.as_primitive::<Int64Type>().value(row), jsonb)
                    .map_err(json_error)?
            }
            _ => {
                let steps = text_list(key, row)?;
                if steps.iter().any(Option::is_none) {
                    return Ok(None);
                }
                path(text, steps.iter().flatten().map(String::as_str))?
            }
        };
        let Some(found) = found else { return Ok(None) };
        let as_text = matches!(self.kind, JsonKind::FieldText | JsonKind::ElementText | JsonKind::PathText);
        // The text of a string without escapes is its inside; json's `->` is the value's own
        // text. Neither needs the value parsed.
        if as_text && let Some(inside) = pgjson::plain_string(found) {
            return Ok(Some(Cow::Borrowed(inside)));
        }
        if !as_text && !jsonb {
            return Ok(Some(Cow::Borrowed(found)));
        }
        let node = pgjson::parse(found).map_err(json_error)?;
        if as_text { node.text_value(jsonb) } else { node.json_text(jsonb).map(Some) }
            .map(|text| text.map(Cow::Owned))
            .map_err(json_error)
    }

    fn test(&self, text: &str, key: &Argument, row: usize, other: Option<&Node>) -> Result<Option<bool>> {
        let exists = |k: &str| pgjson::key_exists(text, k).map_err(json_error);
        Ok(Some(match self.kind {
            JsonKind::Exists => exists(key.array.as_string::<i32>().value(row))?,
            JsonKind::ExistsAny | JsonKind::ExistsAll => {
                let keys = text_list(key, row)?;
                // A document that is not JSON is an error whatever the keys, none included.
                if keys.iter().flatten().next().is_none() {
                    pgjson::validate(text).map_err(json_error)?;
                }
                let mut results = keys.iter().flatten().map(|k| exists(k));
                if self.kind == JsonKind::ExistsAny {
                    results.try_fold(false, |any, r| r.map(|e| any || e))?
                } else {
                    results.try_fold(true, |all, r| r.map(|e| all && e))?
                }
            }
            _ => match other {
                Some(other) => pgjson::document_contains(text, other).map_err(json_error)?,
                None => {
                    let other = pgjson::parse(key.array.as_string::<i32>().value(row)).map_err(json_error)?;
                    pgjson::document_contains(text, &other).map_err(json_error)?
                }
            },
        }))
    }
}

/// `#>`: each step a key of an object or an index of an array (text that is an integer),
/// looked up on the text of the value before; the whole document is checked once, first.
fn path<'a, 's>(text: &'a str, steps: impl Iterator<Item = &'s str>) -> Result<Option<&'a str>> {
    let mut current = text.trim_matches([' ', '\t', '\n', '\r']);
    pgjson::validate(text).map_err(json_error)?;
    for step in steps {
        let next = match current.as_bytes().first() {
            Some(b'{') => pgjson::find_field(current, step),
            Some(b'[') => match step.trim().parse::<i64>() {
                Ok(index) => pgjson::find_element(current, index, false),
                Err(_) => return Ok(None),
            },
            _ => return Ok(None),
        };
        match next.map_err(json_error)? {
            Some(span) => current = span,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}
