//! `ledger finalize`: read the ledger, render the projections, write them
//! into the work tree, and record what was written in a signed `finalize`
//! record. Also the read-only checks behind `finalize --check` and
//! `verify --projections`.
//!
//! Only files the projection names are ever written, only inside the work
//! tree, never through a symlink and never under `.git`. The record is
//! committed after every file is in place, so a failure leaves the ledger as
//! it was.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use crate::files::FileDigest;
use crate::history::Run;
use crate::journal;
use crate::project::{self, KnownFile, Options, Projection, ReportSource, RunExtras, Sunk};
use crate::record::{canon, FinalizePredicate, Kind, ResultPredicate, Subject};
use crate::safe_write::{Dir, SafeDirs};
use crate::sign::Signer;
use crate::stat_cache::{self, RunDocs, StatCache};
use crate::store::{Identity, Snapshot};
use crate::trust::Trust;
use crate::verify::{self, Finding};
use crate::workspace::Workspace;
use crate::Error;

/// A projection with what it was computed from.
#[derive(Debug)]
pub struct Computed {
    /// The ledger commit read.
    pub head: String,
    pub runs: usize,
    /// What `finalize` prints of each run (the projection's entries are
    /// dropped once the documents are rendered).
    pub outlines: Vec<project::RunOutline>,
    pub config_sha256: String,
    pub options: Options,
    pub projection: Projection,
    /// Verify's findings that concern no single run (commits, writers).
    pub ledger_findings: Vec<Finding>,
    /// The static HTML site, when asked for ([`compute_site`]).
    pub site: Option<BTreeMap<String, Vec<u8>>>,
    /// The ledger head an earlier finalize verified, when only what came
    /// after it was verified now; `None` after a whole verification.
    pub verified_since: Option<String>,
    /// The stat cache as this call found it (empty without the cache), for
    /// [`write_tracked`].
    stats: StatCache,
}

/// Reads the ledger at its tip, verifies it against `trust`, and renders the
/// projection (only the stage log and `tag`'s documents when a tag is given).
/// With `cache`, verifies only what the ledger added since the last such
/// call (`.git/ledger/finalize-cache.json`) and updates the cache. With
/// `write` (the caller writes the projection next, [`write_tracked`]), runs'
/// documents are written to the work tree as they are rendered, so that
/// they are never all in memory at once.
pub fn compute(
    ws: &Workspace,
    trust: &Trust,
    options: Options,
    tag: Option<&str>,
    cache: bool,
    write: bool,
) -> Result<Computed, Error> {
    let mut phases = crate::clock::Phases::start();
    let here = crate::proc::Here::read();
    let use_cache = cache;
    let cache = if use_cache {
        VerifyCache::load(ws, trust)
    } else {
        None
    };
    let tip = ws.store.require_tip()?;
    let base = cache.as_ref().and_then(|c| {
        let base = gix::ObjectId::from_hex(c.head.as_bytes()).ok()?;
        let reachable = ws.store.has_commit(base) && ws.store.is_ancestor(base, tip).ok()?;
        reachable.then_some(base)
    });
    let since = match (base, cache) {
        (Some(base), Some(cache)) => {
            verify::verify_since(&ws.store, trust, &here, base, cache.findings)?
        }
        _ => None,
    };
    let verified_since = since.as_ref().and(base).map(|b| b.to_string());
    let verified = match since {
        Some(verified) => verified,
        None => verify::verify_with_runs(&ws.store, trust, &here)?,
    };
    phases.mark("verify");
    if use_cache {
        VerifyCache::save(ws, trust, &verified.report);
    }
    let mut computed = compute_inner(ws, trust, options, tag, verified, false, use_cache, write)?;
    computed.verified_since = verified_since;
    Ok(computed)
}

/// What the last `finalize` verified: the ledger head and the findings, in
/// `<git dir>/ledger/finalize-cache.json`. The next finalize verifies only
/// what the ledger added since ([`verify::verify_since`]). The cache counts
/// only when it was made by this version of ledger with the same trust and
/// committee files and its head is an ancestor of the tip; otherwise the
/// whole ledger is verified and the cache rebuilt. `ledger verify` never
/// reads it.
#[derive(Serialize, serde::Deserialize)]
struct VerifyCache {
    tool: String,
    /// SHA-256 over the trust and committee files' bytes.
    trust: String,
    head: String,
    findings: Vec<Finding>,
}

impl VerifyCache {
    fn path(ws: &Workspace) -> std::path::PathBuf {
        ws.store
            .git_dir()
            .join("ledger")
            .join("finalize-cache.json")
    }

    fn trust_digest(trust: &Trust) -> String {
        let mut bytes = std::fs::read(&trust.writers.path).unwrap_or_default();
        bytes.push(0);
        if let Some(c) = &trust.committee {
            bytes.extend(std::fs::read(&c.path).unwrap_or_default());
        }
        canon::sha256_hex(&bytes)
    }

