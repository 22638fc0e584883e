//! JSON as PostgreSQL's `json` and `jsonb` types see it, so that pg_kalam can run the JSON
//! operators on the server and get exactly PostgreSQL's answer.
//!
//! A document is parsed once into a tree that keeps, for every value, its original text (what
//! `json` returns) and from which jsonb's canonical text is printed (what `jsonb` returns):
//! object keys sorted shorter first, then bytewise, the last of duplicate keys kept, `", "` and
//! `": "` between items, numbers as `numeric` prints them (`1.50e1` is `15.0`), strings escaped
//! as PostgreSQL escapes them. The functions are those of PostgreSQL's operators:
//!
//! | function | PostgreSQL |
//! |---|---|
//! | `pg_json_field(doc, key, jsonb)` / `pg_json_field_text` | `doc -> 'key'` / `doc ->> 'key'` |
//! | `pg_json_element(doc, index, jsonb)` / `pg_json_element_text` | `doc -> 2` / `doc ->> -1` |
//! | `pg_json_path(doc, path, jsonb)` / `pg_json_path_text` | `doc #> '{a,0}'` / `doc #>> '{a,0}'` |
//! | `pg_jsonb_exists(doc, key)` | `doc ? 'key'` (a key of the top-level object, or a string of the top-level array) |
//! | `pg_jsonb_exists_any(doc, keys)` / `pg_jsonb_exists_all` | `doc ?| '{a,b}'` / `doc ?& '{a,b}'` |
//! | `pg_jsonb_contains(doc, other)` | `doc @> other` |
//!
//! `jsonb` is true for a jsonb column (canonical text, the last duplicate key), false for a
//! json column (original text, and also the last duplicate key, as PostgreSQL's json functions
//! read objects). A NULL argument or a missing key gives NULL, as in PostgreSQL; text that is
//! not JSON is an error, as reading it into PostgreSQL would be.

use std::borrow::Cow;
use std::cmp::Ordering;

/// A JSON value and the text it was parsed from.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub value: Value<'a>,
    /// The value's own text in the document (no surrounding whitespace).
    pub text: &'a str,
}

#[derive(Debug, Clone)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's text, valid JSON number syntax.
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    /// Members in document order, duplicates included.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

/// Deepest nesting accepted (PostgreSQL's own parser stops at its stack depth).
const DEPTH_MAX: usize = 6400;

/// Largest decimal exponent a jsonb number may have (numeric's limit).
const NUMERIC_WEIGHT_MAX: i64 = 131_072;
const NUMERIC_DSCALE_MAX: i64 = 16_383;

/// Parses a JSON document as PostgreSQL's json input does (RFC 8259).
pub fn parse(text: &str) -> Result<Node<'_>, String> {
    let mut parser = Parser { text, at: 0 };
    parser.skip_whitespace();
    let node = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at != text.len() {
        return Err(parser.error("the end of the document"));
    }
    Ok(node)
}

/// The text of the member `key` of a top-level object (the last of duplicates), found without
/// building the document's tree: keys are compared as they read unescaped, every value is
/// skipped, and the whole document is still checked to be JSON. `None` when the document is not
/// an object or has no such key.
pub fn find_field<'a>(text: &'a str, key: &str) -> Result<Option<&'a str>, String> {
    let mut found = None;
    scan_top(text, |item| {
        if let Item::Member(k, span) = item
            && k == key
        {
            found = Some(span);
        }
    })?;
    Ok(found)
}

/// The text of the element `index` of a top-level array (negative: from the end), found
/// without building the tree; a jsonb scalar document is an array of one.
pub fn find_element(text: &str, index: i64, jsonb: bool) -> Result<Option<&str>, String> {
    let mut elements = Vec::new();
    let mut scalar = None;
    scan_top(text, |item| match item {
        Item::Element(span) => elements.push(span),
        Item::Scalar(span) => scalar = Some(span),
        Item::Member(..) => {}
    })?;
    if let Some(span) = scalar {
        return Ok((jsonb && (index == 0 || index == -1)).then_some(span));
    }
    let index = if index < 0 { elements.len() as i64 + index } else { index };
    Ok(usize::try_from(index).ok().and_then(|i| elements.get(i).copied()))
}

