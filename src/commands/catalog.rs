//! The catalogue applied to Stripe: `billfold catalog apply [--dry-run]` makes the account's
//! products and prices say what `billing.toml`'s `[catalog]` says, printing each change first.
//! Applying twice changes nothing the second time.
//!
//! A plan's product is the one marked `metadata[billfold_plan]=<key>`, else the product of the
//! price that holds one of the plan's lookup keys (an account already selling by lookup key),
//! else a new one (marked). A price is the one holding its lookup key: when its amount,
//! currency, interval or product differ from the file, a new price takes the lookup key
//! (`transfer_lookup_key`) and the old one is archived, as Stripe requires (a price's amount is
//! never edited; subscriptions on the old price go on). Nothing else in the account is touched:
//! no product or price the catalogue does not name, and no plan removed from the file.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::Value;

use crate::{
    billing_file::{
        catalog::{Plan, PlanPrice},
        Catalog,
    },
    stripe_api::raw::Rest,
};

/// The product metadata that marks a plan's product.
pub const PLAN_KEY: &str = "billfold_plan";

/// Stripe lists at most this many lookup keys per request.
const LOOKUP_KEYS_PER_LIST: usize = 10;

/// Where a price's product is: one Stripe has, or the one a step before makes for a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductRef {
    Existing(String),
    New(String),
}

/// Where a feature is: one Stripe has, or the one a step before makes (by lookup key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureRef {
    Existing(String),
    New(String),
}

/// One change to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateFeature {
        lookup_key: String,
        name: String,
    },
    /// A feature's name to set, or an archived feature to restore.
    UpdateFeature {
        lookup_key: String,
        id: String,
        fields: Vec<(String, String, String)>,
    },
    /// A plan's product comes to include a feature.
    AttachFeature {
        plan: String,
        product: ProductRef,
        feature: FeatureRef,
        lookup_key: String,
    },
    /// A plan's product no longer includes a feature of the catalogue.
    DetachFeature {
        plan: String,
        product: String,
        id: String,
        lookup_key: String,
    },
    CreateProduct {
        plan: String,
        name: String,
        description: Option<String>,
    },
    /// Fields of a plan's product to set: (field, what Stripe has, what the file says).
    UpdateProduct {
        plan: String,
        id: String,
        fields: Vec<(String, String, String)>,
    },
    CreatePrice {
        plan: String,
        product: ProductRef,
        price: PlanPrice,
        /// The price holding the lookup key now, which gives it up.
        takes_key_from: Option<String>,
    },
    /// A price the catalogue no longer sells at its lookup key (replaced above).
    ArchivePrice {
        lookup_key: String,
        id: String,
    },
    /// A price that matches the file but was archived: sold again.
    RestorePrice {
        lookup_key: String,
        id: String,
    },
}

impl Step {
    /// What the step does, in one line.
    pub fn describe(&self) -> String {
        match self {
            Step::CreateFeature { lookup_key, name } => {
                format!("create feature {lookup_key}: \"{name}\"")
            }
            Step::UpdateFeature {
                lookup_key, fields, ..
            } => {
                let changes: Vec<String> = fields
                    .iter()
                    .map(|(f, have, want)| format!("{f}: {have:?} -> {want:?}"))
                    .collect();
                format!("update feature {lookup_key}: {}", changes.join(", "))
            }
            Step::AttachFeature {
                plan, lookup_key, ..
            } => format!("plan `{plan}` includes feature {lookup_key}"),
            Step::DetachFeature {
                plan, lookup_key, ..
            } => format!("plan `{plan}` no longer includes feature {lookup_key}"),
            Step::CreateProduct { plan, name, .. } => {
                format!("create product for plan `{plan}`: \"{name}\"")
            }
            Step::UpdateProduct { plan, id, fields } => {
                let changes: Vec<String> = fields
                    .iter()
                    .map(|(f, have, want)| format!("{f}: {have:?} -> {want:?}"))
                    .collect();
                format!(
                    "update product {id} (plan `{plan}`): {}",
                    changes.join(", ")
                )
            }
            Step::CreatePrice {
                price,
                takes_key_from,
                ..
            } => {
                let what = format!(
                    "{} {} {}/{}",
                    price.lookup_key,
                    price.amount,
                    price.currency,
                    price.interval.as_str()
                );
                match takes_key_from {
                    Some(old) => format!("create price {what} (taking the lookup key from {old})"),
                    None => format!("create price {what}"),
                }
            }
            Step::ArchivePrice { lookup_key, id } => {
                format!("archive price {id} (was {lookup_key}; its subscriptions go on)")
            }
            Step::RestorePrice { lookup_key, id } => {
                format!("restore price {id} ({lookup_key})")
            }
        }
    }
}

