//! The reconciler's cost: how many Stripe API calls, and how long, one full compare of N
//! customers takes against the Stripe test double (in process, over loopback HTTP).
//!
//! Each customer has a card and a monthly subscription made through the double's API. One
//! reconciler cycle then runs with the slice covering every customer (as a daily interval
//! would), and the API requests it made are counted at the double.
//!
//! `cargo run --release --example bench_reconcile --features ssr,stripe-sim -- [--customers N]
//!  [--db sqlite|postgres]`

use std::{
    process::ExitCode,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Instant,
};

use axum::{extract::Request, middleware::Next, response::Response};
use billfold::{
    config::Config,
    db::entities::{stripe_customer, user},
    reconcile,
};
use billfold_test_support::Scratch;
use sea_orm::{ActiveValue::Set, EntityTrait};
use stripe_sim::{SimOptions, StripeSim};
use tokio::net::TcpListener;

const KEY: &str = "sk_test_bench_reconcile";

struct Options {
    customers: usize,
    db: String,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        customers: 1_000,
        db: "sqlite".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--customers" => {
                o.customers = value.parse().map_err(|_| format!("{flag}: not a number"))?
            }
            "--db" => o.db = value,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !matches!(o.db.as_str(), "sqlite" | "postgres") {
        return Err("--db must be sqlite or postgres".into());
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_reconcile: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let o = options().map_err(anyhow::Error::msg)?;

    // The double, counting every API request it answers.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let sim = StripeSim::open(SimOptions::new(base.clone())).await?;
    let calls = Arc::new(AtomicUsize::new(0));
    let router = sim.router().layer(axum::middleware::from_fn({
        let calls = calls.clone();
        move |req: Request, next: Next| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
                let res: Response = next.run(req).await;
                res
            }
        }
    }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let dir = tempfile::tempdir()?;
    let scratch = Scratch::create(
        &o.db,
        dir.path(),
        "BILLFOLD_BENCH_PG_URL",
        "billfold_bench_reconcile",
    )
    .await?;
    let result = measure(&o, &base, &scratch.url, &calls).await;
    scratch.drop_database().await;
    result
}

async fn measure(
    o: &Options,
    stripe_base: &str,
    database_url: &str,
    calls: &AtomicUsize,
) -> anyhow::Result<()> {
    let vars = [
        ("STRIPE_SECRET_KEY", KEY),
        ("STRIPE_WEBHOOK_SECRET", "whsec_bench_reconcile"),
        ("STRIPE_API_BASE", stripe_base),
        ("DATABASE_URL", database_url),
        ("APP_URL", "http://127.0.0.1:3999"),
        ("BIND_ADDR", "127.0.0.1:3999"),
        ("MAIL_DELIVERY", "log"),
        // One cycle a day compares every customer in it.
        ("RECONCILE_EVERY", "1d"),
        ("LOG_LEVEL", "error"),
    ];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    })?;
    let state = billfold::server::build_state(config).await?;
    let stripe = state.stripe.clone();

    eprintln!(
        "making {} customers with a card and a subscription…",
        o.customers
    );
    let made = Instant::now();
    let price = stripe_product::price::ListPrice::new()
        .active(true)
        .send(&stripe)
        .await?
        .data
        .into_iter()
        .find(|p| p.unit_amount == Some(2900))
        .ok_or_else(|| anyhow::anyhow!("no seeded $29 price"))?;
    for i in 0..o.customers {
        let email = format!("bench{i}@example.com");
        let customer = stripe_core::customer::CreateCustomer::new()
            .email(email.as_str())
            .send(&stripe)
            .await?;
        let pm = stripe_payment::payment_method::AttachPaymentMethod::new("pm_card_visa")
            .customer(customer.id.as_str())
            .send(&stripe)
            .await?;
        let mut item = stripe_billing::subscription::CreateSubscriptionItems::new();
        item.price = Some(price.id.to_string());
        stripe_billing::subscription::CreateSubscription::new()
            .customer(customer.id.as_str())
            .items(vec![item])
            .default_payment_method(pm.id.as_str())
            .send(&stripe)
            .await?;
        let user = user::Entity::insert(user::ActiveModel {
            email: Set(email.clone()),
            password_hash: Set("not a hash: no log-in".into()),
            created_at: Set(billfold::db::clock::now()),
            ..Default::default()
        })
        .exec(&state.db)
        .await?;
        stripe_customer::Entity::insert(stripe_customer::ActiveModel {
            user_id: Set(user.last_insert_id),
            livemode: Set(false),
            customer_id: Set(customer.id.to_string()),
            email: Set(Some(email)),
            created_at: Set(billfold::db::clock::now()),
            ..Default::default()
        })
        .exec(&state.db)
        .await?;
    }
    eprintln!("made in {:.1} s", made.elapsed().as_secs_f64());

    for label in ["first cycle (empty tables)", "second cycle (in step)"] {
        calls.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let report = reconcile::run_cycle(&state).await?;
        let elapsed = started.elapsed();
        let n = calls.load(Ordering::Relaxed);
        anyhow::ensure!(report.succeeded(), "the cycle failed: {report:?}");
        let per_1000 = |x: f64| x * 1000.0 / report.customers_compared.max(1) as f64;
        println!(
            "{label}: {} customers compared, {} drift fields, {} API calls ({:.1} per customer), \
             {:.2} s ({:.0} API calls and {:.1} s per 1,000 customers)",
            report.customers_compared,
            report.drift,
            n,
            n as f64 / report.customers_compared.max(1) as f64,
            elapsed.as_secs_f64(),
            per_1000(n as f64),
            per_1000(elapsed.as_secs_f64()),
        );
    }
    Ok(())
}
