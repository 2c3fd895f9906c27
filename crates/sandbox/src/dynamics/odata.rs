//! The OData query options the emulator understands, and how rows are rendered.
//!
//! `$filter` supports the subset ferry and common integrations use: `eq`, `ne`, `gt`, `ge`,
//! `lt`, `le`, `and`, `or`, parentheses, and
//! `Microsoft.Dynamics.CRM.In(PropertyName='…',PropertyValues=[…])`; date-time literals are
//! unquoted ISO 8601 (`modifiedon ge 2024-01-02T03:04:05Z`), as OData writes them. Anything
//! else is a 400, never a silently wrong answer. String comparison folds case, as Dataverse's
//! collation does. `$orderby` is the primary key, or `modifiedon` with the primary key breaking
//! ties (what an incremental read pages on).

use serde_json::{Map, Value as Json, json};

use super::error::ApiError;
use super::store::{Col, Kind, Row, Store, Table, Val, guid, parse_guid};

/// Dataverse's largest page, and the page size without `odata.maxpagesize`.
pub const MAX_PAGE_SIZE: usize = 5_000;
/// `@odata.count` never exceeds this.
pub const COUNT_CAP: usize = 5_000;

/// A literal in a filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// `'text'`.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// `null`.
    Null,
    /// An unquoted GUID.
    Guid(u128),
    /// An unquoted ISO-8601 date-time, in epoch milliseconds.
    DateTime(i64),
}

impl Lit {
    /// The literal's EDM type, as OData names it in errors.
    fn edm_type(&self) -> &'static str {
        match self {
            Lit::Str(_) => "Edm.String",
            Lit::Bool(_) => "Edm.Boolean",
            Lit::Num(n) if n.fract() == 0.0 => "Edm.Int32",
            Lit::Num(_) => "Edm.Decimal",
            Lit::Null => "<null>",
            Lit::Guid(_) => "Edm.Guid",
            Lit::DateTime(_) => "Edm.DateTimeOffset",
        }
    }
}

/// An ordering comparison in a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

impl Cmp {
    /// The operator kind, as OData names it in errors.
    fn kind(self) -> &'static str {
        match self {
            Cmp::Gt => "GreaterThan",
            Cmp::Ge => "GreaterThanOrEqual",
            Cmp::Lt => "LessThan",
            Cmp::Le => "LessThanOrEqual",
        }
    }

    /// Whether `ordering` (value against literal) satisfies the comparison.
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Greater, Less};
        match self {
            Cmp::Gt => ordering == Greater,
            Cmp::Ge => ordering != Less,
            Cmp::Lt => ordering == Less,
            Cmp::Le => ordering != Greater,
        }
    }
}

/// A parsed `$filter`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// All must hold.
    And(Vec<Expr>),
    /// Any must hold.
    Or(Vec<Expr>),
    /// `column eq literal`.
    Eq(String, Lit),
    /// `column ne literal`.
    Ne(String, Lit),
    /// `Microsoft.Dynamics.CRM.In(…)`.
    In(String, Vec<Lit>),
    /// `column gt|ge|lt|le literal`.
    Cmp(String, Cmp, Lit),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Comma,
    Equals,
    DateTime(i64),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, ApiError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '[' => {
                out.push(Tok::OpenBracket);
                i += 1;
            }
            ']' => {
                out.push(Tok::CloseBracket);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                out.push(Tok::Equals);
                i += 1;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ApiError::query("Unterminated string literal in $filter."));
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(text));
            }
            _ if c.is_ascii_digit() || c == '-' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '-' | '.' | ':' | '+'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if let Some(id) = parse_guid(&word) {
                    out.push(Tok::Ident(format!("guid:{id}")));
                } else if word.contains('T') && word.contains(':') {
                    // ODataLib's message for a date-time literal it cannot read.
                    let ms = super::records::parse_datetime(&word)
                        .filter(|_| has_zone(&word))
                        .ok_or_else(|| {
                            ApiError::query(format!(
                                "Unrecognized 'Edm.DateTimeOffset' literal '{word}' at '{start}' in '{s}'."
                            ))
                        })?;
                    out.push(Tok::DateTime(ms));
                } else {
                    let n = word
                        .parse::<f64>()
                        .map_err(|_| ApiError::query("Syntax error in $filter: bad number."))?;
                    out.push(Tok::Num(n));
                }
            }
            _ if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '_'
                        || chars[i] == '.'
                        || chars[i] == '-')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match parse_guid(&word) {
                    Some(id) => out.push(Tok::Ident(format!("guid:{id}"))),
                    None => out.push(Tok::Ident(word)),
                }
            }
            _ => {
                return Err(ApiError::query(format!(
                    "Syntax error at position {i} in $filter."
                )));
            }
        }
    }
    Ok(out)
}

