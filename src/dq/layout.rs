//! A block of plain CSV lines laid out as a table, for the rules to check a
//! column at a time.
//!
//! One pass finds every comma and newline, 64 bytes at a time, and notes
//! what would send the block down a slower road: a quote or a carriage
//! return, and bytes outside ASCII (then the block's UTF-8 is checked). When
//! every line has exactly as many fields as the header, field `k` of the
//! block (row `k / columns`, column `k % columns`) spans
//! `starts[k]..starts[k + 1] - 1`: the field's first byte to the separator
//! after it.

/// Bytes of a 64-byte chunk, a bit each (bit `i` is byte `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Masks {
    commas: u64,
    newlines: u64,
    /// `"` or `\r`.
    special: u64,
    /// Outside ASCII.
    high: u64,
}

impl Masks {
    /// Up to 64 bytes, one at a time: the tail of a block, and the
    /// reference the vector version is tested against.
    fn scalar(bytes: &[u8]) -> Masks {
        let mut m = Masks::default();
        for (i, &b) in bytes.iter().enumerate().take(64) {
            let bit = 1u64 << i;
            match b {
                b',' => m.commas |= bit,
                b'\n' => m.newlines |= bit,
                b'"' | b'\r' => m.special |= bit,
                0x80.. => m.high |= bit,
                _ => {}
            }
        }
        m
    }

    /// A whole chunk, sixteen bytes to a vector compare.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn chunk(chunk: &[u8; 64]) -> Masks {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let mut m = Masks::default();
        for (k, part) in chunk.chunks_exact(16).enumerate() {
            let shift = 16 * k;
            // SAFETY: SSE2 is part of the x86_64 baseline, so these
            // instructions exist on every x86_64 CPU; the unaligned load
            // reads exactly the 16 bytes of `part`.
            let (commas, newlines, special, high) = unsafe {
                let v = _mm_loadu_si128(part.as_ptr().cast());
                let eq = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
                (
                    _mm_movemask_epi8(eq(b',')),
                    _mm_movemask_epi8(eq(b'\n')),
                    _mm_movemask_epi8(_mm_or_si128(eq(b'"'), eq(b'\r'))),
                    _mm_movemask_epi8(v),
                )
            };
            let bits = |mask: i32| u64::from(mask as u16) << shift;
            m.commas |= bits(commas);
            m.newlines |= bits(newlines);
            m.special |= bits(special);
            m.high |= bits(high);
        }
        m
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn chunk(chunk: &[u8; 64]) -> Masks {
        Masks::scalar(chunk)
    }

    /// A whole chunk in one 64-byte compare per mask.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bw")]
    #[inline]
    fn chunk_avx512(chunk: &[u8; 64]) -> Masks {
        use std::arch::x86_64::{_mm512_cmpeq_epi8_mask, _mm512_movepi8_mask, _mm512_set1_epi8};
        // SAFETY: the load reads exactly the 64 bytes of `chunk`; the
        // caller's target feature vouches for the instructions.
        let v = unsafe { std::arch::x86_64::_mm512_loadu_si512(chunk.as_ptr().cast()) };
        let eq = |b: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b as i8));
        Masks {
            commas: eq(b','),
            newlines: eq(b'\n'),
            special: eq(b'"') | eq(b'\r'),
            high: _mm512_movepi8_mask(v),
        }
    }
}

/// Slots a chunk may write past the starts so far: a separator per byte,
/// and the last eight-slot write running past them.
const SLACK: usize = 64 + 8;

/// Writes `base + i + 1`, the start of the field after it, for each set
/// bit `i` of `separators`, in order from the front of `slots` (at least
/// [`SLACK`] long). Slots past the last may be written too: the next
/// chunk writes them again, or they are ignored.
#[inline(always)]
fn positions(slots: &mut [u32], mut separators: u64, base: u32) {
    let count = separators.count_ones() as usize;
    // Eight slots at a time whether or not there are eight separators
    // left, so that the loop's length rarely varies.
    let mut at = 0;
    while at < count {
        for slot in &mut slots[at..at + 8] {
            *slot = base + separators.trailing_zeros() + 1;
            separators &= separators.wrapping_sub(1);
        }
        at += 8;
    }
}

/// [`positions`] sixteen bits at a time, each quarter's starts packed into
/// place by one compress: no loop, no branch on how many there are.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn positions_avx512(slots: &mut [u32], separators: u64, base: u32) {
    use std::arch::x86_64::{
        _mm512_add_epi32, _mm512_maskz_compress_epi32, _mm512_set1_epi32, _mm512_setr_epi32,
        _mm512_storeu_si512,
    };
    let slots = &mut slots[..64];
    let lanes = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    let mut at = 0;
    for quarter in 0..4u32 {
        let mask = (separators >> (16 * quarter)) as u16;
        let starts = _mm512_add_epi32(lanes, _mm512_set1_epi32((base + 16 * quarter) as i32));
        let packed = _mm512_maskz_compress_epi32(mask, starts);
        // `at` is at most 16 per quarter before this one, so the sixteen
        // slots from it lie within the 64 of `slots`.
        let to = &mut slots[at..at + 16];
        // SAFETY: the unaligned store writes exactly the sixteen u32 of
        // `to`; the target feature vouches for the instruction.
        unsafe { _mm512_storeu_si512(to.as_mut_ptr().cast(), packed) };
        at += mask.count_ones() as usize;
    }
}

