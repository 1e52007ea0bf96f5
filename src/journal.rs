//! Sealing drafts into signed records and appending them in one commit.
//!
//! The writer's `seq` and `prev` come from `writers/<hash>.json` in the tip the
//! batch is built on; when the ref moved meanwhile, the store calls the builder
//! again and every record is re-derived and re-signed on the new tip.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock;
use crate::record::{self, canon, Kind, Payload, Sealed, Subject};
use crate::sign::Signer;
use crate::store::{Batch, Identity, Snapshot, Store};
use crate::Error;

/// A record before it has a place in a chain.
#[derive(Clone, Debug)]
pub struct Draft {
    pub kind: Kind,
    pub run_id: String,
    pub subject: Vec<Subject>,
    pub predicate: record::Predicate,
}

impl Draft {
    pub fn new<P: Serialize>(
        kind: Kind,
        run_id: &str,
        subject: Vec<Subject>,
        predicate: &P,
    ) -> Draft {
        Draft {
            kind,
            run_id: run_id.into(),
            subject,
            predicate: record::Predicate::of(predicate),
        }
    }
}

/// `writers/<hash>.json`: a writer's newest record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterHead {
    pub writer: String,
    pub seq: u64,
    pub id: String,
}

/// Tree path of a writer's head file: SHA-256 of the fingerprint text, in hex.
pub fn writer_path(fingerprint: &str) -> String {
    format!("writers/{}.json", canon::sha256_hex(fingerprint.as_bytes()))
}

/// Tree path of a record.
pub fn record_path(run_id: &str, kind: Kind) -> String {
    match kind {
        Kind::Finalize => format!("finalize/{run_id}.dsse.json"),
        Kind::Decision => format!("decisions/{run_id}.dsse.json"),
        _ => format!("runs/{run_id}/{}", kind.file_name()),
    }
}

/// Tree path of a finalize record's manifest.
pub fn manifest_path(finalize_id: &str) -> String {
    format!("finalize/{finalize_id}.files.jsonl")
}

/// The head of `fingerprint`'s chain in `snapshot`.
pub fn writer_head(
    snapshot: &Snapshot<'_>,
    fingerprint: &str,
) -> Result<Option<WriterHead>, Error> {
    let path = writer_path(fingerprint);
    match snapshot.read(&path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::input(
                format!("ledger {path}"),
                format!("corrupt writer head: {e}"),
            )
        }),
    }
}

