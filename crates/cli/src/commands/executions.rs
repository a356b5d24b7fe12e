//! `baton executions --master URL [--workflow ID] [--status S] [--limit N] [--cursor C]
//! [--json]`: the master's executions, newest first, as a table (id, workflow, status, started,
//! duration) or as the API's JSON. Statuses are the API's, matched exactly: a node failure
//! ends an execution `halted`, not `failed`.

use clap::Args;
use serde_json::Value;

use super::master_client::MasterTarget;

#[derive(Args, Debug)]
pub struct ExecutionsArgs {
    /// Only executions of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only executions in this state: `running`, `completed`, `halted` (a node failed under
    /// its `halt` policy, or the execution was cancelled: the usual failure) or `failed` (the
    /// engine could not run it, or its deadline passed). RFC 0003, "Statuses".
    #[arg(long, value_parser = ["running", "completed", "failed", "halted"])]
    pub status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue a previous listing (its `next_cursor`).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub master: MasterTarget,
}

pub fn run(args: ExecutionsArgs) -> anyhow::Result<u8> {
    let client = args.master.required()?;
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(w) = &args.workflow {
        query.push(("workflow", w.clone()));
    }
    if let Some(s) = &args.status {
        query.push(("status", s.clone()));
    }
    if let Some(c) = &args.cursor {
        query.push(("cursor", c.clone()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = rt.block_on(client.get("/executions", &query))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(0);
    }
    let rows: Vec<[String; 5]> = answer["executions"]
        .as_array()
        .map(|list| list.iter().map(row).collect())
        .unwrap_or_default();
    print!("{}", table(&rows));
    if let Some(next) = answer["next_cursor"].as_str() {
        eprintln!("more: --cursor {next}");
    }
    Ok(0)
}

const HEADER: [&str; 5] = ["EXECUTION", "WORKFLOW", "STATUS", "STARTED", "DURATION"];

fn row(summary: &Value) -> [String; 5] {
    let text = |key: &str| summary[key].as_str().unwrap_or("-").to_string();
    let workflow = match summary["version"].as_u64() {
        Some(v) => format!("{} v{v}", text("workflow_id")),
        None => text("workflow_id"),
    };
    let duration = summary["duration_ms"]
        .as_u64()
        .map(human_duration)
        .unwrap_or_else(|| "-".into());
    [
        text("execution_id"),
        workflow,
        text("status"),
        short_time(&text("started_at")),
        duration,
    ]
}

/// `2026-11-30T09:12:22.635179976Z` → `2026-11-30 09:12:22`.
fn short_time(rfc3339: &str) -> String {
    match rfc3339.get(..19) {
        Some(head) if rfc3339.len() > 19 => head.replace('T', " "),
        _ => rfc3339.to_string(),
    }
}

/// `850 ms`, `12.3 s`, `4 m 05 s`.
pub fn human_duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} m {:02} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// Left-aligned columns separated by two spaces; a header line even when there are no rows.
fn table(rows: &[[String; 5]]) -> String {
    let mut widths = HEADER.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(HEADER);
    for r in rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_summary_becomes_an_aligned_row() {
        let rows = vec![
            row(
                &json!({"execution_id": "e1", "workflow_id": "hello", "version": 2,
                        "status": "completed", "started_at": "2026-11-30T09:12:22.635Z",
                        "duration_ms": 1234}),
            ),
            row(
                &json!({"execution_id": "e22", "workflow_id": "w", "status": "running",
                        "started_at": "2026-11-30T09:12:23Z", "duration_ms": null}),
            ),
        ];
        assert_eq!(
            table(&rows),
            "EXECUTION  WORKFLOW  STATUS     STARTED              DURATION\n\
             e1         hello v2  completed  2026-11-30 09:12:22  1.2 s\n\
             e22        w         running    2026-11-30 09:12:23  -\n"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(850), "850 ms");
        assert_eq!(human_duration(12_345), "12.3 s");
        assert_eq!(human_duration(245_000), "4 m 05 s");
    }
}
