//! Cleans prompt text for the provider, which rejects `-` and "other special characters".

/// The cleaned text and a sentence describing what changed (if anything did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub text: String,
    pub change: Option<String>,
}

/// Punctuation the provider is known to accept besides letters, digits and spaces.
const ALLOWED_PUNCTUATION: &[char] = &[',', '.', '\'', '!', '?', ':', ';', '(', ')', '&'];

fn is_dash(c: char) -> bool {
    matches!(c, '-' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−')
}

/// Cleans `text`: links are removed, dashes become spaces, Midjourney `::` weights and `{a, b}`
/// braces are removed, any other character outside a conservative set becomes a space, and
/// whitespace is collapsed. `what` names the text in the note ("prompt", "negative prompt").
pub fn clean(text: &str, what: &str) -> Cleaned {
    let mut removed_links = 0;
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| {
            let link = w.starts_with("http://") || w.starts_with("https://") || w.starts_with("<http");
            removed_links += usize::from(link);
            !link
        })
        .collect();
    let text = words.join(" ");

    let mut out = String::with_capacity(text.len());
    let mut dashes = false;
    let mut weights = false;
    let mut removed: Vec<char> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            // A Midjourney weight: `::`, `::2`, `::-0.5`.
            chars.next();
            while chars.peek().is_some_and(|n| n.is_ascii_digit() || *n == '.' || is_dash(*n)) {
                chars.next();
            }
            weights = true;
            out.push(' ');
        } else if is_dash(c) {
            dashes = true;
            out.push(' ');
        } else if c == '’' || c == '‘' {
            out.push('\'');
        } else if c.is_alphanumeric() || c.is_whitespace() || ALLOWED_PUNCTUATION.contains(&c) {
            out.push(c);
        } else {
            if !removed.contains(&c) {
                removed.push(c);
            }
            out.push(' ');
        }
    }
    let cleaned = out.split_whitespace().collect::<Vec<_>>().join(" ");

    let mut parts = Vec::new();
    if removed_links > 0 {
        parts.push("removed links (attach images with the image options instead)".to_owned());
    }
    if dashes {
        parts.push("replaced `-` with spaces".to_owned());
    }
    if weights {
        parts.push("removed `::` weights".to_owned());
    }
    if !removed.is_empty() {
        let shown: String = removed
            .iter()
            .take(12)
            .map(|c| if *c == '`' { "'`'".to_owned() } else { format!("`{c}`") })
            .collect::<Vec<_>>()
            .join(" ");
        let more = if removed.len() > 12 { " and others" } else { "" };
        parts.push(format!("removed characters the provider does not accept: {shown}{more}"));
    }
    let change = (!parts.is_empty()).then(|| format!("Adjusted your {what}: {}.", parts.join("; ")));
    Cleaned { text: cleaned, change }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_unchanged() {
        let c = clean("a cozy reading nook, golden hour (warm light) & tea!", "prompt");
        assert_eq!(c.text, "a cozy reading nook, golden hour (warm light) & tea!");
        assert_eq!(c.change, None);
    }

    #[test]
    fn dashes_become_spaces() {
        let c = clean("sci-fi city — neo–noir", "prompt");
        assert_eq!(c.text, "sci fi city neo noir");
        assert!(c.change.unwrap().contains("replaced `-` with spaces"));
    }

    #[test]
    fn special_characters_are_removed_and_named() {
        let c = clean("cat #1 @home *bold* \"quoted\" 50% <3", "prompt");
        assert_eq!(c.text, "cat 1 home bold quoted 50 3");
        let change = c.change.unwrap();
        for ch in ["`#`", "`@`", "`*`", "`\"`", "`%`", "`<`"] {
            assert!(change.contains(ch), "{ch} missing from {change}");
        }
    }

    #[test]
    fn weights_permutations_links_and_emoji() {
        let c = clean("https://example.com/a.png space::2 ship::-0.5 {red, blue} bird 🦀", "prompt");
        assert_eq!(c.text, "space ship red, blue bird");
        let change = c.change.unwrap();
        assert!(change.contains("links") && change.contains("::") && change.contains("`{`"), "{change}");
    }

    #[test]
    fn unicode_letters_and_curly_apostrophes_survive() {
        let c = clean("café d’été 日本語 Ωmega", "prompt");
        assert_eq!(c.text, "café d'été 日本語 Ωmega");
        assert_eq!(c.change, None);
    }

    #[test]
    fn nothing_left() {
        let c = clean(" --- ### ", "prompt");
        assert_eq!(c.text, "");
        assert!(c.change.is_some());
    }

    #[test]
    fn very_long_prompt_stays_within_its_length() {
        let long = "a-b ".repeat(3000);
        let c = clean(&long, "prompt");
        assert!(c.text.len() <= long.len());
        assert!(!c.text.contains('-'));
    }
}
