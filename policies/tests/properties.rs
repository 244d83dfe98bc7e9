//! Bad input never panics, and every diagnostic points inside its source. Property tests
//! over arbitrary text and over mutations of the valid examples (which reach the decoder's
//! deeper paths that random bytes never do).

mod common;

use std::time::Duration;

use causeway_policies::plan::OnLimit;
use causeway_policies::{Report, Source};
use common::{repo_root, traffic_policy};
use proptest::prelude::*;

fn examples() -> Vec<String> {
    let dir = repo_root().join("examples/policies");
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .expect("examples")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("text"))
        .collect();
    texts.sort();
    texts
}

/// Checks `text` and asserts what must hold for any input.
fn check_invariants(text: &str) -> Report {
    let report = Report::check(vec![Source::new("fuzz.yaml", text)], Vec::new());
    let lines = causeway_policies::source::lines(text).count() as u32;
    for d in &report.diagnostics {
        let location = d
            .location
            .as_ref()
            .expect("every diagnostic of a source is located");
        assert!(
            location.pos.line >= 1 && location.pos.line <= lines + 1 && location.pos.column >= 1,
            "{location} outside a {lines}-line source: {}",
            d.message
        );
        assert!(!d.message.is_empty());
    }
    if report.is_ok() {
        for (_, bound) in report.set.iter() {
            let plan = &bound.plan;
            if let Some(limit) = &plan.rate_limit {
                assert!(limit.qps > 0.0 && limit.qps.is_finite() && limit.burst >= 1);
            }
            assert!(plan.retries.attempts <= 10);
            assert!(plan.retries.backoff.max_interval >= plan.retries.backoff.base_interval);
            assert!(plan.connection_pool.max_pending_requests >= 1);
            assert!(!plan.timeouts.connect.is_zero());
        }
    }
    report
}

/// Pieces that make YAML interesting: structure, anchors, tags, numbers, field names.
const VOCABULARY: &[&str] = &[
    ":",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\n",
    "  ",
    "    ",
    "&a ",
    "*a",
    "!!str ",
    "!!int ",
    "!custom ",
    "\"",
    "'",
    "#",
    "---\n",
    "...\n",
    "~",
    "null",
    "-1",
    "0",
    "1e309",
    ".nan",
    "0x10",
    "qps",
    "burst",
    "algorithm",
    "ConsistentHash",
    "port",
    "65536",
    "1h",
    "5",
    "true",
    "\t",
    "|\n",
    ">\n",
    "\u{feff}",
    "é",
    "?",
    "%YAML 1.2\n",
    "<<: ",
    "yes",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, piece: usize },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0..VOCABULARY.len())
            .prop_map(|(at, piece)| Mutation::Insert { at, piece }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
    ]
}

fn char_boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &mut String, mutation: &Mutation) {
    match *mutation {
        Mutation::Delete { at, len } => {
            let start = char_boundary(text, at);
            let end = char_boundary(text, start + len).max(start);
            text.replace_range(start..end, "");
        }
        Mutation::Insert { at, piece } => {
            let at = char_boundary(text, at);
            text.insert_str(at, VOCABULARY[piece]);
        }
        Mutation::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let i = line % lines.len();
            lines.insert(i, lines[i]);
            *text = lines.join("\n");
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.split('\n').collect();
            let n = lines.len();
            lines.swap(a % n, b % n);
            *text = lines.join("\n");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_invariants(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_soup_never_panics(pieces in proptest::collection::vec(0..VOCABULARY.len(), 0..64)) {
        let text: String = pieces.iter().map(|&i| VOCABULARY[i]).collect();
        check_invariants(&text);
    }

    #[test]
    fn mutated_examples_never_panic(
        example in 0usize..64,
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let texts = examples();
        let mut text = texts[example % texts.len()].clone();
        for m in &mutations {
            apply(&mut text, m);
        }
        check_invariants(&text);
    }

    #[test]
    fn written_rate_limits_reach_the_plan(
        qps in 0.001f64..1e6,
        burst in proptest::option::of(1u32..1_000_000),
        wait_ms in proptest::option::of(1u64..60_000),
    ) {
        let mut body = format!("  rateLimit:\n    qps: {qps}\n");
        if let Some(b) = burst {
            body.push_str(&format!("    burst: {b}\n"));
        }
        if let Some(ms) = wait_ms {
            body.push_str(&format!("    onLimit: Queue\n    maxQueueWait: {ms}ms\n"));
        }
        let report = check_invariants(&traffic_policy(&body));
        prop_assert!(report.is_ok());
        prop_assert_eq!(report.warnings(), 0);
        let plan = report.set.lookup("shop", "reviews", 80);
        let limit = plan.rate_limit.as_ref().expect("rate limit");
        prop_assert_eq!(limit.qps, qps);
        prop_assert_eq!(limit.burst, burst.unwrap_or_else(|| causeway_policies::plan::default_burst(qps)));
        match wait_ms {
            Some(ms) => prop_assert_eq!(limit.on_limit, OnLimit::Queue { max_wait: Duration::from_millis(ms) }),
            None => prop_assert_eq!(limit.on_limit, OnLimit::Reject),
        }
    }
}
