//! A seeded generator of realistic, messy CRM data, vendor-neutral: each emulator turns it into
//! its own record shape.
//!
//! The mess is deliberate, because real CRMs are messy: non-ASCII names, missing fields
//! (including contacts with no last name, which Salesforce requires), duplicate and malformed
//! emails, long strings, contacts with no company. The same seed always gives the same data.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A generated company.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedCompany {
    /// Position in [`SeedData::companies`]; contacts refer to companies by it.
    pub key: usize,
    pub name: Option<String>,
    pub domain: Option<String>,
    pub phone: Option<String>,
    pub industry: Option<String>,
    pub employee_count: Option<u32>,
    pub annual_revenue: Option<f64>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// Custom text field "Region" (every emulator seeds the custom fields of [`CUSTOM_FIELDS`]).
    pub region: Option<String>,
    /// Custom number field "Seats".
    pub seats: Option<u32>,
    /// Custom picklist field "Tier": one of [`TIERS`], by label.
    pub tier: Option<&'static str>,
    /// The owning user ([`crate::accounts::USERS`] key).
    pub owner: Option<usize>,
}

/// A generated contact.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedContact {
    /// Position in [`SeedData::contacts`].
    pub key: usize,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub job_title: Option<String>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    /// Unsubscribed from all marketing email.
    pub email_opt_out: bool,
    /// Asked not to be phoned ([`Mess::opt_out_channels`]).
    pub do_not_call: bool,
    /// Opted out of text messages.
    pub sms_opt_out: bool,
    /// Opted out of faxes.
    pub fax_opt_out: bool,
    /// Opted out of postal mail.
    pub postal_opt_out: bool,
    /// The email subscription types (by name, as [`SUBSCRIPTION_TYPES`] lists them) the
    /// contact unsubscribed from, where a vendor keeps email consent per type (HubSpot);
    /// drawn only with [`Mess::opt_out_channels`] and an address.
    pub email_unsubscribed_types: Vec<&'static str>,
    /// The legal bases its data is processed on, by the model's names (`consent`,
    /// `contract`, ...: those HubSpot has options for, [`LEGAL_BASES`]); drawn only with
    /// [`Mess::legal_bases`].
    pub legal_basis: Vec<&'static str>,
    /// The contact's primary company, as a key into [`SeedData::companies`].
    pub company: Option<usize>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// Custom text field "Favourite Colour".
    pub favourite_colour: Option<String>,
    /// Custom number field "Loyalty Points".
    pub loyalty_points: Option<u32>,
    /// The owning user ([`crate::accounts::USERS`] key).
    pub owner: Option<usize>,
}

/// What a seeded custom field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomKind {
    /// Free text.
    Text,
    /// A whole number (vendors store it in their number type).
    Number,
    /// One of [`TIERS`], by label.
    Picklist,
}

/// A custom field every emulator's account has, as an operator would have added it: the
/// object (`"companies"` or `"contacts"`), the label people see, and what it holds. Each
/// emulator names it the way its vendor derives API names from labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomField {
    /// `"companies"` or `"contacts"`.
    pub object: &'static str,
    /// The label, e.g. "Favourite Colour".
    pub label: &'static str,
    /// What it holds.
    pub kind: CustomKind,
}

/// The custom fields every emulator's account has, with seeded values.
pub const CUSTOM_FIELDS: &[CustomField] = &[
    CustomField {
        object: "companies",
        label: "Region",
        kind: CustomKind::Text,
    },
    CustomField {
        object: "companies",
        label: "Seats",
        kind: CustomKind::Number,
    },
    CustomField {
        object: "companies",
        label: "Tier",
        kind: CustomKind::Picklist,
    },
    CustomField {
        object: "contacts",
        label: "Favourite Colour",
        kind: CustomKind::Text,
    },
    CustomField {
        object: "contacts",
        label: "Loyalty Points",
        kind: CustomKind::Number,
    },
];

/// The labels of the "Tier" picklist.
pub const TIERS: &[&str] = &["Gold", "Silver", "Bronze"];

