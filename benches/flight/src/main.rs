//! `kalam-bench`: how fast kalamdb-server takes in and streams out TPC-H lineitem over Flight
//! SQL, next to the ceiling of the same client reading the same batches from a minimal
//! in-process Flight SQL server.
//!
//! Layout:
//! - [`args`]: the command line.
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

use crate::args::Args;
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

/// Runs every phase and prints the report. `Ok(false)` when the server part failed but the
/// ceiling could still be measured.
async fn run(args: Args) -> Result<bool, String> {
    let batches = generate(&args)?;
    let table_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let table_columns = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut report = Report::new(table_rows, data::batches_bytes(&batches), table_columns);
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

/// Creates the namespace and bulk-ingests the batches into a fresh table of kalamdb-server.
/// Returns the connection and the statement that scans the table.
async fn ingest(
    addr: &str,
    args: &Args,
    batches: &[RecordBatch],
    memory: Option<&ServerMemory>,
    report: &mut Report,
) -> Result<(Client, String), String> {
    let name = data::table_name(args.sf);
    let table = format!("{}.{name}", args.namespace);
    let mut client = Client::connect(addr).await?;
    client.create_namespace(&args.namespace).await?;
    client.drop_table(&table).await?;

    sample(memory, &mut report.memory, "before ingest");
    let started = Instant::now();
    let chunks = data::chunks(batches, args.ingest_rows);
    let mut ingested = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        ingested += client.ingest(&args.namespace, &name, chunk, i == 0).await?;
    }
    report.ingest = Some(IngestStats { rows: ingested, requests: chunks.len(), elapsed: started.elapsed() });
    sample(memory, &mut report.memory, report::AFTER_INGEST);
    if ingested != report.table_rows as i64 {
        return Err(format!(
            "the server reports {ingested} rows ingested into {table}, expected {}",
            report.table_rows
        ));
    }
    // The table's own columns: the same data the ceiling sends (not the server's _seq/_deleted).
    let columns: Vec<String> =
        batches[0].schema().fields().iter().map(|f| format!("\"{}\"", f.name())).collect();
    Ok((client, format!("SELECT {} FROM {table}", columns.join(", "))))
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
