//! `ledger verify`: parse, then hash, then check signatures against the trust
//! file, then check the chains. Returns a report; the CLI picks the exit code.
//!
//! What is checked:
//! - every commit reachable from the ledger ref carries a valid SSH signature
//!   (namespace `git`) by a key the trust file lists for that commit's time;
//! - every record parses, is in RFC 8785 canonical form, and every signature in
//!   its envelope verifies (`verify_strict`) with a trusted key named by its
//!   `writer`, valid at the record's `at`;
//! - a record sits at `runs/<its run_id>/<its kind>.dsse.json`;
//! - a run's records come in kind order, each naming the previous by `run_prev`,
//!   with times that never go back, and nothing after a failed preflight;
//! - each writer's records have `seq` 1, 2, 3 … with `prev` naming the one
//!   before (a deleted record breaks this), and `writers/*.json` names each
//!   writer's newest record;
//! - a `decision` record is signed by a key of the committee file (never the
//!   writers'), names an existing run's result and an existing finalize
//!   record, and its `member` is that key's principal; a commit signed by a
//!   committee key adds decisions and its signer's head only.

use std::collections::BTreeMap;

use serde::Serialize;
use ssh_key::{HashAlg, SshSig};

use crate::clock;
use crate::committee::Decision;
use crate::history::{Run, Status};
use crate::journal::{self, WriterHead};
use crate::proc::Here;
use crate::record::kinds::{
    CommandPredicate, ContextPredicate, DataQualityPredicate, PreflightPredicate, ResultPredicate,
    StartedPredicate,
};
use crate::record::{self, Kind, Parsed, RecordError};
use crate::store::{self, Snapshot, Store};
use crate::trust::{Trust, Vouch};
use crate::Error;

/// `verify --since CHECKPOINT`: the ledger head must descend from the
/// checkpoint a committee saw before, or history was rewritten, even if every
/// record in the new history is validly signed.
pub fn check_since(store: &Store, checkpoint: &str) -> Result<Option<Finding>, Error> {
    let id = gix::ObjectId::from_hex(checkpoint.as_bytes()).map_err(|_| {
        Error::input(
            "--since",
            format!("{checkpoint:?} is not a full commit id (40 hex digits)"),
        )
    })?;
    let tip = store.require_tip()?;
    let finding = |code: &'static str, message: String| Finding {
        code: code.into(),
        run: None,
        record: None,
        commit: Some(checkpoint.to_string()),
        message,
    };
    if !store.has_commit(id) {
        return Ok(Some(finding(
            "since_unknown",
            "the checkpoint is not in this repository: the ledger was rewritten without it, or it comes from another ledger".into(),
        )));
    }
    if store.commits(tip)?.iter().any(|c| c.id == id) {
        return Ok(None);
    }
    Ok(Some(finding(
        "history_rewritten",
        format!(
            "the ledger head {tip} does not descend from the checkpoint: history was rewritten"
        ),
    )))
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Finding {
    /// Stable machine-readable class, e.g. `bad_signature`.
    pub code: std::borrow::Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Tree path or record id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(c) = &self.commit {
            write!(f, "commit {c}: ")?;
        }
        if let Some(r) = &self.run {
            write!(f, "run {r}: ")?;
        }
        if let Some(r) = &self.record {
            write!(f, "{r}: ")?;
        }
        write!(f, "{} [{}]", self.message, self.code)
    }
}

/// What `ledger verify` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub ref_name: String,
    /// The ledger head that was verified.
    pub head: String,
    pub trust_file: String,
    pub commits: usize,
    pub runs: usize,
    /// `finalize` records.
    pub finalizes: usize,
    /// `decision` records accepted (signed by a committee member, naming a
    /// run and a finalize record of the ledger).
    pub decisions: usize,
    /// The committee file decisions were checked against, if configured.
    pub committee_file: Option<String>,
    pub records: usize,
    pub writers: usize,
    pub ok: bool,
    pub findings: Vec<Finding>,
    /// Runs whose `ledger run` died: closed as aborted, or (not yet
    /// recovered) provably gone from this machine. Not a verification failure.
    pub aborted: Vec<Aborted>,
}

/// An aborted run, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Aborted {
    pub run_id: String,
    /// Whether `ledger recover` has recorded it.
    pub recovered: bool,
}

struct Ctx<'a> {
    trust: &'a Trust,
    findings: Vec<Finding>,
    /// Decompressed keys: decompression costs about as much as a verification.
    keys: BTreeMap<[u8; 32], Option<ed25519_dalek::VerifyingKey>>,
}

impl Ctx<'_> {
    fn add(
        &mut self,
        code: &'static str,
        run: Option<&str>,
        record: Option<&str>,
        message: String,
    ) {
        self.findings.push(Finding {
            code: code.into(),
            run: run.map(str::to_string),
            record: record.map(str::to_string),
            commit: None,
            message,
        });
    }
}

/// Verifies the whole ledger at its tip against `trust`. Holds one run at a
/// time per core, not the whole ledger.
pub fn verify(store: &Store, trust: &Trust, here: &Here) -> Result<Report, Error> {
    verify_all(store, trust, here, false).map(|v| v.report)
}

/// A whole verification with what a caller needs to read the runs after
/// it: each run by name, held parsed only where verify found fault with it.
#[derive(Clone, Debug)]
pub struct Verified {
    pub report: Report,
    /// Every run directory, in name order.
    pub runs: Vec<RunRef>,
    /// The decisions that passed every check, in file order.
    pub decisions: Vec<Decision>,
}

/// A run directory as verification left it for readers after it.
#[derive(Clone, Debug)]
pub struct RunRef {
    pub run_id: String,
    /// The run as verify read it, kept when verify found fault with it: its
    /// unreadable files are then those verify reported.
    pub held: Option<Run>,
    /// Whether its records were proved small and canonical at this tip, so
    /// that they can be parsed without those checks
    /// ([`crate::history::load_run_with`]).
    pub proven: bool,
}

impl RunRef {
    /// The run: the one held, or read from `snapshot` (the verified tip,
    /// which keeps the run's trees until the caller forgets them).
    pub fn read(
        &self,
        snapshot: &crate::store::Snapshot<'_>,
    ) -> Result<Run, crate::store::StoreError> {
        match &self.held {
            Some(run) => Ok(run.clone()),
            None => crate::history::load_run_with(snapshot, &self.run_id, self.proven),
        }
    }
}

/// [`verify`], also returning how to read the runs and the accepted
/// decisions. Holds no clean run: a ledger of any size is read again, run
/// by run, by who needs its records.
pub fn verify_with_runs(store: &Store, trust: &Trust, here: &Here) -> Result<Verified, Error> {
    verify_all(store, trust, here, true)
}