/// How a block of whole lines is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// Every line has the header's number of fields and the block is
    /// UTF-8: `rows` rows, laid out.
    Table { rows: usize },
    /// A line of another width, a blank line, a CRLF ending or bytes that
    /// are not UTF-8: read line by line, which says which line and why.
    Lines,
    /// A quote or a carriage return that does not end a line: only the
    /// csv crate reads it right.
    Full,
}

/// Lays out `block` (whole lines, the last ending with `\n`) as rows of
/// `columns` fields, their starts in `starts` (a buffer reused between
/// blocks: the table's are its first `rows * columns + 1`).
pub(super) fn lay_out(block: &[u8], columns: usize, starts: &mut Vec<u32>) -> Layout {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // SAFETY: this CPU has AVX-512BW, as just checked.
        return unsafe { lay_out_avx512(block, columns, starts) };
    }
    lay_out_with(block, columns, starts, Masks::chunk, positions)
}

/// [`lay_out`] compiled for AVX-512BW, its masks a compare each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn lay_out_avx512(block: &[u8], columns: usize, starts: &mut Vec<u32>) -> Layout {
    lay_out_with(
        block,
        columns,
        starts,
        |chunk| Masks::chunk_avx512(chunk),
        |slots, separators, base| positions_avx512(slots, separators, base),
    )
}

/// [`lay_out`] with `masks` for each whole 64-byte chunk.
#[inline(always)]
fn lay_out_with(
    block: &[u8],
    columns: usize,
    starts: &mut Vec<u32>,
    masks: impl Fn(&[u8; 64]) -> Masks,
    positions: impl Fn(&mut [u32], u64, u32),
) -> Layout {
    debug_assert_eq!(block.last(), Some(&b'\n'));
    // A field's start must fit the table's index type.
    if columns == 0 || u32::try_from(block.len()).is_err() {
        return Layout::Lines;
    }
    // Room for a field every eight bytes to begin with; it grows as a
    // chunk needs (memory is a limit of the gate's too).
    if starts.is_empty() {
        starts.resize(block.len() / 8 + SLACK, 0);
    }
    starts[0] = 0;
    let mut n = 1;
    let (mut newlines, mut special, mut high) = (0usize, 0u64, 0u64);
    let mut take = |m: Masks, base: u32, starts: &mut Vec<u32>| {
        newlines += m.newlines.count_ones() as usize;
        special |= m.special;
        high |= m.high;
        let separators = m.commas | m.newlines;
        let count = separators.count_ones() as usize;
        if starts.len() < n + SLACK {
            starts.resize(2 * starts.len() + SLACK, 0);
        }
        positions(&mut starts[n..], separators, base);
        n += count;
    };
    let mut chunks = block.chunks_exact(64);
    let mut base = 0u32;
    for chunk in &mut chunks {
        take(masks(chunk.try_into().expect("64 bytes")), base, starts);
        base += 64;
    }
    take(Masks::scalar(chunks.remainder()), base, starts);
    let starts = &starts[..n];
    if special != 0 {
        return if super::needs_full_parser(block) {
            Layout::Full
        } else {
            Layout::Lines
        };
    }
    if high != 0 && std::str::from_utf8(block).is_err() {
        return Layout::Lines;
    }
    // `newlines` rows of `columns` fields each, and each row's last
    // separator a newline: then no row has a comma more or fewer.
    if starts.len() != newlines * columns + 1
        || (1..=newlines).any(|r| block[starts[r * columns] as usize - 1] != b'\n')
    {
        return Layout::Lines;
    }
    // With one column a blank line is a row of one empty field; it is
    // skipped, not read.
    if columns == 1 && starts.windows(2).any(|w| w[1] - w[0] == 1) {
        return Layout::Lines;
    }
    Layout::Table { rows: newlines }
}

/// A laid-out block: its bytes and where each field starts.
#[derive(Clone, Copy)]
pub(super) struct Table<'b> {
    block: &'b [u8],
    starts: &'b [u32],
    columns: usize,
    pub rows: usize,
}

