//! An in-memory emulator of the Microsoft Dataverse Web API (Dynamics 365), faithful to its
//! documentation for what ferry uses: the Microsoft identity platform's client-credentials
//! token endpoint (same base URL), `accounts` and `contacts` with `$select`, `$filter` (a
//! subset), `$expand` of the contact's parent account, `$count` (capped at 5,000),
//! `Prefer: odata.maxpagesize` with `@odata.nextLink` / `$skiptoken` paging; single records
//! by id or alternate key; `PATCH` upsert with `If-Match` / `If-None-Match` and
//! `Prefer: return=representation`; `@odata.bind` by id or alternate key; `$batch` with change
//! sets and `odata.continue-on-error`; the alternate-key metadata; column definitions
//! (`EntityDefinitions(…)/Attributes`, with the seeded custom columns) and creating columns;
//! service protection limits (requests and execution time per sliding window, concurrent
//! requests) with 429, `Retry-After` and the `x-ms-ratelimit-*` headers; Dataverse's error
//! bodies; `modifiedon` stamped by the environment's clock (which `Date` gives and tests can
//! advance), filtered (`gt`/`ge`/`lt`/`le`) and ordered by for incremental reads. See
//! `docs/connectors/dynamics.md` for what it does not reproduce.

mod api;
mod batch;
mod error;
mod metadata;
mod odata;
mod records;
mod sets;
mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value as Json, json};

use crate::faults::Faults;
use crate::seed::SeedData;
pub use api::API_PREFIX;
pub use batch::MAX_REQUESTS as MAX_BATCH_REQUESTS;
pub use odata::{COUNT_CAP, MAX_PAGE_SIZE};
pub use store::{KEY_COLUMN, UNSUPPORTED_KEY_CHARS};
use store::{Store, Table, Val};

/// The application (client) id the emulator's token endpoint accepts unless configured
/// otherwise.
pub const CLIENT_ID: &str = "00000000-feed-4000-8000-00000000d365";
/// The client secret the emulator's token endpoint accepts unless configured otherwise.
pub const CLIENT_SECRET: &str = "sandbox-dynamics-client-secret";
/// The page size in the sandbox's connector settings.
pub const SANDBOX_PAGE_SIZE: u32 = 1_000;
/// The tenant id used in the sandbox's connector settings (any tenant is accepted).
pub const TENANT_ID: &str = "00000000-0000-4000-8000-0000000d7e4a";

/// Emulator options.
#[derive(Clone)]
pub struct Options {
    /// Injected faults.
    pub faults: Faults,
    /// The application id accepted at the token endpoint.
    pub client_id: String,
    /// The client secret accepted at the token endpoint.
    pub client_secret: String,
    /// How long an access token is valid (`expires_in`); Entra issues about an hour (3599 s).
    pub token_lifetime: Duration,
    /// Whether the `ferry_sourceid` alternate key is defined on account and contact. `false`
    /// starts an environment where the column exists but the operator has not made it a key.
    pub alternate_keys: bool,
    /// Enforce `lastname` on contacts and `name` on accounts. Dataverse itself does not: these
    /// are business-required (ApplicationRequired) columns, checked by forms but not by the Web
    /// API, so the default is `false`.
    pub enforce_required: bool,
    /// Requests allowed per user in the sliding window (documented: 6,000 per 300 s).
    pub requests_per_window: usize,
    /// Combined execution time allowed per user in the window (documented: 20 minutes).
    pub execution_time_per_window: Duration,
    /// The sliding window (documented: 300 s).
    pub window: Duration,
    /// Concurrent requests allowed per user (documented: 52).
    pub max_concurrent: usize,
    /// Fail every Nth request (or change set) inside a `$batch` with a transient 500
    /// (`0x80044150`, "Generic SQL error.", a deadlock victim), writing nothing: the failures a
    /// busy environment shows. The `partial` fault does the same to a percentage of them.
    pub batch_part_error_every: Option<u64>,
    /// The environment's organisation id (`WhoAmI`'s `OrganizationId`). `None`: a GUID of its
    /// own, so two emulators are two environments; set it to make two claim one.
    pub organization_id: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            faults: Faults::default(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            token_lifetime: Duration::from_secs(3599),
            alternate_keys: true,
            enforce_required: false,
            requests_per_window: 6_000,
            execution_time_per_window: Duration::from_secs(1_200),
            window: Duration::from_secs(300),
            max_concurrent: 52,
            batch_part_error_every: None,
            organization_id: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("faults", &self.faults)
            .field("client_secret", &"<redacted>")
            .field("alternate_keys", &self.alternate_keys)
            .field("requests_per_window", &self.requests_per_window)
            .field("window", &self.window)
            .field("max_concurrent", &self.max_concurrent)
            .field("organization_id", &self.organization_id)
            .finish()
    }
}