/// What the account holds that the catalogue is compared with: every product, and the prices
/// holding the catalogue's lookup keys (Stripe's JSON).
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub products: Vec<Value>,
    pub prices: Vec<Value>,
    /// Every Entitlements feature.
    pub features: Vec<Value>,
    /// The features each plan's product includes (`product_feature` objects), by product id.
    pub product_features: BTreeMap<String, Vec<Value>>,
}

/// Reads what [`plan`] compares.
pub async fn read_account(rest: &Rest, catalog: &Catalog) -> anyhow::Result<Account> {
    let products = rest
        .list_all("products", 10_000)
        .await
        .context("listing the account's products")?;
    let keys: Vec<&str> = catalog
        .plans
        .iter()
        .flat_map(|p| p.prices.iter().map(|p| p.lookup_key.as_str()))
        .collect();
    let mut prices = Vec::new();
    for chunk in keys.chunks(LOOKUP_KEYS_PER_LIST) {
        let query: Vec<String> = chunk
            .iter()
            .map(|k| {
                format!(
                    "lookup_keys[]={}",
                    url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>()
                )
            })
            .collect();
        prices.extend(
            rest.list_all(&format!("prices?{}", query.join("&")), 1_000)
                .await
                .context("listing the catalogue's prices")?,
        );
    }
    let features = rest
        .list_all("entitlements/features", 10_000)
        .await
        .context("listing the account's features")?;
    let mut account = Account {
        products,
        prices,
        features,
        product_features: BTreeMap::new(),
    };
    for plan in &catalog.plans {
        if let Some(id) = product_of(&account, plan).map(|p| text(&p["id"])) {
            let attached = rest
                .list_all(&format!("products/{id}/features"), 1_000)
                .await
                .with_context(|| format!("listing the features of {id}"))?;
            account.product_features.insert(id, attached);
        }
    }
    Ok(account)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The price holding `lookup_key` (Stripe lets one price hold it at a time).
fn holder<'a>(account: &'a Account, lookup_key: &str) -> Option<&'a Value> {
    account
        .prices
        .iter()
        .find(|p| p["lookup_key"].as_str() == Some(lookup_key))
}

/// The product a plan's prices belong to in the account, if it has one.
fn product_of<'a>(account: &'a Account, plan: &Plan) -> Option<&'a Value> {
    let marked = account
        .products
        .iter()
        .find(|p| p["metadata"][PLAN_KEY].as_str() == Some(plan.key.as_str()));
    marked.or_else(|| {
        let id = plan
            .prices
            .iter()
            .find_map(|price| holder(account, &price.lookup_key))
            .and_then(|p| {
                p["product"]
                    .as_str()
                    .or_else(|| p["product"]["id"].as_str())
            })?;
        account
            .products
            .iter()
            .find(|p| p["id"].as_str() == Some(id))
    })
}

