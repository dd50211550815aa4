//! Property tests of the parsers fed by strangers: the `Stripe-Signature` header and its
//! check, the webhook event envelope, every server function's form body (decoded the way
//! leptos decodes it, and posted through the real router), the `next=` redirect target, and
//! the trusted-proxy settings and forwarding headers.
//!
//! Each property says what a sender would notice: a signed delivery is accepted and a changed
//! one is not, a form a browser encodes reads back as typed, garbage is a 4xx and never a 5xx,
//! a redirect never leaves the site. `scripts/fuzz` runs coverage-guided fuzzing of the same
//! parsers; these run with every `cargo test`.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use axum::{
    body::{Body, Bytes},
    http::{header, HeaderMap, HeaderValue, Request},
};
use billfold::{
    accounts::SignUp,
    auth::{validate::safe_next, LogIn, LogOut},
    billing::api::{CreateBillingAccount, GetBillingSummary, OpenBillingPortal, StartCheckout},
    config::parse_trusted_proxies,
    config::ProxyHeader,
    error::AppError,
    web::client::client_ip,
    webhooks::{
        event::{Envelope, Kind, NotAnEvent, Scope},
        signature::{verify, SignatureError, SignatureHeader},
    },
};
use futures_util::FutureExt;
use ipnet::IpNet;
use leptos::server_fn::{
    codec::{FromReq, PostUrl},
    ServerFn,
};
use proptest::{
    collection::{btree_map, vec},
    option,
    prelude::*,
    test_runner::TestRunner,
};
use serde_json::{json, Value};
use stripe_sim::signature::{header_value, v1_signature};

/// Modest case counts: the whole file runs in seconds on two cores.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings with the characters that trip parsers up: separators, escapes, quotes, controls,
/// non-ASCII, as well as anything at all.
fn awkward_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.@-]{0,16}",
        "[ ,;=&+%#\\[\\]?/\\\\\"'<>\t\r\n\u{0}\u{7f}é€😀a-c0-2]{0,16}",
        any::<String>(),
    ]
}

// ----- Stripe-Signature ---------------------------------------------------------------------

/// `t=<t>,v1=<hex>…`, each item maybe padded with spaces.
fn header_of(items: &[String], spaced: bool) -> String {
    items.join(if spaced { " , " } else { "," })
}

/// Items a header may carry besides `t` and `v1`, which the parser must pass over: other
/// schemes, and `v1`s that are not hex (they can never match, and must not spoil the others).
fn ignored_item() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{0,64}".prop_map(|h| format!("v0={h}")),
        "[a-su-z][a-z]{0,3}=[a-z0-9]{0,8}",
        "[g-z]{1,8}".prop_map(|h| format!("v1={h}")),
        "[0-9a-f]{3}".prop_map(|h| format!("v1={h}")),
    ]
}

/// What a parsed header looks like written back out.
fn header_string(h: &SignatureHeader) -> String {
    let mut items = vec![format!("t={}", h.timestamp)];
    items.extend(h.v1.iter().map(|s| format!("v1={}", hex::encode(s))));
    items.join(",")
}

const TOLERANCE: i64 = 300;
/// A delivery body (its braces kept out of the assertion macros' format strings).
const BODY: &[u8] = b"{}";

