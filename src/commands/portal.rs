//! The Customer Portal configured as code: `billing.toml` describes it, and
//! `billfold portal apply [--dry-run]` makes Stripe's configuration say the same, printing a
//! field-by-field diff. Applying twice changes nothing the second time.
//!
//! The configuration Billfold manages is the one `STRIPE_PORTAL_CONFIGURATION_ID` names, else
//! the one it created before (marked `metadata[billfold]=managed`), else a new one.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::Value;

use crate::{
    billing_file::{PortalSpec, Seats},
    config::Config,
    stripe_api::raw::Rest,
};

/// Marks the configuration Billfold created, so a later run finds it again.
const MANAGED: (&str, &str) = ("billfold", "managed");

/// One product the portal may switch to: its prices, and for a plan priced per seat the seats a
/// customer may choose there (Stripe's `adjustable_quantity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortalProduct {
    pub prices: BTreeSet<String>,
    /// `None`: one unit, the quantity is not adjustable.
    pub seats: Option<Seats>,
}

/// The plans the portal may switch between: product → its prices (and seats), as the picker
/// shows them.
pub type Plans = BTreeMap<String, PortalProduct>;

impl PortalProduct {
    /// The prices of every product, flattened.
    pub fn all_prices(plans: &Plans) -> BTreeSet<String> {
        plans
            .values()
            .flat_map(|p| p.prices.iter().cloned())
            .collect()
    }
}

/// The prices for sale (the catalogue's, as [`crate::billing::plans::for_sale_among`] decides),
/// grouped by product: exactly what the portal may switch between.
pub async fn picker_plans(db: &DatabaseConnection, config: &Config) -> anyhow::Result<Plans> {
    use crate::billing::plans;
    let prices = plans::recurring_prices(config.stripe.mode.livemode())
        .all(db)
        .await
        .context("cannot read the prices loaded from Stripe")?;
    let mut by_product = Plans::new();
    for p in plans::for_sale_among(&config.catalog, &prices) {
        let seats = config
            .catalog
            .plans
            .iter()
            .find(|plan| plan.key == p.plan_key)
            .and_then(|plan| plan.seats);
        let product = by_product.entry(p.price.product_id).or_default();
        product.prices.insert(p.price.id);
        product.seats = product.seats.or(seats);
    }
    Ok(by_product)
}

/// A configuration as comparable fields: dotted path → value (lists sorted and joined).
pub type Fields = BTreeMap<String, String>;

fn list<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> String {
    let mut v: Vec<String> = items.into_iter().map(Into::into).collect();
    v.sort();
    v.join(", ")
}

/// What Stripe's configuration must say for `spec` and `plans`.
pub fn desired_fields(spec: &PortalSpec, plans: &Plans, return_url: &str) -> Fields {
    let mut f = Fields::new();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    f.insert("business_profile.headline".into(), text(&spec.headline));
    f.insert(
        "business_profile.privacy_policy_url".into(),
        text(&spec.privacy_policy_url),
    );
    f.insert(
        "business_profile.terms_of_service_url".into(),
        text(&spec.terms_of_service_url),
    );
    f.insert(
        "default_return_url".into(),
        spec.default_return_url
            .clone()
            .unwrap_or_else(|| return_url.to_owned()),
    );
    f.insert("active".into(), "true".into());
    f.insert(
        "features.payment_method_update.enabled".into(),
        spec.payment_method_update.enabled.to_string(),
    );
    f.insert(
        "features.invoice_history.enabled".into(),
        spec.invoice_history.enabled.to_string(),
    );
    f.insert(
        "features.customer_update.enabled".into(),
        spec.customer_update.enabled.to_string(),
    );
    f.insert(
        "features.customer_update.allowed_updates".into(),
        list(spec.customer_update.allowed.iter().cloned()),
    );
    let c = &spec.cancellation;
    f.insert(
        "features.subscription_cancel.enabled".into(),
        c.enabled.to_string(),
    );
    f.insert("features.subscription_cancel.mode".into(), c.mode.clone());
    f.insert(
        "features.subscription_cancel.cancellation_reason.enabled".into(),
        (!c.reasons.is_empty()).to_string(),
    );
    f.insert(
        "features.subscription_cancel.cancellation_reason.options".into(),
        list(c.reasons.iter().cloned()),
    );
    let s = &spec.plan_switching;
    f.insert(
        "features.subscription_update.enabled".into(),
        s.enabled.to_string(),
    );
    f.insert(
        "features.subscription_update.proration_behavior".into(),
        s.proration_behavior.clone(),
    );
    f.insert(
        "features.subscription_update.schedule_at_period_end".into(),
        if s.downgrades_at_period_end {
            list(["decreasing_item_amount", "shortening_interval"])
        } else {
            String::new()
        },
    );
    f.insert(
        "features.subscription_update.default_allowed_updates".into(),
        if s.enabled {
            allowed_updates(plans)
        } else {
            String::new()
        },
    );
    f.insert(
        "features.subscription_update.products".into(),
        if s.enabled {
            products_field(plans)
        } else {
            String::new()
        },
    );
    f
}

