//! BLEU, chrF and their tokenizers against sacreBLEU 2.x on the fixture
//! `tools/check_sacrebleu.py` writes: every tokenization string equal, and
//! every corpus score the same float (bit for bit).

use kindling_train::metrics::{Bleu, Chrf, Tokenize};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sacrebleu.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn from_bits(v: &Value) -> f64 {
    f64::from_bits(u64::from_str_radix(v.as_str().unwrap(), 16).unwrap())
}

#[test]
fn tokenizers_match_sacrebleu_on_every_segment() {
    let f = fixture();
    let mut n = 0;
    for t in f["tokenized"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        for (name, tok) in [
            ("13a", Tokenize::Thirteen),
            ("zh", Tokenize::Zh),
            ("char", Tokenize::Char),
        ] {
            assert_eq!(
                tok.apply(text),
                t[name].as_str().unwrap(),
                "{name} of {text:?}"
            );
            n += 1;
        }
    }
    assert!(n > 600, "only {n} tokenizations checked");
}

#[test]
fn corpus_scores_are_sacrebleus_floats() {
    let f = fixture();
    let hyps = strings(&f["hyps"]);
    let refs: Vec<Vec<String>> = f["refs"].as_array().unwrap().iter().map(strings).collect();
    for c in f["cases"].as_array().unwrap() {
        let k = c["refs"].as_u64().unwrap() as usize;
        let lowercase = c["lowercase"].as_bool().unwrap();
        let want = &c["expected"];
        if c["metric"] == "bleu" {
            let b = Bleu {
                tokenize: c["tokenize"].as_str().unwrap().parse().unwrap(),
                lowercase,
                ..Bleu::default()
            };
            let s = b.corpus_score(&hyps, &refs[..k]).unwrap();
            let counts: Vec<f64> = want["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(s.counts, counts, "{c}");
            assert_eq!(s.sys_len as u64, want["sys_len"].as_u64().unwrap(), "{c}");
            assert_eq!(s.ref_len as u64, want["ref_len"].as_u64().unwrap(), "{c}");
            assert_eq!(s.score, from_bits(&want["score"]), "{c}: {}", s.format());
        } else {
            let ch = Chrf {
                word_order: c["word_order"].as_u64().unwrap() as usize,
                lowercase,
                ..Chrf::default()
            };
            let s = ch.corpus_score(&hyps, &refs[..k]).unwrap();
            assert_eq!(s.score, from_bits(&want["score"]), "{c}");
        }
    }
}
