//! Projections: every audit document as a pure function of (ledger history,
//! ledger.yaml). Nothing here reads git, the clock, the environment or the
//! disk: the caller hands over a [`RunSource`] that reads the parsed runs
//! and what it read of their stored files ([`RunExtras`]), and gets file
//! paths and bytes back. The same input gives byte-identical files on any
//! machine, any day, in any zone.
//!
//! Runs are read in two passes and never all held at once: the first makes
//! each run's small [`Entry`] (what the ledger-wide documents read), the
//! second reads again, one at a time per core, the runs whose own documents
//! must be rendered. A ledger of any size costs its entries in memory.
//!
//! Order is always (first record time, run id); times are the records' UTC
//! times; numbers from reports are printed as the report wrote them.

pub mod charts;
pub mod docs;
pub mod failures;
pub mod governance;
pub mod handoff;
pub mod html;
pub mod markdown;
mod printer;
pub mod queue;
pub mod registry;
pub mod report;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{is_relative_inside, Config};
use crate::files::FileDigest;
use crate::history::{Run, Status};
use report::{Problem, Report};

/// What the caller read of a run's stored files.
#[derive(Clone, Debug, Default)]
pub struct RunExtras {
    /// The product matching ledger.yaml `report.product`, if any.
    pub report: Option<ReportSource>,
    /// Whether the stored log hashes to the result's digest (as verify found); `None` when no
    /// log is stored.
    pub log_matches: Option<bool>,
    /// What `ledger verify` found about this run, one line each.
    pub integrity: Vec<String>,
    /// Stored input files (strategy configs, the freeze file) by path.
    pub inputs: BTreeMap<String, Vec<u8>>,
}

/// A run's report as found among its products.
#[derive(Clone, Debug)]
pub enum ReportSource {
    Stored {
        path: String,
        bytes: Vec<u8>,
    },
    /// Over `products.max_bytes`: recorded by digest only.
    NotStored {
        path: String,
        bytes: u64,
    },
    /// Stored, but not as the result signs it (another size): not read.
    Unread {
        path: String,
        why: String,
    },
}

/// Switches that change the documents (recorded in the finalize record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Options {
    /// A run without a final summary fails governance.
    pub require_final_summary: bool,
}

/// Reads the ledger's runs for a projection, in any order the source
/// likes: the projection sorts them.
pub trait RunSource: Sync {
    /// How many runs there are; they are numbered `0..count()`.
    fn count(&self) -> usize;

    /// Reads the runs numbered in `which`, in that order (a number may
    /// come twice), handing each to `each` with its position in `which`
    /// and what was read of its stored files. Called from several threads
    /// at once, each with its own `which`.
    fn read(
        &self,
        which: &[usize],
        each: &mut dyn FnMut(usize, Run, RunExtras) -> Result<(), crate::Error>,
    ) -> Result<(), crate::Error>;

    /// Run `i`'s id and a text that changes whenever anything reading the
    /// run gives changes (for the ledger: the tree the run is read from),
    /// so that its [`Entry`] can be taken from an earlier projection
    /// ([`KnownEntries`]); `None` when the run must be read every time.
    fn identity(&self, i: usize) -> Option<(String, String)> {
        let _ = i;
        None
    }
}

/// Everything a projection reads.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub runs: &'a dyn RunSource,
    /// Verified committee decisions and the policy.
    pub board: &'a crate::committee::Board,
    pub config: &'a Config,
    /// Where verify's trust came from, for evidence texts.
    pub trust_file: &'a str,
    /// The configured remote's state, for handoff readiness.
    pub remote: Option<&'a handoff::RemoteState>,
    pub options: Options,
}

/// A run's state in the stage audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    InProgress,
    Pass,
    Fail,
    Aborted,
    Blocked,
    /// Records are missing or unreadable.
    Incomplete,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::InProgress => "in_progress",
            StageStatus::Pass => "pass",
            StageStatus::Fail => "fail",
            StageStatus::Aborted => "aborted",
            StageStatus::Blocked => "blocked",
            StageStatus::Incomplete => "incomplete",
        }
    }

    fn of(status: Status) -> StageStatus {
        match status {
            Status::Running => StageStatus::InProgress,
            Status::Passed => StageStatus::Pass,
            Status::Failed => StageStatus::Fail,
            Status::Aborted => StageStatus::Aborted,
            Status::Blocked => StageStatus::Blocked,
            Status::Incomplete => StageStatus::Incomplete,
        }
    }
}

/// The report of a run as finalize sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ReportState {
    /// No stored product matches `report.product`.
    Missing,
    NotStored {
        path: String,
        bytes: u64,
    },
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
    /// Stored at another size than the result signs: the ledger was
    /// altered, and the report was not read.
    Unread {
        path: String,
        why: String,
    },
    Valid {
        path: String,
        report: Box<Report>,
    },
}

