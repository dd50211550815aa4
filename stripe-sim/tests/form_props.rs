//! Property tests of the double's bracket-form parser (`stripe_sim::form::parse`), which reads
//! every `/v1/…` request and every hosted-page form post (`hosted::parse_form` is that parser
//! with garbage mapped to an empty form).
//!
//! A tree of maps, lists and strings, encoded the way Stripe's clients and browsers encode it,
//! parses back to that tree; and whatever it parses out of arbitrary input encodes and parses
//! back to itself.

use std::collections::BTreeMap;

use proptest::prelude::*;
use stripe_sim::form::{parse, FormError, FormValue};

/// The parser's limits (private constants in `form.rs`).
const MAX_DEPTH: usize = 8;
const MAX_INDEX: usize = 10_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Percent-encodes one key part or value as `application/x-www-form-urlencoded` does.
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `name[a][b]`, each part encoded; the brackets literal or percent-encoded (`%5B…%5D`, what
/// `serde_qs` and some browsers send), which the parser must treat alike.
fn key(name: &str, path: &[String], encoded_brackets: bool) -> String {
    let (open, close) = if encoded_brackets {
        ("%5B", "%5D")
    } else {
        ("[", "]")
    };
    let mut k = enc(name);
    for segment in path {
        k.push_str(open);
        k.push_str(&enc(segment));
        k.push_str(close);
    }
    k
}

/// Every leaf of `value` as (path, string), depth first.
fn leaves(value: &FormValue, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    match value {
        FormValue::Str(s) => out.push((path.clone(), s.clone())),
        FormValue::Map(m) => {
            for (k, v) in m {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }
        }
    }
}

/// The form pairs a client sends for `tree` (a root map), indices written out (`items[0][price]`).
fn pairs_of(tree: &FormValue) -> Vec<(String, String)> {
    let mut out = Vec::new();
    leaves(tree, &mut Vec::new(), &mut out);
    out.into_iter()
        .map(|(path, value)| {
            let (name, rest) = path.split_first().expect("a root map has named leaves");
            (key(name, rest, false), value)
        })
        .collect()
}

fn join(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A key as a client could name it: never brackets (they are the syntax), and a number only
/// when it is a list index the parser accepts.
fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_][a-z0-9_]{0,10}",
        // Anything else a key may hold once percent-encoded: spaces, `&`, `=`, `+`, `%`, non-ASCII.
        2 => "[a-zA-Z &=+%#?/é€😀.-]{1,8}",
        1 => (0..=MAX_INDEX).prop_map(|i| i.to_string()),
    ]
    .prop_filter("not all digits beyond the index limit", |k| {
        k.parse::<usize>().map_or(true, |i| i <= MAX_INDEX)
    })
}

/// Any value a form field can carry, the awkward characters included.
fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_]{0,12}",
        "[ &=+%#\\[\\]?/\"'<>é€😀\\\\]{0,12}",
        any::<String>(),
    ]
}

/// A tree as the parser builds it: strings at the leaves, non-empty maps inside, at most
/// `MAX_DEPTH` levels of brackets under a name.
fn tree_strategy() -> impl Strategy<Value = FormValue> {
    let leaf = value_strategy().prop_map(FormValue::Str);
    let nested = leaf.prop_recursive(4, 48, 4, |inner| {
        prop::collection::btree_map(key_strategy(), inner, 1..4).prop_map(FormValue::Map)
    });
    // A top-level name is never an index, so a long number is a name like any other.
    let name = prop_oneof![4 => key_strategy(), 1 => "[0-9]{5,20}"];
    prop::collection::btree_map(name, nested, 0..5).prop_map(FormValue::Map)
}

fn depth(value: &FormValue) -> usize {
    match value {
        FormValue::Str(_) => 0,
        FormValue::Map(m) => 1 + m.values().map(depth).max().unwrap_or(0),
    }
}

