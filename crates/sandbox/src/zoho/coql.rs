//! A small, honest subset of COQL (`POST /crm/v8/coql`), with Zoho's documented limits.
//!
//! Grammar (keywords case-insensitive):
//!
//! ```text
//! select (<col> {, <col>} | COUNT(id)) from <Module> [where <cond>] [order by <col> [asc|desc]]
//!        [limit <n> [offset <m>] | limit <m>, <n>]
//! <col>  := Field | Lookup.Field | id
//! <cond> := <atom> | ( <cond> ) | <cond> (and|or) <cond>      -- at most two per bracket level
//! <atom> := <col> (= | != | > | < | >= | <=) <value> | <col> [not] in (<value> {, <value>})
//!         | <col> is [not] null
//! <value>:= 'text' (\' escapes a quote) | number | true | false
//! ```
//!
//! Limits (COQL-Limitations, v8): `in` / `not in` up to 50 values, at most 25 criteria, at most
//! 50 selected columns, `LIMIT` up to 2,000 (default 200), and no record past the 100,000th
//! through `OFFSET`. More than two criteria at one bracket level is refused, as Zoho asks for
//! `((A and B) and C)`. Anything else is a `SYNTAX_ERROR`; it never silently answers wrong.
//!
//! `COUNT(id)` (COQL's aggregates, v4 and later) answers one row holding the number of records
//! that match, under the key as written (`{"COUNT(id)": 120}`) [the key's form UNCONFIRMED];
//! the other aggregates are not served.

use serde_json::{Value as Json, json};

use super::crm::CrmModule;
use super::store::{Kind, Module, RequestError, Row, Store, Val};
use crate::table::{Cell, Row as TRow, Show};

/// Most values in one `in` / `not in`.
pub const MAX_IN_VALUES: usize = 50;
/// Most criteria in one `WHERE`.
pub const MAX_CRITERIA: usize = 25;
/// Most selected columns.
pub const MAX_COLUMNS: usize = 50;
/// Largest `LIMIT`.
pub const MAX_LIMIT: usize = 2000;
/// No query reaches past this many records through `OFFSET`.
pub const MAX_OFFSET_REACH: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Sym(&'static str),
}

pub(crate) fn syntax(near: &str) -> RequestError {
    RequestError::new(
        400,
        "SYNTAX_ERROR",
        "error occured while parsing the query",
        json!({"near": near}),
    )
}

fn lex(q: &str) -> Result<Vec<Tok>, RequestError> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(syntax("'")),
                    Some('\\') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.' | '$'))
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                ">=" => Some(">="),
                "<=" => Some("<="),
                "!=" => Some("!="),
                "<>" => Some("!="),
                _ => None,
            };
            if let Some(sym) = sym {
                out.push(Tok::Sym(sym));
                i += 2;
                continue;
            }
            let sym = match c {
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '=' => "=",
                '>' => ">",
                '<' => "<",
                _ => return Err(syntax(&c.to_string())),
            };
            out.push(Tok::Sym(sym));
            i += 1;
        }
    }
    Ok(out)
}

/// A literal in a criterion.
#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Text(String),
    /// A number as written: ids have 19 digits, more than an `f64` holds exactly.
    Num(String),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    In(Vec<Lit>),
    NotIn(Vec<Lit>),
    IsNull,
    IsNotNull,
}

#[derive(Clone, Debug, PartialEq)]
enum Cond {
    Atom {
        col: String,
        op: Op,
        value: Option<Lit>,
    },
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

impl Cond {
    fn criteria(&self) -> usize {
        match self {
            Cond::Atom { .. } => 1,
            Cond::And(a, b) | Cond::Or(a, b) => a.criteria() + b.criteria(),
        }
    }
}

/// A parsed query.
#[derive(Debug)]
pub(crate) struct Query {
    columns: Vec<String>,
    /// `COUNT(id)` as written, when the query counts instead of listing.
    count: Option<String>,
    module: String,
    cond: Option<Cond>,
    desc: bool,
    limit: usize,
    offset: usize,
}

impl Query {
    /// A `COUNT(id)` query's answer, `matching` records counted; `None` for a listing.
    fn count_answer(&self, matching: usize) -> Option<Json> {
        let name = self.count.as_ref()?;
        Some(
            json!({"data": [{name.as_str(): matching}], "info": {"count": 1, "more_records": false}}),
        )
    }

