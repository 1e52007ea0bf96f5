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

/// What a 64-byte chunk holds. The separators and newlines are exact, a
/// bit per byte (bit `i` is byte `i`); the other three only say whether
/// the chunk has any such byte (nonzero), each vector width folding them
/// its own way.
#[derive(Clone, Copy, Debug, Default)]
struct Masks {
    /// `,` and `\n`: where a field ends.
    separators: u64,
    newlines: u64,
    /// `"` or `\r`.
    special: u64,
    /// Outside ASCII.
    high: u64,
    /// A byte that might pad a cell: below `!` but not a newline (space,
    /// tab, form feed, any control byte), or outside ASCII.
    loose: u64,
}

impl Masks {
    /// Up to 64 bytes, one at a time: the tail of a block, and the
    /// reference the vector versions are tested against.
    fn scalar(bytes: &[u8]) -> Masks {
        let mut m = Masks::default();
        for (i, &b) in bytes.iter().enumerate().take(64) {
            let bit = 1u64 << i;
            if b == b',' || b == b'\n' {
                m.separators |= bit;
            }
            if b == b'\n' {
                m.newlines |= bit;
            }
            if b == b'"' || b == b'\r' {
                m.special |= bit;
            }
            if b >= 0x80 {
                m.high |= bit;
            }
            if (b < b'!' && b != b'\n') || b >= 0x80 {
                m.loose |= bit;
            }
        }
        m
    }

    /// Whether two chunks' masks say the same: exact bits where they are
    /// exact, the same answer where they only tell whether.
    #[cfg(test)]
    fn same(&self, other: &Masks) -> bool {
        self.separators == other.separators
            && self.newlines == other.newlines
            && (self.special != 0) == (other.special != 0)
            && (self.high != 0) == (other.high != 0)
            && (self.loose != 0) == (other.loose != 0)
    }

    /// A whole chunk, sixteen bytes to a vector compare (SSE2, which every
    /// x86_64 CPU has).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn chunk(chunk: &[u8; 64]) -> Masks {
        use std::arch::x86_64::{
            _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        let mut m = Masks::default();
        for (k, part) in chunk.chunks_exact(16).enumerate() {
            let shift = 16 * k;
            // SAFETY: SSE2 is part of the x86_64 baseline, so these
            // instructions exist on every x86_64 CPU; the unaligned load
            // reads exactly the 16 bytes of `part`.
            let (separators, newlines, special, high, loose) = unsafe {
                let v = _mm_loadu_si128(part.as_ptr().cast());
                let eq = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
                let newlines = eq(b'\n');
                // A signed compare: bytes outside ASCII are below `!` too.
                let low = _mm_cmplt_epi8(v, _mm_set1_epi8(b'!' as i8));
                (
                    _mm_movemask_epi8(_mm_or_si128(eq(b','), newlines)),
                    _mm_movemask_epi8(newlines),
                    _mm_movemask_epi8(_mm_or_si128(eq(b'"'), eq(b'\r'))),
                    _mm_movemask_epi8(v),
                    _mm_movemask_epi8(_mm_andnot_si128(newlines, low)),
                )
            };
            let bits = |mask: i32| u64::from(mask as u16) << shift;
            m.separators |= bits(separators);
            m.newlines |= bits(newlines);
            m.special |= bits(special);
            m.high |= bits(high);
            m.loose |= bits(loose);
        }
        m
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn chunk(chunk: &[u8; 64]) -> Masks {
        Masks::scalar(chunk)
    }

    /// A whole chunk, 32 bytes to a compare; the flags of both halves
    /// folded into one mask each.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    fn chunk_avx2(chunk: &[u8; 64]) -> Masks {
        use std::arch::x86_64::{
            __m256i, _mm256_andnot_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
            _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
        };
        let halves: [__m256i; 2] = std::array::from_fn(|h| {
            // SAFETY: the unaligned load reads exactly the 32 bytes of
            // half `h` of `chunk`; the caller's target feature vouches for
            // the instruction.
            unsafe { _mm256_loadu_si256(chunk[32 * h..].as_ptr().cast()) }
        });
        let eq = |v: __m256i, b: u8| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b as i8));
        let [lo, hi] = halves.map(|v| {
            let newlines = eq(v, b'\n');
            // A signed compare: bytes outside ASCII are below `!` too.
            let low = _mm256_cmpgt_epi8(_mm256_set1_epi8(b'!' as i8), v);
            (
                _mm256_or_si256(eq(v, b','), newlines),
                newlines,
                _mm256_or_si256(eq(v, b'"'), eq(v, b'\r')),
                _mm256_andnot_si256(newlines, low),
            )
        });
        let bits = |a: __m256i| u64::from(_mm256_movemask_epi8(a) as u32);
        let both = |a: __m256i, b: __m256i| bits(a) | (bits(b) << 32);
        Masks {
            separators: both(lo.0, hi.0),
            newlines: both(lo.1, hi.1),
            special: bits(_mm256_or_si256(lo.2, hi.2)),
            high: bits(_mm256_or_si256(halves[0], halves[1])),
            loose: bits(_mm256_or_si256(lo.3, hi.3)),
        }
    }

    /// A whole chunk in one 64-byte compare per mask.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bw")]
    #[inline]
    fn chunk_avx512(chunk: &[u8; 64]) -> Masks {
        use std::arch::x86_64::{
            _mm512_cmpeq_epi8_mask, _mm512_cmplt_epi8_mask, _mm512_movepi8_mask, _mm512_set1_epi8,
        };
        // SAFETY: the load reads exactly the 64 bytes of `chunk`; the
        // caller's target feature vouches for the instructions.
        let v = unsafe { std::arch::x86_64::_mm512_loadu_si512(chunk.as_ptr().cast()) };
        let eq = |b: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b as i8));
        let newlines = eq(b'\n');
        Masks {
            separators: eq(b',') | newlines,
            newlines,
            special: eq(b'"') | eq(b'\r'),
            high: _mm512_movepi8_mask(v),
            // A signed compare: bytes outside ASCII are below `!` too.
            loose: _mm512_cmplt_epi8_mask(v, _mm512_set1_epi8(b'!' as i8)) & !newlines,
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
    /// UTF-8: `rows` rows, laid out. `loose`: some byte of the block might
    /// pad a cell (see [`Table::loose`]).
    Table { rows: usize, loose: bool },
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
    if std::arch::is_x86_feature_detected!("bmi1") && std::arch::is_x86_feature_detected!("popcnt")
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: this CPU has AVX-512BW, BMI1 and POPCNT, as just
            // checked.
            return unsafe { lay_out_avx512(block, columns, starts) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2, BMI1 and POPCNT, as just checked.
            return unsafe { lay_out_avx2(block, columns, starts) };
        }
    }
    lay_out_with(block, columns, starts, Masks::chunk, positions)
}

