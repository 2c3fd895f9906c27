//! A faithful in-memory emulator of HubSpot's CRM API (objects v3, properties v3, the v4
//! association batch read), served over real HTTP.
//!
//! What it reproduces, from HubSpot's documentation (see `docs/connectors/hubspot.md`):
//! bearer-token auth and HubSpot's error bodies; list paging with `limit` (default 10, max
//! 100), opaque `after` cursors, `properties`, `associations` and `archived`; single reads by id
//! or unique `idProperty`; batch read/create/update/upsert/archive with the 100-input limit and
//! 200/201/207 multi-status responses; the properties API with `hasUniqueValue`; CRM search
//! with filters, one sort, offset paging and the 10,000-result cap; the ten-second rolling and
//! daily rate limits with the `X-HubSpot-RateLimit-*` headers and HubSpot's 429 body (no
//! `Retry-After`), and search's own five-per-second limit (no rate-limit headers); the v4
//! association batch create, default-associate and archive endpoints; and unsubscribing from
//! all email through the communication-preferences API (`hs_email_optout` is read-only
//! through the CRM API, as in HubSpot). The account's owners and deal pipelines
//! (`account.rs`), deals and notes (`records.rs`, on the shared table engine) and their v4
//! associations (`links.rs`) are served on the same routes, gate and fault layers.

mod account;
mod api;
mod associations;
mod faults;
mod fields;
mod gate;
mod links;
mod preferences;
mod records;
mod respond;
mod search;
mod store;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};

use crate::faults::Faults;
use crate::seed::SeedData;
use store::{Kind, ObjectStore, PropDef, seeded_record};

/// The id of the first company seeded into an empty emulator (then 1000002, …, in seed order).
pub const FIRST_COMPANY_ID: u64 = 1_000_001;
/// The id of the first contact seeded into an empty emulator (then 2000002, …, in seed order).
pub const FIRST_CONTACT_ID: u64 = 2_000_001;

/// "The search endpoints are limited to 10,000 total results for any given query": the
/// default of [`Options::search_max_results`].
pub const SEARCH_MAX_RESULTS: usize = 10_000;

/// Emulator options.
#[derive(Clone)]
pub struct Options {
    /// Injected faults, on top of the documented limits.
    pub faults: Faults,
    /// The private-app token accepted as `Authorization: Bearer <token>`.
    pub token: String,
    /// Requests allowed per ten-second rolling window (HubSpot's burst limit; 100 for a
    /// private app on Free/Starter, 190 on Professional/Enterprise). `None`: unlimited.
    pub burst_limit: Option<u32>,
    /// Requests allowed per day (250,000 on Free/Starter). `None`: unlimited. The emulator's
    /// day never resets: it is counted from start-up.
    pub daily_limit: Option<u64>,
    /// Search requests allowed per second (HubSpot: five per second, separate from the burst
    /// window, which search is exempt from). `None`: unlimited.
    pub search_limit: Option<u32>,
    /// Results one search query can be paged through (HubSpot: 10,000, [`SEARCH_MAX_RESULTS`];
    /// an `after` at or past it is refused). A test knob: lowered, a test reads past the cap
    /// with a few thousand records rather than tens of thousands.
    pub search_max_results: usize,
    /// Whether the account may use the batch subscription endpoints (HubSpot requires Marketing
    /// Hub Enterprise for them). `false`: they answer 403 `MISSING_SCOPES`.
    pub batch_subscriptions: bool,
    /// The account's portal id (`GET /account-info/v3/details`). `None`: a number of its own,
    /// so two emulators are two accounts; set it to make two emulators claim one account.
    pub portal_id: Option<u64>,
    /// How long a contact or company written is absent from search ("newly written records
    /// appear after a short indexing delay"; HubSpot states no length). `None`: at once.
    pub search_lag: Option<std::time::Duration>,
    /// Whether the account has HubSpot's SMS add-on, and so an SMS subscription type (listed
    /// by `GET /communication-preferences/v4/definitions`). Seeding SMS opt-outs switches it
    /// on: an account holding them has the add-on. `false`: only email types are listed.
    pub sms_addon: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            faults: Faults::default(),
            token: crate::HUBSPOT_TOKEN.to_owned(),
            burst_limit: Some(100),
            daily_limit: Some(250_000),
            search_limit: Some(5),
            search_max_results: SEARCH_MAX_RESULTS,
            batch_subscriptions: true,
            portal_id: None,
            search_lag: None,
            sms_addon: false,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("faults", &self.faults)
            .field("token", &"<redacted>")
            .field("burst_limit", &self.burst_limit)
            .field("daily_limit", &self.daily_limit)
            .field("search_limit", &self.search_limit)
            .field("search_max_results", &self.search_max_results)
            .field("batch_subscriptions", &self.batch_subscriptions)
            .field("portal_id", &self.portal_id)
            .field("search_lag", &self.search_lag)
            .field("sms_addon", &self.sms_addon)
            .finish()
    }
}

