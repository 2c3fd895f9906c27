//! An in-memory emulator of the Zoho CRM API v8, faithful to its documentation for what ferry
//! uses: the OAuth refresh-token grant (`/oauth/v2/token`; the accounts server and the API are
//! served on one base URL), `Zoho-oauthtoken` auth with expiring access tokens, `GET
//! /crm/v8/{module}` with mandatory `fields`, `page`/`per_page` up to the 2,000th record and
//! `page_token` beyond it (up to 100,000), upsert (at most 100 records, `duplicate_check_fields`,
//! per-record `code`/`status`/`details`), COQL (`POST /crm/v8/coql`), field metadata, API
//! credits and the concurrency limit (429 `TOO_MANY_REQUESTS`). See `docs/connectors/zoho.md`
//! for what it does not reproduce.

mod api;
mod coql;
mod crm;
mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value as Json, json};

use crate::faults::Faults;
use crate::seed::SeedData;
use crate::table;
use crm::CrmModule;
pub use crm::{CONTACT_ROLES, NOTE_CONTENT_MAX};
pub use store::SourceIdField;
use store::{FieldDef, Kind, Module, RequestError, Store, Val};

/// The OAuth client id the emulator accepts unless configured otherwise.
pub const ZOHO_CLIENT_ID: &str = "1000.SANDBOXZOHOCLIENTID";
/// The OAuth client secret the emulator accepts unless configured otherwise.
pub const ZOHO_CLIENT_SECRET: &str = "sandbox-zoho-client-secret";
/// The refresh token the emulator accepts unless configured otherwise.
pub const ZOHO_REFRESH_TOKEN: &str = "1000.sandbox-zoho-refresh-token";
/// The custom source-id field an org gets unless configured otherwise.
pub const SOURCE_ID_FIELD: &str = "Ferry_Source_Id";
/// Most records one insert/update/upsert call may carry.
pub const WRITE_LIMIT: usize = 100;
/// Largest `per_page`.
pub const MAX_PER_PAGE: usize = 200;
/// Records reachable with `page` alone; beyond this, `page_token` is required.
pub const PAGE_NUMBER_REACH: usize = 2000;
/// Most field API names in one `fields` parameter.
pub const MAX_FIELDS: usize = 50;
/// How many page tokens stay valid; older ones are forgotten.
const OPEN_TOKENS: usize = 4096;

/// Emulator options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Injected faults.
    pub faults: Faults,
    /// The client id accepted at the token endpoint.
    pub client_id: String,
    /// The client secret accepted at the token endpoint.
    pub client_secret: String,
    /// The refresh token accepted at the token endpoint.
    pub refresh_token: String,
    /// The custom source-id field on Accounts and Contacts; `None`: an org where the operator
    /// has not created it yet.
    pub source_id_field: Option<SourceIdField>,
    /// How long an access token is valid (Zoho: one hour).
    pub token_lifetime: Duration,
    /// Simultaneous API calls allowed (Enterprise: 20); `None`: unlimited.
    pub concurrency_limit: Option<usize>,
    /// API credits in the window (counted from start-up); `None`: unlimited.
    pub credits: Option<u64>,
    /// Records reachable through `page_token` (Zoho: 100,000).
    pub page_token_reach: usize,
    /// Added to every API call, to let concurrency limits show.
    pub latency: Duration,
    /// The org id (`GET /crm/v8/org`). `None`: an id of its own, so two emulators are two
    /// orgs; set it to make two emulators claim one org.
    pub org_id: Option<String>,
    /// Whether multiple currencies are enabled (`mc_status`; Deals have a `Currency` field).
    /// `false` is how most orgs run: every amount is in the home currency
    /// ([`HOME_CURRENCY`]) and no record has a currency field.
    pub multi_currency: bool,
    /// Whether COQL serves `COUNT(id)`; `false` refuses it as a syntax error, as an API
    /// version before aggregates would, so a client's fallback can be tested.
    pub coql_count: bool,
    /// Whether the org has GDPR compliance on for Contacts (`privacy_settings` of `GET
    /// /crm/v8/org`): Contacts then hold `Data_Processing_Basis_Details`, their GDPR consent
    /// record, and the field metadata lists it. Off by default, as a new org has it.
    pub gdpr: bool,
}

/// The emulated org's home currency (`iso_code` of `GET /crm/v8/org`).
pub const HOME_CURRENCY: &str = "USD";

impl Default for Options {
    fn default() -> Self {
        Options {
            faults: Faults::default(),
            client_id: ZOHO_CLIENT_ID.to_owned(),
            client_secret: ZOHO_CLIENT_SECRET.to_owned(),
            refresh_token: ZOHO_REFRESH_TOKEN.to_owned(),
            source_id_field: Some(SourceIdField {
                api_name: SOURCE_ID_FIELD.to_owned(),
                unique: true,
                case_sensitive: false,
            }),
            token_lifetime: Duration::from_secs(3600),
            concurrency_limit: Some(20),
            credits: Some(5_000_000),
            page_token_reach: 100_000,
            latency: Duration::ZERO,
            org_id: None,
            multi_currency: true,
            coql_count: true,
            gdpr: false,
        }
    }
}

/// What [`Emulator::seed`] loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Accounts created.
    pub accounts: usize,
    /// Contacts created.
    pub contacts: usize,
    /// Generated contacts left out because Zoho would refuse them (no last name, a malformed
    /// email, a value longer than its field).
    pub skipped_contacts: usize,
    /// Deals created.
    pub deals: usize,
    /// Notes created.
    pub notes: usize,
    /// Generated notes left out: every parent was left out, or the body is longer than
    /// Zoho's `Note_Content` holds.
    pub skipped_notes: usize,
}

/// A module the emulator serves: Accounts and Contacts in the original store, Deals and Notes
/// on the table engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Store(Module),
    Crm(CrmModule),
}

impl Target {
    fn parse(name: &str) -> Option<Target> {
        Module::parse(name)
            .map(Target::Store)
            .or_else(|| CrmModule::parse(name).map(Target::Crm))
    }
}

/// Where a page token stands.
#[derive(Clone, Debug)]
struct PageToken {
    module: Target,
    desc: bool,
    /// The order and `If-Modified-Since` of the list that issued it (the generic path's).
    by: Option<(Order, Option<i64>)>,
    /// The last record served: its sort key (the id, or a time in ms) and id.
    after_key: i64,
    /// The last id served.
    after: u64,
    /// Records served so far through this chain of tokens.
    served: usize,
    issued: Instant,
}

#[derive(Default)]
struct Tokens {
    open: HashMap<String, PageToken>,
    order: VecDeque<String>,
}

struct Shared {
    options: Options,
    /// The org id: the option's, or one of this emulator's own (19 digits, like Zoho's).
    org_id: String,
    store: RwLock<Store>,
    /// Access token → when it was issued.
    access: Mutex<HashMap<String, Instant>>,
    pages: Mutex<Tokens>,
    credits_used: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Records received by upserts, numbered for the `partial` fault.
    partial_inputs: crate::faults::Counter,
    /// The org's clock: what writes stamp `Modified_Time` with and answers' `Date` shows.
    clock: crate::clock::Clock,
}

/// The emulator's shared state; clones share the same org.
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

/// Zoho's error body `{code, details, message, status}` with `status`.
fn zoho_error(status: StatusCode, code: &str, message: &str, details: Json) -> Response {
    (
        status,
        axum::Json(
            json!({"code": code, "details": details, "message": message, "status": "error"}),
        ),
    )
        .into_response()
}

fn request_error(e: RequestError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(e.body),
    )
        .into_response()
}

fn internal() -> Response {
    zoho_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "Internal Server Error",
        json!({}),
    )
}

fn invalid_module() -> Response {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        json!({"resource_path_index": 0}),
    )
}

fn invalid_url() -> Response {
    zoho_error(
        StatusCode::NOT_FOUND,
        "INVALID_URL_PATTERN",
        "Please check if the URL trying to access is a correct one",
        json!({}),
    )
}

/// Zoho's 429: the same code for the credit limit and the concurrency limit, no `Retry-After`
/// (the injected fault adds one only when its profile says so).
fn too_many(message: &str) -> Response {
    zoho_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        message,
        json!({}),
    )
}

