//! The node runs in flight in this process: each run gets a child of its execution's
//! cancellation token, registered by node and scope, so that a race can cancel its losing
//! nodes (here, or on every worker through the store's broadcast) and leave the rest running.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

/// One registered run.
struct Run {
    node_id: String,
    /// The run's scope chain, innermost first (`scope_chain` of its lineage).
    scopes: Vec<String>,
    token: CancellationToken,
}

/// Runs by execution id, then by a registration number.
#[derive(Default)]
pub(crate) struct RunningNodes {
    next: AtomicU64,
    by_execution: Mutex<HashMap<String, HashMap<u64, Run>>>,
    /// Cancellations already seen, per execution: (scope, node ids). A run registered after
    /// its node was cancelled (it passed the marker check just before the cancel) is
    /// cancelled at registration instead of running on unseen. Bounded by
    /// [`MAX_REMEMBERED_EXECUTIONS`]; dropped when the execution is forgotten.
    cancelled: Mutex<HashMap<String, Vec<NodeCancellation>>>,
}

/// One cancellation of nodes: (scope, node ids).
type NodeCancellation = (String, Vec<String>);

/// How many executions' node cancellations a process remembers (a worker that did not finish
/// an execution never forgets it otherwise); past it the memory starts afresh.
const MAX_REMEMBERED_EXECUTIONS: usize = 10_000;

/// Unregisters its run when dropped (the run ended, however).
pub(crate) struct RunGuard<'a> {
    runs: &'a RunningNodes,
    execution_id: String,
    id: u64,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut map = self
            .runs
            .by_execution
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(runs) = map.get_mut(&self.execution_id) {
            runs.remove(&self.id);
            if runs.is_empty() {
                map.remove(&self.execution_id);
            }
        }
    }
}

impl RunningNodes {
    /// Registers a run of `node_id` in `scopes` under `token` until the guard drops.
    pub(crate) fn register(
        &self,
        execution_id: &str,
        node_id: &str,
        scopes: Vec<String>,
        token: CancellationToken,
    ) -> RunGuard<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        // The cancellation memory is locked across the registration so that a concurrent
        // `cancel` either sees this run or has recorded itself before this check.
        let cancelled = self.cancelled.lock().unwrap_or_else(|p| p.into_inner());
        if cancelled.get(execution_id).is_some_and(|seen| {
            seen.iter()
                .any(|(scope, ids)| ids.iter().any(|n| n == node_id) && scopes.contains(scope))
        }) {
            token.cancel();
        }
        self.by_execution
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(execution_id.to_string())
            .or_default()
            .insert(
                id,
                Run {
                    node_id: node_id.to_string(),
                    scopes,
                    token,
                },
            );
        RunGuard {
            runs: self,
            execution_id: execution_id.to_string(),
            id,
        }
    }

    /// Cancels the runs of `node_ids` in `scope` or a scope nested in it; returns how many.
    pub(crate) fn cancel(&self, execution_id: &str, scope: &str, node_ids: &[String]) -> usize {
        let mut cancelled = self.cancelled.lock().unwrap_or_else(|p| p.into_inner());
        if cancelled.len() >= MAX_REMEMBERED_EXECUTIONS && !cancelled.contains_key(execution_id) {
            cancelled.clear();
        }
        cancelled
            .entry(execution_id.to_string())
            .or_default()
            .push((scope.to_string(), node_ids.to_vec()));
        let map = self.by_execution.lock().unwrap_or_else(|p| p.into_inner());
        let Some(runs) = map.get(execution_id) else {
            return 0;
        };
        let mut n = 0;
        for run in runs.values() {
            if node_ids.contains(&run.node_id) && run.scopes.iter().any(|s| s == scope) {
                run.token.cancel();
                n += 1;
            }
        }
        n
    }
}

impl RunningNodes {
    /// Drops what is remembered of a finished execution's cancellations.
    pub(crate) fn forget(&self, execution_id: &str) {
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_nodes_in_a_scope_cancels_their_runs_there_and_in_nested_scopes_only() {
        let runs = RunningNodes::default();
        let top = CancellationToken::new();
        let item = CancellationToken::new();
        let other_item = CancellationToken::new();
        let other_node = CancellationToken::new();
        let _a = runs.register("e", "slow", vec![String::new()], top.clone());
        let _b = runs.register("e", "slow", vec!["s#1".into(), String::new()], item.clone());
        let _c = runs.register("e", "slow", vec!["s#2".into()], other_item.clone());
        let _d = runs.register("e", "fast", vec![String::new()], other_node.clone());
        assert_eq!(runs.cancel("e", "s#1", &["slow".into()]), 1);
        assert!(item.is_cancelled() && !top.is_cancelled() && !other_item.is_cancelled());
        assert_eq!(runs.cancel("e", "", &["slow".into()]), 2);
        assert!(top.is_cancelled() && !other_item.is_cancelled() && !other_node.is_cancelled());
    }

    #[test]
    fn a_finished_run_is_no_longer_registered() {
        let runs = RunningNodes::default();
        let token = CancellationToken::new();
        drop(runs.register("e", "n", vec![String::new()], token.clone()));
        assert_eq!(runs.cancel("e", "", &["n".into()]), 0);
        assert!(!token.is_cancelled());
        assert!(runs.by_execution.lock().unwrap().is_empty());
    }

    #[test]
    fn a_run_registered_after_its_node_was_cancelled_starts_cancelled() {
        let runs = RunningNodes::default();
        assert_eq!(runs.cancel("e", "", &["slow".into()]), 0);
        let late = CancellationToken::new();
        let _late = runs.register("e", "slow", vec![String::new()], late.clone());
        assert!(late.is_cancelled());
        let other = CancellationToken::new();
        let _other = runs.register("e", "fast", vec![String::new()], other.clone());
        assert!(!other.is_cancelled());
        runs.forget("e");
        let after = CancellationToken::new();
        let _after = runs.register("e", "slow", vec![String::new()], after.clone());
        assert!(!after.is_cancelled());
    }
}
