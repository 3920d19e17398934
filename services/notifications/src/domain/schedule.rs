//! When reminders are sent: pure scheduling rules, no I/O.
//!
//! Dates and times are worked out on the customer's local calendar first and only then converted
//! to UTC, so "09:00 on the due date" means 09:00 where the customer is, DST change days included.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

const MAX_STEPS: usize = 20;
const MAX_OFFSET_DAYS: i32 = 365;
const MAX_TEMPLATE_CHARS: usize = 100;
const MAX_DAILY_CAP: u32 = 100;
/// tzdb's longest gap is a whole day (Samoa skipped 2011-12-30); a little slack on top.
const MAX_GAP_MINUTES: u32 = 25 * 60;

/// How a reminder reaches the customer. The order is the tie-break when sorting a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    Email,
    Sms,
    WhatsApp,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Sms, Channel::WhatsApp, Channel::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::WhatsApp => "whatsapp",
            Channel::Webhook => "webhook",
        }
    }

    /// Exact stored names only, so a typo is an error rather than a silent guess.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// How insistent a step is; templates pick wording by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tone {
    Friendly,
    Firm,
    FinalNotice,
    Collections,
}

impl Tone {
    pub const ALL: [Tone; 4] = [Tone::Friendly, Tone::Firm, Tone::FinalNotice, Tone::Collections];

    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Friendly => "friendly",
            Tone::Firm => "firm",
            Tone::FinalNotice => "final_notice",
            Tone::Collections => "collections",
        }
    }

    pub fn parse(s: &str) -> Option<Tone> {
        Tone::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One reminder in a policy. `offset_days` counts from the due date; negative is before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub offset_days: i32,
    pub channels: Vec<Channel>,
    pub template: String,
    pub tone: Tone,
}

/// A reminder schedule. All times are the customer's local wall-clock times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub steps: Vec<Step>,
    /// Move reminders off weekends and holidays.
    pub business_days: bool,
    /// Nothing is sent in `[quiet_start, quiet_end)`; may wrap midnight; equal means no quiet hours.
    pub quiet_start: NaiveTime,
    pub quiet_end: NaiveTime,
    /// Time of day reminders normally go out.
    pub send_at: NaiveTime,
    /// Most messages per customer per local day; 0 means no cap.
    pub daily_cap: u32,
}

/// Why a policy was rejected; `field` is a path such as `steps[2].offset_days`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    field: String,
    reason: String,
}

impl PolicyError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Policy {
    /// Checks the policy, reporting the first problem found.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(PolicyError::new("steps", format!("must have 1 to {MAX_STEPS} steps")));
        }
        let mut previous: Option<i32> = None;
        for (i, step) in self.steps.iter().enumerate() {
            let field = |name: &str| format!("steps[{i}].{name}");
            if !(-MAX_OFFSET_DAYS..=MAX_OFFSET_DAYS).contains(&step.offset_days) {
                let reason = format!("must be within -{MAX_OFFSET_DAYS}..={MAX_OFFSET_DAYS}");
                return Err(PolicyError::new(field("offset_days"), reason));
            }
            // Increasing offsets make "the last past step" and escalation order well defined.
            if previous.is_some_and(|p| step.offset_days <= p) {
                let reason = "must be greater than the previous step's offset";
                return Err(PolicyError::new(field("offset_days"), reason));
            }
            previous = Some(step.offset_days);
            if step.channels.is_empty() {
                return Err(PolicyError::new(field("channels"), "must list at least one channel"));
            }
            for (j, channel) in step.channels.iter().enumerate() {
                if step.channels[..j].contains(channel) {
                    let reason = format!("{} is listed twice", channel.as_str());
                    return Err(PolicyError::new(format!("steps[{i}].channels[{j}]"), reason));
                }
            }
            if step.template.trim().is_empty() {
                return Err(PolicyError::new(field("template"), "must not be empty"));
            }
            if step.template.chars().count() > MAX_TEMPLATE_CHARS {
                let reason = format!("must be at most {MAX_TEMPLATE_CHARS} characters");
                return Err(PolicyError::new(field("template"), reason));
            }
        }
        if in_quiet_hours(self.send_at, self.quiet_start, self.quiet_end) {
            return Err(PolicyError::new("send_at", "must be outside quiet hours"));
        }
        if self.daily_cap > MAX_DAILY_CAP {
            let reason = format!("must be at most {MAX_DAILY_CAP} (0 = no cap)");
            return Err(PolicyError::new("daily_cap", reason));
        }
        Ok(())
    }
}