    fn tool() -> String {
        format!("ledger {}", env!("CARGO_PKG_VERSION"))
    }

    /// The cache, when it was made by this ledger with these trust files.
    fn load(ws: &Workspace, trust: &Trust) -> Option<VerifyCache> {
        let bytes = std::fs::read(Self::path(ws)).ok()?;
        let cache: VerifyCache = serde_json::from_slice(&bytes).ok()?;
        (cache.tool == Self::tool() && cache.trust == Self::trust_digest(trust)).then_some(cache)
    }

    /// Best effort: a cache that cannot be written only costs time later.
    fn save(ws: &Workspace, trust: &Trust, report: &verify::Report) {
        let cache = VerifyCache {
            tool: Self::tool(),
            trust: Self::trust_digest(trust),
            head: report.head.clone(),
            findings: report.findings.clone(),
        };
        let bytes = serde_json::to_vec(&cache).expect("the cache serializes");
        crate::cache_file::write_bytes(&Self::path(ws), &bytes);
    }
}

/// [`compute`] from a verification already done (`verify --projections`).
pub fn compute_from(
    ws: &Workspace,
    trust: &Trust,
    options: Options,
    tag: Option<&str>,
    verified: verify::Verified,
) -> Result<Computed, Error> {
    compute_inner(ws, trust, options, tag, verified, false, false, false)
}

/// `ledger report --html`: verifies the ledger and renders the projection
/// (default options) and, from it, the static site ([`project::html`]).
pub fn compute_site(ws: &Workspace, trust: &Trust) -> Result<Computed, Error> {
    let verified = verify::verify_with_runs(&ws.store, trust, &crate::proc::Here::read())?;
    compute_inner(
        ws,
        trust,
        Options::default(),
        None,
        verified,
        true,
        false,
        false,
    )
}

