//! Stripe's request encoding: `application/x-www-form-urlencoded` (or a query string) whose keys
//! use brackets for nesting: `metadata[plan]=pro`, `items[0][price]=price_1`, `expand[]=customer`.
//!
//! The parser turns such input into a [`FormValue`] tree. Lists are maps keyed by their index
//! (`expand[]` gets the next free index); [`FormValue::list`] reads them back in numeric order.
//! Nothing here panics on garbage: malformed keys and absurd nesting are errors.

use std::collections::BTreeMap;

/// How deep brackets may nest; Stripe's own limit is in this region and nothing we accept needs more.
const MAX_DEPTH: usize = 8;
/// How many pairs one request may carry.
const MAX_PAIRS: usize = 2_000;
/// The largest index accepted in `x[N]`; bigger ones are almost certainly garbage.
const MAX_INDEX: usize = 10_000;

/// A parsed form: strings at the leaves, maps (objects and lists alike) inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormValue {
    Str(String),
    Map(BTreeMap<String, FormValue>),
}

/// Why a form could not be parsed; the text is safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("invalid parameter name `{0}`")]
    BadKey(String),
    #[error("parameter `{0}` is nested too deeply")]
    TooDeep(String),
    #[error("too many parameters")]
    TooMany,
    #[error("parameter `{0}` is given both as a value and as a hash")]
    Conflict(String),
}

/// One step of a bracketed key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    /// `[]`: append to the list.
    Append,
}

impl FormValue {
    /// An empty map, the value of an empty form.
    pub fn empty() -> Self {
        FormValue::Map(BTreeMap::new())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FormValue::Str(s) => Some(s),
            FormValue::Map(_) => None,
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<String, FormValue>> {
        match self {
            FormValue::Map(m) => Some(m),
            FormValue::Str(_) => None,
        }
    }

    /// The child at `key`, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&FormValue> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// The elements of a list in index order. A map whose keys are not all indices is not a
    /// list; a single string counts as a one-element list (`expand=customer`).
    pub fn list(&self) -> Option<Vec<&FormValue>> {
        match self {
            FormValue::Str(_) => Some(vec![self]),
            FormValue::Map(m) => {
                let mut indexed = Vec::with_capacity(m.len());
                for (k, v) in m {
                    indexed.push((k.parse::<usize>().ok()?, v));
                }
                indexed.sort_by_key(|(i, _)| *i);
                Some(indexed.into_iter().map(|(_, v)| v).collect())
            }
        }
    }

    /// A canonical JSON rendering (maps are sorted), for comparing two requests' parameters.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FormValue::Str(s) => serde_json::Value::String(s.clone()),
            FormValue::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

/// Parses `a=1&b[c]=2&d[0][e]=3&f[]=4` (percent-decoding, `+` as space) into a tree.
pub fn parse(input: &str) -> Result<FormValue, FormError> {
    let mut root = BTreeMap::new();
    let mut pairs = 0usize;
    for (raw_key, value) in url::form_urlencoded::parse(input.as_bytes()) {
        if raw_key.is_empty() && value.is_empty() {
            continue;
        }
        pairs += 1;
        if pairs > MAX_PAIRS {
            return Err(FormError::TooMany);
        }
        let (name, segments) = split_key(&raw_key)?;
        insert(&mut root, &raw_key, name, &segments, value.into_owned())?;
    }
    Ok(FormValue::Map(root))
}

/// `items[0][price]` → (`items`, [Key("0"), Key("price")]).
fn split_key(key: &str) -> Result<(String, Vec<Segment>), FormError> {
    let bad = || FormError::BadKey(key.to_string());
    let (name, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if name.is_empty() || name.contains(']') {
        return Err(bad());
    }
    let mut segments = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(bad)?;
        let close = inner.find(']').ok_or_else(bad)?;
        let segment = &inner[..close];
        if segment.contains('[') {
            return Err(bad());
        }
        segments.push(if segment.is_empty() {
            Segment::Append
        } else {
            Segment::Key(segment.to_string())
        });
        if segments.len() > MAX_DEPTH {
            return Err(FormError::TooDeep(key.to_string()));
        }
        rest = &inner[close + 1..];
    }
    Ok((name.to_string(), segments))
}

fn insert(
    map: &mut BTreeMap<String, FormValue>,
    full_key: &str,
    name: String,
    rest: &[Segment],
    value: String,
) -> Result<(), FormError> {
    let Some((next, deeper)) = rest.split_first() else {
        // A repeated scalar keeps the last value, as most form decoders do.
        if let Some(FormValue::Map(existing)) = map.get(&name) {
            if !existing.is_empty() {
                return Err(FormError::Conflict(full_key.to_string()));
            }
        }
        map.insert(name, FormValue::Str(value));
        return Ok(());
    };
    let child = map
        .entry(name)
        .or_insert_with(|| FormValue::Map(BTreeMap::new()));
    let FormValue::Map(child) = child else {
        return Err(FormError::Conflict(full_key.to_string()));
    };
    let key = match next {
        Segment::Key(k) => {
            if let Ok(i) = k.parse::<usize>() {
                if i > MAX_INDEX {
                    return Err(FormError::BadKey(full_key.to_string()));
                }
            }
            k.clone()
        }
        // `x[][k]=…` appends a new element only when this key is not yet in the last element;
        // that is how `items[][price]=a&items[][quantity]=1` builds one element.
        Segment::Append => append_slot(child, deeper),
    };
    insert(child, full_key, key, deeper, value)
}

/// The index an `[]` segment refers to: the last element if it can still take `deeper`,
/// otherwise a new one.
fn append_slot(list: &BTreeMap<String, FormValue>, deeper: &[Segment]) -> String {
    let len = list.len();
    if let (Some(Segment::Key(k)), Some(last)) = (deeper.first(), len.checked_sub(1)) {
        if let Some(FormValue::Map(elem)) = list.get(&last.to_string()) {
            if !elem.contains_key(k) {
                return last.to_string();
            }
        }
    }
    len.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> FormValue {
        FormValue::Str(v.to_string())
    }

    #[test]
    fn flat_nested_and_indexed_keys() {
        let f = parse(
            "customer=cus_1&flow_data[type]=subscription_cancel\
             &flow_data[subscription_cancel][subscription]=sub_1\
             &line_items[0][price]=price_a&line_items[0][quantity]=1&line_items[1][price]=price_b\
             &subscription_data[trial_period_days]=14",
        )
        .expect("parses");
        assert_eq!(f.get("customer"), Some(&s("cus_1")));
        let flow = f.get("flow_data").expect("flow_data");
        assert_eq!(flow.get("type"), Some(&s("subscription_cancel")));
        assert_eq!(
            flow.get("subscription_cancel")
                .and_then(|c| c.get("subscription")),
            Some(&s("sub_1"))
        );
        let items = f.get("line_items").and_then(|l| l.list()).expect("list");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].get("price"), Some(&s("price_a")));
        assert_eq!(items[0].get("quantity"), Some(&s("1")));
        assert_eq!(items[1].get("price"), Some(&s("price_b")));
        assert_eq!(
            f.get("subscription_data")
                .and_then(|d| d.get("trial_period_days")),
            Some(&s("14"))
        );
    }