/// Whether the account's `price` is what the file says, on `product`.
fn price_matches(price: &Value, want: &PlanPrice, product: Option<&str>) -> bool {
    let on = price["product"]
        .as_str()
        .or_else(|| price["product"]["id"].as_str());
    price["unit_amount"].as_i64() == Some(want.amount)
        && price["currency"].as_str() == Some(want.currency.as_str())
        && price["recurring"]["interval"].as_str() == Some(want.interval.as_str())
        && price["recurring"]["interval_count"].as_i64() == Some(1)
        && product.is_some()
        && on == product
}

/// The steps that make the account say what the catalogue says (none when it already does).
pub fn plan(catalog: &Catalog, account: &Account) -> Vec<Step> {
    let mut steps = Vec::new();
    for feature in &catalog.features {
        let have = account
            .features
            .iter()
            .find(|f| f["lookup_key"].as_str() == Some(feature.lookup_key.as_str()));
        match have {
            None => steps.push(Step::CreateFeature {
                lookup_key: feature.lookup_key.clone(),
                name: feature.name.clone(),
            }),
            Some(f) => {
                let mut fields = Vec::new();
                if text(&f["name"]) != feature.name {
                    fields.push(("name".into(), text(&f["name"]), feature.name.clone()));
                }
                if f["active"].as_bool() != Some(true) {
                    fields.push(("active".into(), "false".into(), "true".into()));
                }
                if !fields.is_empty() {
                    steps.push(Step::UpdateFeature {
                        lookup_key: feature.lookup_key.clone(),
                        id: text(&f["id"]),
                        fields,
                    });
                }
            }
        }
    }
    for plan in &catalog.plans {
        let product = product_of(account, plan);
        let product_id = product.map(|p| text(&p["id"]));
        let attached: &[Value] = product_id
            .as_ref()
            .and_then(|id| account.product_features.get(id))
            .map_or(&[], Vec::as_slice);
        let mut feature_steps = Vec::new();
        let key_of = |pf: &Value| text(&pf["entitlement_feature"]["lookup_key"]);
        for key in &plan.features {
            if attached.iter().any(|pf| key_of(pf) == *key) {
                continue;
            }
            let feature = account
                .features
                .iter()
                .find(|f| f["lookup_key"].as_str() == Some(key.as_str()))
                .map_or(FeatureRef::New(key.clone()), |f| {
                    FeatureRef::Existing(text(&f["id"]))
                });
            feature_steps.push(Step::AttachFeature {
                plan: plan.key.clone(),
                product: match &product_id {
                    Some(id) => ProductRef::Existing(id.clone()),
                    None => ProductRef::New(plan.key.clone()),
                },
                feature,
                lookup_key: key.clone(),
            });
        }
        // Only the catalogue's features are managed: one it does not list stays attached.
        for pf in attached {
            let key = key_of(pf);
            let managed = catalog.features.iter().any(|f| f.lookup_key == key);
            if managed && !plan.features.contains(&key) {
                feature_steps.push(Step::DetachFeature {
                    plan: plan.key.clone(),
                    product: product_id.clone().unwrap_or_default(),
                    id: text(&pf["id"]),
                    lookup_key: key,
                });
            }
        }
        match product {
            None => steps.push(Step::CreateProduct {
                plan: plan.key.clone(),
                name: plan.name.clone(),
                description: plan.description.clone(),
            }),
            Some(p) => {
                let mut fields = Vec::new();
                let mut want = |field: &str, have: String, wanted: String| {
                    if have != wanted {
                        fields.push((field.to_owned(), have, wanted));
                    }
                };
                want("name", text(&p["name"]), plan.name.clone());
                want(
                    "description",
                    text(&p["description"]),
                    plan.description.clone().unwrap_or_default(),
                );
                want(
                    "active",
                    p["active"].as_bool().unwrap_or(false).to_string(),
                    "true".into(),
                );
                if !fields.is_empty() {
                    steps.push(Step::UpdateProduct {
                        plan: plan.key.clone(),
                        id: text(&p["id"]),
                        fields,
                    });
                }
            }
        }
        steps.extend(feature_steps);
        for want in &plan.prices {
            let held = holder(account, &want.lookup_key);
            match held {
                Some(p) if price_matches(p, want, product_id.as_deref()) => {
                    if !p["active"].as_bool().unwrap_or(false) {
                        steps.push(Step::RestorePrice {
                            lookup_key: want.lookup_key.clone(),
                            id: text(&p["id"]),
                        });
                    }
                }
                _ => {
                    steps.push(Step::CreatePrice {
                        plan: plan.key.clone(),
                        product: match &product_id {
                            Some(id) => ProductRef::Existing(id.clone()),
                            None => ProductRef::New(plan.key.clone()),
                        },
                        price: want.clone(),
                        takes_key_from: held.map(|p| text(&p["id"])),
                    });
                    if let Some(old) = held.filter(|p| p["active"].as_bool().unwrap_or(false)) {
                        steps.push(Step::ArchivePrice {
                            lookup_key: want.lookup_key.clone(),
                            id: text(&old["id"]),
                        });
                    }
                }
            }
        }
    }
    steps
}