#[allow(clippy::too_many_arguments)]
fn compute_inner(
    ws: &Workspace,
    trust: &Trust,
    options: Options,
    tag: Option<&str>,
    verified: verify::Verified,
    site: bool,
    cache: bool,
    write: bool,
) -> Result<Computed, Error> {
    // With a tag only the stage log and that run's documents are kept: no
    // run's documents are reused or written early.
    let reuse = cache && tag.is_none();
    let write = write && tag.is_none();
    let verify::Verified {
        report,
        runs,
        decisions,
    } = verified;
    let mut phases = crate::clock::Phases::start();
    let store = &ws.store;
    let tip = gix::ObjectId::from_hex(report.head.as_bytes()).expect("verify reports a commit id");
    let mut by_run: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        if let Some(run) = &f.run {
            by_run.entry(run).or_default().push(f);
        }
    }
    // The tree each run is read from, for keeping entries between calls,
    // in the order of `runs` (ids only: 100,000 runs hold 2 MB).
    let mut trees = Vec::new();
    if reuse {
        let listed = store.snapshot(tip)?.list("runs")?.unwrap_or_default();
        let by_name: BTreeMap<String, gix::ObjectId> = listed
            .into_iter()
            .filter(|item| item.is_tree())
            .map(|item| (item.name, item.id))
            .collect();
        trees.extend(runs.iter().map(|r| by_name.get(&r.run_id).copied()));
    }
    let source = LedgerRuns {
        git_dir: store.git_dir(),
        ref_name: store.ref_name(),
        tip,
        config: &ws.config,
        runs: &runs,
        findings: &by_run,
        trees: &trees,
    };
    let trust_name = trust
        .writers
        .path
        .strip_prefix(&ws.root)
        .unwrap_or(&trust.writers.path)
        .display()
        .to_string();
    let remote = remote_state(ws, tip)?;
    let board = crate::committee::Board::new(&ws.config.committee, decisions);
    let input = project::Input {
        runs: &source,
        board: &board,
        config: &ws.config,
        trust_file: &trust_name,
        remote: remote.as_ref(),
        options,
    };
    let config_bytes = ws.config_bytes();
    let config_sha256 = canon::sha256_hex(&config_bytes);
    let root = &ws.root;
    let git_dir = ws.store.git_dir();
    // The caches, each read on a thread of its own for a small ledger;
    // one after another for a large one, so that a 100,000-run ledger's
    // (425 MB of JSON) are not all being parsed at once. Without the stat cache
    // every file is read back and compared.
    let load_stats = || match cache {
        true => StatCache::load(git_dir, root),
        false => StatCache::default(),
    };
    let load_docs = || reuse.then(|| RunDocs::load(git_dir, root));
    let load_kept = || reuse.then(|| stat_cache::Entries::load(git_dir, root));
    let small = runs.len() <= SIDE_BY_SIDE_RUNS;
    let (stats, run_docs, kept) = match small {
        true => std::thread::scope(|scope| {
            let run_docs = scope.spawn(load_docs);
            let kept = scope.spawn(load_kept);
            let stats = load_stats();
            let joined = "a cache reader panicked";
            (
                stats,
                run_docs.join().expect(joined),
                kept.join().expect(joined),
            )
        }),
        false => (load_stats(), load_docs(), load_kept()),
    };
    // Each file written early is then held once, as a known document with
    // its status after writing.
    let sink = |batch: Vec<(String, Vec<u8>)>| -> Result<Vec<KnownFile>, Error> {
        let mut dirs = SafeDirs::new(root);
        batch
            .into_iter()
            .map(|(path, bytes)| {
                let (written, entry, sha256) = write_one(&path, &bytes, &stats, &mut dirs)?;
                Ok(KnownFile {
                    digest: FileDigest {
                        path,
                        sha256,
                        bytes: bytes.len() as u64,
                    },
                    sunk: Some(Box::new(Sunk {
                        changed: written.changed,
                        stat: entry.as_ref().map(stat_cache::Entry::stat),
                    })),
                })
            })
            .collect()
    };
    let sink: Option<project::Sink<'_>> = write.then_some(&sink);
    let mut projection = if reuse {
        // A run's documents are not rendered again when the run documents
        // cache has its key and the stat cache proves every one of its
        // files on disk with the recorded digest.
        let docs = std::sync::Mutex::new(run_docs.unwrap_or_default());
        let known = |key: &str| -> Option<Vec<FileDigest>> {
            let files = docs.lock().expect("no reader panicked").take(key)?;
            files
                .iter()
                .all(|f| {
                    std::fs::symlink_metadata(root.join(&f.path)).is_ok_and(|m| {
                        stat_cache::Sha256::from_hex(&f.sha256)
                            .is_some_and(|sha256| stats.unchanged(&f.path, &m, sha256).is_some())
                    })
                })
                .then_some(files)
        };
        let kept = std::sync::Mutex::new(kept);
        // Asked once; the cache goes as soon as its entries are taken.
        let kept = |keys: &[Option<&str>]| {
            let mut cache = kept
                .lock()
                .expect("no reader panicked")
                .take()
                .unwrap_or_default();
            keys.iter().map(|k| k.and_then(|k| cache.take(k))).collect()
        };
        let salt = format!("ledger {}\n{config_sha256}", env!("CARGO_PKG_VERSION"));
        // Saved while the documents render (after them for a large
        // ledger, whose documents' memory comes first).
        let keep = |entries: &[project::Entry]| {
            stat_cache::Entries::save(git_dir, root, entries);
        };
        let keep: Option<project::KeepEntries<'_>> = (write && small).then_some(&keep);
        project::project_reusing(&input, Some((&salt, &known)), Some((&kept, keep)), sink)?
    } else {
        project::project_reusing(&input, None, None, sink)?
    };
    phases.mark("project");
    if reuse && write && !small {
        stat_cache::Entries::save(git_dir, root, &projection.entries);
        phases.mark("project: keep entries");
    }
    let site = site.then(|| project::html::site(&input, &projection, &tip.to_string()));
    if let Some(tag) = tag {
        let found = crate::history::by_id_or_tag(
            &projection.entries,
            tag,
            |e| &e.run_id,
            |e| !tag.is_empty() && e.tag == tag,
        );
        let Some(run) = found else {
            return Err(Error::input(
                "--tag",
                format!("no run with tag or id {tag:?} in the ledger"),
            ));
        };
        let run_id = run.run_id.clone();
        let keep: Vec<String> = run
            .paths
            .all()
            .cloned()
            .chain([ws.config.finalize.stage_audit_log.clone()])
            .collect();
        projection.files.retain(|path, _| keep.contains(path));
        projection.known.retain(|f| keep.contains(&f.digest.path));
        projection.run_keys.clear();
        projection.entries.retain(|e| e.run_id == run_id);
    }
    // Each entry becomes its outline in turn, so the two lists are not
    // held whole side by side.
    let outlines = std::mem::take(&mut projection.entries)
        .into_iter()
        .map(project::Entry::into_outline)
        .collect();
    Ok(Computed {
        head: tip.to_string(),
        runs: runs.len(),
        outlines,
        config_sha256,
        options,
        projection,
        site,
        verified_since: None,
        stats,
        ledger_findings: report
            .findings
            .into_iter()
            .filter(|f| f.run.is_none())
            .collect(),
    })
}

