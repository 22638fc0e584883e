//! The extension's error type. Safe code returns `Result<_, KalamError>`; the `#[pg_guard]`
//! shims turn an error into a PostgreSQL ERROR at that one boundary ([`KalamError::report`]).

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug)]
pub struct KalamError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, KalamError>;

impl KalamError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), detail: None, hint: None }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raises the error in PostgreSQL. Rust values on the stack are dropped as it unwinds.
    pub fn report(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "pg_kalam");
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

impl From<kalam_flight::Error> for KalamError {
    fn from(err: kalam_flight::Error) -> Self {
        use kalam_flight::Error as E;
        let code = match &err {
            E::Unreachable { .. } => PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION,
            E::Timeout { .. } | E::Lost { .. } => PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            E::Auth { .. } => PgSqlErrorCode::ERRCODE_INVALID_PASSWORD,
            E::Server { code: tonic_code, .. } => match tonic_code {
                tonic::Code::NotFound => PgSqlErrorCode::ERRCODE_FDW_TABLE_NOT_FOUND,
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                    PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
                }
                tonic::Code::Unavailable => PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION,
                _ => PgSqlErrorCode::ERRCODE_FDW_ERROR,
            },
            E::Protocol(_) => PgSqlErrorCode::ERRCODE_FDW_ERROR,
            E::Config(_) => PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
        };
        if let E::Server { sqlstate: Some(sqlstate), message, detail, .. } = &err
            && let Some(code) = known_sqlstate(sqlstate)
        {
            let error = KalamError::new(code, message.clone());
            return match detail {
                Some(detail) => error.with_detail(detail.clone()),
                None => error,
            };
        }
        KalamError::new(code, err.to_string())
    }
}

/// The PostgreSQL error code of a SQLSTATE a server gives with an error, for the states it
/// gives (others stay a foreign-data-wrapper error).
fn known_sqlstate(sqlstate: &str) -> Option<PgSqlErrorCode> {
    use PgSqlErrorCode as C;
    Some(match sqlstate {
        "23505" => C::ERRCODE_UNIQUE_VIOLATION,
        "23502" => C::ERRCODE_NOT_NULL_VIOLATION,
        "23514" => C::ERRCODE_CHECK_VIOLATION,
        "22001" => C::ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
        "22003" => C::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        "22000" => C::ERRCODE_DATA_EXCEPTION,
        "22P02" => C::ERRCODE_INVALID_TEXT_REPRESENTATION,
        "40001" => C::ERRCODE_T_R_SERIALIZATION_FAILURE,
        _ => return None,
    })
}
