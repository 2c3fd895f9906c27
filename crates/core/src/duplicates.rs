//! People entered twice in the source: the same customer under two records, found while the
//! records stream past, before they are written.
//!
//! Three kinds of evidence, each strong enough alone:
//! - the same email address (ignoring case);
//! - the same phone number (its last nine digits, so that `+44 20 7946 0123` and
//!   `020 7946 0123` agree) on records whose names are alike ([`PHONE_NAME_SIMILARITY`]) or
//!   where one has no name: colleagues sharing a switchboard number are not one person;
//! - near-identical names ([`NAME_SIMILARITY`], Jaro-Winkler) within one block: the same
//!   company, or the same email domain (not a public provider's such as `gmail.com`), and the
//!   same initial of the last name. Blocks keep the
//!   work near-linear: a name is compared with at most [`BLOCK_DEPTH`] earlier ones.
//!
//! Records found alike are joined into clusters (union-find); a cluster is named by its first
//! record. Nothing of a record is kept but hashes, its source id and its folded name, in flat
//! arenas: about 60 bytes a record (`docs/performance.md`).

use std::hash::Hasher;

use crate::model::{Record, Value, field};
use crate::quality::{HashIndex, reserve_lean};

/// Jaro-Winkler similarity at or above which two names in one block are one person's.
pub const NAME_SIMILARITY: f64 = 0.93;

/// Jaro-Winkler similarity at or above which two names sharing a phone number are one person's.
pub const PHONE_NAME_SIMILARITY: f64 = 0.80;

/// The most earlier names of its block a new name is compared with.
pub const BLOCK_DEPTH: usize = 64;

/// Digits of a phone number compared: enough to tell numbers apart, few enough that a national
/// and an international form of one number agree.
const PHONE_DIGITS: usize = 9;

/// Mail providers anyone can sign up with: sharing one says nothing about two people, so
/// their domains are no block for names.
const SHARED_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "ymail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "gmx.de",
    "gmx.net",
    "gmx.com",
    "web.de",
    "t-online.de",
    "freenet.de",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "qq.com",
    "163.com",
    "126.com",
    "naver.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "wanadoo.fr",
    "libero.it",
    "virgilio.it",
    "btinternet.com",
    "sky.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "zoho.com",
    "fastmail.com",
    "hey.com",
    "seznam.cz",
    "wp.pl",
    "o2.pl",
    "interia.pl",
    "rediffmail.com",
];

/// Whether `domain` is a public mail provider's, or a regional variant of one (`yahoo.co.uk`,
/// `hotmail.fr`, `outlook.de`).
fn shared_mail_domain(domain: &str) -> bool {
    SHARED_MAIL_DOMAINS.contains(&domain)
        || [
            "gmail.",
            "googlemail.",
            "hotmail.",
            "outlook.",
            "live.",
            "yahoo.",
            "gmx.",
            "aol.",
        ]
        .iter()
        .any(|provider| domain.starts_with(provider))
}

/// The end of a block's chain.
const END: u32 = u32::MAX;

/// What a key in the finder's index stands for, hashed in front of its value so that an
/// email address, a phone number and a block never share a key.
#[derive(Clone, Copy)]
enum Key {
    /// An email address: the first record with it.
    Email = 1,
    /// A phone number's last digits: the first record with it.
    Phone = 2,
    /// A block: its latest record.
    Block = 3,
}

/// The 64-bit hash of `parts` as a `kind` of key (each part ended by a NUL, so that parts
/// cannot run into each other).
fn key(kind: Key, parts: &[&str]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write_u8(kind as u8);
    for part in parts {
        h.write(part.as_bytes());
        h.write_u8(0);
    }
    h.finish()
}

/// Why a record is taken for one read earlier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Evidence {
    /// The same email address.
    Email,
    /// The same phone number, and alike names.
    Phone,
    /// Near-identical names at the same company or email domain.
    Name,
}

impl Evidence {
    /// The finding's code.
    pub fn code(self) -> &'static str {
        match self {
            Evidence::Email => "DUPLICATE_EMAIL",
            Evidence::Phone => "DUPLICATE_PHONE",
            Evidence::Name => "DUPLICATE_NAME",
        }
    }

    /// The evidence in words, for reasons.
    pub fn describe(self) -> &'static str {
        match self {
            Evidence::Email => "the same email address",
            Evidence::Phone => "the same phone number and a similar name",
            Evidence::Name => "a near-identical name at the same company or email domain",
        }
    }
}

