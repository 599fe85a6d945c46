//! GPT-2's byte-to-character table (`bytes_to_unicode` in OpenAI's
//! `encoder.py`): each of the 256 bytes is written as one printable
//! character, so a byte-level vocabulary can be stored as text. Printable
//! Latin-1 bytes stand for themselves; the other 68 (controls, space, 0x7f,
//! 0xad ...) get U+0100 upward in byte order, which is why a leading space
//! shows as `Ġ` (U+0120) and a newline as `Ċ` (U+010A).

/// The character byte `b` is written as.
pub fn byte_char(b: u8) -> char {
    BYTE_CHARS[b as usize]
}

const fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff)
}

const BYTE_CHARS: [char; 256] = {
    let mut table = ['\0'; 256];
    let mut next = 0u32;
    let mut b = 0usize;
    while b < 256 {
        table[b] = if is_printable(b as u8) {
            b as u8 as char
        } else {
            let c = 256 + next;
            next += 1;
            match char::from_u32(c) {
                Some(c) => c,
                None => '\0',
            }
        };
        b += 1;
    }
    table
};

/// The byte character `c` stands for, if it is one of the 256.
pub fn char_byte(c: char) -> Option<u8> {
    let code = c as u32;
    if code < 256 && is_printable(code as u8) {
        return Some(code as u8);
    }
    if (256..256 + 68).contains(&code) {
        let n = code - 256;
        // The n-th non-printable byte, in byte order.
        return (0..=255u8).filter(|&b| !is_printable(b)).nth(n as usize);
    }
    None
}

/// `bytes` spelled in the byte alphabet (`b" the"` becomes `"Ġthe"`).
pub fn bytes_to_token(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_char(b)).collect()
}

/// The bytes a byte-level token stands for, or `None` if a character of it
/// is outside the byte alphabet (an added token such as `<|endoftext|>` is
/// inside it: printable ASCII stands for itself).
pub fn token_bytes(token: &str) -> Option<Vec<u8>> {
    token.chars().map(char_byte).collect()
}

/// Whether every character of `token` is in the byte alphabet.
pub fn is_byte_level(token: &str) -> bool {
    token.chars().all(|c| char_byte(c).is_some())
}

/// A byte-level BPE engine around `model`, as Hugging Face builds one: text
/// is cut into pieces by `split_pattern` (a tiktoken-style regex, each match
/// its own piece) or, without one, by GPT-2's own regex inside the ByteLevel
/// pre-tokenizer; each piece is spelled in the byte alphabet and merged.
pub(crate) fn engine(
    model: tokenizers::models::bpe::BPE,
    split_pattern: Option<&str>,
) -> std::result::Result<tokenizers::Tokenizer, tokenizers::Error> {
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

    let mut tok = tokenizers::Tokenizer::new(model);
    let pre: PreTokenizerWrapper = match split_pattern {
        Some(pattern) => Sequence::new(vec![
            Split::new(
                SplitPattern::Regex(pattern.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )?
            .into(),
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
        None => ByteLevel::new(false, true, true).into(),
    };
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.with_post_processor(Some(ByteLevel::new(true, false, true)));
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_gpt2_for_the_well_known_bytes() {
        assert_eq!(byte_char(b' '), 'Ġ');
        assert_eq!(byte_char(b'\n'), 'Ċ');
        assert_eq!(byte_char(b'\t'), 'ĉ');
        assert_eq!(byte_char(0), 'Ā');
        assert_eq!(byte_char(b'a'), 'a');
        assert_eq!(byte_char(0xad), 'Ń');
        assert_eq!(bytes_to_token(" the".as_bytes()), "Ġthe");
    }

    #[test]
    fn every_byte_round_trips_and_the_alphabet_has_256_characters() {
        let mut chars: Vec<char> = (0..=255u8).map(byte_char).collect();
        for b in 0..=255u8 {
            assert_eq!(char_byte(byte_char(b)), Some(b));
        }
        chars.sort();
        chars.dedup();
        assert_eq!(chars.len(), 256);
        assert_eq!(char_byte('ġ'), Some(0x7f));
        assert_eq!(char_byte('你'), None);
        assert_eq!(token_bytes("Ġä½ł").unwrap(), " 你".as_bytes());
    }
}