/// One message to send: step index into `Policy::steps`, and the customer-local date it goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub step: usize,
    pub channel: Channel,
    pub send_at: DateTime<Utc>,
    pub local_date: NaiveDate,
}

/// Every (step, channel) message for an invoice, ordered by `send_at`, then step, then channel.
/// The policy is assumed valid; a step whose date would overflow the calendar is skipped.
pub fn plan(policy: &Policy, due_date: NaiveDate, tz: Tz, holidays: &[NaiveDate]) -> Vec<Planned> {
    let mut planned = Vec::new();
    for (index, step) in policy.steps.iter().enumerate() {
        let Some(date) = step_date(policy, step, due_date, holidays) else {
            continue;
        };
        let send_at = send_instant(policy, date, tz);
        for &channel in &step.channels {
            planned.push(Planned { step: index, channel, send_at, local_date: local_date(send_at, tz) });
        }
    }
    sort_planned(&mut planned);
    // A channel listed twice (unvalidated policy) still yields one message.
    planned.dedup();
    planned
}

/// Enforces at most `cap` messages per customer-local day, counting `already_sent_per_day` too.
/// Messages are taken in order; one that does not fit moves to the next local day at the same
/// local time, repeatedly until a day has room. `cap == 0` means no cap.
///
/// Moving rather than dropping: each step is a notice the customer is owed (a final notice must
/// precede collections), and later steps' tone assumes the earlier ones arrived. The cap exists to
/// pace messages, not to suppress them, so a day late beats never.
pub fn apply_daily_cap(planned: &mut [Planned], already_sent_per_day: &BTreeMap<NaiveDate, u32>, cap: u32, tz: Tz) {
    if cap == 0 {
        return;
    }
    sort_planned(planned);
    let mut used = already_sent_per_day.clone();
    for p in planned.iter_mut() {
        let time = p.send_at.with_timezone(&tz).time();
        p.local_date = local_date(p.send_at, tz);
        loop {
            let count = used.entry(p.local_date).or_insert(0);
            if *count < cap {
                *count += 1;
                break;
            }
            let Some(next) = p.local_date.succ_opt() else {
                break;
            };
            p.send_at = resolve_local(tz, next.and_time(time));
            p.local_date = local_date(p.send_at, tz);
        }
    }
    sort_planned(planned);
}

/// The plan after a pause that ended on local date `today`. Missed steps (planned before `now`)
/// are not all sent at once, which would bury the customer: only the last one is kept, sent on
/// `today` at `send_at` (after quiet hours), or at `now` if that is already later. Later steps
/// keep their dates; nothing is planned before `now`.
pub fn resume_plan(
    policy: &Policy,
    due_date: NaiveDate,
    tz: Tz,
    holidays: &[NaiveDate],
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<Planned> {
    let full = plan(policy, due_date, tz, holidays);
    // Offsets increase, so the highest missed index is the latest and most escalated notice.
    let last_missed = full.iter().filter(|p| p.send_at < now).map(|p| p.step).max();
    let mut catch_up = send_instant(policy, today, tz);
    if catch_up < now {
        catch_up = leave_quiet_hours(policy, now, tz);
    }
    let mut resumed: Vec<Planned> = full
        .into_iter()
        .filter_map(|p| {
            if p.send_at >= now {
                Some(p)
            } else if Some(p.step) == last_missed {
                Some(Planned { send_at: catch_up, local_date: local_date(catch_up, tz), ..p })
            } else {
                None
            }
        })
        .collect();
    sort_planned(&mut resumed);
    resumed
}

/// `d` itself if it is a business day, otherwise the first business day after it.
pub fn next_business_day(d: NaiveDate, holidays: &[NaiveDate]) -> NaiveDate {
    walk_to_business_day(d, holidays, NaiveDate::succ_opt)
}

/// `d` itself if it is a business day, otherwise the last business day before it.
pub fn previous_business_day(d: NaiveDate, holidays: &[NaiveDate]) -> NaiveDate {
    walk_to_business_day(d, holidays, NaiveDate::pred_opt)
}

/// Whether `t` is in `[start, end)`; a window with `start > end` wraps midnight, `start == end` is empty.
pub fn in_quiet_hours(t: NaiveTime, start: NaiveTime, end: NaiveTime) -> bool {
    if start <= end { start <= t && t < end } else { t >= start || t < end }
}

fn walk_to_business_day(d: NaiveDate, holidays: &[NaiveDate], step: fn(&NaiveDate) -> Option<NaiveDate>) -> NaiveDate {
    let mut day = d;
    // Stops at the calendar's edge rather than looping; holidays are finite so this ends.
    while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) || holidays.contains(&day) {
        match step(&day) {
            Some(next) => day = next,
            None => break,
        }
    }
    day
}

