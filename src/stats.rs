//! Statistics, in one place: latency quantiles from an HDR histogram (over a
//! whole run, or a sliding window for a node's `status`), and confidence
//! intervals by batch means with Student's t from `statrs`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Latencies, recorded in microseconds (1 µs to 10 minutes, 3 significant
/// digits), read out in milliseconds.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// An empty record.
    pub fn new() -> Self {
        Latencies(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"))
    }

    /// Record one latency of `us` microseconds (clamped into the range).
    pub fn record_us(&mut self, us: u64) {
        let _ = self.0.record(us.clamp(1, 600_000_000));
    }

    /// Record one latency of `ms` milliseconds.
    pub fn record_ms(&mut self, ms: f64) {
        self.record_us((ms * 1e3).round().max(1.0) as u64);
    }

    /// Add every latency of `other`.
    pub fn add(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    /// How many were recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// True if none were.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q` quantile in ms (0 if empty).
    pub fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1e3
    }
}

/// Operations answered lately: how many, and their latency, over the last
/// `span`, a second at a time (so the count is exact at any rate and the
/// memory is bounded by the span, not the rate: one histogram a second).
#[derive(Debug)]
pub struct Window {
    span: Duration,
    /// (start of a second, operations answered in it, their latencies in
    /// µs), oldest first.
    seconds: VecDeque<(Instant, u64, Histogram<u32>)>,
    /// Histograms of seconds gone, to reuse.
    spare: Vec<Histogram<u32>>,
}

impl Window {
    /// Latencies kept from 1 µs to 60 s (longer ones count as 60 s), three
    /// significant digits.
    const MAX_US: u64 = 60_000_000;

    /// An empty window looking `span` back.
    pub fn new(span: Duration) -> Self {
        Window {
            span,
            seconds: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// One operation answered at `now`, `took` after it was asked.
    pub fn record(&mut self, now: Instant, took: Duration) {
        self.forget(now);
        let us = (took.as_micros() as u64).clamp(1, Self::MAX_US);
        let fresh = match self.seconds.back() {
            Some((start, _, _)) => now.duration_since(*start) >= Duration::from_secs(1),
            None => true,
        };
        if fresh {
            let h = self.spare.pop().unwrap_or_else(|| {
                Histogram::new_with_bounds(1, Self::MAX_US, 3).expect("valid bounds")
            });
            self.seconds.push_back((now, 0, h));
        }
        let (_, n, h) = self.seconds.back_mut().expect("a second is open");
        *n += 1;
        let _ = h.record(us);
    }

    /// Drop the seconds that ended more than the span before `now`.
    fn forget(&mut self, now: Instant) {
        while let Some((start, _, _)) = self.seconds.front() {
            if now.duration_since(*start) <= self.span {
                break;
            }
            let (_, _, mut h) = self.seconds.pop_front().expect("not empty");
            h.reset();
            self.spare.push(h);
        }
    }

    /// Operations answered in the span before `now`, and their median and
    /// 99th percentile in µs (zeros if none).
    pub fn summary(&mut self, now: Instant) -> (u64, u64, u64) {
        self.forget(now);
        let Some((_, _, first)) = self.seconds.front() else {
            return (0, 0, 0);
        };
        let mut all = first.clone();
        for (_, _, h) in self.seconds.iter().skip(1) {
            let _ = all.add(h);
        }
        let n = self.seconds.iter().map(|(_, n, _)| n).sum();
        (n, all.value_at_quantile(0.5), all.value_at_quantile(0.99))
    }
}

impl Default for Window {
    /// The window a node's `status` reports on.
    fn default() -> Self {
        Window::new(crate::net::CLIENT_WINDOW)
    }
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom
/// (its 97.5th percentile).
pub fn t975(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df.max(1) as f64)
        .map(|t| t.inverse_cdf(0.975))
        .unwrap_or(1.96)
}

/// Mean and 95% confidence interval of a series by batch means: the series is
/// cut into `batches` consecutive batches whose means are treated as
/// independent (right for samples correlated in time, like probes through an
/// outage). The interval comes from the batches' own spread, clamped to
/// [`lo`, `hi`].
pub fn batch_means(samples: &[f64], batches: usize, lo: f64, hi: f64) -> (f64, [f64; 2]) {
    if samples.is_empty() {
        return (0.0, [lo, hi]);
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let b = batches.clamp(2, samples.len().max(2));
    let size = samples.len() / b;
    if size == 0 {
        return (mean, [lo, hi]);
    }
    let means: Vec<f64> = (0..b)
        .map(|i| {
            let chunk = &samples[i * size..(i + 1) * size];
            chunk.iter().sum::<f64>() / chunk.len() as f64
        })
        .collect();
    let m = means.iter().sum::<f64>() / b as f64;
    let var = means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (b - 1) as f64;
    let half = t975(b - 1) * (var / b as f64).sqrt();
    (mean, [(mean - half).max(lo), (mean + half).min(hi)])
}

/// The same for a 0/1 series (a fraction, in [0, 1]).
pub fn fraction_batch_means(samples: &[bool], batches: usize) -> (f64, [f64; 2]) {
    let xs: Vec<f64> = samples.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
    batch_means(&xs, batches, 0.0, 1.0)
}

/// The median of `values` (0 if empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_window_gives_count_median_and_tail_and_forgets_what_is_old() {
        use std::time::{Duration, Instant};
        let mut w = super::Window::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.summary(t0), (0, 0, 0));
        for ms in 1..=100 {
            w.record(t0, Duration::from_millis(ms));
        }
        let (n, p50, p99) = w.summary(t0);
        assert_eq!(n, 100);
        assert!((50_000..=50_100).contains(&p50), "{p50}");
        assert!((99_000..=99_100).contains(&p99), "{p99}");
        // Five seconds on, a burst of fast ones: every second in the span
        // counts, exactly.
        let t5 = t0 + Duration::from_secs(5);
        for _ in 0..10_000 {
            w.record(t5, Duration::from_micros(7));
        }
        let (n, p50, _) = w.summary(t5);
        assert_eq!((n, p50), (10_100, 7));
        // Past the span the first second is gone, the burst stays.
        let (n, p50, p99) = w.summary(t0 + Duration::from_secs(11));
        assert_eq!((n, p50, p99), (10_000, 7, 7));
        assert_eq!(w.summary(t0 + Duration::from_secs(16)), (0, 0, 0));
    }

