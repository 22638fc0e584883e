//! Every option pg_kalam accepts, in one table ([`OPTIONS`]), and the typed views the rest of
//! the extension reads ([`ServerOptions`], [`TableOptions`]). The validator and the scan parse
//! through the same functions, so an option accepted at CREATE time is exactly what runs.

use std::time::Duration;

use pgrx::PgSqlErrorCode;
use pgrx::pg_sys;

use crate::error::{KalamError, Result};

/// Where an option may be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Server,
    Table,
}

impl Scope {
    /// The catalog a validator call is for, or `None` for catalogs that take no options
    /// (the wrapper itself, user mappings, columns).
    pub fn from_catalog(catalog: pg_sys::Oid) -> Option<Scope> {
        if catalog == pg_sys::ForeignServerRelationId {
            Some(Scope::Server)
        } else if catalog == pg_sys::ForeignTableRelationId {
            Some(Scope::Table)
        } else {
            None
        }
    }

    fn object(self) -> &'static str {
        match self {
            Scope::Server => "foreign server",
            Scope::Table => "foreign table",
        }
    }
}

/// One accepted option.
pub struct OptionDef {
    pub name: &'static str,
    pub scope: Scope,
    pub required: bool,
    pub help: &'static str,
}

/// The option table. Adding an option starts here.
pub const OPTIONS: &[OptionDef] = &[
    OptionDef {
        name: "host",
        scope: Scope::Server,
        required: true,
        help: "host name or IP of the KalamDB Flight SQL endpoint",
    },
    OptionDef {
        name: "port",
        scope: Scope::Server,
        required: true,
        help: "Flight SQL port, 1-65535 (KalamDB's default is 2910)",
    },
    OptionDef {
        name: "timeout",
        scope: Scope::Server,
        required: false,
        help: "connect and request timeout in milliseconds, 1-3600000 (default 30000)",
    },
    OptionDef {
        name: "namespace",
        scope: Scope::Table,
        required: false,
        help: "KalamDB namespace (default: the foreign table's schema)",
    },
    OptionDef {
        name: "table",
        scope: Scope::Table,
        required: false,
        help: "KalamDB table (default: the foreign table's name)",
    },
];

/// Default for `timeout`: long enough for a busy server, short enough that a dead one is noticed.
pub const TIMEOUT_MS_DEFAULT: u64 = 30_000;
const TIMEOUT_MS_MAX: u64 = 3_600_000;

/// Options of a foreign server, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
}

/// Options of a foreign table; unset names are left to the caller's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    pub namespace: Option<String>,
    pub table: Option<String>,
}

fn invalid_value(name: &str, value: &str, expected: &str) -> KalamError {
    KalamError::new(
        PgSqlErrorCode::ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE,
        format!("invalid value for option \"{name}\": \"{value}\""),
    )
    .with_hint(format!("\"{name}\" must be {expected}"))
}

/// Rejects names not in [`OPTIONS`] for `scope`, duplicates, and missing required options.
pub fn check_names(scope: Scope, options: &[(String, String)]) -> Result<()> {
    let valid: Vec<&str> = OPTIONS.iter().filter(|o| o.scope == scope).map(|o| o.name).collect();
    for (i, (name, _)) in options.iter().enumerate() {
        if !valid.contains(&name.as_str()) {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                format!("invalid option \"{name}\" for a pg_kalam {}", scope.object()),
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
    for def in OPTIONS.iter().filter(|o| o.scope == scope && o.required) {
        if !options.iter().any(|(name, _)| name == def.name) {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_OPTION_NAME_NOT_FOUND,
                format!("option \"{}\" is required for a pg_kalam {}", def.name, scope.object()),
            )
            .with_hint(format!("\"{}\": {}", def.name, def.help)));
        }
    }
    Ok(())
}

impl ServerOptions {
    pub fn parse(options: &[(String, String)]) -> Result<Self> {
        check_names(Scope::Server, options)?;
        let mut host = String::new();
        let mut port = 0u16;
        let mut timeout_ms = TIMEOUT_MS_DEFAULT;
        for (name, value) in options {
            match name.as_str() {
                "host" => {
                    if value.trim().is_empty() || value.chars().any(|c| c.is_whitespace() || c == '/') {
                        return Err(invalid_value(name, value, "a host name or IP address"));
                    }
                    host = value.clone();
                }
                "port" => {
                    port = value
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| invalid_value(name, value, "an integer from 1 to 65535"))?;
                }
                "timeout" => {
                    timeout_ms =
                        value.parse::<u64>().ok().filter(|ms| (1..=TIMEOUT_MS_MAX).contains(ms)).ok_or_else(
                            || invalid_value(name, value, "a number of milliseconds from 1 to 3600000"),
                        )?;
                }
                _ => unreachable!("check_names admits only server options"),
            }
        }
        Ok(Self { host, port, timeout: Duration::from_millis(timeout_ms) })
    }
}

impl TableOptions {
    pub fn parse(options: &[(String, String)]) -> Result<Self> {
        check_names(Scope::Table, options)?;
        let mut parsed = TableOptions::default();
        for (name, value) in options {
            if value.is_empty() {
                return Err(invalid_value(name, value, "a non-empty name"));
            }
            match name.as_str() {
                "namespace" => parsed.namespace = Some(value.clone()),
                "table" => parsed.table = Some(value.clone()),
                _ => unreachable!("check_names admits only table options"),
            }
        }
        Ok(parsed)
    }
}

/// Validates the options of one catalog object (the FDW validator's work).
pub fn validate(scope: Option<Scope>, options: &[(String, String)]) -> Result<()> {
    match scope {
        Some(Scope::Server) => ServerOptions::parse(options).map(drop),
        Some(Scope::Table) => TableOptions::parse(options).map(drop),
        None if options.is_empty() => Ok(()),
        None => Err(KalamError::new(
            PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
            format!(
                "invalid option \"{}\": pg_kalam takes options only on foreign servers and foreign tables",
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
