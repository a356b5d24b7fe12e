//! The same workflows on the embedded runtime (in-memory queue, store and events, this process).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use baton_core::CompiledWorkflow;
use baton_core::message::ExecutionStatus;
use baton_memory::EmbeddedRuntime;
use serde::Serialize;
use serde_json::{Value, json};

use crate::procfs::{CpuWindow, Snapshot, Watched};
use crate::stats::Summary;
use crate::workflows;

/// What the embedded phases run.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub secs: f64,
    pub chains: usize,
    pub chain_len: usize,
    pub fanout_width: usize,
    /// Hops in flight at once in the runtime's dispatcher.
    pub concurrency: usize,
    /// Which of the phases `a`, `b`, `c` to run.
    pub phases: String,
    /// Subscribe to the runtime's events (as `baton run` does), so that status events are
    /// built and broadcast; without a subscriber the engine skips them.
    pub observed: bool,
}

/// One embedded phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmbeddedPhase {
    pub executions: u64,
    pub hops: u64,
    pub window_s: f64,
    pub hops_per_s: f64,
    /// Execution time (submit → completion), ms.
    pub execution_ms: Summary,
    pub cpu_us_per_hop: f64,
    pub cpu: CpuWindow,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EmbeddedReport {
    /// Status events were observed (built and broadcast to a subscriber).
    pub observed: bool,
    /// (a) one chain at a time.
    pub sequential: EmbeddedPhase,
    /// (b) `chains` chains in flight, resubmitted as they complete.
    pub chains: EmbeddedPhase,
    /// (c) one fan-out → join at a time.
    pub fanout: EmbeddedPhase,
}

fn compile(doc: &Value) -> anyhow::Result<Arc<CompiledWorkflow>> {
    CompiledWorkflow::compile(doc, &baton_nodes::registry())
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("benchmark workflow is invalid: {e:?}"))
}

async fn run_one(
    rt: &EmbeddedRuntime,
    wf: &Arc<CompiledWorkflow>,
    input: &Value,
    seq: u64,
) -> anyhow::Result<f64> {
    let id = format!("emb-{seq}");
    let t0 = Instant::now();
    let c = rt
        .run(wf.clone(), &id, input.clone())
        .await
        .map_err(|e| anyhow::anyhow!("embedded run: {e}"))?;
    if c.status != ExecutionStatus::Completed {
        anyhow::bail!(
            "embedded execution {} ended {}: {:?}",
            id,
            c.status.as_str(),
            c.failure_reason
        );
    }
    Ok(t0.elapsed().as_secs_f64() * 1e3)
}

/// Runs executions one after another for `secs`.
async fn sequential(
    rt: &EmbeddedRuntime,
    wf: &Arc<CompiledWorkflow>,
    input: &Value,
    hops_each: u64,
    secs: f64,
    seq: &AtomicU64,
) -> anyhow::Result<EmbeddedPhase> {
    // Warm-up: allocator, lazy statics.
    let warm_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warm_until {
        run_one(rt, wf, input, seq.fetch_add(1, Ordering::Relaxed)).await?;
    }
    let watched = Watched::default();
    let a = Snapshot::take(&watched);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut times = Vec::new();
    while Instant::now() < end {
        times.push(run_one(rt, wf, input, seq.fetch_add(1, Ordering::Relaxed)).await?);
    }
    let window = t0.elapsed().as_secs_f64();
    let cpu = CpuWindow::between(&a, &Snapshot::take(&watched));
    let executions = times.len() as u64;
    let hops = executions * hops_each;
    Ok(EmbeddedPhase {
        executions,
        hops,
        window_s: window,
        hops_per_s: hops as f64 / window,
        execution_ms: Summary::of(times),
        cpu_us_per_hop: cpu.bench_s * 1e6 / hops.max(1) as f64,
        cpu,
    })
}

