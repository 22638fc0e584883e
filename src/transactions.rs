//! Remote transactions tied to the PostgreSQL transaction.
//!
//! The first write to a server in a PostgreSQL transaction begins a Flight SQL transaction
//! there ([`for_write`]); every later write and scan of that server in the same PostgreSQL
//! transaction uses it ([`current`]), so the transaction reads its own writes and nothing of it
//! is seen elsewhere before it commits. At `XACT_EVENT_PRE_COMMIT` every remote transaction is
//! committed; one that fails raises an ERROR, which aborts the PostgreSQL transaction (and rolls
//! back the remote transactions not committed yet). On abort they are rolled back. PREPARE
//! TRANSACTION is refused: the server has no two-phase commit.
//!
//! Subtransactions (SAVEPOINT, and the ones PL/pgSQL exception blocks open) become remote
//! savepoints when a write happens inside them: ROLLBACK TO SAVEPOINT rolls the remote
//! transaction back to it, RELEASE keeps what was written.
//!
//! Remote schema changes (`CREATE TABLE ... USING kalamdb`, and `DROP`/`ALTER` of such tables)
//! are not transactional on the server, so they follow the PostgreSQL transaction by hand: what
//! is made at once (a table, a namespace, a column) is undone if the transaction or
//! subtransaction that made it aborts ([`undo_at_abort`]); what destroys data (dropping a table
//! or a column) waits until the transaction has committed ([`at_commit`]), as PostgreSQL
//! deletes a dropped table's files only then. A drop that fails then leaves the remote table
//! (with a WARNING): never data dropped by a transaction that did not commit.

use std::cell::RefCell;
use std::time::Duration;

use kalam_flight::{KalamClient, SavepointId, TransactionId};
use pgrx::PgSqlErrorCode;
use pgrx::pg_sys::{self, Oid};

use crate::connection::Server;
use crate::error::{KalamError, Result};
use crate::runtime;

/// How long rolling back may wait while PostgreSQL aborts (the server rolls back an idle
/// transaction by itself later).
const ABORT_WAIT: Duration = Duration::from_secs(5);
/// How long ending a savepoint may wait (interrupts are held meanwhile).
const SAVEPOINT_WAIT: Duration = Duration::from_secs(30);
/// How long a committed transaction's remote drop may wait.
const COMMIT_DDL_WAIT: Duration = Duration::from_secs(30);
/// How long a commit may wait, interrupts held: a cancel must not cut a commit the server may
/// have received (the client's own request timeout ends it first).
const COMMIT_WAIT: Duration = Duration::from_secs(3600);

/// A remote transaction of the current PostgreSQL transaction.
struct Open {
    /// (server, user whose mapping applies): the connection the transaction belongs to.
    key: (Oid, Oid),
    client: KalamClient,
    transaction: TransactionId,
    /// Remote savepoints, by the subtransaction nesting level they stand for, innermost last.
    savepoints: Vec<(i32, SavepointId)>,
    /// A savepoint could not be rolled back: the transaction holds writes PostgreSQL undid, so
    /// it must not commit.
    poisoned: bool,
}

/// A remote schema change tied to the PostgreSQL transaction.
struct SchemaChange {
    /// The subtransaction nesting level that made it.
    level: i32,
    client: KalamClient,
    sql: String,
    /// `true`: run at commit; `false`: run if the transaction aborts (an undo).
    at_commit: bool,
}