/// Appends `drafts` (and `extra` files, such as a stored log) as one commit;
/// `check` runs on every tip tried (e.g. a tag-uniqueness test) before
/// anything is written.
#[allow(clippy::too_many_arguments)]
pub fn append(
    store: &Store,
    signer: &Signer,
    identity: &Identity,
    at: OffsetDateTime,
    run_prev: Option<String>,
    drafts: &[Draft],
    extra: &[(String, Vec<u8>)],
    mut check: impl FnMut(&Snapshot<'_>) -> Result<(), Error>,
) -> Result<Vec<Sealed>, Error> {
    let at_text = clock::rfc3339(at);
    let sign_commit = |bytes: &[u8]| signer.sign_commit(bytes);
    let (_, sealed) = store.append(identity, at, &sign_commit, |snapshot| {
        check(snapshot)?;
        let head = writer_head(snapshot, signer.fingerprint())?;
        let (mut seq, mut prev) = head.map_or((0, None), |h| (h.seq, Some(h.id)));
        let mut run_prev = run_prev.clone();
        let mut sealed = Vec::with_capacity(drafts.len());
        for draft in drafts {
            seq += 1;
            let payload = Payload {
                statement_type: record::STATEMENT_TYPE.into(),
                subject: record::Subjects::of(&draft.subject),
                predicate_type: draft.kind.predicate_type(),
                predicate: draft.predicate.clone(),
                schema: draft.kind.schema(),
                kind: draft.kind,
                run_id: draft.run_id.clone(),
                writer: signer.fingerprint().into(),
                seq,
                prev: prev.clone(),
                run_prev: run_prev.clone(),
                at: at_text.clone(),
            };
            let record = record::seal(payload, |pae| signer.sign_dsse(pae));
            prev = Some(record.id.clone());
            run_prev = Some(record.id.clone());
            sealed.push(record);
        }
        let mut batch = batch_for(signer.fingerprint(), &sealed);
        batch.files.extend(extra.iter().cloned());
        Ok::<_, Error>((batch, sealed))
    })?;
    Ok(sealed)
}

/// The id of a record that belongs to no run: `<compact at>_<kind>_<first 12
/// hex of the predicate's canonical digest>`.
pub fn single_id<P: Serialize>(at: OffsetDateTime, kind: Kind, predicate: &P) -> String {
    let digest = canon::sha256_hex(&canon::canonical_bytes(predicate));
    format!("{}_{}_{}", clock::compact(at), kind.as_str(), &digest[..12])
}

/// Appends one record that belongs to no run (`finalize`, `decision`), with
/// `extra` files, as a commit of its own. Its id is [`single_id`]; an id
/// already in the ledger is refused.
#[allow(clippy::too_many_arguments)]
pub fn append_single<P: Serialize>(
    store: &Store,
    signer: &Signer,
    identity: &Identity,
    at: OffsetDateTime,
    kind: Kind,
    subject: Vec<Subject>,
    predicate: &P,
    extra: &[(String, Vec<u8>)],
) -> Result<Sealed, Error> {
    let id = single_id(at, kind, predicate);
    let path = record_path(&id, kind);
    let draft = Draft::new(kind, &id, subject, predicate);
    let mut sealed = append(
        store,
        signer,
        identity,
        at,
        None,
        &[draft],
        extra,
        |snapshot| match snapshot.read_id(&path)? {
            Some(_) => Err(Error::input(
                kind.as_str(),
                format!("{path} already exists in the ledger"),
            )),
            None => Ok(()),
        },
    )?;
    Ok(sealed.remove(0))
}

/// A run record's kind with its outcome, for commit messages: `preflight
/// passed`, `data_quality failed`, `result failed (exit 3)`, `context`.
fn outcome(payload: &Payload) -> String {
    let kind = payload.kind.as_str();
    let passed = |p: bool| if p { "passed" } else { "failed" };
    match payload.kind {
        Kind::Preflight => payload
            .predicate_as::<record::PreflightPredicate>()
            .map_or(kind.to_string(), |p| format!("{kind} {}", passed(p.passed))),
        Kind::DataQuality => payload
            .predicate_as::<record::DataQualityPredicate>()
            .map_or(kind.to_string(), |p| format!("{kind} {}", passed(p.passed))),
        Kind::Result => {
            payload
                .predicate_as::<record::ResultPredicate>()
                .map_or(kind.to_string(), |r| match (r.exit_code, r.signal) {
                    (Some(c), _) => format!("{kind} {} (exit {c})", r.status),
                    (None, Some(s)) => format!("{kind} {} (signal {s})", r.status),
                    (None, None) => format!("{kind} {}", r.status),
                })
        }
        _ => kind.to_string(),
    }
}

fn batch_for(fingerprint: &str, sealed: &[Sealed]) -> Batch {
    let last = sealed.last().expect("a batch has at least one record");
    let kinds: Vec<String> = sealed.iter().map(|r| outcome(&r.payload)).collect();
    let mut message = match last.payload.kind {
        Kind::Finalize => match last.payload.predicate_as::<record::FinalizePredicate>() {
            Ok(f) => format!(
                "finalize {}: {} runs, {} files\n\n",
                last.payload.run_id, f.runs, f.manifest.files
            ),
            Err(_) => format!("finalize {}\n\n", last.payload.run_id),
        },
        Kind::Decision => match last.payload.predicate_as::<record::DecisionPredicate>() {
            Ok(d) => format!(
                "decision {}: {} {} by {}\n\n",
                last.payload.run_id,
                d.decision.as_str(),
                d.tag,
                d.member
            ),
            Err(_) => format!("decision {}\n\n", last.payload.run_id),
        },
        _ => format!("run {}: {}\n\n", last.payload.run_id, kinds.join(", ")),
    };
    for r in sealed {
        message.push_str(&format!("{} {}\n", outcome(&r.payload), r.id));
    }
    message.push_str(&format!("writer {fingerprint} seq {}\n", last.payload.seq));
    let mut files: Vec<(String, Vec<u8>)> = sealed
        .iter()
        .map(|r| {
            (
                record_path(&r.payload.run_id, r.payload.kind),
                r.envelope_bytes.clone(),
            )
        })
        .collect();
    let head = WriterHead {
        writer: fingerprint.into(),
        seq: last.payload.seq,
        id: last.id.clone(),
    };
    let mut head_bytes = serde_json::to_vec_pretty(&head).expect("a writer head serializes");
    head_bytes.push(b'\n');
    files.push((writer_path(fingerprint), head_bytes));
    Batch { message, files }
}