/// A generated data set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeedData {
    pub companies: Vec<SeedCompany>,
    pub contacts: Vec<SeedContact>,
    pub deals: Vec<SeedDeal>,
    pub notes: Vec<SeedNote>,
}

/// A generated deal.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedDeal {
    /// Position in [`SeedData::deals`].
    pub key: usize,
    pub name: String,
    pub amount: Option<f64>,
    /// ISO 4217 code.
    pub currency: &'static str,
    /// `YYYY-MM-DD`.
    pub close_date: String,
    /// Index into [`crate::accounts::PIPELINES`].
    pub pipeline: usize,
    /// Index into that pipeline's stages; the stage says whether the deal is open, won or lost.
    pub stage: usize,
    /// The owning user ([`crate::accounts::USERS`] key).
    pub owner: Option<usize>,
    /// The deal's company ([`SeedData::companies`] key).
    pub company: Option<usize>,
    /// Its contacts ([`SeedData::contacts`] keys), 0 to 5, the primary first.
    pub contacts: Vec<usize>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl SeedDeal {
    /// The seed pipeline and stage it sits in.
    pub fn seed_stage(
        &self,
    ) -> (
        &'static crate::accounts::SeedPipeline,
        &'static crate::accounts::SeedStage,
    ) {
        let pipeline = &crate::accounts::PIPELINES[self.pipeline];
        (pipeline, &pipeline.stages[self.stage])
    }
}

/// What a note hangs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedParent {
    /// A [`SeedData::companies`] key.
    Company(usize),
    /// A [`SeedData::contacts`] key.
    Contact(usize),
    /// A [`SeedData::deals`] key.
    Deal(usize),
}

/// A generated note.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedNote {
    /// Position in [`SeedData::notes`].
    pub key: usize,
    /// The text; HTML when `html` (what HubSpot, Pipedrive and Dataverse hold), else plain.
    pub body: String,
    /// Whether `body` is HTML.
    pub html: bool,
    /// When it was written (its place on the timeline), not when it was migrated.
    pub timestamp_ms: i64,
    /// The author ([`crate::accounts::USERS`] key).
    pub owner: Option<usize>,
    /// What it hangs on, 1 to 3 parents, in no particular order.
    pub parents: Vec<SeedParent>,
}

/// How much of the data is deliberately messy. Rates are per contact.
#[derive(Clone, Debug)]
pub struct Mess {
    /// Contacts with no last name (Salesforce refuses them).
    pub missing_last_name: f64,
    /// Contacts whose email is malformed.
    pub malformed_email: f64,
    /// Contacts reusing another contact's email.
    pub duplicate_email: f64,
    /// Contacts with no company.
    pub no_company: f64,
    /// Contacts with a job title longer than Salesforce's 128 characters.
    pub overlong_title: f64,
    /// Whether a contact with no email may have opted out. Real CRMs hold such contacts, but
    /// some vendors (HubSpot, Pipedrive) keep opt-outs per email address and cannot record one
    /// without an address, so ferry reports them: valid data for one vendor, not for all.
    pub opt_out_without_email: bool,
    /// Contacts opted out of each channel beside email (phone, SMS, fax, post), each channel
    /// drawn on its own. Off by default: a sink without a field for such an opt-out refuses
    /// the run (the consent guard), so only the runs that test it seed them.
    pub opt_out_channels: f64,
    /// Share of contacts with a legal basis recorded (one or two of [`LEGAL_BASES`]),
    /// drawn from each contact's key so that every other seeded value stays as it was.
    pub legal_bases: f64,
}

impl Default for Mess {
    fn default() -> Self {
        Mess {
            missing_last_name: 0.004,
            malformed_email: 0.003,
            duplicate_email: 0.003,
            no_company: 0.1,
            overlong_title: 0.001,
            opt_out_without_email: true,
            opt_out_channels: 0.0,
            legal_bases: 0.0,
        }
    }
}

