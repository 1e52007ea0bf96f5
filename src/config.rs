//! The typed `ledger.yaml`. `ledger-template/ledger.yaml` (embedded in the
//! binary, written by `ledger init`) documents every key and its default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file name at the top of the work tree.
pub const FILE_NAME: &str = "ledger.yaml";
/// What `ledger init` writes.
pub const TEMPLATE: &str = include_str!("../ledger-template/ledger.yaml");
/// The JSON Schema of ledger.yaml: editors read it (the template's
/// `yaml-language-server` line names the copy `ledger init` writes) and
/// `ledger config check` validates against it.
pub const SCHEMA: &str = include_str!("../schemas/ledger-config.schema.json");
/// Where `ledger init` puts the schema, relative to the repository top.
pub const SCHEMA_COPY: &str = ".ledger/ledger-config.schema.json";

/// The ledger ref when ledger.yaml names none.
pub const DEFAULT_REF: &str = "refs/heads/ledger";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: not found", path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// serde_yaml names the key path, the line and the column.
    #[error("{}: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    #[serde(default)]
    pub ledger: LedgerSection,
    #[serde(default)]
    pub signing: SigningSection,
    #[serde(default)]
    pub trust: TrustSection,
    #[serde(default)]
    pub preflight: PreflightSection,
    #[serde(default)]
    pub context: ContextSection,
    /// Globs of files (strategy configs, data) whose digests each run's
    /// context records.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Inputs and freeze files up to this size are also stored in the ledger
    /// (`runs/<run_id>/inputs/<path>`), so a run review can diff them.
    #[serde(default = "default_inputs_store")]
    pub inputs_max_store_bytes: u64,
    #[serde(default)]
    pub audit: AuditSection,
    /// Per-workflow settings; a workflow not named here runs with the
    /// defaults (no DQ gate).
    #[serde(default)]
    pub workflows: BTreeMap<String, WorkflowSection>,
    /// The data-quality gate's rules.
    #[serde(default)]
    pub dq: DqSection,
    #[serde(default)]
    pub products: ProductsSection,
    #[serde(default)]
    pub log: LogSection,
    /// How `ledger finalize` reads a run's report.
    #[serde(default)]
    pub report: ReportSection,
    /// Where `ledger finalize` writes its documents.
    #[serde(default)]
    pub finalize: FinalizeSection,
    /// `ledger push` / `ledger pull`.
    #[serde(default)]
    pub sync: SyncSection,
    /// Committee sign-off: who decides, and how many must agree.
    #[serde(default)]
    pub committee: CommitteeSection,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// The remote (a configured remote's name, a URL or a path) when none is
    /// given; default `origin`.
    pub remote: Option<String>,
}

/// `ledger decide` and the approval policy.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CommitteeSection {
    /// The members' keys, in git's allowed_signers format (valid-after and
    /// valid-before honoured); relative to the repository's top directory.
    /// Unset: no committee, and every decision record is untrusted.
    pub allowed_signers: Option<String>,
    /// How many distinct members must approve (k of n).
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// Runs whose tag starts with this are committee runs: `verify --policy`
    /// requires them approved.
    #[serde(default = "default_committee_prefix")]
    pub tag_prefix: String,
}

fn default_threshold() -> u32 {
    2
}

fn default_committee_prefix() -> String {
    "committee_".into()
}

impl Default for CommitteeSection {
    fn default() -> Self {
        CommitteeSection {
            allowed_signers: None,
            threshold: default_threshold(),
            tag_prefix: default_committee_prefix(),
        }
    }
}

