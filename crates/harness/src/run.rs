//! Running one case: a fresh embedded runtime on a single-threaded tokio runtime and a
//! virtual clock, the registry wrapped with the case's mocks. The driver lets the execution
//! run until it is idle (no hop in flight, no timer due), then delivers the signals that are
//! due, or else moves virtual time to the next pending timer or timed signal; node runs,
//! virtual time and real time are bounded so a looping workflow fails instead of hanging.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::message::{Completion, NodeStatus};
use baton_engine::NodeRegistry;
use baton_engine::ports::WorkflowCatalog;
use baton_memory::{EmbeddedRuntime, Event, MemoryCatalog};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::oneshot;

use crate::check::check;
use crate::clock::VirtualClock;
use crate::file::{Case, Deliver, TestFile};
use crate::mock::mocked_registry;

/// The execution id every case runs as.
const EXECUTION_ID: &str = "test-execution";
/// Hops in flight at once (as `baton run`'s default).
const CONCURRENCY: usize = 64;
/// Consecutive idle observations (with a yield between) before the runtime counts as idle: a
/// timer task spawned by the last hop registers its deadline when it first runs.
const IDLE_ROUNDS: u32 = 3;

/// What a case run saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The completion, if the execution finished.
    pub completion: Option<Completion>,
    /// Why the run stopped without a completion (a limit, a stuck execution).
    pub aborted: Option<String>,
    /// Node ids of the tested execution with at least one status event.
    pub seen: BTreeSet<String>,
    /// Node id → runs that ended (success, failure or a failed attempt to retry; every item).
    pub attempts: BTreeMap<String, u64>,
    /// Signal name → branches that waited for it.
    pub signal_waits: BTreeMap<String, u64>,
    /// Status events of every execution (sub-workflows included): what `max_node_runs` bounds.
    pub node_events: u64,
    /// Status events were lost (the observer lagged): `ran` and `attempts` may be incomplete.
    pub lagged: bool,
    /// Virtual milliseconds the case moved through.
    pub virtual_ms: u64,
}

/// A case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// Real time the case took.
    pub elapsed: Duration,
    pub observed: Observed,
    /// Each failed expectation, naming its JSON path; empty when the case passed.
    pub failures: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs one case of `file` with `registry`'s node types; `wall_limit` bounds real time.
pub fn run_case(
    file: &TestFile,
    case: &Case,
    registry: &NodeRegistry,
    wall_limit: Duration,
) -> CaseResult {
    let started = Instant::now();
    let observed = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let observed = rt.block_on(drive(file, case, registry, wall_limit));
            // Timers and parked branches left behind are dropped; a node still blocked on
            // real I/O is not waited for.
            rt.shutdown_background();
            observed
        }
        Err(e) => Observed {
            aborted: Some(format!("cannot start a runtime: {e}")),
            ..Observed::default()
        },
    };
    let failures = check(&case.expect, &observed);
    CaseResult {
        name: case.name.clone(),
        elapsed: started.elapsed(),
        observed,
        failures,
    }
}

async fn drive(
    file: &TestFile,
    case: &Case,
    registry: &NodeRegistry,
    wall_limit: Duration,
) -> Observed {
    let mut obs = Observed::default();
    let clock = Arc::new(VirtualClock::new(case.clock_start));
    let start = clock.now_millis();
    let runtime = EmbeddedRuntime::start_with_clock(
        mocked_registry(registry, &case.mocks),
        CONCURRENCY,
        None,
        Arc::new(MemoryCatalog::new()),
        clock.clone(),
    );
    for (id, doc) in &file.catalog {
        if let Err(e) = runtime.catalog().put(id, doc).await {
            obs.aborted = Some(format!("cannot store workflow {id:?} in the catalog: {e}"));
            return obs;
        }
    }
    let mut events = runtime.events().subscribe();
    let mut done = match runtime
        .submit(file.workflow.clone(), EXECUTION_ID, case.input.clone())
        .await
    {
        Ok(done) => done,
        Err(e) => {
            obs.aborted = Some(format!("the execution did not start: {e}"));
            return obs;
        }
    };
    let mut delivered = vec![false; case.signals.len()];
    let mut delivered_by_name: BTreeMap<&str, u64> = BTreeMap::new();
    let wall_start = Instant::now();
    loop {
        if let Err(reason) = settle(
            &runtime,
            &clock,
            &mut events,
            &mut done,
            &mut obs,
            case,
            wall_start,
            wall_limit,
        )
        .await
        {
            obs.aborted = Some(reason);
            break;
        }
        obs.virtual_ms = u64::try_from(clock.now_millis() - start).unwrap_or(0);
        if obs.completion.is_some() {
            break;
        }
        // Idle: deliver what is due, else move time on.
        let elapsed = clock.now_millis() - start;
        let mut any = false;
        for (i, signal) in case.signals.iter().enumerate() {
            if delivered[i] {
                continue;
            }
            let due = match &signal.when {
                Deliver::Waited => {
                    obs.signal_waits.get(&signal.name).copied().unwrap_or(0)
                        > delivered_by_name
                            .get(signal.name.as_str())
                            .copied()
                            .unwrap_or(0)
                }
                Deliver::AtMs(at) => i64::try_from(*at).unwrap_or(i64::MAX) <= elapsed,
                Deliver::AfterNode(id) => obs.seen.contains(id),
            };
            if !due {
                continue;
            }
            if let Err(e) = runtime
                .signal(EXECUTION_ID, &signal.name, signal.data.clone())
                .await
            {
                obs.aborted = Some(format!(
                    "signal {:?} could not be delivered: {e}",
                    signal.name
                ));
                return obs;
            }
            delivered[i] = true;
            *delivered_by_name.entry(signal.name.as_str()).or_default() += 1;
            any = true;
        }
        if any {
            continue;
        }
        let timed_signal = case
            .signals
            .iter()
            .zip(&delivered)
            .filter_map(|(s, done)| match s.when {
                Deliver::AtMs(at) if !done => {
                    Some(start.saturating_add(i64::try_from(at).unwrap_or(i64::MAX)))
                }
                _ => None,
            })
            .min();
        let next = match (clock.next_deadline(), timed_signal) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(next) => next,
                None => {
                    obs.aborted = Some(stuck(case, &delivered, &obs));
                    break;
                }
            },
        };
        let limit =
            start.saturating_add(i64::try_from(case.limits.max_virtual_ms).unwrap_or(i64::MAX));
        if next > limit {
            obs.aborted = Some(format!(
                "the execution did not finish within limits.max_virtual_ms = {} ms of virtual time (next timer at +{} ms)",
                case.limits.max_virtual_ms,
                next - start
            ));
            break;
        }
        clock.advance_to(next);
    }
    obs
}