/// What [`Emulator::seed`] loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Accounts created.
    pub accounts: usize,
    /// Contacts created.
    pub contacts: usize,
    /// Generated contacts left out because Dataverse could not hold them (a value longer than
    /// its column allows).
    pub skipped_contacts: usize,
    /// Opportunities created.
    pub opportunities: usize,
    /// Notes (annotations) created.
    pub annotations: usize,
    /// Generated notes left out because Dataverse could not hold them (a body longer than
    /// `notetext` allows, or no parent that was seeded).
    pub skipped_annotations: usize,
}

/// The service protection counters of the one application user.
#[derive(Default)]
struct Usage {
    /// When each counted request arrived.
    requests: VecDeque<Instant>,
    /// When each request finished, and how long it ran.
    executions: VecDeque<(Instant, Duration)>,
}

struct Shared {
    options: Options,
    store: RwLock<Store>,
    /// Access token → when it expires.
    tokens: Mutex<HashMap<String, Instant>>,
    usage: Mutex<Usage>,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    batch_parts: AtomicU64,
    /// The environment's clock: what writes stamp `modifiedon` with and what `Date` says.
    clock: crate::clock::Clock,
}

/// The emulator's shared state; clones share the same environment.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The error codes and messages of the three service protection limits (documented).
const LIMIT_REQUESTS: (&str, &str) = (
    "0x80072322",
    "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
);
const LIMIT_TIME: (&str, &str) = (
    "0x80072321",
    "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time window of 300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
);
const LIMIT_CONCURRENCY: (&str, &str) = (
    "0x80072326",
    "Number of concurrent requests exceeded the limit of 52.",
);

fn throttled(code: &str, message: &str, retry_after: u64) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    response
}

/// The injected throttling response: the documented request-count 429.
fn dynamics_429(retry_after: Option<u64>) -> Response {
    throttled(LIMIT_REQUESTS.0, LIMIT_REQUESTS.1, retry_after.unwrap_or(1))
}

fn error_response(e: &error::ApiError) -> Response {
    let mut response = (e.status, axum::Json(e.body())).into_response();
    response
        .headers_mut()
        .insert("odata-version", HeaderValue::from_static("4.0"));
    response
}

impl Emulator {
    /// A new, empty environment.
    pub fn new(options: Options) -> Emulator {
        let mut store = Store::new(options.alternate_keys, options.enforce_required);
        store.organization_id = options.organization_id.clone().unwrap_or_else(|| {
            format!(
                "0f0f0f0f-0000-4000-8000-{:012}",
                crate::new_account_number()
            )
        });
        // GUIDs of users, stages and records are the environment's own (FNV-1a of its id).
        let salt = store.organization_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        store.records = records::Records::new(salt);
        Emulator {
            shared: Arc::new(Shared {
                options,
                store: RwLock::new(store),
                tokens: Mutex::new(HashMap::new()),
                usage: Mutex::new(Usage::default()),
                in_flight: AtomicUsize::new(0),
                requests: AtomicU64::new(0),
                batch_parts: AtomicU64::new(0),
                clock: crate::clock::Clock::default(),
            }),
        }
    }

    /// The environment's organisation id, as `WhoAmI` reports it.
    pub fn organization_id(&self) -> String {
        self.shared
            .store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .organization_id
            .clone()
    }