async fn post(rest: &Rest, path: &str, form: Vec<(String, String)>) -> anyhow::Result<Value> {
    let answer = rest.post(path, &form).await?;
    if !answer.ok() {
        anyhow::bail!(
            "POST /v1/{path}: Stripe answered {} ({})",
            answer.status,
            answer.error_message()
        );
    }
    Ok(answer.body)
}

fn nickname(plan: &str, price: &PlanPrice) -> String {
    format!("{plan} ({}ly)", price.interval.as_str())
}

/// Makes the account match the catalogue: reads it, plans, carries the steps out. Returns the
/// steps (none: it already matched). What `billfold catalog apply` does, and simulated mode at
/// start, so a newcomer's double sells what `billing.toml` says.
pub async fn apply(rest: &Rest, catalog: &Catalog) -> anyhow::Result<Vec<Step>> {
    let account = read_account(rest, catalog).await?;
    let steps = plan(catalog, &account);
    if !steps.is_empty() {
        execute(rest, catalog, &steps).await?;
    }
    Ok(steps)
}

/// Carries the steps out, in order; stops at the first Stripe refuses, naming it (the steps
/// before it are done, and a second run picks up from there).
pub async fn execute(rest: &Rest, catalog: &Catalog, steps: &[Step]) -> anyhow::Result<()> {
    let mut made: BTreeMap<String, String> = BTreeMap::new();
    let mut made_features: BTreeMap<String, String> = BTreeMap::new();
    let names: BTreeMap<&str, &str> = catalog
        .plans
        .iter()
        .map(|p| (p.key.as_str(), p.name.as_str()))
        .collect();
    for step in steps {
        let s = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let done = match step {
            Step::CreateFeature { lookup_key, name } => post(
                rest,
                "entitlements/features",
                vec![s("lookup_key", lookup_key), s("name", name)],
            )
            .await
            .map(|created| {
                made_features.insert(lookup_key.clone(), text(&created["id"]));
            }),
            Step::UpdateFeature { id, fields, .. } => {
                let form = fields
                    .iter()
                    .map(|(field, _, want)| s(field, want))
                    .collect();
                post(rest, &format!("entitlements/features/{id}"), form)
                    .await
                    .map(drop)
            }
            Step::AttachFeature {
                product, feature, ..
            } => {
                let product = match product {
                    ProductRef::Existing(id) => Some(id.clone()),
                    ProductRef::New(plan) => made.get(plan).cloned(),
                };
                let feature = match feature {
                    FeatureRef::Existing(id) => Some(id.clone()),
                    FeatureRef::New(key) => made_features.get(key).cloned(),
                };
                let (Some(product), Some(feature)) = (product, feature) else {
                    anyhow::bail!("{}: its product or feature was not made", step.describe());
                };
                post(
                    rest,
                    &format!("products/{product}/features"),
                    vec![s("entitlement_feature", &feature)],
                )
                .await
                .map(drop)
            }
            Step::DetachFeature { product, id, .. } => {
                let answer = rest
                    .delete(&format!("products/{product}/features/{id}"))
                    .await?;
                if answer.ok() {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "DELETE /v1/products/{product}/features/{id}: Stripe answered {} ({})",
                        answer.status,
                        answer.error_message()
                    ))
                }
            }
            Step::CreateProduct {
                plan,
                name,
                description,
            } => {
                let mut form = vec![s("name", name), s(&format!("metadata[{PLAN_KEY}]"), plan)];
                if let Some(d) = description {
                    form.push(s("description", d));
                }
                post(rest, "products", form).await.map(|created| {
                    made.insert(plan.clone(), text(&created["id"]));
                })
            }
            Step::UpdateProduct { id, fields, .. } => {
                let form = fields
                    .iter()
                    .map(|(field, _, want)| s(field, want))
                    .collect();
                post(rest, &format!("products/{id}"), form).await.map(drop)
            }
            Step::CreatePrice {
                plan,
                product,
                price,
                takes_key_from,
            } => {
                let product = match product {
                    ProductRef::Existing(id) => Some(id.clone()),
                    ProductRef::New(plan) => made.get(plan).cloned(),
                };
                let Some(product) = product else {
                    anyhow::bail!("{}: its product was not made", step.describe());
                };
                let mut form = vec![
                    s("product", &product),
                    s("unit_amount", &price.amount.to_string()),
                    s("currency", &price.currency),
                    s("recurring[interval]", price.interval.as_str()),
                    s("lookup_key", &price.lookup_key),
                    s(
                        "nickname",
                        &nickname(names.get(plan.as_str()).copied().unwrap_or(plan), price),
                    ),
                ];
                if takes_key_from.is_some() {
                    form.push(s("transfer_lookup_key", "true"));
                }
                post(rest, "prices", form).await.map(drop)
            }
            Step::ArchivePrice { id, .. } => {
                post(rest, &format!("prices/{id}"), vec![s("active", "false")])
                    .await
                    .map(drop)
            }
            Step::RestorePrice { id, .. } => {
                post(rest, &format!("prices/{id}"), vec![s("active", "true")])
                    .await
                    .map(drop)
            }
        };
        done.with_context(|| step.describe())?;
    }
    Ok(())
}

