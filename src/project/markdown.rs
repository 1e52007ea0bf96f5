//! Markdown documents built as a comrak AST and printed by comrak's CommonMark
//! writer (GFM tables on, no line wrapping). Values never pass through string
//! concatenation into Markdown: a `|`, a backtick, `<html>` or a newline in a
//! tag or a note stays inside its table cell, as text.
//!
//! The options are fixed here, so a comrak upgrade that changes the output is
//! caught by the golden tests.

use comrak::nodes::{
    AstNode, ListType, NodeCode, NodeCodeBlock, NodeHeading, NodeLink, NodeList, NodeTable,
    NodeValue, TableAlignment,
};
use comrak::{Arena, Options};

/// A piece of inline content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inline {
    Text(String),
    /// A code span (ids, commits, paths).
    Code(String),
    Strong(String),
    Link {
        text: String,
        url: String,
    },
}

impl Inline {
    pub fn text(s: impl Into<String>) -> Inline {
        Inline::Text(s.into())
    }
    pub fn code(s: impl Into<String>) -> Inline {
        Inline::Code(s.into())
    }
    pub fn link(text: impl Into<String>, url: impl Into<String>) -> Inline {
        Inline::Link {
            text: text.into(),
            url: url.into(),
        }
    }
}

impl From<&str> for Inline {
    fn from(s: &str) -> Inline {
        Inline::Text(s.into())
    }
}

impl From<String> for Inline {
    fn from(s: String) -> Inline {
        Inline::Text(s)
    }
}

/// One table cell: a run of inlines.
pub type Cell = Vec<Inline>;

/// A column's alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A block of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    Heading(u8, Vec<Inline>),
    Paragraph(Vec<Inline>),
    /// A bullet list, one paragraph per item.
    List(Vec<Vec<Inline>>),
    Table {
        header: Vec<(String, Align)>,
        rows: Vec<Vec<Cell>>,
    },
    /// A fenced code block with an info string (`diff`, `sh`, ...).
    Code {
        info: String,
        text: String,
    },
}

/// A Markdown document under construction.
#[derive(Clone, Debug, Default)]
pub struct Doc {
    blocks: Vec<Block>,
}

impl Doc {
    pub fn new() -> Doc {
        Doc::default()
    }

    pub fn heading(&mut self, level: u8, text: impl Into<String>) -> &mut Doc {
        self.blocks
            .push(Block::Heading(level, vec![Inline::Text(text.into())]));
        self
    }

    pub fn paragraph(&mut self, inlines: Vec<Inline>) -> &mut Doc {
        self.blocks.push(Block::Paragraph(inlines));
        self
    }

    pub fn text(&mut self, text: impl Into<String>) -> &mut Doc {
        self.paragraph(vec![Inline::Text(text.into())])
    }

    pub fn list(&mut self, items: Vec<Vec<Inline>>) -> &mut Doc {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
        self
    }

    /// A table; `header` names each column. Rows shorter than the header are
    /// padded with empty cells.
    pub fn table(&mut self, header: &[(&str, Align)], rows: Vec<Vec<Cell>>) -> &mut Doc {
        self.blocks.push(Block::Table {
            header: header.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows,
        });
        self
    }

    pub fn code(&mut self, info: &str, text: impl Into<String>) -> &mut Doc {
        self.blocks.push(Block::Code {
            info: info.into(),
            text: text.into(),
        });
        self
    }

    /// Prints the document as CommonMark + GFM tables.
    pub fn render(&self) -> String {
        self.render_in(TABLE_PIECE)
    }

    /// [`Doc::render`], a table of more than `piece` rows through comrak a
    /// piece at a time: the AST of a 100,000-row table took a gigabyte. Rows
    /// print one per line, unpadded, so the pieces join into the same bytes
    /// (tested).
    fn render_in(&self, piece: usize) -> String {
        let mut out = String::new();
        let mut pending: Vec<&Block> = Vec::new();
        for block in &self.blocks {
            let Block::Table { header, rows } = block else {
                pending.push(block);
                continue;
            };
            if rows.len() <= piece {
                pending.push(block);
                continue;
            }
            join_blocks(&mut out, &render_blocks(&pending));
            pending.clear();
            let mut table = String::new();
            for (i, part) in rows.chunks(piece).enumerate() {
                let part = Block::Table {
                    header: header.clone(),
                    rows: part.to_vec(),
                };
                let text = render_blocks(&[&part]);
                match i {
                    0 => table.push_str(&text),
                    // The header row and the delimiter row are the first piece's.
                    _ => table.extend(text.split_inclusive('\n').skip(2)),
                }
            }
            join_blocks(&mut out, &table);
        }
        join_blocks(&mut out, &render_blocks(&pending));
        out
    }

