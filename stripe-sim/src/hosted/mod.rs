//! Hosted pages standing in for Stripe's: Checkout, the Customer Portal, invoices.
//! Server-rendered HTML with inline styles and no scripts: every action is a plain form POST,
//! every field has a label.

mod checkout;
mod invoice;
mod portal;

use axum::{
    extract::State as AxumState,
    http::{header, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
    Router,
};

use super::{
    cards::{self, TestCard, TEST_CARDS},
    form::{self, FormValue},
    model::State,
    state::money,
    StripeSim,
};

pub fn routes() -> Router<StripeSim> {
    Router::new()
        .route("/checkout/{id}", get(checkout::show).post(checkout::pay))
        .route("/invoice/{id}", get(invoice::show).post(invoice::pay))
        .merge(portal::routes())
}

/// The double's front page: what it is and where things are.
pub async fn index(AxumState(sim): AxumState<StripeSim>) -> Response {
    let (base, mount) = {
        let st = sim.lock();
        (st.env.public_base.clone(), mount_path(&st))
    };
    let body = format!(
        r#"<section class="card">
  <h1>Stripe test double</h1>
  <p>This server speaks Stripe's API for the part of Stripe Billfold uses. Point a Stripe client
  at <code>{base}/</code> with any test key (<code>sk_test_…</code>); live keys are refused.</p>
  <ul>
    <li>API: <code>{mount}/v1/…</code></li>
    <li>Webhook delivery log: <code>GET {mount}/_admin/deliveries</code></li>
    <li>Test clock: <code>POST {mount}/_admin/customers/&lt;id&gt;/advance</code> with <code>days</code> or <code>seconds</code></li>
  </ul>
</section>"#,
        base = escape(&base),
        mount = escape(&mount),
    );
    page(
        "Stripe test double",
        "Billfold (test mode)",
        &body,
        StatusCode::OK,
    )
}

/// The path the router is mounted at (`/_stripe-sim`, or empty at the root), for links.
pub fn mount_path(st: &State) -> String {
    url::Url::parse(&st.env.public_base)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// Text made safe for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A form body as flat fields; garbage gives an empty form rather than an error page.
pub fn parse_form(body: &str) -> FormValue {
    form::parse(body).unwrap_or_else(|_| FormValue::empty())
}

pub fn field(form: &FormValue, name: &str) -> String {
    form.get(name)
        .and_then(FormValue::as_str)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `https://…`, `http://…` only: where the hosted pages are willing to send a browser.
pub fn safe_redirect(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.to_string())
}

pub fn see_other(url: &str) -> Response {
    Redirect::to(url).into_response()
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f6f8fa;color:#1a1f36;line-height:1.5}
header.bar{background:#fff;border-bottom:1px solid #e3e8ee;padding:.75rem 1.5rem;display:flex;justify-content:space-between;align-items:center;gap:1rem}
header.bar .brand{font-weight:600}
.test-badge{background:#ffde92;color:#7a4c00;border-radius:4px;padding:.1rem .45rem;font-size:.75rem;font-weight:600;text-transform:uppercase;margin-left:.5rem}
main{max-width:960px;margin:2rem auto;padding:0 1rem}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:2rem}
@media (max-width:760px){.grid{grid-template-columns:1fr}}
.card{background:#fff;border:1px solid #e3e8ee;border-radius:8px;padding:1.5rem;margin-bottom:1.25rem}
h1{font-size:1.5rem;margin:.2rem 0 1rem}
h2{font-size:1.1rem;margin:0 0 .75rem}
.muted{color:#697386}
.price{font-size:2rem;font-weight:700;margin:.25rem 0}
.price span{font-size:1rem;font-weight:400;color:#697386}
label{display:block;font-weight:500;margin:.75rem 0 .25rem}
input,select{width:100%;padding:.55rem .65rem;border:1px solid #cfd7df;border-radius:6px;font:inherit;background:#fff}
input:focus,select:focus,button:focus,a:focus{outline:2px solid #635bff;outline-offset:1px}
fieldset{border:0;padding:0;margin:0}
legend{font-weight:600;margin-top:.75rem}
.row{display:grid;grid-template-columns:1fr 1fr;gap:.75rem}
button,.button{display:inline-block;margin-top:1rem;padding:.6rem 1.1rem;border-radius:6px;border:1px solid #635bff;background:#635bff;color:#fff;font:inherit;font-weight:600;cursor:pointer;text-decoration:none;text-align:center}
button.wide{width:100%}
button.secondary,.button.secondary{background:#fff;color:#1a1f36;border-color:#cfd7df}
button.danger{background:#df1b41;border-color:#df1b41}
.error{background:#fde8ec;border:1px solid #f5b5c2;color:#8a0b25;border-radius:6px;padding:.6rem .8rem;margin-bottom:.75rem}
.notice{background:#e6f6ee;border:1px solid #a8dfc0;color:#0b5a32;border-radius:6px;padding:.6rem .8rem;margin-bottom:1rem}
.status{display:inline-block;border-radius:4px;padding:.05rem .45rem;font-size:.8rem;font-weight:600;background:#e3e8ee}
.status.ok{background:#d7f7c2;color:#05690d}.status.warn{background:#fcedb9;color:#a82c00}.status.bad{background:#ffe7f2;color:#b3063d}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.45rem .3rem;border-bottom:1px solid #eef1f4}
ul.plain{list-style:none;padding:0;margin:0}
.choice{display:flex;gap:.6rem;align-items:center;border:1px solid #e3e8ee;border-radius:6px;padding:.6rem .8rem;margin:.5rem 0}
.choice input{width:auto}
.choice label{margin:0;font-weight:400}
details{margin-top:1rem}
code{background:#eef1f4;padding:.05rem .3rem;border-radius:4px}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;align-items:center}
a{color:#635bff}
"#;

/// A complete page: the test-mode bar, the body, the styles.
pub fn page(title: &str, brand: &str, body: &str, status: StatusCode) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<header class="bar"><span class="brand">{brand}<span class="test-badge">Test mode</span></span><span class="muted">Stripe test double</span></header>
<main>
{body}
</main>
</body>
</html>"#,
        title = escape(title),
        brand = escape(brand),
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// A page that only says something (not found, expired, done).
pub fn message_page(
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
    status: StatusCode,
) -> Response {
    let link = link
        .map(|(href, text)| {
            format!(
                r#"<p><a class="button" href="{}">{}</a></p>"#,
                escape(href),
                escape(text)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<section class="card" style="max-width:560px;margin:3rem auto"><h1>{}</h1><p>{}</p>{link}</section>"#,
        escape(title),
        escape(message)
    );
    page(title, "Billfold (test mode)", &body, status)
}

/// The card fields shared by Checkout, the portal and the invoice page.
pub fn card_fields(values: &FormValue) -> String {
    let cards: String = TEST_CARDS
        .iter()
        .map(|c| {
            format!(
                "<li><code>{}</code> — {}</li>",
                escape(&group_digits(c.number)),
                escape(c.label)
            )
        })
        .collect();
    format!(
        r#"<fieldset>
  <legend>Card information</legend>
  <label for="card_number">Card number</label>
  <input id="card_number" name="card_number" inputmode="numeric" autocomplete="cc-number" placeholder="4242 4242 4242 4242" required value="{number}">
  <div class="row">
    <div><label for="card_expiry">Expiry (MM / YY)</label>
    <input id="card_expiry" name="card_expiry" autocomplete="cc-exp" placeholder="12 / 34" required value="{expiry}"></div>
    <div><label for="card_cvc">CVC</label>
    <input id="card_cvc" name="card_cvc" inputmode="numeric" autocomplete="cc-csc" placeholder="123" required value="{cvc}"></div>
  </div>
  <label for="cardholder_name">Cardholder name</label>
  <input id="cardholder_name" name="cardholder_name" autocomplete="cc-name" required value="{name}">
</fieldset>
<details><summary>Test cards</summary><p class="muted">Any future expiry date and any 3-digit CVC.</p><ul>{cards}</ul></details>"#,
        number = escape(&field(values, "card_number")),
        expiry = escape(&field(values, "card_expiry")),
        cvc = escape(&field(values, "card_cvc")),
        name = escape(&field(values, "cardholder_name")),
    )
}

fn group_digits(number: &str) -> String {
    number
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A card as typed into the card fields, checked the way a card form would.
pub struct EnteredCard {
    pub card: &'static TestCard,
    pub expiry: (u32, i32),
    pub name: String,
}

/// Reads and checks the card fields; the error is what the form shows.
pub fn read_card(values: &FormValue, now: i64) -> Result<EnteredCard, String> {
    let number = field(values, "card_number");
    if number.is_empty() {
        return Err("Enter a card number.".into());
    }
    let Some(card) = cards::by_number(&number) else {
        return Err(
            "Your card number is not one of the test cards. Use 4242 4242 4242 4242 for a card that works."
                .into(),
        );
    };
    let Some((month, year)) = cards::parse_expiry(&field(values, "card_expiry")) else {
        return Err("Your card's expiration date is incomplete (use MM / YY).".into());
    };
    let (this_year, this_month) = year_month(now);
    if (year, month) < (this_year, this_month) {
        return Err("Your card's expiration date is in the past.".into());
    }
    let cvc = field(values, "card_cvc");
    if !(3..=4).contains(&cvc.len()) || !cvc.chars().all(|c| c.is_ascii_digit()) {
        return Err("Your card's security code (CVC) is incomplete.".into());
    }
    let name = field(values, "cardholder_name");
    if name.is_empty() {
        return Err("Enter the cardholder's name.".into());
    }
    Ok(EnteredCard {
        card,
        expiry: (month, year),
        name,
    })
}

fn year_month(ts: i64) -> (i32, u32) {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .map(|d| (d.year(), u32::from(u8::from(d.month()))))
        .unwrap_or((1970, 1))
}

pub fn amount_with_interval(st: &State, price: &str) -> String {
    st.price(price)
        .map(|p| {
            let unit = if p.interval_count > 1 {
                format!("every {} {}s", p.interval_count, p.interval)
            } else {
                format!("per {}", p.interval)
            };
            format!("{} {unit}", money(p.unit_amount, &p.currency))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn card_fields_are_checked() {
        let now = 1_767_225_600; // 2026-01-01
        let ok = parse_form(
            "card_number=4242+4242+4242+4242&card_expiry=12%2F34&card_cvc=123&cardholder_name=Jo",
        );
        assert_eq!(
            read_card(&ok, now).map(|c| c.card.token).ok(),
            Some("pm_card_visa")
        );
        let cases = [
            (
                "card_number=&card_expiry=12/34&card_cvc=123&cardholder_name=Jo",
                "card number",
            ),
            (
                "card_number=1234&card_expiry=12/34&card_cvc=123&cardholder_name=Jo",
                "test cards",
            ),
            (
                "card_number=4242424242424242&card_expiry=13/34&card_cvc=123&cardholder_name=Jo",
                "expiration",
            ),
            (
                "card_number=4242424242424242&card_expiry=12/20&card_cvc=123&cardholder_name=Jo",
                "past",
            ),
            (
                "card_number=4242424242424242&card_expiry=12/34&card_cvc=1&cardholder_name=Jo",
                "CVC",
            ),
            (
                "card_number=4242424242424242&card_expiry=12/34&card_cvc=123&cardholder_name=",
                "name",
            ),
        ];
        for (input, want) in cases {
            let err = read_card(&parse_form(input), now).err().unwrap_or_default();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn only_web_urls_are_redirect_targets() {
        assert!(safe_redirect("https://app.example/ok?x=1").is_some());
        assert!(safe_redirect("javascript:alert(1)").is_none());
        assert!(safe_redirect("not a url").is_none());
    }
}
