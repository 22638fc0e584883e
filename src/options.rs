//! Every option pg_kalam accepts, in one table ([`OPTIONS`]), and the typed views the rest of
//! the extension reads ([`ServerOptions`], [`TableOptions`], [`Credentials`], [`ScanTuning`]).
//! The validator and the executor parse through the same functions, so an option accepted at
//! CREATE time is exactly what runs.
//!
//! Credentials (`auth_header`, `login_user`, `login_password`) may sit on the server or in a
//! user mapping; the mapping's win. Their values, and `client_key`'s, never appear in a message.

use std::time::Duration;

use pgrx::PgSqlErrorCode;
use pgrx::pg_sys;

use crate::error::{KalamError, Result};

/// Where an option may be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Server,
    UserMapping,
    Table,
}

impl Scope {
    /// The catalog a validator call is for, or `None` for catalogs that take no options
    /// (the wrapper itself, columns).
    pub fn from_catalog(catalog: pg_sys::Oid) -> Option<Scope> {
        if catalog == pg_sys::ForeignServerRelationId {
            Some(Scope::Server)
        } else if catalog == pg_sys::UserMappingRelationId {
            Some(Scope::UserMapping)
        } else if catalog == pg_sys::ForeignTableRelationId {
            Some(Scope::Table)
        } else {
            None
        }
    }

    fn object(self) -> &'static str {
        match self {
            Scope::Server => "foreign server",
            Scope::UserMapping => "user mapping",
            Scope::Table => "foreign table",
        }
    }
}

/// One accepted option.
pub struct OptionDef {
    pub name: &'static str,
    pub scopes: &'static [Scope],
    /// Must be given on a server.
    pub required: bool,
    /// Never echoed in messages.
    pub secret: bool,
    pub help: &'static str,
}

const SERVER: &[Scope] = &[Scope::Server];
const TABLE: &[Scope] = &[Scope::Table];
const CREDENTIAL: &[Scope] = &[Scope::Server, Scope::UserMapping];
const TUNING: &[Scope] = &[Scope::Server, Scope::Table];

/// The option table. Adding an option starts here.
pub const OPTIONS: &[OptionDef] = &[
    OptionDef {
        name: "host",
        scopes: SERVER,
        required: true,
        secret: false,
        help: "host name or IP of the KalamDB Flight SQL endpoint",
    },
    OptionDef {
        name: "port",
        scopes: SERVER,
        required: true,
        secret: false,
        help: "Flight SQL port, 1-65535 (KalamDB's default is 2910)",
    },
    OptionDef {
        name: "auth_mode",
        scopes: SERVER,
        required: false,
        secret: false,
        help: "none, static_header or account_login (default: static_header if auth_header is set, else none)",
    },
    OptionDef {
        name: "auth_header",
        scopes: CREDENTIAL,
        required: false,
        secret: true,
        help: "authorization header sent with every request, e.g. 'Bearer <token>'",
    },
    OptionDef {
        name: "login_user",
        scopes: CREDENTIAL,
        required: false,
        secret: false,
        help: "KalamDB account that logs in (auth_mode 'account_login')",
    },
    OptionDef {
        name: "login_password",
        scopes: CREDENTIAL,
        required: false,
        secret: true,
        help: "password of login_user",
    },
    OptionDef {
        name: "timeout",
        scopes: SERVER,
        required: false,
        secret: false,
        help: "connect and request timeout in milliseconds, 1-3600000 (default 30000)",
    },
    OptionDef {
        name: "ca_cert",
        scopes: SERVER,
        required: false,
        secret: false,
        help: "PEM text or file path of the CA that signed the server's certificate; turns TLS on",
    },
    OptionDef {
        name: "client_cert",
        scopes: SERVER,
        required: false,
        secret: false,
        help: "PEM text or file path of a client certificate, for mutual TLS (with client_key)",
    },
    OptionDef {
        name: "client_key",
        scopes: SERVER,
        required: false,
        secret: true,
        help: "PEM text or file path of the client certificate's private key",
    },
    OptionDef {
        name: "scan_batch_rows",
        scopes: TUNING,
        required: false,
        secret: false,
        help: "rows a scan converts at a time, 1-1000000 (default 8192)",
    },
    OptionDef {
        name: "insert_batch_rows",
        scopes: TUNING,
        required: false,
        secret: false,
        help: "rows an INSERT, COPY, UPDATE or DELETE sends to the server per request, 1-1000000 (default 16384)",
    },
    OptionDef {
        name: "prefetch_batches",
        scopes: TUNING,
        required: false,
        secret: false,
        help: "record batches a scan fetches ahead of the rows being read, 1-64 (default 4)",
    },
    OptionDef {
        name: "use_remote_estimate",
        scopes: TUNING,
        required: false,
        secret: false,
        help: "true or false (default false): when planning, the server counts the rows its clauses keep",
    },
    OptionDef {
        name: "fdw_startup_cost",
        scopes: SERVER,
        required: false,
        secret: false,
        help: "the planner's cost of starting a remote query, a number from 0 (default 100)",
    },
    OptionDef {
        name: "fdw_tuple_cost",
        scopes: SERVER,
        required: false,
        secret: false,
        help: "the planner's cost of each row the server sends, a number from 0 (default 0.01)",
    },
    OptionDef {
        name: "namespace",
        scopes: TABLE,
        required: false,
        secret: false,
        help: "KalamDB namespace (default: the foreign table's schema)",
    },
    OptionDef {
        name: "table",
        scopes: TABLE,
        required: false,
        secret: false,
        help: "KalamDB table (default: the foreign table's name)",
    },
    OptionDef {
        name: "table_type",
        scopes: TABLE,
        required: false,
        secret: false,
        help: "shared, user or stream (default shared); user and stream tables are read as kalam.user_id",
    },
    OptionDef {
        name: "owns_remote",
        scopes: TABLE,
        required: false,
        secret: false,
        help: "true when CREATE TABLE ... USING kalamdb made the remote table: DROP drops it too and \
               ALTER TABLE ADD/DROP COLUMN is mirrored (default false)",
    },
];

