//! The store's Lua scripts, built once per process, and the fixed keys of one execution they
//! are given.

use std::sync::LazyLock;

use redis::Script;

pub(crate) struct Scripts {
    pub(crate) start: Script,
    pub(crate) read: Script,
    pub(crate) begin_hop: Script,
    pub(crate) mark_handoff_published: Script,
    pub(crate) read_exact: Script,
    pub(crate) commit: Script,
    pub(crate) join: Script,
    pub(crate) signal: Script,
    pub(crate) finish: Script,
    pub(crate) mark_completion_sent: Script,
    pub(crate) claim_completion: Script,
    pub(crate) adopt_completion: Script,
    pub(crate) final_context: Script,
    pub(crate) mark_started: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    start: Script::new(include_str!("../lua/start.lua")),
    read: Script::new(include_str!("../lua/read.lua")),
    begin_hop: Script::new(include_str!("../lua/begin_hop.lua")),
    mark_handoff_published: Script::new(include_str!("../lua/mark_handoff_published.lua")),
    read_exact: Script::new(include_str!("../lua/read_exact.lua")),
    commit: Script::new(concat!(
        include_str!("../lua/commit_apply.lua"),
        include_str!("../lua/commit.lua")
    )),
    join: Script::new(include_str!("../lua/join.lua")),
    signal: Script::new(include_str!("../lua/signal.lua")),
    finish: Script::new(include_str!("../lua/finish.lua")),
    mark_completion_sent: Script::new(include_str!("../lua/mark_completion_sent.lua")),
    claim_completion: Script::new(include_str!("../lua/claim_completion.lua")),
    adopt_completion: Script::new(include_str!("../lua/adopt_completion.lua")),
    final_context: Script::new(include_str!("../lua/final_context.lua")),
    // Only on an existing execution: never leave a stray key without TTL.
    mark_started: Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'published', '1') end return 1",
    ),
});

/// The fixed keys of one execution.
pub(crate) struct ExecKeys {
    pub(crate) meta: String,
    pub(crate) ctx: String,
    pub(crate) top: String,
    pub(crate) hops: String,
    pub(crate) keys: String,
}
