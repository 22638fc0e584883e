//! The KalamDB statements DataFusion's SQL does not have: namespaces, typed tables, accounts,
//! `EXECUTE AS USER`, `SHOW TABLES`, `DESCRIBE TABLE`. Everything else is DataFusion SQL.
//!
//! Statements are tokenized with sqlparser's PostgreSQL dialect and recognized by their
//! leading words; pieces with standard syntax (column definitions, data types) are handed back
//! to sqlparser as slices of the original text (never re-printed from tokens).
//!
//! [`numbered_placeholders`] reads `?` parameters (what DBAPI, JDBC and ODBC clients write) as
//! `$1`, `$2`, ...: PostgreSQL's dialect otherwise reads `?` as the JSON key-exists operator.

use sqlparser::ast::{ColumnDef, ColumnOption, CreateTableOptions, Expr, SqlOption, Statement, Value};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::borrow::Cow;

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::session::Role;
use crate::storage::table::{AccessLevel, FlushPolicy, TableKind};

/// A namespace-qualified name; `namespace` is `None` when the statement left it out.
#[derive(Clone, Debug, PartialEq)]
pub struct TableName {
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug)]
pub enum AlterOp {
    AddColumn { column: ColumnDef, if_not_exists: bool },
    DropColumn { name: String, if_exists: bool },
    ModifyColumn { name: String, data_type: String },
}

/// Options of `CREATE TABLE ... WITH (...)`.
#[derive(Debug, Default)]
pub struct TableOptions {
    pub kind: Option<TableKind>,
    pub flush: Option<FlushPolicy>,
    pub ttl_seconds: Option<u64>,
    pub access: Option<AccessLevel>,
}

#[derive(Debug)]
pub enum Command {
    CreateNamespace {
        name: String,
        if_not_exists: bool,
    },
    DropNamespace {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    CreateTable {
        table: TableName,
        if_not_exists: bool,
        columns: Vec<ColumnDef>,
        /// The statement without the table kind and options, for DataFusion to type the columns.
        plain_sql: String,
        options: TableOptions,
    },
    DropTable {
        table: TableName,
        kind: Option<TableKind>,
        if_exists: bool,
    },
    AlterTable {
        table: TableName,
        op: AlterOp,
    },
    CreateUser {
        name: String,
        password: String,
        role: Role,
        if_not_exists: bool,
    },
    AlterUser {
        name: String,
        password: Option<String>,
        role: Option<Role>,
    },
    DropUser {
        name: String,
        if_exists: bool,
    },
    ExecuteAs {
        user: String,
        statement: String,
    },
    /// `SHOW TABLES` and `DESCRIBE TABLE`, answered by this read-only query.
    Query(String),
    /// Anything else: DataFusion SQL.
    Sql,
}

/// The significant tokens of a statement, with the text of everything.
struct Tokens<'a> {
    sql: &'a str,
    all: Vec<Token>,
    /// Byte offset in `sql` where each token of `all` starts.
    starts: Vec<usize>,
    /// Indexes into `all` of tokens that are not whitespace or comments.
    significant: Vec<usize>,
    at: usize,
}

/// The tokens of `sql` with the byte offset each starts at.
fn tokenize(sql: &str) -> Result<(Vec<Token>, Vec<usize>), String> {
    let tokens: Vec<TokenWithSpan> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| format!("SQL error: {e}"))?;
    let starts = byte_offsets(sql, tokens.iter().map(|t| t.span.start));
    Ok((tokens.into_iter().map(|t| t.token).collect(), starts))
}