    /// Whether the query is a `COUNT(id)`.
    pub(crate) fn counts(&self) -> bool {
        self.count.is_some()
    }

    /// The `LIMIT` asked for (for the credit cost).
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The module queried, if it is one the original store holds.
    pub(crate) fn module(&self) -> Option<Module> {
        Module::parse(&self.module)
    }

    /// Whether the query continues a read after an id (`id > N`, keyset paging).
    pub(crate) fn reads_after_id(&self) -> bool {
        fn has(c: &Cond) -> bool {
            match c {
                Cond::Atom { col, op, .. } => col.eq_ignore_ascii_case("id") && *op == Op::Gt,
                Cond::And(a, b) => has(a) || has(b),
                Cond::Or(..) => false,
            }
        }
        self.cond.as_ref().is_some_and(has)
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn near(&self) -> String {
        match self.peek() {
            Some(Tok::Word(w)) | Some(Tok::Str(w)) | Some(Tok::Num(w)) => w.clone(),
            Some(Tok::Sym(s)) => (*s).to_owned(),
            None => "end of query".to_owned(),
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), RequestError> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(syntax(&self.near()))
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Result<String, RequestError> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) if !is_reserved(&w) => {
                self.pos += 1;
                Ok(w)
            }
            Some(Tok::Str(w)) => {
                // Quoted column names are allowed (reserved words must be quoted).
                self.pos += 1;
                Ok(w)
            }
            _ => Err(syntax(&self.near())),
        }
    }

    fn number(&mut self) -> Result<usize, RequestError> {
        match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                n.parse().map_err(|_| {
                    RequestError::new(
                        400,
                        "INVALID_QUERY",
                        "limit given seems to be invalid",
                        json!({"limit": n}),
                    )
                })
            }
            other => Err(RequestError::new(
                400,
                "INVALID_QUERY",
                "limit given seems to be invalid",
                json!({"limit": format!("{other:?}")}),
            )),
        }
    }

    fn literal(&mut self) -> Result<Lit, RequestError> {
        let lit = match self.peek().cloned() {
            Some(Tok::Str(s)) => Lit::Text(s),
            Some(Tok::Num(n)) => {
                n.parse::<f64>().map_err(|_| syntax(&n))?;
                Lit::Num(n)
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            _ => return Err(syntax(&self.near())),
        };
        self.pos += 1;
        Ok(lit)
    }

    fn atom(&mut self) -> Result<Cond, RequestError> {
        if self.sym("(") {
            let c = self.cond()?;
            if !self.sym(")") {
                return Err(syntax(&self.near()));
            }
            return Ok(c);
        }
        let col = self.word()?;
        let (op, value) = if self.sym("=") {
            (Op::Eq, Some(self.literal()?))
        } else if self.sym("!=") {
            (Op::Ne, Some(self.literal()?))
        } else if self.sym(">=") {
            (Op::Ge, Some(self.literal()?))
        } else if self.sym("<=") {
            (Op::Le, Some(self.literal()?))
        } else if self.sym(">") {
            (Op::Gt, Some(self.literal()?))
        } else if self.sym("<") {
            (Op::Lt, Some(self.literal()?))
        } else if self.keyword("is") {
            let not = self.keyword("not");
            self.expect_keyword("null")?;
            (if not { Op::IsNotNull } else { Op::IsNull }, None)
        } else {
            let not = self.keyword("not");
            self.expect_keyword("in")?;
            if !self.sym("(") {
                return Err(syntax(&self.near()));
            }
            let mut values = vec![self.literal()?];
            while self.sym(",") {
                values.push(self.literal()?);
            }
            if !self.sym(")") {
                return Err(syntax(&self.near()));
            }
            if values.len() > MAX_IN_VALUES {
                return Err(RequestError::new(
                    400,
                    "LIMIT_EXCEEDED",
                    "the number of values in the in operator exceeds the limit",
                    json!({"limit": MAX_IN_VALUES, "column_name": col}),
                ));
            }
            (
                if not {
                    Op::NotIn(values)
                } else {
                    Op::In(values)
                },
                None,
            )
        };
        Ok(Cond::Atom { col, op, value })
    }

    /// At most two criteria per bracket level, as Zoho requires.
    fn cond(&mut self) -> Result<Cond, RequestError> {
        let left = self.atom()?;
        let combined = if self.keyword("and") {
            Cond::And(Box::new(left), Box::new(self.atom()?))
        } else if self.keyword("or") {
            Cond::Or(Box::new(left), Box::new(self.atom()?))
        } else {
            return Ok(left);
        };
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or"))
        {
            return Err(RequestError::new(
                400,
                "SYNTAX_ERROR",
                "more than two criteria must be grouped with brackets, as ((A and B) and C)",
                json!({"near": self.near()}),
            ));
        }
        Ok(combined)
    }
}

