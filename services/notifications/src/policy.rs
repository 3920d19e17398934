//! Reminder policies as the API takes them, as they are stored (JSON), and as the schedule rules
//! use them; checked once, when saved: a policy that cannot render is refused then, not when a
//! reminder is due.

use chrono::NaiveTime;
use chrono_tz::Tz;
use cobro_kit::error::InvalidField;
use cobro_proto::notifications::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::domain::schedule::{self, Channel, Tone};
use crate::domain::templates::{self, Language, Template};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepTemplateBody {
    pub language: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub sms: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepBody {
    pub offset_days: i32,
    pub channels: Vec<String>,
    pub tone: String,
    pub template: String,
    #[serde(default)]
    pub templates: Vec<StepTemplateBody>,
}

/// What is stored in `policies.body`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyBody {
    pub steps: Vec<StepBody>,
    pub business_days: bool,
    pub send_at: String,
    pub quiet_start: String,
    pub quiet_end: String,
    pub daily_cap: u32,
    pub default_timezone: String,
    pub sender_name: String,
    pub sender_email: String,
    pub sender_phone: String,
    pub webhook_url: String,
    /// Not business days, besides weekends.
    #[serde(default)]
    pub holidays: Vec<chrono::NaiveDate>,
    /// The tenant's wording for one-off messages, by kind and language.
    #[serde(default)]
    pub templates: Vec<MessageTemplateBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageTemplateBody {
    pub kind: String,
    #[serde(flatten)]
    pub template: StepTemplateBody,
}

impl PolicyBody {
    /// The built-in policy, for tenants that have not written one: a friendly note a week before
    /// and on the due date, firmer after 3 and 7 days, a final notice after 15 and the hand-off
    /// to collections after 30.
    pub fn builtin() -> Self {
        let step = |offset_days: i32, channels: &[&str], tone: &str| StepBody {
            offset_days,
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            tone: tone.to_owned(),
            template: format!("reminder_{tone}"),
            templates: Vec::new(),
        };
        Self {
            steps: vec![
                step(-7, &["email"], "friendly"),
                step(0, &["email"], "friendly"),
                step(3, &["email", "sms"], "firm"),
                step(7, &["email"], "firm"),
                step(15, &["email", "sms"], "final_notice"),
                step(30, &["email"], "collections"),
            ],
            business_days: true,
            send_at: "09:00".to_owned(),
            quiet_start: "20:00".to_owned(),
            quiet_end: "08:00".to_owned(),
            daily_cap: 2,
            default_timezone: "UTC".to_owned(),
            sender_name: String::new(),
            sender_email: String::new(),
            sender_phone: String::new(),
            webhook_url: String::new(),
            holidays: Vec::new(),
            templates: Vec::new(),
        }
    }

    /// The rules the schedule uses. The body was checked when saved; a stored body that no
    /// longer parses (edited by hand) falls back to the built-in times.
    pub fn rules(&self) -> schedule::Policy {
        let time = |s: &str, default: NaiveTime| parse_time(s).unwrap_or(default);
        schedule::Policy {
            steps: self
                .steps
                .iter()
                .map(|s| schedule::Step {
                    offset_days: s.offset_days,
                    channels: s.channels.iter().filter_map(|c| Channel::parse(c)).collect(),
                    template: s.template.clone(),
                    tone: Tone::parse(&s.tone).unwrap_or(Tone::Friendly),
                })
                .collect(),
            business_days: self.business_days,
            quiet_start: time(&self.quiet_start, NaiveTime::MIN),
            quiet_end: time(&self.quiet_end, NaiveTime::MIN),
            send_at: time(&self.send_at, NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN)),
            daily_cap: self.daily_cap,
        }
    }

    pub fn timezone(&self) -> Tz {
        self.default_timezone.parse().unwrap_or(Tz::UTC)
    }

    /// The wording of a one-off message in a language: the tenant's, else the built-in one.
    pub fn message_template(&self, kind: &str, language: Language) -> Option<Template> {
        self.templates
            .iter()
            .find(|t| t.kind == kind && Language::parse(&t.template.language) == Some(language))
            .map(|t| template_of(&t.template))
            .or_else(|| templates::default_template(kind, language))
    }

    /// The wording of a step in a language: the step's own, else the built-in one.
    pub fn template(&self, step: usize, language: Language) -> Option<Template> {
        let body = self.steps.get(step)?;
        own_template(&body.templates, language).or_else(|| templates::default_template(&body.template, language))
    }

    pub fn from_proto(p: &pb::Policy) -> Result<Self, InvalidField> {
        let body = Self {
            steps: p
                .steps
                .iter()
                .map(|s| StepBody {
                    offset_days: s.offset_days,
                    channels: s.channels.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
                    tone: s.tone.trim().to_ascii_lowercase(),
                    template: s.template.trim().to_owned(),
                    templates: s
                        .templates
                        .iter()
                        .map(|t| StepTemplateBody {
                            language: t.language.trim().to_ascii_lowercase(),
                            subject: t.subject.clone(),
                            text: t.text.clone(),
                            html: t.html.clone(),
                            sms: t.sms.clone(),
                        })
                        .collect(),
                })
                .collect(),
            business_days: p.business_days,
            send_at: or(&p.send_at, "09:00"),
            quiet_start: or(&p.quiet_start, "20:00"),
            quiet_end: or(&p.quiet_end, "08:00"),
            daily_cap: p.daily_cap,
            default_timezone: or(&p.default_timezone, "UTC"),
            sender_name: cobro_kit::error::text_field("policy.sender_name", &p.sender_name, 200, false)?,
            sender_email: p.sender_email.trim().to_owned(),
            sender_phone: p.sender_phone.trim().to_owned(),
            webhook_url: p.webhook_url.trim().to_owned(),
            holidays: holidays(&p.holidays)?,
            templates: p
                .templates
                .iter()
                .map(|t| MessageTemplateBody {
                    kind: t.kind.trim().to_owned(),
                    template: StepTemplateBody {
                        language: t.language.trim().to_ascii_lowercase(),
                        subject: t.subject.clone(),
                        text: t.text.clone(),
                        html: t.html.clone(),
                        sms: t.sms.clone(),
                    },
                })
                .collect(),
        };
        body.check()?;
        Ok(body)
    }

    pub fn to_proto(&self, customer_id: String) -> pb::Policy {
        pb::Policy {
            customer_id,
            steps: self
                .steps
                .iter()
                .map(|s| pb::Step {
                    offset_days: s.offset_days,
                    channels: s.channels.clone(),
                    tone: s.tone.clone(),
                    template: s.template.clone(),
                    templates: s
                        .templates
                        .iter()
                        .map(|t| pb::StepTemplate {
                            language: t.language.clone(),
                            subject: t.subject.clone(),
                            text: t.text.clone(),
                            html: t.html.clone(),
                            sms: t.sms.clone(),
                        })
                        .collect(),
                })
                .collect(),
            business_days: self.business_days,
            send_at: self.send_at.clone(),
            quiet_start: self.quiet_start.clone(),
            quiet_end: self.quiet_end.clone(),
            daily_cap: self.daily_cap,
            default_timezone: self.default_timezone.clone(),
            sender_name: self.sender_name.clone(),
            sender_email: self.sender_email.clone(),
            sender_phone: self.sender_phone.clone(),
            webhook_url: self.webhook_url.clone(),
            webhook_secret: String::new(),
            holidays: self.holidays.iter().map(ToString::to_string).collect(),
            templates: self
                .templates
                .iter()
                .map(|t| pb::MessageTemplate {
                    kind: t.kind.clone(),
                    language: t.template.language.clone(),
                    subject: t.template.subject.clone(),
                    text: t.template.text.clone(),
                    html: t.template.html.clone(),
                    sms: t.template.sms.clone(),
                })
                .collect(),
        }
    }

    /// Everything a save must prove: times and zone parse, the schedule rules hold, every channel
    /// is known, every step has wording in every language that renders with known variables.
    fn check(&self) -> Result<(), InvalidField> {
        for (field, value) in
            [("send_at", &self.send_at), ("quiet_start", &self.quiet_start), ("quiet_end", &self.quiet_end)]
        {
            if parse_time(value).is_none() {
                return Err(InvalidField::new(format!("policy.{field}"), "must be a time like 09:00"));
            }
        }
        if self.default_timezone.parse::<Tz>().is_err() {
            return Err(InvalidField::new(
                "policy.default_timezone",
                "is not an IANA time zone like America/Mexico_City",
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            for (j, channel) in step.channels.iter().enumerate() {
                if Channel::parse(channel).is_none() {
                    return Err(InvalidField::new(
                        format!("policy.steps[{i}].channels[{j}]"),
                        "must be email, sms, whatsapp or webhook",
                    ));
                }
                if channel == "webhook" && self.webhook_url.is_empty() {
                    return Err(InvalidField::new("policy.webhook_url", "is required when a step sends webhooks"));
                }
            }
            if Tone::parse(&step.tone).is_none() {
                return Err(InvalidField::new(
                    format!("policy.steps[{i}].tone"),
                    "must be friendly, firm, final_notice or collections",
                ));
            }
        }
        self.rules().validate().map_err(|e| InvalidField::new(format!("policy.{}", e.field()), e.reason()))?;
        if !self.sender_email.is_empty() {
            crate::channels::check_email(&self.sender_email)
                .map_err(|reason| InvalidField::new("policy.sender_email", reason))?;
        }
        if !self.sender_phone.is_empty() {
            crate::channels::check_phone(&self.sender_phone)
                .map_err(|reason| InvalidField::new("policy.sender_phone", reason))?;
        }
        if !self.webhook_url.is_empty()
            && !self.webhook_url.starts_with("https://")
            && !self.webhook_url.starts_with("http://")
        {
            return Err(InvalidField::new("policy.webhook_url", "must be an http:// or https:// URL"));
        }
        if self.templates.len() > 50 {
            return Err(InvalidField::new("policy.templates", "must have at most 50 entries"));
        }
        for (i, own) in self.templates.iter().enumerate() {
            let known = templates::MessageKind::from_key(&own.kind).is_some_and(|k| !k.is_reminder());
            if !known {
                return Err(InvalidField::new(format!("policy.templates[{i}].kind"), "is not a one-off message kind"));
            }
            if Language::parse(&own.template.language).is_none() {
                return Err(InvalidField::new(format!("policy.templates[{i}].language"), "must be es, en or pt"));
            }
            templates::validate(&template_of(&own.template))
                .map_err(|e| InvalidField::new(format!("policy.templates[{i}].{}", e.field()), e.reason()))?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            for (j, own) in step.templates.iter().enumerate() {
                if Language::parse(&own.language).is_none() {
                    return Err(InvalidField::new(
                        format!("policy.steps[{i}].templates[{j}].language"),
                        "must be es, en or pt",
                    ));
                }
                templates::validate(&template_of(own)).map_err(|e| {
                    InvalidField::new(format!("policy.steps[{i}].templates[{j}].{}", e.field()), e.reason())
                })?;
            }
            for language in [Language::Es, Language::En, Language::Pt] {
                if self.template(i, language).is_none() {
                    return Err(InvalidField::new(
                        format!("policy.steps[{i}].template"),
                        "is neither a built-in template nor given in the step's templates",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A tenant's holiday calendar: dates, at most 400 (about a year ahead and behind).
fn holidays(raw: &[String]) -> Result<Vec<chrono::NaiveDate>, InvalidField> {
    if raw.len() > 400 {
        return Err(InvalidField::new("policy.holidays", "must have at most 400 dates"));
    }
    let mut dates = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        let date = chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .map_err(|_| InvalidField::new(format!("policy.holidays[{i}]"), "must be a date like 2026-12-25"))?;
        dates.push(date);
    }
    dates.sort();
    dates.dedup();
    Ok(dates)
}

fn or(value: &str, default: &str) -> String {
    let value = value.trim();
    if value.is_empty() { default.to_owned() } else { value.to_owned() }
}

pub fn parse_time(value: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(value.trim(), "%H:%M").ok()
}

fn template_of(t: &StepTemplateBody) -> Template {
    Template { subject: t.subject.clone(), text: t.text.clone(), html: t.html.clone(), sms: t.sms.clone() }
}

fn own_template(own: &[StepTemplateBody], language: Language) -> Option<Template> {
    own.iter()
        .find(|t| Language::parse(&t.language) == Some(language))
        // A step written in one language only speaks it to everybody.
        .or_else(|| own.first())
        .map(template_of)
}