/// What a subscription may change in the portal: its price, and its quantity when a plan is
/// priced per seat.
fn allowed_updates(plans: &Plans) -> String {
    if plans.values().any(|p| p.seats.is_some()) {
        list(["price", "quantity"])
    } else {
        "price".into()
    }
}

fn products_field(plans: &Plans) -> String {
    plans
        .iter()
        .map(|(product, p)| {
            let seats = p
                .seats
                .map(|s| format!(" (seats {})", s.bounds()))
                .unwrap_or_default();
            format!("{product}: {}{seats}", list(p.prices.iter().cloned()))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The seats a configuration's product lets a customer choose (`None`: not adjustable).
fn adjustable_seats(product: &Value) -> Option<Seats> {
    let q = &product["adjustable_quantity"];
    if q["enabled"].as_bool() != Some(true) {
        return None;
    }
    Some(Seats {
        minimum: q["minimum"].as_u64().unwrap_or(1),
        maximum: q["maximum"].as_u64(),
    })
}

/// The same fields, read from a configuration as Stripe returns it.
pub fn current_fields(config: &Value) -> Fields {
    let mut f = Fields::new();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let flag = |v: &Value| v.as_bool().unwrap_or(false).to_string();
    let strings = |v: &Value| {
        list(
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned)),
        )
    };
    let bp = &config["business_profile"];
    f.insert("business_profile.headline".into(), text(&bp["headline"]));
    f.insert(
        "business_profile.privacy_policy_url".into(),
        text(&bp["privacy_policy_url"]),
    );
    f.insert(
        "business_profile.terms_of_service_url".into(),
        text(&bp["terms_of_service_url"]),
    );
    f.insert(
        "default_return_url".into(),
        text(&config["default_return_url"]),
    );
    f.insert("active".into(), flag(&config["active"]));
    let ft = &config["features"];
    f.insert(
        "features.payment_method_update.enabled".into(),
        flag(&ft["payment_method_update"]["enabled"]),
    );
    f.insert(
        "features.invoice_history.enabled".into(),
        flag(&ft["invoice_history"]["enabled"]),
    );
    f.insert(
        "features.customer_update.enabled".into(),
        flag(&ft["customer_update"]["enabled"]),
    );
    f.insert(
        "features.customer_update.allowed_updates".into(),
        strings(&ft["customer_update"]["allowed_updates"]),
    );
    let c = &ft["subscription_cancel"];
    f.insert(
        "features.subscription_cancel.enabled".into(),
        flag(&c["enabled"]),
    );
    f.insert("features.subscription_cancel.mode".into(), text(&c["mode"]));
    f.insert(
        "features.subscription_cancel.cancellation_reason.enabled".into(),
        flag(&c["cancellation_reason"]["enabled"]),
    );
    f.insert(
        "features.subscription_cancel.cancellation_reason.options".into(),
        strings(&c["cancellation_reason"]["options"]),
    );
    let s = &ft["subscription_update"];
    let enabled = s["enabled"].as_bool().unwrap_or(false);
    f.insert(
        "features.subscription_update.enabled".into(),
        enabled.to_string(),
    );
    f.insert(
        "features.subscription_update.proration_behavior".into(),
        text(&s["proration_behavior"]),
    );
    f.insert(
        "features.subscription_update.schedule_at_period_end".into(),
        list(
            s["schedule_at_period_end"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["type"].as_str().map(str::to_owned)),
        ),
    );
    f.insert(
        "features.subscription_update.default_allowed_updates".into(),
        if enabled {
            strings(&s["default_allowed_updates"])
        } else {
            String::new()
        },
    );
    f.insert(
        "features.subscription_update.products".into(),
        if enabled {
            products_field(&switchable_plans(config))
        } else {
            String::new()
        },
    );
    f
}

/// The plans a configuration lets a customer switch between.
pub fn switchable_plans(config: &Value) -> Plans {
    let mut plans = Plans::new();
    for p in config["features"]["subscription_update"]["products"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(product) = p["product"].as_str() {
            let prices = p["prices"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_owned));
            let entry = plans.entry(product.to_owned()).or_default();
            entry.prices.extend(prices);
            entry.seats = entry.seats.or(adjustable_seats(p));
        }
    }
    plans
}