/// `?` without building the tree: a key of the top-level object, a string element of the
/// top-level array, or the document itself when it is that string.
pub fn key_exists(text: &str, key: &str) -> Result<bool, String> {
    let mut exists = false;
    scan_top(text, |item| match item {
        Item::Member(k, _) => exists |= k == key,
        Item::Element(span) | Item::Scalar(span) => {
            if span.starts_with('"') && !exists {
                exists = matches!(parse(span), Ok(Node { value: Value::String(s), .. }) if s == key);
            }
        }
    })?;
    Ok(exists)
}

/// The inside of `span`, the text of one JSON string, when it has no escapes: then it is the
/// string's value as it is.
pub fn plain_string(span: &str) -> Option<&str> {
    let inside = span.strip_prefix('"')?.strip_suffix('"')?;
    (!inside.bytes().any(|b| b == b'\\' || b == b'"' || b < 0x20)).then_some(inside)
}

/// `@>` of a document's text: an object document is not built as a tree when `other` is an
/// object; each of `other`'s keys is looked up in it ([`find_field`]) and only the values found
/// are parsed. Anything else is parsed whole and compared by [`Node::contains`].
pub fn document_contains(text: &str, other: &Node<'_>) -> Result<bool, String> {
    let object = text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{');
    if !object || !matches!(other.value, Value::Object(_)) {
        return parse(text)?.contains(other);
    }
    let wanted = other.jsonb_members();
    if wanted.is_empty() {
        validate(text)?;
        return Ok(true);
    }
    for (key, value) in wanted {
        match find_field(text, key)? {
            Some(span) if parse(span)?.contains_at(value, false)? => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Checks that `text` is JSON without building its tree.
pub fn validate(text: &str) -> Result<(), String> {
    scan_top(text, |_| {})
}

/// What the top level of a document holds.
enum Item<'a, 'k> {
    /// A member of the top-level object: its key (unescaped) and its value's text.
    Member(&'k str, &'a str),
    /// An element of the top-level array.
    Element(&'a str),
    /// The document is a scalar.
    Scalar(&'a str),
}

fn scan_top<'a>(text: &'a str, mut visit: impl for<'k> FnMut(Item<'a, 'k>)) -> Result<(), String> {
    let mut parser = Parser { text, at: 0 };
    parser.skip_whitespace();
    match parser.peek() {
        Some(b'{') => {
            parser.at += 1;
            parser.skip_whitespace();
            if !parser.eat("}") {
                loop {
                    parser.skip_whitespace();
                    if parser.peek() != Some(b'"') {
                        return Err(parser.error("a string key"));
                    }
                    let key = parser.string()?;
                    parser.skip_whitespace();
                    if !parser.eat(":") {
                        return Err(parser.error("\":\""));
                    }
                    parser.skip_whitespace();
                    let start = parser.at;
                    parser.skip_value(1)?;
                    visit(Item::Member(&key, &text[start..parser.at]));
                    parser.skip_whitespace();
                    if parser.eat(",") {
                        continue;
                    }
                    if parser.eat("}") {
                        break;
                    }
                    return Err(parser.error("\",\" or \"}\""));
                }
            }
        }
        Some(b'[') => {
            parser.at += 1;
            parser.skip_whitespace();
            if !parser.eat("]") {
                loop {
                    parser.skip_whitespace();
                    let start = parser.at;
                    parser.skip_value(1)?;
                    visit(Item::Element(&text[start..parser.at]));
                    parser.skip_whitespace();
                    if parser.eat(",") {
                        continue;
                    }
                    if parser.eat("]") {
                        break;
                    }
                    return Err(parser.error("\",\" or \"]\""));
                }
            }
        }
        _ => {
            let start = parser.at;
            parser.skip_value(0)?;
            visit(Item::Scalar(&text[start..parser.at]));
        }
    }
    parser.skip_whitespace();
    if parser.at != text.len() {
        return Err(parser.error("the end of the document"));
    }
    Ok(())
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn error(&self, expected: &str) -> String {
        let found: String = self.text[self.at..].chars().take(20).collect();
        if found.is_empty() {
            format!("invalid JSON: expected {expected}, found the end of the text")
        } else {
            format!("invalid JSON: expected {expected} at \"{found}\"")
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        if self.text[self.at..].starts_with(literal) {
            self.at += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>, String> {
        if depth > DEPTH_MAX {
            return Err("invalid JSON: nested too deeply".into());
        }
        let start = self.at;
        let value = match self.peek() {
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                } else {
                    loop {
                        self.skip_whitespace();
                        if self.peek() != Some(b'"') {
                            return Err(self.error("a string key"));
                        }
                        let key = self.string()?;
                        self.skip_whitespace();
                        if !self.eat(":") {
                            return Err(self.error("\":\""));
                        }
                        self.skip_whitespace();
                        let value = self.value(depth + 1)?;
                        members.push((key, value));
                        self.skip_whitespace();
                        if self.eat(",") {
                            continue;
                        }
                        if self.eat("}") {
                            break;
                        }
                        return Err(self.error("\",\" or \"}\""));
                    }
                }
                Value::Object(members)
            }
            Some(b'[') => {
                self.at += 1;
                let mut elements = Vec::new();
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    self.at += 1;
                } else {
                    loop {
                        self.skip_whitespace();
                        elements.push(self.value(depth + 1)?);
                        self.skip_whitespace();
                        if self.eat(",") {
                            continue;
                        }
                        if self.eat("]") {
                            break;
                        }
                        return Err(self.error("\",\" or \"]\""));
                    }
                }
                Value::Array(elements)
            }
            Some(b'"') => Value::String(self.string()?),
            Some(b't') if self.eat("true") => Value::Bool(true),
            Some(b'f') if self.eat("false") => Value::Bool(false),
            Some(b'n') if self.eat("null") => Value::Null,
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            _ => return Err(self.error("a JSON value")),
        };
        Ok(Node { value, text: &self.text[start..self.at] })
    }

    /// Checks and passes over one value without keeping anything of it.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > DEPTH_MAX {
            return Err("invalid JSON: nested too deeply".into());
        }
        match self.peek() {
            Some(b'{') => {
                self.at += 1;
                self.skip_whitespace();
                if self.eat("}") {
                    return Ok(());
                }
                loop {
                    self.skip_whitespace();
                    if self.peek() != Some(b'"') {
                        return Err(self.error("a string key"));
                    }
                    self.skip_string()?;
                    self.skip_whitespace();
                    if !self.eat(":") {
                        return Err(self.error("\":\""));
                    }
                    self.skip_whitespace();
                    self.skip_value(depth + 1)?;
                    self.skip_whitespace();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("}") {
                        return Ok(());
                    }
                    return Err(self.error("\",\" or \"}\""));
                }
            }
            Some(b'[') => {
                self.at += 1;
                self.skip_whitespace();
                if self.eat("]") {
                    return Ok(());
                }
                loop {
                    self.skip_whitespace();
                    self.skip_value(depth + 1)?;
                    self.skip_whitespace();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("]") {
                        return Ok(());
                    }
                    return Err(self.error("\",\" or \"]\""));
                }
            }
            Some(b'"') => self.skip_string(),
            Some(b't') if self.eat("true") => Ok(()),
            Some(b'f') if self.eat("false") => Ok(()),
            Some(b'n') if self.eat("null") => Ok(()),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            _ => Err(self.error("a JSON value")),
        }
    }

    /// A string without escapes is only checked; one with escapes is read to check them.
    fn skip_string(&mut self) -> Result<(), String> {
        let rest = &self.bytes()[self.at + 1..];
        match rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20) {
            Some(end) if rest[end] == b'"' => {
                self.at += end + 2;
                Ok(())
            }
            _ => self.string().map(|_| ()),
        }
    }

    fn number(&mut self) -> Result<&'a str, String> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.at += 1;
            }
            p.at - from
        };
        self.eat("-");
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.error("a digit")),
        }
        if self.eat(".") && digits(self) == 0 {
            return Err(self.error("a digit after the decimal point"));
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if !self.eat("+") {
                self.eat("-");
            }
            if digits(self) == 0 {
                return Err(self.error("a digit in the exponent"));
            }
        }
        Ok(&self.text[start..self.at])
    }

    /// A string literal (at its opening quote), unescaped.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.at += 1;
        let start = self.at;
        let mut owned: Option<String> = None;
        loop {
            let Some(byte) = self.peek() else { return Err(self.error("a closing quote")) };
            match byte {
                b'"' => {
                    let plain = &self.text[start..self.at];
                    self.at += 1;
                    return Ok(match owned {
                        Some(s) => Cow::Owned(s),
                        None => Cow::Borrowed(plain),
                    });
                }
                0..=0x1f => return Err(self.error("an escaped control character")),
                b'\\' => {
                    let s = owned.get_or_insert_with(|| self.text[start..self.at].to_string());
                    self.at += 1;
                    let escaped = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            let high = self.hex4()?;
                            let c = if (0xd800..0xdc00).contains(&high) {
                                if !self.eat("\\u") {
                                    return Err(
                                        "invalid JSON: a high surrogate must be followed by a low one".into(),
                                    );
                                }
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err(
                                        "invalid JSON: a high surrogate must be followed by a low one".into(),
                                    );
                                }
                                char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00))
                            } else if (0xdc00..0xe000).contains(&high) {
                                return Err("invalid JSON: a low surrogate must follow a high one".into());
                            } else if high == 0 {
                                return Err("unsupported Unicode escape sequence: \\u0000 cannot be converted to text".into());
                            } else {
                                char::from_u32(high)
                            };
                            s.push(c.ok_or("invalid JSON: bad Unicode escape")?);
                            // hex4 left the parser after the digits.
                            continue;
                        }
                        _ => return Err(self.error("an escape sequence")),
                    };
                    s.push(escaped);
                    self.at += 1;
                }
                _ => {
                    let c = self.text[self.at..].chars().next().expect("not at the end");
                    if let Some(s) = owned.as_mut() {
                        s.push(c);
                    }
                    self.at += c.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.text.get(self.at..self.at + 4).ok_or_else(|| self.error("four hex digits"))?;
        let value = u32::from_str_radix(digits, 16).map_err(|_| self.error("four hex digits"))?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("four hex digits"));
        }
        self.at += 4;
        Ok(value)
    }
}

