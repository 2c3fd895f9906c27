//! A faithful in-memory emulator of Pipedrive's API (v2 persons, organizations, deals, search,
//! fields, pipelines and stages; v1 users, notes, deal participants and the fields lists), served
//! over real HTTP.
//!
//! What it reproduces, from Pipedrive's documentation (see `docs/connectors/pipedrive.md`):
//! `x-api-token` auth (and the legacy `api_token` query parameter) with Pipedrive's 401 body;
//! the `success`/`data`/`additional_data` envelope and error bodies; cursor paging (`limit`
//! default 100, max 500, `additional_data.next_cursor` null at the end) and `ids`; custom
//! fields keyed by 40-character hashes under `custom_fields`, created through the fields API;
//! v2's strict validation (400 `ERR_SCHEMA_VALIDATION_FAILED`, e.g. a person without a name or
//! an unknown custom field); exact-match search; `marketing_status` (set only for persons with
//! a valid email, changed at most once, needs the Campaigns app); the daily token budget with
//! per-request token costs, the two-second burst window and search's own window, the
//! `x-ratelimit-*` and `x-daily-ratelimit-token-remaining` headers and the 429 body.

mod api;
mod crm;
mod crm_api;
mod gate;
mod store;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::response::Response;
use axum::routing::{delete, get};

use crate::faults::Faults;
use crate::seed::SeedData;
use store::{Channel, Kind, Record, Store};

/// The API token the emulator accepts unless configured otherwise (a fake, sandbox-only value).
pub const TOKEN: &str = "sandbox-pipedrive-token";
/// The environment variable the sandbox puts the token in.
pub const TOKEN_ENV: &str = "PIPEDRIVE_TOKEN";
/// Pipedrive's base daily token budget per seat, before the plan multiplier.
pub const BASE_TOKENS_PER_SEAT: u64 = 30_000;

/// Emulator options.
#[derive(Clone)]
pub struct Options {
    /// Injected faults, on top of the documented limits.
    pub faults: Faults,
    /// The API token accepted in `x-api-token` (or `?api_token=`).
    pub token: String,
    /// Requests per two-second rolling window (Pipedrive's burst limit; 20 to 120 per plan for
    /// API tokens). `None`: unlimited.
    pub burst_limit: Option<u32>,
    /// Search requests per two-second window ("10 requests per 2 seconds" on every plan).
    /// `None`: unlimited.
    pub search_limit: Option<u32>,
    /// The company's daily token budget: 30,000 × plan multiplier (1 Lite … 7 Ultimate) × seats.
    /// `None`: unlimited. The emulator's day never resets: it is counted from start-up.
    pub daily_token_budget: Option<u64>,
    /// Whether the company has the Campaigns (marketing) app: only then is `marketing_status`
    /// readable and writable.
    pub campaigns_app: bool,
    /// The company id (`GET /v1/users/me`). `None`: a number of its own, so two emulators are
    /// two companies; set it to make two emulators claim one company.
    pub company_id: Option<u64>,
    /// The token user's default currency (`default_currency` of `GET /v1/users/me`), which
    /// Pipedrive gives a deal written without a currency. "USD" by default.
    pub default_currency: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            faults: Faults::default(),
            token: TOKEN.to_owned(),
            burst_limit: Some(80),
            search_limit: Some(10),
            // A Growth-like plan (multiplier 3) with ten seats.
            daily_token_budget: Some(BASE_TOKENS_PER_SEAT * 3 * 10),
            campaigns_app: true,
            company_id: None,
            default_currency: "USD".to_owned(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("faults", &self.faults)
            .field("token", &"<redacted>")
            .field("burst_limit", &self.burst_limit)
            .field("search_limit", &self.search_limit)
            .field("daily_token_budget", &self.daily_token_budget)
            .field("campaigns_app", &self.campaigns_app)
            .field("company_id", &self.company_id)
            .field("default_currency", &self.default_currency)
            .finish()
    }
}

/// Both entity types' records, and the account's users, pipelines, deals and notes.
pub(crate) struct Data {
    persons: Store,
    organizations: Store,
    crm: crm::Crm,
}

impl Data {
    pub(crate) fn store(&self, kind: Kind) -> &Store {
        match kind {
            Kind::Persons => &self.persons,
            Kind::Organizations => &self.organizations,
        }
    }