    /// [`Doc::render`] of this document followed by a table of `count`
    /// rows that `rows` makes a piece at a time (given each piece's range),
    /// so that a long table's rows are never all in memory: the same bytes
    /// as rendering the document with that table added (tested).
    pub fn render_with_table(
        &self,
        header: &[(&str, Align)],
        count: usize,
        rows: impl Fn(std::ops::Range<usize>) -> Vec<Vec<Cell>>,
    ) -> String {
        self.render_with_table_in(TABLE_PIECE, header, count, rows)
    }

    fn render_with_table_in(
        &self,
        piece: usize,
        header: &[(&str, Align)],
        count: usize,
        rows: impl Fn(std::ops::Range<usize>) -> Vec<Vec<Cell>>,
    ) -> String {
        let mut out = self.render_in(piece);
        let header: Vec<(String, Align)> =
            header.iter().map(|(h, a)| (h.to_string(), *a)).collect();
        let mut start: usize = 0;
        loop {
            let end = count.min(start.saturating_add(piece));
            let part = Block::Table {
                header: header.clone(),
                rows: rows(start..end),
            };
            let text = render_blocks(&[&part]);
            match start {
                0 => join_blocks(&mut out, &text),
                // The header row and the delimiter row are the first piece's.
                _ => out.extend(text.split_inclusive('\n').skip(2)),
            }
            start = end;
            if start >= count {
                return out;
            }
        }
    }
}

/// The most table rows comrak prints at once ([`Doc::render_in`]).
const TABLE_PIECE: usize = 1024;

/// Blocks printed as one document: by [`super::printer`] where it covers
/// them (the same bytes), else by comrak.
fn render_blocks(blocks: &[&Block]) -> String {
    super::printer::print(blocks).unwrap_or_else(|| comrak_blocks(blocks))
}

/// Blocks printed by comrak as one document.
pub(super) fn comrak_blocks(blocks: &[&Block]) -> String {
    let arena = Arena::new();
    let root = node(&arena, NodeValue::Document);
    for block in blocks {
        root.append(build_block(&arena, block));
    }
    let mut out = String::new();
    comrak::format_commonmark(root, &options(), &mut out)
        .expect("writing Markdown to a String cannot fail");
    out
}

/// Appends printed blocks after `out`, a blank line between, as comrak
/// separates blocks.
fn join_blocks(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(text);
}

fn options() -> Options<'static> {
    let mut options = Options::default();
    options.extension.table = true;
    options.render.width = 0;
    options
}

fn node<'a>(arena: &'a Arena<'a>, value: NodeValue) -> &'a AstNode<'a> {
    arena.alloc(AstNode::from(value))
}

