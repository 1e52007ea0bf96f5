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
    fn ids_are_sha256_of_the_bytes() {
        assert_eq!(
            record_id(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