impl Mess {
    /// No deliberate mess: every record is valid for every vendor.
    pub fn none() -> Mess {
        Mess {
            missing_last_name: 0.0,
            malformed_email: 0.0,
            duplicate_email: 0.0,
            no_company: 0.1,
            overlong_title: 0.0,
            opt_out_without_email: false,
            opt_out_channels: 0.0,
            legal_bases: 0.0,
        }
    }
}

/// Whether contact `key` is opted out of channel `channel` at `rate`: drawn from the key, not
/// the generator, so that turning the channels on leaves every other seeded value as it was.
/// The email subscription types a seeded contact may be unsubscribed from (HubSpot's default
/// types beside its portal-wide "Marketing Information"): a vendor keeping email consent per
/// type has them by these names.
pub const SUBSCRIPTION_TYPES: &[&str] = &["One to One", "Customer Service Communication"];

fn channel_opt_out(key: usize, channel: u64, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let mut h = (key as u64 ^ channel.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 31;
    (h % 10_000) < (rate * 10_000.0) as u64
}

/// The legal bases the seed draws from, by the model's names: those HubSpot has options for.
pub const LEGAL_BASES: &[&str] = &[
    "legitimate_interests_prospect",
    "legitimate_interests_customer",
    "contract",
    "consent",
    "not_applicable",
];

/// The legal bases of the contact with `key` at `rate`: one, or now and then two, drawn
/// from the key alone (so no other seeded value moves).
fn legal_basis(key: usize, rate: f64) -> Vec<&'static str> {
    if !channel_opt_out(key, 40, rate) {
        return Vec::new();
    }
    let first = key % LEGAL_BASES.len();
    let mut names = vec![LEGAL_BASES[first]];
    if channel_opt_out(key, 41, 0.3) {
        names.push(LEGAL_BASES[(first + 2) % LEGAL_BASES.len()]);
    }
    names
}

const FIRST: &[&str] = &[
    "Lorelai",
    "Rory",
    "Émilie",
    "José",
    "Zoë",
    "Søren",
    "Łukasz",
    "Ngozi",
    "Mei",
    "Aarav",
    "Björn",
    "Chloé",
    "Dmitri",
    "Fatima",
    "Giulia",
    "Hiroshi",
    "Ines",
    "Jürgen",
    "Kwame",
    "Léa",
    "Matteo",
    "Nuño",
    "Olga",
    "Priya",
    "Quentin",
    "Renée",
    "Sebastián",
    "Tomás",
    "Uma",
    "Vera",
    "Wiktoria",
    "Xiadani",
    "Yusuf",
    "Zeynep",
    "François",
    "Åsa",
    "Çağla",
    "Đorđe",
    "Ōta",
    "Ива",
    "Александр",
    "محمد",
    "李",
    "さくら",
];
const LAST: &[&str] = &[
    "Gilmore",
    "Müller",
    "García",
    "Ødegaard",
    "Nowak",
    "O'Brien",
    "van der Berg",
    "Ng",
    "Okafor",
    "Dubois",
    "Rossi",
    "Tanaka",
    "Fernández",
    "Kowalczyk",
    "Smith-Jones",
    "Nguyễn",
    "Öztürk",
    "Schröder",
    "Lefèvre",
    "Jensen",
    "Papadopoulos",
    "Иванова",
    "김",
    "王",
    "d'Arcy",
    "MacDonald",
    "Ribeiro",
    "Słowacki",
];
const WORDS: &[&str] = &[
    "Dragonfly",
    "Nordic",
    "Acme",
    "Lumen",
    "Harbor",
    "Cobalt",
    "Verde",
    "Atlas",
    "Quartz",
    "Meridian",
    "Fjord",
    "Kestrel",
    "Orbit",
    "Pioneer",
    "Saffron",
    "Tundra",
    "Umbra",
    "Vantage",
    "Willow",
    "Zenith",
    "Café",
    "Größe",
];
const SUFFIX: &[&str] = &[
    "Inc", "Ltd", "GmbH", "S.A.", "AB", "BV", "Oy", "KK", "SARL", "LLC",
];
/// The seed's industries, vendor-neutral: each emulator seeds a company's industry as its own
/// list's label for it (`IndustryField::labels`).
pub const INDUSTRIES: &[&str] = &[
    "Technology",
    "Retail",
    "Manufacturing",
    "Healthcare",
    "Finance",
    "Education",
    "Hospitality",
    "Energy",
];
const TITLES: &[&str] = &[
    "CEO",
    "Head of Sales",
    "Account Manager",
    "Développeur",
    "Marketing Lead",
    "CFO",
    "Office Manager",
    "Engineer",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Stars Hollow", "CT", "United States"),
    ("München", "BY", "Germany"),
    ("São Paulo", "SP", "Brazil"),
    ("Kraków", "MA", "Poland"),
    ("Zürich", "ZH", "Switzerland"),
    ("Montréal", "QC", "Canada"),
    ("Tōkyō", "13", "Japan"),
    ("Lagos", "LA", "Nigeria"),
    ("Malmö", "M", "Sweden"),
    ("Sevilla", "AN", "Spain"),
];
const MALFORMED: &[&str] = &[
    "no-at-sign.example.com",
    "two@@example.com",
    "trailing@",
    "@leading.example",
    "sp ace@example.com",
];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn maybe<T>(rng: &mut StdRng, present: f64, make: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    if rng.random_bool(present) {
        Some(make(rng))
    } else {
        None
    }
}