impl<'a> Node<'a> {
    /// The member `key` of an object (the last of duplicates), as PostgreSQL's operators read it.
    pub fn field(&self, key: &str) -> Option<&Node<'a>> {
        match &self.value {
            Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The element `index` of an array; a negative index counts from the end.
    pub fn element(&self, index: i64) -> Option<&Node<'a>> {
        match &self.value {
            Value::Array(elements) => {
                let index = if index < 0 { elements.len() as i64 + index } else { index };
                usize::try_from(index).ok().and_then(|i| elements.get(i))
            }
            _ => None,
        }
    }

    /// `->` of an index on a whole jsonb document: jsonb keeps a scalar document as an array of
    /// one, so index 0 (or -1) of a scalar is the scalar itself; json has no such rule.
    pub fn element_of_document(&self, index: i64, jsonb: bool) -> Option<&Node<'a>> {
        if jsonb && is_scalar(self) && (index == 0 || index == -1) {
            return Some(self);
        }
        self.element(index)
    }

    /// `#>`: each path step a key of an object or an index of an array (text that is an
    /// integer); a step that does not apply gives `None`.
    pub fn path(&self, steps: &[&str]) -> Option<&Node<'a>> {
        let mut node = self;
        for step in steps {
            node = match &node.value {
                Value::Object(_) => node.field(step)?,
                Value::Array(_) => node.element(step.trim().parse::<i64>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The value as `->` returns it: the original text (json) or the canonical text (jsonb).
    pub fn json_text(&self, jsonb: bool) -> Result<String, String> {
        if jsonb {
            let mut out = String::with_capacity(self.text.len());
            self.write_jsonb(&mut out)?;
            Ok(out)
        } else {
            Ok(self.text.to_string())
        }
    }

    /// The value as `->>` returns it: a string unescaped, JSON null as SQL NULL, anything else
    /// as `->` returns it.
    pub fn text_value(&self, jsonb: bool) -> Result<Option<String>, String> {
        match &self.value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.to_string())),
            _ => self.json_text(jsonb).map(Some),
        }
    }

    fn write_jsonb(&self, out: &mut String) -> Result<(), String> {
        match &self.value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(text) => out.push_str(&numeric_text(text)?),
            Value::String(s) => escape(s, out),
            Value::Array(elements) => {
                out.push('[');
                for (i, element) in elements.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    element.write_jsonb(out)?;
                }
                out.push(']');
            }
            Value::Object(_) => {
                out.push('{');
                for (i, (key, value)) in self.jsonb_members().into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    escape(key, out);
                    out.push_str(": ");
                    value.write_jsonb(out)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }

    /// An object's members as jsonb keeps them: one per key (the last), shorter keys first,
    /// then bytewise.
    fn jsonb_members(&self) -> Vec<(&str, &Node<'a>)> {
        let Value::Object(members) = &self.value else { return Vec::new() };
        let mut unique: Vec<(&str, &Node<'a>)> = Vec::with_capacity(members.len());
        for (key, value) in members.iter().rev() {
            if !unique.iter().any(|(k, _)| k == key) {
                unique.push((key, value));
            }
        }
        unique.sort_by(|(a, _), (b, _)| jsonb_key_order(a, b));
        unique
    }

    /// `@>`: PostgreSQL's jsonb containment. Objects contain objects whose every key they have
    /// with a containing value; arrays contain arrays whose every element some element of theirs
    /// contains (order and repetition ignored); a top-level array contains a scalar it holds;
    /// scalars contain equal scalars.
    pub fn contains(&self, other: &Node<'_>) -> Result<bool, String> {
        self.contains_at(other, true)
    }

    fn contains_at(&self, other: &Node<'_>, top: bool) -> Result<bool, String> {
        Ok(match (&self.value, &other.value) {
            (Value::Object(_), Value::Object(_)) => {
                let ours = self.jsonb_members();
                for (key, wanted) in other.jsonb_members() {
                    match ours.iter().find(|(k, _)| *k == key) {
                        Some((_, have)) if have.contains_at(wanted, false)? => {}
                        _ => return Ok(false),
                    }
                }
                true
            }
            (Value::Array(ours), Value::Array(wanted)) => {
                for element in wanted {
                    let mut found = false;
                    for have in ours {
                        // Inside arrays, a scalar matches a scalar and a container a container.
                        if is_scalar(have) == is_scalar(element) && have.contains_at(element, false)? {
                            found = true;
                            break;
                        }
                    }
                    if !found {
                        return Ok(false);
                    }
                }
                true
            }
            (Value::Array(ours), _) if top && is_scalar(other) => {
                for have in ours {
                    if is_scalar(have) && have.contains_at(other, false)? {
                        return Ok(true);
                    }
                }
                false
            }
            (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
            _ => scalars_equal(self, other)?,
        })
    }

    /// `?`: a key of the top-level object, or a string element of the top-level array.
    pub fn exists(&self, key: &str) -> bool {
        match &self.value {
            Value::Object(members) => members.iter().any(|(k, _)| k == key),
            Value::Array(elements) => {
                elements.iter().any(|e| matches!(&e.value, Value::String(s) if s == key))
            }
            Value::String(s) => s == key,
            _ => false,
        }
    }
}

fn is_scalar(node: &Node<'_>) -> bool {
    !matches!(node.value, Value::Array(_) | Value::Object(_))
}

/// jsonb's equality of scalars: numbers by value (`1.0` equals `1`), strings by content.
fn scalars_equal(a: &Node<'_>, b: &Node<'_>) -> Result<bool, String> {
    Ok(match (&a.value, &b.value) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        // Integers written without a fraction or an exponent are equal when their text is
        // (JSON has no leading zeros), except -0 and 0.
        (Value::Number(x), Value::Number(y)) if plain_integer(x) && plain_integer(y) => x == y,
        (Value::Number(x), Value::Number(y)) => Decimal::parse(x)?.equals(&Decimal::parse(y)?),
        _ => false,
    })
}

