//! Typed settings, read once at start from the environment (and `.env` when present).
//!
//! Every value is validated here; a bad one stops the app with a message that names the
//! variable and what is wrong. Secrets live in [`Secret`], which never prints its contents.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use url::Url;

/// A value that must never reach a log line, an error message or the client bundle.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (an HMAC key, an auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Which Stripe Billfold talks to: the key's mode, or the built-in double when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeMode {
    /// `STRIPE_MODE=simulated`: the built-in Stripe test double, mounted at `/_stripe-sim`.
    /// Never a fallback: only ever chosen explicitly, and only on loopback.
    Simulated,
    /// An `sk_test_`/`rk_test_` key: Stripe's test mode (or a standalone double).
    Test,
    /// An `sk_live_`/`rk_live_` key: real money.
    Live,
}

impl StripeMode {
    /// Whether events and objects of this mode carry `livemode: true`.
    pub fn livemode(self) -> bool {
        matches!(self, StripeMode::Live)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub mode: StripeMode,
    pub secret_key: Option<Secret>,
    /// Every secret a webhook signature may be made with (more than one while rotating).
    pub webhook_secrets: Vec<Secret>,
    pub portal_configuration_id: Option<String>,
    /// Where the Stripe API lives; `None` means Stripe itself (or the mounted double when simulated).
    pub api_base: Option<Url>,
    pub webhook_tolerance: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The public URL users reach the app at: origin checks, redirects, cookie `Secure`.
    pub app_url: Url,
    pub bind_addr: SocketAddr,
    pub database_url: Secret,
    pub stripe: StripeConfig,
    pub log_level: String,
    pub log_format: LogFormat,
    /// Where the built site (WASM, JS, CSS, public assets) is served from.
    pub site_root: PathBuf,
    /// Where the mounted Stripe test double keeps its state (simulated mode only).
    pub stripe_sim_state: PathBuf,
    /// How often the reconciler runs (`RECONCILE_EVERY`); `None` when turned off (`0`).
    pub reconcile_every: Option<Duration>,
    /// How long a received event's payload (personal data) is kept
    /// (`WEBHOOK_PAYLOAD_RETENTION`, 90 days unless told); the event's row stays.
    pub webhook_payload_retention: Duration,
    /// Proxies whose forwarding header is believed (`TRUSTED_PROXIES`); none by default, so
    /// the client is the TCP peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header those proxies write (`TRUSTED_PROXY_HEADER`); set exactly when
    /// `trusted_proxies` is not empty.
    pub trusted_proxy_header: Option<ProxyHeader>,
    /// Where the Prometheus metrics are served, if anywhere (never by default).
    pub metrics: MetricsExposure,
    /// Billing as code (`BILLING_FILE`, default `billing.toml`): the portal, read by
    /// `billfold portal apply` and `billfold doctor`, and the catalogue of plans for sale.
    pub billing_file: PathBuf,
    /// The catalogue `billing_file` holds, read once at start: nothing else is for sale.
    pub catalog: std::sync::Arc<crate::billing_file::Catalog>,
    /// How long a subscription whose payment failed keeps access (`PAST_DUE_GRACE`): while
    /// Stripe retries (the default), or a grace period from the first failed attempt.
    pub past_due: crate::domain::PastDuePolicy,
    /// Where mail goes and who it is from.
    pub mail: MailConfig,
}

/// Where mail goes (`SMTP_URL`, or `MAIL_DELIVERY=log`) and who it is from (`MAIL_FROM`).
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub delivery: MailDelivery,
    /// The From header, `Name <address>` or a bare address.
    pub from: String,
}

/// How mail leaves.
#[derive(Debug, Clone)]
pub enum MailDelivery {
    /// Through this SMTP server: `smtp://[user:pass@]host[:port]` (add `?tls=required` for
    /// STARTTLS) or `smtps://…` (TLS from the start).
    Smtp(Secret),
    /// Written to the log and not sent: chosen with `MAIL_DELIVERY=log` (development), or
    /// simulated mode without an SMTP server.
    Log,
}

