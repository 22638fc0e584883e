//! The foreign data wrapper's entry points: the handler, which hands PostgreSQL our callback
//! table, and the validator, which checks options at CREATE/ALTER time. The wrapper itself is
//! created in `sql/pg_kalam_fdw.sql`.

use pgrx::prelude::*;
use pgrx::{PgBox, pg_sys};

use crate::options::{self, Scope};
use crate::{analyze, direct, import, join, modify, scan, upper};

#[pg_extern(parallel_safe, strict)]
fn pg_kalam_fdw_handler() -> PgBox<pg_sys::FdwRoutine> {
    // SAFETY: alloc_node allocates a zeroed FdwRoutine node in the current memory context.
    let mut routine = unsafe { PgBox::<pg_sys::FdwRoutine>::alloc_node(pg_sys::NodeTag::T_FdwRoutine) };
    routine.GetForeignRelSize = Some(scan::get_foreign_rel_size);
    routine.GetForeignPaths = Some(scan::get_foreign_paths);
    routine.GetForeignPlan = Some(scan::get_foreign_plan);
    routine.BeginForeignScan = Some(scan::begin_foreign_scan);
    routine.IterateForeignScan = Some(scan::iterate_foreign_scan);
    routine.ReScanForeignScan = Some(scan::rescan_foreign_scan);
    routine.EndForeignScan = Some(scan::end_foreign_scan);
    routine.ExplainForeignScan = Some(scan::explain_foreign_scan);
    routine.AnalyzeForeignTable = Some(analyze::analyze_foreign_table);
    routine.IsForeignRelUpdatable = Some(modify::is_foreign_rel_updatable);
    routine.PlanForeignModify = Some(modify::plan_foreign_modify);
    routine.BeginForeignModify = Some(modify::begin_foreign_modify);
    routine.ExecForeignInsert = Some(modify::exec_foreign_insert);
    routine.AddForeignUpdateTargets = Some(modify::add_foreign_update_targets);
    routine.ExecForeignUpdate = Some(modify::exec_foreign_update);
    routine.ExecForeignDelete = Some(modify::exec_foreign_delete);
    routine.PlanDirectModify = Some(direct::plan_direct_modify);
    routine.BeginDirectModify = Some(direct::begin_direct_modify);
    routine.IterateDirectModify = Some(direct::iterate_direct_modify);
    routine.EndDirectModify = Some(direct::end_direct_modify);
    routine.ExplainDirectModify = Some(direct::explain_direct_modify);
    routine.EndForeignModify = Some(modify::end_foreign_modify);
    routine.BeginForeignInsert = Some(modify::begin_foreign_insert);
    routine.EndForeignInsert = Some(modify::end_foreign_insert);
    routine.ImportForeignSchema = Some(import::import_foreign_schema);
    routine.GetForeignUpperPaths = Some(upper::get_foreign_upper_paths);
    routine.GetForeignJoinPaths = Some(join::get_foreign_join_paths);
    routine.into_pg_boxed()
}

/// Called by PostgreSQL with the complete option list of the object being created or altered.
#[pg_extern(parallel_safe)]
fn pg_kalam_fdw_validator(options: Option<Vec<String>>, catalog: Option<pg_sys::Oid>) {
    let options: Vec<(String, String)> = options
        .unwrap_or_default()
        .into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (pair, String::new()),
        })
        .collect();
    let scope = catalog.and_then(Scope::from_catalog);
    if let Err(e) = options::validate(scope, &options) {
        e.report();
    }
}
