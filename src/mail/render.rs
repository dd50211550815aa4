//! The messages: each [`Kind`] says what it says as [`Content`] (a heading, paragraphs, one
//! action, a footer), and two templates (`templates/message.txt`, `templates/message.html`)
//! lay any content out, the HTML part escaping every value.

use askama::Template;

use super::{
    notice::{ActionRequired, EmailChanged, Invitation, PaymentFailed, PlanEnded, TrialEnding},
    Kind,
};
use crate::domain::{format_date, format_money, PastDuePolicy};

/// A mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub subject: String,
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub action: Option<Action>,
    pub footer: String,
}

/// The one thing a message asks the reader to do: a button (and the address, spelled out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub label: String,
    pub url: String,
}

/// The product's name as mail says it.
const PRODUCT: &str = "Billfold";

#[derive(Template)]
#[template(path = "message.txt")]
struct TextPart<'a> {
    heading: &'a str,
    paragraphs: &'a [String],
    action: &'a Option<Action>,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
struct HtmlPart<'a> {
    product: &'a str,
    subject: &'a str,
    heading: &'a str,
    paragraphs: &'a [String],
    action: &'a Option<Action>,
    footer: &'a str,
}

impl Content {
    /// Both parts, from the templates.
    pub fn render(&self) -> Result<Rendered, askama::Error> {
        let text = TextPart {
            heading: &self.heading,
            paragraphs: &self.paragraphs,
            action: &self.action,
            footer: &self.footer,
        }
        .render()?;
        let html = HtmlPart {
            product: PRODUCT,
            subject: &self.subject,
            heading: &self.heading,
            paragraphs: &self.paragraphs,
            action: &self.action,
            footer: &self.footer,
        }
        .render()?;
        Ok(Rendered {
            subject: self.subject.clone(),
            text,
            html,
        })
    }
}

/// What a message needs besides its own facts.
#[derive(Debug, Clone)]
pub struct Context {
    /// The billing page's absolute address.
    pub billing_url: String,
    /// `PAST_DUE_GRACE`: when a failed payment's access ends.
    pub past_due: PastDuePolicy,
}

