//! `baton test [PATH…] [--junit FILE] [--watch]`: runs workflow test files (`*.test.json`,
//! RFC 0010) on the embedded runtime under virtual time, with mocks and signals, and reports
//! each case. Exit 0 all passed, 1 a case failed, 2 a test file is invalid (or none found).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use baton_engine::NodeRegistry;
use baton_harness::report::{self, FileReport, Totals};
use clap::Args;

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Test files, or directories searched recursively for `*.test.json`.
    #[arg(value_name = "PATH", default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Also write the results as JUnit XML to FILE (for CI).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run again whenever a test file, a workflow or an input file it reads changes (polls
    /// every half second; Ctrl-C stops).
    #[arg(long)]
    pub watch: bool,
    /// Real seconds a case may take (a node doing real, unmocked I/O can be slow); virtual time
    /// and node runs have their own limits in the test file (`limits`).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

pub fn run(args: TestArgs) -> anyhow::Result<u8> {
    let registry = baton_nodes::registry();
    if !args.watch {
        return Ok(run_once(&args, &registry).0);
    }
    loop {
        let (_, watched) = run_once(&args, &registry);
        eprintln!(
            "watching {} files for changes (Ctrl-C stops)",
            watched.len()
        );
        let before = fingerprint(&args, &watched);
        while fingerprint(&args, &watched) == before {
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("\n--- change detected, running again ---\n");
    }
}

/// Runs every test file once; returns the exit code and the files the tests read.
fn run_once(args: &TestArgs, registry: &NodeRegistry) -> (u8, Vec<PathBuf>) {
    let started = Instant::now();
    let files = match baton_harness::discover(&args.paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return (2, Vec::new());
        }
    };
    if files.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!("error: no *.test.json files under {}", paths.join(", "));
        return (2, Vec::new());
    }
    let wall_limit = Duration::from_secs(args.timeout.max(1));
    let mut reports: Vec<FileReport> = Vec::with_capacity(files.len());
    for file in &files {
        let report = baton_harness::run_file(file, registry, wall_limit);
        print!("{}", report::text(&report));
        reports.push(report);
    }
    let totals = Totals::of(&reports);
    println!("{}", report::summary(totals, started.elapsed()));
    let mut code = totals.exit_code();
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, report::junit(&reports))
    {
        eprintln!("error: cannot write --junit {}: {e}", path.display());
        code = 2;
    }
    let mut watched: Vec<PathBuf> = reports.into_iter().flat_map(|r| r.sources).collect();
    watched.sort();
    watched.dedup();
    (code, watched)
}

/// What `--watch` compares: the test files found now, and the modification time of each file
/// the last run read.
fn fingerprint(args: &TestArgs, watched: &[PathBuf]) -> (Vec<PathBuf>, Vec<Option<SystemTime>>) {
    let found = baton_harness::discover(&args.paths).unwrap_or_default();
    let times = found
        .iter()
        .chain(watched)
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect();
    (found, times)
}
