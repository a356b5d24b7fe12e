//! Ids and key prefixes unique to one test or one benchmark run, so runs sharing RabbitMQ and
//! Redis never see each other's queues or keys.

/// `prefix` followed by 32 random hex digits (a v4 UUID without dashes).
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// `prefix` followed by the first `hex_digits` (at most 32) random hex digits: for names that
/// people read, where a shorter id is unique enough.
pub fn short_unique_id(prefix: &str, hex_digits: usize) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &hex[..hex_digits.min(hex.len())])
}

/// A Redis key prefix for one test: `baton-test:<test_name>:<32 hex digits>`.
pub fn unique_prefix(test_name: &str) -> String {
    unique_id(&format!("baton-test:{test_name}:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_prefix_and_hex_digits() {
        let id = unique_id("t-");
        assert_eq!(id.len(), 2 + 32);
        assert!(id.starts_with("t-"));
        assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(unique_id(""), unique_id(""));
    }

    #[test]
    fn short_ids_are_cut_to_the_digits_asked_for() {
        let id = short_unique_id("bench-", 10);
        assert_eq!(id.len(), 6 + 10);
        assert!(id.starts_with("bench-"));
        assert_eq!(short_unique_id("", 99).len(), 32);
    }

    #[test]
    fn prefixes_name_the_test() {
        let p = unique_prefix("joins");
        assert!(p.starts_with("baton-test:joins:"));
        assert_eq!(p.len(), "baton-test:joins:".len() + 32);
    }
}