fn is_reserved(w: &str) -> bool {
    [
        "select", "from", "where", "and", "or", "order", "by", "limit", "offset", "in", "not",
        "is", "null", "asc", "desc",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(w))
}

/// Parses `select_query`.
pub(crate) fn parse(q: &str) -> Result<Query, RequestError> {
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
    };
    p.expect_keyword("select")?;
    let first = p.word()?;
    let (columns, count) = if first.eq_ignore_ascii_case("count") && p.sym("(") {
        let inner = p.word()?;
        if !inner.eq_ignore_ascii_case("id") || !p.sym(")") {
            return Err(syntax(&inner));
        }
        (Vec::new(), Some(format!("{first}({inner})")))
    } else {
        let mut columns = vec![first];
        while p.sym(",") {
            columns.push(p.word()?);
        }
        (columns, None)
    };
    if columns.len() > MAX_COLUMNS {
        return Err(RequestError::new(
            400,
            "LIMIT_EXCEEDED",
            "the number of columns exceeds the limit",
            json!({"limit": MAX_COLUMNS}),
        ));
    }
    p.expect_keyword("from")?;
    let module = p.word()?;
    let cond = if p.keyword("where") {
        Some(p.cond()?)
    } else {
        None
    };
    if let Some(c) = &cond
        && c.criteria() > MAX_CRITERIA
    {
        return Err(RequestError::new(
            400,
            "LIMIT_EXCEEDED",
            "the number of criteria exceeds the limit",
            json!({"limit": MAX_CRITERIA}),
        ));
    }
    let mut desc = false;
    if p.keyword("order") {
        p.expect_keyword("by")?;
        let col = p.word()?;
        if col != "id" {
            return Err(syntax(&col)); // the emulator orders by id only
        }
        if p.keyword("desc") {
            desc = true;
        } else {
            p.keyword("asc");
        }
    }
    let (mut limit, mut offset) = (200, 0);
    if p.keyword("limit") {
        let first = p.number()?;
        if p.sym(",") {
            offset = first;
            limit = p.number()?;
        } else {
            limit = first;
            if p.keyword("offset") {
                offset = p.number()?;
            }
        }
    }
    if p.peek().is_some() {
        return Err(syntax(&p.near()));
    }
    if limit == 0 || limit > MAX_LIMIT {
        return Err(RequestError::new(
            400,
            "INVALID_QUERY",
            "limit given seems to be invalid",
            json!({"limit": limit}),
        ));
    }
    if offset + limit > MAX_OFFSET_REACH {
        return Err(RequestError::new(
            400,
            "LIMIT_EXCEEDED",
            "You can only get up to 100000 records using offset",
            json!({"limit": MAX_OFFSET_REACH}),
        ));
    }
    Ok(Query {
        columns,
        count,
        module,
        cond,
        desc,
        limit,
        offset,
    })
}

/// A column resolved against the schema: a field, a lookup's field, or the id.
#[derive(Clone, Copy)]
enum Col {
    Id,
    Field(usize),
    Lookup {
        field: usize,
        parent: Module,
        sub: Option<usize>,
    },
}

