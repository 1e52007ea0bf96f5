//! The ledger's storage in git, and the only module that uses gix.
//!
//! Records are blobs at `runs/<run_id>/<kind>.dsse.json` on a dedicated ref
//! (default `refs/heads/ledger`); `writers/<fingerprint-hex>.json` holds each
//! writer's newest record so that the next `seq`/`prev` is found without a scan.
//! Commits carry an SSH signature in `gpgsig`. The ref only moves by
//! compare-and-swap: a writer that loses the race rebuilds its batch on the new
//! tip and tries again, so concurrent writers never lose each other's records.
//! HEAD, the index and the working tree are never read for writing.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;
use time::OffsetDateTime;

use crate::record::kinds::GitFacts;

/// The file at the top of the genesis tree that says what this ref holds.
pub const FORMAT_FILE: &str = "ledger.json";
const FORMAT_BODY: &str = "{\n  \"format\": \"ledger/v1\",\n  \"layout\": \"runs/<run_id>/<kind>.dsse.json\",\n  \"writers\": \"writers/<sha256-of-key-hex>.json\"\n}\n";

/// How many times a writer waits for a held ref lock before giving up.
const LOCK_ATTEMPTS: u32 = 12;
/// How many lost compare-and-swap races a writer tolerates.
const MAX_CONFLICTS: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: not inside a git repository", path.display())]
    NotARepo { path: PathBuf },
    #[error("{}: bare repository; this command needs a work tree", path.display())]
    Bare { path: PathBuf },
    #[error("{}: object format {format} is not supported; ledger needs a SHA-1 repository", path.display())]
    ObjectFormat { path: PathBuf, format: String },
    #[error("ledger ref {ref_name} does not exist")]
    NotInitialized { ref_name: String },
    #[error("ledger ref {ref_name} already exists (at {tip})")]
    AlreadyInitialized { ref_name: String, tip: String },
    #[error("{}: ref lock held by another process{}", lock.display(), age.map(|a| format!(" for {a}s")).unwrap_or_default())]
    LockHeld { lock: PathBuf, age: Option<u64> },
    #[error("ledger ref {ref_name} moved {attempts} times while writing; gave up")]
    Contention { ref_name: String, attempts: u32 },
    #[error("remote {remote}: {message}")]
    Remote { remote: String, message: String },
    #[error("git {context}: {message}")]
    Git { context: String, message: String },
}

impl StoreError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::LockHeld { lock, .. } => Some(format!(
                "if no ledger or git process is writing this repository (check with `ps`), remove the stale lock: rm {}",
                lock.display()
            )),
            StoreError::NotInitialized { .. } => Some("run `ledger init` first".into()),
            StoreError::NotARepo { .. } => Some("run ledger inside a git work tree (`git init` makes one)".into()),
            _ => None,
        }
    }
}

trait GitContext<T> {
    fn git(self, context: &str) -> Result<T, StoreError>;
}

impl<T, E: std::error::Error> GitContext<T> for Result<T, E> {
    fn git(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Git {
            context: context.into(),
            message: chain(&e),
        })
    }
}

/// Runs an object write again (up to 5 times) when it failed because a
/// directory vanished under it: `git gc` and `git prune` remove empty
/// `objects/xx/` directories while another process is about to move a new
/// object into one, and git itself retries such a write the same way.
fn retrying<T, E: std::error::Error + 'static>(
    mut write: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut tries = 0;
    loop {
        match write() {
            Err(e) if tries < 4 && vanished(&e) => tries += 1,
            done => return done,
        }
    }
}

/// A lock no process holds open is stale. When some process cannot be
/// inspected (another user's, or one that is not dumpable, such as sshd's
/// privilege-separated children in a container without CAP_SYS_PTRACE), it
/// cannot be holding our lock unless it is a ledger or git of ours, which
/// are inspectable; the lock must then also be older than any ref update
/// takes ([`STALE_AFTER`]).
fn stale(lock: &Path) -> bool {
    match crate::proc::open_by_any_process(lock) {
        Some(open) => !open,
        None => std::fs::metadata(lock)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER),
    }
}

/// How old a lock must be to be taken as stale when not every process could
/// be inspected; a ref update holds its lock for milliseconds.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