proptest! {
    #![proptest_config(config(256))]

    /// A header built from a timestamp and signatures (in any order among other items) parses
    /// back to exactly those.
    #[test]
    fn a_header_built_from_its_parts_parses_back_to_them(
        t in any::<i64>(),
        sigs in vec(vec(any::<u8>(), 0..40), 1..4),
        ignored in vec(ignored_item(), 0..4),
        t_at in any::<prop::sample::Index>(),
        spaced in any::<bool>(),
        upper_hex in any::<bool>(),
    ) {
        let mut items: Vec<String> = sigs
            .iter()
            .map(|s| {
                let h = hex::encode(s);
                format!("v1={}", if upper_hex { h.to_uppercase() } else { h })
            })
            .collect();
        items.extend(ignored);
        items.insert(t_at.index(items.len() + 1), format!("t={t}"));
        let header = header_of(&items, spaced);
        prop_assert_eq!(
            SignatureHeader::parse(&header),
            Ok(SignatureHeader { timestamp: t, v1: sigs }),
            "{}", header
        );
    }

    /// Any text is a header or a refusal that says which; a header written back out parses to
    /// itself, and only a real signature in it verifies.
    #[test]
    fn any_header_is_a_header_that_writes_back_the_same_or_a_refusal(
        header in prop_oneof![
            awkward_string(),
            "([tv01 ]{1,3}=[0-9a-fA-F+-]{0,6},?){0,5}",
        ],
    ) {
        match SignatureHeader::parse(&header) {
            Ok(parsed) => {
                prop_assert!(!parsed.v1.is_empty());
                prop_assert_eq!(SignatureHeader::parse(&header_string(&parsed)), Ok(parsed.clone()));
                let real = hex::decode(v1_signature("whsec_p", parsed.timestamp, BODY)).expect("hex");
                let checked = verify(Some(&header), BODY, &["whsec_p"], parsed.timestamp, TOLERANCE);
                prop_assert_eq!(checked.is_ok(), parsed.v1.contains(&real), "{:?}", checked);
            }
            Err(e) => {
                prop_assert!(
                    matches!(e, SignatureError::MalformedHeader | SignatureError::NoV1Signature),
                    "{:?}", e
                );
                prop_assert!(verify(Some(&header), BODY, &["whsec_p"], 0, TOLERANCE).is_err());
            }
        }
    }

    /// A body signed the way Stripe signs it (by the double's separate signer) verifies within
    /// the tolerance either way; changing any one byte, the timestamp, or the secret does not;
    /// outside the tolerance it is too old or in the future.
    #[test]
    fn a_signed_body_verifies_and_any_single_change_does_not(
        secret in "whsec_[a-zA-Z0-9]{1,32}",
        other in "whsec_[a-zA-Z0-9]{1,32}",
        body in vec(any::<u8>(), 1..512),
        t in 1_000_000_000i64..4_000_000_000,
        // Within the tolerance even for a timestamp moved one second on.
        skew in (1 - TOLERANCE)..=TOLERANCE,
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
        late in 1i64..1_000_000,
    ) {
        let header = header_value(&secret, t, &body);
        let now = t + skew;
        let ok = verify(Some(&header), &body, &[&secret], now, TOLERANCE);
        prop_assert_eq!(ok.map(|h| h.timestamp), Ok(t));

        let mut changed = body.clone();
        changed[at.index(body.len())] ^= xor;
        prop_assert_eq!(
            verify(Some(&header), &changed, &[&secret], now, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replacen(&format!("t={t}"), &format!("t={}", t + 1), 1);
        prop_assert_eq!(
            verify(Some(&moved), &body, &[&secret], now, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        if other != secret {
            prop_assert_eq!(
                verify(Some(&header), &body, &[&other], now, TOLERANCE),
                Err(SignatureError::Mismatch)
            );
            // Rotation: any configured secret will do.
            prop_assert!(verify(Some(&header), &body, &[&other, &secret], now, TOLERANCE).is_ok());
        }
        prop_assert_eq!(
            verify(Some(&header), &body, &[&secret], t + TOLERANCE + late, TOLERANCE),
            Err(SignatureError::TooOld)
        );
        prop_assert_eq!(
            verify(Some(&header), &body, &[&secret], t - TOLERANCE - late, TOLERANCE),
            Err(SignatureError::InFuture)
        );
    }
}

// ----- the webhook event envelope ------------------------------------------------------------

const EVENT_TYPES: &[&str] = &[
    "checkout.session.completed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.updated",
    "customer.deleted",
    "payment_method.detached",
    "invoice.paid",
    "product.updated",
    "price.deleted",
    "radar.early_fraud_warning.created",
];

fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(EVENT_TYPES).prop_map(str::to_owned),
        "[a-z_]{1,10}(\\.[a-z_]{1,10}){0,3}",
        any::<String>().prop_filter("a type is not empty", |s| !s.is_empty()),
    ]
}

/// JSON of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        awkward_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(awkward_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The fields of an envelope, as a sender would give them.
#[derive(Debug, Clone)]
struct Fields {
    id: String,
    event_type: String,
    created: i64,
    livemode: bool,
    api_version: Option<String>,
    object: Value,
    extra: BTreeMap<String, Value>,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        awkward_string().prop_map(|s| format!("evt_{s}")),
        event_type(),
        any::<i64>(),
        any::<bool>(),
        option::of(awkward_string()),
        btree_map(awkward_string(), json_value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        btree_map("x_[a-z_]{1,8}", json_value(), 0..3),
    )
        .prop_map(
            |(id, event_type, created, livemode, api_version, object, extra)| Fields {
                id,
                event_type,
                created,
                livemode,
                api_version,
                object,
                extra,
            },
        )
}

fn event_json(f: &Fields) -> Value {
    let mut v = json!({
        "id": f.id,
        "object": "event",
        "type": f.event_type,
        "created": f.created,
        "livemode": f.livemode,
        "api_version": f.api_version,
        "pending_webhooks": 1,
        "data": { "object": f.object },
    });
    if let Value::Object(map) = &mut v {
        for (k, x) in &f.extra {
            map.insert(k.clone(), x.clone());
        }
    }
    v
}

fn parse_event(v: &Value) -> Result<Envelope, NotAnEvent> {
    Envelope::parse(Bytes::from(serde_json::to_vec(v).expect("JSON serialises")))
}

proptest! {
    #![proptest_config(config(256))]

    /// An event written from its fields reads back as those fields, with the body kept as
    /// delivered, whatever else it carries.
    #[test]
    fn an_event_serialised_from_fields_parses_back_to_them(f in fields(), pretty in any::<bool>()) {
        let v = event_json(&f);
        let bytes = if pretty {
            serde_json::to_vec_pretty(&v)
        } else {
            serde_json::to_vec(&v)
        }
        .expect("JSON serialises");
        let env = Envelope::parse(Bytes::from(bytes.clone())).expect("a well-formed event");
        prop_assert_eq!(&env.id, &f.id);
        prop_assert_eq!(&env.event_type, &f.event_type);
        prop_assert_eq!(env.created, f.created);
        prop_assert_eq!(env.livemode, f.livemode);
        prop_assert_eq!(&env.api_version, &f.api_version);
        prop_assert_eq!(env.body(), &bytes[..]);
    }

    /// Without any one of the fields every event has, or with one of the wrong kind, a body
    /// is not an event.
    #[test]
    fn an_event_missing_or_mistyping_a_field_is_refused(
        f in fields(),
        which in 0usize..9,
        wrong in json_value(),
    ) {
        let mut v = event_json(&f);
        let map = v.as_object_mut().expect("an object");
        match which {
            0 => { map.remove("id"); }
            1 => { map.remove("type"); }
            2 => { map.remove("created"); }
            3 => { map.remove("livemode"); }
            4 => { map.remove("data"); }
            5 => { map.insert("data".into(), json!({ "previous_attributes": {} })); }
            6 => { map.insert("id".into(), json!(f.id.trim_start_matches("evt_").to_owned() + "_evt")); }
            7 => { map.insert("object".into(), json!("customer")); }
            _ => {
                // `created` of any other kind than a whole number that fits.
                prop_assume!(!matches!(&wrong, Value::Number(n) if n.is_i64()));
                map.insert("created".into(), wrong);
            }
        }
        prop_assert_eq!(parse_event(&v).err(), Some(NotAnEvent::MissingFields));
    }

    /// Any bytes are an event or a refusal, never a panic; an accepted event has an `evt_` id
    /// and a type.
    #[test]
    fn any_body_is_an_event_or_a_refusal(
        body in prop_oneof![
            vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| serde_json::to_vec(&v).expect("JSON")),
            fields().prop_map(|f| {
                // A real event cut short.
                let mut b = serde_json::to_vec(&event_json(&f)).expect("JSON");
                let n = b.len();
                b.truncate(n * 3 / 4);
                b
            }),
        ],
    ) {
        let Ok(env) = Envelope::parse(Bytes::from(body.clone())) else {
            return Ok(());
        };
        prop_assert!(env.id.starts_with("evt_"));
        prop_assert!(!env.event_type.is_empty());
        prop_assert_eq!(env.body(), &body[..]);
    }

    /// Events are grouped by the customer their object names (as an id, an expanded customer,
    /// or the customer itself); catalogue events by none; others by their own id.
    #[test]
    fn an_event_is_scoped_to_the_customer_its_object_names(
        mut f in fields(),
        customer in "cus_[a-zA-Z0-9]{1,14}",
        shape in 0u8..4,
    ) {
        f.object = match shape {
            0 => json!({ "object": "subscription", "customer": customer }),
            1 => json!({ "object": "invoice", "customer": { "id": customer, "object": "customer" } }),
            2 => json!({ "object": "customer", "id": customer }),
            _ => json!({ "object": "payment_method", "customer": null }),
        };
        let env = parse_event(&event_json(&f)).expect("an event");
        let catalogue = matches!(
            Kind::of(&f.event_type),
            Some(Kind::Product { .. } | Kind::Price { .. })
        );
        let want = if catalogue {
            Scope::Catalogue
        } else if shape == 3 {
            Scope::Customer(&f.id)
        } else {
            Scope::Customer(&customer)
        };
        prop_assert_eq!(env.scope(), want);
    }
}

#[test]
fn bodies_that_are_not_json_are_told_apart_from_json_that_is_not_an_event() {
    for body in [&b"\xff\xfe"[..], b"{", b"", b"{\"id\":\"evt_1\"", b"nul"] {
        assert_eq!(
            Envelope::parse(Bytes::from_static(body)).err(),
            Some(NotAnEvent::NotJson),
            "{body:?}"
        );
    }
    for body in [&b"[]"[..], b"1", b"\"evt_1\"", b"null", b"{}"] {
        assert_eq!(
            Envelope::parse(Bytes::from_static(body)).err(),
            Some(NotAnEvent::MissingFields),
            "{body:?}"
        );
    }
}

// ----- server function form bodies -------------------------------------------------------------

/// Decodes a form body into a server function's arguments exactly as the server does
/// (leptos's `PostUrl` codec: the body as UTF-8, then `serde_qs`, non-strict, depth 5).
fn decode<T>(body: impl Into<Body>) -> Result<T, AppError>
where
    T: FromReq<PostUrl, Request<Body>, AppError>,
{
    let request = Request::post("/api/x")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.into())
        .expect("a request");
    T::from_req(request)
        .now_or_never()
        .expect("an in-memory body is read at once")
}