/// Byte offsets of tokenizer locations (line and column, 1-based, counted in characters), which
/// come in increasing order.
fn byte_offsets(sql: &str, locations: impl Iterator<Item = Location>) -> Vec<usize> {
    let mut chars = sql.char_indices().peekable();
    let (mut line, mut column) = (1u64, 1u64);
    let mut offsets = Vec::new();
    for location in locations {
        while (line, column) < (location.line, location.column) {
            let Some((_, c)) = chars.next() else { break };
            if c == '\n' {
                (line, column) = (line + 1, 1);
            } else {
                column += 1;
            }
        }
        offsets.push(chars.peek().map(|(i, _)| *i).unwrap_or(sql.len()));
    }
    offsets
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Result<Self, String> {
        let (all, starts) = tokenize(sql)?;
        let significant = all
            .iter()
            .enumerate()
            .filter(|(_, t)| !matches!(t, Token::Whitespace(_)))
            .map(|(i, _)| i)
            .collect();
        Ok(Self { sql, all, starts, significant, at: 0 })
    }

    fn peek(&self) -> Option<&Token> {
        self.significant.get(self.at).map(|&i| &self.all[i])
    }

    fn peek_word(&self, offset: usize) -> Option<String> {
        match self.significant.get(self.at + offset).map(|&i| &self.all[i]) {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    /// Consumes the next token if it is the unquoted word `word`.
    fn eat(&mut self, word: &str) -> bool {
        if self.peek_word(0).as_deref() == Some(word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_all(&mut self, words: &[&str]) -> bool {
        if words.iter().enumerate().all(|(i, w)| self.peek_word(i).as_deref() == Some(*w)) {
            self.at += words.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, word: &str) -> Result<(), String> {
        if self.eat(word) { Ok(()) } else { Err(self.error(&format!("expected {word}"))) }
    }

    fn error(&self, what: &str) -> String {
        match self.peek() {
            Some(token) => format!("SQL error: {what}, found {token}"),
            None => format!("SQL error: {what}, found the end of the statement"),
        }
    }

    /// An identifier (quoted or not) or a string literal.
    fn name(&mut self) -> Result<String, String> {
        let name = match self.peek() {
            Some(Token::Word(w)) => w.value.clone(),
            Some(Token::SingleQuotedString(s)) => s.clone(),
            _ => return Err(self.error("expected a name")),
        };
        self.at += 1;
        Ok(name)
    }

    /// A password: a quoted string. Errors never show the token (it may be the password).
    fn password(&mut self) -> Result<String, String> {
        self.string()
            .map_err(|_| "SQL error: give the password as a quoted string: PASSWORD '...'".to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Token::SingleQuotedString(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            _ => Err(self.error("expected a quoted string")),
        }
    }

    fn table_name(&mut self) -> Result<TableName, String> {
        let first = self.name()?;
        if self.peek() == Some(&Token::Period) {
            self.at += 1;
            Ok(TableName { namespace: Some(first), name: self.name()? })
        } else {
            Ok(TableName { namespace: None, name: first })
        }
    }

    /// The SQL text of the tokens from the current one to the end, or to `end` (exclusive).
    fn text_from_here(&self, end: Option<usize>) -> String {
        let offset = |token: Option<usize>| token.map(|i| self.starts[i]).unwrap_or(self.sql.len());
        let start = offset(self.significant.get(self.at).copied());
        let end = offset(end.map(|e| self.significant[e]));
        self.sql[start..end].to_string()
    }

    /// True if only an optional `;` is left.
    fn at_end(&mut self) -> bool {
        while self.peek() == Some(&Token::SemiColon) {
            self.at += 1;
        }
        self.peek().is_none()
    }

    fn finish(&mut self) -> Result<(), String> {
        if self.at_end() { Ok(()) } else { Err(self.error("expected the end of the statement")) }
    }
}

/// Recognizes a KalamDB statement; [`Command::Sql`] for everything else.
pub fn parse(sql: &str) -> Result<Command, String> {
    let mut t = Tokens::new(sql)?;
    let command = if t.eat("CREATE") {
        if t.eat("NAMESPACE") || t.eat("SCHEMA") {
            let if_not_exists = t.eat_all(&["IF", "NOT", "EXISTS"]);
            Command::CreateNamespace { name: t.name()?, if_not_exists }
        } else if t.peek_word(0).as_deref() == Some("USER") && t.peek_word(1).as_deref() != Some("TABLE") {
            t.at += 1;
            let if_not_exists = t.eat_all(&["IF", "NOT", "EXISTS"]);
            let name = t.name()?;
            t.expect("WITH")?;
            t.expect("PASSWORD")?;
            let password = t.password()?;
            let role = if t.eat("ROLE") { parse_role(&t.name()?)? } else { Role::User };
            Command::CreateUser { name, password, role, if_not_exists }
        } else {
            let kind =
                ["USER", "SHARED", "STREAM"].iter().find(|k| t.eat(k)).and_then(|k| TableKind::parse(k));
            if t.peek_word(0).as_deref() != Some("TABLE") {
                return Ok(Command::Sql);
            }
            return create_table(&format!("CREATE {}", t.text_from_here(None)), kind);
        }
    } else if t.eat("DROP") {
        if t.eat("NAMESPACE") || t.eat("SCHEMA") {
            let if_exists = t.eat_all(&["IF", "EXISTS"]);
            let name = t.name()?;
            let cascade = t.eat("CASCADE");
            if !cascade {
                t.eat("RESTRICT");
            }
            Command::DropNamespace { name, if_exists, cascade }
        } else if t.peek_word(0).as_deref() == Some("USER") && t.peek_word(1).as_deref() != Some("TABLE") {
            t.at += 1;
            let if_exists = t.eat_all(&["IF", "EXISTS"]);
            Command::DropUser { name: t.name()?, if_exists }
        } else {
            let kind =
                ["USER", "SHARED", "STREAM"].iter().find(|k| t.eat(k)).and_then(|k| TableKind::parse(k));
            if !t.eat("TABLE") {
                return Ok(Command::Sql);
            }
            let if_exists = t.eat_all(&["IF", "EXISTS"]);
            Command::DropTable { table: t.table_name()?, kind, if_exists }
        }
    } else if t.eat_all(&["ALTER", "USER"]) {
        let name = t.name()?;
        let (mut password, mut role) = (None, None);
        while t.eat("SET") || t.eat("WITH") {
            if t.eat("PASSWORD") {
                password = Some(t.password()?);
            } else if t.eat("ROLE") {
                role = Some(parse_role(&t.name()?)?);
            } else {
                return Err(t.error("expected PASSWORD or ROLE"));
            }
        }
        if password.is_none() && role.is_none() {
            return Err(t.error("expected SET PASSWORD 'p' or SET ROLE r"));
        }
        Command::AlterUser { name, password, role }
    } else if t.eat_all(&["ALTER", "TABLE"]) {
        let table = t.table_name()?;
        Command::AlterTable { table, op: alter_op(&mut t)? }
    } else if t.eat_all(&["SHOW", "TABLES"]) {
        let namespace = if t.eat("IN") || t.eat("FROM") { Some(t.name()?) } else { None };
        let filter =
            namespace.map(|ns| format!(" WHERE namespace_id = {}", quote_literal(&ns))).unwrap_or_default();
        Command::Query(format!(
            "SELECT namespace_id, table_name, table_type, created_at FROM system.tables{filter} \
             ORDER BY namespace_id, table_name"
        ))
    } else if t.eat_all(&["SHOW", "NAMESPACES"]) {
        Command::Query(
            "SELECT namespace_id, table_count, created_at FROM system.namespaces ORDER BY namespace_id"
                .into(),
        )
    } else if t.eat("DESCRIBE") || t.eat("DESC") {
        t.eat("TABLE");
        let table = t.table_name()?;
        let namespace = table.namespace.unwrap_or_else(|| crate::engine::DEFAULT_NAMESPACE.to_string());
        Command::Query(format!(
            "SELECT column_name, data_type, is_nullable, column_default, ordinal_position, is_primary_key \
             FROM system.columns WHERE namespace_id = {} AND table_name = {} ORDER BY ordinal_position",
            quote_literal(&namespace),
            quote_literal(&table.name)
        ))
    } else if t.eat_all(&["EXECUTE", "AS", "USER"]) {
        let user = t.name()?;
        if t.peek() != Some(&Token::LParen) {
            return Err(t.error("expected ( statement ) after EXECUTE AS USER 'name'"));
        }
        t.at += 1;
        let mut end = t.significant.len();
        while end > t.at && t.all[t.significant[end - 1]] == Token::SemiColon {
            end -= 1;
        }
        if end <= t.at || t.all[t.significant[end - 1]] != Token::RParen {
            return Err("SQL error: EXECUTE AS USER 'name' (statement) needs a closing parenthesis".into());
        }
        let statement = t.text_from_here(Some(end - 1));
        return Ok(Command::ExecuteAs { user, statement });
    } else {
        return Ok(Command::Sql);
    };
    t.finish()?;
    Ok(command)
}

/// Reads each `?` that stands where a value goes as the next positional parameter `$1`, `$2`,
/// ...; a `?` between two operands (`payload ? 'kind'`) stays the JSON key-exists operator.
/// Statements without such a `?` are returned as they are. Mixing `?` with `$n` is refused.
pub fn numbered_placeholders(sql: &str) -> Result<Cow<'_, str>, String> {
    if !sql.contains('?') {
        return Ok(Cow::Borrowed(sql));
    }
    let (tokens, starts) = tokenize(sql)?;
    let significant: Vec<usize> =
        (0..tokens.len()).filter(|&i| !matches!(tokens[i], Token::Whitespace(_))).collect();
    let mut positions = Vec::new();
    // Whether the token before is a `?` read as a parameter (a value, so an operand ends there).
    let mut after_parameter = false;
    for (k, &i) in significant.iter().enumerate() {
        let before_ends_operand =
            after_parameter || k.checked_sub(1).is_some_and(|p| ends_operand(&tokens[significant[p]]));
        let parameter = match &tokens[i] {
            Token::Question => {
                let after = significant.get(k + 1).map(|&n| &tokens[n]);
                !(before_ends_operand && after.is_some_and(starts_operand))
            }
            // `?||`, `?-`, `?&`, ... are one token; where a value goes, the `?` is a parameter
            // and the rest an operator (`LIKE ?||'%'`).
            token if starts_with_question_mark(token) => !before_ends_operand,
            _ => false,
        };
        if parameter {
            positions.push(starts[i]);
        }
        after_parameter = parameter;
    }
    if positions.is_empty() {
        return Ok(Cow::Borrowed(sql));
    }
    if tokens.iter().any(|t| matches!(t, Token::Placeholder(p) if p.starts_with('$'))) {
        return Err("SQL error: use either ? or $1, $2, ... for the parameters of one statement".into());
    }
    let mut text = String::with_capacity(sql.len() + positions.len() * 2);
    let mut copied = 0;
    for (n, &at) in positions.iter().enumerate() {
        text.push_str(&sql[copied..at]);
        text.push_str(&format!("${}", n + 1));
        copied = at + 1;
    }
    text.push_str(&sql[copied..]);
    Ok(Cow::Owned(text))
}

/// Words after which an expression starts (so a `?` there is a value).
const EXPRESSION_KEYWORDS: &[Keyword] = &[
    Keyword::FROM,
    Keyword::FOR,
    Keyword::PLACING,
    Keyword::ESCAPE,
    Keyword::LEADING,
    Keyword::TRAILING,
    Keyword::BOTH,
    Keyword::SELECT,
    Keyword::WHERE,
    Keyword::AND,
    Keyword::OR,
    Keyword::NOT,
    Keyword::VALUES,
    Keyword::SET,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::WHEN,
    Keyword::CASE,
    Keyword::ON,
    Keyword::HAVING,
    Keyword::BY,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::IN,
    Keyword::IS,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::BETWEEN,
    Keyword::RETURNING,
    Keyword::DISTINCT,
    Keyword::ALL,
    Keyword::ANY,
    Keyword::SOME,
    Keyword::ARRAY,
    Keyword::FETCH,
    Keyword::DEFAULT,
];

/// Words before which an expression has ended (so a `?` before them is a value).
const CLAUSE_KEYWORDS: &[Keyword] = &[
    Keyword::FOR,
    Keyword::FETCH,
    Keyword::PLACING,
    Keyword::ESCAPE,
    Keyword::AND,
    Keyword::OR,
    Keyword::FROM,
    Keyword::AS,
    Keyword::IS,
    Keyword::OFFSET,
    Keyword::LIMIT,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::END,
    Keyword::WHEN,
    Keyword::ORDER,
    Keyword::GROUP,
    Keyword::UNION,
    Keyword::EXCEPT,
    Keyword::INTERSECT,
    Keyword::BETWEEN,
    Keyword::IN,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::NOT,
    Keyword::COLLATE,
    Keyword::WHERE,
    Keyword::HAVING,
    Keyword::ON,
    Keyword::USING,
    Keyword::JOIN,
    Keyword::ASC,
    Keyword::DESC,
    Keyword::NULLS,
    Keyword::RETURNING,
    Keyword::ROWS,
    Keyword::ROW,
    Keyword::WINDOW,
];

fn ends_operand(token: &Token) -> bool {
    match token {
        Token::Word(w) => w.quote_style.is_some() || !EXPRESSION_KEYWORDS.contains(&w.keyword),
        Token::RParen | Token::RBracket | Token::Number(..) | Token::Placeholder(_) => true,
        token => is_string(token),
    }
}

fn starts_operand(token: &Token) -> bool {
    match token {
        Token::Word(w) => w.quote_style.is_some() || !CLAUSE_KEYWORDS.contains(&w.keyword),
        Token::LParen | Token::Number(..) | Token::Placeholder(_) | Token::Question => true,
        token => is_string(token),
    }
}

fn starts_with_question_mark(token: &Token) -> bool {
    matches!(
        token,
        Token::QuestionAnd
            | Token::QuestionPipe
            | Token::QuestionMarkDash
            | Token::QuestionMarkSharp
            | Token::QuestionMarkDashVerticalBar
            | Token::QuestionMarkDoubleVerticalBar
    )
}

fn is_string(token: &Token) -> bool {
    matches!(
        token,
        Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
    )
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text}: use user, service, dba or system"))
}

pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

pub fn quote_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn alter_op(t: &mut Tokens) -> Result<AlterOp, String> {
    if t.eat("ADD") {
        t.eat("COLUMN");
        let if_not_exists = t.eat_all(&["IF", "NOT", "EXISTS"]);
        let text = t.text_from_here(None);
        let mut parser =
            Parser::new(&PostgreSqlDialect {}).try_with_sql(&text).map_err(|e| format!("SQL error: {e}"))?;
        let column = parser.parse_column_def().map_err(|e| format!("SQL error: {e}"))?;
        t.at = t.significant.len();
        return Ok(AlterOp::AddColumn { column, if_not_exists });
    }
    if t.eat("DROP") {
        t.eat("COLUMN");
        let if_exists = t.eat_all(&["IF", "EXISTS"]);
        return Ok(AlterOp::DropColumn { name: t.name()?, if_exists });
    }
    let name = if t.eat("MODIFY") {
        t.eat("COLUMN");
        t.name()?
    } else if t.eat_all(&["ALTER", "COLUMN"]) {
        let name = t.name()?;
        t.eat_all(&["SET", "DATA"]);
        t.expect("TYPE")?;
        name
    } else {
        return Err(t.error("expected ADD COLUMN, DROP COLUMN or MODIFY COLUMN"));
    };
    let text = t.text_from_here(None);
    let mut parser =
        Parser::new(&PostgreSqlDialect {}).try_with_sql(&text).map_err(|e| format!("SQL error: {e}"))?;
    let data_type = parser.parse_data_type().map_err(|e| format!("SQL error: {e}"))?;
    t.at = t.significant.len();
    Ok(AlterOp::ModifyColumn { name, data_type: data_type.to_string() })
}

/// `CREATE TABLE ...` (kind keyword already removed) with KalamDB options.
fn create_table(sql: &str, kind: Option<TableKind>) -> Result<Command, String> {
    let statement = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statement())
        .map_err(|e| format!("SQL error: {e}"))?;
    let Statement::CreateTable(mut create) = statement else {
        return Err("SQL error: expected CREATE TABLE".into());
    };
    if create.query.is_some() {
        return Err(
            "CREATE TABLE ... AS SELECT is not supported: create the table, then INSERT ... SELECT".into()
        );
    }
    let mut options = TableOptions { kind, ..TableOptions::default() };
    let sql_options = match std::mem::take(&mut create.table_options) {
        CreateTableOptions::None => Vec::new(),
        CreateTableOptions::With(o) | CreateTableOptions::Options(o) | CreateTableOptions::Plain(o) => o,
        CreateTableOptions::TableProperties(o) => o,
    };
    for option in sql_options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(format!("table option {option} is not supported: use WITH (KEY = 'value', ...)"));
        };
        apply_table_option(&mut options, &key.value, &value)?;
    }
    let table = match create.name.0.as_slice() {
        [name] => TableName { namespace: None, name: part_name(name)? },
        [namespace, name] => TableName { namespace: Some(part_name(namespace)?), name: part_name(name)? },
        _ => return Err(format!("table name {} has too many parts: write namespace.table", create.name)),
    };
    let if_not_exists = create.if_not_exists;
    create.if_not_exists = false;
    Ok(Command::CreateTable {
        table,
        if_not_exists,
        columns: create.columns.clone(),
        plain_sql: Statement::CreateTable(create).to_string(),
        options,
    })
}

fn part_name(part: &sqlparser::ast::ObjectNamePart) -> Result<String, String> {
    part.as_ident().map(|i| i.value.clone()).ok_or_else(|| format!("{part} is not a plain name"))
}

fn option_text(key: &str, value: &Expr) -> Result<String, String> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            Value::Number(n, _) => Ok(n.clone()),
            other => {
                Err(format!("table option {key} = {other} is not valid: give a quoted string or a number"))
            }
        },
        Expr::Identifier(ident) => Ok(ident.value.clone()),
        other => Err(format!("table option {key} = {other} is not valid: give a quoted string or a number")),
    }
}

