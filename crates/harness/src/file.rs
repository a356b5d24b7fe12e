//! Reading a workflow test file (`*.test.json`, RFC 0010) into cases: the workflow it tests,
//! the catalog its `workflow` nodes start from, and per case the input, mocks, signals,
//! limits and expectations. Every problem names the file and the field.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton_core::{CompiledWorkflow, ErrorCode};
use baton_engine::NodeRegistry;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A test file that cannot be run (exit 2): which file, which field, what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {field}: {message}", file.display())]
pub struct InvalidTestFile {
    pub file: PathBuf,
    /// JSON path in the test file (`$.cases[1].mocks.fetch`), or the file it refers to.
    pub field: String,
    pub message: String,
}

/// A loaded test file: one workflow, one or more cases.
#[derive(Debug, Clone)]
pub struct TestFile {
    pub path: PathBuf,
    pub workflow: Arc<CompiledWorkflow>,
    /// Workflows `workflow` nodes start, by catalog id (from `"workflows"`: a directory).
    pub catalog: Vec<(String, Value)>,
    /// Every file the tests read (the test file first): what `--watch` polls.
    pub sources: Vec<PathBuf>,
    pub cases: Vec<Case>,
}

/// One test case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub input: Value,
    pub mocks: BTreeMap<String, Vec<Mock>>,
    pub signals: Vec<SignalSpec>,
    pub expect: Expect,
    pub limits: Limits,
    /// Where virtual time starts.
    pub clock_start: DateTime<Utc>,
}

/// What a mocked node attempt returns instead of running the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Mock {
    Output(Value),
    Error {
        code: ErrorCode,
        message: String,
        retryable: bool,
    },
}

/// A signal to deliver, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    pub name: String,
    pub data: Value,
    pub when: Deliver,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Deliver {
    /// When a branch waits for the signal (the default).
    Waited,
    /// Once virtual time reaches this many milliseconds after the start.
    AtMs(u64),
    /// Once the node with this id has run and the execution is idle.
    AfterNode(String),
}

/// What a case expects; absent fields are not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    pub status: Option<String>,
    /// A subset of the final context.
    pub context: Option<Value>,
    pub ran: Vec<String>,
    pub not_ran: Vec<String>,
    pub attempts: BTreeMap<String, u64>,
    /// The error code of a failed or halted execution.
    pub error: Option<String>,
}

/// Bounds that end a runaway case with a failure instead of a hang.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Virtual time the case may move through.
    pub max_virtual_ms: u64,
    /// Node runs (attempts, every item and sub-workflow included).
    pub max_node_runs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_virtual_ms: 366 * 24 * 3_600_000,
            max_node_runs: 10_000,
        }
    }
}

/// Virtual time starts here unless a test says `clock_start`.
pub const DEFAULT_CLOCK_START: &str = "2030-01-01T00:00:00Z";

const FILE_FIELDS: &[&str] = &[
    "name",
    "description",
    "workflow",
    "workflows",
    "input",
    "input_file",
    "mocks",
    "signals",
    "limits",
    "clock_start",
    "expect",
    "cases",
];
const CASE_FIELDS: &[&str] = &[
    "name",
    "description",
    "input",
    "input_file",
    "mocks",
    "signals",
    "limits",
    "clock_start",
    "expect",
];