/// What a browser posts for a form: `application/x-www-form-urlencoded`, spaces as `+`.
fn browser_form<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        form.append_pair(k, v);
    }
    form.finish()
}

/// The pairs of a form in the order a page happens to put them, with fields the function
/// does not take (a submit button's name, say), which are ignored.
fn arrange<'a>(
    mut pairs: Vec<(&'a str, &'a str)>,
    extra: &'a [(String, String)],
    rotate: usize,
) -> Vec<(&'a str, &'a str)> {
    pairs.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let n = pairs.len().max(1);
    pairs.rotate_left(rotate % n);
    pairs
}

/// Distinct names: leptos's decoder (`serde_qs`) refuses a name given twice, even one the
/// function does not take (see `a_repeated_field_is_a_client_error`).
fn extra_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    btree_map("x_[a-z_]{1,8}", awkward_string(), 0..3).prop_map(|m| m.into_iter().collect())
}

/// An optional form field as the server sees it: absent and empty are the same.
fn optional(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// A decoding failure is the client's (400, no field), never ours.
fn assert_client_error(e: &AppError) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(e, AppError::Invalid { field: None, .. }),
        "{:?}",
        e
    );
    prop_assert_eq!(e.status(), 400);
    Ok(())
}

/// Arguments that decode re-encode (as leptos's own client encodes them) to a body that
/// decodes to the same arguments.
fn assert_stable<T>(body: Vec<u8>) -> Result<(), TestCaseError>
where
    T: FromReq<PostUrl, Request<Body>, AppError> + serde::Serialize + std::fmt::Debug,
{
    match decode::<T>(body) {
        Ok(args) => {
            let again = serde_qs::to_string(&args).expect("arguments encode");
            let decoded = decode::<T>(again.clone()).map_err(|e| {
                TestCaseError::fail(format!("{args:?} re-encoded as {again:?}: {e:?}"))
            })?;
            prop_assert_eq!(format!("{decoded:?}"), format!("{args:?}"));
        }
        Err(e) => assert_client_error(&e)?,
    }
    Ok(())
}