fn zoho_429(retry_after: Option<u64>) -> Response {
    let mut response = too_many("Too many requests: the sandbox is injecting throttling.");
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

impl Emulator {
    /// A new, empty org.
    pub fn new(options: Options) -> Emulator {
        let org_id = options
            .org_id
            .clone()
            .unwrap_or_else(|| format!("{}00000000001", crate::new_account_number()));
        // Metadata ids (users, pipelines, layouts) start with the org's first eight digits.
        let zgid = org_id
            .get(..8)
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|p| *p >= 10_000_000)
            .unwrap_or(48_768_760);
        let store = Store::new(
            options.source_id_field.as_ref(),
            zgid,
            options.multi_currency,
            options.gdpr,
        );
        Emulator {
            shared: Arc::new(Shared {
                org_id,
                options,
                store: RwLock::new(store),
                access: Mutex::new(HashMap::new()),
                pages: Mutex::new(Tokens::default()),
                credits_used: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
                requests: AtomicU64::new(0),
                partial_inputs: crate::faults::Counter::default(),
                clock: crate::clock::Clock::default(),
            }),
        }
    }

    /// Loads generated data as native Zoho records (no source ids: they were born in Zoho):
    /// companies become Accounts, contacts Contacts with their `Account_Name` lookup. Contacts
    /// Zoho would refuse are left out and counted.
    pub fn seed(&self, data: &SeedData) -> Seeded {
        let mut store = self.shared.store.write().unwrap_or_else(|e| e.into_inner());
        let mut seeded = Seeded::default();
        let text = |v: &Option<String>| {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| Val::Str(s.into()))
        };
        let mut account_ids = Vec::with_capacity(data.companies.len());
        for c in &data.companies {
            let values = vec![
                ("Account_Name", text(&c.name)),
                ("Website", text(&c.domain)),
                ("Phone", text(&c.phone)),
                (
                    "Industry",
                    c.industry
                        .as_deref()
                        .and_then(|seeded| SPEC.industry?.label(seeded))
                        .map(|label| Val::Str(label.into())),
                ),
                (
                    "Employees",
                    c.employee_count.map(|n| Val::Int(i64::from(n))),
                ),
                ("Annual_Revenue", c.annual_revenue.map(Val::Num)),
                ("Billing_Street", text(&c.street)),
                ("Billing_City", text(&c.city)),
                ("Billing_State", text(&c.state)),
                ("Billing_Code", text(&c.postal_code)),
                ("Billing_Country", text(&c.country)),
                ("Region", text(&c.region)),
                ("Seats", c.seats.map(|n| Val::Int(i64::from(n)))),
                ("Tier", c.tier.map(|t| Val::Str(t.into()))),
                ("Owner", Some(Val::Ref(store.user_id_of_seed(c.owner)))),
            ];
            account_ids.push(store.insert_seeded(
                Module::Accounts,
                values,
                c.created_at_ms,
                c.updated_at_ms,
            ));
            seeded.accounts += 1;
        }
        let schema = Arc::clone(&store.table(Module::Contacts).schema);
        let fits = |name: &str, v: &Option<String>| {
            v.as_deref().is_none_or(|s| {
                schema
                    .field(name)
                    .is_some_and(|i| s.chars().count() <= schema.fields[i].length)
            })
        };
        let mut contact_ids: Vec<Option<u64>> = Vec::with_capacity(data.contacts.len());
        for c in &data.contacts {
            let ok = c.last_name.as_deref().is_some_and(|s| !s.is_empty())
                && c.email.as_deref().is_none_or(store::valid_email)
                && fits("First_Name", &c.first_name)
                && fits("Last_Name", &c.last_name)
                && fits("Title", &c.job_title)
                && fits("Email", &c.email)
                && fits("Mailing_Street", &c.street);
            if !ok {
                seeded.skipped_contacts += 1;
                contact_ids.push(None);
                continue;
            }
            let values = vec![
                ("First_Name", text(&c.first_name)),
                ("Last_Name", text(&c.last_name)),
                ("Email", text(&c.email)),
                ("Phone", text(&c.phone)),
                ("Mobile", text(&c.mobile_phone)),
                ("Title", text(&c.job_title)),
                ("Mailing_Street", text(&c.street)),
                ("Mailing_City", text(&c.city)),
                ("Mailing_State", text(&c.state)),
                ("Mailing_Zip", text(&c.postal_code)),
                ("Mailing_Country", text(&c.country)),
                ("Email_Opt_Out", Some(Val::Bool(c.email_opt_out))),
                ("Favourite_Colour", text(&c.favourite_colour)),
                (
                    "Loyalty_Points",
                    c.loyalty_points.map(|n| Val::Int(i64::from(n))),
                ),
                (
                    "Account_Name",
                    c.company
                        .and_then(|k| account_ids.get(k))
                        .map(|id| Val::Ref(*id)),
                ),
                ("Owner", Some(Val::Ref(store.user_id_of_seed(c.owner)))),
                (store::CONSENT_FIELD, seed_consent(c, contact_ids.len())),
            ];
            contact_ids.push(Some(store.insert_seeded(
                Module::Contacts,
                values,
                c.created_at_ms,
                c.updated_at_ms,
            )));
            seeded.contacts += 1;
        }
        let deal_ids = seed_deals(&mut store, data, &account_ids, &contact_ids);
        seeded.deals = deal_ids.iter().flatten().count();
        let (notes, skipped) = seed_notes(&mut store, data, &account_ids, &contact_ids, &deal_ids);
        seeded.notes = notes;
        seeded.skipped_notes = skipped;
        tracing::debug!(
            accounts = seeded.accounts,
            contacts = seeded.contacts,
            skipped = seeded.skipped_contacts,
            deals = seeded.deals,
            notes = seeded.notes,
            skipped_notes = seeded.skipped_notes,
            "seeded zoho"
        );
        seeded
    }

    /// How many records `module` (`"Accounts"`, `"Contacts"`, `"Deals"`, `"Notes"`) holds.
    pub fn count(&self, module: &str) -> usize {
        let Some(target) = Target::parse(module) else {
            return 0;
        };
        self.shared
            .store
            .read()
            .map(|s| match target {
                Target::Store(m) => s.table(m).rows.len(),
                Target::Crm(m) => s.crm.records(m).table.len(),
            })
            .unwrap_or(0)
    }

    /// Deactivates the user whose email is `email` (ignoring case), as an admin would: still
    /// listed (`status: "disabled"`), no longer a valid `Owner`. `false`: no such user.
    pub fn deactivate_user(&self, email: &str) -> bool {
        let mut store = self.shared.store.write().unwrap_or_else(|e| e.into_inner());
        match store
            .users
            .iter_mut()
            .find(|u| u.email.eq_ignore_ascii_case(email))
        {
            Some(u) => {
                u.active = false;
                true
            }
            None => false,
        }
    }

    /// The contact ids of deal `deal_id`'s contact roles, in id order.
    pub fn deal_contact_roles(&self, deal_id: &str) -> Vec<String> {
        let Ok(id) = deal_id.parse::<u64>() else {
            return Vec::new();
        };
        self.shared
            .store
            .read()
            .map(|s| {
                s.crm
                    .roles
                    .from(id, None, usize::MAX)
                    .into_iter()
                    .map(|(c, _)| c.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The ids of `module`'s records, as its connector reports them as source ids: a
    /// snapshot, for tests that check nothing was lost.
    pub fn source_ids(&self, module: &str) -> Vec<String> {
        let Some(module) = Module::parse(module) else {
            return Vec::new();
        };
        self.shared
            .store
            .read()
            .map(|s| {
                s.table(module)
                    .rows
                    .iter()
                    .map(|r| r.id.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The record of `module` (Accounts, Contacts, Deals or Notes) whose source-id field holds
    /// `source_id`, with every field as a read by id renders it (lookups as `{"name", "id"}`).
    pub fn record_by_source_id(&self, module: &str, source_id: &str) -> Option<Json> {
        let src = &self.shared.options.source_id_field.as_ref()?.api_name;
        if let Some(m) = CrmModule::parse(module) {
            let store = self.shared.store.read().ok()?;
            let table = &store.crm.records(m).table;
            let row = table.find(table.column(src)?, source_id)?;
            return Some(crm::render_row(&store, m, row, None));
        }
        let module = Module::parse(module)?;
        let store = self.shared.store.read().ok()?;
        let table = store.table(module);
        let field = table
            .schema
            .field(&self.shared.options.source_id_field.as_ref()?.api_name)?;
        let pos = table.by_unique(field, source_id)?;
        let row = &table.rows[pos];
        let mut out = Map::new();
        out.insert("id".into(), Json::String(row.id.to_string()));
        for (i, f) in table.schema.fields.iter().enumerate() {
            out.insert(f.api_name.clone(), store.render_value(module, row, i));
        }
        Some(Json::Object(out))
    }

    /// Copies the record of `module` (Accounts, Contacts or Deals) whose source-id field holds
    /// `source_id` into a new record with the same source id, as if it was saved while the field
    /// did not refuse duplicates: a duplicate for verification to find. The new record's id.
    pub fn duplicate(&self, module: &str, source_id: &str) -> Option<String> {
        let module = Module::parse(module)?;
        let src = &self.shared.options.source_id_field.as_ref()?.api_name;
        let mut store = self.shared.store.write().ok()?;
        let table = store.table(module);
        let pos = table.by_unique(table.schema.field(src)?, source_id)?;
        store.duplicate_row(module, pos).map(|id| id.to_string())
    }

    /// API credits used so far.
    pub fn credits_used(&self) -> u64 {
        self.shared.credits_used.load(Ordering::Relaxed)
    }

    /// API calls answered so far (refused ones included).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Invalidates every access token issued so far, as expiry or revocation does: the next
    /// call with one gets 401 `INVALID_TOKEN`.
    pub fn expire_tokens(&self) {
        if let Ok(mut access) = self.shared.access.lock() {
            access.clear();
        }
    }

    /// The org id, as `GET /crm/v8/org` reports it.
    pub fn org_id(&self) -> &str {
        &self.shared.org_id
    }

    /// The org's clock, in ms since the epoch: what writes stamp `Modified_Time` with.
    pub fn now_ms(&self) -> i64 {
        self.shared.clock.now_ms()
    }

    /// Moves the org's clock `by` ahead, as time passing would: later writes are stamped and
    /// answers dated (`Date`) that much later. A test hook, so that incremental reads are
    /// tested without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Stamps every live record of `module` as modified now by the org's clock, cells left
    /// alone, as a mass update or an import does: thousands of records on one `Modified_Time`
    /// second. Returns how many (0 for an unknown module). A test hook for ties.
    pub fn mass_update(&self, module: &str) -> usize {
        self.stamp_every(module, 1)
    }

    /// Stamps every `every_nth` live record of `module` (in id order) as modified now by the
    /// org's clock, cells left alone; returns how many (0 for an unknown module).
    fn stamp_every(&self, module: &str, every_nth: usize) -> usize {
        let now = self.shared.clock.now_ms();
        let Some(target) = Target::parse(module) else {
            return 0;
        };
        let mut store = self.shared.store.write().unwrap_or_else(|e| e.into_inner());
        match target {
            Target::Store(m) => {
                let rows = store.table(m).rows.len();
                let picked: Vec<usize> = crate::every_nth(rows, every_nth).collect();
                picked.iter().for_each(|n| store.touch_nth(m, *n, now));
                picked.len()
            }
            Target::Crm(m) => {
                let table = &mut store.crm.records_mut(m).table;
                let ids: Vec<u64> = table.iter(table::Show::Live).map(|r| r.id).collect();
                crate::every_nth(ids.len(), every_nth)
                    .filter(|at| table.touch(ids[*at], now))
                    .count()
            }
        }
    }

    /// The HTTP routes, with the configured faults injected.
    pub fn router(&self) -> Router {
        let state = Arc::clone(&self.shared);
        let api = Router::new()
            .route(
                "/crm/v8/settings/fields",
                get(fields_metadata).post(create_fields),
            )
            .route("/crm/v8/coql", post(coql_query))
            .route("/crm/v8/users", get(api::users))
            .route("/crm/v8/users/{id}", get(api::user))
            .route("/crm/v8/settings/layouts", get(api::layouts))
            .route("/crm/v8/settings/pipeline", get(api::pipelines))
            .route(
                "/crm/v8/{module}",
                get(list)
                    .post(api::module_post)
                    .put(api::module_put)
                    .delete(api::module_delete),
            )
            .route(
                "/crm/v8/{module}/{id}",
                get(api::record_get)
                    .put(api::record_put)
                    .delete(api::record_delete),
            )
            .route(
                "/crm/v8/{module}/{id}/Contact_Roles",
                get(api::deal_roles).delete(api::deal_roles_delete),
            )
            .route(
                "/crm/v8/{module}/{id}/Contact_Roles/{contact}",
                get(api::deal_role_get)
                    .put(api::deal_role_put)
                    .delete(api::deal_role_delete),
            )
            .route("/crm/v8/{module}/upsert", post(upsert))
            .route("/crm/v8/{module}/actions/count", get(record_count))
            .route("/crm/v8/org", get(org))
            .route(
                "/crm/{*rest}",
                axum::routing::any(|| async { invalid_url() }),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&state),
                guard,
            ));
        let router = Router::new()
            .route("/oauth/v2/token", post(token))
            .merge(api)
            .fallback(|| async { invalid_url() })
            .with_state(Arc::clone(&state))
            .layer(axum::middleware::from_fn_with_state(state, date_header));
        let expiring = self.clone();
        let router = crate::faults::expiring(router, &self.shared.options.faults, move || {
            expiring.expire_tokens()
        });
        let shifted = self.clone();
        let router = crate::faults::shifting(
            router,
            &self.shared.options.faults,
            later_page,
            move |module, k| shifted.shift(*module, k),
        );
        crate::faults::inject(router, self.shared.options.faults.clone(), zoho_429)
    }

    /// One change of the `shift` fault: creates record number `k` of `module` and updates an
    /// existing one. Zoho ids grow, so in id order a new record sorts after every record that
    /// existed at the start: page numbers (offsets) and page tokens (the last id) then neither
    /// skip nor repeat an old record, and the new ones come on later pages.
    fn shift(&self, module: Module, k: u64) {
        let now = self.shared.clock.now_ms();
        self.seed(&crate::seed::shifted(module == Module::Accounts, k, now));
        let mut store = self.shared.store.write().unwrap_or_else(|e| e.into_inner());
        let rows = store.table(module).rows.len();
        if let Some(n) = crate::faults::shift_target(k, rows) {
            store.touch_nth(module, n, now);
        }
    }
}

/// Dates every answer by the org's clock (`Date`): what a client takes Zoho's time from.
async fn date_header(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    s.clock.date(&mut response);
    response
}

impl Shared {
    /// Whether the `partial` fault fails the next record of a write.
    fn partial_fails(&self) -> bool {
        self.options.faults.partial.is_some_and(|p| {
            self.options
                .faults
                .hits(crate::faults::PARTIAL_SALT, self.partial_inputs.next(), p)
        })
    }

    /// Books `cost` credits; false when the window's credits are used up.
    fn charge(&self, cost: u64) -> bool {
        match self.options.credits {
            None => {
                self.credits_used.fetch_add(cost, Ordering::Relaxed);
                true
            }
            Some(limit) => {
                let used = self.credits_used.fetch_add(cost, Ordering::Relaxed) + cost;
                if used > limit {
                    self.credits_used.fetch_sub(cost, Ordering::Relaxed);
                    false
                } else {
                    true
                }
            }
        }
    }
}

fn credits_exhausted() -> Response {
    too_many("You have exceeded the API credit limit of your organisation for the last 24 hours")
}

// ---- OAuth ---------------------------------------------------------------------------------

/// The token request's parameters. Zoho's OAuth reference documents them as query parameters of
/// the POST, its examples also send them as a form body, and its official SDKs send
/// `multipart/form-data` (`FormData` in the Node SDK): all three are accepted, a body value
/// overriding the query's.
#[derive(Default)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

impl TokenForm {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "grant_type" => self.grant_type = Some(value),
            "client_id" => self.client_id = Some(value),
            "client_secret" => self.client_secret = Some(value),
            "refresh_token" => self.refresh_token = Some(value),
            _ => {}
        }
    }

    /// Adds `a=1&b=2` pairs (`+` as space, percent-decoded); `None` if one does not decode.
    fn add_urlencoded(&mut self, pairs: &str) -> Option<()> {
        for pair in pairs.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                urlencoding::decode(&s.replace('+', " "))
                    .ok()
                    .map(|c| c.into_owned())
            };
            self.set(&decode(name)?, decode(value)?);
        }
        Some(())
    }

    /// Adds the text fields of a `multipart/form-data` body; `None` if it is not well formed.
    fn add_multipart(&mut self, boundary: &str, body: &str) -> Option<()> {
        let delimiter = format!("--{boundary}");
        let mut parts = body.split(delimiter.as_str());
        parts.next()?; // the preamble before the first delimiter
        for part in parts {
            if part.starts_with("--") {
                return Some(()); // the closing delimiter
            }
            let part = part.strip_prefix("\r\n")?;
            let (head, value) = part.split_once("\r\n\r\n")?;
            let name = head
                .split("\r\n")
                .find(|l| {
                    l.to_ascii_lowercase()
                        .starts_with("content-disposition: form-data")
                })?
                .split(';')
                .find_map(|p| p.trim().strip_prefix("name="))?
                .trim_matches('"');
            self.set(name, value.strip_suffix("\r\n")?.to_owned());
        }
        None
    }
}

/// The token request's parameters from its query string and its body, either
/// `application/x-www-form-urlencoded` or `multipart/form-data`.
fn token_form(headers: &HeaderMap, uri: &axum::http::Uri, body: &[u8]) -> Option<TokenForm> {
    let mut form = TokenForm::default();
    form.add_urlencoded(uri.query().unwrap_or(""))?;
    if body.is_empty() {
        return Some(form);
    }
    let body = std::str::from_utf8(body).ok()?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        form.add_urlencoded(body)?;
    } else if mime.eq_ignore_ascii_case("multipart/form-data") {
        let boundary = content_type
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))?
            .trim_matches('"');
        form.add_multipart(boundary, body)?;
    } else {
        return None;
    }
    Some(form)
}

