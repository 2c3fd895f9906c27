//! Faithful in-memory emulators of the CRM vendors' APIs, served over real HTTP on loopback,
//! with a seeded data generator and fault injection. Used by tests, `ferry demo`, `ferry
//! sandbox` and the benchmarks; never by a real migration.

pub mod accounts;
mod clock;
pub mod dns;
pub mod faults;
pub mod seed;
pub mod table;
mod timestamp;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::task::JoinHandle;

/// The private-app token the HubSpot emulator accepts unless configured otherwise.
pub const HUBSPOT_TOKEN: &str = "sandbox-hubspot-token";
/// The OAuth client id the Salesforce emulator accepts unless configured otherwise.
pub const SALESFORCE_CLIENT_ID: &str = "sandbox-client-id";
/// The OAuth client secret the Salesforce emulator accepts unless configured otherwise.
pub const SALESFORCE_CLIENT_SECRET: &str = "sandbox-client-secret";

/// An emulator listening on loopback.
pub struct Running {
    /// The vendor it emulates.
    pub vendor: &'static str,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, the value for a connector's `base_url` / `login_url`.
    pub base_url: String,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on `addr` (port 0 picks a free port) in a background task.
pub async fn serve(vendor: &'static str, router: Router, addr: SocketAddr) -> io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(vendor, error = %e, "emulator stopped");
        }
    });
    Ok(Running {
        vendor,
        addr,
        base_url: format!("http://{addr}"),
        task,
    })
}

/// A number for a new emulator's account id (HubSpot's portal id, ...): distinct for every
/// emulator of this process, and random across processes, so that two emulators are two
/// accounts unless a test says otherwise. Eight digits, like HubSpot's portal ids.
pub(crate) fn new_account_number() -> u64 {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| rand::random_range(10_000_000..90_000_000));
    base + NEXT.fetch_add(1, Ordering::Relaxed) % 9_000_000
}

/// A vendor's names for the objects [`VendorEmulator`]'s hooks are asked about by their
/// canonical names (`"companies"`, `"contacts"`, `"deals"`, `"notes"`).
pub(crate) struct ObjectNames {
    /// The vendor's name for companies.
    pub companies: &'static str,
    /// For contacts.
    pub contacts: &'static str,
    /// For deals.
    pub deals: &'static str,
    /// For notes.
    pub notes: &'static str,
}

impl ObjectNames {
    /// The vendor's name for `object`; `None` for a name that is not one of the four.
    pub(crate) fn of(&self, object: &str) -> Option<&'static str> {
        match object {
            "companies" => Some(self.companies),
            "contacts" => Some(self.contacts),
            "deals" => Some(self.deals),
            "notes" => Some(self.notes),
            _ => None,
        }
    }

    /// The vendor's name for `object` if [`VendorEmulator::records`] renders it: companies and
    /// contacts only.
    pub(crate) fn rendered(&self, object: &str) -> Option<&'static str> {
        matches!(object, "companies" | "contacts")
            .then(|| self.of(object))
            .flatten()
    }
}

/// One vendor's emulator, as `ferry sandbox`, `ferry demo` and the conformance kit see it.
pub trait VendorEmulator: Send + Sync {
    /// Loads generated data, returning what was actually seeded (a vendor may refuse records
    /// a real account could not hold).
    fn seed(&self, data: &seed::SeedData) -> SeedSummary;
    /// The HTTP routes, with the emulator's fault profile applied.
    fn router(&self) -> Router;
    /// How many live records of `object` (`"companies"`, `"contacts"`, `"deals"`, `"notes"`) it
    /// holds now.
    fn count(&self, object: &str) -> usize;
    /// Stamps every `every_nth` live record of `object` (the first, the `every_nth + 1`th, …
    /// in the emulator's own order) as modified now by the account's clock, cells untouched,
    /// as other users' edits would; returns how many it stamped (0 for an object it cannot
    /// stamp, or `every_nth` 0). A sandbox hook: `ferry sandbox`'s `touch` command and the sync
    /// benchmark change records through it.
    fn touch(&self, object: &str, every_nth: usize) -> usize;
    /// Moves the account's clock `by` ahead, as time passing would (later writes are stamped,
    /// and answers dated, that much later). A sandbox hook, like [`VendorEmulator::touch`].
    fn advance_clock(&self, by: std::time::Duration);
    /// Every live record of `object` (`"companies"` or `"contacts"`; none for the others) as
    /// the vendor's API renders a read of it, every field under the vendor's name. A sandbox
    /// hook for tests that look into the account itself (the consent tests read each
    /// contact's opt-outs there).
    fn records(&self, object: &str) -> Vec<serde_json::Value>;
}

