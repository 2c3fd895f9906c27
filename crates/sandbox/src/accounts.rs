//! What an emulated account holds besides records: its users (the owners records point at) and
//! its deal pipelines and stages. A real account is configured, not seeded, so every emulator
//! has these whether or not it was seeded with records.
//!
//! Accounts of different vendors differ on purpose, as real ones do: a user may exist in one
//! account only or be deactivated in another, an address may be held in another letter case,
//! and each vendor names its stages its own way. That way every pair of emulators exercises
//! ferry's owner matching (by email, never by id) and its stage mapping (by label, never by id).

/// Whether a deal at a stage is still open, or was won or lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Still being worked.
    Open,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

impl Outcome {
    /// The word vendors with a status field use (`open`, `won`, `lost`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Won => "won",
            Outcome::Lost => "lost",
        }
    }
}

/// A person who may own records, as the data generator knows them.
#[derive(Clone, Copy, Debug)]
pub struct SeedUser {
    /// Position in [`USERS`]; what seeded records name as their owner.
    pub key: usize,
    /// The login address, as most accounts hold it.
    pub email: &'static str,
    /// Given name.
    pub first_name: &'static str,
    /// Family name.
    pub last_name: &'static str,
    /// Vendors whose account does not have this user at all.
    pub absent_from: &'static [&'static str],
    /// Vendors whose account has this user deactivated.
    pub inactive_in: &'static [&'static str],
    /// Vendors whose account holds the address in capitals (matching must ignore case).
    pub upper_case_in: &'static [&'static str],
}

/// The users of the seeded accounts. Users 0–4 are in every account; the others are missing
/// from, or deactivated in, some, so that some owners never match.
pub const USERS: &[SeedUser] = &[
    user(
        0,
        "ana.garcia@ferry-demo.example",
        "Ana",
        "García",
        &[],
        &[],
        &["salesforce"],
    ),
    user(
        1,
        "ben.okafor@ferry-demo.example",
        "Ben",
        "Okafor",
        &[],
        &[],
        &[],
    ),
    user(
        2,
        "chloe.martin@ferry-demo.example",
        "Chloé",
        "Martin",
        &[],
        &[],
        &["dynamics"],
    ),
    user(
        3,
        "dev.patel@ferry-demo.example",
        "Dev",
        "Patel",
        &[],
        &[],
        &[],
    ),
    user(
        4,
        "eva.lindqvist@ferry-demo.example",
        "Eva",
        "Lindqvist",
        &[],
        &[],
        &[],
    ),
    user(
        5,
        "farah.haddad@ferry-demo.example",
        "Farah",
        "Haddad",
        &["hubspot", "zoho"],
        &[],
        &[],
    ),
    user(
        6,
        "goro.tanaka@ferry-demo.example",
        "Gorō",
        "Tanaka",
        &[],
        &["salesforce", "dynamics"],
        &[],
    ),
    user(
        7,
        "hana.novak@ferry-demo.example",
        "Hana",
        "Novák",
        &["pipedrive"],
        &["hubspot"],
        &[],
    ),
];

#[allow(clippy::too_many_arguments)]
const fn user(
    key: usize,
    email: &'static str,
    first_name: &'static str,
    last_name: &'static str,
    absent_from: &'static [&'static str],
    inactive_in: &'static [&'static str],
    upper_case_in: &'static [&'static str],
) -> SeedUser {
    SeedUser {
        key,
        email,
        first_name,
        last_name,
        absent_from,
        inactive_in,
        upper_case_in,
    }
}

/// One user as an account of some vendor holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountUser {
    /// The seed user's key ([`SeedUser::key`]).
    pub key: usize,
    /// The address as this account holds it.
    pub email: String,
    /// Given name.
    pub first_name: &'static str,
    /// Family name.
    pub last_name: &'static str,
    /// Whether the user is active (a deactivated user cannot own new records).
    pub active: bool,
}

/// The users an account of `vendor` has, in [`USERS`] order.
pub fn account_users(vendor: &str) -> Vec<AccountUser> {
    USERS
        .iter()
        .filter(|u| !u.absent_from.contains(&vendor))
        .map(|u| AccountUser {
            key: u.key,
            email: if u.upper_case_in.contains(&vendor) {
                u.email.to_uppercase()
            } else {
                u.email.to_owned()
            },
            first_name: u.first_name,
            last_name: u.last_name,
            active: !u.inactive_in.contains(&vendor),
        })
        .collect()
}

/// A stage of the seed's pipelines: what the data generator assigns deals to.
#[derive(Clone, Copy, Debug)]
pub struct SeedStage {
    /// The key vendors' stage tables name it by.
    pub key: &'static str,
    /// Open, won or lost.
    pub outcome: Outcome,
}

/// A pipeline of the seed: deals move through its stages in order.
#[derive(Clone, Copy, Debug)]
pub struct SeedPipeline {
    /// The key vendors' stage tables name it by.
    pub key: &'static str,
    /// Its stages, in order.
    pub stages: &'static [SeedStage],
}

const fn stage(key: &'static str, outcome: Outcome) -> SeedStage {
    SeedStage { key, outcome }
}