impl<'b> Table<'b> {
    /// The table [`lay_out`] found in `block`: `rows` rows of `columns`
    /// fields, their starts at the front of `starts`.
    pub fn new(block: &'b [u8], starts: &'b [u32], columns: usize, rows: usize) -> Table<'b> {
        Table {
            block,
            starts: &starts[..rows * columns + 1],
            columns,
            rows,
        }
    }

    /// At most `rows` rows from row `first` on.
    pub fn rows_from(&self, first: usize, rows: usize) -> Table<'b> {
        Table {
            starts: &self.starts[first * self.columns..],
            rows: rows.min(self.rows - first),
            ..*self
        }
    }

    /// Field `k` in row order, and the block from its start on.
    #[inline(always)]
    fn field(&self, k: usize) -> (&'b [u8], &'b [u8]) {
        let rest = &self.block[self.starts[k] as usize..];
        let len = (self.starts[k + 1] - self.starts[k]) as usize - 1;
        (&rest[..len], rest)
    }

    /// Row `row`'s field in column `column`.
    #[inline(always)]
    pub fn get(&self, row: usize, column: usize) -> &'b [u8] {
        self.field(row * self.columns + column).0
    }

    /// Every row's field in `column`, in row order, each with the block
    /// from its start on.
    #[inline(always)]
    pub fn column(&self, column: usize) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + '_ {
        (0..self.rows).map(move |row| self.field(row * self.columns + column))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_masks_are_the_scalar_masks() {
        // Every byte value at every position of a chunk, in a few mixes.
        let mut chunk = [0u8; 64];
        for seed in 0..256usize {
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = match (i * 7 + seed) % 6 {
                    0 => b',',
                    1 => b'\n',
                    2 => b'"',
                    3 => b'\r',
                    _ => ((i * 31 + seed * 17) % 256) as u8,
                };
            }
            chunk[seed % 64] = seed as u8;
            assert_eq!(Masks::chunk(&chunk), Masks::scalar(&chunk), "seed {seed}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512bw") {
                // SAFETY: this CPU has AVX-512BW, as just checked.
                let wide = unsafe { Masks::chunk_avx512(&chunk) };
                assert_eq!(wide, Masks::scalar(&chunk), "seed {seed}");
            }
        }
    }

    #[test]
    fn the_packed_starts_are_the_scalar_starts() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let mut masks = vec![0, u64::MAX, 1, 1 << 63, 0xffff, 0xffff << 48];
            for _ in 0..2000 {
                // xorshift, and sparser masks by and-ing two draws
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                masks.push(state);
                masks.push(state & state.rotate_left(23));
            }
            for mask in masks {
                let count = mask.count_ones() as usize;
                let (mut scalar, mut packed) = (vec![0u32; SLACK], vec![0u32; SLACK]);
                positions(&mut scalar, mask, 640);
                // SAFETY: this CPU has AVX-512F, as just checked.
                unsafe { positions_avx512(&mut packed, mask, 640) };
                assert_eq!(scalar[..count], packed[..count], "{mask:#x}");
            }
        }
    }

    fn table_of(text: &str, columns: usize) -> (Layout, Vec<Vec<String>>) {
        let mut starts = Vec::new();
        let layout = lay_out(text.as_bytes(), columns, &mut starts);
        let Layout::Table { rows } = layout else {
            return (layout, Vec::new());
        };
        let table = Table::new(text.as_bytes(), &starts, columns, rows);
        let cells = (0..rows)
            .map(|r| {
                (0..columns)
                    .map(|c| String::from_utf8(table.get(r, c).to_vec()).expect("utf-8"))
                    .collect()
            })
            .collect();
        (layout, cells)
    }

    #[test]
    fn rows_of_the_header_width_are_laid_out_field_by_field() {
        // Lines long enough to cross 64-byte chunks, and empty fields.
        let long = "x".repeat(70);
        let text = format!("a,b,c\n,,\n{long},,é\n1,{long},3\n");
        let (layout, cells) = table_of(&text, 3);
        assert_eq!(layout, Layout::Table { rows: 4 });
        assert_eq!(
            cells,
            vec![
                vec!["a", "b", "c"],
                vec!["", "", ""],
                vec![long.as_str(), "", "é"],
                vec!["1", long.as_str(), "3"],
            ]
        );
        let (layout, cells) = table_of("1\n22\n333\n", 1);
        assert_eq!(layout, Layout::Table { rows: 3 });
        assert_eq!(cells, vec![vec!["1"], vec!["22"], vec!["333"]]);
        // Every byte a separator: far more starts than the first guess.
        let dense = format!("{},x\n", ",".repeat(298)).repeat(40);
        let (layout, cells) = table_of(&dense, 300);
        assert_eq!(layout, Layout::Table { rows: 40 });
        assert!(cells
            .iter()
            .all(|row| row[..299].iter().all(String::is_empty) && row[299] == "x"));
    }

    #[test]
    fn anything_but_a_plain_table_is_read_another_way() {
        let lines = [
            "a,b\n1,2,3\n",          // a comma more
            "a,b\n1\n",              // a comma fewer
            "a,b,c\n1\n2,3,4,5,6\n", // fewer, then more: the count alone adds up
            "a,b\n\n",               // a blank line
            "a\n\nb\n",              // a blank line with one column
            "a,b\r\n1,2\r\n",        // CRLF
        ];
        for text in lines {
            let columns = text.split('\n').next().map_or(0, |h| h.split(',').count());
            assert_eq!(table_of(text, columns).0, Layout::Lines, "{text:?}");
        }
        assert_eq!(table_of("a,b\n\"1\",2\n", 2).0, Layout::Full);
        assert_eq!(table_of("a,b\n1\r,2\n", 2).0, Layout::Full);
        let mut bad = b"a,b\n1,".to_vec();
        bad.extend_from_slice(&[0xff, b'\n']);
        assert_eq!(lay_out(&bad, 2, &mut Vec::new()), Layout::Lines);
    }
}