/// One field that differs: `(field, Stripe's value, the file's value)`.
pub type Change = (String, String, String);

/// The fields where `current` differs from `desired`.
pub fn diff(current: &Fields, desired: &Fields) -> Vec<Change> {
    desired
        .iter()
        .filter_map(|(field, want)| {
            let have = current.get(field).cloned().unwrap_or_default();
            (have != *want).then(|| (field.clone(), have, want.clone()))
        })
        .collect()
}

/// The form Stripe's API takes for `spec` and `plans`, in its bracket notation.
pub fn form(spec: &PortalSpec, plans: &Plans, return_url: &str) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: &str| form.push((k.to_owned(), v.to_owned()));
    put(
        "business_profile[headline]",
        spec.headline.as_deref().unwrap_or(""),
    );
    put(
        "business_profile[privacy_policy_url]",
        spec.privacy_policy_url.as_deref().unwrap_or(""),
    );
    put(
        "business_profile[terms_of_service_url]",
        spec.terms_of_service_url.as_deref().unwrap_or(""),
    );
    put(
        "default_return_url",
        spec.default_return_url.as_deref().unwrap_or(return_url),
    );
    let flag = |b: bool| if b { "true" } else { "false" };
    put(
        "features[payment_method_update][enabled]",
        flag(spec.payment_method_update.enabled),
    );
    put(
        "features[invoice_history][enabled]",
        flag(spec.invoice_history.enabled),
    );
    put(
        "features[customer_update][enabled]",
        flag(spec.customer_update.enabled),
    );
    if spec.customer_update.allowed.is_empty() {
        put("features[customer_update][allowed_updates]", "");
    }
    for (i, field) in spec.customer_update.allowed.iter().enumerate() {
        put(
            &format!("features[customer_update][allowed_updates][{i}]"),
            field,
        );
    }
    let c = &spec.cancellation;
    put("features[subscription_cancel][enabled]", flag(c.enabled));
    put("features[subscription_cancel][mode]", &c.mode);
    put(
        "features[subscription_cancel][cancellation_reason][enabled]",
        flag(!c.reasons.is_empty()),
    );
    for (i, reason) in c.reasons.iter().enumerate() {
        put(
            &format!("features[subscription_cancel][cancellation_reason][options][{i}]"),
            reason,
        );
    }
    let s = &spec.plan_switching;
    put("features[subscription_update][enabled]", flag(s.enabled));
    put(
        "features[subscription_update][proration_behavior]",
        &s.proration_behavior,
    );
    if s.downgrades_at_period_end {
        put(
            "features[subscription_update][schedule_at_period_end][conditions][0][type]",
            "decreasing_item_amount",
        );
        put(
            "features[subscription_update][schedule_at_period_end][conditions][1][type]",
            "shortening_interval",
        );
    } else {
        put(
            "features[subscription_update][schedule_at_period_end][conditions]",
            "",
        );
    }
    if s.enabled {
        put(
            "features[subscription_update][default_allowed_updates][0]",
            "price",
        );
        if plans.values().any(|p| p.seats.is_some()) {
            put(
                "features[subscription_update][default_allowed_updates][1]",
                "quantity",
            );
        }
        for (i, (product, p)) in plans.iter().enumerate() {
            let at = format!("features[subscription_update][products][{i}]");
            put(&format!("{at}[product]"), product);
            for (j, price) in p.prices.iter().enumerate() {
                put(&format!("{at}[prices][{j}]"), price);
            }
            let q = format!("{at}[adjustable_quantity]");
            match p.seats {
                Some(seats) => {
                    put(&format!("{q}[enabled]"), "true");
                    put(&format!("{q}[minimum]"), &seats.minimum.to_string());
                    if let Some(max) = seats.maximum {
                        put(&format!("{q}[maximum]"), &max.to_string());
                    }
                }
                None => put(&format!("{q}[enabled]"), "false"),
            }
        }
    }
    put(&format!("metadata[{}]", MANAGED.0), MANAGED.1);
    form
}

