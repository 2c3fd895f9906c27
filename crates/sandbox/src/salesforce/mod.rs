//! An in-memory emulator of the Salesforce REST API, faithful to its documentation for what
//! ferry uses: the OAuth client-credentials token, `describe` (with the sandbox's seeded custom
//! fields), custom fields created through the Tooling API and granted with `FieldPermissions`
//! (`metadata.rs`), sObject Collections (create,
//! update, upsert by external id, at most 200 records, per-record results, allOrNone), SOQL
//! queries with `nextRecordsUrl` paging (locators expire two days after their query),
//! `/limits`, the `Sforce-Limit-Info` header and the daily API allocation (403
//! `REQUEST_LIMIT_EXCEEDED`). See `docs/connectors/salesforce.md` for what it does not
//! reproduce.
//!
//! Besides Account and Contact, every org has its users (`User`, the owners `OwnerId` points
//! at) and its opportunity stages (`OpportunityStage`, the `StageName` picklist), and holds
//! Opportunity, OpportunityContactRole and classic Note records.
//!
//! Records live in per-object tables indexed by row (the record id encodes the row) and by
//! external id, so a write or a lookup costs the same with a million records as with ten.
//! Account and Contact rows are the store's own; the other objects' rows are tables of the
//! sandbox's shared engine (`crate::table`), read by the same SOQL engine.

mod body;
mod bulk;
mod faults;
mod metadata;
mod schema;
mod soql;
mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value as Json, json};

use crate::faults::Faults;
use crate::seed::{SeedData, SeedParent};
use body::{FieldValue, Record};
pub use schema::EXTERNAL_ID_FIELD;
use schema::{ObjectKind, Val};
use store::{Item, Mode, Planned, RequestError, Store};

/// The API versions the emulator serves (and lists at `GET /services/data/`).
pub const VERSIONS: std::ops::RangeInclusive<u32> = 50..=66;
/// Most records one sObject Collections request may carry.
pub const COLLECTION_LIMIT: usize = 200;
/// Longest request URI accepted (Salesforce answers 414 beyond its limit).
pub const MAX_URI_BYTES: usize = 16_384;
/// How many query cursors the emulator keeps, to bound its memory; older ones answer
/// `INVALID_QUERY_LOCATOR`. (Salesforce itself has no limit on open cursors since API 56.0.)
const OPEN_CURSORS: usize = 256;
/// How long Salesforce keeps a query's locator and results: "available for two days after the
/// initial query executes".
pub const QUERY_LOCATOR_LIFETIME: Duration = Duration::from_secs(2 * 24 * 3600);
/// The org id of an emulator whose options name none and whose number is `n`: 18 characters
/// starting `00D`, like Salesforce's org ids.
fn org_id(n: u64) -> String {
    format!("00D8d{n:010}AAA")
}

/// Emulator options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Injected faults.
    pub faults: Faults,
    /// The connected app's client id accepted at the token endpoint.
    pub client_id: String,
    /// The connected app's client secret accepted at the token endpoint.
    pub client_secret: String,
    /// The org's rolling 24-hour API allocation; past it every call gets 403
    /// `REQUEST_LIMIT_EXCEEDED`.
    pub daily_api_limit: u64,
    /// Whether Account and Contact have the `Ferry_Source_Id__c` external-id field. `false`
    /// starts an org where the operator has not created it yet.
    pub external_id_fields: bool,
    /// How long an access token stays valid; `None`: for the emulator's lifetime. (Salesforce
    /// tokens last for the session timeout set on the org, and the response does not say.)
    pub token_lifetime: Option<Duration>,
    /// How long a query locator (`nextRecordsUrl`) stays usable after the query that opened it;
    /// then it answers 400 `INVALID_QUERY_LOCATOR`. Default two days, as Salesforce documents.
    pub query_locator_lifetime: Duration,
    /// The org id (userinfo's `organization_id`, the token's identity URL). `None`: an id of
    /// its own, so two emulators are two orgs; set it to make two emulators claim one org.
    pub org_id: Option<String>,
    /// Whether the org has multiple currencies enabled (records carry `CurrencyIsoCode`).
    /// `false` is how most orgs run: every amount is in the corporate currency
    /// ([`CORPORATE_CURRENCY`], `Organization.DefaultCurrencyIsoCode`) and no record has a
    /// currency field.
    pub multi_currency: bool,
}

/// The emulated org's corporate currency: what a record gets when a write names none, and
/// every amount's currency in a single-currency org.
pub const CORPORATE_CURRENCY: &str = schema::CURRENCIES[0];

impl Default for Options {
    fn default() -> Self {
        Options {
            faults: Faults::default(),
            client_id: crate::SALESFORCE_CLIENT_ID.to_owned(),
            client_secret: crate::SALESFORCE_CLIENT_SECRET.to_owned(),
            daily_api_limit: 100_000,
            external_id_fields: true,
            token_lifetime: None,
            query_locator_lifetime: QUERY_LOCATOR_LIFETIME,
            org_id: None,
            multi_currency: true,
        }
    }
}

