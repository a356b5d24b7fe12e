//! `baton bench`: hop latency and throughput, distributed (RabbitMQ + Redis, one `baton worker`
//! child process, queues and keys of this run only) and embedded, printed beside the targets.
//! A human table (on stderr with `--json`, which prints one JSON line on stdout). Exit 0 when
//! every target is met, 1 when one is missed, 2 on errors. Run it on a release build:
//! `cargo run --release -p baton -- bench` (or `scripts/bench`).

use std::path::PathBuf;

use baton_amqp::QueueType;
use baton_bench::{Ceiling, DistributedOptions, EmbeddedOptions, Report, ScalingOptions};
use baton_worker::Settings;
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Measurement window of the throughput phases, seconds (distributed (b); embedded phases
    /// use --embedded-secs).
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Chains in flight in the throughput phases.
    #[arg(long, default_value_t = 64)]
    pub chains: usize,
    /// Only the embedded runtime (no RabbitMQ, Redis or worker).
    #[arg(long)]
    pub embedded_only: bool,
    /// Print the report as one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Executions in the sequential latency phase (a).
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Nodes of the chain.
    #[arg(long, default_value_t = 20)]
    pub chain_length: usize,
    /// Items of the fan-out (c).
    #[arg(long, default_value_t = 100)]
    pub fanout: usize,
    /// Fan-out executions, one at a time (distributed).
    #[arg(long, default_value_t = 10)]
    pub fanout_runs: usize,
    /// Warm-up before the distributed throughput window, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Duration of each embedded phase, seconds.
    #[arg(long, default_value_t = 3.0)]
    pub embedded_secs: f64,
    /// Hops in flight in the embedded runtime.
    #[arg(long, default_value_t = 256)]
    pub embedded_concurrency: usize,
    /// Subscribe to the embedded runtime's events, as `baton run` does (status events are then
    /// built and broadcast; without a subscriber the engine skips them).
    #[arg(long)]
    pub embedded_observed: bool,
    /// hop-ceiling JSON lines measured in the same session (variant c, K=1 and K=64): the
    /// 64-chain target becomes 0.6 x its K=64 figure, and the ratio is printed.
    #[arg(long)]
    pub ceiling: Option<PathBuf>,
    /// Rounds of the 64-chain phase (b); the report keeps the median round. On a shared box one
    /// 10 s window varies by ±10 %.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// The hop-ceiling executable: before each round of (b) it runs at K=64 (variant c, for
    /// --ceiling-secs) and the round's ratio is taken against that figure; the reported ratio is
    /// the median of the rounds' ratios (as in `bench/RESULTS.md`). After the `compact` and
    /// `off` phases it runs once more as variant b (no statuses), their bound on this box.
    #[arg(long)]
    pub ceiling_exe: Option<PathBuf>,
    /// Measurement window of each hop-ceiling run of --ceiling-exe, seconds.
    #[arg(long, default_value_t = 8.0)]
    pub ceiling_secs: f64,
    /// Follow statuses on a private subscription queue instead of draining the run's own
    /// status queue (every status is then routed to two queues).
    #[arg(long)]
    pub subscription: bool,
    /// Wait at most this long before each distributed phase for the box to be < 15 % busy.
    #[arg(long, default_value_t = 30.0)]
    pub quiet_wait_secs: f64,
    /// Phases to run (distributed and embedded): any of `a` (one chain at a time), `b` (chains
    /// in flight), `c` (fan-out).
    #[arg(long, default_value = "abc")]
    pub phases: String,
    /// The driver acks each burst of ready status deliveries at once (`multiple`) instead of
    /// each one on its own as hop-ceiling's status drainer does: a cheaper monitor.
    #[arg(long)]
    pub batch_acks: bool,
    /// The driver starts executions with the workflow inline (Rune's start shape, as
    /// `baton submit` does) instead of by reference to a stored definition (the master's
    /// default, RFC 0011).
    #[arg(long)]
    pub inline_starts: bool,
    /// Scaling: after the main run, run (b) again with each of these numbers of worker
    /// processes on the same queues (e.g. `1,2,3`); reported as `hops_per_s_workers`.
    #[arg(long, value_delimiter = ',')]
    pub scale_workers: Vec<usize>,
    /// Per-hop cost of queue types: after the main run, run (a) and (b) with one worker on each
    /// of these queue types (e.g. `classic,quorum`); reported as `hops_per_s_queue_type`,
    /// `cpu_us_per_hop_queue_type` and `hop_p50_ms_queue_type`.
    #[arg(long, value_delimiter = ',')]
    pub queue_types: Vec<QueueType>,
    /// Worker configuration file (broker and Redis URLs, queue type, prefetch, concurrency);
    /// `BATON_*` variables apply too. Queue and key prefixes are always this run's own.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<u8> {
    let settings = Settings::load(args.config.as_deref())?;
    let ceiling = args.ceiling.as_deref().map(Ceiling::load).transpose()?;
    let started_at = chrono_now();
    let progress = |line: &str| eprintln!("bench: {line}");
    if cfg!(debug_assertions) {
        progress("warning: this is a debug build; figures are not representative (use --release)");
    }
    // The distributed driver is a monitor beside the worker under test, so it runs on one
    // thread: on a multi-thread runtime its deliveries hop between threads, and the futex
    // wake-ups cost the box as much CPU per hop as the worker's own syscalls (measured with
    // `perf stat`). The embedded phases measure the engine itself and get every core.
    let scaling = ScalingOptions {
        workers: args.scale_workers.clone(),
        queue_types: args.queue_types.clone(),
    };
    let (distributed, scaling) = if args.embedded_only {
        (None, None)
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let opts = DistributedOptions {
                baton_exe: std::env::current_exe()?,
                workers: 1,
                worker_config: args.config.clone(),
                connection: settings.connection.clone(),
                secs: args.secs,
                warmup_secs: args.warmup_secs,
                chains: args.chains,
                chain_len: args.chain_length,
                sequential_runs: args.runs,
                fanout_width: args.fanout,
                fanout_runs: args.fanout_runs,
                subscription: args.subscription,
                quiet_wait_secs: args.quiet_wait_secs,
                phases: args.phases.clone(),
                ack_each: !args.batch_acks,
                starts_by_reference: !args.inline_starts,
                rounds: args.rounds.max(1),
                ceiling_exe: args.ceiling_exe.clone(),
                ceiling_secs: args.ceiling_secs,
            };
            let main = baton_bench::distributed::run(&opts, &progress).await?;
            let scaled = if scaling.is_empty() {
                None
            } else {
                Some(baton_bench::distributed::scaling::run(&opts, &scaling, &progress).await?)
            };
            anyhow::Ok((Some(main), scaled))
        })?
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let embedded = EmbeddedOptions {
            secs: args.embedded_secs,
            chains: args.chains,
            chain_len: args.chain_length,
            fanout_width: args.fanout,
            concurrency: args.embedded_concurrency,
            phases: args.phases.clone(),
            observed: args.embedded_observed,
        };
        let embedded = baton_bench::embedded::run(&embedded, &progress).await?;
        let bench_settings = json!({
            "secs": args.secs,
            "warmup_secs": args.warmup_secs,
            "chains": args.chains,
            "chain_length": args.chain_length,
            "runs": args.runs,
            "fanout": args.fanout,
            "fanout_runs": args.fanout_runs,
            "embedded_secs": args.embedded_secs,
            "embedded_concurrency": args.embedded_concurrency,
            "embedded_observed": args.embedded_observed,
            "queue_type": settings.connection.queue_type.as_str(),
            "worker_prefetch": settings.prefetch,
            "worker_concurrency": settings.concurrency,
            "subscription": args.subscription,
            "batch_acks": args.batch_acks,
            "inline_starts": args.inline_starts,
            "scale_workers": args.scale_workers,
            "queue_types": args.queue_types.iter().map(|q| q.as_str()).collect::<Vec<_>>(),
        });
        anyhow::Ok(
            Report::new(bench_settings, distributed, embedded, ceiling, started_at)
                .with_scaling(scaling)
                .with_starts(baton_bench::starts::StartSizes::measure(
                    args.chain_length,
                    true,
                )),
        )
    })?;
    let table = report.render();
    if args.json {
        eprint!("{table}");
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{table}");
    }
    Ok(if report.passed() { 0 } else { 1 })
}

fn chrono_now() -> String {
    baton_engine::Clock::rfc3339_now(&baton_engine::SystemClock)
}
