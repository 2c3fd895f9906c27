//! The pipeline: read → check → write → read back → compare, as tokio tasks joined by bounded
//! channels.
//!
//! Memory is bounded by the channels and the number of batches in flight, never by the size of
//! the data set: a slow sink makes the reader wait (backpressure) instead of piling records up.
//! Object types run one after another, each after the objects it refers to (the schema's
//! reference edges, `model::write_order`), so that a contact's company is already in the sink
//! when the contact is written, and each reference is checked against the ids of its target
//! object read earlier in the run.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::checkpoint::{CheckpointFile, ObjectCheckpoint};

use crate::checksum::{Projection, record_digest};
use crate::connector::{Capability, Sink, Source};
use crate::directory::Directory;
use crate::duplicates::{Merge, MergePlan, MergePlanner, MergePlans, Merger, Rank, Taken};
use crate::error::{ConnectorError, ConnectorResult};
use crate::model::{ObjectType, Record, Value, field};
use crate::quality::{
    Action, DuplicateMatching, Duplicates, KnownIds, QualityChecker, QualityRules,
};
use crate::report::{
    ErrorKind, Failure, HttpReport, ObjectProgress, ObjectReport, Outcome, Progress, Report, Stage,
};

/// Why an object's run stopped: a connector's error, or a fault of the engine itself (the
/// checkpoint could not be saved, a task died), told apart so the report keeps whose fault it was.
#[derive(Debug, thiserror::Error)]
enum StageError {
    /// A source's or sink's error.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// ferry's own fault.
    #[error("ferry: {0}")]
    Internal(String),
}

impl StageError {
    fn kind(&self) -> ErrorKind {
        match self {
            StageError::Connector(e) => e.kind(),
            StageError::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// The result of a pipeline stage.
type StageResult<T> = Result<T, StageError>;

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Read the source, write the sink, read back and compare.
    Migrate,
    /// Read the source and the sink and compare, writing nothing.
    Verify,
    /// Read the source and apply every check a migration applies before writing (quality,
    /// dangerous data, duplicates, consent, owners, stages), writing nothing and reading
    /// nothing back: `ferry plan`'s whole-source check. What would stop a migration before it
    /// writes is listed in [`crate::Report::blocked`] instead of stopping this run.
    Check,
}

/// How a run is carried out.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The object types to move, run in this order: each after the objects it refers to
    /// ([`crate::model::write_order`] gives it).
    pub objects: Vec<ObjectType>,
    /// Sink batches (writes and read-backs each) in flight at once.
    pub batches_in_flight: usize,
    /// The data-quality rules: bad emails, missing required fields, dangling references, size.
    pub quality: QualityRules,
    /// Where progress is saved, and resumed from (migrations only).
    pub checkpoint: Option<Arc<CheckpointFile>>,
    /// Becomes `true` when the run must stop: no new page is read, no new batch is written,
    /// and the batches the sink was already sent are answered and verified.
    pub stop: Option<watch::Receiver<bool>>,
    /// Per object, the picklist labels carried from the source's list into the sink's
    /// (`fieldplan`): applied to each record before it is checked and hashed.
    pub value_maps: std::collections::BTreeMap<ObjectType, Vec<crate::fieldplan::ValueMap>>,
    /// How owners and stages are mapped (`[mapping.owners]`, `[mapping.deal_stages]`): applied
    /// when the sink stores an owner or stage field of the run ([`crate::directory`]).
    pub directory: crate::directory::DirectoryRules,
    /// `ferry sync`'s state (migrations only): each object is read from its watermark (in full
    /// when it has none), and its watermark moves once every record it read settled.
    pub sync: Option<Arc<crate::sync::StateFile>>,
    /// `ferry sync` only: what is done with records deleted in the source.
    pub deletes: crate::deletions::DeletePolicy,
    /// Opt-outs the operator accepts to lose where the sink cannot hold them (`[consent]`).
    pub consent: crate::consent::ConsentPolicy,
    /// The source's fields per object, when the caller already read them
    /// ([`Source::describe`]): the consent guard then does not ask again.
    pub source_fields: std::collections::BTreeMap<ObjectType, Vec<crate::fields::VendorField>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            objects: ObjectType::DEFAULT_RUN.to_vec(),
            batches_in_flight: 4,
            quality: QualityRules::default(),
            checkpoint: None,
            stop: None,
            value_maps: Default::default(),
            directory: Default::default(),
            sync: None,
            deletes: Default::default(),
            consent: Default::default(),
            source_fields: Default::default(),
        }
    }
}

/// Records on their way through the stages, each with the sequence number of the source page
/// it came from (to know when a page is settled).
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    pages: Vec<u64>,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Which source pages are fully settled, in order, for the checkpoint. Pages settle out of
/// order (batches run concurrently); the resume point only moves over a settled prefix.
#[derive(Default)]
struct Ledger {
    pages: VecDeque<PageState>,
    first_seq: u64,
    /// Records settled in this run's settled prefix, plus those of earlier runs.
    settled: u64,
    resume_cursor: Option<String>,
    done: bool,
}

#[derive(Default)]
struct PageState {
    outstanding: u64,
    total: u64,
    closed: bool,
    next: Option<String>,
}

impl Ledger {
    fn open(&mut self) -> u64 {
        self.pages.push_back(PageState::default());
        self.first_seq + self.pages.len() as u64 - 1
    }

    fn page(&mut self, seq: u64) -> Option<&mut PageState> {
        let index = seq.checked_sub(self.first_seq)?;
        self.pages.get_mut(usize::try_from(index).ok()?)
    }

    /// Whether the resume point moved.
    fn advance(&mut self) -> bool {
        let mut moved = false;
        while self
            .pages
            .front()
            .is_some_and(|p| p.closed && p.outstanding == 0)
        {
            if let Some(page) = self.pages.pop_front() {
                self.first_seq += 1;
                self.settled += page.total;
                self.done = page.next.is_none();
                self.resume_cursor = page.next;
                moved = true;
            }
        }
        moved
    }
}

/// Everything the stages of one object share.
struct Shared {
    object: ObjectType,
    /// What the sink does with the object, asked once before the run.
    capability: Capability,
    projection: Projection,
    tally: Mutex<Tally>,
    ledger: Mutex<Ledger>,
    checkpoint: Option<Arc<CheckpointFile>>,
    interrupted: AtomicBool,
    /// Hashes of the source ids read, kept for parent objects (companies) so that children's
    /// references can be checked; `None` for other objects.
    ids_read: Option<Mutex<crate::quality::HashSeen>>,
    /// Owners and stages from the source's ids to the sink's, and their digest form.
    directory: Arc<Directory>,
    /// The sink's name, for the consent guard's messages.
    sink: &'static str,
    /// Opt-outs the operator accepts to lose.
    consent: crate::consent::ConsentPolicy,
    /// The email domain check, shared by the run's objects (`None`: off).
    mx: Option<Arc<crate::mx::MxChecker>>,
    /// `sync`, incremental reads: the records the last sync wrote that this read may repeat,
    /// and those this run keeps for the next.
    unchanged: Option<Unchanged>,
}

/// The digests of records a sync reads again through its overlap with the last one: a record
/// whose digest equals the one the last sync wrote and verified is not written again.
struct Unchanged {
    /// By source id, the digests the last settled sync kept.
    previous: std::collections::BTreeMap<String, crate::sync::RecordHash>,
    /// The sync point of this read: records modified at or after it are read again by the
    /// next sync, so their digests are kept for it.
    from_ms: i64,
    /// The digests this run keeps for the next sync: records verified, or found unchanged,
    /// and modified at or after `from_ms`.
    kept: Mutex<std::collections::BTreeMap<String, crate::sync::RecordHash>>,
    /// Ids of `previous` read with another digest and sent to the sink: what the sink holds of
    /// them is no longer what `previous` says, unless this run verified it.
    changed: Mutex<Vec<String>>,
}

impl Unchanged {
    /// The digests the next sync compares with. Once the object settled, this run's. Else its
    /// watermark stays and the next sync reads the same records again: the last sync's
    /// digests, less those of records sent to the sink since, plus those this run verified.
    fn for_next_sync(
        &self,
        settled: bool,
    ) -> std::collections::BTreeMap<String, crate::sync::RecordHash> {
        let kept = std::mem::take(&mut *self.kept.lock().unwrap_or_else(PoisonError::into_inner));
        if settled {
            return kept;
        }
        let mut digests = self.previous.clone();
        for id in self
            .changed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            digests.remove(id);
        }
        digests.extend(kept);
        digests
    }

    /// Keeps `record`'s digest for the next sync if that sync's read repeats it. A record with
    /// no modified time is not kept (and so never skipped).
    fn keep(&self, record: &Record, digest: &crate::checksum::Digest) {
        let repeated = matches!(
            record.get(crate::model::field::UPDATED_AT),
            Some(Value::Timestamp(ms)) if *ms >= self.from_ms
        );
        if repeated {
            self.kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    record.source_id.clone(),
                    crate::sync::RecordHash::of(digest),
                );
        }
    }
}

/// What the stages found, gathered as they go so a failed run still reports what it did.
#[derive(Default)]
struct Tally {
    report: ObjectReport,
    failures: Vec<Failure>,
    warnings: Vec<Failure>,
    /// Records read back from the sink by source id (verified or not): what the sink's own
    /// count of records with a source id is compared with.
    found_in_sink: u64,
}

impl Shared {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        // A panic in another stage is reported as such; the tally itself stays usable.
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `n` records of page `seq` settled, moving the checkpoint when a prefix of pages is.
    fn settle(&self, seq: u64, n: u64) -> StageResult<()> {
        let mut ledger = self.ledger();
        if let Some(page) = ledger.page(seq) {
            page.outstanding = page.outstanding.saturating_sub(n);
        }
        self.after_change(ledger)
    }

    /// A record of page `seq` goes downstream; it is outstanding until settled. Counted before
    /// it is sent, since a later stage may settle it before the page is closed.
    fn sent_downstream(&self, seq: u64) {
        if let Some(page) = self.ledger().page(seq) {
            page.outstanding += 1;
        }
    }

    /// Page `seq` has been read whole: `downstream` records went on, `settled_now` were settled
    /// at once (failed checks), and `next` is the cursor after it.
    fn close_page(
        &self,
        seq: u64,
        downstream: u64,
        settled_now: u64,
        next: Option<String>,
    ) -> StageResult<()> {
        let mut ledger = self.ledger();
        if let Some(page) = ledger.page(seq) {
            page.total = downstream + settled_now;
            page.closed = true;
            page.next = next;
        }
        self.after_change(ledger)
    }

    fn after_change(&self, mut ledger: std::sync::MutexGuard<'_, Ledger>) -> StageResult<()> {
        if !ledger.advance() {
            return Ok(());
        }
        let Some(checkpoint) = &self.checkpoint else {
            return Ok(());
        };
        let progress = ObjectCheckpoint {
            done: ledger.done,
            resume_cursor: ledger.resume_cursor.clone(),
            settled: ledger.settled,
        };
        drop(ledger);
        checkpoint
            .record(self.object, progress)
            .map_err(|e| StageError::Internal(format!("cannot save progress: {e}")))
    }

    fn failure(&self, source_id: &str, stage: Stage, code: &str, reason: String) -> Failure {
        Failure {
            object: self.object,
            source_id: source_id.to_owned(),
            stage,
            code: code.to_owned(),
            reason,
        }
    }
}

