//! A compressed version's record, for the detail pane and the compare view: how it was made,
//! how it computes, its tensors, and the comparison with its parent that the compressing job
//! measured (parent column, child column, and how the child compares).
//!
//! ```text
//! method    quantize int8
//! measured  fashion-mnist test · 10000 rows · cpu
//! compute   int8 weights dequantized to f32 at load
//!                   v3        v4  v4 against v3
//! size         1.65 MB  418.0 kB  3.95x smaller
//! accuracy      0.9120    0.9100  -0.20 pt
//! p50 ms b1      0.420     0.400  1.05x faster
//! tensors   conv.0.weight 32x1x3x3 · 0.0% zero · int8
//! ```

use ratatui::text::{Line, Span};

use super::detail::kv;
use crate::tui::theme::Theme;
use kiln_core::api::VersionManifest;
use kiln_core::compression::{Compression, Figures, bytes};

/// Width of the label column (the same as the detail pane's keys).
const LABEL: usize = 10;
/// Width of each value column.
const VALUE: usize = 10;
/// Tensors listed before the rest are counted.
const MAX_TENSORS: usize = 6;

/// How the second side of a figure compares with the first.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub text: String,
    /// Better, worse, or neither (equal, or no direction).
    pub better: Option<bool>,
}

/// One figure of a comparison: its label, the two sides and how the second compares.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureRow {
    pub label: &'static str,
    pub first: String,
    pub second: String,
    pub change: Option<Change>,
}

/// `3.95x smaller` / `1.20x larger`: the ratio of two positive amounts, worded by direction.
fn times(before: f64, after: f64, less: &str, more: &str) -> Option<Change> {
    if !(before > 0.0 && after > 0.0) {
        return None;
    }
    let ratio = before / after;
    Some(match ratio {
        1.0 => Change {
            text: "same".into(),
            better: None,
        },
        r if r > 1.0 => Change {
            text: format!("{r:.2}x {less}"),
            better: Some(true),
        },
        r => Change {
            text: format!("{:.2}x {more}", 1.0 / r),
            better: Some(false),
        },
    })
}

/// How the difference of two scores reads: which way is better, and how it is written.
#[derive(Clone, Copy)]
struct Delta {
    higher_is_better: bool,
    text: fn(f64) -> String,
}

impl Delta {
    fn higher(text: fn(f64) -> String) -> Self {
        Self {
            higher_is_better: true,
            text,
        }
    }

    fn lower(text: fn(f64) -> String) -> Self {
        Self {
            higher_is_better: false,
            text,
        }
    }

    /// `b` against `a`, when both were measured.
    fn between(self, a: Option<f64>, b: Option<f64>) -> Option<Change> {
        let d = b? - a?;
        Some(Change {
            text: (self.text)(d),
            better: (d != 0.0).then_some((d > 0.0) == self.higher_is_better),
        })
    }
}

fn score(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

/// The figures of two sides, first against second, in report order.
pub fn figure_rows(a: &Figures, b: &Figures) -> Vec<FigureRow> {
    let row = |label, first, second, change| FigureRow {
        label,
        first,
        second,
        change,
    };
    let mut rows = vec![
        row(
            "size",
            bytes(a.size_bytes),
            bytes(b.size_bytes),
            times(a.size_bytes as f64, b.size_bytes as f64, "smaller", "larger"),
        ),
        row(
            "size zstd",
            bytes(a.size_zstd_bytes),
            bytes(b.size_zstd_bytes),
            times(a.size_zstd_bytes as f64, b.size_zstd_bytes as f64, "smaller", "larger"),
        ),
        row(
            "params",
            a.params.to_string(),
            b.params.to_string(),
            times(a.params as f64, b.params as f64, "fewer", "more"),
        ),
        row(
            "non-zero",
            a.nonzeros.to_string(),
            b.nonzeros.to_string(),
            times(a.nonzeros as f64, b.nonzeros as f64, "fewer", "more"),
        ),
    ];
    let points: fn(f64) -> String = |d| format!("{:+.2} pt", d * 100.0);
    let scores = [
        ("accuracy", a.accuracy, b.accuracy, Delta::higher(points)),
        ("macro-F1", a.macro_f1, b.macro_f1, Delta::higher(points)),
        ("rmse", a.rmse, b.rmse, Delta::lower(|d| format!("{d:+.4}"))),
    ];
    for (label, x, y, how) in scores {
        if x.is_some() || y.is_some() {
            rows.push(row(label, score(x), score(y), how.between(x, y)));
        }
    }
    for (label, x, y) in [
        ("p50 ms b1", a.p50_ms_batch1, b.p50_ms_batch1),
        ("p50 ms b64", a.p50_ms_batch64, b.p50_ms_batch64),
    ] {
        rows.push(row(
            label,
            format!("{x:.3}"),
            format!("{y:.3}"),
            times(x, y, "faster", "slower"),
        ));
    }
    rows
}

/// How a figure changed, coloured by whether that is better.
pub fn change_span<'a>(change: Option<&Change>, theme: &Theme) -> Span<'a> {
    let Some(change) = change else {
        return Span::raw("");
    };
    let style = match change.better {
        Some(true) => theme.ok,
        Some(false) => theme.warn,
        None => theme.muted,
    };
    Span::styled(format!("  {}", change.text), style)
}

/// The detail pane's lines for compressed version `m`.
pub fn detail_lines<'a>(m: &VersionManifest, c: &Compression, theme: &'a Theme) -> Vec<Line<'a>> {
    let r = &c.report;
    let parent = m
        .draft
        .parent
        .as_ref()
        .map_or_else(|| "parent".to_owned(), |p| format!("v{}", p.version));
    let child = format!("v{}", m.version);
    let mut lines = vec![
        kv("method", c.method.to_string(), theme),
        kv("measured", measured(c), theme),
        kv("compute", c.compute_note.clone(), theme),
        Line::styled(
            format!(
                "{:<LABEL$}{parent:>VALUE$}{child:>VALUE$}  {child} against {parent}",
                ""
            ),
            theme.header,
        ),
    ];
    for row in figure_rows(&r.parent, &r.child) {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<LABEL$}", row.label), theme.muted),
            Span::raw(format!("{:>VALUE$}{:>VALUE$}", row.first, row.second)),
            change_span(row.change.as_ref(), theme),
        ]));
    }
    lines.extend(tensor_lines(c, theme));
    lines.extend(r.notes.iter().map(|n| kv("note", n.clone(), theme)));
    lines
}