/// A record found to be a duplicate: the source id of its cluster's first record, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The source id of the first record of the cluster (the one a `skip` keeps).
    pub first: String,
    /// The evidence that joined it.
    pub evidence: Evidence,
}

/// Finds duplicate people among the records it is shown, in the order shown.
///
/// Per record it keeps its source id and folded name front-coded ([`Strings`]), its
/// union-find parent and its place in its blocks' chains; the first record of each email
/// address and phone number and the latest of each block are found through one
/// [`HashIndex`]: about 60 bytes a record in all (`docs/performance.md`).
#[derive(Debug, Default)]
pub struct DuplicateFinder {
    ids: Strings,
    /// Folded names ("jane doe").
    names: Strings,
    keys: HashIndex<u32>,
    /// Per record, the record before it in each of its (up to two) blocks.
    block_next: Vec<[u32; 2]>,
    /// Union-find parents; a root is its cluster's first record.
    parent: Vec<u32>,
}

impl DuplicateFinder {
    /// Looks at `record` (a person: contacts and the like): returns the cluster it joins when
    /// it is a duplicate of one seen earlier, and remembers it either way.
    pub fn observe(&mut self, record: &Record) -> Option<Duplicate> {
        let Ok(index) = u32::try_from(self.parent.len()) else {
            return None; // four billion records: beyond any CRM
        };
        if index == END {
            return None;
        }
        self.ids.push(&record.source_id);
        let name = folded_name(record);
        self.names.push(&name);
        reserve_lean(&mut self.parent, 1);
        self.parent.push(index);
        reserve_lean(&mut self.block_next, 1);
        self.block_next.push([END; 2]);

        let email = record
            .text(field::EMAIL)
            .map(|e| e.trim().to_lowercase())
            .filter(|e| crate::email::is_valid(e));
        let mut matches: Vec<(u32, Evidence)> = Vec::new();
        if let Some(email) = &email {
            let hash = key(Key::Email, &[email]);
            match self.keys.get(hash) {
                Some(earlier) => matches.push((earlier, Evidence::Email)),
                None => {
                    self.keys.insert(hash, index);
                }
            }
        }
        let mut other = Vec::new();
        for phone in [field::PHONE, field::MOBILE_PHONE]
            .iter()
            .filter_map(|f| record.text(f))
            .filter_map(phone_key)
        {
            match self.keys.get(phone) {
                Some(earlier) => {
                    let other = self.names.get_into(earlier, &mut other);
                    if name.is_empty()
                        || other.is_empty()
                        || strsim::jaro_winkler(&name, other) >= PHONE_NAME_SIMILARITY
                    {
                        matches.push((earlier, Evidence::Phone));
                    }
                }
                None => {
                    self.keys.insert(phone, index);
                }
            }
        }
        if !name.is_empty() {
            let initial = name.rsplit(' ').next().and_then(|l| l.chars().next());
            let initial = initial.map(String::from).unwrap_or_default();
            let bases = [
                record.get(field::COMPANY).and_then(|v| match v {
                    Value::Reference(id) => Some(key(Key::Block, &["company", id, &initial])),
                    _ => None,
                }),
                email
                    .as_deref()
                    .and_then(|e| e.rsplit_once('@'))
                    .filter(|(_, domain)| !shared_mail_domain(domain))
                    .map(|(_, domain)| key(Key::Block, &["domain", domain, &initial])),
            ];
            for (slot, block) in bases.iter().enumerate() {
                let Some(block) = *block else { continue };
                let mut at = self.keys.insert(block, index).unwrap_or(END);
                self.block_next[index as usize][slot] = at;
                let mut depth = 0;
                while at != END && depth < BLOCK_DEPTH {
                    let other = self.names.get_into(at, &mut other);
                    if strsim::jaro_winkler(&name, other) >= NAME_SIMILARITY {
                        matches.push((at, Evidence::Name));
                        break;
                    }
                    at = self.block_next[at as usize][slot];
                    depth += 1;
                }
            }
        }
        // The strongest evidence names the finding; every match joins the cluster.
        let evidence = matches.iter().map(|(_, e)| *e).min()?;
        let mut root = index;
        for (earlier, _) in matches {
            root = self.union(root, earlier);
        }
        Some(Duplicate {
            first: self.ids.get(root),
            evidence,
        })
    }

