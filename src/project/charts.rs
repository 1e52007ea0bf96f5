//! SVG charts of the projection, drawn here (no plotting crate, no script):
//! the primary metric of each factor over its runs, the pass rate per factor,
//! failure patterns by count, and run durations. Every coordinate is printed
//! with one decimal, so the same ledger gives the same bytes everywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{failures, Entry, Input, StageStatus};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 190.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 34.0;
/// Series colours, in order (colour-blind safe, Okabe–Ito).
const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000",
];
/// At most this many bars; the newest are kept.
const MAX_BARS: usize = 40;

/// One chart: a title for the page and its SVG element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    pub svg: String,
}

/// Every chart of the ledger, in page order.
pub fn charts(input: &Input<'_>, views: &[Entry]) -> Vec<Chart> {
    vec![
        metric_chart(input, views),
        pass_rate_chart(views),
        failure_chart(views),
        duration_chart(views),
    ]
}

fn metric_chart(input: &Input<'_>, views: &[Entry]) -> Chart {
    let primary = &input.config.report.primary_metric;
    let mut series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for v in views {
        if let Some(r) = v.report.report() {
            if let Some(m) = r.metric(primary) {
                series.entry(r.factor.as_str()).or_default().push(m);
            }
        }
    }
    let title = format!("{primary} of each factor over its runs");
    let series: Vec<(String, Vec<f64>)> = series
        .into_iter()
        .map(|(f, v)| (f.to_string(), v))
        .collect();
    Chart {
        id: "metric",
        svg: line_chart(&title, "run of the factor", &series),
        title,
    }
}

fn pass_rate_chart(views: &[Entry]) -> Chart {
    let mut by_factor: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for v in views {
        if let Some(r) = v.report.report() {
            let e = by_factor.entry(r.factor.as_str()).or_default();
            e.1 += 1;
            if v.status == StageStatus::Pass {
                e.0 += 1;
            }
        }
    }
    let bars: Vec<(String, f64, String)> = by_factor
        .into_iter()
        .map(|(f, (p, n))| {
            (
                f.to_string(),
                100.0 * p as f64 / n as f64,
                format!("{p}/{n}"),
            )
        })
        .collect();
    let title = "Pass rate per factor (%)".to_string();
    Chart {
        id: "pass-rate",
        svg: bar_chart(&title, &bars, Some(100.0)),
        title,
    }
}

fn failure_chart(views: &[Entry]) -> Chart {
    let mut patterns = failures::patterns(views);
    patterns.sort_by(|a, b| b.count.cmp(&a.count).then(a.gate.cmp(&b.gate)));
    let bars: Vec<(String, f64, String)> = patterns
        .iter()
        .take(12)
        .map(|p| {
            (
                format!("{}: {}", p.gate, p.reason),
                p.count as f64,
                p.count.to_string(),
            )
        })
        .collect();
    let title = "Failure patterns by count".to_string();
    Chart {
        id: "failures",
        svg: bar_chart(&title, &bars, None),
        title,
    }
}

fn duration_chart(views: &[Entry]) -> Chart {
    let ended: Vec<(String, f64)> = views
        .iter()
        .filter_map(|v| {
            let ms = v.duration_ms?;
            Some((v.tag.clone(), ms as f64 / 1000.0))
        })
        .collect();
    let skip = ended.len().saturating_sub(MAX_BARS);
    let bars: Vec<(String, f64, String)> = ended[skip..]
        .iter()
        .map(|(tag, s)| (tag.clone(), *s, format!("{s:.2} s")))
        .collect();
    let title = if skip > 0 {
        format!(
            "Run durations, seconds (newest {MAX_BARS} of {})",
            ended.len()
        )
    } else {
        "Run durations, seconds".to_string()
    };
    Chart {
        id: "durations",
        svg: bar_chart(&title, &bars, None),
        title,
    }
}

/// XML text escaping.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

fn open(title: &str, height: f64) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH:.0} {height:.0}\" width=\"{WIDTH:.0}\" height=\"{height:.0}\" role=\"img\" aria-label=\"{}\">\n",
        escape(title)
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"20.0\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        8.0,
        escape(title)
    );
    svg
}