impl ReportState {
    pub fn report(&self) -> Option<&Report> {
        match self {
            ReportState::Valid { report, .. } => Some(report),
            _ => None,
        }
    }
}

/// One run with everything the documents derive from it.
#[derive(Clone, Debug)]
pub struct View<'a> {
    pub run: &'a Run,
    pub extras: &'a RunExtras,
    pub status: StageStatus,
    pub tag: String,
    pub workflow: String,
    pub owner: String,
    /// The user's commit the run started from.
    pub commit: Option<String>,
    /// `YYYY-MM-DD` of the run's first record (UTC).
    pub date: String,
    pub report: ReportState,
    /// Governance, for runs that have ended.
    pub checks: Option<Vec<governance::Check>>,
    /// The committee's tally, for runs with a result when a committee is
    /// configured.
    pub decision: Option<crate::committee::Tally>,
    /// Paths of this run's documents.
    pub paths: Paths,
}

/// Where a run's documents go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paths {
    pub summary: Option<String>,
    pub review: Option<String>,
    pub governance_json: Option<String>,
    pub governance_md: Option<String>,
    pub remediation_json: Option<String>,
    pub remediation_md: Option<String>,
}

impl Paths {
    /// Every document path the run has.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        [
            &self.summary,
            &self.review,
            &self.governance_json,
            &self.governance_md,
            &self.remediation_json,
            &self.remediation_md,
        ]
        .into_iter()
        .flatten()
    }
}

/// What the ledger-wide documents read of one run: small and owned, so
/// that every run's entry can be held while runs themselves are read,
/// rendered and dropped. Finalize keeps entries from one projection to the
/// next ([`KnownEntries`]) without what is set anew each time: the run's
/// number, the committee's tally and the document paths.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub run_id: String,
    /// Time of the run's first record: with the run id, the ledger order.
    pub at: String,
    /// The run's number in the [`RunSource`].
    #[serde(skip)]
    pub source: usize,
    pub status: StageStatus,
    pub tag: String,
    pub workflow: String,
    pub owner: String,
    pub commit: Option<String>,
    /// `YYYY-MM-DD` of the run's first record (UTC).
    pub date: String,
    pub report: ReportState,
    #[serde(skip)]
    pub decision: Option<crate::committee::Tally>,
    #[serde(skip)]
    pub paths: Paths,
    /// The governance checks the run failed; `None` while it is in progress.
    pub failed: Option<Vec<governance::Check>>,
    /// The DQ column of the stage audit log.
    pub dq: String,
    /// The DQ input file, for the next-run plan.
    pub dq_input: Option<String>,
    pub threads: Option<u32>,
    pub argv: Option<Vec<String>>,
    pub result_id: Option<String>,
    pub duration_ms: Option<u64>,
    /// Every failure of the run: (gate, normalized reason).
    pub failures: Vec<(String, String)>,
    /// [`view_digest`] without the paths, when the caller reuses documents.
    digest: String,
    /// Its key among [`KnownEntries`], when it may be kept for the next
    /// projection: a digest of its run's [`RunSource::identity`] and of
    /// everything else it is made from.
    #[serde(skip)]
    pub key: Option<String>,
}

impl Entry {
    /// The entry of `view`, whose checks are computed with its own paths
    /// (before shared directories are resolved): which checks fail does not
    /// depend on a path's name, only on whether the path exists, and
    /// resolving renames paths without removing any.
    fn of(input: &Input<'_>, view: &View<'_>, source: usize, digest: bool) -> Entry {
        let run = view.run;
        // A new list: collecting in place would keep every check's room.
        let failed = (view.status != StageStatus::InProgress).then(|| {
            governance::checks(input, view)
                .iter()
                .filter(|c| c.outcome == governance::Outcome::Fail)
                .cloned()
                .collect()
        });
        let result = run.result();
        Entry {
            run_id: run.run_id.clone(),
            at: run.at().to_string(),
            source,
            status: view.status,
            tag: view.tag.clone(),
            workflow: view.workflow.clone(),
            owner: view.owner.clone(),
            commit: view.commit.clone(),
            date: view.date.clone(),
            report: view.report.clone(),
            decision: view.decision.clone(),
            paths: view.paths.clone(),
            failed,
            dq: docs::dq_text(view),
            dq_input: run.data_quality().map(|d| d.input.path),
            threads: run.context().and_then(|c| c.threads),
            argv: governance::argv(run),
            result_id: run.get(crate::record::Kind::Result).map(|p| p.id.clone()),
            duration_ms: result.map(|r| r.duration_ms),
            failures: failures::failures_of(view),
            digest: if digest {
                view_digest(view)
            } else {
                String::new()
            },
            key: None,
        }
    }

