//! A small, honest subset of SOQL: what ferry and a person trying the sandbox by hand need.
//!
//! Supported:
//!
//! ```text
//! SELECT COUNT() | field [, field]...      fields may be relationship paths: Account.Name
//! FROM Account | Contact
//! [WHERE field IN (literal, ...) | field = literal | field != literal | field <> literal
//!        | Id > 'id' | Id >= 'id' AND Id <= 'id'
//!        | datetime-field > datetime | datetime-field >= datetime]
//! [ORDER BY field [ASC | DESC] [NULLS FIRST | NULLS LAST] [, field ...]]
//! [LIMIT n]
//! ```
//!
//! Literals are single-quoted strings (with SOQL's backslash escapes `\' \" \\ \n \r \t \b \f`),
//! `null`, `true`, `false`, numbers and date-time literals in UTC, unquoted as SOQL has them
//! (`2026-12-06T16:47:33Z`, with optional fraction). Keywords are case-insensitive. `>` compares
//! `Id` (keyset paging: `WHERE Id > '…' ORDER BY Id`) or a date-time field with a date-time
//! literal; `>=` only the latter (incremental reads: `WHERE SystemModstamp >= … ORDER BY
//! SystemModstamp, Id`); `>= … AND <= …` only `Id` between two id literals (a range of ids,
//! as PK chunking reads). Anything else (other AND, OR, LIKE, <, > on other fields, GROUP BY, OFFSET,
//! subqueries, date literals such as `TODAY`, bind variables) is answered with
//! `MALFORMED_QUERY`, as Salesforce answers syntax it does not know, so nobody mistakes the
//! sandbox for the full language.

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Query {
    pub select: Select,
    pub from: String,
    pub filter: Option<Filter>,
    /// ORDER BY's keys, in order (empty: no ORDER BY).
    pub order: Vec<Order>,
    pub limit: Option<usize>,
}

/// What the query returns.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Select {
    /// `COUNT()`: only `totalSize`.
    Count,
    /// The listed field paths, in order.
    Fields(Vec<Path>),
}

/// A field, possibly through one relationship (`Account.Ferry_Source_Id__c`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Path {
    pub relationship: Option<String>,
    pub field: String,
}

/// The one condition a WHERE clause may hold.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Filter {
    pub path: Path,
    pub op: Op,
}

/// A comparison.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    In(Vec<Literal>),
    Eq(Literal),
    Ne(Literal),
    /// `>`: the store accepts it on `Id`, and on date-time fields with a date-time literal.
    Gt(Literal),
    /// `>=`: the store accepts it on date-time fields with a date-time literal only.
    Ge(Literal),
    /// `>= low AND <= high` on one field: the store accepts it on `Id` with id literals.
    Between(Literal, Literal),
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    /// A date-time literal, as ms since the epoch (UTC).
    DateTime(i64),
    Null,
}

/// ORDER BY.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Order {
    pub path: Path,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Gt,
    Ge,
    Le,
    DateTime(i64),
    Other(char),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Str(_) => "string literal".into(),
            Token::Num(n) => n.to_string(),
            Token::LParen => "(".into(),
            Token::RParen => ")".into(),
            Token::Comma => ",".into(),
            Token::Eq => "=".into(),
            Token::Ne => "!=".into(),
            Token::Gt => ">".into(),
            Token::Ge => ">=".into(),
            Token::Le => "<=".into(),
            Token::DateTime(_) => "date-time literal".into(),
            Token::Other(c) => c.to_string(),
        }
    }
}

fn tokenize(q: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' | '=' => {
                chars.next();
                out.push(match c {
                    '(' => Token::LParen,
                    ')' => Token::RParen,
                    ',' => Token::Comma,
                    _ => Token::Eq,
                });
            }
            '>' => {
                chars.next();
                match chars.peek() {
                    Some('=') => {
                        chars.next();
                        out.push(Token::Ge);
                    }
                    _ => out.push(Token::Gt),
                }
            }
            '!' | '<' => {
                chars.next();
                match (c, chars.peek()) {
                    ('!', Some('=')) | ('<', Some('>')) => {
                        chars.next();
                        out.push(Token::Ne);
                    }
                    ('<', Some('=')) => {
                        chars.next();
                        out.push(Token::Le);
                    }
                    _ => out.push(Token::Other(c)),
                }
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some('\'') => s.push('\''),
                            Some('"') => s.push('"'),
                            Some('\\') => s.push('\\'),
                            Some('n') => s.push('\n'),
                            Some('r') => s.push('\r'),
                            Some('t') => s.push('\t'),
                            Some('b') => s.push('\u{8}'),
                            Some('f') => s.push('\u{c}'),
                            _ => {
                                return Err(
                                    "Invalid string literal: illegal escape sequence".into()
                                );
                            }
                        },
                        Some(other) => s.push(other),
                    }
                }
                out.push(Token::Str(s));
            }
            // A date-time literal: `2026-12-06T16:47:33Z`, unquoted.
            c if c.is_ascii_digit() && datetime_at(&chars).is_some() => {
                if let Some((ms, len)) = datetime_at(&chars) {
                    for _ in 0..len {
                        chars.next();
                    }
                    out.push(Token::DateTime(ms));
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let mut s = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_digit() || d == '.' || d == '-' || d == 'e' || d == 'E' {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Num(
                    s.parse().map_err(|_| format!("unexpected token: '{s}'"))?,
                ));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut s = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '.' {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(s));
            }
            other => {
                chars.next();
                out.push(Token::Other(other));
            }
        }
    }
    Ok(out)
}