/// What every successfully parsed form satisfies.
fn assert_well_formed(value: &FormValue, is_root: bool) -> Result<(), TestCaseError> {
    if let FormValue::Map(m) = value {
        prop_assert!(is_root || !m.is_empty(), "an empty map below the root");
        for (k, v) in m {
            prop_assert!(!k.contains('[') && !k.contains(']'), "key {k:?}");
            prop_assert!(!(is_root && k.is_empty()), "an empty name");
            // A bracketed number is a list index; a top-level name is only a name.
            if let (false, Ok(i)) = (is_root, k.parse::<usize>()) {
                prop_assert!(i <= MAX_INDEX, "index {i}");
            }
            assert_well_formed(v, false)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// A tree sent with its indices written out parses back to itself, in any pair order and
    /// with brackets literal or percent-encoded.
    #[test]
    fn an_encoded_tree_parses_to_that_tree(
        (tree, shuffled) in tree_strategy().prop_flat_map(|tree| {
            let mut out = Vec::new();
            leaves(&tree, &mut Vec::new(), &mut out);
            (Just(tree), Just(out).prop_shuffle())
        }),
        encoded_brackets in any::<bool>(),
    ) {
        let pairs: Vec<(String, String)> = shuffled
            .into_iter()
            .map(|(path, value)| {
                let (name, rest) = path.split_first().expect("named");
                (key(name, rest, encoded_brackets), value)
            })
            .collect();
        let body = join(&pairs);
        prop_assert_eq!(parse(&body), Ok(tree.clone()), "body: {}", body);
        // Empty pairs (`&&`, a trailing `&`) are nothing.
        prop_assert_eq!(parse(&format!("&{body}&&")), Ok(tree));
    }

    /// `expand[]=a&expand[]=b`: `[]` appends, and the list reads back in order.
    #[test]
    fn empty_brackets_append_scalars_in_order(
        name in "[a-z_]{1,8}",
        items in prop::collection::vec(value_strategy(), 1..15),
    ) {
        let body = items
            .iter()
            .map(|v| format!("{name}[]={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let parsed = parse(&body).map_err(|e| TestCaseError::fail(format!("{e}: {body}")))?;
        let list: Vec<&str> = parsed
            .get(&name)
            .and_then(FormValue::list)
            .expect("a list")
            .into_iter()
            .map(|v| v.as_str().expect("strings"))
            .collect();
        let want: Vec<&str> = items.iter().map(String::as_str).collect();
        prop_assert_eq!(list, want);
    }

    /// `items[][price]=a&items[][quantity]=1&items[][price]=b`: each element's fields, sent in
    /// the same order, fill one element before the next begins.
    #[test]
    fn empty_brackets_build_one_element_per_group(
        fields in prop::collection::btree_set("[a-z_]{1,6}", 1..4),
        rows in prop::collection::vec(prop::collection::vec(value_strategy(), 4), 1..6),
    ) {
        let fields: Vec<String> = fields.into_iter().collect();
        let mut pairs = Vec::new();
        let mut want = Vec::new();
        for row in &rows {
            let mut element = BTreeMap::new();
            for (field, value) in fields.iter().zip(row) {
                pairs.push((format!("items[][{field}]"), value.clone()));
                element.insert(field.clone(), FormValue::Str(value.clone()));
            }
            want.push(FormValue::Map(element));
        }
        let body = join(&pairs);
        let parsed = parse(&body).map_err(|e| TestCaseError::fail(format!("{e}: {body}")))?;
        let got: Vec<FormValue> = parsed
            .get("items")
            .and_then(FormValue::list)
            .expect("a list")
            .into_iter()
            .cloned()
            .collect();
        prop_assert_eq!(got, want);
    }

    /// Lists with explicit indices read back in numeric order, whatever order they were sent in.
    #[test]
    fn indexed_lists_read_back_in_numeric_order(
        indices in prop::collection::btree_set(0..=MAX_INDEX, 1..12),
        reverse in any::<bool>(),
    ) {
        let mut sent: Vec<usize> = indices.iter().copied().collect();
        if reverse {
            sent.reverse();
        }
        let body = sent
            .iter()
            .map(|i| format!("expand[{i}]=v{i}"))
            .collect::<Vec<_>>()
            .join("&");
        let parsed = parse(&body).map_err(|e| TestCaseError::fail(format!("{e}: {body}")))?;
        let got: Vec<String> = parsed
            .get("expand")
            .and_then(FormValue::list)
            .expect("a list")
            .into_iter()
            .map(|v| v.as_str().expect("strings").to_owned())
            .collect();
        let want: Vec<String> = indices.iter().map(|i| format!("v{i}")).collect();
        prop_assert_eq!(got, want);
    }

    /// Garbage never panics; what parses is well formed, no deeper than the limit, and its own
    /// encoding parses back to it.
    #[test]
    fn arbitrary_input_parses_to_a_stable_tree_or_an_error(
        input in prop_oneof![
            any::<String>(),
            // Mostly the syntax, so the bracket paths get exercised.
            "[a-c0-2\\[\\]=&%+]{0,40}",
            "(([a-c]|%5[BbDd]|\\[[a-c0-9]{0,2}\\]){1,6}=[a-c%]{0,3}&){0,8}",
        ],
    ) {
        match parse(&input) {
            Ok(tree) => {
                assert_well_formed(&tree, true)?;
                prop_assert!(depth(&tree) <= MAX_DEPTH + 1, "depth {}", depth(&tree));
                let again = join(&pairs_of(&tree));
                prop_assert_eq!(parse(&again), Ok(tree), "re-encoded: {}", again);
            }
            Err(FormError::BadKey(k) | FormError::TooDeep(k) | FormError::Conflict(k)) => {
                // The key the error names came from the input (decoded).
                prop_assert!(!k.is_empty() || input.contains('='), "{input:?}");
            }
            Err(FormError::TooMany) => prop_assert!(input.matches('&').count() >= 2_000),
        }
    }

    /// A name given both as a value and as a hash is refused, in either order.
    #[test]
    fn a_value_and_a_hash_under_one_name_conflict(
        name in "[a-z_]{1,8}",
        sub in "[a-z_]{1,8}",
        scalar_first in any::<bool>(),
    ) {
        let (a, b) = (format!("{name}=1"), format!("{name}[{sub}]=2"));
        let body = if scalar_first { format!("{a}&{b}") } else { format!("{b}&{a}") };
        prop_assert!(matches!(parse(&body), Err(FormError::Conflict(_))), "{}", body);
    }
}

#[test]
fn nesting_beyond_the_limit_is_refused_and_at_it_accepted() {
    let at_limit = format!("a{}=1", "[x]".repeat(MAX_DEPTH));
    assert!(parse(&at_limit).is_ok(), "{at_limit}");
    let beyond = format!("a{}=1", "[x]".repeat(MAX_DEPTH + 1));
    assert!(matches!(parse(&beyond), Err(FormError::TooDeep(_))));
}