thread_local! {
    static OPEN: RefCell<Vec<Open>> = const { RefCell::new(Vec::new()) };
    static SCHEMA_CHANGES: RefCell<Vec<SchemaChange>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The remote transaction a scan of `server` reads in, if this PostgreSQL transaction wrote
/// to it.
pub fn current(server: &Server) -> Option<TransactionId> {
    OPEN.with_borrow(|open| open.iter().find(|o| o.key == server.key()).map(|o| o.transaction.clone()))
}

/// The remote transaction to write to `server` in, begun now if needed, with savepoints up to
/// the current subtransaction level.
pub fn for_write(server: &Server) -> Result<TransactionId> {
    register_callbacks();
    let key = server.key();
    if OPEN.with_borrow(|open| !open.iter().any(|o| o.key == key)) {
        let client = server.client()?;
        let begin = client.clone();
        let transaction =
            runtime::call(async move { begin.begin_transaction(None).await }).map_err(KalamError::from)?;
        OPEN.with_borrow_mut(|open| {
            open.push(Open { key, client, transaction, savepoints: Vec::new(), poisoned: false })
        });
    }
    // SAFETY: reads a backend global.
    let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
    let (client, transaction, have) = OPEN.with_borrow(|open| {
        let o = open.iter().find(|o| o.key == key).expect("begun above");
        (o.client.clone(), o.transaction.clone(), o.savepoints.last().map_or(1, |(l, _)| *l))
    });
    // A savepoint for each subtransaction level the remote transaction has not seen yet.
    for level in have + 1..=level {
        let (client, transaction) = (client.clone(), transaction.clone());
        let name = format!("pg_kalam_{level}");
        let savepoint = runtime::call(async move { client.begin_savepoint(&transaction, &name, None).await })
            .map_err(KalamError::from)?;
        OPEN.with_borrow_mut(|open| {
            let o = open.iter_mut().find(|o| o.key == key).expect("begun above");
            o.savepoints.push((level, savepoint));
        });
    }
    Ok(transaction)
}

/// Registers `sql`, which undoes a remote schema change just made, to run if the current
/// (sub)transaction aborts.
pub fn undo_at_abort(server: &Server, sql: String) -> Result<()> {
    schema_change(server, sql, false)
}

/// Registers `sql` to run once the transaction has committed.
pub fn at_commit(server: &Server, sql: String) -> Result<()> {
    schema_change(server, sql, true)
}

fn schema_change(server: &Server, sql: String, at_commit: bool) -> Result<()> {
    register_callbacks();
    let client = server.client()?;
    // SAFETY: reads a backend global.
    let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
    SCHEMA_CHANGES.with_borrow_mut(|changes| changes.push(SchemaChange { level, client, sql, at_commit }));
    Ok(())
}

/// Whether this transaction will run one of `statements` at commit (a drop it waits to make).
pub fn pending_at_commit(statements: &[String]) -> bool {
    SCHEMA_CHANGES.with_borrow(|changes| changes.iter().any(|c| c.at_commit && statements.contains(&c.sql)))
}

/// Runs the schema changes waiting for the commit, in the order they were made, once the
/// transaction has committed: without raising errors (nothing can be undone now), each with a
/// bounded wait; one that fails is a WARNING.
fn run_at_commit() {
    let changes = SCHEMA_CHANGES.with_borrow_mut(std::mem::take);
    for SchemaChange { client, sql, .. } in changes.into_iter().filter(|c| c.at_commit) {
        let shown = sql.clone();
        let done =
            runtime::call_quietly(async move { client.execute_update(&sql, None).await }, COMMIT_DDL_WAIT);
        if !matches!(done, Some(Ok(_))) {
            pgrx::warning!(
                "the KalamDB server did not make this change of the committed transaction; run it by hand: {shown}"
            );
        }
    }
}

/// Undoes, newest first, the schema changes of the aborting (sub)transaction at `level` and
/// deeper; forgets the changes they meant to make at commit. Never raises an ERROR.
fn undo_from(level: i32) {
    let undone: Vec<SchemaChange> = SCHEMA_CHANGES.with_borrow_mut(|changes| {
        let (undone, kept) = std::mem::take(changes).into_iter().partition(|c| c.level >= level);
        *changes = kept;
        undone
    });
    for SchemaChange { client, sql, .. } in undone.into_iter().rev().filter(|c| !c.at_commit) {
        let shown = sql.clone();
        let done = runtime::call_quietly(async move { client.execute_update(&sql, None).await }, ABORT_WAIT);
        if !matches!(done, Some(Ok(_))) {
            pgrx::warning!(
                "could not undo a KalamDB schema change of the aborted transaction; run it by hand: {shown}"
            );
        }
    }
}

/// Held while a write to `server` is on its way: if PostgreSQL interrupts it (a cancel unwinds
/// the wait), the server may still stage part of it after a later ROLLBACK TO SAVEPOINT
/// arrives, so the remote transaction is refused at COMMIT.
pub struct WriteInFlight((Oid, Oid));

pub fn write_in_flight(server: &Server) -> WriteInFlight {
    WriteInFlight(server.key())
}

impl Drop for WriteInFlight {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let key = self.0;
            let _ = OPEN.try_with(|open| {
                if let Ok(mut open) = open.try_borrow_mut() {
                    open.iter_mut().filter(|o| o.key == key).for_each(|o| o.poisoned = true);
                }
            });
        }
    }
}