fn resolve(store: &Store, module: Module, col: &str) -> Result<Col, RequestError> {
    let bad = || {
        RequestError::new(
            400,
            "INVALID_QUERY",
            "unsupported column",
            json!({"column_name": col}),
        )
    };
    if col == "id" {
        return Ok(Col::Id);
    }
    let schema = &store.table(module).schema;
    let (head, sub) = match col.split_once('.') {
        Some((h, s)) => (h, Some(s)),
        None => (col, None),
    };
    let field = schema.field(head).ok_or_else(bad)?;
    match (schema.fields[field].kind, sub) {
        // Whether COQL serves the GDPR consent record is not documented: the emulator refuses
        // it as it refuses a column it does not know (an assumption).
        (Kind::Consent, _) => Err(bad()),
        (Kind::Lookup(parent), None) => Ok(Col::Lookup {
            field,
            parent,
            sub: None,
        }),
        (Kind::Lookup(parent), Some("id")) => Ok(Col::Lookup {
            field,
            parent,
            sub: None,
        }),
        (Kind::Lookup(parent), Some(s)) => {
            let sub = store.table(parent).schema.field(s).ok_or_else(bad)?;
            Ok(Col::Lookup {
                field,
                parent,
                sub: Some(sub),
            })
        }
        (_, None) => Ok(Col::Field(field)),
        (_, Some(_)) => Err(bad()),
    }
}

/// A row's value of a column, as a literal for comparison (`None`: null).
fn value_of(store: &Store, module: Module, row: &Row, col: Col) -> Option<Lit> {
    let to_lit = |v: &Val| match v {
        Val::Str(s) => Lit::Text(s.to_string()),
        Val::Bool(b) => Lit::Bool(*b),
        Val::Int(n) => Lit::Num(n.to_string()),
        Val::Num(n) => Lit::Num(n.to_string()),
        Val::Ref(id) => Lit::Num(id.to_string()),
    };
    match col {
        Col::Id => Some(Lit::Num(row.id.to_string())),
        Col::Field(f) => {
            let def = &store.table(module).schema.fields[f];
            if def.kind == Kind::DateTime {
                let rendered = store.render_value(module, row, f);
                return rendered.as_str().map(|s| Lit::Text(s.to_owned()));
            }
            row.values[f].as_ref().map(to_lit)
        }
        Col::Lookup { field, parent, sub } => {
            let Some(Val::Ref(id)) = &row.values[field] else {
                return None;
            };
            match sub {
                None => Some(Lit::Num(id.to_string())),
                Some(s) => store.parent_row(parent, *id)?.values[s]
                    .as_ref()
                    .map(to_lit),
            }
        }
    }
}

/// Compares two literals: when either is a number (ids are numbers), as whole numbers if both
/// are (ids exceed an `f64`'s precision) or else as decimals; two date-times (ISO 8601 with an
/// offset, as `Modified_Time`) as instants; other texts case-insensitively.
fn compare(a: &Lit, b: &Lit) -> Option<std::cmp::Ordering> {
    fn raw(l: &Lit) -> Option<&str> {
        match l {
            Lit::Text(s) | Lit::Num(s) => Some(s.as_str()),
            Lit::Bool(_) => None,
        }
    }
    match (a, b) {
        (Lit::Bool(x), Lit::Bool(y)) => Some(x.cmp(y)),
        // Date-times compare as instants, whatever their offsets.
        (Lit::Text(x), Lit::Text(y)) => match (
            crate::timestamp::parse_rfc3339(x),
            crate::timestamp::parse_rfc3339(y),
        ) {
            (Some(p), Some(q)) => Some(p.cmp(&q)),
            _ => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        },
        _ => {
            let (x, y) = (raw(a)?, raw(b)?);
            if let (Ok(p), Ok(q)) = (x.parse::<i128>(), y.parse::<i128>()) {
                return Some(p.cmp(&q));
            }
            x.parse::<f64>().ok()?.partial_cmp(&y.parse::<f64>().ok()?)
        }
    }
}

fn eq(a: &Lit, b: &Lit) -> bool {
    compare(a, b) == Some(std::cmp::Ordering::Equal)
}

/// A criterion whose column is resolved (`C`: a column of the original store or of a table).
struct Resolved<C> {
    col: C,
    op: Op,
    value: Option<Lit>,
}

enum RCond<C> {
    Atom(Resolved<C>),
    And(Box<RCond<C>>, Box<RCond<C>>),
    Or(Box<RCond<C>>, Box<RCond<C>>),
}

fn resolve_cond<C>(
    c: &Cond,
    resolve: &dyn Fn(&str) -> Result<C, RequestError>,
) -> Result<RCond<C>, RequestError> {
    Ok(match c {
        Cond::Atom { col, op, value } => RCond::Atom(Resolved {
            col: resolve(col)?,
            op: op.clone(),
            value: value.clone(),
        }),
        Cond::And(a, b) => RCond::And(
            Box::new(resolve_cond(a, resolve)?),
            Box::new(resolve_cond(b, resolve)?),
        ),
        Cond::Or(a, b) => RCond::Or(
            Box::new(resolve_cond(a, resolve)?),
            Box::new(resolve_cond(b, resolve)?),
        ),
    })
}