/// What a message of `kind` to `to` says, from its queued facts (`params`) and its link (for
/// the kinds that carry one). `Err`: the facts do not read (a row this version cannot send).
pub fn content(
    kind: Kind,
    to: &str,
    params: &serde_json::Value,
    link: Option<&str>,
    ctx: &Context,
) -> Result<Content, String> {
    fn facts<T: serde::de::DeserializeOwned>(params: &serde_json::Value) -> Result<T, String> {
        serde_json::from_value(params.clone()).map_err(|e| format!("its facts do not read: {e}"))
    }
    let action = |label: &str, url: Option<&str>| {
        url.map(|url| Action {
            label: label.to_owned(),
            url: url.to_owned(),
        })
    };
    let billing = Some(ctx.billing_url.as_str());
    let plan_name = |plan: &Option<String>| plan.clone().unwrap_or_else(|| "plan".to_owned());
    Ok(match kind {
        Kind::VerifyEmail => Content {
            subject: format!("Confirm your email address for {PRODUCT}"),
            heading: "Confirm your email address".to_owned(),
            paragraphs: vec![format!(
                "Please confirm that {to} is your address: open the link below within a day."
            )],
            action: action("Confirm my address", link),
            footer: format!(
                "If you did not sign up for {PRODUCT} with this address, ignore this mail: \
                 nothing happens without the link."
            ),
        },
        Kind::PasswordReset => Content {
            subject: format!("Reset your {PRODUCT} password"),
            heading: "Reset your password".to_owned(),
            paragraphs: vec![format!(
                "Someone asked to reset the password of the {PRODUCT} account for {to}. \
                 The link below sets a new one; it works once, within an hour, and signs \
                 out every other session."
            )],
            action: action("Choose a new password", link),
            footer: "If you did not ask for this, ignore this mail: your password stays as it is."
                .to_owned(),
        },
        Kind::TrialEnding => {
            let t: TrialEnding = facts(params)?;
            let plan = plan_name(&t.plan);
            let price = match (t.amount, &t.currency) {
                (Some(amount), Some(currency)) => {
                    let per = t
                        .interval
                        .as_deref()
                        .map(|i| format!(" a {i}"))
                        .unwrap_or_default();
                    format!("{}{per}", format_money(amount, currency))
                }
                _ => "the plan's price".to_owned(),
            };
            let card = if t.has_card {
                format!(
                    "Your card on file will be charged {price} then, and your {plan} plan goes on."
                )
            } else {
                format!(
                    "There is no card on file yet: add one before then to keep your {plan} \
                     plan ({price}); without one the plan stops when the trial ends."
                )
            };
            Content {
                subject: format!("Your {PRODUCT} trial ends on {}", format_date(t.trial_end)),
                heading: format!("Your free trial of {plan} ends soon"),
                paragraphs: vec![
                    format!("Your trial ends on {}.", format_date(t.trial_end)),
                    card,
                ],
                action: action(
                    if t.has_card {
                        "Review your plan"
                    } else {
                        "Add a card"
                    },
                    billing,
                ),
                footer: "You can change or cancel your plan on the billing page at any time."
                    .to_owned(),
            }
        }
        Kind::PaymentFailed => {
            let f: PaymentFailed = facts(params)?;
            let plan = plan_name(&f.plan);
            let mut paragraphs = vec![format!(
                "We could not charge {} for your {plan} plan.",
                format_money(f.amount_due, &f.currency)
            )];
            paragraphs.push(match f.next_attempt {
                Some(at) => format!("We will try again on {}.", format_date(at)),
                None => "No further automatic tries are scheduled.".to_owned(),
            });
            if let Some(end) = ctx.past_due.access_ends(f.failed_at) {
                paragraphs.push(format!(
                    "Unless the payment goes through, your access ends on {}.",
                    format_date(end)
                ));
            }
            paragraphs.push(
                "The link below signs you in and opens the page where you update your card \
                 (it works once, within three days)."
                    .to_owned(),
            );
            Content {
                subject: format!("Your {PRODUCT} payment failed"),
                heading: "Your payment failed".to_owned(),
                paragraphs,
                action: action("Update my card", link.or(billing)),
                footer: "Already fixed? Then nothing more is needed.".to_owned(),
            }
        }
        Kind::ActionRequired => {
            let a: ActionRequired = facts(params)?;
            Content {
                subject: format!("Your {PRODUCT} payment needs your confirmation"),
                heading: "Your bank asks you to confirm a payment".to_owned(),
                paragraphs: vec![format!(
                    "Your bank wants you to confirm the payment of {} before it goes through. \
                     Open the invoice to confirm it.",
                    format_money(a.amount_due, &a.currency)
                )],
                action: action("Confirm the payment", a.invoice_url.as_deref().or(billing)),
                footer: "Until it is confirmed, the invoice stays open.".to_owned(),
            }
        }
        Kind::PlanEnded => {
            let e: PlanEnded = facts(params)?;
            let plan = plan_name(&e.plan);
            let why = if e.retries_stopped {
                format!("Your {plan} plan has ended: the payment failed and the retries ran out.")
            } else {
                format!("Your {plan} plan has ended.")
            };
            Content {
                subject: format!("Your {PRODUCT} plan has ended"),
                heading: "Your plan has ended".to_owned(),
                paragraphs: vec![
                    why,
                    "You can choose a plan again on the billing page whenever you like.".to_owned(),
                ],
                action: action("Choose a plan", billing),
                footer: "Thank you for having been with us.".to_owned(),
            }
        }
        Kind::ConfirmNewEmail => Content {
            subject: format!("Confirm your new email address for {PRODUCT}"),
            heading: "Confirm your new email address".to_owned(),
            paragraphs: vec![
                format!(
                    "You asked to sign in to {PRODUCT} with {to} from now on. Open the link below                      within a day to make the change; until then your old address stays."
                ),
                "Your receipts and invoices will go to the new address too.".to_owned(),
            ],
            action: action("Use this address", link),
            footer: "If you did not ask for this, ignore this mail: nothing changes without the link."
                .to_owned(),
        },
        Kind::EmailChanged => {
            let c: EmailChanged = facts(params)?;
            Content {
                subject: format!("Your {PRODUCT} email address was changed"),
                heading: "Your email address was changed".to_owned(),
                paragraphs: vec![
                    format!(
                        "The {PRODUCT} account that used {to} now signs in with {}, and its \
                         receipts and invoices go there.",
                        c.new_email
                    ),
                    "If you did not make this change, reset your password at once and write to \
                     support: someone else may have your password."
                        .to_owned(),
                ],
                action: None,
                footer: "This mail went to your old address, so you hear of the change.".to_owned(),
            }
        }
        Kind::Invitation => {
            let i: Invitation = facts(params)?;
            Content {
                subject: format!("Join {} on {PRODUCT}", i.organization),
                heading: format!("{} invited you to {}", i.invited_by, i.organization),
                paragraphs: vec![
                    format!(
                        "You are invited to join {} on {PRODUCT} as {}.",
                        i.organization,
                        i.role.to_lowercase()
                    ),
                    format!(
                        "Open the link within a week, signed in with {to} (or create an account \
                         with it): it works once."
                    ),
                ],
                action: action("Join the organisation", link),
                footer: "If you did not expect this, ignore this mail: nothing happens without \
                         the link."
                    .to_owned(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            billing_url: "https://app.example/settings/billing".into(),
            past_due: PastDuePolicy::Grace { secs: 7 * 86_400 },
        }
    }

    #[test]
    fn a_failed_payment_says_the_amount_the_next_try_and_when_access_ends() {
        let facts = serde_json::to_value(PaymentFailed {
            plan: Some("Pro".into()),
            amount_due: 2900,
            currency: "usd".into(),
            next_attempt: Some(1_800_259_200),
            failed_at: Some(1_800_000_000),
            organization_id: Some(7),
        })
        .expect("json");
        let mail = content(
            Kind::PaymentFailed,
            "a@example.com",
            &facts,
            Some("https://x/f?t=1"),
            &ctx(),
        )
        .expect("content")
        .render()
        .expect("render");
        assert!(
            mail.text
                .contains("We could not charge $29.00 for your Pro plan."),
            "{}",
            mail.text
        );
        assert!(
            mail.text
                .contains("We will try again on 18 Jan 2027 (UTC)."),
            "{}",
            mail.text
        );
        assert!(
            mail.text.contains("your access ends on 22 Jan 2027 (UTC)"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("https://x/f?t=1"));
        // Facts that do not read are a mail that cannot be sent, not a panic.
        assert!(content(
            Kind::PaymentFailed,
            "a@example.com",
            &serde_json::json!({}),
            None,
            &ctx()
        )
        .is_err());
    }

    #[test]
    fn a_trial_ending_without_a_card_asks_for_one() {
        let facts = serde_json::to_value(TrialEnding {
            plan: Some("Pro".into()),
            trial_end: 1_800_000_000,
            amount: Some(2900),
            currency: Some("usd".into()),
            interval: Some("month".into()),
            has_card: false,
        })
        .expect("json");
        let mail = content(Kind::TrialEnding, "a@example.com", &facts, None, &ctx())
            .expect("content")
            .render()
            .expect("render");
        assert_eq!(
            mail.subject,
            "Your Billfold trial ends on 15 Jan 2027 (UTC)"
        );
        assert!(
            mail.text.contains("There is no card on file yet"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("$29.00 a month"), "{}", mail.text);
        assert!(mail.text.contains("https://app.example/settings/billing"));
    }

    #[test]
    fn every_value_is_escaped_in_the_html_part_and_both_parts_carry_the_link() {
        let hostile = "<script>alert(1)</script>@example.com";
        let link = "https://app.example/verify-email?token=abc&x=\"y\"";
        let mail = content(
            Kind::VerifyEmail,
            hostile,
            &serde_json::json!({}),
            Some(link),
            &ctx(),
        )
        .expect("content")
        .render()
        .expect("render");
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
        assert!(mail.html.contains("&#60;script&#62;"), "{}", mail.html);
        assert!(
            mail.html.contains("token=abc&#38;x=&#34;y&#34;"),
            "{}",
            mail.html
        );
        assert!(mail.text.contains(link), "{}", mail.text);
        assert!(mail.text.contains(hostile), "the text part is text");
        assert_eq!(mail.subject, "Confirm your email address for Billfold");
    }

    #[test]
    fn a_reset_says_how_long_the_link_works() {
        let mail = content(
            Kind::PasswordReset,
            "a@example.com",
            &serde_json::json!({}),
            Some("https://x/r?t=1"),
            &ctx(),
        )
        .expect("content")
        .render()
        .expect("render");
        assert!(mail.text.contains("within an hour"));
        assert!(mail.text.contains("https://x/r?t=1"));
    }
}