/// Every object type's records.
pub(crate) struct Data {
    contacts: ObjectStore,
    companies: ObjectStore,
    /// Email addresses unsubscribed from all email, lower-cased. HubSpot ties the opt-out to
    /// the address, not the record: a contact created later with the address is opted out too.
    opted_out: HashSet<Box<str>>,
    /// Phone numbers (E.164) unsubscribed from all text messages: like email, the opt-out is
    /// the number's, not a record's; no property on the contact shows it.
    sms_opted_out: HashSet<Box<str>>,
    /// Whether the account has the SMS add-on ([`Options::sms_addon`], or seeded SMS
    /// opt-outs).
    pub(crate) sms_addon: bool,
    /// Subscribers' statuses per subscription type, with legal basis and timestamp.
    type_statuses: preferences::TypeStatuses,
    /// Contact → companies associated without the primary label (the primary company is
    /// `Rec::company`). Empty unless the v4 association endpoints add some, so seeded data
    /// pays nothing for it.
    unlabeled: HashMap<u64, Vec<u64>>,
    /// Owners, deals and notes, on the shared table engine.
    tables: crate::table::Tables,
    /// The properties of deals and notes (`records::Obj` order).
    props: records::Props,
    /// The associations of deals and notes.
    links: links::Links,
}

impl Data {
    pub(crate) fn store(&self, kind: Kind) -> &ObjectStore {
        match kind {
            Kind::Contacts => &self.contacts,
            Kind::Companies => &self.companies,
        }
    }

    pub(crate) fn store_mut(&mut self, kind: Kind) -> &mut ObjectStore {
        match kind {
            Kind::Contacts => &mut self.contacts,
            Kind::Companies => &mut self.companies,
        }
    }

    /// The live companies contact `rec` is associated with: (company id, primary?), the
    /// primary first.
    pub(crate) fn contact_companies(&self, rec: &store::Rec) -> Vec<(u64, bool)> {
        let live = |id: &u64| self.companies.get(*id).is_some_and(|c| !c.is_archived());
        let mut out: Vec<(u64, bool)> = rec
            .company
            .filter(live)
            .map(|c| (c, true))
            .into_iter()
            .collect();
        if let Some(extra) = self.unlabeled.get(&rec.id) {
            out.extend(extra.iter().filter(|c| live(c)).map(|c| (*c, false)));
        }
        out
    }

    /// The subscribers unsubscribed from all of `channel`.
    pub(crate) fn wide(&self, channel: preferences::Channel) -> &HashSet<Box<str>> {
        match channel {
            preferences::Channel::Email => &self.opted_out,
            preferences::Channel::Sms => &self.sms_opted_out,
        }
    }

    /// [`Data::wide`], to change.
    pub(crate) fn wide_mut(&mut self, channel: preferences::Channel) -> &mut HashSet<Box<str>> {
        match channel {
            preferences::Channel::Email => &mut self.opted_out,
            preferences::Channel::Sms => &mut self.sms_opted_out,
        }
    }