/// Zoho's accounts server answers OAuth errors with HTTP 200 and `{"error": …}`.
fn oauth_error(error: &str) -> Response {
    axum::Json(json!({"error": error})).into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let Some(form) = token_form(&headers, &uri, &body) else {
        return oauth_error("invalid_request");
    };
    if form.grant_type.as_deref() != Some("refresh_token") {
        return oauth_error("unsupported_grant_type");
    }
    if form.client_id.as_deref() != Some(s.options.client_id.as_str()) {
        return oauth_error("invalid_client");
    }
    if form.client_secret.as_deref() != Some(s.options.client_secret.as_str()) {
        return oauth_error("invalid_client_secret");
    }
    if form.refresh_token.as_deref() != Some(s.options.refresh_token.as_str()) {
        return oauth_error("invalid_code");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let access_token = format!("1000.{}.{}", random_string(32), random_string(32));
    if let Ok(mut access) = s.access.lock() {
        access.insert(access_token.clone(), Instant::now());
    }
    axum::Json(json!({
        "access_token": access_token,
        "scope": "ZohoCRM.modules.ALL ZohoCRM.settings.fields.READ ZohoCRM.coql.READ",
        "api_domain": format!("http://{host}"),
        "token_type": "Bearer",
        "expires_in": s.options.token_lifetime.as_secs(),
    }))
    .into_response()
}

/// Auth, the concurrency limit, the credit window and `X-API-CREDITS-REMAINING`, for every
/// `/crm/…` call.
async fn guard(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Zoho-oauthtoken "))
        .map(str::trim);
    let Some(token) = token else {
        return zoho_error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILURE",
            "Authentication failed",
            json!({}),
        );
    };
    let valid = s.access.lock().is_ok_and(|access| {
        access
            .get(token)
            .is_some_and(|issued| issued.elapsed() < s.options.token_lifetime)
    });
    if !valid {
        return zoho_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_TOKEN",
            "invalid oauth token",
            json!({}),
        );
    }
    let in_flight = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let over_concurrency = s
        .options
        .concurrency_limit
        .is_some_and(|max| in_flight > max);
    let exhausted = s
        .options
        .credits
        .is_some_and(|max| s.credits_used.load(Ordering::Relaxed) >= max);
    let mut response = if over_concurrency {
        too_many("The number of concurrent requests has exceeded the limit of your organisation")
    } else if exhausted {
        credits_exhausted()
    } else {
        if !s.options.latency.is_zero() {
            tokio::time::sleep(s.options.latency).await;
        }
        next.run(request).await
    };
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    if let Some(max) = s.options.credits {
        let used = s.credits_used.load(Ordering::Relaxed);
        // Zoho sends the header only once half of the window's credits are used.
        if used.saturating_mul(2) >= max {
            response.headers_mut().insert(
                "x-api-credits-remaining",
                HeaderValue::from(max.saturating_sub(used)),
            );
        }
    }
    response
}