/// Bodies that reach the decoder: anything, form-shaped noise over the real field names, and
/// nested or repeated keys (which these flat forms do not take).
fn any_form_body() -> impl Strategy<Value = Vec<u8>> {
    let name =
        prop::sample::select(&["email", "password", "next", "price_id", "flow", "from", "x"][..]);
    let pair = (
        name,
        prop_oneof![
            Just(""),
            Just("[]"),
            Just("[0]"),
            Just("[a][b]"),
            Just("%5B%5D"),
            Just("[")
        ],
        awkward_string(),
    )
        .prop_map(|(k, suffix, v)| {
            format!(
                "{k}{suffix}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        });
    prop_oneof![
        vec(any::<u8>(), 0..128),
        awkward_string().prop_map(String::into_bytes),
        vec(pair, 0..5).prop_map(|p| p.join("&").into_bytes()),
        "[a-z_=&%\\[\\]+0-9]{0,48}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Log-in as a browser posts it: the fields read back exactly as typed, whatever the
    /// characters; an empty `next` is no `next`.
    #[test]
    fn a_browser_encoded_log_in_reads_back_as_typed(
        email in awkward_string(),
        password in awkward_string(),
        next in option::of(awkward_string()),
        extra in extra_fields(),
        rotate in any::<usize>(),
    ) {
        let mut pairs = vec![("email", email.as_str()), ("password", password.as_str())];
        if let Some(n) = &next {
            pairs.push(("next", n.as_str()));
        }
        let body = browser_form(arrange(pairs, &extra, rotate));
        let args: LogIn = decode(body.clone()).map_err(|e| TestCaseError::fail(format!("{body}: {e:?}")))?;
        prop_assert_eq!(args.email, email);
        prop_assert_eq!(args.password, password);
        prop_assert_eq!(args.next, optional(&next));
    }

    #[test]
    fn a_browser_encoded_sign_up_reads_back_as_typed(
        email in awkward_string(),
        password in awkward_string(),
        extra in extra_fields(),
        rotate in any::<usize>(),
    ) {
        let pairs = vec![("email", email.as_str()), ("password", password.as_str())];
        let body = browser_form(arrange(pairs, &extra, rotate));
        let args: SignUp = decode(body.clone()).map_err(|e| TestCaseError::fail(format!("{body}: {e:?}")))?;
        prop_assert_eq!(args.email, email);
        prop_assert_eq!(args.password, password);
    }

    #[test]
    fn browser_encoded_billing_forms_read_back_as_sent(
        value in awkward_string(),
        extra in extra_fields(),
        rotate in any::<usize>(),
    ) {
        let v = value.as_str();
        let form = |name: &'static str| browser_form(arrange(vec![(name, v)], &extra, rotate));
        let checkout: StartCheckout = decode(form("price_id")).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(&checkout.price_id, &value);
        let portal: OpenBillingPortal = decode(form("flow")).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(portal.flow, optional(&Some(value.clone())));
        let summary: GetBillingSummary = decode(form("from")).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(summary.from, optional(&Some(value.clone())));
        // The functions without arguments take any such form.
        let no_fields = browser_form(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        prop_assert!(decode::<LogOut>(no_fields.clone()).is_ok(), "{}", no_fields);
        prop_assert!(decode::<CreateBillingAccount>(no_fields.clone()).is_ok(), "{}", no_fields);
    }

    /// What leptos's own client sends (`serde_qs`) reads back as the arguments it came from.
    #[test]
    fn the_leptos_client_encoding_round_trips(
        email in awkward_string(),
        password in awkward_string(),
        next in option::of(awkward_string()),
    ) {
        let sent = LogIn { email, password, next };
        let body = serde_qs::to_string(&sent).expect("encodes");
        let got: LogIn = decode(body.clone()).map_err(|e| TestCaseError::fail(format!("{body}: {e:?}")))?;
        prop_assert_eq!(&got.email, &sent.email);
        prop_assert_eq!(&got.password, &sent.password);
        prop_assert_eq!(got.next, optional(&sent.next));
    }

    /// Any body decodes, or is refused as the client's error; what decodes is stable.
    #[test]
    fn any_body_decodes_or_is_a_client_error_for_every_server_function(body in any_form_body()) {
        assert_stable::<LogIn>(body.clone())?;
        assert_stable::<SignUp>(body.clone())?;
        assert_stable::<StartCheckout>(body.clone())?;
        assert_stable::<OpenBillingPortal>(body.clone())?;
        assert_stable::<GetBillingSummary>(body.clone())?;
        assert_stable::<LogOut>(body.clone())?;
        assert_stable::<CreateBillingAccount>(body)?;
    }
}

/// Two fields of one name (two checkboxes, say) are refused as the client's error, not ours.
#[test]
fn a_repeated_field_is_a_client_error() {
    for body in ["email=a&email=b", "email=a&password=x&x=1&x=2"] {
        let e = decode::<LogIn>(body).expect_err(body);
        assert!(matches!(e, AppError::Invalid { field: None, .. }), "{e:?}");
    }
}

#[test]
fn missing_form_fields_take_their_defaults() {
    let args: LogIn = decode("").expect("an empty log-in form decodes");
    assert_eq!((args.email.as_str(), args.password.as_str()), ("", ""));
    assert_eq!(args.next, None);
    let args: StartCheckout = decode("x=1").expect("decodes");
    assert_eq!(args.price_id, "");
}

/// Arbitrary bodies posted to every server function through the real router, signed out and
/// signed in, as a script (JSON answers) and as a browser without JavaScript: never a 5xx; a
/// refusal is a 4xx carrying the app's error, whose status it is.
#[test]
fn every_server_function_answers_any_body_without_a_server_error() {
    use crate::support::app::{browser_client, unique_email, Backend, TestApp};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let app = rt.block_on(TestApp::spawn(Backend::Sqlite));
    let signed_in = app.client.clone();
    let res = rt.block_on(app.sign_up(&unique_email(), "correct horse battery"));
    assert!(res.status().is_redirection(), "sign-up: {}", res.status());
    let signed_out = browser_client();

    let paths = [
        LogIn::PATH,
        SignUp::PATH,
        StartCheckout::PATH,
        OpenBillingPortal::PATH,
        GetBillingSummary::PATH,
        CreateBillingAccount::PATH,
        LogOut::PATH,
    ];
    for path in paths {
        let mut runner = TestRunner::new(config(64));
        let outcome = runner.run(
            &(any_form_body(), any::<bool>(), any::<bool>()),
            |(body, as_user, html)| {
                // Logging the test user out would sign the rest of the run out.
                let client = if as_user && path != LogOut::PATH {
                    &signed_in
                } else {
                    &signed_out
                };
                let accept = if html {
                    "text/html"
                } else {
                    "application/json"
                };
                let (status, location, text) = rt.block_on(async {
                    let res = client
                        .post(app.url(path))
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .header(header::ACCEPT, accept)
                        .header(header::ORIGIN, &app.base)
                        .header(header::REFERER, app.url("/login"))
                        .body(body.clone())
                        .send()
                        .await
                        .expect("the app answers");
                    let status = res.status();
                    let location = res
                        .headers()
                        .get(header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    (status, location, res.text().await.unwrap_or_default())
                });
                let body_text = String::from_utf8_lossy(&body);
                prop_assert!(
                    !status.is_server_error(),
                    "{path} ({accept}) answered {status} to {body_text:?}: {text}"
                );
                prop_assert!(
                    status.is_success() || status.is_redirection() || status.is_client_error(),
                    "{path}: {status}"
                );
                if status.is_redirection() {
                    prop_assert!(
                        location.is_some_and(|l| !l.is_empty()),
                        "{path}: {status} without Location"
                    );
                }
                if status.is_client_error() {
                    let error: AppError = serde_json::from_str(&text).map_err(|e| {
                        TestCaseError::fail(format!("{path}: {status} with {text:?} ({e})"))
                    })?;
                    prop_assert_eq!(error.status(), status.as_u16(), "{}: {:?}", path, error);
                }
                Ok(())
            },
        );
        if let Err(e) = outcome {
            panic!("{path}: {e}");
        }
    }
    rt.block_on(app.stop());
}

// ----- the `next=` redirect target -------------------------------------------------------------

const DEFAULT_NEXT: &str = "/settings/billing";

/// A path on this site that a redirect may go to: absolute, not protocol-relative, no
/// backslash (browsers read `/\` as `//`), no control characters, not the API.
fn is_safe(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.chars().any(char::is_control)
        && !s.starts_with("/api/")
}

fn whitespace() -> impl Strategy<Value = String> {
    "[ \t\r\n\u{a0}\u{3000}]{0,3}"
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever comes in, what goes out is a path on this site, valid as a header, that a
    /// browser resolves to this host; and redirecting there again changes nothing.
    #[test]
    fn safe_next_always_gives_a_same_site_path(
        next in option::of(prop_oneof![
            awkward_string(),
            "[/\\\\ \t]{0,3}[a-z.:@%]{0,10}[/?#\\\\]{0,2}[a-z]{0,6}",
            "(https?|javascript|data):[/\\\\]{0,3}[a-z.]{0,12}",
        ]),
    ) {
        let out = safe_next(next.as_deref());
        prop_assert!(is_safe(&out), "{:?} → {:?}", next, out);
        prop_assert!(HeaderValue::from_str(&out).is_ok(), "{:?}", out);
        let base = url::Url::parse("https://billing.example.com/login").expect("a URL");
        let resolved = base.join(&out).expect("a path resolves");
        prop_assert_eq!(resolved.origin(), base.origin(), "{:?}", out);
        prop_assert_eq!(safe_next(Some(&out)), out.clone());
        match next.as_deref().map(str::trim) {
            Some(n) if is_safe(n) => prop_assert_eq!(out, n),
            _ => prop_assert_eq!(out, DEFAULT_NEXT),
        }
    }

    /// A path that was already safe is kept as it was, trimmed.
    #[test]
    fn safe_next_keeps_a_safe_path(
        path in "/[a-zA-Z0-9_.~!$&'()*+,;=:@%/?#é-]{0,40}",
        before in whitespace(),
        after in whitespace(),
    ) {
        prop_assume!(is_safe(&path));
        prop_assert_eq!(safe_next(Some(&format!("{before}{path}{after}"))), path);
    }

    /// Protocol-relative, backslashed, API, scheme-qualified and control-character targets all
    /// go to the default page.
    #[test]
    fn safe_next_refuses_other_sites(
        host in "[a-z]{1,10}\\.[a-z]{2,4}",
        prefix in prop_oneof![
            Just("//"), Just("/\\"), Just("\\\\"), Just("/\t/"), Just("/\n/"), Just("https://"),
            Just("http:"), Just("javascript:"), Just("/api/"), Just("\u{0}/"), Just("/\u{7f}"),
        ],
        before in whitespace(),
    ) {
        prop_assert_eq!(safe_next(Some(&format!("{before}{prefix}{host}"))), DEFAULT_NEXT);
    }
}

// ----- trusted proxies and forwarding headers -----------------------------------------------

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<u128>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        // Few distinct addresses, so the trusted ranges and the hops meet.
        (0u8..4).prop_map(|b| IpAddr::V4(Ipv4Addr::new(10, 0, 0, b))),
        (0u16..4).prop_map(|b| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, b))),
    ]
}

fn ip_net() -> impl Strategy<Value = IpNet> {
    (ip_addr(), any::<u8>()).prop_map(|(addr, p)| {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        IpNet::new(addr, p % (max + 1)).expect("a prefix within the maximum")
    })
}

/// One hop as a proxy writes it in `X-Forwarded-For` (`ip`, `ip:port`, `[v6]:port`) or in
/// `Forwarded` (`for=ip`, `for="[v6]:port"`).
fn write_hop(ip: IpAddr, port: Option<u16>, forwarded: bool) -> String {
    let node = match (ip, port) {
        (IpAddr::V4(v4), Some(p)) => format!("{v4}:{p}"),
        (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
        (ip, None) => ip.to_string(),
    };
    if !forwarded {
        return node;
    }
    // RFC 7239: an IPv6 node is bracketed, with or without a port; a node with a colon is quoted.
    let node = if ip.is_ipv6() && port.is_none() {
        format!("[{node}]")
    } else {
        node
    };
    if node.contains(':') {
        format!("for=\"{node}\";proto=https")
    } else {
        format!("for={node}")
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// `TRUSTED_PROXIES` written with commas and/or spaces reads back as the ranges written;
    /// a bare address is a one-address range.
    #[test]
    fn trusted_proxies_read_back_as_written(
        nets in vec(ip_net(), 0..6),
        bare in vec(ip_addr(), 0..3),
        sep in prop::sample::select(&[",", ", ", " ", " , ", "  "][..]),
    ) {
        let mut written: Vec<String> = nets.iter().map(ToString::to_string).collect();
        written.extend(bare.iter().map(ToString::to_string));
        let mut want = nets.clone();
        want.extend(bare.iter().map(|ip| IpNet::from(*ip)));
        prop_assert_eq!(parse_trusted_proxies(&written.join(sep)), Ok(want));
    }

    /// Anything else is a list or an error naming what it could not read; never a panic.
    #[test]
    fn any_trusted_proxies_setting_is_read_or_refused(raw in awkward_string()) {
        match parse_trusted_proxies(&raw) {
            Ok(nets) => {
                let again = nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
                prop_assert_eq!(parse_trusted_proxies(&again), Ok(nets));
            }
            Err(message) => prop_assert!(message.contains('`'), "{}", message),
        }
    }

    /// The client is the peer unless the peer is a trusted proxy; behind trusted proxies it is
    /// the right-most hop that is not one (or the left-most hop when all are), in either header.
    #[test]
    fn the_client_is_the_right_most_untrusted_hop(
        trusted in vec(ip_net(), 0..3),
        peer in ip_addr(),
        hops in vec((ip_addr(), option::of(any::<u16>())), 0..5),
        forwarded in any::<bool>(),
        split_lines in any::<bool>(),
    ) {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        // An IPv4 address written as IPv6 is the IPv4 address.
        let peer_is = peer.to_canonical();
        let want = if !is_trusted(&peer_is) {
            peer_is
        } else {
            let mut client = peer_is;
            for (ip, _) in hops.iter().rev() {
                let ip = &ip.to_canonical();
                client = *ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            client
        };
        let name = if forwarded { "forwarded" } else { "x-forwarded-for" };
        let written: Vec<String> = hops
            .iter()
            .map(|(ip, port)| write_hop(*ip, *port, forwarded))
            .collect();
        let mut headers = HeaderMap::new();
        if split_lines && written.len() > 1 {
            for w in &written {
                headers.append(name, HeaderValue::from_str(w).expect("a header"));
            }
        } else if !written.is_empty() {
            headers.insert(name, HeaderValue::from_str(&written.join(", ")).expect("a header"));
        }
        // The other header, as a client would forge it: never read.
        let other = if forwarded { "x-forwarded-for" } else { "forwarded" };
        headers.insert(other, HeaderValue::from_static("6.6.6.6"));
        let header = if forwarded { ProxyHeader::Forwarded } else { ProxyHeader::XForwardedFor };
        let got = client_ip(peer, &headers, &trusted, Some(header));
        prop_assert_eq!(got, want, "{:?}", headers);
    }
}
