//! SQL functions of the extension: `kalam_version()`, `kalam_compiled_mode()`,
//! `snowflake_id([server])` and `kalam_exec(sql [, server])`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, FixedSizeBinaryArray, StringArray};
use arrow_json::writer::{
    Encoder, EncoderFactory, EncoderOptions, JsonArray, NullableEncoder, WriterBuilder,
};
use arrow_schema::{ArrowError, DataType, FieldRef};
use pgrx::PgSqlErrorCode;
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;

use crate::connection::{self, Server};
use crate::error::{KalamError, Result};
use crate::{guc, runtime, transactions};

/// Version of the installed pg_kalam.
#[pg_extern(immutable, parallel_safe)]
fn kalam_version() -> &'static str {
    concat!("pg_kalam ", env!("CARGO_PKG_VERSION"))
}

/// How this build reaches KalamDB: the transport, and whether it is a debug or release build.
#[pg_extern(immutable, parallel_safe)]
fn kalam_compiled_mode() -> &'static str {
    if cfg!(debug_assertions) {
        "remote (Arrow Flight SQL), debug build"
    } else {
        "remote (Arrow Flight SQL)"
    }
}

/// A new id in the layout of the server's `SNOWFLAKE_ID()` (time, node, sequence), usable as
/// `DEFAULT SNOWFLAKE_ID()`. The ids come from runs the server reserves for this backend
/// ([`Ids`]), so they are unique across every backend and every PostgreSQL instance using the
/// server, and each backend's are strictly increasing. `server`: the pg_kalam server to ask
/// (default: the database's only one).
#[pg_extern(volatile, parallel_unsafe)]
fn snowflake_id(server: default!(Option<&str>, "NULL")) -> i64 {
    IDS.with_borrow_mut(|ids| ids.next(server)).unwrap_or_else(|e| e.report())
}

/// Ids a run reserves at first; each run used up within [`RUN_FRESH`] doubles the next, up to
/// [`RUN_MAX`] (one millisecond of one server's ids).
const RUN_MIN: u32 = 16;
const RUN_MAX: u32 = 4096;
/// A run older than this is dropped, so that ids stay close to the clock they carry.
const RUN_FRESH: Duration = Duration::from_secs(1);

/// Runs of reserved ids, per server.
#[derive(Default)]
struct Ids {
    runs: HashMap<Oid, Run>,
    /// The server each `snowflake_id(server)` argument named, at a catalog generation.
    resolved: HashMap<Option<String>, (u64, Oid)>,
}

struct Run {
    next: i64,
    end: i64,
    size: u32,
    reserved: Instant,
}

thread_local! {
    static IDS: RefCell<Ids> = RefCell::new(Ids::default());
}

impl Ids {
    fn next(&mut self, server: Option<&str>) -> Result<i64> {
        let oid = self.server(server)?;
        let run = self.runs.get_mut(&oid);
        if let Some(run) = run
            && run.next < run.end
            && run.reserved.elapsed() < RUN_FRESH
        {
            run.next += 1;
            return Ok(run.next - 1);
        }
        let size = match self.runs.get(&oid) {
            Some(run) if run.reserved.elapsed() < RUN_FRESH => (run.size * 2).min(RUN_MAX),
            _ => RUN_MIN,
        };
        let client = Server::lookup(oid)?.client()?;
        let first = runtime::call(async move { client.reserve_ids(size).await }).map_err(|e| {
            KalamError::from(e)
                .with_hint("snowflake_id() reserves its ids on the KalamDB server; it must be reachable.")
        })?;
        if let Some(previous) = self.runs.get(&oid)
            && first < previous.end
        {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                "the KalamDB server reserved ids below ones this session already used",
            )
            .with_hint(
                "The server's clock went back across a restart; snowflake_id() refuses to repeat an id.",
            ));
        }
        self.runs
            .insert(oid, Run { next: first + 1, end: first + size as i64, size, reserved: Instant::now() });
        Ok(first)
    }

    fn server(&mut self, name: Option<&str>) -> Result<Oid> {
        let generation = connection::catalog_generation();
        let key = name.map(str::to_string);
        if let Some(&(at, oid)) = self.resolved.get(&key)
            && at == generation
        {
            return Ok(oid);
        }
        let oid = connection::pg_kalam_server(name)?;
        self.resolved.insert(key, (generation, oid));
        Ok(oid)
    }
}

/// Largest result `kalam_exec` returns.
const EXEC_RESULT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Runs one statement on a KalamDB server, as it is, and returns its result as JSON text:
/// a query (`SELECT`, `WITH`, `SHOW`, `DESCRIBE`, `EXPLAIN`, `VALUES`, and `EXECUTE AS USER`
/// of one) gives an array of row objects; any other statement `{"status": "ok",
/// "rows_affected": n}`. Queries read in this transaction's remote transaction when it wrote
/// to the server; other statements run at once, outside it (they are not undone by ROLLBACK).
#[pg_extern(volatile, parallel_unsafe)]
fn kalam_exec(sql: &str, server: default!(Option<&str>, "NULL")) -> String {
    exec(sql, server).unwrap_or_else(|e| e.report())
}

pgrx::extension_sql!(
    r#"
REVOKE EXECUTE ON FUNCTION kalam_exec(text, text) FROM PUBLIC;
COMMENT ON FUNCTION kalam_exec(text, text) IS
    'Runs a statement on the KalamDB server as it is; rows as a JSON array, other statements as a JSON status. Not granted to PUBLIC.';
COMMENT ON FUNCTION snowflake_id(text) IS
    'A unique, time-ordered bigint id in the layout of KalamDB''s SNOWFLAKE_ID(), reserved on the server.';
"#,
    name = "function_privileges",
    requires = [kalam_exec, snowflake_id]
);

