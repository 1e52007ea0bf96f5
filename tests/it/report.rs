//! `ledger report --html`: a static site of every document with SVG charts,
//! byte-identical across runs and environments, loaded by a real headless
//! Chromium (Debian's `chromium`, installed by `.ci/run`; without it the
//! browser part says so and passes, except under CI).

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{assert_ok, Run};

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Each chart's figure, by id.
fn figures(html: &str) -> BTreeMap<String, String> {
    html.split("<figure id=\"chart-")
        .skip(1)
        .map(|part| {
            let (id, rest) = part.split_once('"').unwrap();
            let body = rest.split("</figure>").next().unwrap();
            (id.to_string(), body.to_string())
        })
        .collect()
}

fn drawn(figure: &str) -> usize {
    [
        "<rect class=\"bar\"",
        "<path class=\"series\"",
        "<circle class=\"point\"",
    ]
    .iter()
    .map(|m| figure.matches(m).count())
    .sum()
}

#[test]
fn the_html_report_has_every_document_and_chart_and_is_byte_identical() {
    let env = crate::finalize::fixture();
    let site = env.dir.path().join("site");
    let out = assert_ok(env.ledger(&["report", "--html", site.to_str().unwrap()]));
    assert!(out.stdout.contains("6 runs"), "{out:?}");
    let a = files(&site);
    let index = String::from_utf8(a["index.html"].clone()).unwrap();
    let charts = figures(&index);
    assert_eq!(
        charts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["durations", "failures", "metric", "pass-rate"]
    );
    for (id, figure) in &charts {
        assert!(drawn(figure) > 0, "chart {id} draws nothing:\n{figure}");
    }
    // momentum has two runs with a sharpe: a two-point line.
    assert!(
        charts["metric"].contains("momentum: run 2 0.75"),
        "{}",
        charts["metric"]
    );
    // Hostile text is escaped, never markup.
    assert!(!index.contains("<i>z</i>"), "raw HTML from a factor name");
    assert!(index.contains("mom|x `y` &lt;i&gt;z&lt;/i&gt;"));
    // Every Markdown document has its page; links between them are rewritten.
    let stage =
        String::from_utf8(a["docs/production_research/STAGE_AUDIT_LOG.html"].clone()).unwrap();
    assert!(stage.contains("<table>"), "{stage}");
    let target = "gate_results/production_gates_pass1/production_gates_final_summary.html";
    assert!(
        stage.contains(&format!("href=\"../../{target}\"")),
        "{stage}"
    );
    assert!(a.contains_key(target));
    assert!(a.contains_key("audit/factor_registry/factor_experiment_registry.csv"));
    assert!(!a.keys().any(|k| k.ends_with(".md")));
    // No script anywhere in the pages, even from a hostile gate reason.
    for (path, bytes) in a.iter().filter(|(k, _)| k.ends_with(".html")) {
        assert!(!bytes.windows(7).any(|w| w == b"<script"), "{path}");
    }
    assert!(
        a.values().any(|b| b.windows(8).any(|w| w == b"<script>")),
        "the fixture has one"
    );

    // Byte-identical: again into another directory, from elsewhere, in another zone.
    let again = env.dir.path().join("again");
    let mut cmd = env.command_after("umask 077", &["report", "--html", again.to_str().unwrap()]);
    cmd.env("TZ", "Asia/Tokyo").env("LANG", "C");
    let out: Run = cmd.output().unwrap().into();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(a, files(&again));
    // A second report into the same directory changes nothing.
    let json: serde_json::Value = serde_json::from_str(
        &assert_ok(env.ledger(&["report", "--html", site.to_str().unwrap(), "--json"])).stdout,
    )
    .unwrap();
    assert_eq!(json["changed"], 0);

    browser_loads(&site);
}

/// Loads `site/index.html` in headless Chromium and checks what it built;
/// returns the screenshot (PNG bytes), or `None` when chromium is missing
/// outside CI.
pub(crate) fn browser_loads(site: &Path) -> Option<Vec<u8>> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(chromium) = chromium else {
        #[allow(clippy::disallowed_methods)] // CI must never skip this part
        let ci = std::env::var_os("CI").is_some();
        assert!(!ci, "chromium is missing under CI");
        eprintln!("skipped the browser part: chromium is not installed");
        return None;
    };
    let profile = site.parent().unwrap().join("chromium-profile");
    let url = format!("file://{}/index.html", site.display());
    let browser = |extra: &[String]| {
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1100,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    // The DOM as the browser built it: the text is there, every chart drew.
    let dom = browser(&["--dump-dom".to_string()]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains("<h1>Ledger report</h1>"), "{dom}");
    assert!(dom.contains("Failure patterns by count"), "{dom}");
    let charts = figures(&dom);
    assert_eq!(charts.len(), 4, "{dom}");
    for (id, figure) in &charts {
        assert!(
            drawn(figure) > 0,
            "chart {id} has no drawn elements in the browser's DOM"
        );
    }
    // A screenshot of the rendered page.
    let shot = site.parent().unwrap().join("index.png");
    let out = browser(&[format!("--screenshot={}", shot.display())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
    Some(png)
}
