//! The documents' own Markdown printer: for the blocks ledger makes, the
//! bytes comrak's CommonMark writer prints under [`super::markdown`]'s fixed
//! options, made straight into one string. comrak writes a character at a
//! time through a formatter (a small allocation each), which made it a fifth
//! of a full `finalize`'s CPU time at 10,000 runs.
//!
//! comrak stays the reference: a block this printer does not cover exactly
//! (a control character, a link that could be an autolink, a lone list next
//! to another, ...) makes [`print`] answer `None`, and the caller prints the
//! whole document through comrak. Tests compare the two on many thousands of
//! generated documents of hostile text.
//!
//! What comrak does with text, as measured against it: these ASCII
//! characters get a backslash anywhere: `` * _ [ ] # < > \ ` ~ ! ``; `&`
//! before a letter; at the start of a block's text (while only digits came
//! before) a `-`, `+` or `=` not after a digit, and a `.` or `)` after a
//! digit and before a space or the end of its text. In a table, every `|`
//! outside the table's own bars gets a backslash, in code spans and link
//! targets too. Code spans take the shortest run of backticks the code does
//! not hold. Blocks end with a newline, a blank line between them.

use super::markdown::{longest_run, one_line, Align, Block, Inline};

/// `blocks` printed as comrak prints them, or `None` when one of them is
/// outside what this printer covers.
pub(super) fn print(blocks: &[&Block]) -> Option<String> {
    let mut printer = Printer {
        out: String::with_capacity(256),
        in_table: false,
        begin: false,
    };
    for (i, block) in blocks.iter().enumerate() {
        // comrak separates a list from a following list or code block with
        // an HTML comment.
        let next = blocks.get(i + 1);
        if matches!(block, Block::List(_))
            && matches!(next, Some(Block::List(_) | Block::Code { .. }))
        {
            return None;
        }
        if i > 0 {
            printer.out.push('\n');
        }
        printer.block(block)?;
    }
    Some(printer.out)
}

struct Printer {
    out: String,
    /// Inside a table: a `|` of a value gets a backslash.
    in_table: bool,
    /// At the start of a block's text, while only digits were printed.
    begin: bool,
}

impl Printer {
    fn block(&mut self, block: &Block) -> Option<()> {
        match block {
            Block::Heading(level, inlines) => {
                if !(1..=6).contains(level) {
                    return None;
                }
                for _ in 0..*level {
                    self.out.push('#');
                }
                self.out.push(' ');
                self.begin = true;
                self.inlines(inlines)?;
                self.out.push('\n');
            }
            Block::Paragraph(inlines) => {
                self.begin = true;
                self.content(inlines)?;
                self.out.push('\n');
            }
            Block::List(items) => {
                if items.is_empty() {
                    return None;
                }
                for item in items {
                    self.out.push_str("- ");
                    self.begin = true;
                    self.content(item)?;
                    self.out.push('\n');
                }
            }
            Block::Table { header, rows } => {
                if header.is_empty() {
                    return None;
                }
                self.in_table = true;
                self.out.push('|');
                for (title, _) in header {
                    self.cell(&[Inline::Text(title.clone())])?;
                }
                self.out.push_str("\n|");
                for (_, align) in header {
                    self.out.push_str(match align {
                        Align::Left => " :-- |",
                        Align::Right => " --: |",
                    });
                }
                self.out.push('\n');
                for row in rows {
                    self.out.push('|');
                    for i in 0..header.len() {
                        self.cell(row.get(i).map_or(&[][..], Vec::as_slice))?;
                    }
                    self.out.push('\n');
                }
                self.in_table = false;
            }
            Block::Code { info, text } => {
                let info = one_line(info);
                if info.is_empty() || info.contains('`') {
                    return None;
                }
                let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
                self.out.push_str(&fence);
                self.out.push_str(&info);
                self.out.push('\n');
                self.out.push_str(text);
                if !text.ends_with('\n') {
                    self.out.push('\n');
                }
                self.out.push_str(&fence);
                self.out.push('\n');
            }
        }
        Some(())
    }

    /// A paragraph's or a list item's inlines, which must print something.
    fn content(&mut self, inlines: &[Inline]) -> Option<()> {
        let before = self.out.len();
        self.inlines(inlines)?;
        (self.out.len() > before).then_some(())
    }

    fn cell(&mut self, inlines: &[Inline]) -> Option<()> {
        self.out.push(' ');
        self.begin = false;
        self.inlines(inlines)?;
        self.out.push_str(" |");
        Some(())
    }