/// The mail settings. In test and live mode mail must really leave: without `SMTP_URL` the app
/// refuses to start unless `MAIL_DELIVERY=log` is chosen explicitly.
fn mail_config(
    smtp_url: Option<String>,
    delivery: Option<String>,
    from: Option<String>,
    mode: StripeMode,
    app_url: &Url,
) -> Result<MailConfig, ConfigError> {
    let delivery = match (delivery.as_deref(), smtp_url) {
        (Some("log"), None) => MailDelivery::Log,
        (Some("log"), Some(_)) => {
            return Err(invalid(
                "MAIL_DELIVERY",
                "is log, but SMTP_URL is set too: unset one of them",
            ))
        }
        (Some("smtp") | None, Some(raw)) => {
            let url = Url::parse(&raw).map_err(|_| {
                invalid(
                    "SMTP_URL",
                    "is not a URL like smtp://user:pass@host:587?tls=required",
                )
            })?;
            if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none_or(str::is_empty)
            {
                return Err(invalid(
                    "SMTP_URL",
                    "must be smtp://host[:port] (with ?tls=required for STARTTLS) or smtps://host[:port]",
                ));
            }
            MailDelivery::Smtp(Secret::new(raw))
        }
        (None, None) if mode == StripeMode::Simulated => MailDelivery::Log,
        (Some("smtp") | None, None) => {
            return Err(invalid(
                "SMTP_URL",
                "is required in test and live mode: the SMTP server mail is sent through, e.g. \
                 smtp://user:pass@smtp.example.com:587?tls=required. For development only, \
                 MAIL_DELIVERY=log writes mail to the log instead of sending it",
            ))
        }
        (Some(other), _) => {
            return Err(invalid(
                "MAIL_DELIVERY",
                format!("`{other}` is not one of: smtp, log"),
            ))
        }
    };
    let host = app_url.host_str().unwrap_or("localhost");
    let from = match from {
        Some(from) => from,
        None if matches!(delivery, MailDelivery::Smtp(_)) && mode != StripeMode::Simulated => {
            return Err(invalid(
                "MAIL_FROM",
                "is required with SMTP_URL: the address mail is sent from, e.g. \
                 \"Example Billing <billing@example.com>\"",
            ))
        }
        None => format!("Billfold <billfold@{host}>"),
    };
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(invalid(
            "MAIL_FROM",
            "is not an address like \"Example Billing <billing@example.com>\"",
        ));
    }
    Ok(MailConfig { delivery, from })
}

/// How `/metrics` is reachable. Never public by default: without a setting there is none.
#[derive(Debug, Clone, Default)]
pub enum MetricsExposure {
    #[default]
    Off,
    /// On the app's own address, to requests bearing `Authorization: Bearer <token>`
    /// (`METRICS_TOKEN`).
    Token(Secret),
    /// On a listener of its own (`METRICS_ADDR`), e.g. a private interface the scraper
    /// reaches; no token there.
    Addr(SocketAddr),
}

/// The shortest `METRICS_TOKEN` accepted: it is the only thing between the world and the
/// numbers.
const MIN_METRICS_TOKEN: usize = 24;

/// A setting that could not be accepted; names the variable, never shows a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn invalid(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/billfold.db?mode=rwc";
pub const DEFAULT_APP_URL: &str = "http://127.0.0.1:3000";