/// The ASCII letters and digits of `s`, lower-cased, for email local parts and domains;
/// `fallback` when `s` has none (李, さくら).
fn ascii_slug(s: &str, fallback: &str) -> String {
    let slug: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if slug.is_empty() {
        fallback.to_owned()
    } else {
        slug
    }
}

// 2019-01-01 to 2025-12-31, so timestamps look like real CRM history.
const EPOCH_START_MS: i64 = 1_546_300_800_000;
const EPOCH_SPAN_MS: i64 = 220_838_400_000;

/// Record number `k` of a `shift` fault, created while a client pages through a listing: one
/// company (`company`) or one contact without a company, its values unique to `k`, created and
/// updated at `now_ms`. Emulators load it with their own `seed`, so it is stored as any record.
pub fn shifted(company: bool, k: u64, now_ms: i64) -> SeedData {
    let mut data = SeedData::default();
    if company {
        data.companies.push(SeedCompany {
            key: 0,
            name: Some(format!("Shifted Company {k}")),
            domain: Some(format!("shifted-{k}.example.com")),
            phone: None,
            industry: None,
            employee_count: None,
            annual_revenue: None,
            street: None,
            city: Some("Created Mid-Read".to_owned()),
            state: None,
            postal_code: None,
            country: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            region: None,
            seats: None,
            tier: None,
            owner: None,
        });
    } else {
        data.contacts.push(SeedContact {
            key: 0,
            email: Some(format!("shifted-{k}@example.com")),
            first_name: Some("Shifted".to_owned()),
            last_name: Some(format!("Contact {k}")),
            phone: None,
            mobile_phone: None,
            job_title: None,
            street: None,
            city: None,
            state: None,
            postal_code: None,
            country: None,
            email_opt_out: false,
            do_not_call: false,
            sms_opt_out: false,
            fax_opt_out: false,
            postal_opt_out: false,
            email_unsubscribed_types: Vec::new(),
            legal_basis: Vec::new(),
            company: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            favourite_colour: None,
            loyalty_points: None,
            owner: None,
        });
    }
    data
}