fn matches(store: &Store, module: Module, row: &Row, c: &RCond<Col>) -> bool {
    eval(c, &|col| value_of(store, module, row, col))
}

/// Whether a row whose column values `value` gives meets `c`.
fn eval<C: Copy>(c: &RCond<C>, value: &dyn Fn(C) -> Option<Lit>) -> bool {
    match c {
        RCond::And(a, b) => eval(a, value) && eval(b, value),
        RCond::Or(a, b) => eval(a, value) || eval(b, value),
        RCond::Atom(r) => {
            let v = value(r.col);
            let cmp = |want: fn(std::cmp::Ordering) -> bool| match (&v, &r.value) {
                (Some(a), Some(b)) => compare(a, b).is_some_and(want),
                _ => false,
            };
            match &r.op {
                Op::Eq => cmp(|o| o.is_eq()),
                Op::Ne => !cmp(|o| o.is_eq()),
                Op::Gt => cmp(|o| o.is_gt()),
                Op::Lt => cmp(|o| o.is_lt()),
                Op::Ge => cmp(|o| o.is_ge()),
                Op::Le => cmp(|o| o.is_le()),
                Op::In(vs) => v.as_ref().is_some_and(|a| vs.iter().any(|b| eq(a, b))),
                Op::NotIn(vs) => !v.as_ref().is_some_and(|a| vs.iter().any(|b| eq(a, b))),
                Op::IsNull => v.is_none(),
                Op::IsNotNull => v.is_some(),
            }
        }
    }
}

/// Candidate rows from an index when the condition allows it (an `in`/`=` on a unique field,
/// or a range on `id`), so such queries do not scan the module. `None`: scan.
fn candidates(store: &Store, module: Module, c: &RCond<Col>) -> Option<Vec<usize>> {
    let table = store.table(module);
    let RCond::Atom(r) = c else {
        if let RCond::And(a, b) = c {
            return candidates(store, module, a).or_else(|| candidates(store, module, b));
        }
        return None;
    };
    let text = |l: &Lit| match l {
        Lit::Text(s) => Some(s.clone()),
        Lit::Num(n) => Some(n.clone()),
        Lit::Bool(_) => None,
    };
    let values: Vec<String> = match (&r.op, &r.value) {
        (Op::Eq, Some(v)) => vec![text(v)?],
        (Op::In(vs), _) => vs.iter().filter_map(text).collect(),
        (Op::Gt | Op::Ge, Some(v)) if matches!(r.col, Col::Id) => {
            let id: u64 = text(v)?.parse().ok()?;
            let start = table.rows.partition_point(|row| row.id < id);
            return Some((start..table.rows.len()).collect());
        }
        _ => return None,
    };
    let mut rows: Vec<usize> = match r.col {
        Col::Id => values
            .iter()
            .filter_map(|v| v.parse::<u64>().ok())
            .filter_map(|id| table.position(id))
            .collect(),
        Col::Field(f) if table.schema.fields[f].unique.is_some() => values
            .iter()
            .filter_map(|v| table.by_unique(f, v))
            .collect(),
        _ => return None,
    };
    rows.sort_unstable();
    rows.dedup();
    Some(rows)
}