fn empty(svg: &mut String, height: f64) {
    let _ = writeln!(
        svg,
        "<text class=\"empty\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">no data yet</text>",
        LEFT,
        height / 2.0
    );
    svg.push_str("</svg>\n");
}

/// Horizontal bars, one per label, with the value printed at the bar's end.
fn bar_chart(title: &str, bars: &[(String, f64, String)], max: Option<f64>) -> String {
    let row = 18.0;
    let height = TOP + BOTTOM + row * bars.len().max(3) as f64;
    let mut svg = open(title, height);
    if bars.is_empty() {
        empty(&mut svg, height);
        return svg;
    }
    let top = max.unwrap_or_else(|| bars.iter().map(|b| b.1).fold(0.0, f64::max));
    let top = if top > 0.0 { top } else { 1.0 };
    let span = WIDTH - LEFT - RIGHT - 60.0;
    let _ = writeln!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT:.1}\" y1=\"{TOP:.1}\" x2=\"{LEFT:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>",
        height - BOTTOM
    );
    for (i, (label, value, shown)) in bars.iter().enumerate() {
        let y = TOP + row * i as f64;
        let w = (value / top).clamp(0.0, 1.0) * span;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 12.0,
            escape(&shorten(label, 26))
        );
        let _ = writeln!(
            svg,
            "<rect class=\"bar\" x=\"{LEFT:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect>",
            y + 2.0,
            w.max(1.0),
            row - 4.0,
            PALETTE[0],
            escape(label),
            escape(shown)
        );
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            LEFT + w.max(1.0) + 4.0,
            y + 12.0,
            escape(shown)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// One polyline per series over x = 1, 2, 3 …, with a legend.
fn line_chart(title: &str, x_label: &str, series: &[(String, Vec<f64>)]) -> String {
    let height = HEIGHT;
    let mut svg = open(title, height);
    let values: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    if values.is_empty() {
        empty(&mut svg, height);
        return svg;
    }
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    if hi - lo < 1e-9 {
        lo -= 1.0;
        hi += 1.0;
    }
    let n = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = height - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * i as f64 / (n - 1) as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - (v - lo) / (hi - lo));
    let _ = writeln!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>",
        height - BOTTOM,
        WIDTH - RIGHT,
        height - BOTTOM
    );
    let _ = writeln!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT:.1}\" y1=\"{TOP:.1}\" x2=\"{LEFT:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>",
        height - BOTTOM
    );
    for (v, anchor) in [(hi, TOP + 4.0), (lo, height - BOTTOM)] {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{anchor:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            escape(&format!("{v:.3}"))
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{} (1 … {n})</text>",
        LEFT + plot_w / 2.0,
        height - 8.0,
        escape(x_label)
    );
    for (k, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let mut d = String::new();
        for (i, v) in points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1} {:.1}",
                if i == 0 { "M" } else { " L" },
                x(i),
                y(*v)
            );
        }
        let _ = writeln!(
            svg,
            "<path class=\"series\" d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"><title>{}</title></path>",
            escape(name)
        );
        for (i, v) in points.iter().enumerate() {
            let _ = writeln!(
                svg,
                "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.0\" fill=\"{colour}\"><title>{}: run {} {}</title></circle>",
                x(i),
                y(*v),
                escape(name),
                i + 1,
                escape(&format!("{v}"))
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"8.0\" y=\"{:.1}\" font-size=\"11\" fill=\"{colour}\">{}</text>",
            TOP + 14.0 * k as f64 + 10.0,
            escape(&shorten(name, 26))
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_their_data_and_escape_labels() {
        let bars = vec![
            ("a<b".to_string(), 2.0, "2".to_string()),
            ("c".to_string(), 1.0, "1".to_string()),
        ];
        let svg = bar_chart("t & u", &bars, None);
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        assert!(svg.contains("a&lt;b") && svg.contains("t &amp; u"));
        assert!(!svg.contains("a<b"));
        let lines = line_chart("m", "x", &[("f".into(), vec![1.0, 2.0, 1.5])]);
        assert!(
            lines.contains("<path class=\"series\" d=\"M190.0 "),
            "{lines}"
        );
        assert!(bar_chart("e", &[], None).contains("no data yet"));
        assert_eq!(bar_chart("t", &bars, None), bar_chart("t", &bars, None));
    }
}