    pub fn governance_passed(&self) -> Option<bool> {
        self.failed.as_ref().map(Vec::is_empty)
    }

    pub fn failed_checks(&self) -> usize {
        self.failed.as_ref().map_or(0, Vec::len)
    }

    /// The factor of its valid report.
    fn factor(&self) -> Option<&str> {
        self.report.report().map(|r| r.factor.as_str())
    }
}

/// What `finalize` prints per run: the secretary's checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunOutline {
    pub run_id: String,
    pub tag: String,
    pub status: StageStatus,
    /// `None` while the run is in progress.
    pub governance_passed: Option<bool>,
    pub failed_checks: usize,
    /// Why no final summary was written, if none was.
    pub no_summary: Option<String>,
    pub paths: Paths,
}

/// The documents of one projection.
#[derive(Clone, Debug, Default)]
pub struct Projection {
    /// Repository-relative path to file bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Documents not held in `files`: proved on disk already ([`Reuse`]) or
    /// handed to the [`Sink`], sorted by path; never shares a path with
    /// `files`.
    pub known: Vec<KnownFile>,
    /// With [`Reuse`]: each run's document key, in the order of `entries`
    /// (the key covers the documents' paths, which are the entry's
    /// [`Paths::all`]).
    pub run_keys: Vec<String>,
    /// Every run's entry, in ledger order.
    pub entries: Vec<Entry>,
}

/// A document a [`Projection`] knows by digest alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownFile {
    pub digest: FileDigest,
    /// What the [`Sink`] did with it; `None` for a document [`Reuse`]
    /// proved on disk (boxed: after one new run nearly all are that).
    pub sunk: Option<Box<Sunk>>,
}

/// What a [`Sink`] did with a document: whether it changed the file, and
/// the file's status afterwards when it has one (for the stat cache).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sunk {
    pub changed: bool,
    pub stat: Option<crate::stat_cache::Stat>,
}

