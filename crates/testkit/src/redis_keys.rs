//! Deleting every Redis key of a test or benchmark run (`<prefix>:*`).
//!
//! SCAN walks the keyspace in batches (KEYS would block Redis for everyone sharing it) and
//! UNLINK frees the values off Redis's main thread. A comma-separated URL list is a Redis
//! Cluster: every node is scanned, and each key unlinked on its own (keys of one batch live in
//! different slots; a replica answers `MOVED` for them, and its primary is scanned too).

/// Keys asked for per SCAN step.
const SCAN_COUNT: usize = 1000;

/// Deletes every key under `<prefix>:` on the Redis at `redis_url` (or on every node of the
/// cluster a URL list names); returns how many it deleted.
pub async fn delete_keys(redis_url: &str, prefix: &str) -> redis::RedisResult<usize> {
    if redis_url.contains(',') {
        let mut deleted = 0;
        for url in redis_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            deleted += delete_on_cluster_node(url, prefix).await?;
        }
        return Ok(deleted);
    }
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pattern = pattern(prefix);
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            scan_step(cursor, &pattern).query_async(&mut conn).await?;
        if !keys.is_empty() {
            let n: usize = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// [`delete_keys`] on a blocking connection, for `Drop` impls that cannot await.
pub fn delete_keys_blocking(redis_url: &str, prefix: &str) -> redis::RedisResult<usize> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_connection()?;
    let pattern = pattern(prefix);
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = scan_step(cursor, &pattern).query(&mut conn)?;
        if !keys.is_empty() {
            let n: usize = redis::cmd("UNLINK").arg(&keys).query(&mut conn)?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

async fn delete_on_cluster_node(url: &str, prefix: &str) -> redis::RedisResult<usize> {
    let client = redis::Client::open(url)?;
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return Ok(0); // a node killed by a failover test
    };
    let pattern = pattern(prefix);
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            scan_step(cursor, &pattern).query_async(&mut conn).await?;
        for key in keys {
            let n: Result<usize, _> = redis::cmd("UNLINK").arg(&key).query_async(&mut conn).await;
            deleted += n.unwrap_or(0);
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

fn pattern(prefix: &str) -> String {
    format!("{prefix}:*")
}

fn scan_step(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}
