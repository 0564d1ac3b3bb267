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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_largest() {
        assert_eq!(sparkline(&[]), "0,23 120,23");
        assert_eq!(sparkline(&[0.0, 2.0, 1.0]), "0.0,23.0 60.0,1.0 120.0,12.0");
        assert_eq!(sparkline(&[0.0, 0.0]), "0.0,23.0 120.0,23.0");
    }
}
