//! Settings (GUCs) of pg_kalam, registered when the library loads.

use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `kalam.user_id`: the KalamDB user whose rows user and stream tables show (and, for writes,
/// receive). Sent to the server in the `kalam-user-id` header; the server lets only dba and
/// system accounts act for another user. Choosing it is a privilege (`PGC_SUSET`): superusers,
/// and roles granted it with `GRANT SET ON PARAMETER kalam.user_id TO role`.
pub static USER_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn init() {
    GucRegistry::define_string_guc(
        c"kalam.user_id",
        c"KalamDB user whose rows user and stream tables show.",
        c"Sent with every request on a user or stream table; the server's account must be allowed to act for it.",
        &USER_ID,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// The current `kalam.user_id`, if set and not empty.
pub fn user_id() -> Option<String> {
    USER_ID.get().and_then(|v| v.into_string().ok()).filter(|v| !v.is_empty())
}
