//! The record model: what a ledger record says and how it is sealed.
//!
//! A record is an in-toto Statement v1 (`_type`, `subject`, `predicateType`,
//! `predicate`) extended with the ledger's own header fields (`schema`, `kind`,
//! `run_id`, `writer`, `seq`, `prev`, `run_prev`, `at`); in-toto consumers
//! ignore fields they do not know. The payload's RFC 8785 bytes are signed in a
//! DSSE envelope and hashed into the record id. The record model knows no git.

pub mod canon;
pub mod kinds;

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub use kinds::*;

/// in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// DSSE payload type of every ledger envelope.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A record kind, in the order the records of one run are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Preflight,
    DataQuality,
    Context,
    Command,
    Started,
    Result,
    /// Not part of a run: `ledger finalize` read the ledger at a head and
    /// wrote these projection files. Stored at `finalize/<id>.dsse.json`,
    /// where the header's `run_id` is the finalize id.
    Finalize,
    /// Not part of a run: a committee member's decision on a run, signed with
    /// the member's key (checked against the committee file, not the writers').
    /// Stored at `decisions/<id>.dsse.json`; the header's `run_id` is the
    /// decision id and the predicate names the decided run.
    Decision,
}

impl Kind {
    /// The kinds of a run's records, in order.
    pub const ALL: [Kind; 6] = [
        Kind::Preflight,
        Kind::DataQuality,
        Kind::Context,
        Kind::Command,
        Kind::Started,
        Kind::Result,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Preflight => "preflight",
            Kind::DataQuality => "data_quality",
            Kind::Context => "context",
            Kind::Command => "command",
            Kind::Started => "started",
            Kind::Result => "result",
            Kind::Finalize => "finalize",
            Kind::Decision => "decision",
        }
    }

    /// The `schema` field of this kind's payloads, e.g. `ledger.preflight/v1`.
    pub fn schema(self) -> String {
        format!("ledger.{}/v1", self.as_str())
    }

    /// The in-toto `predicateType` of this kind.
    pub fn predicate_type(self) -> String {
        format!("https://ledger.invalid/predicate/{}/v1", self.as_str())
    }

    /// The file name of this kind's envelope in a run's tree.
    pub fn file_name(self) -> String {
        format!("{}.dsse.json", self.as_str())
    }

    pub fn from_file_name(name: &str) -> Option<Kind> {
        let stem = name.strip_suffix(".dsse.json")?;
        Kind::ALL.into_iter().find(|k| k.as_str() == stem)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An in-toto resource descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// Names the run itself: the digest is the SHA-256 of the run id.
    pub fn run(run_id: &str) -> Subject {
        Subject {
            name: format!("ledger-run:{run_id}"),
            digest: BTreeMap::from([("sha256".into(), canon::sha256_hex(run_id.as_bytes()))]),
        }
    }

    pub fn git_commit(name: &str, commit: &str) -> Subject {
        Subject {
            name: name.into(),
            digest: BTreeMap::from([("gitCommit".into(), commit.into())]),
        }
    }

    pub fn sha256(name: &str, hex: &str) -> Subject {
        Subject {
            name: name.into(),
            digest: BTreeMap::from([("sha256".into(), hex.into())]),
        }
    }
}

/// A record payload: an in-toto Statement with the ledger header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Subjects,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
    /// `ledger.<kind>/v1`.
    pub schema: String,
    pub kind: Kind,
    pub run_id: String,
    /// The signing key's OpenSSH fingerprint, `SHA256:<base64>`.
    pub writer: String,
    /// 1 for a writer's first record, then +1 per record of that writer.
    pub seq: u64,
    /// The writer's previous record id; `null` for seq 1.
    pub prev: Option<String>,
    /// The previous record of the same run; `null` for the run's first record.
    pub run_prev: Option<String>,
    /// RFC 3339 UTC, whole seconds.
    pub at: String,
}

impl Payload {
    /// Decodes the predicate as the typed body of this kind.
    pub fn predicate_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, RecordError> {
        serde_json::from_str(self.predicate.json()).map_err(|e| RecordError::Predicate {
            kind: self.kind,
            message: e.to_string(),
        })
    }
}

/// A record's subjects, kept as their canonical JSON text: nothing after
/// parsing reads them, and a ledger held in memory should not pay for a
/// map per digest. [`parse`] checks them against the model when it checks
/// the canonical form ([`Subjects::list`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Subjects(Box<serde_json::value::RawValue>);

impl Subjects {
    /// The canonical JSON of `subjects`.
    pub fn of(subjects: &[Subject]) -> Subjects {
        let text =
            String::from_utf8(canon::canonical_bytes(subjects)).expect("canonical JSON is UTF-8");
        Subjects(serde_json::value::RawValue::from_string(text).expect("canonical JSON is JSON"))
    }