    use super::*;

    #[test]
    fn t_quantiles_match_the_printed_tables() {
        // Values from any Student's t table (two-sided 95%).
        for (df, t) in [
            (1, 12.706),
            (4, 2.776),
            (9, 2.262),
            (19, 2.093),
            (29, 2.045),
        ] {
            assert!((t975(df) - t).abs() < 1e-3, "df {df}: {}", t975(df));
        }
        assert!((t975(100_000) - 1.96).abs() < 1e-3);
    }

    #[test]
    fn batch_means_of_independent_batches_match_the_textbook_interval() {
        // Batches of one sample each: the usual t interval of the mean.
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let (m, [lo, hi]) = batch_means(&xs, 8, f64::MIN, f64::MAX);
        let sd = (32.0f64 / 7.0).sqrt();
        let half = t975(7) * sd / 8f64.sqrt();
        assert!((m - 5.0).abs() < 1e-12);
        assert!((lo - (5.0 - half)).abs() < 1e-9 && (hi - (5.0 + half)).abs() < 1e-9);
    }

    #[test]
    fn correlated_outages_widen_the_interval() {
        let spread: Vec<bool> = (0..1000).map(|i| i % 10 != 0).collect();
        let bursty: Vec<bool> = (0..1000).map(|i| (i / 50) % 10 != 0).collect();
        let (m1, [a, b]) = fraction_batch_means(&spread, 20);
        let (m2, [c, d]) = fraction_batch_means(&bursty, 20);
        assert!((m1 - 0.9).abs() < 1e-9 && (m2 - 0.9).abs() < 1e-9);
        assert!(d - c > b - a);
    }

    #[test]
    fn latencies_read_back_within_the_histograms_precision() {
        let mut l = Latencies::new();
        for ms in 1..=100 {
            l.record_ms(ms as f64);
        }
        assert_eq!(l.len(), 100);
        assert!((l.ms(0.5) - 50.0).abs() <= 0.05, "{}", l.ms(0.5));
        assert!((l.ms(0.99) - 99.0).abs() <= 0.1, "{}", l.ms(0.99));
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
