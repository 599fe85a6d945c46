//! A corpus as a stream of token ids for language-model training: split
//! 90/10 into training and validation, and random windows drawn from a
//! split as (inputs, next-token targets) batches.

use crate::char_tokenizer::CharTokenizer;
use crate::{Error, Result};
use kindling_tensor::{Rng, Tensor};

/// The corpus as character ids, split 90/10 into train and validation.
pub struct TokenData {
    pub tokenizer: CharTokenizer,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

impl TokenData {
    /// Builds the character vocabulary of `text` and encodes it; `name` is
    /// the `--data` argument, named in the error when the text is empty.
    pub fn from_text(text: &str, name: &str) -> Result<TokenData> {
        let corpus = |problem: String| Error::Corpus {
            name: name.to_string(),
            problem,
        };
        let tokenizer = CharTokenizer::from_text(text).map_err(corpus)?;
        let ids = tokenizer.encode(text).map_err(corpus)?;
        let (train, val) = split_train_val(&ids);
        Ok(TokenData {
            tokenizer,
            train,
            val,
        })
    }
}

/// The first 90% of `ids` for training, the last 10% for validation: the
/// validation text is a continuous passage the model never trained on.
pub fn split_train_val(ids: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let n = ids.len() * 9 / 10;
    (ids[..n].to_vec(), ids[n..].to_vec())
}

/// `batch` random windows of `block + 1` tokens of `data`: inputs
/// `[batch, block]` and their next-token targets (the same windows shifted
/// by one), as i64 ids.
pub fn get_batch(
    data: &[u32],
    batch: usize,
    block: usize,
    rng: &mut Rng,
) -> Result<(Tensor, Tensor)> {
    if data.len() <= block + 1 {
        return Err(Error::TooFewTokens {
            tokens: data.len(),
            block,
        });
    }
    let mut x = Vec::with_capacity(batch * block);
    let mut y = Vec::with_capacity(batch * block);
    for _ in 0..batch {
        let start = rng.below(data.len() - block - 1);
        x.extend(data[start..start + block].iter().map(|&t| t as i64));
        y.extend(data[start + 1..start + block + 1].iter().map(|&t| t as i64));
    }
    Ok((
        Tensor::from_vec_i64(x, &[batch, block]).expect("batch * block ids fill [batch, block]"),
        Tensor::from_vec_i64(y, &[batch, block]).expect("batch * block ids fill [batch, block]"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_ninety_ten_in_order() {
        let ids: Vec<u32> = (0..20).collect();
        let (train, val) = split_train_val(&ids);
        assert_eq!(train, (0..18).collect::<Vec<u32>>());
        assert_eq!(val, vec![18, 19]);
    }

    #[test]
    fn targets_are_inputs_shifted_by_one() {
        let data: Vec<u32> = (0..50).collect();
        let (x, y) = get_batch(&data, 4, 8, &mut Rng::new(3)).unwrap();
        assert_eq!(x.shape(), &[4, 8]);
        let (x, y) = (x.to_vec_i64().unwrap(), y.to_vec_i64().unwrap());
        for (row_x, row_y) in x.chunks(8).zip(y.chunks(8)) {
            for k in 0..8 {
                // The ids are positions, so a window is consecutive numbers.
                assert_eq!(row_y[k], row_x[k] + 1);
            }
            assert_eq!(row_x[7] - row_x[0], 7);
        }
    }

    #[test]
    fn a_split_shorter_than_the_block_names_the_block_size() {
        let err = get_batch(&[1, 2, 3], 1, 8, &mut Rng::new(0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the split has 3 tokens, too few for `block_size` 8"
        );
    }

    #[test]
    fn empty_corpus_names_the_data_argument() {
        let err = TokenData::from_text("", "tang").err().unwrap();
        assert!(err.to_string().starts_with("`data` tang: "), "{err}");
    }
}