/// What `portal apply` did (or, with `--dry-run`, would do).
#[derive(Debug)]
pub struct Applied {
    /// The configuration's id (`None`: a dry run that would create one).
    pub id: Option<String>,
    pub created: bool,
    pub changes: Vec<Change>,
}

/// The configuration Billfold manages, as Stripe has it now, if there is one.
pub async fn managed_configuration(rest: &Rest, config: &Config) -> anyhow::Result<Option<Value>> {
    if let Some(id) = &config.stripe.portal_configuration_id {
        let answer = rest
            .get(&format!("billing_portal/configurations/{id}"))
            .await?;
        if !answer.ok() {
            anyhow::bail!(
                "STRIPE_PORTAL_CONFIGURATION_ID={id}: Stripe answered {} ({})",
                answer.status,
                answer.error_message()
            );
        }
        return Ok(Some(answer.body));
    }
    let all = rest
        .list_all("billing_portal/configurations", 1_000)
        .await?;
    Ok(all
        .into_iter()
        .find(|c| c["metadata"][MANAGED.0].as_str() == Some(MANAGED.1)))
}

/// Makes Stripe's portal configuration say what `spec` says; with `dry_run`, only reports.
pub async fn apply(
    rest: &Rest,
    config: &Config,
    db: &DatabaseConnection,
    spec: &PortalSpec,
    dry_run: bool,
) -> anyhow::Result<Applied> {
    let plans = picker_plans(db, config).await?;
    let return_url = config.url_for("/settings/billing");
    let desired = desired_fields(spec, &plans, &return_url);
    let current = managed_configuration(rest, config).await?;
    let (id, changes) = match &current {
        Some(c) => (
            c["id"].as_str().map(str::to_owned),
            diff(&current_fields(c), &desired),
        ),
        None => (None, diff(&Fields::new(), &desired)),
    };
    if dry_run || (current.is_some() && changes.is_empty()) {
        return Ok(Applied {
            id,
            created: false,
            changes,
        });
    }
    let path = match &id {
        Some(id) => format!("billing_portal/configurations/{id}"),
        None => "billing_portal/configurations".to_owned(),
    };
    let answer = rest.post(&path, &form(spec, &plans, &return_url)).await?;
    if !answer.ok() {
        anyhow::bail!(
            "Stripe refused the portal configuration: {} {}",
            answer.status,
            answer.error_message()
        );
    }
    Ok(Applied {
        id: answer.body["id"].as_str().map(str::to_owned),
        created: id.is_none(),
        changes,
    })
}

/// `portal apply`'s report, one line per changed field.
pub fn format_applied(applied: &Applied, dry_run: bool, configured: bool) -> String {
    let mut out = String::new();
    let id = applied.id.as_deref().unwrap_or("(new)");
    if applied.changes.is_empty() {
        out.push_str(&format!(
            "Portal configuration {id} already matches billing.toml: nothing to change.\n"
        ));
    } else {
        let verb = if dry_run { "would change" } else { "changed" };
        out.push_str(&format!(
            "Portal configuration {id}: {} field(s) {verb}:\n",
            applied.changes.len()
        ));
        for (field, have, want) in &applied.changes {
            out.push_str(&format!("  {field}: {have:?} -> {want:?}\n"));
        }
    }
    if applied.created && !configured {
        out.push_str(&format!(
            "Created {id}. Set STRIPE_PORTAL_CONFIGURATION_ID={id} so the app opens it (until \
             then it opens the account's default configuration).\n"
        ));
    }
    out
}

