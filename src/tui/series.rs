//! Bounded, downsampled time series for live charts.
//!
//! A [`Series`] keeps the whole history as at most `capacity` buckets (min, max, sum and
//! count of consecutive points); when full, neighbouring buckets merge pairwise and the
//! bucket width doubles, so memory stays fixed and a push costs O(1) amortised. A ring of the
//! most recent raw points serves the "recent" zoom. Drawing asks for at most two points per
//! terminal column (each column's min and max), so a frame costs the same for a thousand
//! points or a million. Non-finite values are skipped: missing data is a gap, never a zero.

use std::collections::VecDeque;

/// Buckets kept for the full history.
pub const DEFAULT_BUCKETS: usize = 2048;
/// Raw points kept for the recent window.
pub const DEFAULT_RECENT: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    x0: f64,
    x1: f64,
    min: f64,
    max: f64,
    sum: f64,
    n: u64,
}

impl Bucket {
    fn point(x: f64, y: f64) -> Self {
        Self {
            x0: x,
            x1: x,
            min: y,
            max: y,
            sum: y,
            n: 1,
        }
    }

    fn merge(&mut self, other: &Bucket) {
        self.x1 = other.x1;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.n += other.n;
    }
}

/// One bounded series of `(x, y)` points with increasing `x`.
#[derive(Debug, Clone)]
pub struct Series {
    buckets: Vec<Bucket>,
    width: u64,
    capacity: usize,
    recent: VecDeque<(f64, f64)>,
    recent_capacity: usize,
    len: u64,
}

impl Default for Series {
    fn default() -> Self {
        Self::new(DEFAULT_BUCKETS, DEFAULT_RECENT)
    }
}

/// Which part of the history to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zoom {
    /// Everything since the start.
    #[default]
    Full,
    /// The most recent raw points only.
    Recent,
}

impl Series {
    /// A series keeping `buckets` buckets (at least 2) and `recent` raw points.
    pub fn new(buckets: usize, recent: usize) -> Self {
        Self {
            buckets: Vec::with_capacity(buckets.max(2)),
            width: 1,
            capacity: buckets.max(2),
            recent: VecDeque::with_capacity(recent),
            recent_capacity: recent,
            len: 0,
        }
    }

    /// Points pushed so far (including those folded into buckets).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The last point pushed.
    pub fn last(&self) -> Option<(f64, f64)> {
        self.recent.back().copied()
    }

    /// Appends a point; non-finite `y` is dropped.
    pub fn push(&mut self, x: f64, y: f64) {
        if !y.is_finite() || !x.is_finite() {
            return;
        }
        self.len += 1;
        if self.recent_capacity > 0 {
            if self.recent.len() == self.recent_capacity {
                self.recent.pop_front();
            }
            self.recent.push_back((x, y));
        }
        match self.buckets.last_mut() {
            Some(last) if last.n < self.width => last.merge(&Bucket::point(x, y)),
            _ => self.buckets.push(Bucket::point(x, y)),
        }
        if self.buckets.len() > self.capacity {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let merged: Vec<Bucket> = self
            .buckets
            .chunks(2)
            .map(|pair| {
                let mut b = pair[0];
                if let Some(second) = pair.get(1) {
                    b.merge(second);
                }
                b
            })
            .collect();
        self.buckets = merged;
        self.width *= 2;
    }

    /// The x range of what `zoom` shows.
    pub fn x_range(&self, zoom: Zoom) -> Option<(f64, f64)> {
        match zoom {
            Zoom::Full => Some((self.buckets.first()?.x0, self.buckets.last()?.x1)),
            Zoom::Recent => Some((self.recent.front()?.0, self.recent.back()?.0)),
        }
    }

    /// At most `2 * columns` points tracing the series' envelope within `[x0, x1]`.
    pub fn envelope(&self, zoom: Zoom, range: (f64, f64), columns: usize) -> Vec<(f64, f64)> {
        let columns = columns.max(1);
        let (x0, x1) = range;
        let span = (x1 - x0).max(f64::EPSILON);
        let column_of = |x: f64| (((x - x0) / span) * (columns - 1) as f64).round() as i64;
        let mut out = Vec::with_capacity(columns * 2);
        let mut current: Option<(i64, Bucket)> = None;
        let flush = |c: Option<(i64, Bucket)>, out: &mut Vec<(f64, f64)>| {
            if let Some((_, b)) = c {
                let x = (b.x0 + b.x1) / 2.0;
                if b.n == 1 || b.min == b.max {
                    out.push((x, b.min));
                } else {
                    out.push((x, b.min));
                    out.push((x, b.max));
                }
            }
        };
        let mut visit = |b: Bucket, out: &mut Vec<(f64, f64)>| {
            if b.x1 < x0 || b.x0 > x1 {
                return;
            }
            let col = column_of((b.x0 + b.x1) / 2.0);
            match &mut current {
                Some((c, acc)) if *c == col => acc.merge(&b),
                _ => flush(current.replace((col, b)), out),
            }
        };
        match zoom {
            Zoom::Full => self.buckets.iter().for_each(|b| visit(*b, &mut out)),
            Zoom::Recent => self
                .recent
                .iter()
                .for_each(|(x, y)| visit(Bucket::point(*x, *y), &mut out)),
        }
        flush(current, &mut out);
        out
    }
}

/// Exponential moving average state (`alpha` weights the newest value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ema {
    alpha: f64,
    value: Option<f64>,
}

impl Ema {
    /// A fresh average.
    pub fn new(alpha: f64) -> Self {
        Self { alpha, value: None }
    }

    /// Folds in `y` and returns the new average.
    pub fn update(&mut self, y: f64) -> f64 {
        let next = match self.value {
            Some(v) => v + self.alpha * (y - v),
            None => y,
        };
        self.value = Some(next);
        next
    }
}

/// `(min, max)` of the y values, padded a little so flat lines stay visible.
pub fn y_bounds<'a>(points: impl IntoIterator<Item = &'a (f64, f64)>) -> Option<(f64, f64)> {
    let (lo, hi) = points
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, y)| {
            (lo.min(*y), hi.max(*y))
        });
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-3).max(1e-9);
    Some((lo - pad, hi + pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_points_stay_bounded() {
        let mut s = Series::new(1024, 512);
        for i in 0..1_000_000u64 {
            s.push(i as f64, (i % 100) as f64);
        }
        assert_eq!(s.len(), 1_000_000);
        assert!(s.buckets.len() <= 1024);
        let range = s.x_range(Zoom::Full).unwrap_or_default();
        assert_eq!(range, (0.0, 999_999.0));
        let pts = s.envelope(Zoom::Full, range, 80);
        assert!(pts.len() <= 160, "{}", pts.len());
        assert_eq!(y_bounds(&pts).map(|(lo, hi)| (lo < 0.0, hi > 99.0)), Some((true, true)));
    }

    #[test]
    fn recent_zoom_sees_only_the_tail_and_gaps_are_skipped() {
        let mut s = Series::new(16, 4);
        for i in 0..10 {
            s.push(i as f64, if i == 8 { f64::NAN } else { i as f64 });
        }
        assert_eq!(s.x_range(Zoom::Recent), Some((5.0, 9.0)));
        let pts = s.envelope(Zoom::Recent, (5.0, 9.0), 100);
        assert_eq!(pts, vec![(5.0, 5.0), (6.0, 6.0), (7.0, 7.0), (9.0, 9.0)]);
    }

    #[test]
    fn ema_smooths() {
        let mut e = Ema::new(0.5);
        assert_eq!(e.update(2.0), 2.0);
        assert_eq!(e.update(4.0), 3.0);
    }
}