/// A JSON number that is an integer with no fraction or exponent, and not `-0`.
fn plain_integer(number: &str) -> bool {
    number != "-0" && !number.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// jsonb's order of object keys: shorter first, then bytewise.
fn jsonb_key_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// A string as PostgreSQL's `escape_json` writes it.
fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as an exact decimal: its digits without leading zeros, and the power of ten
/// of the last one.
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
    /// Digits after the decimal point PostgreSQL's numeric keeps (its display scale).
    scale: i64,
}

impl Decimal {
    fn parse(text: &str) -> Result<Decimal, String> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => {
                let exponent: i64 =
                    rest[at + 1..].parse().map_err(|_| "value overflows numeric format".to_string())?;
                (&rest[..at], exponent)
            }
            None => (rest, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let scale = (fraction.len() as i64 - exponent).max(0);
        let digits = format!("{whole}{fraction}").trim_start_matches('0').to_string();
        let exponent = exponent - fraction.len() as i64;
        if scale > NUMERIC_DSCALE_MAX || digits.len() as i64 + exponent > NUMERIC_WEIGHT_MAX {
            return Err("value overflows numeric format".into());
        }
        Ok(Decimal { negative: negative && !digits.is_empty(), digits, exponent, scale })
    }

    fn equals(&self, other: &Decimal) -> bool {
        let trim = |d: &Decimal| {
            let kept = d.digits.trim_end_matches('0');
            (d.negative, kept.to_string(), d.exponent + (d.digits.len() - kept.len()) as i64)
        };
        let (a, b) = (trim(self), trim(other));
        if a.1.is_empty() || b.1.is_empty() {
            return a.1.is_empty() && b.1.is_empty();
        }
        a == b
    }

