//! ANALYZE of a foreign table: a sample of its rows for `pg_statistic`, so the planner
//! estimates the selectivity of clauses from the data instead of its defaults.
//!
//! The server keeps only a random share of its rows, `random() < fraction` with the fraction
//! that yields about the rows ANALYZE asks for, so a large table is not sent whole; the rows
//! that arrive go through the same reservoir sampling as PostgreSQL's own ANALYZE, which caps
//! the sample. The table's row count is the server's (a table the server cannot count is read
//! whole and counted here). Rows are read and converted exactly as a scan reads them, through
//! [`ScanState`], so the sample holds the values queries see.

use kalam_pushdown::{Comparison, Literal, Qual};
use pgrx::pg_sys::{self, Datum};
use pgrx::{PgRelation, pg_guard};

use crate::error::Result;

use crate::scan::{ScanState, foreign_table, live_attributes, remote_table, user_id_for};

/// Rows asked of the server beyond the sample's size, so that the random share it keeps is
/// rarely short of the sample (the reservoir drops the surplus).
const OVERSAMPLING: f64 = 1.2;

#[pg_guard]
pub unsafe extern "C-unwind" fn analyze_foreign_table(
    relation: pg_sys::Relation,
    func: *mut pg_sys::AcquireSampleRowsFunc,
    totalpages: *mut pg_sys::BlockNumber,
) -> bool {
    // SAFETY: ANALYZE passes an open relation and valid out-pointers.
    unsafe {
        *func = Some(acquire_sample_rows);
        // The pages the rows would take here: ANALYZE of a partitioned table shares its sample
        // among the partitions by their pages, and stores this as relpages.
        let relation = PgRelation::from_pg(relation);
        *totalpages = estimated_pages(&relation);
    }
    true
}

/// The server's row count times the columns' average width, in PostgreSQL pages (at least 1;
/// 1 when the server does not say).
unsafe fn estimated_pages(relation: &PgRelation) -> pg_sys::BlockNumber {
    // SAFETY: catalog lookups of an open relation.
    unsafe {
        let rows = (|| {
            let (server, options) = foreign_table(relation).ok()?;
            let user_id = user_id_for(&options);
            server.describe(&remote_table(relation, &options), user_id.as_deref()).ok()?.rows
        })();
        let Some(rows) = rows else { return 1 };
        let tupdesc = &*relation.rd_att;
        let width: i64 = live_attributes(relation)
            .into_iter()
            .map(|a| {
                let att = &*tupdesc.attrs.as_ptr().add(a);
                i64::from(pg_sys::get_typavgwidth(att.atttypid, att.atttypmod))
            })
            .sum::<i64>()
            + 24;
        let pages = (rows as f64 * width as f64 / f64::from(pg_sys::BLCKSZ)).ceil();
        pages.clamp(1.0, f64::from(u32::MAX)) as pg_sys::BlockNumber
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn acquire_sample_rows(
    relation: pg_sys::Relation,
    elevel: i32,
    rows: *mut pg_sys::HeapTuple,
    targrows: i32,
    totalrows: *mut f64,
    totaldeadrows: *mut f64,
) -> i32 {
    // SAFETY: ANALYZE passes an open relation and room for `targrows` tuples; the tuples are
    // formed in its memory context, the current one.
    unsafe {
        let relation = PgRelation::from_pg(relation);
        let sample = sample(&relation, rows, targrows.max(0) as usize).unwrap_or_else(|e| e.report());
        *totalrows = sample.total_rows;
        *totaldeadrows = 0.0;
        pgrx::ereport!(
            pgrx::PgLogLevel::from(elevel),
            pgrx::PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            format!(
                "\"{}\": the KalamDB server holds {:.0} rows, {} were read, {} are in the sample",
                relation.name(),
                sample.total_rows,
                sample.read,
                sample.kept
            )
        );
        sample.kept as i32
    }
}

struct Sample {
    /// Rows of the table.
    total_rows: f64,
    /// Rows the server sent.
    read: u64,
    /// Rows stored in the sample.
    kept: usize,
}

/// Fills `rows` with a sample of at most `target` rows of the foreign table.
///
/// # Safety
/// `relation` must be an open foreign table and `rows` have room for `target` tuples.
unsafe fn sample(relation: &PgRelation, rows: *mut pg_sys::HeapTuple, target: usize) -> Result<Sample> {
    // SAFETY: per the contract; catalog lookups of an open relation.
    unsafe {
        let (server, table_options) = foreign_table(relation)?;
        let user_id = user_id_for(&table_options);
        // Without the server's count (or of a user table, without kalam.user_id: the scan says
        // what to do), the whole table is read and counted.
        let counted = server
            .describe(&remote_table(relation, &table_options), user_id.as_deref())
            .ok()
            .and_then(|info| info.rows);
        let filters = match counted {
            Some(total) if total as f64 > target as f64 * OVERSAMPLING => {
                let fraction = target as f64 * OVERSAMPLING / total as f64;
                let random = Qual::Function { name: "random", args: Vec::new() };
                vec![Qual::Compare {
                    op: Comparison::Lt,
                    left: Box::new(random),
                    right: Box::new(Qual::Literal(Literal::Float64(fraction))),
                }]
            }
            _ => Vec::new(),
        };
        if target == 0 {
            return Ok(Sample { total_rows: counted.unwrap_or(0) as f64, read: 0, kept: 0 });
        }
        let whole = filters.is_empty();
        let mut scan =
            ScanState::build(relation, live_attributes(relation), filters, Vec::new(), std::ptr::null_mut())?;

        let natts = (*relation.rd_att).natts as usize;
        let (mut values, mut nulls) = (vec![Datum::from(0); natts], vec![true; natts]);
        let mut reservoir = pg_sys::ReservoirStateData::default();
        pg_sys::reservoir_init_selection_state(&mut reservoir, target as i32);
        let (mut read, mut kept, mut skip) = (0u64, 0usize, -1.0f64);
        while scan.next_row_into(values.as_mut_ptr(), nulls.as_mut_ptr())? {
            #[cfg(not(feature = "pg18"))]
            pg_sys::vacuum_delay_point();
            #[cfg(feature = "pg18")]
            pg_sys::vacuum_delay_point(true);
            read += 1;
            // PostgreSQL's reservoir (Vitter's algorithm Z, as in its own ANALYZE): the first
            // `target` rows fill the sample; each later row replaces a random one, skipping
            // ahead by the counts the algorithm draws.
            let slot = if kept < target {
                kept += 1;
                Some(kept - 1)
            } else {
                if skip < 0.0 {
                    skip = pg_sys::reservoir_get_next_S(&mut reservoir, read as f64, target as i32);
                }
                let slot = (skip <= 0.0).then(|| {
                    let at =
                        (target as f64 * pg_sys::sampler_random_fract(&mut reservoir.randstate)) as usize;
                    pg_sys::heap_freetuple(*rows.add(at));
                    at
                });
                skip -= 1.0;
                slot
            };
            if let Some(at) = slot {
                *rows.add(at) =
                    pg_sys::heap_form_tuple(relation.rd_att, values.as_mut_ptr(), nulls.as_mut_ptr());
            }
        }
        scan.release();
        // A table read whole was counted here, exactly; a sampled one has the server's count.
        let total_rows = if whole { read as f64 } else { counted.map_or(read as f64, |total| total as f64) };
        Ok(Sample { total_rows, read, kept })
    }
}