/// Looks an object up again (up to 3 more times, 10 ms apart) when it was
/// not found: `git repack` or `git gc` beside ledger can move a loose object
/// into a new pack between the two places a lookup checks, and git itself
/// looks again after rescanning its packs the same way.
fn moved<T, E: std::fmt::Display>(mut find: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut tries = 0;
    loop {
        match find() {
            Err(e) if tries < 3 && e.to_string().contains("could not be found") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// Whether `error` (or a cause) is "no such file or directory".
fn vanished(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
            || e.to_string().ends_with("(os error 2)")
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// An error and its causes on one line (gix puts the operating system's
/// reason, e.g. "File too large", in a source, not in the message).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Who a ledger commit is by (name and email, as in git).
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

/// Files to add in one commit, and its message.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub message: String,
    /// Tree paths (`/`-separated) and contents.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Signs commit bytes; returns the armored signature for `gpgsig`.
pub type CommitSigner<'a> = &'a dyn Fn(&[u8]) -> String;

/// An entry of a ledger tree.
#[derive(Clone, Debug)]
pub struct Item {
    pub name: String,
    pub kind: EntryKind,
    pub id: ObjectId,
}

impl Item {
    pub fn is_tree(&self) -> bool {
        self.kind == EntryKind::Tree
    }
}

/// A ledger commit, as verification needs it.
#[derive(Clone, Debug)]
pub struct CommitInfo {
    pub id: ObjectId,
    pub parents: Vec<ObjectId>,
    pub tree: ObjectId,
    /// The armored `gpgsig` header, if any.
    pub gpgsig: Option<String>,
    /// The bytes a `gpgsig` covers: the commit without that header.
    pub signed: Vec<u8>,
    /// Committer time, seconds since the epoch.
    pub time: i64,
    pub subject: String,
}

/// The user's repository with the ledger ref in it.
pub struct Store {
    repo: gix::Repository,
    ref_name: String,
}

/// Opens the repository containing `dir`.
pub fn discover(dir: &Path) -> Result<gix::Repository, StoreError> {
    let repo = gix::ThreadSafeRepository::discover_with_environment_overrides(dir)
        .map_err(|_| not_a_repo(dir))?
        .to_thread_local();
    if repo.object_hash() != gix::hash::Kind::Sha1 {
        return Err(StoreError::ObjectFormat {
            path: repo.git_dir().to_path_buf(),
            format: format!("{:?}", repo.object_hash()),
        });
    }
    Ok(repo)
}

/// Why `dir` could not be opened: this build of gix reads SHA-1
/// repositories only, so a SHA-256 one fails to open at all; git itself
/// tells which it is, for a clear refusal instead of "not a repository".
fn not_a_repo(dir: &Path) -> StoreError {
    let format = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-object-format", "--absolute-git-dir"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match format.as_deref().map(|t| t.lines().collect::<Vec<_>>()) {
        Some(lines) if lines.len() == 2 && lines[0] != "sha1" => StoreError::ObjectFormat {
            path: PathBuf::from(lines[1]),
            format: lines[0].to_string(),
        },
        _ => StoreError::NotARepo {
            path: dir.to_path_buf(),
        },
    }
}

/// Memory for decompressed delta bases while reading packed ledgers, per
/// repository handle (one per worker). 8 MiB verified 10,000 runs about 8%
/// faster than 32 MiB, with 65 MiB less peak RSS (fresh pages cost the
/// kernel more than the misses cost inflating); 2 MiB was no faster.
const PACK_CACHE_BYTES: usize = 8 << 20;

/// Runs a worker reads through one repository handle before it opens a
/// fresh one ([`Store::each_at`]). A handle keeps every pack page it has
/// touched mapped, and so counted in the process's RSS: one handle per
/// worker over a 100,000-run ledger held its whole 300 MiB pack resident.
const RUNS_PER_HANDLE: usize = 4096;

impl Store {
    /// Calls `each` with a snapshot of `tip`, the position and the item, for
    /// every item in order (a worker's share of the runs), on a fresh
    /// repository handle every 4,096 items (`RUNS_PER_HANDLE`).
    pub fn each_at<T, E: From<StoreError>>(
        git_dir: &Path,
        ref_name: &str,
        tip: ObjectId,
        items: &[T],
        mut each: impl FnMut(&Snapshot<'_>, usize, &T) -> Result<(), E>,
    ) -> Result<(), E> {
        for (n, piece) in items.chunks(RUNS_PER_HANDLE).enumerate() {
            let store = Store::open_git_dir(git_dir, ref_name)?;
            let snapshot = store.snapshot(tip)?;
            for (j, item) in piece.iter().enumerate() {
                each(&snapshot, n * RUNS_PER_HANDLE + j, item)?;
            }
        }
        Ok(())
    }

    /// Opens the repository at `git_dir` again, e.g. in another thread.
    pub fn open_git_dir(git_dir: &Path, ref_name: &str) -> Result<Store, StoreError> {
        let repo = gix::open(git_dir).map_err(|_| StoreError::NotARepo {
            path: git_dir.to_path_buf(),
        })?;
        Ok(Store::new(repo, ref_name))
    }

    pub fn new(mut repo: gix::Repository, ref_name: &str) -> Store {
        // Records are small, similar blobs that git packs as long delta
        // chains; without a delta-base cache every read inflates its chain.
        repo.objects.set_pack_cache(|| {
            Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(
                PACK_CACHE_BYTES,
            ))
        });
        Store {
            repo,
            ref_name: ref_name.to_string(),
        }
    }

    pub fn ref_name(&self) -> &str {
        &self.ref_name
    }

    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    pub fn git_dir(&self) -> &Path {
        self.repo.git_dir()
    }

    /// The repository's own identity on this machine: its common git
    /// directory (shared by linked work trees), made absolute.
    pub fn repository_id(&self) -> String {
        let dir = self.repo.common_dir();
        std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string()
    }

    /// A string value of the repository's git configuration (all scopes).
    pub fn config_string(&self, key: &str) -> Option<String> {
        self.repo
            .config_snapshot()
            .string(key)
            .map(|v| v.to_str_lossy().into_owned())
    }

    /// The ledger tip, or `None` before `init`.
    pub fn tip(&self) -> Result<Option<ObjectId>, StoreError> {
        let reference = self
            .repo
            .try_find_reference(self.ref_name.as_str())
            .git("reading the ledger ref")?;
        Ok(reference.and_then(|r| r.target().try_id().map(|id| id.to_owned())))
    }

    /// The tip, or an error telling to run `init`.
    pub fn require_tip(&self) -> Result<ObjectId, StoreError> {
        self.tip()?.ok_or_else(|| StoreError::NotInitialized {
            ref_name: self.ref_name.clone(),
        })
    }

    /// Creates the ledger ref with a signed genesis commit.
    pub fn init(
        &self,
        identity: &Identity,
        at: OffsetDateTime,
        sign: CommitSigner<'_>,
    ) -> Result<ObjectId, StoreError> {
        if let Some(tip) = self.tip()? {
            return Err(StoreError::AlreadyInitialized {
                ref_name: self.ref_name.clone(),
                tip: tip.to_string(),
            });
        }
        let empty = ObjectId::empty_tree(self.repo.object_hash());
        let batch = Batch {
            message: "ledger: genesis\n".into(),
            files: vec![(FORMAT_FILE.into(), FORMAT_BODY.as_bytes().to_vec())],
        };
        let tree = self.write_tree(empty, &batch.files)?;
        let commit = self.write_commit(tree, &[], &batch.message, identity, at, sign)?;
        match self.swap(None, commit, identity, at, "ledger: genesis") {
            Ok(()) => Ok(commit),
            Err(Swap::Conflict) => Err(StoreError::AlreadyInitialized {
                ref_name: self.ref_name.clone(),
                tip: self.tip()?.map(|t| t.to_string()).unwrap_or_default(),
            }),
            Err(Swap::Locked) => Err(self.lock_error()),
            Err(Swap::Failed(e)) => Err(e),
        }
    }

    /// Appends one commit built by `build` from the current tip. On a lost race
    /// `build` runs again on the new tip, so what it derives from the snapshot
    /// (sequence numbers, previous ids, uniqueness checks) is always current.
    pub fn append<T, E: From<StoreError>>(
        &self,
        identity: &Identity,
        at: OffsetDateTime,
        sign: CommitSigner<'_>,
        mut build: impl FnMut(&Snapshot<'_>) -> Result<(Batch, T), E>,
    ) -> Result<(ObjectId, T), E> {
        let mut conflicts = 0;
        let mut lock_waits = 0;
        let mut cleared_stale = false;
        loop {
            let tip = self.require_tip()?;
            let snapshot = self.snapshot(tip)?;
            let (batch, value) = build(&snapshot)?;
            let tree = self.write_tree(snapshot.tree, &batch.files)?;
            let commit = self.write_commit(tree, &[tip], &batch.message, identity, at, sign)?;
            let subject = batch.message.lines().next().unwrap_or_default().to_string();
            match self.swap(Some(tip), commit, identity, at, &subject) {
                Ok(()) => return Ok((commit, value)),
                Err(Swap::Conflict) => {
                    conflicts += 1;
                    if conflicts >= MAX_CONFLICTS {
                        return Err(StoreError::Contention {
                            ref_name: self.ref_name.clone(),
                            attempts: conflicts,
                        }
                        .into());
                    }
                }
                Err(Swap::Locked) => {
                    if !self.wait_for_lock(&mut lock_waits, &mut cleared_stale) {
                        return Err(self.lock_error().into());
                    }
                }
                Err(Swap::Failed(e)) => return Err(e.into()),
            }
        }
    }

    /// A read view of the tree at `commit`.
    pub fn snapshot(&self, commit: ObjectId) -> Result<Snapshot<'_>, StoreError> {
        let tree = moved(|| self.repo.find_commit(commit))
            .git("reading a ledger commit")?
            .tree_id()
            .git("reading a ledger commit's tree")?
            .detach();
        Ok(Snapshot {
            store: self,
            tree,
            dirs: Default::default(),
        })
    }

    /// Fetches `remote`'s ledger ref (a configured remote's name, a URL or a
    /// path) into the private ref `into`, whatever it was; returns the fetched
    /// tip, or `None` when the remote has no ledger. Only `into` is written.
    pub fn fetch(&self, remote: &str, into: &str) -> Result<Option<ObjectId>, StoreError> {
        use gix::remote::Direction;
        let fail = |message: String| StoreError::Remote {
            remote: remote.to_string(),
            message,
        };
        let url = match self.repo.try_find_remote(remote) {
            Some(Ok(r)) => r
                .url(Direction::Fetch)
                .cloned()
                .ok_or_else(|| fail("the remote has no fetch URL".into()))?,
            _ => gix::url::parse(remote.as_bytes().as_bstr())
                .map_err(|e| fail(format!("not a remote name or URL: {e}")))?,
        };
        let spec = format!("+{}:{into}", self.ref_name);
        // Whatever an interrupted pull left there (the ref, or its lock when
        // the pull was killed) is not what we fetch now.
        self.delete_ref(into)?;
        self.clear_stale_ref_lock(into);
        if matches!(url.scheme, gix::url::Scheme::Http | gix::url::Scheme::Https) {
            // This build's gix has no HTTP transport; git has.
            return self.fetch_with_git(remote, &url.to_bstring().to_string(), &spec, into);
        }
        let remote_handle = self
            .repo
            .remote_at(url)
            .map_err(|e| fail(e.to_string()))?
            .with_refspecs([spec.as_str()], Direction::Fetch)
            .map_err(|e| fail(e.to_string()))?
            // Only the ledger ref: never the user's tags.
            .with_fetch_tags(gix::remote::fetch::Tags::None);
        let connection = remote_handle
            .connect(Direction::Fetch)
            .map_err(|e| fail(e.to_string()))?;
        let prepared = connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| fail(e.to_string()))?;
        if prepared.ref_map().is_missing_required_mapping() {
            return Ok(None); // the remote has no ledger
        }
        prepared
            .receive(
                gix::progress::Discard,
                &std::sync::atomic::AtomicBool::new(false),
            )
            .map_err(|e| fail(e.to_string()))?;
        self.ref_target(into)
    }

    fn fetch_with_git(
        &self,
        remote: &str,
        url: &str,
        spec: &str,
        into: &str,
    ) -> Result<Option<ObjectId>, StoreError> {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(self.git_dir())
            .args([
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                url,
                spec,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| StoreError::Remote {
                remote: remote.to_string(),
                message: format!("cannot run git: {e}"),
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("couldn't find remote ref") {
                return Ok(None);
            }
            return Err(StoreError::Remote {
                remote: remote.to_string(),
                message: stderr
                    .lines()
                    .next()
                    .unwrap_or("git fetch failed")
                    .trim()
                    .to_string(),
            });
        }
        self.ref_target(into)
    }

    /// Where `name` points, if it exists.
    pub fn ref_target(&self, name: &str) -> Result<Option<ObjectId>, StoreError> {
        match self.repo.try_find_reference(name).git("reading a ref")? {
            None => Ok(None),
            Some(mut r) => Ok(Some(r.peel_to_id().git("reading a ref")?.detach())),
        }
    }

    /// Points a private ref (never a branch) at `id`, whatever it was.
    pub fn set_private_ref(&self, name: &str, id: ObjectId) -> Result<(), StoreError> {
        self.clearing_stale_lock(name, || {
            self.repo
                .reference(
                    name,
                    id,
                    PreviousValue::Any,
                    "ledger: remote head last seen",
                )
                .git("writing a ref")?;
            Ok(())
        })
    }

    /// Deletes a private ref (e.g. the incoming ref of a pull).
    pub fn delete_ref(&self, name: &str) -> Result<(), StoreError> {
        self.clearing_stale_lock(name, || {
            if let Some(r) = self.repo.try_find_reference(name).git("reading a ref")? {
                r.delete().git("deleting a ref")?;
            }
            Ok(())
        })
    }

    /// Runs `write` on the private ref `name`; when it fails and the ref's
    /// lock file is provably stale (a killed `ledger pull` or `push` left it
    /// and no process holds it open), removes the lock and tries once more.
    fn clearing_stale_lock(
        &self,
        name: &str,
        write: impl Fn() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match write() {
            Ok(()) => Ok(()),
            Err(e) if self.clear_stale_ref_lock(name) => write().map_err(|_| e),
            Err(e) => Err(e),
        }
    }

    /// Removes the lock files a killed writer of the private ref `name` can
    /// leave (its own, and `packed-refs.lock`, which deleting a ref takes)
    /// when no process holds them open; true when it removed one.
    fn clear_stale_ref_lock(&self, name: &str) -> bool {
        let dir = self.repo.common_dir();
        [
            dir.join(format!("{name}.lock")),
            dir.join("packed-refs.lock"),
        ]
        .iter()
        .filter(|lock| lock.exists() && stale(lock) && std::fs::remove_file(lock).is_ok())
        .count()
            > 0
    }

    /// Moves the ledger ref from `expected` to `new` by compare-and-swap,
    /// waiting for a held ref lock as [`Store::append`] does (and clearing
    /// one a killed writer left).
    pub fn advance(
        &self,
        expected: Option<ObjectId>,
        new: ObjectId,
        identity: &Identity,
        at: OffsetDateTime,
        subject: &str,
    ) -> Result<(), StoreError> {
        let (mut lock_waits, mut cleared_stale) = (0, false);
        loop {
            match self.swap(expected, new, identity, at, subject) {
                Ok(()) => return Ok(()),
                Err(Swap::Conflict) => {
                    return Err(StoreError::Contention {
                        ref_name: self.ref_name.clone(),
                        attempts: 1,
                    })
                }
                Err(Swap::Locked) => {
                    if !self.wait_for_lock(&mut lock_waits, &mut cleared_stale) {
                        return Err(self.lock_error());
                    }
                }
                Err(Swap::Failed(e)) => return Err(e),
            }
        }
    }

    /// After an attempt found the ref lock held: waits a little longer each
    /// time and says to try again; after [`LOCK_ATTEMPTS`] waits, removes the
    /// lock once if it is provably stale (then waits afresh), else says to
    /// give up.
    fn wait_for_lock(&self, waits: &mut u32, cleared_stale: &mut bool) -> bool {
        *waits += 1;
        if *waits >= LOCK_ATTEMPTS {
            if !*cleared_stale && self.clear_stale_lock() {
                *cleared_stale = true;
                *waits = 0;
                return true;
            }
            return false;
        }
        std::thread::sleep(Duration::from_millis(20 * u64::from(*waits)));
        true
    }

    /// The newest commit both `a` and `b` reach, if any.
    pub fn merge_base(&self, a: ObjectId, b: ObjectId) -> Result<Option<ObjectId>, StoreError> {
        let mut seen = std::collections::BTreeSet::new();
        for info in self.repo.rev_walk([a]).all().git("walking the ledger")? {
            seen.insert(info.git("walking the ledger")?.id);
        }
        for info in self.repo.rev_walk([b]).all().git("walking the ledger")? {
            let id = info.git("walking the ledger")?.id;
            if seen.contains(&id) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Whether `ancestor` is `tip` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: ObjectId, tip: ObjectId) -> Result<bool, StoreError> {
        if ancestor == tip {
            return Ok(true);
        }
        let walk = self.repo.rev_walk([tip]).all().git("walking the ledger")?;
        for info in walk {
            if info.git("walking the ledger")?.id == ancestor {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A signed merge commit of `ours` and `theirs` whose tree is the union of
    /// both trees; `base` is their merge base ([`Store::merge_base`]). Paths
    /// present on both sides with different content, where neither side is
    /// the base's, are returned as conflicts and nothing is written.
    #[allow(clippy::too_many_arguments)]
    pub fn merge_union(
        &self,
        ours: ObjectId,
        theirs: ObjectId,
        base: Option<ObjectId>,
        message: &str,
        identity: &Identity,
        at: OffsetDateTime,
        sign: CommitSigner<'_>,
    ) -> Result<Result<ObjectId, Vec<String>>, StoreError> {
        let mine = self.snapshot(ours)?;
        let other = self.snapshot(theirs)?;
        // A file both sides changed since their common ancestor (a writer's
        // head file moved on one side only, say) takes the changed side.
        let base = base.map(|b| self.snapshot(b)).transpose()?;
        let mut add: Vec<(String, ObjectId)> = Vec::new();
        let mut conflicts = Vec::new();
        for (path, item) in other.walk("")? {
            match mine.entry(&path)? {
                None => add.push((path, item.id)),
                Some(m) if m.id == item.id => {}
                Some(m) => {
                    let was = match &base {
                        Some(b) => b.entry(&path)?.map(|i| i.id),
                        None => None,
                    };
                    if was == Some(m.id) {
                        add.push((path, item.id));
                    } else if was != Some(item.id) {
                        conflicts.push(path);
                    }
                }
            }
        }
        if !conflicts.is_empty() {
            return Ok(Err(conflicts));
        }
        // Subtrees are read as the edit goes: one that `git repack` moved
        // meanwhile is looked up again, the whole edit done again.
        let tree = moved(|| {
            let mut editor = self
                .repo
                .edit_tree(mine.tree)
                .git("loading the ledger tree")?
                .detach();
            for (path, id) in &add {
                editor
                    .upsert(path.split('/'), EntryKind::Blob, *id)
                    .git("editing the ledger tree")?;
            }
            editor
                .write(|tree| retrying(|| self.repo.write_object(tree)).map(|id| id.detach()))
                .git("writing the ledger tree")
        })?;
        Ok(Ok(self.write_commit(
            tree,
            &[ours, theirs],
            message,
            identity,
            at,
            sign,
        )?))
    }

    /// Whether `id` names a commit in this repository.
    pub fn has_commit(&self, id: ObjectId) -> bool {
        moved(|| self.repo.find_commit(id)).is_ok()
    }

    /// Every commit reachable from `tip`, newest first.
    pub fn commits(&self, tip: ObjectId) -> Result<Vec<CommitInfo>, StoreError> {
        self.commits_since(tip, None)
    }

    /// The commits `tip` reaches and `base` does not (all of them without a
    /// base), newest first.
    pub fn commits_since(
        &self,
        tip: ObjectId,
        base: Option<ObjectId>,
    ) -> Result<Vec<CommitInfo>, StoreError> {
        let walk = self
            .repo
            .rev_walk([tip])
            .with_hidden(base)
            .all()
            .git("walking the ledger")?;
        let mut out = Vec::new();
        for info in walk {
            let info = info.git("walking the ledger")?;
            let commit = moved(|| self.repo.find_commit(info.id)).git("reading a ledger commit")?;
            let decoded = commit.decode().git("decoding a ledger commit")?;
            let (gpgsig, signed) = match commit.signature().git("reading a commit signature")? {
                Some((sig, signed)) => (
                    Some(sig.to_str_lossy().into_owned()),
                    signed.to_bstring().to_vec(),
                ),
                None => (None, commit.data.clone()),
            };
            out.push(CommitInfo {
                id: info.id,
                parents: decoded.parents().collect(),
                tree: decoded.tree(),
                gpgsig,
                signed,
                time: decoded
                    .committer()
                    .ok()
                    .and_then(|c| c.time().ok())
                    .map_or(0, |t| t.seconds),
                subject: decoded.message_summary().to_string(),
            });
        }
        Ok(out)
    }

    /// Whether `commit` changes nothing but the top-level entries `names`
    /// against its one parent (a root or merge commit never qualifies).
    pub fn changes_only(&self, commit: &CommitInfo, names: &[&str]) -> Result<bool, StoreError> {
        let [parent] = commit.parents[..] else {
            return Ok(false);
        };
        let others = |commit: ObjectId| -> Result<Vec<Item>, StoreError> {
            let mut items = self.snapshot(commit)?.list("")?.unwrap_or_default();
            items.retain(|i| !names.contains(&i.name.as_str()));
            Ok(items)
        };
        let ours = others(commit.id)?;
        let theirs = others(parent)?;
        Ok(ours.len() == theirs.len()
            && ours
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a.name == b.name && a.id == b.id))
    }

    /// HEAD's branch and commit and whether tracked files differ from it.
    /// Reads only; never refreshes or writes the index.
    pub fn head_facts(&self) -> GitFacts {
        let head = self.repo.head().ok();
        let branch = head
            .as_ref()
            .and_then(|h| h.referent_name())
            .map(|n| n.shorten().to_str_lossy().into_owned());
        let commit = self.repo.head_id().ok().map(|id| id.to_string());
        let dirty = if self.repo.workdir().is_some() {
            self.repo.is_dirty().ok()
        } else {
            None
        };
        GitFacts {
            branch,
            commit,
            dirty,
        }
    }

    fn lock_path(&self) -> PathBuf {
        self.repo
            .common_dir()
            .join(format!("{}.lock", self.ref_name))
    }

    /// Removes the ref lock when it is provably stale: it outlived all our
    /// waits and no process on this machine has it open (git and gix both hold
    /// a ref lock open until they rename it into place; see [`stale`] for
    /// processes we cannot inspect).
    fn clear_stale_lock(&self) -> bool {
        self.clear_stale_ref_lock(&self.ref_name)
    }

    /// The lock in the way: the ledger ref's own, else `packed-refs.lock`.
    fn held_lock(&self) -> PathBuf {
        let packed = self.repo.common_dir().join("packed-refs.lock");
        match self.lock_path() {
            own if !own.exists() && packed.exists() => packed,
            own => own,
        }
    }

    fn lock_error(&self) -> StoreError {
        let lock = self.held_lock();
        let age = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .map(|d| d.as_secs());
        StoreError::LockHeld { lock, age }
    }

    /// `base` with `files` added. Its subtrees are read as the edit goes;
    /// one that `git repack` moved meanwhile is looked up again, the whole
    /// edit done again (objects written twice are the same objects).
    fn write_tree(
        &self,
        base: ObjectId,
        files: &[(String, Vec<u8>)],
    ) -> Result<ObjectId, StoreError> {
        moved(|| self.write_tree_once(base, files))
    }

    fn write_tree_once(
        &self,
        base: ObjectId,
        files: &[(String, Vec<u8>)],
    ) -> Result<ObjectId, StoreError> {
        let mut editor = self
            .repo
            .edit_tree(base)
            .git("loading the ledger tree")?
            .detach();
        for (path, bytes) in files {
            let blob = retrying(|| self.repo.write_blob(bytes))
                .git("writing a record")?
                .detach();
            editor
                .upsert(path.split('/'), EntryKind::Blob, blob)
                .git("editing the ledger tree")?;
        }
        editor
            .write(|tree| retrying(|| self.repo.write_object(tree)).map(|id| id.detach()))
            .git("writing the ledger tree")
    }

    fn write_commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        message: &str,
        identity: &Identity,
        at: OffsetDateTime,
        sign: CommitSigner<'_>,
    ) -> Result<ObjectId, StoreError> {
        let actor = actor(identity, at);
        let mut commit = gix::objs::Commit {
            tree,
            parents: parents.iter().copied().collect(),
            author: actor.clone(),
            committer: actor,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        let mut unsigned = Vec::new();
        gix::objs::WriteTo::write_to(&commit, &mut unsigned).git("encoding a commit")?;
        commit
            .extra_headers
            .push(("gpgsig".into(), sign(&unsigned).into()));
        Ok(retrying(|| self.repo.write_object(&commit))
            .git("writing a commit")?
            .detach())
    }

    fn swap(
        &self,
        expected: Option<ObjectId>,
        new: ObjectId,
        identity: &Identity,
        at: OffsetDateTime,
        subject: &str,
    ) -> Result<(), Swap> {
        let name = self.ref_name.as_str().try_into().map_err(
            |e: gix::validate::reference::name::Error| {
                Swap::Failed(StoreError::Git {
                    context: format!("ref name {}", self.ref_name),
                    message: e.to_string(),
                })
            },
        )?;
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: subject.into(),
                },
                expected: match expected {
                    Some(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
                    None => PreviousValue::MustNotExist,
                },
                new: Target::Object(new),
            },
            name,
            deref: false,
        };
        let actor = actor(identity, at);
        let mut buf = Default::default();
        match self
            .repo
            .edit_references_as([edit], Some(actor.to_ref(&mut buf)))
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Err(Swap::Conflict),
            // Held by another writer, or by git itself (`git pack-refs` and
            // `git gc` lock every loose ref they pack, and packed-refs): wait
            // and try again, like a lock this ledger's writers hold.
            Err(e) if self.held_lock().exists() || chain(&e).contains("lock") => Err(Swap::Locked),
            Err(e) => Err(Swap::Failed(StoreError::Git {
                context: format!("updating {}", self.ref_name),
                message: chain(&e),
            })),
        }
    }
}

enum Swap {
    Conflict,
    Locked,
    Failed(StoreError),
}

fn actor(identity: &Identity, at: OffsetDateTime) -> gix::actor::Signature {
    gix::actor::Signature {
        name: identity.name.as_str().into(),
        email: identity.email.as_str().into(),
        time: gix::date::Time {
            seconds: at.unix_timestamp(),
            offset: 0,
        },
    }
}

/// A read-only view of one ledger tree. Directory listings are cached, so
/// reading every run of a large ledger decodes each tree once.
pub struct Snapshot<'a> {
    store: &'a Store,
    tree: ObjectId,
    dirs: std::cell::RefCell<std::collections::BTreeMap<String, Rc<Dir>>>,
}

/// A decoded tree, with an index by name.
struct Dir {
    items: Vec<Item>,
    by_name: std::collections::BTreeMap<String, usize>,
}

impl Snapshot<'_> {
    /// The entries of the tree at `path` (`""` for the root), or `None`.
    pub fn list(&self, path: &str) -> Result<Option<Vec<Item>>, StoreError> {
        Ok(self.dir(path)?.map(|d| d.items.clone()))
    }

    /// The entry at `path`, or `None`.
    fn entry(&self, path: &str) -> Result<Option<Item>, StoreError> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok(self
            .dir(parent)?
            .and_then(|d| d.by_name.get(name).map(|&i| d.items[i].clone())))
    }

    fn dir(&self, path: &str) -> Result<Option<Rc<Dir>>, StoreError> {
        if let Some(d) = self.dirs.borrow().get(path) {
            return Ok(Some(d.clone()));
        }
        let id = if path.is_empty() {
            self.tree
        } else {
            match self.entry(path)? {
                Some(item) if item.is_tree() => item.id,
                _ => return Ok(None),
            }
        };
        let tree = moved(|| self.store.repo.find_tree(id)).git("reading the ledger tree")?;
        let decoded = tree.decode().git("decoding the ledger tree")?;
        let items: Vec<Item> = decoded
            .entries
            .iter()
            .map(|e| Item {
                name: e.filename.to_str_lossy().into_owned(),
                kind: e.mode.kind(),
                id: e.oid.to_owned(),
            })
            .collect();
        let by_name = items
            .iter()
            .enumerate()
            .map(|(i, item)| (item.name.clone(), i))
            .collect();
        let dir = Rc::new(Dir { items, by_name });
        self.dirs.borrow_mut().insert(path.to_string(), dir.clone());
        Ok(Some(dir))
    }

    /// Every entry below the tree at `path`, depth first, with paths relative
    /// to it; trees themselves are not listed.
    pub fn walk(&self, path: &str) -> Result<Vec<(String, Item)>, StoreError> {
        let mut out = Vec::new();
        let mut pending = vec![(String::new(), path.to_string())];
        while let Some((rel, full)) = pending.pop() {
            for item in self.list(&full)?.unwrap_or_default() {
                let item_rel = if rel.is_empty() {
                    item.name.clone()
                } else {
                    format!("{rel}/{}", item.name)
                };
                if item.is_tree() {
                    pending.push((item_rel, format!("{full}/{}", item.name)));
                } else {
                    out.push((item_rel, item));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Drops the decoded trees at and under `path` from the cache, once a
    /// caller is done with them: one pass over 100,000 runs would otherwise
    /// keep every run's trees in memory.
    pub fn forget(&self, path: &str) {
        let mut dirs = self.dirs.borrow_mut();
        let below = format!("{path}/");
        let doomed: Vec<String> = dirs
            .range(path.to_string()..)
            .map(|(k, _)| k)
            // Sorted: every key starting with `path` comes before any other
            // (`runs/a-b` sorts between `runs/a` and `runs/a/x`).
            .take_while(|k| k.starts_with(path))
            .filter(|k| k.as_str() == path || k.starts_with(&below))
            .cloned()
            .collect();
        for k in doomed {
            dirs.remove(&k);
        }
    }

    /// The object id of the entry at `path`, or `None`.
    pub fn read_id(&self, path: &str) -> Result<Option<ObjectId>, StoreError> {
        Ok(self.entry(path)?.map(|i| i.id))
    }

    /// The content of the blob at `path`, or `None`.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.entry(path)? {
            Some(item) if !item.is_tree() => Ok(Some(self.blob(item.id)?)),
            _ => Ok(None),
        }
    }

    /// The blob at `path` if its size is `bytes`: `None` when no blob is
    /// there, `Some(Err(size))` when it has another size (it is then not
    /// read: a huge blob from a hostile remote never reaches memory).
    pub fn read_sized(
        &self,
        path: &str,
        bytes: u64,
    ) -> Result<Option<Result<Vec<u8>, u64>>, StoreError> {
        match self.entry(path)?.filter(|i| !i.is_tree()) {
            Some(item) => self.blob_sized(item.id, bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The blob `id` if its size is `bytes`, else `Err(size)` without
    /// reading it (see [`Snapshot::read_sized`]).
    pub fn blob_sized(&self, id: ObjectId, bytes: u64) -> Result<Result<Vec<u8>, u64>, StoreError> {
        match self.size(id)? {
            size if size == bytes => Ok(Ok(self.blob(id)?)),
            size => Ok(Err(size)),
        }
    }

    /// The size of the object `id` from its header, without reading it.
    pub fn size(&self, id: ObjectId) -> Result<u64, StoreError> {
        Ok(moved(|| self.store.repo.find_header(id))
            .git("reading an object header")?
            .size())
    }

    pub fn blob(&self, id: ObjectId) -> Result<Vec<u8>, StoreError> {
        Ok(moved(|| self.store.repo.find_blob(id))
            .git("reading a ledger blob")?
            .take_data())
    }
}
