//! Statistics over samples: medians, percentiles, spread, FWQ noise and CDFs.
//! Pure functions, no I/O.

/// Median of `v` (mean of the two middle values for an even count).
/// `None` for an empty slice.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let s = sorted(v);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// A sorted copy of `v` (NaN-free input assumed; NaNs sort last).
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// The `p`-th percentile (0..=100) of already sorted samples, nearest rank.
pub fn percentile_sorted(s: &[f64], p: f64) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

/// Summary of one sample set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation.
    pub stddev: f64,
    pub median: f64,
    pub p99: f64,
}

impl Summary {
    /// `None` for an empty slice.
    pub fn of(v: &[f64]) -> Option<Summary> {
        let s = sorted(v);
        let n = s.len();
        if n == 0 {
            return None;
        }
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = s.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        Some(Summary {
            n,
            min: s[0],
            max: s[n - 1],
            mean,
            stddev: var.sqrt(),
            median: median(&s)?,
            p99: percentile_sorted(&s, 99.0)?,
        })
    }
}

/// FWQ statistics of one run of quantum lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fwq {
    pub summary: Summary,
    pub max_over_min: f64,
    /// (sum - n*min) / sum, in percent: the share of time not spent on work.
    pub noise_pct: f64,
}

impl Fwq {
    pub fn of(v: &[f64]) -> Option<Fwq> {
        let summary = Summary::of(v)?;
        let sum: f64 = v.iter().sum();
        if summary.min <= 0.0 || sum <= 0.0 {
            return None;
        }
        Some(Fwq {
            summary,
            max_over_min: summary.max / summary.min,
            noise_pct: (sum - summary.n as f64 * summary.min) / sum * 100.0,
        })
    }
}

/// FWQ noise net of `steal_us` microseconds the host took the CPU away:
/// (sum - steal - n*min) / (sum - steal), in percent, at least 0. `None`
/// for no samples.
pub fn net_noise_pct(v: &[f64], steal_us: f64) -> Option<f64> {
    let f = Fwq::of(v)?;
    let sum: f64 = v.iter().sum::<f64>() - steal_us.max(0.0);
    if sum <= 0.0 {
        return Some(0.0);
    }
    Some(((sum - f.summary.n as f64 * f.summary.min) / sum * 100.0).max(0.0))
}

/// Empirical CDF: (value, fraction of samples <= value), at most `points`
/// points spread evenly over the ranks, always including min and max.
pub fn cdf(v: &[f64], points: usize) -> Vec<(f64, f64)> {
    let s = sorted(v);
    let n = s.len();
    if n == 0 || points == 0 {
        return Vec::new();
    }
    let step = (n as f64 / points as f64).max(1.0);
    let mut out = Vec::with_capacity(points + 1);
    let mut i = 0.0;
    while (i as usize) < n {
        let k = i as usize;
        out.push((s[k], (k + 1) as f64 / n as f64));
        i += step;
    }
    if out.last().map(|p| p.1) != Some(1.0) {
        out.push((s[n - 1], 1.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentile_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&s, 99.0), Some(99.0));
        assert_eq!(percentile_sorted(&s, 100.0), Some(100.0));
        assert_eq!(percentile_sorted(&s, 0.0), Some(1.0));
    }

    #[test]
    fn summary_values() {
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.min, 2.0);
        assert_eq!(s.max, 9.0);
        assert_eq!(s.mean, 5.0);
        assert_eq!(s.stddev, 2.0);
        assert_eq!(s.median, 4.5);
    }

    #[test]
    fn net_noise_takes_steal_time_out() {
        let v = [10.0, 10.0, 30.0];
        // 20 of 50 us above the minimum: 40 %; 10 us stolen: 10 of 40, 25 %.
        assert!((net_noise_pct(&v, 0.0).unwrap() - 40.0).abs() < 1e-9);
        assert!((net_noise_pct(&v, 10.0).unwrap() - 25.0).abs() < 1e-9);
        assert_eq!(net_noise_pct(&v, 20.0), Some(0.0));
        assert_eq!(net_noise_pct(&v, 1000.0), Some(0.0));
        assert_eq!(net_noise_pct(&[], 1.0), None);
    }

    #[test]
    fn fwq_noise_is_share_above_min() {
        // 9 quanta of 100 and one of 200: sum 1100, n*min 1000.
        let mut v = vec![100.0; 9];
        v.push(200.0);
        let f = Fwq::of(&v).unwrap();
        assert!((f.noise_pct - 100.0 / 1100.0 * 100.0).abs() < 1e-9);
        assert_eq!(f.max_over_min, 2.0);
        let quiet = Fwq::of(&[5.0; 10]).unwrap();
        assert_eq!(quiet.noise_pct, 0.0);
    }

    #[test]
    fn cdf_ends_at_one_and_is_monotonic() {
        let v: Vec<f64> = (0..1000).rev().map(f64::from).collect();
        let c = cdf(&v, 50);
        assert_eq!(c.first().unwrap().0, 0.0);
        assert_eq!(*c.last().unwrap(), (999.0, 1.0));
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert!(c.len() <= 52);
    }
}