    /// Marks contact `id` opted out if its email address has unsubscribed from all email.
    pub(crate) fn sync_opt_out(&mut self, id: u64, now: i64) {
        let contacts = &mut self.contacts;
        let (Some(email), Some(flag)) = (
            contacts.prop_id("email"),
            contacts.prop_id("hs_email_optout"),
        ) else {
            return;
        };
        let Some(rec) = contacts.get(id) else {
            return;
        };
        let address = rec.get(email).map(str::to_owned);
        let opted_out = address
            .as_deref()
            .is_some_and(|e| self.opted_out.contains(e.to_lowercase().as_str()));
        let mut changes: Vec<(u16, &str)> = Vec::new();
        if opted_out && rec.get(flag) != Some("true") {
            changes.push((flag, "true"));
        }
        // The per-type flags follow the address's statuses, both ways (v4 may subscribe again).
        let types = address
            .as_deref()
            .map(|e| preferences::type_opt_out_values(self, e))
            .unwrap_or_default();
        let contacts = &mut self.contacts;
        for ((name, _), value) in preferences::type_opt_out_properties().zip(types) {
            if let Some(p) = contacts.prop_id(&name) {
                let was = contacts.get(id).and_then(|r| r.get(p)).unwrap_or("false");
                if was != value {
                    changes.push((p, value));
                }
            }
        }
        if !changes.is_empty() {
            contacts.update(id, now, &changes, None);
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
    /// The account's portal id: the option's, or a number of this emulator's own.
    portal_id: u64,
    data: RwLock<Data>,
    limits: Mutex<gate::Limits>,
    stats: Stats,
    /// The account's deal pipelines (configured, not seeded).
    pipelines: Vec<account::Pipeline>,
    /// Each seed user's owner id in this account (`None`: not a user here), by user key.
    owner_ids: Vec<Option<u64>>,
    /// The account's clock ([`Emulator::advance_clock`] moves it).
    clock: crate::clock::Clock,
}

/// The emulator's shared state; clones share it.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

impl Emulator {
    /// Sets the requests counted against the daily limit: other apps' calls of the account
    /// (a higher count), or midnight passing (0).
    pub fn set_daily_used(&self, used: u64) {
        if let Ok(mut limits) = self.inner.limits.lock() {
            limits.set_daily_used(used);
        }
    }

    /// A new, empty emulator.
    pub fn new(options: Options) -> Emulator {
        let portal_id = options.portal_id.unwrap_or_else(crate::new_account_number);
        let (owners, owner_ids) = account::owners_table(portal_id);
        let pipelines = account::pipelines(portal_id);
        let (record_tables, props) = records::tables(&pipelines);
        let mut tables = crate::table::Tables::new();
        tables.add(owners);
        for table in record_tables {
            tables.add(table);
        }
        let mut data = Data {
            contacts: ObjectStore::new(Kind::Contacts),
            companies: ObjectStore::new(Kind::Companies),
            opted_out: HashSet::new(),
            sms_opted_out: HashSet::new(),
            sms_addon: options.sms_addon,
            type_statuses: preferences::TypeStatuses::new(),
            unlabeled: HashMap::new(),
            tables,
            props,
            links: links::Links::default(),
        };
        // `hubspot_owner_id` is an enumeration whose options are the active owners: a write
        // naming an unknown or deactivated owner is refused with INVALID_OPTION.
        let options_of_owners = account::owner_options(&data);
        for (kind, label, group) in [
            (Kind::Contacts, "Contact owner", "contactinformation"),
            (Kind::Companies, "Company owner", "companyinformation"),
        ] {
            data.store_mut(kind).add_property(PropDef {
                options: options_of_owners.clone(),
                ..PropDef::standard("hubspot_owner_id", label, "enumeration", "select", group)
            });
        }
        Emulator {
            inner: Arc::new(Inner {
                portal_id,
                options,
                data: RwLock::new(data),
                limits: Mutex::new(gate::Limits::default()),
                stats: Stats::default(),
                pipelines,
                owner_ids,
                clock: crate::clock::Clock::default(),
            }),
        }
    }

    /// The account's clock: what writes stamp records' last-modified time with, and what the
    /// `Date` header says.
    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The search index's lag behind writes ([`Options::search_lag`]), in milliseconds.
    pub(crate) fn search_lag_ms(&self) -> Option<i64> {
        self.inner
            .options
            .search_lag
            .map(|lag| i64::try_from(lag.as_millis()).unwrap_or(i64::MAX))
    }

    /// Results one search query can be paged through ([`Options::search_max_results`]).
    pub(crate) fn search_max_results(&self) -> usize {
        self.inner.options.search_max_results
    }

    /// Moves the account's clock `by` ahead, as time passing would: later writes are stamped
    /// and answers dated (`Date`) that much later. A test hook, so that incremental reads are
    /// tested without waiting.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.inner.clock.advance(by);
    }

    /// Stamps the first `n` live records of `object` (in id order) as modified now, all with
    /// one last-modified time and no other change, as HubSpot's imports and bulk jobs do.
    /// Returns the ids stamped. A test hook for incremental reads' ties on one timestamp.
    pub fn bulk_stamp(&self, object: &str, n: usize) -> Vec<u64> {
        self.stamp(object, |at| at < n)
    }

    /// Stamps the live records of `object` whose position (in id order) `pick` takes as
    /// modified now, with no other change; returns their ids.
    fn stamp(&self, object: &str, pick: impl Fn(usize) -> bool) -> Vec<u64> {
        let now = self.now_ms();
        let mut data = self.write();
        if let Some(obj) = records::Obj::parse(object) {
            let Some(table) = data.tables.get_mut(obj.table()) else {
                return Vec::new();
            };
            let ids: Vec<u64> = table
                .iter(crate::table::Show::Live)
                .enumerate()
                .filter(|(at, _)| pick(*at))
                .map(|(_, r)| r.id)
                .collect();
            for &id in &ids {
                table.touch(id, now);
            }
            return ids;
        }
        let Some(kind) = Kind::parse(object) else {
            return Vec::new();
        };
        let store = data.store_mut(kind);
        let ids: Vec<u64> = store
            .starting_at(0)
            .iter()
            .filter(|r| !r.is_archived())
            .enumerate()
            .filter(|(at, _)| pick(*at))
            .map(|(_, r)| r.id)
            .collect();
        for &id in &ids {
            store.update(id, now, &[], None);
        }
        ids
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

    /// Loads generated data: companies get ids from [`FIRST_COMPANY_ID`] and contacts from
    /// [`FIRST_CONTACT_ID`] (in an empty emulator), in seed order; each contact's company is
    /// its primary association. Deals and notes follow, with their associations; owners are
    /// the account's (a user the account lacks owns nothing here). Returns how many deals
    /// and notes were seeded.
    pub fn seed(&self, seed: &SeedData) -> (usize, usize) {
        let owner_ids = &self.inner.owner_ids;
        let owner_text: Vec<Option<String>> = owner_ids
            .iter()
            .map(|id| id.map(|id| id.to_string()))
            .collect();
        let owner = |key: Option<usize>| {
            key.and_then(|k| owner_text.get(k))
                .and_then(|o| o.as_deref())
        };
        let mut data = self.write();
        let companies = &mut data.companies;
        let names = [
            "name",
            "domain",
            "phone",
            "industry",
            "numberofemployees",
            "annualrevenue",
            "address",
            "city",
            "state",
            "zip",
            "country",
            "region",
            "seats",
            "tier",
            "hubspot_owner_id",
        ];
        let p = names.map(|n| companies.prop_id(n));
        let first_company = companies.seed_with(seed.companies.len(), |id, i| {
            let c = &seed.companies[i];
            let employees = c.employee_count.map(|n| n.to_string());
            let revenue = c.annual_revenue.map(|r| format!("{r}"));
            let seats = c.seats.map(|n| n.to_string());
            // HubSpot stores an enumeration's internal value, not its label.
            let tier = c.tier.map(fields::tier_value);
            let industry = c
                .industry
                .as_deref()
                .and_then(|seeded| SPEC.industry?.label(seeded))
                .and_then(fields::industry_value);
            let values = [
                c.name.as_deref(),
                c.domain.as_deref(),
                c.phone.as_deref(),
                industry,
                employees.as_deref(),
                revenue.as_deref(),
                c.street.as_deref(),
                c.city.as_deref(),
                c.state.as_deref(),
                c.postal_code.as_deref(),
                c.country.as_deref(),
                c.region.as_deref(),
                seats.as_deref(),
                tier.as_deref(),
                owner(c.owner),
            ];
            let pairs: Vec<_> = p.iter().copied().zip(values).collect();
            seeded_record(id, c.created_at_ms, c.updated_at_ms, None, &pairs)
        });
        let contacts = &mut data.contacts;
        let names = [
            "email",
            "firstname",
            "lastname",
            "phone",
            "mobilephone",
            "jobtitle",
            "address",
            "city",
            "state",
            "zip",
            "country",
            "hs_email_optout",
            "favourite_colour",
            "loyalty_points",
            "hubspot_owner_id",
            "hs_legal_basis",
        ];
        let p = names.map(|n| contacts.prop_id(n));
        let first_contact = contacts.seed_with(seed.contacts.len(), |id, i| {
            let c = &seed.contacts[i];
            let points = c.loyalty_points.map(|n| n.to_string());
            let legal_basis = store::legal_basis_value(&c.legal_basis);
            let values = [
                c.email.as_deref(),
                c.first_name.as_deref(),
                c.last_name.as_deref(),
                c.phone.as_deref(),
                c.mobile_phone.as_deref(),
                c.job_title.as_deref(),
                c.street.as_deref(),
                c.city.as_deref(),
                c.state.as_deref(),
                c.postal_code.as_deref(),
                c.country.as_deref(),
                Some(if c.email_opt_out { "true" } else { "false" }),
                c.favourite_colour.as_deref(),
                points.as_deref(),
                owner(c.owner),
                legal_basis.as_deref(),
            ];
            let pairs: Vec<_> = p.iter().copied().zip(values).collect();
            let company = c.company.map(|key| first_company + key as u64);
            seeded_record(id, c.created_at_ms, c.updated_at_ms, company, &pairs)
        });
        let unsubscribed = seed
            .contacts
            .iter()
            .filter(|c| c.email_opt_out)
            .filter_map(|c| c.email.as_deref())
            .map(|e| e.to_lowercase().into_boxed_str());
        data.opted_out.extend(unsubscribed);
        // A seeded SMS opt-out is its contact's mobile number's, in E.164 (seeded numbers are
        // international: `+`, digits and spaces).
        let texts_refused = seed
            .contacts
            .iter()
            .filter(|c| c.sms_opt_out)
            .filter_map(|c| c.mobile_phone.as_deref())
            .map(|n| {
                let e164: String = n
                    .chars()
                    .filter(|c| *c == '+' || c.is_ascii_digit())
                    .collect();
                e164.into_boxed_str()
            })
            .filter(|n| preferences::is_e164(n));
        data.sms_opted_out.extend(texts_refused);
        data.sms_addon |= !data.sms_opted_out.is_empty();
        for c in &seed.contacts {
            if let Some(email) = c.email.as_deref() {
                preferences::seeded_statuses(c, email, c.updated_at_ms, &mut data.type_statuses);
            }
        }
        // The per-type flags of the contacts seeded unsubscribed from a type.
        let type_flags: Vec<(u16, &str)> = preferences::type_opt_out_properties()
            .filter_map(|(name, _)| data.contacts.prop_id(&name))
            .map(|p| (p, "true"))
            .collect();
        for c in seed
            .contacts
            .iter()
            .filter(|c| !c.email_unsubscribed_types.is_empty())
        {
            let id = first_contact + c.key as u64;
            let values = c
                .email
                .as_deref()
                .map(|e| preferences::type_opt_out_values(&data, e));
            let changes: Vec<(u16, &str)> = type_flags
                .iter()
                .zip(values.unwrap_or_default())
                .filter(|(_, v)| *v == "true")
                .map(|(f, _)| *f)
                .collect();
            data.contacts.set_seeded(id, &changes);
        }
        let (deals, notes) = records::seed(
            self,
            &mut data,
            seed,
            first_company,
            first_contact,
            owner_ids,
        );
        tracing::debug!(
            companies = seed.companies.len(),
            contacts = seed.contacts.len(),
            deals,
            notes,
            "hubspot emulator seeded"
        );
        (deals, notes)
    }

    /// The account's portal id, as `GET /account-info/v3/details` reports it.
    pub fn portal_id(&self) -> u64 {
        self.inner.portal_id
    }

    /// The HTTP routes, behind auth, rate limits and the configured faults.
    pub fn router(&self) -> Router {
        let faulty: faults::Faulty = (self.clone(), Arc::default());
        let routes = Router::new()
            .route(
                "/crm/v3/objects/{object}",
                get(api::list).post(api::create_one),
            )
            .route(
                "/crm/v3/objects/{object}/{id}",
                get(api::read_one)
                    .patch(api::update_one)
                    .delete(api::archive_one),
            )
            .route("/crm/v3/objects/{object}/batch/{action}", post(api::batch))
            .route("/crm/v3/objects/{object}/search", post(search::search))
            .route(
                "/crm/v3/properties/{object}",
                get(api::list_properties).post(api::create_property),
            )
            .route(
                "/crm/v3/properties/{object}/{name}",
                get(api::read_property),
            )
            .route(
                "/crm/v4/associations/{from}/{to}/batch/read",
                post(api::association_batch_read),
            )
            .route(
                "/crm/v4/associations/{from}/{to}/batch/create",
                post(associations::batch_create),
            )
            .route(
                "/crm/v4/associations/{from}/{to}/batch/associate/default",
                post(associations::batch_associate_default),
            )
            .route(
                "/crm/v4/associations/{from}/{to}/batch/archive",
                post(associations::batch_archive),
            )
            .route(
                "/communication-preferences/{version}/statuses/batch/unsubscribe-all",
                post(preferences::batch_unsubscribe_all),
            )
            .route(
                "/communication-preferences/{version}/definitions",
                get(preferences::definitions),
            )
            .route(
                "/communication-preferences/{version}/statuses/batch/read",
                post(preferences::batch_read_statuses),
            )
            .route(
                "/communication-preferences/{version}/statuses/batch/write",
                post(preferences::batch_write_statuses),
            )
            .route(
                "/communication-preferences/{version}/statuses/{subscriber}",
                post(preferences::write_status),
            )
            .route(
                "/communication-preferences/{version}/statuses/batch/unsubscribe-all/read",
                post(preferences::batch_read_unsubscribe_all),
            )
            .route(
                "/communication-preferences/{version}/statuses/{subscriber}/unsubscribe-all",
                get(preferences::read_unsubscribe_all).post(preferences::unsubscribe_all),
            )
            .route(
                "/crm/v4/objects/{from}/{id}/associations/{to}",
                get(api::associations_of),
            )
            .route(
                "/crm/v4/objects/{from}/{id}/associations/{to}/{to_id}",
                put(api::association_put).delete(api::association_delete),
            )
            .route(
                "/crm/v4/objects/{from}/{id}/associations/default/{to}/{to_id}",
                put(api::association_put_default),
            )
            .route("/crm/v3/owners", get(account::list_owners))
            .route("/crm/v3/owners/", get(account::list_owners))
            .route("/crm/v3/owners/{id}", get(account::read_owner))
            .route("/crm/v3/pipelines/{object}", get(account::list_pipelines))
            .route(
                "/crm/v3/pipelines/{object}/{pipeline}",
                get(account::read_pipeline),
            )
            .route(
                "/crm/v3/pipelines/{object}/{pipeline}/stages",
                get(account::list_stages),
            )
            .route(
                "/crm/v3/pipelines/{object}/{pipeline}/stages/{stage}",
                get(account::read_stage),
            )
            .route("/account-info/{version}/details", get(account_details))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                faulty,
                faults::partial,
            ))
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
            faults::later_page,
            move |kind, k| faults::change(&shifted, *kind, k),
        );
        crate::faults::inject(
            routes,
            self.inner.options.faults.clone(),
            respond::injected_429,
        )
    }

    /// How many live (not archived) records of `object` (`"contacts"`, `"companies"`,
    /// `"deals"`, `"notes"`) the emulator holds; `None` for an unknown type.
    pub fn count(&self, object: &str) -> Option<usize> {
        if let Some(obj) = records::Obj::parse(object) {
            return Some(records::count(&self.read(), obj));
        }
        let kind = Kind::parse(object)?;
        let data = self.read();
        let store = data.store(kind);
        Some(
            store
                .starting_at(0)
                .iter()
                .filter(|r| !r.is_archived())
                .count()
                .min(store.len()),
        )
    }

    /// Requests received (past the fault layer), and how many the rate limits refused (429).
    pub fn request_counts(&self) -> (u64, u64) {
        let stats = &self.inner.stats;
        (
            stats.requests.load(Ordering::Relaxed),
            stats.throttled.load(Ordering::Relaxed),
        )
    }

    /// Archives (soft-deletes) one record, as `DELETE /crm/v3/objects/{object}/{id}` does.
    /// Returns whether a live record was archived.
    pub fn archive(&self, object: &str, id: u64) -> bool {
        if let Some(obj) = records::Obj::parse(object) {
            let mut data = self.write();
            return data
                .tables
                .get_mut(obj.table())
                .is_some_and(|t| t.archive(id, self.now_ms()).is_ok());
        }
        let Some(kind) = Kind::parse(object) else {
            return false;
        };
        let now = self.now_ms();
        self.write().store_mut(kind).archive(id, now)
    }

    /// Overwrites one stored property value without validation, to plant data HubSpot would
    /// hold but never accept through this API (for tests of unreadable values). Returns whether
    /// the record and property exist.
    pub fn put_raw(&self, object: &str, id: &str, property: &str, value: &str) -> bool {
        let (Some(kind), Ok(id)) = (Kind::parse(object), id.parse::<u64>()) else {
            return false;
        };
        let mut data = self.write();
        let store = data.store_mut(kind);
        match store.prop_id(property) {
            Some(prop) => store.put_raw(id, prop, value),
            None => false,
        }
    }
}