/// Default for `timeout`: long enough for a busy server, short enough that a dead one is noticed.
pub const TIMEOUT_MS_DEFAULT: u64 = 30_000;
const TIMEOUT_MS_MAX: u64 = 3_600_000;
/// Rows converted at a time: large enough that per-batch work vanishes, small enough that the
/// converted values of one batch (the per-batch memory context) stay a few MiB.
const SCAN_BATCH_ROWS_DEFAULT: usize = 8192;
const SCAN_BATCH_ROWS_MAX: usize = 1_000_000;
/// Rows a write sends per request: large, so that few requests carry a bulk load (a batch of
/// typical rows is a few MiB of Arrow, sent in messages of at most 2 MiB; 65536 rows were no
/// faster for 1M lineitem rows), bounded, so that a write's memory does not grow with the
/// statement.
const INSERT_BATCH_ROWS_DEFAULT: usize = 16_384;
const INSERT_BATCH_ROWS_MAX: usize = 1_000_000;
/// Batches fetched ahead: enough to keep the network busy while the backend converts; each is
/// at most one Flight message (2 MiB from kalamdb-server), so the queue stays small.
const PREFETCH_BATCHES_DEFAULT: usize = 4;
const PREFETCH_BATCHES_MAX: usize = 64;

/// How the client authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    None,
    StaticHeader,
    AccountLogin,
}

/// Credentials from a server or a user mapping, before they are combined.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub auth_header: Option<String>,
    pub login_user: Option<String>,
    pub login_password: Option<String>,
}

/// Options of a foreign server, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerOptions {
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
    pub auth_mode: Option<AuthMode>,
    pub credentials: Credentials,
    pub ca_cert: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub tuning: ScanTuning,
    pub costs: Costs,
}

/// What the planner charges for remote work, in its cost units (`fdw_startup_cost`,
/// `fdw_tuple_cost`): a round trip, and each row sent and converted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Costs {
    pub startup: f64,
    pub tuple: f64,
}

// Costs are finite and not negative (parse_cost): equality is total.
impl Eq for Costs {}

impl Default for Costs {
    fn default() -> Self {
        Self { startup: STARTUP_COST_DEFAULT, tuple: TUPLE_COST_DEFAULT }
    }
}