/// Generates `contacts` contacts and `contacts / 5` companies (at least one), deterministically
/// from `seed`, with the given share of deliberately messy records.
pub fn generate(contacts: usize, seed: u64, mess: &Mess) -> SeedData {
    let mut rng = StdRng::seed_from_u64(seed);
    let company_count = (contacts / 5).max(1);
    let companies: Vec<SeedCompany> = (0..company_count)
        .map(|key| {
            let base = format!("{} {}", pick(&mut rng, WORDS), pick(&mut rng, WORDS));
            let name = format!("{base} {}", pick(&mut rng, SUFFIX));
            let (city, state, country) = CITIES[rng.random_range(0..CITIES.len())];
            let created = EPOCH_START_MS + rng.random_range(0..EPOCH_SPAN_MS);
            SeedCompany {
                key,
                domain: maybe(&mut rng, 0.9, |_| {
                    format!("{}{key}.example.com", ascii_slug(&base, "company"))
                }),
                name: Some(name),
                phone: maybe(&mut rng, 0.8, |rng| {
                    format!(
                        "+1 555 {:03} {:04}",
                        key % 1000,
                        rng.random_range(0..10_000)
                    )
                }),
                industry: maybe(&mut rng, 0.85, |rng| pick(rng, INDUSTRIES).to_owned()),
                employee_count: maybe(&mut rng, 0.7, |rng| rng.random_range(1..50_000)),
                annual_revenue: maybe(&mut rng, 0.6, |rng| {
                    f64::from(rng.random_range(10_000u32..900_000_000)) + 0.5
                }),
                street: maybe(&mut rng, 0.7, |rng| {
                    format!("{} {} Street", rng.random_range(1..999), pick(rng, WORDS))
                }),
                city: maybe(&mut rng, 0.8, |_| city.to_owned()),
                state: maybe(&mut rng, 0.6, |_| state.to_owned()),
                postal_code: maybe(&mut rng, 0.7, |rng| {
                    format!("{:05}", rng.random_range(0..100_000))
                }),
                country: maybe(&mut rng, 0.8, |_| country.to_owned()),
                created_at_ms: created,
                updated_at_ms: created + rng.random_range(0..86_400_000 * 300),
                region: None,
                seats: None,
                tier: None,
                owner: None,
            }
        })
        .collect();

    let mut seeded: Vec<SeedContact> = Vec::with_capacity(contacts);
    for key in 0..contacts {
        let first = pick(&mut rng, FIRST).to_owned();
        let last = pick(&mut rng, LAST).to_owned();
        let (city, state, country) = CITIES[rng.random_range(0..CITIES.len())];
        let created = EPOCH_START_MS + rng.random_range(0..EPOCH_SPAN_MS);
        let roll: f64 = rng.random();
        let email = if roll < mess.malformed_email {
            Some(format!("{key}{}", pick(&mut rng, MALFORMED)))
        } else if roll < mess.malformed_email + mess.duplicate_email && key > 0 {
            seeded[rng.random_range(0..key)].email.clone()
        } else {
            maybe(&mut rng, 0.97, |rng| {
                format!(
                    "{}.{}{key}@{}.example.org",
                    ascii_slug(&first, "contact"),
                    ascii_slug(&last, "person"),
                    ascii_slug(pick(rng, WORDS), "mail")
                )
            })
        };
        let job_title = if rng.random_bool(mess.overlong_title) {
            Some("Senior Vice President of ".repeat(8))
        } else {
            maybe(&mut rng, 0.6, |rng| pick(rng, TITLES).to_owned())
        };
        let has_email = email.is_some();
        seeded.push(SeedContact {
            key,
            email,
            first_name: maybe(&mut rng, 0.95, |_| first),
            last_name: (!rng.random_bool(mess.missing_last_name)).then_some(last),
            phone: maybe(&mut rng, 0.6, |rng| {
                format!(
                    "+44 20 {:04} {:04}",
                    rng.random_range(0..10_000),
                    key % 10_000
                )
            }),
            // A contact opted out of text messages has a mobile number: the opt-out is the
            // number's where the vendor keeps it per subscriber (HubSpot). Drawn from the key,
            // after the generator, so every other seeded value stays as it was.
            mobile_phone: maybe(&mut rng, 0.4, |rng| {
                format!("+49 151 {:08}", rng.random_range(0..100_000_000))
            })
            .or_else(|| {
                channel_opt_out(key, 2, mess.opt_out_channels)
                    .then(|| format!("+49 151 {:08}", 10_000_000 + key))
            }),
            job_title,
            street: maybe(&mut rng, 0.5, |rng| {
                format!("{} {} Road", rng.random_range(1..999), pick(rng, WORDS))
            }),
            city: maybe(&mut rng, 0.7, |_| city.to_owned()),
            state: maybe(&mut rng, 0.5, |_| state.to_owned()),
            postal_code: maybe(&mut rng, 0.6, |rng| {
                format!("{:05}", rng.random_range(0..100_000))
            }),
            country: maybe(&mut rng, 0.7, |_| country.to_owned()),
            email_opt_out: rng.random_bool(0.15) && (mess.opt_out_without_email || has_email),
            do_not_call: channel_opt_out(key, 1, mess.opt_out_channels),
            sms_opt_out: channel_opt_out(key, 2, mess.opt_out_channels),
            fax_opt_out: channel_opt_out(key, 3, mess.opt_out_channels),
            postal_opt_out: channel_opt_out(key, 4, mess.opt_out_channels),
            email_unsubscribed_types: SUBSCRIPTION_TYPES
                .iter()
                .zip(5..)
                .filter(|&(_, channel)| {
                    has_email && channel_opt_out(key, channel, mess.opt_out_channels)
                })
                .map(|(name, _)| *name)
                .collect(),
            legal_basis: legal_basis(key, mess.legal_bases),
            company: (!rng.random_bool(mess.no_company))
                .then(|| rng.random_range(0..company_count)),
            created_at_ms: created,
            updated_at_ms: created + rng.random_range(0..86_400_000 * 300),
            favourite_colour: None,
            loyalty_points: None,
            owner: None,
        });
    }
    let mut data = SeedData {
        companies,
        contacts: seeded,
        ..SeedData::default()
    };
    fill_custom_fields(&mut data, seed);
    fill_sales(&mut data, seed);
    data
}