/// Runs `mode` for every object in `options`, updating `progress` as it goes. Never panics on
/// connector errors: a fatal one ends the run and is recorded in the report with what was done.
pub async fn run(
    mode: Mode,
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    options: &RunOptions,
    progress: Arc<Progress>,
) -> Report {
    let started = Instant::now();
    let mut report = Report {
        command: match mode {
            Mode::Migrate => "migrate",
            Mode::Verify => "verify",
            Mode::Check => "plan",
        },
        source: source.vendor(),
        sink: sink.vendor(),
        outcome: Outcome::Failed,
        error: None,
        error_kind: None,
        objects: Vec::new(),
        failures: Vec::new(),
        warnings: Vec::new(),
        source_http: HttpReport::default(),
        sink_http: HttpReport::default(),
        elapsed_ms: 0,
        interrupted: false,
        checkpoint: None,
        checkpoint_saved: false,
        fields_created: Vec::new(),
        owners_unmatched: Vec::new(),
        blocked: Vec::new(),
        stopped: None,
        daily_quota: None,
    };
    let checkpoint = options
        .checkpoint
        .as_ref()
        .filter(|_| mode == Mode::Migrate);
    report.checkpoint = checkpoint.map(|c| c.path().display().to_string());
    let fallback = ObjectProgress::default();
    // Source ids of the objects read in full in this run, by object: the references to them
    // are checked against these. An object not read whole (e.g. after a resume) is absent.
    let mut known_parents = KnownIds::new();
    // Parents the sink refused in this run: their children's references would point at nothing.
    let mut refused_parents = KnownIds::new();
    // The objects some object of this run refers to (the schema's reference edges): their ids
    // are kept for the references' check.
    let referenced: Vec<ObjectType> = options
        .objects
        .iter()
        .flat_map(|object| {
            object
                .references()
                .flat_map(|edge| edge.targets.iter().copied())
        })
        .collect();
    // What the sink does with each object, asked before anything is read: an object the sink
    // has no binding for stops the run here, not after its parents were written.
    let mut capabilities = Vec::with_capacity(options.objects.len());
    for &object in &options.objects {
        // A sink that writes (and reads back) a large object differently is told its size
        // first; not in a sync, whose incremental read holds fewer records than the count.
        let sized = matches!(mode, Mode::Migrate | Mode::Verify) && options.sync.is_none();
        if sized
            && sink.wants_size(object)
            && let Ok(Some(n)) = source.count(object).await
        {
            sink.expect(object, n);
        }
        match survey_capability(sink.as_ref(), object).await {
            Ok(capability) => capabilities.push(capability),
            Err(e) => {
                report.fail(e.kind(), e.to_string());
                report.elapsed_ms = started.elapsed().as_millis() as u64;
                report.settle_outcome();
                return report;
            }
        }
    }
    // Consent before anything is read or written: an opt-out some source record holds that the
    // sink cannot hold refuses the run (exit 2), naming each and the ways on.
    if mode != Mode::Verify {
        let objects: Vec<(ObjectType, &Capability)> =
            options.objects.iter().copied().zip(&capabilities).collect();
        let unheld = unheld_opt_outs(source.as_ref(), &objects, options).await;
        let refusal = match &unheld {
            Ok(unheld) if unheld.is_empty() => None,
            Ok(unheld) => Some((
                ErrorKind::Config,
                crate::consent::refusal(unheld, source.vendor(), sink.vendor()),
            )),
            Err(e) => Some((e.kind(), e.to_string())),
        };
        if let (Mode::Check, Some((ErrorKind::Config, message))) = (mode, &refusal) {
            report.blocked.push(message.clone());
        } else if let Some((kind, message)) = refusal {
            tracing::error!(%kind, "run refused before writing: consent");
            report.fail(kind, message);
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            report.settle_outcome();
            return report;
        }
    }
    // Users and pipelines, read and mapped before any record: an unmapped stage or an owner
    // rule naming no sink user stops the run here, before anything is written.
    let needs: Vec<(ObjectType, &Capability)> =
        options.objects.iter().copied().zip(&capabilities).collect();
    let directory = Directory::read(source.as_ref(), sink.as_ref(), &needs, &options.directory)
        .await
        .and_then(|directory| match directory.problem() {
            None => Ok(directory),
            // A check goes on with the stages that map, so the rest is checked too.
            Some(problem) if mode == Mode::Check => {
                report.blocked.push(problem.to_string());
                Ok(directory)
            }
            Some(problem) => Err(problem),
        });
    let directory = match directory {
        Ok(directory) => Arc::new(directory),
        Err(e) => {
            tracing::error!(error = %e, kind = %e.kind(), "run refused before reading");
            report.fail(e.kind(), e.to_string());
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            report.settle_outcome();
            return report;
        }
    };
    // One checker for the whole run: each domain is asked once, whichever object holds it.
    let mx = match options
        .quality
        .email_mx
        .clone()
        .map(crate::mx::MxChecker::new)
    {
        None => None,
        Some(Ok(mx)) => Some(Arc::new(mx)),
        Some(Err(e)) => {
            report.fail(ErrorKind::Config, e.to_string());
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            report.settle_outcome();
            return report;
        }
    };
    let syncing = mode == Mode::Migrate;
    let batch_sizes: HashMap<ObjectType, usize> = options
        .objects
        .iter()
        .copied()
        .zip(capabilities.iter().map(|c| c.batch_size))
        .collect();
    // Deletions are learnt and counted before anything is written, so that a mass delete is
    // refused with the sink untouched.
    let removing = match (syncing, options.sync.as_ref(), options.deletes.removal) {
        (true, Some(state), Some(how)) => {
            let objects: Vec<(ObjectType, usize)> = options
                .objects
                .iter()
                .copied()
                .zip(capabilities.iter().map(|c| c.read_back_size))
                .collect();
            let detected =
                crate::deletions::detect(source.as_ref(), sink.as_ref(), state, &objects, how)
                    .await;
            let refusal = match &detected {
                Ok(d) => crate::deletions::refusal(d, &options.deletes)
                    .map(|message| (ErrorKind::MassDelete, message)),
                Err(e) => Some((e.kind(), e.to_string())),
            };
            if let Some((kind, message)) = refusal {
                tracing::error!(%kind, "sync refused before writing");
                report.fail(kind, message);
                report.elapsed_ms = started.elapsed().as_millis() as u64;
                report.settle_outcome();
                return report;
            }
            detected.ok().map(|d| (Arc::clone(state), how, d))
        }
        _ => None,
    };
    // The merges of the objects run so far: later objects' references follow them.
    let mut merges = MergePlans::new();
    for (&object, capability) in options.objects.iter().zip(capabilities) {
        let counters = progress.of(object).unwrap_or(&fallback);
        // From here: a merge's planning read is part of the object's time and requests.
        let object_started = Instant::now();
        let http_before = (
            http_report(source.http_stats()),
            http_report(sink.http_stats()),
        );
        let mut earlier = checkpoint.map(|c| c.object(object)).unwrap_or_default();
        let projection = Projection::new(capability.stored.iter().cloned());
        // Duplicates are merged by a plan of the whole object, read first: also when the
        // object finished in an earlier run, since its children's references follow the plan.
        let merging =
            options.quality.duplicates == Duplicates::Merge && object.field(field::EMAIL).is_some();
        if merging {
            match plan_merges(&source, object, &projection, options).await {
                Ok(Some(plan)) => {
                    merges.insert(object, Arc::new(plan));
                }
                Ok(None) => {
                    report.interrupted = true;
                    break;
                }
                Err(e) => {
                    tracing::error!(object = %object, error = %e, kind = %e.kind(), "cannot plan the merges");
                    report.fail(e.kind(), e.to_string());
                    break;
                }
            }
            // A survivor needs its whole cluster: an object stopped half-way is read again
            // from its start (writes are upserts by source id, so nothing is written twice).
            if !earlier.done {
                earlier = Default::default();
            }
        }
        counters
            .already_done
            .store(earlier.settled, Ordering::Relaxed);
        let mut object_report = ObjectReport {
            object: Some(object),
            already_done: earlier.settled,
            ..ObjectReport::default()
        };
        if earlier.done {
            counters.done.store(true, Ordering::Relaxed);
            tracing::info!(object = %object, settled = earlier.settled, "finished in an earlier run");
            object_report.digests_match = true;
            report.objects.push(object_report);
            continue;
        }
        // A sync takes the source's sync point before reading: the watermark moves there once
        // every record read has settled, never past a change this read may have missed.
        let sync = match (syncing, options.sync.as_ref()) {
            (true, Some(state)) => match source.sync_point(object).await {
                Ok(point) => Some((Arc::clone(state), state.since(object), point)),
                Err(e) => {
                    tracing::error!(object = %object, error = %e, kind = %e.kind(), "no sync point");
                    report.fail(e.kind(), e.to_string());
                    break;
                }
            },
            _ => None,
        };
        // A merged object is read whole: a changed record's cluster may hold unchanged ones.
        let since = sync
            .as_ref()
            .and_then(|(_, since, _)| since.clone())
            .filter(|_| !merging);
        // Only an incremental read skips unchanged records: a full read counts the sink's
        // records against those it read back, and a skipped record is not read back.
        let unchanged = sync.as_ref().map(|(state, _, point)| Unchanged {
            previous: match since {
                Some(_) => state.digests(object),
                None => Default::default(),
            },
            from_ms: point.at_ms,
            kept: Mutex::default(),
            changed: Mutex::default(),
        });
        let shared = Arc::new(Shared {
            object,
            projection,
            capability,
            tally: Mutex::new(Tally {
                report: object_report,
                ..Tally::default()
            }),
            ledger: Mutex::new(Ledger {
                settled: earlier.settled,
                resume_cursor: earlier.resume_cursor.clone(),
                ..Ledger::default()
            }),
            checkpoint: checkpoint.cloned(),
            interrupted: AtomicBool::new(false),
            ids_read: (referenced.contains(&object) && earlier.resume_cursor.is_none())
                .then(|| Mutex::new(crate::quality::HashSeen::default())),
            directory: Arc::clone(&directory),
            sink: sink.vendor(),
            consent: options.consent.clone(),
            mx: mx.clone(),
            unchanged,
        });
        if earlier.resume_cursor.is_some() {
            tracing::info!(object = %object, settled = earlier.settled, "resuming from the checkpoint");
        }
        let parents: KnownIds = object
            .references()
            .flat_map(|edge| edge.targets.iter())
            .filter_map(|target| Some((*target, Arc::clone(known_parents.get(target)?))))
            .collect();
        let refused: KnownIds = object
            .references()
            .flat_map(|edge| edge.targets.iter())
            .filter_map(|target| Some((*target, Arc::clone(refused_parents.get(target)?))))
            .collect();
        let resume = earlier.resume_cursor;
        let read_whole = resume.is_none() && earlier.settled == 0 && since.is_none();
        let result = run_object(
            mode,
            &source,
            &sink,
            options,
            (resume, since.clone(), parents, refused, merges.clone()),
            read_whole && mode != Mode::Check,
            &shared,
            counters,
        )
        .await;
        let finished = result.is_ok() && !shared.interrupted.load(Ordering::Relaxed);
        let result = match result {
            Ok(Some(in_sink)) if finished => count_extras(in_sink, &shared),
            other => other.map(|_| ()),
        };
        // Only an object read whole names every parent: after a resume or an incremental
        // read, children's references are not checked against the few ids read (the sink
        // holds the parents of earlier runs).
        if finished
            && read_whole
            && let Some(ids) = &shared.ids_read
        {
            let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(PoisonError::into_inner));
            known_parents.insert(object, Arc::new(ids));
        }
        counters
            .done
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut tally = std::mem::take(&mut *shared.tally());
        if referenced.contains(&object) {
            let mut refused = crate::quality::HashSeen::default();
            // Refused before or at the write: not in the sink. (A record failing verification
            // was written, and its children may refer to it.)
            let unwritten = tally
                .failures
                .iter()
                .filter(|f| f.object == object && f.stage != crate::report::Stage::Verify);
            for f in unwritten {
                refused.insert(crate::quality::id_hash(&f.source_id));
            }
            refused_parents.insert(object, Arc::new(refused));
        }
        let r = &mut tally.report;
        r.elapsed_ms = object_started.elapsed().as_millis() as u64;
        r.source_http = http_report(source.http_stats()).since(&http_before.0);
        r.sink_http = http_report(sink.http_stats()).since(&http_before.1);
        r.digests_match =
            r.sent_digest == r.read_back_digest && r.verified == r.sent_digest.count();
        // Records read but not settled: `migrate` settles a record when it is written or
        // fails; `verify` writes nothing and settles a record when it is compared.
        let settled = match mode {
            Mode::Migrate => r.written + r.failed + r.skipped + r.unchanged_skipped + r.merged,
            Mode::Verify => {
                r.verified + r.mismatched + r.not_in_sink + r.failed + r.skipped + r.merged
            }
            Mode::Check => r.checked + r.failed + r.skipped + r.merged,
        };
        let clean = result.is_ok()
            && !shared.interrupted.load(Ordering::Relaxed)
            && r.failed == 0
            && r.mismatched == 0
            && r.digests_match;
        if let Err(e) = result {
            r.unprocessed = r.read.saturating_sub(settled);
            tracing::error!(object = %object, error = %e, kind = %e.kind(), "run stopped");
            report.fail(e.kind(), e.to_string());
        } else if shared.interrupted.load(Ordering::Relaxed) {
            r.unprocessed = r.read.saturating_sub(settled);
        }
        if let Some((state, since, point)) = sync {
            let after = crate::sync::next_watermark(since.as_ref(), &point, clean);
            let advanced = clean && after.as_ref() != since.as_ref();
            // Records about to be removed from the sink are forgotten, so that one restored in
            // the source is written again.
            let mut digests = match &shared.unchanged {
                Some(u) => u.for_next_sync(clean),
                None => state.digests(object),
            };
            if let Some((_, _, detected)) = &removing {
                for d in detected.iter().filter(|d| d.object == object) {
                    for id in &d.ids {
                        digests.remove(id);
                    }
                }
            }
            let digests_changed = state.keep_digests(object, digests);
            let saved = if advanced {
                state.advance(object, point)
            } else if digests_changed {
                state.save()
            } else {
                Ok(())
            };
            if let Err(e) = &saved {
                tracing::error!(object = %object, error = %e, "cannot save the sync state");
                if report.error.is_none() {
                    report.fail(
                        ErrorKind::Internal,
                        format!("cannot save the sync state: {e}"),
                    );
                }
            }
            if !clean {
                tracing::warn!(object = %object, "not every record settled: the watermark stays, the next sync reads these changes again");
            }
            let before = since.as_ref().map(crate::sync::Watermark::to_rfc3339);
            r.sync = Some(crate::sync::SyncReport {
                read: if since.is_some() {
                    "incremental"
                } else {
                    "full"
                },
                watermark_after: match saved {
                    Ok(()) => after.as_ref().map(crate::sync::Watermark::to_rfc3339),
                    Err(_) => before.clone(),
                },
                watermark_before: before,
                advanced: advanced && saved.is_ok(),
                settled: clean && saved.is_ok(),
                deletions: None,
                deletions_after: None,
            });
        }
        report.objects.push(tally.report);
        report.failures.append(&mut tally.failures);
        report.warnings.append(&mut tally.warnings);
        if shared.interrupted.load(Ordering::Relaxed) {
            report.interrupted = true;
        }
        if report.error.is_some() || report.interrupted {
            break; // children of a failed parent object would only fail on their references
        }
    }
    if let Some((state, how, detected)) = removing
        && report.error.is_none()
        && !report.interrupted
    {
        crate::deletions::remove(
            &sink,
            detected,
            how,
            |object| batch_sizes.get(&object).copied().unwrap_or(1),
            &state,
            options.stop.as_ref(),
            &mut report,
        )
        .await;
    }
    if let Some(checkpoint) = checkpoint {
        let finished = report.error.is_none() && !report.interrupted;
        let saved = if finished {
            checkpoint.finish()
        } else {
            checkpoint.save()
        };
        report.checkpoint_saved = saved.is_ok();
        if let (Err(e), None) = (saved, &report.error) {
            report.fail(ErrorKind::Internal, format!("cannot save progress: {e}"));
        }
    }
    report.owners_unmatched = directory.unmatched_owners();
    report.source_http = http_report(source.http_stats());
    report.sink_http = http_report(sink.http_stats());
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report.settle_outcome();
    report
}

