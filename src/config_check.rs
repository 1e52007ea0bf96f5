//! `ledger config check`: every problem of a ledger.yaml at once, each with
//! its line and column. Three layers, all reported: YAML syntax; the JSON
//! Schema of ledger.yaml (unknown keys, wrong types, out-of-range values);
//! and the checks only the program can make (a git ref name, paths inside
//! the repository, JSON pointers).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::config::{Config, ConfigError, SCHEMA};
use crate::Error;

/// One problem, where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    /// The key path, `dq.max_null_fraction`; empty for the whole file.
    pub field: String,
    pub message: String,
}

/// Checks the ledger.yaml at `path`. `Err` only when it cannot be read.
pub fn check(path: &Path) -> Result<Vec<Problem>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(check_text(&text))
}

/// [`check`] of the file's text.
pub fn check_text(text: &str) -> Vec<Problem> {
    let mut positions = Positions::default();
    if let Err(e) = Parser::new_from_str(text).load(&mut positions, false) {
        let m = e.marker();
        return vec![Problem {
            line: m.line().max(1),
            column: m.col() + 1,
            field: String::new(),
            message: format!("not YAML: {}", e.info()),
        }];
    }
    let at = |pointer: &str, field: String, message: String| {
        let (line, column) = positions.find(pointer);
        Problem {
            line,
            column,
            field,
            message,
        }
    };
    let mut problems = Vec::new();
    let value: serde_json::Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            return vec![Problem {
                line,
                column,
                field: String::new(),
                message: e.to_string(),
            }];
        }
    };
    let mut pruned = value.clone();
    for (pointer, message) in schema_errors(&value) {
        remove(&mut pruned, &pointer);
        problems.push(at(&pointer, field_of(&pointer), message));
    }
    // The program's own checks need the typed config: read it from the YAML
    // without the values the schema refused (reported above), so that they
    // run even when something else is wrong.
    strip_nulls(&mut pruned);
    match serde_json::from_value::<Config>(pruned) {
        Ok(config) => {
            for (field, message) in config.problems() {
                let pointer = format!("/{}", field.replace('.', "/"));
                problems.push(at(&pointer, field.to_string(), message));
            }
        }
        Err(e) if problems.is_empty() => {
            let message = match Config::parse(Path::new("ledger.yaml"), text) {
                Err(ConfigError::Malformed { message, .. }) => message,
                _ => e.to_string(),
            };
            problems.push(Problem {
                line: 1,
                column: 1,
                field: String::new(),
                message,
            });
        }
        Err(_) => {}
    }
    problems.sort_by_key(|p| (p.line, p.column));
    problems.dedup();
    problems
}

/// Removes the node at `pointer` (a key of its object, an item of its array).
fn remove(value: &mut serde_json::Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(serde_json::Value::Object(map)) => {
            map.remove(&last);
        }
        Some(serde_json::Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items[i] = serde_json::Value::Null;
                }
            }
        }
        _ => {}
    }
}

/// Drops nulls from objects and arrays: in ledger.yaml a null section or
/// value means its default, which is what a missing one means to serde.
fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(strip_nulls);
        }
        _ => {}
    }
}

/// `dq.max_null_fraction` from `/dq/max_null_fraction`.
fn field_of(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Every leaf error of the schema validation: (instance pointer, message).
/// An unknown key is reported at the key itself.
fn schema_errors(value: &serde_json::Value) -> Vec<(String, String)> {
    let url = "https://ledger.invalid/schemas/ledger-config.schema.json";
    let schema: serde_json::Value =
        serde_json::from_str(SCHEMA).expect("the embedded schema is JSON");
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource(url, schema)
        .expect("the embedded schema is added once");
    let mut schemas = boon::Schemas::new();
    let index = compiler
        .compile(url, &mut schemas)
        .expect("the embedded schema compiles");
    let Err(error) = schemas.validate(value, index) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack = vec![&error];
    while let Some(e) = stack.pop() {
        if !e.causes.is_empty() {
            stack.extend(e.causes.iter().rev());
            continue;
        }
        let pointer = e.instance_location.to_string();
        match &e.kind {
            boon::ErrorKind::AdditionalProperties { got } => {
                for key in got {
                    let escaped = key.replace('~', "~0").replace('/', "~1");
                    out.push((
                        format!("{pointer}/{escaped}"),
                        format!("unknown key {key:?} (see schemas/ledger-config.schema.json)"),
                    ));
                }
            }
            // A section may also be null (all its keys commented out); when
            // it is a mapping with problems, the null alternative's mismatch
            // says nothing.
            boon::ErrorKind::Type { want, .. }
                if want.iter().all(|t| matches!(t, boon::Type::Null)) => {}
            kind => out.push((pointer, kind.to_string())),
        }
    }
    out
}

/// Where each key and sequence item of the YAML starts, by JSON pointer.
#[derive(Default)]
struct Positions {
    at: BTreeMap<String, (usize, usize)>,
    stack: Vec<Frame>,
}

enum Frame {
    /// A mapping at `pointer`; `key` is set between a key and its value.
    Map {
        pointer: String,
        key: Option<String>,
    },
    Seq {
        pointer: String,
        index: usize,
    },
}

impl Positions {
    /// The position of `pointer`, else of its nearest ancestor, else 1:1.
    fn find(&self, pointer: &str) -> (usize, usize) {
        let mut p = pointer.to_string();
        loop {
            if let Some(pos) = self.at.get(&p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return (1, 1),
            }
        }
    }

    /// The pointer of the node that starts now, recording where it starts;
    /// `None` when this scalar is a mapping key.
    fn node(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        let pos = (mark.line().max(1), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { pointer, key }) => match key.take() {
                Some(k) => Some(format!("{pointer}/{k}")),
                None => {
                    let k = scalar.unwrap_or("").replace('~', "~0").replace('/', "~1");
                    self.at.insert(format!("{pointer}/{k}"), pos);
                    *key = Some(k);
                    None
                }
            },
            Some(Frame::Seq { pointer, index }) => {
                let p = format!("{pointer}/{index}");
                *index += 1;
                self.at.insert(p.clone(), pos);
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Positions {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => {
                self.node(mark, Some(&text));
            }
            Event::Alias(_) => {
                self.node(mark, Some(""));
            }
            Event::MappingStart(..) => {
                if let Some(pointer) = self.node(mark, None) {
                    self.stack.push(Frame::Map { pointer, key: None });
                }
            }
            Event::SequenceStart(..) => {
                if let Some(pointer) = self.node(mark, None) {
                    self.stack.push(Frame::Seq { pointer, index: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_no_problem() {
        assert_eq!(check_text(crate::config::TEMPLATE), Vec::new());
    }

    #[test]
    fn every_problem_is_reported_where_it_is() {
        let text = "version: 1\n\
                    ledger:\n  ref: not-a-ref\n\
                    preflight:\n  min_cores: many\n  colour: blue\n\
                    dq:\n  max_null_fraction: 2\n\
                    inputs:\n  - ok/*.csv\n  - ../outside.csv\n";
        let problems = check_text(text);
        let found: Vec<(usize, usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.column, p.field.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (3, 3, "ledger.ref"),
                (5, 3, "preflight.min_cores"),
                (6, 3, "preflight.colour"),
                (8, 3, "dq.max_null_fraction"),
                (9, 1, "inputs"),
            ],
            "{problems:#?}"
        );
        assert!(problems[2].message.contains("unknown key \"colour\""));
        let syntax = check_text("version: 1\nledger: [\n");
        assert_eq!(syntax.len(), 1);
        assert!(syntax[0].message.starts_with("not YAML"), "{syntax:?}");
    }
}