impl Projection {
    /// Every document's path, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .files
            .keys()
            .chain(self.known.iter().map(|f| &f.digest.path))
            .cloned()
            .collect();
        paths.sort();
        paths
    }

    pub fn len(&self) -> usize {
        self.files.len() + self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Documents of a run rendered before, by the run's document key
/// ([`run_key`]): `Some` with their digests when the caller has proved they
/// are on disk unchanged, so they need not be rendered again. The key
/// covers everything a run's documents are rendered from, so a changed
/// input gives another key.
pub type Reuse<'r> = &'r (dyn Fn(&str) -> Option<Vec<FileDigest>> + Sync);

/// Entries an earlier projection made, by [`Entry::key`]: asked once with
/// every run's key (`None` for a run that is read every time), it answers
/// with each run's kept entry, if any, in the same order. A run answered
/// is not read in the first pass. The key covers everything an entry is
/// made from but what is set anew each time, so an entry kept is the one
/// reading the run again would make.
pub type KnownEntries<'k> = &'k (dyn Fn(&[Option<&str>]) -> Vec<Option<Entry>> + Sync);

/// Keeps every run's entry once they are made (for [`KnownEntries`] next
/// time); called on a thread of its own while the documents render.
pub type KeepEntries<'k> = &'k (dyn Fn(&[Entry]) + Sync);

/// Takes a batch of rendered run documents (path, bytes) out of the
/// projection and stores them, returning each one's digest and what became
/// of it, in any order: finalize writes them to disk as they are rendered,
/// so that a large ledger's documents are never all in memory at once.
/// They then count as known documents.
pub type Sink<'s> =
    &'s (dyn Fn(Vec<(String, Vec<u8>)>) -> Result<Vec<KnownFile>, crate::Error> + Sync);

/// Run documents rendered before a batch goes to the [`Sink`].
const SINK_BATCH: usize = 256;

/// Renders every document, reading the runs from `input`; takes each run's
/// documents from `reuse` when it has them (`salt` names the tool and
/// configuration; it enters every run key), and hands those it renders to
/// `sink` when there is one.
pub fn project_reusing(
    input: &Input<'_>,
    reuse: Option<(&str, Reuse<'_>)>,
    known: Option<(KnownEntries<'_>, Option<KeepEntries<'_>>)>,
    sink: Option<Sink<'_>>,
) -> Result<Projection, crate::Error> {
    let mut phases = crate::clock::Phases::start();
    let entries = entries(input, reuse.map(|(salt, _)| salt), known.map(|(k, _)| k))?;
    phases.mark("project: entries");
    let keep = known.and_then(|(_, keep)| keep);
    // The stage audit log, the largest ledger-wide document, on a thread of
    // its own while this one renders the other ledger-wide documents and
    // then the runs' documents on every core.
    let (mut files, (rendered, known, run_keys)) = std::thread::scope(|scope| {
        if let Some(keep) = keep {
            scope.spawn(|| keep(&entries));
        }
        let log = scope.spawn(|| docs::stage_audit_log(input, &entries).into_bytes());
        let others = ledger_documents(input, &entries);
        let run_docs = run_documents(input, &entries, reuse, sink);
        let mut files = BTreeMap::new();
        files.insert(
            input.config.finalize.stage_audit_log.clone(),
            log.join().expect("the stage audit log thread panicked"),
        );
        files.extend(others);
        run_docs.map(|docs| (files, docs))
    })?;
    files.extend(rendered);
    phases.mark("project: documents");
    Ok(Projection {
        files,
        known,
        run_keys,
        entries,
    })
}

impl Entry {
    /// What `finalize` prints of the run; the entry's strings move into it.
    pub fn into_outline(self) -> RunOutline {
        RunOutline {
            governance_passed: self.governance_passed(),
            failed_checks: self.failed_checks(),
            no_summary: match (&self.paths.summary, &self.report) {
                (Some(_), _) => None,
                (None, ReportState::Missing) => Some("no report among the run's products".into()),
                (None, ReportState::NotStored { .. }) => {
                    Some("the report is recorded by digest only".into())
                }
                (None, ReportState::Invalid { .. }) => {
                    Some("the report does not match ledger.yaml report".into())
                }
                (None, ReportState::Unread { .. }) => {
                    Some("the stored report is not the one the result signs".into())
                }
                (None, ReportState::Valid { .. }) => Some("the report path is unsafe".into()),
            },
            run_id: self.run_id,
            tag: self.tag,
            status: self.status,
            paths: self.paths,
        }
    }
}

/// The ledger-wide documents but the stage audit log: the registry,
/// candidate queue, next-run plan, handoff readiness and failure patterns.
fn ledger_documents(input: &Input<'_>, views: &[Entry]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let registry = &input.config.finalize.registry_dir;
    files.insert(
        format!("{registry}/factor_experiment_registry.csv"),
        registry::registry_csv(views),
    );
    files.insert(
        format!("{registry}/factor_experiment_leaderboard.md"),
        registry::leaderboard(input, views).into_bytes(),
    );
    let candidates = queue::candidates(input, views);
    let plan = queue::plan(input, views, &candidates);
    files.insert(
        format!("{registry}/factor_candidate_queue.csv"),
        queue::queue_csv(&candidates),
    );
    files.insert(
        format!("{registry}/factor_candidate_queue.md"),
        queue::queue_md(input, &candidates).into_bytes(),
    );
    files.insert(format!("{registry}/next_run_plan.json"), json_bytes(&plan));
    files.insert(
        format!("{registry}/next_run_plan.md"),
        queue::plan_md(&plan).into_bytes(),
    );
    let readiness = handoff::handoff(input, views, &plan);
    let handoff_dir = &input.config.finalize.handoff_dir;
    files.insert(
        format!("{handoff_dir}/handoff_readiness.json"),
        json_bytes(&readiness),
    );
    files.insert(
        format!("{handoff_dir}/handoff_readiness.md"),
        handoff::markdown(&readiness).into_bytes(),
    );
    let patterns = failures::patterns(views);
    let failure_dir = &input.config.finalize.failure_dir;
    files.insert(
        format!("{failure_dir}/failure_patterns.csv"),
        failures::patterns_csv(&patterns),
    );
    files.insert(
        format!("{failure_dir}/failure_pattern_summary.md"),
        failures::summary(&patterns).into_bytes(),
    );
    files
}

/// The key of a run's documents: SHA-256 over `salt` (the tool and
/// configuration), the options, the trust file's name, and the digests of
/// the run's view and of the previous run of its factor (`view_digest`),
/// the only other run its documents read.
pub fn run_key(salt: &str, input: &Input<'_>, view: &str, previous: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Key<'k> {
        salt: &'k str,
        options: Options,
        trust_file: &'k str,
        view: &'k str,
        previous: Option<&'k str>,
    }
    sha256_json(&Key {
        salt,
        options: input.options,
        trust_file: input.trust_file,
        view,
        previous,
    })
}

/// SHA-256 (hex) of `value`'s compact JSON.
fn sha256_json<T: Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).expect("keys serialize");
    crate::record::canon::sha256_hex(&bytes)
}

