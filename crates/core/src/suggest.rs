//! "Did you mean": the known name closest to a misspelled one, by edit distance, or by a shared
//! stem (`retries` -> `retry`, `timeout` -> `timeout_ms`).

/// Levenshtein distance over characters.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidate closest to `name` when it is close enough to be a plausible misspelling:
/// an edit distance of at most a third of the length (at least 2), or one name a prefix of the
/// other, or a shared stem of 4+ characters covering most of the shorter name.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let cl = c.to_ascii_lowercase();
        let d = distance(&lower, &cl);
        let shorter = lower.chars().count().min(cl.chars().count());
        let stem = lower
            .chars()
            .zip(cl.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let plausible = d <= (lower.chars().count() / 3).max(2)
            || (shorter >= 3 && (lower.starts_with(&cl) || cl.starts_with(&lower)))
            || (stem >= 4 && stem * 3 >= shorter * 2);
        if plausible && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_misspelled_field() {
        let node = [
            "id",
            "name",
            "type",
            "retry",
            "timeout_ms",
            "error",
            "parameters",
        ];
        assert_eq!(closest("timeout", node.into_iter()), Some("timeout_ms"));
        assert_eq!(closest("retries", node.into_iter()), Some("retry"));
        assert_eq!(closest("paramters", node.into_iter()), Some("parameters"));
        let retry = [
            "max_attempts",
            "initial_delay_ms",
            "max_delay_ms",
            "multiplier",
        ];
        assert_eq!(
            closest("max_atempts", retry.into_iter()),
            Some("max_attempts")
        );
    }

    #[test]
    fn suggests_nothing_for_an_unrelated_name() {
        assert_eq!(closest("zzzzzz", ["id", "name", "type"].into_iter()), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