    #[test]
    fn lists_keep_numeric_order_past_nine() {
        let input: String = (0..12)
            .map(|i| format!("expand[{i}]=e{i}"))
            .collect::<Vec<_>>()
            .join("&");
        let f = parse(&input).expect("parses");
        let got: Vec<_> = f
            .get("expand")
            .and_then(|e| e.list())
            .expect("list")
            .into_iter()
            .filter_map(|v| v.as_str())
            .collect();
        let want: Vec<String> = (0..12).map(|i| format!("e{i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn empty_brackets_append() {
        let f = parse("expand[]=customer&expand[]=latest_invoice").expect("parses");
        let list = f.get("expand").and_then(|e| e.list()).expect("list");
        assert_eq!(list, vec![&s("customer"), &s("latest_invoice")]);

        let f = parse("items[][price]=a&items[][quantity]=2&items[][price]=b").expect("parses");
        let items = f.get("items").and_then(|e| e.list()).expect("list");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].get("quantity"), Some(&s("2")));
        assert_eq!(items[1].get("price"), Some(&s("b")));
    }

    #[test]
    fn decoding_matches_what_serde_qs_sends() {
        let f = parse(
            "metadata[user+id]=a%26b%3Dc%2Bd%25&email=a%2Bb@ex.com+%C3%A9\
             &return_url=http://127.0.0.1:3000/x?y%3D1%23z&expand%5B0%5D=customer",
        )
        .expect("parses");
        assert_eq!(
            f.get("metadata").and_then(|m| m.get("user id")),
            Some(&s("a&b=c+d%"))
        );
        assert_eq!(f.get("email"), Some(&s("a+b@ex.com é")));
        assert_eq!(
            f.get("return_url"),
            Some(&s("http://127.0.0.1:3000/x?y=1#z"))
        );
        assert_eq!(
            f.get("expand").and_then(|e| e.list()),
            Some(vec![&s("customer")])
        );
    }

    #[test]
    fn empty_input_and_empty_values() {
        assert_eq!(parse(""), Ok(FormValue::empty()));
        assert_eq!(parse("&&"), Ok(FormValue::empty()));
        let f = parse("cancel_at=&metadata[plan]=").expect("parses");
        assert_eq!(f.get("cancel_at"), Some(&s("")));
        assert_eq!(f.get("metadata").and_then(|m| m.get("plan")), Some(&s("")));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let cases = [
            "[x]=1",
            "a[b=1",
            "a]=1",
            "a[b]c=1",
            "a[[b]]=1",
            "a[b][c=1",
            "=1",
            "a[99999999]=1",
        ];
        for case in cases {
            assert!(
                matches!(parse(case), Err(FormError::BadKey(_))),
                "{case}: {:?}",
                parse(case)
            );
        }
        let deep = format!("a{}=1", "[x]".repeat(MAX_DEPTH + 1));
        assert!(matches!(parse(&deep), Err(FormError::TooDeep(_))));
        assert!(matches!(parse("a=1&a[b]=2"), Err(FormError::Conflict(_))));
        assert!(matches!(parse("a[b]=2&a=1"), Err(FormError::Conflict(_))));
        let many: String = (0..MAX_PAIRS + 1)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(parse(&many), Err(FormError::TooMany));
        // Invalid percent escapes and bad UTF-8 decode leniently instead of failing.
        assert!(parse("a=%zz&b=%ff%fe").is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every short string over the interesting alphabet.
        let alphabet = ['a', '[', ']', '=', '&', '%', '0', '+'];
        let mut buf = String::new();
        for n in 0..(alphabet.len().pow(5)) {
            buf.clear();
            let mut k = n;
            for _ in 0..5 {
                buf.push(alphabet[k % alphabet.len()]);
                k /= alphabet.len();
            }
            let _ = parse(&buf);
        }
    }

    #[test]
    fn a_map_that_is_not_indexed_is_not_a_list() {
        let f = parse("metadata[a]=1&metadata[0]=2").expect("parses");
        assert_eq!(f.get("metadata").and_then(|m| m.list()), None);
    }
}
