//! Pipeline stages: their ids are local to each account, so a deal's stage is carried by its
//! labels. Every source (pipeline, stage) is mapped to a sink (pipeline, stage) before anything
//! is written: an explicit `"pipeline/stage"` key of `[mapping.deal_stages]` first, then a bare
//! stage key, then the same labels (ignoring case and surrounding spaces). A source stage that
//! maps to no single sink stage, or a key that names no source stage, stops the run before it
//! reads or writes a record, with every such stage named (labels are the operator's metadata,
//! not customer data).

use std::collections::HashMap;
use std::fmt;

use crate::connector::{Pipeline, StageOutcome};

/// The operator's `[mapping.deal_stages]` table: keys and values as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageRules {
    /// `"source pipeline/source stage"` or `"source stage"` → `"sink stage"` or
    /// `"sink pipeline/sink stage"`.
    pub pairs: Vec<(String, String)>,
}

/// A label as stages are matched by: trimmed and lowercased.
pub fn normalise_label(label: &str) -> String {
    label.trim().to_lowercase()
}

/// Every way to read `text` as `pipeline/stage` (labels may hold a `/` themselves), each part
/// normalised.
fn splits(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.match_indices('/').map(|(at, _)| {
        (
            normalise_label(&text[..at]),
            normalise_label(&text[at + 1..]),
        )
    })
}

/// How a source stage found its sink stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchedBy {
    /// The `"pipeline/stage"` key of `[mapping.deal_stages]`, as written.
    PipelineKey(String),
    /// A bare stage key, as written.
    StageKey(String),
    /// The same labels on both sides.
    SameLabel,
}

impl fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchedBy::PipelineKey(key) => write!(f, "mapped by key {key:?}"),
            MatchedBy::StageKey(key) => write!(f, "mapped by stage key {key:?}"),
            MatchedBy::SameLabel => f.write_str("same label"),
        }
    }
}

/// One source stage and the sink stage it maps to, by labels (for `plan`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageMapping {
    /// The source pipeline's label.
    pub source_pipeline: String,
    /// The source stage's label.
    pub source_stage: String,
    /// The sink pipeline's label.
    pub sink_pipeline: String,
    /// The sink stage's label.
    pub sink_stage: String,
    /// How it was matched.
    pub matched_by: MatchedBy,
}

/// A source stage that maps to no single sink stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmappedStage {
    /// The source pipeline's label.
    pub pipeline: String,
    /// The source stage's label.
    pub stage: String,
    /// Why: no sink stage with that label, or several.
    pub why: String,
}

impl fmt::Display for UnmappedStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}/{}\" ({})", self.pipeline, self.stage, self.why)
    }
}

/// Source stage ids mapped to sink stage ids, built from both sides' pipelines and the
/// operator's rules ([`StageMap::build`]).
#[derive(Debug, Default)]
pub struct StageMap {
    /// (source pipeline id, source stage id) → (sink pipeline id, sink stage id).
    to_sink: HashMap<(String, String), (String, String)>,
    /// (sink pipeline id, sink stage id) → normalised (pipeline label, stage label).
    sink_labels: HashMap<(String, String), (String, String)>,
    /// (source pipeline id, source stage id) → whether the stage is open, won or lost.
    source_outcomes: HashMap<(String, String), StageOutcome>,
    /// (sink pipeline id, sink stage id) → whether the stage is open, won or lost.
    sink_outcomes: HashMap<(String, String), StageOutcome>,
    /// (sink pipeline id, won or lost) → the pipeline's first stage with that outcome.
    sink_closing: HashMap<(String, StageOutcome), String>,
    /// Every source stage mapped, in the source's order.
    pub mapped: Vec<StageMapping>,
    /// Every source stage not mapped, in the source's order.
    pub unmapped: Vec<UnmappedStage>,
    /// Keys of the rules that name no source stage, as written.
    pub unknown_keys: Vec<String>,
}

/// A sink stage found for a label, or why none.
enum Found<'a> {
    One(&'a Pipeline, usize),
    None(String),
    Several(String),
}