/// The report `billfold catalog apply` prints.
pub fn format(steps: &[Step], dry_run: bool) -> String {
    if steps.is_empty() {
        return "The Stripe account already sells what billing.toml's catalogue says: nothing to change.\n"
            .to_owned();
    }
    let mut out = String::from(if dry_run {
        "Would change (dry run, nothing changed):\n"
    } else {
        "Changed:\n"
    });
    for step in steps {
        out.push_str(&format!("  {}\n", step.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::billing_file::BillingFile;

    fn catalog() -> Catalog {
        BillingFile::parse(include_str!("../../billing.toml"))
            .expect("billing.toml")
            .catalog
    }

    /// The account as `apply` leaves it: a marked product per plan, a matching price per key.
    fn applied(c: &Catalog) -> Account {
        let mut account = Account::default();
        for f in &c.features {
            account.features.push(json!({
                "id": format!("feat_{}", f.lookup_key), "lookup_key": f.lookup_key,
                "name": f.name, "active": true,
            }));
        }
        for plan in &c.plans {
            let id = format!("prod_{}", plan.key);
            let attached = plan
                .features
                .iter()
                .map(|key| {
                    json!({"id": format!("prodft_{}_{key}", plan.key),
                        "entitlement_feature": {"id": format!("feat_{key}"), "lookup_key": key}})
                })
                .collect();
            account.product_features.insert(id.clone(), attached);
            account.products.push(json!({
                "id": id, "name": plan.name, "description": plan.description, "active": true,
                "metadata": {PLAN_KEY: plan.key},
            }));
            for p in &plan.prices {
                account.prices.push(json!({
                    "id": format!("price_{}", p.lookup_key), "product": id, "active": true,
                    "lookup_key": p.lookup_key, "unit_amount": p.amount, "currency": p.currency,
                    "recurring": {"interval": p.interval.as_str(), "interval_count": 1},
                }));
            }
        }
        account
    }

    #[test]
    fn an_empty_account_gets_everything_and_a_matching_one_nothing() {
        let c = catalog();
        let steps = plan(&c, &Account::default());
        let products = steps
            .iter()
            .filter(|s| matches!(s, Step::CreateProduct { .. }))
            .count();
        let prices = steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::CreatePrice {
                        product: ProductRef::New(_),
                        takes_key_from: None,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(products, c.plans.len());
        assert_eq!(
            prices,
            c.plans.iter().map(|p| p.prices.len()).sum::<usize>()
        );
        let features = steps
            .iter()
            .filter(|s| matches!(s, Step::CreateFeature { .. }))
            .count();
        let attached = steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::AttachFeature {
                        product: ProductRef::New(_),
                        feature: FeatureRef::New(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(features, c.features.len());
        assert_eq!(
            attached,
            c.plans.iter().map(|p| p.features.len()).sum::<usize>()
        );
        assert_eq!(steps.len(), products + prices + features + attached);
        // Features are made before the plans that include them.
        let first_product = steps
            .iter()
            .position(|s| matches!(s, Step::CreateProduct { .. }));
        let last_feature = steps
            .iter()
            .rposition(|s| matches!(s, Step::CreateFeature { .. }));
        assert!(last_feature < first_product);
        assert_eq!(plan(&c, &applied(&c)), vec![]);
    }

    #[test]
    fn a_new_amount_is_a_new_price_and_the_old_one_is_archived() {
        let mut c = catalog();
        let before = applied(&c);
        c.plans[1].prices[0].amount += 1000;
        let key = c.plans[1].prices[0].lookup_key.clone();
        let steps = plan(&c, &before);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(
            matches!(&steps[0], Step::CreatePrice { takes_key_from: Some(old), .. } if *old == format!("price_{key}"))
        );
        assert_eq!(
            steps[1],
            Step::ArchivePrice {
                lookup_key: key.clone(),
                id: format!("price_{key}")
            }
        );
    }

    #[test]
    fn a_feature_a_plan_drops_is_detached_and_an_unmanaged_one_stays() {
        let mut c = catalog();
        let mut account = applied(&c);
        let team = c.plans.iter_mut().find(|p| p.key == "team").expect("team");
        team.features.retain(|f| f != "sso");
        account
            .product_features
            .get_mut("prod_team")
            .expect("team's features")
            .push(json!({"id": "prodft_x", "entitlement_feature": {"id": "feat_x", "lookup_key": "beta"}}));
        let steps = plan(&c, &account);
        assert_eq!(
            steps,
            vec![Step::DetachFeature {
                plan: "team".into(),
                product: "prod_team".into(),
                id: "prodft_team_sso".into(),
                lookup_key: "sso".into()
            }]
        );
    }

    #[test]
    fn products_are_found_by_their_prices_and_only_named_ones_change() {
        let c = catalog();
        let mut account = applied(&c);
        // An account that sold by lookup key before: no marks, one description edited by hand,
        // and a product the catalogue does not name.
        for p in &mut account.products {
            p["metadata"] = json!({});
        }
        account.products[0]["description"] = json!("Edited in the Dashboard");
        account.products.push(
            json!({"id": "prod_other", "name": "Consulting", "active": true, "metadata": {}}),
        );
        let steps = plan(&c, &account);
        assert_eq!(steps.len(), 1, "{steps:?}");
        let Step::UpdateProduct { id, fields, .. } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(id, "prod_starter");
        assert_eq!(fields[0].0, "description");
    }
}
