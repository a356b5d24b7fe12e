//! The SIGKILL loop: a random worker is killed every 1–2 s (and a replacement started, as an
//! orchestrator would) while executions of slow `http` chains run. Whatever the kills hit,
//! every execution gets exactly one completion, and a node's side effect happens twice only
//! when a worker died while running it: at most `kills × BATON_CONCURRENCY` repeats in all.
//! Afterwards every worker left is ready and a normal execution completes.
//!
//! The short form runs in CI (< 3 minutes); the long form (200 executions × 20 nodes, 4
//! workers) is `#[ignore]`d: `cargo nextest run -p baton-e2e --run-ignored ignored-only chaos_`.
//! Every run prints a `chaos:` summary line; `BATON_CHAOS_SEED` replays a run's kill choices.

mod common;

use std::time::{Duration, Instant};

use common::chaos::{
    Figures, FxApi, Rng, Tally, fx_chain_workflow, replace_exited, start_executions,
};
use common::distributed::{BOUND, Cluster, new_execution_id};

/// Hops in flight per worker: small, so that the bound on repeats (kills × this) means
/// something.
const CONCURRENCY: usize = 2;

struct Shape {
    name: &'static str,
    workers: usize,
    executions: usize,
    nodes: usize,
    /// The API's delay per call, spread over this range.
    delay_ms: (u64, u64),
    /// No new kill after this long (the run then finishes undisturbed).
    kill_for: Duration,
    /// How long the queue must stay quiet before no late duplicate is expected any more.
    quiet: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigkill_loop_loses_no_execution_and_repeats_only_killed_in_flight_nodes() {
    sigkill_loop(Shape {
        name: "sigkill_loop",
        workers: 3,
        executions: 40,
        nodes: 10,
        delay_ms: (100, 300),
        kill_for: Duration::from_secs(60),
        quiet: Duration::from_secs(10),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form (several minutes): --run-ignored ignored-only chaos_"]
async fn chaos_sigkill_loop_long_200_executions_of_20_slow_nodes() {
    sigkill_loop(Shape {
        name: "sigkill_loop_long",
        workers: 4,
        executions: 200,
        nodes: 20,
        delay_ms: (100, 300),
        kill_for: Duration::from_secs(600),
        quiet: Duration::from_secs(20),
    })
    .await;
}

async fn sigkill_loop(shape: Shape) {
    let t0 = Instant::now();
    let mut rng = Rng::from_env();
    let api = FxApi::start(shape.delay_ms);
    let mut cluster = Cluster::new();
    let concurrency = CONCURRENCY.to_string();
    let env = [
        ("BATON_CONCURRENCY", concurrency.as_str()),
        ("BATON_PREFETCH", concurrency.as_str()),
    ];
    for _ in 0..shape.workers {
        cluster.spawn_worker(&env).await;
    }
    let broker = cluster.broker().await;
    let mut completions = cluster
        .consume(&broker, &cluster.topology.completion_queue)
        .await;
    let workflow = fx_chain_workflow("chaos-chain", shape.nodes);
    let ids: Vec<String> = (0..shape.executions).map(|_| new_execution_id()).collect();
    start_executions(&cluster, &broker, &workflow, &ids, &api).await;
    eprintln!(
        "[{:?}] started {} executions of {} nodes on {} workers",
        t0.elapsed(),
        shape.executions,
        shape.nodes,
        shape.workers
    );

    // The loop: between kills, read completions; stop killing once all have one.
    let mut tally = Tally::default();
    let mut kills = Vec::new();
    // Workers that exited on their own and were replaced (not killed by the test).
    let mut restarts = 0;
    let mut in_flight_at_kills = 0;
    while !tally.all_done(&ids) && t0.elapsed() < shape.kill_for {
        let pause = Duration::from_millis(rng.between(1000, 2000));
        tally.absorb_for(&mut completions, pause).await;
        if tally.all_done(&ids) {
            break;
        }
        restarts += replace_exited(&mut cluster, shape.workers, &env).await;
        let running = cluster.running();
        let victim = rng.pick(&running);
        in_flight_at_kills += api.in_flight();
        eprintln!(
            "[{:?}] SIGKILL {} (pid {}); calls in flight {}, completed {}/{}",
            t0.elapsed(),
            cluster.worker(victim).name,
            cluster.worker(victim).pid(),
            api.in_flight(),
            tally.done(&ids),
            ids.len()
        );
        cluster.kill(victim);
        // Once the process is gone: no call of the victim starts after this instant.
        let now = Instant::now();
        kills.push((now, now));
        cluster.spawn_worker(&env).await;
    }
    eprintln!(
        "[{:?}] {} kills; waiting for the remaining completions",
        t0.elapsed(),
        kills.len()
    );
    let (all, more) = tally
        .wait_all_restarting(
            &mut completions,
            &ids,
            BOUND * 2,
            &mut cluster,
            shape.workers,
            &env,
        )
        .await;
    restarts += more;
    eprintln!(
        "[{:?}] completions for {}/{} executions; draining late ones ({:?} quiet)",
        t0.elapsed(),
        tally.done(&ids),
        ids.len(),
        shape.quiet
    );

    // Every worker left is ready, and the pool still runs a normal execution.
    let mut not_ready = Vec::new();
    for w in cluster.running() {
        if !cluster.wait_ready(w, BOUND).await {
            not_ready.push(cluster.worker(w).name.clone());
        }
    }
    let probe = vec![new_execution_id()];
    start_executions(
        &cluster,
        &broker,
        &fx_chain_workflow("probe", 3),
        &probe,
        &api,
    )
    .await;
    tally.wait_all(&mut completions, &probe, BOUND).await;
    tally.drain(&mut completions, shape.quiet).await;

    let figures = Figures::measure(&api, &tally, &ids, shape.nodes, &kills);
    let bound = kills.len() * CONCURRENCY;
    println!(
        "{} in_flight_at_kills={in_flight_at_kills} worker_restarts={restarts} repeat_bound={bound} elapsed={:?}",
        figures.summary(shape.name),
        t0.elapsed()
    );
    eprintln!("{}", figures.summary(shape.name));
    let mut failed = figures.violations(bound, None);
    failed.extend(tally.aftermath(all, &not_ready, &probe[0]));
    broker.close().await;
    assert!(
        failed.is_empty(),
        "{}\n{}\n{}",
        figures.summary(shape.name),
        failed.join("\n"),
        cluster.logs()
    );
}