    /// Loads generated data as native Dataverse records: companies become accounts, contacts
    /// contacts whose `parentcustomerid` is their account. No `ferry_sourceid` is set (these
    /// records were born in Dataverse). An email opt-out sets both `donotemail` and
    /// `donotbulkemail`, a postal one both `donotpostalmail` and `donotbulkpostalmail`. Contacts with a value longer than its column are left out and counted.
    pub fn seed(&self, data: &SeedData) -> Seeded {
        let mut store = self
            .shared
            .store
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut seeded = Seeded::default();
        let mut accounts = Vec::with_capacity(data.companies.len());
        let values = |store: &Store,
                      table: Table,
                      pairs: Vec<(&str, Option<Val>)>|
         -> Option<Vec<Option<Val>>> {
            let mut v = vec![None; store.width(table)];
            for (name, val) in pairs {
                let (i, column) = store.column(table, name)?;
                let max = match column {
                    store::Col::Builtin(store::Column {
                        kind: store::Kind::Text { max },
                        ..
                    }) => Some(max),
                    store::Col::Custom(store::CustomColumn {
                        kind: store::CustomKind::String { max },
                        ..
                    }) => Some(*max),
                    _ => None,
                };
                if let (Some(Val::Str(s)), Some(max)) = (&val, max)
                    && s.chars().count() > max
                {
                    return None;
                }
                v[i] = val;
            }
            Some(v)
        };
        let whole = |n: Option<u32>| n.map(|n| Val::Int(i64::from(n)));
        // A seeded record's owner: its seed user where this environment has them, else the
        // application user (every record has an owner).
        let users = store.records.users_by_key();
        let app_user = store.records.app_user();
        let owner = |key: Option<usize>| {
            Some(Val::Ref(
                key.and_then(|k| users.get(k).copied().flatten())
                    .unwrap_or(app_user),
            ))
        };
        let mut contact_ids: Vec<Option<u128>> = Vec::with_capacity(data.contacts.len());
        // A tier is stored as its option value, as Dataverse stores a choice.
        let tier = |label: Option<&str>| {
            label
                .and_then(|l| crate::seed::TIERS.iter().position(|t| *t == l))
                .map(|i| Val::Int(store::TIER_BASE + i as i64))
        };
        let text = |v: &Option<String>| {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| Val::Str(s.into()))
        };
        // A seed industry is stored as the option value of this list's label for it.
        let industry = |seeded: &Option<String>| {
            let label = SPEC.industry?.label(seeded.as_deref()?)?;
            let at = metadata::INDUSTRY_LABELS.iter().position(|l| *l == label)?;
            Some(Val::Int(at as i64 + 1))
        };
        for c in &data.companies {
            let row = values(
                &store,
                Table::Account,
                vec![
                    ("name", text(&c.name)),
                    ("industrycode", industry(&c.industry)),
                    ("websiteurl", text(&c.domain)),
                    ("telephone1", text(&c.phone)),
                    (
                        "numberofemployees",
                        c.employee_count.map(|n| Val::Int(i64::from(n))),
                    ),
                    ("revenue", c.annual_revenue.map(Val::Money)),
                    ("address1_line1", text(&c.street)),
                    ("address1_city", text(&c.city)),
                    ("address1_stateorprovince", text(&c.state)),
                    ("address1_postalcode", text(&c.postal_code)),
                    ("address1_country", text(&c.country)),
                    ("new_region", text(&c.region)),
                    ("new_seats", whole(c.seats)),
                    ("new_tier", tier(c.tier)),
                    ("ownerid", owner(c.owner)),
                ],
            );
            // Generated companies always fit the account columns.
            let id = row.map(|row| {
                store.insert_seeded(Table::Account, row, c.created_at_ms, c.updated_at_ms)
            });
            accounts.push(id);
            seeded.accounts += usize::from(id.is_some());
        }
        for c in &data.contacts {
            let row = values(
                &store,
                Table::Contact,
                vec![
                    ("firstname", text(&c.first_name)),
                    ("lastname", text(&c.last_name)),
                    ("emailaddress1", text(&c.email)),
                    ("telephone1", text(&c.phone)),
                    ("mobilephone", text(&c.mobile_phone)),
                    ("jobtitle", text(&c.job_title)),
                    ("address1_line1", text(&c.street)),
                    ("address1_city", text(&c.city)),
                    ("address1_stateorprovince", text(&c.state)),
                    ("address1_postalcode", text(&c.postal_code)),
                    ("address1_country", text(&c.country)),
                    ("donotemail", Some(Val::Bool(c.email_opt_out))),
                    ("donotbulkemail", Some(Val::Bool(c.email_opt_out))),
                    ("donotphone", Some(Val::Bool(c.do_not_call))),
                    ("donotfax", Some(Val::Bool(c.fax_opt_out))),
                    ("donotpostalmail", Some(Val::Bool(c.postal_opt_out))),
                    ("donotbulkpostalmail", Some(Val::Bool(c.postal_opt_out))),
                    ("new_favouritecolour", text(&c.favourite_colour)),
                    ("new_loyaltypoints", whole(c.loyalty_points)),
                    (
                        "parentcustomerid",
                        c.company
                            .and_then(|k| accounts.get(k).copied().flatten())
                            .map(Val::Ref),
                    ),
                    ("ownerid", owner(c.owner)),
                ],
            );
            match row {
                Some(row) => {
                    let id =
                        store.insert_seeded(Table::Contact, row, c.created_at_ms, c.updated_at_ms);
                    contact_ids.push(Some(id));
                    seeded.contacts += 1;
                }
                None => {
                    contact_ids.push(None);
                    seeded.skipped_contacts += 1;
                }
            }
        }
        seed_records(
            &mut store.records,
            data,
            &accounts,
            &contact_ids,
            &users,
            &mut seeded,
        );
        tracing::debug!(
            accounts = seeded.accounts,
            contacts = seeded.contacts,
            skipped = seeded.skipped_contacts,
            opportunities = seeded.opportunities,
            annotations = seeded.annotations,
            skipped_annotations = seeded.skipped_annotations,
            "seeded dynamics"
        );
        seeded
    }

    /// How many records of `table` (`"account"`, `"contact"`, `"opportunity"`, `"annotation"`)
    /// the environment holds.
    pub fn count(&self, table: &str) -> usize {
        let Some(table) = Table::from_logical(table) else {
            return records::by_logical(table).map_or(0, |set| {
                self.shared
                    .store
                    .read()
                    .map(|s| s.records.table(set).len())
                    .unwrap_or(0)
            });
        };
        self.shared
            .store
            .read()
            .map(|s| s.table(table).rows.len())
            .unwrap_or(0)
    }

    /// The primary keys of `table`'s rows, as its connector reports them as source ids: a
    /// snapshot, for tests that check nothing was lost.
    pub fn source_ids(&self, table: &str) -> Vec<String> {
        let Some(table) = Table::from_logical(table) else {
            return Vec::new();
        };
        self.shared
            .store
            .read()
            .map(|s| {
                s.table(table)
                    .rows
                    .keys()
                    .map(|id| store::guid(*id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The record of `table` whose `ferry_sourceid` is `key`, rendered with every column as a
    /// `GET` would return it.
    pub fn record_by_key(&self, table: &str, key: &str) -> Option<Json> {
        let table = Table::from_logical(table)?;
        let store = self.shared.store.read().ok()?;
        let id = store.id_by_key(table, key)?;
        let row = store.get(table, id)?;
        let select = odata::parse_select(&store, table, None).ok()?;
        Some(odata::render(&store, table, row, &select, None))
    }

    /// Requests served so far (token requests excluded), for tests.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Moves the environment's clock `by` ahead, as time passing would: later writes are
    /// stamped (`modifiedon`) and answers dated (`Date`) that much later. A test hook, so that
    /// incremental reads are tested without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Stamps the first `n` rows of `table` (`"account"`, `"contact"`, `"opportunity"`,
    /// `"annotation"`, in key order) as modified now, all with one `modifiedon` and no other
    /// change, as a bulk `UpdateMultiple` or a plug-in touching many rows does. Returns their
    /// GUIDs. A test hook for incremental reads' ties on one timestamp.
    pub fn bulk_stamp(&self, table: &str, n: usize) -> Vec<String> {
        let now = self.shared.clock.now_ms();
        let mut store = self
            .shared
            .store
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = Table::from_logical(table) {
            let ids: Vec<u128> = store.table(t).rows.keys().take(n).copied().collect();
            (0..ids.len()).for_each(|i| store.touch_nth(t, i, now));
            return ids.into_iter().map(store::guid).collect();
        }
        match records::by_logical(table) {
            Some(set) => store
                .records
                .touch_first(set, n, now)
                .into_iter()
                .map(store::guid)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Stamps every `every_nth` row of `table` (`"account"`, … in key order) as modified now,
    /// with no other change, as other users' edits would; returns how many.
    fn stamp_every(&self, table: &str, every_nth: usize) -> usize {
        let now = self.shared.clock.now_ms();
        let mut store = self
            .shared
            .store
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = Table::from_logical(table) {
            let rows = store.table(t).rows.len();
            let picked: Vec<usize> = crate::every_nth(rows, every_nth).collect();
            picked.iter().for_each(|at| store.touch_nth(t, *at, now));
            return picked.len();
        }
        match records::by_logical(table) {
            Some(set) => store.records.touch_every(set, every_nth, now),
            None => 0,
        }
    }

    /// Invalidates every access token issued so far: the next call with one gets 401.
    pub fn expire_tokens(&self) {
        if let Ok(mut tokens) = self.shared.tokens.lock() {
            tokens.clear();
        }
    }

    /// The HTTP routes, with the configured faults injected.
    pub fn router(&self) -> Router {
        let state = Arc::clone(&self.shared);
        let router = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/api/data/v9.2/{*rest}", any(web_api))
            .fallback(|| async { error_response(&error::ApiError::no_resource("(unknown path)")) })
            .with_state(state)
            .layer(axum::middleware::from_fn_with_state(
                self.shared.clock.clone(),
                crate::clock::date_header,
            ));
        let expiring = self.clone();
        let router = crate::faults::expiring(router, &self.shared.options.faults, move || {
            expiring.expire_tokens()
        });
        let shifted = self.clone();
        let router = crate::faults::shifting(
            router,
            &self.shared.options.faults,
            later_page,
            move |table, k| shifted.shift(*table, k),
        );
        crate::faults::inject(router, self.shared.options.faults.clone(), dynamics_429)
    }

    /// One change of the `shift` fault: creates record number `k` of `table` and updates an
    /// existing one. The paging cookie of a `$skiptoken` holds the last primary key read and
    /// the next page starts after it, so an old record is neither skipped nor read twice; a
    /// new record is read if its key sorts after the cookie (Dataverse's own keys are
    /// sequential, so it does).
    fn shift(&self, table: Table, k: u64) {
        let now = self.shared.clock.now_ms();
        self.seed(&crate::seed::shifted(table == Table::Account, k, now));
        let mut store = self
            .shared
            .store
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let rows = store.table(table).rows.len();
        if let Some(n) = crate::faults::shift_target(k, rows) {
            store.touch_nth(table, n, now);
        }
    }
}

/// Seeds the generated deals as opportunities and notes as annotations, born in Dataverse (no
/// `ferry_sourceid`): an opportunity's stage is the sales stage of its seed stage's label in
/// [`DEAL_STAGES`], a won or lost one is closed as `WinOpportunity` / `LoseOpportunity` would
/// leave it; its potential customer is its account, else its first contact; its contact is the
/// first of its contacts (Dataverse holds one). A note hangs on its first parent in the order
/// deal, contact, company that was seeded (Dataverse holds one).
fn seed_records(
    records: &mut records::Records,
    data: &SeedData,
    accounts: &[Option<u128>],
    contacts: &[Option<u128>],
    users: &[Option<u128>],
    seeded: &mut Seeded,
) {
    use crate::accounts::Outcome;
    use crate::table::Cell;
    let text = |s: &str| Some(Cell::Text(s.into()));
    let lookup = |g: Option<u128>| g.map(|g| Cell::Text(store::guid(g).into()));
    let app_user = store::guid(records.app_user());
    let owner = |key: Option<usize>| {
        key.and_then(|k| users.get(k).copied().flatten())
            .map_or_else(|| app_user.clone(), store::guid)
    };
    let currencies: Vec<(&str, String)> = records::CURRENCIES
        .iter()
        .filter_map(|c| Some((c.0, records.currency(c.0)?)))
        .collect();
    let stage_ids: Vec<Option<String>> = records::SALES_STAGES
        .iter()
        .map(|(v, _)| records.stage(*v))
        .collect();
    let process = records.guid_text(&records::WORKFLOW, 1);
    let mut deal_ids: Vec<Option<u128>> = Vec::with_capacity(data.deals.len());
    for d in &data.deals {
        let (pipeline, stage) = d.seed_stage();
        let label = crate::accounts::vendor_stage(DEAL_STAGES, pipeline.key, stage.key)
            .map_or("Qualify", |l| l.stage);
        let (value, step) = records::SALES_STAGES
            .iter()
            .find(|(_, l)| *l == label)
            .copied()
            .unwrap_or((0, "Qualify"));
        let (state, status) = match stage.outcome {
            Outcome::Open => (0, 1),
            Outcome::Won => (1, 3),
            Outcome::Lost => (2, 5),
        };
        let account = d.company.and_then(|k| accounts.get(k).copied().flatten());
        let contact = d
            .contacts
            .first()
            .and_then(|k| contacts.get(*k).copied().flatten());
        let (customer, customer_type) = match (account, contact) {
            (Some(a), _) => (Some(a), Some("account")),
            (None, Some(c)) => (Some(c), Some("contact")),
            _ => (None, None),
        };
        let currency = currencies
            .iter()
            .find(|(code, _)| *code == d.currency)
            .map(|(_, g)| g.as_str());
        let closed = stage.outcome != Outcome::Open;
        let amount = d.amount.map(|a| Cell::Num((a * 100.0).round() / 100.0));
        let row = [
            ("name", text(&d.name)),
            ("estimatedvalue", amount.clone()),
            ("estimatedclosedate", text(&d.close_date)),
            ("transactioncurrencyid", currency.and_then(text)),
            ("parentaccountid", lookup(account)),
            ("parentcontactid", lookup(contact)),
            ("customerid", lookup(customer)),
            ("customeridtype", customer_type.and_then(text)),
            ("ownerid", text(&owner(d.owner))),
            ("owneridtype", text("systemuser")),
            ("statecode", Some(Cell::Int(state))),
            ("statuscode", Some(Cell::Int(status))),
            ("salesstage", Some(Cell::Int(value))),
            ("stepname", text(&format!("{}-{step}", value + 1))),
            (
                "stageid",
                stage_ids
                    .get(usize::try_from(value).unwrap_or(0))
                    .cloned()
                    .flatten()
                    .and_then(|s| text(&s)),
            ),
            ("processid", text(&process)),
            (
                "actualclosedate",
                if closed { text(&d.close_date) } else { None },
            ),
            (
                "actualvalue",
                if stage.outcome == Outcome::Won {
                    amount
                } else {
                    None
                },
            ),
        ];
        let id = records.seed_row(&records::OPPORTUNITY, row, d.created_at_ms, d.updated_at_ms);
        seeded.opportunities += usize::from(id.is_some());
        deal_ids.push(id.map(|id| records.guid(&records::OPPORTUNITY, id)));
    }
    for n in &data.notes {
        let parent_of = |p: &crate::seed::SeedParent| match *p {
            crate::seed::SeedParent::Deal(k) => deal_ids
                .get(k)
                .copied()
                .flatten()
                .map(|g| (0, g, "opportunity")),
            crate::seed::SeedParent::Contact(k) => contacts
                .get(k)
                .copied()
                .flatten()
                .map(|g| (1, g, "contact")),
            crate::seed::SeedParent::Company(k) => accounts
                .get(k)
                .copied()
                .flatten()
                .map(|g| (2, g, "account")),
        };
        let parent = n.parents.iter().filter_map(parent_of).min_by_key(|p| p.0);
        let Some((_, parent, kind)) = parent else {
            seeded.skipped_annotations += 1;
            continue;
        };
        let row = [
            ("notetext", text(&n.body)),
            ("isdocument", Some(Cell::Bool(false))),
            ("objectid", text(&store::guid(parent))),
            ("objecttypecode", text(kind)),
            ("ownerid", text(&owner(n.owner))),
            ("owneridtype", text("systemuser")),
        ];
        // Born in Dataverse: createdon is the note's time.
        match records.seed_row(&records::ANNOTATION, row, n.timestamp_ms, n.timestamp_ms) {
            Some(_) => seeded.annotations += 1,
            None => seeded.skipped_annotations += 1,
        }
    }
}

// ---- token endpoint ------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

/// The Microsoft identity platform's error body.
fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "timestamp": "2025-01-01 00:00:00Z",
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        })),
    )
        .into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    Path(_tenant): Path<String>,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if form.client_id.as_deref() != Some(s.options.client_id.as_str()) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application was not found in the directory. This can happen if the application has not been installed \
             by the administrator of the tenant or consented to by any user in the tenant.",
        );
    }
    if form.client_secret.as_deref() != Some(s.options.client_secret.as_str()) {
        return entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret \
             value, not the client secret ID, for a secret added to app.",
        );
    }
    if !form
        .scope
        .as_deref()
        .is_some_and(|sc| sc.ends_with("/.default"))
    {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with \
             /.default suffixed to the resource identifier (application ID URI).",
        );
    }
    let access_token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}",
        random_string(120)
    );
    let lifetime = s.options.token_lifetime;
    if let Ok(mut tokens) = s.tokens.lock() {
        tokens.insert(access_token.clone(), Instant::now() + lifetime);
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access_token,
    }))
    .into_response()
}