/// Whether a date-time literal ends in a zone (`Z` or `±hh:mm`), which an
/// `Edm.DateTimeOffset` needs.
fn has_zone(word: &str) -> bool {
    let offset = word
        .len()
        .checked_sub(6)
        .and_then(|at| word.get(at..))
        .is_some_and(|t| (t.starts_with('+') || t.starts_with('-')) && t.get(3..4) == Some(":"));
    word.ends_with('Z') || offset
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect(&mut self, tok: Tok) -> Result<(), ApiError> {
        if self.next() == Some(tok) {
            Ok(())
        } else {
            Err(ApiError::query("Syntax error in $filter."))
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == word)
    }

    fn or(&mut self) -> Result<Expr, ApiError> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, ApiError> {
        let mut parts = vec![self.primary()?];
        while self.keyword("and") {
            self.at += 1;
            parts.push(self.primary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn literal(&mut self) -> Result<Lit, ApiError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::DateTime(ms)) => Ok(Lit::DateTime(ms)),
            Some(Tok::Ident(w)) => match w.as_str() {
                "true" => Ok(Lit::Bool(true)),
                "false" => Ok(Lit::Bool(false)),
                "null" => Ok(Lit::Null),
                _ => match w.strip_prefix("guid:").and_then(|n| n.parse::<u128>().ok()) {
                    Some(id) => Ok(Lit::Guid(id)),
                    None => Err(ApiError::query(
                        "The emulator supports only literals on the right of eq/ne in $filter.",
                    )),
                },
            },
            _ => Err(ApiError::query(
                "Syntax error in $filter: expected a literal.",
            )),
        }
    }

    fn primary(&mut self) -> Result<Expr, ApiError> {
        match self.next() {
            Some(Tok::Open) => {
                let e = self.or()?;
                self.expect(Tok::Close)?;
                Ok(e)
            }
            Some(Tok::Ident(w)) if w == "Microsoft.Dynamics.CRM.In" => {
                self.expect(Tok::Open)?;
                let mut property = None;
                let mut values = None;
                loop {
                    let Some(Tok::Ident(param)) = self.next() else {
                        return Err(ApiError::query(
                            "Syntax error in Microsoft.Dynamics.CRM.In.",
                        ));
                    };
                    self.expect(Tok::Equals)?;
                    match param.as_str() {
                        "PropertyName" => match self.next() {
                            Some(Tok::Str(s)) => property = Some(s),
                            _ => return Err(ApiError::query("PropertyName must be a string.")),
                        },
                        "PropertyValues" => {
                            self.expect(Tok::OpenBracket)?;
                            let mut list = Vec::new();
                            if self.peek() != Some(&Tok::CloseBracket) {
                                loop {
                                    list.push(self.literal()?);
                                    if self.peek() == Some(&Tok::Comma) {
                                        self.at += 1;
                                    } else {
                                        break;
                                    }
                                }
                            }
                            self.expect(Tok::CloseBracket)?;
                            values = Some(list);
                        }
                        _ => {
                            return Err(ApiError::query(
                                "Unknown parameter of Microsoft.Dynamics.CRM.In.",
                            ));
                        }
                    }
                    match self.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::Close) => break,
                        _ => {
                            return Err(ApiError::query(
                                "Syntax error in Microsoft.Dynamics.CRM.In.",
                            ));
                        }
                    }
                }
                match (property, values) {
                    (Some(p), Some(v)) => Ok(Expr::In(p, v)),
                    _ => Err(ApiError::query(
                        "Microsoft.Dynamics.CRM.In needs PropertyName and PropertyValues.",
                    )),
                }
            }
            Some(Tok::Ident(column)) => {
                let op = match self.next() {
                    Some(Tok::Ident(op)) => op,
                    _ => {
                        return Err(ApiError::query(
                            "Syntax error in $filter: expected an operator.",
                        ));
                    }
                };
                let lit = self.literal()?;
                match op.as_str() {
                    "eq" => Ok(Expr::Eq(column, lit)),
                    "ne" => Ok(Expr::Ne(column, lit)),
                    "gt" => Ok(Expr::Cmp(column, Cmp::Gt, lit)),
                    "ge" => Ok(Expr::Cmp(column, Cmp::Ge, lit)),
                    "lt" => Ok(Expr::Cmp(column, Cmp::Lt, lit)),
                    "le" => Ok(Expr::Cmp(column, Cmp::Le, lit)),
                    other => Err(ApiError::query(format!(
                        "The emulator does not implement the $filter operator '{other}' (only eq, ne, gt, ge, \
                         lt, le, and, or, Microsoft.Dynamics.CRM.In)."
                    ))),
                }
            }
            _ => Err(ApiError::query("Syntax error in $filter.")),
        }
    }
}