/// `GET /account-info/v3/details` (or a date version): the account's portal id and settings,
/// in the documented shape.
async fn account_details(
    axum::extract::State(emulator): axum::extract::State<Emulator>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "portalId": emulator.portal_id(),
        "accountType": "STANDARD",
        "timeZone": "US/Eastern",
        "companyCurrency": records::CURRENCIES[0],
        "additionalCurrencies": &records::CURRENCIES[1..],
        "utcOffset": "-05:00",
        "utcOffsetMilliseconds": -18_000_000,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    }))
}

async fn not_found() -> Response {
    respond::error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "Resource not found",
    )
}

#[cfg(test)]
mod tests;

/// The account's deal pipelines: HubSpot's default "Sales Pipeline" (its stage ids are the
/// lower-case words, `appointmentscheduled`) and a custom "Renewals" one (numeric ids).
pub(crate) const DEAL_STAGES: &[crate::accounts::StageLabel] = &[
    crate::accounts::stage_label("sales", "new", "Sales Pipeline", "Appointment Scheduled"),
    crate::accounts::stage_label("sales", "qualified", "Sales Pipeline", "Qualified To Buy"),
    crate::accounts::stage_label(
        "sales",
        "proposal",
        "Sales Pipeline",
        "Presentation Scheduled",
    ),
    crate::accounts::stage_label("sales", "negotiation", "Sales Pipeline", "Contract Sent"),
    crate::accounts::stage_label("sales", "won", "Sales Pipeline", "Closed Won"),
    crate::accounts::stage_label("sales", "lost", "Sales Pipeline", "Closed Lost"),
    crate::accounts::stage_label("renewals", "due", "Renewals", "Renewal Due"),
    crate::accounts::stage_label("renewals", "negotiation", "Renewals", "Negotiation"),
    crate::accounts::stage_label("renewals", "renewed", "Renewals", "Renewed"),
    crate::accounts::stage_label("renewals", "churned", "Renewals", "Churned"),
];

