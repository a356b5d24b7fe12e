//! `baton nodes [--json]`: the node types, their parameters and outputs.

use clap::Args;

#[derive(Args, Debug)]
pub struct NodesArgs {
    /// Print the node specs as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: NodesArgs) -> anyhow::Result<u8> {
    let registry = baton_nodes::registry();
    let specs: Vec<_> = registry.nodes().map(|n| n.spec().clone()).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&specs)?);
        return Ok(0);
    }
    for spec in specs {
        let aliases = if spec.aliases.is_empty() {
            String::new()
        } else {
            format!(" (also: {})", spec.aliases.join(", "))
        };
        println!("{}{aliases}\n  {}", spec.type_name, spec.summary);
        for p in &spec.params {
            let req = if p.required { "required" } else { "optional" };
            println!(
                "    {:<18} {:<32} {req}. {}",
                p.name,
                p.kind.describe(),
                p.doc
            );
        }
        println!("  output: {}\n", spec.output);
    }
    Ok(0)
}
