//! sacreBLEU's tokenizers, character for character: `13a` (mteval-v13a,
//! WMT's default), `zh` (each CJK character its own word, then 13a's
//! punctuation rules), `char` and `none`. Whitespace is Python's
//! (`str.split`, `str.strip`), which is not quite Rust's.

use std::fmt;
use std::str::FromStr;

/// How BLEU cuts a segment into words before counting n-grams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tokenize {
    /// mteval-v13a: sacreBLEU's default.
    Thirteen,
    /// sacreBLEU's `zh`: CJK characters split apart, then 13a's regular expressions.
    Zh,
    /// Every character a word.
    Char,
    /// The segment as it is, split on whitespace.
    None,
}

impl Tokenize {
    /// sacreBLEU's name for it (the `tok:` field of its signature).
    pub fn name(self) -> &'static str {
        match self {
            Tokenize::Thirteen => "13a",
            Tokenize::Zh => "zh",
            Tokenize::Char => "char",
            Tokenize::None => "none",
        }
    }

    /// The tokenized segment, words separated by single spaces.
    pub fn apply(self, line: &str) -> String {
        match self {
            Tokenize::Thirteen => thirteen_a(line),
            Tokenize::Zh => zh(line),
            Tokenize::Char => {
                let mut out = String::with_capacity(line.len() * 2);
                for (i, c) in line.chars().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push(c);
                }
                out
            }
            Tokenize::None => line.to_string(),
        }
    }
}

impl fmt::Display for Tokenize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tokenize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "13a" => Ok(Tokenize::Thirteen),
            "zh" => Ok(Tokenize::Zh),
            "char" => Ok(Tokenize::Char),
            "none" => Ok(Tokenize::None),
            _ => Err(format!("unknown tokenizer {s:?} (13a, zh, char or none)")),
        }
    }
}

/// Python's `str.isspace`: Unicode White_Space plus the four ASCII
/// separators U+001C..U+001F, which Python counts and Rust does not.
pub fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()`: words between runs of whitespace.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_space).filter(|w| !w.is_empty())
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_space)
}

fn thirteen_a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    regexp_rules(&format!(" {line} "))
}

/// The four regular expressions 13a and zh share, applied as `re.sub`
/// applies them (left to right, matches not overlapping), then
/// `' '.join(line.split())`.
fn regexp_rules(line: &str) -> String {
    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
    let mut a = String::with_capacity(line.len() * 2);
    for c in line.chars() {
        if matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/') {
            a.push(' ');
            a.push(c);
            a.push(' ');
        } else {
            a.push(c);
        }
    }
    let digit = |c: char| c.is_ascii_digit();
    let period = |c: char| c == '.' || c == ',';
    // ([^0-9])([\.,]) -> "\1 \2 "
    let b = pairs(
        &a,
        |x, y| !digit(x) && period(y),
        |x, y, o| {
            o.push(x);
            o.push(' ');
            o.push(y);
            o.push(' ');
        },
    );
    // ([\.,])([^0-9]) -> " \1 \2"
    let c = pairs(
        &b,
        |x, y| period(x) && !digit(y),
        |x, y, o| {
            o.push(' ');
            o.push(x);
            o.push(' ');
            o.push(y);
        },
    );
    // ([0-9])(-) -> "\1 \2 "
    let d = pairs(
        &c,
        |x, y| digit(x) && y == '-',
        |x, y, o| {
            o.push(x);
            o.push(' ');
            o.push(y);
            o.push(' ');
        },
    );
    py_split(&d).collect::<Vec<_>>().join(" ")
}

/// `re.sub` for a pattern of exactly two one-character classes: the
/// leftmost match wins and the scan resumes after it.
fn pairs(
    s: &str,
    hit: impl Fn(char, char) -> bool,
    put: impl Fn(char, char, &mut String),
) -> String {
    let cs: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    let mut i = 0;
    while i < cs.len() {
        if i + 1 < cs.len() && hit(cs[i], cs[i + 1]) {
            put(cs[i], cs[i + 1], &mut out);
            i += 2;
        } else {
            out.push(cs[i]);
            i += 1;
        }
    }
    out
}

fn zh(line: &str) -> String {
    let mut s = String::with_capacity(line.len() * 2);
    for c in py_strip(line).chars() {
        if is_chinese(c) {
            s.push(' ');
            s.push(c);
            s.push(' ');
        } else {
            s.push(c);
        }
    }
    regexp_rules(&s)
}

/// sacreBLEU's table of "Chinese" code points. Two of its entries are
/// written with five hex digits after `\u`, which Python reads as a
/// four-digit code point followed by a digit: `'\u20000' <= c <=
/// '\u2a6d6'` holds for U+2001..=U+2A6D (general punctuation, arrows,
/// maths symbols...), not for Extension B. We keep that behaviour, since the
/// aim is sacreBLEU's numbers.
pub fn is_chinese(c: char) -> bool {
    const RANGES: &[(char, char)] = &[
        ('\u{3400}', '\u{4db5}'),
        ('\u{4e00}', '\u{9fa5}'),
        ('\u{9fa6}', '\u{9fbb}'),
        ('\u{f900}', '\u{fa2d}'),
        ('\u{fa30}', '\u{fa6a}'),
        ('\u{fa70}', '\u{fad9}'),
        ('\u{2001}', '\u{2a6d}'), // written '\u20000'..'\u2a6d6'
        ('\u{2f81}', '\u{2fa1}'), // written '\u2f800'..'\u2fa1d'
        ('\u{ff00}', '\u{ffef}'),
        ('\u{2e80}', '\u{2eff}'),
        ('\u{3000}', '\u{303f}'),
        ('\u{31c0}', '\u{31ef}'),
        ('\u{2f00}', '\u{2fdf}'),
        ('\u{2ff0}', '\u{2fff}'),
        ('\u{3100}', '\u{312f}'),
        ('\u{31a0}', '\u{31bf}'),
        ('\u{fe10}', '\u{fe1f}'),
        ('\u{fe30}', '\u{fe4f}'),
        ('\u{2600}', '\u{26ff}'),
        ('\u{2700}', '\u{27bf}'),
        ('\u{3200}', '\u{32ff}'),
        ('\u{3300}', '\u{33ff}'),
    ];
    RANGES.iter().any(|&(a, b)| a <= c && c <= b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_a_splits_punctuation_but_not_decimals() {
        assert_eq!(
            Tokenize::Thirteen.apply("Hello, world! It costs $3.50 (1,000-2,000)."),
            "Hello , world ! It costs $ 3.50 ( 1,000 - 2,000 ) ."
        );
        assert_eq!(
            Tokenize::Thirteen.apply("a &amp; b &lt;c&gt;"),
            "a & b < c >"
        );
        assert_eq!(Tokenize::Thirteen.apply("don't"), "don't");
    }

    #[test]
    fn zh_splits_characters_and_keeps_the_quirky_ranges() {
        assert_eq!(Tokenize::Zh.apply(" 大道至简。ok "), "大 道 至 简 。 ok");
        // U+2014 (em dash) is "Chinese" to sacreBLEU through the misread range.
        assert!(is_chinese('\u{2014}'));
        assert!(!is_chinese('\u{2000}'));
        assert!(!is_chinese('\u{20000}'));
    }

    #[test]
    fn python_whitespace() {
        assert_eq!(
            py_split("a\u{1f}b\u{3000}c").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