/// Loads what an org is configured with before any record: the integration user every token
/// acts as (row 0, [`metadata::USER_ID`]), the account's users ([`crate::accounts::account_users`],
/// deactivated ones with `IsActive` false), and the `OpportunityStage` rows of the org's
/// stages, in order.
fn set_up_org(store: &mut Store) {
    let text = |s: &str| Some(Val::Str(s.into()));
    let user = |store: &mut Store, username: &str, email: &str, first: &str, last: &str, active| {
        store.insert_seeded(
            ObjectKind::User,
            vec![
                ("Username", text(username)),
                ("Email", text(email)),
                ("FirstName", text(first)),
                ("LastName", text(last)),
                ("Name", text(&format!("{first} {last}"))),
                ("IsActive", Some(Val::Bool(active))),
                ("ProfileId", text(metadata::PROFILE_ID)),
            ],
            ORG_CREATED_MS,
            ORG_CREATED_MS,
        );
    };
    user(
        store,
        "integration@sandbox.example",
        "integration@sandbox.example",
        "Integration",
        "User",
        true,
    );
    for u in crate::accounts::account_users("salesforce") {
        let username = u.email.to_lowercase();
        user(
            store,
            &username,
            &u.email,
            u.first_name,
            u.last_name,
            u.active,
        );
    }
    store.insert_seeded(
        ObjectKind::Organization,
        vec![
            ("Name", text("Sandbox Org")),
            ("DefaultCurrencyIsoCode", text(CORPORATE_CURRENCY)),
            ("IsSandbox", Some(Val::Bool(false))),
        ],
        ORG_CREATED_MS,
        ORG_CREATED_MS,
    );
    for (i, stage) in schema::stages().iter().enumerate() {
        store.insert_seeded(
            ObjectKind::OpportunityStage,
            vec![
                ("MasterLabel", text(stage.label)),
                ("ApiName", text(stage.label)),
                ("IsActive", Some(Val::Bool(true))),
                ("IsClosed", Some(Val::Bool(stage.closed))),
                ("IsWon", Some(Val::Bool(stage.won))),
                ("SortOrder", Some(Val::Int(i as i64 + 1))),
                ("DefaultProbability", Some(Val::Num(stage.probability))),
                ("ForecastCategoryName", text(stage.forecast)),
            ],
            ORG_CREATED_MS,
            ORG_CREATED_MS,
        );
    }
}

/// When the emulated org was set up (its users' and stages' `CreatedDate`): 2019-01-01.
const ORG_CREATED_MS: i64 = 1_546_300_800_000;

/// The user row of each seed user ([`crate::accounts::USERS`] key → row), as [`set_up_org`]
/// loads them; the integration user (row 0) for a user the org lacks.
fn user_rows() -> Vec<u32> {
    let users = crate::accounts::account_users("salesforce");
    (0..crate::accounts::USERS.len())
        .map(|k| {
            users
                .iter()
                .position(|u| u.key == k)
                .map_or(0, |at| at as u32 + 1)
        })
        .collect()
}

/// A note's HTML as the plain text a classic Note holds: paragraphs and line breaks become new
/// lines, other tags go, the entities the generator writes are decoded.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = &rest[open..];
            break;
        };
        let tag = rest[open + 1..open + close].to_ascii_lowercase();
        if (tag == "/p" || tag.starts_with("br")) && !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.trim_end()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// What [`Emulator::seed`] loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Accounts created.
    pub accounts: usize,
    /// Contacts created.
    pub contacts: usize,
    /// Generated contacts left out because Salesforce could not hold them (no last name, a
    /// malformed email, an over-long title): a real org never contains such records.
    pub skipped_contacts: usize,
    /// Opportunities created.
    pub opportunities: usize,
    /// Contact roles created (a deal's contacts that were seeded).
    pub contact_roles: usize,
    /// Notes created (each on one parent: its deal, else its contact, else its company).
    pub notes: usize,
    /// Generated notes left out: none of their parents was seeded, or the body is longer than
    /// a Note holds.
    pub skipped_notes: usize,
}

struct Cursor {
    planned: Planned,
    batch: usize,
    /// When the query ran: its locator expires a fixed time after, however it is used.
    opened: Instant,
}

#[derive(Default)]
struct Cursors {
    open: HashMap<String, Arc<Cursor>>,
    order: VecDeque<String>,
}

struct Shared {
    options: Options,
    /// The org id: the option's, or one of this emulator's own.
    org_id: String,
    store: RwLock<Store>,
    /// Access token → when it was issued.
    tokens: Mutex<HashMap<String, Instant>>,
    /// Field-level security granted through `FieldPermissions` rows, and created fields.
    setup: Mutex<metadata::Setup>,
    usage: AtomicU64,
    cursors: Mutex<Cursors>,
    next_cursor: AtomicU64,
    /// The org's clock ([`Emulator::advance_clock`] moves it).
    clock: crate::clock::Clock,
    /// Bulk API 2.0 jobs.
    bulk: Mutex<bulk::Jobs>,
}

impl Shared {
    /// The org's clock: what changes are stamped with and what the `Date` header says.
    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// The emulator's shared state; clones share the same org.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

/// Salesforce's error body: `[{"message": …, "errorCode": …}]`.
fn sf_error(status: StatusCode, error_code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!([{"message": message, "errorCode": error_code}])),
    )
        .into_response()
}

fn request_error(e: RequestError) -> Response {
    sf_error(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        e.error_code,
        &e.message,
    )
}