fn register_callbacks() {
    if REGISTERED.get() {
        return;
    }
    // SAFETY: the callbacks are plain functions that live as long as the library.
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
    REGISTERED.set(true);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_PRE_COMMIT | XACT_EVENT_PARALLEL_PRE_COMMIT => {
            if let Err(e) = commit_all() {
                e.report();
            }
        }
        XACT_EVENT_PRE_PREPARE => {
            let changed = SCHEMA_CHANGES.with_borrow(|changes| !changes.is_empty());
            if changed || OPEN.with_borrow(|open| !open.is_empty()) {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "cannot PREPARE a transaction that has written to a KalamDB server",
                )
                .with_hint("KalamDB has no two-phase commit; COMMIT or ROLLBACK the transaction instead.")
                .report();
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => {
            rollback_all();
            undo_from(0);
        }
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT => {
            OPEN.with_borrow_mut(|open| open.clear());
            run_at_commit();
        }
        XACT_EVENT_PREPARE => {
            OPEN.with_borrow_mut(|open| open.clear());
            SCHEMA_CHANGES.with_borrow_mut(|changes| changes.clear());
        }
        _ => {}
    }
}

/// Commits every remote transaction; the first that fails is the error, and the rest are
/// rolled back by the abort that follows.
fn commit_all() -> Result<()> {
    while let Some(open) =
        OPEN.with_borrow_mut(|open| if open.is_empty() { None } else { Some(open.remove(0)) })
    {
        let Open { client, transaction, poisoned, .. } = open;
        if poisoned {
            let _ = runtime::call(async move { client.end_transaction(&transaction, false, None).await });
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_TRANSACTION_ROLLBACK,
                "a savepoint could not be ended on the KalamDB server, so the transaction cannot commit",
            )
            .with_hint("The transaction is rolled back; run it again."));
        }
        let done = runtime::call_quietly(
            async move { client.end_transaction(&transaction, true, None).await },
            COMMIT_WAIT,
        );
        match done {
            Some(Ok(())) => {}
            Some(Err(kalam_flight::Error::Server { code: tonic::Code::Aborted, message, .. })) => {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                    format!("the KalamDB server refused the commit: {message}"),
                )
                .with_hint("Another transaction changed the same rows first; run the transaction again."));
            }
            Some(Err(e @ (kalam_flight::Error::Timeout { .. } | kalam_flight::Error::Lost { .. }))) => {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN,
                    format!("whether the KalamDB server committed is unknown: {e}"),
                )
                .with_hint(
                    "Check on the server whether the transaction's writes are there before running it again.",
                ));
            }
            Some(Err(e)) => {
                return Err(KalamError::from(e).with_hint(
                    "The PostgreSQL transaction is rolled back; what it wrote to the KalamDB server is not kept.",
                ));
            }
            None => {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN,
                    "the KalamDB server did not answer the commit; whether it committed is unknown",
                ));
            }
        }
    }
    Ok(())
}

/// Rolls back every remote transaction, without raising errors (PostgreSQL is aborting).
fn rollback_all() {
    let open = OPEN.with_borrow_mut(std::mem::take);
    for Open { client, transaction, .. } in open {
        let _ = runtime::call_quietly(
            async move { client.end_transaction(&transaction, false, None).await },
            ABORT_WAIT,
        );
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    let rollback = match event {
        SUBXACT_EVENT_PRE_COMMIT_SUB => false,
        SUBXACT_EVENT_ABORT_SUB => true,
        _ => return,
    };
    // SAFETY: reads a backend global.
    let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
    if !rollback {
        // What a released savepoint made belongs to its parent now.
        SCHEMA_CHANGES.with_borrow_mut(|changes| {
            changes.iter_mut().filter(|c| c.level >= level).for_each(|c| c.level = level - 1)
        });
    }
    let ending: Vec<((Oid, Oid), KalamClient, SavepointId)> = OPEN.with_borrow_mut(|open| {
        open.iter_mut()
            .filter_map(|o| {
                let at = o.savepoints.iter().position(|(l, _)| *l >= level)?;
                let (_, savepoint) = o.savepoints.drain(at..).next().expect("found above");
                Some((o.key, o.client.clone(), savepoint))
            })
            .collect()
    });
    // No error is raised here (PL/pgSQL would catch it with the subtransaction half ended): a
    // savepoint that cannot be ended leaves its server's transaction holding writes it must not
    // keep, or may not keep, so that transaction is refused at COMMIT instead.
    for (key, client, savepoint) in ending {
        let done = runtime::call_quietly(
            async move { client.end_savepoint(&savepoint, rollback, None).await },
            SAVEPOINT_WAIT,
        );
        if !matches!(done, Some(Ok(()))) {
            OPEN.with_borrow_mut(|open| {
                open.iter_mut().filter(|o| o.key == key).for_each(|o| o.poisoned = true);
            });
        }
    }
    // After the savepoints: the writes they undo may be to a table made inside them.
    if rollback {
        undo_from(level);
    }
}