/// The positions `0, every_nth, 2 * every_nth, …` below `len`: which records
/// [`VendorEmulator::touch`] stamps (none when `every_nth` is 0).
pub(crate) fn every_nth(len: usize, every_nth: usize) -> impl Iterator<Item = usize> {
    (0..if every_nth == 0 { 0 } else { len }).step_by(every_nth.max(1))
}

/// How to make one vendor's emulator and point that vendor's connector at it.
#[derive(Clone, Copy)]
pub struct EmulatorSpec {
    /// The vendor, named as its connector is in config files (`"hubspot"`).
    pub vendor: &'static str,
    /// The loopback port `ferry sandbox` serves it on.
    pub default_port: u16,
    /// The environment variables the sandbox's credentials go in, and their values. Fake,
    /// sandbox-only credentials: printing them is fine.
    pub credentials: &'static [(&'static str, &'static str)],
    /// The connector settings that point at an emulator served at `base_url`: plain values,
    /// and `${VAR}` references to `credentials` for secrets.
    pub connector_settings: fn(base_url: &str) -> Vec<(&'static str, String)>,
    /// What the number of [`Limits::Burst`] sets, for messages (`"requests per 10 s"`); `None`:
    /// the vendor has no limit a number can set.
    pub limit_unit: Option<&'static str>,
    /// A new, empty emulator with the given fault profile and rate limits.
    pub build: fn(faults: faults::Faults, limits: Limits) -> Arc<dyn VendorEmulator>,
    /// Where the account keeps a company's industry, and its label for each seed industry;
    /// `None` when the vendor has no industry field (Pipedrive).
    pub industry: Option<IndustryField>,
    /// Where the account keeps each of the seed's deal stages (its pipeline and stage labels):
    /// what the account's pipelines are configured with, and what [`accounts::stage_crosswalk`]
    /// maps between two vendors.
    pub deal_stages: &'static [accounts::StageLabel],
}

/// Where an emulated account keeps a company's industry, and which of its picklist's labels
/// it gives each of the seed's industries (`seed::INDUSTRIES`). Vendors' industry lists differ,
/// so carrying industries between two of them takes a table like an operator's
/// `[values.companies.industry]`: [`industry_crosswalk`] writes it for the demo and the tests.
#[derive(Clone, Copy, Debug)]
pub struct IndustryField {
    /// The vendor field (`industry`, `Industry`, `industrycode`).
    pub field: &'static str,
    /// Whether the connector's standard table carries it as the canonical `industry`
    /// (otherwise the operator maps it in `[fields.companies]`).
    pub standard: bool,
    /// (seed industry, this vendor's label) for the seed industries its list has an entry for;
    /// companies of the others are seeded without an industry.
    pub labels: &'static [(&'static str, &'static str)],
}

impl IndustryField {
    /// This vendor's label for a seed industry, if its list has one.
    pub fn label(&self, seed_industry: &str) -> Option<&'static str> {
        self.labels
            .iter()
            .find(|(seeded, _)| *seeded == seed_industry)
            .map(|(_, label)| *label)
    }
}

/// What an operator would configure to carry the seed's industries from one emulated account
/// into another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndustryCrosswalk {
    /// `[fields.companies]` source field = sink field, when either side's industry is not a
    /// standard field of its connector.
    pub field: Option<(&'static str, &'static str)>,
    /// The field the value table is keyed by: the canonical `industry` where either side's
    /// connector carries it as standard, otherwise the source's field (Dataverse's
    /// `industrycode` into Pipedrive's `Industry`: neither is the canonical `industry`).
    pub key: &'static str,
    /// `[values.companies.<key>]`: source label = sink label (`""`: left empty, the sink's list
    /// has no such industry).
    pub values: Vec<(&'static str, &'static str)>,
}

impl IndustryCrosswalk {
    /// The crosswalk as ferry config text: the `[fields.companies]` pair, if any, and the
    /// `[values.companies.<key>]` table.
    pub fn to_config(&self) -> String {
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut text = String::new();
        if let Some((a, b)) = self.field {
            text.push_str(&format!(
                "[fields.companies]\n{} = {}\n",
                quote(a),
                quote(b)
            ));
        }
        text.push_str(&format!("[values.companies.{}]\n", quote(self.key)));
        for (a, b) in &self.values {
            text.push_str(&format!("{} = {}\n", quote(a), quote(b)));
        }
        text
    }
}

