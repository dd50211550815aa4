//! The messages: each [`Kind`] says what it says as [`Content`] (a heading, paragraphs, one
//! action, a footer), and two templates (`templates/message.txt`, `templates/message.html`)
//! lay any content out, the HTML part escaping every value.

use askama::Template;

use super::Kind;

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

/// What a message of `kind` to `to` says, with its link (for the kinds that carry one).
pub fn content(kind: Kind, to: &str, link: Option<&str>) -> Content {
    let action = |label: &str| {
        link.map(|url| Action {
            label: label.to_owned(),
            url: url.to_owned(),
        })
    };
    match kind {
        Kind::VerifyEmail => Content {
            subject: format!("Confirm your email address for {PRODUCT}"),
            heading: "Confirm your email address".to_owned(),
            paragraphs: vec![format!(
                "Please confirm that {to} is your address: open the link below within a day."
            )],
            action: action("Confirm my address"),
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
            action: action("Choose a new password"),
            footer: "If you did not ask for this, ignore this mail: your password stays as it is."
                .to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped_in_the_html_part_and_both_parts_carry_the_link() {
        let hostile = "<script>alert(1)</script>@example.com";
        let link = "https://app.example/verify-email?token=abc&x=\"y\"";
        let mail = content(Kind::VerifyEmail, hostile, Some(link))
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
            Some("https://x/r?t=1"),
        )
        .render()
        .expect("render");
        assert!(mail.text.contains("within an hour"));
        assert!(mail.text.contains("https://x/r?t=1"));
    }
}