    /// numeric_out's text: no exponent, exactly `scale` digits after the point.
    fn text(&self) -> String {
        // The value is digits × 10^exponent, and scale = max(0, -exponent): in units of
        // 10^-scale it is digits × 10^(exponent + scale), a whole number.
        let mut all = self.digits.clone();
        all.push_str(&"0".repeat((self.exponent + self.scale) as usize));
        let scale = self.scale as usize;
        let padded = format!("{all:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        let sign = if self.negative { "-" } else { "" };
        if scale == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") }
    }
}

fn numeric_text(text: &str) -> Result<String, String> {
    Ok(Decimal::parse(text)?.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: jsonb's canonical text, checked against PostgreSQL 15's own output of the same input.
    #[test]
    fn jsonb_text_is_postgres_text() {
        let cases = [
            (
                r#"{"b":1,"a":2,"aa":[1,2.50,-0,1e2,1.5e-3,0.0]}"#,
                r#"{"a": 2, "b": 1, "aa": [1, 2.50, 0, 100, 0.0015, 0.0]}"#,
            ),
            (r#"{"a":1,"a":2}"#, r#"{"a": 2}"#),
            (r#" [ ] "#, "[]"),
            (r#"{}"#, "{}"),
            (r#""a\"b\\c\/d\u00e9\n\u0001""#, r#""a\"b\\c/dé\n\u0001""#),
            (r#"{"key":{"nested":[true,false,null]}}"#, r#"{"key": {"nested": [true, false, null]}}"#),
            ("1E+2", "100"),
            ("-1.0e-2", "-0.010"),
            ("12.340", "12.340"),
            ("0", "0"),
            ("-0.0", "0.0"),
            (r#""\ud83d\ude00""#, "\"😀\""),
            (r#"{"ab":1,"b":2,"abc":3,"B":4}"#, r#"{"B": 4, "b": 2, "ab": 1, "abc": 3}"#),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input).unwrap().json_text(true).unwrap(), expected, "{input}");
        }
        // json keeps the original text.
        assert_eq!(
            parse(r#"{"a" : [1,  2.50]}"#).unwrap().field("a").unwrap().json_text(false).unwrap(),
            "[1,  2.50]"
        );
    }

    // Goal: the operators' lookups, as PostgreSQL defines them.
    #[test]
    fn operators_follow_postgres() {
        let doc = parse(r#"{"a":{"b":[10,"x",{"c":null}]},"s":"text","n":1.50,"a2":1,"a2":"last"}"#).unwrap();
        assert_eq!(doc.field("s").unwrap().text_value(true).unwrap().as_deref(), Some("text"));
        assert_eq!(doc.field("n").unwrap().text_value(true).unwrap().as_deref(), Some("1.50"));
        assert_eq!(doc.field("a2").unwrap().text_value(false).unwrap().as_deref(), Some("last"));
        assert!(doc.field("missing").is_none());
        assert_eq!(doc.path(&["a", "b", "-1", "c"]).unwrap().text_value(true).unwrap(), None);
        assert_eq!(doc.path(&["a", "b", "1"]).unwrap().text_value(true).unwrap().as_deref(), Some("x"));
        assert!(doc.path(&["a", "b", "x"]).is_none());
        assert!(doc.path(&["a", "b", "3"]).is_none());
        assert_eq!(doc.path(&[]).unwrap().text, doc.text);
        // jsonb keeps a scalar document as an array of one (PostgreSQL: '1.50'::jsonb -> 0 is 1.50).
        let scalar = parse("1.50").unwrap();
        assert_eq!(scalar.element_of_document(0, true).unwrap().text, "1.50");
        assert_eq!(scalar.element_of_document(-1, true).unwrap().text, "1.50");
        assert!(
            scalar.element_of_document(1, true).is_none() && scalar.element_of_document(0, false).is_none()
        );
        assert!(scalar.path(&["0"]).is_none());
        let array = parse(r#"["k", 1, {"k": 2}]"#).unwrap();
        assert!(array.exists("k") && !array.exists("1"));
        assert!(doc.exists("a2") && !doc.exists("b"));
        assert_eq!(array.element(-1).unwrap().json_text(true).unwrap(), r#"{"k": 2}"#);
        assert!(array.element(3).is_none() && array.element(-4).is_none());
    }

    // Goal: the lookups that skip the tree find what the tree finds, and still refuse what is
    // not JSON.
    #[test]
    fn lookups_without_the_tree_agree() {
        let doc = r#"{"a": {"b": 1}, "k\u0069nd": "x", "a": [1, 2], "s": "q\"uote", "e": "\u00e9"}"#;
        assert_eq!(find_field(doc, "a").unwrap(), Some("[1, 2]"));
        assert_eq!(find_field(doc, "kind").unwrap(), Some(r#""x""#));
        assert_eq!(find_field(doc, "missing").unwrap(), None);
        assert_eq!(find_field("[1]", "a").unwrap(), None);
        assert!(key_exists(doc, "s").unwrap() && !key_exists(doc, "x").unwrap());
        assert!(key_exists(r#"["x", "é"]"#, "é").unwrap() && key_exists(r#""x""#, "x").unwrap());
        assert_eq!(find_element(" [1, {\"a\":2} ] ", -1, true).unwrap(), Some("{\"a\":2}"));
        assert_eq!(find_element("1.50", 0, true).unwrap(), Some("1.50"));
        assert_eq!(find_element("1.50", 0, false).unwrap(), None);
        for bad in [r#"{"a": 1,}"#, r#"{"a": [1, 2}"#, r#"{"a": "\x"}"#, r#"{"a": 1} x"#, "[01]"] {
            assert!(find_field(bad, "a").is_err() && key_exists(bad, "a").is_err(), "{bad} must be refused");
        }
    }

    // Goal: containment as PostgreSQL's jsonb @> defines it.
    #[test]
    fn containment_follows_postgres() {
        let cases = [
            (r#"{"a":1,"b":{"c":[1,2,3]}}"#, r#"{"b":{"c":[3,1]}}"#, true),
            (r#"{"a":1}"#, r#"{"a":1.0}"#, true),
            (r#"{"a":1}"#, r#"{"a":"1"}"#, false),
            (r#"[1,2,[3,4]]"#, r#"[[3]]"#, true),
            (r#"[1,2,[3,4]]"#, r#"[3]"#, false),
            (r#"["foo","bar"]"#, r#""foo""#, true),
            (r#"{"a":["foo"]}"#, r#"{"a":"foo"}"#, false),
            (r#"[1,1]"#, r#"[1,1,1]"#, true),
            (r#"{}"#, r#"{}"#, true),
            (r#"[]"#, r#"[]"#, true),
            (r#"{"a":1}"#, r#"[]"#, false),
            (r#"1"#, r#"1"#, true),
            (r#"null"#, r#"null"#, true),
            (r#"{"a":null}"#, r#"{"a":null}"#, true),
            // The last of duplicate keys counts, in the document and in the other value.
            (r#"{"a":1, "a":2}"#, r#"{"a":2}"#, true),
            (r#"{"a":1, "a":2}"#, r#"{"a":1}"#, false),
            (r#"{"a":2}"#, r#"{"a":1, "a":2}"#, true),
            (r#" {"a":{"b":[1,{"c":2}]}, "d":3}"#, r#"{"a":{"b":[{"c":2}]}, "d":3.0}"#, true),
            (r#"{"a":1}"#, r#"{"b":1}"#, false),
            (r#"[{"a":1}]"#, r#"{"a":1}"#, false),
            (r#"{"a":-0}"#, r#"{"a":0}"#, true),
            (r#"{"a":10}"#, r#"{"a":1e1}"#, true),
            (r#"{"a":12}"#, r#"{"a":-12}"#, false),
            (r#"{"a":-0.0}"#, r#"{"a":-0}"#, true),
        ];
        for (doc, other, expected) in cases {
            let other = parse(other).unwrap();
            assert_eq!(parse(doc).unwrap().contains(&other).unwrap(), expected, "{doc} @> {other:?}");
            assert_eq!(document_contains(doc, &other).unwrap(), expected, "{doc} @> {other:?}, by lookups");
        }
        // A document that is not JSON is an error whatever the keys looked up.
        for bad in [r#"{"a":1,}"#, r#"{"b":1, "a": [}"#, r#"{"a":1} x"#] {
            assert!(document_contains(bad, &parse(r#"{"a":1}"#).unwrap()).is_err(), "{bad}");
            assert!(document_contains(bad, &parse("{}").unwrap()).is_err(), "{bad}");
        }
        assert_eq!(plain_string(r#""kind""#), Some("kind"));
        assert_eq!(plain_string(r#""k\u0069nd""#), None);
        assert_eq!(plain_string("12"), None);
    }

    // Goal: what PostgreSQL's json input refuses is an error here too.
    #[test]
    fn invalid_json_is_an_error() {
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "1.",
            ".5",
            "+1",
            "\"\u{1}\"",
            "nul",
            "{\"a\" 1}",
            "\"\\ud800\"",
            "\"\\u0000\"",
            "1 2",
            "'a'",
        ] {
            assert!(parse(bad).and_then(|n| n.json_text(true)).is_err(), "{bad:?} must be refused");
        }
    }
}