    fn inlines(&mut self, inlines: &[Inline]) -> Option<()> {
        for inline in inlines {
            match inline {
                Inline::Text(t) => self.text(&one_line(t))?,
                Inline::Code(t) => {
                    let code = one_line(t);
                    match code.trim().is_empty() {
                        true => self.text(&code)?,
                        false => self.code(&code),
                    }
                }
                Inline::Strong(t) => {
                    let text = one_line(t);
                    // comrak writes an entity for white space at either edge.
                    let edge = |c: Option<char>| c.is_some_and(char::is_whitespace);
                    if edge(text.chars().next()) || edge(text.chars().next_back()) {
                        return None;
                    }
                    self.mark("**");
                    self.text(&text)?;
                    self.mark("**");
                }
                Inline::Link { text, url } => {
                    // A target with a scheme could print as an autolink.
                    if url.bytes().any(|b| b == b':' || b < 0x20) {
                        return None;
                    }
                    self.mark("[");
                    self.text(&one_line(text))?;
                    self.mark("](");
                    for c in url.chars() {
                        self.table_bar(c);
                        match c {
                            ' ' => self.out.push_str("%20"),
                            '`' | '<' | '>' | '\\' | '(' | ')' => {
                                self.out.push('\\');
                                self.out.push(c);
                            }
                            _ => self.out.push(c),
                        }
                    }
                    self.mark(")");
                }
            }
        }
        Some(())
    }

    /// Delimiters: printed as they are; the block's start is past.
    fn mark(&mut self, s: &str) {
        self.out.push_str(s);
        self.begin = false;
    }

    fn table_bar(&mut self, c: char) {
        if self.in_table && c == '|' {
            self.out.push('\\');
        }
    }

    fn code(&mut self, code: &str) {
        let ticks = "`".repeat(shortest_unused_run(code.as_bytes(), b'`'));
        let b = code.as_bytes();
        let all_space = b.iter().all(|&c| matches!(c, b' ' | b'\r' | b'\n'));
        let edge_space = b[0] == b' ' || b[b.len() - 1] == b' ';
        let edge_tick = b[0] == b'`' || b[b.len() - 1] == b'`';
        let pad = edge_tick || (!all_space && edge_space);
        self.mark(&ticks);
        if pad {
            self.out.push(' ');
        }
        for c in code.chars() {
            self.table_bar(c);
            self.out.push(c);
        }
        if pad {
            self.out.push(' ');
        }
        self.out.push_str(&ticks);
    }

    /// Text, escaped as comrak escapes it; `None` for a control character.
    fn text(&mut self, text: &str) -> Option<()> {
        let bytes = text.as_bytes();
        let mut start = 0;
        for (i, &c) in bytes.iter().enumerate() {
            if c < 0x20 {
                return None;
            }
            let next = bytes.get(i + 1).copied().unwrap_or(0);
            let bar = self.in_table && c == b'|';
            let escape = match c {
                b'*' | b'_' | b'[' | b']' | b'#' | b'<' | b'>' | b'\\' | b'`' | b'~' | b'!' => true,
                b'&' => next.is_ascii_alphabetic(),
                b'-' | b'+' | b'=' => self.begin && !self.after_digit(bytes, start, i),
                b'.' | b')' => {
                    self.begin
                        && self.after_digit(bytes, start, i)
                        && matches!(next, 0 | b' ' | b'\t' | b'\n' | b'\r')
                }
                _ => false,
            };
            if bar || escape {
                self.out.push_str(&text[start..i]);
                self.out.push('\\');
                start = i;
            }
            self.begin = self.begin && c.is_ascii_digit();
        }
        self.out.push_str(&text[start..]);
        Some(())
    }

    /// Whether the byte printed before `bytes[i]` is a digit: `bytes[start..i]`
    /// is not yet in `out`.
    fn after_digit(&self, bytes: &[u8], start: usize, i: usize) -> bool {
        let last = match i > start {
            true => Some(bytes[i - 1]),
            false => self.out.as_bytes().last().copied(),
        };
        last.is_some_and(|b| b.is_ascii_digit())
    }
}