/// SHA-256 over everything of a view its documents are rendered from but
/// the document paths ([`entry_digest`] adds those): the run's records (ids
/// and signatures), what could not be read, what was read of its stored
/// files (by digest), verify's findings about it and the committee's tally.
fn view_digest(view: &View<'_>) -> String {
    use crate::record::canon::sha256_hex;
    #[derive(Serialize)]
    struct Digested<'d> {
        run_id: &'d str,
        /// Kind, record id, and each signature's key id and signature.
        records: Vec<(crate::record::Kind, &'d str, Vec<[&'d str; 2]>)>,
        unreadable: &'d [(String, String)],
        report: Option<(&'static str, &'d str, String)>,
        log_matches: Option<bool>,
        integrity: &'d [String],
        inputs: BTreeMap<&'d String, String>,
        status: StageStatus,
        decision: &'d Option<crate::committee::Tally>,
    }
    let run = view.run;
    let e = view.extras;
    sha256_json(&Digested {
        run_id: &run.run_id,
        records: run
            .records
            .iter()
            .map(|(kind, r)| {
                let sigs = r.envelope.signatures.iter();
                let sigs = sigs.map(|s| [s.keyid.as_str(), s.sig.as_str()]).collect();
                (*kind, r.id.as_str(), sigs)
            })
            .collect(),
        unreadable: &run.unreadable,
        report: match &e.report {
            None => None,
            Some(ReportSource::Stored { path, bytes }) => Some(("stored", path, sha256_hex(bytes))),
            Some(ReportSource::NotStored { path, bytes }) => {
                Some(("not_stored", path, bytes.to_string()))
            }
            Some(ReportSource::Unread { path, why }) => Some(("unread", path, why.clone())),
        },
        log_matches: e.log_matches,
        integrity: &e.integrity,
        inputs: e.inputs.iter().map(|(p, b)| (p, sha256_hex(b))).collect(),
        status: view.status,
        decision: &view.decision,
    })
}

/// SHA-256 over an entry's view digest and its document paths (final,
/// after shared directories are resolved).
fn entry_digest(entry: &Entry) -> String {
    sha256_json(&(&entry.digest, &entry.paths))
}

/// Documents rendered (path, bytes).
type Rendered = Vec<(String, Vec<u8>)>;

/// Documents, documents known on disk, and run keys, as [`run_documents`]
/// returns them.
type RunDocuments = (Rendered, Vec<KnownFile>, Vec<String>);

