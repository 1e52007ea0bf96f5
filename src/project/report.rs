//! Reading a team's report JSON through the JSON pointers of ledger.yaml
//! `report:`. A report that does not match is a list of problems, each naming
//! the pointer, never a panic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ReportSection;

/// One gate of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub name: String,
    pub passed: bool,
    pub value: Option<Value>,
    pub threshold: Option<Value>,
    pub reason: Option<String>,
    pub cost_multiplier: Option<Value>,
}

/// What finalize reads from a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub factor: String,
    pub strategy: Option<String>,
    pub verdict: Option<String>,
    pub gates: Vec<Gate>,
    /// Metric name to value (numbers as written in the report).
    pub metrics: BTreeMap<String, Value>,
    pub walk_forward_shards: Option<u64>,
    pub walk_forward_passed: Option<u64>,
}

impl Report {
    pub fn gates_passed(&self) -> usize {
        self.gates.iter().filter(|g| g.passed).count()
    }

    /// The value of `name` as a number, if the report has it as one.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).and_then(Value::as_f64)
    }
}

/// Why a report does not match the mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The JSON pointer (into the report) that failed.
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

struct Reader<'a> {
    problems: Vec<Problem>,
    root: &'a Value,
}

impl<'a> Reader<'a> {
    fn problem(&mut self, pointer: String, message: impl Into<String>) {
        self.problems.push(Problem {
            pointer,
            message: message.into(),
        });
    }

    /// The value at `base` + `pointer`; `None` (and a problem when `required`)
    /// when absent. An empty pointer means "not in this report format".
    fn at(&mut self, base: &str, pointer: &str, required: bool) -> Option<&'a Value> {
        if pointer.is_empty() {
            return None;
        }
        let full = format!("{base}{pointer}");
        match self.root.pointer(&full) {
            Some(Value::Null) | None => {
                if required {
                    self.problem(full, "required, but missing");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    fn string(&mut self, base: &str, pointer: &str, required: bool) -> Option<String> {
        match self.at(base, pointer, required)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(
                    format!("{base}{pointer}"),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn number(&mut self, base: &str, pointer: &str) -> Option<Value> {
        match self.at(base, pointer, false)? {
            v @ Value::Number(_) => Some(v.clone()),
            other => {
                self.problem(
                    format!("{base}{pointer}"),
                    format!("expected a number, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn count(&mut self, pointer: &str) -> Option<u64> {
        match self.at("", pointer, false)? {
            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            other => {
                self.problem(
                    pointer.to_string(),
                    format!("expected a whole number, found {}", type_name(other)),
                );
                None
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads `bytes` as a report through `map`.
pub fn read(bytes: &[u8], map: &ReportSection) -> Result<Report, Vec<Problem>> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| {
        vec![Problem {
            pointer: String::new(),
            message: format!("not JSON: {e}"),
        }]
    })?;
    let mut r = Reader {
        problems: Vec::new(),
        root: &root,
    };
    let factor = r.string("", &map.factor, true);
    let strategy = r.string("", &map.strategy, false);
    let verdict = r.string("", &map.verdict, false);
    let mut gates = Vec::new();
    match r.at("", &map.gates, true) {
        Some(Value::Array(items)) => {
            for i in 0..items.len() {
                let base = format!("{}/{i}", map.gates);
                let name = r.string(&base, &map.gate.name, true);
                let passed = match r.at(&base, &map.gate.passed, true) {
                    Some(Value::Bool(b)) => Some(*b),
                    Some(other) => {
                        r.problem(
                            format!("{base}{}", map.gate.passed),
                            format!("expected a boolean, found {}", type_name(other)),
                        );
                        None
                    }
                    None => None,
                };
                let value = r.number(&base, &map.gate.value);
                let threshold = r.number(&base, &map.gate.threshold);
                let reason = r.string(&base, &map.gate.reason, false);
                let cost_multiplier = r.number(&base, &map.gate.cost_multiplier);
                if let (Some(name), Some(passed)) = (name, passed) {
                    gates.push(Gate {
                        name,
                        passed,
                        value,
                        threshold,
                        reason,
                        cost_multiplier,
                    });
                }
            }
        }
        Some(other) => {
            let t = type_name(other);
            r.problem(map.gates.clone(), format!("expected an array, found {t}"));
        }
        None => {}
    }
    let mut metrics = BTreeMap::new();
    match r.at("", &map.metrics, false) {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::Number(_) | Value::String(_) | Value::Bool(_) => {
                        metrics.insert(k.clone(), v.clone());
                    }
                    other => {
                        let t = type_name(other);
                        r.problem(
                            format!("{}/{}", map.metrics, escape_pointer(k)),
                            format!("expected a number, found {t}"),
                        )
                    }
                }
            }
        }
        Some(other) => {
            let t = type_name(other);
            r.problem(
                map.metrics.clone(),
                format!("expected an object, found {t}"),
            );
        }
        None => {}
    }
    let walk_forward_shards = r.count(&map.walk_forward_shards);
    let walk_forward_passed = r.count(&map.walk_forward_passed);
    if !r.problems.is_empty() {
        return Err(r.problems);
    }
    Ok(Report {
        factor: factor.expect("a missing factor is a problem"),
        strategy,
        verdict,
        gates,
        metrics,
        walk_forward_shards,
        walk_forward_passed,
    })
}

/// RFC 6901 escaping of one reference token.
fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"factor":"mom","strategy":"ls","verdict":"pass",
        "metrics":{"sharpe":1.25,"turnover":0.3},
        "gates":[{"name":"cost_1.5x","cost_multiplier":1.5,"passed":true,"value":1.1,"threshold":0.5,"reason":"net"}],
        "walk_forward":{"shards":4,"passed":3}}"#;

    #[test]
    fn reads_the_template_format() {
        let r = read(GOOD.as_bytes(), &ReportSection::default()).unwrap();
        assert_eq!(r.factor, "mom");
        assert_eq!(r.gates.len(), 1);
        assert_eq!(r.gates_passed(), 1);
        assert_eq!(r.metric("sharpe"), Some(1.25));
        assert_eq!(r.walk_forward_shards, Some(4));
        assert_eq!(r.walk_forward_passed, Some(3));
    }

    #[test]
    fn mismatches_name_their_pointer() {
        let bad = r#"{"strategy":3,"gates":[{"name":"g","passed":"yes"}],"metrics":{"s":[1]}}"#;
        let problems = read(bad.as_bytes(), &ReportSection::default()).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/factor", "/strategy", "/gates/0/passed", "/metrics/s"]
        );
        let not_json = read(b"{", &ReportSection::default()).unwrap_err();
        assert!(not_json[0].message.starts_with("not JSON"));
        let gates = read(br#"{"factor":"f","gates":{}}"#, &ReportSection::default()).unwrap_err();
        assert_eq!(
            gates[0].to_string(),
            "/gates: expected an array, found an object"
        );
    }
}