/// Reads, checks and compiles a test file against `registry` (the node types it may use).
pub fn load(path: &Path, registry: &NodeRegistry) -> Result<TestFile, InvalidTestFile> {
    let bad = |field: &str, message: String| InvalidTestFile {
        file: path.to_path_buf(),
        field: field.to_string(),
        message,
    };
    let doc = read_json(path).map_err(|m| bad("$", m))?;
    let Value::Object(top) = doc else {
        return Err(bad("$", "expected an object".into()));
    };
    unknown_fields(&top, FILE_FIELDS, "$").map_err(|(f, m)| bad(&f, m))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut sources = vec![path.to_path_buf()];

    let (wf_doc, wf_label) = match top.get("workflow") {
        Some(Value::String(rel)) => {
            let file = dir.join(rel);
            let doc = read_json(&file).map_err(|m| bad("$.workflow", m))?;
            sources.push(file.clone());
            let doc = match doc.get("workflow_definition") {
                Some(inner) if inner.is_object() => inner.clone(),
                _ => doc,
            };
            (doc, file.display().to_string())
        }
        Some(inline @ Value::Object(_)) => (inline.clone(), "the inline workflow".to_string()),
        Some(_) => {
            return Err(bad(
                "$.workflow",
                "expected a path (relative to the test file) or a workflow object".into(),
            ));
        }
        None => {
            return Err(bad(
                "$.workflow",
                "missing (a path or a workflow object)".into(),
            ));
        }
    };
    let workflow = CompiledWorkflow::compile(&wf_doc, registry).map_err(|inv| {
        let problems: Vec<String> = inv
            .0
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        bad(
            "$.workflow",
            format!(
                "{wf_label} is not a valid workflow: {}",
                problems.join("; ")
            ),
        )
    })?;

    let mut catalog = Vec::new();
    let mut mockable: HashSet<String> = node_ids(&workflow);
    if let Some(v) = top.get("workflows") {
        let Some(rel) = v.as_str() else {
            return Err(bad("$.workflows", "expected a directory path".into()));
        };
        for (file, id, doc) in catalog_dir(&dir.join(rel), registry, &mut mockable)
            .map_err(|m| bad("$.workflows", m))?
        {
            sources.push(file);
            catalog.push((id, doc));
        }
    }
    let ids = node_ids(&workflow);
    let ctx = Ctx {
        dir,
        ids: &ids,
        mockable: &mockable,
    };
    let defaults = CaseFields::read(&top, "$", &ctx, &mut sources).map_err(|(f, m)| bad(&f, m))?;
    let file_name = top.get("name").and_then(Value::as_str).map(str::to_string);
    let mut cases = Vec::new();
    match (top.get("cases"), top.get("expect")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "$.expect",
                "a file with `cases` puts `expect` in each case".into(),
            ));
        }
        (None, None) => {
            return Err(bad(
                "$.expect",
                "missing (or give `cases`, each with its `expect`)".into(),
            ));
        }
        (None, Some(expect)) => {
            let expect = read_expect(expect, "$.expect", &ids).map_err(|(f, m)| bad(&f, m))?;
            let name = file_name
                .or_else(|| workflow.definition.name.clone())
                .unwrap_or_else(|| "default".into());
            cases.push(defaults.into_case(name, expect));
        }
        (Some(Value::Array(list)), None) if !list.is_empty() => {
            for (i, case) in list.iter().enumerate() {
                let at = format!("$.cases[{i}]");
                let Value::Object(obj) = case else {
                    return Err(bad(&at, "expected an object".into()));
                };
                unknown_fields(obj, CASE_FIELDS, &at).map_err(|(f, m)| bad(&f, m))?;
                let own =
                    CaseFields::read(obj, &at, &ctx, &mut sources).map_err(|(f, m)| bad(&f, m))?;
                let Some(expect) = obj.get("expect") else {
                    return Err(bad(&format!("{at}.expect"), "missing".into()));
                };
                let expect = read_expect(expect, &format!("{at}.expect"), &ids)
                    .map_err(|(f, m)| bad(&f, m))?;
                let name = match obj.get("name") {
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => return Err(bad(&format!("{at}.name"), "expected a string".into())),
                    None => format!("case {}", i + 1),
                };
                cases.push(own.over(&defaults).into_case(name, expect));
            }
        }
        (Some(_), None) => {
            return Err(bad("$.cases", "expected a non-empty array of cases".into()));
        }
    }
    sources.dedup();
    Ok(TestFile {
        path: path.to_path_buf(),
        workflow: Arc::new(workflow),
        catalog,
        sources,
        cases,
    })
}

use crate::fields::{
    FieldError, read_expect, read_limits, read_mocks, read_signals, unknown_fields,
};

struct Ctx<'a> {
    dir: &'a Path,
    ids: &'a HashSet<String>,
    mockable: &'a HashSet<String>,
}