// ---- field metadata ------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct FieldsParams {
    module: Option<String>,
}

async fn fields_metadata(
    State(s): State<Arc<Shared>>,
    Query(params): Query<FieldsParams>,
) -> Response {
    let Some(name) = params.module else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "required param is missing",
            json!({"param_name": "module"}),
        );
    };
    let Some(target) = Target::parse(&name) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({"param_name": "module"}),
        );
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    match target {
        Target::Store(module) => axum::Json(store.table(module).schema.describe()),
        Target::Crm(m) => axum::Json(store.crm.describe(m)),
    }
    .into_response()
}

/// One field of a create-field request, or why it cannot be created (Zoho's error item).
fn new_field(store: &Store, module: Target, i: usize, f: &Json) -> Result<FieldDef, Json> {
    let error = |code: &str, message: &str, key: &str| {
        json!({"code": code, "details": {"api_name": key, "json_path": format!("$.fields[{i}].{key}")},
               "message": message, "status": "error"})
    };
    let label = match f.get("field_label") {
        None | Some(Json::Null) => {
            return Err(error(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                "field_label",
            ));
        }
        Some(Json::String(l)) if !l.trim().is_empty() && l.chars().count() <= 50 => l.trim(),
        Some(_) => return Err(error("INVALID_DATA", "invalid data", "field_label")),
    };
    let api_name = store::api_name_from_label(label);
    if api_name.is_empty() || !api_name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(error("INVALID_DATA", "invalid data", "field_label"));
    }
    let taken = match module {
        Target::Store(module) => store.table(module).schema.fields.iter().any(|d| {
            d.api_name.eq_ignore_ascii_case(&api_name) || d.label.eq_ignore_ascii_case(label)
        }),
        Target::Crm(m) => store.crm.is_taken(m, &api_name, label),
    };
    if taken {
        return Err(error(
            "ALREADY_USED",
            "the field label is already used",
            "field_label",
        ));
    }
    let data_type = match f.get("data_type") {
        None | Some(Json::Null) => {
            return Err(error(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                "data_type",
            ));
        }
        Some(d) => d.as_str().unwrap_or_default(),
    };
    let Some((kind, default_length)) = Kind::creatable(data_type) else {
        return Err(error("INVALID_DATA", "invalid data", "data_type"));
    };
    let length = match f.get("length") {
        None | Some(Json::Null) => default_length,
        Some(n) => match n.as_u64() {
            Some(n) if kind == Kind::Text && (1..=255).contains(&n) => n as usize,
            Some(n) if n as usize == default_length => default_length,
            _ => return Err(error("INVALID_DATA", "invalid data", "length")),
        },
    };
    let mut options = Vec::new();
    if kind == Kind::Picklist {
        let Some(values) = f
            .get("pick_list_values")
            .and_then(Json::as_array)
            .filter(|v| !v.is_empty())
        else {
            return Err(error(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                "pick_list_values",
            ));
        };
        for v in values {
            let display = v
                .get("display_value")
                .and_then(Json::as_str)
                .map(str::trim)
                .filter(|d| !d.is_empty() && d.chars().count() <= 120);
            match display {
                Some(d) if !options.iter().any(|o: &String| o.eq_ignore_ascii_case(d)) => {
                    options.push(d.to_owned())
                }
                _ => return Err(error("INVALID_DATA", "invalid data", "pick_list_values")),
            }
        }
    }
    Ok(FieldDef {
        api_name,
        label: label.to_owned(),
        kind,
        length,
        mandatory: false,
        unique: None,
        custom: true,
        read_only: false,
        options,
    })
}