fn verify_all(store: &Store, trust: &Trust, here: &Here, keep: bool) -> Result<Verified, Error> {
    let mut phases = clock::Phases::start();
    let tip = store.require_tip()?;
    let mut ctx = Ctx {
        trust,
        findings: Vec::new(),
        keys: BTreeMap::new(),
    };
    let commits = store.commits(tip)?;
    let mut member_commits = Vec::new();
    for commit in &commits {
        if check_commit(&mut ctx, commit) {
            member_commits.push(commit);
        }
    }
    check_member_commits(&mut ctx, store, &member_commits)?;
    let roots = commits.iter().filter(|c| c.parents.is_empty()).count();
    if roots != 1 {
        ctx.add(
            "history_roots",
            None,
            None,
            format!("{roots} root commits, expected exactly 1 genesis"),
        );
    }

    let snapshot = store.snapshot(tip)?;
    let mut records: Vec<Link> = Vec::new();
    let mut aborted = Vec::new();
    let mut runs = 0;
    check_layout(&mut ctx, &snapshot)?;
    let run_items = snapshot.list("runs")?.unwrap_or_default();
    for item in run_items.iter().filter(|i| !i.is_tree()) {
        ctx.add(
            "unexpected_entry",
            None,
            Some(&format!("runs/{}", item.name)),
            "a file where a run directory belongs".into(),
        );
    }
    let run_names: Vec<String> = run_items
        .into_iter()
        .filter(|i| i.is_tree())
        .map(|i| i.name)
        .collect();
    phases.mark("verify: commits");
    let checked = check_runs_parallel(store, tip, trust, here, &run_names, keep)?;
    phases.mark("verify: runs");
    let mut refs = Vec::with_capacity(if keep { checked.len() } else { 0 });
    for run in checked {
        runs += 1;
        ctx.findings.extend(run.findings);
        if run.aborted {
            aborted.push(Aborted {
                run_id: run.run_id.clone(),
                recovered: run.has_result,
            });
        }
        records.extend(run.links);
        if keep {
            refs.push(RunRef {
                run_id: run.run_id,
                proven: run.view.is_none(),
                held: run.view,
            });
        }
    }
    let finalize_records = check_top_files(&mut ctx, &snapshot, Kind::Finalize)?;
    let all: Vec<(&str, &Parsed)> = finalize_records
        .iter()
        .map(|(id, p, _)| (id.as_str(), p))
        .collect();
    check_manifests(&mut ctx, &snapshot, &all)?;
    let finalizes = finalize_records.len();
    records.extend(finalize_records.iter().map(|(_, p, _)| Link::of(p)));
    let mut decisions = Vec::new();
    for (_, parsed, signed) in check_top_files(&mut ctx, &snapshot, Kind::Decision)? {
        records.push(Link::of(&parsed));
        decisions.extend(check_decision(&mut ctx, &snapshot, &parsed, signed)?);
    }
    phases.mark("verify: finalize, decisions");
    let writers = check_writer_chains(&mut ctx, &snapshot, &records)?;
    phases.mark("verify: chains");

    let record_count = records.len();
    let counts = Counts {
        commits: commits.len(),
        runs,
        finalizes,
        decisions: decisions.len(),
        records: record_count,
        writers,
    };
    let report = finish(store, tip, trust, ctx, counts, aborted);
    Ok(Verified {
        report,
        runs: refs,
        decisions,
    })
}

/// `verify --policy`: every committee run (by tag prefix) must be approved.
/// Reads the runs of `verified` one at a time, in ledger order (first
/// record time, run id).
pub fn check_policy(
    store: &Store,
    board: &crate::committee::Board,
    verified: &Verified,
) -> Result<Vec<Finding>, Error> {
    let tip = gix::ObjectId::from_hex(verified.report.head.as_bytes())
        .expect("verify reports a commit id");
    let snapshot = store.snapshot(tip)?;
    let mut committee_runs = Vec::new();
    for r in &verified.runs {
        let run = r.read(&snapshot)?;
        snapshot.forget(&format!("runs/{}", r.run_id));
        let tag = run
            .preflight()
            .map(|p| p.tag)
            .or_else(|| run.context().map(|c| c.tag))
            .unwrap_or_default();
        if board.is_committee_run(&tag) {
            committee_runs.push((run.at().to_string(), run.run_id, tag));
        }
    }
    committee_runs.sort();
    let mut out = Vec::new();
    for (_, run_id, tag) in committee_runs {
        let Some(tally) = board.tally(&run_id) else {
            continue;
        };
        if tally.standing != crate::committee::Standing::Approved {
            out.push(Finding {
                code: "not_approved".into(),
                run: Some(run_id),
                record: None,
                commit: None,
                message: format!("committee run {tag} is {}", tally.label()),
            });
        }
    }
    Ok(out)
}

/// Only the `decisions/` directory at the tip: each decision's signatures
/// (against the committee file) and references, not the whole ledger. What
/// `ledger decide` reports after writing; `ledger verify` checks everything.
pub fn check_decisions(
    store: &Store,
    trust: &Trust,
) -> Result<(Vec<Decision>, Vec<Finding>), Error> {
    let tip = store.require_tip()?;
    let snapshot = store.snapshot(tip)?;
    let mut ctx = Ctx {
        trust,
        findings: Vec::new(),
        keys: BTreeMap::new(),
    };
    let mut decisions = Vec::new();
    for (_, parsed, signed) in check_top_files(&mut ctx, &snapshot, Kind::Decision)? {
        decisions.extend(check_decision(&mut ctx, &snapshot, &parsed, signed)?);
    }
    Ok((decisions, ctx.findings))
}

/// The top level holds the format file, `runs/`, `writers/`, `finalize/` and
/// `decisions/` only.
fn check_layout(ctx: &mut Ctx<'_>, snapshot: &Snapshot<'_>) -> Result<(), Error> {
    for item in snapshot.list("")?.unwrap_or_default() {
        match (item.name.as_str(), item.is_tree()) {
            (store::FORMAT_FILE, false)
            | ("runs", true)
            | ("writers", true)
            | ("finalize", true)
            | ("decisions", true) => {}
            (name, _) => ctx.add(
                "unexpected_entry",
                None,
                Some(name),
                "not part of the ledger layout".into(),
            ),
        }
    }
    Ok(())
}

/// What a verification counted.
struct Counts {
    commits: usize,
    runs: usize,
    finalizes: usize,
    decisions: usize,
    records: usize,
    writers: usize,
}

fn finish(
    store: &Store,
    tip: gix::ObjectId,
    trust: &Trust,
    ctx: Ctx<'_>,
    counts: Counts,
    aborted: Vec<Aborted>,
) -> Report {
    Report {
        ref_name: store.ref_name().to_string(),
        head: tip.to_string(),
        trust_file: trust.writers.path.display().to_string(),
        committee_file: trust
            .committee
            .as_ref()
            .map(|c| c.path.display().to_string()),
        commits: counts.commits,
        runs: counts.runs,
        finalizes: counts.finalizes,
        decisions: counts.decisions,
        records: counts.records,
        writers: counts.writers,
        ok: ctx.findings.is_empty(),
        findings: ctx.findings,
        aborted,
    }
}

