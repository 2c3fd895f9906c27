//! Duplicate detection on a seeded set of people with known clusters: each person is entered
//! once, and some again as a CRM collects them (a re-typed address in capitals, a name with a
//! typo under a private address, a national-format phone number), among hard cases that are
//! not duplicates (colleagues on one switchboard number, namesakes at other companies). The
//! test prints pairwise precision and recall and holds them to at least 0.95 and 0.90.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicIsize, Ordering};

use ferry_core::duplicates::{DuplicateFinder, MergePlanner, Rank};
use ferry_core::quality::MergeSurvivor;
use ferry_core::{ObjectType, Record, Value, field};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The system allocator, counting the bytes held: what the finder keeps per record.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Held by each test for its whole run, so that no other test's allocations are counted.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const FIRST: &[&str] = &[
    "Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kemal",
    "Lena", "Marco", "Nora", "Oskar", "Paula", "Quentin", "Rosa", "Samir", "Tanja", "Ugo", "Vera",
    "Wim", "Xenia", "Yusuf", "Zofia", "Amara", "Bruno", "Chiara", "Dmitri", "Emma", "Felix",
    "Giulia", "Hannes", "Ida", "Jakob", "Kira", "Luca", "Mila", "Niklas", "Olga", "Pedro", "Rania",
    "Stefan", "Tomás", "Ulla", "Viktor", "Wanda", "Yara", "Zeno",
];
const LAST: &[&str] = &[
    "Abbas",
    "Becker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Horvat",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nowak",
    "Okafor",
    "Petrov",
    "Quispe",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Wagner",
    "Xu",
    "Yilmaz",
    "Zimmermann",
    "Andersen",
    "Bianchi",
    "Chen",
    "Dimitrov",
    "Esposito",
    "Ferreira",
    "Gruber",
    "Hoffmann",
    "Ito",
    "Jovanović",
    "Kaya",
    "Lehmann",
    "Müller",
    "Novak",
    "Olsen",
    "Popescu",
    "Richter",
    "Santos",
    "Takahashi",
    "Ueda",
    "Vogel",
    "Weber",
    "Young",
    "Zhang",
    "Kovač",
    "Lambert",
    "Marino",
    "Nielsen",
    "Ortega",
    "Pereira",
    "Ramos",
    "Silva",
    "Torres",
    "Vidal",
];

/// One person as the test knows them, before any record is made.
struct Person {
    first: String,
    last: String,
    email: Option<String>,
    phone: Option<String>,
    company: Option<usize>,
}

/// A typo: two neighbouring letters swapped, or one dropped.
fn typo(rng: &mut StdRng, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 4 {
        return word.to_owned();
    }
    let at = rng.random_range(1..chars.len() - 1);
    if rng.random_bool(0.5) {
        chars.swap(at, at + 1);
    } else {
        chars.remove(at);
    }
    chars.into_iter().collect()
}

/// `+44 20 7946 0123` written as a national number: `020 7946 0123`.
fn national(phone: &str) -> String {
    format!("0{}", phone.trim_start_matches("+44 "))
}

fn record(id: String, p: &Person) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, id);
    r.set(field::FIRST_NAME, Value::Text(p.first.clone()));
    r.set(field::LAST_NAME, Value::Text(p.last.clone()));
    if let Some(email) = &p.email {
        r.set(field::EMAIL, Value::Text(email.clone()));
    }
    if let Some(phone) = &p.phone {
        r.set(field::PHONE, Value::Text(phone.clone()));
    }
    if let Some(company) = p.company {
        r.set(field::COMPANY, Value::Reference(format!("co-{company}")));
    }
    r
}

/// Every unordered pair of ids within each cluster.
fn pairs(clusters: &[Vec<String>]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for c in clusters {
        for (i, a) in c.iter().enumerate() {
            for b in &c[i + 1..] {
                out.insert((a.min(b).clone(), a.max(b).clone()));
            }
        }
    }
    out
}