/// The configured remote (ledger.yaml `sync.remote`) against the local tip,
/// from its ledger head as last seen by pull or push.
fn remote_state(
    ws: &Workspace,
    tip: gix::ObjectId,
) -> Result<Option<project::handoff::RemoteState>, Error> {
    let Some(remote) = ws.config.sync.remote.clone() else {
        return Ok(None);
    };
    let store = &ws.store;
    let seen = store.ref_target(&crate::sync::seen_ref(&remote))?;
    let (ahead, diverged) = match seen {
        None => (0, false),
        Some(s) if store.has_commit(s) && store.is_ancestor(s, tip)? => {
            // Finalize records are not work to hand over; counting them
            // would make every finalize stale the handoff document it
            // just wrote.
            let mut ahead = 0;
            for c in store.commits_since(tip, Some(s))? {
                // A finalize commit adds its record and its writer's head.
                if !store.changes_only(&c, &["finalize", "writers"])? {
                    ahead += 1;
                }
            }
            (ahead, false)
        }
        Some(_) => (0, true),
    };
    Ok(Some(project::handoff::RemoteState {
        remote,
        seen: seen.map(|s| s.to_string()),
        ahead,
        diverged,
    }))
}

/// The verified ledger's runs for the projection: each read from the tip
/// (or as verify held it) with its stored report and inputs, and what
/// verify found about it.
struct LedgerRuns<'a> {
    git_dir: &'a Path,
    ref_name: &'a str,
    tip: gix::ObjectId,
    config: &'a crate::config::Config,
    runs: &'a [verify::RunRef],
    findings: &'a BTreeMap<&'a str, Vec<&'a Finding>>,
    /// Each run's tree at the tip, in the order of `runs` (when entries
    /// are kept).
    trees: &'a [Option<gix::ObjectId>],
}

impl project::RunSource for LedgerRuns<'_> {
    fn count(&self) -> usize {
        self.runs.len()
    }

    fn read(
        &self,
        which: &[usize],
        each: &mut dyn FnMut(usize, Run, RunExtras) -> Result<(), Error>,
    ) -> Result<(), Error> {
        crate::store::Store::each_at(
            self.git_dir,
            self.ref_name,
            self.tip,
            which,
            |snapshot, k, &i| self.read_one(snapshot, k, i, each),
        )
    }

    /// The run's tree at the tip, unless verify found fault with the run:
    /// then it is read as verify held it, every time.
    fn identity(&self, i: usize) -> Option<(String, String)> {
        let run = &self.runs[i];
        if run.held.is_some() || self.findings.contains_key(run.run_id.as_str()) {
            return None;
        }
        let tree = self.trees.get(i).copied().flatten()?;
        Some((run.run_id.clone(), tree.to_string()))
    }
}

impl LedgerRuns<'_> {
    /// Reads run `i` (position `k` in the caller's list) and hands it on.
    fn read_one(
        &self,
        snapshot: &Snapshot<'_>,
        k: usize,
        i: usize,
        each: &mut dyn FnMut(usize, Run, RunExtras) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let run = self.runs[i].read(snapshot)?;
        let mut e = load_extras(snapshot, self.config, &run)?;
        // The run's trees, decoded once for its records and its extras.
        snapshot.forget(&format!("runs/{}", run.run_id));
        let findings = self
            .findings
            .get(run.run_id.as_str())
            .map_or(&[][..], |f| f);
        // Verify has already hashed the stored log against the result.
        let has = |code: &str| findings.iter().any(|f| f.code == code);
        e.log_matches = run
            .result()
            .filter(|r| r.log.stored && !has("missing_log"))
            .map(|_| !has("log_mismatch"));
        e.integrity = findings
            .iter()
            .map(|f| match &f.record {
                Some(r) => format!("{r}: {} [{}]", f.message, f.code),
                None => format!("{} [{}]", f.message, f.code),
            })
            .collect();
        each(k, run, e)
    }
}

fn load_extras(
    snapshot: &Snapshot<'_>,
    config: &crate::config::Config,
    run: &crate::history::Run,
) -> Result<RunExtras, Error> {
    let mut extras = RunExtras::default();
    let Some(result) = run.result() else {
        return Ok(extras);
    };
    extras.report = find_report(snapshot, config, &run.run_id, &result)?;
    // Stored inputs are read at the size the context signs, or not at all
    // (verify reports the difference).
    let mut signed: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(c) = run.context() {
        signed.extend(c.inputs.into_iter().map(|i| (i.path, i.bytes)));
        signed.extend(c.freeze.map(|f| (f.path, f.bytes)));
    }
    for (rel, item) in snapshot.walk(&format!("runs/{}/inputs", run.run_id))? {
        let Some(&bytes) = signed.get(&rel) else {
            continue;
        };
        if let Ok(blob) = snapshot.blob_sized(item.id, bytes)? {
            extras.inputs.insert(rel, blob);
        }
    }
    Ok(extras)
}

