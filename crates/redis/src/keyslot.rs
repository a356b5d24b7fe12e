//! The Redis Cluster slot of a key (CRC16/XMODEM of its hash tag, as Redis computes it), and the
//! hash tag itself: the replication fence finds a write's primary with them, and the slot test
//! (`slots.rs`) checks every script's keys share a slot.

/// Slots of a Redis Cluster.
pub(crate) const SLOTS: u16 = 16_384;

/// CRC16/XMODEM, the checksum Redis Cluster maps keys to slots with.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |mut crc, b| {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// The non-empty content of the key's first `{…}`, if it has one (what Redis hashes instead of
/// the whole key).
pub(crate) fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    rest.find('}')
        .filter(|&close| close > 0)
        .map(|close| &rest[..close])
}

/// The slot of `key`: the hash tag's content if the key has a non-empty `{…}`, else the key.
pub fn slot(key: &str) -> u16 {
    crc16(hash_tag(key).unwrap_or(key).as_bytes()) % SLOTS
}
