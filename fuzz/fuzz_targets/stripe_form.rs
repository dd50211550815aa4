//! The double's bracket-form parser (every `/v1/…` request and hosted-page post): never a
//! panic; a parsed form is well formed (no brackets in keys, no empty maps inside, indices
//! within the limit, depth within the limit) and its own encoding parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stripe_sim::form::{parse, FormValue};

const MAX_DEPTH: usize = 8;
const MAX_INDEX: usize = 10_000;

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Checks the tree's shape and writes its pairs (`name[a][b]=v`) into `out`; returns its depth.
fn walk(value: &FormValue, path: &mut Vec<String>, out: &mut Vec<String>) -> usize {
    match value {
        FormValue::Str(s) => {
            let (name, rest) = path.split_first().expect("a leaf has a name");
            let mut pair = enc(name);
            for segment in rest {
                pair.push('[');
                pair.push_str(&enc(segment));
                pair.push(']');
            }
            pair.push('=');
            pair.push_str(&enc(s));
            out.push(pair);
            0
        }
        FormValue::Map(m) => {
            assert!(path.is_empty() || !m.is_empty(), "an empty map at {path:?}");
            let mut deepest = 0;
            for (k, v) in m {
                assert!(!k.contains(['[', ']']), "key {k:?}");
                assert!(!path.is_empty() || !k.is_empty(), "an empty name");
                // A bracketed number is a list index, within the limit; a top-level name is
                // only a name, whatever it looks like.
                if let (false, Ok(i)) = (path.is_empty(), k.parse::<usize>()) {
                    assert!(i <= MAX_INDEX, "index {i}");
                }
                path.push(k.clone());
                deepest = deepest.max(walk(v, path, out));
                path.pop();
            }
            deepest + 1
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The parser takes text; bodies that are not UTF-8 are read lossily by the double.
    let input = String::from_utf8_lossy(data);
    let Ok(tree) = parse(&input) else {
        return;
    };
    let mut pairs = Vec::new();
    let depth = walk(&tree, &mut Vec::new(), &mut pairs);
    assert!(depth <= MAX_DEPTH + 1, "depth {depth}");
    let again = pairs.join("&");
    assert_eq!(parse(&again), Ok(tree), "re-encoded as {again:?}");
    // A map keyed by indices reads back as a list in numeric (not string) order.
    fn lists(value: &FormValue) {
        if let FormValue::Map(m) = value {
            if let Some(list) = value.list() {
                let mut indexed: Vec<(usize, &FormValue)> = m
                    .iter()
                    .map(|(k, v)| (k.parse().expect("a list's keys are indices"), v))
                    .collect();
                indexed.sort_by_key(|(i, _)| *i);
                let want: Vec<&FormValue> = indexed.into_iter().map(|(_, v)| v).collect();
                assert_eq!(list, want);
            }
            m.values().for_each(lists);
        }
    }
    lists(&parse(&input).expect("parsed once, parses again"));
});
