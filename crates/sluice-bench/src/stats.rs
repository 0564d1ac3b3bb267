//! Turning raw samples of one measured phase into the numbers a table row shows.

use std::time::Duration;

/// Latency samples of one phase in microseconds, sorted so percentiles are index look-ups.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    sorted_us: Vec<u32>,
}

impl Latencies {
    /// Sorts the samples once; every percentile after that is O(1).
    pub fn from_unsorted(mut samples_us: Vec<u32>) -> Self {
        samples_us.sort_unstable();
        Self {
            sorted_us: samples_us,
        }
    }

    /// Nearest-rank percentile (`p` in 0..=100): the smallest sample that at least
    /// `p` percent of samples do not exceed. `None` when there are no samples.
    pub fn percentile_us(&self, p: f64) -> Option<u32> {
        let n = self.sorted_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted_us.get(rank.clamp(1, n) - 1).copied()
    }
}

/// Converts a duration to whole microseconds, saturating rather than wrapping (a sample over
/// 71 minutes cannot happen under the per-request timeout, but must not corrupt the stats).
pub fn duration_us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// What one scenario measured, ready to be printed as a table row.
#[derive(Debug, Clone)]
pub struct ScenarioSummary {
    pub name: String,
    /// Requests finished in the measured phase, failed ones included.
    pub requests: u64,
    pub concurrency: usize,
    /// Successful requests per second of wall time of the measured phase.
    pub req_per_sec: f64,
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
    /// Only streaming scenarios measure time to first byte.
    pub p50_ttfb_us: Option<u32>,
    pub errors: u64,
    /// CPU time Sluice spent per request in the measured phase (µs); `None` off Linux.
    pub sluice_cpu_us: Option<f64>,
    /// CPU time the fake upstream spent per request (µs).
    pub mock_cpu_us: Option<f64>,
}

/// Sluice's throughput as a percentage of the direct throughput.
pub fn throughput_ratio_percent(direct: &ScenarioSummary, sluice: &ScenarioSummary) -> Option<f64> {
    (direct.req_per_sec > 0.0).then(|| sluice.req_per_sec / direct.req_per_sec * 100.0)
}

/// Median latency Sluice adds on top of going direct, in (signed) microseconds.
pub fn added_p50_us(direct: &ScenarioSummary, sluice: &ScenarioSummary) -> Option<i64> {
    Some(i64::from(sluice.p50_us?) - i64::from(direct.p50_us?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(req_per_sec: f64, p50_us: Option<u32>) -> ScenarioSummary {
        ScenarioSummary {
            name: "x".into(),
            requests: 10,
            concurrency: 1,
            req_per_sec,
            p50_us,
            p99_us: None,
            p50_ttfb_us: None,
            sluice_cpu_us: None,
            mock_cpu_us: None,
            errors: 0,
        }
    }

    #[test]
    fn percentiles_use_nearest_rank_on_unsorted_input() {
        // 1..=100 shuffled: p50 is the 50th value, p99 the 99th, p100 the max.
        let samples: Vec<u32> = (1..=100).rev().collect();
        let lat = Latencies::from_unsorted(samples);
        assert_eq!(lat.percentile_us(50.0), Some(50));
        assert_eq!(lat.percentile_us(99.0), Some(99));
        assert_eq!(lat.percentile_us(100.0), Some(100));
        assert_eq!(lat.percentile_us(0.0), Some(1));
    }

    #[test]
    fn percentiles_of_few_samples_pick_an_actual_sample() {
        let lat = Latencies::from_unsorted(vec![30, 10, 20]);
        assert_eq!(lat.percentile_us(50.0), Some(20));
        assert_eq!(lat.percentile_us(99.0), Some(30));
        let one = Latencies::from_unsorted(vec![7]);
        assert_eq!(one.percentile_us(50.0), Some(7));
        assert_eq!(one.percentile_us(99.0), Some(7));
    }

    #[test]
    fn no_samples_means_no_percentile() {
        assert_eq!(Latencies::default().percentile_us(50.0), None);
    }

    #[test]
    fn comparisons_handle_missing_data() {
        let direct = summary(1000.0, Some(2_000));
        let sluice = summary(800.0, Some(2_500));
        assert_eq!(throughput_ratio_percent(&direct, &sluice), Some(80.0));
        assert_eq!(added_p50_us(&direct, &sluice), Some(500));
        assert_eq!(added_p50_us(&sluice, &direct), Some(-500));
        let dead = summary(0.0, None);
        assert_eq!(throughput_ratio_percent(&dead, &sluice), None);
        assert_eq!(added_p50_us(&dead, &sluice), None);
    }

    #[test]
    fn durations_saturate_instead_of_wrapping() {
        assert_eq!(duration_us(Duration::from_micros(1_234)), 1_234);
        assert_eq!(duration_us(Duration::from_secs(100_000)), u32::MAX);
    }
}
