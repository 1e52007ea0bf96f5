//! The ledger's runs as read from a tip, for `log`, `show` and later
//! projections. Reading is not verifying: `ledger verify` checks signatures;
//! this only parses, and lists what it could not parse.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::proc::{Here, Liveness};
use crate::record::kinds::{
    ContextPredicate, DataQualityPredicate, PreflightPredicate, ResultPredicate, StartedPredicate,
};
use crate::record::{self, Kind, Parsed};
use crate::store::{Snapshot, Store, StoreError};

/// A run's state, derived from which records it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Preflight failed; the command never started.
    Blocked,
    /// `started` is recorded, `result` is not (yet).
    Running,
    Passed,
    Failed,
    /// The supervising `ledger run` died before writing the result (or
    /// `ledger recover` has since recorded that it did).
    Aborted,
    /// Records are missing or unreadable.
    Incomplete,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Blocked => "blocked",
            Status::Running => "running",
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Aborted => "aborted",
            Status::Incomplete => "incomplete",
        }
    }
}

/// One run and its parsed records, in kind order.
#[derive(Clone, Debug)]
pub struct Run {
    pub run_id: String,
    pub records: BTreeMap<Kind, Parsed>,
    /// Files of this run that could not be parsed: (file name, why).
    pub unreadable: Vec<(String, String)>,
}

impl Run {
    pub fn get(&self, kind: Kind) -> Option<&Parsed> {
        self.records.get(&kind)
    }

    pub fn preflight(&self) -> Option<PreflightPredicate> {
        self.get(Kind::Preflight)?.payload.predicate_as().ok()
    }

    pub fn data_quality(&self) -> Option<DataQualityPredicate> {
        self.get(Kind::DataQuality)?.payload.predicate_as().ok()
    }

    pub fn context(&self) -> Option<ContextPredicate> {
        self.get(Kind::Context)?.payload.predicate_as().ok()
    }

    pub fn result(&self) -> Option<ResultPredicate> {
        self.get(Kind::Result)?.payload.predicate_as().ok()
    }

    /// Time of the run's first record.
    pub fn at(&self) -> &str {
        self.records
            .values()
            .next()
            .map_or("", |r| r.payload.at.as_str())
    }

    pub fn started(&self) -> Option<StartedPredicate> {
        self.get(Kind::Started)?.payload.predicate_as().ok()
    }

    /// Like [`Run::status`], but a run still `running` whose supervising
    /// process is provably gone from this machine is `aborted`.
    pub fn status_here(&self, here: &Here) -> Status {
        match (self.status(), self.started()) {
            (Status::Running, Some(s))
                if crate::proc::liveness(
                    here,
                    &s.host,
                    s.boot_id.as_deref(),
                    s.pid,
                    s.pid_start,
                ) == Liveness::Gone =>
            {
                Status::Aborted
            }
            (status, _) => status,
        }
    }

    pub fn status(&self) -> Status {
        if !self.unreadable.is_empty() {
            return Status::Incomplete;
        }
        match (self.preflight(), self.get(Kind::Started), self.result()) {
            (_, Some(_), Some(result)) if result.status == "aborted" => Status::Aborted,
            (_, Some(_), Some(result)) if result.code == Some(0) => Status::Passed,
            (_, Some(_), Some(_)) => Status::Failed,
            (_, Some(_), None) => Status::Running,
            (Some(p), None, None) if !p.passed && self.records.len() == 1 => Status::Blocked,
            (Some(_), None, None)
                if self.data_quality().is_some_and(|d| !d.passed) && self.records.len() == 2 =>
            {
                Status::Blocked
            }
            _ => Status::Incomplete,
        }
    }
}

/// Every run at one ledger tip, oldest first by (first record time, run id).
#[derive(Clone, Debug, Default)]
pub struct History {
    pub tip: Option<String>,
    pub runs: Vec<Run>,
}

impl History {
    pub fn load(store: &Store) -> Result<History, StoreError> {
        let Some(tip) = store.tip()? else {
            return Ok(History::default());
        };
        let snapshot = store.snapshot(tip)?;
        let mut runs = Vec::new();
        for item in snapshot.list("runs")?.unwrap_or_default() {
            if item.is_tree() {
                runs.push(load_run(&snapshot, &item.name)?);
            }
        }
        runs.sort_by(|a, b| (a.at(), &a.run_id).cmp(&(b.at(), &b.run_id)));
        Ok(History {
            tip: Some(tip.to_string()),
            runs,
        })
    }

    /// The run whose id is `key`, or the newest run whose tag is `key`.
    pub fn find(&self, key: &str) -> Option<&Run> {
        by_id_or_tag(
            &self.runs,
            key,
            |r| &r.run_id,
            |r| r.preflight().is_some_and(|p| p.tag == key),
        )
    }
}

/// How a command names a run: of `items` (oldest first), the one whose run
/// id is `key`, or else the newest that `tagged` accepts.
pub fn by_id_or_tag<'a, T>(
    items: &'a [T],
    key: &str,
    id: impl Fn(&T) -> &str,
    tagged: impl Fn(&T) -> bool,
) -> Option<&'a T> {
    items
        .iter()
        .find(|i| id(i) == key)
        .or_else(|| items.iter().rev().find(|i| tagged(i)))
}

/// Reads one run directory.
pub fn load_run(snapshot: &Snapshot<'_>, run_id: &str) -> Result<Run, StoreError> {
    load_run_with(snapshot, run_id, false)
}

/// [`load_run`]; with `proven`, for a run directory a verification already
/// read in this very form (the same tree), neither the records' sizes nor
/// their canonical form are checked again ([`record::parse_proven`]).
pub fn load_run_with(
    snapshot: &Snapshot<'_>,
    run_id: &str,
    proven: bool,
) -> Result<Run, StoreError> {
    let parse = match proven {
        true => record::parse_proven,
        false => record::parse,
    };
    let mut run = Run {
        run_id: run_id.to_string(),
        records: BTreeMap::new(),
        unreadable: Vec::new(),
    };
    for item in snapshot
        .list(&format!("runs/{run_id}"))?
        .unwrap_or_default()
    {
        let Some(kind) = Kind::from_file_name(&item.name) else {
            continue;
        };
        if !proven {
            let size = snapshot.size(item.id)?;
            if size > record::MAX_RECORD_BYTES {
                run.unreadable.push((
                    item.name.clone(),
                    format!("{size} bytes, larger than any record"),
                ));
                continue;
            }
        }
        match parse(&snapshot.blob(item.id)?) {
            Ok(mut parsed) if parsed.payload.kind == kind && parsed.payload.run_id == run_id => {
                parsed.shed_bytes();
                run.records.insert(kind, parsed);
            }
            Ok(parsed) => run.unreadable.push((
                item.name.clone(),
                format!(
                    "holds the {} record of run {}",
                    parsed.payload.kind, parsed.payload.run_id
                ),
            )),
            Err(e) => run.unreadable.push((item.name.clone(), e.to_string())),
        }
    }
    Ok(run)
}