/// The date-time literal the text at `chars` starts with, if it does: its ms since the epoch
/// and its length in characters.
fn datetime_at(chars: &std::iter::Peekable<std::str::Chars<'_>>) -> Option<(i64, usize)> {
    let word: String = chars
        .clone()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+'))
        .collect();
    if word.len() < 20 || word.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let ms = parse_datetime(&word)?;
    Some((ms, word.chars().count()))
}

/// `YYYY-MM-DDThh:mm:ss[.fff](Z|+00:00|+0000)` as ms since the epoch: SOQL's date-time literal,
/// in UTC only (the sandbox's subset).
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    if !matches!(rest, "Z" | "+00:00" | "+0000") {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000 + millis)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn unexpected(&self) -> String {
        match self.peek() {
            Some(t) => format!("unexpected token: '{}'", t.describe()),
            None => "unexpected end of query".into(),
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, token: Token) -> Result<(), String> {
        if self.peek() == Some(&token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn path(&mut self) -> Result<Path, String> {
        match self.peek() {
            Some(Token::Word(w)) if !is_reserved(w) => {
                let w = w.clone();
                self.pos += 1;
                let parts: Vec<&str> = w.split('.').collect();
                match parts.as_slice() {
                    [field] if !field.is_empty() => Ok(Path {
                        relationship: None,
                        field: (*field).to_owned(),
                    }),
                    [rel, field] if !rel.is_empty() && !field.is_empty() => Ok(Path {
                        relationship: Some((*rel).to_owned()),
                        field: (*field).to_owned(),
                    }),
                    _ => Err(format!(
                        "unsupported field path: '{w}' (the sandbox follows one relationship)"
                    )),
                }
            }
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Num(n)) => Ok(Literal::Num(n)),
            Some(Token::DateTime(ms)) => Ok(Literal::DateTime(ms)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }
}

const RESERVED: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "in", "order", "by", "limit", "offset", "group",
    "having", "asc", "desc", "nulls", "first", "last", "like", "includes", "excludes", "null",
    "true", "false",
];

fn is_reserved(w: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w))
}