impl Config {
    /// Reads `.env` (if any) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_or_simulated(false)
    }

    /// As [`Config::from_env`], with `simulated` (the `--simulated` flag) standing for
    /// `STRIPE_MODE=simulated`.
    pub fn from_env_or_simulated(simulated: bool) -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is a mistake worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(invalid(".env", e.to_string())),
        }
        Self::from_lookup(|key| match key {
            "STRIPE_MODE" if simulated => Some("simulated".to_owned()),
            _ => std::env::var(key).ok(),
        })
    }

    /// Builds the config from any key → value lookup (the environment, or a test's map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let app_url = parse_app_url(get("APP_URL").as_deref().unwrap_or(DEFAULT_APP_URL))?;

        let bind_raw = get("BIND_ADDR")
            .or_else(|| get("LEPTOS_SITE_ADDR"))
            .unwrap_or_else(|| "127.0.0.1:3000".into());
        let bind_addr = bind_raw.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "BIND_ADDR",
                format!("`{bind_raw}` is not an address like 127.0.0.1:3000"),
            )
        })?;

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }

        let secret_key = get("STRIPE_SECRET_KEY");
        let webhook_secrets = match get("STRIPE_WEBHOOK_SECRET") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with("whsec_") {
                        Ok(Secret::new(s))
                    } else {
                        Err(invalid(
                            "STRIPE_WEBHOOK_SECRET",
                            "each comma-separated secret must start with whsec_",
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let mode = stripe_mode(
            get("STRIPE_MODE").as_deref(),
            secret_key.as_deref(),
            !webhook_secrets.is_empty(),
        )?;
        if mode == StripeMode::Simulated {
            simulated_only_on_loopback(&app_url, bind_addr, get("STRIPE_API_BASE").is_some())?;
        }

        let portal_configuration_id = get("STRIPE_PORTAL_CONFIGURATION_ID");
        if let Some(id) = &portal_configuration_id {
            if !id.starts_with("bpc_") {
                return Err(invalid(
                    "STRIPE_PORTAL_CONFIGURATION_ID",
                    "must be a portal configuration id starting with bpc_",
                ));
            }
        }

        let api_base = match get("STRIPE_API_BASE") {
            None => None,
            Some(raw) => {
                let url = Url::parse(&raw).map_err(|e| {
                    invalid("STRIPE_API_BASE", format!("`{raw}` is not a URL: {e}"))
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid("STRIPE_API_BASE", "must be an http or https URL"));
                }
                Some(url)
            }
        };
        if mode == StripeMode::Live && api_base.is_some() {
            return Err(invalid(
                "STRIPE_API_BASE",
                "cannot be combined with a live key: live keys only ever go to Stripe",
            ));
        }

        let webhook_tolerance = match get("STRIPE_WEBHOOK_TOLERANCE_SECS") {
            None => Duration::from_secs(300),
            Some(raw) => match raw.parse::<u64>() {
                Ok(secs) if (1..=86_400).contains(&secs) => Duration::from_secs(secs),
                _ => {
                    return Err(invalid(
                        "STRIPE_WEBHOOK_TOLERANCE_SECS",
                        "must be a whole number of seconds between 1 and 86400",
                    ))
                }
            },
        };

        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "LOG_LEVEL",
                format!("`{log_level}` is not a level (error, warn, info, debug, trace) or filter"),
            ));
        }
        let log_format = match get("LOG_FORMAT").as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("`{other}` is not one of: text, json"),
                ))
            }
        };

        let site_root =
            PathBuf::from(get("LEPTOS_SITE_ROOT").unwrap_or_else(|| "target/site".into()));
        let stripe_sim_state = get("STRIPE_SIM_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| default_sim_state(&database_url));

        let reconcile_every = match get("RECONCILE_EVERY") {
            None => Some(DEFAULT_RECONCILE_EVERY),
            Some(raw) => {
                parse_interval(&raw).map_err(|problem| invalid("RECONCILE_EVERY", problem))?
            }
        };
        let webhook_payload_retention = match get("WEBHOOK_PAYLOAD_RETENTION") {
            None => DEFAULT_WEBHOOK_PAYLOAD_RETENTION,
            Some(raw) => parse_retention(&raw)
                .map_err(|problem| invalid("WEBHOOK_PAYLOAD_RETENTION", problem))?,
        };

        let trusted_proxies = parse_trusted_proxies(&get("TRUSTED_PROXIES").unwrap_or_default())
            .map_err(|problem| invalid("TRUSTED_PROXIES", problem))?;
        let trusted_proxy_header = match (get("TRUSTED_PROXY_HEADER"), trusted_proxies.is_empty()) {
            (None, true) => None,
            (None, false) => {
                return Err(invalid(
                    "TRUSTED_PROXY_HEADER",
                    "is required with TRUSTED_PROXIES: name the header your proxies write, \
                     x-forwarded-for or forwarded (and make them overwrite or strip the other)",
                ))
            }
            (Some(_), true) => {
                return Err(invalid(
                    "TRUSTED_PROXY_HEADER",
                    "is only read with TRUSTED_PROXIES: list your proxies there too",
                ))
            }
            (Some(raw), false) => Some(
                ProxyHeader::parse(&raw)
                    .map_err(|problem| invalid("TRUSTED_PROXY_HEADER", problem))?,
            ),
        };

        let past_due = match get("PAST_DUE_GRACE") {
            None => crate::domain::PastDuePolicy::WhileRetrying,
            Some(raw) => crate::domain::PastDuePolicy::Grace {
                secs: parse_grace(&raw).map_err(|problem| invalid("PAST_DUE_GRACE", problem))?,
            },
        };

        let metrics = match (get("METRICS_TOKEN"), get("METRICS_ADDR")) {
            (None, None) => MetricsExposure::Off,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "METRICS_TOKEN",
                    "set METRICS_TOKEN (metrics on the app's address, behind the token) or \
                     METRICS_ADDR (metrics on an address of their own), not both",
                ))
            }
            (Some(token), None) if token.chars().count() < MIN_METRICS_TOKEN => {
                return Err(invalid(
                    "METRICS_TOKEN",
                    format!("too short: use at least {MIN_METRICS_TOKEN} random characters"),
                ))
            }
            (Some(token), None) => MetricsExposure::Token(Secret::new(token)),
            (None, Some(raw)) => {
                let addr = raw.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        "METRICS_ADDR",
                        format!("`{raw}` is not an address with a port, e.g. 127.0.0.1:9100"),
                    )
                })?;
                if addr == bind_addr {
                    return Err(invalid(
                        "METRICS_ADDR",
                        "is the app's own address (BIND_ADDR): give the metrics a port of their own",
                    ));
                }
                MetricsExposure::Addr(addr)
            }
        };

        let billing_file =
            PathBuf::from(get("BILLING_FILE").unwrap_or_else(|| "billing.toml".into()));
        let catalog = crate::billing_file::BillingFile::load(&billing_file)
            .map(|file| std::sync::Arc::new(file.catalog))
            .map_err(|e| {
                invalid(
                    "BILLING_FILE",
                    format!("{e:#} (billing as code: the portal and the plans for sale)"),
                )
            })?;

        let mail = mail_config(
            get("SMTP_URL"),
            get("MAIL_DELIVERY"),
            get("MAIL_FROM"),
            mode,
            &app_url,
        )?;

        if get("ADMIN_EMAILS").is_some() {
            return Err(invalid(
                "ADMIN_EMAILS",
                "is no longer read: an email anyone can sign up with proves nothing. Grant \
                 operators on the server with `billfold admin add EMAIL` (see `billfold admin \
                 list`), then remove ADMIN_EMAILS",
            ));
        }

        Ok(Config {
            app_url,
            bind_addr,
            database_url: Secret::new(database_url),
            stripe: StripeConfig {
                mode,
                secret_key: secret_key.map(Secret::new),
                webhook_secrets,
                portal_configuration_id,
                api_base,
                webhook_tolerance,
            },
            log_level,
            log_format,
            site_root,
            stripe_sim_state,
            reconcile_every,
            webhook_payload_retention,
            trusted_proxies,
            trusted_proxy_header,
            metrics,
            billing_file,
            catalog,
            past_due,
            mail,
        })
    }

    /// Whether cookies must carry `Secure` (the app is served over https).
    pub fn secure_cookies(&self) -> bool {
        self.app_url.scheme() == "https"
    }

    /// `scheme://host[:port]` of `APP_URL`, as browsers send it in `Origin`.
    pub fn app_origin(&self) -> String {
        self.app_url.origin().ascii_serialization()
    }

    /// An absolute URL under `APP_URL` for a path like `/settings/billing`.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{}", self.app_origin(), path)
    }
}