fn build_block<'a>(arena: &'a Arena<'a>, block: &Block) -> &'a AstNode<'a> {
    match block {
        Block::Heading(level, inlines) => {
            let h = node(
                arena,
                NodeValue::Heading(NodeHeading {
                    level: *level,
                    setext: false,
                    closed: false,
                }),
            );
            append_inlines(arena, h, inlines);
            h
        }
        Block::Paragraph(inlines) => {
            let p = node(arena, NodeValue::Paragraph);
            append_inlines(arena, p, inlines);
            p
        }
        Block::List(items) => {
            let list = NodeList {
                list_type: ListType::Bullet,
                bullet_char: b'-',
                tight: true,
                ..NodeList::default()
            };
            let l = node(arena, NodeValue::List(list));
            for item in items {
                let i = node(arena, NodeValue::Item(list));
                let p = node(arena, NodeValue::Paragraph);
                append_inlines(arena, p, item);
                i.append(p);
                l.append(i);
            }
            l
        }
        Block::Table { header, rows } => {
            let columns = header.len();
            let table = node(
                arena,
                NodeValue::Table(Box::new(NodeTable {
                    alignments: header
                        .iter()
                        .map(|(_, a)| match a {
                            Align::Left => TableAlignment::Left,
                            Align::Right => TableAlignment::Right,
                        })
                        .collect(),
                    num_columns: columns,
                    num_rows: rows.len() + 1,
                    num_nonempty_cells: 0,
                })),
            );
            let head = node(arena, NodeValue::TableRow(true));
            for (title, _) in header {
                let c = node(arena, NodeValue::TableCell);
                append_inlines(arena, c, &[Inline::Text(title.clone())]);
                head.append(c);
            }
            table.append(head);
            for row in rows {
                let r = node(arena, NodeValue::TableRow(false));
                for i in 0..columns {
                    let c = node(arena, NodeValue::TableCell);
                    if let Some(cell) = row.get(i) {
                        append_inlines(arena, c, cell);
                    }
                    r.append(c);
                }
                table.append(r);
            }
            table
        }
        Block::Code { info, text } => {
            let mut literal = text.clone();
            if !literal.ends_with('\n') {
                literal.push('\n');
            }
            // A fence longer than any backtick run inside the text.
            let longest = longest_run(&literal, '`');
            node(
                arena,
                NodeValue::CodeBlock(Box::new(NodeCodeBlock {
                    fenced: true,
                    fence_char: b'`',
                    fence_length: (longest + 1).max(3),
                    fence_offset: 0,
                    info: one_line(info),
                    literal,
                    ..NodeCodeBlock::default()
                })),
            )
        }
    }
}

fn append_inlines<'a>(arena: &'a Arena<'a>, parent: &'a AstNode<'a>, inlines: &[Inline]) {
    for inline in inlines {
        let n = match inline {
            Inline::Text(t) => node(arena, NodeValue::Text(one_line(t).into())),
            Inline::Code(t) if one_line(t).trim().is_empty() => {
                node(arena, NodeValue::Text(one_line(t).into()))
            }
            Inline::Code(t) => node(
                arena,
                NodeValue::Code(NodeCode {
                    num_backticks: longest_run(t, '`') + 1,
                    literal: one_line(t),
                }),
            ),
            Inline::Strong(t) => {
                let s = node(arena, NodeValue::Strong);
                s.append(node(arena, NodeValue::Text(one_line(t).into())));
                s
            }
            Inline::Link { text, url } => {
                let l = node(
                    arena,
                    NodeValue::Link(Box::new(NodeLink {
                        url: url.clone(),
                        title: String::new(),
                    })),
                );
                l.append(node(arena, NodeValue::Text(one_line(text).into())));
                l
            }
        };
        parent.append(n);
    }
}

/// Line breaks inside a value would end a table row or a paragraph; they
/// become spaces (the JSON documents keep the exact value).
pub(super) fn one_line(text: &str) -> String {
    text.replace("\r\n", " ").replace(['\n', '\r'], " ")
}