/// Parses `q`, or says (as `MALFORMED_QUERY`'s message) what it could not read.
pub(crate) fn parse(q: &str) -> Result<Query, String> {
    let mut p = Parser {
        tokens: tokenize(q)?,
        pos: 0,
    };
    p.expect_keyword("SELECT")?;
    let select = if matches!(p.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("COUNT")) {
        p.pos += 1;
        p.expect(Token::LParen)?;
        p.expect(Token::RParen)?;
        Select::Count
    } else {
        let mut fields = vec![p.path()?];
        while p.peek() == Some(&Token::Comma) {
            p.pos += 1;
            fields.push(p.path()?);
        }
        Select::Fields(fields)
    };
    p.expect_keyword("FROM")?;
    let from = match p.next() {
        Some(Token::Word(w)) if !is_reserved(&w) && !w.contains('.') => w,
        _ => {
            p.pos -= 1;
            return Err(p.unexpected());
        }
    };
    let mut filter = None;
    if p.keyword("WHERE") {
        let path = p.path()?;
        let op = match p.next() {
            Some(Token::Eq) => Op::Eq(p.literal()?),
            Some(Token::Ne) => Op::Ne(p.literal()?),
            Some(Token::Gt) => Op::Gt(p.literal()?),
            Some(Token::Ge) => {
                let low = p.literal()?;
                if p.keyword("AND") {
                    // Only the upper bound of the same field may follow.
                    if p.path()? != path {
                        p.pos -= 1;
                        return Err(p.unexpected());
                    }
                    p.expect(Token::Le)?;
                    Op::Between(low, p.literal()?)
                } else {
                    Op::Ge(low)
                }
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("IN") => {
                p.expect(Token::LParen)?;
                let mut values = vec![p.literal()?];
                while p.peek() == Some(&Token::Comma) {
                    p.pos += 1;
                    values.push(p.literal()?);
                }
                p.expect(Token::RParen)?;
                Op::In(values)
            }
            _ => {
                p.pos -= 1;
                return Err(p.unexpected());
            }
        };
        filter = Some(Filter { path, op });
    }
    let mut order = Vec::new();
    if p.keyword("ORDER") {
        p.expect_keyword("BY")?;
        loop {
            let path = p.path()?;
            let descending = if p.keyword("DESC") {
                true
            } else {
                p.keyword("ASC");
                false
            };
            // Salesforce's default: NULLS FIRST ascending, NULLS LAST descending.
            let mut nulls_last = descending;
            if p.keyword("NULLS") {
                if p.keyword("LAST") {
                    nulls_last = true;
                } else {
                    p.expect_keyword("FIRST")?;
                    nulls_last = false;
                }
            }
            order.push(Order {
                path,
                descending,
                nulls_last,
            });
            if p.peek() != Some(&Token::Comma) {
                break;
            }
            p.pos += 1;
        }
    }
    let mut limit = None;
    if p.keyword("LIMIT") {
        match p.next() {
            Some(Token::Num(n)) if n >= 0.0 && n.fract() == 0.0 => limit = Some(n as usize),
            _ => {
                p.pos -= 1;
                return Err(p.unexpected());
            }
        }
    }
    if p.peek().is_some() {
        return Err(p.unexpected());
    }
    Ok(Query {
        select,
        from,
        filter,
        order,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_subset() {
        let q = parse(
            "select Id, LastName, Account.Ferry_Source_Id__c FROM Contact \
             WHERE Ferry_Source_Id__c IN ('1', 'o\\'brien', 'back\\\\slash') ORDER BY LastName DESC LIMIT 10",
        )
        .unwrap();
        assert_eq!(q.from, "Contact");
        let Select::Fields(f) = &q.select else {
            panic!()
        };
        assert_eq!(
            f[2],
            Path {
                relationship: Some("Account".into()),
                field: "Ferry_Source_Id__c".into()
            }
        );
        let Some(Filter {
            op: Op::In(values), ..
        }) = &q.filter
        else {
            panic!()
        };
        assert_eq!(values[1], Literal::Str("o'brien".into()));
        assert_eq!(values[2], Literal::Str("back\\slash".into()));
        assert_eq!(
            q.order.first().map(|o| (o.descending, o.nulls_last)),
            Some((true, true))
        );
        assert_eq!(q.limit, Some(10));
        assert_eq!(
            parse("SELECT COUNT() FROM Account").unwrap().select,
            Select::Count
        );
        let q = parse("SELECT Id FROM Account WHERE Website != null").unwrap();
        assert_eq!(q.filter.unwrap().op, Op::Ne(Literal::Null));
        let q = parse("SELECT Id FROM Contact WHERE Id > '003xx0000000001' ORDER BY Id").unwrap();
        assert_eq!(
            q.filter.unwrap().op,
            Op::Gt(Literal::Str("003xx0000000001".into()))
        );
        assert!(parse("SELECT Id FROM Contact WHERE Id >> 'a'").is_err());
        let q = parse("SELECT Id FROM Contact WHERE Id >= '003a' AND Id <= '003b'").unwrap();
        assert_eq!(
            q.filter.unwrap().op,
            Op::Between(Literal::Str("003a".into()), Literal::Str("003b".into()))
        );
        assert!(parse("SELECT Id FROM Contact WHERE Id >= '003a' AND Name <= 'b'").is_err());
        assert!(parse("SELECT Id FROM Contact WHERE Id >= '003a' AND Id >= '003b'").is_err());
    }

    #[test]
    fn parses_incremental_reads() {
        let q = parse(
            "SELECT Id FROM Contact WHERE SystemModstamp >= 2026-12-06T16:47:33Z \
             ORDER BY SystemModstamp, Id",
        )
        .unwrap();
        assert_eq!(
            q.filter.unwrap().op,
            Op::Ge(Literal::DateTime(1_796_575_653_000))
        );
        let keys: Vec<&str> = q.order.iter().map(|o| o.path.field.as_str()).collect();
        assert_eq!(keys, ["SystemModstamp", "Id"]);
        let q = parse("SELECT Id FROM Contact WHERE SystemModstamp > 2026-12-06T16:47:33.250Z")
            .unwrap();
        assert_eq!(
            q.filter.unwrap().op,
            Op::Gt(Literal::DateTime(1_796_575_653_250))
        );
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        for q in [
            "SELECT Id FROM Contact WHERE A = 'x' AND B = 'y'",
            "SELECT Id FROM Contact WHERE LastName LIKE 'a%'",
            "SELECT Id FROM Contact OFFSET 5",
            "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
            "SELECT FROM Contact",
            "SELECT Id FROM Contact WHERE Name = 'unterminated",
            "DELETE FROM Contact",
            "SELECT Id FROM Contact WHERE CreatedDate < 2020-01-01T00:00:00Z",
            "SELECT Id FROM Contact WHERE CreatedDate > TODAY",
            "SELECT Id FROM Contact ORDER BY Name,",
        ] {
            assert!(parse(q).is_err(), "{q}");
        }
    }
}
