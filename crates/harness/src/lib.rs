//! Workflow tests (`baton test`, RFC 0010): test files with mocks, signals and expectations,
//! run on the embedded runtime under virtual time, in milliseconds and without services.

pub mod check;
pub mod clock;
pub mod discover;
mod fields;
pub mod file;
pub mod mock;
pub mod report;
pub mod run;

use std::path::Path;
use std::time::Duration;

use baton_engine::NodeRegistry;

pub use clock::VirtualClock;
pub use discover::discover;
pub use file::{Case, InvalidTestFile, TestFile, load};
pub use report::{FileReport, Totals};
pub use run::{CaseResult, Observed, run_case};

/// Loads the test file at `path` and runs each of its cases.
pub fn run_file(path: &Path, registry: &NodeRegistry, wall_limit: Duration) -> FileReport {
    match load(path, registry) {
        Ok(file) => FileReport {
            path: path.to_path_buf(),
            outcome: Ok(file
                .cases
                .iter()
                .map(|case| run_case(&file, case, registry, wall_limit))
                .collect()),
            sources: file.sources,
        },
        Err(e) => FileReport {
            path: path.to_path_buf(),
            outcome: Err(e),
            sources: vec![path.to_path_buf()],
        },
    }
}