/// `POST /crm/v8/settings/fields?module=…`: creates custom fields from
/// `{"fields": [{"field_label", "data_type", "length", "pick_list_values"}]}`. The API name is
/// derived from the label. Zoho answers 201 with one `{code, details: {id}, message, status}`
/// per field; if any field is refused, none is created and the answer is 400 with the refusals.
async fn create_fields(
    State(s): State<Arc<Shared>>,
    Query(params): Query<FieldsParams>,
    body: Bytes,
) -> Response {
    let Some(name) = params.module else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "required param is missing",
            json!({"param_name": "module"}),
        );
    };
    let Some(module) = Target::parse(&name) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({"param_name": "module"}),
        );
    };
    let Ok(body) = serde_json::from_slice::<Json>(&body) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "body is not a valid JSON",
            json!({}),
        );
    };
    let Some(requested) = body
        .get("fields")
        .and_then(Json::as_array)
        .filter(|f| !f.is_empty())
    else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "MANDATORY_NOT_FOUND",
            "required field not found",
            json!({"api_name": "fields", "json_path": "$.fields"}),
        );
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    let mut defs = Vec::with_capacity(requested.len());
    let mut refused = Vec::new();
    for (i, f) in requested.iter().enumerate() {
        match new_field(&store, module, i, f) {
            Ok(def) if defs.iter().any(|d: &FieldDef| d.api_name == def.api_name) => {
                refused.push(
                    json!({"code": "ALREADY_USED", "details": {"api_name": "field_label",
                    "json_path": format!("$.fields[{i}].field_label")},
                    "message": "the field label is already used", "status": "error"}),
                );
            }
            Ok(def) => defs.push(def),
            Err(e) => refused.push(e),
        }
    }
    if !refused.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "fields": refused })),
        )
            .into_response();
    }
    let created: Vec<Json> = defs
        .into_iter()
        .map(|def| {
            let id = match module {
                Target::Store(module) => store::field_id(store.table_mut(module).add_field(def)),
                Target::Crm(m) => store.crm.add_field(m, def),
            };
            json!({"code": "SUCCESS", "details": {"id": id},
                   "message": "field created", "status": "success"})
        })
        .collect();
    (
        StatusCode::CREATED,
        axum::Json(json!({ "fields": created })),
    )
        .into_response()
}

// ---- list ----------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct ListParams {
    fields: Option<String>,
    /// Up to 100 record ids: those records only, in id order, in one page.
    ids: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    page_token: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

fn invalid_param(param: &str) -> Response {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "INVALID_DATA",
        "invalid data",
        json!({"param_name": param}),
    )
}

/// What a list is sorted by (`sort_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Id,
    Created,
    Modified,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Id => "id",
            Order::Created => "Created_Time",
            Order::Modified => "Modified_Time",
        }
    }
}

/// One record of the original store as a list item: its id and the fields asked for.
fn store_item(store: &Store, module: Module, row: &store::Row, cols: &[usize]) -> Json {
    let table = store.table(module);
    let mut item = Map::new();
    item.insert("id".into(), Json::String(row.id.to_string()));
    for &c in cols {
        item.insert(
            table.schema.fields[c].api_name.clone(),
            store.render_value(module, row, c),
        );
    }
    Json::Object(item)
}

/// A list page sorted by `order` (ties by id), of the records modified after `since` if
/// given, starting past the record `after` (its sort key and id) or `offset` records in:
/// the items, whether more follow, and the last record's (sort key, id). `Modified_Time` has
/// whole seconds, so "after `since`" compares seconds: a record stamped in the same second as
/// `If-Modified-Since` is not listed (whether Zoho lists it is not documented; this is the
/// stricter reading, which a client's overlap must absorb).
#[allow(clippy::too_many_arguments)]
fn list_sorted(
    store: &Store,
    module: Target,
    names: &[&str],
    (order, since): (Order, Option<i64>),
    after: Option<(i64, u64)>,
    offset: usize,
    per_page: usize,
    desc: bool,
) -> (Vec<Json>, bool, (i64, u64)) {
    let key = |id: u64, created: i64, modified: i64| match order {
        Order::Id => i64::try_from(id).unwrap_or(i64::MAX),
        Order::Created => created,
        Order::Modified => modified,
    };
    let changed =
        |modified: i64| since.is_none_or(|t| modified.div_euclid(1000) > t.div_euclid(1000));
    let mut keys: Vec<(i64, u64)> = match module {
        Target::Store(m) => store
            .table(m)
            .rows
            .iter()
            .filter(|r| changed(r.modified_ms))
            .map(|r| (key(r.id, r.created_ms, r.modified_ms), r.id))
            .collect(),
        Target::Crm(m) => store
            .crm
            .records(m)
            .table
            .iter(table::Show::Live)
            .filter(|r| changed(r.modified_ms))
            .map(|r| (key(r.id, r.created_ms, r.modified_ms), r.id))
            .collect(),
    };
    keys.sort_unstable();
    if desc {
        keys.reverse();
    }
    let begin = match after {
        Some(a) if desc => keys.partition_point(|k| *k >= a),
        Some(a) => keys.partition_point(|k| *k <= a),
        None => offset.min(keys.len()),
    };
    let end = (begin + per_page).min(keys.len());
    let page = &keys[begin..end];
    let data = page
        .iter()
        .filter_map(|&(_, id)| match module {
            Target::Store(m) => {
                let table = store.table(m);
                let cols: Vec<usize> = names.iter().filter_map(|n| table.schema.field(n)).collect();
                let row = &table.rows[table.position(id)?];
                Some(store_item(store, m, row, &cols))
            }
            Target::Crm(m) => {
                let row = store.crm.records(m).table.get(id)?;
                Some(crm::render_row(store, m, row, Some(names)))
            }
        })
        .collect();
    (
        data,
        end < keys.len(),
        page.last().copied().unwrap_or((0, 0)),
    )
}