/// Default `fdw_startup_cost`: a remote query costs about what reading 100 pages would.
pub const STARTUP_COST_DEFAULT: f64 = 100.0;
/// Default `fdw_tuple_cost`, on top of PostgreSQL's own per-row cost.
pub const TUPLE_COST_DEFAULT: f64 = 0.01;

/// Scan tuning; a foreign table's values override its server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanTuning {
    pub batch_rows: usize,
    /// Rows a write sends per request.
    pub insert_batch_rows: usize,
    pub prefetch_batches: usize,
    /// Whether planning asks the server to count the rows the remote clauses keep.
    pub use_remote_estimate: bool,
}

impl Default for ScanTuning {
    fn default() -> Self {
        Self {
            batch_rows: SCAN_BATCH_ROWS_DEFAULT,
            insert_batch_rows: INSERT_BATCH_ROWS_DEFAULT,
            prefetch_batches: PREFETCH_BATCHES_DEFAULT,
            use_remote_estimate: false,
        }
    }
}

/// Tuning values given on one object (`None`: not given there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TuningValues {
    pub batch_rows: Option<usize>,
    pub insert_batch_rows: Option<usize>,
    pub prefetch_batches: Option<usize>,
    pub use_remote_estimate: Option<bool>,
}

/// The kind of a KalamDB table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TableType {
    #[default]
    Shared,
    /// Rows are kept per user; reads and writes act for `kalam.user_id`.
    User,
    /// Append-only per-user rows with a time to live; read like user tables.
    Stream,
}

/// Options of a foreign table; unset names are left to the caller's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    pub namespace: Option<String>,
    pub table: Option<String>,
    pub table_type: TableType,
    /// The remote table belongs to this foreign table (`owns_remote`): made by
    /// `CREATE TABLE ... USING kalamdb`, dropped and altered with it.
    pub owns_remote: bool,
    /// The table's own tuning values (`None`: the server's).
    pub tuning: TuningValues,
}

fn def(name: &str) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|o| o.name == name)
}

fn invalid_value(name: &str, value: &str, expected: &str) -> KalamError {
    let shown = if def(name).is_some_and(|d| d.secret) { "(hidden)" } else { value };
    KalamError::new(
        PgSqlErrorCode::ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE,
        format!("invalid value for option \"{name}\": \"{shown}\""),
    )
    .with_hint(format!("\"{name}\" must be {expected}"))
}

fn conflict(message: String, hint: &str) -> KalamError {
    KalamError::new(PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME, message).with_hint(hint.to_string())
}

/// Rejects names not accepted in `scope`, duplicates, and (on servers) missing required options.
pub fn check_names(scope: Scope, options: &[(String, String)]) -> Result<()> {
    let valid: Vec<&str> = OPTIONS.iter().filter(|o| o.scopes.contains(&scope)).map(|o| o.name).collect();
    for (i, (name, _)) in options.iter().enumerate() {
        if !valid.contains(&name.as_str()) {
            let elsewhere = def(name).map(|d| {
                let places: Vec<&str> = d.scopes.iter().map(|s| s.object()).collect();
                format!(" (it belongs on a {})", places.join(" or "))
            });
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                format!(
                    "invalid option \"{name}\" for a pg_kalam {}{}",
                    scope.object(),
                    elsewhere.unwrap_or_default()
                ),
            )
            .with_hint(format!("Valid options here are: {}", valid.join(", "))));
        }
        if options[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                format!("option \"{name}\" is given more than once"),
            ));
        }
    }
    if scope == Scope::Server {
        for def in OPTIONS.iter().filter(|o| o.required) {
            if !options.iter().any(|(name, _)| name == def.name) {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_OPTION_NAME_NOT_FOUND,
                    format!("option \"{}\" is required for a pg_kalam {}", def.name, scope.object()),
                )
                .with_hint(format!("\"{}\": {}", def.name, def.help)));
            }
        }
    }
    Ok(())
}

/// A boolean as PostgreSQL reads one in options (`defGetBoolean`): true/false, on/off, yes/no,
/// 1/0, any case.
fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(invalid_value(name, value, "a boolean (true or false)")),
    }
}

fn parse_cost(name: &str, value: &str) -> Result<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| invalid_value(name, value, "a number from 0, in the planner's cost units"))
}