/// Runs `q`: `Ok(None)` when nothing matches (Zoho answers 204).
pub(crate) fn run(store: &Store, q: &Query) -> Result<Option<Json>, RequestError> {
    if q.module == "Deals" {
        return run_deals(store, q);
    }
    let module = Module::parse(&q.module).ok_or_else(|| {
        RequestError::new(
            400,
            "INVALID_QUERY",
            "invalid module given",
            json!({"module": q.module}),
        )
    })?;
    let cols: Vec<(String, Col)> = q
        .columns
        .iter()
        .map(|c| resolve(store, module, c).map(|r| (c.clone(), r)))
        .collect::<Result<_, _>>()?;
    let cond = q
        .cond
        .as_ref()
        .map(|c| resolve_cond(c, &|col| resolve(store, module, col)))
        .transpose()?;
    let table = store.table(module);
    let mut hits: Vec<usize> = match cond.as_ref().and_then(|c| candidates(store, module, c)) {
        Some(rows) => rows,
        None => (0..table.rows.len()).collect(),
    };
    if let Some(c) = &cond {
        hits.retain(|&p| matches(store, module, &table.rows[p], c));
    }
    if let Some(answer) = q.count_answer(hits.len()) {
        return Ok(Some(answer));
    }
    if q.desc {
        hits.reverse();
    }
    let total = hits.len();
    let page: Vec<usize> = hits.into_iter().skip(q.offset).take(q.limit).collect();
    if page.is_empty() {
        return Ok(None);
    }
    let data: Vec<Json> = page
        .iter()
        .map(|&p| {
            let row = &table.rows[p];
            let mut item = serde_json::Map::new();
            item.insert("id".into(), Json::String(row.id.to_string()));
            for (name, col) in &cols {
                let v = match *col {
                    Col::Id => Json::String(row.id.to_string()),
                    Col::Field(f) => store.render_value(module, row, f),
                    Col::Lookup { field, parent, sub } => match (&row.values[field], sub) {
                        (Some(Val::Ref(id)), None) => json!({"id": id.to_string()}),
                        (Some(Val::Ref(id)), Some(s)) => store
                            .parent_row(parent, *id)
                            .map_or(Json::Null, |pr| store.render_value(parent, pr, s)),
                        _ => Json::Null,
                    },
                };
                item.insert(name.clone(), v);
            }
            Json::Object(item)
        })
        .collect();
    let more = q.offset + page.len() < total;
    Ok(Some(
        json!({"data": data, "info": {"count": page.len(), "more_records": more}}),
    ))
}

/// A Deals column: the id, a field, a lookup's field, an owner's field, or a timestamp.
#[derive(Clone, Copy)]
enum DCol {
    Id,
    Created,
    Modified,
    Field(usize),
    /// A lookup (`Account_Name`, `Contact_Name`) or one of its record's fields.
    Lookup {
        col: usize,
        parent: Module,
        sub: Option<usize>,
    },
    /// `Owner` or one of its user's fields (`email`, `first_name`, `last_name`, `full_name`).
    Owner {
        col: usize,
        sub: Option<OwnerField>,
    },
}

#[derive(Clone, Copy)]
enum OwnerField {
    Email,
    FirstName,
    LastName,
    FullName,
}

fn resolve_deal(store: &Store, col: &str) -> Result<DCol, RequestError> {
    let bad = || {
        RequestError::new(
            400,
            "INVALID_QUERY",
            "unsupported column",
            json!({"column_name": col}),
        )
    };
    let crm = &store.crm;
    let (head, sub) = match col.split_once('.') {
        Some((h, s)) => (h, Some(s)),
        None => (col, None),
    };
    match head {
        "id" if sub.is_none() => return Ok(DCol::Id),
        "Created_Time" if sub.is_none() => return Ok(DCol::Created),
        "Modified_Time" if sub.is_none() => return Ok(DCol::Modified),
        _ => {}
    }
    let c = crm.deals.table.column(head).ok_or_else(bad)?;
    if let Some(parent) = crm.lookup_module(CrmModule::Deals, c) {
        let sub = match sub {
            None | Some("id") => None,
            Some(s) => Some(store.table(parent).schema.field(s).ok_or_else(bad)?),
        };
        return Ok(DCol::Lookup {
            col: c,
            parent,
            sub,
        });
    }
    if crm.is_owner(CrmModule::Deals, c) {
        let sub = match sub {
            None | Some("id") => None,
            Some("email") => Some(OwnerField::Email),
            Some("first_name") => Some(OwnerField::FirstName),
            Some("last_name") => Some(OwnerField::LastName),
            Some("full_name") => Some(OwnerField::FullName),
            Some(_) => return Err(bad()),
        };
        return Ok(DCol::Owner { col: c, sub });
    }
    match sub {
        None => Ok(DCol::Field(c)),
        Some(_) => Err(bad()),
    }
}

