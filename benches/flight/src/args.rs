//! The command line.

use crate::data;

pub const USAGE: &str = "usage: kalam-bench [--sf FLOAT] [--flight HOST:PORT] [--server-pid PID] \
[--batch-rows N] [--ingest-rows N] [--rounds N] [--namespace NAME] [--table NAME] \
[--load-only | --scan-sql SQL]
  --sf          TPC-H scale factor (1 = 6M lineitem rows); default 1
  --flight      address of a running kalamdb-server; without it only the ceiling is measured
  --server-pid  that server's process id, to sample its memory from /proc
  --batch-rows  rows per generated and ingested record batch; default 8192
  --ingest-rows rows per bulk-ingest request, each its own transaction; default 500000
  --rounds      scans of each source, interleaved; medians are reported; default 3
  --namespace   namespace the table is ingested into; default bench
  --table       table the lineitem rows are ingested into; default lineitem_sf<SF> (lineitem_sf0_1)
  --load-only   ingest lineitem into the server (--flight) and exit, printing the row count
  --scan-sql    run this statement --rounds times on the server (--flight) with GetFlightInfo +
                DoGet, decoding every batch, and print `rows=N median_ms=T` (nothing generated)";

/// Each scan reads the whole table, so a few rounds already take a while at SF1.
const ROUNDS_MAX: usize = 100;
/// Below this the per-batch overhead, not the transfer, is measured.
const BATCH_ROWS_MIN: usize = 64;

/// What one run does.
#[derive(Debug, PartialEq)]
pub enum Mode {
    /// Generate, ingest, then scan the server next to the in-process ceiling (the default).
    Bench,
    /// Generate and ingest, then exit.
    LoadOnly,
    /// Time one statement on the server; nothing is generated.
    Scan(String),
}

#[derive(Debug)]
pub struct Args {
    pub sf: f64,
    pub flight: Option<String>,
    pub server_pid: Option<u32>,
    pub batch_rows: usize,
    pub ingest_rows: usize,
    pub rounds: usize,
    pub namespace: String,
    /// `None`: [`data::table_name`] of the scale factor.
    pub table: Option<String>,
    pub mode: Mode,
}

impl Args {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut parsed = Args {
            sf: 1.0,
            flight: None,
            server_pid: None,
            batch_rows: 8192,
            // A server bounds what one transaction holds uncommitted (kalamdb-server:
            // limits.write_bytes_max); half a million lineitem rows are about 100 MiB of Arrow.
            ingest_rows: 500_000,
            rounds: 3,
            namespace: "bench".into(),
            table: None,
            mode: Mode::Bench,
        };
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            if arg == "--load-only" {
                parsed.set_mode(Mode::LoadOnly)?;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
            match arg.as_str() {
                "--sf" => parsed.sf = number(&arg, &value)?,
                "--flight" => parsed.flight = Some(value),
                "--server-pid" => parsed.server_pid = Some(number(&arg, &value)?),
                "--batch-rows" => parsed.batch_rows = number(&arg, &value)?,
                "--ingest-rows" => parsed.ingest_rows = number(&arg, &value)?,
                "--rounds" => parsed.rounds = number(&arg, &value)?,
                "--namespace" => parsed.namespace = value,
                "--table" => parsed.table = Some(value),
                "--scan-sql" => parsed.set_mode(Mode::Scan(value))?,
                _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
            }
        }
        parsed.check()?;
        Ok(parsed)
    }

    /// The table lineitem is ingested into.
    pub fn table_name(&self) -> String {
        self.table.clone().unwrap_or_else(|| data::table_name(self.sf))
    }

    fn set_mode(&mut self, mode: Mode) -> Result<(), String> {
        if self.mode != Mode::Bench {
            return Err(format!("--load-only and --scan-sql exclude each other\n{USAGE}"));
        }
        self.mode = mode;
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if !(self.sf > 0.0 && self.sf <= 1000.0) {
            return Err(format!("--sf {} is out of range; give a scale factor in (0, 1000]", self.sf));
        }
        if self.batch_rows < BATCH_ROWS_MIN {
            return Err(format!(
                "--batch-rows {} is too small; give at least {BATCH_ROWS_MIN}",
                self.batch_rows
            ));
        }
        if self.ingest_rows < self.batch_rows {
            return Err(format!(
                "--ingest-rows {} is below --batch-rows {}; a request holds whole batches",
                self.ingest_rows, self.batch_rows
            ));
        }
        if !(1..=ROUNDS_MAX).contains(&self.rounds) {
            return Err(format!("--rounds {} is out of range; give 1 to {ROUNDS_MAX}", self.rounds));
        }
        let valid_name = |name: &str| {
            !name.is_empty() && name.chars().all(|c: char| c.is_ascii_alphanumeric() || c == '_')
        };
        for (arg, name) in [("--namespace", Some(&self.namespace)), ("--table", self.table.as_ref())] {
            if let Some(name) = name.filter(|name| !valid_name(name)) {
                return Err(format!("{arg} {name:?}: use letters, digits and underscores only"));
            }
        }
        if self.mode != Mode::Bench && self.flight.is_none() {
            return Err(format!("--load-only and --scan-sql need --flight HOST:PORT\n{USAGE}"));
        }
        if matches!(&self.mode, Mode::Scan(sql) if sql.trim().is_empty()) {
            return Err("--scan-sql needs a statement".into());
        }
        Ok(())
    }
}

fn number<T: std::str::FromStr>(arg: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{arg} {value:?} is not a valid number\n{USAGE}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn modes_and_table() {
        let args = parse(&["--sf", "0.1"]).unwrap();
        assert_eq!((args.table_name(), args.mode), ("lineitem_sf0_1".to_string(), Mode::Bench));
        let args = parse(&["--flight", "h:1", "--load-only", "--table", "lineitem"]).unwrap();
        assert_eq!((args.table_name(), args.mode), ("lineitem".to_string(), Mode::LoadOnly));
        let args = parse(&["--scan-sql", "SELECT 1", "--flight", "h:1", "--rounds", "1"]).unwrap();
        assert_eq!(args.mode, Mode::Scan("SELECT 1".into()));
    }

    #[test]
    fn refuses_what_cannot_run() {
        assert!(parse(&["--load-only"]).unwrap_err().contains("--flight"));
        assert!(parse(&["--flight", "h:1", "--load-only", "--scan-sql", "SELECT 1"]).is_err());
        assert!(parse(&["--flight", "h:1", "--scan-sql", " "]).is_err());
        assert!(parse(&["--table", "x; DROP"]).unwrap_err().contains("--table"));
    }
}