/// `GET /crm/v8/{module}`: a page of records, by page number (up to the 2,000th record) or
/// page token, sorted by `sort_by`, only those modified after `If-Modified-Since` if sent
/// (304 Not Modified when there are none).
async fn list(
    State(s): State<Arc<Shared>>,
    Path(module): Path<String>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Response {
    let Some(module) = Target::parse(&module) else {
        return invalid_module();
    };
    let Some(fields) = params.fields.filter(|f| !f.trim().is_empty()) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "required param is missing",
            json!({"param_name": "fields"}),
        );
    };
    let names: Vec<&str> = fields
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if names.len() > MAX_FIELDS {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "limit exceeded",
            json!({"limit": MAX_FIELDS, "param_name": "fields"}),
        );
    }
    if let Some(ids) = &params.ids {
        return list_ids(&s, module, &names, ids);
    }
    let per_page = match params.per_page.as_deref().map(str::parse::<usize>) {
        None => MAX_PER_PAGE,
        Some(Ok(n)) if (1..=MAX_PER_PAGE).contains(&n) => n,
        Some(_) => return invalid_param("per_page"),
    };
    let order = match params.sort_by.as_deref() {
        None | Some("id") => Order::Id,
        Some("Created_Time") => Order::Created,
        Some("Modified_Time") => Order::Modified,
        Some(_) => {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "sort_by", "supported_values": ["id", "Created_Time", "Modified_Time"]}),
            );
        }
    };
    let since = match headers.get(header::IF_MODIFIED_SINCE) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(crate::timestamp::parse_rfc3339) {
            Some(ms) => Some(ms),
            None => {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"header_name": "If-Modified-Since"}),
                );
            }
        },
    };
    // Sorting by a time or filtering by one takes the general path; by id alone, the index.
    let by = (order != Order::Id || since.is_some()).then_some((order, since));
    let desc = match params.sort_order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "sort_order", "supported_values": ["asc", "desc"]}),
            );
        }
    };
    if params.page.is_some() && params.page_token.is_some() {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "AMBIGUITY_DURING_PROCESSING",
            "page and page_token cannot be used together",
            json!({"ambiguity_due_to": [{"param_name": "page"}, {"param_name": "page_token"}]}),
        );
    }
    // Where to start: an offset (page numbers) or after an id (a page token).
    let (start_after, offset, served, page) = match &params.page_token {
        Some(token) => {
            let found = s.pages.lock().ok().and_then(|t| t.open.get(token).cloned());
            let Some(t) = found else {
                return invalid_param("page_token");
            };
            if t.issued.elapsed() > Duration::from_secs(24 * 3600) {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "EXPIRED_VALUE",
                    "the page token has expired",
                    json!({"api_name": "page_token", "json_path": "page_token"}),
                );
            }
            if t.module != module || t.desc != desc || t.by != by {
                let param = if t.module != module {
                    "module"
                } else if t.desc != desc {
                    "sort_order"
                } else if t.by.map(|b| b.0) != by.map(|b| b.0) {
                    "sort_by"
                } else {
                    "If-Modified-Since"
                };
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "TOKEN_BOUND_DATA_MISMATCH",
                    "the page token does not belong to this request",
                    json!({"param_name": param}),
                );
            }
            if t.served >= s.options.page_token_reach {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "PAGINATION_LIMIT_EXCEEDED",
                    &format!(
                        "You can only get upto {} records using page_token param",
                        s.options.page_token_reach
                    ),
                    json!({"param_name": "page_token"}),
                );
            }
            (
                Some((t.after_key, t.after)),
                0,
                t.served,
                t.served / per_page + 1,
            )
        }
        None => {
            let page = match params.page.as_deref().map(str::parse::<usize>) {
                None => 1,
                Some(Ok(n)) if n >= 1 => n,
                Some(_) => return invalid_param("page"),
            };
            if page.saturating_mul(per_page) > PAGE_NUMBER_REACH {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "You can only get the first 2000 records without using page_token param",
                    json!({"limit": PAGE_NUMBER_REACH}),
                );
            }
            (None, (page - 1) * per_page, (page - 1) * per_page, page)
        }
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let (data, more, last) = match (module, by) {
        (_, Some(by)) => list_sorted(
            &store,
            module,
            &names,
            by,
            start_after,
            offset,
            per_page,
            desc,
        ),
        (Target::Crm(m), None) => {
            let after = start_after.map(|a| a.1);
            let (data, more, last) =
                api::list_page(&store, m, &names, after, offset, per_page, desc);
            (data, more, (i64::try_from(last).unwrap_or(i64::MAX), last))
        }
        (Target::Store(module), None) => {
            let start_after = start_after.map(|a| a.1);
            let table = store.table(module);
            let cols: Vec<usize> = names.iter().filter_map(|n| table.schema.field(n)).collect();
            let n = table.rows.len();
            // Positions in the requested order, as a range over the id-ordered rows.
            let (begin, end) = match (start_after, desc) {
                (None, false) => (offset.min(n), (offset + per_page).min(n)),
                (None, true) => (
                    n.saturating_sub(offset + per_page),
                    n.saturating_sub(offset),
                ),
                (Some(after), false) => {
                    let b = table.rows.partition_point(|r| r.id <= after);
                    (b, (b + per_page).min(n))
                }
                (Some(after), true) => {
                    let e = table.rows.partition_point(|r| r.id < after);
                    (e.saturating_sub(per_page), e)
                }
            };
            let mut positions: Vec<usize> = (begin..end).collect();
            if desc {
                positions.reverse();
            }
            let more = if desc { begin > 0 } else { end < n };
            let data: Vec<Json> = positions
                .iter()
                .map(|&p| store_item(&store, module, &table.rows[p], &cols))
                .collect();
            let last_id = positions.last().map(|&p| table.rows[p].id).unwrap_or(0);
            (
                data,
                more,
                (i64::try_from(last_id).unwrap_or(i64::MAX), last_id),
            )
        }
    };
    drop(store);
    if data.is_empty() {
        if since.is_some() {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        return StatusCode::NO_CONTENT.into_response();
    }
    let served = served + data.len();
    let (next_token, expiry) = if more {
        let token = random_string(64);
        if let Ok(mut tokens) = s.pages.lock() {
            tokens.open.insert(
                token.clone(),
                PageToken {
                    module,
                    desc,
                    by,
                    after_key: last.0,
                    after: last.1,
                    served,
                    issued: Instant::now(),
                },
            );
            tokens.order.push_back(token.clone());
            while tokens.order.len() > OPEN_TOKENS {
                if let Some(old) = tokens.order.pop_front() {
                    tokens.open.remove(&old);
                }
            }
        }
        (
            Json::String(token),
            Json::String(store::zoho_time(s.clock.now_ms() + 24 * 3600 * 1000)),
        )
    } else {
        (Json::Null, Json::Null)
    };
    axum::Json(json!({
        "data": data,
        "info": {
            "per_page": per_page,
            "count": data.len(),
            "page": page,
            "sort_by": order.name(),
            "sort_order": if desc { "desc" } else { "asc" },
            "more_records": more,
            "next_page_token": next_token,
            "previous_page_token": params.page_token,
            "page_token_expiry": expiry,
        }
    }))
    .into_response()
}

/// `GET /crm/v8/{module}?ids=…&fields=…`: the records of those ids (at most 100; ids the module
/// lacks are left out), in id order, one page for one credit; 204 when none is found.
fn list_ids(s: &Shared, module: Target, names: &[&str], ids: &str) -> Response {
    let ids: Vec<&str> = ids
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if ids.len() > WRITE_LIMIT {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "limit exceeded",
            json!({"limit": WRITE_LIMIT, "param_name": "ids"}),
        );
    }
    let Some(mut ids) = ids
        .iter()
        .map(|i| i.parse::<u64>().ok())
        .collect::<Option<Vec<u64>>>()
        .filter(|ids| !ids.is_empty())
    else {
        return invalid_param("ids");
    };
    ids.sort_unstable();
    ids.dedup();
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let data: Vec<Json> = ids
        .iter()
        .filter_map(|&id| match module {
            Target::Store(m) => {
                let table = store.table(m);
                let cols: Vec<usize> = names.iter().filter_map(|n| table.schema.field(n)).collect();
                let row = &table.rows[table.position(id)?];
                Some(store_item(&store, m, row, &cols))
            }
            Target::Crm(m) => {
                let row = store.crm.records(m).table.get(id)?;
                Some(crm::render_row(&store, m, row, Some(names)))
            }
        })
        .collect();
    drop(store);
    if data.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    axum::Json(json!({
        "data": data,
        "info": {"per_page": data.len(), "count": data.len(), "page": 1, "more_records": false}
    }))
    .into_response()
}

// ---- record count ------------------------------------------------------------------------

/// `GET /crm/v8/{module}/actions/count`: `{"count": n}` for one credit.
async fn record_count(State(s): State<Arc<Shared>>, Path(module): Path<String>) -> Response {
    let Some(target) = Target::parse(&module) else {
        return invalid_module();
    };
    if !s.charge(1) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    let count = match target {
        Target::Store(module) => store.table(module).rows.len(),
        Target::Crm(m) => store.crm.records(m).table.len(),
    };
    axum::Json(json!({ "count": count })).into_response()
}

/// `GET /crm/v8/org`: the org's details, in the documented shape (`{"org": [{…}]}`).
async fn org(State(s): State<Arc<Shared>>) -> Response {
    if !s.charge(1) {
        return credits_exhausted();
    }
    let zgid = s.org_id.get(..8).unwrap_or(&s.org_id);
    axum::Json(json!({"org": [{
        "id": s.org_id,
        "company_name": "Sandbox Org",
        "domain_name": format!("org{zgid}"),
        "zgid": zgid,
        "primary_zuid": "71562802",
        "country_code": "US",
        "currency": "US Dollar",
        "iso_code": HOME_CURRENCY,
        "mc_status": s.options.multi_currency,
        "privacy_settings": s.options.gdpr,
        "currency_locale": "en_US",
        "time_zone": "America/Los_Angeles",
        "type": "production",
        "license_details": {"paid": true, "paid_type": "enterprise", "trial_type": null,
            "trial_expiry": null, "paid_expiry": null, "users_license_purchased": 10},
    }]}))
    .into_response()
}

// ---- upsert --------------------------------------------------------------------------------