/// The price catalogue must be in the database before the portal can offer its plans.
pub async fn catalogue_is_loaded(db: &DatabaseConnection) -> anyhow::Result<bool> {
    Ok(crate::db::entities::price::Entity::find()
        .one(db)
        .await?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::billing_file::BillingFile;

    const EXAMPLE: &str = include_str!("../../billing.toml");

    #[test]
    fn what_stripe_holds_after_applying_is_what_the_file_says() {
        let spec = BillingFile::parse(EXAMPLE).expect("valid").portal;
        let mut plans = Plans::new();
        plans
            .entry("prod_a".into())
            .or_default()
            .prices
            .extend(["price_1".to_owned(), "price_2".to_owned()]);
        plans.insert(
            "prod_team".into(),
            PortalProduct {
                prices: ["price_t".to_owned()].into(),
                seats: Some(Seats {
                    minimum: 2,
                    maximum: Some(50),
                }),
            },
        );
        let desired = desired_fields(&spec, &plans, "http://x/settings/billing");
        // Stripe's answer for the form we send, as the double renders it.
        let echoed = serde_json::json!({
            "id": "bpc_1", "active": true,
            "business_profile": {"headline": spec.headline, "privacy_policy_url": spec.privacy_policy_url, "terms_of_service_url": spec.terms_of_service_url},
            "default_return_url": spec.default_return_url.clone().unwrap_or_else(|| "http://x/settings/billing".into()),
            "features": {
                "customer_update": {"enabled": spec.customer_update.enabled, "allowed_updates": spec.customer_update.allowed},
                "invoice_history": {"enabled": spec.invoice_history.enabled},
                "payment_method_update": {"enabled": spec.payment_method_update.enabled},
                "subscription_cancel": {"enabled": spec.cancellation.enabled, "mode": spec.cancellation.mode,
                    "cancellation_reason": {"enabled": !spec.cancellation.reasons.is_empty(), "options": spec.cancellation.reasons}},
                "subscription_update": {"enabled": spec.plan_switching.enabled, "default_allowed_updates": ["quantity", "price"],
                    "proration_behavior": spec.plan_switching.proration_behavior,
                    "schedule_at_period_end": {"conditions": [{"type": "shortening_interval"}, {"type": "decreasing_item_amount"}]},
                    "products": [
                        {"product": "prod_a", "prices": ["price_2", "price_1"], "adjustable_quantity": {"enabled": false, "minimum": 1, "maximum": null}},
                        {"product": "prod_team", "prices": ["price_t"], "adjustable_quantity": {"enabled": true, "minimum": 2, "maximum": 50}}
                    ]}
            }
        });
        assert_eq!(diff(&current_fields(&echoed), &desired), vec![]);
        // A per-seat product whose quantity Stripe does not let customers choose is a change.
        let mut fixed = echoed.clone();
        fixed["features"]["subscription_update"]["products"][1]["adjustable_quantity"]["enabled"] =
            false.into();
        let d = diff(&current_fields(&fixed), &desired);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].0, "features.subscription_update.products");
        assert!(d[0].2.contains("prod_team: price_t (seats 2–50)"), "{d:?}");
        // The form asks Stripe for exactly those bounds.
        let sent = form(&spec, &plans, "http://x/settings/billing");
        let has = |k: &str, v: &str| sent.iter().any(|(a, b)| a == k && b == v);
        assert!(has(
            "features[subscription_update][products][1][adjustable_quantity][maximum]",
            "50"
        ));
        assert!(has(
            "features[subscription_update][products][0][adjustable_quantity][enabled]",
            "false"
        ));
        assert!(has(
            "features[subscription_update][default_allowed_updates][1]",
            "quantity"
        ));
        let mut changed = echoed.clone();
        changed["features"]["subscription_cancel"]["mode"] = "immediately".into();
        let d = diff(&current_fields(&changed), &desired);
        assert_eq!(
            d,
            vec![(
                "features.subscription_cancel.mode".to_owned(),
                "immediately".to_owned(),
                "at_period_end".to_owned()
            )]
        );
    }
}