/// The longest run of `c` in `text`.
pub(super) fn longest_run(text: &str, c: char) -> usize {
    let mut best = 0;
    let mut run = 0;
    for ch in text.chars() {
        if ch == c {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tables_print_in_pieces_as_they_print_whole() {
        let row = |i: usize| -> Vec<Cell> {
            vec![
                vec![Inline::text(format!("r{i} | pipe `tick` <b>\nline"))],
                vec![Inline::code(format!("c{i}")), Inline::text(" · ")],
                vec![Inline::link(format!("l{i}"), format!("a/{i}.md"))],
            ]
        };
        let header = [("A", Align::Left), ("B", Align::Right), ("C", Align::Left)];
        let mut doc = Doc::new();
        doc.heading(1, "Title")
            .text("before")
            .table(&header, (0..7).map(row).collect())
            .list(vec![vec![Inline::text("one")], vec![Inline::text("two")]])
            .table(&header, (0..3).map(row).collect())
            .table(&header, (0..5).map(row).collect())
            .code("text", "x\n")
            .text("after");
        let whole = doc.render_in(usize::MAX);
        for piece in [1, 2, 3, 4, 6, 7] {
            assert_eq!(doc.render_in(piece), whole, "pieces of {piece}");
        }
        let mut last = Doc::new();
        last.table(&header, (0..9).map(row).collect());
        assert_eq!(last.render_in(2), last.render_in(usize::MAX));
        assert_eq!(tables(&last.render_in(2))[0].len(), 10);
    }

    #[test]
    fn a_table_made_in_pieces_prints_as_one_given_whole() {
        let row = |i: usize| -> Vec<Cell> {
            vec![
                vec![Inline::text(format!("r{i} | `x` <b>\nline"))],
                vec![Inline::link(format!("l{i}"), format!("a/{i}.md"))],
            ]
        };
        let header = [("A", Align::Left), ("B", Align::Right)];
        for count in [0, 1, 2, 7, 9] {
            let mut head = Doc::new();
            head.heading(1, "Title").text("before");
            let mut whole = Doc::new();
            whole
                .heading(1, "Title")
                .text("before")
                .table(&header, (0..count).map(row).collect());
            let want = whole.render_in(usize::MAX);
            for piece in [1, 2, 3, 7, usize::MAX] {
                let got =
                    head.render_with_table_in(piece, &header, count, |r| r.map(row).collect());
                assert_eq!(got, want, "{count} rows in pieces of {piece}");
            }
        }
    }

    /// Reads every table of `md` with an independent parser: rows of cell texts.
    fn tables(md: &str) -> Vec<Vec<Vec<String>>> {
        use pulldown_cmark::{Event, Options as PdOptions, Parser, Tag, TagEnd};
        let mut out = Vec::new();
        let mut table: Vec<Vec<String>> = Vec::new();
        let mut row: Vec<String> = Vec::new();
        let mut cell: Option<String> = None;
        for event in Parser::new_ext(md, PdOptions::ENABLE_TABLES) {
            match event {
                Event::Start(Tag::Table(_)) => table = Vec::new(),
                Event::End(TagEnd::Table) => out.push(std::mem::take(&mut table)),
                Event::Start(Tag::TableHead) | Event::Start(Tag::TableRow) => row = Vec::new(),
                Event::End(TagEnd::TableHead) | Event::End(TagEnd::TableRow) => {
                    table.push(std::mem::take(&mut row))
                }
                Event::Start(Tag::TableCell) => cell = Some(String::new()),
                Event::End(TagEnd::TableCell) => row.push(cell.take().unwrap_or_default()),
                Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                    if let Some(c) = cell.as_mut() {
                        c.push_str(&t);
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn hostile_values_stay_in_their_cells() {
        let hostile = [
            "a|b",
            "`tick`",
            "``double`` and `",
            "line\nbreak\r\nagain",
            "<script>alert(1)</script>",
            "*not emphasis* _nor_ [a](link)",
            "# not a heading",
            "\\|",
            "| --- |",
            "",
        ];
        let mut doc = Doc::new();
        let rows = hostile
            .iter()
            .map(|v| vec![vec![Inline::text(*v)], vec![Inline::code(*v)]])
            .collect();
        doc.table(&[("text", Align::Left), ("code", Align::Right)], rows);
        let md = doc.render();
        let t = tables(&md);
        assert_eq!(t.len(), 1, "{md}");
        assert_eq!(t[0].len(), hostile.len() + 1, "{md}");
        for (i, v) in hostile.iter().enumerate() {
            let row = &t[0][i + 1];
            assert_eq!(row.len(), 2, "row {i} of\n{md}");
            assert_eq!(row[0], one_line(v), "text cell {i} of\n{md}");
            if !v.trim().is_empty() {
                assert_eq!(row[1].trim(), one_line(v).trim(), "code cell {i} of\n{md}");
            }
        }
    }

    #[test]
    fn rendering_is_stable() {
        let mut doc = Doc::new();
        doc.heading(1, "Title")
            .text("Some *text*.")
            .list(vec![vec![Inline::code("abc"), Inline::text(" done")]])
            .table(
                &[("a", Align::Left), ("n", Align::Right)],
                vec![vec![vec!["x".into()], vec!["1".into()]]],
            )
            .code("diff", "-a\n+b");
        assert_eq!(
            doc.render(),
            "# Title\n\nSome \\*text\\*.\n\n- `abc` done\n\n| a | n |\n| :-- | --: |\n| x | 1 |\n\n```diff\n-a\n+b\n```\n"
        );
    }
}