/// Every run's own documents (final summary, run review, governance check
/// and remediation plan), rendered on every core: each run's documents
/// depend on that run and the one before it of the same factor only. With
/// `reuse`, a run whose documents it has is not rendered (nor read again);
/// with `sink`, the documents rendered go there in batches and come back
/// as known.
fn run_documents(
    input: &Input<'_>,
    entries: &[Entry],
    reuse: Option<(&str, Reuse<'_>)>,
    sink: Option<Sink<'_>>,
) -> Result<RunDocuments, crate::Error> {
    let previous = previous_of_factor(entries);
    let mut known = Vec::new();
    let mut keys = Vec::new();
    let mut todo = Vec::new();
    match reuse {
        Some((salt, reuse)) => {
            // Each entry's digest once, though it enters two keys (its own
            // run's and the next run of its factor's).
            let digests: Vec<String> = crate::par::chunks(entries, 64, |part| {
                part.iter().map(entry_digest).collect::<Vec<_>>()
            })
            .concat();
            // Each run's key, and its documents where the caller proves
            // them on disk (a status call per file), on every core.
            let runs: Vec<usize> = (0..entries.len()).collect();
            let looked = crate::par::chunks(&runs, 64, |part| {
                part.iter()
                    .map(|&i| {
                        let previous_digest = previous[i].map(|p| digests[p].as_str());
                        let key = run_key(salt, input, &digests[i], previous_digest);
                        let files = reuse(&key);
                        (key, files)
                    })
                    .collect::<Vec<_>>()
            });
            // Each known document's digest moves once, into a list of its
            // exact size (600,000 at 100,000 runs).
            let count = looked
                .iter()
                .flatten()
                .filter_map(|(_, f)| f.as_ref())
                .map(Vec::len)
                .sum();
            known.reserve_exact(count);
            for (i, (key, files)) in looked.into_iter().flatten().enumerate() {
                keys.push(key);
                match files {
                    Some(files) => known.extend(
                        files
                            .into_iter()
                            .map(|digest| KnownFile { digest, sunk: None }),
                    ),
                    None => todo.push(i),
                }
            }
        }
        None => todo.extend(0..entries.len()),
    }
    let _progress = crate::progress::begin("finalize: run documents", todo.len());
    let parts = crate::par::chunks(&todo, 64, |part| {
        render_part(input, entries, &previous, part, sink)
    });
    let parts = parts.into_iter().collect::<Result<Vec<_>, _>>()?;
    // Each document's digest is held once: a 100,000-run ledger has 600,000.
    known.reserve_exact(parts.iter().map(|(_, k)| k.len()).sum());
    let mut files = Vec::new();
    for (f, k) in parts {
        files.extend(f);
        known.extend(k);
    }
    known.sort_by(|a, b| a.digest.path.cmp(&b.digest.path));
    Ok((files, known, keys))
}

/// Renders the documents of the runs numbered `part` (ascending entry
/// indices), reading each run and, where it is not at hand, the previous
/// run of its factor. Holds the newest run read of each factor.
fn render_part(
    input: &Input<'_>,
    entries: &[Entry],
    previous: &[Option<usize>],
    part: &[usize],
    sink: Option<Sink<'_>>,
) -> Result<(Rendered, Vec<KnownFile>), crate::Error> {
    // What to read, in order: (entry, whether to render it). A previous
    // run is read first when the newest run of its factor read so far is
    // another one.
    let mut plan: Vec<(usize, bool)> = Vec::with_capacity(part.len());
    let mut newest: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in part {
        if let Some(p) = previous[i] {
            let factor = entries[p].factor().expect("a previous run has a report");
            if newest.get(factor) != Some(&p) {
                plan.push((p, false));
                newest.insert(factor, p);
            }
        }
        plan.push((i, true));
        if let Some(factor) = entries[i].factor() {
            newest.insert(factor, i);
        }
    }
    let which: Vec<usize> = plan.iter().map(|&(i, _)| entries[i].source).collect();
    let mut held: BTreeMap<String, (usize, Run, RunExtras)> = BTreeMap::new();
    let (mut out, mut known) = (Vec::new(), Vec::new());
    let mut rendered = 0;
    input.runs.read(&which, &mut |k, run, extras| {
        let (i, render) = plan[k];
        let entry = &entries[i];
        if render {
            let mut view = view_of(input, &run, &extras);
            view.paths = entry.paths.clone();
            if view.status != StageStatus::InProgress {
                view.checks = Some(governance::checks(input, &view));
            }
            let before = previous[i].map(|p| {
                let factor = entries[p].factor().expect("a previous run has a report");
                let (at, run, extras) = &held[factor];
                debug_assert_eq!(*at, p, "the plan reads each previous run first");
                let mut view = view_of(input, run, extras);
                view.paths = entries[p].paths.clone();
                view
            });
            render_run(input, &view, before.as_ref(), &mut out);
            rendered += 1;
            if rendered % 64 == 0 {
                crate::progress::inc(64);
            }
            if let Some(sink) = sink.filter(|_| out.len() >= SINK_BATCH) {
                known.extend(sink(std::mem::take(&mut out))?);
            }
        }
        if let Some(factor) = entry.factor() {
            held.insert(factor.to_string(), (i, run, extras));
        }
        Ok(())
    })?;
    if let Some(sink) = sink.filter(|_| !out.is_empty()) {
        known.extend(sink(std::mem::take(&mut out))?);
    }
    Ok((out, known))
}

/// One run's documents, appended to `out`.
fn render_run(
    input: &Input<'_>,
    view: &View<'_>,
    previous: Option<&View<'_>>,
    out: &mut Vec<(String, Vec<u8>)>,
) {
    let p = &view.paths;
    if let (Some(path), Some(report)) = (&p.summary, view.report.report()) {
        out.push((
            path.clone(),
            docs::final_summary(input, view, report).into_bytes(),
        ));
    }
    if let (Some(path), Some(report)) = (&p.review, view.report.report()) {
        out.push((
            path.clone(),
            docs::run_review(input, view, report, previous).into_bytes(),
        ));
    }
    if let Some(checks) = &view.checks {
        let gov = governance::Document::new(view, checks);
        let plan = governance::Plan::new(input, view, checks);
        let pairs = [
            (&p.governance_json, json_bytes(&gov)),
            (&p.governance_md, gov.markdown().into_bytes()),
            (&p.remediation_json, json_bytes(&plan)),
            (&p.remediation_md, plan.markdown().into_bytes()),
        ];
        for (path, bytes) in pairs {
            if let Some(path) = path {
                out.push((path.clone(), bytes));
            }
        }
    }
}

fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("documents always serialize");
    bytes.push(b'\n');
    bytes
}

/// For each entry, the newest earlier entry with a valid report of the
/// same factor.
fn previous_of_factor(entries: &[Entry]) -> Vec<Option<usize>> {
    let mut newest: BTreeMap<&str, usize> = BTreeMap::new();
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let factor = e.factor()?;
            newest.insert(factor, i)
        })
        .collect()
}

