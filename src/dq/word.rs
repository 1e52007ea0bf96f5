//! Short numbers read eight bytes at a time (SWAR: SIMD within a register).
//!
//! A cell of a laid-out block is read together with the bytes after it (the
//! rest of its block), so that the eight bytes after an optional sign load
//! as one little-endian word (byte `i` of the cell is byte `i` of the word).
//! For a cell of at most eight such bytes, the checks below look at every
//! byte at once, with no loop whose length depends on the cell: a loop of
//! varying length costs a mispredicted branch per cell, which at several
//! cells a row is much of the time a row takes. Anything longer or unusual
//! is left to the byte-at-a-time readers, which decide alone.

use super::Number;

const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each byte of `x` that is zero (exact: no false hits).
#[inline(always)]
pub(super) fn zero_bytes(x: u64) -> u64 {
    let low7 = ONES * 0x7f;
    !(((x & low7).wrapping_add(low7)) | x | low7)
}

/// The eight bytes of `rest` from `at`, if it has them.
#[inline(always)]
fn word_at(rest: &[u8], at: usize) -> Option<u64> {
    let bytes = rest.get(at..at + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// The sign of the cell of `len` bytes at the start of `rest`: whether it
/// is `-`, and the length of the rest of the cell after it.
#[inline(always)]
fn sign(rest: &[u8], len: usize) -> Option<(bool, usize)> {
    if len == 0 {
        return None;
    }
    // Without a branch: a column's signs come in no order to predict.
    let negative = rest[0] == b'-';
    Some((negative, usize::from(negative | (rest[0] == b'+'))))
}

/// The word's first `len` bytes (1 to 8), the rest `'0'`.
#[inline(always)]
fn first(word: u64, len: usize) -> u64 {
    debug_assert!((1..=8).contains(&len));
    // One shift of 0 to 56 bits, no branch.
    let keep = u64::MAX >> (64 - 8 * len);
    (word & keep) | ((ONES * b'0' as u64) & !keep)
}

/// Every byte an ASCII digit.
#[inline(always)]
fn all_digits(word: u64) -> bool {
    // A digit is 0x30..=0x39: high nibble 3, and still 3 after adding 6.
    // When every high nibble is 3, adding 6 carries into no other byte.
    let high = ONES * 0xf0;
    word & high == ONES * 0x30 && word.wrapping_add(ONES * 6) & high == ONES * 0x30
}

/// Eight digit values (0..=9, the most significant in the lowest byte) as
/// one number: pairs, then fours, then all eight.
#[inline(always)]
fn eight_digits(v: u64) -> u64 {
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff
}

/// The cell of `len` bytes at the start of `rest` as `[+-]digits[.digits]`
/// when it is that and fits a word after its sign: what
/// [`super::exact_decimal`] reads. `None` says nothing about other forms.
#[inline(always)]
pub(super) fn decimal(rest: &[u8], len: usize) -> Option<Number> {
    let (negative, skip) = sign(rest, len)?;
    let len = len - skip;
    if len == 0 || len > 8 {
        return None;
    }
    let word = first(word_at(rest, skip)?, len);
    let dots = zero_bytes(word ^ (ONES * b'.' as u64));
    if dots & dots.wrapping_sub(1) != 0 {
        return None; // two dots
    }
    // The dot becomes a '0' (0x2e + 2), so that the digit test passes it.
    let word = word + (dots >> 7) * 2;
    if !all_digits(word) {
        return None;
    }
    let values = word - ONES * b'0' as u64;
    let (values, digits, decimals) = if dots == 0 {
        (values, len, 0)
    } else {
        // Close the gap the dot leaves: the bytes after it move down one.
        let at = dots.trailing_zeros() as usize / 8;
        let below = (1u64 << (8 * at)) - 1;
        let closed = (values & below) | ((values >> 8) & !below);
        (closed, len - 1, len - 1 - at)
    };
    if digits == 0 {
        return None;
    }
    // Leading zeros to make eight digits.
    let mantissa = eight_digits(values << (8 * (8 - digits)));
    Some(Number::Exact {
        negative,
        mantissa,
        decimals: decimals as u8,
    })
}

/// The shape of a plain decimal with one dot, after its optional sign: how
/// many bytes, and where the dot is. The cells of a column mostly share one
/// (`0.1234`, `-0.2500`, `9.8765`), and a cell read as a shape it is known
/// to have needs no search for its dot and no product of its digits: its
/// digits in order, one byte each and most significant first, are a number
/// whose order is the mantissa's among the shape's cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Shape {
    /// Bytes after the sign (2 to 8), and the dot's place among them.
    len: usize,
    dot: usize,
    /// The word's bytes of the cell; `'0'` in the others.
    keep: u64,
    fill: u64,
    /// The bytes before the dot.
    below: u64,
}

impl Shape {
    fn new(len: usize, dot: usize) -> Shape {
        debug_assert!((2..=8).contains(&len) && dot < len);
        let keep = u64::MAX >> (64 - 8 * len);
        Shape {
            len,
            dot,
            keep,
            fill: (ONES * b'0' as u64) & !keep,
            below: (1u64 << (8 * dot)) - 1,
        }
    }

    /// The shape of the cell of `len` bytes at the start of `rest`, when it
    /// is `[+-]digits.digits` (either side may be empty, not both) and fits
    /// a word after its sign.
    pub fn of(rest: &[u8], len: usize) -> Option<Shape> {
        let (_, skip) = sign(rest, len)?;
        let digits_len = len - skip;
        if !(2..=8).contains(&digits_len) {
            return None;
        }
        let word = first(word_at(rest, skip)?, digits_len);
        let dots = zero_bytes(word ^ (ONES * b'.' as u64));
        if dots.count_ones() != 1 {
            return None;
        }
        let shape = Shape::new(digits_len, dots.trailing_zeros() as usize / 8);
        shape.key(rest, len).map(|_| shape)
    }

    /// Digits after the dot.
    pub fn decimals(&self) -> usize {
        self.len - 1 - self.dot
    }

    /// The cell of `len` bytes at the start of `rest` read as this shape:
    /// whether it is negative, and its digits as a key (see
    /// [`Shape::key_of`]); `None` when it has another shape or is no plain
    /// decimal.
    #[inline(always)]
    pub fn key(&self, rest: &[u8], len: usize) -> Option<(bool, u64)> {
        let (negative, skip) = sign(rest, len)?;
        if len - skip != self.len {
            return None;
        }
        let word = (word_at(rest, skip)? & self.keep) | self.fill;
        if (word >> (8 * self.dot)) as u8 != b'.' {
            return None;
        }
        // The dot becomes a '0' (0x2e + 2), so that the digit test passes it.
        let word = word + (2u64 << (8 * self.dot));
        if !all_digits(word) {
            return None;
        }
        // The bytes after the dot move down one, closing its gap; the top
        // byte becomes 0, as do the bytes past the cell (each was '0').
        let values = word - ONES * b'0' as u64;
        let closed = (values & self.below) | ((values >> 8) & !self.below);
        Some((negative, closed.swap_bytes()))
    }

    /// The key of the mantissa `m` (below ten to the number of the shape's
    /// digits): its digits, leading zeros included, a byte each from the
    /// top byte down.
    pub fn key_of(&self, mut m: u64) -> u64 {
        let digits = self.len - 1;
        let mut key = 0;
        for i in 0..digits {
            key |= (m % 10) << (8 * (8 - digits + i));
            m /= 10;
        }
        key
    }

    /// The largest mantissa of the shape.
    pub fn max_mantissa(&self) -> u64 {
        10u64.pow(self.len as u32 - 1) - 1
    }
}

/// The cell of `len` bytes at the start of `rest` is 1 to 8 ASCII digits
/// after an optional sign. `false` says nothing about other forms.
#[inline(always)]
pub(super) fn digits(rest: &[u8], len: usize) -> bool {
    let Some((_, skip)) = sign(rest, len) else {
        return false;
    };
    let len = len - skip;
    (1..=8).contains(&len) && word_at(rest, skip).is_some_and(|w| all_digits(first(w, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cell followed by other bytes, as a laid-out block has them.
    fn rest_of(cell: &[u8], after: u8) -> Vec<u8> {
        let mut rest = cell.to_vec();
        rest.extend_from_slice(&[after; 9]);
        rest
    }

    fn cells() -> Vec<Vec<u8>> {
        let mut cells: Vec<Vec<u8>> = [
            "",
            "0",
            "7",
            "-",
            "+",
            ".",
            "-.",
            "+.5",
            "-0.5",
            "1.",
            ".5",
            "5.5.",
            "1.2.3",
            "12345678",
            "1234567.",
            ".1234567",
            "-1234567",
            "+0000000",
            "00000000",
            "-0.999001",
            "0.999001",
            "123456789",
            "1e5",
            "1,5",
            " 1",
            "1 ",
            "--1",
            "-+1",
            "+-1",
            "9:",
            "/1",
            "0x10",
            "NaN",
            "inf",
            "١٢",
            "12\n",
            "1-2",
            "1.-2",
        ]
        .iter()
        .map(|c| c.as_bytes().to_vec())
        .collect();
        // Every byte value in every place of short cells.
        for b in 0..=255u8 {
            for at in 0..4 {
                let mut c = b"1.25".to_vec();
                c[at] = b;
                cells.push(c);
            }
            cells.push(vec![b'-', b]);
            cells.push(vec![b]);
        }
        cells
    }

    #[test]
    fn short_decimals_read_as_the_byte_reader_reads_them() {
        for cell in cells() {
            for after in [b',', b'\n', b'9', b'.', 0xff] {
                let fast = decimal(&rest_of(&cell, after), cell.len());
                let slow = super::super::exact_decimal(&cell);
                match fast {
                    Some(n) => assert_eq!(Some(n), slow, "{:?}", String::from_utf8_lossy(&cell)),
                    // Declined: only what is too long for the word.
                    None => assert!(
                        slow.is_none()
                            || cell.len() > 8 + usize::from(cell[0] == b'-' || cell[0] == b'+'),
                        "{:?} declined, read as {slow:?}",
                        String::from_utf8_lossy(&cell)
                    ),
                }
            }
        }
    }

    #[test]
    fn short_integers_read_as_the_byte_reader_reads_them() {
        for cell in cells() {
            for after in [b',', b'\n', b'9', 0xff] {
                let fast = digits(&rest_of(&cell, after), cell.len());
                let slow = super::super::is_int(&cell);
                if fast {
                    assert!(slow, "{:?}", String::from_utf8_lossy(&cell));
                } else {
                    assert!(
                        !slow || cell.len() > 8 + usize::from(cell[0] == b'-' || cell[0] == b'+'),
                        "{:?} declined",
                        String::from_utf8_lossy(&cell)
                    );
                }
            }
        }
    }

    #[test]
    fn a_shape_reads_what_the_decimal_reader_reads() {
        // Every length and place of the dot, signed and not, next to the
        // hand-made cells.
        let mut cells = cells();
        for len in 2..=8 {
            for dot in 0..len {
                for (k, sign) in ["", "-", "+"].iter().enumerate() {
                    let digits: String = (0..len - 1)
                        .map(|i| char::from(b'0' + ((i * 7 + len * 3 + dot + k) % 10) as u8))
                        .collect();
                    let (int, frac) = digits.split_at(dot);
                    cells.push(format!("{sign}{int}.{frac}").into_bytes());
                }
            }
        }
        let shapes: Vec<Shape> = cells
            .iter()
            .filter_map(|c| Shape::of(&rest_of(c, b','), c.len()))
            .collect();
        for len in 2..=8 {
            for dot in 0..len {
                assert!(shapes.contains(&Shape::new(len, dot)), "{len} {dot}");
            }
        }
        for cell in &cells {
            for after in [b',', b'\n', b'9', b'.', 0xff] {
                let rest = rest_of(cell, after);
                let exact = decimal(&rest, cell.len());
                // Its own shape, when it has one, reads it.
                let own = Shape::of(&rest, cell.len());
                if let Some(Number::Exact { .. }) = exact {
                    let dots = cell.iter().filter(|&&b| b == b'.').count();
                    assert_eq!(
                        own.is_some(),
                        dots == 1,
                        "{:?}",
                        String::from_utf8_lossy(cell)
                    );
                }
                if own.is_some() {
                    assert!(exact.is_some(), "{:?}", String::from_utf8_lossy(cell));
                }
                // Any shape reads it as the decimal reader does, or declines.
                for shape in &shapes {
                    let Some((negative, key)) = shape.key(&rest, cell.len()) else {
                        continue;
                    };
                    let Some(Number::Exact {
                        negative: n,
                        mantissa,
                        decimals,
                    }) = exact
                    else {
                        panic!("{shape:?} read {:?}", String::from_utf8_lossy(cell));
                    };
                    assert_eq!(
                        (negative, key, usize::from(decimals)),
                        (n, shape.key_of(mantissa), shape.decimals()),
                        "{shape:?} on {:?}",
                        String::from_utf8_lossy(cell)
                    );
                }
            }
        }
    }

    #[test]
    fn keys_order_as_their_mantissas() {
        for len in 2..=8 {
            let shape = Shape::new(len, 1);
            let top = shape.max_mantissa();
            let mut last = None;
            for m in (0..=top)
                .step_by(usize::try_from(top / 997 + 1).unwrap())
                .chain([top])
            {
                let key = shape.key_of(m);
                assert!(last.is_none_or(|l| l <= key), "{len} {m}");
                last = Some(key);
            }
        }
    }

    #[test]
    fn eight_digits_at_every_length() {
        for n in 1..=8u32 {
            for value in [
                0u64,
                1,
                7,
                10u64.pow(n) - 1,
                10u64.pow(n - 1),
                31_415_926 % 10u64.pow(n),
            ] {
                let text = format!("{value:0width$}", width = n as usize);
                assert_eq!(
                    decimal(&rest_of(text.as_bytes(), b','), text.len()),
                    Some(Number::Exact {
                        negative: false,
                        mantissa: value,
                        decimals: 0
                    }),
                    "{text}"
                );
            }
        }
    }
}
