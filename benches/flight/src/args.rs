//! The command line.

pub const USAGE: &str = "usage: kalam-bench [--sf FLOAT] [--flight HOST:PORT] [--server-pid PID] \
[--batch-rows N] [--ingest-rows N] [--rounds N] [--namespace NAME]
  --sf          TPC-H scale factor (1 = 6M lineitem rows); default 1
  --flight      address of a running kalamdb-server; without it only the ceiling is measured
  --server-pid  that server's process id, to sample its memory from /proc
  --batch-rows  rows per generated and ingested record batch; default 8192
  --ingest-rows rows per bulk-ingest request, each its own transaction; default 500000
  --rounds      scans of each source, interleaved; medians are reported; default 3
  --namespace   namespace the table is ingested into; default bench";

/// Each scan reads the whole table, so a few rounds already take a while at SF1.
const ROUNDS_MAX: usize = 100;
/// Below this the per-batch overhead, not the transfer, is measured.
const BATCH_ROWS_MIN: usize = 64;

#[derive(Debug)]
pub struct Args {
    pub sf: f64,
    pub flight: Option<String>,
    pub server_pid: Option<u32>,
    pub batch_rows: usize,
    pub ingest_rows: usize,
    pub rounds: usize,
    pub namespace: String,
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
        };
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
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
                _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
            }
        }
        parsed.check()?;
        Ok(parsed)
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
        let valid_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if self.namespace.is_empty() || !self.namespace.chars().all(valid_name) {
            return Err(format!(
                "--namespace {:?}: use letters, digits and underscores only",
                self.namespace
            ));
        }
        Ok(())
    }
}

fn number<T: std::str::FromStr>(arg: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{arg} {value:?} is not a valid number\n{USAGE}"))
}
