//! `baton healthcheck [--url URL]`: exit 0 when the URL answers 2xx (for images without curl).

use clap::Args;

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// The endpoint to ask (the worker's readiness by default).
    #[arg(long, default_value = "http://127.0.0.1:9090/readyz")]
    pub url: String,
}

pub fn run(args: HealthcheckArgs) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()?;
        match client.get(&args.url).send().await {
            Ok(r) if r.status().is_success() => {
                println!("{}: {}", args.url, r.status());
                Ok(0)
            }
            Ok(r) => {
                eprintln!("{}: {}", args.url, r.status());
                Ok(1)
            }
            Err(e) => {
                eprintln!("{}: {e}", args.url);
                Ok(1)
            }
        }
    })
}
