//! Metric names (Prometheus) and their descriptions, in one place.

pub const HOPS: &str = "baton_hops_total";
pub const HOP_SECONDS: &str = "baton_hop_duration_seconds";
pub const IN_FLIGHT: &str = "baton_hops_in_flight";
/// 1 when the worker is ready (what `/readyz` answers), 0 when not; set at each scrape.
pub const READY: &str = "baton_worker_ready";
/// Label `reason`: the kind of [`DeadLetterReason`](crate::failure::DeadLetterReason)
/// (`unreadable`, `invalid_start`, `unknown_workflow_ref`, `invalid_definition`, `refused`,
/// `permanent`, `transient_budget`, `crashed`, `panicked`).
pub const DEAD_LETTERS: &str = "baton_dead_letters_total";
/// Label `node_type`.
pub const RETRIES: &str = "baton_node_retries_total";
/// Deliveries the broker flagged `redelivered` (a worker died or handed the message back).
pub const REDELIVERIES: &str = "baton_redeliveries_total";
/// Seconds from a timer's due time to its firing (the pump's publish).
pub const TIMER_LAG: &str = "baton_timer_lag_seconds";
/// Seconds from a message's publish (its AMQP `timestamp`, whole seconds) to its consumption.
pub const QUEUE_LAG: &str = "baton_queue_lag_seconds";
/// Bucket bounds of [`TIMER_LAG`] and [`QUEUE_LAG`]: from a poll interval to an hour's backlog.
pub const LAG_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];
pub const EVENTS_PUBLISHED: &str = "baton_events_published_total";
pub const TIMERS_FIRED: &str = "baton_timer_batches_total";
pub const EXECUTIONS_STARTED: &str = "baton_executions_started_total";
pub const TRANSIENT_ERRORS: &str = "baton_transient_errors_total";
pub const PANICS: &str = "baton_panics_total";
pub const CRASH_BUDGET_SPENT: &str = "baton_crash_budget_spent_total";
pub const HOP_MESSAGE_BYTES: &str = "baton_hop_message_bytes";
/// Bucket bounds of [`HOP_MESSAGE_BYTES`]: hop messages stay far below 4 KB (RFC 0004); the
/// larger buckets show it if they ever do not.
pub const HOP_MESSAGE_BUCKETS: [f64; 9] = [
    256.0,
    512.0,
    1024.0,
    2048.0,
    4096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
];

pub fn describe() {
    metrics::describe_counter!(HOPS, "Hop messages processed, by node type and outcome");
    metrics::describe_histogram!(
        HOP_SECONDS,
        metrics::Unit::Seconds,
        "Time from delivery to ack, by node type"
    );
    metrics::describe_gauge!(IN_FLIGHT, "Hops being processed now");
    metrics::describe_gauge!(
        READY,
        "1 when the worker is ready (as /readyz answers), 0 when not; set at each scrape"
    );
    metrics::describe_counter!(
        DEAD_LETTERS,
        "Messages sent to the dead-letter queue, by reason kind"
    );
    metrics::describe_counter!(RETRIES, "Node attempts scheduled for retry, by node type");
    metrics::describe_counter!(
        REDELIVERIES,
        "Deliveries the broker flagged as redelivered (a worker died or handed the message back)"
    );
    metrics::describe_histogram!(
        TIMER_LAG,
        metrics::Unit::Seconds,
        "Time from a timer's due time to its firing"
    );
    metrics::describe_histogram!(
        QUEUE_LAG,
        metrics::Unit::Seconds,
        "Age of a message when a worker consumes it (publish timestamp to consume; whole-second timestamps)"
    );
    metrics::describe_counter!(EVENTS_PUBLISHED, "Status and completion events published");
    metrics::describe_counter!(
        TIMERS_FIRED,
        "Batches of due timers moved to the execution queue"
    );
    metrics::describe_histogram!(
        HOP_MESSAGE_BYTES,
        metrics::Unit::Bytes,
        "Body size of the hop messages published (they go straight to the execution queue, so this is where to watch them)"
    );
    metrics::describe_counter!(EXECUTIONS_STARTED, "Executions started from start messages");
    metrics::describe_counter!(
        PANICS,
        "Messages whose processing panicked (dead-lettered with the panic's message)"
    );
    metrics::describe_counter!(
        CRASH_BUDGET_SPENT,
        "Messages dead-lettered because they crashed or stalled BATON_MAX_DELIVERIES workers"
    );
    metrics::describe_counter!(
        TRANSIENT_ERRORS,
        "Hops handed back because the broker or Redis failed"
    );
}