fn not_found() -> Response {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// The injected throttling response: Salesforce's error shape, with `Retry-After` if given.
fn salesforce_429(retry_after: Option<u64>) -> Response {
    let mut response = sf_error(
        StatusCode::TOO_MANY_REQUESTS,
        "REQUEST_LIMIT_EXCEEDED",
        "Too many requests: the sandbox is injecting throttling.",
    );
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Emulator {
    /// A new, empty org: no records, but its users and its opportunity stages, as every org
    /// is set up.
    pub fn new(options: Options) -> Emulator {
        let mut store = Store::new(options.external_id_fields, options.multi_currency);
        set_up_org(&mut store);
        Emulator {
            shared: Arc::new(Shared {
                org_id: options
                    .org_id
                    .clone()
                    .unwrap_or_else(|| org_id(crate::new_account_number())),
                options,
                store: RwLock::new(store),
                tokens: Mutex::new(HashMap::new()),
                setup: Mutex::new(metadata::Setup::default()),
                usage: AtomicU64::new(0),
                cursors: Mutex::new(Cursors::default()),
                next_cursor: AtomicU64::new(1),
                clock: crate::clock::Clock::default(),
                bulk: Mutex::default(),
            }),
        }
    }

    /// Loads generated data as native Salesforce records: companies become Accounts, contacts
    /// Contacts linked to their Account. No external ids are set (these records were born in
    /// Salesforce). Contacts Salesforce would refuse are left out and counted.
    pub fn seed(&self, data: &SeedData) -> Seeded {
        let mut store = self.shared.store.write().unwrap_or_else(|e| e.into_inner());
        let mut seeded = Seeded::default();
        let users = user_rows();
        // A seeded record's owner; the integration user when the seed names none.
        let owner_row =
            |key: Option<usize>| Val::Ref(key.and_then(|k| users.get(k).copied()).unwrap_or(0));
        let mut account_rows = Vec::with_capacity(data.companies.len());
        let text = |v: &Option<String>| {
            v.as_deref()
                .and_then(schema::normalise_text)
                .map(|s| Val::Str(s.into()))
        };
        for c in &data.companies {
            let values = vec![
                ("Name", text(&c.name)),
                ("Website", text(&c.domain)),
                ("Phone", text(&c.phone)),
                ("Industry", text(&c.industry)),
                (
                    "NumberOfEmployees",
                    c.employee_count.map(|n| Val::Int(i64::from(n))),
                ),
                ("AnnualRevenue", c.annual_revenue.map(Val::Num)),
                ("BillingStreet", text(&c.street)),
                ("BillingCity", text(&c.city)),
                ("BillingState", text(&c.state)),
                ("BillingPostalCode", text(&c.postal_code)),
                ("BillingCountry", text(&c.country)),
                ("Region__c", text(&c.region)),
                ("Seats__c", c.seats.map(|n| Val::Num(f64::from(n)))),
                ("Tier__c", c.tier.map(|t| Val::Str(t.into()))),
                ("OwnerId", Some(owner_row(c.owner))),
            ];
            account_rows.push(store.insert_seeded(
                ObjectKind::Account,
                values,
                c.created_at_ms,
                c.updated_at_ms,
            ));
            seeded.accounts += 1;
        }
        let contact_schema = Arc::clone(&store.table(ObjectKind::Contact).schema);
        let checked = |name: &str, v: &Option<String>| -> Result<Option<Val>, ()> {
            let Some(raw) = v else { return Ok(None) };
            let def = contact_schema
                .field(name)
                .map(|i| &contact_schema.fields[i])
                .ok_or(())?;
            store::convert_text(def, raw).map_err(|_| ())
        };
        let mut contact_rows: Vec<Option<u32>> = Vec::with_capacity(data.contacts.len());
        for c in &data.contacts {
            let values: Result<Vec<(&str, Option<Val>)>, ()> = (|| {
                let last = checked("LastName", &c.last_name)?;
                if last.is_none() {
                    return Err(());
                }
                Ok(vec![
                    ("FirstName", checked("FirstName", &c.first_name)?),
                    ("LastName", last),
                    ("Email", checked("Email", &c.email)?),
                    ("Phone", checked("Phone", &c.phone)?),
                    ("MobilePhone", checked("MobilePhone", &c.mobile_phone)?),
                    ("Title", checked("Title", &c.job_title)?),
                    ("MailingStreet", checked("MailingStreet", &c.street)?),
                    ("MailingCity", checked("MailingCity", &c.city)?),
                    ("MailingState", checked("MailingState", &c.state)?),
                    (
                        "MailingPostalCode",
                        checked("MailingPostalCode", &c.postal_code)?,
                    ),
                    ("MailingCountry", checked("MailingCountry", &c.country)?),
                    ("HasOptedOutOfEmail", Some(Val::Bool(c.email_opt_out))),
                    ("DoNotCall", Some(Val::Bool(c.do_not_call))),
                    ("HasOptedOutOfFax", Some(Val::Bool(c.fax_opt_out))),
                    (
                        "Favourite_Colour__c",
                        checked("Favourite_Colour__c", &c.favourite_colour)?,
                    ),
                    (
                        "Loyalty_Points__c",
                        c.loyalty_points.map(|n| Val::Num(f64::from(n))),
                    ),
                    (
                        "AccountId",
                        c.company
                            .and_then(|k| account_rows.get(k))
                            .map(|r| Val::Ref(*r)),
                    ),
                    ("OwnerId", Some(owner_row(c.owner))),
                ])
            })();
            match values {
                Ok(values) => {
                    contact_rows.push(Some(store.insert_seeded(
                        ObjectKind::Contact,
                        values,
                        c.created_at_ms,
                        c.updated_at_ms,
                    )));
                    seeded.contacts += 1;
                }
                Err(()) => {
                    contact_rows.push(None);
                    seeded.skipped_contacts += 1;
                }
            }
        }
        let mut deal_rows: Vec<Option<u32>> = Vec::with_capacity(data.deals.len());
        let name_def = {
            let schema = &store.table(ObjectKind::Opportunity).schema;
            schema.field("Name").map(|i| schema.fields[i].clone())
        };
        for d in &data.deals {
            let (pipeline, stage) = d.seed_stage();
            let label = crate::accounts::vendor_stage(DEAL_STAGES, pipeline.key, stage.key);
            let name = name_def
                .as_ref()
                .and_then(|def| store::convert_text(def, &d.name).ok().flatten());
            let stage = label.and_then(|l| schema::stages().iter().find(|s| s.label == l.stage));
            let (Some(stage), Some(name)) = (stage, name) else {
                deal_rows.push(None);
                continue;
            };
            let row = store.insert_seeded(
                ObjectKind::Opportunity,
                vec![
                    ("Name", Some(name)),
                    ("StageName", Some(Val::Str(stage.label.into()))),
                    // What a save derives from the stage, set at once rather than re-saved.
                    ("IsClosed", Some(Val::Bool(stage.closed))),
                    ("IsWon", Some(Val::Bool(stage.won))),
                    (
                        "ForecastCategoryName",
                        Some(Val::Str(stage.forecast.into())),
                    ),
                    ("Probability", Some(Val::Num(stage.probability))),
                    ("CloseDate", Some(Val::Str(d.close_date.as_str().into()))),
                    ("Amount", d.amount.map(Val::Num)),
                    ("CurrencyIsoCode", Some(Val::Str(d.currency.into()))),
                    (
                        "AccountId",
                        d.company
                            .and_then(|k| account_rows.get(k))
                            .map(|r| Val::Ref(*r)),
                    ),
                    ("OwnerId", Some(owner_row(d.owner))),
                ],
                d.created_at_ms,
                d.updated_at_ms,
            );
            deal_rows.push(Some(row));
            seeded.opportunities += 1;
            let mut primary = true;
            for (i, contact) in d.contacts.iter().enumerate() {
                let Some(contact) = contact_rows.get(*contact).copied().flatten() else {
                    continue;
                };
                let role = schema::CONTACT_ROLES[(d.key + i) % schema::CONTACT_ROLES.len()];
                store.insert_seeded(
                    ObjectKind::OpportunityContactRole,
                    vec![
                        ("OpportunityId", Some(Val::Ref(row))),
                        ("ContactId", Some(Val::Ref(contact))),
                        ("Role", Some(Val::Str(role.into()))),
                        ("IsPrimary", Some(Val::Bool(primary))),
                    ],
                    d.created_at_ms,
                    d.created_at_ms,
                );
                primary = false;
                seeded.contact_roles += 1;
            }
        }
        let body_max = {
            let schema = &store.table(ObjectKind::Note).schema;
            schema.field("Body").map_or(0, |i| schema.fields[i].length)
        };
        for n in &data.notes {
            // One parent: the first of deal, contact, company that the org holds.
            let parent = [0, 1, 2].into_iter().find_map(|rank| {
                n.parents.iter().find_map(|p| match (rank, *p) {
                    (0, SeedParent::Deal(k)) => deal_rows
                        .get(k)
                        .copied()
                        .flatten()
                        .map(|r| (ObjectKind::Opportunity, r)),
                    (1, SeedParent::Contact(k)) => contact_rows
                        .get(k)
                        .copied()
                        .flatten()
                        .map(|r| (ObjectKind::Contact, r)),
                    (2, SeedParent::Company(k)) => {
                        account_rows.get(k).map(|r| (ObjectKind::Account, *r))
                    }
                    _ => None,
                })
            });
            let body = if n.html {
                html_to_text(&n.body)
            } else {
                n.body.clone()
            };
            let (Some((parent, parent_row)), true) = (parent, body.chars().count() <= body_max)
            else {
                seeded.skipped_notes += 1;
                continue;
            };
            let title: String = body
                .lines()
                .next()
                .unwrap_or("Note")
                .trim()
                .chars()
                .take(80)
                .collect();
            store.insert_seeded(
                ObjectKind::Note,
                vec![
                    ("Title", Some(Val::Str(title.into()))),
                    ("Body", Some(Val::Str(body.into()))),
                    ("ParentId", Some(Val::Poly(parent, parent_row))),
                    ("OwnerId", Some(owner_row(n.owner))),
                    ("IsPrivate", Some(Val::Bool(false))),
                ],
                n.timestamp_ms,
                n.timestamp_ms,
            );
            seeded.notes += 1;
        }
        tracing::debug!(
            accounts = seeded.accounts,
            contacts = seeded.contacts,
            skipped = seeded.skipped_contacts,
            opportunities = seeded.opportunities,
            contact_roles = seeded.contact_roles,
            notes = seeded.notes,
            skipped_notes = seeded.skipped_notes,
            "seeded salesforce"
        );
        seeded
    }

    /// How many records of `sobject` (`"Account"`, `"Contact"`, `"Opportunity"`, `"Note"`, …)
    /// the org holds.
    pub fn count(&self, sobject: &str) -> usize {
        let Some(object) = ObjectKind::parse(sobject) else {
            return 0;
        };
        self.shared
            .store
            .read()
            .map(|s| s.table(object).live_len())
            .unwrap_or(0)
    }

    /// The record of `sobject` whose `Ferry_Source_Id__c` is `external_id`, rendered with every
    /// field as a query would return it.
    pub fn record_by_external_id(&self, sobject: &str, external_id: &str) -> Option<Json> {
        let object = ObjectKind::parse(sobject)?;
        let store = self.shared.store.read().ok()?;
        let row = store.table(object).ext_row(external_id)?;
        render_record(&store, object, row, "v62.0")
    }

    /// The org id, as userinfo and the token's identity URL report it.
    pub fn org_id(&self) -> &str {
        &self.shared.org_id
    }
}

/// Row `row` of `object` with every readable field, as a query selecting them all would
/// return it (what `GET /sobjects/{SObject}/{id}` answers).
fn render_record(store: &Store, object: ObjectKind, row: u32, version: &str) -> Option<Json> {
    {
        let fields: Vec<String> = store
            .table(object)
            .schema
            .fields
            .iter()
            .filter(|f| f.readable)
            .map(|f| f.name.to_owned())
            .collect();
        let q = soql::parse(&format!(
            "SELECT {} FROM {}",
            fields.join(", "),
            object.name()
        ))
        .ok()?;
        let planned = store.run(&q).ok()?;
        store.render(&planned, &[row], version).pop()
    }
}

impl Emulator {
    /// API calls counted against the daily allocation so far.
    pub fn api_usage(&self) -> u64 {
        self.shared.usage.load(Ordering::Relaxed)
    }

    /// Sets the API calls counted against the daily allocation: other integrations' calls
    /// (a higher count), or the rolling 24 hours moving on (0: a new day).
    pub fn set_api_usage(&self, used: u64) {
        self.shared.usage.store(used, Ordering::Relaxed);
    }

    /// Invalidates every access token issued so far, as a session timeout or a revoked
    /// session does: the next call with one gets 401 `INVALID_SESSION_ID`.
    pub fn expire_tokens(&self) {
        if let Ok(mut tokens) = self.shared.tokens.lock() {
            tokens.clear();
        }
    }

    /// Invalidates every open query locator, as their expiry does: following a
    /// `nextRecordsUrl` handed out so far answers 400 `INVALID_QUERY_LOCATOR`.
    pub fn expire_query_locators(&self) {
        if let Ok(mut cursors) = self.shared.cursors.lock() {
            cursors.open.clear();
            cursors.order.clear();
        }
    }

    /// Moves the org's clock `by` ahead, as time passing would: later changes are stamped
    /// (`SystemModstamp`, `LastModifiedDate`) and answers dated (`Date`) that much later. A
    /// test hook, so that incremental reads are tested without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Empties the Recycle Bin of the deletes more than `older_than` before the org's clock, as
    /// `emptyRecycleBin` or the bin's own purge does: `getDeleted` no longer reports them, and
    /// its `earliestDateAvailable` moves to the last one purged. A test hook.
    pub fn purge_deleted(&self, older_than: Duration) {
        let ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        if let Ok(mut store) = self.shared.store.write() {
            store.purge_deleted(self.shared.now_ms().saturating_sub(ms));
        }
    }

    /// The HTTP routes, with the configured faults injected.
    pub fn router(&self) -> Router {
        let state = Arc::clone(&self.shared);
        let faulty: faults::Faulty = (Arc::clone(&state), Arc::default());
        let data = Router::new()
            .route("/services/data/{version}/limits", get(limits))
            .route(
                "/services/data/{version}/sobjects/{sobject}/describe",
                get(describe),
            )
            .route(
                "/services/data/{version}/tooling/sobjects/CustomField",
                axum::routing::any(metadata::create_custom_field),
            )
            .route(
                "/services/data/{version}/sobjects/{sobject}",
                axum::routing::any(metadata::create_record),
            )
            .route(
                "/services/data/{version}/sobjects/{sobject}/{id}",
                get(retrieve),
            )
            .route(
                "/services/data/{version}/sobjects/{sobject}/deleted/",
                get(get_deleted),
            )
            .route("/services/data/{version}/query", get(query))
            .route("/services/data/{version}/query/{locator}", get(query_more))
            .route("/services/data/{version}/queryAll", get(query_all))
            .route(
                "/services/data/{version}/queryAll/{locator}",
                get(query_more),
            )
            .route(
                "/services/data/{version}/composite/sobjects",
                post(create).patch(update).delete(delete),
            )
            .route(
                "/services/data/{version}/composite/sobjects/{sobject}/{field}",
                patch(upsert),
            )
            .route(
                "/services/data/{version}/jobs/ingest",
                post(bulk::create_ingest).get(bulk::list_ingest),
            )
            .route(
                "/services/data/{version}/jobs/ingest/{id}",
                get(bulk::ingest_info)
                    .patch(bulk::patch_ingest)
                    .delete(bulk::delete_ingest),
            )
            .route(
                "/services/data/{version}/jobs/ingest/{id}/batches",
                put(bulk::upload).layer(DefaultBodyLimit::max(bulk::MAX_UPLOAD_BYTES)),
            )
            .route(
                "/services/data/{version}/jobs/ingest/{id}/{set}",
                get(bulk::ingest_result_set),
            )
            .route(
                "/services/data/{version}/jobs/ingest/{id}/{set}/",
                get(bulk::ingest_result_set),
            )
            .route(
                "/services/data/{version}/jobs/query",
                post(bulk::create_query).get(bulk::list_query),
            )
            .route(
                "/services/data/{version}/jobs/query/{id}",
                get(bulk::query_info)
                    .patch(bulk::patch_query)
                    .delete(bulk::delete_query),
            )
            .route(
                "/services/data/{version}/jobs/query/{id}/results",
                get(bulk::query_results),
            )
            .route(
                "/services/data/{version}/{*rest}",
                axum::routing::any(|| async { not_found() }),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                faulty.clone(),
                faults::partial,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&state),
                guard,
            ));
        let router = Router::new()
            .route("/services/oauth2/token", post(token))
            .route("/services/oauth2/userinfo", get(userinfo))
            .route("/services/data", get(versions))
            .route("/services/data/", get(versions))
            .merge(data)
            .fallback(|| async { not_found() })
            .layer(axum::middleware::from_fn_with_state(
                state.clock.clone(),
                crate::clock::date_header,
            ))
            .with_state(state);
        let expiring = self.clone();
        let router = crate::faults::expiring(router, &self.shared.options.faults, move || {
            expiring.expire_tokens()
        });
        crate::faults::inject(router, self.shared.options.faults.clone(), salesforce_429)
    }
}