/// Every run's entry in ledger order, with document paths resolved; the
/// runs are read on every core, one at a time per core. With a `salt` (the
/// caller reuses documents), entries carry their document digest and their
/// key, and those `known` has are taken from it instead of being read.
fn entries(
    input: &Input<'_>,
    salt: Option<&str>,
    known: Option<KnownEntries<'_>>,
) -> Result<Vec<Entry>, crate::Error> {
    let count = input.runs.count();
    let keys: Vec<Option<(String, String)>> = (0..count)
        .map(|i| {
            let salt = salt?;
            let (run_id, version) = input.runs.identity(i)?;
            let key = entry_key(input, salt, &run_id, &version);
            Some((run_id, key))
        })
        .collect();
    let asked: Vec<Option<&str>> = keys
        .iter()
        .map(|k| k.as_ref().map(|(_, key)| key.as_str()))
        .collect();
    let mut kept = match known {
        Some(known) => known(&asked),
        None => Vec::new(),
    };
    drop(asked);
    kept.resize_with(count, || None);
    let mut todo = Vec::new();
    for (i, slot) in kept.iter_mut().enumerate() {
        match (slot.as_mut(), &keys[i]) {
            // The run id is asked for too: a kept entry must be this run's.
            (Some(entry), Some((run_id, key))) if &entry.run_id == run_id => {
                entry.source = i;
                entry.decision = entry
                    .result_id
                    .as_ref()
                    .and_then(|_| input.board.tally(&entry.run_id));
                entry.paths = base_paths(input.config, &entry.run_id, entry.status, &entry.report);
                entry.key = Some(key.clone());
            }
            _ => {
                *slot = None;
                todo.push(i);
            }
        }
    }
    // In place: the kept entries' list becomes the entries' list, with room
    // for the runs read below.
    // (`filter_map` collects in place; `flatten` would allocate anew.)
    #[allow(clippy::filter_map_identity)]
    let mut entries: Vec<Entry> = kept.into_iter().filter_map(|e| e).collect();
    entries.reserve_exact(todo.len());
    let _progress = crate::progress::begin("finalize: read runs", todo.len());
    let parts = crate::par::chunks(&todo, 64, |part| {
        let mut out = Vec::with_capacity(part.len());
        input.runs.read(part, &mut |k, run, extras| {
            let view = view_of(input, &run, &extras);
            let mut entry = Entry::of(input, &view, part[k], salt.is_some());
            entry.key = keys[part[k]].as_ref().map(|(_, key)| key.clone());
            out.push(entry);
            if out.len() % 64 == 0 {
                crate::progress::inc(64);
            }
            Ok(())
        })?;
        Ok::<_, crate::Error>(out)
    });
    for part in parts {
        entries.extend(part?);
    }
    entries.sort_by(|a, b| (&a.at, &a.run_id).cmp(&(&b.at, &b.run_id)));
    resolve_shared_dirs(input.config, &mut entries);
    Ok(entries)
}

/// The key of the entry of run `run_id` read from `version`
/// ([`RunSource::identity`]): a digest of that and of everything else an
/// entry is made from, but what is set anew each time (see [`Entry`]).
/// `salt` names the tool and the configuration.
fn entry_key(input: &Input<'_>, salt: &str, run_id: &str, version: &str) -> String {
    #[derive(Serialize)]
    struct Keyed<'k> {
        format: &'static str,
        salt: &'k str,
        run_id: &'k str,
        version: &'k str,
        trust_file: &'k str,
        options: Options,
        /// The document digest covers the tally.
        decision: Option<crate::committee::Tally>,
    }
    sha256_json(&Keyed {
        format: ENTRY_FORMAT,
        salt,
        run_id,
        version,
        trust_file: input.trust_file,
        options: input.options,
        decision: input.board.tally(run_id),
    })
}

/// Names what an [`Entry`] holds and how it is made; a change to either
/// within one release must change this, so that no kept entry outlives it.
const ENTRY_FORMAT: &str = "ledger.entry/1";

