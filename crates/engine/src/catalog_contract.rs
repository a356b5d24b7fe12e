//! The `WorkflowCatalog` contract: one suite of behavioural checks that every catalog
//! implementation must pass (`baton_memory::MemoryCatalog`, `baton_redis::RedisCatalog`).
//! Feature `contract`; use it from tests:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn contract() {
//!     let catalog: Arc<dyn WorkflowCatalog> = Arc::new(MemoryCatalog::new());
//!     baton_engine::catalog_contract::workflow_catalog_contract(catalog).await;
//! }
//! ```
//!
//! Every check uses fresh workflow ids, so the suite can run against a shared catalog
//! alongside other tests. A violation panics with the check's name.

use std::collections::HashSet;
use std::sync::Arc;

use baton_core::graph::content_hash;
use serde_json::{Value, json};

use crate::contract::unique_id;
use crate::ports::{WorkflowCatalog, WorkflowVersion};

/// Tasks racing in the concurrency check.
const RACERS: u32 = 16;

fn definition(id: &str, marker: u32) -> Value {
    json!({
        "id": id,
        "nodes": [{"id": "n", "type": "log", "parameters": {"message": format!("v{marker}")}}],
        "edges": []
    })
}

/// Runs every check.
pub async fn workflow_catalog_contract(catalog: Arc<dyn WorkflowCatalog>) {
    versions_and_dedup(catalog.clone()).await;
    unknown_workflows(catalog.clone()).await;
    list_and_delete(catalog.clone()).await;
    concurrent_puts(catalog).await;
}

/// Versions count 1, 2, 3 …; the latest is the last put; a definition identical to the latest
/// adds nothing; the hash is the engine's content hash (the reference executions pin to).
pub async fn versions_and_dedup(catalog: Arc<dyn WorkflowCatalog>) {
    let id = format!("wf-{}", unique_id());
    let (one, two) = (definition(&id, 1), definition(&id, 2));

    let (v1, added) = catalog.put(&id, &one).await.expect("put v1");
    assert!(added, "versions_and_dedup: the first put adds a version");
    assert_eq!(
        (v1.workflow_id.as_str(), v1.version),
        (id.as_str(), 1),
        "versions_and_dedup: first version"
    );
    assert_eq!(
        v1.hash,
        content_hash(&one),
        "versions_and_dedup: the hash is the engine's content hash"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(&v1.created_at).is_ok(),
        "versions_and_dedup: created_at is RFC 3339: {}",
        v1.created_at
    );

    let (again, added) = catalog.put(&id, &one).await.expect("put v1 again");
    assert!(
        !added,
        "versions_and_dedup: identical to the latest adds nothing"
    );
    assert_eq!(again, v1, "versions_and_dedup: … and returns the latest");

    let (v2, added) = catalog.put(&id, &two).await.expect("put v2");
    assert!(
        added,
        "versions_and_dedup: a changed definition adds a version"
    );
    assert_eq!(v2.version, 2, "versions_and_dedup: second version");
    assert_ne!(v2.hash, v1.hash, "versions_and_dedup: different hashes");

    let (v3, added) = catalog.put(&id, &one).await.expect("put v1 as v3");
    assert!(
        added,
        "versions_and_dedup: only the latest version counts as identical"
    );
    assert_eq!(
        (v3.version, v3.hash.as_str()),
        (3, v1.hash.as_str()),
        "versions_and_dedup: an older definition again becomes version 3"
    );

    assert_eq!(
        catalog.latest(&id).await.expect("latest"),
        Some((v3.clone(), one.clone())),
        "versions_and_dedup: latest"
    );
    assert_eq!(
        catalog.get(&id, 2).await.expect("get v2"),
        Some((v2.clone(), two.clone())),
        "versions_and_dedup: get an older version"
    );
    assert_eq!(
        catalog.get(&id, 1).await.expect("get v1"),
        Some((v1.clone(), one.clone())),
        "versions_and_dedup: get the first version"
    );
    assert_eq!(
        catalog.get(&id, 4).await.expect("get v4"),
        None,
        "versions_and_dedup: a version not stored"
    );
    assert_eq!(
        catalog.get(&id, 0).await.expect("get v0"),
        None,
        "versions_and_dedup: version 0 does not exist"
    );
    assert_eq!(
        catalog.versions(&id).await.expect("versions"),
        vec![v1, v2, v3],
        "versions_and_dedup: every version, oldest first"
    );
    catalog.delete(&id).await.expect("cleanup");
}