/// Verifies what the ledger tip adds to `base`, an ancestor already trusted
/// (a pull's local history): every commit after it, every run directory and
/// finalize record that is new or changed, and each writer's chain from its
/// head in `base` on. A file of `base` that changed or vanished is a finding:
/// the ledger only grows. Costs what was added, not the whole ledger.
pub fn verify_extension(
    store: &Store,
    trust: &Trust,
    here: &Here,
    base: gix::ObjectId,
) -> Result<Report, Error> {
    let tip = store.require_tip()?;
    let mut ctx = Ctx {
        trust,
        findings: Vec::new(),
        keys: BTreeMap::new(),
    };
    let commits = store.commits_since(tip, Some(base))?;
    let mut member_commits = Vec::new();
    for commit in &commits {
        if check_commit(&mut ctx, commit) {
            member_commits.push(commit);
        }
        if commit.parents.is_empty() {
            ctx.add(
                "history_roots",
                None,
                None,
                format!("commit {} is a second root", commit.id),
            );
        }
    }
    check_member_commits(&mut ctx, store, &member_commits)?;
    let old = store.snapshot(base)?;
    let new = store.snapshot(tip)?;
    check_layout(&mut ctx, &new)?;
    // Nothing of the base may change or vanish, except writer heads. Run
    // directories with the same tree id are the same; only others are opened.
    let old_runs = run_trees(&old)?;
    let new_runs: BTreeMap<String, (gix::ObjectId, bool)> = new
        .list("runs")?
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.name.clone(), (i.id, i.is_tree())))
        .collect();
    let mut before: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut kept =
        |ctx: &mut Ctx<'_>, path: String, id: gix::ObjectId, now: Option<gix::ObjectId>| {
            match now {
                Some(now) if now == id => {}
                Some(_) => ctx.add(
                    "rewritten",
                    None,
                    Some(&path),
                    "a file the ledger already had was changed".into(),
                ),
                None => ctx.add(
                    "missing_record",
                    None,
                    Some(&path),
                    "a file the ledger already had was removed".into(),
                ),
            }
            before.insert(path);
        };
    for (name, id) in &old_runs {
        if new_runs.get(name).map(|(i, _)| i) == Some(id) {
            continue;
        }
        for (rel, item) in old.walk(&format!("runs/{name}"))? {
            let path = format!("runs/{name}/{rel}");
            let now = new.read_id(&path)?;
            kept(&mut ctx, path, item.id, now);
        }
    }
    for dir in ["finalize", "decisions"] {
        for (rel, item) in old.walk(dir)? {
            let path = format!("{dir}/{rel}");
            let now = new.read_id(&path)?;
            kept(&mut ctx, path, item.id, now);
        }
    }
    if let Some(id) = old.read_id(store::FORMAT_FILE)? {
        let now = new.read_id(store::FORMAT_FILE)?;
        kept(&mut ctx, store::FORMAT_FILE.to_string(), id, now);
    }
    // Runs that are new or grew.
    let mut changed = Vec::new();
    let runs = new_runs.len();
    for (name, (id, is_tree)) in &new_runs {
        if !is_tree {
            ctx.add(
                "unexpected_entry",
                None,
                Some(&format!("runs/{name}")),
                "a file where a run directory belongs".into(),
            );
        } else if old_runs.get(name) != Some(id) {
            changed.push(name.clone());
        }
    }
    let mut links: Vec<Link> = Vec::new();
    let mut aborted = Vec::new();
    let mut record_count = 0;
    for run in check_runs_parallel(store, tip, trust, here, &changed, false)? {
        ctx.findings.extend(run.findings);
        if run.aborted {
            aborted.push(Aborted {
                run_id: run.run_id.clone(),
                recovered: run.has_result,
            });
        }
        for link in run.links {
            record_count += 1;
            if !before.contains(&journal::record_path(
                &link.payload.run_id,
                link.payload.kind,
            )) {
                links.push(link);
            }
        }
    }
    let finalize_records = check_top_files(&mut ctx, &new, Kind::Finalize)?;
    let finalizes = finalize_records.len();
    let added: Vec<(&str, &Parsed)> = finalize_records
        .iter()
        .filter(|(id, _, _)| !before.contains(&journal::record_path(id, Kind::Finalize)))
        .map(|(id, p, _)| (id.as_str(), p))
        .collect();
    check_manifests(&mut ctx, &new, &added)?;
    record_count += added.len();
    links.extend(added.iter().map(|(_, p)| Link::of(p)));
    let mut decisions = 0;
    for (id, parsed, signed) in check_top_files(&mut ctx, &new, Kind::Decision)? {
        if !before.contains(&journal::record_path(&id, Kind::Decision)) {
            record_count += 1;
            links.push(Link::of(&parsed));
            decisions += check_decision(&mut ctx, &new, &parsed, signed)?.map_or(0, |_| 1);
        }
    }
    let writers = check_chain_extension(&mut ctx, &old, &new, &links)?;
    let counts = Counts {
        commits: commits.len(),
        runs,
        finalizes,
        decisions,
        records: record_count,
        writers,
    };
    let report = finish(store, tip, trust, ctx, counts, aborted);
    Ok(report)
}

/// [`verify_with_runs`] of a ledger whose ancestor `base` was verified
/// before, with `base_findings`: only what the tip adds is verified
/// ([`verify_extension`], which also proves that nothing of `base` changed);
/// the other runs keep their findings. No run is read here: the report's
/// `aborted` names only aborted runs among those the tip added or changed.
/// `None` when the addition itself has a finding: then only a whole
/// verification reports everything it implies (a rewritten record breaks
/// chains far from it), and the caller does that.
pub fn verify_since(
    store: &Store,
    trust: &Trust,
    here: &Here,
    base: gix::ObjectId,
    base_findings: Vec<Finding>,
) -> Result<Option<Verified>, Error> {
    let mut phases = crate::clock::Phases::start();
    let tip = store.require_tip()?;
    let extension = verify_extension(store, trust, here, base)?;
    if !extension.findings.is_empty() {
        return Ok(None);
    }
    phases.mark("verify since: extension");
    let (old, new) = (store.snapshot(base)?, store.snapshot(tip)?);
    let old_runs = run_trees(&old)?;
    let names: Vec<(String, gix::ObjectId)> = new
        .list("runs")?
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.is_tree())
        .map(|i| (i.name, i.id))
        .collect();
    let changed: std::collections::BTreeSet<&str> = names
        .iter()
        .filter(|(name, id)| old_runs.get(name) != Some(id))
        .map(|(name, _)| name.as_str())
        .collect();
    // A run verify found fault with is read in full again, sizes first.
    let faulted: std::collections::BTreeSet<String> =
        base_findings.iter().filter_map(|f| f.run.clone()).collect();
    let mut findings: Vec<Finding> = base_findings
        .into_iter()
        .filter(|f| f.run.as_deref().is_none_or(|r| !changed.contains(r)))
        .collect();
    findings.extend(extension.findings);
    let runs: Vec<RunRef> = names
        .iter()
        .map(|(name, _)| RunRef {
            run_id: name.clone(),
            held: None,
            // Unchanged since the verified base: its records were proved
            // small and canonical then, byte for byte. A run verify found
            // fault with is read in full again, sizes first.
            proven: !changed.contains(name.as_str()) && !faulted.contains(name),
        })
        .collect();
    phases.mark("verify since: runs");
    let (decisions, _) = check_decisions(store, trust)?;
    let report = Report {
        ok: findings.is_empty(),
        findings,
        runs: runs.len(),
        decisions: decisions.len(),
        ..extension
    };
    Ok(Some(Verified {
        report,
        runs,
        decisions,
    }))
}

/// Every entry of `runs/` by name: its object id.
fn run_trees(snapshot: &Snapshot<'_>) -> Result<BTreeMap<String, gix::ObjectId>, Error> {
    Ok(snapshot
        .list("runs")?
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.name, i.id))
        .collect())
}