/// Parses a `$filter` and checks its columns exist on `table`.
pub fn parse_filter(store: &Store, table: Table, raw: &str) -> Result<Expr, ApiError> {
    let expr = parse_expr(raw)?;
    check_columns(store, table, &expr)?;
    Ok(expr)
}

/// Parses a `$filter` without checking its columns (the caller checks them against its table).
pub fn parse_expr(raw: &str) -> Result<Expr, ApiError> {
    let mut parser = Parser {
        toks: tokenize(raw)?,
        at: 0,
    };
    let expr = parser.or()?;
    if parser.at != parser.toks.len() {
        return Err(ApiError::query(
            "Syntax error in $filter: unexpected trailing input.",
        ));
    }
    Ok(expr)
}

fn check_columns(store: &Store, table: Table, expr: &Expr) -> Result<(), ApiError> {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => parts
            .iter()
            .try_for_each(|p| check_columns(store, table, p)),
        Expr::Eq(c, _) | Expr::Ne(c, _) | Expr::In(c, _) | Expr::Cmp(c, _, _) => {
            if is_property(store, table, c) {
                check_types(expr)
            } else {
                Err(no_property(table, c))
            }
        }
    }
}

/// Refuses a comparison of a system date-time column (`createdon`, `modifiedon`) with
/// anything but a date-time (or null), with ODataLib's message.
pub fn check_types(expr: &Expr) -> Result<(), ApiError> {
    let (kind, c, lit) = match expr {
        Expr::Eq(c, lit) => ("Equal", c, lit),
        Expr::Ne(c, lit) => ("NotEqual", c, lit),
        Expr::Cmp(c, op, lit) => (op.kind(), c, lit),
        _ => return Ok(()),
    };
    let system_time = c == "createdon" || c == "modifiedon";
    if system_time && !matches!(lit, Lit::DateTime(_) | Lit::Null) {
        return Err(ApiError::query(format!(
            "A binary operator with incompatible types was detected. Found operand types \
             'Edm.DateTimeOffset' and '{}' for operator kind '{kind}'.",
            lit.edm_type()
        )));
    }
    Ok(())
}

/// Whether a property's value satisfies an ordering comparison with a literal: numbers with
/// numbers, date-times with date-times (`exact_ms`, the stored instant, when the property is
/// a system time rendered to the second), text with text (ignoring case). Anything else, and
/// null, never does (SQL's unknown).
pub fn cmp_matches(value: &Json, exact_ms: Option<i64>, op: Cmp, lit: &Lit) -> bool {
    let ordering = match (value, lit) {
        (_, Lit::DateTime(t)) => exact_ms
            .or_else(|| value.as_str().and_then(super::records::parse_datetime))
            .map(|v| v.cmp(t)),
        (Json::Number(n), Lit::Num(l)) => n.as_f64().and_then(|v| v.partial_cmp(l)),
        (Json::String(s), Lit::Str(l)) => Some(s.to_lowercase().cmp(&l.to_lowercase())),
        _ => None,
    };
    ordering.is_some_and(|o| op.holds(o))
}