/// Lets the runtime work until it is idle or the execution completed; `Err` when a bound is
/// crossed.
#[allow(clippy::too_many_arguments)]
async fn settle(
    runtime: &EmbeddedRuntime,
    clock: &VirtualClock,
    events: &mut Receiver<Event>,
    done: &mut oneshot::Receiver<Completion>,
    obs: &mut Observed,
    case: &Case,
    wall_start: Instant,
    wall_limit: Duration,
) -> Result<(), String> {
    let mut idle = 0u32;
    let mut busy = 0u32;
    loop {
        drain(events, obs);
        match done.try_recv() {
            Ok(completion) => {
                drain(events, obs);
                obs.completion = Some(completion);
                return Ok(());
            }
            Err(oneshot::error::TryRecvError::Closed) => {
                return Err("the runtime stopped before the execution completed".into());
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        if obs.node_events > case.limits.max_node_runs {
            return Err(format!(
                "more than limits.max_node_runs = {} node runs: a loop that never ends?",
                case.limits.max_node_runs
            ));
        }
        if wall_start.elapsed() > wall_limit {
            return Err(format!(
                "the execution did not finish within {} s of real time (a node doing real I/O that is not mocked?)",
                wall_limit.as_secs_f64()
            ));
        }
        if runtime.hops_in_flight() == 0 && !clock.has_due_sleepers() {
            idle += 1;
            busy = 0;
            if idle >= IDLE_ROUNDS {
                return Ok(());
            }
            tokio::task::yield_now().await;
        } else {
            idle = 0;
            busy += 1;
            // A node waiting on real I/O leaves nothing to run here: stop spinning.
            if busy > 1_000 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Folds the status events received so far into `obs`.
fn drain(events: &mut Receiver<Event>, obs: &mut Observed) {
    loop {
        match events.try_recv() {
            Ok(Event::Status(s)) => {
                if s.status == NodeStatus::Running {
                    continue;
                }
                obs.node_events += 1;
                if s.execution_id != EXECUTION_ID {
                    continue;
                }
                obs.seen.insert(s.node_id.clone());
                match s.status {
                    NodeStatus::Success | NodeStatus::Failed => {
                        *obs.attempts.entry(s.node_id).or_default() += 1;
                    }
                    // A failed attempt that will be retried.
                    NodeStatus::Waiting if s.error.is_some() => {
                        *obs.attempts.entry(s.node_id).or_default() += 1;
                    }
                    NodeStatus::Waiting => {
                        let out = s.output.as_ref();
                        let waiting = out.and_then(|o| o.get("waiting")).and_then(|w| w.as_bool());
                        let name = out.and_then(|o| o.get("signal")).and_then(|n| n.as_str());
                        if let (Some(true), Some(name)) = (waiting, name) {
                            *obs.signal_waits.entry(name.to_string()).or_default() += 1;
                        }
                    }
                    NodeStatus::Running => {}
                }
            }
            Ok(Event::Completion(_)) => {}
            Err(TryRecvError::Lagged(n)) => {
                obs.lagged = true;
                obs.node_events += n;
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// Why an idle execution with nothing left to wake it cannot go on.
fn stuck(case: &Case, delivered: &[bool], obs: &Observed) -> String {
    let waiting: Vec<&String> = obs.signal_waits.keys().collect();
    let left: Vec<&str> = case
        .signals
        .iter()
        .zip(delivered)
        .filter(|(_, d)| !**d)
        .map(|(s, _)| s.name.as_str())
        .collect();
    let mut reason = String::from("the execution is idle with no timer pending and cannot finish");
    if !waiting.is_empty() {
        reason.push_str(&format!(
            "; branches waited for signal(s) {}",
            waiting
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if left.is_empty() {
        reason.push_str("; no signal left to deliver (add one to `signals`)");
    } else {
        reason.push_str(&format!(
            "; signals never delivered: {}",
            left.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    reason
}