    pub(crate) fn store_mut(&mut self, kind: Kind) -> &mut Store {
        match kind {
            Kind::Persons => &mut self.persons,
            Kind::Organizations => &mut self.organizations,
        }
    }
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    throttled: AtomicU64,
}

struct Inner {
    options: Options,
    /// The company id: the option's, or a number of this emulator's own.
    company_id: u64,
    data: RwLock<Data>,
    limits: Mutex<gate::Limits>,
    stats: Stats,
    /// The account's clock ([`Emulator::advance_clock`] moves it).
    clock: crate::clock::Clock,
}

/// The emulator's shared state; clones share it.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

impl Emulator {
    /// A new, empty emulator.
    pub fn new(options: Options) -> Emulator {
        let company_id = options.company_id.unwrap_or_else(crate::new_account_number);
        let mut crm = crm::Crm::new(company_id);
        crm.default_currency = options.default_currency.clone();
        Emulator {
            inner: Arc::new(Inner {
                company_id,
                options,
                // Every account has the seeded custom fields, under keys of its own.
                data: RwLock::new(Data {
                    persons: Store::new(Kind::Persons, company_id),
                    organizations: Store::new(Kind::Organizations, company_id),
                    crm,
                }),
                limits: Mutex::new(gate::Limits::default()),
                stats: Stats::default(),
                clock: crate::clock::Clock::default(),
            }),
        }
    }

    /// The account's clock in whole seconds: what writes stamp `update_time` (and `add_time`)
    /// with, and what the `Date` header says. Pipedrive shows both times to the second
    /// (`2024-01-01T12:34:56Z`, v1 `2024-01-01 12:34:56`), so records written in one second
    /// tie.
    pub(crate) fn now_ms(&self) -> i64 {
        let now = self.inner.clock.now_ms();
        now - now.rem_euclid(1000)
    }

