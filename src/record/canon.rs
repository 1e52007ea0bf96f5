//! Canonical bytes and record ids.
//!
//! The signed bytes of a record are its payload canonicalized by RFC 8785 (JCS):
//! object members sorted by UTF-16 code units, no insignificant white space,
//! ECMAScript number formatting, minimal string escaping. A record's id is
//! `sha256:` followed by the lowercase hex SHA-256 of exactly those bytes.
//! This module is the single definition of those bytes, so `verify` cannot
//! drift from `run`.

use canon_json::CanonJsonSerialize;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// RFC 8785 canonical JSON of `value`.
pub fn canonical_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    value
        .to_canon_json_vec()
        .expect("serializing an in-memory value with string keys cannot fail")
}

/// Re-canonicalizes arbitrary JSON text. `None` when `bytes` is not JSON.
pub fn canonicalize(bytes: &[u8]) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(canonical_bytes(&value))
}

/// Whether `bytes` are already canonical: `true` only when
/// [`canonicalize`] of them would give them back unchanged. One pass over
/// the text, with no JSON value built, for the records verify reads by the
/// hundred thousand. It may say `false` for canonical text it does not
/// follow (nesting deeper than 64); callers then take the slow way,
/// [`canonicalize`] and compare, which also tells invalid JSON from text
/// that is only not canonical.
pub fn is_canonical(bytes: &[u8]) -> bool {
    // Outside strings canonical JSON is ASCII, so the whole text is UTF-8
    // exactly when every string in it is.
    if std::str::from_utf8(bytes).is_err() {
        return false;
    }
    let mut check = Check { bytes, at: 0 };
    check.value(0) && check.at == bytes.len()
}

/// The deepest nesting [`is_canonical`] follows.
const MAX_DEPTH: usize = 64;