/// One run's view, with its own document paths (before shared directories
/// are resolved) and no governance checks yet.
fn view_of<'a>(input: &Input<'_>, run: &'a Run, extras: &'a RunExtras) -> View<'a> {
    let preflight = run.preflight();
    let context = run.context();
    let (tag, workflow, owner) = match (&preflight, &context) {
        (Some(p), _) => (p.tag.clone(), p.workflow.clone(), p.owner.clone()),
        (None, Some(c)) => (c.tag.clone(), c.workflow.clone(), c.owner.clone()),
        (None, None) => Default::default(),
    };
    let commit = preflight
        .as_ref()
        .and_then(|p| p.git.commit.clone())
        .or_else(|| context.as_ref().and_then(|c| c.git.commit.clone()));
    let report = match &extras.report {
        None => ReportState::Missing,
        Some(ReportSource::NotStored { path, bytes }) => ReportState::NotStored {
            path: path.clone(),
            bytes: *bytes,
        },
        Some(ReportSource::Unread { path, why }) => ReportState::Unread {
            path: path.clone(),
            why: why.clone(),
        },
        Some(ReportSource::Stored { path, bytes }) => {
            match report::read(bytes, &input.config.report) {
                Ok(report) => ReportState::Valid {
                    path: path.clone(),
                    report: Box::new(report),
                },
                Err(problems) => ReportState::Invalid {
                    path: path.clone(),
                    problems,
                },
            }
        }
    };
    let mut view = View {
        run,
        extras,
        status: StageStatus::of(run.status()),
        tag,
        workflow,
        owner,
        commit,
        date: run.at().get(..10).unwrap_or("").to_string(),
        report,
        checks: None,
        decision: run
            .get(crate::record::Kind::Result)
            .and_then(|_| input.board.tally(&run.run_id)),
        paths: Paths::default(),
    };
    view.paths = base_paths(input.config, &run.run_id, view.status, &view.report);
    view
}

/// A run's own document paths, before shared directories are resolved.
fn base_paths(config: &Config, run_id: &str, status: StageStatus, report: &ReportState) -> Paths {
    let mut paths = Paths::default();
    let run_dir = format!("{}/{}", config.audit.dir, run_id);
    if status != StageStatus::InProgress && is_relative_inside(&run_dir) {
        paths.governance_json = Some(format!("{run_dir}/governance_audit_check.json"));
        paths.governance_md = Some(format!("{run_dir}/governance_audit_check.md"));
        paths.remediation_json = Some(format!("{run_dir}/governance_remediation_plan.json"));
        paths.remediation_md = Some(format!("{run_dir}/governance_remediation_plan.md"));
    }
    if let ReportState::Valid { path, .. } = report {
        if is_relative_inside(path) {
            let dir = parent(path);
            paths.summary = Some(join(dir, &config.finalize.summary_name));
            paths.review = Some(join(dir, &config.finalize.review_name));
        }
    }
    paths
}

/// When several runs wrote their report into one directory (a rerun with the
/// same output folder), the newest run's documents keep the plain names and
/// earlier runs' get their run id inserted: `<stem>.<run_id>.md`.
fn resolve_shared_dirs(config: &Config, views: &mut [Entry]) {
    let mut owner_of: BTreeMap<String, usize> = BTreeMap::new();
    for (i, v) in views.iter().enumerate() {
        if let Some(s) = &v.paths.summary {
            owner_of.insert(s.clone(), i);
        }
    }
    for (i, v) in views.iter_mut().enumerate() {
        let Some(summary) = v.paths.summary.clone() else {
            continue;
        };
        if owner_of.get(&summary) == Some(&i) {
            continue;
        }
        let dir = parent(&summary).to_string();
        let id = &v.run_id;
        v.paths.summary = Some(join(&dir, &with_id(&config.finalize.summary_name, id)));
        v.paths.review = Some(join(&dir, &with_id(&config.finalize.review_name, id)));
    }
}

fn with_id(name: &str, run_id: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{run_id}.{ext}"),
        None => format!("{name}.{run_id}"),
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A relative link from the document at `from` to the file at `to` (both
/// repository-relative).
pub fn link(from: &str, to: &str) -> String {
    let from_dir: Vec<&str> = parent(from).split('/').filter(|c| !c.is_empty()).collect();
    let target: Vec<&str> = to.split('/').collect();
    let common = from_dir
        .iter()
        .zip(&target)
        .take_while(|(a, b)| a == b)
        .count()
        .min(target.len().saturating_sub(1));
    let mut parts: Vec<&str> = vec![".."; from_dir.len() - common];
    parts.extend(&target[common..]);
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative() {
        assert_eq!(
            link("docs/production_research/LOG.md", "gate_results/x/s.md"),
            "../../gate_results/x/s.md"
        );
        assert_eq!(link("a/b/LOG.md", "a/c/s.md"), "../c/s.md");
        assert_eq!(link("a/LOG.md", "a/s.md"), "s.md");
        assert_eq!(link("LOG.md", "a/s.md"), "a/s.md");
        assert_eq!(link("a/x/y.md", "a/x/y/z.md"), "y/z.md");
    }

    #[test]
    fn run_ids_go_before_the_extension() {
        assert_eq!(with_id("summary.md", "r1"), "summary.r1.md");
        assert_eq!(with_id("summary", "r1"), "summary.r1");
    }
}