fn find_report(
    snapshot: &Snapshot<'_>,
    config: &crate::config::Config,
    run_id: &str,
    result: &ResultPredicate,
) -> Result<Option<ReportSource>, Error> {
    let pattern = glob::Pattern::new(&config.report.product)
        .expect("ledger.yaml report.product was checked on load");
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    let Some(product) = result
        .products
        .iter()
        .find(|p| pattern.matches_with(&p.path, options))
    else {
        return Ok(None);
    };
    if !product.stored {
        return Ok(Some(ReportSource::NotStored {
            path: product.path.clone(),
            bytes: product.bytes,
        }));
    }
    let stored = format!("runs/{run_id}/products/{}", product.path);
    Ok(match snapshot.read_sized(&stored, product.bytes)? {
        None => None,
        Some(Ok(bytes)) => Some(ReportSource::Stored {
            path: product.path.clone(),
            bytes,
        }),
        Some(Err(size)) => Some(ReportSource::Unread {
            path: product.path.clone(),
            why: format!(
                "the stored report is {size} bytes but the result signs {}; it was not read",
                product.bytes
            ),
        }),
    })
}

/// How a file on disk compares with the projection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Same,
    Missing,
    Differs,
}

/// One projection file that is not as projected.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    pub path: String,
    pub state: FileState,
    /// Unified diff from the file on disk to the projection.
    pub diff: String,
}

/// What `finalize --check` found: files that differ from the projection,
/// and files this repository cannot reproduce, left uncompared.
#[derive(Debug, Default)]
pub struct Comparison {
    pub differences: Vec<Difference>,
    pub skipped: Vec<Skipped>,
}

/// A projection file not compared, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub path: String,
    pub why: String,
}

/// The projection files this repository cannot reproduce (a path prefix),
/// with why: in a bare copy without the private last-seen ref of
/// `sync.remote`, the handoff readiness documents (they state the writer's
/// view of the remote, which no clone carries). `None` wherever that ref
/// exists or no remote is set.
fn unreproducible(ws: &Workspace) -> Result<Option<(String, String)>, Error> {
    let Some(remote) = &ws.config.sync.remote else {
        return Ok(None);
    };
    let seen = crate::sync::seen_ref(remote);
    if !ws.is_bare() || ws.store.ref_target(&seen)?.is_some() {
        return Ok(None);
    }
    Ok(Some((
        format!("{}/", ws.config.finalize.handoff_dir),
        format!(
            "not checked: handoff readiness states the remote {remote} as last seen by the writer's pull or push ({seen}), which a clone does not have"
        ),
    )))
}

/// Compares the projection with the checkout (the work tree, or HEAD's
/// commit in a bare repository); writes nothing.
pub fn compare(ws: &Workspace, projection: &Projection) -> Result<Comparison, Error> {
    assert!(
        projection.known.is_empty(),
        "differences need a projection rendered in full"
    );
    let unreproducible = unreproducible(ws)?;
    let mut out = Comparison::default();
    for (path, want) in &projection.files {
        if let Some((_, why)) = unreproducible
            .as_ref()
            .filter(|(prefix, _)| path.starts_with(prefix))
        {
            out.skipped.push(Skipped {
                path: path.clone(),
                why: why.clone(),
            });
            continue;
        }
        // A path that cannot be read as a file (a directory, no access) is
        // missing as far as the projection is concerned.
        let (state, have) = match ws.read_checked_in(path) {
            Ok(Some(have)) if &have == want => continue,
            Ok(Some(have)) => (FileState::Differs, have),
            Ok(None) | Err(_) => (FileState::Missing, Vec::new()),
        };
        let have_text = String::from_utf8_lossy(&have);
        let want_text = String::from_utf8_lossy(want);
        let old_header = match state {
            FileState::Missing => "/dev/null".to_string(),
            _ => format!("a/{path}"),
        };
        let diff = similar::TextDiff::from_lines(have_text.as_ref(), want_text.as_ref())
            .unified_diff()
            .context_radius(3)
            .header(&old_header, &format!("b/{path}"))
            .to_string();
        out.differences.push(Difference {
            path: path.clone(),
            state,
            diff,
        });
    }
    Ok(out)
}

/// Up to this many runs (their caches: about 85 MB of JSON) finalize reads
/// its caches side by side and saves the kept entries while the documents
/// render; a larger ledger does one after another, for memory.
const SIDE_BY_SIDE_RUNS: usize = 20_000;

/// A file finalize wrote or found already right.
#[derive(Clone, Debug, Serialize)]
pub struct Written {
    pub path: String,
    pub changed: bool,
}

/// Writes the projection's files: a new file directly (`create_new`), an
/// existing one that differs atomically (temp file + rename), on every core.
pub fn write(root: &Path, projection: &Projection) -> Result<Vec<Written>, Error> {
    Ok(write_known(root, projection, &StatCache::default())?.0)
}

