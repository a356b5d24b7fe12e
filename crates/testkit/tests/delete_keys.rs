//! `delete_keys` against the real Redis at `BATON_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/`; `scripts/services` starts it).

use baton_testkit::{delete_keys, delete_keys_blocking, unique_prefix};

fn redis_url() -> String {
    std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

async fn fill(prefix: &str, n: usize) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..n {
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:k{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    conn
}

async fn exists(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(conn)
        .await
        .unwrap()
        == 1
}

#[tokio::test]
async fn deletes_every_key_under_the_prefix_and_no_other() {
    let prefix = unique_prefix("testkit-delete");
    // More than one SCAN batch.
    let mut conn = fill(&prefix, 2500).await;
    // Shares the text but not the `prefix:` namespace.
    let neighbour = format!("{prefix}x:k");
    let _: () = redis::cmd("SET")
        .arg(&neighbour)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();

    assert_eq!(delete_keys(&redis_url(), &prefix).await.unwrap(), 2500);
    assert!(!exists(&mut conn, &format!("{prefix}:k0")).await);
    assert!(exists(&mut conn, &neighbour).await);
    assert_eq!(delete_keys(&redis_url(), &prefix).await.unwrap(), 0);

    assert_eq!(
        delete_keys(&redis_url(), &format!("{prefix}x"))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn the_blocking_variant_deletes_the_same() {
    let prefix = unique_prefix("testkit-delete-blocking");
    let mut conn = fill(&prefix, 10).await;
    let url = redis_url();
    let p = prefix.clone();
    let deleted = tokio::task::spawn_blocking(move || delete_keys_blocking(&url, &p))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted, 10);
    assert!(!exists(&mut conn, &format!("{prefix}:k9")).await);
}
