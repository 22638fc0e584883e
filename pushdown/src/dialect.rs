//! The SQL dialect of kalamdb-server, as seen by the unparser.

use datafusion_sql::unparser::dialect::Dialect;

/// kalamdb-server parses DataFusion SQL. Every identifier is double-quoted, whatever its
/// spelling: a column named `select`, `Id` or `a"b` reaches the server intact, and nothing in a
/// name can change the statement.
#[derive(Debug, Default, Clone, Copy)]
pub struct KalamDialect;

impl Dialect for KalamDialect {
    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('"')
    }
}