// ---- the Web API ---------------------------------------------------------------------------

/// Decrements the in-flight counter when the request ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A refusal by service protection: which limit, and the `Retry-After` seconds.
struct Throttle {
    limit: (&'static str, &'static str),
    retry_after: u64,
}

/// Service protection: refuses the request with the documented 429 if a limit is exceeded,
/// else counts it. Returns the remaining request budget and execution time.
fn admit(s: &Shared) -> Result<(usize, Duration), Throttle> {
    let o = &s.options;
    let now = Instant::now();
    let mut usage = s.usage.lock().unwrap_or_else(PoisonError::into_inner);
    while usage
        .requests
        .front()
        .is_some_and(|t| now.duration_since(*t) >= o.window)
    {
        usage.requests.pop_front();
    }
    while usage
        .executions
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) >= o.window)
    {
        usage.executions.pop_front();
    }
    if usage.requests.len() >= o.requests_per_window {
        let oldest = usage.requests.front().copied().unwrap_or(now);
        let wait = o.window.saturating_sub(now.duration_since(oldest));
        return Err(Throttle {
            limit: LIMIT_REQUESTS,
            retry_after: wait.as_secs_f64().ceil() as u64,
        });
    }
    let spent: Duration = usage.executions.iter().map(|(_, d)| *d).sum();
    if spent >= o.execution_time_per_window {
        let oldest = usage.executions.front().map_or(now, |(t, _)| *t);
        let wait = o.window.saturating_sub(now.duration_since(oldest));
        return Err(Throttle {
            limit: LIMIT_TIME,
            retry_after: wait.as_secs_f64().ceil() as u64,
        });
    }
    usage.requests.push_back(now);
    Ok((
        o.requests_per_window - usage.requests.len(),
        o.execution_time_per_window.saturating_sub(spent),
    ))
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn reply_response(reply: api::Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert("odata-version", HeaderValue::from_static("4.0"));
    if headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; odata.metadata=minimal"),
        );
    }
    for (k, v) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

