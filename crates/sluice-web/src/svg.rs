//! Server-drawn SVG: sparklines as `points` of a `<polyline>` in a fixed viewBox, so templates
//! need no inline style and no script (CSS classes colour them).

/// Width and height of a sparkline's viewBox.
pub const SPARK_W: f64 = 120.0;
pub const SPARK_H: f64 = 24.0;

/// The `points` attribute of a sparkline through `values` (evenly spaced, scaled to the
/// largest; a flat zero line for no data). One decimal keeps the markup small.
pub fn sparkline(values: &[f64]) -> String {
    let n = values.len();
    if n == 0 {
        return format!("0,{h} {w},{h}", w = SPARK_W, h = SPARK_H - 1.0);
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let step = if n > 1 { SPARK_W / (n - 1) as f64 } else { 0.0 };
    let mut out = String::with_capacity(n * 10);
    for (i, v) in values.iter().enumerate() {
        let y = if max > 0.0 {
            (SPARK_H - 1.0) - (v.max(0.0) / max) * (SPARK_H - 2.0)
        } else {
            SPARK_H - 1.0
        };
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{:.1},{:.1}", i as f64 * step, y));
    }
    if n == 1 {
        out.push_str(&format!(" {SPARK_W:.1},{:.1}", (SPARK_H - 1.0)));
    }
    out
}

/// One bucket of a health strip: a `<rect>` at `x` in a `0 0 100 12` viewBox, coloured by
/// its class (`idle`: no requests, `ok`, `warn`: some failed, `bad`: most failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripCell {
    pub x: u32,
    pub class: &'static str,
    /// `12:05 UTC · 14 requests, 2 failed` (the rect's `<title>`).
    pub title: String,
}

/// A health strip from (requests, failures) per bucket, oldest first, the first bucket
/// starting at `first_ms` and each `step_ms` wide.
pub fn health_strip(buckets: &[(i64, i64)], first_ms: i64, step_ms: i64) -> Vec<StripCell> {
    buckets
        .iter()
        .enumerate()
        .map(|(i, &(requests, failures))| {
            let class = if requests == 0 {
                "idle"
            } else if failures * 2 > requests {
                "bad"
            } else if failures > 0 {
                "warn"
            } else {
                "ok"
            };
            let start = first_ms + i as i64 * step_ms;
            let time = chrono::DateTime::from_timestamp_millis(start)
                .map(|t| t.format("%H:%M UTC").to_string())
                .unwrap_or_default();
            StripCell {
                x: u32::try_from(i * 5).unwrap_or(0),
                class,
                title: format!("{time} · {requests} / {failures}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_strips_colour_each_bucket_by_its_failures() {
        let cells = health_strip(&[(0, 0), (10, 0), (10, 1), (10, 6)], 0, 300_000);
        let classes: Vec<&str> = cells.iter().map(|c| c.class).collect();
        assert_eq!(classes, ["idle", "ok", "warn", "bad"]);
        assert_eq!(cells[3].x, 15);
        assert_eq!(cells[1].title, "00:05 UTC · 10 / 0");
    }

    #[test]
    fn sparklines_scale_to_the_largest() {
        assert_eq!(sparkline(&[]), "0,23 120,23");
        assert_eq!(sparkline(&[0.0, 2.0, 1.0]), "0.0,23.0 60.0,1.0 120.0,12.0");
        assert_eq!(sparkline(&[0.0, 0.0]), "0.0,23.0 120.0,23.0");
    }
}