/// `k` loops, each resubmitting the workflow as soon as its execution completes, for `secs`.
async fn concurrent(
    rt: &EmbeddedRuntime,
    wf: &Arc<CompiledWorkflow>,
    input: &Value,
    hops_each: u64,
    k: usize,
    secs: f64,
    seq: &Arc<AtomicU64>,
) -> anyhow::Result<EmbeddedPhase> {
    let run_for = |until: Instant| {
        let mut tasks = Vec::new();
        for _ in 0..k {
            let (rt, wf, input, seq) = (rt.clone(), wf.clone(), input.clone(), seq.clone());
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                while Instant::now() < until {
                    times.push(
                        run_one(&rt, &wf, &input, seq.fetch_add(1, Ordering::Relaxed)).await?,
                    );
                }
                anyhow::Ok(times)
            }));
        }
        tasks
    };
    for t in run_for(Instant::now() + Duration::from_millis(300)) {
        t.await??;
    }
    let watched = Watched::default();
    let a = Snapshot::take(&watched);
    let t0 = Instant::now();
    let mut times = Vec::new();
    for t in run_for(t0 + Duration::from_secs_f64(secs)) {
        times.extend(t.await??);
    }
    // Every loop finishes the execution it is in after the deadline: count the whole time.
    let window = t0.elapsed().as_secs_f64();
    let cpu = CpuWindow::between(&a, &Snapshot::take(&watched));
    let executions = times.len() as u64;
    let hops = executions * hops_each;
    Ok(EmbeddedPhase {
        executions,
        hops,
        window_s: window,
        hops_per_s: hops as f64 / window,
        execution_ms: Summary::of(times),
        cpu_us_per_hop: cpu.bench_s * 1e6 / hops.max(1) as f64,
        cpu,
    })
}

/// Runs (a), (b) and (c) embedded. Call inside a multi-threaded tokio runtime.
pub async fn run(
    opts: &EmbeddedOptions,
    progress: &dyn Fn(&str),
) -> anyhow::Result<EmbeddedReport> {
    let chain = compile(&workflows::chain(opts.chain_len))?;
    let fanout = compile(&workflows::fanout())?;
    let fan_input = workflows::fanout_input(opts.fanout_width);
    let empty = json!({});
    let rt = EmbeddedRuntime::start(baton_nodes::registry(), opts.concurrency);
    let seq = Arc::new(AtomicU64::new(0));
    let chain_hops = workflows::chain_hops(opts.chain_len);
    if opts.observed {
        let mut events = rt.events().subscribe();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            while !matches!(events.recv().await, Err(RecvError::Closed)) {}
        });
    }
    let mut report = EmbeddedReport {
        observed: opts.observed,
        ..EmbeddedReport::default()
    };
    if opts.phases.contains('a') {
        progress(&format!(
            "embedded (a): one chain of {} at a time, {:.0} s",
            opts.chain_len, opts.secs
        ));
        let (r, wf, input, s, secs) = (
            rt.clone(),
            chain.clone(),
            empty.clone(),
            seq.clone(),
            opts.secs,
        );
        report.sequential =
            on_worker(async move { sequential(&r, &wf, &input, chain_hops, secs, &s).await })
                .await?;
    }
    if opts.phases.contains('b') {
        progress(&format!(
            "embedded (b): {} chains in flight, {:.0} s",
            opts.chains, opts.secs
        ));
        report.chains = concurrent(
            &rt,
            &chain,
            &empty,
            chain_hops,
            opts.chains,
            opts.secs,
            &seq,
        )
        .await?;
    }
    if opts.phases.contains('c') {
        progress(&format!(
            "embedded (c): fan-out {} → join, one at a time, {:.0} s",
            opts.fanout_width, opts.secs
        ));
        let (r, wf, s, o) = (rt.clone(), fanout.clone(), seq.clone(), opts.clone());
        report.fanout =
            on_worker(async move { sequential_fanout(&r, &wf, &fan_input, &o, &s).await }).await?;
    }
    Ok(report)
}

/// Runs a sequential phase's driver on one of the runtime's worker threads, as (b)'s loops
/// run, and as a caller inside a runtime (a service, a task) submits: from the thread that
/// blocks on the runtime, each execution would cost two wake-ups across threads (its first hop
/// spawned onto a worker, its completion waking the blocked thread), futex calls that measured
/// a third of the CPU of a 20-hop chain (`examples/embedded_chain.rs … on-worker`), work
/// that is not the engine's. The hops themselves are the same.
async fn on_worker(
    phase: impl std::future::Future<Output = anyhow::Result<EmbeddedPhase>> + Send + 'static,
) -> anyhow::Result<EmbeddedPhase> {
    tokio::spawn(phase)
        .await
        .map_err(|e| anyhow::anyhow!("embedded phase driver: {e}"))?
}

async fn sequential_fanout(
    rt: &EmbeddedRuntime,
    wf: &Arc<CompiledWorkflow>,
    input: &Value,
    opts: &EmbeddedOptions,
    seq: &AtomicU64,
) -> anyhow::Result<EmbeddedPhase> {
    sequential(
        rt,
        wf,
        input,
        workflows::fanout_hops(opts.fanout_width),
        opts.secs,
        seq,
    )
    .await
}
