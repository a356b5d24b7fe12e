//! How keys are spread over a Redis Cluster: the bucket of an id (FNV-1a, stable across
//! versions and platforms, modulo `BATON_REDIS_BUCKETS`), shared by the durable timers and the
//! master's history, and the cluster slot of a key (CRC16 of its hash tag, as Redis computes
//! it), for the tests that check every script keeps its keys in one slot.

/// Buckets when `BATON_REDIS_BUCKETS` is not set.
pub const DEFAULT_BUCKETS: u32 = 16;

/// FNV-1a, 32 bits: stable across versions and platforms (a stored key's bucket must not move).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The bucket of `id` among `buckets` (at least 1): `fnv1a(id) % buckets`.
pub fn bucket_of(id: &str, buckets: u32) -> u32 {
    fnv1a(id.as_bytes()) % buckets.max(1)
}

/// The Redis Cluster slot of `key`: its hash tag's content if the key has a non-empty `{…}`,
/// else the whole key.
pub use crate::keyslot::slot as cluster_slot;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyslot::crc16;

    #[test]
    fn the_bucket_hash_is_stable() {
        // FNV-1a test vectors: a stored key's bucket must never move between versions.
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
        assert_eq!(bucket_of("foobar", 16), 0xbf9c_f968 % 16);
        assert_eq!(bucket_of("foobar", 0), 0, "no buckets counts as one");
    }

    #[test]
    fn the_slot_function_matches_redis() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(cluster_slot("foo"), 12_182);
        assert_eq!(
            cluster_slot("{user1000}.following"),
            cluster_slot("user1000")
        );
        assert_eq!(
            cluster_slot("foo{}{bar}"),
            crc16(b"foo{}{bar}") % 16_384,
            "an empty tag hashes the whole key"
        );
    }
}