async fn web_api(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = token.is_some_and(|t| {
        s.tokens
            .lock()
            .is_ok_and(|tokens| tokens.get(t).is_some_and(|expiry| Instant::now() < *expiry))
    });
    if !valid {
        // Dataverse answers 401 with an empty body and says where to get a token.
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize",
            ),
        );
        return response;
    }
    let in_flight = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&s.in_flight);
    if in_flight > s.options.max_concurrent {
        return throttled(LIMIT_CONCURRENCY.0, LIMIT_CONCURRENCY.1, 1);
    }
    let (remaining, time_remaining) = match admit(&s) {
        Ok(r) => r,
        Err(t) => return throttled(t.limit.0, t.limit.1, t.retry_after),
    };
    s.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let mut response = serve_api(&s, &method, &uri, &headers, &body);
    let took = started.elapsed();
    s.usage
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .executions
        .push_back((Instant::now(), took));
    let h = response.headers_mut();
    h.insert(
        "x-ms-ratelimit-burst-remaining-xrm-requests",
        HeaderValue::from(remaining as u64),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{:.2}", time_remaining.as_secs_f64() * 1000.0)) {
        h.insert("x-ms-ratelimit-time-remaining-xrm-requests", v);
    }
    response
}

fn serve_api(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let target = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("")
        .strip_prefix(API_PREFIX)
        .unwrap_or("");
    let base = base_url(headers);
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let prefs = api::Prefs::parse(
        headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let (path, query) = api::split_target(target);
    let Ok(body_text) = std::str::from_utf8(body) else {
        return error_response(&error::ApiError::query("The request body is not UTF-8."));
    };
    if path == "$batch" {
        if method != Method::POST {
            return error_response(&error::ApiError::method());
        }
        let boundary = header(header::CONTENT_TYPE)
            .as_deref()
            .and_then(batch::boundary);
        let Some(boundary) = boundary else {
            return error_response(&error::ApiError::query(
                "A batch request must have Content-Type multipart/mixed with a boundary.",
            ));
        };
        let items = match batch::parse(body_text, &boundary) {
            Ok(items) => items,
            Err(e) => return error_response(&e),
        };
        let mut store = s.store.write().unwrap_or_else(PoisonError::into_inner);
        let (status, responses) = api::run_batch(
            &mut store,
            &items,
            prefs.continue_on_error,
            &base,
            s.clock.now_ms(),
            || {
                let n = s.batch_parts.fetch_add(1, Ordering::Relaxed) + 1;
                let every = s
                    .options
                    .batch_part_error_every
                    .is_some_and(|every| every > 0 && n.is_multiple_of(every));
                let faults = &s.options.faults;
                every
                    || faults
                        .partial
                        .is_some_and(|p| faults.hits(crate::faults::PARTIAL_SALT, n, p))
            },
        );
        drop(store);
        let (content_type, text) = batch::render(&random_string(12), &responses);
        let mut response =
            (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), text).into_response();
        if let Ok(v) = HeaderValue::from_str(&content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        response
            .headers_mut()
            .insert("odata-version", HeaderValue::from_static("4.0"));
        return response;
    }
    let req = api::Req {
        method: method.as_str().to_ascii_uppercase(),
        path,
        query,
        prefs,
        if_match: header(header::IF_MATCH),
        if_none_match: header(header::IF_NONE_MATCH),
        body: body_text.to_owned(),
        base,
    };
    let reply = if req.method == "GET" {
        let store = s.store.read().unwrap_or_else(PoisonError::into_inner);
        api::read(&store, &req)
    } else {
        let mut store = s.store.write().unwrap_or_else(PoisonError::into_inner);
        api::write(&mut store, &req, s.clock.now_ms()).0
    };
    reply_response(reply)
}

#[cfg(test)]
mod tests;

/// Dataverse's "Opportunity Sales Process" business process flow has four stages; won and lost are
/// the opportunity's `statecode`, closed by `WinOpportunity` / `LoseOpportunity`.
pub(crate) const DEAL_STAGES: &[crate::accounts::StageLabel] = &[
    crate::accounts::stage_label("sales", "new", "Opportunity Sales Process", "Qualify"),
    crate::accounts::stage_label("sales", "qualified", "Opportunity Sales Process", "Develop"),
    crate::accounts::stage_label("sales", "proposal", "Opportunity Sales Process", "Propose"),
    crate::accounts::stage_label("sales", "negotiation", "Opportunity Sales Process", "Close"),
    crate::accounts::stage_label("sales", "won", "Opportunity Sales Process", "Close"),
    crate::accounts::stage_label("sales", "lost", "Opportunity Sales Process", "Close"),
    crate::accounts::stage_label("renewals", "due", "Opportunity Sales Process", "Qualify"),
    crate::accounts::stage_label(
        "renewals",
        "negotiation",
        "Opportunity Sales Process",
        "Propose",
    ),
    crate::accounts::stage_label("renewals", "renewed", "Opportunity Sales Process", "Close"),
    crate::accounts::stage_label("renewals", "churned", "Opportunity Sales Process", "Close"),
];

/// The Dynamics 365 / Dataverse emulator in the sandbox's registry.
pub const SPEC: crate::EmulatorSpec = crate::EmulatorSpec {
    vendor: "dynamics",
    default_port: 18085,
    credentials: &[
        ("DYNAMICS_CLIENT_ID", CLIENT_ID),
        ("DYNAMICS_CLIENT_SECRET", CLIENT_SECRET),
    ],
    connector_settings: |base_url| {
        vec![
            ("environment_url", base_url.to_owned()),
            ("login_url", base_url.to_owned()),
            ("tenant_id", TENANT_ID.to_owned()),
            ("client_id", "${DYNAMICS_CLIENT_ID}".to_owned()),
            ("client_secret", "${DYNAMICS_CLIENT_SECRET}".to_owned()),
            // Smaller pages than Dataverse's 5,000, so a sandbox of a few thousand records
            // still pages.
            ("page_size", SANDBOX_PAGE_SIZE.to_string()),
        ]
    },
    limit_unit: None,
    build: |faults, limits| {
        let mut options = Options {
            faults,
            ..Options::default()
        };
        if limits == crate::Limits::Unlimited {
            options.requests_per_window = 1 << 40;
            options.execution_time_per_window = std::time::Duration::from_secs(1 << 40);
            options.max_concurrent = 1 << 20;
        }
        std::sync::Arc::new(Emulator::new(options))
    },
    industry: Some(crate::IndustryField {
        field: "industrycode",
        standard: false,
        labels: &[
            ("Technology", "Business Services"),
            ("Retail", "Non-Durable Merchandise Retail"),
            ("Manufacturing", "Durable Manufacturing"),
            ("Healthcare", "Doctor's Offices and Clinics"),
            ("Finance", "Financial"),
            ("Hospitality", "Eating and Drinking Places"),
            ("Energy", "Utility Creation and Distribution"),
        ],
    }),
    deal_stages: DEAL_STAGES,
};

/// The canonical objects' Dataverse tables, by logical name.
const TABLES: crate::ObjectNames = crate::ObjectNames {
    companies: "account",
    contacts: "contact",
    deals: "opportunity",
    notes: "annotation",
};

impl crate::VendorEmulator for Emulator {
    fn seed(&self, data: &SeedData) -> crate::SeedSummary {
        let seeded = Emulator::seed(self, data);
        crate::SeedSummary {
            companies: seeded.accounts,
            contacts: seeded.contacts,
            deals: seeded.opportunities,
            notes: seeded.annotations,
        }
    }

    fn router(&self) -> Router {
        Emulator::router(self)
    }

    fn count(&self, object: &str) -> usize {
        TABLES
            .of(object)
            .map_or(0, |name| Emulator::count(self, name))
    }

    fn touch(&self, object: &str, every_nth: usize) -> usize {
        let Some(table) = TABLES.of(object) else {
            return 0;
        };
        self.stamp_every(table, every_nth)
    }

    fn advance_clock(&self, by: Duration) {
        Emulator::advance_clock(self, by);
    }

    fn records(&self, object: &str) -> Vec<Json> {
        let Some(table) = TABLES.rendered(object) else {
            return Vec::new();
        };
        let (Some(table), Ok(store)) = (Table::from_logical(table), self.shared.store.read())
        else {
            return Vec::new();
        };
        let Ok(select) = odata::parse_select(&store, table, None) else {
            return Vec::new();
        };
        store
            .table(table)
            .rows
            .values()
            .map(|row| odata::render(&store, table, row, &select, None))
            .collect()
    }
}

/// The table a request lists a later page of (it carries a `$skiptoken`), for `shift`.
fn later_page(request: &axum::extract::Request, _body: &[u8]) -> Option<Table> {
    let set = request.uri().path().strip_prefix(API_PREFIX)?;
    let table = Table::from_set(set)?;
    let later = crate::faults::has_param(request, "$skiptoken")
        || crate::faults::has_param(request, "%24skiptoken");
    (request.method() == axum::http::Method::GET && later).then_some(table)
}