    /// Moves the account's clock `by` ahead, as time passing would: later writes are stamped
    /// and answers dated (`Date`) that much later. A test hook, so that incremental reads are
    /// tested without waiting.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.inner.clock.advance(by);
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.inner
            .data
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.inner
            .data
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads generated data: companies become organizations with ids from the next free id
    /// (1, 2, … in an empty emulator), contacts become persons linked to them, both with their
    /// seeded custom values (Tier as its option id). What a Pipedrive account cannot hold is
    /// dropped: organizations keep only their name, address and custom values, and a contact
    /// with no name at all is skipped. An opted-out contact is `unsubscribed`; the rest
    /// have no marketing status (read as `no_consent`). Nobody is ever seeded as `subscribed`.
    pub fn seed(&self, seed: &SeedData) -> crate::SeedSummary {
        let mut data = self.write();
        let first_org = data.organizations.next_id();
        let org_field = |label: &str| data.organizations.custom_field_named(label);
        let (region, seats, tier) = (org_field("Region"), org_field("Seats"), org_field("Tier"));
        let industry = org_field(INDUSTRY.field);
        let option_ids = |field: Option<usize>| -> Vec<(String, serde_json::Value)> {
            field
                .map(|t| {
                    data.organizations.fields[t]
                        .options
                        .iter()
                        .map(|o| (o.label.clone(), o.id.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (tier_ids, industry_ids) = (option_ids(tier), option_ids(industry));
        let option = |ids: &[(String, serde_json::Value)], label: &str| {
            ids.iter()
                .find(|(l, _)| l == label)
                .map(|(_, id)| id.clone())
        };
        let (colour, points) = (
            data.persons.custom_field_named("Favourite Colour"),
            data.persons.custom_field_named("Loyalty Points"),
        );
        let company = self.inner.company_id;
        for c in &seed.companies {
            let id = data.organizations.next_id();
            let owner_id = c.owner.and_then(|k| data.crm.user_for_key(company, k));
            let mut address = std::collections::BTreeMap::new();
            for (part, value) in [
                ("route", &c.street),
                ("locality", &c.city),
                ("admin_area_level_1", &c.state),
                ("postal_code", &c.postal_code),
                ("country", &c.country),
            ] {
                if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                    address.insert(part, v.to_owned());
                }
            }
            if !address.is_empty() {
                let formatted = [&c.street, &c.city, &c.state, &c.postal_code, &c.country]
                    .iter()
                    .filter_map(|v| v.as_deref())
                    .collect::<Vec<_>>()
                    .join(", ");
                address.insert("value", formatted);
            }
            data.organizations.insert(Record {
                id,
                name: c
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("Organization {id}")),
                address: (!address.is_empty()).then_some(address),
                custom: custom_values([
                    (region, c.region.as_deref().map(|v| serde_json::json!(v))),
                    (seats, c.seats.map(|v| serde_json::json!(v))),
                    (tier, c.tier.and_then(|label| option(&tier_ids, label))),
                    (
                        industry,
                        c.industry
                            .as_deref()
                            .and_then(|seeded| INDUSTRY.label(seeded))
                            .and_then(|label| option(&industry_ids, label)),
                    ),
                ]),
                add_time_ms: c.created_at_ms,
                update_time_ms: c.updated_at_ms,
                owner_id,
                ..Record::default()
            });
        }
        let mut contacts = 0;
        // The person id of each seeded contact (0: not seeded), for deals and notes.
        let mut person_of: Vec<u64> = Vec::with_capacity(seed.contacts.len());
        for c in &seed.contacts {
            let name = store::join_name(c.first_name.as_deref(), c.last_name.as_deref());
            if name.is_empty() {
                person_of.push(0);
                continue; // Pipedrive requires a name
            }
            let id = data.persons.next_id();
            person_of.push(id);
            let owner_id = c.owner.and_then(|k| data.crm.user_for_key(company, k));
            let emails: Vec<Channel> = c
                .email
                .iter()
                .map(|e| Channel {
                    value: e.clone(),
                    primary: true,
                    label: "work".into(),
                })
                .collect();
            let mut phones: Vec<Channel> = c
                .phone
                .iter()
                .map(|p| Channel {
                    value: p.clone(),
                    primary: true,
                    label: "work".into(),
                })
                .collect();
            if let Some(m) = &c.mobile_phone {
                phones.push(Channel {
                    value: m.clone(),
                    primary: phones.is_empty(),
                    label: "mobile".into(),
                });
            }
            data.persons.insert(Record {
                id,
                name,
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                emails,
                phones,
                org_id: c.company.map(|k| first_org + k as u64),
                // Seeded data is the account's history: the status may have been set while the
                // person had an email. Never `subscribed`.
                marketing_status: c.email_opt_out.then_some("unsubscribed"),
                custom: custom_values([
                    (
                        colour,
                        c.favourite_colour.as_deref().map(|v| serde_json::json!(v)),
                    ),
                    (points, c.loyalty_points.map(|v| serde_json::json!(v))),
                ]),
                add_time_ms: c.created_at_ms,
                update_time_ms: c.updated_at_ms,
                owner_id,
                ..Record::default()
            });
            contacts += 1;
        }
        let (deals, notes) = seed_sales(&mut data, seed, company, first_org, &person_of);
        tracing::debug!(
            organizations = seed.companies.len(),
            persons = contacts,
            deals,
            notes,
            "pipedrive emulator seeded"
        );
        crate::SeedSummary {
            companies: seed.companies.len(),
            contacts,
            deals,
            notes,
        }
    }

    /// One change of the `shift` fault: creates record number `k` of `kind` and updates an
    /// existing one. Pipedrive's v2 cursor holds the next id and new records get higher ids,
    /// so a reader in id order meets the new ones on later pages and never skips or repeats
    /// an old one.
    fn shift(&self, kind: Kind, k: u64) {
        let now = self.now_ms();
        self.seed(&crate::seed::shifted(kind == Kind::Organizations, k, now));
        let mut data = self.write();
        let store = data.store_mut(kind);
        if let Some(n) = crate::faults::shift_target(k, store.live()) {
            store.touch_nth(n, now);
        }
    }

    /// The company id, as `GET /v1/users/me` reports it.
    pub fn company_id(&self) -> u64 {
        self.inner.company_id
    }

    /// The HTTP routes, behind auth, rate limits and the configured faults.
    pub fn router(&self) -> Router {
        let routes = Router::new()
            .route(
                "/api/v2/{entity}",
                get(api::list).post(api::create_or_fields),
            )
            .route("/api/v2/{entity}/search", get(api::search))
            .route(
                "/api/v2/{entity}/{id}",
                get(api::get_one).patch(api::update).delete(api::delete),
            )
            .route("/v1/{entity}", get(api::list_fields_v1))
            .route("/v1/users", get(crm_api::users))
            .route("/v1/users/me", get(crm_api::users_me))
            .route("/v1/users/find", get(crm_api::find_users))
            .route(
                "/v1/users/{id}",
                get(crm_api::user).put(crm_api::update_user),
            )
            .route("/api/v2/pipelines", get(crm_api::pipelines))
            .route("/api/v2/stages", get(crm_api::stages))
            .route(
                "/api/v2/deals",
                get(crm_api::list_deals).post(crm_api::create_deal),
            )
            .route("/api/v2/deals/search", get(crm_api::search_deals))
            .route(
                "/api/v2/deals/{id}",
                get(crm_api::get_deal)
                    .patch(crm_api::update_deal)
                    .delete(crm_api::delete_deal),
            )
            .route(
                "/api/v2/dealFields",
                get(crm_api::list_deal_fields).post(crm_api::create_deal_field),
            )
            .route("/v1/dealFields", get(crm_api::list_deal_fields_v1))
            .route(
                "/v1/deals/{id}/participants",
                get(crm_api::participants).post(crm_api::add_participant),
            )
            .route(
                "/v1/deals/{id}/participants/{participant}",
                delete(crm_api::delete_participant),
            )
            .route(
                "/v1/notes",
                get(crm_api::list_notes).post(crm_api::create_note),
            )
            .route(
                "/v1/notes/{id}",
                get(crm_api::get_note)
                    .put(crm_api::update_note)
                    .delete(crm_api::delete_note),
            )
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                gate::gate,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.inner.clock.clone(),
                crate::clock::date_header,
            ))
            .with_state(self.clone());
        let shifted = self.clone();
        let routes = crate::faults::shifting(
            routes,
            &self.inner.options.faults,
            later_page,
            move |kind, k| shifted.shift(*kind, k),
        );
        crate::faults::inject(
            routes,
            self.inner.options.faults.clone(),
            gate::injected_429,
        )
    }

    /// How many live records of `object` (`"companies"`/`"organizations"`,
    /// `"contacts"`/`"persons"`, `"deals"`, `"notes"`) the emulator holds; `None` for an unknown
    /// type.
    pub fn count(&self, object: &str) -> Option<usize> {
        let kind = match object {
            "companies" | "organizations" => Kind::Organizations,
            "contacts" | "persons" => Kind::Persons,
            "deals" => return Some(self.read().crm.deals.len()),
            "notes" => return Some(self.read().crm.notes.len()),
            _ => return None,
        };
        Some(self.read().store(kind).live())
    }

    /// Requests received (past the fault layer), and how many the rate limits refused (429).
    pub fn request_counts(&self) -> (u64, u64) {
        let stats = &self.inner.stats;
        (
            stats.requests.load(Ordering::Relaxed),
            stats.throttled.load(Ordering::Relaxed),
        )
    }

    /// Tokens of the daily budget spent so far.
    pub fn tokens_used(&self) -> u64 {
        self.inner
            .limits
            .lock()
            .map(|l| l.tokens_used())
            .unwrap_or(0)
    }

    /// The ids of the live records of `object`, as its connector reports them as source ids:
    /// a snapshot, for tests that check nothing was lost.
    pub fn source_ids(&self, object: &str) -> Vec<String> {
        let kind = match object {
            "companies" | "organizations" => Kind::Organizations,
            "deals" | "notes" => {
                let data = self.read();
                let table = if object == "deals" {
                    &data.crm.deals
                } else {
                    &data.crm.notes
                };
                return table
                    .iter(crate::table::Show::Live)
                    .map(|r| r.id.to_string())
                    .collect();
            }
            _ => Kind::Persons,
        };
        let data = self.read();
        let store = data.store(kind);
        (1..store.next_id())
            .filter(|id| store.get(*id).is_some())
            .map(|id| id.to_string())
            .collect()
    }

    /// A person's or organization's v2 JSON with all custom fields and `marketing_status`, as
    /// the API would render it, for tests; `None` when absent.
    pub fn record(&self, object: &str, id: u64) -> Option<serde_json::Value> {
        let kind = match object {
            "companies" | "organizations" => Kind::Organizations,
            "deals" => {
                let data = self.read();
                let row = data.crm.deals.get(id)?;
                return Some(crm::render_deal(&data.crm, row, None));
            }
            _ => Kind::Persons,
        };
        let data = self.read();
        let store = data.store(kind);
        store
            .get(id)
            .map(|r| store.render(r, None, self.inner.options.campaigns_app))
    }

    /// The 40-character key of the custom field called `name` (the first one), if any.
    pub fn custom_field_key(&self, object: &str, name: &str) -> Option<String> {
        self.custom_field_keys(object, name).into_iter().next()
    }

    /// The keys of every custom field called `name`, oldest first (Pipedrive allows several).
    pub fn custom_field_keys(&self, object: &str, name: &str) -> Vec<String> {
        let kind = match object {
            "companies" | "organizations" => Kind::Organizations,
            "deals" => {
                return self
                    .read()
                    .crm
                    .deal_fields
                    .iter()
                    .filter(|f| f.custom && f.name == name)
                    .map(|f| f.code.clone())
                    .collect();
            }
            _ => Kind::Persons,
        };
        let data = self.read();
        data.store(kind)
            .fields
            .iter()
            .filter(|f| f.custom && f.name == name)
            .map(|f| f.code.clone())
            .collect()
    }
}

/// Seeds deals and notes: a deal in the stage where this account keeps its seed stage, `won` or
/// `lost` as the stage says (closed at its last update), owned by its seed owner when the
/// account has that user (else by the token's user), with its company, its first contact as
/// `person_id` and every contact as a participant; a note with every parent it has (Pipedrive
/// holds a deal, a person and an organization at once; the first of each kind), at its
/// original time, its plain text turned into the HTML Pipedrive holds. Returns (deals, notes).
fn seed_sales(
    data: &mut Data,
    seed: &SeedData,
    company: u64,
    first_org: u64,
    person_of: &[u64],
) -> (usize, usize) {
    use crate::table::Cell;
    use crm::{d, n};
    let crm = &mut data.crm;
    let first_deal = crm.deals.next_id();
    let org = |k: usize| first_org + k as u64;
    let person = |k: usize| person_of.get(k).copied().filter(|id| *id != 0);
    let mut deal_of: Vec<u64> = Vec::with_capacity(seed.deals.len());
    for deal in &seed.deals {
        let (pipeline, stage) = deal.seed_stage();
        let Some(placed) = crm.seed_stage(pipeline.key, stage.key) else {
            deal_of.push(0);
            continue;
        };
        let (stage_id, pipeline_id) = (placed.id, crm.pipelines[placed.pipeline].id);
        let owner = deal
            .owner
            .and_then(|k| crm.user_for_key(company, k))
            .unwrap_or(crm.me);
        let int = |v: u64| Some(Cell::Int(v as i64));
        let mut cells = vec![
            (d::TITLE, Some(Cell::Text(deal.name.as_str().into()))),
            (d::OWNER, int(owner)),
            (d::PIPELINE, int(pipeline_id)),
            (d::STAGE, int(stage_id)),
            (d::VALUE, Some(Cell::Num(deal.amount.unwrap_or(0.0)))),
            (d::CURRENCY, Some(Cell::Text(deal.currency.into()))),
            (d::STATUS, Some(Cell::Text(stage.outcome.as_str().into()))),
            (
                d::EXPECTED_CLOSE,
                Some(Cell::Text(deal.close_date.as_str().into())),
            ),
            (d::STAGE_CHANGE, Some(Cell::Time(deal.updated_at_ms))),
            (d::CREATOR, int(owner)),
        ];
        if let Some(c) = deal.company {
            cells.push((d::ORG, int(org(c))));
        }
        if let Some(p) = deal.contacts.first().and_then(|k| person(*k)) {
            cells.push((d::PERSON, int(p)));
        }
        let closed = Some(Cell::Time(deal.updated_at_ms));
        match stage.outcome {
            crate::accounts::Outcome::Won => {
                cells.push((d::WON_TIME, closed.clone()));
                cells.push((d::CLOSE_TIME, closed));
            }
            crate::accounts::Outcome::Lost => {
                cells.push((d::LOST_TIME, closed.clone()));
                cells.push((d::CLOSE_TIME, closed));
            }
            crate::accounts::Outcome::Open => {}
        }
        match crm.insert_deal(cells, deal.created_at_ms, deal.updated_at_ms) {
            Ok(id) => {
                deal_of.push(id);
                for p in deal.contacts.iter().filter_map(|k| person(*k)) {
                    crm.add_participant(id, p);
                }
            }
            Err(e) => {
                tracing::warn!(deal = deal.key, error = %e, "seed deal refused");
                deal_of.push(0);
            }
        }
    }
    let deals = deal_of.iter().filter(|id| **id >= first_deal).count();
    let mut notes = 0;
    for note in &seed.notes {
        let (mut deal, mut contact, mut org_id) = (None, None, None);
        for parent in &note.parents {
            match *parent {
                crate::seed::SeedParent::Deal(k) => {
                    deal = deal.or(deal_of.get(k).copied().filter(|id| *id != 0));
                }
                crate::seed::SeedParent::Contact(k) => contact = contact.or(person(k)),
                crate::seed::SeedParent::Company(k) => org_id = org_id.or(Some(org(k))),
            }
        }
        if deal.is_none() && contact.is_none() && org_id.is_none() {
            continue;
        }
        let author = note
            .owner
            .and_then(|k| crm.user_for_key(company, k))
            .unwrap_or(crm.me);
        let content = if note.html {
            note.body.clone()
        } else {
            plain_to_html(&note.body)
        };
        let int = |v: Option<u64>| v.map(|v| Cell::Int(v as i64));
        let cells = vec![
            (n::CONTENT, Some(Cell::Text(content.into_boxed_str()))),
            (n::USER, int(Some(author))),
            (n::DEAL, int(deal)),
            (n::PERSON, int(contact)),
            (n::ORG, int(org_id)),
            (n::LAST_UPDATE_USER, int(Some(author))),
        ];
        match crm.notes.prepare(None, cells, true) {
            Ok(checked) => {
                crm.notes
                    .insert_checked(checked, note.timestamp_ms, note.timestamp_ms);
                notes += 1;
            }
            Err(e) => tracing::warn!(note = note.key, error = %e, "seed note refused"),
        }
    }
    (deals, notes)
}

/// Plain text as the HTML a Pipedrive note holds: escaped, line breaks as `<br>`.
fn plain_to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// A record's custom values from (field index, value) pairs, in field order, leaving out
/// fields the store lacks and values the seed left empty.
fn custom_values<const N: usize>(
    values: [(Option<usize>, Option<serde_json::Value>); N],
) -> Vec<(usize, serde_json::Value)> {
    let mut out: Vec<(usize, serde_json::Value)> = values
        .into_iter()
        .filter_map(|(field, value)| Some((field?, value?)))
        .collect();
    out.sort_by_key(|(f, _)| *f);
    out
}

async fn not_found() -> Response {
    gate::not_found("Unknown method .")
}

#[cfg(test)]
mod tests;

/// The account's pipelines: the default "Pipeline" and a "Renewals" one. Won and lost are a deal's
/// `status`, not stages, so a closed deal stays in the stage it closed in.
pub(crate) const DEAL_STAGES: &[crate::accounts::StageLabel] = &[
    crate::accounts::stage_label("sales", "new", "Pipeline", "Lead In"),
    crate::accounts::stage_label("sales", "qualified", "Pipeline", "Contact Made"),
    crate::accounts::stage_label("sales", "proposal", "Pipeline", "Proposal Made"),
    crate::accounts::stage_label("sales", "negotiation", "Pipeline", "Negotiations Started"),
    crate::accounts::stage_label("sales", "won", "Pipeline", "Negotiations Started"),
    crate::accounts::stage_label("sales", "lost", "Pipeline", "Negotiations Started"),
    crate::accounts::stage_label("renewals", "due", "Renewals", "Renewal Due"),
    crate::accounts::stage_label("renewals", "negotiation", "Renewals", "Negotiation"),
    crate::accounts::stage_label("renewals", "renewed", "Renewals", "Negotiation"),
    crate::accounts::stage_label("renewals", "churned", "Renewals", "Negotiation"),
];

/// The Pipedrive emulator in the sandbox's registry.
pub const SPEC: crate::EmulatorSpec = crate::EmulatorSpec {
    vendor: "pipedrive",
    default_port: 18083,
    credentials: &[(TOKEN_ENV, TOKEN)],
    connector_settings: |base_url| {
        vec![
            ("base_url", base_url.to_owned()),
            ("api_token", format!("${{{TOKEN_ENV}}}")),
        ]
    },
    limit_unit: Some("requests per 2 s"),
    build: |faults, limits| {
        let mut options = Options {
            faults,
            ..Options::default()
        };
        match limits {
            crate::Limits::Documented => {}
            crate::Limits::Unlimited => {
                options.burst_limit = None;
                options.search_limit = None;
                options.daily_token_budget = None;
            }
            crate::Limits::Burst(n) => options.burst_limit = Some(n),
            crate::Limits::Daily(n) => options.daily_token_budget = Some(n),
        }
        Arc::new(Emulator::new(options))
    },
    industry: Some(INDUSTRY),
    deal_stages: DEAL_STAGES,
};

/// Pipedrive has no standard industry field: this account has the one operators commonly add,
/// an "Industry" organization field of type `enum` with options of their own choosing.
pub const INDUSTRY: crate::IndustryField = crate::IndustryField {
    field: "Industry",
    standard: false,
    labels: &[
        ("Technology", "Software & IT"),
        ("Retail", "Retail"),
        ("Manufacturing", "Manufacturing"),
        ("Healthcare", "Healthcare"),
        ("Finance", "Financial Services"),
        ("Education", "Education"),
        ("Energy", "Energy & Utilities"),
    ],
};

impl crate::VendorEmulator for Emulator {
    fn seed(&self, data: &SeedData) -> crate::SeedSummary {
        Emulator::seed(self, data)
    }

