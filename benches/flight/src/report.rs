//! Everything measured in one run, printed as one compact table with the goals of issue 3.

use std::time::Duration;

use crate::MIB;
use crate::client::ScanStats;
use crate::memory::MemorySample;

/// Issue 3: a full-table DoGet moves at least this many bytes of Arrow per second...
const GOAL_BYTES_PER_S: f64 = 1e9;
/// ...and takes at most 1/0.7 of the time the in-process ceiling takes.
const GOAL_CEILING_RATIO: f64 = 0.7;

/// Labels of the memory samples the report compares.
pub const AFTER_INGEST: &str = "after ingest";
pub const AFTER_SCANS: &str = "after scans";

pub struct IngestStats {
    pub rows: i64,
    /// DoPut requests, each its own transaction.
    pub requests: usize,
    pub elapsed: Duration,
}

pub struct Report {
    /// Arrow bytes of the table as generated: the payload every source must deliver.
    pub table_bytes: usize,
    pub table_columns: Vec<String>,
    pub ingest: Option<IngestStats>,
    pub server: Vec<ScanStats>,
    pub ceiling: Vec<ScanStats>,
    pub memory: Vec<(&'static str, MemorySample)>,
    /// Whether the server's peak memory was reset before the scans, so the last peak is theirs.
    pub hwm_reset: bool,
}

/// Medians over the rounds of one source.
struct Summary {
    rows: usize,
    bytes_received: usize,
    first_batch: Duration,
    total: Duration,
}

impl Summary {
    fn of(scans: &[ScanStats]) -> Option<Self> {
        let first = scans.first()?;
        Some(Self {
            rows: first.rows,
            bytes_received: first.bytes_received,
            first_batch: median(scans.iter().map(|s| s.first_batch).collect()),
            total: median(scans.iter().map(|s| s.total).collect()),
        })
    }
}

impl Report {
    pub fn new(table_bytes: usize, table_columns: Vec<String>) -> Self {
        Self {
            table_bytes,
            table_columns,
            ingest: None,
            server: Vec::new(),
            ceiling: Vec::new(),
            memory: Vec::new(),
            hwm_reset: false,
        }
    }

    pub fn print(&self) {
        println!();
        self.print_ingest();
        self.print_scans();
        self.print_memory();
        self.print_goals();
    }

    fn print_ingest(&self) {
        let Some(ingest) = &self.ingest else {
            println!("ingest: not measured");
            return;
        };
        let secs = ingest.elapsed.as_secs_f64();
        println!(
            "ingest (Flight SQL CommandStatementIngest, {} DoPut): {} rows in {secs:.2} s = {:.0} rows/s, {:.2} GB/s",
            ingest.requests,
            ingest.rows,
            ingest.rows as f64 / secs,
            self.table_bytes as f64 / secs / 1e9
        );
    }

    fn print_scans(&self) {
        let rounds = self.server.len().max(self.ceiling.len());
        println!("full scan (SELECT *: GetFlightInfo + DoGet, decoded), median of {rounds}:");
        println!(
            "  {:<16} {:>12} {:>8} {:>9} {:>10} {:>9} {:>11}",
            "source", "rows/s", "GB/s", "TTFB ms", "total ms", "recv MiB", "vs ceiling"
        );
        let ceiling = Summary::of(&self.ceiling);
        for (name, scans) in [("kalamdb-server", &self.server), ("ceiling", &self.ceiling)] {
            let Some(summary) = Summary::of(scans) else {
                println!("  {name:<16} not measured");
                continue;
            };
            let secs = summary.total.as_secs_f64();
            let ratio = ceiling.as_ref().map_or(f64::NAN, |c| c.total.as_secs_f64() / secs);
            println!(
                "  {name:<16} {:>12.0} {:>8.2} {:>9.1} {:>10.1} {:>9.1} {:>10.2}x",
                summary.rows as f64 / secs,
                self.table_bytes as f64 / secs / 1e9,
                summary.first_batch.as_secs_f64() * 1e3,
                secs * 1e3,
                summary.bytes_received as f64 / MIB,
                ratio
            );
        }
        println!(
            "  GB/s: the table's {:.1} MiB of Arrow over the scan time; recv MiB: Arrow buffers decoded",
            self.table_bytes as f64 / MIB
        );
        for (name, scans) in [("kalamdb-server", &self.server), ("ceiling", &self.ceiling)] {
            let Some(scan) = scans.first() else { continue };
            let extra: Vec<&str> =
                scan.columns.iter().filter(|c| !self.table_columns.contains(c)).map(String::as_str).collect();
            if !extra.is_empty() {
                println!("  note: {name} returned columns the table does not have: {}", extra.join(", "));
            }
        }
    }

    fn print_memory(&self) {
        if self.memory.is_empty() {
            println!("server memory: not sampled (give --server-pid)");
            return;
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        let samples: Vec<String> =
            self.memory.iter().map(|(when, s)| format!("{when} {:.0}", mib(s.rss_kib))).collect();
        println!("server RSS MiB: {}", samples.join(", "));
        let sampled = |label| self.memory.iter().find(|(when, _)| *when == label).map(|(_, s)| s);
        let (Some(before), Some(after)) = (sampled(AFTER_INGEST), sampled(AFTER_SCANS)) else { return };
        if self.hwm_reset {
            println!(
                "server peak RSS during the scans: {:.0} MiB, {:+.0} MiB over its RSS before them (the table is {:.0} MiB of Arrow)",
                mib(after.peak_kib),
                mib(after.peak_kib) - mib(before.rss_kib),
                self.table_bytes as f64 / MIB
            );
        } else {
            println!("server peak RSS over its whole life: {:.0} MiB", mib(after.peak_kib));
        }
    }

    fn print_goals(&self) {
        let (Some(server), Some(ceiling)) = (Summary::of(&self.server), Summary::of(&self.ceiling)) else {
            println!("goals: not checked without a server scan");
            return;
        };
        let gbps = self.table_bytes as f64 / server.total.as_secs_f64() / 1e9;
        let ratio = ceiling.total.as_secs_f64() / server.total.as_secs_f64();
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        println!(
            "goals: DoGet >= {:.0} GB/s: {} ({gbps:.2}); >= {GOAL_CEILING_RATIO}x the ceiling: {} ({ratio:.2}x)",
            GOAL_BYTES_PER_S / 1e9,
            verdict(gbps * 1e9 >= GOAL_BYTES_PER_S),
            verdict(ratio >= GOAL_CEILING_RATIO)
        );
    }
}

pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}