    /// The clusters of two or more records found so far, each as its records' source ids in
    /// the order read, the clusters in the order of their first record.
    pub fn clusters(&mut self) -> Vec<Vec<String>> {
        let mut by_root: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
        for i in 0..self.parent.len() as u32 {
            let root = self.find(i);
            by_root.entry(root).or_default().push(i);
        }
        by_root
            .into_values()
            .filter(|c| c.len() > 1)
            .map(|c| c.into_iter().map(|i| self.ids.get(i)).collect())
            .collect()
    }

    fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let grandparent = self.parent[self.parent[i as usize] as usize];
            self.parent[i as usize] = grandparent;
            i = grandparent;
        }
        i
    }

    /// Joins the clusters of `a` and `b` under the earlier root; returns it.
    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (ra, rb) = (self.find(a), self.find(b));
        let (first, second) = (ra.min(rb), ra.max(rb));
        self.parent[second as usize] = first;
        first
    }
}

/// How many strings share one start offset in [`Strings`]: reading one decodes at most this
/// many.
const GROUP: usize = 16;

/// Strings end to end, front-coded: each as the length of the prefix it shares with the one
/// before, then the rest. Source ids read in order share most of their characters
/// (`0035g00000AbCdE`, `0035g00000AbCdF`), so an 18-character id costs about five bytes; a
/// start offset is kept only for every [`GROUP`]th string.
#[derive(Debug, Default)]
struct Strings {
    bytes: Vec<u8>,
    /// Where each group of strings starts in `bytes`.
    starts: Vec<usize>,
    len: usize,
    /// The string pushed last.
    last: Vec<u8>,
}

impl Strings {
    fn push(&mut self, s: &str) {
        let s = s.as_bytes();
        let shared = if self.len.is_multiple_of(GROUP) {
            reserve_lean(&mut self.starts, 1);
            self.starts.push(self.bytes.len());
            0
        } else {
            self.last.iter().zip(s).take_while(|(a, b)| a == b).count()
        };
        reserve_lean(&mut self.bytes, s.len() - shared + 10);
        push_varint(&mut self.bytes, shared);
        push_varint(&mut self.bytes, s.len() - shared);
        self.bytes.extend_from_slice(&s[shared..]);
        self.last.clear();
        self.last.extend_from_slice(s);
        self.len += 1;
    }

    /// String `i`, decoded into `buf`.
    fn get_into<'a>(&self, i: u32, buf: &'a mut Vec<u8>) -> &'a str {
        let i = i as usize;
        buf.clear();
        let mut at = self.starts[i / GROUP];
        for _ in 0..=i % GROUP {
            let shared = read_varint(&self.bytes, &mut at);
            let rest = read_varint(&self.bytes, &mut at);
            buf.truncate(shared);
            buf.extend_from_slice(&self.bytes[at..at + rest]);
            at += rest;
        }
        // Whole strings were pushed, so the bytes are valid UTF-8.
        std::str::from_utf8(buf).unwrap_or_default()
    }

    /// String `i`.
    fn get(&self, i: u32) -> String {
        self.get_into(i, &mut Vec::new()).to_owned()
    }
}