#[test]
fn seeded_duplicates_are_found_with_high_precision_and_recall() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rng = StdRng::seed_from_u64(16);
    let companies = 600;
    let switchboards: Vec<String> = (0..companies)
        .map(|c| format!("+44 20 7{:03} {:04}", c % 1000, c))
        .collect();
    let mut records: Vec<(Record, usize)> = Vec::new();
    let people = 6_000;
    for person in 0..people {
        let first = FIRST[rng.random_range(0..FIRST.len())].to_owned();
        let last = LAST[rng.random_range(0..LAST.len())].to_owned();
        let company = rng
            .random_bool(0.85)
            .then(|| rng.random_range(0..companies));
        let slug = |s: &str| -> String {
            s.chars()
                .filter(char::is_ascii_alphanumeric)
                .flat_map(|c| c.to_lowercase())
                .collect()
        };
        let email = rng.random_bool(0.9).then(|| match company {
            Some(c) => format!("{}.{}{person}@co{c}.example", slug(&first), slug(&last)),
            None => format!(
                "{}{person}@{}",
                slug(&first),
                ["gmail.com", "outlook.com", "yahoo.co.uk"][person % 3]
            ),
        });
        // A direct line of one's own, the company's switchboard (shared), or none.
        let phone = match (rng.random_range(0..10), company) {
            (0..=4, _) => Some(format!(
                "+44 20 {:04} {:04}",
                person / 10_000 + 3000,
                person % 10_000
            )),
            (5..=6, Some(c)) => Some(switchboards[c].clone()),
            _ => None,
        };
        let original = Person {
            first,
            last,
            email,
            phone,
            company,
        };
        records.push((record(format!("p{person}"), &original), person));
        if !rng.random_bool(0.12) {
            continue;
        }
        // Entered again, once or twice, the ways people get entered twice.
        for again in 0..rng.random_range(1..=2) {
            let variant = match rng.random_range(0..3) {
                // The same address typed in capitals, the rest as before.
                0 if original.email.is_some() => Person {
                    first: original.first.clone(),
                    last: original.last.clone(),
                    email: original.email.as_ref().map(|e| e.to_uppercase()),
                    phone: None,
                    company: original.company,
                },
                // A typo in the name, a private address, the same company.
                1 if original.company.is_some() => Person {
                    first: typo(&mut rng, &original.first),
                    last: original.last.clone(),
                    email: Some(format!(
                        "{}{person}@gmail.com",
                        original.first.to_lowercase().chars().next().unwrap_or('x'),
                    )),
                    phone: None,
                    company: original.company,
                },
                // Only a phone number, in national form, and a typo in the last name.
                _ if original
                    .phone
                    .as_deref()
                    .is_some_and(|p| !switchboards.contains(&p.to_owned())) =>
                {
                    Person {
                        first: original.first.clone(),
                        last: typo(&mut rng, &original.last),
                        email: None,
                        phone: original.phone.as_deref().map(national),
                        company: None,
                    }
                }
                _ => continue,
            };
            records.push((record(format!("p{person}-{again}"), &variant), person));
        }
    }
    records.shuffle(&mut rng);

    let mut finder = DuplicateFinder::default();
    for (r, _) in &records {
        finder.observe(r);
    }
    let found = pairs(&finder.clusters());
    let mut truth: HashMap<usize, Vec<String>> = HashMap::new();
    for (r, person) in &records {
        truth
            .entry(*person)
            .or_default()
            .push(r.source_id.to_string());
    }
    let truth: Vec<Vec<String>> = truth.into_values().filter(|c| c.len() > 1).collect();
    let expected = pairs(&truth);
    let right = found.intersection(&expected).count() as f64;
    let precision = right / found.len().max(1) as f64;
    let recall = right / expected.len().max(1) as f64;
    println!(
        "{} records, {} true duplicate pairs in {} clusters; found {} pairs: precision {precision:.3}, recall {recall:.3}",
        records.len(),
        expected.len(),
        truth.len(),
        found.len()
    );
    assert!(expected.len() > 500, "the seed holds enough duplicates");
    assert!(precision >= 0.95, "precision {precision:.3}");
    assert!(recall >= 0.90, "recall {recall:.3}");
}

/// The `i`th record of the memory tests: an 18-character id in order, nine in ten with an
/// address, six in ten with a number, nine people a company.
fn sample(i: usize) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, format!("003{i:015}"));
    r.set(
        field::FIRST_NAME,
        Value::Text(FIRST[i % FIRST.len()].into()),
    );
    r.set(
        field::LAST_NAME,
        Value::Text(LAST[(i / 7) % LAST.len()].into()),
    );
    if !i.is_multiple_of(10) {
        r.set(
            field::EMAIL,
            Value::Text(format!("person{i}@co{}.example", i / 9)),
        );
    }
    if i % 5 < 3 {
        r.set(
            field::PHONE,
            Value::Text(format!("+44 20 {:04} {:04}", i / 10_000, i % 10_000)),
        );
    }
    r.set(
        field::COMPANY,
        Value::Reference(format!("001{:015}", i / 9)),
    );
    r
}

/// What the finder holds per record at 300,000 contacts (60 bytes when measured; 59 at a
/// million) with 18-character ids (Salesforce's) read in order, nine in ten with an address
/// and six in ten with a number: printed for `docs/performance.md`, and held under 64 bytes,
/// the finder's share of ferry's memory target at a million contacts.
#[test]
fn the_finder_keeps_under_64_bytes_a_record() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let records = 300_000;
    let mut finder = DuplicateFinder::default();
    let before = HELD.load(Ordering::Relaxed);
    for i in 0..records {
        let r = sample(i);
        finder.observe(&r);
        drop(r);
    }
    let held = HELD.load(Ordering::Relaxed) - before;
    let per_record = held as f64 / records as f64;
    println!(
        "duplicate finder: {held} bytes for {records} records, {per_record:.0} bytes a record"
    );
    assert!(per_record < 64.0, "{per_record:.0} bytes a record");
    drop(finder);
}

/// What a merge's first read holds per record (the finder and each record's rank), and what
/// its plan keeps afterwards per record in a cluster: printed for `docs/data-quality.md`, and
/// held under 74 bytes a record while planning.
#[test]
fn the_merge_planner_keeps_under_74_bytes_a_record() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let records = 300_000;
    let before = HELD.load(Ordering::Relaxed);
    let mut planner = MergePlanner::new(true);
    for i in 0..records {
        let mut r = sample(i);
        r.set(field::UPDATED_AT, Value::Timestamp(i as i64));
        planner.observe(&r, Rank::of(&r, |_| true));
    }
    let planning = HELD.load(Ordering::Relaxed) - before;
    let per_record = planning as f64 / records as f64;
    let plan = planner.finish(MergeSurvivor::Complete);
    let kept = HELD.load(Ordering::Relaxed) - before;
    println!(
        "merge planner: {per_record:.0} bytes a record while planning; the plan of {} clusters: {kept} bytes",
        plan.clusters_found()
    );
    assert!(per_record < 74.0, "{per_record:.0} bytes a record");
    drop(plan);
}
