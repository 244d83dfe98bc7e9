//! "Did you mean …?" for misspelt keys and values.
//!
//! Uses the optimal string alignment distance (Levenshtein plus swaps of neighbours), so a
//! swapped pair such as `burts` for `burst` costs one edit, as a typist would expect.

/// The candidate closest to `input`, if it is close enough to be a likely typo: the same
/// word in another case, or within one edit per three characters.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = if candidate.eq_ignore_ascii_case(input) {
            0
        } else {
            osa_distance(&lower, &candidate.to_ascii_lowercase()).max(1)
        };
        let limit = (input.chars().count().max(candidate.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`.
pub fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: i-2, i-1, i.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(osa_distance("burts", "burst"), 1);
        assert_eq!(osa_distance("qps", "qps"), 0);
        assert_eq!(osa_distance("", "abc"), 3);
        assert_eq!(osa_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions_for_typos_only() {
        let fields = [
            "qps",
            "burst",
            "scope",
            "enforceAt",
            "onLimit",
            "maxQueueWait",
        ];
        assert_eq!(closest("burts", fields), Some("burst"));
        assert_eq!(closest("Burst", fields), Some("burst"));
        assert_eq!(closest("enforceat", fields), Some("enforceAt"));
        assert_eq!(closest("maxQueueWiat", fields), Some("maxQueueWait"));
        assert_eq!(closest("timeout", fields), None);
        assert_eq!(closest("x", fields), None);
        assert_eq!(
            closest("roundrobin", ["RoundRobin", "Random"]),
            Some("RoundRobin")
        );
    }
}