fn cell_lit(cell: &Cell) -> Lit {
    match cell {
        Cell::Text(s) => Lit::Text(s.to_string()),
        Cell::Int(n) => Lit::Num(n.to_string()),
        Cell::Num(n) => Lit::Num(n.to_string()),
        Cell::Bool(b) => Lit::Bool(*b),
        Cell::Time(t) => Lit::Text(super::store::zoho_time(*t)),
        Cell::Ref(id) => Lit::Num(id.to_string()),
    }
}

fn owner_field(store: &Store, id: u64, sub: OwnerField) -> Option<String> {
    let user = store.user(id)?;
    Some(match sub {
        OwnerField::Email => user.email.clone(),
        OwnerField::FirstName => user.first_name.to_owned(),
        OwnerField::LastName => user.last_name.to_owned(),
        OwnerField::FullName => user.full_name(),
    })
}

fn deal_value(store: &Store, row: &TRow, col: DCol) -> Option<Lit> {
    match col {
        DCol::Id => Some(Lit::Num(row.id.to_string())),
        DCol::Created => Some(Lit::Text(super::store::zoho_time(row.created_ms))),
        DCol::Modified => Some(Lit::Text(super::store::zoho_time(row.modified_ms))),
        DCol::Field(c) => row.get(c).map(cell_lit),
        DCol::Lookup { col, parent, sub } => {
            let id = row.get(col)?.as_ref_id()?;
            match sub {
                None => Some(Lit::Num(id.to_string())),
                Some(s) => store.parent_row(parent, id)?.values[s]
                    .as_ref()
                    .map(|v| match v {
                        Val::Str(s) => Lit::Text(s.to_string()),
                        Val::Bool(b) => Lit::Bool(*b),
                        Val::Int(n) => Lit::Num(n.to_string()),
                        Val::Num(n) => Lit::Num(n.to_string()),
                        Val::Ref(id) => Lit::Num(id.to_string()),
                    }),
            }
        }
        DCol::Owner { col, sub } => {
            let id = row.get(col)?.as_ref_id()?;
            match sub {
                None => Some(Lit::Num(id.to_string())),
                Some(f) => owner_field(store, id, f).map(Lit::Text),
            }
        }
    }
}

fn deal_json(store: &Store, row: &TRow, col: DCol) -> Json {
    match col {
        DCol::Id => Json::String(row.id.to_string()),
        DCol::Created => Json::String(super::store::zoho_time(row.created_ms)),
        DCol::Modified => Json::String(super::store::zoho_time(row.modified_ms)),
        DCol::Field(c) => super::crm::cell_json(store, CrmModule::Deals, row, c),
        DCol::Lookup { col, parent, sub } => match (row.get(col).and_then(Cell::as_ref_id), sub) {
            (Some(id), None) => json!({"id": id.to_string()}),
            (Some(id), Some(s)) => store
                .parent_row(parent, id)
                .map_or(Json::Null, |pr| store.render_value(parent, pr, s)),
            (None, _) => Json::Null,
        },
        DCol::Owner { col, sub } => match (row.get(col).and_then(Cell::as_ref_id), sub) {
            (Some(id), None) => json!({"id": id.to_string()}),
            (Some(id), Some(f)) => owner_field(store, id, f).map_or(Json::Null, Json::String),
            (None, _) => Json::Null,
        },
    }
}

/// Candidate deals from an index when the condition allows it (`=`/`in` on a unique field, a
/// range on `id`); `None`: every deal.
fn deal_candidates<'a>(store: &'a Store, c: &RCond<DCol>) -> Option<Vec<&'a TRow>> {
    let table = &store.crm.deals.table;
    let r = match c {
        RCond::And(a, b) => {
            return deal_candidates(store, a).or_else(|| deal_candidates(store, b));
        }
        RCond::Or(..) => return None,
        RCond::Atom(r) => r,
    };
    let text = |l: &Lit| match l {
        Lit::Text(s) | Lit::Num(s) => Some(s.clone()),
        Lit::Bool(_) => None,
    };
    let values: Vec<String> = match (&r.op, &r.value) {
        (Op::Eq, Some(v)) => vec![text(v)?],
        (Op::In(vs), _) => vs.iter().filter_map(text).collect(),
        (Op::Gt | Op::Ge, Some(v)) if matches!(r.col, DCol::Id) => {
            let id: u64 = text(v)?.parse().ok()?;
            let after = id.checked_sub(1);
            return Some(table.page(after, usize::MAX, Show::Live).rows);
        }
        _ => return None,
    };
    let mut rows: Vec<&TRow> = match r.col {
        DCol::Id => values
            .iter()
            .filter_map(|v| v.parse::<u64>().ok())
            .filter_map(|id| table.get(id))
            .collect(),
        DCol::Field(c) if table.def().columns[c].unique.is_some() => {
            values.iter().filter_map(|v| table.find(c, v)).collect()
        }
        _ => return None,
    };
    rows.sort_unstable_by_key(|r| r.id);
    rows.dedup_by_key(|r| r.id);
    Some(rows)
}