// ---- auth, versions, limits ----------------------------------------------------------------

#[derive(serde::Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            "invalid_request",
            "request must be application/x-www-form-urlencoded",
        );
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    if form.client_id.as_deref() != Some(s.options.client_id.as_str()) {
        return oauth_error("invalid_client_id", "client identifier invalid");
    }
    if form.client_secret.as_deref() != Some(s.options.client_secret.as_str()) {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let instance_url = format!("http://{host}");
    let org = &s.org_id;
    let access_token = format!("{}!{}", org.get(..15).unwrap_or(org), random_string(96));
    if let Ok(mut tokens) = s.tokens.lock() {
        tokens.insert(access_token.clone(), Instant::now());
    }
    axum::Json(json!({
        "access_token": access_token,
        "signature": format!("{}=", random_string(43)),
        "token_format": "opaque",
        "scope": "api",
        "instance_url": instance_url,
        "id": format!("{instance_url}/id/{org}/{}", metadata::USER_ID),
        "token_type": "Bearer",
        "issued_at": s.now_ms().to_string(),
    }))
    .into_response()
}

/// Whether the request carries a session this org issued and that has not expired
/// (`Authorization: Bearer …`, or the older `OAuth …`).
fn has_valid_session(s: &Shared, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("OAuth "))
        })
        .map(str::trim);
    token.is_some_and(|t| {
        s.tokens.lock().is_ok_and(|tokens| {
            tokens.get(t).is_some_and(|issued| {
                s.options
                    .token_lifetime
                    .is_none_or(|life| issued.elapsed() < life)
            })
        })
    })
}

