//! The statistics of a comparison: mean and sample standard deviation over seeds, and the
//! paired t-test of a config against its baseline over seeds that share a data split.
//!
//! With the paper's 2 to 5 seeds a t-test has few degrees of freedom: the 95% interval is
//! wide and says so. Checked against SciPy (`scripts/reference/paired_stats.py`).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean and sample standard deviation (None for fewer than two values).
pub fn mean_sd(values: &[f64]) -> Option<(f64, Option<f64>)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.len() > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, sd))
}

/// A paired comparison: differences candidate - baseline over pairs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Paired {
    pub n: usize,
    pub mean_difference: f64,
    /// 95% confidence interval of the mean difference (None with fewer than two pairs).
    pub ci95: Option<(f64, f64)>,
    pub t: Option<f64>,
    /// Two-sided p-value of the paired t-test (None with fewer than two pairs).
    pub p: Option<f64>,
}

/// The name of the test, for reports.
pub const TEST_NAME: &str = "paired t-test over seeds (pairs share seed and data split), two-sided; 95% CI from Student's t with n-1 degrees of freedom";

/// Paired t-test of `candidate` against `baseline` (same length, pair by pair).
pub fn paired_t(candidate: &[f64], baseline: &[f64]) -> Option<Paired> {
    if candidate.len() != baseline.len() || candidate.is_empty() {
        return None;
    }
    let differences: Vec<f64> = candidate.iter().zip(baseline).map(|(c, b)| c - b).collect();
    let n = differences.len();
    let (mean, sd) = mean_sd(&differences)?;
    let Some(sd) = sd else {
        return Some(Paired { n, mean_difference: mean, ci95: None, t: None, p: None });
    };
    if sd == 0.0 {
        // Every pair differs by the same amount: no spread to test against.
        let p = if mean == 0.0 { 1.0 } else { 0.0 };
        return Some(Paired { n, mean_difference: mean, ci95: Some((mean, mean)), t: None, p: Some(p) });
    }
    let df = (n - 1) as f64;
    let t_dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let se = sd / (n as f64).sqrt();
    let t = mean / se;
    let p = 2.0 * (1.0 - t_dist.cdf(t.abs()));
    let q = t_dist.inverse_cdf(0.975);
    Some(Paired { n, mean_difference: mean, ci95: Some((mean - q * se, mean + q * se)), t: Some(t), p: Some(p) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        candidate: Vec<f64>,
        baseline: Vec<f64>,
        mean_difference: f64,
        t: f64,
        p: f64,
        ci_low: f64,
        ci_high: f64,
    }

    /// Cases computed by SciPy (`scripts/reference/paired_stats.py`).
    #[test]
    fn paired_t_agrees_with_scipy() {
        let text = include_str!("../../tests/vectors/paired_stats.json");
        let cases: Vec<Case> = serde_json::from_str(text).unwrap();
        assert!(cases.len() >= 4);
        for c in cases {
            let r = paired_t(&c.candidate, &c.baseline).unwrap();
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
            assert!(close(r.mean_difference, c.mean_difference));
            assert!(close(r.t.unwrap(), c.t), "t {} vs {}", r.t.unwrap(), c.t);
            assert!((r.p.unwrap() - c.p).abs() < 1e-9, "p {} vs {}", r.p.unwrap(), c.p);
            let (low, high) = r.ci95.unwrap();
            assert!(
                close(low, c.ci_low) && close(high, c.ci_high),
                "ci ({low}, {high}) vs ({}, {})",
                c.ci_low,
                c.ci_high
            );
        }
    }

    #[test]
    fn a_hand_computed_case() {
        // d = (1, 2, 3): mean 2, sd 1, se 1/sqrt(3), t = 2 sqrt(3) = 3.4641, df 2.
        let r = paired_t(&[11.0, 12.0, 13.0], &[10.0, 10.0, 10.0]).unwrap();
        assert!((r.t.unwrap() - 2.0 * 3f64.sqrt()).abs() < 1e-12);
        // t_{0.975, 2} = 4.302653; half-width 4.302653 / sqrt(3) = 2.484138.
        let (low, high) = r.ci95.unwrap();
        assert!((high - 2.0 - 2.484_138).abs() < 1e-5 && (2.0 - low - 2.484_138).abs() < 1e-5);
        assert!((r.p.unwrap() - 0.074_179).abs() < 1e-5);
    }

    #[test]
    fn degenerate_cases_are_explicit() {
        assert_eq!(paired_t(&[1.0], &[0.5]).unwrap().p, None, "one pair: no test");
        assert_eq!(paired_t(&[1.0, 2.0], &[1.0, 2.0]).unwrap().p, Some(1.0), "identical runs");
        assert!(paired_t(&[1.0], &[]).is_none());
        assert_eq!(mean_sd(&[2.0, 4.0]), Some((3.0, Some(2f64.sqrt()))));
    }
}
