//! Normalises the provider's job status, which is not documented: numbers and strings both occur.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Running,
    /// Finished with these image URLs (never empty).
    Succeeded(Vec<String>),
    /// Finished without images; the provider's reason when it gave one.
    Failed(Option<String>),
    /// A status we do not know. Never taken for success.
    Unknown(String),
}

/// What one query said about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub phase: Phase,
    /// The status exactly as received, for the job's history.
    pub raw_status: String,
    /// A percentage, only when the provider gives one.
    pub progress: Option<u8>,
}

impl JobState {
    /// Reads the `data` object of a query answer.
    pub fn from_data(data: &Value) -> JobState {
        let status = data.get("status").unwrap_or(&Value::Null);
        let raw_status = match status {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let images: Vec<String> = data
            .pointer("/result/images")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|i| i.get("url").and_then(Value::as_str).or(i.as_str()))
                    .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();

        let phase = if !images.is_empty() {
            // A job with images is done, whatever its status says.
            Phase::Succeeded(images)
        } else {
            match classify(status) {
                Class::Queued => Phase::Queued,
                Class::Running => Phase::Running,
                Class::Failed => Phase::Failed(failure_reason(data)),
                // "Succeeded" without a single image cannot be delivered: treat it as unknown and
                // look again rather than report an empty success.
                Class::Succeeded | Class::Unknown => Phase::Unknown(raw_status.clone()),
            }
        };
        JobState { phase, raw_status, progress: progress(data) }
    }
}

enum Class {
    Queued,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

fn classify(status: &Value) -> Class {
    match status {
        Value::Number(n) => match n.as_i64() {
            Some(0) => Class::Queued,
            Some(1) => Class::Running,
            Some(2) => Class::Succeeded,
            Some(3 | 4) => Class::Failed,
            _ => Class::Unknown,
        },
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            if let Ok(n) = s.parse::<i64>() {
                return classify(&Value::from(n));
            }
            match s.as_str() {
                "queued" | "pending" | "submitted" | "not_start" | "created" | "waiting" => Class::Queued,
                "processing" | "running" | "in_progress" | "started" | "progress" | "generating" => Class::Running,
                "succeeded" | "success" | "completed" | "done" | "finished" => Class::Succeeded,
                _ if ["fail", "error", "cancel", "timeout", "moderat", "banned", "rejected", "blocked"]
                    .iter()
                    .any(|w| s.contains(w)) =>
                {
                    Class::Failed
                }
                _ => Class::Unknown,
            }
        }
        _ => Class::Unknown,
    }
}

fn failure_reason(data: &Value) -> Option<String> {
    ["error", "fail_reason", "failReason", "message", "info", "msg"]
        .iter()
        .filter_map(|k| data.get(k).or_else(|| data.get("result").and_then(|r| r.get(k))))
        .find_map(message_text)
}

/// The provider's words in a field: a non-empty string, or an object's `message`.
pub(super) fn message_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

// The number is checked to lie within 0..=100 before it is rounded to a `u8`: the cast is exact.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn progress(data: &Value) -> Option<u8> {
    let value = data.get("progress")?;
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse().ok()?,
        _ => return None,
    };
    (0.0..=100.0).contains(&number).then_some(number.round() as u8)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn phase(data: Value) -> Phase {
        JobState::from_data(&data).phase
    }

    #[test]
    fn numeric_statuses() {
        assert_eq!(phase(json!({"status":0})), Phase::Queued);
        assert_eq!(phase(json!({"status":1})), Phase::Running);
        assert_eq!(phase(json!({"status":3,"error":"moderated"})), Phase::Failed(Some("moderated".into())));
        assert_eq!(
            phase(json!({"status":"2","result":{"images":[{"url":"https://x/1.png"}]}})),
            Phase::Succeeded(vec!["https://x/1.png".into()])
        );
    }

    #[test]
    fn string_statuses() {
        assert_eq!(phase(json!({"status":"queued"})), Phase::Queued);
        assert_eq!(phase(json!({"status":"PROCESSING"})), Phase::Running);
        assert_eq!(phase(json!({"status":"failed","info":"bad prompt"})), Phase::Failed(Some("bad prompt".into())));
        assert_eq!(phase(json!({"status":"moderated"})), Phase::Failed(None));
        assert_eq!(phase(json!({"status":"cancelled"})), Phase::Failed(None));
    }

    #[test]
    fn success_needs_images() {
        assert_eq!(phase(json!({"status":2})), Phase::Unknown("2".into()));
        assert_eq!(phase(json!({"status":"succeeded","result":{"images":[]}})), Phase::Unknown("succeeded".into()));
        // Images mean done, even under a status we do not know.
        assert!(matches!(
            phase(json!({"status":"weird","result":{"images":[{"url":"https://x/a.png"}]}})),
            Phase::Succeeded(_)
        ));
        // Non-URLs are not images.
        assert_eq!(phase(json!({"status":2,"result":{"images":[{"url":"javascript:x"}]}})), Phase::Unknown("2".into()));
    }

    #[test]
    fn unknown_is_never_success() {
        for status in [json!(7), json!(-1), json!("mystery"), json!(null), json!({"a":1}), json!(true), json!(2.5)] {
            assert!(matches!(phase(json!({"status": status})), Phase::Unknown(_)), "{status}");
        }
        assert!(matches!(phase(json!(null)), Phase::Unknown(_)));
        assert!(matches!(phase(json!("garbage")), Phase::Unknown(_)));
    }

    #[test]
    fn progress_only_when_given() {
        assert_eq!(JobState::from_data(&json!({"status":1})).progress, None);
        assert_eq!(JobState::from_data(&json!({"status":1,"progress":42})).progress, Some(42));
        assert_eq!(JobState::from_data(&json!({"status":1,"progress":"65%"})).progress, Some(65));
        assert_eq!(JobState::from_data(&json!({"status":1,"progress":400})).progress, None);
    }
}
