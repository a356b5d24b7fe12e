//! Shared helpers for the black-box tests: finding (and building) the `baton` binary, paths
//! in the workspace, and scratch files.

#![allow(dead_code)] // Each test crate uses a different subset.

pub mod chaos;
pub mod distributed;
pub mod failover;
pub mod outage;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;

/// The workspace root (the parent of this package).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn examples_dir() -> PathBuf {
    workspace().join("examples")
}

/// The `baton` binary. `BATON_BIN` names a prebuilt one; otherwise `cargo build -p baton` runs
/// once per test process, into the target directory and profile this test was built with (so
/// `CARGO_TARGET_DIR`, `--target-dir` and `--release` are honoured), and is a no-op when the
/// binary is up to date.
pub fn baton_bin() -> &'static Path {
    // A failed build is remembered too, so the other tests of this process fail fast.
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build_baton) {
        Ok(bin) => bin,
        Err(e) => panic!("{e}"),
    }
}

fn build_baton() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("BATON_BIN") {
        return Ok(PathBuf::from(bin));
    }
    // This test runs as <target-dir>/<profile dir>/deps/<test>-<hash>.
    let exe = std::env::current_exe().map_err(|e| format!("current test executable: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target profile directory")?;
    let target_dir = profile_dir.parent().ok_or("no target directory")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = StdCommand::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "-p",
            "baton",
            "--bin",
            "baton",
            "--profile",
            profile,
            "--target-dir",
        ])
        .arg(target_dir)
        .output()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p baton failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = profile_dir.join(format!("baton{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        return Err(format!(
            "built baton, but {} does not exist (set BATON_BIN)",
            bin.display()
        ));
    }
    Ok(bin)
}

/// `baton` run from the workspace root, with logging at its default level.
pub fn baton() -> Command {
    let mut cmd = Command::new(baton_bin());
    cmd.current_dir(workspace())
        .env_remove("RUST_LOG")
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

/// Writes `contents` to a fresh file in this test crate's scratch directory.
pub fn scratch_file(name: &str, contents: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "baton-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write scratch file");
    path
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout parsed as JSON; panics with both streams when it is not.
pub fn stdout_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n--- stdout\n{}\n--- stderr\n{}",
            stdout(out),
            stderr(out)
        )
    })
}