/// [`lay_out`] compiled for AVX2, its masks two compares each (every CPU
/// with AVX2 has the bit-counting instructions too).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,popcnt")]
fn lay_out_avx2(block: &[u8], columns: usize, starts: &mut Vec<u32>) -> Layout {
    lay_out_with(
        block,
        columns,
        starts,
        |chunk| Masks::chunk_avx2(chunk),
        positions,
    )
}

/// [`lay_out`] compiled for AVX-512BW, its masks a compare each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,bmi1,popcnt")]
fn lay_out_avx512(block: &[u8], columns: usize, starts: &mut Vec<u32>) -> Layout {
    lay_out_with(
        block,
        columns,
        starts,
        |chunk| Masks::chunk_avx512(chunk),
        |slots, separators, base| positions_avx512(slots, separators, base),
    )
}

/// What [`lay_out_with`] has found so far.
#[derive(Default)]
struct Tally {
    /// Starts written.
    n: usize,
    newlines: usize,
    special: u64,
    high: u64,
    loose: u64,
}

impl Tally {
    /// One chunk's masks, its first byte at `base` (a function, not a
    /// closure, so that it is inlined where the target features are on).
    #[inline(always)]
    fn take(
        &mut self,
        m: Masks,
        base: u32,
        starts: &mut Vec<u32>,
        positions: &impl Fn(&mut [u32], u64, u32),
    ) {
        self.newlines += m.newlines.count_ones() as usize;
        self.special |= m.special;
        self.high |= m.high;
        self.loose |= m.loose;
        if starts.len() < self.n + SLACK {
            starts.resize(2 * starts.len() + SLACK, 0);
        }
        positions(&mut starts[self.n..], m.separators, base);
        self.n += m.separators.count_ones() as usize;
    }
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
    let mut tally = Tally {
        n: 1,
        ..Tally::default()
    };
    let mut chunks = block.chunks_exact(64);
    let mut base = 0u32;
    for chunk in &mut chunks {
        let m = masks(chunk.try_into().expect("64 bytes"));
        tally.take(m, base, starts, &positions);
        base += 64;
    }
    tally.take(Masks::scalar(chunks.remainder()), base, starts, &positions);
    let Tally {
        n,
        newlines,
        special,
        high,
        loose,
    } = tally;
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
    Layout::Table {
        rows: newlines,
        loose: loose != 0,
    }
}