async fn upsert(State(s): State<Arc<Shared>>, Path(module): Path<String>, body: Bytes) -> Response {
    let module = match Target::parse(&module) {
        Some(Target::Store(m)) => m,
        Some(Target::Crm(CrmModule::Deals)) => {
            return api::write(&s, CrmModule::Deals, &body, api::Write::Upsert, None);
        }
        Some(Target::Crm(CrmModule::Notes)) => return invalid_url(),
        None => return invalid_module(),
    };
    let Ok(body) = serde_json::from_slice::<Json>(&body) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "body is not a valid JSON",
            json!({}),
        );
    };
    let Some(records) = body.get("data").and_then(Json::as_array) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "required param is missing",
            json!({"param_name": "data"}),
        );
    };
    if records.is_empty() {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "invalid data",
            json!({"api_name": "data", "json_path": "$.data"}),
        );
    }
    if records.len() > WRITE_LIMIT {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "the number of records exceeds the limit of 100 per call",
            json!({"limit": WRITE_LIMIT, "api_name": "data", "json_path": "$.data"}),
        );
    }
    let mut objects = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        match r.as_object() {
            Some(o) => objects.push(o.clone()),
            None => {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"expected_data_type": "jsonobject", "json_path": format!("$.data[{i}]")}),
                );
            }
        }
    }
    let Ok(mut store) = s.store.write() else {
        return internal();
    };
    // duplicate_check_fields: system duplicate-check fields and unique fields only.
    let mut dup_fields = Vec::new();
    match body.get("duplicate_check_fields") {
        None | Some(Json::Null) => {
            if let Some(f) = store
                .table(module)
                .schema
                .field(module.system_duplicate_field())
            {
                dup_fields.push(f);
            }
        }
        Some(Json::Array(names)) => {
            let schema = &store.table(module).schema;
            for (i, name) in names.iter().enumerate() {
                let field = name.as_str().and_then(|n| schema.field(n)).filter(|&f| {
                    schema.fields[f].unique.is_some()
                        || schema.fields[f].api_name == module.system_duplicate_field()
                });
                match field {
                    Some(f) => dup_fields.push(f),
                    None => {
                        return zoho_error(
                            StatusCode::BAD_REQUEST,
                            "INVALID_DATA",
                            "the field given in duplicate_check_fields is not a unique field",
                            json!({"api_name": name, "json_path": format!("$.duplicate_check_fields[{i}]")}),
                        );
                    }
                }
            }
        }
        Some(_) => {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"expected_data_type": "jsonarray", "api_name": "duplicate_check_fields", "json_path": "$.duplicate_check_fields"}),
            );
        }
    }
    // One credit per ten records.
    if !s.charge(objects.len().div_ceil(10) as u64) {
        return credits_exhausted();
    }
    // The `partial` fault: some records fail on Zoho's side and are not saved, the rest are.
    let failed: Vec<bool> = objects.iter().map(|_| s.partial_fails()).collect();
    let kept: Vec<Map<String, Json>> = objects
        .into_iter()
        .zip(&failed)
        .filter(|(_, f)| !**f)
        .map(|(o, _)| o)
        .collect();
    let mut saved = store
        .upsert(module, &kept, &dup_fields, s.clock.now_ms())
        .into_iter();
    drop(store);
    let results: Vec<(bool, Json)> = failed
        .iter()
        .map(|f| if *f { None } else { saved.next() })
        .map(|r| r.map_or_else(|| (false, internal_error_item()), |r| (r.ok, r.body)))
        .collect();
    let ok = results.iter().filter(|(ok, _)| *ok).count();
    let status = if ok == results.len() {
        StatusCode::OK
    } else if ok == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::MULTI_STATUS
    };
    let data: Vec<Json> = results.into_iter().map(|(_, body)| body).collect();
    (status, axum::Json(json!({"data": data}))).into_response()
}

/// A record's answer when Zoho failed on it (the `partial` fault): not saved, worth sending
/// again.
fn internal_error_item() -> Json {
    json!({"code": "INTERNAL_ERROR", "details": {}, "message": "Internal Server Error", "status": "error"})
}

// ---- COQL ----------------------------------------------------------------------------------

async fn coql_query(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let query = serde_json::from_slice::<Json>(&body).ok().and_then(|b| {
        b.get("select_query")
            .and_then(Json::as_str)
            .map(str::to_owned)
    });
    let Some(query) = query else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "required param is missing",
            json!({"param_name": "select_query"}),
        );
    };
    let parsed = match coql::parse(&query) {
        Ok(q) if q.counts() && !s.options.coql_count => {
            return request_error(coql::syntax("COUNT"));
        }
        Ok(q) => q,
        Err(e) => return request_error(e),
    };
    // Credits by LIMIT: 1–200 one, 201–1,000 two, 1,001–2,000 three.
    let cost = match parsed.limit() {
        0..=200 => 1,
        201..=1000 => 2,
        _ => 3,
    };
    if !s.charge(cost) {
        return credits_exhausted();
    }
    let Ok(store) = s.store.read() else {
        return internal();
    };
    match coql::run(&store, &parsed) {
        Ok(Some(body)) => axum::Json(body).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => request_error(e),
    }
}

/// Seeds the generated deals: `Pipeline` and `Stage` as this org labels the seed's stage, the
/// company as `Account_Name`, the primary contact as `Contact_Name` and every contact (those
/// seeded) as a contact role. Returns each seed deal's id.
fn seed_deals(
    store: &mut Store,
    data: &SeedData,
    account_ids: &[u64],
    contact_ids: &[Option<u64>],
) -> Vec<Option<u64>> {
    // A single-currency org has no `Currency` column: its deals are in the home currency.
    let currency = store.crm.deals.table.column("Currency");
    let cols = {
        let t = &store.crm.deals.table;
        [
            "Deal_Name",
            "Amount",
            "Closing_Date",
            "Pipeline",
            "Stage",
            "Account_Name",
            "Contact_Name",
            "Owner",
        ]
        .map(|n| t.column(n))
    };
    let [
        Some(name),
        Some(amount),
        Some(closing),
        Some(pipeline),
        Some(stage),
        Some(account),
        Some(contact),
        Some(owner),
    ] = cols
    else {
        return Vec::new();
    };
    let mut ids = Vec::with_capacity(data.deals.len());
    for d in &data.deals {
        let (seed_pipeline, seed_stage) = d.seed_stage();
        let Some(label) =
            crate::accounts::vendor_stage(DEAL_STAGES, seed_pipeline.key, seed_stage.key)
        else {
            ids.push(None);
            continue;
        };
        let contacts: Vec<u64> = d
            .contacts
            .iter()
            .filter_map(|k| contact_ids.get(*k).copied().flatten())
            .collect();
        let mut deal_name: String = d.name.chars().take(crm::DEAL_NAME_MAX).collect();
        if deal_name.is_empty() {
            deal_name = format!("Deal {}", d.key);
        }
        let mut cells = vec![
            (name, Some(table::Cell::Text(deal_name.into_boxed_str()))),
            (amount, d.amount.map(table::Cell::Num)),
            (
                closing,
                Some(table::Cell::Text(d.close_date.as_str().into())),
            ),
            (pipeline, Some(table::Cell::Text(label.pipeline.into()))),
            (stage, Some(table::Cell::Text(label.stage.into()))),
            (
                account,
                d.company
                    .and_then(|k| account_ids.get(k))
                    .map(|id| table::Cell::Ref(*id)),
            ),
            (contact, contacts.first().map(|id| table::Cell::Ref(*id))),
            (
                owner,
                Some(table::Cell::Ref(store.user_id_of_seed(d.owner))),
            ),
        ];
        if let Some(currency) = currency {
            cells.push((
                currency,
                crm::CURRENCIES
                    .contains(&d.currency)
                    .then(|| table::Cell::Text(d.currency.into())),
            ));
        }
        let id = store
            .crm
            .deals
            .table
            .insert_checked(cells, d.created_at_ms, d.updated_at_ms);
        store.crm.deals.reindex_seeded(id);
        for (position, c) in contacts.iter().enumerate() {
            store.crm.roles.link(id, *c, crm::seed_role(position));
        }
        ids.push(Some(id));
    }
    ids
}

/// Seeds the generated notes on one parent each (Zoho holds one): the first of deal, contact,
/// company that was seeded. HTML bodies are seeded as the plain text Zoho holds. Returns (notes
/// seeded, notes left out).
fn seed_notes(
    store: &mut Store,
    data: &SeedData,
    account_ids: &[u64],
    contact_ids: &[Option<u64>],
    deal_ids: &[Option<u64>],
) -> (usize, usize) {
    use crate::seed::SeedParent;
    let cols = {
        let t = &store.crm.notes.table;
        ["Note_Content", "Parent_Id", "$se_module", "Owner"].map(|n| t.column(n))
    };
    let [Some(content), Some(parent), Some(se_module), Some(owner)] = cols else {
        return (0, data.notes.len());
    };
    let (mut seeded, mut skipped) = (0, 0);
    for n in &data.notes {
        let resolve = |p: &SeedParent| -> Option<(&'static str, u64)> {
            match *p {
                SeedParent::Deal(k) => deal_ids.get(k).copied().flatten().map(|id| ("Deals", id)),
                SeedParent::Contact(k) => contact_ids
                    .get(k)
                    .copied()
                    .flatten()
                    .map(|id| ("Contacts", id)),
                SeedParent::Company(k) => account_ids.get(k).map(|id| ("Accounts", *id)),
            }
        };
        let first = [0, 1, 2].iter().find_map(|rank| {
            n.parents
                .iter()
                .filter(|p| {
                    matches!(
                        (rank, p),
                        (0, SeedParent::Deal(_))
                            | (1, SeedParent::Contact(_))
                            | (2, SeedParent::Company(_))
                    )
                })
                .find_map(resolve)
        });
        let body = if n.html {
            crm::plain_text(&n.body)
        } else {
            n.body.clone()
        };
        let (Some((module, parent_id)), true) = (first, body.chars().count() <= NOTE_CONTENT_MAX)
        else {
            skipped += 1;
            continue;
        };
        let cells = vec![
            (content, Some(table::Cell::Text(body.into_boxed_str()))),
            (parent, Some(table::Cell::Ref(parent_id))),
            (se_module, Some(table::Cell::Text(module.into()))),
            (
                owner,
                Some(table::Cell::Ref(store.user_id_of_seed(n.owner))),
            ),
        ];
        store
            .crm
            .notes
            .table
            .insert_checked(cells, n.timestamp_ms, n.timestamp_ms);
        seeded += 1;
    }
    (seeded, skipped)
}