fn parse_range(name: &str, value: &str, min: u64, max: u64, unit: &str) -> Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| invalid_value(name, value, &format!("{unit} from {min} to {max}")))
}

/// A PEM option: the PEM text itself, or the path of a file holding it (read by the
/// PostgreSQL server process). Checked at CREATE/ALTER time so a typo fails there.
fn check_pem(name: &str, value: &str) -> Result<()> {
    read_pem(name, value).map(drop)
}

/// The PEM text of a PEM option (see [`check_pem`]).
pub fn read_pem(name: &str, value: &str) -> Result<String> {
    let text = if value.trim_start().starts_with("-----BEGIN") {
        value.to_string()
    } else {
        std::fs::read_to_string(value).map_err(|e| {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE,
                format!("cannot read the file of option \"{name}\" ({value}): {e}"),
            )
            .with_hint(format!(
                "\"{name}\" must be PEM text or the path of a PEM file readable by the PostgreSQL server"
            ))
        })?
    };
    if !text.contains("-----BEGIN") {
        let shown = if value.trim_start().starts_with("-----BEGIN") { "the given text" } else { value };
        return Err(KalamError::new(
            PgSqlErrorCode::ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE,
            format!("option \"{name}\": {shown} holds no PEM block"),
        )
        .with_hint("PEM text starts with a line like -----BEGIN CERTIFICATE-----"));
    }
    Ok(text)
}

impl Credentials {
    /// Reads the credential options of a list, skipping the others.
    fn parse(options: &[(String, String)]) -> Result<Self> {
        let mut credentials = Credentials::default();
        for (name, value) in options {
            let slot = match name.as_str() {
                "auth_header" => &mut credentials.auth_header,
                "login_user" => &mut credentials.login_user,
                "login_password" => &mut credentials.login_password,
                _ => continue,
            };
            if value.is_empty() {
                return Err(invalid_value(name, value, "non-empty"));
            }
            if name == "auth_header" && value.chars().any(|c| c.is_control()) {
                return Err(invalid_value(name, value, "header text without control characters"));
            }
            *slot = Some(value.clone());
        }
        if credentials.auth_header.is_some()
            && (credentials.login_user.is_some() || credentials.login_password.is_some())
        {
            return Err(conflict(
                "options \"auth_header\" and \"login_user\"/\"login_password\" contradict each other".into(),
                "Use auth_header for auth_mode 'static_header', or login_user and login_password for \
                 auth_mode 'account_login', not both.",
            ));
        }
        Ok(credentials)
    }

    /// The credentials of a user mapping's option list.
    pub fn from_mapping(options: &[(String, String)]) -> Result<Self> {
        check_names(Scope::UserMapping, options)?;
        Credentials::parse(options)
    }

    /// The server's credentials overridden by a user mapping's: a mapping that sets any
    /// credential replaces all of the server's.
    pub fn overridden_by(self, mapping: Credentials) -> Credentials {
        if mapping == Credentials::default() { self } else { mapping }
    }
}

impl ScanTuning {
    fn parse_values(options: &[(String, String)]) -> Result<TuningValues> {
        let mut values = TuningValues::default();
        for (name, value) in options {
            match name.as_str() {
                "scan_batch_rows" => {
                    values.batch_rows =
                        Some(parse_range(name, value, 1, SCAN_BATCH_ROWS_MAX as u64, "a number of rows")?
                            as usize)
                }
                "insert_batch_rows" => {
                    values.insert_batch_rows =
                        Some(parse_range(name, value, 1, INSERT_BATCH_ROWS_MAX as u64, "a number of rows")?
                            as usize)
                }
                "prefetch_batches" => {
                    values.prefetch_batches =
                        Some(parse_range(name, value, 1, PREFETCH_BATCHES_MAX as u64, "a number of batches")?
                            as usize)
                }
                "use_remote_estimate" => values.use_remote_estimate = Some(parse_bool(name, value)?),
                _ => {}
            }
        }
        Ok(values)
    }

    /// These values with the ones given on an object laid over them.
    pub fn with(self, values: &TuningValues) -> ScanTuning {
        ScanTuning {
            batch_rows: values.batch_rows.unwrap_or(self.batch_rows),
            insert_batch_rows: values.insert_batch_rows.unwrap_or(self.insert_batch_rows),
            prefetch_batches: values.prefetch_batches.unwrap_or(self.prefetch_batches),
            use_remote_estimate: values.use_remote_estimate.unwrap_or(self.use_remote_estimate),
        }
    }