fn step_date(policy: &Policy, step: &Step, due_date: NaiveDate, holidays: &[NaiveDate]) -> Option<NaiveDate> {
    let date = due_date.checked_add_signed(Duration::days(step.offset_days.into()))?;
    if !policy.business_days {
        return Some(date);
    }
    // Moving a "before due" reminder forward could put it on or after the due date.
    Some(if step.offset_days < 0 { previous_business_day(date, holidays) } else { next_business_day(date, holidays) })
}

/// `policy.send_at` on local `date`, pushed past quiet hours if DST moved it into them.
fn send_instant(policy: &Policy, date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    leave_quiet_hours(policy, resolve_local(tz, date.and_time(policy.send_at)), tz)
}

fn leave_quiet_hours(policy: &Policy, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let local = at.with_timezone(&tz).naive_local();
    let (start, end) = (policy.quiet_start, policy.quiet_end);
    if !in_quiet_hours(local.time(), start, end) {
        return at;
    }
    // In a window that wraps midnight, the evening part ends on the next day.
    let end_date = if start > end && local.time() >= start {
        local.date().succ_opt().unwrap_or(local.date())
    } else {
        local.date()
    };
    resolve_local(tz, end_date.and_time(end))
}

fn local_date(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// Local wall time to UTC. An ambiguous time (fall-back) takes the earlier instant so the
/// reminder is not an hour late; a nonexistent one (spring-forward) moves to the first instant
/// after the gap rather than being dropped or sent early.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(at) = tz.from_local_datetime(&local).earliest() {
        return at.with_timezone(&Utc);
    }
    // tzdb gaps start and end on whole minutes, so walking whole minutes from the truncated
    // time lands exactly on the gap's end, which maps to the transition instant.
    let mut probe = local.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(local);
    for _ in 0..MAX_GAP_MINUTES {
        probe += Duration::minutes(1);
        if let Some(at) = tz.from_local_datetime(&probe).earliest() {
            return at.with_timezone(&Utc);
        }
    }
    // Not reachable with tzdb data; use the offset in force a day earlier rather than drop it.
    let offset = tz.offset_from_utc_datetime(&(local - Duration::days(1))).fix();
    Utc.from_utc_datetime(&(local - Duration::seconds(offset.local_minus_utc().into())))
}