/// Gives the custom fields their values from a generator of their own, so that the standard
/// fields stay exactly what the same seed gave before custom fields existed.
fn fill_custom_fields(data: &mut SeedData, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x05ee_dc05_70f1_e1d5);
    for company in &mut data.companies {
        company.region = maybe(&mut rng, 0.8, |rng| pick(rng, REGIONS).to_owned());
        company.seats = maybe(&mut rng, 0.7, |rng| rng.random_range(1..5_000));
        company.tier = maybe(&mut rng, 0.75, |rng| pick(rng, TIERS));
    }
    for contact in &mut data.contacts {
        contact.favourite_colour = maybe(&mut rng, 0.6, |rng| pick(rng, COLOURS).to_owned());
        contact.loyalty_points = maybe(&mut rng, 0.5, |rng| rng.random_range(0..100_000));
    }
}

/// Gives owners to companies and contacts, and generates deals (a quarter as many as contacts)
/// and notes (half as many), from a generator of their own so that companies and contacts stay
/// what the same seed gave before. Deal 0 has five contacts and note 0 hangs on a deal, a contact
/// and a company, when the data set is large enough; deals sit in every stage of every pipeline
/// in turn, won and lost included.
fn fill_sales(data: &mut SeedData, seed: u64) {
    use crate::accounts::{PIPELINES, USERS};
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0dea_15a1_e5ca_11ed);
    let owner = |rng: &mut StdRng| maybe(rng, 0.9, |rng| rng.random_range(0..USERS.len()));
    for company in &mut data.companies {
        company.owner = owner(&mut rng);
    }
    for contact in &mut data.contacts {
        contact.owner = owner(&mut rng);
    }
    let mut staff: Vec<Vec<usize>> = vec![Vec::new(); data.companies.len()];
    for contact in &data.contacts {
        if let Some(company) = contact.company {
            staff[company].push(contact.key);
        }
    }
    let stages: Vec<(usize, usize)> = PIPELINES
        .iter()
        .enumerate()
        .flat_map(|(p, pipeline)| (0..pipeline.stages.len()).map(move |s| (p, s)))
        .collect();
    let deal_count = data.contacts.len() / 4;
    for key in 0..deal_count {
        let company = maybe(&mut rng, 0.9, |rng| {
            rng.random_range(0..data.companies.len())
        });
        let wanted = if key == 0 {
            5
        } else {
            rng.random_range(0..=5usize)
        };
        let pool: &[usize] = match company {
            Some(c) if staff[c].len() >= wanted => &staff[c],
            _ => &[],
        };
        let mut contacts: Vec<usize> = Vec::with_capacity(wanted);
        let mut tries = 0;
        while contacts.len() < wanted && tries < 50 && !data.contacts.is_empty() {
            tries += 1;
            let pick = if pool.is_empty() {
                rng.random_range(0..data.contacts.len())
            } else {
                pool[rng.random_range(0..pool.len())]
            };
            if !contacts.contains(&pick) {
                contacts.push(pick);
            }
        }
        let (pipeline, stage) = stages[key % stages.len()];
        let created = EPOCH_START_MS + rng.random_range(0..EPOCH_SPAN_MS);
        let close = created / 86_400_000 + rng.random_range(7..200);
        let word = pick(&mut rng, WORDS);
        data.deals.push(SeedDeal {
            key,
            name: match company {
                Some(c) => format!(
                    "{} – {word} {}",
                    data.companies[c].name.as_deref().unwrap_or("Company"),
                    if pipeline == 1 { "renewal" } else { "deal" }
                ),
                None => format!("{word} opportunity {key}"),
            },
            amount: maybe(&mut rng, 0.9, |rng| {
                f64::from(rng.random_range(500u32..2_000_000)) + 0.25
            }),
            currency: pick(&mut rng, &["USD", "USD", "USD", "EUR", "GBP"]),
            close_date: civil_date(close),
            pipeline,
            stage,
            owner: owner(&mut rng),
            company,
            contacts,
            created_at_ms: created,
            updated_at_ms: created + rng.random_range(0..86_400_000 * 120),
        });
    }
    let note_count = data.contacts.len() / 2;
    for key in 0..note_count {
        let mut parents = Vec::new();
        let deal = |rng: &mut StdRng| SeedParent::Deal(rng.random_range(0..deal_count));
        let contact =
            |rng: &mut StdRng| SeedParent::Contact(rng.random_range(0..data.contacts.len()));
        let company =
            |rng: &mut StdRng| SeedParent::Company(rng.random_range(0..data.companies.len()));
        if key == 0 && deal_count > 0 {
            parents.extend([deal(&mut rng), contact(&mut rng), company(&mut rng)]);
        } else {
            match rng.random_range(0..10) {
                0..=3 => parents.push(contact(&mut rng)),
                4..=5 => parents.push(company(&mut rng)),
                6..=7 if deal_count > 0 => parents.push(deal(&mut rng)),
                8 if deal_count > 0 => parents.extend([deal(&mut rng), contact(&mut rng)]),
                _ => parents.extend([contact(&mut rng), company(&mut rng)]),
            }
        }
        let (body, html) = note_body(&mut rng, key);
        data.notes.push(SeedNote {
            key,
            body,
            html,
            timestamp_ms: EPOCH_START_MS + rng.random_range(0..EPOCH_SPAN_MS),
            owner: owner(&mut rng),
            parents,
        });
    }
}