/// Where in a team's report JSON finalize finds what it needs: JSON pointers
/// (RFC 6901). An empty pointer means the report has no such field.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// Glob over a run's stored products naming its report.
    #[serde(default = "default_report_product")]
    pub product: String,
    #[serde(default = "default_ptr_factor")]
    pub factor: String,
    #[serde(default = "default_ptr_strategy")]
    pub strategy: String,
    #[serde(default = "default_ptr_verdict")]
    pub verdict: String,
    /// The list of gates.
    #[serde(default = "default_ptr_gates")]
    pub gates: String,
    /// Pointers inside one gate object.
    #[serde(default)]
    pub gate: GatePointers,
    /// An object of metric name to number.
    #[serde(default = "default_ptr_metrics")]
    pub metrics: String,
    /// The metric that ranks runs and factors.
    #[serde(default = "default_primary_metric")]
    pub primary_metric: String,
    #[serde(default = "default_true")]
    pub higher_is_better: bool,
    /// Walk-forward shard counts: total and passed.
    #[serde(default = "default_ptr_wf_shards")]
    pub walk_forward_shards: String,
    #[serde(default = "default_ptr_wf_passed")]
    pub walk_forward_passed: String,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GatePointers {
    #[serde(default = "default_ptr_name")]
    pub name: String,
    #[serde(default = "default_ptr_passed")]
    pub passed: String,
    #[serde(default = "default_ptr_value")]
    pub value: String,
    #[serde(default = "default_ptr_threshold")]
    pub threshold: String,
    #[serde(default = "default_ptr_reason")]
    pub reason: String,
    #[serde(default = "default_ptr_cost")]
    pub cost_multiplier: String,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FinalizeSection {
    /// One row per run.
    #[serde(default = "default_stage_log")]
    pub stage_audit_log: String,
    /// Written beside each run's report.
    #[serde(default = "default_summary_name")]
    pub summary_name: String,
    /// Written beside each run's report.
    #[serde(default = "default_review_name")]
    pub review_name: String,
    /// The factor experiment registry (CSV) and leaderboard.
    #[serde(default = "default_registry_dir")]
    pub registry_dir: String,
    /// failure_patterns.csv and failure_pattern_summary.md.
    #[serde(default = "default_failure_dir")]
    pub failure_dir: String,
    /// Weights of the candidate queue.
    #[serde(default)]
    pub queue: QueueWeights,
    /// handoff_readiness.json and .md.
    #[serde(default = "default_handoff_dir")]
    pub handoff_dir: String,
}

/// How the candidate queue scores a factor (docs/projections.md).
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QueueWeights {
    /// The last run failed exactly one gate.
    #[serde(default = "default_near_miss")]
    pub near_miss: u32,
    /// The primary metric improved from the run before.
    #[serde(default = "default_improving")]
    pub improving: u32,
    /// Never tested at the highest cost multiplier the ledger knows.
    #[serde(default = "default_untested_cost")]
    pub untested_cost: u32,
    /// Parked after this many last runs failed with one same pattern.
    #[serde(default = "default_park_after")]
    pub park_after: usize,
}

impl Default for QueueWeights {
    fn default() -> Self {
        QueueWeights {
            near_miss: default_near_miss(),
            improving: default_improving(),
            untested_cost: default_untested_cost(),
            park_after: default_park_after(),
        }
    }
}

fn default_near_miss() -> u32 {
    3
}
fn default_improving() -> u32 {
    2
}
fn default_untested_cost() -> u32 {
    1
}
fn default_park_after() -> usize {
    3
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    #[serde(rename = "ref", default = "default_ref")]
    pub ref_name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SigningSection {
    pub key: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    #[serde(default = "default_trust")]
    pub allowed_signers: String,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PreflightSection {
    #[serde(default = "default_min_cores")]
    pub min_cores: u64,
    #[serde(default = "default_min_memory_gb")]
    pub min_memory_gb: u64,
    #[serde(default)]
    pub min_free_disk_gb: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ContextSection {
    /// Environment variables recorded in the context record: names, or
    /// prefixes ending in `*`. Values that look secret are redacted anyway.
    #[serde(default = "default_env_allow")]
    pub env_allow: Vec<String>,
}

/// The variables a run's context records by default.
pub const DEFAULT_ENV_ALLOW: [&str; 16] = [
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "PATH",
    "LANG",
    "LC_*",
    "TZ",
    "PYTHONHASHSEED",
    "PYTHONPATH",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "VIRTUAL_ENV",
    "CUDA_VISIBLE_DEVICES",
    "SLURM_JOB_ID",
];

fn default_env_allow() -> Vec<String> {
    DEFAULT_ENV_ALLOW.map(String::from).to_vec()
}

impl Default for ContextSection {
    fn default() -> Self {
        ContextSection {
            env_allow: default_env_allow(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    #[serde(default = "default_audit_dir")]
    pub dir: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkflowSection {
    /// Runs of this workflow need `--dq-input-csv FILE` (or `--skip-dq`).
    #[serde(default)]
    pub require_dq: bool,
}

/// Column types the DQ gate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Int,
    Float,
    /// ISO `YYYY-MM-DD`.
    Date,
    String,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Date => "date",
            ColumnType::String => "string",
        }
    }
}

/// The DQ gate's built-in rules; every one is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DqSection {
    /// Required columns and their types.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnType>,
    #[serde(default)]
    pub not_null: Vec<String>,
    /// Columns whose values together are unique per row.
    #[serde(default)]
    pub unique_key: Vec<String>,
    pub date: Option<DateRule>,
    /// Inclusive numeric bounds per column.
    #[serde(default)]
    pub ranges: BTreeMap<String, Range>,
    pub min_rows: Option<u64>,
    /// Largest share of null values allowed in each typed column.
    pub max_null_fraction: Option<f64>,
    pub staleness: Option<Staleness>,
    /// External check run with `sh -c`; `{input}` becomes the CSV's path.
    /// Exit 0 passes.
    pub command: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DateRule {
    pub column: String,
    #[serde(default)]
    pub sorted: bool,
    pub max_gap_days: Option<u32>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Staleness {
    pub max_age_days: u32,
    /// The date the data is judged against (`--dq-as-of` overrides it).
    #[serde(default, deserialize_with = "iso_date")]
    #[cfg_attr(test, schemars(with = "Option<String>"))]
    pub as_of: Option<time::Date>,
}

fn iso_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<time::Date>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| {
        crate::dq::parse_date(t.trim().as_bytes())
            .ok_or_else(|| serde::de::Error::custom(format!("{t:?} is not a date YYYY-MM-DD")))
    })
    .transpose()
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductsSection {
    /// Globs of the reports a run writes; those created or changed during
    /// the run are hashed into its result and stored in the ledger.
    #[serde(default = "default_product_globs")]
    pub globs: Vec<String>,
    /// Larger products are recorded by digest only.
    #[serde(default = "default_product_max")]
    pub max_bytes: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Last lines of the run log kept in the result record.
    #[serde(default = "default_tail")]
    pub tail_lines: usize,
    /// Logs up to this size are stored in the ledger as runs/<run_id>/log;
    /// larger ones by digest only.
    #[serde(default = "default_log_max")]
    pub max_store_bytes: u64,
}

fn default_inputs_store() -> u64 {
    1 << 20
}
fn default_report_product() -> String {
    "**/production_gates_report.json".into()
}
fn default_ptr_factor() -> String {
    "/factor".into()
}
fn default_ptr_strategy() -> String {
    "/strategy".into()
}
fn default_ptr_verdict() -> String {
    "/verdict".into()
}
fn default_ptr_gates() -> String {
    "/gates".into()
}
fn default_ptr_metrics() -> String {
    "/metrics".into()
}
fn default_primary_metric() -> String {
    "sharpe".into()
}
fn default_true() -> bool {
    true
}
fn default_ptr_wf_shards() -> String {
    "/walk_forward/shards".into()
}
fn default_ptr_wf_passed() -> String {
    "/walk_forward/passed".into()
}
fn default_ptr_name() -> String {
    "/name".into()
}
fn default_ptr_passed() -> String {
    "/passed".into()
}
fn default_ptr_value() -> String {
    "/value".into()
}
fn default_ptr_threshold() -> String {
    "/threshold".into()
}
fn default_ptr_reason() -> String {
    "/reason".into()
}
fn default_ptr_cost() -> String {
    "/cost_multiplier".into()
}
fn default_stage_log() -> String {
    "docs/production_research/STAGE_AUDIT_LOG.md".into()
}
fn default_summary_name() -> String {
    "production_gates_final_summary.md".into()
}
fn default_handoff_dir() -> String {
    "audit/session_handoff".into()
}
fn default_failure_dir() -> String {
    "audit/failure_patterns".into()
}
fn default_registry_dir() -> String {
    "audit/factor_registry".into()
}
fn default_review_name() -> String {
    "production_gates_run_review.md".into()
}
fn default_ref() -> String {
    DEFAULT_REF.into()
}
fn default_trust() -> String {
    ".ledger/allowed_signers".into()
}
fn default_min_cores() -> u64 {
    8
}
fn default_min_memory_gb() -> u64 {
    60
}
fn default_audit_dir() -> String {
    "audit/workstation_runs".into()
}
fn default_tail() -> usize {
    20
}
fn default_product_globs() -> Vec<String> {
    vec!["gate_results/**/production_gates_report.json".into()]
}
fn default_product_max() -> u64 {
    64 << 20
}
fn default_log_max() -> u64 {
    16 << 20
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            ref_name: default_ref(),
        }
    }
}
impl Default for TrustSection {
    fn default() -> Self {
        TrustSection {
            allowed_signers: default_trust(),
        }
    }
}
impl Default for PreflightSection {
    fn default() -> Self {
        PreflightSection {
            min_cores: default_min_cores(),
            min_memory_gb: default_min_memory_gb(),
            min_free_disk_gb: 0,
        }
    }
}
impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            dir: default_audit_dir(),
        }
    }
}
impl Default for ProductsSection {
    fn default() -> Self {
        ProductsSection {
            globs: default_product_globs(),
            max_bytes: default_product_max(),
        }
    }
}
impl Default for ReportSection {
    fn default() -> Self {
        ReportSection {
            product: default_report_product(),
            factor: default_ptr_factor(),
            strategy: default_ptr_strategy(),
            verdict: default_ptr_verdict(),
            gates: default_ptr_gates(),
            gate: GatePointers::default(),
            metrics: default_ptr_metrics(),
            primary_metric: default_primary_metric(),
            higher_is_better: true,
            walk_forward_shards: default_ptr_wf_shards(),
            walk_forward_passed: default_ptr_wf_passed(),
        }
    }
}
impl Default for GatePointers {
    fn default() -> Self {
        GatePointers {
            name: default_ptr_name(),
            passed: default_ptr_passed(),
            value: default_ptr_value(),
            threshold: default_ptr_threshold(),
            reason: default_ptr_reason(),
            cost_multiplier: default_ptr_cost(),
        }
    }
}
impl Default for FinalizeSection {
    fn default() -> Self {
        FinalizeSection {
            stage_audit_log: default_stage_log(),
            summary_name: default_summary_name(),
            review_name: default_review_name(),
            registry_dir: default_registry_dir(),
            failure_dir: default_failure_dir(),
            queue: QueueWeights::default(),
            handoff_dir: default_handoff_dir(),
        }
    }
}
impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            tail_lines: default_tail(),
            max_store_bytes: default_log_max(),
        }
    }
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ConfigError::Missing {
                path: path.to_path_buf(),
            },
            _ => ConfigError::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        match config.problems().into_iter().next() {
            Some((field, message)) => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                field,
                message,
            }),
            None => Ok(config),
        }
    }

    /// Every value that parses but makes no sense: (field, why), in the order
    /// of the checks. `ledger config check` reports them all; loading stops
    /// at the first.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let config = self;
        let mut problems = Vec::new();
        if config.version != 1 {
            problems.push((
                "version",
                format!("{} is not supported, expected 1", config.version),
            ));
        }
        let r = &config.ledger.ref_name;
        if !r.starts_with("refs/") || gix::validate::reference::name(r.as_str().into()).is_err() {
            problems.push((
                "ledger.ref",
                format!("{r:?} is not a full git ref name such as refs/heads/ledger"),
            ));
        }
        if !is_relative_inside(&config.audit.dir) {
            problems.push((
                "audit.dir",
                format!(
                    "{:?} must be a relative path inside the repository",
                    config.audit.dir
                ),
            ));
        }
        for (field, globs) in [
            ("inputs", &config.inputs),
            ("products.globs", &config.products.globs),
        ] {
            // A pattern that is not a glob would match nothing, silently
            // leaving files out of every run's record.
            if let Some((bad, e)) = globs
                .iter()
                .find_map(|p| glob::Pattern::new(p).err().map(|e| (p, e)))
            {
                problems.push((field, format!("{bad:?} is not a glob: {}", e.msg)));
            } else if let Some(bad) = globs.iter().find(|p| !crate::files::pattern_is_inside(p)) {
                problems.push((
                    field,
                    format!("{bad:?} must be a relative glob inside the repository"),
                ));
            } else if let Some(bad) = globs.iter().find(|p| crate::files::matches_no_file(p)) {
                problems.push((
                    field,
                    format!(
                        "{bad:?} matches no file (a last ** matches directories only): write {:?}",
                        format!("{}/*", bad.trim_end_matches('/'))
                    ),
                ));
            }
        }
        if let Some(bad) = config.context.env_allow.iter().find(|name| {
            let name = name.strip_suffix('*').unwrap_or(name);
            name.is_empty()
                || name.starts_with(|c: char| c.is_ascii_digit())
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }) {
            problems.push((
                "context.env_allow",
                format!(
                    "{bad:?} is not an environment variable name (letters, digits, _; a trailing * for a prefix)"
                ),
            ));
        }
        if config
            .signing
            .key
            .as_ref()
            .is_some_and(|k| k.trim().is_empty())
        {
            problems.push((
                "signing.key",
                "must name a key file (or be left out: --key, LEDGER_KEY or git's user.signingkey)"
                    .into(),
            ));
        }
        if config
            .dq
            .command
            .as_ref()
            .is_some_and(|c| c.trim().is_empty())
        {
            problems.push((
                "dq.command",
                "must be a command (or be left out: no external check)".into(),
            ));
        }
        for (column, range) in &config.dq.ranges {
            if let (Some(min), Some(max)) = (range.min, range.max) {
                if min > max {
                    problems.push((
                        "dq.ranges",
                        format!("{column}: min {min} is above max {max}; no value could pass"),
                    ));
                }
            }
        }
        if let Some(f) = config
            .dq
            .max_null_fraction
            .filter(|f| !(0.0..=1.0).contains(f))
        {
            problems.push((
                "dq.max_null_fraction",
                format!("{f} must be between 0 and 1"),
            ));
        }
        if config.trust.allowed_signers.trim().is_empty() {
            problems.push(("trust.allowed_signers", "must name a file".into()));
        }
        if config
            .committee
            .allowed_signers
            .as_ref()
            .is_some_and(|p| p.trim().is_empty())
        {
            problems.push((
                "committee.allowed_signers",
                "must name a file (or be left out: no committee)".into(),
            ));
        }
        if config.committee.threshold == 0 {
            problems.push((
                "committee.threshold",
                "must be at least 1: how many members must approve".into(),
            ));
        }
        if config.committee.tag_prefix.is_empty() {
            problems.push((
                "committee.tag_prefix",
                "must not be empty: every run would be a committee run".into(),
            ));
        }
        let r = &config.report;
        let pointers = [
            ("report.factor", &r.factor),
            ("report.strategy", &r.strategy),
            ("report.verdict", &r.verdict),
            ("report.gates", &r.gates),
            ("report.metrics", &r.metrics),
            ("report.walk_forward_shards", &r.walk_forward_shards),
            ("report.walk_forward_passed", &r.walk_forward_passed),
            ("report.gate.name", &r.gate.name),
            ("report.gate.passed", &r.gate.passed),
            ("report.gate.value", &r.gate.value),
            ("report.gate.threshold", &r.gate.threshold),
            ("report.gate.reason", &r.gate.reason),
            ("report.gate.cost_multiplier", &r.gate.cost_multiplier),
        ];
        for (field, pointer) in pointers {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                problems.push((
                    field,
                    format!("{pointer:?} is not a JSON pointer (it must start with / or be empty)"),
                ));
            }
        }
        for (field, pointer) in [
            ("report.factor", &r.factor),
            ("report.gates", &r.gates),
            ("report.gate.name", &r.gate.name),
            ("report.gate.passed", &r.gate.passed),
        ] {
            if pointer.is_empty() {
                problems.push((field, "is required; finalize cannot work without it".into()));
            }
        }
        if glob::Pattern::new(&r.product).is_err() || !crate::files::pattern_is_inside(&r.product) {
            problems.push((
                "report.product",
                format!(
                    "{:?} must be a relative glob inside the repository",
                    r.product
                ),
            ));
        }
        let f = &config.finalize;
        if !is_relative_inside(&f.handoff_dir) {
            problems.push((
                "finalize.handoff_dir",
                format!(
                    "{:?} must be a relative path inside the repository",
                    f.handoff_dir
                ),
            ));
        }
        if !is_relative_inside(&f.failure_dir) {
            problems.push((
                "finalize.failure_dir",
                format!(
                    "{:?} must be a relative path inside the repository",
                    f.failure_dir
                ),
            ));
        }
        if !is_relative_inside(&f.registry_dir) {
            problems.push((
                "finalize.registry_dir",
                format!(
                    "{:?} must be a relative path inside the repository",
                    f.registry_dir
                ),
            ));
        }
        if !is_relative_inside(&f.stage_audit_log) {
            problems.push((
                "finalize.stage_audit_log",
                format!(
                    "{:?} must be a relative path inside the repository",
                    f.stage_audit_log
                ),
            ));
        }
        for (field, name) in [
            ("finalize.summary_name", &f.summary_name),
            ("finalize.review_name", &f.review_name),
        ] {
            if !is_relative_inside(name) || name.contains('/') || name == &f.stage_audit_log {
                problems.push((field, format!("{name:?} must be a plain file name")));
            }
        }
        if f.summary_name == f.review_name {
            problems.push((
                "finalize.review_name",
                "must differ from finalize.summary_name".into(),
            ));
        }
        problems
    }
}