/// Each writer's new records continue its chain from its head in `old`, and
/// `new`'s head file names the last of them. Returns the writers seen.
fn check_chain_extension(
    ctx: &mut Ctx<'_>,
    old: &Snapshot<'_>,
    new: &Snapshot<'_>,
    links: &[Link],
) -> Result<usize, Error> {
    let mut by_writer: BTreeMap<&str, Vec<&Link>> = BTreeMap::new();
    for l in links {
        by_writer.entry(&l.payload.writer).or_default().push(l);
    }
    let head_at = |snapshot: &Snapshot<'_>, writer: &str| -> Result<Option<WriterHead>, Error> {
        Ok(snapshot
            .read(&journal::writer_path(writer))?
            .and_then(|b| serde_json::from_slice::<WriterHead>(&b).ok()))
    };
    // Every head file that moved must belong to a writer with new records.
    let old_heads: BTreeMap<String, gix::ObjectId> = old
        .list("writers")?
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.name, i.id))
        .collect();
    for item in new.list("writers")?.unwrap_or_default() {
        if old_heads.get(&item.name) == Some(&item.id) {
            continue;
        }
        let path = format!("writers/{}", item.name);
        let named = serde_json::from_slice::<WriterHead>(&new.blob(item.id)?).ok();
        match named {
            Some(h)
                if journal::writer_path(&h.writer) == path
                    && by_writer.contains_key(h.writer.as_str()) => {}
            Some(h) if journal::writer_path(&h.writer) == path => ctx.add(
                "writer_head_mismatch",
                None,
                Some(&path),
                format!(
                    "moved to seq {} {} without new records of writer {}",
                    h.seq, h.id, h.writer
                ),
            ),
            _ => ctx.add(
                "writer_index",
                None,
                Some(&path),
                "not a writer head for this path".into(),
            ),
        }
    }
    for (writer, mut chain) in by_writer {
        chain.sort_by_key(|l| l.payload.seq);
        let start = head_at(old, writer)?;
        let (mut seq, mut prev) = start.map_or((0, None), |h| (h.seq, Some(h.id)));
        for l in &chain {
            let path = journal::record_path(&l.payload.run_id, l.payload.kind);
            if l.payload.seq != seq + 1 {
                ctx.add(
                    "chain_gap",
                    Some(&l.payload.run_id),
                    Some(&path),
                    format!("writer {writer}: seq {} follows seq {seq}", l.payload.seq),
                );
            } else if l.payload.prev != prev {
                ctx.add(
                    "chain_broken",
                    Some(&l.payload.run_id),
                    Some(&path),
                    format!(
                        "writer {writer} seq {}: prev is {:?}, expected {:?}",
                        l.payload.seq, l.payload.prev, prev
                    ),
                );
            }
            seq = l.payload.seq;
            prev = Some(l.id.clone());
        }
        let last = chain.last().expect("a writer with new records");
        match head_at(new, writer)? {
            Some(h) if h.seq == last.payload.seq && h.id == last.id => {}
            _ => ctx.add(
                "writer_head_mismatch",
                None,
                Some(&journal::writer_path(writer)),
                format!(
                    "does not name writer {writer}'s newest record seq {} {}",
                    last.payload.seq, last.id
                ),
            ),
        }
    }
    Ok(new.list("writers")?.map_or(0, |w| w.len()))
}

/// One run checked by a worker: its findings, in the order found.
struct CheckedRun {
    run_id: String,
    /// The parsed run, when the caller keeps runs and this one has findings.
    view: Option<Run>,
    /// Its records' chain entries.
    links: Vec<Link>,
    findings: Vec<Finding>,
    aborted: bool,
    /// Whether it has a result record.
    has_result: bool,
}

/// Decompressed keys: decompression costs about as much as a verification.
type KeyCache = BTreeMap<[u8; 32], Option<ed25519_dalek::VerifyingKey>>;