/// A note's text: plain or HTML (with entities and line breaks), some of it non-ASCII.
fn note_body(rng: &mut StdRng, key: usize) -> (String, bool) {
    const TOPICS: &[&str] = &[
        "Called about the renewal; they want a 3-year term",
        "Rappel : envoyer le devis révisé avant vendredi",
        "Kunde wünscht eine Demo für das Team in München",
        "見積書を送付しました。来週フォローアップ予定",
        "Asked for references & a security review",
        "Budget approved < €50k; procurement next",
    ];
    let first = pick(rng, TOPICS);
    let second = pick(rng, TOPICS);
    if key.is_multiple_of(3) {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        (
            format!(
                "<p>{}</p><p>Next: <b>{}</b><br>Ref #{key}</p>",
                escape(first),
                escape(second)
            ),
            true,
        )
    } else {
        (format!("{first}.\nNext: {second}.\nRef #{key}"), false)
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
fn civil_date(days: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

const REGIONS: &[&str] = &["EMEA", "North America", "LATAM", "APAC", "Nordics", "DACH"];
const COLOURS: &[&str] = &["Teal", "Bleu ciel", "Grün", "Crimson", "Ochre", "紫"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data() {
        assert_eq!(
            generate(500, 7, &Mess::default()),
            generate(500, 7, &Mess::default())
        );
        assert_ne!(
            generate(500, 7, &Mess::default()),
            generate(500, 8, &Mess::default())
        );
    }

    #[test]
    fn data_is_messy_in_the_promised_ways() {
        let data = generate(20_000, 1, &Mess::default());
        assert_eq!(data.companies.len(), 4_000);
        let c = &data.contacts;
        assert!(
            c.iter().any(|x| x.last_name.is_none()),
            "missing last names"
        );
        assert!(
            c.iter().any(|x| x.company.is_none()),
            "contacts without company"
        );
        assert!(c.iter().any(|x| {
            x.email
                .as_deref()
                .is_some_and(|e| MALFORMED.iter().any(|m| e.ends_with(m)))
        }));
        assert!(c.iter().any(|x| {
            x.job_title
                .as_deref()
                .is_some_and(|t| t.chars().count() > 128)
        }));
        assert!(
            c.iter()
                .any(|x| x.first_name.as_deref().is_some_and(|n| !n.is_ascii())),
            "non-ASCII names"
        );
        let mut emails: Vec<&str> = c.iter().filter_map(|x| x.email.as_deref()).collect();
        let total = emails.len();
        emails.sort_unstable();
        emails.dedup();
        assert!(emails.len() < total, "duplicate emails");
        assert!(c.iter().any(|x| x.email_opt_out) && c.iter().any(|x| !x.email_opt_out));
    }

    #[test]
    fn clean_data_emails_are_well_formed() {
        let data = generate(5_000, 3, &Mess::none());
        for email in data.contacts.iter().filter_map(|c| c.email.as_deref()) {
            let (local, domain) = email.split_once('@').expect("an @");
            assert!(
                !local.starts_with('.') && !local.contains("..") && domain.contains('.'),
                "{email}"
            );
        }
    }

    #[test]
    fn deals_and_notes_cover_what_the_tests_need() {
        let data = generate(2_000, 5, &Mess::default());
        assert_eq!(data.deals.len(), 500);
        assert_eq!(data.notes.len(), 1_000);
        assert_eq!(data.deals[0].contacts.len(), 5);
        assert!(data.deals.iter().any(|d| d.contacts.is_empty()));
        for pipeline in 0..crate::accounts::PIPELINES.len() {
            for stage in 0..crate::accounts::PIPELINES[pipeline].stages.len() {
                assert!(
                    data.deals
                        .iter()
                        .any(|d| d.pipeline == pipeline && d.stage == stage)
                );
            }
        }
        assert_eq!(data.notes[0].parents.len(), 3);
        assert!(data.notes.iter().any(|n| n.html) && data.notes.iter().any(|n| !n.html));
        assert!(data.notes.iter().any(|n| !n.body.is_ascii()));
        assert!(data.deals.iter().all(|d| d.close_date.len() == 10));
        assert!(data.companies.iter().any(|c| c.owner.is_some()));
        assert!(data.contacts.iter().any(|c| c.owner.is_none()));
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_819), "2027-01-01");
    }

    #[test]
    fn clean_data_has_no_invalid_records() {
        let data = generate(5_000, 3, &Mess::none());
        assert!(data.contacts.iter().all(|x| x.last_name.is_some()));
        assert!(data.contacts.iter().all(|x| {
            x.job_title
                .as_deref()
                .is_none_or(|t| t.chars().count() <= 128)
        }));
    }
}
