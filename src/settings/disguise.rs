//! Text as a reader sees it, so a blocked word cannot hide behind characters that do not show
//! (`c\u{200B}a\u{200B}t`), dots between its letters (`c.a.t`) or letters of another alphabet that
//! look Latin (Cyrillic `сat`, Greek `ϲat`).

use unicode_normalization::UnicodeNormalization;

use super::fold;

/// `text` with invisible characters dropped and look-alike letters read as the Latin ones, folded
/// as [`fold`] does. Letters that look Latin only in capitals (Cyrillic `Т`, Greek `Η`) are read
/// as Latin only in capitals, so ordinary lower-case Russian or Greek words keep their letters.
pub(super) fn as_seen(text: &str) -> String {
    let seen: String = text.nfkd().filter(|c| !is_invisible(*c)).map(latin_look_alike).collect();
    fold(&seen)
}

/// `text` with each dot that stands between two letters or digits removed: `c.a.t` reads `cat`.
pub(super) fn join_dotted(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .filter(|&(i, c)| {
            let between_letters =
                i > 0 && chars[i - 1].is_alphanumeric() && chars.get(i + 1).is_some_and(|next| next.is_alphanumeric());
            !(is_dot(*c) && between_letters)
        })
        .map(|(_, c)| *c)
        .collect()
}

fn is_dot(c: char) -> bool {
    matches!(c, '.' | '·' | '•' | '‧' | '∙' | '⋅' | '・')
}

/// Characters that take no room on screen: zero-width spaces and joiners, the word joiner, the
/// byte-order mark, soft hyphens, direction marks and Hangul fillers.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// The Latin letter `c` passes for, if any: Cyrillic and Greek look-alikes, and Latin small
/// capitals and variant letters that compatibility decomposition leaves alone.
fn latin_look_alike(c: char) -> char {
    match c {
        'а' | 'А' | 'α' | 'Α' | 'ɑ' | 'ᴀ' => 'a',
        'В' | 'Β' | 'ь' | 'ʙ' => 'b',
        // Greek lunate sigma `ϲ` arrives here as final sigma after decomposition.
        'с' | 'С' | 'ς' | 'ᴄ' => 'c',
        'ԁ' | 'ᴅ' => 'd',
        'е' | 'Е' | 'Ε' | 'ᴇ' => 'e',
        'ɡ' | 'ɢ' => 'g',
        'һ' | 'Һ' | 'Н' | 'Η' | 'ʜ' => 'h',
        'і' | 'І' | 'Ι' | 'ι' | 'ı' | 'ɩ' | 'ɪ' => 'i',
        'ј' | 'Ј' | 'ᴊ' => 'j',
        'К' | 'Κ' | 'ᴋ' => 'k',
        'ӏ' | 'Ӏ' | 'ʟ' => 'l',
        'М' | 'Μ' | 'ᴍ' => 'm',
        'Ν' | 'η' | 'ɴ' => 'n',
        'о' | 'О' | 'ο' | 'Ο' | 'ᴏ' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' | 'ᴘ' => 'p',
        'ԛ' | 'Ԛ' => 'q',
        'ʀ' => 'r',
        'ѕ' | 'Ѕ' | 'ꜱ' => 's',
        'Т' | 'Τ' | 'ᴛ' => 't',
        'υ' | 'ᴜ' => 'u',
        'ν' | 'ᴠ' => 'v',
        'ԝ' | 'Ԝ' | 'ᴡ' => 'w',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'у' | 'У' | 'ү' | 'Ү' | 'Υ' | 'ʏ' => 'y',
        'Ζ' | 'ᴢ' => 'z',
        other => other,
    }
}