/// The HubSpot emulator in the sandbox's registry.
pub const SPEC: crate::EmulatorSpec = crate::EmulatorSpec {
    vendor: "hubspot",
    default_port: 18081,
    credentials: &[("HUBSPOT_TOKEN", crate::HUBSPOT_TOKEN)],
    connector_settings: |base_url| {
        vec![
            ("base_url", base_url.to_owned()),
            ("token", "${HUBSPOT_TOKEN}".to_owned()),
        ]
    },
    limit_unit: Some("requests per 10 s"),
    build: |faults, limits| {
        let mut options = Options {
            faults,
            ..Options::default()
        };
        match limits {
            crate::Limits::Documented => {}
            crate::Limits::Unlimited => {
                options.burst_limit = None;
                options.daily_limit = None;
                options.search_limit = None;
            }
            crate::Limits::Burst(n) => options.burst_limit = Some(n),
            crate::Limits::Daily(n) => options.daily_limit = Some(n),
        }
        std::sync::Arc::new(Emulator::new(options))
    },
    industry: Some(crate::IndustryField {
        field: "industry",
        standard: true,
        labels: &[
            ("Technology", "Computer Software"),
            ("Retail", "Retail"),
            ("Manufacturing", "Machinery"),
            ("Healthcare", "Hospital & Health Care"),
            ("Finance", "Financial Services"),
            ("Education", "Education Management"),
            ("Hospitality", "Hospitality"),
            ("Energy", "Oil & Energy"),
        ],
    }),
    deal_stages: DEAL_STAGES,
};

