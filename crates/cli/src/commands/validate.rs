//! `baton validate FILE [--json]`: exit 0 valid, 1 invalid, 2 unreadable.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::load::{LoadError, compile};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Workflow JSON file.
    pub file: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<u8> {
    let registry = baton_nodes::registry();
    let (code, problems, unreadable) = match compile(&args.file, &registry) {
        Ok(_) => (0, Vec::new(), None),
        Err(LoadError::Invalid(inv)) => (1, inv.0, None),
        Err(LoadError::Unreadable(msg)) => (2, Vec::new(), Some(msg)),
    };
    if args.json {
        let out = json!({
            "file": args.file.display().to_string(),
            "valid": code == 0,
            "problems": problems,
            "error": unreadable,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(msg) = unreadable {
        eprintln!("error: {msg}");
    } else if problems.is_empty() {
        println!("{}: valid", args.file.display());
    } else {
        println!(
            "{}: {} problem{}",
            args.file.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            println!("  {}: {}", p.path, p.message);
        }
    }
    Ok(code)
}
