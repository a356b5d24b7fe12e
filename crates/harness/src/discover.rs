//! Finding test files: a path is a `*.test.json` file (or any file named explicitly), or a
//! directory searched recursively for `*.test.json`, in sorted order.

use std::path::{Path, PathBuf};

/// The suffix of a workflow test file.
pub const SUFFIX: &str = ".test.json";

/// The test files under `paths` (sorted and deduplicated), or the first path that cannot be
/// read.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut out)?;
        } else {
            out.push(path.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let listing = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in listing {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            // Build output and hidden directories hold no tests of the user's.
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                walk(&path, out)?;
            }
        } else if name.ends_with(SUFFIX) {
            out.push(path);
        }
    }
    Ok(())
}
