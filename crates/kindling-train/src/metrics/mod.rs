//! Translation metrics computed exactly as sacreBLEU 2.x computes them:
//! corpus BLEU ([`Bleu`]) with its tokenizers ([`Tokenize`]), and chrF /
//! chrF++ ([`Chrf`]). `tools/check_sacrebleu.py` compares them with the
//! `sacrebleu` package on random and real segments and writes the fixture
//! `tests/fixtures/sacrebleu.json` that `tests/sacrebleu_parity.rs` checks.

pub mod bleu;
pub mod chrf;
pub mod tokenize;

pub use bleu::{Bleu, BleuScore, Smooth};
pub use chrf::{Chrf, ChrfScore};
pub use tokenize::Tokenize;

#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    #[error("reference stream {stream} has {got} segments, the hypotheses have {want}")]
    Streams {
        stream: usize,
        got: usize,
        want: usize,
    },
    #[error("no reference stream given")]
    NoReferences,
    #[error("{0}")]
    Setting(String),
}

fn check_streams(hyps: usize, refs: impl Iterator<Item = usize>) -> Result<(), MetricError> {
    let mut any = false;
    for (i, n) in refs.enumerate() {
        any = true;
        if n != hyps {
            return Err(MetricError::Streams {
                stream: i + 1,
                got: n,
                want: hyps,
            });
        }
    }
    if any {
        Ok(())
    } else {
        Err(MetricError::NoReferences)
    }
}