/// [`write()`] for `finalize` in the work tree: files `.git/ledger/written.jsonl`
/// proves unchanged ([`StatCache`]) are not read back; the cache is then
/// replaced by what this call wrote or found. Without `cache` it is neither
/// read nor written.
pub fn write_tracked(
    ws: &Workspace,
    computed: &mut Computed,
    cache: bool,
) -> Result<Vec<Written>, Error> {
    // What only writing needs is taken out of `computed` and dropped here,
    // before the record is made.
    let run_keys = std::mem::take(&mut computed.projection.run_keys);
    // The stat cache compute loaded (with `cache`), not read a second time.
    let known = std::mem::take(&mut computed.stats);
    let git_dir = ws.store.git_dir();
    let (written, entries) = write_known(&ws.root, &computed.projection, &known)?;
    drop(known);
    if cache {
        let root = ws.root.as_path();
        // Run keys come in the entries' order, as the outlines do.
        debug_assert!(run_keys.is_empty() || run_keys.len() == computed.outlines.len());
        let runs = run_keys
            .iter()
            .zip(&computed.outlines)
            .map(|(key, outline)| (key.as_str(), &outline.paths));
        std::thread::scope(|scope| {
            scope.spawn(|| StatCache::save(git_dir, root, &entries));
            RunDocs::save(git_dir, root, runs, &entries);
        });
    }
    Ok(written)
}

fn write_known(
    root: &Path,
    projection: &Projection,
    known: &StatCache,
) -> Result<(Vec<Written>, Vec<stat_cache::Entry>), Error> {
    let entries: Vec<(&String, &Vec<u8>)> = projection.files.iter().collect();
    let _progress = crate::progress::begin("write: files", entries.len());
    let parts = crate::par::chunks(&entries, 64, |part| {
        let mut dirs = SafeDirs::new(root);
        part.iter()
            .map(|(rel, bytes)| {
                let written = write_one(rel, bytes, known, &mut dirs);
                crate::progress::inc(1);
                written.map(|(w, e, _)| (w, e))
            })
            .collect::<Result<Vec<_>, Error>>()
    });
    let mut out = Vec::with_capacity(projection.len());
    let mut stats = Vec::with_capacity(projection.len());
    for part in parts {
        for (written, entry) in part? {
            out.push(written);
            stats.extend(entry);
        }
    }
    // Known documents were written as they were rendered (by the sink), or
    // proved on disk by `known` when they were taken.
    for f in &projection.known {
        let path = &f.digest.path;
        match f.sunk.as_deref() {
            Some(&Sunk { changed, stat }) => {
                out.push(Written {
                    path: path.clone(),
                    changed,
                });
                // The sink's own digest, hex of a SHA-256.
                let sha256 = stat_cache::Sha256::from_hex(&f.digest.sha256);
                stats.extend(
                    stat.zip(sha256)
                        .map(|(s, sha256)| stat_cache::Entry::with(path.clone(), sha256, s)),
                );
            }
            None => {
                out.push(Written {
                    path: path.clone(),
                    changed: false,
                });
                stats.extend(known.entry(path).cloned());
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((out, stats))
}

fn write_one(
    rel: &str,
    bytes: &[u8],
    known: &StatCache,
    dirs: &mut SafeDirs<'_>,
) -> Result<(Written, Option<stat_cache::Entry>, String), Error> {
    let (path, dir) = dirs.path(rel)?;
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let digest = stat_cache::Sha256::of(bytes);
    let sha256 = digest.to_hex();
    let written = |changed| Written {
        path: rel.to_string(),
        changed,
    };
    // A file the stat cache knows is looked at first: unchanged, it is
    // neither read nor written. Any other is created if nothing is there.
    let mut before = None;
    if dir == Dir::Found && known.entry(rel).is_some() {
        before = dirs.existing_file(&path, rel)?;
        if let Some(entry) = before
            .as_ref()
            .and_then(|m| known.unchanged(rel, m, digest))
        {
            return Ok((written(false), Some(entry.clone()), sha256));
        }
    }
    if before.is_none() {
        if let Some(meta) = dirs.create(rel, &path, dir, bytes)? {
            let entry = stat_cache::Entry::new(rel, digest, &meta);
            return Ok((written(true), Some(entry), sha256));
        }
        before = dirs.existing_file(&path, rel)?;
    }
    let existing = match std::fs::read(&path) {
        Ok(have) => Some(have),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    if existing.as_deref() == Some(bytes) {
        // The status from before the read: a change during it shows later.
        let entry = before.map(|m| stat_cache::Entry::new(rel, digest, &m));
        return Ok((written(false), entry, sha256));
    }
    // A different file is replaced atomically.
    let dir = path.parent().expect("a file inside the root has a parent");
    let tmp = dir.join(format!(
        ".{}.ledger-tmp-{}",
        path.file_name()
            .expect("a file path has a name")
            .to_string_lossy(),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            path: path.clone(),
            source,
        }
    })?;
    let entry = std::fs::symlink_metadata(&path)
        .ok()
        .map(|m| stat_cache::Entry::new(rel, digest, &m));
    Ok((written(true), entry, sha256))
}

/// The digests of the projection's rendered files (not its known ones), by path.
fn rendered_digests(projection: &Projection) -> Vec<FileDigest> {
    let entries: Vec<(&String, &Vec<u8>)> = projection.files.iter().collect();
    crate::par::chunks(&entries, 256, |part| {
        part.iter()
            .map(|(path, bytes)| FileDigest {
                path: path.to_string(),
                sha256: canon::sha256_hex(bytes),
                bytes: bytes.len() as u64,
            })
            .collect::<Vec<_>>()
    })
    .concat()
}

/// A little over the bytes of `f`'s manifest line: its path and digest, the
/// JSON around them and the byte count (escapes in a path aside).
fn manifest_line_bytes(f: &FileDigest) -> usize {
    f.path.len() + f.sha256.len() + 64
}

/// Two lists of digests, each sorted by path, as one sorted list.
fn merge_by_path<'f>(
    a: &'f [FileDigest],
    b: impl Iterator<Item = &'f FileDigest>,
) -> impl Iterator<Item = &'f FileDigest> {
    let mut a = a.iter().peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x.path <= y.path => a.next(),
        (Some(_), Some(_)) | (None, Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, None) => None,
    })
}