/// The seed's pipelines. Generated deals sit in every stage of every pipeline.
pub const PIPELINES: &[SeedPipeline] = &[
    SeedPipeline {
        key: "sales",
        stages: &[
            stage("new", Outcome::Open),
            stage("qualified", Outcome::Open),
            stage("proposal", Outcome::Open),
            stage("negotiation", Outcome::Open),
            stage("won", Outcome::Won),
            stage("lost", Outcome::Lost),
        ],
    },
    SeedPipeline {
        key: "renewals",
        stages: &[
            stage("due", Outcome::Open),
            stage("negotiation", Outcome::Open),
            stage("renewed", Outcome::Won),
            stage("churned", Outcome::Lost),
        ],
    },
];

/// Where an account of one vendor keeps one of the seed's stages: under which pipeline and stage
/// labels. Vendors whose stages do not say won or lost (Pipedrive, Dataverse keep a status
/// beside the stage) put a won or lost deal in the stage it closed in.
#[derive(Clone, Copy, Debug)]
pub struct StageLabel {
    /// The seed pipeline ([`SeedPipeline::key`]).
    pub seed_pipeline: &'static str,
    /// The seed stage ([`SeedStage::key`]).
    pub seed_stage: &'static str,
    /// The vendor account's pipeline label (one fixed label where the vendor has no pipelines).
    pub pipeline: &'static str,
    /// The vendor account's stage label.
    pub stage: &'static str,
}

/// A [`StageLabel`] row, for the vendors' tables.
pub const fn stage_label(
    seed_pipeline: &'static str,
    seed_stage: &'static str,
    pipeline: &'static str,
    stage: &'static str,
) -> StageLabel {
    StageLabel {
        seed_pipeline,
        seed_stage,
        pipeline,
        stage,
    }
}

/// The account's (pipeline label, stage label) for a seed stage, from a vendor's table.
pub fn vendor_stage(
    table: &'static [StageLabel],
    seed_pipeline: &str,
    seed_stage: &str,
) -> Option<&'static StageLabel> {
    table
        .iter()
        .find(|l| l.seed_pipeline == seed_pipeline && l.seed_stage == seed_stage)
}

/// The pipelines of a vendor's table, each with its stages, in first-seen order: what the
/// emulator's account is configured with. A stage label listed twice in one pipeline (two seed
/// stages kept in one vendor stage) appears once.
pub fn account_pipelines(table: &'static [StageLabel]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut pipelines: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for label in table {
        let at = match pipelines.iter().position(|(p, _)| *p == label.pipeline) {
            Some(at) => at,
            None => {
                pipelines.push((label.pipeline, Vec::new()));
                pipelines.len() - 1
            }
        };
        if !pipelines[at].1.contains(&label.stage) {
            pipelines[at].1.push(label.stage);
        }
    }
    pipelines
}

/// What an operator would write in `[mapping.deal_stages]` to carry the seed's deals from an
/// account with stage table `from` into one with `to`: `"pipeline/stage" = "pipeline/stage"`
/// for every source stage, the sink stage being where the sink's account keeps the same seed
/// stage (the first such, when the source keeps several seed stages in one of its stages).
pub fn stage_crosswalk(
    from: &'static [StageLabel],
    to: &'static [StageLabel],
) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for label in from {
        let key = format!("{}/{}", label.pipeline, label.stage);
        if pairs.iter().any(|(k, _)| *k == key) {
            continue;
        }
        if let Some(sink) = vendor_stage(to, label.seed_pipeline, label.seed_stage) {
            pairs.push((key, format!("{}/{}", sink.pipeline, sink.stage)));
        }
    }
    pairs
}

/// The crosswalk as ferry config text (`[mapping.deal_stages]` with one line per pair).
pub fn stage_crosswalk_config(pairs: &[(String, String)]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut text = String::from("[mapping.deal_stages]\n");
    for (a, b) in pairs {
        text.push_str(&format!("{} = {}\n", quote(a), quote(b)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_places_every_seed_stage() {
        for spec in crate::emulators() {
            for pipeline in PIPELINES {
                for stage in pipeline.stages {
                    assert!(
                        vendor_stage(spec.deal_stages, pipeline.key, stage.key).is_some(),
                        "{} has no stage for {}/{}",
                        spec.vendor,
                        pipeline.key,
                        stage.key
                    );
                }
            }
        }
    }

    #[test]
    fn accounts_differ_in_users() {
        let hubspot = account_users("hubspot");
        let pipedrive = account_users("pipedrive");
        assert!(
            hubspot.iter().all(|u| u.key != 5),
            "Farah is not in HubSpot"
        );
        assert!(pipedrive.iter().any(|u| u.key == 5));
        assert!(pipedrive.iter().all(|u| u.key != 7));
        assert!(!hubspot.iter().find(|u| u.key == 7).expect("Hana").active);
        let salesforce = account_users("salesforce");
        assert_eq!(salesforce[0].email, "ANA.GARCIA@FERRY-DEMO.EXAMPLE");
        assert!(USERS.iter().enumerate().all(|(i, u)| u.key == i));
    }

    #[test]
    fn crosswalk_maps_every_source_stage_once() {
        for from in crate::emulators() {
            for to in crate::emulators() {
                let pairs = stage_crosswalk(from.deal_stages, to.deal_stages);
                let stages: usize = account_pipelines(from.deal_stages)
                    .iter()
                    .map(|(_, s)| s.len())
                    .sum();
                assert_eq!(pairs.len(), stages, "{} → {}", from.vendor, to.vendor);
            }
        }
        let text = stage_crosswalk_config(&[("a/\"b\"".into(), "c/d".into())]);
        assert_eq!(text, "[mapping.deal_stages]\n\"a/\\\"b\\\"\" = \"c/d\"\n");
    }
}