/// `GET /services/oauth2/userinfo` (OpenID Connect): the token's user and org. A token that is
/// not valid gets the same 401 as the REST API. Not counted against the API allocation.
async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !has_valid_session(&s, &headers) {
        return sf_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let user = metadata::USER_ID;
    axum::Json(json!({
        "sub": format!("http://{host}/id/{}/{user}", s.org_id),
        "user_id": user,
        "organization_id": s.org_id,
        "preferred_username": "integration@sandbox.example",
        "nickname": "integration",
        "name": "Integration User",
        "zoneinfo": "America/Los_Angeles",
        "locale": "en_US",
        "user_type": "STANDARD",
        "active": true,
    }))
    .into_response()
}

fn release_label(v: u32) -> String {
    let offset = i64::from(v) - 60; // v60.0 is Spring '24
    let (season, year) = match offset.rem_euclid(3) {
        0 => ("Spring", 24 + offset.div_euclid(3)),
        1 => ("Summer", 24 + offset.div_euclid(3)),
        _ => ("Winter", 25 + offset.div_euclid(3)),
    };
    format!("{season} '{year:02}")
}

async fn versions() -> Response {
    let list: Vec<Json> = VERSIONS
        .map(|v| json!({"label": release_label(v), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    axum::Json(list).into_response()
}

fn supported_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| VERSIONS.contains(&v))
}

/// Version check, session check, API usage accounting and the `Sforce-Limit-Info` header, for
/// every `/services/data/vXX.X/…` call.
async fn guard(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let version = request
        .uri()
        .path()
        .trim_start_matches("/services/data/")
        .split('/')
        .next()
        .unwrap_or("");
    if !supported_version(version) {
        return not_found();
    }
    if !has_valid_session(&s, request.headers()) {
        return sf_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        );
    }
    let used = s.usage.fetch_add(1, Ordering::Relaxed) + 1;
    let max = s.options.daily_api_limit;
    let mut response = if used > max {
        sf_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    } else {
        next.run(request).await
    };
    if let Ok(value) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        response.headers_mut().insert("sforce-limit-info", value);
    }
    response
}

