//! `kalam-bench`: how fast kalamdb-server takes in and streams out TPC-H lineitem over Flight
//! SQL, next to the ceiling of the same client reading the same batches from a minimal
//! in-process Flight SQL server.
//!
//! Layout:
//! - [`args`]: the command line: the benchmark (default), `--load-only` (ingest lineitem into a
//!   server for another benchmark, `benches/scan.sh`) or `--scan-sql` (time one statement).
//! - [`data`]: TPC-H lineitem generated as Arrow batches, and their size in bytes.
//! - [`client`]: the Flight SQL client side: statements, bulk ingest, timed scans.
//! - [`ceiling`]: the in-process server (a DataFusion `MemTable` behind Flight SQL).
//! - [`memory`]: the server's resident memory, read from `/proc`.
//! - [`report`]: the figures, printed as one table.

mod args;
mod ceiling;
mod client;
mod data;
mod memory;
mod report;

use std::process::ExitCode;
use std::time::Instant;

use arrow_array::RecordBatch;

use crate::args::{Args, Mode};
use crate::ceiling::Ceiling;
use crate::client::{Client, ScanStats};
use crate::memory::{MemorySample, ServerMemory};
use crate::report::{IngestStats, Report};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("kalam-bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kalam-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("kalam-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs what the command line asks for. `Ok(false)` when the benchmark's server part failed but
/// the ceiling could still be measured.
async fn run(args: Args) -> Result<bool, String> {
    match &args.mode {
        Mode::Bench => bench(args).await,
        Mode::LoadOnly => load_only(&args).await.map(|()| true),
        Mode::Scan(sql) => scan_only(&args, sql).await.map(|()| true),
    }
}

/// Runs every phase and prints the report.
async fn bench(args: Args) -> Result<bool, String> {
    let batches = generate(&args)?;
    let table_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let table_columns = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut report = Report::new(data::batches_bytes(&batches), table_columns);
    let memory = args.server_pid.map(ServerMemory::new);

    // The MemTable shares the generated buffers; nothing is copied.
    let ceiling = Ceiling::start(batches.clone()).await?;
    let mut ceiling_client = Client::connect(&ceiling.addr().to_string()).await?;
    let ceiling_sql = format!("SELECT * FROM {}", data::LINEITEM);

    let mut server = match &args.flight {
        Some(addr) => ingest(addr, &args, &batches, memory.as_ref(), &mut report).await.map(Some),
        None => {
            println!("no --flight HOST:PORT given: measuring the ceiling only");
            Ok(None)
        }
    };
    drop(batches);
    if let (Ok(Some(_)), Some(memory)) = (&server, &memory) {
        report.hwm_reset = memory.reset_peak();
    }

    // Rounds alternate between the sources so that machine noise hits both alike.
    for _ in 0..args.rounds {
        if let Ok(Some((client, sql))) = &mut server {
            match scan_checked(client, sql, table_rows).await {
                Ok(stats) => report.server.push(stats),
                Err(message) => server = Err(message),
            }
        }
        report.ceiling.push(scan_checked(&mut ceiling_client, &ceiling_sql, table_rows).await?);
    }
    ceiling.stop().await;
    if let Ok(Some(_)) = &server {
        sample(memory.as_ref(), &mut report.memory, report::AFTER_SCANS);
    }

    report.print();
    if let Err(message) = &server {
        eprintln!("kalam-bench: the kalamdb-server part failed: {message}");
    }
    Ok(server.is_ok())
}

fn generate(args: &Args) -> Result<Vec<RecordBatch>, String> {
    let started = Instant::now();
    let batches = data::generate_lineitem(args.sf, args.batch_rows)?;
    println!(
        "generated lineitem SF{}: {} rows in {} batches, {:.1} MiB of Arrow buffers, in {:.1} s",
        args.sf,
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        batches.len(),
        data::batches_bytes(&batches) as f64 / MIB,
        started.elapsed().as_secs_f64()
    );
    Ok(batches)
}

/// Loads the batches into the server (see [`load`]), sampling its memory around the ingest.
/// Returns the connection and the statement that scans the table.
async fn ingest(
    addr: &str,
    args: &Args,
    batches: &[RecordBatch],
    memory: Option<&ServerMemory>,
    report: &mut Report,
) -> Result<(Client, String), String> {
    let mut client = Client::connect(addr).await?;
    sample(memory, &mut report.memory, "before ingest");
    report.ingest = Some(load(&mut client, args, batches).await?);
    sample(memory, &mut report.memory, report::AFTER_INGEST);
    // The table's own columns: the same data the ceiling sends (not the server's _seq/_deleted).
    let columns: Vec<String> =
        batches[0].schema().fields().iter().map(|f| format!("\"{}\"", f.name())).collect();
    let table = format!("{}.{}", args.namespace, args.table_name());
    Ok((client, format!("SELECT {} FROM {table}", columns.join(", "))))
}

/// Creates the namespace and bulk-ingests the batches into a fresh table (`--table`), checking
/// the row count the server reports.
async fn load(client: &mut Client, args: &Args, batches: &[RecordBatch]) -> Result<IngestStats, String> {
    let name = args.table_name();
    let table = format!("{}.{name}", args.namespace);
    client.create_namespace(&args.namespace).await?;
    client.drop_table(&table).await?;

    let started = Instant::now();
    let chunks = data::chunks(batches, args.ingest_rows);
    let mut ingested = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        ingested += client.ingest(&args.namespace, &name, chunk, i == 0).await?;
    }
    let stats = IngestStats { rows: ingested, requests: chunks.len(), elapsed: started.elapsed() };
    let expected: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if ingested != expected as i64 {
        return Err(format!("the server reports {ingested} rows ingested into {table}, expected {expected}"));
    }
    Ok(stats)
}