impl crate::VendorEmulator for Emulator {
    fn seed(&self, data: &SeedData) -> crate::SeedSummary {
        let (deals, notes) = Emulator::seed(self, data);
        crate::SeedSummary {
            companies: data.companies.len(),
            contacts: data.contacts.len(),
            deals,
            notes,
        }
    }

    fn router(&self) -> Router {
        Emulator::router(self)
    }

    fn count(&self, object: &str) -> usize {
        Emulator::count(self, object).unwrap_or(0)
    }

    fn touch(&self, object: &str, every_nth: usize) -> usize {
        if every_nth == 0 {
            return 0;
        }
        self.stamp(object, |at| at % every_nth == 0).len()
    }

    fn advance_clock(&self, by: std::time::Duration) {
        Emulator::advance_clock(self, by);
    }

    fn records(&self, object: &str) -> Vec<serde_json::Value> {
        let Some(kind) = Kind::parse(object) else {
            return Vec::new();
        };
        let data = self.read();
        let store = data.store(kind);
        store
            .starting_at(0)
            .iter()
            .filter(|r| !r.is_archived())
            .map(|r| {
                let properties: serde_json::Map<String, serde_json::Value> = store
                    .full_selection(r)
                    .into_iter()
                    .filter_map(|p| {
                        let value = store.value(r, p)?;
                        Some((store.prop(p).name.clone(), value.into_owned().into()))
                    })
                    .collect();
                serde_json::json!({"id": r.id.to_string(), "properties": properties})
            })
            .collect()
    }
}