async fn limits(State(s): State<Arc<Shared>>) -> Response {
    let max = s.options.daily_api_limit;
    let used = s.usage.load(Ordering::Relaxed);
    axum::Json(json!({"DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)}}))
        .into_response()
}

// ---- describe ----------------------------------------------------------------------------

async fn describe(
    State(s): State<Arc<Shared>>,
    Path((version, sobject)): Path<(String, String)>,
) -> Response {
    let Some(object) = ObjectKind::parse(&sobject) else {
        return not_found();
    };
    let Ok(store) = s.store.read() else {
        return internal();
    };
    axum::Json(store.table(object).schema.describe(&version)).into_response()
}

/// `GET /services/data/vXX.X/sobjects/{SObject}/{id}`: one record with every field the user
/// may read; 404 `NOT_FOUND` for an id of no record of that object.
async fn retrieve(
    State(s): State<Arc<Shared>>,
    Path((version, sobject, id)): Path<(String, String, String)>,
) -> Response {
    let Some(object) = ObjectKind::parse(&sobject) else {
        return not_found();
    };
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let row = schema::parse_record_id(object, &id)
        .ok()
        .filter(|row| store.table(object).has(*row));
    match row.and_then(|row| render_record(&store, object, row, &version)) {
        Some(record) => axum::Json(record).into_response(),
        None => not_found(),
    }
}

/// `GET sobjects/{sobject}/deleted/?start=&end=` (getDeleted): the records deleted between
/// `start` and `end` (ISO 8601; the seconds are dropped, as Salesforce does), each with its
/// `deletedDate`, and `earliestDateAvailable` (see [`Store::deleted_between`]) and
/// `latestDateCovered` (`end` to the minute). No paging: the answer holds every id.
async fn get_deleted(
    State(s): State<Arc<Shared>>,
    Path((_version, sobject)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(object) = ObjectKind::parse(&sobject) else {
        return not_found();
    };
    let to_minute = |name: &str| {
        params
            .get(name)
            .and_then(|v| soql::parse_datetime(v))
            .map(|ms| ms - ms.rem_euclid(60_000))
    };
    let (Some(start), Some(end)) = (to_minute("start"), to_minute("end")) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "start and end must be ISO 8601 date-times",
        );
    };
    if end < start {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "end date cannot be before start date",
        );
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let (records, earliest) = store.deleted_between(object, start, end + 59_999, s.now_ms());
    let deleted: Vec<Json> = records
        .into_iter()
        .map(|(id, at)| json!({"id": id, "deletedDate": schema::format_datetime(at)}))
        .collect();
    axum::Json(json!({
        "deletedRecords": deleted,
        "earliestDateAvailable": schema::format_datetime(earliest),
        "latestDateCovered": schema::format_datetime(end),
    }))
    .into_response()
}

fn internal() -> Response {
    sf_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred.",
    )
}

// ---- sObject Collections -------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct CollectionBody<'a> {
    #[serde(rename = "allOrNone", default)]
    all_or_none: bool,
    #[serde(borrow)]
    records: Vec<Record<'a>>,
}

