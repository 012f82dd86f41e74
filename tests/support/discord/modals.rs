//! Modals (interaction callback type 9): Discord's rules for the form, and what the stand-in
//! keeps of it. A modal creates no message; the user's answer comes back as a modal submit
//! (interaction type 5, see [`super::InteractionBuilder::modal_submit`]).

use std::collections::HashSet;

use serde_json::Value;

use super::rest::{Rejection, Reply};
use super::{DiscordStandIn, form_error, lock};

/// Action rows (one text input each) in a modal.
const MAX_MODAL_ROWS: usize = 5;
/// Longest text an input takes, prefilled or typed.
const MAX_INPUT_CHARS: u64 = 4000;

impl DiscordStandIn {
    /// The modal (the callback's `data`) the interaction was answered with, if it was.
    pub fn modal_for(&self, interaction_id: u64) -> Option<Value> {
        lock(&self.shared.inner).interactions.get(&interaction_id).and_then(|i| i.modal.clone())
    }
}

/// Discord's rules for a modal's `data`: `custom_id` 1–100 characters, `title` 1–45, 1–5 action
/// rows (type 1) of exactly one text input (type 4) each, whose `custom_id` (1–100, unique in the
/// modal), `label` (1–45) and `style` (1 short, 2 paragraph) are required; `min_length` 0–4000,
/// `max_length` 1–4000, a prefilled `value` of at most 4000 characters and not above `max_length`,
/// `required` a boolean and `placeholder` at most 100 characters are optional.
pub(super) fn validate_modal(data: &Value) -> Result<(), Rejection> {
    let invalid = |path: String, code: &str, message: &str| -> Rejection {
        Reply::json(400, form_error(&format!("data.{path}"), code, message))
    };
    let text = |value: &Value, path: String, max: usize| match value {
        Value::Null => Err(invalid(path, "BASE_TYPE_REQUIRED", "This field is required")),
        Value::String(s) if s.is_empty() || s.chars().count() > max => {
            Err(invalid(path, "BASE_TYPE_BAD_LENGTH", &format!("Must be between 1 and {max} in length.")))
        }
        Value::String(_) => Ok(()),
        _ => Err(invalid(path, "BASE_TYPE_STRING", "Must be a string.")),
    };
    text(&data["custom_id"], "custom_id".into(), 100)?;
    text(&data["title"], "title".into(), 45)?;
    let rows = match &data["components"] {
        Value::Null => return Err(invalid("components".into(), "BASE_TYPE_REQUIRED", "This field is required")),
        Value::Array(rows) => rows,
        _ => return Err(invalid("components".into(), "BASE_TYPE_ARRAY", "Must be an array.")),
    };
    if rows.is_empty() || rows.len() > MAX_MODAL_ROWS {
        return Err(invalid("components".into(), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."));
    }
    let mut custom_ids = HashSet::new();
    for (r, row) in rows.iter().enumerate() {
        if row["type"] != 1 {
            return Err(invalid(format!("components.{r}.type"), "BASE_TYPE_CHOICES", "Value must be one of {1}."));
        }
        let inputs = row["components"].as_array().map_or(&[][..], Vec::as_slice);
        if inputs.len() != 1 {
            return Err(invalid(
                format!("components.{r}.components"),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 1 in length.",
            ));
        }
        let input = &inputs[0];
        let at = |field: &str| format!("components.{r}.components.0.{field}");
        if input["type"] != 4 {
            return Err(invalid(at("type"), "BASE_TYPE_CHOICES", "Value must be one of {4}."));
        }
        text(&input["custom_id"], at("custom_id"), 100)?;
        if !custom_ids.insert(input["custom_id"].as_str().unwrap_or_default()) {
            return Err(invalid(
                at("custom_id"),
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            ));
        }
        text(&input["label"], at("label"), 45)?;
        if !matches!(input["style"].as_u64(), Some(1 | 2)) {
            return Err(invalid(at("style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2}."));
        }
        let number = |field: &str, min: u64| -> Result<Option<u64>, Rejection> {
            match &input[field] {
                Value::Null => Ok(None),
                v => match v.as_u64() {
                    Some(n) if (min..=MAX_INPUT_CHARS).contains(&n) => Ok(Some(n)),
                    Some(n) if n > MAX_INPUT_CHARS => {
                        Err(invalid(at(field), "NUMBER_TYPE_MAX", "int value should be less than or equal to 4000."))
                    }
                    Some(_) => Err(invalid(
                        at(field),
                        "NUMBER_TYPE_MIN",
                        &format!("int value should be greater than or equal to {min}."),
                    )),
                    None => Err(invalid(at(field), "NUMBER_TYPE_COERCE", &format!("Value \"{v}\" is not int."))),
                },
            }
        };
        number("min_length", 0)?;
        let max_length = number("max_length", 1)?.unwrap_or(MAX_INPUT_CHARS);
        match &input["value"] {
            Value::Null => {}
            Value::String(v) if v.chars().count() as u64 > max_length => {
                return Err(invalid(
                    at("value"),
                    "BASE_TYPE_MAX_LENGTH",
                    &format!("Must be {max_length} or fewer in length."),
                ));
            }
            Value::String(_) => {}
            _ => return Err(invalid(at("value"), "BASE_TYPE_STRING", "Must be a string.")),
        }
        if !matches!(input["required"], Value::Null | Value::Bool(_)) {
            return Err(invalid(at("required"), "BASE_TYPE_BOOLEAN", "Must be either true or false."));
        }
        match &input["placeholder"] {
            Value::Null => {}
            Value::String(p) if p.chars().count() > 100 => {
                return Err(invalid(at("placeholder"), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."));
            }
            Value::String(_) => {}
            _ => return Err(invalid(at("placeholder"), "BASE_TYPE_STRING", "Must be a string.")),
        }
    }
    Ok(())
}
