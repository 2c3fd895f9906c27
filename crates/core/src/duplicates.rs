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
//! arenas: about 90 bytes a record (`docs/performance.md`).

use std::collections::HashMap;

use crate::model::{Record, Value, field};

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
#[derive(Debug, Default)]
pub struct DuplicateFinder {
    /// Source ids, end to end; `id_ends[i]` is where record `i`'s ends.
    ids: String,
    id_ends: Vec<u32>,
    /// Folded names ("jane doe"), end to end.
    names: String,
    name_ends: Vec<u32>,
    by_email: HashMap<u64, u32>,
    by_phone: HashMap<u64, u32>,
    /// The latest record of each block.
    block_head: HashMap<u64, u32>,
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
        self.ids.push_str(&record.source_id);
        self.id_ends.push(self.ids.len() as u32);
        let name = folded_name(record);
        self.names.push_str(&name);
        self.name_ends.push(self.names.len() as u32);
        self.parent.push(index);
        self.block_next.push([END; 2]);

        let email = record
            .text(field::EMAIL)
            .map(|e| e.trim().to_lowercase())
            .filter(|e| crate::email::is_valid(e));
        let mut matches: Vec<(u32, Evidence)> = Vec::new();
        if let Some(email) = &email {
            match self.by_email.get(&crate::quality::id_hash(email)) {
                Some(&earlier) => matches.push((earlier, Evidence::Email)),
                None => {
                    self.by_email.insert(crate::quality::id_hash(email), index);
                }
            }
        }
        for phone in [field::PHONE, field::MOBILE_PHONE]
            .iter()
            .filter_map(|f| record.text(f))
            .filter_map(phone_key)
        {
            match self.by_phone.get(&phone) {
                Some(&earlier) => {
                    let other = self.name(earlier);
                    if name.is_empty()
                        || other.is_empty()
                        || strsim::jaro_winkler(&name, other) >= PHONE_NAME_SIMILARITY
                    {
                        matches.push((earlier, Evidence::Phone));
                    }
                }
                None => {
                    self.by_phone.insert(phone, index);
                }
            }
        }
        if !name.is_empty() {
            let initial = name.rsplit(' ').next().and_then(|l| l.chars().next());
            let bases = [
                record.get(field::COMPANY).and_then(|v| match v {
                    Value::Reference(id) => Some(format!("company\u{0}{id}")),
                    _ => None,
                }),
                email
                    .as_deref()
                    .and_then(|e| e.rsplit_once('@'))
                    .filter(|(_, domain)| !shared_mail_domain(domain))
                    .map(|(_, domain)| format!("domain\u{0}{domain}")),
            ];
            for (slot, base) in bases.iter().enumerate() {
                let Some(base) = base else { continue };
                let block = crate::quality::id_hash(&format!("{base}\u{0}{initial:?}"));
                let mut at = self.block_head.get(&block).copied().unwrap_or(END);
                self.block_next[index as usize][slot] = at;
                let mut depth = 0;
                while at != END && depth < BLOCK_DEPTH {
                    if strsim::jaro_winkler(&name, self.name(at)) >= NAME_SIMILARITY {
                        matches.push((at, Evidence::Name));
                        break;
                    }
                    at = self.block_next[at as usize][slot];
                    depth += 1;
                }
                self.block_head.insert(block, index);
            }
        }
        // The strongest evidence names the finding; every match joins the cluster.
        let evidence = matches.iter().map(|(_, e)| *e).min()?;
        let mut root = index;
        for (earlier, _) in matches {
            root = self.union(root, earlier);
        }
        Some(Duplicate {
            first: self.id(root).to_owned(),
            evidence,
        })
    }

    /// The clusters of two or more records found so far, each as its records' source ids in
    /// the order read, the clusters in the order of their first record.
    pub fn clusters(&mut self) -> Vec<Vec<String>> {
        let mut by_root: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
        for i in 0..self.parent.len() as u32 {
            let root = self.find(i);
            by_root.entry(root).or_default().push(self.id(i).to_owned());
        }
        by_root.into_values().filter(|c| c.len() > 1).collect()
    }

    fn id(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 {
            0
        } else {
            self.id_ends[i - 1] as usize
        };
        &self.ids[start..self.id_ends[i] as usize]
    }

    fn name(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 {
            0
        } else {
            self.name_ends[i - 1] as usize
        };
        &self.names[start..self.name_ends[i] as usize]
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
    std::str::from_utf8(tail).ok().map(crate::quality::id_hash)
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
