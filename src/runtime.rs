//! The backend's I/O thread: the tokio runtime every Flight request runs on, and the ways the
//! backend waits for it.
//!
//! The runtime has one worker thread, started on first use inside a backend (never in the
//! postmaster, so no forked child inherits it) with every signal blocked: PostgreSQL's signal
//! handlers only ever run on the backend's own thread. Tasks on it are plain Rust (network,
//! Arrow decoding) and never call PostgreSQL. The backend hands work over with [`call`] and
//! reads results with [`recv`]; both wait in short slices and process pending interrupts
//! between them, so a query cancel or `statement_timeout` is noticed within [`INTERRUPT_POLL`].
//! An ERROR raised there unwinds through the waiting Rust frames, whose guards abort the task.

use std::sync::Mutex;
use std::time::Duration;

use pgrx::pg_sys;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often a wait on the I/O thread looks at PostgreSQL's pending interrupts: the bound on how
/// late a query cancel or `statement_timeout` is noticed while the server is silent.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// How long a backend that exits gives open connections to close cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

/// The runtime, once started; taken and shut down when the backend exits.
static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// The runtime's handle, starting the I/O thread on first use.
pub fn handle() -> Handle {
    let mut runtime = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(runtime) = runtime.as_ref() {
        return runtime.handle().clone();
    }
    let started = with_signals_blocked(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("pg_kalam io")
            .enable_io()
            .enable_time()
            .build()
    })
    .expect("the I/O thread of pg_kalam could not be started");
    let handle = started.handle().clone();
    *runtime = Some(started);
    // SAFETY: registers a plain function called once at backend exit.
    unsafe { pg_sys::on_proc_exit(Some(shut_down), pg_sys::Datum::from(0usize)) };
    handle
}

/// Starts threads with every signal blocked in them (a new thread inherits the creating
/// thread's mask), then restores the backend's mask.
fn with_signals_blocked<T>(start: impl FnOnce() -> T) -> T {
    // SAFETY: sigfillset initializes the set; pthread_sigmask only changes this thread's mask,
    // which is restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        let result = start();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        result
    }
}

/// Backend exit: closes every cached connection, then stops the I/O thread.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shut_down(_code: i32, _arg: pg_sys::Datum) {
    crate::connection::close_all();
    let runtime = RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(runtime) = runtime {
        runtime.shutdown_timeout(SHUTDOWN_GRACE);
    }
}

/// A task that is aborted when its owner lets go of it (including while unwinding from an ERROR).
pub struct Task<T>(JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts `work` on the I/O thread; it stops when the returned [`Task`] is dropped.
pub fn spawn<F>(work: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Task(handle().spawn(work))
}

/// Runs `work` on the I/O thread and waits for its result, processing interrupts meanwhile.
pub fn call<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut task = spawn(work);
    match wait(&mut task.0) {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => unreachable!("only dropping the Task aborts it"),
    }
}

/// Runs `work` on the I/O thread and waits for it at most `limit`, without processing
/// interrupts: for work done while a transaction aborts, where raising an error is not allowed.
/// `None` when the limit passed (the work is dropped).
pub fn call_quietly<F>(work: F, limit: std::time::Duration) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut task = spawn(work);
    let handle = handle();
    match handle.block_on(async { tokio::time::timeout(limit, &mut task.0).await }) {
        Ok(Ok(output)) => Some(output),
        _ => None,
    }
}

/// The next message of `receiver`, or `None` once its sender is gone.
pub fn recv<T>(receiver: &mut mpsc::Receiver<T>) -> Option<T> {
    // Fast path: prefetched work is already there.
    match receiver.try_recv() {
        Ok(message) => return Some(message),
        Err(mpsc::error::TryRecvError::Disconnected) => return None,
        Err(mpsc::error::TryRecvError::Empty) => {}
    }
    wait(receiver.recv())
}

/// Waits for `future` from the backend thread (which only polls it; the I/O thread does the
/// work) in slices of [`INTERRUPT_POLL`], processing interrupts between slices.
fn wait<F: Future>(future: F) -> F::Output {
    let handle = handle();
    let mut future = std::pin::pin!(future);
    loop {
        // The timer is made inside block_on, where the runtime's context is entered.
        match handle.block_on(async { tokio::time::timeout(INTERRUPT_POLL, &mut future).await }) {
            Ok(output) => return output,
            Err(_) => {
                pgrx::check_for_interrupts!();
            }
        }
    }
}

/// Whether the current database stores text as UTF-8 (Arrow's encoding), so that strings can
/// be copied as they are.
pub fn database_is_utf8() -> bool {
    // SAFETY: GetDatabaseEncoding only reads a backend global.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 }
}
