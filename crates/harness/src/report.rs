//! Reports of a test run: the readable text `baton test` prints and JUnit XML for CI.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::file::InvalidTestFile;
use crate::run::CaseResult;

/// One test file's outcome: its cases' results, or why it could not run.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    pub outcome: Result<Vec<CaseResult>, InvalidTestFile>,
    /// The files the test read (the test file, its workflow, inputs, catalog): what
    /// `--watch` polls.
    pub sources: Vec<PathBuf>,
}

/// Totals over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    /// Test files that could not run.
    pub invalid: usize,
}

impl Totals {
    pub fn of(reports: &[FileReport]) -> Self {
        let mut t = Self::default();
        for r in reports {
            match &r.outcome {
                Ok(cases) => {
                    for c in cases {
                        if c.passed() {
                            t.passed += 1;
                        } else {
                            t.failed += 1;
                        }
                    }
                }
                Err(_) => t.invalid += 1,
            }
        }
        t
    }

    /// 0 all passed, 1 a case failed, 2 a test file is invalid.
    pub fn exit_code(self) -> u8 {
        if self.invalid > 0 {
            2
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }
}

/// The readable report of one file: a line per case, the mismatches under a failed one.
pub fn text(report: &FileReport) -> String {
    let mut s = String::new();
    let file = report.path.display();
    match &report.outcome {
        Err(e) => {
            let _ = writeln!(s, "INVALID {file}\n  {}: {}", e.field, e.message);
        }
        Ok(cases) => {
            for c in cases {
                let verdict = if c.passed() { "PASS" } else { "FAIL" };
                let _ = writeln!(
                    s,
                    "{verdict}    {file} :: {} ({} ms, {} ms virtual)",
                    c.name,
                    c.elapsed.as_millis(),
                    c.observed.virtual_ms
                );
                for f in &c.failures {
                    let _ = writeln!(s, "  {f}");
                }
            }
        }
    }
    s
}

/// The closing line: `3 passed, 1 failed, 0 invalid files in 12 ms`.
pub fn summary(totals: Totals, elapsed: Duration) -> String {
    format!(
        "{} passed, {} failed, {} invalid file{} in {} ms",
        totals.passed,
        totals.failed,
        totals.invalid,
        if totals.invalid == 1 { "" } else { "s" },
        elapsed.as_millis()
    )
}

/// JUnit XML: a `testsuite` per file, a `testcase` per case; mismatches as `failure`, an
/// invalid file as an `error`.
pub fn junit(reports: &[FileReport]) -> String {
    let t = Totals::of(reports);
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total_time: f64 = reports
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .flatten()
        .map(|c| c.elapsed.as_secs_f64())
        .sum();
    let _ = writeln!(
        s,
        "<testsuites name=\"baton test\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{total_time:.3}\">",
        t.passed + t.failed + t.invalid,
        t.failed,
        t.invalid
    );
    for r in reports {
        let suite = xml(&r.path.display().to_string());
        match &r.outcome {
            Err(e) => {
                let _ = writeln!(
                    s,
                    "  <testsuite name=\"{suite}\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"0\">\n    <testcase name=\"(test file)\" classname=\"{suite}\" time=\"0\">\n      <error message=\"{}\">{}</error>\n    </testcase>\n  </testsuite>",
                    xml(&e.to_string()),
                    xml(&format!("{}: {}", e.field, e.message))
                );
            }
            Ok(cases) => {
                let failed = cases.iter().filter(|c| !c.passed()).count();
                let time: f64 = cases.iter().map(|c| c.elapsed.as_secs_f64()).sum();
                let _ = writeln!(
                    s,
                    "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" time=\"{time:.3}\">",
                    cases.len()
                );
                for c in cases {
                    let _ = write!(
                        s,
                        "    <testcase name=\"{}\" classname=\"{suite}\" time=\"{:.3}\"",
                        xml(&c.name),
                        c.elapsed.as_secs_f64()
                    );
                    if c.passed() {
                        s.push_str("/>\n");
                    } else {
                        let first = c.failures.first().map(String::as_str).unwrap_or_default();
                        let _ = writeln!(
                            s,
                            ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                            xml(first),
                            xml(&c.failures.join("\n"))
                        );
                    }
                }
                s.push_str("  </testsuite>\n");
            }
        }
    }
    s.push_str("</testsuites>\n");
    s
}

/// Escapes text for XML content and attributes; drops characters XML 1.0 cannot hold.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