/// The stages of `pipeline` labelled `stage` (normalised).
fn stages_labelled<'a>(pipeline: &'a Pipeline, stage: &str) -> Vec<(&'a Pipeline, usize)> {
    pipeline
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| normalise_label(&s.label) == stage)
        .map(|(i, _)| (pipeline, i))
        .collect()
}

fn one_of<'a>(found: Vec<(&'a Pipeline, usize)>, what: String) -> Found<'a> {
    match found.as_slice() {
        [(pipeline, i)] => Found::One(pipeline, *i),
        [] => Found::None(format!("no sink stage {what}")),
        _ => Found::Several(format!("several sink stages {what}")),
    }
}

/// The sink stage labelled `stage` for a deal of source pipeline `pipeline` (both
/// normalised): in the sink pipeline with the same label, or in the sink's only pipeline;
/// with `anywhere` (an operator's value), else in whichever single sink pipeline has it.
fn find_in_sink<'a>(
    sink: &'a [Pipeline],
    pipeline: &str,
    stage: &str,
    anywhere: bool,
) -> Found<'a> {
    let same: Vec<&Pipeline> = sink
        .iter()
        .filter(|p| normalise_label(&p.label) == pipeline)
        .collect();
    match same.as_slice() {
        [one] => {
            let found = stages_labelled(one, stage);
            if !found.is_empty() || !anywhere {
                return one_of(
                    found,
                    format!("labelled {stage:?} in sink pipeline {pipeline:?}"),
                );
            }
        }
        [] => {}
        _ => return Found::Several(format!("several sink pipelines labelled {pipeline:?}")),
    }
    if let [only] = sink {
        return one_of(stages_labelled(only, stage), format!("labelled {stage:?}"));
    }
    if anywhere {
        let found: Vec<_> = sink
            .iter()
            .flat_map(|p| stages_labelled(p, stage))
            .collect();
        return one_of(found, format!("labelled {stage:?} in any sink pipeline"));
    }
    Found::None(format!(
        "no sink pipeline labelled {pipeline:?}; map the stage in [mapping.deal_stages]"
    ))
}

/// The sink stage an operator's value names: `"pipeline/stage"` when a sink pipeline and
/// stage have those labels, else a stage label (see [`find_in_sink`]).
fn find_value<'a>(sink: &'a [Pipeline], source_pipeline: &str, value: &str) -> Found<'a> {
    let qualified: Vec<(&Pipeline, usize)> = splits(value)
        .flat_map(|(p, s)| {
            sink.iter()
                .filter(move |pipeline| normalise_label(&pipeline.label) == p)
                .flat_map(move |pipeline| stages_labelled(pipeline, &s))
        })
        .collect();
    if !qualified.is_empty() {
        return one_of(qualified, format!("named {value:?}"));
    }
    find_in_sink(sink, source_pipeline, &normalise_label(value), true)
}