    /// The server's tuning with the table's values laid over it.
    pub fn with_table(self, table: &TableOptions) -> ScanTuning {
        self.with(&table.tuning)
    }
}

impl ServerOptions {
    pub fn parse(options: &[(String, String)]) -> Result<Self> {
        check_names(Scope::Server, options)?;
        let mut host = String::new();
        let mut port = 0u16;
        let mut timeout_ms = TIMEOUT_MS_DEFAULT;
        let mut auth_mode = None;
        let (mut ca_cert, mut client_cert, mut client_key) = (None, None, None);
        let mut costs = Costs::default();
        for (name, value) in options {
            match name.as_str() {
                "fdw_startup_cost" => costs.startup = parse_cost(name, value)?,
                "fdw_tuple_cost" => costs.tuple = parse_cost(name, value)?,
                "host" => {
                    if value.trim().is_empty() || value.chars().any(|c| c.is_whitespace() || c == '/') {
                        return Err(invalid_value(name, value, "a host name or IP address"));
                    }
                    host = value.clone();
                }
                "port" => port = parse_range(name, value, 1, 65535, "an integer")? as u16,
                "timeout" => {
                    timeout_ms = parse_range(name, value, 1, TIMEOUT_MS_MAX, "a number of milliseconds")?
                }
                "auth_mode" => {
                    auth_mode = Some(match value.as_str() {
                        "none" => AuthMode::None,
                        "static_header" => AuthMode::StaticHeader,
                        "account_login" => AuthMode::AccountLogin,
                        _ => return Err(invalid_value(name, value, "none, static_header or account_login")),
                    })
                }
                "ca_cert" | "client_cert" | "client_key" => {
                    check_pem(name, value)?;
                    let slot = match name.as_str() {
                        "ca_cert" => &mut ca_cert,
                        "client_cert" => &mut client_cert,
                        _ => &mut client_key,
                    };
                    *slot = Some(value.clone());
                }
                _ => {} // credentials and tuning are parsed below
            }
        }
        let credentials = Credentials::parse(options)?;
        let tuning = ScanTuning::default().with(&ScanTuning::parse_values(options)?);
        let parsed = Self {
            host,
            port,
            timeout: Duration::from_millis(timeout_ms),
            auth_mode,
            credentials,
            ca_cert,
            client_cert,
            client_key,
            tuning,
            costs,
        };
        parsed.check_consistent()?;
        Ok(parsed)
    }