/// `--load-only`: generates lineitem, loads it into the server and exits.
async fn load_only(args: &Args) -> Result<(), String> {
    let batches = generate(args)?;
    let addr = args.flight.as_deref().ok_or("--load-only needs --flight HOST:PORT")?;
    let mut client = Client::connect(addr).await?;
    let stats = load(&mut client, args, &batches).await?;
    let secs = stats.elapsed.as_secs_f64();
    println!(
        "loaded {} rows into {}.{} ({} DoPut) in {secs:.1} s = {:.0} rows/s",
        stats.rows,
        args.namespace,
        args.table_name(),
        stats.requests,
        stats.rows as f64 / secs
    );
    Ok(())
}

/// `--scan-sql`: runs one statement `--rounds` times on one connection (GetFlightInfo + DoGet,
/// every batch decoded) and prints the row count and the median time, from the request to the
/// last batch, as `rows=N median_ms=T`.
async fn scan_only(args: &Args, sql: &str) -> Result<(), String> {
    let addr = args.flight.as_deref().ok_or("--scan-sql needs --flight HOST:PORT")?;
    let mut client = Client::connect(addr).await?;
    let mut scans: Vec<ScanStats> = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let stats = client.scan(sql).await?;
        if let Some(first) = scans.first().filter(|first| first.rows != stats.rows) {
            return Err(format!("{sql} returned {} rows, then {}", first.rows, stats.rows));
        }
        scans.push(stats);
    }
    let total = report::median(scans.iter().map(|s| s.total).collect());
    println!("rows={} median_ms={:.3}", scans[0].rows, total.as_secs_f64() * 1e3);
    Ok(())
}

/// A scan whose row count is checked: a fast scan of the wrong rows measures nothing.
async fn scan_checked(client: &mut Client, sql: &str, rows_expected: usize) -> Result<ScanStats, String> {
    let stats = client.scan(sql).await?;
    if stats.rows != rows_expected {
        return Err(format!("{sql} returned {} rows, expected {rows_expected}", stats.rows));
    }
    Ok(stats)
}

fn sample(
    memory: Option<&ServerMemory>,
    samples: &mut Vec<(&'static str, MemorySample)>,
    when: &'static str,
) {
    let Some(memory) = memory else { return };
    match memory.sample() {
        Ok(sample) => samples.push((when, sample)),
        Err(message) => eprintln!("kalam-bench: {message}"),
    }
}

const MIB: f64 = 1024.0 * 1024.0;
