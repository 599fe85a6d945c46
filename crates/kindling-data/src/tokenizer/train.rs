//! Training a byte-level BPE (Sennrich et al. 2016 on bytes, as GPT-2 does):
//! start from the 256 byte tokens, count adjacent pairs inside the
//! pre-tokenized words, merge the most frequent pair into a new token, and
//! repeat until the vocabulary has the size asked for.

use super::{byte_level, engine_error, Tokenizer};
use crate::{Error, Result};

/// A byte-level BPE with `vocab_size` tokens learned from `texts`: the
/// `specials` first (ids 0, 1, ...), then the 256 bytes, then merges. Words
/// are cut with GPT-2's regex, so merges never cross a word boundary. The
/// first special, if any, is the EOS (and BOS) token.
pub fn train_bpe<S: AsRef<str> + Send>(
    texts: impl Iterator<Item = S> + Send,
    vocab_size: usize,
    specials: &[&str],
) -> Result<Tokenizer> {
    use tokenizers::models::bpe::{BpeTrainer, BPE};
    use tokenizers::models::TrainerWrapper;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;

    let floor = 256 + specials.len();
    if vocab_size < floor {
        return Err(Error::Tokenizer(format!(
            "`vocab_size` {vocab_size} is below the {floor} a byte-level BPE starts with \
             (256 bytes + {} special tokens)",
            specials.len()
        )));
    }
    let special_tokens: Vec<tokenizers::AddedToken> = specials
        .iter()
        .map(|s| tokenizers::AddedToken::from(*s, true).normalized(false))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(special_tokens)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tok =
        byte_level::engine(BPE::default(), None).map_err(|e| engine_error("pre-tokenizer", e))?;
    tok.train(&mut trainer, texts)
        .map_err(|e| engine_error("train", e))?;
    let eos = specials.first().and_then(|s| tok.token_to_id(s));
    Ok(Tokenizer::new(tok, "trained".to_string()).with_specials(eos, eos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_bpe_merges_frequent_pairs_and_round_trips() {
        let text = "the cat sat on the mat. the cat ate the rat. 你好 你好 🙂\n".repeat(20);
        let tok = train_bpe(text.split_inclusive('\n'), 300, &["<|endoftext|>"]).unwrap();
        assert_eq!(tok.token_to_id("<|endoftext|>"), Some(0));
        assert_eq!(tok.eos_token_id(), Some(0));
        assert!(
            tok.vocab_size() <= 300 && tok.vocab_size() > 257,
            "{}",
            tok.vocab_size()
        );
        let ids = tok.encode(" the cat").unwrap();
        assert_eq!(ids.len(), 2, "frequent words become single tokens: {ids:?}");
        for s in [
            "the cat sat<|endoftext|>on the mat",
            "unseen: ζ 9.11 vs 9.3 🙂\r\n",
        ] {
            let ids = tok.encode(s).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), s);
        }
        assert!(train_bpe(["x"].into_iter(), 100, &[]).is_err());
    }
}