    /// The subjects, checked against the model.
    pub fn list(&self) -> Result<Vec<Subject>, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl PartialEq for Subjects {
    fn eq(&self, other: &Subjects) -> bool {
        self.0.get() == other.0.get()
    }
}

/// A record's predicate, kept as its canonical JSON text and decoded on use
/// ([`Payload::predicate_as`]): a ledger of 100,000 runs held in memory
/// costs its text, not a tree of JSON values several times that size.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Predicate(Box<serde_json::value::RawValue>);

impl Predicate {
    /// The canonical JSON of `value`.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Predicate {
        let text =
            String::from_utf8(canon::canonical_bytes(value)).expect("canonical JSON is UTF-8");
        Predicate(serde_json::value::RawValue::from_string(text).expect("canonical JSON is JSON"))
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The predicate as a JSON value (for display).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("a predicate is JSON")
    }
}

impl PartialEq for Predicate {
    fn eq(&self, other: &Predicate) -> bool {
        self.json() == other.json()
    }
}

/// A DSSE envelope as stored in `<kind>.dsse.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Base64 (standard, padded) of the canonical payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signing key's OpenSSH fingerprint, `SHA256:<base64>`.
    pub keyid: String,
    /// Base64 of the 64-byte ed25519 signature over the PAE.
    pub sig: String,
}

/// DSSE pre-authentication encoding: what a signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(
        format!(
            "DSSEv1 {} {} {} ",
            payload_type.len(),
            payload_type,
            payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// Why stored bytes are not a well-formed record. Signatures are checked
/// elsewhere ([`crate::verify`]); this is only parsing.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a DSSE envelope: {0}")]
    Envelope(String),
    #[error("payloadType is {0:?}, expected {PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("payload is not valid base64")]
    Base64,
    #[error("payload is not JSON: {0}")]
    PayloadJson(String),
    #[error("payload is not in RFC 8785 canonical form")]
    NotCanonical,
    #[error("payload does not match the record model: {0}")]
    Payload(String),
    #[error("{kind} predicate does not match its schema: {message}")]
    Predicate { kind: Kind, message: String },
}

/// A record read back from storage: envelope (its `payload` text emptied:
/// the decoded bytes are in `payload_bytes`), exact payload bytes and its id.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub id: String,
    pub envelope: Envelope,
    /// Empty once [`Parsed::shed_bytes`] ran (after the signatures were checked).
    pub payload_bytes: Vec<u8>,
    pub payload: Payload,
}

impl Parsed {
    /// Drops the payload bytes, which only signature checks need: a large
    /// ledger held in memory then costs its decoded payloads alone.
    pub fn shed_bytes(&mut self) {
        self.payload_bytes = Vec::new();
    }
}

/// No record envelope is larger: a record holds digests and short texts
/// (a log tail, a command line), never file contents. Readers refuse larger
/// objects by their header, before reading them.
pub const MAX_RECORD_BYTES: u64 = 4 << 20;

/// Parses stored envelope bytes. Checks structure and canonical form, not signatures.
pub fn parse(bytes: &[u8]) -> Result<Parsed, RecordError> {
    parse_with(bytes, true)
}

/// [`parse`] without the canonical-form check, for bytes a whole
/// verification has already proved canonical: the records of a run whose
/// tree is unchanged since a verified ledger head (`finalize`'s cache).
pub fn parse_proven(bytes: &[u8]) -> Result<Parsed, RecordError> {
    parse_with(bytes, false)
}

fn parse_with(bytes: &[u8], check_canonical: bool) -> Result<Parsed, RecordError> {
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| RecordError::Envelope(e.to_string()))?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(RecordError::PayloadType(envelope.payload_type));
    }
    let payload_bytes = B64
        .decode(envelope.payload.as_bytes())
        .map_err(|_| RecordError::Base64)?;
    // Canonical bytes pass the one-pass check and are read as a payload
    // directly; anything else is parsed as JSON and canonicalized, which
    // tells invalid JSON from JSON that is only not canonical.
    let payload: Payload = if check_canonical && !canon::is_canonical(&payload_bytes) {
        let value: serde_json::Value = serde_json::from_slice(&payload_bytes)
            .map_err(|_| RecordError::PayloadJson("invalid JSON".into()))?;
        if canon::canonical_bytes(&value) != payload_bytes {
            return Err(RecordError::NotCanonical);
        }
        drop(value);
        serde_json::from_slice(&payload_bytes).map_err(|e| RecordError::Payload(e.to_string()))?
    } else {
        serde_json::from_slice(&payload_bytes).map_err(|e| RecordError::Payload(e.to_string()))?
    };
    if check_canonical {
        payload
            .subject
            .list()
            .map_err(|e| RecordError::Payload(format!("subject: {e}")))?;
    }
    // The base64 text is `payload_bytes` again; a large ledger need not hold both.
    let mut envelope = envelope;
    envelope.payload = String::new();
    Ok(Parsed {
        id: canon::record_id(&payload_bytes),
        envelope,
        payload_bytes,
        payload,
    })
}

/// A sealed record: signed envelope bytes ready to store, and its id.
#[derive(Clone, Debug)]
pub struct Sealed {
    pub id: String,
    pub payload: Payload,
    /// The stored file: pretty JSON of the envelope plus a newline.
    pub envelope_bytes: Vec<u8>,
}