/// A laid-out block: its bytes and where each field starts.
#[derive(Clone, Copy)]
pub(super) struct Table<'b> {
    block: &'b [u8],
    starts: &'b [u32],
    columns: usize,
    pub rows: usize,
    /// Some byte of the block is one that trimming a cell might remove.
    /// When `false`, no cell has padding: a cell is null exactly when it
    /// is empty, `NA`, `NaN` or `null` as it stands.
    pub loose: bool,
}

impl<'b> Table<'b> {
    /// The table [`lay_out`] found in `block`: `rows` rows of `columns`
    /// fields, their starts at the front of `starts`, `loose` as it said.
    pub fn new(
        block: &'b [u8],
        starts: &'b [u32],
        columns: usize,
        rows: usize,
        loose: bool,
    ) -> Table<'b> {
        Table {
            block,
            starts: &starts[..rows * columns + 1],
            columns,
            rows,
            loose,
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

    /// Every row's field in `column`, in row order, as its start and the
    /// start of the field after it: a step from one row to the next, no
    /// product per row.
    #[inline(always)]
    fn spans(&self, column: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.starts[column..]
            .windows(2)
            .step_by(self.columns)
            .take(self.rows)
            .map(|w| (w[0] as usize, w[1] as usize))
    }

    /// Every row's field length in `column`, in row order: the bytes are
    /// not read.
    #[inline(always)]
    pub fn lengths(&self, column: usize) -> impl Iterator<Item = usize> + '_ {
        self.spans(column).map(|(start, next)| next - start - 1)
    }

    /// Row `row`'s field in column `column`.
    #[inline(always)]
    pub fn get(&self, row: usize, column: usize) -> &'b [u8] {
        let k = row * self.columns + column;
        &self.block[self.starts[k] as usize..self.starts[k + 1] as usize - 1]
    }

    /// Every row's field in `column`, in row order, each with the block
    /// from its start on.
    #[inline(always)]
    pub fn column(&self, column: usize) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + '_ {
        self.spans(column).map(|(start, next)| {
            let rest = &self.block[start..];
            (&rest[..next - start - 1], rest)
        })
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
            let scalar = Masks::scalar(&chunk);
            assert!(Masks::chunk(&chunk).same(&scalar), "seed {seed}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: this CPU has AVX2, as just checked.
                let wide = unsafe { Masks::chunk_avx2(&chunk) };
                assert!(wide.same(&scalar), "seed {seed}");
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512bw") {
                // SAFETY: this CPU has AVX-512BW, as just checked.
                let wide = unsafe { Masks::chunk_avx512(&chunk) };
                assert!(wide.same(&scalar), "seed {seed}");
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
        let Layout::Table { rows, loose } = layout else {
            return (layout, Vec::new());
        };
        let table = Table::new(text.as_bytes(), &starts, columns, rows, loose);
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
        // Not ASCII: `é` might be padding for all the masks tell.
        assert_eq!(
            layout,
            Layout::Table {
                rows: 4,
                loose: true
            }
        );
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
        assert_eq!(
            layout,
            Layout::Table {
                rows: 3,
                loose: false
            }
        );
        assert_eq!(cells, vec![vec!["1"], vec!["22"], vec!["333"]]);
        // Every byte a separator: far more starts than the first guess.
        let dense = format!("{},x\n", ",".repeat(298)).repeat(40);
        let (layout, cells) = table_of(&dense, 300);
        assert_eq!(
            layout,
            Layout::Table {
                rows: 40,
                loose: false
            }
        );
        assert!(cells
            .iter()
            .all(|row| row[..299].iter().all(String::is_empty) && row[299] == "x"));
    }

    #[test]
    fn a_block_that_might_pad_a_cell_says_so_wherever_the_byte_is() {
        // Every place in blocks longer than a chunk, each byte that trimming
        // removes and a few that it does not.
        let row = "2000-01-03,factor_001,-0.25,7\n";
        let plain = row.repeat(5);
        assert_eq!(
            table_of(&plain, 4).0,
            Layout::Table {
                rows: 5,
                loose: false
            }
        );
        for pad in [b' ', b'\t', 0x0c, 0x0b, 0x01] {
            for at in (0..plain.len()).filter(|&i| !b",\n".contains(&plain.as_bytes()[i])) {
                let mut text = plain.clone().into_bytes();
                text[at] = pad;
                let text = String::from_utf8(text).expect("ASCII");
                assert_eq!(
                    table_of(&text, 4).0,
                    Layout::Table {
                        rows: 5,
                        loose: true
                    },
                    "{pad:#x} at {at}"
                );
            }
        }
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
