//! How a rendered mail leaves: through the SMTP server of `SMTP_URL` (rustls for `smtps://` and
//! `?tls=required`), or, chosen explicitly with `MAIL_DELIVERY=log`, into the log.

use std::time::Duration;

use lettre::{
    message::{Mailbox, MultiPart},
    transport::smtp::extension::ClientId,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use super::render::Rendered;
use crate::config::{MailConfig, MailDelivery};

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Log,
}

/// Why a mail was not sent: worth trying again later, or never.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The server was unreachable, busy or said 4xx: the sender tries again later.
    Temporary(String),
    /// The server said 5xx (no such mailbox, refused), or the mail cannot be made (an address
    /// that is not one): recorded, never retried.
    Permanent(String),
}

impl Transport {
    /// `hello` is the name the app gives itself in the SMTP greeting (APP_URL's host).
    pub fn new(config: &MailConfig, hello: &str) -> anyhow::Result<Transport> {
        match &config.delivery {
            MailDelivery::Log => Ok(Transport::Log),
            MailDelivery::Smtp(url) => {
                let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|_| anyhow::anyhow!("SMTP_URL: not a URL lettre can use"))?
                    .hello_name(ClientId::Domain(hello.to_owned()))
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                Ok(Transport::Smtp(smtp))
            }
        }
    }

    /// Sends one mail from `from` to `to`.
    pub async fn send(&self, from: &str, to: &str, mail: &Rendered) -> Result<(), Refusal> {
        let message = build(from, to, mail)?;
        match self {
            Transport::Log => {
                tracing::info!(
                    to = %to,
                    subject = %mail.subject,
                    body = %mail.text,
                    "mail written to the log (MAIL_DELIVERY=log), not sent"
                );
                Ok(())
            }
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(Refusal::Permanent(e.to_string())),
                Err(e) => Err(Refusal::Temporary(e.to_string())),
            },
        }
    }
}

/// The message: From, To, Subject, and the text and HTML parts as alternatives.
fn build(from: &str, to: &str, mail: &Rendered) -> Result<Message, Refusal> {
    let from: Mailbox = from
        .parse()
        .map_err(|_| Refusal::Permanent("MAIL_FROM is not an address".to_owned()))?;
    let to: Mailbox = to
        .parse()
        .map_err(|_| Refusal::Permanent(format!("{to:?} is not an address")))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| Refusal::Permanent(format!("the mail could not be made: {e}")))
}