/// 400 for a property `table` does not have.
pub fn no_property(table: impl super::error::Entity, name: &str) -> ApiError {
    ApiError::query(format!(
        "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{}'.",
        table.logical()
    ))
}

/// Whether `name` is a readable property of `table` (columns, lookups as `_x_value`, system
/// columns).
pub fn is_property(store: &Store, table: Table, name: &str) -> bool {
    if name == table.id_column()
        || name == "createdon"
        || name == "modifiedon"
        || name == "versionnumber"
    {
        return true;
    }
    if table == Table::Contact && name == "fullname" {
        return true;
    }
    if let Some(lookup) = name
        .strip_prefix('_')
        .and_then(|n| n.strip_suffix("_value"))
    {
        return table
            .column(lookup)
            .is_some_and(|i| table.columns()[i].kind == Kind::Lookup);
    }
    match store.column(table, name) {
        Some((_, Col::Builtin(c))) => c.kind != Kind::Lookup,
        Some((_, Col::Custom(_))) => true,
        None => false,
    }
}

/// The value of property `name` of `row`, for filtering and rendering.
fn property(store: &Store, table: Table, row: &Row, name: &str) -> Json {
    if name == table.id_column() {
        return Json::String(guid(row.id));
    }
    match name {
        "createdon" => return Json::String(iso(row.created)),
        "modifiedon" => return Json::String(iso(row.modified)),
        "versionnumber" => return json!(row.version),
        "fullname" if table == Table::Contact => {
            let first = row.get(table, "firstname");
            let last = row.get(table, "lastname");
            let parts: Vec<&str> = [first, last]
                .into_iter()
                .flatten()
                .filter_map(|v| match v {
                    Val::Str(s) => Some(&**s),
                    _ => None,
                })
                .collect();
            return if parts.is_empty() {
                Json::Null
            } else {
                Json::String(parts.join(" "))
            };
        }
        _ => {}
    }
    let column = name
        .strip_prefix('_')
        .and_then(|n| n.strip_suffix("_value"))
        .unwrap_or(name);
    match store.value(table, row, column) {
        None => Json::Null,
        Some(Val::Str(s)) => Json::String(s.to_string()),
        Some(Val::Bool(b)) => Json::Bool(*b),
        Some(Val::Int(n)) => json!(n),
        Some(Val::Money(n)) => json!(n),
        Some(Val::Ref(id)) => Json::String(guid(*id)),
    }
}

/// Whether a property's value satisfies a literal (strings compared ignoring case).
pub fn lit_matches(value: &Json, lit: &Lit) -> bool {
    match (value, lit) {
        (Json::Null, Lit::Null) => true,
        (Json::Null, _) | (_, Lit::Null) => false,
        (Json::String(s), Lit::Str(l)) => s.to_lowercase() == l.to_lowercase(),
        (Json::String(s), Lit::Guid(id)) => parse_guid(s) == Some(*id),
        (Json::Bool(b), Lit::Bool(l)) => b == l,
        (Json::Number(n), Lit::Num(l)) => n.as_f64() == Some(*l),
        (Json::String(s), Lit::DateTime(t)) => super::records::parse_datetime(s) == Some(*t),
        _ => false,
    }
}

/// Whether `row` satisfies `expr`.
pub fn matches(store: &Store, table: Table, row: &Row, expr: &Expr) -> bool {
    match expr {
        Expr::And(parts) => parts.iter().all(|p| matches(store, table, row, p)),
        Expr::Or(parts) => parts.iter().any(|p| matches(store, table, row, p)),
        Expr::Eq(c, lit) => lit_matches(&property(store, table, row, c), lit),
        Expr::Ne(c, lit) => !lit_matches(&property(store, table, row, c), lit),
        Expr::In(c, lits) => {
            let v = property(store, table, row, c);
            lits.iter().any(|l| lit_matches(&v, l))
        }
        Expr::Cmp(c, op, lit) => {
            let exact = match c.as_str() {
                "createdon" => Some(row.created),
                "modifiedon" => Some(row.modified),
                _ => None,
            };
            cmp_matches(&property(store, table, row, c), exact, *op, lit)
        }
    }
}