fn apply_table_option(options: &mut TableOptions, key: &str, value: &Expr) -> Result<(), String> {
    let text = option_text(key, value)?;
    match key.to_ascii_uppercase().as_str() {
        "TYPE" => {
            let kind = TableKind::parse(&text)
                .ok_or_else(|| format!("TYPE '{text}' is not valid: use 'USER', 'SHARED' or 'STREAM'"))?;
            if options.kind.is_some_and(|k| k != kind) {
                return Err(format!("TYPE '{text}' contradicts the table kind given before TABLE"));
            }
            options.kind = Some(kind);
        }
        "FLUSH_POLICY" => options.flush = Some(FlushPolicy::parse(&text)?),
        "TTL_SECONDS" => {
            options.ttl_seconds = Some(text.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                format!("TTL_SECONDS '{text}' is not valid: give a positive number of seconds")
            })?)
        }
        "ACCESS_LEVEL" => {
            options.access = Some(match text.to_ascii_lowercase().as_str() {
                "public" => AccessLevel::Public,
                "private" => AccessLevel::Private,
                _ => return Err(format!("ACCESS_LEVEL '{text}' is not valid: use 'public' or 'private'")),
            })
        }
        other => {
            return Err(format!(
                "unknown table option {other}: valid options are TYPE, FLUSH_POLICY, TTL_SECONDS, ACCESS_LEVEL"
            ));
        }
    }
    Ok(())
}

