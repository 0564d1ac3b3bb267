//! Rendering results as text a person pastes into BENCHMARKS.md: the machine, the command,
//! one table of scenarios and one of Sluice-versus-direct comparisons.

use std::fmt::Write as _;

use crate::stats::{ScenarioSummary, added_p50_us, throughput_ratio_percent};

/// How tables are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Space-aligned columns for a terminal.
    Plain,
    /// GitHub-flavoured Markdown.
    Markdown,
}

/// Which side of a column its cells hug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table as strings: the header, then rows of the same width.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<(&'static str, Align)>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Renders the table; every line ends with a newline.
    pub fn render(&self, layout: Layout) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (title, _))| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(i))
                    .map(|cell| cell.chars().count())
                    .chain(std::iter::once(title.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self.columns.iter().map(|(t, _)| (*t).to_owned()).collect();
        let mut out = String::new();
        match layout {
            Layout::Plain => {
                out.push_str(&self.line(&header, &widths, "", "  ", ""));
                for row in &self.rows {
                    out.push_str(&self.line(row, &widths, "", "  ", ""));
                }
            }
            Layout::Markdown => {
                out.push_str(&self.line(&header, &widths, "| ", " | ", " |"));
                let rule: Vec<String> = self
                    .columns
                    .iter()
                    .zip(&widths)
                    .map(|((_, align), &w)| match align {
                        Align::Left => "-".repeat(w.max(3)),
                        Align::Right => format!("{}:", "-".repeat(w.max(3) - 1)),
                    })
                    .collect();
                out.push_str(&format!("| {} |\n", rule.join(" | ")));
                for row in &self.rows {
                    out.push_str(&self.line(row, &widths, "| ", " | ", " |"));
                }
            }
        }
        out
    }

    fn line(
        &self,
        cells: &[String],
        widths: &[usize],
        open: &str,
        sep: &str,
        close: &str,
    ) -> String {
        let padded: Vec<String> = self
            .columns
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, ((_, align), &w))| {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                match align {
                    Align::Left => format!("{cell:<w$}"),
                    Align::Right => format!("{cell:>w$}"),
                }
            })
            .collect();
        let body = format!("{open}{}{close}", padded.join(sep));
        format!("{}\n", body.trim_end())
    }
}

/// Milliseconds with two decimals from microseconds, or "-" when not measured.
pub fn ms(us: Option<u32>) -> String {
    us.map_or_else(
        || "-".to_owned(),
        |us| format!("{:.2}", f64::from(us) / 1000.0),
    )
}

/// A signed millisecond difference such as "+0.42 ms", or "-" when not measured.
pub fn signed_ms(us: Option<i64>) -> String {
    us.map_or_else(
        || "-".to_owned(),
        |us| format!("{:+.2} ms", us as f64 / 1000.0),
    )
}

/// CPU microseconds per request, or "-" when not measured or negligible (idle server).
fn cpu(us: Option<f64>) -> String {
    us.filter(|us| *us >= 0.5)
        .map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"))
}

/// The per-scenario table.
pub fn scenario_table(rows: &[ScenarioSummary]) -> Table {
    Table {
        columns: vec![
            ("scenario", Align::Left),
            ("requests", Align::Right),
            ("concurrency", Align::Right),
            ("req/s", Align::Right),
            ("p50 ms", Align::Right),
            ("p99 ms", Align::Right),
            ("p50 TTFB ms", Align::Right),
            ("errors", Align::Right),
            ("proxy CPU µs/req", Align::Right),
            ("mock CPU µs/req", Align::Right),
        ],
        rows: rows
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.requests.to_string(),
                    s.concurrency.to_string(),
                    format!("{:.0}", s.req_per_sec),
                    ms(s.p50_us),
                    ms(s.p99_us),
                    ms(s.p50_ttfb_us),
                    s.errors.to_string(),
                    cpu(s.sluice_cpu_us),
                    cpu(s.mock_cpu_us),
                ]
            })
            .collect(),
    }
}

/// Direct and through-Sluice results of one mode (non-stream or stream).
pub struct Pair<'a> {
    pub direct: &'a ScenarioSummary,
    pub sluice: &'a ScenarioSummary,
}

