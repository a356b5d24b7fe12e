//! `baton test` through the binary: every example's test file passes, a broken expectation
//! fails with exit 1 and a diff naming the path, an invalid test file exits 2 naming the
//! field, and `--junit` writes a report CI can read.

mod common;

use std::path::{Path, PathBuf};

use common::{baton, examples_dir, stderr, stdout};

/// A scratch directory holding `name` (a copy of an example's test file with its workflow and
/// input files beside it, so relative paths resolve), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "baton-test-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn copy_example(&self, name: &str) {
        std::fs::copy(examples_dir().join(name), self.0.join(name)).unwrap();
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_example_test_file_passes() {
    let out = baton().args(["test", "examples/"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let report = stdout(&out);
    assert!(!report.contains("FAIL"), "{report}");
    // Every example workflow has a test file.
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if stem.ends_with(".input") || stem.ends_with(".test") {
            continue;
        }
        assert!(
            report.contains(&format!("{stem}.test.json")),
            "examples/{name} has no test file that ran:\n{report}"
        );
    }
}

#[test]
fn a_broken_expectation_fails_with_exit_1_and_a_diff_naming_the_path() {
    let dir = Scratch::new("broken");
    dir.copy_example("01-hello.json");
    let file = dir.write(
        "hello.test.json",
        r#"{
          "workflow": "01-hello.json",
          "input": {"name": "Ada", "count": 12, "muted": false},
          "expect": {
            "status": "completed",
            "context": {"$Greet": {"message": "Hello, Grace!"}},
            "not_ran": ["loud"]
          }
        }"#,
    );
    let out = baton().arg("test").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("FAIL"), "{report}");
    assert!(
        report.contains(
            r#"$.context.$Greet.message: expected "Hello, Grace!", got "Hello, Ada! You have 12 new messages.""#
        ),
        "{report}"
    );
    assert!(
        report.contains(r#"$.not_ran[0]: expected node "loud" not to run, it did"#),
        "{report}"
    );
    assert!(report.contains("0 passed, 1 failed"), "{report}");
}

#[test]
fn an_invalid_test_file_exits_2_naming_the_field() {
    let dir = Scratch::new("invalid");
    dir.copy_example("01-hello.json");
    let file = dir.write(
        "bad.test.json",
        r#"{"workflow": "01-hello.json", "mocks": {"nope": {"output": 1}}, "expect": {}}"#,
    );
    let out = baton().arg("test").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("INVALID"), "{report}");
    assert!(
        report.contains(r#"$.mocks.nope: no node with id "nope""#),
        "{report}"
    );
}

#[test]
fn junit_lists_every_case_with_its_failures() {
    let dir = Scratch::new("junit");
    for f in [
        "10-approval.json",
        "10-approval.input.json",
        "10-approval.test.json",
    ] {
        dir.copy_example(f);
    }
    dir.copy_example("01-hello.json");
    dir.write(
        "broken.test.json",
        r#"{"workflow": "01-hello.json", "input": {"name": "Al", "count": 1, "muted": false},
            "expect": {"status": "halted"}}"#,
    );
    let xml = dir.path().join("report.xml");
    let out = baton()
        .arg("test")
        .arg(dir.path())
        .arg("--junit")
        .arg(&xml)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let xml = std::fs::read_to_string(&xml).unwrap();
    assert!(
        xml.contains(r#"<testsuites name="baton test" tests="4" failures="1" errors="0""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase name="an approval signal pays""#),
        "{xml}"
    );
    assert!(
        xml.contains(
            r#"<failure message="$.status: expected &quot;halted&quot;, got &quot;completed&quot;"#
        ),
        "{xml}"
    );
}

#[test]
fn no_test_file_under_the_path_exits_2() {
    let dir = Scratch::new("empty");
    let out = baton().arg("test").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no *.test.json files"),
        "{}",
        stderr(&out)
    );
}
