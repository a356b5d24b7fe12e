//! Tests only: every script keeps all its keys in one Redis Cluster slot. Computes the CRC16
//! slot (with hash tags, as Redis does) of each key each script is called with, for sample
//! execution ids, timer ids and workflow ids. The cluster contract test (`tests/cluster.rs`)
//! checks the same on a real cluster, where a cross-slot call fails with `CROSSSLOT`.

use std::collections::HashSet;

use crate::keyslot::slot;
use crate::{RedisOptions, RedisStore};

fn one_slot(script: &str, keys: &[String]) {
    let slots: HashSet<u16> = keys.iter().map(|k| slot(k)).collect();
    assert_eq!(
        slots.len(),
        1,
        "{script}: keys {keys:?} span slots {slots:?}"
    );
}

#[tokio::test]
async fn every_script_call_keeps_its_keys_in_one_slot() {
    let url =
        std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let options = RedisOptions {
        key_prefix: "slotcheck".into(),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&url, options)
        .await
        .expect("Redis (scripts/services)");
    for execution in [
        "exec-1",
        "0193a7c2-5b1e-7c3d-9f00-123456789abc",
        "e|with|bars",
    ] {
        let k = store.keys(execution);
        let all = [&k.meta, &k.ctx, &k.top, &k.hops, &k.keys];
        let fixed: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        // start, read, begin_hop, commit, finish (plus its dynamic join keys), ledger scripts.
        let mut finish = fixed.clone();
        finish.push(store.exec_key(execution, "join:a{b}c"));
        finish.push(store.exec_key(execution, "cancelled"));
        one_slot("finish", &finish);
        one_slot(
            "signal",
            &[
                k.meta.clone(),
                store.exec_key(execution, "signals"),
                k.keys.clone(),
            ],
        );
        one_slot(
            "join",
            &[
                k.meta.clone(),
                store.exec_key(execution, "join:j"),
                k.keys.clone(),
            ],
        );
    }
    let timers = store.timers();
    for id in ["exec-1|n|0", "exec-2|retry|3", "no-bar"] {
        for shard in timers.keys_of(id) {
            one_slot("timer_schedule/claim/complete", &shard);
        }
    }
    let catalog = store.catalog();
    one_slot(
        "catalog_put/delete",
        &[catalog.ids_key(), catalog.versions_key("wf-{odd}")],
    );
}