    /// Contradictions visible on the server alone. Credentials a user mapping may add are
    /// checked when a connection is made ([`ServerOptions::auth`]).
    fn check_consistent(&self) -> Result<()> {
        let c = &self.credentials;
        let login = c.login_user.is_some() || c.login_password.is_some();
        match self.auth_mode {
            Some(AuthMode::None) if c.auth_header.is_some() || login => {
                return Err(conflict(
                    "auth_mode 'none' contradicts the credentials given on the server".into(),
                    "Drop auth_header/login_user/login_password, or choose auth_mode 'static_header' or \
                     'account_login'.",
                ));
            }
            Some(AuthMode::StaticHeader) if login => {
                return Err(conflict(
                    "auth_mode 'static_header' sends auth_header; login_user/login_password would be ignored"
                        .into(),
                    "Choose auth_mode 'account_login' to log in with a user name and password.",
                ));
            }
            Some(AuthMode::AccountLogin) if c.auth_header.is_some() => {
                return Err(conflict(
                    "auth_mode 'account_login' logs in with login_user/login_password; auth_header would be \
                     ignored"
                        .into(),
                    "Choose auth_mode 'static_header' to send a fixed header.",
                ));
            }
            None if login => {
                return Err(conflict(
                    "login_user/login_password are set but auth_mode is not 'account_login'".into(),
                    "Add auth_mode 'account_login' to the server's options.",
                ));
            }
            _ => {}
        }
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(conflict(
                    "options \"client_cert\" and \"client_key\" must be given together".into(),
                    "Mutual TLS needs both the client certificate and its private key.",
                ));
            }
            (Some(_), Some(_)) if self.ca_cert.is_none() => {
                return Err(conflict(
                    "a client certificate needs TLS, which option \"ca_cert\" turns on".into(),
                    "Add ca_cert: the CA that signed the server's certificate.",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The authentication to use with `mapping`'s credentials (the current user's mapping, or
    /// none), or why the combination cannot work.
    pub fn auth(&self, mapping: Credentials) -> Result<(AuthMode, Credentials)> {
        let credentials = self.credentials.clone().overridden_by(mapping);
        let mode = self.auth_mode.unwrap_or(if credentials.auth_header.is_some() {
            AuthMode::StaticHeader
        } else {
            AuthMode::None
        });
        let missing = |what: &str| {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_OPTION_NAME_NOT_FOUND,
                format!(
                    "the foreign server's auth_mode needs {what}, which neither it nor a user mapping sets"
                ),
            )
            .with_hint("Add the option to CREATE USER MAPPING FOR CURRENT_USER SERVER ... OPTIONS (...).")
        };
        match mode {
            AuthMode::StaticHeader if credentials.auth_header.is_none() => {
                return Err(missing("auth_header"));
            }
            AuthMode::AccountLogin
                if credentials.login_user.is_none() || credentials.login_password.is_none() =>
            {
                return Err(missing("login_user and login_password"));
            }
            AuthMode::None if credentials != Credentials::default() => {
                return Err(conflict(
                    "a user mapping gives credentials but the foreign server's auth_mode is 'none'".into(),
                    "Set auth_mode on the server, or drop the credentials from the user mapping.",
                ));
            }
            _ => {}
        }
        Ok((mode, credentials))
    }
}

impl TableOptions {
    pub fn parse(options: &[(String, String)]) -> Result<Self> {
        check_names(Scope::Table, options)?;
        let mut parsed = TableOptions::default();
        for (name, value) in options {
            match name.as_str() {
                "namespace" | "table" if value.is_empty() => {
                    return Err(invalid_value(name, value, "a non-empty name"));
                }
                "namespace" => parsed.namespace = Some(value.clone()),
                "table" => parsed.table = Some(value.clone()),
                "table_type" => {
                    parsed.table_type = match value.to_ascii_lowercase().as_str() {
                        "shared" => TableType::Shared,
                        "user" => TableType::User,
                        "stream" => TableType::Stream,
                        _ => return Err(invalid_value(name, value, "shared, user or stream")),
                    }
                }
                "owns_remote" => parsed.owns_remote = parse_bool(name, value)?,
                _ => {} // tuning, below
            }
        }
        parsed.tuning = ScanTuning::parse_values(options)?;
        Ok(parsed)
    }
}

/// Validates the options of one catalog object (the FDW validator's work).
pub fn validate(scope: Option<Scope>, options: &[(String, String)]) -> Result<()> {
    match scope {
        Some(Scope::Server) => ServerOptions::parse(options).map(drop),
        Some(Scope::UserMapping) => Credentials::from_mapping(options).map(drop),
        Some(Scope::Table) => TableOptions::parse(options).map(drop),
        None if options.is_empty() => Ok(()),
        None => Err(KalamError::new(
            PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
            format!(
                "invalid option \"{}\": pg_kalam takes options only on foreign servers, user mappings and \
                 foreign tables",
                options[0].0
            ),
        )),
    }
}

/// Reads a PostgreSQL option list (a `List` of `DefElem`) into name/value pairs.
///
/// # Safety
/// `list` must be NIL or a valid `List` of `DefElem` nodes.
pub unsafe fn from_pg_list(list: *mut pg_sys::List) -> Vec<(String, String)> {
    let mut options = Vec::new();
    if list.is_null() {
        return options;
    }
    // SAFETY: the caller guarantees a List of DefElem; PG13+ lists are arrays of cells.
    unsafe {
        for i in 0..(*list).length as usize {
            let def = (*(*list).elements.add(i)).ptr_value as *mut pg_sys::DefElem;
            let name = std::ffi::CStr::from_ptr((*def).defname).to_string_lossy().into_owned();
            let value = std::ffi::CStr::from_ptr(pg_sys::defGetString(def)).to_string_lossy().into_owned();
            options.push((name, value));
        }
    }
    options
}