/// The comparison table: what putting Sluice in front costs, per mode.
pub fn comparison_table(non_stream: &Pair<'_>, stream: &Pair<'_>) -> Table {
    let ratio = |p: &Pair<'_>| {
        throughput_ratio_percent(p.direct, p.sluice)
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}%"))
    };
    let added = |p: &Pair<'_>| signed_ms(added_p50_us(p.direct, p.sluice));
    Table {
        columns: vec![
            ("Sluice vs direct", Align::Left),
            ("non-stream", Align::Right),
            ("stream", Align::Right),
        ],
        rows: vec![
            vec![
                "Sluice/direct throughput".to_owned(),
                ratio(non_stream),
                ratio(stream),
            ],
            vec![
                "Sluice added p50 latency".to_owned(),
                added(non_stream),
                added(stream),
            ],
        ],
    }
}

/// Every Sluice row against the nginx `proxy_pass` row of its mode (the issue-15 targets:
/// throughput ≥ 0.9×, CPU per request ≤ 1.5×, p99 no worse); `None` without nginx rows.
pub fn nginx_table(rows: &[ScenarioSummary]) -> Option<Table> {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let mut out = Vec::new();
    for mode in ["non-stream", "stream"] {
        let Some(nginx) = find(&format!("nginx {mode}")) else {
            continue;
        };
        for proxy in ["sluice", "sluice+key"] {
            let Some(sluice) = find(&format!("{proxy} {mode}")) else {
                continue;
            };
            let times = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "-".to_owned(),
            };
            let diff = |a: Option<u32>, b: Option<u32>| {
                signed_ms(a.zip(b).map(|(a, b)| i64::from(a) - i64::from(b)))
            };
            out.push(vec![
                format!("{proxy} {mode}"),
                times(Some(sluice.req_per_sec), Some(nginx.req_per_sec)),
                diff(sluice.p50_us, nginx.p50_us),
                diff(sluice.p99_us, nginx.p99_us),
                times(sluice.sluice_cpu_us, nginx.sluice_cpu_us),
            ]);
        }
    }
    (!out.is_empty()).then(|| Table {
        columns: vec![
            ("vs nginx proxy_pass", Align::Left),
            ("throughput", Align::Right),
            ("p50", Align::Right),
            ("p99", Align::Right),
            ("proxy CPU/req", Align::Right),
        ],
        rows: out,
    })
}

/// Keys, limits and accounting on (a stored key) vs off (a config key), both through Sluice:
/// `direct` holds the config-key run, `sluice` the stored-key run.
pub fn keys_table(non_stream: &Pair<'_>, stream: &Pair<'_>) -> Table {
    let ratio = |p: &Pair<'_>| {
        throughput_ratio_percent(p.direct, p.sluice)
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}%"))
    };
    let added = |p: &Pair<'_>| signed_ms(added_p50_us(p.direct, p.sluice));
    Table {
        columns: vec![
            ("Stored key vs config key", Align::Left),
            ("non-stream", Align::Right),
            ("stream", Align::Right),
        ],
        rows: vec![
            vec![
                "keys+limits+accounting throughput".to_owned(),
                ratio(non_stream),
                ratio(stream),
            ],
            vec![
                "added p50 latency".to_owned(),
                added(non_stream),
                added(stream),
            ],
        ],
    }
}

/// The scale-out table: shared store and limiter against the embedded ones on one instance,
/// and three instances against one (each pair is (baseline, compared)).
pub fn scale_table(shared_vs_local: &Pair<'_>, three_vs_one: &Pair<'_>) -> Table {
    let ratio = |p: &Pair<'_>| {
        throughput_ratio_percent(p.direct, p.sluice)
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}%"))
    };
    let added = |p: &Pair<'_>| signed_ms(added_p50_us(p.direct, p.sluice));
    Table {
        columns: vec![
            ("Scale-out (stored key, non-stream)", Align::Left),
            ("throughput vs baseline", Align::Right),
            ("added p50 latency", Align::Right),
        ],
        rows: vec![
            vec![
                "PostgreSQL + Redis vs SQLite + memory, one instance".to_owned(),
                ratio(shared_vs_local),
                added(shared_vs_local),
            ],
            vec![
                "three instances vs one (PostgreSQL + Redis)".to_owned(),
                ratio(three_vs_one),
                added(three_vs_one),
            ],
        ],
    }
}

/// Where the numbers came from: enough to reproduce them or to discount them.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub command: String,
    pub machine: String,
    pub load: String,
}