/// Unknown workflows read as nothing, not as errors; an empty id is refused.
pub async fn unknown_workflows(catalog: Arc<dyn WorkflowCatalog>) {
    let id = format!("wf-{}", unique_id());
    assert_eq!(
        catalog.latest(&id).await.expect("latest"),
        None,
        "unknown_workflows: latest"
    );
    assert_eq!(
        catalog.get(&id, 1).await.expect("get"),
        None,
        "unknown_workflows: get"
    );
    assert_eq!(
        catalog.versions(&id).await.expect("versions"),
        Vec::<WorkflowVersion>::new(),
        "unknown_workflows: versions"
    );
    assert!(
        !catalog.delete(&id).await.expect("delete"),
        "unknown_workflows: delete reports false"
    );
    assert!(
        catalog.put("", &definition("x", 1)).await.is_err(),
        "unknown_workflows: an empty workflow id is refused"
    );
}

/// `list` gives the latest version of every workflow ordered by id; `delete` removes a
/// workflow and all its versions, after which a put starts again.
pub async fn list_and_delete(catalog: Arc<dyn WorkflowCatalog>) {
    let run = unique_id();
    let (a, b) = (format!("list-{run}-a"), format!("list-{run}-b"));
    catalog.put(&b, &definition(&b, 1)).await.expect("put b");
    catalog.put(&a, &definition(&a, 1)).await.expect("put a1");
    let (a2, _) = catalog.put(&a, &definition(&a, 2)).await.expect("put a2");
    let (b1, _) = catalog
        .latest(&b)
        .await
        .expect("latest b")
        .expect("b exists");

    let ours: Vec<WorkflowVersion> = catalog
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|v| v.workflow_id.starts_with(&format!("list-{run}-")))
        .collect();
    assert_eq!(
        ours,
        vec![a2, b1.clone()],
        "list_and_delete: the latest of each, ordered by id"
    );

    assert!(
        catalog.delete(&a).await.expect("delete a"),
        "list_and_delete: delete reports true"
    );
    assert!(
        !catalog.delete(&a).await.expect("delete a again"),
        "list_and_delete: a second delete reports false"
    );
    assert_eq!(
        catalog.latest(&a).await.expect("latest a"),
        None,
        "list_and_delete: gone"
    );
    assert_eq!(
        catalog.get(&a, 1).await.expect("get a1"),
        None,
        "list_and_delete: every version gone"
    );
    let left: Vec<String> = catalog
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.workflow_id)
        .filter(|id| id.starts_with(&format!("list-{run}-")))
        .collect();
    assert_eq!(left, vec![b.clone()], "list_and_delete: only b is left");
    assert_eq!(
        catalog.latest(&b).await.expect("latest b"),
        Some((b1, definition(&b, 1))),
        "list_and_delete: other workflows untouched"
    );
    catalog.delete(&b).await.expect("cleanup");
}

/// Concurrent puts of different definitions never share a version number: the versions are
/// exactly 1..=N, each with the hash of the definition its put returned.
pub async fn concurrent_puts(catalog: Arc<dyn WorkflowCatalog>) {
    let id = format!("race-{}", unique_id());
    let mut tasks = Vec::new();
    for marker in 0..RACERS {
        let catalog = catalog.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let doc = definition(&id, marker);
            let (v, added) = catalog.put(&id, &doc).await.expect("put");
            (v, added, doc)
        }));
    }
    let mut numbers = HashSet::new();
    for task in tasks {
        let (v, added, doc) = task.await.expect("task");
        assert!(added, "concurrent_puts: every definition differs");
        assert_eq!(v.hash, content_hash(&doc), "concurrent_puts: hash");
        assert!(
            numbers.insert(v.version),
            "concurrent_puts: version {} handed out twice",
            v.version
        );
        let (stored, stored_doc) = catalog
            .get(&id, v.version)
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(
            (stored, stored_doc),
            (v, doc),
            "concurrent_puts: a version holds its own definition"
        );
    }
    assert_eq!(
        numbers,
        (1..=RACERS).collect::<HashSet<_>>(),
        "concurrent_puts: versions 1..=N"
    );
    catalog.delete(&id).await.expect("cleanup");
}
