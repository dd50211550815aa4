//! Stripe's confirmation of a plan switch, opened the way the billing page's "Switch to" card
//! opens it (a portal session with the `subscription_update_confirm` flow) and confirmed as a
//! browser would, and [`attr_after`] for reading values out of a page.
//!
//! Use it in any story that switches a plan through the portal.

use crate::support::{app::TestApp, billing::call};

/// The value of `after` up to the next quote in a page.
pub fn attr_after(html: &str, after: &str) -> String {
    let start = html
        .find(after)
        .unwrap_or_else(|| panic!("the page lacks {after}"))
        + after.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Stripe's confirmation of a switch, opened as the page's "Switch to" card does.
pub struct Confirmation {
    pub browser: reqwest::Client,
    /// The confirmation page (its form posts back to it, without the query).
    pub url: String,
    pub html: String,
    pub price: String,
}

impl Confirmation {
    pub async fn open(app: &TestApp, price: &str) -> Confirmation {
        let (status, body) = call(
            app,
            "/api/billing/portal",
            &[("flow", "subscription_update_confirm"), ("price_id", price)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let portal: String = serde_json::from_str(&body).expect("url");
        let browser = crate::support::app::browser_client();
        let entry = browser.get(&portal).send().await.expect("entry");
        let url = crate::support::app::location(&entry);
        let url = if url.starts_with('/') {
            app.url(&url)
        } else {
            url
        };
        let html = browser
            .get(&url)
            .send()
            .await
            .expect("confirmation")
            .text()
            .await
            .expect("html");
        Confirmation {
            browser,
            url,
            html,
            price: price.to_owned(),
        }
    }

    pub fn proration_date(&self) -> String {
        attr_after(&self.html, r#"name="proration_date" value=""#)
    }

    /// Posts the page's Confirm form; Stripe answers with a redirect (`after_completion`).
    pub async fn confirm(&self) -> reqwest::Response {
        let action = self.url.split('?').next().unwrap_or_default();
        let done = self
            .browser
            .post(action)
            .form(&[
                ("price", self.price.as_str()),
                ("quantity", "1"),
                ("proration_date", self.proration_date().as_str()),
            ])
            .send()
            .await
            .expect("confirm");
        assert!(done.status().is_redirection(), "confirm: {}", done.status());
        done
    }
}

/// Sets one field of the double's default portal configuration.
pub async fn configure_default_portal(app: &TestApp, field: &str, value: &str) {
    let rest = billfold::stripe_api::raw::Rest::new(&app.state.config).expect("rest");
    let configs = rest
        .list_all("billing_portal/configurations", 10)
        .await
        .expect("configurations");
    let default = configs[0]["id"].as_str().expect("id").to_owned();
    let form = vec![(field.to_owned(), value.to_owned())];
    assert!(rest
        .post(&format!("billing_portal/configurations/{default}"), &form)
        .await
        .expect("configure")
        .ok());
}

/// Downgrades (a switch to a cheaper price) scheduled at the period's end, as `billing.toml`'s
/// `downgrades_at_period_end` makes them.
pub async fn downgrades_at_period_end(app: &TestApp) {
    configure_default_portal(
        app,
        "features[subscription_update][schedule_at_period_end][conditions][0][type]",
        "decreasing_item_amount",
    )
    .await;
}