/// Builds the envelope around canonical `payload` bytes with one signature.
pub fn seal(payload: Payload, sign: impl FnOnce(&[u8]) -> EnvelopeSignature) -> Sealed {
    let payload_bytes = canon::canonical_bytes(&payload);
    let signature = sign(&pae(PAYLOAD_TYPE, &payload_bytes));
    let envelope = Envelope {
        payload: B64.encode(&payload_bytes),
        payload_type: PAYLOAD_TYPE.into(),
        signatures: vec![signature],
    };
    let mut envelope_bytes =
        serde_json::to_vec_pretty(&envelope).expect("an envelope always serializes");
    envelope_bytes.push(b'\n');
    Sealed {
        id: canon::record_id(&payload_bytes),
        payload,
        envelope_bytes,
    }
}

/// Decodes a base64 signature field.
pub fn decode_b64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.as_bytes()).ok()
}

/// Encodes bytes as standard padded base64.
pub fn encode_b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world")
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    fn sample(predicate: serde_json::Value) -> Payload {
        Payload {
            statement_type: STATEMENT_TYPE.into(),
            subject: Subjects::of(&[Subject::run("20261122T100000Z_wf_t")]),
            predicate_type: Kind::Started.predicate_type(),
            predicate: Predicate::of(&predicate),
            schema: Kind::Started.schema(),
            kind: Kind::Started,
            run_id: "20261122T100000Z_wf_t".into(),
            writer: "SHA256:x".into(),
            seq: 1,
            prev: None,
            run_prev: None,
            at: "2026-11-22T10:00:00Z".into(),
        }
    }

    #[test]
    fn sealing_is_deterministic_and_independent_of_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"pid":1,"host":"h","started_at":"x"}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"started_at":"x","host":"h","pid":1}"#).unwrap();
        let sign = |pae: &[u8]| EnvelopeSignature {
            keyid: "k".into(),
            sig: encode_b64(&canon::sha256_hex(pae).into_bytes()),
        };
        let first = seal(sample(a.clone()), sign);
        let again = seal(sample(a), sign);
        let reordered = seal(sample(b), sign);
        assert_eq!(first.envelope_bytes, again.envelope_bytes);
        assert_eq!(first.envelope_bytes, reordered.envelope_bytes);
        assert_eq!(first.id, reordered.id);
        let parsed = parse(&first.envelope_bytes).unwrap();
        assert_eq!(parsed.id, first.id);
        assert_eq!(parsed.payload, first.payload);
        assert!(parsed
            .payload_bytes
            .starts_with(br#"{"_type":"https://in-toto.io/Statement/v1","at":"#));
    }

    #[test]
    fn duplicate_keys_are_not_canonical() {
        let s = seal(sample(serde_json::json!({})), |_| EnvelopeSignature {
            keyid: "k".into(),
            sig: String::new(),
        });
        let text = String::from_utf8(canon::canonical_bytes(&s.payload)).unwrap();
        let doubled = text.replacen(r#""seq":1"#, r#""seq":1,"seq":1"#, 1);
        let mut envelope: Envelope = serde_json::from_slice(&s.envelope_bytes).unwrap();
        envelope.payload = encode_b64(doubled.as_bytes());
        let bytes = serde_json::to_vec(&envelope).unwrap();
        assert!(matches!(parse(&bytes), Err(RecordError::NotCanonical)));
    }

    /// Canonical payloads whose text differs from a sealed one by `edit`.
    fn edited(edit: impl Fn(&str) -> String) -> Vec<u8> {
        let s = seal(sample(serde_json::json!({})), |_| EnvelopeSignature {
            keyid: "k".into(),
            sig: String::new(),
        });
        let text = edit(&String::from_utf8(canon::canonical_bytes(&s.payload)).unwrap());
        let mut envelope: Envelope = serde_json::from_slice(&s.envelope_bytes).unwrap();
        envelope.payload = encode_b64(&canon::canonicalize(text.as_bytes()).unwrap());
        serde_json::to_vec(&envelope).unwrap()
    }

    #[test]
    fn subjects_are_checked_against_the_model_when_read() {
        let extra = edited(|t| t.replacen(r#""name":"#, r#""extra":1,"name":"#, 1));
        let err = parse(&extra).unwrap_err().to_string();
        assert!(err.contains("subject: unknown field `extra`"), "{err}");
        let not_a_list = edited(|t| {
            let start = t.find(r#""subject":"#).unwrap() + 10;
            let end = t[start..].find("}]").unwrap() + start + 2;
            format!("{}\"x\"{}", &t[..start], &t[end..])
        });
        assert!(matches!(parse(&not_a_list), Err(RecordError::Payload(_))));
        // Bytes a whole verification proved are not checked again.
        assert!(parse_proven(&extra).is_ok());
    }

    #[test]
    fn kinds_round_trip_through_file_names() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_file_name(&kind.file_name()), Some(kind));
        }
        assert_eq!(Kind::from_file_name("log"), None);
    }
}