impl StageMap {
    /// Maps every stage of the `source` pipelines to one of the `sink` pipelines by `rules`.
    /// Never fails: what cannot be mapped is listed ([`StageMap::problem`] words it).
    pub fn build(rules: &StageRules, source: &[Pipeline], sink: &[Pipeline]) -> StageMap {
        let mut map = StageMap::default();
        for pipeline in source {
            for stage in &pipeline.stages {
                map.source_outcomes
                    .insert((pipeline.id.clone(), stage.id.clone()), stage.outcome);
            }
        }
        for pipeline in sink {
            for stage in &pipeline.stages {
                map.sink_outcomes
                    .insert((pipeline.id.clone(), stage.id.clone()), stage.outcome);
                if stage.outcome != StageOutcome::Open {
                    map.sink_closing
                        .entry((pipeline.id.clone(), stage.outcome))
                        .or_insert_with(|| stage.id.clone());
                }
                map.sink_labels.insert(
                    (pipeline.id.clone(), stage.id.clone()),
                    (
                        normalise_label(&pipeline.label),
                        normalise_label(&stage.label),
                    ),
                );
            }
        }
        let mut used = vec![false; rules.pairs.len()];
        for pipeline in source {
            let p = normalise_label(&pipeline.label);
            for stage in &pipeline.stages {
                let s = normalise_label(&stage.label);
                let by_pipeline = rules
                    .pairs
                    .iter()
                    .position(|(key, _)| splits(key).any(|(kp, ks)| kp == p && ks == s));
                let by_stage = || {
                    rules
                        .pairs
                        .iter()
                        .position(|(key, _)| normalise_label(key) == s)
                };
                let (found, matched_by) = match by_pipeline
                    .map(|i| (i, true))
                    .or_else(|| by_stage().map(|i| (i, false)))
                {
                    Some((i, qualified)) => {
                        used[i] = true;
                        let (key, value) = &rules.pairs[i];
                        let found = match find_value(sink, &p, value) {
                            Found::None(why) => Found::None(format!("key {key:?}: {why}")),
                            Found::Several(why) => Found::Several(format!("key {key:?}: {why}")),
                            found => found,
                        };
                        let by = if qualified {
                            MatchedBy::PipelineKey(key.clone())
                        } else {
                            MatchedBy::StageKey(key.clone())
                        };
                        (found, by)
                    }
                    None => (find_in_sink(sink, &p, &s, false), MatchedBy::SameLabel),
                };
                match found {
                    Found::One(sink_pipeline, i) => {
                        let sink_stage = &sink_pipeline.stages[i];
                        map.to_sink.insert(
                            (pipeline.id.clone(), stage.id.clone()),
                            (sink_pipeline.id.clone(), sink_stage.id.clone()),
                        );
                        map.mapped.push(StageMapping {
                            source_pipeline: pipeline.label.clone(),
                            source_stage: stage.label.clone(),
                            sink_pipeline: sink_pipeline.label.clone(),
                            sink_stage: sink_stage.label.clone(),
                            matched_by,
                        });
                    }
                    Found::None(why) | Found::Several(why) => map.unmapped.push(UnmappedStage {
                        pipeline: pipeline.label.clone(),
                        stage: stage.label.clone(),
                        why,
                    }),
                }
            }
        }
        map.unknown_keys = rules
            .pairs
            .iter()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|((key, _), _)| key.clone())
            .collect();
        map
    }

    /// Why a run must not start with this map, naming every unmapped source stage and every
    /// key that names no source stage; `None` when every stage is mapped.
    pub fn problem(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.unmapped.is_empty() {
            parts.push(format!(
                "{} of the source map to no single sink stage: {}; map {} in [mapping.deal_stages] \
                 (\"source pipeline/source stage\" = \"sink stage\"), or leave deals out of \
                 migration.objects",
                crate::report::count(self.unmapped.len() as u64, "stage", "stages"),
                self.unmapped
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                if self.unmapped.len() == 1 {
                    "it"
                } else {
                    "them"
                }
            ));
        }
        for key in &self.unknown_keys {
            parts.push(format!(
                "config key `mapping.deal_stages.{key:?}` names no source stage (keys are \
                 \"pipeline/stage\" or a stage label, matched ignoring case)"
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The sink's (pipeline id, stage id) for the source's; `None` for a stage the source's
    /// definitions do not have.
    pub fn to_sink(&self, pipeline: &str, stage: &str) -> Option<&(String, String)> {
        self.to_sink.get(&(pipeline.to_owned(), stage.to_owned()))
    }

    /// Whether a source stage is open, won or lost; `None` for a stage the source's
    /// definitions do not have.
    pub fn source_outcome(&self, pipeline: &str, stage: &str) -> Option<StageOutcome> {
        self.source_outcomes
            .get(&(pipeline.to_owned(), stage.to_owned()))
            .copied()
    }

    /// The sink stage a deal mapped to `(pipeline, stage)` goes to when it is closed with
    /// `outcome`: the mapped stage itself when it already says so or when the sink pipeline
    /// has no stage for that outcome (Pipedrive and Dataverse keep won and lost in a status
    /// beside the stage), else the pipeline's first stage with that outcome (a deal won in
    /// Pipedrive's "Negotiations Started" arrives in HubSpot's "Closed Won").
    pub fn closing_stage<'a>(
        &'a self,
        pipeline: &'a str,
        stage: &'a str,
        outcome: StageOutcome,
    ) -> (&'a str, &'a str) {
        let current = self
            .sink_outcomes
            .get(&(pipeline.to_owned(), stage.to_owned()))
            .copied();
        if outcome == StageOutcome::Open || current == Some(outcome) {
            return (pipeline, stage);
        }
        match self.sink_closing.get(&(pipeline.to_owned(), outcome)) {
            Some(closing) => (pipeline, closing),
            None => (pipeline, stage),
        }
    }

    /// The normalised (pipeline label, stage label) of a sink stage, what a stage is hashed
    /// as; `None` for a stage the sink's definitions do not have.
    pub fn sink_labels(&self, pipeline: &str, stage: &str) -> Option<&(String, String)> {
        self.sink_labels
            .get(&(pipeline.to_owned(), stage.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::PipelineStage;

    fn pipeline(id: &str, label: &str, stages: &[(&str, &str)]) -> Pipeline {
        Pipeline {
            id: id.into(),
            label: label.into(),
            stages: stages
                .iter()
                .map(|(id, label)| PipelineStage {
                    id: (*id).into(),
                    label: (*label).into(),
                    outcome: StageOutcome::Open,
                })
                .collect(),
        }
    }

    fn rules(pairs: &[(&str, &str)]) -> StageRules {
        StageRules {
            pairs: pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn hubspot() -> Vec<Pipeline> {
        vec![
            pipeline(
                "default",
                "Sales Pipeline",
                &[
                    ("appointmentscheduled", "Appointment Scheduled"),
                    ("qualifiedtobuy", " qualified to buy "),
                    ("closedwon", "Closed Won"),
                ],
            ),
            pipeline(
                "p2",
                "Renewals",
                &[("r1", "Up for renewal"), ("r2", "Closed Won")],
            ),
        ]
    }

    /// Salesforce: one pipeline, stage ids are their labels.
    fn salesforce() -> Vec<Pipeline> {
        vec![pipeline(
            "Opportunity",
            "Opportunity",
            &[
                ("Prospecting", "Prospecting"),
                ("Qualified To Buy", "Qualified To Buy"),
                ("Closed Won", "Closed Won"),
                ("Renewal", "Renewal"),
            ],
        )]
    }

    #[test]
    fn a_single_sink_pipeline_takes_stages_by_label_and_keys_map_the_rest() {
        let map = StageMap::build(
            &rules(&[
                ("Sales Pipeline/Appointment Scheduled", "Prospecting"),
                (" up FOR renewal ", "renewal"),
            ]),
            &hubspot(),
            &salesforce(),
        );
        assert_eq!(map.problem(), None, "{map:?}");
        let sink = |p: &str, s: &str| map.to_sink(p, s).cloned();
        let sf = |s: &str| Some(("Opportunity".to_owned(), s.to_owned()));
        assert_eq!(sink("default", "appointmentscheduled"), sf("Prospecting"));
        // Case and surrounding spaces do not matter.
        assert_eq!(sink("default", "qualifiedtobuy"), sf("Qualified To Buy"));
        assert_eq!(sink("default", "closedwon"), sf("Closed Won"));
        assert_eq!(sink("p2", "r1"), sf("Renewal"));
        assert_eq!(sink("p2", "r2"), sf("Closed Won"));
        assert_eq!(sink("p2", "nope"), None);
        let how: Vec<&MatchedBy> = map.mapped.iter().map(|m| &m.matched_by).collect();
        assert_eq!(
            how[0],
            &MatchedBy::PipelineKey("Sales Pipeline/Appointment Scheduled".into())
        );
        assert_eq!(how[1], &MatchedBy::SameLabel);
        assert_eq!(how[3], &MatchedBy::StageKey(" up FOR renewal ".into()));
        assert_eq!(
            map.sink_labels("Opportunity", "Closed Won"),
            Some(&("opportunity".to_owned(), "closed won".to_owned()))
        );
    }

    #[test]
    fn every_unmapped_stage_is_named_and_a_key_naming_no_source_stage_is_an_error() {
        let map = StageMap::build(
            &rules(&[("Sales Pipeline/Closed Wonn", "Closed Won")]),
            &hubspot(),
            &salesforce(),
        );
        let problem = map.problem().unwrap();
        for named in [
            "\"Sales Pipeline/Appointment Scheduled\"",
            "\"Renewals/Up for renewal\"",
            "`mapping.deal_stages.\"Sales Pipeline/Closed Wonn\"`",
        ] {
            assert!(problem.contains(named), "{named} in {problem}");
        }
        assert!(problem.starts_with("2 stages of the source"), "{problem}");
        assert_eq!(map.unknown_keys, ["Sales Pipeline/Closed Wonn"]);
    }

    #[test]
    fn pipeline_keys_win_over_bare_keys_and_values_may_pick_a_sink_pipeline() {
        let sink = vec![
            pipeline("a", "Sales Pipeline", &[("a1", "Won"), ("a2", "New")]),
            pipeline("b", "Renewals", &[("b1", "Won"), ("b2", "New")]),
        ];
        let map = StageMap::build(
            &rules(&[
                ("Closed Won", "Won"),
                ("Renewals/Closed Won", "Sales Pipeline/Won"),
                ("appointment scheduled", "new"),
                ("qualified to buy", "new"),
                ("up for renewal", "Renewals / New"),
            ]),
            &hubspot(),
            &sink,
        );
        assert_eq!(map.problem(), None, "{map:?}");
        // The bare value resolves in the sink pipeline with the source pipeline's label.
        assert_eq!(map.to_sink("default", "closedwon").unwrap().1, "a1");
        // The pipeline key wins over the bare one, and its value picks the sink pipeline.
        assert_eq!(map.to_sink("p2", "r2").unwrap().1, "a1");
        assert_eq!(map.to_sink("p2", "r1").unwrap().1, "b2");
    }

    #[test]
    fn ambiguous_sink_stages_are_unmapped_not_guessed() {
        let sink = vec![
            pipeline("a", "A", &[("a1", "Closed Won")]),
            pipeline("b", "B", &[("b1", "Closed Won"), ("b2", "closed won ")]),
        ];
        // Several sink pipelines and none with the source's label: same labels do not guess.
        let map = StageMap::build(&StageRules::default(), &hubspot(), &sink);
        assert_eq!(map.mapped, vec![]);
        assert_eq!(map.unmapped.len(), 5);
        assert!(map.unmapped[0].why.contains("no sink pipeline labelled"));
        // A bare value found in several sink pipelines, or twice in one, is ambiguous.
        let map = StageMap::build(&rules(&[("Closed Won", "Closed Won")]), &hubspot(), &sink);
        assert!(
            map.unmapped[2].why.contains("several sink stages"),
            "{map:?}"
        );
        let map = StageMap::build(&rules(&[("Closed Won", "B/Closed Won")]), &hubspot(), &sink);
        assert!(
            map.unmapped[2].why.contains("several sink stages"),
            "{map:?}"
        );
        let map = StageMap::build(&rules(&[("Closed Won", "A/Closed Won")]), &hubspot(), &sink);
        assert_eq!(map.to_sink("default", "closedwon").unwrap().1, "a1");
        assert_eq!(map.to_sink("p2", "r2").unwrap().1, "a1");
    }

    #[test]
    fn a_closed_deal_goes_to_the_sink_pipelines_stage_for_its_outcome() {
        let source = vec![pipeline("p", "Pipeline", &[("1", "Negotiations Started")])];
        let mut sink = vec![pipeline(
            "default",
            "Pipeline",
            &[("n", "Negotiations Started")],
        )];
        sink[0].stages.push(PipelineStage {
            id: "won".into(),
            label: "Closed Won".into(),
            outcome: StageOutcome::Won,
        });
        let map = StageMap::build(&StageRules::default(), &source, &sink);
        assert!(map.problem().is_none(), "{:?}", map.problem());
        let (p, s) = map.to_sink("p", "1").expect("mapped").clone();
        assert_eq!(
            map.closing_stage(&p, &s, StageOutcome::Open),
            ("default", "n")
        );
        assert_eq!(
            map.closing_stage(&p, &s, StageOutcome::Won),
            ("default", "won")
        );
        // No lost stage in the sink pipeline: the status beside the stage carries it.
        assert_eq!(
            map.closing_stage(&p, &s, StageOutcome::Lost),
            ("default", "n")
        );
        assert_eq!(map.source_outcome("p", "1"), Some(StageOutcome::Open));
    }
}