/// The cursor of [`is_canonical`]; every method returns whether what it read
/// is canonical and leaves `at` just after it.
struct Check<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Check<'b> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, literal: &[u8]) -> bool {
        let ok = self.bytes[self.at..].starts_with(literal);
        if ok {
            self.at += literal.len();
        }
        ok
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') if depth < MAX_DEPTH => self.object(depth + 1),
            Some(b'[') if depth < MAX_DEPTH => self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b'n') => self.eat(b"null"),
            Some(b't') => self.eat(b"true"),
            Some(b'f') => self.eat(b"false"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b"]") {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if self.eat(b"]") {
                return true;
            }
            if !self.eat(b",") {
                return false;
            }
        }
    }

    /// Members sorted by their keys' UTF-16 code units, each key once.
    fn object(&mut self, depth: usize) -> bool {
        self.at += 1;
        if self.eat(b"}") {
            return true;
        }
        let mut previous: Option<std::borrow::Cow<'b, str>> = None;
        loop {
            let Some(key) = self.string() else {
                return false;
            };
            if let Some(previous) = &previous {
                if previous.encode_utf16().cmp(key.encode_utf16()) != std::cmp::Ordering::Less {
                    return false;
                }
            }
            if !self.eat(b":") || !self.value(depth) {
                return false;
            }
            previous = Some(key);
            if self.eat(b"}") {
                return true;
            }
            if !self.eat(b",") {
                return false;
            }
        }
    }

    /// A string escaped as serde_json escapes it (`\"`, `\\`, `\b`, `\t`,
    /// `\n`, `\f`, `\r`, other control characters as lowercase `\u00xx`,
    /// everything else as itself); its decoded text.
    fn string(&mut self) -> Option<std::borrow::Cow<'b, str>> {
        let bytes = self.bytes;
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.at + 1;
        let mut i = start;
        let mut decoded: Option<String> = None;
        let mut plain_from = start;
        loop {
            let b = *bytes.get(i)?;
            match b {
                b'"' => break,
                0x00..=0x1f => return None,
                b'\\' => {
                    let out = decoded.get_or_insert_with(String::new);
                    // The text checked as UTF-8 as a whole, and `\\` is ASCII.
                    out.push_str(std::str::from_utf8(&bytes[plain_from..i]).ok()?);
                    let (c, len) = match *bytes.get(i + 1)? {
                        b'"' => ('"', 2),
                        b'\\' => ('\\', 2),
                        b'b' => ('\u{8}', 2),
                        b't' => ('\t', 2),
                        b'n' => ('\n', 2),
                        b'f' => ('\u{c}', 2),
                        b'r' => ('\r', 2),
                        b'u' => {
                            let hex = bytes.get(i + 2..i + 6)?;
                            let lower = |d: u8| match d {
                                b'0'..=b'9' => Some(d - b'0'),
                                b'a'..=b'f' => Some(d - b'a' + 10),
                                _ => None,
                            };
                            let (hi, lo) = (lower(hex[2])?, lower(hex[3])?);
                            let code = hi * 16 + lo;
                            if &hex[..2] != b"00"
                                || code >= 0x20
                                || matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)
                            {
                                return None;
                            }
                            (char::from(code), 6)
                        }
                        _ => return None,
                    };
                    out.push(c);
                    i += len;
                    plain_from = i;
                }
                _ => i += 1,
            }
        }
        self.at = i + 1;
        let plain = std::str::from_utf8(&bytes[plain_from..i]).ok()?;
        Some(match decoded {
            None => std::borrow::Cow::Borrowed(plain),
            Some(mut out) => {
                out.push_str(plain);
                std::borrow::Cow::Owned(out)
            }
        })
    }

    /// An integer as its digits (what serde_json parses into an i64 or u64
    /// writes back as itself, `-0` aside), or any other number exactly as
    /// [`canonical_bytes`] writes the double it parses to.
    fn number(&mut self) -> bool {
        let start = self.at;
        let bytes = self.bytes;
        let mut end = start;
        while end < bytes.len()
            && matches!(bytes[end], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        {
            end += 1;
        }
        self.at = end;
        let text = std::str::from_utf8(&bytes[start..end]).expect("ASCII");
        let digits = text.strip_prefix('-').unwrap_or(text);
        let integer = !digits.is_empty()
            && digits.bytes().all(|d| d.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if integer {
            // serde_json reads `-0` as a double, written back as `0`.
            if text == "-0" {
                return false;
            }
            let fits = match text.starts_with('-') {
                true => text.parse::<i64>().is_ok(),
                false => text.parse::<u64>().is_ok(),
            };
            if fits {
                return true;
            }
            // Larger integers are read as doubles.
        }
        // Rust's parse accepts forms JSON does not ("1.", ".5", "+1", "1e");
        // the canonical writer never makes them, so the comparison refuses them.
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => canonical_bytes(&f) == text.as_bytes(),
            _ => false,
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn record_id(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of any bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(out, "{b:02x}").expect("writing to a String cannot fail");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        String::from_utf8(canonicalize(text.as_bytes()).unwrap()).unwrap()
    }

    // The examples of RFC 8785 §3.2.2 (values), §3.2.3 (sorting) and appendix B (numbers).
    #[test]
    fn rfc8785_values_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        assert_eq!(
            canon(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn rfc8785_sorting_by_utf16_code_units() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(input), expected);
    }

    #[test]
    fn rfc8785_number_examples() {
        for (input, expected) in [
            ("0", "0"),
            ("-0", "0"),
            ("1", "1"),
            ("-1", "-1"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("123456789012345680000", "123456789012345680000"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("9007199254740992", "9007199254740992"),
            ("295147905179352830000", "295147905179352830000"),
            ("4.940656458412e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ] {
            assert_eq!(
                canon(&format!("[{input}]")),
                format!("[{expected}]"),
                "{input}"
            );
        }
    }

    #[test]
    fn non_ascii_strings_stay_utf8() {
        assert_eq!(canon(r#"{"b":"日本","a":"é"}"#), r#"{"a":"é","b":"日本"}"#);
        assert_eq!(canon(r#"["\u001f\u007f"]"#), "[\"\\u001f\u{7f}\"]");
    }

    #[test]
    fn the_quick_check_accepts_canonical_text() {
        for text in [
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#,
            r#"{"a":"é","b":"日本"}"#,
            "[\"\\u001f\u{7f}\",\"\\b\\t\\n\\f\\r\"]",
            r#"{"":{},"a":[],"b":[[]],"c":-9223372036854775808,"d":18446744073709551615,"e":0}"#,
            "{\"\\r\":1,\"1\":2,\"\u{80}\":3,\"\u{f6}\":4,\"\u{20ac}\":5,\"\u{1f600}\":6,\"\u{fb33}\":7}",
            "\"\"",
            "5e-324",
            "1e+21",
            "100000000000000000000",
        ] {
            assert_eq!(canonicalize(text.as_bytes()).as_deref(), Some(text.as_bytes()), "{text}");
            assert!(is_canonical(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn the_quick_check_refuses_what_canonicalizing_would_change() {
        for text in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":1}"#,
            "{\"\u{fb33}\":1,\"\u{1f600}\":2}",
            r#"{"a": 1}"#,
            " 1",
            "1 ",
            "[1,]",
            r#""\/""#,
            r#""\u0041""#,
            r#""\u001F""#,
            r#""\u0008""#,
            r#""\ud83d\ude00""#,
            "1.0",
            "-0",
            "01",
            "1E+21",
            "1e21",
            "0.0000001",
            "18446744073709551616",
            "-9223372036854775809",
            "+1",
            ".5",
            "1.",
            "1e400",
            "nul",
            "[1]]",
            "",
            "\"\u{1}\"",
        ] {
            assert_ne!(
                canonicalize(text.as_bytes()).as_deref(),
                Some(text.as_bytes()),
                "{text}"
            );
            assert!(!is_canonical(text.as_bytes()), "{text}");
        }
        assert!(!is_canonical(b"\"\xff\""));
        // Deeper than the quick check follows: refused, though canonical.
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(!is_canonical(deep.as_bytes()));
        let shallow = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(is_canonical(shallow.as_bytes()));
    }

    /// Random JSON-like texts, and small edits of canonical ones: the quick
    /// check says yes only where canonicalizing gives the text back, and yes
    /// to every canonical text it is shown.
    #[test]
    fn the_quick_check_agrees_with_canonicalizing() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        fn text(next: &mut dyn FnMut(usize) -> usize, depth: usize, out: &mut String) {
            const ATOMS: [&str; 14] = [
                "0",
                "-1",
                "1.5",
                "1e+21",
                "1E5",
                "0.1",
                "-0",
                "true",
                "null",
                "\"a\"",
                "\"\\n\"",
                "\"\\u0001\"",
                "\"é\"",
                "\"\u{1f600}\"",
            ];
            const KEYS: [&str; 6] = [
                "\"a\"",
                "\"b\"",
                "\"\"",
                "\"\\t\"",
                "\"\u{fb33}\"",
                "\"\u{1f600}\"",
            ];
            match next(if depth > 3 { 1 } else { 3 }) {
                0 => out.push_str(ATOMS[next(ATOMS.len())]),
                1 => {
                    out.push('[');
                    for i in 0..next(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        text(next, depth + 1, out);
                    }
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..next(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(KEYS[next(KEYS.len())]);
                        out.push(':');
                        text(next, depth + 1, out);
                    }
                    out.push('}');
                }
            }
        }
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut raw = String::new();
            text(&mut next, 0, &mut raw);
            let mut candidates = vec![raw.clone().into_bytes()];
            if let Some(canon) = canonicalize(raw.as_bytes()) {
                assert!(is_canonical(&canon), "{}", String::from_utf8_lossy(&canon));
                let mut edited = canon.clone();
                let at = next(edited.len());
                match next(3) {
                    0 => edited.insert(at, b' '),
                    1 => edited[at] = b"{}[],:\"\\0-.e"[next(12)],
                    _ => {
                        edited.remove(at);
                    }
                }
                candidates.extend([canon, edited]);
            }
            for bytes in candidates {
                if is_canonical(&bytes) {
                    accepted += 1;
                    assert_eq!(
                        canonicalize(&bytes).as_deref(),
                        Some(bytes.as_slice()),
                        "{}",
                        String::from_utf8_lossy(&bytes)
                    );
                } else {
                    refused += 1;
                }
            }
        }
        assert!(
            accepted > 10_000 && refused > 10_000,
            "{accepted} {refused}"
        );
    }

    #[test]
    fn ids_are_sha256_of_the_bytes() {
        assert_eq!(
            record_id(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