    fn router(&self) -> Router {
        Emulator::router(self)
    }

    fn count(&self, object: &str) -> usize {
        Emulator::count(self, object).unwrap_or(0)
    }

    fn touch(&self, object: &str, every_nth: usize) -> usize {
        let now = self.now_ms();
        let mut data = self.write();
        let kind = match object {
            "companies" => Kind::Organizations,
            "contacts" => Kind::Persons,
            "deals" | "notes" => {
                let table = match object {
                    "deals" => &mut data.crm.deals,
                    _ => &mut data.crm.notes,
                };
                let ids: Vec<u64> = table.iter(crate::table::Show::Live).map(|r| r.id).collect();
                return crate::every_nth(ids.len(), every_nth)
                    .filter(|at| table.touch(ids[*at], now))
                    .count();
            }
            _ => return 0,
        };
        let store = data.store_mut(kind);
        let live = store.live();
        crate::every_nth(live, every_nth)
            .filter(|n| store.touch_nth(*n, now).is_some())
            .count()
    }

    fn advance_clock(&self, by: std::time::Duration) {
        Emulator::advance_clock(self, by);
    }

    fn records(&self, object: &str) -> Vec<serde_json::Value> {
        if !matches!(object, "companies" | "contacts") {
            return Vec::new();
        }
        self.source_ids(object)
            .iter()
            .filter_map(|id| self.record(object, id.parse().ok()?))
            .collect()
    }
}

/// The kind a request lists a later page of, for `shift`: it carries a cursor, or it reads an
/// `update_time` window (`updated_until`, or `updated_since` in list order), which a full read
/// only does after its first call (the list sorted by `update_time` both ways); the open
/// window, from the read's start on, is `updated_since` alone, and a read of an object the
/// first call covered has no other request in which to meet records created meanwhile.
fn later_page(request: &axum::extract::Request, _body: &[u8]) -> Option<Kind> {
    let segment = request.uri().path().strip_prefix("/api/v2/")?;
    let kind = Kind::parse(segment)?;
    let has = |name| crate::faults::has_param(request, name);
    (request.method() == axum::http::Method::GET
        && (has("cursor") || has("updated_until") || (has("updated_since") && !has("sort_by")))
        && !has("ids"))
    .then_some(kind)
}
