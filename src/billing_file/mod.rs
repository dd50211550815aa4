//! `billing.toml` (`BILLING_FILE`): billing as code. `[portal]` describes the Customer Portal
//! and `[catalog]` the plans for sale, with their prices, features and limits. The app reads
//! it at start (an invalid file stops it, naming the field); the operator commands read the
//! same file. A leaf: it imports nothing of the app.

pub mod catalog;
pub mod portal;

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

pub use catalog::{Catalog, Seats};
pub use portal::PortalSpec;

/// `billing.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingFile {
    pub portal: PortalSpec,
    pub catalog: Catalog,
}

impl BillingFile {
    /// Reads and checks the file; every problem is named with its field.
    pub fn load(path: &Path) -> anyhow::Result<BillingFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<BillingFile> {
        let file: BillingFile = toml::from_str(text)?;
        file.portal.check()?;
        file.catalog.check()?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../billing.toml");

    #[test]
    fn the_example_file_is_valid() {
        let file = BillingFile::parse(EXAMPLE).expect("billing.toml parses");
        assert!(file.portal.cancellation.enabled);
        assert!(!file.catalog.plans.is_empty());
    }

    #[test]
    fn bad_values_are_named() {
        let bad = EXAMPLE.replace("mode = \"at_period_end\"", "mode = \"whenever\"");
        let err = format!("{:#}", BillingFile::parse(&bad).expect_err("bad mode"));
        assert!(err.contains("portal.cancellation.mode"), "{err}");
        let unknown = format!("{EXAMPLE}\n[portal.extra]\nx = 1\n");
        assert!(
            BillingFile::parse(&unknown).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn a_file_without_a_catalogue_says_so() {
        let portal_only = EXAMPLE
            .split("\n[catalog]")
            .next()
            .expect("the portal part");
        let err = format!(
            "{:#}",
            BillingFile::parse(portal_only).expect_err("no catalogue")
        );
        assert!(err.contains("catalog"), "{err}");
    }
}