/// The rows an index can answer `expr` with (an `eq`, `In` or `or` of them on the primary key
/// or the alternate-key column), so a read-back by key does not scan the table. `None` when
/// the filter needs a scan.
pub fn indexed_candidates(store: &Store, table: Table, expr: &Expr) -> Option<Vec<u128>> {
    let mut ids = Vec::new();
    fn collect(store: &Store, table: Table, expr: &Expr, ids: &mut Vec<u128>) -> bool {
        let lookup = |c: &str, lit: &Lit, ids: &mut Vec<u128>| -> bool {
            if c == table.id_column() {
                let id = match lit {
                    Lit::Guid(id) => Some(*id),
                    Lit::Str(s) => parse_guid(s),
                    _ => return false,
                };
                ids.extend(id.filter(|id| store.get(table, *id).is_some()));
                true
            } else if c == super::store::KEY_COLUMN {
                match lit {
                    Lit::Str(s) => {
                        ids.extend(store.id_by_key(table, s));
                        true
                    }
                    _ => false,
                }
            } else {
                false
            }
        };
        match expr {
            Expr::Eq(c, lit) => lookup(c, lit, ids),
            Expr::In(c, lits) => lits.iter().all(|l| lookup(c, l, ids)),
            Expr::Or(parts) => parts.iter().all(|p| collect(store, table, p, ids)),
            _ => false,
        }
    }
    if !collect(store, table, expr, &mut ids) {
        return None;
    }
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

/// Formats epoch milliseconds as Dataverse does (`2024-01-02T03:04:05Z`).
pub fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::timestamp::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `$select`: the listed properties, or every one.
pub fn parse_select(
    store: &Store,
    table: Table,
    raw: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        let mut all: Vec<String> = table
            .columns()
            .iter()
            .map(|c| match c.kind {
                Kind::Lookup => format!("_{}_value", c.name),
                _ => c.name.to_owned(),
            })
            .collect();
        // Without `$select` every column comes back, custom ones included.
        all.extend(store.customs(table).iter().map(|c| c.logical.clone()));
        all.extend(["createdon".to_owned(), "modifiedon".to_owned()]);
        return Ok(all);
    };
    raw.split(',')
        .map(|s| s.trim().to_owned())
        .map(|s| {
            if is_property(store, table, &s) {
                Ok(s)
            } else {
                Err(no_property(table, &s))
            }
        })
        .collect()
}

/// `$expand=parentcustomerid_account($select=…)` on contacts: the only navigation property the
/// emulator expands. Returns the expanded table's selected properties.
pub fn parse_expand(
    store: &Store,
    table: Table,
    raw: Option<&str>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let (nav, options) = match raw.split_once('(') {
        Some((nav, rest)) => (
            nav.trim(),
            Some(
                rest.strip_suffix(')')
                    .ok_or_else(|| ApiError::query("Syntax error in $expand."))?,
            ),
        ),
        None => (raw, None),
    };
    if table != Table::Contact || nav != "parentcustomerid_account" {
        return Err(ApiError::query(format!(
            "The emulator does not expand '{nav}' (only parentcustomerid_account on contacts)."
        )));
    }
    let select = match options {
        None => None,
        Some(opts) => {
            let mut select = None;
            for opt in opts.split(';') {
                match opt.trim().split_once('=') {
                    Some(("$select", cols)) => select = Some(cols),
                    _ => {
                        return Err(ApiError::query(
                            "The emulator supports only $select inside $expand.",
                        ));
                    }
                }
            }
            select
        }
    };
    parse_select(store, Table::Account, select).map(Some)
}

/// Renders `row` with the selected properties, the id, the ETag and any expansion.
pub fn render(
    store: &Store,
    table: Table,
    row: &Row,
    select: &[String],
    expand: Option<&[String]>,
) -> Json {
    let mut out = Map::new();
    out.insert(
        "@odata.etag".into(),
        Json::String(format!("W/\"{}\"", row.version)),
    );
    for name in select {
        out.insert(name.clone(), property(store, table, row, name));
    }
    out.insert(table.id_column().into(), Json::String(guid(row.id)));
    if let Some(account_select) = expand {
        let account = match row.get(table, "parentcustomerid") {
            Some(Val::Ref(id)) => store
                .get(Table::Account, *id)
                .map(|a| render(store, Table::Account, a, account_select, None)),
            _ => None,
        };
        out.insert(
            "parentcustomerid_account".into(),
            account.unwrap_or(Json::Null),
        );
    }
    Json::Object(out)
}