/// The shortest run of `b` that `bytes` does not hold.
fn shortest_unused_run(bytes: &[u8], b: u8) -> usize {
    let mut used = Vec::new();
    let mut run = 0;
    for &c in bytes.iter().chain([0u8].iter()) {
        if c == b {
            run += 1;
            continue;
        }
        if run > 0 {
            if used.len() <= run {
                used.resize(run + 1, false);
            }
            used[run] = true;
        }
        run = 0;
    }
    (1..)
        .find(|&n| !used.get(n).copied().unwrap_or(false))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::super::markdown::{comrak_blocks, Cell};
    use super::*;

    /// A small deterministic generator (splitmix64): the same documents on
    /// every run.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Text from pieces that each mean something to Markdown somewhere.
        fn text(&mut self) -> String {
            const PIECES: &[&str] = &[
                "a", "Z", "0", "7", "12", " ", "  ", "-", "+", "=", ".", ")", "(", "|", "`", "``",
                "*", "_", "[", "]", "#", "<", ">", "\\", "~", "!", "&", "&a", "x", ":", "/", "@",
                "\"", "'", "é", "—", "·", "\n", "\r\n", "\t", "%", "$", "{", "}", "^", "?", ";",
                ",", "1.", "2)", "-1", "http://x", "\u{a0}", "\u{7f}",
            ];
            let len = match self.below(8) {
                0 => 0,
                1 => 1,
                _ => 1 + self.below(12),
            };
            (0..len).map(|_| PIECES[self.below(PIECES.len())]).collect()
        }

        fn inline(&mut self) -> Inline {
            match self.below(10) {
                0..=4 => Inline::Text(self.text()),
                5 | 6 => Inline::Code(self.text()),
                7 => Inline::Strong(self.text()),
                _ => Inline::Link {
                    text: self.text(),
                    url: match self.below(3) {
                        0 => self.text(),
                        _ => format!("../a/{}.md", self.below(100)),
                    },
                },
            }
        }

        fn inlines(&mut self) -> Vec<Inline> {
            let n = match self.below(6) {
                0 => 0,
                _ => 1 + self.below(4),
            };
            (0..n).map(|_| self.inline()).collect()
        }

        fn block(&mut self) -> Block {
            match self.below(10) {
                0 | 1 => Block::Heading(1 + self.below(3) as u8, vec![Inline::Text(self.text())]),
                2..=4 => Block::Paragraph(self.inlines()),
                5 | 6 => Block::List((0..self.below(4)).map(|_| self.inlines()).collect()),
                7 | 8 => {
                    let columns = self.below(4);
                    let header = (0..columns)
                        .map(|_| {
                            let align = [Align::Left, Align::Right][self.below(2)];
                            (self.text(), align)
                        })
                        .collect();
                    let rows = (0..self.below(4))
                        .map(|_| {
                            (0..self.below(columns + 2))
                                .map(|_| self.inlines())
                                .collect::<Vec<Cell>>()
                        })
                        .collect();
                    Block::Table { header, rows }
                }
                _ => Block::Code {
                    info: ["sh", "diff", "", "a`b", "x y"][self.below(5)].to_string(),
                    text: self.text(),
                },
            }
        }
    }

    /// Every generated document the printer covers prints as comrak prints
    /// it; most documents are covered (else this would prove little).
    #[test]
    fn prints_what_comrak_prints() {
        let mut gen = Gen(7);
        let (mut covered, total) = (0, 60_000);
        for case in 0..total {
            let blocks: Vec<Block> = (0..1 + gen.below(4)).map(|_| gen.block()).collect();
            let refs: Vec<&Block> = blocks.iter().collect();
            if let Some(ours) = print(&refs) {
                covered += 1;
                let theirs = comrak_blocks(&refs);
                assert_eq!(ours, theirs, "case {case}: {blocks:#?}");
            }
        }
        assert!(covered * 4 > total, "only {covered} of {total} covered");
    }

    /// What the documents are made of is covered: a run's governance
    /// check, say.
    #[test]
    fn covers_the_documents_ledger_makes() {
        let blocks = [
            Block::Heading(
                1,
                vec![Inline::text("Governance audit check: gen0_quality")],
            ),
            Block::Paragraph(vec![
                Inline::text("Run "),
                Inline::code("20260315T182000Z_production_gates_gen0_quality"),
                Inline::text(", status fail. Governance: "),
                Inline::Strong("FAIL".into()),
                Inline::text("."),
            ]),
            Block::Table {
                header: vec![("Check".into(), Align::Left), ("n".into(), Align::Right)],
                rows: vec![vec![
                    vec![Inline::text("a | b"), Inline::code("x|y")],
                    vec![Inline::link("summary", "../../a b/(c).md")],
                ]],
            },
            Block::List(vec![vec![Inline::text("1.5x: pass (0.2 vs 0.5)")]]),
            Block::Paragraph(vec![Inline::text("4 of 4 shards passed.")]),
            Block::Code {
                info: "sh".into(),
                text: "python run.py --factor x\n".into(),
            },
        ];
        let refs: Vec<&Block> = blocks.iter().collect();
        let ours = print(&refs).expect("covered");
        assert_eq!(ours, comrak_blocks(&refs));
        assert!(
            ours.contains("| a \\| b`x\\|y` | [summary](../../a%20b/\\(c\\).md) |"),
            "{ours}"
        );
    }

    #[test]
    fn what_it_does_not_cover_is_left_to_comrak() {
        let cases = [
            vec![Block::Paragraph(vec![Inline::text("tab\there")])],
            vec![Block::Paragraph(vec![Inline::Strong(" edge".into())])],
            vec![Block::Paragraph(vec![Inline::link("x", "https://x")])],
            vec![
                Block::List(vec![vec![Inline::text("a")]]),
                Block::List(vec![vec![Inline::text("b")]]),
            ],
            vec![Block::Code {
                info: String::new(),
                text: "x".into(),
            }],
            vec![Block::Paragraph(Vec::new())],
        ];
        for blocks in cases {
            let refs: Vec<&Block> = blocks.iter().collect();
            assert_eq!(print(&refs), None, "{blocks:?}");
        }
    }
}