/// The newest `finalize` record at `snapshot`: (finalize id, predicate).
/// Ids begin with the record's time, so only the records of the latest
/// second are opened (the newest of them by seq).
pub fn newest(snapshot: &Snapshot<'_>) -> Result<Option<(String, FinalizePredicate)>, Error> {
    let mut names: Vec<(String, gix::ObjectId)> = snapshot
        .list("finalize")?
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.name.ends_with(".dsse.json"))
        .map(|i| (i.name, i.id))
        .collect();
    names.sort();
    let mut best: Option<(u64, String, FinalizePredicate)> = None;
    let mut second: Option<String> = None;
    for (name, id) in names.iter().rev() {
        let prefix = name.split('_').next().unwrap_or("").to_string();
        if second.as_ref().is_some_and(|s| *s != prefix) && best.is_some() {
            break;
        }
        let Ok(parsed) = crate::record::parse(&snapshot.blob(*id)?) else {
            continue;
        };
        let Ok(pred) = parsed.payload.predicate_as::<FinalizePredicate>() else {
            continue;
        };
        second = Some(prefix);
        if best
            .as_ref()
            .is_none_or(|(seq, _, _)| parsed.payload.seq > *seq)
        {
            best = Some((parsed.payload.seq, parsed.payload.run_id.clone(), pred));
        }
    }
    Ok(best.map(|(_, id, p)| (id, p)))
}

/// The files a finalize record names, from its manifest; `None` when the
/// manifest is missing or does not match the record's digest.
pub fn manifest(
    snapshot: &Snapshot<'_>,
    finalize_id: &str,
    predicate: &FinalizePredicate,
) -> Result<Option<Vec<FileDigest>>, Error> {
    let Some(bytes) = snapshot.read(&journal::manifest_path(finalize_id))? else {
        return Ok(None);
    };
    if canon::sha256_hex(&bytes) != predicate.manifest.sha256 {
        return Ok(None);
    }
    Ok(crate::record::parse_manifest(&bytes))
}

/// What [`record`] did.
#[derive(Clone, Debug, Serialize)]
pub struct Recorded {
    pub finalize_id: String,
    /// `None` when the newest finalize record already covers these files.
    pub record: Option<String>,
}

/// Commits a signed `finalize` record for `computed`, unless the newest one
/// already names exactly these files and options.
pub fn record(
    ws: &Workspace,
    signer: &Signer,
    identity: &Identity,
    at: OffsetDateTime,
    computed: &Computed,
) -> Result<Recorded, Error> {
    let mut phases = crate::clock::Phases::start();
    let rendered = rendered_digests(&computed.projection);
    phases.mark("record: digests");
    let known = computed.projection.known.iter().map(|k| &k.digest);
    let files = || merge_by_path(&rendered, known.clone());
    // Hashed as it is printed: the bytes are made only for a new record.
    let digest = crate::record::ManifestDigest {
        sha256: crate::record::manifest_sha256(files()),
        files: files().count() as u64,
        bytes: files().map(|f| f.bytes).sum(),
    };
    let tip = ws.store.require_tip()?;
    if let Some((id, newest)) = newest(&ws.store.snapshot(tip)?)? {
        if newest.manifest == digest
            && newest.require_final_summary == computed.options.require_final_summary
            && newest.config_sha256 == computed.config_sha256
        {
            return Ok(Recorded {
                finalize_id: id,
                record: None,
            });
        }
    }
    let predicate = FinalizePredicate {
        ledger_head: computed.head.clone(),
        runs: computed.runs as u64,
        config_sha256: computed.config_sha256.clone(),
        require_final_summary: computed.options.require_final_summary,
        manifest: digest,
    };
    let subject = vec![
        Subject::git_commit("ledger-head", &computed.head),
        Subject::sha256("finalize-manifest", &predicate.manifest.sha256),
    ];
    phases.mark("record: newest");
    let manifest = crate::record::manifest_bytes(files(), files().map(manifest_line_bytes).sum());
    let id = journal::single_id(at, Kind::Finalize, &predicate);
    let sealed = journal::append_single(
        &ws.store,
        signer,
        identity,
        at,
        Kind::Finalize,
        subject,
        &predicate,
        &[(journal::manifest_path(&id), manifest)],
    )?;
    Ok(Recorded {
        finalize_id: sealed.payload.run_id.clone(),
        record: Some(sealed.id),
    })
}