/// Compares the sink's count of records carrying a source id (`in_sink`, taken once every
/// write was answered) with the records this run read back, and books any surplus: duplicates
/// (a lost create answer that was retried, say) or records whose source record is gone. Only
/// meaningful after a whole read of the source.
fn count_extras(in_sink: Option<u64>, shared: &Shared) -> StageResult<()> {
    let object = shared.object;
    let Some(in_sink) = in_sink else {
        tracing::debug!(%object, "the sink cannot count its records with a source id");
        return Ok(());
    };
    let mut tally = shared.tally();
    let found = tally.found_in_sink;
    tally.report.in_sink = Some(in_sink);
    if in_sink > found {
        tally.report.extra_in_sink = in_sink - found;
        tracing::warn!(%object, in_sink, read_back = found, "the sink holds records with a source id beyond those read back");
    } else if in_sink < found {
        // Counts from a search index can lag behind writes; the read-back is authoritative.
        tracing::debug!(%object, in_sink, read_back = found, "the sink's count lags behind the read-back");
    }
    Ok(())
}

/// A client's counters now (zero for a connector without one).
fn http_report(stats: Option<Arc<crate::http::HttpStats>>) -> HttpReport {
    stats.map(|s| s.report()).unwrap_or_default()
}

/// Runs one object's stages. With `count`, the sink's count of records with a source id
/// (`Sink::count_with_source_id`) is taken once the whole read was written and handed to
/// verification, beside the last read-backs; it is returned for [`count_extras`], `None` when
/// it was not taken (no `count`, or the read or the write stopped).
#[allow(clippy::too_many_arguments)]
async fn run_object(
    mode: Mode,
    source: &Arc<dyn Source>,
    sink: &Arc<dyn Sink>,
    options: &RunOptions,
    (start, since, known_parents, refused_parents, merges): (
        Option<String>,
        Option<crate::sync::Watermark>,
        KnownIds,
        KnownIds,
        MergePlans,
    ),
    count: bool,
    shared: &Arc<Shared>,
    counters: &ObjectProgress,
) -> StageResult<Option<Option<u64>>> {
    let object = shared.object;
    let few = sink.batches_in_flight(object);
    let in_flight = few
        .map_or(options.batches_in_flight, |n| {
            n.min(options.batches_in_flight)
        })
        .max(1);
    let batch_size = shared.capability.batch_size.max(1);
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(in_flight);
    // Every upsert holds a place in the verifier's queue from its start (`write_stage`). A sink
    // that takes few, large batches (a Bulk job's 25,000 records) gets no place beyond those:
    // one job read back, one written, one read, and none waiting between. The others keep a
    // queue as deep again as their writes, so a slow read-back does not hold the writes at once.
    let queue = if few.is_some() {
        in_flight
    } else {
        2 * in_flight
    };
    let (verify_tx, verify_rx) = mpsc::channel::<Batch>(queue);
    let incremental = since.is_some();

    let reader = read_stage(
        source,
        ReadPlan {
            quality: QualityChecker::new(
                options.quality.clone(),
                sink.vendor(),
                shared.capability.required.clone(),
                known_parents,
            )
            .with_refused_parents(refused_parents)
            .with_opt_out_needs_email(shared.capability.opt_out_needs_email)
            .with_limits(shared.capability.limits.clone())
            .with_value_maps(options.value_maps.get(&object).cloned().unwrap_or_default())
            .with_mx(shared.mx.clone()),
            batch_size,
            start,
            since,
            stop: options.stop.clone(),
            merger: merges
                .get(&object)
                .map(|plan| Merger::new(Arc::clone(plan))),
            merges,
        },
        batch_tx,
        shared,
        counters,
    );
    let verifier = verify_stage(sink, mode, in_flight, verify_rx, shared, counters);
    // The sink's count needs every write answered, not every read-back (which writes nothing):
    // it is asked as soon as the writer (in `verify`, the forwarder) has handed on the last
    // batch, while the last chunks are read back. It is not asked when the read or the write
    // stopped, since the run compares it with nothing then.
    let count_in_sink = |upstream: Result<bool, ()>| async move {
        let whole = upstream == Ok(true) && !shared.interrupted.load(Ordering::Relaxed);
        if !(count && whole) {
            return Ok(None);
        }
        Ok(Some(sink.count_with_source_id(object).await?))
    };
    let upstream = |read: &StageResult<()>, handed: &StageResult<bool>| match (read, handed) {
        (Ok(()), Ok(all)) => Ok(*all),
        _ => Err(()),
    };
    // The count only feeds progress bars: it runs beside the read and may fail quietly.
    let progress_count = async {
        // The count is of every record: no ETA for an incremental read.
        if incremental {
            return;
        }
        if let Ok(Some(n)) = source.count(object).await {
            counters
                .expected
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let (((read, written, in_sink), verified), ()) = match mode {
        Mode::Migrate => {
            // The sink is prepared while the first pages are read: only the writer needs it.
            // If it fails, the writer stops before its first write and the reader with it.
            let writer = async {
                sink.prepare(object).await?;
                let stop = options.stop.clone();
                write_stage(sink, in_flight, batch_rx, verify_tx, stop, shared, counters).await
            };
            let writes = async {
                let (read, written) = tokio::join!(reader, writer);
                let in_sink = count_in_sink(upstream(&read, &written)).await;
                (read, written.map(|_| ()), in_sink)
            };
            tokio::join!(async { tokio::join!(writes, verifier) }, progress_count)
        }
        Mode::Verify => {
            let forward = forward_stage(batch_rx, verify_tx);
            let writes = async {
                let (read, forwarded) = tokio::join!(reader, forward);
                let in_sink = count_in_sink(upstream(&read, &forwarded)).await;
                (read, forwarded.map(|_| ()), in_sink)
            };
            tokio::join!(async { tokio::join!(writes, verifier) }, progress_count)
        }
        Mode::Check => {
            drop(verify_tx);
            let passed = pass_stage(batch_rx, shared);
            let ((read, passed, verified), ()) = tokio::join!(
                async { tokio::join!(reader, passed, verifier) },
                progress_count
            );
            (((read, passed, Ok(None)), verified), ())
        }
    };
    // The first error in pipeline order is the cause; later ones are its consequences.
    read.and(written).and(verified).and(in_sink)
}

/// What the sink does with `object` in this account: surveyed first, since some of it (a
/// single-currency org) differs between accounts of one vendor.
pub async fn survey_capability(sink: &dyn Sink, object: ObjectType) -> ConnectorResult<Capability> {
    sink.survey(object).await?;
    sink.capability(object)
}

/// The first read of an object whose duplicates are merged ([`crate::duplicates`]): every
/// record, for its clusters and their survivors. `None` when the run was told to stop.
async fn plan_merges(
    source: &Arc<dyn Source>,
    object: ObjectType,
    projection: &Projection,
    options: &RunOptions,
) -> StageResult<Option<MergePlan>> {
    let full = options.quality.duplicate_matching == DuplicateMatching::Full;
    let mut planner = MergePlanner::new(full);
    let mut pager = Pager::start(source, object, None, None);
    loop {
        if options.stop.as_ref().is_some_and(|s| *s.borrow()) {
            return Ok(None);
        }
        let page = pager.next().await?;
        for record in &page.records {
            planner.observe(record, Rank::of(record, |f| projection.contains(f)));
        }
        if page.next.is_none() {
            break;
        }
    }
    let plan = planner.finish(options.quality.merge_survivor);
    tracing::info!(object = %object, clusters = plan.clusters_found(), "merges planned");
    Ok(Some(plan))
}

/// Where and how the read stage reads.
struct ReadPlan {
    quality: QualityChecker,
    batch_size: usize,
    /// The cursor to start at (a checkpoint's), or `None` for the first page.
    start: Option<String>,
    /// Read only the records changed at or after this watermark (a sync); `None`: all.
    since: Option<crate::sync::Watermark>,
    stop: Option<watch::Receiver<bool>>,
    /// The merges of the objects run before: references to a merged-away record are
    /// re-pointed to its survivor before the record is checked.
    merges: MergePlans,
    /// This object's merges, when its duplicates are merged.
    merger: Option<Merger<u64>>,
}

/// Reads every page of the object, checks each record and sends full batches downstream.
async fn read_stage(
    source: &Arc<dyn Source>,
    plan: ReadPlan,
    tx: mpsc::Sender<Batch>,
    shared: &Shared,
    counters: &ObjectProgress,
) -> StageResult<()> {
    let ReadPlan {
        mut quality,
        batch_size,
        start,
        since,
        mut stop,
        merges,
        mut merger,
    } = plan;
    let mut not_carried: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut consent = crate::consent::ConsentCounts::new();
    // Per duplicate code, the findings so far: beyond [`crate::duplicates::LISTED`] they are
    // counted (`duplicates`), not listed.
    let mut listed_duplicates: HashMap<&'static str, usize> = HashMap::new();
    let mut cursor: Option<String> = start;
    let mut batch = Batch::default();
    // A batch is begun only once the writer's queue has room for it: while the queue is full
    // the reader holds no half-built batch (one batch fewer in memory, which counts when a
    // batch is a Bulk job of tens of thousands of records).
    let mut slot: Option<mpsc::Permit<'_, Batch>> = None;
    // Pages come one after another (each needs the cursor of the one before), so a task of
    // their own fetches them, a few ahead: the vendor serves and the connector parses the next
    // pages while this one is checked and batched.
    let mut pager = Pager::start(source, shared.object, cursor.clone(), since);
    loop {
        let stopping =
            |stop: &Option<watch::Receiver<bool>>| stop.as_ref().is_some_and(|s| *s.borrow());
        if stopping(&stop) {
            shared.interrupted.store(true, Ordering::Relaxed);
            break;
        }
        let fetch = pager.next();
        let page = match stop.as_mut() {
            Some(signal) => tokio::select! {
                page = fetch => page?,
                _ = signal.wait_for(|stop| *stop) => {
                    shared.interrupted.store(true, Ordering::Relaxed);
                    break;
                }
            },
            None => fetch.await?,
        };
        let seq = shared.ledger().open();
        let mut settled_now = (page.unreadable.len()) as u64;
        let mut downstream = 0u64;
        let n = (page.records.len() + page.unreadable.len()) as u64;
        ObjectProgress::add(&counters.read, n);
        {
            let mut tally = shared.tally();
            tally.report.read += n;
            tally.report.failed += page.unreadable.len() as u64;
            for u in &page.unreadable {
                let failure = shared.failure(&u.source_id, Stage::Read, &u.code, u.reason.clone());
                tally.failures.push(failure);
            }
        }
        ObjectProgress::add(&counters.failed, page.unreadable.len() as u64);
        quality.look_up_domains(&page.records).await;
        // Records to check and pass on, each with the page it was held from (a record of a
        // merged cluster, outstanding on its page since it was read), or `None`: this page.
        let mut ready: Vec<(Record, Option<u64>)> = Vec::with_capacity(page.records.len());
        let mut merged: Vec<crate::duplicates::Merged<u64>> = Vec::new();
        for mut record in page.records {
            crate::duplicates::repoint(&mut record, &merges);
            let Some(merger) = merger.as_mut() else {
                ready.push((record, None));
                continue;
            };
            match merger.take(record, seq) {
                Taken::Alone(record, _) => ready.push((record, None)),
                Taken::Again(record, _) => {
                    settled_now += 1;
                    let mut tally = shared.tally();
                    tally.report.skipped += 1;
                    let reason = "the source returned this record twice; it was merged once".into();
                    let warning = shared.failure(
                        &record.source_id,
                        Stage::Validate,
                        "DUPLICATE_SOURCE_RECORD",
                        reason,
                    );
                    tally.warnings.push(warning);
                }
                taken => {
                    // Held for its cluster: outstanding on this page until merged.
                    shared.sent_downstream(seq);
                    downstream += 1;
                    if let Taken::Merged(m) = taken {
                        merged.push(m);
                    }
                }
            }
        }
        if let Some(merger) = merger.as_mut().filter(|_| page.next.is_none()) {
            // The last page: clusters with a record the source no longer returned.
            merged.extend(merger.finish());
        }
        for m in merged {
            let ids: Vec<String> = m.merged.iter().map(|(id, _)| id.clone()).collect();
            for (id, held_on) in &m.merged {
                quality.first_sight(id);
                shared.settle(*held_on, 1)?;
            }
            {
                let mut tally = shared.tally();
                tally.report.merged += ids.len() as u64;
                tally.report.merges.push(Merge {
                    survivor: m.survivor_id,
                    merged: ids,
                });
            }
            if let Some((survivor, held_on)) = m.survivor {
                ready.push((survivor, Some(held_on)));
            }
        }
        for (mut record, held_on) in ready {
            for (name, value) in shared.projection.uncovered(&record.fields) {
                if !crate::checksum::is_blank(value) && !not_carried.contains(name.as_ref()) {
                    not_carried.insert(name.to_string());
                }
            }
            let mut findings = quality.check(&mut record);
            if findings.iter().all(|f| f.action == Action::Write) {
                findings.extend(shared.directory.translate(&mut record));
            }
            findings.extend(crate::consent::check(
                &record,
                &shared.projection,
                &shared.consent,
                shared.sink,
                &mut consent,
            ));
            let action = findings
                .iter()
                .map(|f| f.action)
                .find(|a| *a != Action::Write)
                .unwrap_or(Action::Write);
            if !findings.is_empty() {
                let mut tally = shared.tally();
                for f in findings {
                    // Duplicates are counted in full; only the first few are listed.
                    if crate::duplicates::Evidence::is_code(f.code) {
                        let n = listed_duplicates.entry(f.code).or_insert(0usize);
                        *n += 1;
                        if *n > crate::duplicates::LISTED {
                            continue;
                        }
                    }
                    let entry =
                        shared.failure(&record.source_id, Stage::Validate, f.code, f.reason);
                    match f.action {
                        Action::Reject => tally.failures.push(entry),
                        Action::Write | Action::Skip => tally.warnings.push(entry),
                    }
                }
                match action {
                    Action::Reject => {
                        tally.report.failed += 1;
                        ObjectProgress::add(&counters.failed, 1);
                    }
                    Action::Skip => tally.report.skipped += 1,
                    Action::Write => {}
                }
            }
            if action != Action::Write {
                crate::consent::count_refused(&record, &mut consent);
                match held_on {
                    Some(held_on) => shared.settle(held_on, 1)?,
                    None => settled_now += 1,
                }
                continue;
            }
            crate::consent::strip_opt_ins(&mut record);
            if let Some(unchanged) = &shared.unchanged
                && let Some(before) = unchanged.previous.get(&record.source_id)
            {
                let sent = shared.directory.canonical_sent(&record);
                let digest = record_digest(&sent, &shared.projection);
                if crate::sync::RecordHash::of(&digest) == *before {
                    unchanged.keep(&record, &digest);
                    shared.tally().report.unchanged_skipped += 1;
                    match held_on {
                        Some(held_on) => shared.settle(held_on, 1)?,
                        None => settled_now += 1,
                    }
                    continue;
                }
                unchanged
                    .changed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(record.source_id.clone());
            }
            let page_of = match held_on {
                Some(held_on) => held_on,
                None => {
                    shared.sent_downstream(seq);
                    downstream += 1;
                    seq
                }
            };
            if batch.is_empty() && slot.is_none() {
                match tx.reserve().await {
                    Ok(permit) => slot = Some(permit),
                    Err(_) => return Ok(()), // the writer stopped; its error tells why
                }
            }
            if batch.is_empty() {
                // Room for a whole batch at once, not grown by doubling (a Bulk job's 25,000).
                batch.records.reserve_exact(batch_size);
                batch.pages.reserve_exact(batch_size);
            }
            // Held until read back: a batch of a Bulk job holds tens of thousands.
            record.fields.shrink_to_fit();
            batch.records.push(record);
            batch.pages.push(page_of);
            if batch.len() >= batch_size {
                let full = std::mem::take(&mut batch);
                match slot.take() {
                    Some(permit) => permit.send(full),
                    None if tx.send(full).await.is_err() => return Ok(()),
                    None => {}
                }
            }
        }
        if !consent.is_empty() {
            crate::consent::merge(&mut shared.tally().report.consent, &consent);
            consent.clear();
        }
        if !quality.links_not_carried().is_empty() {
            shared.tally().report.links_not_carried = quality.links_not_carried().clone();
        }
        if !quality.times_rounded().is_empty() {
            shared.tally().report.times_rounded = quality.times_rounded().clone();
        }
        if !quality.phones_normalized().is_empty() {
            shared.tally().report.phones_normalized = quality.phones_normalized().clone();
        }
        if quality.mx_unchecked() > 0 {
            shared.tally().report.mx_unchecked = quality.mx_unchecked();
        }
        if !quality.duplicates_found().is_empty() {
            shared.tally().report.duplicates = quality
                .duplicates_found()
                .iter()
                .map(|(code, n)| ((*code).to_owned(), *n))
                .collect();
        }
        shared.close_page(seq, downstream, settled_now, page.next.clone())?;
        match page.next {
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(ConnectorError::Malformed {
                    vendor: source.vendor(),
                    endpoint: format!("{} page", shared.object),
                    detail: "the next-page cursor equals the current one; paging would never end"
                        .into(),
                }
                .into());
            }
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    shared.tally().report.fields_not_carried = not_carried.into_iter().collect();
    match merger.as_ref().and_then(|_| merges.get(&shared.object)) {
        Some(plan) => {
            let mut tally = shared.tally();
            tally.report.duplicates = plan
                .found()
                .iter()
                .map(|(code, n)| ((*code).to_owned(), *n))
                .collect();
            tally.report.duplicate_clusters = plan.clusters().to_vec();
            tally.report.duplicate_clusters_found = plan.clusters_found();
        }
        None => {
            let (found, listed) = quality.listed_duplicate_clusters();
            let mut tally = shared.tally();
            tally.report.duplicate_clusters = listed;
            tally.report.duplicate_clusters_found = found;
        }
    }
    if quality.mx_unchecked() > 0 {
        tracing::warn!(
            object = %shared.object,
            addresses = quality.mx_unchecked(),
            "email MX check: DNS did not answer for the domains of some addresses (timeout or \
             server failure); they were neither flagged nor passed (mx_unchecked)"
        );
    }
    if let Some(ids) = &shared.ids_read {
        // The checker already holds the hash of every source id it saw, duplicates once: the
        // parents' ids for the children's references, without a second set beside it.
        *ids.lock().unwrap_or_else(PoisonError::into_inner) = quality.into_seen_ids();
    }
    if !batch.is_empty() {
        match slot.take() {
            Some(permit) => permit.send(batch),
            None => {
                let _ = tx.send(batch).await;
            }
        }
    }
    Ok(())
}

/// How many source pages the pager may hold beyond the one being processed.
const PAGES_AHEAD: usize = 2;

/// A page being read out of its answer, in a task of its own.
type PageTask = tokio::task::JoinHandle<ConnectorResult<crate::connector::Page>>;

/// Source pages fetched in order by a task of their own, up to [`PAGES_AHEAD`] ahead of the
/// reader, so that fetching never waits for the checks of the page before. Each page's records
/// are read out of its answer in a task of their own too, while the next page is fetched.
struct Pager {
    vendor: &'static str,
    pages: mpsc::Receiver<PageTask>,
    task: tokio::task::JoinHandle<()>,
}

impl Pager {
    /// Starts fetching the pages of `object` from `cursor` (`None`: the first page): every
    /// record, or with `since` only those changed at or after it.
    fn start(
        source: &Arc<dyn Source>,
        object: ObjectType,
        mut cursor: Option<String>,
        since: Option<crate::sync::Watermark>,
    ) -> Pager {
        let (tx, pages) = mpsc::channel::<PageTask>(PAGES_AHEAD);
        let source = Arc::clone(source);
        let vendor = source.vendor();
        let task = tokio::spawn(async move {
            loop {
                // After an error, the last page or a cursor that repeats (the reader reports
                // that), there is nothing more to fetch.
                let fetched = match &since {
                    None => source.fetch_page(object, cursor.as_deref()).await,
                    Some(since) => {
                        source
                            .fetch_changed_page(object, since, cursor.as_deref())
                            .await
                    }
                };
                let (next, records) = match fetched {
                    Ok(fetched) => {
                        let next = fetched.next.filter(|next| Some(next) != cursor.as_ref());
                        let read = fetched.records;
                        (next, tokio::spawn(async move { read() }))
                    }
                    Err(e) => (None, tokio::spawn(async move { Err(e) })),
                };
                if tx.send(records).await.is_err() {
                    return; // the reader stopped
                }
                match next {
                    Some(next) => cursor = Some(next),
                    None => return,
                }
            }
        });
        Pager {
            vendor,
            pages,
            task,
        }
    }

    /// The next page in order. Only asked for after a page that named a next one.
    async fn next(&mut self) -> StageResult<crate::connector::Page> {
        match self.pages.recv().await {
            Some(page) => Ok(page.await.map_err(|e| internal(self.vendor, "read", e))??),
            None => match (&mut self.task).await {
                Err(e) => Err(internal(self.vendor, "read", e)),
                Ok(()) => Err(StageError::Internal(format!(
                    "the page reader ({}) ended before the last page",
                    self.vendor
                ))),
            },
        }
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        // Pages fetched ahead of a run that stopped are not wanted.
        self.task.abort();
        self.pages.close();
        while let Ok(page) = self.pages.try_recv() {
            page.abort();
        }
    }
}

/// Verify mode: records go straight from the reader to the verifier.
/// `Mode::Check`: the records that passed every check are counted and settled, unwritten.
async fn pass_stage(mut rx: mpsc::Receiver<Batch>, shared: &Shared) -> StageResult<()> {
    while let Some(batch) = rx.recv().await {
        shared.tally().report.checked += batch.len() as u64;
        for page in batch.pages {
            shared.settle(page, 1)?;
        }
    }
    Ok(())
}

/// Passes every batch read on to verification; `false` when the verifier stopped first.
async fn forward_stage(
    mut rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<Batch>,
) -> StageResult<bool> {
    while let Some(batch) = rx.recv().await {
        if tx.send(batch).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Upserts batches, several in flight, and passes what the sink accepted on to verification;
/// `false` when the verifier stopped first (its error tells why).
///
/// Once `stop` turns `true` no further batch is sent: the ones the vendor has already been
/// sent are answered and verified, and the ones still queued are left unwritten. Their pages
/// are not settled, so the checkpoint stays before them and a rerun reads them again. Writing
/// them all would spend what the stop is for: a page read just before a daily-quota stop is
/// many batches of the sink's calls.
async fn write_stage(
    sink: &Arc<dyn Sink>,
    in_flight: usize,
    mut rx: mpsc::Receiver<Batch>,
    tx: mpsc::Sender<Batch>,
    stop: Option<watch::Receiver<bool>>,
    shared: &Shared,
    counters: &ObjectProgress,
) -> StageResult<bool> {
    let object = shared.object;
    type Written = (
        Batch,
        ConnectorResult<Vec<crate::RecordOutcome>>,
        mpsc::OwnedPermit<Batch>,
    );
    let mut tasks: JoinSet<Written> = JoinSet::new();
    // A place in the verifier's queue, taken before the next batch: a batch written goes
    // there at once, and no more batches are written ahead of the read-back than it holds.
    let mut place: Option<mpsc::OwnedPermit<Batch>> = None;
    let mut input_open = true;
    // Checked before each batch is sent: every wait below ends in a batch to send or an answer,
    // so a stop is seen before anything more goes out.
    let stopping = || stop.as_ref().is_some_and(|s| *s.borrow());
    while input_open || !tasks.is_empty() {
        if input_open && stopping() {
            shared.interrupted.store(true, Ordering::Relaxed);
            input_open = false;
            // The reader, waiting for room in the queue, sees it closed and stops too.
            rx.close();
            continue;
        }
        tokio::select! {
            permit = tx.clone().reserve_owned(), if input_open && place.is_none() && tasks.len() < in_flight => {
                match permit {
                    Ok(permit) => place = Some(permit),
                    Err(_) => return Ok(false), // the verifier stopped; its error tells why
                }
            },
            batch = rx.recv(), if input_open && place.is_some() => match (batch, place.take()) {
                // Told to stop meanwhile: left unwritten; the next turn closes the queue.
                (Some(_), _) if stopping() => {}
                (Some(batch), Some(permit)) => {
                    ObjectProgress::add(&counters.writing, batch.len() as u64);
                    let sink = Arc::clone(sink);
                    tasks.spawn(async move {
                        let outcomes = sink.upsert(object, &batch.records).await;
                        (batch, outcomes, permit)
                    });
                }
                _ => input_open = false,
            },
            Some(joined) = tasks.join_next() => {
                let (batch, outcomes, permit) =
                    joined.map_err(|e| internal(sink.vendor(), "write", e))?;
                ObjectProgress::sub(&counters.writing, batch.len() as u64);
                let accepted = settle_writes(sink.vendor(), batch, outcomes?, shared, counters)?;
                if !accepted.is_empty() {
                    permit.send(accepted);
                }
            }
        }
    }
    Ok(true)
}

/// Books one batch's outcomes and returns the records the sink accepted.
fn settle_writes(
    vendor: &'static str,
    batch: Batch,
    outcomes: Vec<crate::RecordOutcome>,
    shared: &Shared,
    counters: &ObjectProgress,
) -> StageResult<Batch> {
    let in_order = outcomes.len() == batch.len()
        && outcomes
            .iter()
            .zip(&batch.records)
            .all(|(o, r)| o.source_id == r.source_id);
    if !in_order {
        return Err(ConnectorError::Malformed {
            vendor,
            endpoint: format!("{} upsert", shared.object),
            detail: format!(
                "{} outcomes for {} records, or not in input order",
                outcomes.len(),
                batch.len()
            ),
        }
        .into());
    }
    let mut accepted = Batch {
        records: Vec::with_capacity(batch.len()),
        pages: Vec::with_capacity(batch.len()),
    };
    let mut rejected_pages = Vec::new();
    let mut tally = shared.tally();
    for ((record, page), outcome) in batch.records.into_iter().zip(batch.pages).zip(outcomes) {
        match outcome.result {
            Ok(written) => {
                tally.report.written += 1;
                if written.created {
                    tally.report.created += 1
                } else {
                    tally.report.updated += 1
                }
                accepted.records.push(record);
                accepted.pages.push(page);
            }
            Err(rejection) => {
                tally.report.failed += 1;
                crate::consent::count_refused(&record, &mut tally.report.consent);
                rejected_pages.push(page);
                let failure = shared.failure(
                    &record.source_id,
                    Stage::Write,
                    &rejection.code,
                    rejection.reason,
                );
                tally.failures.push(failure);
            }
        }
    }
    let failed = tally.report.failed;
    drop(tally);
    for page in rejected_pages {
        shared.settle(page, 1)?;
    }
    ObjectProgress::add(&counters.written, accepted.len() as u64);
    counters
        .failed
        .store(failed, std::sync::atomic::Ordering::Relaxed);
    Ok(accepted)
}

/// Reads written records back from the sink in chunks and compares checksums.
async fn verify_stage(
    sink: &Arc<dyn Sink>,
    mode: Mode,
    in_flight: usize,
    mut rx: mpsc::Receiver<Batch>,
    shared: &Arc<Shared>,
    counters: &ObjectProgress,
) -> StageResult<()> {
    let object = shared.object;
    let chunk_size = shared.capability.read_back_size.max(1);
    let mut pending = Batch::default();
    let mut tasks: JoinSet<(Batch, ConnectorResult<Vec<Option<Checked>>>)> = JoinSet::new();
    let mut input_open = true;
    while input_open || !tasks.is_empty() || !pending.is_empty() {
        // Send a chunk when it is full, or whatever is left once the input has ended.
        if tasks.len() < in_flight
            && (pending.len() >= chunk_size || (!input_open && !pending.is_empty()))
        {
            let cut = pending.len().min(chunk_size);
            let rest = Batch {
                records: pending.records.split_off(cut),
                pages: pending.pages.split_off(cut),
            };
            let chunk = std::mem::replace(&mut pending, rest);
            ObjectProgress::add(&counters.reading_back, chunk.len() as u64);
            let sink = Arc::clone(sink);
            let shared = Arc::clone(shared);
            tasks.spawn(async move {
                // Each record is compared as it is read back, and let go: a chunk's read-back
                // (a Bulk job's 25,000 records) is never held whole.
                let mut checks = Checks::new(&chunk.records, &shared);
                let back = sink
                    .read_back_each(object, &chunk.records, &mut |record| checks.check(record))
                    .await;
                let checked = back.map(|()| checks.into_checked());
                (chunk, checked)
            });
            continue;
        }
        // Nothing is gathered while every read-back is in flight: what waits stays in the
        // channel, which holds `in_flight` batches. Gathering a chunk ahead as well held one
        // more of a Bulk job's 25,000 records, and no read-back could start any sooner.
        let gather = input_open && pending.len() < chunk_size && tasks.len() < in_flight;
        tokio::select! {
            batch = rx.recv(), if gather => match batch {
                Some(batch) => {
                    if pending.is_empty() {
                        pending = batch; // taken as it is, not copied
                    } else {
                        pending.records.extend(batch.records);
                        pending.pages.extend(batch.pages);
                    }
                }
                None => input_open = false,
            },
            Some(joined) = tasks.join_next() => {
                let (sent, checked) = joined.map_err(|e| internal(sink.vendor(), "read-back", e))?;
                ObjectProgress::sub(&counters.reading_back, sent.len() as u64);
                let pages = compare(mode, sent, checked?, shared, counters);
                for page in pages {
                    shared.settle(page, 1)?;
                }
            }
        }
    }
    Ok(())
}

/// A sent record compared with its read-back.
struct Checked {
    /// The digest of what was sent.
    expected: crate::checksum::Digest,
    /// The digest of what was read back (as the sink's opt-outs and owner leave it).
    actual: crate::checksum::Digest,
    /// The projected fields that differ, when the digests do.
    differing: Option<String>,
    /// Opt-outs sent and read back, or the sink's own that stand.
    consent: crate::consent::ConsentCounts,
}

/// One chunk's records compared as the sink reads them back, one at a time.
struct Checks<'a> {
    sent: &'a [Record],
    shared: &'a Shared,
    /// Each sent record's index by its source id.
    at: HashMap<&'a str, usize>,
    checked: Vec<Option<Checked>>,
}

impl<'a> Checks<'a> {
    fn new(sent: &'a [Record], shared: &'a Shared) -> Checks<'a> {
        let at = sent
            .iter()
            .enumerate()
            .map(|(i, r)| (r.source_id.as_str(), i))
            .collect();
        Checks {
            sent,
            shared,
            at,
            checked: std::iter::repeat_with(|| None).take(sent.len()).collect(),
        }
    }

    /// Compares `back` with the record sent under its source id; a record not asked for, or
    /// read back twice, is left out (the sink's count finds a record it holds twice).
    fn check(&mut self, back: Record) {
        let Some(&i) = self.at.get(back.source_id.as_str()) else {
            return;
        };
        if self.checked[i].is_some() {
            return;
        }
        let shared = self.shared;
        let record = &self.sent[i];
        let expected = record_digest(&shared.directory.canonical_sent(record), &shared.projection);
        let stored = shared.directory.canonical_back(record, &back);
        let mut consent = crate::consent::ConsentCounts::new();
        let stored = match crate::consent::keep_sink_opt_outs(
            record,
            &stored,
            &shared.projection,
            &mut consent,
        ) {
            Some(standing) => std::borrow::Cow::Owned(standing),
            None => stored,
        };
        let actual = record_digest(&stored, &shared.projection);
        let differing = (actual != expected).then(|| {
            let sent = shared.directory.canonical_sent(record);
            differing_fields(&sent, &stored, &shared.projection).join(", ")
        });
        self.checked[i] = Some(Checked {
            expected,
            actual,
            differing,
            consent,
        });
    }

    fn into_checked(self) -> Vec<Option<Checked>> {
        self.checked
    }
}

/// Books what was sent against what came back (`checked`, one per sent record, `None` when
/// not found), record by record in the order sent; returns the pages of the records it
/// settled.
///
/// A record absent from the sink is a mismatch in `migrate` (the sink accepted it moments
/// ago), but in `verify` it was simply never written (refused during the migration, or not
/// migrated yet): counted apart as not in the sink, since nothing written differs.
fn compare(
    mode: Mode,
    sent: Batch,
    checked: Vec<Option<Checked>>,
    shared: &Shared,
    counters: &ObjectProgress,
) -> Vec<u64> {
    let mut verified = 0u64;
    let mut tally = shared.tally();
    for (record, checked) in sent.records.iter().zip(checked) {
        let Some(checked) = checked else {
            let failure = match mode {
                // A check reads nothing back: `compare` never sees its records.
                Mode::Migrate | Mode::Check => {
                    let expected =
                        record_digest(&shared.directory.canonical_sent(record), &shared.projection);
                    tally.report.sent_digest.add(&expected);
                    tally.report.mismatched += 1;
                    let reason =
                        "accepted by the sink, then not found when read back by its source id";
                    shared.failure(&record.source_id, Stage::Verify, "MISSING", reason.into())
                }
                Mode::Verify => {
                    tally.report.not_in_sink += 1;
                    let reason = "not in the sink (never written: refused during the migration, \
                                  or not migrated yet)";
                    shared.failure(
                        &record.source_id,
                        Stage::Verify,
                        "NOT_IN_SINK",
                        reason.into(),
                    )
                }
            };
            tally.failures.push(failure);
            continue;
        };
        tally.found_in_sink += 1;
        tally.report.sent_digest.add(&checked.expected);
        crate::consent::merge(&mut tally.report.consent, &checked.consent);
        tally.report.read_back_digest.add(&checked.actual);
        match checked.differing {
            None => {
                verified += 1;
                if let Some(unchanged) = &shared.unchanged {
                    unchanged.keep(record, &checked.expected);
                }
            }
            Some(fields) => {
                tally.report.mismatched += 1;
                let reason =
                    format!("read back with a different checksum; fields that differ: {fields}");
                let failure = shared.failure(
                    &record.source_id,
                    Stage::Verify,
                    "CHECKSUM_MISMATCH",
                    reason,
                );
                tally.failures.push(failure);
            }
        }
    }
    tally.report.verified += verified;
    drop(tally);
    ObjectProgress::add(&counters.verified, verified);
    sent.pages
}

/// The names of projected fields whose values differ as the checksum sees them (empty text
/// counts as absent; rich text is compared in its plain form).
fn differing_fields(a: &Record, b: &Record, projection: &Projection) -> Vec<String> {
    let norm = |v: Option<&Value>, f: &str| crate::checksum::as_hashed(a.object, f, v);
    projection
        .fields()
        .iter()
        .filter(|f| norm(a.get(f), f) != norm(b.get(f), f))
        .cloned()
        .collect()
}

/// The opt-outs of the run's objects that the sink cannot hold, that the operator has not
/// accepted to lose, and that some source record holds, with how many. A source that
/// describes its fields is asked only about the opt-outs it has; the count is the source's
/// ([`Source::count_opted_out`]).
async fn unheld_opt_outs(
    source: &dyn Source,
    objects: &[(ObjectType, &Capability)],
    options: &RunOptions,
) -> ConnectorResult<Vec<crate::consent::Unheld>> {
    let mut found = Vec::new();
    for &(object, capability) in objects {
        let stored = Projection::new(capability.stored.iter().cloned());
        let unheld = crate::consent::unheld(object, &stored, &options.consent);
        if unheld.is_empty() {
            continue;
        }
        let described: Option<std::borrow::Cow<'_, [crate::fields::VendorField]>> =
            match options.source_fields.get(&object) {
                Some(fields) => Some(std::borrow::Cow::Borrowed(fields.as_slice())),
                None => match source.describe(object).await {
                    Ok(fields) => Some(std::borrow::Cow::Owned(fields)),
                    Err(ConnectorError::Unsupported { .. }) => None,
                    Err(e) => return Err(e),
                },
            };
        for opt_out in unheld {
            let source_field = match &described {
                Some(fields) => {
                    match fields
                        .iter()
                        .find(|f| f.canonical.as_deref() == Some(opt_out.field))
                    {
                        Some(f) => Some(f.name.clone()),
                        None => continue, // the source has no such opt-out
                    }
                }
                None => None,
            };
            let records = source.count_opted_out(object, opt_out.field).await?;
            if records > 0 {
                found.push(crate::consent::Unheld {
                    object,
                    opt_out,
                    source_field,
                    records,
                });
            }
        }
    }
    Ok(found)
}

/// A stage's task that panicked or was cancelled: ferry's fault, not the vendor's.
fn internal(vendor: &'static str, stage: &str, e: tokio::task::JoinError) -> StageError {
    StageError::Internal(format!("the {stage} task ({vendor}) died: {e}"))
}

#[cfg(test)]
mod tests {
    //! The pipeline against in-memory connectors: these test the engine's bookkeeping, not any
    //! vendor (the end-to-end tests drive real connectors against the emulators).
    use super::*;
    use crate::connector::{Page, RecordOutcome, RecordRejection, Written};
    use crate::model::field;
    use crate::quality::MissingReference;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct MemorySource {
        records: Vec<Record>,
        page: usize,
    }

    #[async_trait]
    impl Source for MemorySource {
        fn vendor(&self) -> &'static str {
            "memsource"
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        async fn read_page(
            &self,
            object: ObjectType,
            cursor: Option<&str>,
        ) -> ConnectorResult<Page> {
            let start: usize = cursor.map(|c| c.parse().unwrap_or(0)).unwrap_or(0);
            let all: Vec<&Record> = self.records.iter().filter(|r| r.object == object).collect();
            let end = (start + self.page).min(all.len());
            Ok(Page {
                records: all[start..end].iter().map(|r| (*r).clone()).collect(),
                next: (end < all.len()).then(|| end.to_string()),
                unreadable: Vec::new(),
            })
        }
    }

    /// Stores records as given, except: refuses last names "REFUSE", and corrupts the city of
    /// records whose first name is "CORRUPT" (to prove verification catches it).
    #[derive(Default)]
    struct MemorySink {
        stored: Mutex<HashMap<String, Record>>,
        upserts_in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        /// Takes one batch in flight (`Sink::batches_in_flight`) and reads back a batch at
        /// once, slower than it writes, as a Bulk object does.
        one_at_a_time: bool,
        /// Records accepted and not yet read back, and the most there were at once.
        unread: AtomicUsize,
        max_unread: AtomicUsize,
    }

    #[async_trait]
    impl Sink for MemorySink {
        fn vendor(&self) -> &'static str {
            "memsink"
        }
        fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
            Ok(Capability {
                batch_size: 7,
                read_back_size: if self.one_at_a_time { 7 } else { 11 },
                // Like today's connectors: no owner (nor stage), which would need users.
                stored: object
                    .fields()
                    .iter()
                    .filter(|f| f.name != field::CREATED_AT && f.name != field::OWNER)
                    .map(|f| f.name.to_owned())
                    .collect(),
                required: Vec::new(),
                opt_out_needs_email: false,
                limits: Vec::new(),
            })
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        fn batches_in_flight(&self, _: ObjectType) -> Option<usize> {
            self.one_at_a_time.then_some(1)
        }
        async fn prepare(&self, _: ObjectType) -> ConnectorResult<()> {
            Ok(())
        }
        async fn upsert(
            &self,
            _: ObjectType,
            records: &[Record],
        ) -> ConnectorResult<Vec<RecordOutcome>> {
            let now = self.upserts_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let mut stored = self.stored.lock().unwrap();
            let outcomes = records
                .iter()
                .map(|r| {
                    let result = if r.text(field::LAST_NAME) == Some("REFUSE") {
                        Err(RecordRejection {
                            source_id: r.source_id.clone(),
                            code: "REQUIRED".into(),
                            reason: "no".into(),
                        })
                    } else {
                        let mut copy = r.clone();
                        copy.fields.remove(field::CREATED_AT);
                        if r.text(field::FIRST_NAME) == Some("CORRUPT") {
                            copy.set(field::CITY, Value::Text("elsewhere".into()));
                        }
                        let created = stored.insert(r.source_id.clone(), copy).is_none();
                        Ok(Written {
                            sink_id: format!("s{}", r.source_id),
                            created,
                        })
                    };
                    RecordOutcome {
                        source_id: r.source_id.clone(),
                        result,
                    }
                })
                .collect::<Vec<RecordOutcome>>();
            let accepted = outcomes.iter().filter(|o| o.result.is_ok()).count();
            let unread = self.unread.fetch_add(accepted, Ordering::SeqCst) + accepted;
            self.max_unread.fetch_max(unread, Ordering::SeqCst);
            self.upserts_in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(outcomes)
        }
        async fn read_back(&self, _: ObjectType, ids: &[String]) -> ConnectorResult<Vec<Record>> {
            assert!(ids.len() <= 11);
            if self.one_at_a_time {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let back = {
                let stored = self.stored.lock().unwrap();
                ids.iter()
                    .filter_map(|id| stored.get(id).cloned())
                    .collect()
            };
            self.unread.fetch_sub(ids.len(), Ordering::SeqCst);
            Ok(back)
        }
        async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
            let stored = self.stored.lock().unwrap();
            Ok(Some(
                stored.values().filter(|r| r.object == object).count() as u64
            ))
        }
    }

    fn contact(i: usize, last: &str) -> Record {
        let mut r = Record::new(ObjectType::CONTACTS, i.to_string());
        // Everyone "Ng" at one company's domain would be one person to the duplicate finder;
        // at a public provider's, only the address tells people apart.
        r.set(field::EMAIL, Value::Text(format!("p{i}@gmail.com")));
        r.set(field::LAST_NAME, Value::Text(last.into()));
        r.set(field::CITY, Value::Text("Kraków".into()));
        r.set(field::CREATED_AT, Value::Timestamp(i as i64));
        r
    }

    async fn migrate<S: Sink + 'static>(records: Vec<Record>, sink: Arc<S>) -> Report {
        let source = Arc::new(MemorySource { records, page: 5 });
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            ..RunOptions::default()
        };
        let progress = Arc::new(Progress::new(&options.objects));
        run(Mode::Migrate, source, sink, &options, progress).await
    }

    /// A source of `pages` pages of one contact each that counts its page reads; with
    /// `stuck_at`, that page names itself as the next one.
    struct CountingSource {
        pages: usize,
        stuck_at: Option<usize>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl Source for CountingSource {
        fn vendor(&self) -> &'static str {
            "counting"
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        async fn read_page(&self, _: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let at: usize = cursor.map(|c| c.parse().unwrap_or(0)).unwrap_or(0);
            let next = match self.stuck_at {
                Some(stuck) if stuck == at => Some(at),
                _ => Some(at + 1).filter(|n| *n < self.pages),
            };
            Ok(Page {
                records: vec![contact(at, "Ng")],
                next: next.map(|n| n.to_string()),
                unreadable: Vec::new(),
            })
        }
    }

    #[tokio::test]
    async fn the_pager_reads_ahead_in_order_but_only_a_few_pages() {
        let source = Arc::new(CountingSource {
            pages: 50,
            stuck_at: None,
            reads: AtomicUsize::new(0),
        });
        let dyn_source: Arc<dyn Source> = source.clone();
        let mut pager = Pager::start(&dyn_source, ObjectType::CONTACTS, None, None);
        // Nothing takes the pages yet: the pager holds PAGES_AHEAD, plus one waiting to go,
        // and fetches no more however long it is left.
        let reads = || source.reads.load(Ordering::SeqCst);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while reads() < PAGES_AHEAD + 1 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(reads(), PAGES_AHEAD + 1, "pages fetched ahead");
        for expected in 0..50 {
            let page = pager.next().await.unwrap();
            assert_eq!(page.records[0].source_id, expected.to_string());
            assert_eq!(page.next.is_none(), expected == 49);
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 50, "no page twice");
    }

    #[tokio::test]
    async fn a_cursor_that_names_its_own_page_stops_the_run_with_an_error() {
        let source: Arc<dyn Source> = Arc::new(CountingSource {
            pages: 50,
            stuck_at: Some(3),
            reads: AtomicUsize::new(0),
        });
        let sink: Arc<dyn Sink> = Arc::new(MemorySink::default());
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            ..RunOptions::default()
        };
        let progress = Arc::new(Progress::new(&options.objects));
        let report = run(Mode::Migrate, source, sink, &options, progress).await;
        let error = report.error.unwrap_or_default();
        assert!(error.contains("paging would never end"), "{error}");
        assert_eq!(report.objects[0].read, 4, "pages 0 to 3, page 3 once");
    }

    #[tokio::test]
    async fn contacts_are_checked_against_the_companies_read_before_them() {
        let mut records: Vec<Record> = (0..30)
            .map(|i| Record::new(ObjectType::COMPANIES, format!("c-{i}")))
            .collect();
        for r in &mut records {
            r.set(field::NAME, Value::Text("Acme".into()));
        }
        for i in 0..40 {
            let mut c = contact(i, "Ng");
            // Contact 7 refers to a company the source does not have.
            let company = if i == 7 {
                "c-99".into()
            } else {
                format!("c-{}", i % 30)
            };
            c.set(field::COMPANY, Value::Reference(company));
            records.push(c);
        }
        let source = Arc::new(MemorySource { records, page: 5 });
        let options = RunOptions {
            objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
            ..RunOptions::default()
        };
        let progress = Arc::new(Progress::new(&options.objects));
        let sink = Arc::new(MemorySink::default());
        let report = run(Mode::Migrate, source, sink, &options, progress).await;
        let refused: Vec<(&str, &str)> = report
            .failures
            .iter()
            .map(|f| (f.source_id.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(refused, vec![("7", "MISSING_REFERENCE")]);
        let contacts = &report.objects[1];
        assert_eq!((contacts.written, contacts.failed), (39, 1));
    }

    #[tokio::test]
    async fn references_to_a_parent_the_sink_refused_follow_missing_reference() {
        let companies = (0..3).map(|i| {
            let mut c = Record::new(ObjectType::COMPANIES, format!("c-{i}"));
            c.set(field::NAME, Value::Text("Acme".into()));
            if i == 1 {
                // The memory sink refuses it.
                c.set(field::LAST_NAME, Value::Text("REFUSE".into()));
            }
            c
        });
        let contacts = (0..6).map(|i| {
            let mut c = contact(i, "Ng");
            c.set(field::COMPANY, Value::Reference(format!("c-{}", i % 3)));
            c
        });
        let records: Vec<Record> = companies.chain(contacts).collect();
        for (policy, written, code) in [
            (MissingReference::Reject, 4, "REFERENCE_REFUSED"),
            (MissingReference::Drop, 6, ""),
        ] {
            let source = Arc::new(MemorySource {
                records: records.clone(),
                page: 5,
            });
            let mut options = RunOptions {
                objects: vec![ObjectType::COMPANIES, ObjectType::CONTACTS],
                ..RunOptions::default()
            };
            options.quality.missing_reference = policy;
            let progress = Arc::new(Progress::new(&options.objects));
            let sink = Arc::new(MemorySink::default());
            let report = run(
                Mode::Migrate,
                source,
                Arc::clone(&sink) as Arc<dyn Sink>,
                &options,
                progress,
            )
            .await;
            let contacts_failed: Vec<(&str, &str)> = report
                .failures
                .iter()
                .filter(|f| f.object == ObjectType::CONTACTS)
                .map(|f| (f.source_id.as_str(), f.code.as_str()))
                .collect();
            let expected: Vec<(&str, &str)> = if code.is_empty() {
                Vec::new()
            } else {
                vec![("1", code), ("4", code)]
            };
            assert_eq!(contacts_failed, expected, "{policy:?}");
            assert_eq!(report.objects[1].written, written, "{policy:?}");
            assert_eq!(report.outcome, Outcome::RecordsFailed, "{policy:?}");
            if policy == MissingReference::Drop {
                let warned = report
                    .warnings
                    .iter()
                    .filter(|w| w.code == "REFERENCE_REFUSED");
                assert_eq!(warned.count(), 2);
                let stored = sink.stored.lock().unwrap();
                assert_eq!(stored["1"].get(field::COMPANY), None, "written without it");
            }
        }
    }

    #[tokio::test]
    async fn a_sink_that_takes_one_batch_in_flight_gets_one_and_every_record_verified() {
        let sink = Arc::new(MemorySink {
            one_at_a_time: true,
            ..MemorySink::default()
        });
        let report = migrate(
            (0..100).map(|i| contact(i, "Ng")).collect(),
            Arc::clone(&sink),
        )
        .await;
        let o = &report.objects[0];
        assert_eq!((o.written, o.verified, o.mismatched), (100, 100, 0));
        assert_eq!(report.outcome, Outcome::Verified);
        assert_eq!(
            sink.max_in_flight.load(Ordering::SeqCst),
            1,
            "the sink's one batch, not the run's four"
        );
        // One batch read back and the next one written at most: a batch is written only once
        // the one before it has left the writer for the verifier, never behind it.
        assert_eq!(sink.max_unread.load(Ordering::SeqCst), 14);
    }

    /// A [`MemorySink`] whose last read-back answers only once the sink's count was asked
    /// (or after five seconds): the count needs every write answered, not every read-back.
    struct CountBesideReadBack {
        inner: MemorySink,
        records: usize,
        read_back: AtomicUsize,
        counted: watch::Sender<bool>,
        count_before_last_read_back: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Sink for CountBesideReadBack {
        fn vendor(&self) -> &'static str {
            self.inner.vendor()
        }
        fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
            self.inner.capability(object)
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        async fn prepare(&self, _: ObjectType) -> ConnectorResult<()> {
            Ok(())
        }
        async fn upsert(
            &self,
            object: ObjectType,
            records: &[Record],
        ) -> ConnectorResult<Vec<RecordOutcome>> {
            self.inner.upsert(object, records).await
        }
        async fn read_back(&self, o: ObjectType, ids: &[String]) -> ConnectorResult<Vec<Record>> {
            let before = self.read_back.fetch_add(ids.len(), Ordering::SeqCst);
            if before + ids.len() == self.records {
                let mut counted = self.counted.subscribe();
                let waited = std::time::Duration::from_secs(5);
                let seen = tokio::time::timeout(waited, counted.wait_for(|c| *c)).await;
                self.count_before_last_read_back
                    .store(seen.is_ok(), Ordering::SeqCst);
            }
            self.inner.read_back(o, ids).await
        }
        async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
            self.counted.send_replace(true);
            self.inner.count_with_source_id(object).await
        }
    }

    #[tokio::test]
    async fn the_sink_is_counted_beside_the_last_read_backs_once_every_write_answered() {
        let records = 60;
        let sink = Arc::new(CountBesideReadBack {
            inner: MemorySink::default(),
            records,
            read_back: AtomicUsize::new(0),
            counted: watch::channel(false).0,
            count_before_last_read_back: Default::default(),
        });
        let report = migrate(
            (0..records).map(|i| contact(i, "Ng")).collect(),
            Arc::clone(&sink),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Verified);
        let o = &report.objects[0];
        assert_eq!((o.written, o.verified), (60, 60));
        assert_eq!((o.in_sink, o.extra_in_sink), (Some(60), 0));
        assert!(
            sink.count_before_last_read_back.load(Ordering::SeqCst),
            "the count waited for the last read-back"
        );
    }

    #[tokio::test]
    async fn clean_run_verifies_every_record_and_digests_match() {
        let sink = Arc::new(MemorySink::default());
        let report = migrate(
            (0..100).map(|i| contact(i, "Ng")).collect(),
            Arc::clone(&sink),
        )
        .await;
        let o = &report.objects[0];
        assert_eq!(
            (
                o.read,
                o.written,
                o.created,
                o.verified,
                o.failed,
                o.mismatched
            ),
            (100, 100, 100, 100, 0, 0)
        );
        assert!(o.digests_match);
        assert_eq!((o.in_sink, o.extra_in_sink), (Some(100), 0));
        assert_eq!(
            o.fields_not_carried,
            vec![field::CREATED_AT.to_owned()],
            "the sink does not store created_at"
        );
        assert_eq!(report.outcome, Outcome::Verified);
        assert!(
            sink.max_in_flight.load(Ordering::SeqCst) > 1,
            "batches should overlap"
        );
        assert!(
            sink.max_in_flight.load(Ordering::SeqCst) <= 4,
            "at most batches_in_flight upserts"
        );

        let rerun = migrate(
            (0..100).map(|i| contact(i, "Ng")).collect(),
            Arc::clone(&sink),
        )
        .await;
        assert_eq!(
            (rerun.objects[0].created, rerun.objects[0].updated),
            (0, 100)
        );
        assert_eq!(sink.stored.lock().unwrap().len(), 100);
    }

    #[tokio::test]
    async fn rejections_and_bad_emails_are_listed_and_the_run_goes_on() {
        let mut records: Vec<Record> = (0..30).map(|i| contact(i, "Ng")).collect();
        records[3] = contact(3, "REFUSE");
        records[9].set(field::EMAIL, Value::Text("not-an-email".into()));
        records[12].set(field::EMAIL, Value::Text("P0@gmail.com".into()));
        let report = migrate(records, Arc::new(MemorySink::default())).await;
        let o = &report.objects[0];
        assert_eq!((o.read, o.written, o.failed, o.verified), (30, 28, 2, 28));
        assert_eq!(report.outcome, Outcome::RecordsFailed);
        assert_eq!(report.outcome.exit_code(), 3);
        let failed: Vec<(&str, Stage)> = report
            .failures
            .iter()
            .map(|f| (f.source_id.as_str(), f.stage))
            .collect();
        assert!(failed.contains(&("3", Stage::Write)) && failed.contains(&("9", Stage::Validate)));
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(
            (
                report.warnings[0].source_id.as_str(),
                report.warnings[0].code.as_str()
            ),
            ("12", "DUPLICATE_EMAIL")
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !json.contains("not-an-email") && !json.contains("Kraków"),
            "no values in the report"
        );
    }

    #[tokio::test]
    async fn records_in_the_sink_beyond_those_read_back_make_a_mismatch() {
        // An earlier migration left records whose source records are gone since (or a lost
        // answer left a duplicate): every record of this run verifies, yet the sink holds more.
        let sink = Arc::new(MemorySink::default());
        for stale in ["gone-1", "gone-2", "gone-3"] {
            let record = contact(0, "Ng");
            sink.stored.lock().unwrap().insert(stale.into(), record);
        }
        let report = migrate((0..20).map(|i| contact(i, "Ng")).collect(), sink).await;
        let o = &report.objects[0];
        assert_eq!((o.verified, o.mismatched), (20, 0));
        assert_eq!((o.in_sink, o.extra_in_sink), (Some(23), 3));
        assert_eq!(report.outcome, Outcome::Mismatch);
        assert_eq!(report.outcome.exit_code(), 3);
    }

    #[tokio::test]
    async fn a_corrupted_write_is_caught_with_the_field_named() {
        let mut records: Vec<Record> = (0..20).map(|i| contact(i, "Ng")).collect();
        records[5].set(field::FIRST_NAME, Value::Text("CORRUPT".into()));
        let report = migrate(records, Arc::new(MemorySink::default())).await;
        let o = &report.objects[0];
        assert_eq!((o.written, o.verified, o.mismatched), (20, 19, 1));
        assert!(!o.digests_match);
        assert_eq!(report.outcome, Outcome::Mismatch);
        let f = report
            .failures
            .iter()
            .find(|f| f.stage == Stage::Verify)
            .unwrap();
        assert_eq!(f.source_id, "5");
        assert!(
            f.reason.contains("city") && !f.reason.contains("elsewhere"),
            "{}",
            f.reason
        );
    }

    #[tokio::test]
    async fn duplicate_findings_are_counted_in_full_but_listed_only_up_to_a_bound() {
        let extra = 30;
        let records: Vec<Record> = (0..crate::duplicates::LISTED + 1 + extra)
            .map(|i| {
                let mut r = contact(i, "Ng");
                r.set(field::EMAIL, Value::Text("same@gmail.com".into()));
                r
            })
            .collect();
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            quality: QualityRules {
                duplicate_matching: DuplicateMatching::Full,
                ..QualityRules::default()
            },
            ..RunOptions::default()
        };
        let source = Arc::new(MemorySource { records, page: 50 });
        let sink = Arc::new(MemorySink::default());
        let progress = Arc::new(Progress::new(&options.objects));
        let report = run(Mode::Migrate, source, sink, &options, progress).await;
        let o = &report.objects[0];
        let found = (crate::duplicates::LISTED + extra) as u64;
        assert_eq!(o.duplicates.get("DUPLICATE_EMAIL"), Some(&found));
        assert_eq!(o.written, found + 1, "flagged, all written");
        assert_eq!(report.warnings.len(), crate::duplicates::LISTED);
        assert_eq!(o.duplicate_clusters_found, 1);
        assert_eq!(o.duplicate_clusters[0].len(), crate::duplicates::LISTED_IDS);
    }

    #[tokio::test]
    async fn merged_duplicates_write_one_filled_survivor_and_children_point_at_it() {
        use crate::model::Link;
        // Contacts 3, 8 and 12 are one person (one address), on three pages of five: 8 is the
        // most complete and survives; 3 alone opted out; 12 alone knows the phone.
        let mut records: Vec<Record> = (0..15).map(|i| contact(i, "Ng")).collect();
        for i in [3, 8, 12] {
            records[i].set(field::EMAIL, Value::Text("same@gmail.com".into()));
        }
        records[3].set(field::EMAIL_OPT_OUT, Value::Bool(true));
        records[3].fields.remove(field::CITY);
        records[8].set(field::JOB_TITLE, Value::Text("CFO".into()));
        records[8].set(field::STREET, Value::Text("1 Rynek".into()));
        records[12].set(field::PHONE, Value::Text("+48 12 345 67 89".into()));
        let link = |id: &str| Link {
            object: ObjectType::CONTACTS,
            id: id.into(),
        };
        let mut note = Record::new(ObjectType::NOTES, "n1");
        note.set(field::BODY, Value::Text("called".into()));
        note.set(
            field::PARENTS,
            Value::Links(vec![link("3"), link("12"), link("5")]),
        );
        records.push(note);
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS, ObjectType::NOTES],
            quality: QualityRules {
                duplicates: Duplicates::Merge,
                ..QualityRules::default()
            },
            ..RunOptions::default()
        };
        let sink = Arc::new(MemorySink::default());
        let source = Arc::new(MemorySource { records, page: 5 });
        let progress = Arc::new(Progress::new(&options.objects));
        let report = run(
            Mode::Migrate,
            Arc::clone(&source) as Arc<dyn Source>,
            Arc::clone(&sink) as Arc<dyn Sink>,
            &options,
            progress,
        )
        .await;
        assert_eq!(report.outcome, Outcome::Verified, "{report:#?}");
        let o = &report.objects[0];
        assert_eq!(
            (o.read, o.written, o.merged, o.verified, o.failed, o.skipped),
            (15, 13, 2, 13, 0, 0),
            "merged records are settled, neither failed nor lost"
        );
        assert!(o.digests_match);
        assert_eq!((o.in_sink, o.extra_in_sink), (Some(13), 0));
        assert_eq!(
            o.merges,
            vec![crate::duplicates::Merge {
                survivor: "8".into(),
                merged: vec!["12".into(), "3".into()],
            }]
        );
        assert_eq!(o.duplicate_clusters, vec![vec!["3", "8", "12"]]);
        assert_eq!(o.duplicates.get("DUPLICATE_EMAIL"), Some(&2));
        let stored = sink.stored.lock().unwrap().clone();
        assert!(!stored.contains_key("3") && !stored.contains_key("12"));
        let survivor = &stored["8"];
        assert_eq!(survivor.text(field::PHONE), Some("+48 12 345 67 89"));
        assert_eq!(survivor.text(field::JOB_TITLE), Some("CFO"));
        assert_eq!(survivor.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
        assert_eq!(
            stored["n1"].get(field::PARENTS),
            Some(&Value::Links(vec![link("8"), link("5")])),
            "re-pointed to the survivor, once"
        );
        assert_eq!(report.objects[1].verified, 1);

        // Verifying afterwards applies the same merges: everything agrees.
        let progress = Arc::new(Progress::new(&options.objects));
        let verify = run(Mode::Verify, source, sink, &options, progress).await;
        assert_eq!(verify.outcome, Outcome::Verified, "{verify:#?}");
        let o = &verify.objects[0];
        assert_eq!((o.verified, o.merged, o.not_in_sink), (13, 2, 0));
    }

    #[tokio::test]
    async fn verify_mode_finds_records_missing_from_the_sink() {
        let records: Vec<Record> = (0..25).map(|i| contact(i, "Ng")).collect();
        let sink = Arc::new(MemorySink::default());
        migrate(records[..20].to_vec(), Arc::clone(&sink)).await;
        let source = Arc::new(MemorySource { records, page: 5 });
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            ..RunOptions::default()
        };
        let report = run(
            Mode::Verify,
            source,
            sink,
            &options,
            Arc::new(Progress::new(&options.objects)),
        )
        .await;
        let o = &report.objects[0];
        assert_eq!(
            (o.read, o.written, o.verified, o.mismatched, o.not_in_sink),
            (25, 0, 20, 0, 5),
            "records never written are not in the sink, not a mismatch"
        );
        assert_eq!(report.outcome, Outcome::NotInSink);
        assert_eq!(report.exit_code(), 3);
        assert!(
            o.digests_match,
            "what the sink holds agrees with the source"
        );
        assert!(report.failures.iter().all(|f| f.code == "NOT_IN_SINK"));
    }

    #[tokio::test]
    async fn verify_after_refusals_tells_absent_records_from_differing_ones() {
        let mut records: Vec<Record> = (0..30).map(|i| contact(i, "Ng")).collect();
        for i in [3, 17] {
            records[i] = contact(i, "REFUSE");
        }
        records[8].set(field::FIRST_NAME, Value::Text("CORRUPT".into()));
        let sink = Arc::new(MemorySink::default());
        let migrated = migrate(records.clone(), Arc::clone(&sink)).await;
        assert_eq!(migrated.objects[0].failed, 2);
        // The source is read again as it is, refused records included; the refused last name
        // is fixed in the source meanwhile, which changes nothing: they were never written.
        let source = Arc::new(MemorySource { records, page: 5 });
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            ..RunOptions::default()
        };
        let progress = Arc::new(Progress::new(&options.objects));
        let report = run(Mode::Verify, source, sink, &options, progress).await;
        let o = &report.objects[0];
        assert_eq!(
            (o.read, o.verified, o.mismatched, o.not_in_sink),
            (30, 27, 1, 2)
        );
        assert_eq!(report.outcome, Outcome::Mismatch, "a differing record wins");
        let codes: Vec<(&str, &str)> = report
            .failures
            .iter()
            .map(|f| (f.source_id.as_str(), f.code.as_str()))
            .collect();
        assert!(codes.contains(&("3", "NOT_IN_SINK")), "{codes:?}");
        assert!(codes.contains(&("17", "NOT_IN_SINK")), "{codes:?}");
        assert!(codes.contains(&("8", "CHECKSUM_MISMATCH")), "{codes:?}");
    }

    #[tokio::test]
    async fn an_interrupted_verify_counts_verified_records_as_processed() {
        let records: Vec<Record> = (0..200).map(|i| contact(i, "Ng")).collect();
        let (stop_tx, stop_rx) = watch::channel(false);
        let sink = Arc::new(StoppingSink::new(stop_tx, StopOn::ReadBack, 3));
        for r in records.chunks(7) {
            sink.inner.upsert(ObjectType::CONTACTS, r).await.unwrap();
        }
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            stop: Some(stop_rx),
            ..RunOptions::default()
        };
        let source = Arc::new(MemorySource { records, page: 5 });
        let progress = Arc::new(Progress::new(&options.objects));
        let report = run(Mode::Verify, source, sink, &options, progress).await;
        assert_eq!(report.outcome, Outcome::Interrupted);
        assert_eq!(report.error_kind, Some(ErrorKind::Interrupted));
        let o = &report.objects[0];
        assert!(o.verified > 0 && o.read < 200, "{o:?}");
        assert_eq!(
            o.unprocessed,
            o.read - o.verified,
            "verified records are processed: {o:?}"
        );
    }

    /// A sink whose writes panic: a fault of the engine's task, not of a vendor.
    struct PanickingSink(MemorySink);

    #[async_trait]
    impl Sink for PanickingSink {
        fn vendor(&self) -> &'static str {
            "memsink"
        }
        fn capability(&self, o: ObjectType) -> ConnectorResult<Capability> {
            self.0.capability(o)
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        async fn prepare(&self, _: ObjectType) -> ConnectorResult<()> {
            Ok(())
        }
        async fn upsert(&self, _: ObjectType, _: &[Record]) -> ConnectorResult<Vec<RecordOutcome>> {
            panic!("a bug in the write task")
        }
        async fn read_back(&self, o: ObjectType, ids: &[String]) -> ConnectorResult<Vec<Record>> {
            self.0.read_back(o, ids).await
        }
    }

    #[tokio::test]
    async fn errors_keep_their_kind_to_the_report() {
        let records: Vec<Record> = (0..20).map(|i| contact(i, "Ng")).collect();
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            ..RunOptions::default()
        };
        let source = Arc::new(MemorySource {
            records: records.clone(),
            page: 5,
        });
        let sink = Arc::new(PanickingSink(MemorySink::default()));
        let progress = Arc::new(Progress::new(&options.objects));
        let report = run(Mode::Migrate, source, sink, &options, progress).await;
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.error_kind, Some(ErrorKind::Internal), "{report:?}");
        let error = report.error.unwrap_or_default();
        assert!(error.starts_with("ferry: "), "{error}");

        // A cursor that repeats is the vendor's fault.
        let source = Arc::new(CountingSource {
            pages: 5,
            stuck_at: Some(2),
            reads: AtomicUsize::new(0),
        });
        let progress = Arc::new(Progress::new(&options.objects));
        let sink = Arc::new(MemorySink::default());
        let report = run(Mode::Migrate, source, sink, &options, progress).await;
        assert_eq!(report.error_kind, Some(ErrorKind::Vendor), "{report:?}");
        assert_eq!(report.exit_code(), 1);
    }

    /// A checkpoint path, not there yet, in a directory of its own for the test `name`.
    fn fresh_checkpoint(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ferry-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.json");
        let _ = std::fs::remove_file(&path);
        (dir, path)
    }

    /// Migrates `records`, read in pages of `page`, into `sink`.
    async fn migrate_pages(
        records: Vec<Record>,
        page: usize,
        sink: &Arc<StoppingSink>,
        options: &RunOptions,
    ) -> Report {
        let source = Arc::new(MemorySource { records, page });
        let progress = Arc::new(Progress::new(&options.objects));
        run(
            Mode::Migrate,
            source,
            Arc::clone(sink) as Arc<dyn Sink>,
            options,
            progress,
        )
        .await
    }

    /// Which call of a [`StoppingSink`] flips the stop signal.
    #[derive(PartialEq)]
    enum StopOn {
        Upsert,
        ReadBack,
    }

    /// Flips the stop signal at its `after`th upsert or read-back, like an operator's Ctrl-C
    /// mid-run (or during a `verify`).
    struct StoppingSink {
        inner: MemorySink,
        stop: watch::Sender<bool>,
        on: StopOn,
        after: usize,
        calls: AtomicUsize,
    }

    impl StoppingSink {
        fn new(stop: watch::Sender<bool>, on: StopOn, after: usize) -> StoppingSink {
            StoppingSink {
                inner: MemorySink::default(),
                stop,
                on,
                after,
                calls: AtomicUsize::new(0),
            }
        }

        /// Counts a call of kind `on`; the `after`th flips the stop signal.
        fn count(&self, on: StopOn) {
            if self.on == on && self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
                let _ = self.stop.send(true);
            }
        }
    }

    #[async_trait]
    impl Sink for StoppingSink {
        fn vendor(&self) -> &'static str {
            "memsink"
        }
        fn capability(&self, o: ObjectType) -> ConnectorResult<Capability> {
            self.inner.capability(o)
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        async fn prepare(&self, _: ObjectType) -> ConnectorResult<()> {
            Ok(())
        }
        async fn upsert(
            &self,
            o: ObjectType,
            records: &[Record],
        ) -> ConnectorResult<Vec<RecordOutcome>> {
            self.count(StopOn::Upsert);
            self.inner.upsert(o, records).await
        }
        async fn read_back(&self, o: ObjectType, ids: &[String]) -> ConnectorResult<Vec<Record>> {
            self.count(StopOn::ReadBack);
            self.inner.read_back(o, ids).await
        }
    }

    #[tokio::test]
    async fn a_merge_never_checkpoints_past_a_held_record_and_resumes_from_the_start() {
        let (dir, path) = fresh_checkpoint("merge-resume");
        // One person on page 8 and on the last page: the first is held all the way.
        let mut records: Vec<Record> = (0..200).map(|i| contact(i, "Ng")).collect();
        for i in [40, 195] {
            records[i].set(field::EMAIL, Value::Text("same@gmail.com".into()));
        }
        records[195].set(field::JOB_TITLE, Value::Text("CFO".into()));
        let quality = QualityRules {
            duplicates: Duplicates::Merge,
            ..QualityRules::default()
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let sink = Arc::new(StoppingSink::new(stop_tx, StopOn::Upsert, 5));
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            checkpoint: Some(Arc::new(CheckpointFile::open(&path, "fp", false).unwrap())),
            stop: Some(stop_rx),
            quality: quality.clone(),
            ..RunOptions::default()
        };
        let first = migrate_pages(records.clone(), 5, &sink, &options).await;
        assert_eq!(first.outcome, Outcome::Interrupted);
        assert!(first.objects[0].written > 0 && first.objects[0].read < 195);
        let saved = CheckpointFile::open(&path, "fp", false)
            .unwrap()
            .object(ObjectType::CONTACTS);
        assert!(
            saved.settled > 0 && saved.settled <= 40,
            "never past page 8, which holds a record of an open cluster: {saved:?}"
        );

        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            checkpoint: Some(Arc::new(CheckpointFile::open(&path, "fp", false).unwrap())),
            quality,
            ..RunOptions::default()
        };
        let second = migrate_pages(records, 5, &sink, &options).await;
        assert_eq!(second.outcome, Outcome::Verified, "{second:?}");
        let o = &second.objects[0];
        assert_eq!(
            (o.already_done, o.read, o.written, o.merged),
            (0, 200, 199, 1),
            "read again from the start: the survivor needs its whole cluster"
        );
        let stored = sink.inner.stored.lock().unwrap();
        assert_eq!(stored.len(), 199);
        assert_eq!(stored["195"].text(field::JOB_TITLE), Some("CFO"));
        assert!(
            !stored.contains_key("40"),
            "merged into 195, the more complete"
        );
        drop(stored);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_interrupted_run_resumes_from_its_checkpoint() {
        let (dir, path) = fresh_checkpoint("resume");
        let records: Vec<Record> = (0..200).map(|i| contact(i, "Ng")).collect();
        let (stop_tx, stop_rx) = watch::channel(false);
        let sink = Arc::new(StoppingSink::new(stop_tx, StopOn::Upsert, 5));

        let checkpoint = Arc::new(CheckpointFile::open(&path, "fp", false).unwrap());
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            checkpoint: Some(checkpoint),
            stop: Some(stop_rx),
            ..RunOptions::default()
        };
        let first = migrate_pages(records.clone(), 5, &sink, &options).await;
        assert_eq!(first.outcome, Outcome::Interrupted);
        assert_eq!(first.outcome.exit_code(), 4);
        let o = &first.objects[0];
        assert!(o.read < 200, "the reader stopped early: read {}", o.read);
        assert_eq!(
            o.written, o.verified,
            "what was written before stopping is verified"
        );
        let saved = CheckpointFile::open(&path, "fp", false)
            .unwrap()
            .object(ObjectType::CONTACTS);
        assert!(
            !saved.done && saved.settled > 0 && saved.resume_cursor.is_some(),
            "{saved:?}"
        );
        assert_eq!(saved.settled % 5, 0, "the resume point is a page boundary");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("gmail.com") && !text.contains("Ng"),
            "no record data in the checkpoint"
        );

        // The second run picks up at the checkpoint and finishes the rest.
        let checkpoint = Arc::new(CheckpointFile::open(&path, "fp", false).unwrap());
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            checkpoint: Some(checkpoint),
            ..RunOptions::default()
        };
        let source = Arc::new(MemorySource { records, page: 5 });
        let progress = Arc::new(Progress::new(&options.objects));
        let second = run(
            Mode::Migrate,
            source,
            Arc::clone(&sink) as Arc<dyn Sink>,
            &options,
            Arc::clone(&progress),
        )
        .await;
        let live = progress.of(ObjectType::CONTACTS).unwrap();
        assert_eq!(
            live.already_done.load(Ordering::Relaxed),
            saved.settled,
            "the progress display starts from the checkpoint's count, not from zero"
        );
        assert_eq!(second.outcome, Outcome::Verified, "{second:?}");
        let o = &second.objects[0];
        assert_eq!(o.already_done, saved.settled);
        assert_eq!(
            o.read + o.already_done,
            200,
            "nothing read twice, nothing skipped"
        );
        assert_eq!(sink.inner.stored.lock().unwrap().len(), 200);
        assert!(
            CheckpointFile::open(&path, "fp", false)
                .unwrap()
                .snapshot()
                .objects
                .is_empty(),
            "a finished migration starts afresh"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_stop_leaves_the_batches_not_yet_sent_unwritten_and_the_rerun_writes_them() {
        let (dir, path) = fresh_checkpoint("stop-queued");
        // One page of 210 records is 30 batches of 7: read before the stop, it would all be
        // written after it if queued batches were "in flight".
        let records: Vec<Record> = (0..210).map(|i| contact(i, "Ng")).collect();
        let (stop_tx, stop_rx) = watch::channel(false);
        let sink = Arc::new(StoppingSink::new(stop_tx, StopOn::Upsert, 3));
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            checkpoint: Some(Arc::new(CheckpointFile::open(&path, "fp", false).unwrap())),
            stop: Some(stop_rx),
            ..RunOptions::default()
        };
        let first = migrate_pages(records.clone(), 210, &sink, &options).await;
        assert_eq!(first.outcome, Outcome::Interrupted, "{first:?}");
        let upserts = sink.calls.load(Ordering::SeqCst);
        assert!(
            upserts <= 3 + options.batches_in_flight,
            "no batch is sent after the stop beyond those already on their way: {upserts} upserts"
        );
        let o = &first.objects[0];
        assert_eq!(o.written, o.verified, "what was sent is verified: {o:?}");
        assert!(o.written < 210, "{o:?}");
        assert!(first.failures.is_empty(), "{:?}", first.failures);
        let saved = CheckpointFile::open(&path, "fp", false)
            .unwrap()
            .object(ObjectType::CONTACTS);
        assert_eq!(saved.settled, 0, "the page is not settled: {saved:?}");

        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            checkpoint: Some(Arc::new(CheckpointFile::open(&path, "fp", false).unwrap())),
            ..RunOptions::default()
        };
        let second = migrate_pages(records, 210, &sink, &options).await;
        assert_eq!(second.outcome, Outcome::Verified, "{second:?}");
        assert_eq!(second.objects[0].verified, 210);
        assert_eq!(sink.inner.stored.lock().unwrap().len(), 210);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A source whose records carry `updated_at`, read whole or changed at or after a
    /// watermark, with a clock the test sets: its sync point is the clock less 300 s.
    struct ChangingSource {
        records: Mutex<Vec<Record>>,
        clock_ms: std::sync::atomic::AtomicI64,
    }

    impl ChangingSource {
        fn page(&self, since: Option<&crate::sync::Watermark>) -> crate::connector::FetchedPage {
            let records = self
                .records
                .lock()
                .unwrap()
                .iter()
                .filter(|r| match (since, r.get(field::UPDATED_AT)) {
                    (None, _) => true,
                    (Some(since), Some(Value::Timestamp(ms))) => *ms >= since.at_ms,
                    (Some(_), _) => true,
                })
                .cloned()
                .collect();
            crate::connector::FetchedPage::ready(Page {
                records,
                next: None,
                unreadable: Vec::new(),
            })
        }

        /// Sets `last_name` of record `i` and stamps it modified at `at_ms`.
        fn change(&self, i: usize, last_name: &str, at_ms: i64) {
            let mut records = self.records.lock().unwrap();
            records[i].set(field::LAST_NAME, Value::Text(last_name.into()));
            records[i].set(field::UPDATED_AT, Value::Timestamp(at_ms));
        }
    }

    #[async_trait]
    impl Source for ChangingSource {
        fn vendor(&self) -> &'static str {
            "changing"
        }
        async fn check(&self) -> ConnectorResult<()> {
            Ok(())
        }
        async fn read_page(&self, _: ObjectType, _: Option<&str>) -> ConnectorResult<Page> {
            (self.page(None).records)()
        }
        async fn fetch_changed_page(
            &self,
            _: ObjectType,
            since: &crate::sync::Watermark,
            _: Option<&str>,
        ) -> ConnectorResult<crate::connector::FetchedPage> {
            Ok(self.page(Some(since)))
        }
        async fn sync_point(&self, _: ObjectType) -> ConnectorResult<crate::sync::Watermark> {
            Ok(crate::sync::Watermark::settled_before(
                self.clock_ms.load(Ordering::SeqCst),
                std::time::Duration::from_secs(300),
            ))
        }
    }

    #[tokio::test]
    async fn a_sync_skips_records_read_again_unchanged_and_keeps_their_digests_for_the_next() {
        const T0: i64 = 1_765_000_000_000;
        let records = (0..10)
            .map(|i| {
                let mut r = contact(i, "Ng");
                // 0 to 4 changed long ago; 5 to 9 a minute before the first sync.
                let at = if i < 5 { T0 - 3_600_000 } else { T0 - 60_000 };
                r.set(field::UPDATED_AT, Value::Timestamp(at));
                r
            })
            .collect();
        let source = Arc::new(ChangingSource {
            records: Mutex::new(records),
            clock_ms: std::sync::atomic::AtomicI64::new(T0),
        });
        let sink = Arc::new(MemorySink::default());
        let dir = std::env::temp_dir().join(format!("ferry-unchanged-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state = Arc::new(
            crate::sync::StateFile::open(&dir.join("state.json"), "fp", "changing", "memsink")
                .unwrap(),
        );
        let options = RunOptions {
            objects: vec![ObjectType::CONTACTS],
            sync: Some(Arc::clone(&state)),
            ..RunOptions::default()
        };
        let sync = || async {
            sink.max_in_flight.store(0, Ordering::SeqCst);
            let progress = Arc::new(Progress::new(&options.objects));
            let dyn_source: Arc<dyn Source> = source.clone();
            let report = run(Mode::Migrate, dyn_source, sink.clone(), &options, progress).await;
            let upserted = sink.max_in_flight.load(Ordering::SeqCst) > 0;
            (report.objects[0].clone(), upserted)
        };
        let kept = || -> Vec<String> { state.digests(ObjectType::CONTACTS).into_keys().collect() };

        // The full read writes all ten and keeps the digests of the five modified inside the
        // overlap before the sync point (T0 - 300 s).
        let (first, _) = sync().await;
        assert_eq!((first.read, first.created), (10, 10));
        assert_eq!(kept(), ["5", "6", "7", "8", "9"]);

        // Ten seconds on, the read repeats those five: unchanged, not sent to the sink, and
        // settled, so the watermark moves and the digests are kept again.
        source.clock_ms.store(T0 + 10_000, Ordering::SeqCst);
        let (second, upserted) = sync().await;
        assert_eq!(
            (second.read, second.unchanged_skipped, second.written),
            (5, 5, 0)
        );
        assert!(!upserted, "nothing sent to the sink");
        let sync_report = second.sync.as_ref().unwrap();
        assert!(
            sync_report.advanced && sync_report.settled,
            "{sync_report:?}"
        );
        assert_eq!(kept(), ["5", "6", "7", "8", "9"]);

        // Contact 6 changes inside the overlap: written, its new digest kept; the rest skipped.
        source.change(6, "Nguyen", T0 + 15_000);
        source.clock_ms.store(T0 + 20_000, Ordering::SeqCst);
        let (third, upserted) = sync().await;
        assert_eq!(
            (
                third.read,
                third.updated,
                third.verified,
                third.unchanged_skipped
            ),
            (5, 1, 1, 4)
        );
        assert!(upserted);
        assert_eq!(kept(), ["5", "6", "7", "8", "9"]);
        let digests = state.digests(ObjectType::CONTACTS);

        // A run that does not settle (the sink refuses contact 8) keeps the watermark, and the
        // digests of what the sink is known to hold: the last ones, less contact 8's, which
        // was sent again.
        source.change(8, "REFUSE", T0 + 25_000);
        source.clock_ms.store(T0 + 30_000, Ordering::SeqCst);
        let (fourth, _) = sync().await;
        assert_eq!((fourth.failed, fourth.unchanged_skipped), (1, 4));
        assert!(!fourth.sync.as_ref().unwrap().settled);
        let mut without_8 = digests.clone();
        without_8.remove("8");
        assert_eq!(state.digests(ObjectType::CONTACTS), without_8);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
