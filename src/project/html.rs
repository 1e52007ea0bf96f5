//! `ledger report --html`: a static, self-contained site of the projection.
//! Every Markdown document is rendered to HTML from the very same Markdown
//! through comrak (links to `.md` files become links to their `.html`
//! pages; raw HTML in a value stays text), CSV and JSON files are copied as
//! they are, and the index page carries the charts as inline SVG. No
//! script, no network, no clock: the same ledger gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use comrak::nodes::NodeValue;
use comrak::{Arena, Options};

use super::charts::{self, escape};
use super::{Input, Projection};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b;line-height:1.45}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}\
th{background:#f2f2f2}code{font-size:.85em;background:#f6f6f6;padding:0 .2em}pre{background:#f6f6f6;padding:.5rem;overflow-x:auto}\
nav{font-size:.9rem;margin-bottom:1rem}figure{margin:1.5rem 0}svg{max-width:100%;height:auto}";

/// The site: repository-like relative paths to bytes.
pub fn site(input: &Input<'_>, projection: &Projection, head: &str) -> BTreeMap<String, Vec<u8>> {
    let views = &projection.entries;
    let per_run: BTreeSet<&String> = projection
        .entries
        .iter()
        .flat_map(|e| e.paths.all())
        .collect();
    let mut files = BTreeMap::new();
    for (path, bytes) in &projection.files {
        match path.strip_suffix(".md") {
            Some(stem) => {
                let md = String::from_utf8_lossy(bytes);
                let title = md
                    .lines()
                    .find_map(|l| l.strip_prefix("# "))
                    .unwrap_or(path)
                    .to_string();
                let page = page(&title, path, &markdown_html(&md));
                files.insert(format!("{stem}.html"), page.into_bytes());
            }
            None => {
                files.insert(path.clone(), bytes.clone());
            }
        }
    }
    let mut body = format!(
        "<h1>Ledger report</h1>\n<p>{} runs, ledger head <code>{}</code>. Every page is rendered from the documents <code>ledger finalize</code> writes; the ledger and <code>ledger verify</code> are the authority.</p>\n",
        views.len(),
        escape(head)
    );
    body.push_str("<h2>Charts</h2>\n");
    for chart in charts::charts(input, views) {
        body.push_str(&format!(
            "<figure id=\"chart-{}\">\n{}</figure>\n",
            chart.id, chart.svg
        ));
    }
    body.push_str("<h2>Documents</h2>\n<ul>\n");
    for path in projection.files.keys().filter(|p| !per_run.contains(p)) {
        let target = match path.strip_suffix(".md") {
            Some(stem) => format!("{stem}.html"),
            None => path.clone(),
        };
        body.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>\n",
            escape(&target),
            escape(path)
        ));
    }
    body.push_str(&format!(
        "</ul>\n<p>Each run's final summary, run review, governance check and remediation plan ({} pages) are linked from the stage audit log.</p>\n",
        per_run.len()
    ));
    files.insert(
        "index.html".into(),
        wrap("Ledger report", "", &body).into_bytes(),
    );
    files
}

/// One document page, with a link back to the index.
fn page(title: &str, path: &str, body: &str) -> String {
    let up = "../".repeat(path.matches('/').count());
    let nav = format!(
        "<nav><a href=\"{up}index.html\">index</a> · <code>{}</code></nav>\n",
        escape(path)
    );
    wrap(title, &nav, body)
}

fn wrap(title: &str, nav: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{nav}{body}</body>\n</html>\n",
        escape(title)
    )
}

/// CommonMark + tables to HTML, with relative `.md` links pointing at the
/// rendered `.html` pages. Raw HTML is never passed through.
pub fn markdown_html(md: &str) -> String {
    let mut options = Options::default();
    options.extension.table = true;
    let arena = Arena::new();
    let root = comrak::parse_document(&arena, md, &options);
    for node in root.descendants() {
        if let NodeValue::Link(link) = &mut node.data_mut().value {
            let relative = !link.url.contains(':') && !link.url.starts_with('/');
            if let Some(stem) = link.url.strip_suffix(".md").filter(|_| relative) {
                link.url = format!("{stem}.html");
            }
        }
    }
    let mut out = String::new();
    comrak::format_html(root, &options, &mut out).expect("writing HTML to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_documents_point_at_their_pages_and_html_stays_text() {
        let html = markdown_html(
            "[s](../a/summary.md) [w](https://example.com/x.md)\n\n| a |\n| - |\n| <b>x</b> |\n",
        );
        assert!(html.contains("href=\"../a/summary.html\""), "{html}");
        assert!(html.contains("href=\"https://example.com/x.md\""), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(!html.contains("<b>x</b>"), "{html}");
    }
}