/// `verify --projections`: the files on disk against the newest finalize
/// record, and against a fresh projection with that record's options, from
/// the verification `verify` just did.
pub fn check_projections(
    ws: &Workspace,
    trust: &Trust,
    verified: verify::Verified,
) -> Result<Vec<Finding>, Error> {
    let tip = gix::ObjectId::from_hex(verified.report.head.as_bytes())
        .expect("verify reports a commit id");
    let mut findings = Vec::new();
    let finding = |code: &'static str, path: &str, message: String| Finding {
        code: code.into(),
        run: None,
        record: Some(path.to_string()),
        commit: None,
        message,
    };
    let snapshot = ws.store.snapshot(tip)?;
    let newest = newest(&snapshot)?;
    let options = Options {
        require_final_summary: newest
            .as_ref()
            .is_some_and(|(_, p)| p.require_final_summary),
    };
    match &newest {
        None => findings.push(finding(
            "projection_unrecorded",
            "finalize/",
            "the ledger has no finalize record; run `ledger finalize`".into(),
        )),
        Some((id, p)) => {
            // Verify has checked the manifest against the record.
            let files = manifest(&snapshot, id, p)?.unwrap_or_default();
            for f in &files {
                match ws.read_checked_in(&f.path)? {
                    None => findings.push(finding(
                        "projection_missing",
                        &f.path,
                        format!("named by finalize record {id}, but not on disk"),
                    )),
                    Some(bytes) if canon::sha256_hex(&bytes) != f.sha256 => findings.push(finding(
                        "projection_modified",
                        &f.path,
                        format!(
                            "differs from the sha256 in finalize record {id} (edited by hand?)"
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    let computed = compute_from(ws, trust, options, None, verified)?;
    for d in compare(ws, &computed.projection)?.differences {
        findings.push(finding(
            "projection_stale",
            &d.path,
            match d.state {
                FileState::Missing => {
                    "missing: a fresh projection of the ledger has it; run `ledger finalize`".into()
                }
                _ => "differs from a fresh projection of the ledger; `ledger finalize --check` shows the diff".into(),
            },
        ));
    }
    Ok(findings)
}

/// Paths staged in the user's index that are not in `allowed`: `finalize
/// --commit` refuses to sweep them into its commit.
pub fn foreign_staged(root: &Path, allowed: &[String]) -> Result<Vec<String>, Error> {
    let out = crate::gitcli::git(root, &["diff", "--cached", "--name-only", "-z"])?;
    Ok(out
        .split('\0')
        .filter(|p| !p.is_empty() && !allowed.iter().any(|a| a == p))
        .map(str::to_string)
        .collect())
}

/// Commits exactly `paths` on the current branch (`git add` + `git commit
/// --only`), with a message naming the ledger head. `None` when none of them
/// differs from HEAD.
pub fn commit_on_branch(
    root: &Path,
    paths: &[String],
    head: &str,
) -> Result<Option<String>, Error> {
    let mut add = vec!["add", "--"];
    add.extend(paths.iter().map(String::as_str));
    crate::gitcli::git(root, &add)?;
    let mut staged = vec!["diff", "--cached", "--name-only", "-z", "--"];
    staged.extend(paths.iter().map(String::as_str));
    if crate::gitcli::git(root, &staged)?
        .trim_matches('\0')
        .is_empty()
    {
        return Ok(None);
    }
    let message = format!(
        "ledger finalize: projections at ledger head {head}\n\nWritten by `ledger finalize --commit`; `ledger verify --projections` checks them.\n"
    );
    let mut commit = vec!["commit", "--quiet", "--only", "-m", &message, "--"];
    commit.extend(paths.iter().map(String::as_str));
    crate::gitcli::git(root, &commit)?;
    Ok(Some(
        crate::gitcli::git(root, &["rev-parse", "HEAD"])?
            .trim()
            .to_string(),
    ))
}