/// Checks runs on every core: each worker opens its own repository handle and
/// checks a contiguous slice; results come back in `names` order, so the
/// report does not depend on scheduling.
fn check_runs_parallel(
    store: &Store,
    tip: gix::ObjectId,
    trust: &Trust,
    here: &Here,
    names: &[String],
    keep: bool,
) -> Result<Vec<CheckedRun>, Error> {
    let git_dir = store.git_dir().to_path_buf();
    let ref_name = store.ref_name().to_string();
    let _progress = crate::progress::begin("verify: runs", names.len());
    let parts = crate::par::chunks(names, 64, |part| -> Result<Vec<CheckedRun>, Error> {
        let mut keys = KeyCache::new();
        let mut out = Vec::with_capacity(part.len());
        Store::each_at(&git_dir, &ref_name, tip, part, |snapshot, _, n| {
            out.push(check_one_run(snapshot, trust, here, n, &mut keys, keep)?);
            snapshot.forget(&format!("runs/{n}"));
            crate::progress::inc(1);
            Ok::<_, Error>(())
        })?;
        Ok(out)
    });
    let mut out = Vec::with_capacity(names.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

fn check_one_run(
    snapshot: &Snapshot<'_>,
    trust: &Trust,
    here: &Here,
    run_id: &str,
    keys: &mut KeyCache,
    keep: bool,
) -> Result<CheckedRun, Error> {
    let mut ctx = Ctx {
        trust,
        findings: Vec::new(),
        keys: std::mem::take(keys),
    };
    let parsed = check_run_files(&mut ctx, snapshot, run_id)?;
    check_run_order(&mut ctx, run_id, &parsed);
    // Files that did not yield a well-placed record make the run incomplete.
    let unreadable = ctx
        .findings
        .iter()
        .filter(|f| {
            matches!(
                f.code.as_ref(),
                "non_canonical" | "malformed_record" | "wrong_run" | "kind_mismatch"
            )
        })
        .filter_map(|f| {
            let file = f.record.as_deref()?.rsplit('/').next()?.to_string();
            let kind = Kind::from_file_name(&file)?;
            (!parsed.contains_key(&kind)).then(|| (file, f.message.clone()))
        })
        .collect();
    let view = Run {
        run_id: run_id.to_string(),
        records: parsed,
        unreadable,
    };
    let aborted = view.status_here(here) == Status::Aborted;
    *keys = ctx.keys;
    Ok(CheckedRun {
        run_id: run_id.to_string(),
        links: view.records.values().map(Link::of).collect(),
        has_result: view.get(Kind::Result).is_some(),
        view: (keep && !ctx.findings.is_empty()).then_some(view),
        findings: ctx.findings,
        aborted,
    })
}

/// Checks a commit's signature against the writers' file, then the committee
/// file. Returns whether a committee member (not a writer) signed it, for
/// [`check_member_commits`].
fn check_commit(ctx: &mut Ctx<'_>, commit: &store::CommitInfo) -> bool {
    let id = commit.id.to_string();
    let mut add = |code: &'static str, message: String| {
        ctx.findings.push(Finding {
            code: code.into(),
            run: None,
            record: None,
            commit: Some(id.clone()),
            message,
        });
        false
    };
    let Some(armor) = &commit.gpgsig else {
        return add(
            "commit_unsigned",
            format!("commit has no signature ({:?})", commit.subject),
        );
    };
    let sig = match SshSig::from_pem(armor) {
        Ok(sig) => sig,
        Err(e) => {
            return add(
                "commit_signature_malformed",
                format!("gpgsig is not an SSH signature: {e}"),
            )
        }
    };
    if sig.namespace() != "git" {
        return add(
            "commit_bad_signature",
            format!(
                "signature namespace is {:?}, expected \"git\"",
                sig.namespace()
            ),
        );
    }
    let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    let at = time::OffsetDateTime::from_unix_timestamp(commit.time)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (vouch, member) = match ctx.trust.writers.vouch(&fingerprint, at) {
        Vouch::Unknown => match ctx
            .trust
            .committee
            .as_ref()
            .map(|c| c.vouch(&fingerprint, at))
        {
            Some(Vouch::Unknown) | None => (Vouch::Unknown, false),
            Some(v) => (v, true),
        },
        v => (v, false),
    };
    match vouch {
        Vouch::Unknown => add(
            "commit_untrusted_key",
            format!(
                "signed by {fingerprint}, which neither the trust file nor the committee file lists"
            ),
        ),
        Vouch::OutsideValidity => add(
            "commit_key_not_valid",
            format!("signed by {fingerprint} outside its valid-after/valid-before window"),
        ),
        Vouch::Trusted(entry) => match entry.key.verify("git", &commit.signed, &sig) {
            Ok(()) => member,
            Err(e) => add(
                "commit_bad_signature",
                format!("signature by {fingerprint} does not verify: {e}"),
            ),
        },
    }
}

/// A commit signed by a committee member (not a writer) may add decision
/// records and move its signer's head file, nothing else: compared with its
/// parent, `runs/`, `finalize/` and the other writers' heads are unchanged.
/// Merges (a member's pull joining two histories) are left to the record
/// checks, which do not trust a member's key for anything but decisions.
fn check_member_commits(
    ctx: &mut Ctx<'_>,
    store: &Store,
    commits: &[&store::CommitInfo],
) -> Result<(), Error> {
    for commit in commits {
        let [parent] = commit.parents[..] else {
            continue;
        };
        let (new, old) = (store.snapshot(commit.id)?, store.snapshot(parent)?);
        let mut changed = Vec::new();
        for dir in ["runs", "finalize", "writers", store::FORMAT_FILE] {
            if new.read_id(dir)? != old.read_id(dir)? {
                changed.push(dir);
            }
        }
        let mut outside: Vec<String> = changed
            .iter()
            .filter(|d| **d != "writers")
            .map(|d| d.to_string())
            .collect();
        if changed.contains(&"writers") {
            // The heads of the signers of the decisions this commit adds.
            let mut own = Vec::new();
            for (rel, item) in new.walk("decisions")? {
                if old.read_id(&format!("decisions/{rel}"))? != Some(item.id) {
                    if let Ok(p) = record::parse(&new.blob(item.id)?) {
                        own.push(journal::writer_path(&p.payload.writer));
                    }
                }
            }
            for item in new.list("writers")?.unwrap_or_default() {
                let path = format!("writers/{}", item.name);
                if old.read_id(&path)? != Some(item.id) && !own.contains(&path) {
                    outside.push(path);
                }
            }
        }
        if !outside.is_empty() {
            ctx.findings.push(Finding {
                code: "commit_outside_role".into(),
                run: None,
                record: None,
                commit: Some(commit.id.to_string()),
                message: format!(
                    "signed by a committee key, but changes {} (members may only add decisions)",
                    outside.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Parses and authenticates every record file of one run.
fn check_run_files(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    run_id: &str,
) -> Result<BTreeMap<Kind, Parsed>, Error> {
    let mut out = BTreeMap::new();
    let mut stored = Stored::default();
    for item in snapshot
        .list(&format!("runs/{run_id}"))?
        .unwrap_or_default()
    {
        let path = format!("runs/{run_id}/{}", item.name);
        match (item.name.as_str(), item.is_tree()) {
            ("log", false) => {
                stored.log = Some(item.id);
                continue;
            }
            ("inputs", true) => {
                stored.inputs = snapshot
                    .walk(&path)?
                    .into_iter()
                    .map(|(rel, i)| (rel, i.id))
                    .collect();
                continue;
            }
            ("products", true) => {
                stored.products = snapshot
                    .walk(&path)?
                    .into_iter()
                    .map(|(rel, i)| (rel, i.id))
                    .collect();
                continue;
            }
            _ => {}
        }
        let Some(kind) = Kind::from_file_name(&item.name).filter(|_| !item.is_tree()) else {
            ctx.add(
                "unexpected_entry",
                Some(run_id),
                Some(&path),
                "not a record of the ledger layout".into(),
            );
            continue;
        };
        let Some(bytes) = record_bytes(ctx, snapshot, Some(run_id), &path, item.id)? else {
            continue;
        };
        let Some(mut parsed) = parse_record(ctx, Some(run_id), &path, &bytes) else {
            continue;
        };
        check_signatures(ctx, run_id, &path, &parsed);
        parsed.shed_bytes();
        let p = &parsed.payload;
        let mut placed = true;
        if p.run_id != run_id {
            ctx.add(
                "wrong_run",
                Some(run_id),
                Some(&path),
                format!("record belongs to run {} (moved or copied here)", p.run_id),
            );
            placed = false;
        }
        if p.kind != kind {
            ctx.add(
                "kind_mismatch",
                Some(run_id),
                Some(&path),
                format!(
                    "file holds a {} record (records swapped or reordered)",
                    p.kind
                ),
            );
            placed = false;
        }
        if p.schema != p.kind.schema()
            || p.predicate_type != p.kind.predicate_type()
            || p.statement_type != record::STATEMENT_TYPE
        {
            ctx.add(
                "schema_mismatch",
                Some(run_id),
                Some(&path),
                format!(
                    "schema {:?} / predicateType {:?} do not match kind {}",
                    p.schema, p.predicate_type, p.kind
                ),
            );
        }
        if clock::parse_rfc3339(&p.at).is_none() {
            ctx.add(
                "malformed_record",
                Some(run_id),
                Some(&path),
                format!("at {:?} is not RFC 3339", p.at),
            );
        }
        if let Err(e) = typed_predicate(p) {
            ctx.add("malformed_record", Some(run_id), Some(&path), e.to_string());
        }
        // Chains are about hashes: a well-placed record takes part in them even
        // when its signature failed (that is reported once, above).
        if placed {
            out.insert(kind, parsed);
        }
    }
    check_stored(ctx, snapshot, run_id, &out, &stored)?;
    Ok(out)
}

/// Parses stored envelope bytes, reporting why they are not a record.
fn parse_record(ctx: &mut Ctx<'_>, run: Option<&str>, path: &str, bytes: &[u8]) -> Option<Parsed> {
    match record::parse(bytes) {
        Ok(p) => Some(p),
        Err(RecordError::NotCanonical) => {
            ctx.add(
                "non_canonical",
                run,
                Some(path),
                "payload is not RFC 8785 canonical JSON (edited or re-encoded)".into(),
            );
            None
        }
        Err(e) => {
            ctx.add("malformed_record", run, Some(path), e.to_string());
            None
        }
    }
}

/// Parses and authenticates the records of a top-level directory
/// (`finalize/<id>.dsse.json`, `decisions/<id>.dsse.json`), returning each
/// well-placed record of `kind` by its id, with whether its signatures
/// passed.
fn check_top_files(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    kind: Kind,
) -> Result<Vec<(String, Parsed, bool)>, Error> {
    let dir = journal::record_path("", kind)
        .split('/')
        .next()
        .expect("a record path has a directory")
        .to_string();
    let mut out = Vec::new();
    let items = snapshot.list(&dir)?.unwrap_or_default();
    for item in &items {
        let path = format!("{dir}/{}", item.name);
        if kind == Kind::Finalize && !item.is_tree() {
            if let Some(id) = item.name.strip_suffix(".files.jsonl") {
                let record = format!("{id}.dsse.json");
                if !items.iter().any(|i| i.name == record) {
                    ctx.add(
                        "unexpected_entry",
                        None,
                        Some(&path),
                        "a finalize manifest without its record".into(),
                    );
                }
                continue;
            }
        }
        let Some(id) = item
            .name
            .strip_suffix(".dsse.json")
            .filter(|_| !item.is_tree())
        else {
            ctx.add(
                "unexpected_entry",
                None,
                Some(&path),
                format!("not a {kind} record of the ledger layout"),
            );
            continue;
        };
        let Some(bytes) = record_bytes(ctx, snapshot, None, &path, item.id)? else {
            continue;
        };
        let Some(parsed) = parse_record(ctx, None, &path, &bytes) else {
            continue;
        };
        let before = ctx.findings.len();
        check_signatures(ctx, id, &path, &parsed);
        let signed = ctx.findings.len() == before;
        let p = &parsed.payload;
        if p.kind != kind || p.run_id != id {
            ctx.add(
                "wrong_place",
                None,
                Some(&path),
                format!(
                    "file holds the {} record {} (moved or copied here)",
                    p.kind, p.run_id
                ),
            );
            continue;
        }
        if p.schema != p.kind.schema()
            || p.predicate_type != p.kind.predicate_type()
            || p.statement_type != record::STATEMENT_TYPE
            || p.run_prev.is_some()
        {
            ctx.add(
                "schema_mismatch",
                None,
                Some(&path),
                format!("schema, predicateType or run_prev do not match a {kind} record"),
            );
        }
        if let Err(e) = typed_predicate(p) {
            ctx.add("malformed_record", None, Some(&path), e.to_string());
        }
        out.push((id.to_string(), parsed, signed));
    }
    Ok(out)
}

/// Each finalize record's manifest (`finalize/<id>.files.jsonl`) is present,
/// hashes to the digest the record signs, and lists that many files.
fn check_manifests(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    records: &[(&str, &Parsed)],
) -> Result<(), Error> {
    for (id, parsed) in records {
        let Ok(p) = parsed
            .payload
            .predicate_as::<crate::record::FinalizePredicate>()
        else {
            continue;
        };
        let path = journal::manifest_path(id);
        match snapshot.read(&path)? {
            None => ctx.add(
                "missing_record",
                None,
                Some(&path),
                format!("finalize record {id} names a manifest that is not in the ledger"),
            ),
            Some(bytes) if record::canon::sha256_hex(&bytes) != p.manifest.sha256 => ctx.add(
                "manifest_mismatch",
                None,
                Some(&path),
                format!("does not hash to the manifest digest finalize record {id} signs"),
            ),
            Some(bytes) => {
                let files = record::parse_manifest(&bytes);
                if files.as_ref().map(Vec::len) != Some(p.manifest.files as usize) {
                    ctx.add(
                        "manifest_mismatch",
                        None,
                        Some(&path),
                        format!(
                            "does not list the {} file digests finalize record {id} signs",
                            p.manifest.files
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

/// A decision record's references: the decided run and its result record,
/// the finalize record read, and the member named, which must be a principal
/// of the signing key in the committee file. Returns the decision when it
/// counts: validly signed and every reference right.
fn check_decision(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    parsed: &Parsed,
    signed: bool,
) -> Result<Option<Decision>, Error> {
    let p = &parsed.payload;
    let path = journal::record_path(&p.run_id, Kind::Decision);
    let Ok(d) = p.predicate_as::<record::DecisionPredicate>() else {
        return Ok(None);
    };
    let mut ok = signed;
    let mut problem = |ctx: &mut Ctx<'_>, code, message: String| {
        ctx.add(code, Some(&d.run), Some(&path), message);
        ok = false;
    };
    let result_path = journal::record_path(&d.run, Kind::Result);
    let result_id = match snapshot.read(&result_path)? {
        Some(bytes) => record::parse(&bytes).ok().map(|r| r.id),
        None => None,
    };
    match result_id {
        None => problem(
            ctx,
            "decision_unknown_run",
            format!("decides run {:?}, which has no result in the ledger", d.run),
        ),
        Some(id) if id != d.result_record => problem(
            ctx,
            "decision_wrong_result",
            format!(
                "names result record {}, but run {}'s result is {id}",
                d.result_record, d.run
            ),
        ),
        Some(_) => {}
    }
    if snapshot
        .read_id(&journal::record_path(&d.finalize_record, Kind::Finalize))?
        .is_none()
    {
        problem(
            ctx,
            "decision_unknown_finalize",
            format!(
                "names finalize record {:?}, which the ledger does not have",
                d.finalize_record
            ),
        );
    }
    let principals = ctx
        .trust
        .committee
        .as_ref()
        .and_then(|c| c.entries.iter().find(|e| e.fingerprint == p.writer))
        .map(|e| e.principals.clone())
        .unwrap_or_default();
    if signed && !principals.contains(&d.member) {
        problem(
            ctx,
            "decision_member_mismatch",
            format!(
                "says member {:?}, but the committee file lists key {} as {}",
                d.member,
                p.writer,
                principals.join(", ")
            ),
        );
    }
    Ok(ok.then(|| Decision {
        decision_id: p.run_id.clone(),
        record: parsed.id.clone(),
        run_id: d.run.clone(),
        member: d.member.clone(),
        key: p.writer.clone(),
        decision: d.decision,
        reason: d.reason.clone(),
        at: p.at.clone(),
        seq: p.seq,
        finalize_record: d.finalize_record.clone(),
    }))
}

/// The log and products a run's tree stores beside its records.
#[derive(Default)]
struct Stored {
    log: Option<gix::ObjectId>,
    products: Vec<(String, gix::ObjectId)>,
    inputs: Vec<(String, gix::ObjectId)>,
}

/// The bytes of the record file `path`, unless its object is larger than
/// any record ledger writes ([`record::MAX_RECORD_BYTES`]): then it is a
/// finding and is never read (a hostile remote's huge blob costs nothing).
fn record_bytes(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    run: Option<&str>,
    path: &str,
    id: gix::ObjectId,
) -> Result<Option<Vec<u8>>, Error> {
    let size = snapshot.size(id)?;
    if size > record::MAX_RECORD_BYTES {
        ctx.add(
            "oversized_record",
            run,
            Some(path),
            format!(
                "{size} bytes; no record is larger than {} (not read)",
                record::MAX_RECORD_BYTES
            ),
        );
        return Ok(None);
    }
    Ok(Some(snapshot.blob(id)?))
}

/// Stored files must be exactly what the signed result says, and nothing else.
fn check_stored(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    run_id: &str,
    records: &BTreeMap<Kind, Parsed>,
    stored: &Stored,
) -> Result<(), Error> {
    let result = records
        .get(&Kind::Result)
        .and_then(|r| r.payload.predicate_as::<ResultPredicate>().ok());
    check_stored_inputs(ctx, snapshot, run_id, records, stored)?;
    let log_path = format!("runs/{run_id}/log");
    match (stored.log, &result) {
        (Some(id), Some(r)) if r.log.stored => {
            // A blob of another size than the result signs is never read.
            let matches = snapshot
                .blob_sized(id, r.log.bytes)?
                .is_ok_and(|bytes| record::canon::sha256_hex(&bytes) == r.log.sha256);
            if !matches {
                ctx.add(
                    "log_mismatch",
                    Some(run_id),
                    Some(&log_path),
                    "stored log does not match the digest in the result (truncated or replaced)"
                        .into(),
                );
            }
        }
        (Some(_), _) => ctx.add(
            "unexpected_entry",
            Some(run_id),
            Some(&log_path),
            "a stored log the result does not declare".into(),
        ),
        (None, Some(r)) if r.log.stored => ctx.add(
            "missing_log",
            Some(run_id),
            Some(&log_path),
            "the result declares a stored log, but there is none".into(),
        ),
        (None, _) => {}
    }
    let declared: BTreeMap<String, Option<(String, u64)>> = result
        .iter()
        .flat_map(|r| &r.products)
        .filter(|p| p.stored)
        .map(|p| (p.path.clone(), Some((p.sha256.clone(), p.bytes))))
        .collect();
    let products = StoredSet {
        dir: "products",
        what: "product",
        by: "result",
        mismatch: "product_mismatch",
        missing: "missing_product",
    };
    check_stored_set(
        ctx,
        snapshot,
        run_id,
        &products,
        &declared,
        &stored.products,
    )
}

/// One kind of file a run stores beside its records (products, inputs).
struct StoredSet {
    /// Directory under `runs/<run_id>/`.
    dir: &'static str,
    what: &'static str,
    /// The record that declares them.
    by: &'static str,
    mismatch: &'static str,
    missing: &'static str,
}

/// Every stored file must be declared, with the declared digest; every
/// declared file must be stored. A declaration without a digest (`None`)
/// admits no stored file.
fn check_stored_set(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    run_id: &str,
    set: &StoredSet,
    declared: &BTreeMap<String, Option<(String, u64)>>,
    stored: &[(String, gix::ObjectId)],
) -> Result<(), Error> {
    let StoredSet {
        dir,
        what,
        by,
        mismatch,
        missing,
    } = set;
    for (rel, id) in stored {
        let path = format!("runs/{run_id}/{dir}/{rel}");
        match declared.get(rel).and_then(Option::as_ref) {
            None => ctx.add(
                "unexpected_entry",
                Some(run_id),
                Some(&path),
                format!("a stored {what} the {by} does not declare"),
            ),
            Some((sha, bytes)) => {
                // A blob of another size than the record signs (a huge one
                // from a hostile remote, say) is never read.
                let matches = snapshot
                    .blob_sized(*id, *bytes)?
                    .is_ok_and(|blob| &record::canon::sha256_hex(&blob) == sha);
                if !matches {
                    ctx.add(
                        mismatch,
                        Some(run_id),
                        Some(&path),
                        format!(
                            "stored {what} does not match the digest in the {by} (swapped or edited)"
                        ),
                    );
                }
            }
        }
    }
    for rel in declared
        .keys()
        .filter(|rel| !stored.iter().any(|(r, _)| r == *rel))
    {
        ctx.add(
            missing,
            Some(run_id),
            Some(&format!("runs/{run_id}/{dir}/{rel}")),
            format!("the {by} declares a stored {what}, but there is none"),
        );
    }
    Ok(())
}

/// Stored inputs must be exactly those the context names, with its digests.
fn check_stored_inputs(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    run_id: &str,
    records: &BTreeMap<Kind, Parsed>,
    stored: &Stored,
) -> Result<(), Error> {
    let context = records
        .get(&Kind::Context)
        .and_then(|r| r.payload.predicate_as::<ContextPredicate>().ok());
    let mut digests: BTreeMap<&str, (String, u64)> = BTreeMap::new();
    let mut declared: BTreeMap<String, Option<(String, u64)>> = BTreeMap::new();
    if let Some(c) = &context {
        for i in &c.inputs {
            digests.insert(&i.path, (i.sha256.clone(), i.bytes));
        }
        if let Some(f) = &c.freeze {
            digests.insert(&f.path, (f.sha256.clone(), f.bytes));
        }
        for rel in &c.stored_inputs {
            declared.insert(rel.clone(), digests.get(rel.as_str()).cloned());
        }
    }
    let inputs = StoredSet {
        dir: "inputs",
        what: "input",
        by: "context",
        mismatch: "input_mismatch",
        missing: "missing_input",
    };
    check_stored_set(ctx, snapshot, run_id, &inputs, &declared, &stored.inputs)
}

fn typed_predicate(p: &record::Payload) -> Result<(), RecordError> {
    match p.kind {
        Kind::Preflight => p.predicate_as::<PreflightPredicate>().map(drop),
        Kind::DataQuality => p.predicate_as::<DataQualityPredicate>().map(drop),
        Kind::Context => p.predicate_as::<ContextPredicate>().map(drop),
        Kind::Command => p.predicate_as::<CommandPredicate>().map(drop),
        Kind::Started => p.predicate_as::<StartedPredicate>().map(drop),
        Kind::Result => p.predicate_as::<ResultPredicate>().map(drop),
        Kind::Finalize => p
            .predicate_as::<crate::record::FinalizePredicate>()
            .map(drop),
        Kind::Decision => p
            .predicate_as::<crate::record::DecisionPredicate>()
            .map(drop),
    }
}

/// Every signature must verify with a trusted key, and one must be the writer's.
fn check_signatures(ctx: &mut Ctx<'_>, run_id: &str, path: &str, parsed: &Parsed) {
    let at = clock::parse_rfc3339(&parsed.payload.at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let pae = record::pae(&parsed.envelope.payload_type, &parsed.payload_bytes);
    let mut ok = !parsed.envelope.signatures.is_empty();
    if !ok {
        ctx.add(
            "unsigned_record",
            Some(run_id),
            Some(path),
            "envelope has no signature".into(),
        );
    }
    let (file, which) = match parsed.payload.kind {
        Kind::Decision => (ctx.trust.committee.as_ref(), "the committee file"),
        _ => (Some(&ctx.trust.writers), "the trust file"),
    };
    let mut by_writer = false;
    for sig in &parsed.envelope.signatures {
        let Some(file) = file else {
            ctx.add(
                "untrusted_signer",
                Some(run_id),
                Some(path),
                format!(
                    "decision signed by {}, but ledger.yaml names no committee file (committee.allowed_signers)",
                    sig.keyid
                ),
            );
            ok = false;
            continue;
        };
        let entry = match file.vouch(&sig.keyid, at) {
            Vouch::Trusted(entry) => entry,
            Vouch::OutsideValidity => {
                ctx.add(
                    "key_not_valid",
                    Some(run_id),
                    Some(path),
                    format!(
                        "signed by {} outside its valid-after/valid-before window",
                        sig.keyid
                    ),
                );
                ok = false;
                continue;
            }
            Vouch::Unknown => {
                ctx.add(
                    "untrusted_signer",
                    Some(run_id),
                    Some(path),
                    format!("signed by {}, which {which} does not list", sig.keyid),
                );
                ok = false;
                continue;
            }
        };
        let verified = entry
            .ed25519()
            .and_then(|k| {
                *ctx.keys
                    .entry(k)
                    .or_insert_with(|| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            })
            .zip(record::decode_b64(&sig.sig).and_then(|b| <[u8; 64]>::try_from(b).ok()))
            .is_some_and(|(key, bytes)| {
                key.verify_strict(&pae, &ed25519_dalek::Signature::from_bytes(&bytes))
                    .is_ok()
            });
        if !verified {
            ctx.add(
                "bad_signature",
                Some(run_id),
                Some(path),
                format!(
                    "signature by {} does not verify (payload or signature altered)",
                    sig.keyid
                ),
            );
            ok = false;
        }
        by_writer |= sig.keyid == parsed.payload.writer;
    }
    if ok && !by_writer {
        ctx.add(
            "writer_mismatch",
            Some(run_id),
            Some(path),
            format!("no signature by the named writer {}", parsed.payload.writer),
        );
    }
}

fn check_run_order(ctx: &mut Ctx<'_>, run_id: &str, records: &BTreeMap<Kind, Parsed>) {
    let present: Vec<Kind> = records.keys().copied().collect();
    let failed = |kind: Kind| -> bool {
        records.get(&kind).is_some_and(|r| match kind {
            Kind::Preflight => r
                .payload
                .predicate_as::<PreflightPredicate>()
                .is_ok_and(|p| !p.passed),
            _ => r
                .payload
                .predicate_as::<DataQualityPredicate>()
                .is_ok_and(|p| !p.passed),
        })
    };
    // preflight [data_quality] context command started [result]; a failed
    // preflight or DQ gate ends the run right there (blocked).
    let expected: Vec<Kind> = if failed(Kind::Preflight) {
        vec![Kind::Preflight]
    } else if failed(Kind::DataQuality) {
        vec![Kind::Preflight, Kind::DataQuality]
    } else {
        Kind::ALL
            .into_iter()
            .filter(|k| match k {
                Kind::DataQuality | Kind::Result => present.contains(k),
                _ => true,
            })
            .collect()
    };
    for kind in expected.iter().filter(|k| !present.contains(k)) {
        ctx.add(
            "missing_record",
            Some(run_id),
            Some(&journal::record_path(run_id, *kind)),
            format!("{kind} record is missing (deleted?)"),
        );
    }
    if present.len() > expected.len() {
        ctx.add(
            "ran_despite_block",
            Some(run_id),
            None,
            "records follow a failed preflight or DQ gate".into(),
        );
    }
    let mut prev: Option<&Parsed> = None;
    for (kind, record) in records {
        let expected_prev = prev.map(|p| p.id.as_str());
        if record.payload.run_prev.as_deref() != expected_prev {
            ctx.add(
                "run_chain_broken",
                Some(run_id),
                Some(&journal::record_path(run_id, *kind)),
                format!(
                    "run_prev is {:?}, expected {:?} (records reordered, replaced or removed)",
                    record.payload.run_prev, expected_prev
                ),
            );
        }
        if let Some(p) = prev {
            if record.payload.at < p.payload.at {
                ctx.add(
                    "time_reversed",
                    Some(run_id),
                    Some(&journal::record_path(run_id, *kind)),
                    format!(
                        "at {} is before the previous record's {}",
                        record.payload.at, p.payload.at
                    ),
                );
            }
        }
        prev = Some(record);
    }
}

/// What the writer chains need of a record (not the whole parsed record:
/// a large ledger would hold every payload in memory twice).
struct Link {
    id: String,
    payload: LinkHeader,
}

struct LinkHeader {
    run_id: String,
    kind: Kind,
    writer: String,
    seq: u64,
    prev: Option<String>,
}

impl Link {
    fn of(parsed: &Parsed) -> Link {
        let p = &parsed.payload;
        Link {
            id: parsed.id.clone(),
            payload: LinkHeader {
                run_id: p.run_id.clone(),
                kind: p.kind,
                writer: p.writer.clone(),
                seq: p.seq,
                prev: p.prev.clone(),
            },
        }
    }
}

/// Checks each writer's seq/prev chain and `writers/*.json`. Returns the writer count.
fn check_writer_chains(
    ctx: &mut Ctx<'_>,
    snapshot: &Snapshot<'_>,
    records: &[Link],
) -> Result<usize, Error> {
    let mut chains: BTreeMap<&str, BTreeMap<u64, Vec<&Link>>> = BTreeMap::new();
    for r in records {
        chains
            .entry(&r.payload.writer)
            .or_default()
            .entry(r.payload.seq)
            .or_default()
            .push(r);
    }
    let mut heads: BTreeMap<String, WriterHead> = BTreeMap::new();
    for item in snapshot.list("writers")?.unwrap_or_default() {
        let path = format!("writers/{}", item.name);
        match serde_json::from_slice::<WriterHead>(&snapshot.blob(item.id)?) {
            Ok(h) if journal::writer_path(&h.writer) == path => {
                heads.insert(h.writer.clone(), h);
            }
            Ok(h) => ctx.add(
                "writer_index",
                None,
                Some(&path),
                format!(
                    "names writer {} whose head belongs at {}",
                    h.writer,
                    journal::writer_path(&h.writer)
                ),
            ),
            Err(e) => ctx.add(
                "writer_index",
                None,
                Some(&path),
                format!("not a writer head: {e}"),
            ),
        }
    }
    for (writer, chain) in &chains {
        let mut expected_prev: Option<&str> = None;
        let mut next = 1;
        for (seq, at_seq) in chain {
            let first = at_seq[0];
            let path = journal::record_path(&first.payload.run_id, first.payload.kind);
            if at_seq.len() > 1 {
                ctx.add(
                    "duplicate_seq",
                    Some(&first.payload.run_id),
                    Some(&path),
                    format!(
                        "writer {writer} has {} records with seq {seq}",
                        at_seq.len()
                    ),
                );
            }
            if *seq != next {
                let missing = if *seq == next + 1 {
                    format!("seq {next} is missing")
                } else {
                    format!("seq {next}..{} are missing", seq - 1)
                };
                ctx.add(
                    "chain_gap",
                    Some(&first.payload.run_id),
                    Some(&path),
                    format!("writer {writer}: {missing} (record deleted?)"),
                );
            } else if first.payload.prev.as_deref() != expected_prev {
                ctx.add(
                    "chain_broken",
                    Some(&first.payload.run_id),
                    Some(&path),
                    format!(
                        "writer {writer} seq {seq}: prev is {:?}, expected {:?}",
                        first.payload.prev, expected_prev
                    ),
                );
            }
            next = seq + 1;
            expected_prev = Some(first.id.as_str());
        }
        let last = chain.values().next_back().map(|v| v[0]);
        match (heads.remove(*writer), last) {
            (Some(h), Some(last)) if h.seq == last.payload.seq && h.id == last.id => {}
            (Some(h), Some(last)) => ctx.add(
                "writer_head_mismatch",
                None,
                Some(&journal::writer_path(writer)),
                format!("says seq {} {}, but the newest record is seq {} {} (newest record removed or replaced?)", h.seq, h.id, last.payload.seq, last.id),
            ),
            (None, _) => ctx.add("writer_index", None, Some(&journal::writer_path(writer)), format!("writer {writer} has records but no head file")),
            (Some(_), None) => {}
        }
    }
    for (writer, h) in heads {
        ctx.add(
            "writer_head_mismatch",
            None,
            Some(&journal::writer_path(&writer)),
            format!(
                "says seq {} {}, but no valid record of this writer exists",
                h.seq, h.id
            ),
        );
    }
    Ok(chains.len())
}