/// A relative path with no `..`, `.` or empty components.
pub fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && c != ".git")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `schemas/ledger-config.schema.json` is generated from these types (and
    /// their doc comments); `UPDATE_GOLDEN=1` rewrites it.
    #[test]
    fn the_committed_schema_is_generated_from_the_config_types() {
        let mut schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
        let object = schema.as_object_mut().unwrap();
        object.insert(
            "$id".into(),
            "https://ledger.invalid/schemas/ledger-config.schema.json".into(),
        );
        object.insert("title".into(), "ledger.yaml".into());
        // A section whose keys are all commented out is YAML null, which
        // loads as the section's defaults.
        if let Some(serde_json::Value::Object(props)) = object.get_mut("properties") {
            for prop in props.values_mut() {
                if let Some(reference) = prop.as_object_mut().and_then(|p| p.remove("$ref")) {
                    prop.as_object_mut().unwrap().insert(
                        "anyOf".into(),
                        serde_json::json!([{ "$ref": reference }, { "type": "null" }]),
                    );
                }
            }
        }
        let mut text = serde_json::to_string_pretty(&schema).unwrap();
        text.push('\n');
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/ledger-config.schema.json");
        #[allow(clippy::disallowed_methods)] // a test switch, not product behaviour
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            text,
            "schemas/ledger-config.schema.json is stale (UPDATE_GOLDEN=1 rewrites it)"
        );
        assert_eq!(SCHEMA, text, "the embedded schema is the committed file");
    }

    #[test]
    fn template_parses_with_documented_defaults() {
        let c = Config::parse(Path::new(FILE_NAME), TEMPLATE).unwrap();
        assert_eq!(c.ledger.ref_name, "refs/heads/ledger");
        assert_eq!(c.preflight.min_cores, 8);
        assert_eq!(c.preflight.min_memory_gb, 60);
        assert_eq!(c.audit.dir, "audit/workstation_runs");
        assert!(c.signing.key.is_none());
        assert_eq!(c.products.globs, default_product_globs());
        assert_eq!(
            (
                c.products.max_bytes,
                c.log.max_store_bytes,
                c.log.tail_lines
            ),
            (64 << 20, 16 << 20, 20)
        );
        assert_eq!(
            c.context.env_allow, DEFAULT_ENV_ALLOW,
            "template and code agree"
        );
    }

    #[test]
    fn errors_name_key_and_line() {
        let err = Config::parse(
            Path::new("ledger.yaml"),
            "version: 1\npreflight:\n  min_cores: eight\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("ledger.yaml: preflight.min_cores: invalid type"),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
        let err = Config::parse(
            Path::new("ledger.yaml"),
            "version: 1\npreflight:\n  min_core: 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown field `min_core`") && err.contains("line 3"),
            "{err}"
        );
        let err = Config::parse(Path::new("l.yaml"), "version: 1\nledger:\n  ref: main\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("l.yaml: ledger.ref:"), "{err}");
    }
}