fn parse_collection(body: &Bytes) -> Result<CollectionBody<'_>, RequestError> {
    let parsed: CollectionBody = serde_json::from_slice(body).map_err(|e| {
        RequestError::bad_request("JSON_PARSER_ERROR", format!("Invalid JSON: {e}"))
    })?;
    if parsed.records.len() > COLLECTION_LIMIT {
        return Err(RequestError::bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    Ok(parsed)
}

/// The `attributes.type` of a record, if it gives one.
fn record_type<'r>(record: &'r Record<'_>) -> Option<&'r str> {
    match record.get("attributes")? {
        FieldValue::Other(attributes) => attributes.get("type")?.as_str(),
        _ => None,
    }
}

/// Each record with the sObject its `attributes.type` names (create and update by id).
fn typed_items<'a>(records: &'a [Record<'a>]) -> Result<Vec<Item<'a>>, RequestError> {
    records
        .iter()
        .map(|r| {
            let name = record_type(r).ok_or_else(|| {
                RequestError::bad_request("INVALID_TYPE", "Must send a concrete entity type.")
            })?;
            let object = ObjectKind::parse(name).ok_or_else(|| {
                RequestError::bad_request(
                    "INVALID_TYPE",
                    format!("sObject type '{name}' is not supported."),
                )
            })?;
            Ok((object, r))
        })
        .collect()
}

fn run_write(s: &Shared, items: Vec<Item<'_>>, mode: Mode, all_or_none: bool) -> Response {
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    match store.write(items, mode, all_or_none, s.now_ms()) {
        Ok(results) => axum::Json(results).into_response(),
        Err(e) => request_error(e),
    }
}

/// `POST` (create) or `PATCH` (update by id) `composite/sobjects`.
fn write_by_type(s: &Shared, body: &Bytes, mode: Mode) -> Response {
    let body = match parse_collection(body) {
        Ok(b) => b,
        Err(e) => return request_error(e),
    };
    match typed_items(&body.records) {
        Ok(items) => run_write(s, items, mode, body.all_or_none),
        Err(e) => request_error(e),
    }
}

async fn create(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    write_by_type(&s, &body, Mode::Create)
}

async fn update(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    write_by_type(&s, &body, Mode::Update)
}

/// `DELETE composite/sobjects?ids=a,b&allOrNone=false`: at most 200 ids, a result per id.
async fn delete(
    State(s): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let ids: Vec<&str> = params
        .get("ids")
        .map(|ids| {
            ids.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids: The ids parameter is required",
        );
    }
    if ids.len() > COLLECTION_LIMIT {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let all_or_none = params
        .get("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    axum::Json(store.delete(&ids, all_or_none, s.now_ms())).into_response()
}

async fn upsert(
    State(s): State<Arc<Shared>>,
    Path((_version, sobject, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Some(object) = ObjectKind::parse(&sobject) else {
        return not_found();
    };
    let ext_field = {
        let Ok(store) = s.store.read() else {
            return internal();
        };
        let schema = &store.table(object).schema;
        match schema.field(&field) {
            Some(i) if schema.fields[i].external_id => i,
            Some(_) => {
                return sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!(
                        "Field name provided, {field} is not an External ID or indexed field for {}",
                        object.name()
                    ),
                );
            }
            None => {
                return sf_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    &format!(
                        "Provided external ID field does not exist or is not accessible: {field}"
                    ),
                );
            }
        }
    };
    let body = match parse_collection(&body) {
        Ok(b) => b,
        Err(e) => return request_error(e),
    };
    for record in &body.records {
        if let Some(name) = record_type(record)
            && ObjectKind::parse(name) != Some(object)
        {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                &format!(
                    "Record of type {name} does not match the sObject type in the URI: {}",
                    object.name()
                ),
            );
        }
    }
    let items = body.records.iter().map(|r| (object, r)).collect();
    run_write(&s, items, Mode::Upsert { ext_field }, body.all_or_none)
}

// ---- SOQL ----------------------------------------------------------------------------------

/// The page size asked for with `Sforce-Query-Options: batchSize=N` (200 to 2000, default 2000).
fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
        .map_or(2000, |n| n.clamp(200, 2000))
}

fn query_page(
    s: &Shared,
    cursor: Arc<Cursor>,
    locator: Option<&str>,
    offset: usize,
    version: &str,
) -> Response {
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let total = cursor.planned.rows.len();
    let end = if cursor.planned.count_only {
        0
    } else {
        (offset + cursor.batch).min(total)
    };
    let next_records_url = (end < total && !cursor.planned.count_only).then(|| {
        let id = match locator {
            Some(id) => id.to_owned(),
            None => {
                let id = format!("01g8d{:010}", s.next_cursor.fetch_add(1, Ordering::Relaxed));
                if let Ok(mut cursors) = s.cursors.lock() {
                    cursors.open.insert(id.clone(), Arc::clone(&cursor));
                    cursors.order.push_back(id.clone());
                    while cursors.order.len() > OPEN_CURSORS {
                        if let Some(old) = cursors.order.pop_front() {
                            cursors.open.remove(&old);
                        }
                    }
                }
                id
            }
        };
        format!("/services/data/{version}/query/{id}-{end}")
    });
    // Serialised under the read lock, straight from the store.
    axum::Json(QueryPage {
        done: end >= total || cursor.planned.count_only,
        next_records_url,
        records: store::Records {
            store: &store,
            planned: &cursor.planned,
            rows: &cursor.planned.rows[offset.min(end)..end],
            version,
        },
        total_size: total,
    })
    .into_response()
}

/// A page of query results; fields in sorted order, as the emulator's answers have always had.
#[derive(serde::Serialize)]
struct QueryPage<'a> {
    done: bool,
    #[serde(rename = "nextRecordsUrl", skip_serializing_if = "Option::is_none")]
    next_records_url: Option<String>,
    records: store::Records<'a>,
    #[serde(rename = "totalSize")]
    total_size: usize,
}

#[derive(serde::Deserialize)]
struct QueryParams {
    q: Option<String>,
}

async fn query(
    State(s): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    params: Result<Query<QueryParams>, QueryRejection>,
) -> Response {
    run_query(&s, &version, &headers, &uri, params, false)
}

/// `queryAll`: the query over live records and those in the Recycle Bin. Its
/// `nextRecordsUrl` names `query`, as Salesforce's does; either resource follows the locator.
async fn query_all(
    State(s): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    params: Result<Query<QueryParams>, QueryRejection>,
) -> Response {
    run_query(&s, &version, &headers, &uri, params, true)
}

fn run_query(
    s: &Arc<Shared>,
    version: &str,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    params: Result<Query<QueryParams>, QueryRejection>,
    in_bin: bool,
) -> Response {
    if uri.to_string().len() > MAX_URI_BYTES {
        return sf_error(
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            "The request URI is too long.",
        );
    }
    let Some(q) = params.ok().and_then(|Query(p)| p.q) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    let parsed = match soql::parse(&q) {
        Ok(p) => p,
        Err(message) => return sf_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", &message),
    };
    if let Some(answer) = metadata::setup_query(&parsed) {
        return answer;
    }
    let planned = {
        let Ok(store) = s.store.read() else {
            return internal();
        };
        let planned = if in_bin {
            store.run_all(&parsed)
        } else {
            store.run(&parsed)
        };
        match planned {
            Ok(p) => p,
            Err(e) => return request_error(e),
        }
    };
    let cursor = Arc::new(Cursor {
        planned,
        batch: batch_size(headers),
        opened: Instant::now(),
    });
    query_page(s, cursor, None, 0, version)
}

async fn query_more(
    State(s): State<Arc<Shared>>,
    Path((version, locator)): Path<(String, String)>,
) -> Response {
    let invalid = || {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((id, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let cursor = s.cursors.lock().ok().and_then(|c| c.open.get(id).cloned());
    match cursor {
        Some(cursor)
            if offset < cursor.planned.rows.len()
                && cursor.opened.elapsed() < s.options.query_locator_lifetime =>
        {
            query_page(&s, cursor, Some(id), offset, &version)
        }
        _ => invalid(),
    }
}

#[cfg(test)]
mod bulk_tests;
#[cfg(test)]
mod tests;

/// Salesforce has no pipelines: `StageName` is one picklist (a new org's values), reported as
/// one pipeline; won and lost are stages (`OpportunityStage.IsWon`, `IsClosed`).
pub(crate) const DEAL_STAGES: &[crate::accounts::StageLabel] = &[
    crate::accounts::stage_label("sales", "new", "Sales Process", "Prospecting"),
    crate::accounts::stage_label("sales", "qualified", "Sales Process", "Qualification"),
    crate::accounts::stage_label("sales", "proposal", "Sales Process", "Proposal/Price Quote"),
    crate::accounts::stage_label(
        "sales",
        "negotiation",
        "Sales Process",
        "Negotiation/Review",
    ),
    crate::accounts::stage_label("sales", "won", "Sales Process", "Closed Won"),
    crate::accounts::stage_label("sales", "lost", "Sales Process", "Closed Lost"),
    crate::accounts::stage_label("renewals", "due", "Sales Process", "Needs Analysis"),
    crate::accounts::stage_label(
        "renewals",
        "negotiation",
        "Sales Process",
        "Negotiation/Review",
    ),
    crate::accounts::stage_label("renewals", "renewed", "Sales Process", "Closed Won"),
    crate::accounts::stage_label("renewals", "churned", "Sales Process", "Closed Lost"),
];

/// The Salesforce emulator in the sandbox's registry.
pub const SPEC: crate::EmulatorSpec = crate::EmulatorSpec {
    vendor: "salesforce",
    default_port: 18082,
    credentials: &[
        ("SF_CLIENT_ID", crate::SALESFORCE_CLIENT_ID),
        ("SF_CLIENT_SECRET", crate::SALESFORCE_CLIENT_SECRET),
    ],
    connector_settings: |base_url| {
        vec![
            ("login_url", base_url.to_owned()),
            ("client_id", "${SF_CLIENT_ID}".to_owned()),
            ("client_secret", "${SF_CLIENT_SECRET}".to_owned()),
        ]
    },
    limit_unit: None,
    build: |faults, limits| {
        let mut options = Options {
            faults,
            ..Options::default()
        };
        match limits {
            crate::Limits::Unlimited => options.daily_api_limit = 1_000_000_000,
            crate::Limits::Daily(n) => options.daily_api_limit = n,
            crate::Limits::Documented | crate::Limits::Burst(_) => {}
        }
        std::sync::Arc::new(Emulator::new(options))
    },
    industry: Some(crate::IndustryField {
        field: "Industry",
        standard: true,
        labels: &[
            ("Technology", "Technology"),
            ("Retail", "Retail"),
            ("Manufacturing", "Manufacturing"),
            ("Healthcare", "Healthcare"),
            ("Finance", "Finance"),
            ("Education", "Education"),
            ("Hospitality", "Hospitality"),
            ("Energy", "Energy"),
        ],
    }),
    deal_stages: DEAL_STAGES,
};

/// The canonical objects' Salesforce sObjects.
const SOBJECTS: crate::ObjectNames = crate::ObjectNames {
    companies: "Account",
    contacts: "Contact",
    deals: "Opportunity",
    notes: "Note",
};

impl crate::VendorEmulator for Emulator {
    fn seed(&self, data: &SeedData) -> crate::SeedSummary {
        let seeded = Emulator::seed(self, data);
        crate::SeedSummary {
            companies: seeded.accounts,
            contacts: seeded.contacts,
            deals: seeded.opportunities,
            notes: seeded.notes,
        }
    }

    fn router(&self) -> Router {
        Emulator::router(self)
    }

    fn count(&self, object: &str) -> usize {
        SOBJECTS
            .of(object)
            .map_or(0, |name| Emulator::count(self, name))
    }

    fn touch(&self, object: &str, every_nth: usize) -> usize {
        let Some(sobject) = SOBJECTS.of(object) else {
            return 0;
        };
        let Some(kind) = ObjectKind::parse(sobject) else {
            return 0;
        };
        let now = self.shared.now_ms();
        self.shared
            .store
            .write()
            .map(|mut store| store.touch_every(kind, every_nth, now))
            .unwrap_or(0)
    }

    fn advance_clock(&self, by: Duration) {
        Emulator::advance_clock(self, by);
    }

    fn records(&self, object: &str) -> Vec<Json> {
        let Some(sobject) = SOBJECTS.rendered(object) else {
            return Vec::new();
        };
        let (Some(kind), Ok(store)) = (ObjectKind::parse(sobject), self.shared.store.read()) else {
            return Vec::new();
        };
        let table = store.table(kind);
        (0..table.len() as u32)
            .filter(|row| table.has(*row))
            .filter_map(|row| render_record(&store, kind, row, "v62.0"))
            .collect()
    }
}