/// Where the comparison was measured, in a few words.
fn measured(c: &Compression) -> String {
    let r = &c.report;
    format!("{} {} · {} rows · {}", r.dataset, r.split, r.rows, r.device)
}

/// Where the comparison was measured, short enough for a compare column.
fn on(c: &Compression) -> String {
    let r = &c.report;
    format!("{} {}, {}", r.dataset, r.split, r.device)
}

/// One line per weight tensor (the first few): shape, share of zeros, stored precision.
fn tensor_lines<'a>(c: &Compression, theme: &'a Theme) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = c
        .layers
        .iter()
        .take(MAX_TENSORS)
        .enumerate()
        .map(|(i, layer)| {
            let shape: Vec<String> = layer.shape.iter().map(ToString::to_string).collect();
            let key = if i == 0 { "tensors" } else { "" };
            let text = format!(
                "{} {} · {:.1}% zero · {}",
                layer.name,
                shape.join("x"),
                layer.sparsity() * 100.0,
                layer.precision
            );
            kv(key, text, theme)
        })
        .collect();
    if let Some(more) = c.layers.len().checked_sub(MAX_TENSORS).filter(|n| *n > 0) {
        lines.push(Line::styled(format!("{:<LABEL$}… {more} more", ""), theme.muted));
    }
    lines
}

/// What a compressed version was made from (`int8 of v3`); `None` for any other version.
pub fn origin(m: &VersionManifest) -> Option<String> {
    let parent = m.draft.parent.as_ref().map(|p| p.version);
    m.draft.compression.as_ref().map(|c| c.summary(parent))
}

/// `child`'s compression record, when `parent` is the version it was compressed from.
fn child_of<'a>(child: &'a VersionManifest, parent: &VersionManifest) -> Option<&'a Compression> {
    let link = child.draft.parent.as_ref()?;
    let is_parent = link.model == parent.model && link.version == parent.version;
    child.draft.compression.as_ref().filter(|_| is_parent)
}

/// The report figures of two versions side by side, when there is a fair comparison: one is
/// the compressed child of the other (both measured by the child's job, with the change), or
/// both are compressed (each as its own job measured it, so no change is claimed). The first
/// row says where each side was measured.
pub fn compare_rows(a: &VersionManifest, b: &VersionManifest) -> Vec<FigureRow> {
    let (ca, cb) = (a.draft.compression.as_ref(), b.draft.compression.as_ref());
    let (first, second, one_job, where_a, where_b) = if let Some(c) = child_of(b, a) {
        (&c.report.parent, &c.report.child, true, on(c), on(c))
    } else if let Some(c) = child_of(a, b) {
        (&c.report.child, &c.report.parent, true, on(c), on(c))
    } else if let (Some(x), Some(y)) = (ca, cb) {
        (&x.report.child, &y.report.child, false, on(x), on(y))
    } else {
        return Vec::new();
    };
    let mut rows = vec![FigureRow {
        label: "measured",
        first: where_a,
        second: where_b,
        change: None,
    }];
    rows.extend(figure_rows(first, second).into_iter().map(|row| FigureRow {
        change: row.change.filter(|_| one_job),
        ..row
    }));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_worded_by_direction() {
        let change = |c: Option<Change>| c.map(|c| (c.text, c.better));
        assert_eq!(
            change(times(4.0, 1.0, "smaller", "larger")),
            Some(("4.00x smaller".into(), Some(true)))
        );
        assert_eq!(
            change(times(1.0, 2.0, "faster", "slower")),
            Some(("2.00x slower".into(), Some(false)))
        );
        assert_eq!(change(times(3.0, 3.0, "fewer", "more")), Some(("same".into(), None)));
        assert_eq!(change(times(0.0, 3.0, "fewer", "more")), None);
        let points = Delta::higher(|d| format!("{:+.2} pt", d * 100.0));
        assert_eq!(
            change(points.between(Some(0.912), Some(0.91))),
            Some(("-0.20 pt".into(), Some(false)))
        );
        assert_eq!(change(points.between(None, Some(0.91))), None);
        let rmse = Delta::lower(|d| format!("{d:+.4}"));
        assert_eq!(
            change(rmse.between(Some(0.9), Some(0.8))),
            Some(("-0.1000".into(), Some(true)))
        );
    }
}
