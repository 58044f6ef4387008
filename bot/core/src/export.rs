//! Session documentation: timestamped notes ready to paste into a PSA ticket.
//!
//! Every rendering passes through the [`Redactor`] last, so nothing a rule catches can leave in an
//! export, whatever was stored.

use crate::effect::{Document, ExportFormat};
use crate::redact::Redactor;
use crate::session::{Fact, Session, SessionStatus, StepKind, StepOutcome, TimelineStep};
use crate::time::human_duration;
use std::fmt::Write;

/// Everything a session's documentation is made from.
#[derive(Debug, Clone, Copy)]
pub struct SessionRecord<'a> {
    pub session: &'a Session,
    pub owner_name: &'a str,
    pub timeline: &'a [TimelineStep],
    pub facts: &'a [Fact],
}

/// One timeline step described for people: what happened, what to stress, and verbatim output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepLine {
    /// `10:03:12` (UTC).
    pub time: String,
    pub text: String,
    pub emphasis: Option<String>,
    pub output: Option<String>,
    /// The bot put something to the technician (a question, the flows on offer) rather than a
    /// person doing something. Ticket notes leave these out.
    pub prompt: bool,
}

impl SessionRecord<'_> {
    fn title(&self) -> String {
        match &self.session.flow {
            Some(flow) => flow.meta.title.clone(),
            None => self.session.problem.clone(),
        }
    }

    fn header_fields(&self) -> Vec<(&'static str, String)> {
        let s = self.session;
        let mut fields = vec![
            ("Problem", s.problem.clone()),
            ("Technician", self.owner_name.to_owned()),
            ("Status", status_word(s.status).to_owned()),
        ];
        if let Some(ticket) = &s.psa_ticket {
            fields.push(("Ticket", format!("#{ticket}")));
        }
        if let Some(flow) = &s.flow {
            fields.push(("Flow", flow.meta.title.clone()));
        }
        fields.push(("Started", s.created_at.display_utc()));
        if let Some(resolved) = s.resolved_at {
            fields.push(("Resolved", resolved.display_utc()));
            fields.push((
                "Time to resolve",
                human_duration(resolved.millis_since(s.created_at)),
            ));
        }
        fields
    }

    fn lines(&self) -> Vec<StepLine> {
        self.timeline
            .iter()
            .map(describe_step)
            .filter(|line| !line.prompt)
            .collect()
    }
}

fn status_word(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Active => "In progress",
        SessionStatus::Parked => "Parked",
        SessionStatus::Escalated => "Escalated",
        SessionStatus::Resolved => "Resolved",
        SessionStatus::Abandoned => "Abandoned",
    }
}

fn outcome_word(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Done => "Done",
        StepOutcome::Skipped => "Skipped",
        StepOutcome::Failed => "Failed",
    }
}

/// Describes a timeline step in words.
pub fn describe_step(step: &TimelineStep) -> StepLine {
    let who = step.actor_name.as_deref().unwrap_or("ResolutionFlow");
    let mut emphasis = None;
    let mut output = None;
    let mut prompt = false;
    let text = match &step.kind {
        StepKind::SessionStarted { problem } => format!("{who} started the session: \"{problem}\""),
        StepKind::FlowChosen { title, .. } => format!("{who} chose the flow \"{title}\""),
        StepKind::FreeFormChosen => format!("{who} chose to troubleshoot without a flow"),
        StepKind::Answered {
            question, answer, ..
        } => {
            emphasis = Some(answer.clone());
            format!("{who}: {question} →")
        }
        StepKind::ChecklistResult {
            text,
            target,
            outcome,
            output: out,
            ..
        } => {
            emphasis = Some(outcome_word(*outcome).to_owned());
            output = out.clone();
            match target {
                Some(target) => format!("[{target}] {text} —"),
                None => format!("{text} —"),
            }
        }
        StepKind::SolutionReached { title, text, .. } => {
            format!("Suggested fix \"{title}\": {text}")
        }
        StepKind::SolutionRejected { title, .. } => format!("{who}: \"{title}\" did not fix it"),
        StepKind::Message { text } => format!("{who}: {text}"),
        StepKind::FactAdded { text } => format!("{who} confirmed: {text}"),
        StepKind::NoteAdded { text } => format!("Note from {who}: {text}"),
        StepKind::TicketLinked { ticket } => format!("{who} linked ticket #{ticket}"),
        StepKind::TicketPulled { ticket, provider } => {
            let details = ticket
                .fields()
                .into_iter()
                .skip(1)
                .map(|(label, value)| format!("{}: {value}", label.to_lowercase()))
                .collect::<Vec<_>>();
            format!(
                "Ticket #{} in {}: \"{}\"{}",
                ticket.id,
                provider.title(),
                ticket.summary,
                if details.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", details.join(", "))
                }
            )
        }
        StepKind::Parked { reason } => match reason {
            Some(reason) => format!("{who} parked the session: {reason}"),
            None => format!("{who} parked the session"),
        },
        StepKind::Resumed => format!("{who} resumed the session"),
        StepKind::Resolved { summary } => format!("{who} resolved the session: {summary}"),
        StepKind::Escalated { reason, priority } => {
            emphasis = Some(format!("priority {priority}"));
            format!("{who} escalated to a senior: {reason} —")
        }
        StepKind::Claimed { after_ms } => format!(
            "{who} claimed the escalation ({} after it was raised)",
            human_duration(*after_ms)
        ),
        StepKind::ClaimAcknowledged => format!("{who} confirmed they are working on it"),
        StepKind::Released { reason } => format!("The escalation went back to the queue: {reason}"),
        StepKind::FlowsOffered { titles } => {
            prompt = true;
            format!("Suggested flows: {}", titles.join(", "))
        }
        StepKind::NodeShown { text, .. } => {
            prompt = true;
            format!("Asked: {text}")
        }
        StepKind::AiTurn {
            reply,
            calls,
            problem,
            ..
        } => {
            prompt = true;
            let model = calls
                .last()
                .map_or_else(|| "offline".to_owned(), |c| c.model.clone());
            match (reply, problem) {
                (Some(reply), _) => format!("Copilot ({model}): {}", reply.message),
                (None, Some(problem)) => format!("Copilot ({model}) could not answer: {problem}"),
                (None, None) => format!("Copilot ({model}) had nothing to add"),
            }
        }
        StepKind::AiCalls { purpose, calls, .. } => {
            prompt = true;
            let models: Vec<&str> = calls.iter().map(|c| c.model.as_str()).collect();
            format!(
                "Copilot ({}) wrote the {}",
                models.join(", "),
                purpose.as_str().replace('_', " ")
            )
        }
        StepKind::FixDecided { title, decision } => {
            emphasis = Some(decision.as_str().replace('_', " "));
            format!("{who} decided on the suggested fix \"{title}\":")
        }
    };
    StepLine {
        time: step.created_at.time_of_day(),
        text,
        emphasis,
        output,
        prompt,
    }
}