/// The SQL text of a column's DEFAULT, if it has one.
pub fn column_default(column: &ColumnDef) -> Option<String> {
    column.options.iter().find_map(|o| match &o.option {
        ColumnOption::Default(expr) => Some(expr.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: a `?` where a value goes is the next positional parameter; a `?` between operands is
    // the JSON operator; string contents, comments and `?|` are untouched.
    #[test]
    fn question_marks_as_parameters() {
        let cases = [
            ("INSERT INTO t VALUES (?, ?)", "INSERT INTO t VALUES ($1, $2)"),
            (
                "SELECT * FROM t WHERE a = ? AND payload ? 'kind'",
                "SELECT * FROM t WHERE a = $1 AND payload ? 'kind'",
            ),
            ("SELECT payload ? ? FROM t", "SELECT payload ? $1 FROM t"),
            ("SELECT ? AS x, ?", "SELECT $1 AS x, $2"),
            ("SELECT * FROM t LIMIT ? OFFSET ?", "SELECT * FROM t LIMIT $1 OFFSET $2"),
            ("SELECT 'what?' FROM t -- why?\n WHERE x = ?", "SELECT 'what?' FROM t -- why?\n WHERE x = $1"),
            (
                "SELECT * FROM t WHERE \"value\" ? 'k' AND b IN (?, ?)",
                "SELECT * FROM t WHERE \"value\" ? 'k' AND b IN ($1, $2)",
            ),
            ("SELECT p ?| ARRAY['a'] FROM t WHERE x = ?", "SELECT p ?| ARRAY['a'] FROM t WHERE x = $1"),
            ("UPDATE t SET a = ?, b = ? WHERE id = ?", "UPDATE t SET a = $1, b = $2 WHERE id = $3"),
            ("SELECT 'né' || ? FROM t", "SELECT 'né' || $1 FROM t"),
            ("SELECT payload ? 'kind' FROM t", "SELECT payload ? 'kind' FROM t"),
            ("SELECT SUBSTRING(name FROM ? FOR ?) FROM t", "SELECT SUBSTRING(name FROM $1 FOR $2) FROM t"),
            ("SELECT overlay(s PLACING ? FROM ? FOR ?)", "SELECT overlay(s PLACING $1 FROM $2 FOR $3)"),
            (
                "SELECT * FROM t WHERE a IS DISTINCT FROM ? FETCH FIRST 1 ROWS ONLY",
                "SELECT * FROM t WHERE a IS DISTINCT FROM $1 FETCH FIRST 1 ROWS ONLY",
            ),
            ("SELECT * FROM t WHERE name LIKE ?||'%'", "SELECT * FROM t WHERE name LIKE $1||'%'"),
            ("SELECT ?-1, ?&3", "SELECT $1-1, $2&3"),
            ("SELECT ? ? 'k'", "SELECT $1 ? 'k'"),
            (
                "SELECT p ?& ARRAY['a'], p ?| ARRAY['b'] FROM t",
                "SELECT p ?& ARRAY['a'], p ?| ARRAY['b'] FROM t",
            ),
            ("SELECT 1", "SELECT 1"),
        ];
        for (sql, expected) in cases {
            assert_eq!(numbered_placeholders(sql).unwrap(), expected, "{sql}");
        }
        assert!(numbered_placeholders("SELECT $1, ?").unwrap_err().contains("either ? or $1"));
    }

    // Goal: a statement inside EXECUTE AS USER is the original text, quotes and all.
    #[test]
    fn execute_as_keeps_the_text() {
        match parse("EXECUTE AS USER 'bob' (INSERT INTO t VALUES ('it''s', E'a\\nb'))").unwrap() {
            Command::ExecuteAs { statement, .. } => {
                assert_eq!(statement, "INSERT INTO t VALUES ('it''s', E'a\\nb')")
            }
            other => panic!("{other:?}"),
        }
    }

    // Goal: each KalamDB statement is recognized with its parts; other SQL is left to DataFusion.
    #[test]
    fn recognizes_kalamdb_statements() {
        assert!(matches!(parse("CREATE NAMESPACE IF NOT EXISTS app").unwrap(),
            Command::CreateNamespace { name, if_not_exists: true } if name == "app"));
        assert!(matches!(
            parse("drop namespace app cascade;").unwrap(),
            Command::DropNamespace { cascade: true, if_exists: false, .. }
        ));
        match parse("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), v TEXT) WITH (FLUSH_POLICY = 'rows:10,interval:5')").unwrap() {
            Command::CreateTable { table, options, columns, plain_sql, .. } => {
                assert_eq!(table, TableName { namespace: Some("app".into()), name: "t".into() });
                assert_eq!(options.kind, Some(TableKind::User));
                assert_eq!(options.flush, Some(FlushPolicy { rows: 10, interval_secs: 5 }));
                assert_eq!(columns.len(), 2);
                assert_eq!(column_default(&columns[0]).as_deref(), Some("SNOWFLAKE_ID()"));
                assert!(!plain_sql.contains("WITH"), "{plain_sql}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("CREATE USER 'alice' WITH PASSWORD 'pw' ROLE dba").unwrap(),
            Command::CreateUser { role: Role::Dba, .. }
        ));
        match parse("EXECUTE AS USER 'bob' (SELECT * FROM t WHERE s = 'x)');").unwrap() {
            Command::ExecuteAs { user, statement } => {
                assert_eq!(user, "bob");
                assert_eq!(statement, "SELECT * FROM t WHERE s = 'x)'");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("ALTER TABLE app.t MODIFY COLUMN v VARCHAR").unwrap(),
            Command::AlterTable { op: AlterOp::ModifyColumn { .. }, .. }
        ));
        assert!(matches!(parse("SELECT 1").unwrap(), Command::Sql));
        assert!(matches!(parse("CREATE VIEW v AS SELECT 1").unwrap(), Command::Sql));
        assert!(
            parse("CREATE TABLE t (a INT) WITH (COLOR = 'red')")
                .unwrap_err()
                .contains("unknown table option COLOR")
        );
        assert!(
            parse("CREATE TABLE t (a INT) WITH (FLUSH_POLICY = 'rows:x')")
                .unwrap_err()
                .contains("FLUSH_POLICY")
        );
    }
}
