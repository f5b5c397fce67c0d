//! Percentiles computed the way k6's `Trend` metric computes `p(N)`.

/// k6's trend percentile: sort the samples, take the fractional rank `p × (count − 1)` and
/// interpolate linearly between its neighbours (k6 `TrendSink.P`). `samples` is sorted in place.
/// Returns 0 for no samples, as k6 does.
pub fn percentile(samples: &mut [u64], fraction: f64) -> f64 {
    match samples.len() {
        0 => 0.0,
        1 => samples[0] as f64,
        count => {
            if !samples.is_sorted() {
                samples.sort_unstable();
            }
            let rank = fraction.clamp(0.0, 1.0) * (count - 1) as f64;
            let low = samples[rank.floor() as usize] as f64;
            let high = samples[rank.ceil() as usize] as f64;
            low + (high - low) * (rank - rank.floor())
        }
    }
}

/// The percentile of microsecond samples, in milliseconds.
pub fn percentile_ms(samples_us: &mut [u64], fraction: f64) -> f64 {
    percentile(samples_us, fraction) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: our p99 equals k6's on the same samples. Method: 1..=100 gives rank 98.01 between
    /// 99 and 100; a single sample and no samples follow k6's special cases.
    #[test]
    fn percentile_interpolates_like_k6() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        assert!((percentile(&mut samples, 0.99) - 99.01).abs() < 1e-9);
        assert!((percentile(&mut samples, 0.5) - 50.5).abs() < 1e-9);
        assert_eq!(percentile(&mut samples, 1.0), 100.0);
        assert_eq!(percentile(&mut [7], 0.99), 7.0);
        assert_eq!(percentile(&mut [], 0.99), 0.0);
    }
}