/// The crosswalk from `from`'s industries to `to`'s; `None` when either has no industry field.
pub fn industry_crosswalk(from: &EmulatorSpec, to: &EmulatorSpec) -> Option<IndustryCrosswalk> {
    let (source, sink) = (from.industry?, to.industry?);
    Some(IndustryCrosswalk {
        field: (!source.standard || !sink.standard).then_some((source.field, sink.field)),
        key: if source.standard || sink.standard {
            "industry"
        } else {
            source.field
        },
        values: source
            .labels
            .iter()
            .map(|(seeded, label)| (*label, sink.label(seeded).unwrap_or("")))
            .collect(),
    })
}

/// Which rate limits an emulator enforces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limits {
    /// The vendor's documented limits, for the default plan.
    #[default]
    Documented,
    /// None at all, so that a benchmark measures ferry and not the vendor.
    Unlimited,
    /// The documented limits, with another plan's value of the vendor's main limit: requests
    /// per burst window (HubSpot's 190 per 10 s on Professional), or for Zoho, which counts no
    /// requests per window, concurrent calls (10 on Standard). Ignored by vendors without one.
    Burst(u32),
    /// The documented limits, with a daily quota of this many: HubSpot's daily requests,
    /// Salesforce's daily API allocation, Pipedrive's daily token budget (`daily:N`; see
    /// [`DAILY_QUOTA_VENDORS`]).
    Daily(u64),
}

/// The emulators whose daily quota `--limit VENDOR=daily:N` sets.
pub const DAILY_QUOTA_VENDORS: &[&str] = &["hubspot", "salesforce", "pipedrive"];

impl Limits {
    /// Parses `none`, `documented`, a number of requests per burst window, or `daily:N`.
    pub fn parse(text: &str) -> Result<Limits, String> {
        match text.trim() {
            "none" => Ok(Limits::Unlimited),
            "documented" => Ok(Limits::Documented),
            daily if daily.starts_with("daily:") => daily["daily:".len()..]
                .parse::<u64>()
                .ok()
                .map(Limits::Daily)
                .ok_or_else(|| format!("`{daily}`: expected `daily:N`, N a number of requests")),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .map(Limits::Burst)
                .ok_or_else(|| {
                    format!(
                        "`{n}`: expected `none`, `documented`, a number of requests or `daily:N`"
                    )
                }),
        }
    }
}

// Each vendor's emulator is a module (`src/<vendor>/`, exporting `SPEC`), declared plainly:
// `cargo fmt` does not reach modules a macro declares.
pub mod dynamics;
pub mod hubspot;
pub mod pipedrive;
pub mod salesforce;
pub mod zoho;

/// Lists each vendor's emulator module in [`emulators`], so that registering a vendor's
/// emulator is one word in the list below (beside its `pub mod` line above).
macro_rules! emulators {
    ($($vendor:ident),* $(,)?) => {
        /// Every vendor's emulator.
        pub fn emulators() -> Vec<EmulatorSpec> {
            vec![$($vendor::SPEC),*]
        }
    };
}

emulators![hubspot, salesforce, dynamics, pipedrive, zoho];

/// The emulator of `vendor`, if there is one.
pub fn emulator(vendor: &str) -> Option<EmulatorSpec> {
    emulators().into_iter().find(|e| e.vendor == vendor)
}

/// Counts of what an emulator seeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedSummary {
    /// Companies seeded.
    pub companies: usize,
    /// Contacts seeded.
    pub contacts: usize,
    /// Deals seeded.
    pub deals: usize,
    /// Notes seeded.
    pub notes: usize,
}

/// One emulator to start.
pub struct VendorSetup {
    /// Which vendor.
    pub spec: EmulatorSpec,
    /// Where it listens (port 0: any free port).
    pub addr: SocketAddr,
    /// Injected faults.
    pub faults: faults::Faults,
    /// The rate limits enforced.
    pub limits: Limits,
    /// Whether to seed it with the generated data (a source) or leave it empty (a sink).
    pub seeded: bool,
}

impl VendorSetup {
    /// `spec`'s emulator on a free loopback port, no faults.
    pub fn ephemeral(spec: EmulatorSpec, seeded: bool) -> VendorSetup {
        VendorSetup {
            spec,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: faults::Faults::default(),
            limits: Limits::Documented,
            seeded,
        }
    }
}

