//! `baton config [--role worker|master|cli|dev] [--config FILE] [--json]`: a role's effective
//! configuration (defaults → file → `BATON_*` variables), one registered variable a line with
//! where its value came from; secrets (tokens, keys) and passwords inside URLs are redacted.
//! Exit 0, or 2 when the configuration would not load or validate (the values are still shown
//! when they load).

use std::path::PathBuf;

use baton_master::MasterSettings;
use baton_settings::Role;
use baton_settings::registry::{self, Variable};
use baton_worker::Settings;
use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Whose configuration: `worker`, `master`, `cli` (the client commands) or `dev`.
    #[arg(long, value_enum, default_value_t = RoleArg::Worker)]
    pub role: RoleArg,
    /// The role's configuration file, as given to `baton worker --config` / `baton master --config`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print a JSON array of `{name, value, source, secret}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Worker,
    Master,
    Cli,
    Dev,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            RoleArg::Worker => Role::Worker,
            RoleArg::Master => Role::Master,
            RoleArg::Cli => Role::Cli,
            RoleArg::Dev => Role::Dev,
        }
    }
}

/// One line of the output.
struct Line {
    variable: &'static Variable,
    value: String,
    source: &'static str,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<u8> {
    let file = args.config.as_deref();
    // The loaded values by settings key, and whether they pass the role's own checks.
    let (loaded, problem) = match args.role {
        RoleArg::Master => {
            let s = MasterSettings::load_unchecked(file)?;
            let problem = s.validate().err().map(|e| e.to_string());
            (serde_json::to_value(&s)?, problem)
        }
        // The client commands that reach the pool load the worker's settings.
        RoleArg::Worker | RoleArg::Cli => {
            let s: Settings = baton_settings::load_layered(&Settings::default(), file)?;
            let problem = Settings::load(file).err().map(|e| e.to_string());
            (serde_json::to_value(&s)?, problem)
        }
        RoleArg::Dev => (Value::Object(Map::new()), None),
    };
    let env = baton_settings::environment();
    let lines = lines(args.role.role(), &loaded, &env, file.is_some());
    if args.json {
        let list: Vec<Value> = lines
            .iter()
            .map(|l| {
                json!({
                    "name": l.variable.name,
                    "value": registry::display_value(Some(l.variable), &l.value),
                    "source": l.source,
                    "secret": l.variable.secret,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", text(args.role, &lines));
    }
    match problem {
        Some(p) => {
            eprintln!("error: {p}");
            Ok(2)
        }
        None => Ok(0),
    }
}

/// Every variable `role` reads, with its effective value: the loaded one for a settings
/// field, else the variable's, else the default.
fn lines(role: Role, loaded: &Value, env: &[(String, String)], with_file: bool) -> Vec<Line> {
    registry::VARIABLES
        .iter()
        .filter(|v| v.read_by(role))
        .map(|variable| {
            let from_env = env.iter().find(|(k, _)| k == variable.name).map(|(_, v)| v);
            let value = match loaded.get(variable.key()) {
                Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => from_env
                    .cloned()
                    .unwrap_or_else(|| variable.default.to_string()),
            };
            let source = if from_env.is_some() {
                "env"
            } else if with_file && value != variable.default {
                "file"
            } else {
                "default"
            };
            Line {
                variable,
                value,
                source,
            }
        })
        .collect()
}

fn text(role: RoleArg, lines: &[Line]) -> String {
    let mut out = format!(
        "# baton config --role {}: defaults -> file -> BATON_* variables (secrets redacted)\n",
        role.role().name()
    );
    let shown: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{}={}",
                l.variable.name,
                registry::display_value(Some(l.variable), &l.value)
            )
        })
        .collect();
    let width = shown.iter().map(String::len).max().unwrap_or(0);
    for (assignment, line) in shown.iter().zip(lines) {
        out.push_str(&format!("{assignment:width$}  # {}\n", line.source));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_take_loaded_values_then_variables_then_defaults_and_redact_secrets() {
        let loaded = json!({"amqp_url": "amqp://u:pw@h:5672/%2f", "prefetch": 7});
        let env = vec![
            ("BATON_MASTER_URL".to_string(), "http://m:8080".to_string()),
            ("BATON_API_TOKEN".to_string(), "s3cret".to_string()),
        ];
        let lines = lines(Role::Cli, &loaded, &env, true);
        let out = text(RoleArg::Cli, &lines);
        assert!(
            out.contains("BATON_AMQP_URL=amqp://u:<redacted>@h:5672/%2f"),
            "{out}"
        );
        assert!(out.contains("BATON_API_TOKEN=<redacted>"), "{out}");
        assert!(!out.contains("s3cret") && !out.contains("pw@"), "{out}");
        let master_url = lines
            .iter()
            .find(|l| l.variable.name == "BATON_MASTER_URL")
            .unwrap();
        assert_eq!(
            (master_url.value.as_str(), master_url.source),
            ("http://m:8080", "env")
        );
        assert!(
            !out.contains("BATON_PREFETCH"),
            "the CLI does not read it: {out}"
        );
    }
}