/// The order of a list's rows (`$orderby`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// By primary key, ascending: also the order without `$orderby`.
    Key,
    /// By `modifiedon` ascending, ties by primary key ascending (which Dataverse appends to
    /// page on, whether asked or not).
    Modified,
}

/// Parses `$orderby`: `<id> asc`, `modifiedon asc` or `modifiedon asc,<id> asc` (`asc` may be
/// left out). Any other order is a 400 naming what the emulator does.
pub fn parse_orderby(raw: Option<&str>, id_column: &str) -> Result<Order, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Order::Key);
    };
    let items: Vec<(&str, &str)> = raw
        .split(',')
        .map(|item| {
            let mut words = item.split_whitespace();
            let column = words.next().unwrap_or("");
            let direction = words.next().unwrap_or("asc");
            if words.next().is_some() {
                ("", "")
            } else {
                (column, direction)
            }
        })
        .collect();
    let ascending = items.iter().all(|(_, d)| d.eq_ignore_ascii_case("asc"));
    let columns: Vec<&str> = items.iter().map(|(c, _)| *c).collect();
    match columns.as_slice() {
        [c] if ascending && *c == id_column => Ok(Order::Key),
        ["modifiedon"] if ascending => Ok(Order::Modified),
        ["modifiedon", c] if ascending && *c == id_column => Ok(Order::Modified),
        _ => Err(ApiError::query(format!(
            "The emulator orders only by the primary key ascending ($orderby={id_column} asc, also the order \
             without $orderby) or by modifiedon ascending ($orderby=modifiedon asc,{id_column} asc)."
        ))),
    }
}

/// The paging cookie in a `$skiptoken`, in Dataverse's shape: the page number and the last
/// primary key of the page just returned, and for a page ordered by `modifiedon` the last and
/// first `modifiedon` too (a FetchXML paging cookie holds every order column's values).
pub fn skiptoken(
    table: impl super::error::Entity,
    page: u64,
    first: u128,
    last: u128,
    modified: Option<(i64, i64)>,
) -> String {
    let order = modified.map_or(String::new(), |(first, last)| {
        format!("<modifiedon last=\"{last}\" first=\"{first}\" />")
    });
    let inner = format!(
        "<cookie page=\"{page}\">{order}<{id} last=\"{{{last}}}\" first=\"{{{first}}}\" /></cookie>",
        id = table.id_column(),
        last = guid(last).to_uppercase(),
        first = guid(first).to_uppercase(),
    );
    format!(
        "<cookie pagenumber=\"{}\" pagingcookie=\"{}\" istracking=\"False\" />",
        page + 1,
        urlencoding::encode(&inner)
    )
}

/// Where a page ordered by `modifiedon` resumes: after this `modifiedon` (epoch ms) and
/// primary key, from a `$skiptoken` (already query-decoded once).
pub fn skiptoken_modified(raw: &str) -> Option<i64> {
    let cookie = raw.split("pagingcookie=\"").nth(1)?.split('"').next()?;
    let cookie = urlencoding::decode(cookie).ok()?;
    let inner = cookie.split("<modifiedon ").nth(1)?;
    inner
        .split("last=\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()
}

/// The page number and last key of a `$skiptoken` (already query-decoded once).
pub fn parse_skiptoken(raw: &str) -> Option<(u64, u128)> {
    let page = raw
        .split("pagenumber=\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse::<u64>()
        .ok()?;
    let cookie = raw.split("pagingcookie=\"").nth(1)?.split('"').next()?;
    let cookie = urlencoding::decode(cookie).ok()?;
    // The primary key's element: its values are braced GUIDs (`modifiedon`'s are not).
    let last = cookie.split("last=\"{").nth(1)?.split('"').next()?;
    Some((page, parse_guid(&format!("{{{last}"))?))
}