#[cfg(test)]
mod tests;

/// The account's pipelines (layout "Standard"): both use the `Stage` picklist, so one stage label
/// appears in two pipelines. Won and lost are stages (`forecast_type` Closed Won / Closed Lost).
pub(crate) const DEAL_STAGES: &[crate::accounts::StageLabel] = &[
    crate::accounts::stage_label("sales", "new", "Standard", "Qualification"),
    crate::accounts::stage_label("sales", "qualified", "Standard", "Needs Analysis"),
    crate::accounts::stage_label("sales", "proposal", "Standard", "Proposal/Price Quote"),
    crate::accounts::stage_label("sales", "negotiation", "Standard", "Negotiation/Review"),
    crate::accounts::stage_label("sales", "won", "Standard", "Closed Won"),
    crate::accounts::stage_label("sales", "lost", "Standard", "Closed Lost"),
    crate::accounts::stage_label("renewals", "due", "Renewals", "Qualification"),
    crate::accounts::stage_label("renewals", "negotiation", "Renewals", "Negotiation/Review"),
    crate::accounts::stage_label("renewals", "renewed", "Renewals", "Closed Won"),
    crate::accounts::stage_label("renewals", "churned", "Renewals", "Closed Lost"),
];

/// The Zoho emulator in the sandbox's registry.
pub const SPEC: crate::EmulatorSpec = crate::EmulatorSpec {
    vendor: "zoho",
    default_port: 18084,
    credentials: &[
        ("ZOHO_CLIENT_ID", ZOHO_CLIENT_ID),
        ("ZOHO_CLIENT_SECRET", ZOHO_CLIENT_SECRET),
        ("ZOHO_REFRESH_TOKEN", ZOHO_REFRESH_TOKEN),
    ],
    connector_settings: |base_url| {
        vec![
            ("accounts_url", base_url.to_owned()),
            ("api_url", base_url.to_owned()),
            ("client_id", "${ZOHO_CLIENT_ID}".to_owned()),
            ("client_secret", "${ZOHO_CLIENT_SECRET}".to_owned()),
            ("refresh_token", "${ZOHO_REFRESH_TOKEN}".to_owned()),
        ]
    },
    limit_unit: Some("concurrent calls"),
    build: |mut faults, limits| {
        // Zoho counts a call against the concurrency limit for as long as it serves it: added
        // latency goes inside that count (`Options::latency`), or the limit could never bind.
        let latency = faults.latency.take().unwrap_or_default();
        let mut options = Options {
            faults,
            latency,
            ..Options::default()
        };
        match limits {
            crate::Limits::Documented => {}
            crate::Limits::Unlimited => {
                options.concurrency_limit = None;
                options.credits = None;
            }
            crate::Limits::Burst(n) => options.concurrency_limit = Some(n as usize),
            crate::Limits::Daily(_) => {}
        }
        std::sync::Arc::new(Emulator::new(options))
    },
    industry: Some(crate::IndustryField {
        field: "Industry",
        standard: true,
        // Zoho's default Industry list names kinds of technology business only.
        labels: &[("Technology", "Systems Integrator")],
    }),
    deal_stages: DEAL_STAGES,
};

/// The canonical objects' Zoho CRM modules.
const MODULES: crate::ObjectNames = crate::ObjectNames {
    companies: "Accounts",
    contacts: "Contacts",
    deals: "Deals",
    notes: "Notes",
};

impl crate::VendorEmulator for Emulator {
    fn seed(&self, data: &SeedData) -> crate::SeedSummary {
        let seeded = Emulator::seed(self, data);
        crate::SeedSummary {
            companies: seeded.accounts,
            contacts: seeded.contacts,
            deals: seeded.deals,
            notes: seeded.notes,
        }
    }

    fn router(&self) -> Router {
        Emulator::router(self)
    }

    fn count(&self, object: &str) -> usize {
        MODULES
            .of(object)
            .map_or(0, |name| Emulator::count(self, name))
    }

    fn touch(&self, object: &str, every_nth: usize) -> usize {
        let Some(module) = MODULES.of(object) else {
            return 0;
        };
        self.stamp_every(module, every_nth)
    }

    fn advance_clock(&self, by: Duration) {
        Emulator::advance_clock(self, by);
    }

    fn records(&self, object: &str) -> Vec<Json> {
        let Some(module) = MODULES.rendered(object) else {
            return Vec::new();
        };
        let (Some(module), Ok(store)) = (Module::parse(module), self.shared.store.read()) else {
            return Vec::new();
        };
        let table = store.table(module);
        table
            .rows
            .iter()
            .map(|row| {
                let mut out = Map::new();
                out.insert("id".into(), Json::String(row.id.to_string()));
                for (i, f) in table.schema.fields.iter().enumerate() {
                    out.insert(f.api_name.clone(), store.render_value(module, row, i));
                }
                Json::Object(out)
            })
            .collect()
    }
}

/// A seeded contact's GDPR consent record (kept only where the org has GDPR on): the first of
/// its legal bases by the precedence Zoho's one basis is written in (consent, contract,
/// legitimate interests, not applicable; a refinement is its broader basis), with the day it
/// was created as `Consent_Date` when that is consent. Every third contact (by position) whose
/// bases hold consent is seeded at the consent stage `Awaiting` instead (asked, not yet
/// given), without a date.
fn seed_consent(c: &crate::seed::SeedContact, position: usize) -> Option<Val> {
    const ORDER: [(&str, &str); 5] = [
        ("consent", "Obtained"),
        ("contract", "Contract"),
        ("legitimate_interests_prospect", "Legitimate Interests"),
        ("legitimate_interests_customer", "Legitimate Interests"),
        ("not_applicable", "Not Applicable"),
    ];
    let (name, basis) = ORDER.iter().find(|(n, _)| c.legal_basis.contains(n))?;
    let record = match (*name, position % 3) {
        ("consent", 0) => json!({"Data_Processing_Basis": "Awaiting"}),
        ("consent", _) => json!({
            "Data_Processing_Basis": basis,
            "Consent_Date": store::zoho_time(c.created_at_ms).get(..10),
            "Consent_Through": "Email",
        }),
        _ => json!({ "Data_Processing_Basis": basis }),
    };
    Some(Val::Str(record.to_string().into()))
}

/// The module a request lists a later page of, for `shift`: a list with `page` above 1 or a
/// `page_token`, or a COQL read that continues after an id (`where id > …`).
fn later_page(request: &Request, body: &[u8]) -> Option<Module> {
    if request.method() == axum::http::Method::POST && request.uri().path() == "/crm/v8/coql" {
        let query = serde_json::from_slice::<Json>(body).ok()?;
        let parsed = coql::parse(query.get("select_query")?.as_str()?).ok()?;
        return parsed.reads_after_id().then(|| parsed.module()).flatten();
    }
    let module = Module::parse(request.uri().path().strip_prefix("/crm/v8/")?)?;
    let later = crate::faults::has_param(request, "page_token")
        || request.uri().query().is_some_and(|q| {
            q.split('&')
                .filter_map(|p| p.strip_prefix("page="))
                .any(|n| n.parse::<u64>().is_ok_and(|n| n > 1))
        });
    (request.method() == axum::http::Method::GET && later).then_some(module)
}
