//! Reading `/metrics` as a scraper does: the OpenMetrics text parsed by a parser that refuses
//! invalid text, and sums over a family's samples.

use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};

pub type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// Parses an exposition, panicking with the text when it is not valid OpenMetrics.
pub fn parse(text: &str) -> Exposition {
    openmetrics_parser::openmetrics::parse_openmetrics(text)
        .unwrap_or_else(|e| panic!("invalid OpenMetrics: {e:?}\n{text}"))
}

/// The sum over the samples of `family` whose labels include `labels`: counter and gauge
/// values, histogram counts (or sums, with `sum`).
pub fn total(exp: &Exposition, family: &str, labels: &[(&str, &str)], sum: bool) -> f64 {
    let Some(f) = exp.families.get(family) else {
        return 0.0;
    };
    f.iter_samples()
        .filter(|s| {
            let set = s.get_labelset().unwrap();
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|s| match &s.value {
            OpenMetricsValue::Counter(c) => c.value.as_f64(),
            OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => n.as_f64(),
            OpenMetricsValue::Histogram(h) if sum => h.sum.as_ref().unwrap().as_f64(),
            OpenMetricsValue::Histogram(h) => h.count.unwrap() as f64,
            OpenMetricsValue::Info => 1.0,
            other => panic!("unexpected {other:?}"),
        })
        .sum()
}