/// What the app may not do without: the key's mode, or the double when explicitly chosen.
/// A missing setting never picks a weaker mode.
fn stripe_mode(
    chosen: Option<&str>,
    key: Option<&str>,
    has_webhook_secret: bool,
) -> Result<StripeMode, ConfigError> {
    let chosen = match chosen {
        None => None,
        Some("simulated") => Some(StripeMode::Simulated),
        Some("test") => Some(StripeMode::Test),
        Some("live") => Some(StripeMode::Live),
        Some(other) => {
            return Err(invalid(
                "STRIPE_MODE",
                format!("`{other}` is not one of: simulated, test, live"),
            ))
        }
    };
    if chosen == Some(StripeMode::Simulated) {
        if !SIMULATION_BUILT_IN {
            return Err(invalid(
                "STRIPE_MODE",
                "simulated mode is not in this build (it is built with the `stripe-sim` \
                 feature, as scripts/dev does); set STRIPE_SECRET_KEY to use Stripe",
            ));
        }
        if key.is_some() {
            return Err(invalid(
                "STRIPE_SECRET_KEY",
                "must not be set with STRIPE_MODE=simulated (the built-in double needs no key); \
                 unset one of them",
            ));
        }
        if has_webhook_secret {
            return Err(invalid(
                "STRIPE_WEBHOOK_SECRET",
                "must not be set with STRIPE_MODE=simulated (the built-in double signs with a \
                 secret of its own); unset one of them",
            ));
        }
        return Ok(StripeMode::Simulated);
    }
    let Some(key) = key else {
        return Err(invalid(
            "STRIPE_SECRET_KEY",
            "is not set. Set it to your Stripe secret key (sk_test_… or sk_live_…), or set \
             STRIPE_MODE=simulated to try Billfold with its built-in Stripe test double",
        ));
    };
    let key_mode = if key.starts_with("sk_test_") || key.starts_with("rk_test_") {
        StripeMode::Test
    } else if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
        StripeMode::Live
    } else {
        return Err(invalid(
            "STRIPE_SECRET_KEY",
            "must start with sk_test_, rk_test_, sk_live_ or rk_live_",
        ));
    };
    if let Some(chosen) = chosen.filter(|c| *c != key_mode) {
        let (said, is) = match chosen {
            StripeMode::Live => ("live", "a test key"),
            _ => ("test", "a live key"),
        };
        return Err(invalid(
            "STRIPE_MODE",
            format!("says {said}, but STRIPE_SECRET_KEY is {is}; make them agree"),
        ));
    }
    if !has_webhook_secret {
        return Err(invalid(
            "STRIPE_WEBHOOK_SECRET",
            "is required when STRIPE_SECRET_KEY is set (copy it from the webhook endpoint)",
        ));
    }
    Ok(key_mode)
}

/// Simulated mode lets anyone who reaches the app act as "Stripe": it is for one machine.
fn simulated_only_on_loopback(
    app_url: &Url,
    bind_addr: SocketAddr,
    has_api_base: bool,
) -> Result<(), ConfigError> {
    if app_url.scheme() == "https" {
        return Err(invalid(
            "APP_URL",
            "is https, but STRIPE_MODE=simulated is for trying Billfold on this machine only; \
             use an http://127.0.0.1 URL, or set STRIPE_SECRET_KEY for a real deployment",
        ));
    }
    if !bind_addr.ip().is_loopback() {
        return Err(invalid(
            "BIND_ADDR",
            format!(
                "{bind_addr} is not a loopback address, and STRIPE_MODE=simulated must not be \
                 reachable from other machines; use 127.0.0.1, or set STRIPE_SECRET_KEY"
            ),
        ));
    }
    if has_api_base {
        return Err(invalid(
            "STRIPE_API_BASE",
            "must not be set with STRIPE_MODE=simulated (the double is mounted in the app); \
             for a standalone double set a sk_test_ key instead",
        ));
    }
    Ok(())
}

/// Whether this build carries the Stripe test double (the `stripe-sim` feature).
pub const SIMULATION_BUILT_IN: bool = cfg!(feature = "stripe-sim");

