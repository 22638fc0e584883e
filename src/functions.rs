//! SQL functions of the extension.

use pgrx::prelude::*;

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