fn sort_planned(planned: &mut [Planned]) {
    planned.sort_by_key(|p| (p.send_at, p.step, p.channel));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use Channel::{Email, Sms, WhatsApp};
    use chrono_tz::America::{Mexico_City, New_York};
    use chrono_tz::Europe::Madrid;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn t(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    fn step(offset_days: i32, channels: &[Channel]) -> Step {
        Step { offset_days, channels: channels.to_vec(), template: "reminder".into(), tone: Tone::Friendly }
    }

    /// Email-only steps at 09:00, quiet 20:00–08:00, calendar days, no cap.
    fn policy(offsets: &[i32]) -> Policy {
        Policy {
            steps: offsets.iter().map(|&o| step(o, &[Email])).collect(),
            business_days: false,
            quiet_start: t("20:00"),
            quiet_end: t("08:00"),
            send_at: t("09:00"),
            daily_cap: 0,
        }
    }

    fn timed(offsets: &[i32], send_at: &str, quiet: (&str, &str)) -> Policy {
        Policy { send_at: t(send_at), quiet_start: t(quiet.0), quiet_end: t(quiet.1), ..policy(offsets) }
    }

    /// One case row: expected lines are "step channel send_at(UTC) local_date", written by hand.
    fn check(name: &str, got: &[Planned], want: &[&str]) {
        let got: Vec<String> = got
            .iter()
            .map(|p| format!("{} {} {} {}", p.step, p.channel.as_str(), p.send_at.format("%FT%RZ"), p.local_date))
            .collect();
        assert_eq!(got, want, "{name}");
    }

    #[test]
    fn channel_and_tone_names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        for tone in Tone::ALL {
            assert_eq!(Tone::parse(tone.as_str()), Some(tone));
        }
        assert_eq!(
            (Channel::parse("whatsapp"), Tone::parse("final_notice")),
            (Some(WhatsApp), Some(Tone::FinalNotice))
        );
        assert_eq!((Channel::parse("Email"), Tone::parse("angry")), (None, None));
    }

    #[test]
    fn plan_places_steps_in_local_time() {
        let no_quiet = ("00:00", "00:00");
        let mut mexico = policy(&[-3, 0, 26]);
        mexico.steps[0].channels = vec![Sms, Email];
        // UTC-6 all year: 2026-04-05 would have been a DST start before 2022.
        check(
            "mexico_city_no_dst",
            &plan(&mexico, d("2026-03-10"), Mexico_City, &[]),
            &[
                "0 email 2026-03-07T15:00Z 2026-03-07",
                "0 sms 2026-03-07T15:00Z 2026-03-07",
                "1 email 2026-03-10T15:00Z 2026-03-10",
                "2 email 2026-04-05T15:00Z 2026-04-05",
            ],
        );
        // 02:30 does not exist on 2026-03-08; the first instant after the gap is 03:00 EDT.
        let gap = timed(&[-1, 0, 1], "02:30", no_quiet);
        check(
            "new_york_spring_forward",
            &plan(&gap, d("2026-03-08"), New_York, &[]),
            &[
                "0 email 2026-03-07T07:30Z 2026-03-07",
                "1 email 2026-03-08T07:00Z 2026-03-08",
                "2 email 2026-03-09T06:30Z 2026-03-09",
            ],
        );
        // 01:30 happens twice on 2026-11-01; the earlier one is still EDT.
        let twice = timed(&[-1, 0, 1], "01:30", no_quiet);
        check(
            "new_york_fall_back",
            &plan(&twice, d("2026-11-01"), New_York, &[]),
            &[
                "0 email 2026-10-31T05:30Z 2026-10-31",
                "1 email 2026-11-01T05:30Z 2026-11-01",
                "2 email 2026-11-02T06:30Z 2026-11-02",
            ],
        );
        // The gap pushes 02:30 to 03:00, which is quiet, so it waits for 06:00 EDT.
        let into_quiet = timed(&[0], "02:30", ("03:00", "06:00"));
        check(
            "new_york_gap_into_quiet",
            &plan(&into_quiet, d("2026-03-08"), New_York, &[]),
            &["0 email 2026-03-08T10:00Z 2026-03-08"],
        );
        check(
            "madrid_cet_then_cest",
            &plan(&policy(&[-2, 1]), d("2026-03-28"), Madrid, &[]),
            &["0 email 2026-03-26T08:00Z 2026-03-26", "1 email 2026-03-29T07:00Z 2026-03-29"],
        );
        let night = timed(&[0], "02:30", no_quiet);
        check(
            "madrid_spring_forward",
            &plan(&night, d("2026-03-29"), Madrid, &[]),
            &["0 email 2026-03-29T01:00Z 2026-03-29"],
        );
        check(
            "madrid_fall_back",
            &plan(&night, d("2026-10-25"), Madrid, &[]),
            &["0 email 2026-10-25T00:30Z 2026-10-25"],
        );
        // Sat 03-07 moves back to Fri 03-06; Sat 03-14 moves forward past the Mon 03-16 holiday.
        let holidays = [d("2026-03-16")];
        let business = Policy { business_days: true, ..policy(&[-6, 0, 1]) };
        check(
            "business_days",
            &plan(&business, d("2026-03-13"), Mexico_City, &holidays),
            &[
                "0 email 2026-03-06T15:00Z 2026-03-06",
                "1 email 2026-03-13T15:00Z 2026-03-13",
                "2 email 2026-03-17T15:00Z 2026-03-17",
            ],
        );
        check(
            "calendar_days",
            &plan(&policy(&[-6, 0, 1]), d("2026-03-13"), Mexico_City, &holidays),
            &[
                "0 email 2026-03-07T15:00Z 2026-03-07",
                "1 email 2026-03-13T15:00Z 2026-03-13",
                "2 email 2026-03-14T15:00Z 2026-03-14",
            ],
        );
        // Unvalidated send_at inside quiet hours that wrap midnight: the evening waits for tomorrow.
        let evening = timed(&[0], "21:00", ("20:00", "08:00"));
        check(
            "quiet_evening",
            &plan(&evening, d("2026-03-10"), Mexico_City, &[]),
            &["0 email 2026-03-11T14:00Z 2026-03-11"],
        );
        let early = timed(&[0], "06:00", ("20:00", "08:00"));
        check(
            "quiet_morning",
            &plan(&early, d("2026-03-10"), Mexico_City, &[]),
            &["0 email 2026-03-10T14:00Z 2026-03-10"],
        );
    }

    #[test]
    fn business_day_helpers() {
        let holidays = [d("2026-03-09"), d("2026-03-16"), d("2026-12-25")];
        // (day, next_business_day, previous_business_day)
        let cases = [
            ("2026-03-13", "2026-03-13", "2026-03-13"), // Friday stays
            ("2026-03-07", "2026-03-10", "2026-03-06"), // Saturday; Monday 03-09 is a holiday
            ("2026-03-15", "2026-03-17", "2026-03-13"), // Sunday before a holiday Monday
            ("2026-03-09", "2026-03-10", "2026-03-06"), // the holiday itself
            ("2026-12-25", "2026-12-28", "2026-12-24"), // Christmas on a Friday
        ];
        for (day, next, previous) in cases {
            assert_eq!(next_business_day(d(day), &holidays), d(next), "next from {day}");
            assert_eq!(previous_business_day(d(day), &holidays), d(previous), "previous from {day}");
        }
    }

    #[test]
    fn quiet_hours_windows() {
        // (start, end, times inside, times outside); the first window wraps midnight.
        let cases: [(&str, &str, &[&str], &[&str]); 3] = [
            ("20:00", "08:00", &["20:00", "21:00", "00:00", "07:59"], &["08:00", "12:00", "19:59"]),
            ("09:00", "17:00", &["09:00", "12:00", "16:59"], &["08:59", "17:00", "23:00"]),
            ("00:00", "00:00", &[], &["00:00", "03:00", "23:59"]),
        ];
        for (start, end, inside, outside) in cases {
            for time in inside {
                assert!(in_quiet_hours(t(time), t(start), t(end)), "{time} in {start}-{end}");
            }
            for time in outside {
                assert!(!in_quiet_hours(t(time), t(start), t(end)), "{time} not in {start}-{end}");
            }
        }
    }

    #[test]
    fn daily_cap_moves_overflow_to_next_day() {
        let capped = |policy: &Policy, tz: Tz, due: &str, sent: &[(&str, u32)], cap: u32| {
            let sent: BTreeMap<NaiveDate, u32> = sent.iter().map(|&(day, n)| (d(day), n)).collect();
            let mut planned = plan(policy, d(due), tz, &[]);
            apply_daily_cap(&mut planned, &sent, cap, tz);
            planned
        };
        let three = Policy { steps: vec![step(0, &[Email, Sms, WhatsApp])], ..policy(&[]) };
        check(
            "third_moves",
            &capped(&three, Mexico_City, "2026-03-10", &[], 2),
            &[
                "0 email 2026-03-10T15:00Z 2026-03-10",
                "0 sms 2026-03-10T15:00Z 2026-03-10",
                "0 whatsapp 2026-03-11T15:00Z 2026-03-11",
            ],
        );
        check(
            "already_sent_counts",
            &capped(&three, Mexico_City, "2026-03-10", &[("2026-03-10", 1)], 2),
            &[
                "0 email 2026-03-10T15:00Z 2026-03-10",
                "0 sms 2026-03-11T15:00Z 2026-03-11",
                "0 whatsapp 2026-03-11T15:00Z 2026-03-11",
            ],
        );
        let full = [("2026-03-10", 2), ("2026-03-11", 2)];
        check(
            "cascades_over_full_days",
            &capped(&three, Mexico_City, "2026-03-10", &full, 2),
            &[
                "0 email 2026-03-12T15:00Z 2026-03-12",
                "0 sms 2026-03-12T15:00Z 2026-03-12",
                "0 whatsapp 2026-03-13T15:00Z 2026-03-13",
            ],
        );
        check(
            "zero_is_no_cap",
            &capped(&three, Mexico_City, "2026-03-10", &[("2026-03-10", 50)], 0),
            &[
                "0 email 2026-03-10T15:00Z 2026-03-10",
                "0 sms 2026-03-10T15:00Z 2026-03-10",
                "0 whatsapp 2026-03-10T15:00Z 2026-03-10",
            ],
        );
        // Overflow from step 0 takes the next day first, so step 1 never overtakes it.
        let two_steps = Policy { steps: vec![step(0, &[Email, Sms]), step(1, &[Email, Sms])], ..policy(&[]) };
        check(
            "earlier_steps_first",
            &capped(&two_steps, Mexico_City, "2026-03-10", &[], 1),
            &[
                "0 email 2026-03-10T15:00Z 2026-03-10",
                "0 sms 2026-03-11T15:00Z 2026-03-11",
                "1 email 2026-03-12T15:00Z 2026-03-12",
                "1 sms 2026-03-13T15:00Z 2026-03-13",
            ],
        );
        // 09:00 EST, then 09:00 EDT the next day: same local time, an hour earlier in UTC.
        let pair = Policy { steps: vec![step(0, &[Email, Sms])], ..policy(&[]) };
        check(
            "same_local_time_across_dst",
            &capped(&pair, New_York, "2026-03-07", &[], 1),
            &["0 email 2026-03-07T14:00Z 2026-03-07", "0 sms 2026-03-08T13:00Z 2026-03-08"],
        );
    }

    #[test]
    fn resume_keeps_only_the_last_missed_step() {
        // Due Tue 2026-03-10 in Mexico City (UTC-6): steps on 03-07, 03-10, 03-17, 03-24 at 09:00.
        let policy = policy(&[-3, 0, 7, 14]);
        let resume = |today: &str, now: &str| {
            resume_plan(&policy, d("2026-03-10"), Mexico_City, &[], d(today), now.parse().unwrap())
        };
        let later = ["2 email 2026-03-17T15:00Z 2026-03-17", "3 email 2026-03-24T15:00Z 2026-03-24"];
        // (today, now, the catch-up line for step 1); later steps keep their dates in every case.
        let cases = [
            ("2026-03-12", "2026-03-12T14:00:00Z", "1 email 2026-03-12T15:00Z 2026-03-12"), // 08:00: wait for send_at
            ("2026-03-12", "2026-03-12T18:30:00Z", "1 email 2026-03-12T18:30Z 2026-03-12"), // past send_at: now
            ("2026-03-12", "2026-03-13T03:00:00Z", "1 email 2026-03-13T14:00Z 2026-03-13"), // 21:00 is quiet
        ];
        for (today, now, catch_up) in cases {
            check(now, &resume(today, now), &[catch_up, later[0], later[1]]);
        }
        check(
            "nothing_missed",
            &resume("2026-03-01", "2026-03-01T15:00:00Z"),
            &["0 email 2026-03-07T15:00Z 2026-03-07", "1 email 2026-03-10T15:00Z 2026-03-10", later[0], later[1]],
        );
        check("all_missed", &resume("2026-04-01", "2026-04-01T12:00:00Z"), &["3 email 2026-04-01T15:00Z 2026-04-01"]);
    }

    #[test]
    fn validate_names_the_field() {
        type Case = (fn(&mut Policy), Option<&'static str>);
        let cases: [Case; 14] = [
            (|_| {}, None),
            (|p| (p.quiet_start, p.quiet_end, p.send_at) = (t("00:00"), t("00:00"), t("03:00")), None),
            (
                |p| {
                    p.steps = (-10..10).map(|o| step(o, &[Email])).collect();
                    (p.steps[0].offset_days, p.steps[19].offset_days) = (-365, 365);
                    p.steps[0].template = "x".repeat(100);
                    p.daily_cap = 100;
                },
                None,
            ),
            (|p| p.steps.clear(), Some("steps")),
            (|p| p.steps = (0..21).map(|o| step(o, &[Email])).collect(), Some("steps")),
            (|p| p.steps[1].offset_days = -3, Some("steps[1].offset_days")),
            (|p| p.steps[2].offset_days = 366, Some("steps[2].offset_days")),
            (|p| p.steps[0].offset_days = -366, Some("steps[0].offset_days")),
            (|p| p.steps[1].channels.clear(), Some("steps[1].channels")),
            (|p| p.steps[0].channels = vec![Email, Sms, Email], Some("steps[0].channels[2]")),
            (|p| p.steps[2].template = "  ".into(), Some("steps[2].template")),
            (|p| p.steps[0].template = "x".repeat(101), Some("steps[0].template")),
            (|p| p.send_at = t("07:00"), Some("send_at")),
            (|p| p.daily_cap = 101, Some("daily_cap")),
        ];
        for (i, (mutate, field)) in cases.into_iter().enumerate() {
            let mut p = Policy { daily_cap: 3, ..policy(&[-3, 0, 7]) };
            mutate(&mut p);
            assert_eq!(p.validate().err().map(|e| e.field().to_owned()).as_deref(), field, "case {i}");
        }
        let err = policy(&[-3, 0, 400]).validate().unwrap_err();
        assert_eq!(err.reason(), "must be within -365..=365");
        assert_eq!(err.to_string(), "steps[2].offset_days: must be within -365..=365");
    }
}