/// The fields a case shares with the file level (the file's are the cases' defaults).
#[derive(Default)]
struct CaseFields {
    input: Option<Value>,
    mocks: Option<BTreeMap<String, Vec<Mock>>>,
    signals: Option<Vec<SignalSpec>>,
    limits: Option<Limits>,
    clock_start: Option<DateTime<Utc>>,
}

impl CaseFields {
    fn read(
        obj: &Map<String, Value>,
        at: &str,
        ctx: &Ctx<'_>,
        sources: &mut Vec<PathBuf>,
    ) -> Result<Self, FieldError> {
        let field = |name: &str| format!("{at}.{name}");
        let input = match (obj.get("input"), obj.get("input_file")) {
            (Some(_), Some(_)) => {
                return Err((
                    field("input_file"),
                    "give `input` or `input_file`, not both".into(),
                ));
            }
            (Some(v), None) => Some(v.clone()),
            (None, Some(Value::String(rel))) => {
                let file = ctx.dir.join(rel);
                let v = read_json(&file).map_err(|m| (field("input_file"), m))?;
                sources.push(file);
                Some(v)
            }
            (None, Some(_)) => {
                return Err((
                    field("input_file"),
                    "expected a path relative to the test file".into(),
                ));
            }
            (None, None) => None,
        };
        let mocks = match obj.get("mocks") {
            None => None,
            Some(v) => Some(read_mocks(v, &field("mocks"), ctx.mockable)?),
        };
        let signals = match obj.get("signals") {
            None => None,
            Some(v) => Some(read_signals(v, &field("signals"), ctx.ids)?),
        };
        let limits = match obj.get("limits") {
            None => None,
            Some(v) => Some(read_limits(v, &field("limits"))?),
        };
        let clock_start = match obj.get("clock_start") {
            None => None,
            Some(Value::String(s)) => Some(parse_time(s).ok_or_else(|| {
                (
                    field("clock_start"),
                    format!("expected an RFC 3339 timestamp, got {s:?}"),
                )
            })?),
            Some(_) => {
                return Err((
                    field("clock_start"),
                    "expected an RFC 3339 timestamp".into(),
                ));
            }
        };
        Ok(Self {
            input,
            mocks,
            signals,
            limits,
            clock_start,
        })
    }

    fn over(self, defaults: &Self) -> Self {
        Self {
            input: self.input.or_else(|| defaults.input.clone()),
            mocks: self.mocks.or_else(|| defaults.mocks.clone()),
            signals: self.signals.or_else(|| defaults.signals.clone()),
            limits: self.limits.or(defaults.limits),
            clock_start: self.clock_start.or(defaults.clock_start),
        }
    }

    fn into_case(self, name: String, expect: Expect) -> Case {
        Case {
            name,
            input: self.input.unwrap_or_else(|| Value::Object(Map::new())),
            mocks: self.mocks.unwrap_or_default(),
            signals: self.signals.unwrap_or_default(),
            expect,
            limits: self.limits.unwrap_or_default(),
            clock_start: self
                .clock_start
                .or_else(|| parse_time(DEFAULT_CLOCK_START))
                .unwrap_or_default(),
        }
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

fn node_ids(wf: &CompiledWorkflow) -> HashSet<String> {
    wf.definition.nodes.iter().map(|n| n.id.clone()).collect()
}

/// Every `*.json` of `dir`, compiled, with its catalog id (`"id"`, else the file stem); their
/// node ids join `mockable`.
fn catalog_dir(
    dir: &Path,
    registry: &NodeRegistry,
    mockable: &mut HashSet<String>,
) -> Result<Vec<(PathBuf, String, Value)>, String> {
    let listing = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let doc = read_json(&file)?;
        let wf = CompiledWorkflow::compile(&doc, registry).map_err(|inv| {
            let problems: Vec<String> = inv
                .0
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            format!(
                "{} is not a valid workflow: {}",
                file.display(),
                problems.join("; ")
            )
        })?;
        mockable.extend(node_ids(&wf));
        let id = match doc
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(id) => id.to_string(),
            None => file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        out.push((file, id, doc));
    }
    Ok(out)
}