fn exec(sql: &str, server: Option<&str>) -> Result<String> {
    let server = Server::lookup(connection::pg_kalam_server(server)?)?;
    let client = server.client()?;
    let user_id = guc::user_id();
    let sql = sql.to_string();
    if !is_query(&sql) {
        let changed = runtime::call(async move { client.execute_update(&sql, user_id.as_deref()).await })
            .map_err(remote_error)?;
        return Ok(format!(r#"{{"status": "ok", "rows_affected": {changed}}}"#));
    }
    let transaction = transactions::current(&server);
    let mut stream = runtime::call(async move {
        let stream = client.query_in(&sql, user_id.as_deref(), transaction.as_ref()).await?;
        Ok::<_, kalam_flight::Error>(stream)
    })
    .map_err(remote_error)?;
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(KalamJson))
        .build::<_, JsonArray>(Vec::new());
    loop {
        let (returned, batch) = runtime::call(async move {
            let batch = stream.next_batch().await;
            (stream, batch)
        });
        stream = returned;
        let Some(batch) = batch.map_err(remote_error)? else { break };
        writer.write(&batch).map_err(json_error)?;
        if writer.get_ref().len() > EXEC_RESULT_BYTES_MAX {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("the result of kalam_exec is larger than {} MiB", EXEC_RESULT_BYTES_MAX >> 20),
            )
            .with_hint("Add a LIMIT, or read the rows through a foreign table (which streams them)."));
        }
    }
    writer.finish().map_err(json_error)?;
    let json = writer.into_inner();
    Ok(if json.is_empty() { "[]".into() } else { String::from_utf8(json).expect("JSON is UTF-8") })
}

fn remote_error(e: kalam_flight::Error) -> KalamError {
    let error = KalamError::from(e);
    let message = format!("kalam_exec: {}", error.message);
    KalamError { message, ..error }
}

fn json_error(e: ArrowError) -> KalamError {
    KalamError::new(
        PgSqlErrorCode::ERRCODE_FDW_ERROR,
        format!("kalam_exec cannot write the result as JSON: {e}"),
    )
}

/// Whether a statement returns rows: by its first word (after comments and parentheses), and
/// for `EXECUTE AS USER 'u' (statement)` by the inner statement's.
fn is_query(sql: &str) -> bool {
    let words = leading_words(sql, 4);
    let first = words.first().map(String::as_str).unwrap_or("");
    if first == "EXECUTE" && words.get(1).is_some_and(|w| w == "AS") {
        return sql.find('(').is_some_and(|at| is_query(&sql[at + 1..]));
    }
    matches!(first, "SELECT" | "WITH" | "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" | "VALUES" | "TABLE")
}

/// The first `n` words of `sql`, upper-cased, skipping whitespace, comments and parentheses.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = sql;
    while words.len() < n {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            let end = rest.find(|c: char| !c.is_alphanumeric() && c != '_').unwrap_or(rest.len());
            if end == 0 {
                break;
            }
            words.push(rest[..end].to_ascii_uppercase());
            rest = &rest[end..];
        }
    }
    words
}

/// How KalamDB's own types appear in `kalam_exec`'s JSON: a uuid as its canonical text, a JSON
/// or FILE column as the JSON value it holds. Arrow's defaults cover the rest: numbers and
/// decimals as exact JSON numbers, timestamps as ISO 8601 text (`Z` for UTC), binary as hex
/// text, lists as arrays, structs as objects.
#[derive(Debug)]
struct KalamJson;

impl EncoderFactory for KalamJson {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        let extension = field.metadata().get("ARROW:extension:name").map(String::as_str);
        let nulls = array.nulls().cloned();
        let encoder: Box<dyn Encoder + 'a> = match (extension, array.data_type()) {
            (Some("arrow.uuid"), DataType::FixedSizeBinary(16)) => {
                Box::new(UuidEncoder(array.as_any().downcast_ref::<FixedSizeBinaryArray>().expect("typed")))
            }
            (Some("arrow.json"), DataType::Utf8) => {
                Box::new(RawJson(array.as_any().downcast_ref::<StringArray>().expect("typed")))
            }
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, nulls)))
    }
}

struct UuidEncoder<'a>(&'a FixedSizeBinaryArray);

impl Encoder for UuidEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(b'"');
        for (i, byte) in self.0.value(idx).iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push(b'-');
            }
            out.push(HEX[(byte >> 4) as usize]);
            out.push(HEX[(byte & 15) as usize]);
        }
        out.push(b'"');
    }
}

/// JSON text the server validated when it was written, embedded as it is.
struct RawJson<'a>(&'a StringArray);

impl Encoder for RawJson<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.value(idx).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: statements are told apart by their first word, past comments and parentheses.
    #[test]
    fn queries_are_told_from_other_statements() {
        for (sql, query) in [
            ("SELECT 1", true),
            ("  (select * from t)", true),
            ("-- a comment\nWITH x AS (SELECT 1) SELECT * FROM x", true),
            ("/* c */ SHOW TABLES", true),
            ("EXECUTE AS USER 'alice' (SELECT * FROM app.t)", true),
            ("EXECUTE AS USER 'alice' (INSERT INTO app.t VALUES (1))", false),
            ("INSERT INTO t SELECT 1", false),
            ("ALTER TABLE app.orders ADD COLUMN priority INTEGER DEFAULT 0", false),
            ("DROP TABLE app.orders", false),
            ("", false),
        ] {
            assert_eq!(is_query(sql), query, "{sql}");
        }
    }
}
