//! A thin Stripe REST client for the operator tools: the same base URL and key as the app's
//! client, answers as JSON, with the `Date` header of each answer (the doctor's clock check).

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::config::Config;

/// Stripe itself, when no other base is configured.
const STRIPE: &str = "https://api.stripe.com/";

pub struct Rest {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// One answer from the API.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The server's clock (`Date`), unix seconds.
    pub date: Option<i64>,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Stripe's own words for a refusal.
    pub fn error_message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .unwrap_or("no message")
            .to_owned()
    }
}

impl Rest {
    pub fn new(config: &Config) -> anyhow::Result<Rest> {
        let http = reqwest::Client::builder()
            .timeout(super::REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Rest {
            http,
            base: super::api_base(config).unwrap_or_else(|| STRIPE.to_owned()),
            key: super::secret_key(config),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}v1/{}", self.base, path.trim_start_matches('/'))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
        let res = request
            .bearer_auth(&self.key)
            .header("Stripe-Version", stripe_shared::version::VERSION.as_str())
            .send()
            .await?;
        let status = res.status().as_u16();
        let date = res
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        Ok(Answer { status, date, body })
    }

    /// `GET /v1/{path}` (`path` may carry a query).
    pub async fn get(&self, path: &str) -> Result<Answer, reqwest::Error> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST /v1/{path}` with a form body in Stripe's bracket notation.
    pub async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
    ) -> Result<Answer, reqwest::Error> {
        self.send(self.http.post(self.url(path)).form(form)).await
    }

    /// `DELETE /v1/{path}`.
    pub async fn delete(&self, path: &str) -> Result<Answer, reqwest::Error> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// Every item of a list endpoint, page after page (at most `max` items).
    pub async fn list_all(&self, path: &str, max: usize) -> anyhow::Result<Vec<Value>> {
        let mut items: Vec<Value> = Vec::new();
        let joiner = if path.contains('?') { '&' } else { '?' };
        loop {
            let mut page = format!("{path}{joiner}limit=100");
            if let Some(last) = items.last().and_then(|i| i["id"].as_str()) {
                page.push_str(&format!("&starting_after={last}"));
            }
            let answer = self.get(&page).await?;
            if !answer.ok() {
                anyhow::bail!(
                    "GET /v1/{path}: {} {}",
                    answer.status,
                    answer.error_message()
                );
            }
            let data = answer.body["data"].as_array().cloned().unwrap_or_default();
            let more = answer.body["has_more"].as_bool().unwrap_or(false);
            items.extend(data);
            if !more || items.len() >= max {
                return Ok(items);
            }
        }
    }
}

/// An HTTP date (`Fri, 04 Dec 2026 16:40:00 GMT`) as unix seconds.
pub fn parse_http_date(raw: &str) -> Option<i64> {
    use time::{format_description::well_known::Rfc2822, OffsetDateTime};
    let normalized = raw.trim().replace(" GMT", " +0000");
    OffsetDateTime::parse(&normalized, &Rfc2822)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_http_dates() {
        assert_eq!(
            parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
