//! The one error type of the client. Messages are written for the person reading a PostgreSQL
//! ERROR: they name the server address and what to do, and never contain credentials.

use std::fmt;
use std::time::Duration;

use arrow_flight::error::FlightError;

#[derive(Debug)]
pub enum Error {
    /// No connection could be made (refused, unresolvable, TLS failure, connect timeout).
    Unreachable { addr: String, reason: String },
    /// The server did not answer a request within the configured timeout.
    Timeout { addr: String, timeout: Duration },
    /// The server refused the login (`login_user`/`login_password`).
    Auth { addr: String, user: String, message: String },
    /// The connection broke while a result was being read (the server died or restarted).
    Lost { addr: String, reason: String },
    /// The server answered with an error status; its message is passed through, with the
    /// SQLSTATE it gave ([`crate::protocol::SQLSTATE_HEADER`]), if any.
    Server { code: tonic::Code, message: String, sqlstate: Option<String>, detail: Option<String> },
    /// The server answered with something that is not valid Flight SQL / Arrow IPC.
    Protocol(String),
    /// Invalid client configuration (caught before any network traffic).
    Config(String),
}

impl Error {
    pub(crate) fn from_flight(err: FlightError) -> Self {
        match err {
            FlightError::Tonic(status) => Self::from_status(*status),
            FlightError::Arrow(e) => Self::Protocol(e.to_string()),
            FlightError::ExternalError(e) => Self::Protocol(e.to_string()),
            other => Self::Protocol(other.to_string()),
        }
    }

    /// An error in the middle of a result stream. A transport failure there means the server
    /// or the network went away; a status the server sent is passed through as usual.
    pub(crate) fn from_stream(err: FlightError, addr: &str) -> Self {
        match err {
            FlightError::Tonic(status) if is_transport_failure(&status) => {
                Self::Lost { addr: addr.to_string(), reason: status.message().to_string() }
            }
            other => Self::from_flight(other),
        }
    }

    pub(crate) fn from_status(status: tonic::Status) -> Self {
        let sqlstate = status
            .metadata()
            .get(crate::protocol::SQLSTATE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() == 5 && v.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
            .map(str::to_string);
        let detail = status
            .metadata()
            .get_bin(crate::protocol::DETAIL_HEADER)
            .and_then(|v| v.to_bytes().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        Self::Server { code: status.code(), message: status.message().to_string(), sqlstate, detail }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable { addr, reason } => write!(
                f,
                "KalamDB server is not running or unreachable at {addr} ({reason}); \
                 start kalamdb-server or fix the host/port options of the foreign server"
            ),
            Error::Timeout { addr, timeout } => write!(
                f,
                "KalamDB server at {addr} did not answer within {} ms; \
                 check the server, or raise the timeout option of the foreign server",
                timeout.as_millis()
            ),
            Error::Auth { addr, user, message } => write!(
                f,
                "KalamDB server at {addr} refused the login of user \"{user}\" ({message}); \
                 check login_user and login_password of the user mapping or foreign server"
            ),
            Error::Lost { addr, reason } => write!(
                f,
                "the connection to the KalamDB server at {addr} broke while reading a result ({reason}); \
                 check that the server is running, then run the query again"
            ),
            Error::Server { code, message, .. } => {
                write!(f, "KalamDB server error ({}): {message}", code_name(*code))
            }
            Error::Protocol(message) => write!(f, "invalid Flight SQL response: {message}"),
            Error::Config(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for Error {}

/// Whether a status was made by the client's transport (the connection failed) rather than
/// sent by the server. tonic reports a broken HTTP/2 connection as `Unavailable` or `Unknown`
/// with an `h2`/transport message and no server-sent details.
fn is_transport_failure(status: &tonic::Status) -> bool {
    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal)
        && status.metadata().is_empty()
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid argument",
        DeadlineExceeded => "deadline exceeded",
        NotFound => "not found",
        AlreadyExists => "already exists",
        PermissionDenied => "permission denied",
        ResourceExhausted => "resource exhausted",
        FailedPrecondition => "failed precondition",
        Aborted => "aborted",
        OutOfRange => "out of range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data loss",
        Unauthenticated => "unauthenticated",
    }
}