/// What to start: the data set and the emulators.
pub struct SandboxConfig {
    /// How many contacts to generate (companies: a fifth as many).
    pub records: usize,
    /// The generator's seed.
    pub seed: u64,
    /// How messy the generated data is.
    pub mess: seed::Mess,
    /// The emulators.
    pub vendors: Vec<VendorSetup>,
}

/// An emulator, running.
pub struct RunningEmulator {
    /// Which vendor.
    pub spec: EmulatorSpec,
    /// Its state, for counts.
    pub emulator: Arc<dyn VendorEmulator>,
    /// Where it listens.
    pub running: Running,
    /// What was seeded into it, if it was seeded.
    pub seeded: Option<SeedSummary>,
}

impl RunningEmulator {
    /// The settings that point this vendor's connector at this emulator.
    pub fn connector_settings(&self) -> Vec<(&'static str, String)> {
        (self.spec.connector_settings)(&self.running.base_url)
    }
}

/// The running emulators.
pub struct Sandbox {
    /// In the order they were configured.
    pub emulators: Vec<RunningEmulator>,
}

impl Sandbox {
    /// The running emulator of `vendor`.
    pub fn get(&self, vendor: &str) -> Option<&RunningEmulator> {
        self.emulators.iter().find(|e| e.spec.vendor == vendor)
    }
}

/// Generates the data once, seeds the emulators that want it, and serves them all.
pub async fn start(config: SandboxConfig) -> io::Result<Sandbox> {
    let data = config
        .vendors
        .iter()
        .any(|v| v.seeded)
        .then(|| seed::generate(config.records, config.seed, &config.mess));
    let mut emulators = Vec::with_capacity(config.vendors.len());
    for setup in config.vendors {
        let emulator = (setup.spec.build)(setup.faults, setup.limits);
        let seeded = match (&data, setup.seeded) {
            (Some(data), true) => Some(emulator.seed(data)),
            _ => None,
        };
        let running = serve(setup.spec.vendor, emulator.router(), setup.addr).await?;
        emulators.push(RunningEmulator {
            spec: setup.spec,
            emulator,
            running,
            seeded,
        });
    }
    Ok(Sandbox { emulators })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_a_daily_quota() {
        assert_eq!(Limits::parse("daily:500"), Ok(Limits::Daily(500)));
        assert_eq!(Limits::parse("190"), Ok(Limits::Burst(190)));
        assert_eq!(Limits::parse("none"), Ok(Limits::Unlimited));
        for bad in ["daily:", "daily:x", "daily:-1", "weekly:5", "0"] {
            assert!(Limits::parse(bad).is_err(), "{bad}");
        }
    }

    /// `daily:N` sets the daily quota HubSpot's headers state (as ferry reads them).
    #[tokio::test]
    async fn a_daily_limit_reaches_the_headers() {
        let any = "127.0.0.1:0".parse().expect("loopback");
        let client = reqwest::Client::new();
        let hub = (hubspot::SPEC.build)(faults::Faults::default(), Limits::Daily(7));
        let running = serve("hubspot", hub.router(), any).await.expect("serve");
        let answer = client
            .get(format!("{}/crm/v3/objects/contacts", running.base_url))
            .bearer_auth(HUBSPOT_TOKEN)
            .send()
            .await
            .expect("list");
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("x-hubspot-ratelimit-daily").as_deref(), Some("7"));
        assert_eq!(
            header("x-hubspot-ratelimit-daily-remaining").as_deref(),
            Some("6")
        );
    }

    #[test]
    fn every_vendor_touches_every_nth_record_of_every_object() {
        let data = seed::generate(100, 3, &seed::Mess::none());
        for spec in emulators() {
            let emulator = (spec.build)(faults::Faults::default(), Limits::Unlimited);
            emulator.seed(&data);
            for object in ["companies", "contacts", "deals", "notes"] {
                let live = emulator.count(object);
                assert!(live > 0, "{} {object}: seeded", spec.vendor);
                assert_eq!(
                    emulator.touch(object, 10),
                    live.div_ceil(10),
                    "{} {object}",
                    spec.vendor
                );
                assert_eq!(emulator.touch(object, 1), live, "{} {object}", spec.vendor);
                assert_eq!(emulator.touch(object, 0), 0, "{} {object}", spec.vendor);
                assert_eq!(emulator.count(object), live, "{} {object}", spec.vendor);
            }
            assert_eq!(emulator.touch("owners", 1), 0, "{}", spec.vendor);
        }
    }
}