/// `n` in seven-bit groups, low first, the high bit set on all but the last: one byte under 128.
fn push_varint(bytes: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        bytes.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    bytes.push(n as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> usize {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// A person's name for comparing: first and last name, lower-case, letters and digits only,
/// single spaces. Empty when the record has neither.
fn folded_name(record: &Record) -> String {
    let mut name = String::new();
    for part in [field::FIRST_NAME, field::LAST_NAME]
        .iter()
        .filter_map(|f| record.text(f))
    {
        for word in part
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if !name.is_empty() {
                name.push(' ');
            }
            name.extend(word.chars().flat_map(char::to_lowercase));
        }
    }
    name
}

/// The hash of a phone number's last [`PHONE_DIGITS`] digits; `None` for shorter numbers.
fn phone_key(phone: &str) -> Option<u64> {
    // Digits after an extension mark are not the number's.
    let number = phone.split(['x', 'X', '#', ';']).next().unwrap_or_default();
    let digits: Vec<u8> = number.bytes().filter(u8::is_ascii_digit).collect();
    let tail = digits.get(digits.len().checked_sub(PHONE_DIGITS)?..)?;
    std::str::from_utf8(tail)
        .ok()
        .map(|tail| key(Key::Phone, &[tail]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectType;

    fn person(
        id: &str,
        first: &str,
        last: &str,
        email: &str,
        phone: &str,
        company: &str,
    ) -> Record {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        for (f, v) in [
            (field::FIRST_NAME, first),
            (field::LAST_NAME, last),
            (field::EMAIL, email),
            (field::PHONE, phone),
        ] {
            if !v.is_empty() {
                r.set(f, Value::Text(v.into()));
            }
        }
        if !company.is_empty() {
            r.set(field::COMPANY, Value::Reference(company.into()));
        }
        r
    }

    #[test]
    fn each_kind_of_evidence_joins_and_the_first_record_names_the_cluster() {
        let mut f = DuplicateFinder::default();
        let seen =
            |f: &mut DuplicateFinder, r: Record| f.observe(&r).map(|d| (d.first, d.evidence));
        assert_eq!(
            seen(
                &mut f,
                person(
                    "1",
                    "Jane",
                    "Doe",
                    "jane@acme.example",
                    "+44 20 7946 0123",
                    "c1"
                )
            ),
            None
        );
        assert_eq!(
            seen(
                &mut f,
                person("2", "J", "Doe", "JANE@acme.example ", "", "")
            ),
            Some(("1".into(), Evidence::Email))
        );
        assert_eq!(
            seen(
                &mut f,
                person("3", "Jane", "Doe-Smith", "", "020 7946 0123", "")
            ),
            Some(("1".into(), Evidence::Phone))
        );
        assert_eq!(
            seen(
                &mut f,
                person("4", "Jnae", "Doe", "j.doe@other.example", "", "c1")
            ),
            Some(("1".into(), Evidence::Name))
        );
        // A colleague on the switchboard number, a namesake elsewhere: other people.
        assert_eq!(
            seen(
                &mut f,
                person("5", "Omar", "Haddad", "", "+44 20 7946 0123", "c1")
            ),
            None
        );
        assert_eq!(seen(&mut f, person("6", "Jane", "Doe", "", "", "c2")), None);
        assert_eq!(seen(&mut f, person("7", "", "", "", "", "")), None);
        assert_eq!(f.clusters(), vec![vec!["1", "2", "3", "4"]]);
    }

    #[test]
    fn clusters_joined_late_keep_the_earliest_first() {
        let mut f = DuplicateFinder::default();
        f.observe(&person("a", "Ann", "Lee", "ann@x.example", "", ""));
        f.observe(&person(
            "b",
            "Bo",
            "Kim",
            "bo@x.example",
            "+1 415 555 0101",
            "",
        ));
        // Shares b's phone with a like name, and a's address: both clusters become one.
        let d = f.observe(&person(
            "c",
            "Bo",
            "Kim",
            "ann@x.example",
            "415 555 0101",
            "",
        ));
        assert_eq!(d.map(|d| d.first), Some("a".into()));
        assert_eq!(f.clusters(), vec![vec!["a", "b", "c"]]);
    }

    #[test]
    fn front_coded_strings_read_back_as_pushed() {
        let long = "ü".repeat(100); // 200 bytes: lengths over one varint byte
        let mut pushed: Vec<String> = (0..100).map(|i| format!("003{i:015}")).collect();
        pushed.extend(["", "Jürgen", "Jürg", long.as_str(), "0035g", "x"].map(String::from));
        let mut strings = Strings::default();
        for s in &pushed {
            strings.push(s);
        }
        for (i, s) in pushed.iter().enumerate() {
            assert_eq!(&strings.get(i as u32), s, "string {i}");
        }
    }

    #[test]
    fn phone_keys_compare_the_last_nine_digits_before_an_extension() {
        assert_eq!(phone_key("+44 20 7946 0123"), phone_key("020 7946 0123"));
        assert_eq!(
            phone_key("+1 (415) 555-0101 x 12"),
            phone_key("415.555.0101")
        );
        assert_ne!(phone_key("+1 415 555 0101"), phone_key("+1 415 555 0102"));
        assert_eq!(phone_key("12345"), None);
    }
}