/// Runs `q` over Deals (the table engine's rows).
fn run_deals(store: &Store, q: &Query) -> Result<Option<Json>, RequestError> {
    let cols: Vec<(String, DCol)> = q
        .columns
        .iter()
        .map(|c| resolve_deal(store, c).map(|r| (c.clone(), r)))
        .collect::<Result<_, _>>()?;
    let cond = q
        .cond
        .as_ref()
        .map(|c| resolve_cond(c, &|col| resolve_deal(store, col)))
        .transpose()?;
    let table = &store.crm.deals.table;
    let candidates: Vec<&TRow> = match cond.as_ref().and_then(|c| deal_candidates(store, c)) {
        Some(rows) => rows,
        None => table.iter(Show::Live).collect(),
    };
    let mut hits: Vec<&TRow> = match &cond {
        Some(c) => candidates
            .into_iter()
            .filter(|row| eval(c, &|col| deal_value(store, row, col)))
            .collect(),
        None => candidates,
    };
    if let Some(answer) = q.count_answer(hits.len()) {
        return Ok(Some(answer));
    }
    if q.desc {
        hits.reverse();
    }
    let total = hits.len();
    let page: Vec<&TRow> = hits.into_iter().skip(q.offset).take(q.limit).collect();
    if page.is_empty() {
        return Ok(None);
    }
    let data: Vec<Json> = page
        .iter()
        .map(|row| {
            let mut item = serde_json::Map::new();
            item.insert("id".into(), Json::String(row.id.to_string()));
            for (name, col) in &cols {
                item.insert(name.clone(), deal_json(store, row, *col));
            }
            Json::Object(item)
        })
        .collect();
    let more = q.offset + page.len() < total;
    Ok(Some(
        json!({"data": data, "info": {"count": page.len(), "more_records": more}}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_of_ids_is_the_one_aggregate_served() {
        let q = parse("select COUNT(id) from Contacts where Src is not null").unwrap();
        assert_eq!(q.count.as_deref(), Some("COUNT(id)"));
        assert_eq!(
            q.count_answer(7),
            Some(json!({"data": [{"COUNT(id)": 7}], "info": {"count": 1, "more_records": false}}))
        );
        for refused in [
            "select COUNT(Email) from Contacts",
            "select SUM(id) from Contacts",
            "select COUNT(id from Contacts",
        ] {
            assert!(parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn parses_the_documented_shapes() {
        let q = parse("select id, Last_Name, Account_Name.Ferry_Source_Id from Contacts where Ferry_Source_Id in ('a', 'b\\'c') limit 50").unwrap();
        assert_eq!(q.columns.len(), 3);
        assert_eq!(q.limit, 50);
        let q = parse("SELECT id FROM Accounts WHERE ((id > 5 and Phone is not null) and Website = 'x') ORDER BY id ASC LIMIT 10, 20").unwrap();
        assert_eq!((q.offset, q.limit), (10, 20));
    }

    #[test]
    fn refuses_what_zoho_refuses() {
        let err = |q: &str| {
            parse(q).unwrap_err().body["code"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            err("select id from Contacts where id > 1 and id < 5 and id > 2"),
            "SYNTAX_ERROR"
        );
        assert_eq!(err("select id from Contacts limit 2001"), "INVALID_QUERY");
        assert_eq!(
            err("select id from Contacts limit 2000 offset 99000"),
            "LIMIT_EXCEEDED"
        );
        let many: Vec<String> = (0..51).map(|i| format!("'{i}'")).collect();
        assert_eq!(
            err(&format!(
                "select id from Contacts where Email in ({})",
                many.join(",")
            )),
            "LIMIT_EXCEEDED"
        );
        assert_eq!(err("delete from Contacts"), "SYNTAX_ERROR");
    }
}