impl Provenance {
    /// Renders the heading lines above the tables.
    pub fn render(&self, layout: Layout) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, so the results are safely ignored.
        match layout {
            Layout::Plain => {
                let _ = writeln!(out, "sluice-bench: sluice-mock direct vs through Sluice");
                let _ = writeln!(out, "command: {}", self.command);
                let _ = writeln!(out, "machine: {}", self.machine);
                let _ = writeln!(out, "load:    {}", self.load);
            }
            Layout::Markdown => {
                let _ = writeln!(out, "- command: `{}`", self.command);
                let _ = writeln!(out, "- machine: {}", self.machine);
                let _ = writeln!(out, "- load: {}", self.load);
            }
        }
        out
    }
}

/// The command line as typed, quoted so it can be pasted back into a shell.
pub fn command_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU count, CPU model and OS, read from the places Linux keeps them.
pub fn describe_machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| cpu_model(&info))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|release| os_pretty_name(&release))
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!(", kernel {}", k.trim()))
        .unwrap_or_default();
    format!("{cpus} CPUs (nproc), {cpu_model}, {os}{kernel}")
}

/// The 1-minute load average now (`/proc/loadavg`), for the provenance of a figure measured on
/// a shared machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

fn os_pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, req_per_sec: f64, p50_us: u32, ttfb: Option<u32>) -> ScenarioSummary {
        ScenarioSummary {
            name: name.into(),
            requests: 20_000,
            concurrency: 32,
            req_per_sec,
            p50_us: Some(p50_us),
            p99_us: Some(p50_us * 3),
            p50_ttfb_us: ttfb,
            errors: 0,
            sluice_cpu_us: ttfb.map(|_| 41.6),
            mock_cpu_us: Some(12.2),
        }
    }

    #[test]
    fn plain_table_aligns_columns() {
        let rows = [
            summary("direct non-stream", 12_345.4, 2_501, None),
            summary("sluice stream", 987.6, 12_000, Some(1_250)),
        ];
        let text = scenario_table(&rows).render(Layout::Plain);
        let expected = "\
scenario           requests  concurrency  req/s  p50 ms  p99 ms  p50 TTFB ms  errors  proxy CPU µs/req  mock CPU µs/req
direct non-stream     20000           32  12345    2.50    7.50            -       0                 -               12
sluice stream         20000           32    988   12.00   36.00         1.25       0                42               12
";
        assert_eq!(text, expected);
    }

    #[test]
    fn markdown_table_has_header_rule_and_right_aligned_numbers() {
        let direct = summary("direct non-stream", 1000.0, 2_000, None);
        let sluice = summary("sluice non-stream", 750.0, 2_420, None);
        let dstream = summary("direct stream", 500.0, 4_000, Some(500));
        let sstream = summary("sluice stream", 500.0, 3_900, Some(600));
        let text = comparison_table(
            &Pair {
                direct: &direct,
                sluice: &sluice,
            },
            &Pair {
                direct: &dstream,
                sluice: &sstream,
            },
        )
        .render(Layout::Markdown);
        let expected = "\
| Sluice vs direct         | non-stream |   stream |
| ------------------------ | ---------: | -------: |
| Sluice/direct throughput |      75.0% |   100.0% |
| Sluice added p50 latency |   +0.42 ms | -0.10 ms |
";
        assert_eq!(text, expected);
    }

    #[test]
    fn nginx_table_gives_each_sluice_row_as_a_ratio_to_nginx() {
        let rows = [
            summary("nginx non-stream", 10_000.0, 1_000, Some(1)),
            summary("sluice non-stream", 5_000.0, 2_500, Some(1)),
        ];
        let text = nginx_table(&rows).map(|t| t.render(Layout::Plain));
        let expected = "\
vs nginx proxy_pass  throughput       p50       p99  proxy CPU/req
sluice non-stream         0.50×  +1.50 ms  +4.50 ms          1.00×
";
        assert_eq!(text.as_deref(), Some(expected));
        assert!(nginx_table(&rows[1..]).is_none());
    }

    #[test]
    fn unmeasured_values_render_as_dash() {
        assert_eq!(ms(None), "-");
        assert_eq!(ms(Some(1_005)), "1.00");
        assert_eq!(signed_ms(None), "-");
    }

    #[test]
    fn command_line_quotes_only_what_a_shell_would_split() {
        let args = [
            "target/release/sluice-bench",
            "--words",
            "20",
            "a b",
            "it's",
        ];
        assert_eq!(
            command_line(args.map(String::from)),
            r"target/release/sluice-bench --words 20 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn machine_facts_are_parsed_from_proc_and_os_release() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        let release = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_pretty_name(release).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }
}