/// Renders the session's documentation in `format`, redacted.
pub fn render(record: &SessionRecord<'_>, format: ExportFormat, redactor: &Redactor) -> Document {
    let content = match format {
        ExportFormat::Markdown => markdown(record),
        ExportFormat::Text => plain_text(record),
        ExportFormat::Html => html(record),
    };
    Document {
        format,
        filename: format!(
            "session-{}.{}",
            record
                .session
                .created_at
                .to_datetime()
                .format("%Y%m%d-%H%M"),
            format.extension()
        ),
        content: redactor.redact(&content).into_owned(),
    }
}

fn resolution<'a>(record: &SessionRecord<'a>) -> Option<&'a str> {
    record
        .session
        .resolution
        .as_deref()
        .filter(|_| record.session.status == SessionStatus::Resolved)
}

fn markdown(record: &SessionRecord<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", record.title());
    for (label, value) in record.header_fields() {
        let _ = writeln!(out, "- **{label}:** {value}");
    }
    let _ = writeln!(out, "\n## Timeline (UTC)\n");
    for line in record.lines() {
        let _ = write!(out, "- `{}` {}", line.time, line.text);
        if let Some(emphasis) = &line.emphasis {
            let _ = write!(out, " **{emphasis}**");
        }
        out.push('\n');
        if let Some(output) = &line.output {
            let _ = writeln!(out, "  ```\n  {}\n  ```", output.replace('\n', "\n  "));
        }
    }
    if !record.facts.is_empty() {
        let _ = writeln!(out, "\n## Confirmed facts\n");
        for fact in record.facts {
            let _ = writeln!(out, "- {}", fact.text);
        }
    }
    if let Some(resolution) = resolution(record) {
        let _ = writeln!(out, "\n## Resolution\n\n{resolution}");
    }
    out
}

fn plain_text(record: &SessionRecord<'_>) -> String {
    let mut out = String::new();
    let title = record.title();
    let _ = writeln!(out, "{title}\n{}\n", "=".repeat(title.chars().count()));
    for (label, value) in record.header_fields() {
        let _ = writeln!(out, "{label}: {value}");
    }
    let _ = writeln!(out, "\nTimeline (UTC)\n--------------");
    for line in record.lines() {
        let _ = write!(out, "{}  {}", line.time, line.text);
        if let Some(emphasis) = &line.emphasis {
            let _ = write!(out, " {emphasis}");
        }
        out.push('\n');
        if let Some(output) = &line.output {
            for output_line in output.lines() {
                let _ = writeln!(out, "          | {output_line}");
            }
        }
    }
    if !record.facts.is_empty() {
        let _ = writeln!(out, "\nConfirmed facts\n---------------");
        for fact in record.facts {
            let _ = writeln!(out, "- {}", fact.text);
        }
    }
    if let Some(resolution) = resolution(record) {
        let _ = writeln!(out, "\nResolution\n----------\n{resolution}");
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn html(record: &SessionRecord<'_>) -> String {
    let e = escape_html;
    let mut out = String::new();
    let title = e(&record.title());
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<dl>"
    );
    for (label, value) in record.header_fields() {
        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", e(label), e(&value));
    }
    let _ = writeln!(out, "</dl>\n<h2>Timeline (UTC)</h2>\n<ol>");
    for line in record.lines() {
        let _ = write!(out, "<li><time>{}</time> {}", e(&line.time), e(&line.text));
        if let Some(emphasis) = &line.emphasis {
            let _ = write!(out, " <strong>{}</strong>", e(emphasis));
        }
        if let Some(output) = &line.output {
            let _ = write!(out, "<pre>{}</pre>", e(output));
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ol>\n");
    if !record.facts.is_empty() {
        out.push_str("<h2>Confirmed facts</h2>\n<ul>\n");
        for fact in record.facts {
            let _ = writeln!(out, "<li>{}</li>", e(&fact.text));
        }
        out.push_str("</ul>\n");
    }
    if let Some(resolution) = resolution(record) {
        let _ = writeln!(out, "<h2>Resolution</h2>\n<p>{}</p>", e(resolution));
    }
    out.push_str("</body>\n</html>\n");
    out
}