/// Beside the SQLite file when there is one (so a throw-away database gets a throw-away
/// double), else `data/stripe-sim.json`.
fn default_sim_state(database_url: &str) -> PathBuf {
    let file = database_url
        .strip_prefix("sqlite:")
        .map(|rest| rest.trim_start_matches("//"))
        .and_then(|rest| rest.split('?').next())
        .filter(|path| !path.is_empty() && *path != ":memory:");
    match file.and_then(|f| std::path::Path::new(f).parent()) {
        Some(dir) => dir.join("stripe-sim.json"),
        None => PathBuf::from("data/stripe-sim.json"),
    }
}

/// The reconciler's interval unless `RECONCILE_EVERY` says otherwise.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(300);

/// A duration like `30s`, `5m`, `72h`, `7d` (or bare seconds) in seconds, at most `max`;
/// `example` and `too_long` word the errors for the setting at hand.
fn parse_duration(raw: &str, max: u64, example: &str, too_long: &str) -> Result<u64, String> {
    let bad = || format!("`{raw}` is not a duration like {example}");
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(secs) {
        Some(s) if s <= max => Ok(s),
        _ => Err(format!("`{raw}` is {too_long}")),
    }
}

/// `RECONCILE_EVERY`: up to a week; `0` turns the reconciler off (`None`).
fn parse_interval(raw: &str) -> Result<Option<Duration>, String> {
    let secs = parse_duration(
        raw,
        7 * 86_400,
        "30s, 5m, 1h or 1d (or 0 for off)",
        "longer than a week; the reconciler must compare every customer within a day",
    )?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// Webhook payloads are kept this long unless `WEBHOOK_PAYLOAD_RETENTION` says otherwise.
pub const DEFAULT_WEBHOOK_PAYLOAD_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// `WEBHOOK_PAYLOAD_RETENTION`: from a day (a failed event's payload is what a replay needs
/// while Stripe still retries) to ten years.
fn parse_retention(raw: &str) -> Result<Duration, String> {
    let secs = parse_duration(
        raw,
        3_650 * 86_400,
        "7d, 90d or 365d",
        "longer than ten years",
    )?;
    if secs < 86_400 {
        return Err(format!(
            "`{raw}` is shorter than a day: a failed event's payload is what a replay needs"
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// `PAST_DUE_GRACE`: `0` (no access once a payment fails) or up to 60 days, like `72h`.
fn parse_grace(raw: &str) -> Result<i64, String> {
    let secs = parse_duration(
        raw,
        60 * 86_400,
        "72h or 7d (or 0 for none)",
        "longer than 60 days, longer than Stripe retries a payment",
    )?;
    Ok(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Parses `TRUSTED_PROXIES`: addresses or CIDR ranges, separated by commas or spaces.
pub fn parse_trusted_proxies(raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
    raw.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{s}` is not an IP address or a CIDR range like 10.0.0.0/8"))
        })
        .collect()
}

/// The forwarding header trusted proxies write (`TRUSTED_PROXY_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For` (nginx, AWS ALB, Caddy, Traefik, HAProxy with `option forwardfor`).
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

impl ProxyHeader {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ProxyHeader::XForwardedFor),
            "forwarded" => Ok(ProxyHeader::Forwarded),
            other => Err(format!(
                "`{other}` is not a header Billfold reads: x-forwarded-for or forwarded"
            )),
        }
    }
}

fn parse_app_url(raw: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(raw).map_err(|e| invalid("APP_URL", format!("`{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("APP_URL", "must start with http:// or https://"));
    }
    if url.host_str().is_none() {
        return Err(invalid("APP_URL", "must name a host"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(invalid(
            "APP_URL",
            "must be an origin only, like https://billing.example.com (no path or query)",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn trusted_proxies_are_parsed_with_clear_errors() {
        let proxies = parse_trusted_proxies("10.0.0.0/8, 192.168.1.5 fd00::/8").expect("valid");
        assert_eq!(proxies.len(), 3);
        assert!(proxies[1].contains(&"192.168.1.5".parse::<std::net::IpAddr>().expect("ip")));
        assert_eq!(parse_trusted_proxies("").expect("empty is none"), vec![]);
        let err = parse_trusted_proxies("10.0.0.0/8, proxy.internal").expect_err("a name");
        assert!(err.contains("proxy.internal"), "{err}");
        assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
    }

    use super::*;
    use std::collections::HashMap;

    /// The settings `pairs` name; mail goes to the log unless they say where it goes.
    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !map.contains_key("SMTP_URL") {
            map.entry("MAIL_DELIVERY".into())
                .or_insert_with(|| "log".into());
        }
        Config::from_lookup(|k| map.get(k).cloned())
    }

    fn load_exactly(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn mail_must_leave_in_test_and_live_mode_unless_the_log_is_chosen() {
        let err = load_exactly(&TEST_KEY).expect_err("no SMTP server");
        assert_eq!(err.var, "SMTP_URL");
        assert!(err.problem.contains("MAIL_DELIVERY=log"), "{err}");
        let logged = load_exactly(&[TEST_KEY[0], TEST_KEY[1], ("MAIL_DELIVERY", "log")])
            .expect("the log, chosen");
        assert!(matches!(logged.mail.delivery, MailDelivery::Log));
        if cfg!(feature = "stripe-sim") {
            let simulated = load_exactly(&[("STRIPE_MODE", "simulated")]).expect("simulated");
            assert!(matches!(simulated.mail.delivery, MailDelivery::Log));
        }

        let smtp = [
            TEST_KEY[0],
            TEST_KEY[1],
            (
                "SMTP_URL",
                "smtp://mailer:s3cret-pass@smtp.example.com:587?tls=required",
            ),
        ];
        assert_eq!(load_exactly(&smtp).expect_err("no From").var, "MAIL_FROM");
        let mut with_from = smtp.to_vec();
        with_from.push(("MAIL_FROM", "Example Billing <billing@example.com>"));
        let config = load_exactly(&with_from).expect("valid");
        assert!(matches!(config.mail.delivery, MailDelivery::Smtp(_)));
        assert!(
            !format!("{config:?}").contains("s3cret-pass"),
            "the password never prints"
        );

        for (pairs, var) in [
            (vec![("SMTP_URL", "http://smtp.example.com")], "SMTP_URL"),
            (vec![("SMTP_URL", "not a url")], "SMTP_URL"),
            (
                vec![
                    ("SMTP_URL", "smtp://smtp.example.com"),
                    ("MAIL_DELIVERY", "log"),
                ],
                "MAIL_DELIVERY",
            ),
            (vec![("MAIL_DELIVERY", "pigeon")], "MAIL_DELIVERY"),
            (
                vec![("MAIL_DELIVERY", "log"), ("MAIL_FROM", "not an address")],
                "MAIL_FROM",
            ),
        ] {
            let mut all = TEST_KEY.to_vec();
            all.extend(pairs.iter().copied());
            assert_eq!(
                load_exactly(&all).expect_err("refused").var,
                var,
                "{pairs:?}"
            );
        }
    }

    const TEST_KEY: [(&str, &str); 2] = [
        ("STRIPE_SECRET_KEY", "sk_test_abc"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
    ];

    #[test]
    fn defaults_with_a_test_key_run_on_sqlite() {
        let c = load(&TEST_KEY).expect("defaults are valid");
        assert_eq!(c.stripe.mode, StripeMode::Test);
        assert_eq!(c.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(c.app_origin(), "http://127.0.0.1:3000");
        assert!(!c.secure_cookies());
        assert_eq!(c.stripe.webhook_tolerance, Duration::from_secs(300));
        assert_eq!(c.stripe_sim_state, PathBuf::from("data/stripe-sim.json"));
        let mut pg = TEST_KEY.to_vec();
        pg.push(("DATABASE_URL", "postgres://localhost/billfold"));
        let pg = load(&pg).expect("valid");
        assert_eq!(pg.stripe_sim_state, PathBuf::from("data/stripe-sim.json"));
    }

    #[test]
    fn past_due_grace_is_while_retrying_unless_set() {
        use crate::domain::PastDuePolicy;
        let with = |raw: Option<&'static str>| {
            let mut vars = TEST_KEY.to_vec();
            vars.extend(raw.map(|r| ("PAST_DUE_GRACE", r)));
            load(&vars)
        };
        assert_eq!(
            with(None).expect("valid").past_due,
            PastDuePolicy::WhileRetrying
        );
        assert_eq!(
            with(Some("7d")).expect("valid").past_due,
            PastDuePolicy::Grace { secs: 7 * 86_400 }
        );
        assert_eq!(
            with(Some("0")).expect("valid").past_due,
            PastDuePolicy::Grace { secs: 0 }
        );
        for bad in ["soon", "7w", "90d", "-1d"] {
            assert_eq!(
                with(Some(bad)).expect_err(bad).var,
                "PAST_DUE_GRACE",
                "{bad}"
            );
        }
    }

    #[test]
    fn metrics_are_off_unless_asked_for_and_never_weakly() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = TEST_KEY.to_vec();
            vars.extend_from_slice(extra);
            load(&vars)
        };
        assert!(matches!(
            with(&[]).expect("valid").metrics,
            MetricsExposure::Off
        ));
        let token = "a-long-random-token-for-metrics";
        assert!(matches!(
            with(&[("METRICS_TOKEN", token)]).expect("valid").metrics,
            MetricsExposure::Token(t) if t.expose() == token
        ));
        assert!(matches!(
            with(&[("METRICS_ADDR", "127.0.0.1:9100")]).expect("valid").metrics,
            MetricsExposure::Addr(a) if a.port() == 9100
        ));
        let short = with(&[("METRICS_TOKEN", "hunter2")]).expect_err("too short");
        assert_eq!(short.var, "METRICS_TOKEN");
        assert!(
            !short.problem.contains("hunter2"),
            "the token is never shown"
        );
        let both = with(&[("METRICS_TOKEN", token), ("METRICS_ADDR", "127.0.0.1:9100")]);
        assert_eq!(both.expect_err("one or the other").var, "METRICS_TOKEN");
        assert_eq!(
            with(&[("METRICS_ADDR", "localhost")])
                .expect_err("no port")
                .var,
            "METRICS_ADDR"
        );
        assert!(
            with(&[("METRICS_ADDR", "127.0.0.1:3000")]).is_err(),
            "the app's own"
        );
    }

    #[test]
    fn no_key_and_no_choice_refuses_and_names_both_ways_out() {
        for key in [None, Some(""), Some("   ")] {
            let mut vars = vec![("STRIPE_WEBHOOK_SECRET", "whsec_x")];
            vars.extend(key.map(|k| ("STRIPE_SECRET_KEY", k)));
            let err = load(&vars).expect_err("no key is not a mode");
            assert_eq!(err.var, "STRIPE_SECRET_KEY", "{key:?}");
            assert!(err.problem.contains("STRIPE_MODE=simulated"), "{err}");
            assert!(err.problem.contains("sk_test_"), "{err}");
        }
        let err = load(&[]).expect_err("nothing set");
        assert_eq!(err.var, "STRIPE_SECRET_KEY");
    }

    #[test]
    fn a_chosen_mode_must_agree_with_the_key() {
        let with = |mode: &'static str, key: &'static str| {
            load(&[
                ("STRIPE_MODE", mode),
                ("STRIPE_SECRET_KEY", key),
                ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ])
        };
        assert_eq!(
            with("test", "sk_test_a").expect("agrees").stripe.mode,
            StripeMode::Test
        );
        assert_eq!(
            with("live", "rk_live_a").expect("agrees").stripe.mode,
            StripeMode::Live
        );
        for (mode, key) in [("live", "sk_test_a"), ("test", "sk_live_a")] {
            let err = with(mode, key).expect_err("disagrees");
            assert_eq!(err.var, "STRIPE_MODE");
            assert!(!err.to_string().contains(key), "never print the key");
        }
        assert_eq!(
            with("sandbox", "sk_test_a").expect_err("unknown").var,
            "STRIPE_MODE"
        );
        let err = load(&[("STRIPE_MODE", "test")]).expect_err("test mode needs its key");
        assert_eq!(err.var, "STRIPE_SECRET_KEY");
    }

    #[cfg(feature = "stripe-sim")]
    #[test]
    fn simulated_mode_runs_only_when_chosen_and_only_on_loopback() {
        let c = load(&[("STRIPE_MODE", "simulated")]).expect("valid");
        assert_eq!(c.stripe.mode, StripeMode::Simulated);
        let ipv6 = load(&[("STRIPE_MODE", "simulated"), ("BIND_ADDR", "[::1]:3000")]);
        assert_eq!(ipv6.expect("loopback").stripe.mode, StripeMode::Simulated);
        let refusals: &[(&str, &str)] = &[
            ("APP_URL", "https://billing.example.com"),
            ("BIND_ADDR", "0.0.0.0:3000"),
            ("BIND_ADDR", "192.0.2.10:3000"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("STRIPE_SECRET_KEY", "sk_test_abc"),
            ("STRIPE_API_BASE", "http://127.0.0.1:12111"),
        ];
        for (var, value) in refusals {
            let err = load(&[("STRIPE_MODE", "simulated"), (var, value)]).expect_err(var);
            assert_eq!(err.var, *var, "{value}");
        }
    }

    #[cfg(not(feature = "stripe-sim"))]
    #[test]
    fn a_build_without_the_double_refuses_simulated_mode() {
        let err = load(&[("STRIPE_MODE", "simulated")]).expect_err("not built in");
        assert_eq!(err.var, "STRIPE_MODE");
        assert!(err.problem.contains("stripe-sim"), "{err}");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases: &[(&str, &str)] = &[
            ("APP_URL", "not a url"),
            ("APP_URL", "ftp://example.com"),
            ("APP_URL", "https://example.com/app"),
            ("BIND_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://x"),
            ("STRIPE_SECRET_KEY", "pk_test_123"),
            ("STRIPE_PORTAL_CONFIGURATION_ID", "cfg_1"),
            ("STRIPE_API_BASE", "not a url"),
            ("STRIPE_WEBHOOK_TOLERANCE_SECS", "-5"),
            ("LOG_LEVEL", "loud=="),
            ("LOG_FORMAT", "xml"),
            ("RECONCILE_EVERY", "soon"),
            ("RECONCILE_EVERY", "5x"),
            ("RECONCILE_EVERY", "-5m"),
            ("RECONCILE_EVERY", "30d"),
        ];
        for (var, value) in cases {
            let mut vars = TEST_KEY.to_vec();
            vars.retain(|(k, _)| k != var);
            vars.push((var, value));
            let err = load(&vars).expect_err(var);
            assert_eq!(err.var, *var, "{value}");
        }
    }

    #[test]
    fn a_key_requires_a_webhook_secret_and_secrets_never_print() {
        let err = load(&[("STRIPE_SECRET_KEY", "sk_test_abc")]).expect_err("needs secret");
        assert_eq!(err.var, "STRIPE_WEBHOOK_SECRET");

        let c = load(&[
            ("STRIPE_SECRET_KEY", "sk_test_abc"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_one, whsec_two"),
        ])
        .expect("valid");
        assert_eq!(c.stripe.mode, StripeMode::Test);
        assert_eq!(c.stripe.webhook_secrets.len(), 2);
        let printed = format!("{c:?}");
        assert!(!printed.contains("sk_test_abc"));
        assert!(!printed.contains("whsec_one"));

        let err = load(&[
            ("STRIPE_SECRET_KEY", "sk_test_abc"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_one,oops"),
        ])
        .expect_err("bad second secret");
        assert!(!err.to_string().contains("oops"));
    }

    #[test]
    fn live_keys_never_go_to_another_base() {
        let err = load(&[
            ("STRIPE_SECRET_KEY", "sk_live_abc"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("STRIPE_API_BASE", "http://127.0.0.1:12111"),
        ])
        .expect_err("live + base");
        assert_eq!(err.var, "STRIPE_API_BASE");
    }

    #[test]
    fn payloads_are_kept_ninety_days_unless_told() {
        let keep = |value: Option<&'static str>| {
            let mut vars = TEST_KEY.to_vec();
            vars.extend(value.map(|v| ("WEBHOOK_PAYLOAD_RETENTION", v)));
            load(&vars).map(|c| c.webhook_payload_retention)
        };
        let days = |n: u64| Duration::from_secs(n * 86_400);
        assert_eq!(keep(None), Ok(days(90)));
        assert_eq!(keep(Some("7d")), Ok(days(7)));
        assert_eq!(keep(Some("365d")), Ok(days(365)));
        assert_eq!(keep(Some("48h")), Ok(days(2)));
        for bad in ["0", "off", "12h", "90x", "-7d", "4000d"] {
            assert_eq!(
                keep(Some(bad)).expect_err(bad).var,
                "WEBHOOK_PAYLOAD_RETENTION",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_reconciler_runs_every_five_minutes_unless_told() {
        let every = |value: Option<&'static str>| {
            let mut vars = TEST_KEY.to_vec();
            vars.extend(value.map(|v| ("RECONCILE_EVERY", v)));
            load(&vars).expect("valid").reconcile_every
        };
        assert_eq!(every(None), Some(Duration::from_secs(300)));
        assert_eq!(every(Some("30s")), Some(Duration::from_secs(30)));
        assert_eq!(every(Some("5m")), Some(Duration::from_secs(300)));
        assert_eq!(every(Some("2h")), Some(Duration::from_secs(7_200)));
        assert_eq!(every(Some("1d")), Some(Duration::from_secs(86_400)));
        assert_eq!(every(Some("45")), Some(Duration::from_secs(45)));
        assert_eq!(every(Some("0")), None);
        assert_eq!(every(Some("0m")), None);
    }

    #[test]
    fn admin_emails_is_refused_with_the_way_to_grant_operators() {
        let mut vars = TEST_KEY.to_vec();
        vars.push(("ADMIN_EMAILS", "ops@billfold.test"));
        let err = load(&vars).expect_err("no longer read");
        assert_eq!(err.var, "ADMIN_EMAILS");
        assert!(err.problem.contains("billfold admin add"), "{err}");
    }

    #[test]
    fn the_proxy_header_is_named_with_the_proxies() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut vars = TEST_KEY.to_vec();
            vars.extend_from_slice(pairs);
            load(&vars)
        };
        let c = with(&[]).expect("valid");
        assert!(c.trusted_proxies.is_empty() && c.trusted_proxy_header.is_none());
        let err = with(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).expect_err("which header?");
        assert_eq!(err.var, "TRUSTED_PROXY_HEADER");
        let err = with(&[("TRUSTED_PROXY_HEADER", "forwarded")]).expect_err("no proxies");
        assert_eq!(err.var, "TRUSTED_PROXY_HEADER");
        let err = with(&[
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
            ("TRUSTED_PROXY_HEADER", "x-real-ip"),
        ])
        .expect_err("not one we read");
        assert!(err.problem.contains("x-real-ip"), "{err}");
        for (raw, header) in [
            ("X-Forwarded-For", ProxyHeader::XForwardedFor),
            (" forwarded ", ProxyHeader::Forwarded),
        ] {
            let c = with(&[
                ("TRUSTED_PROXIES", "10.0.0.0/8"),
                ("TRUSTED_PROXY_HEADER", raw),
            ])
            .expect("valid");
            assert_eq!(c.trusted_proxy_header, Some(header));
        }
    }

    #[test]
    fn https_app_url_means_secure_cookies() {
        let mut vars = TEST_KEY.to_vec();
        vars.push(("APP_URL", "https://billing.example.com"));
        let c = load(&vars).expect("valid");
        assert!(c.secure_cookies());
        assert_eq!(
            c.url_for("/settings/billing"),
            "https://billing.example.com/settings/billing"
        );
    }
}
