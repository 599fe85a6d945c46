//! Tokenizer parity with the reference libraries (tiktoken, Hugging Face
//! `tokenizers`, transformers' GGUF reader) on the committed fixture
//! `fixtures/tokenizer_parity.json` (written by tools/gen_tokenizer_fixtures.py),
//! exact round trips, and one-line errors for files of the wrong kind.
//!
//! The tokenizer files themselves are not in the repository: they are found
//! in the data root (`kindling data fetch tokenizers --from DIR`) or in the
//! shared data beside the repository; tests that need them skip when neither has them.

use kindling_data::tokenizer::Tokenizer;
use kindling_tensor::gguf::{self, GgufValue};
use std::path::{Path, PathBuf};

fn fixture() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_parity.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `rel` (e.g. `tokenizers/gpt2`) under the data root or the shared data.
fn data_file(rel: &str) -> Option<PathBuf> {
    let roots = [
        kindling_data::default_data_root(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    ];
    let found = roots.iter().map(|r| r.join(rel)).find(|p| p.exists());
    if found.is_none() {
        eprintln!("{rel} is in neither the data root nor ../shared/data: skipping it");
    }
    found
}

/// A temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("kindling-tok-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn every_tokenizer_matches_its_reference_on_every_text_and_round_trips() {
    let fx = fixture();
    let texts: Vec<(&str, &str)> = fx["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["text"].as_str().unwrap()))
        .collect();
    let mut failures = Vec::new();
    for (name, entry) in fx["tokenizers"].as_object().unwrap() {
        let Some(path) = data_file(entry["path"].as_str().unwrap()) else {
            continue;
        };
        let tok =
            Tokenizer::from_spec(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = entry["ids"].as_array().unwrap();
        assert_eq!(expected.len(), texts.len());
        let mut matched = 0;
        for ((text_name, text), want) in texts.iter().zip(expected) {
            let got = tok.encode(text).unwrap();
            let want = ids_of(want);
            if got == want {
                matched += 1;
            } else {
                failures.push(format!("{name}/{text_name}: got {got:?}, want {want:?}"));
            }
            let back = tok.decode(&got).unwrap();
            if back != *text {
                failures.push(format!("{name}/{text_name}: decode gave {back:?}"));
            }
        }
        eprintln!(
            "{name}: {matched}/{} texts match {}",
            texts.len(),
            entry["reference"]
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn special_tokens_ids_and_chat_templates_come_through() {
    if let Some(path) = data_file("tokenizers/qwen3") {
        let tok = Tokenizer::from_spec(path.to_str().unwrap()).unwrap();
        assert_eq!(tok.encode("<|im_start|>").unwrap(), [151644]);
        assert_eq!(tok.token_to_id("<|im_end|>"), Some(151645));
        assert_eq!(
            tok.eos_token_id(),
            Some(151645),
            "eos_token from tokenizer_config.json"
        );
        assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
    }
    if let Some(path) = data_file("tokenizers/tiktoken/cl100k_base.tiktoken") {
        let tok = Tokenizer::from_spec(path.to_str().unwrap()).unwrap();
        assert_eq!(tok.encode("<|endoftext|>").unwrap(), [100257]);
        assert_eq!(tok.eos_token_id(), Some(100257));
        assert_eq!(
            tok.vocab_size(),
            100277,
            "ids up to <|endofprompt|> = 100276"
        );
        assert_eq!(tok.decode(&[100276]).unwrap(), "<|endofprompt|>");
    }
    if let Some(path) = data_file("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") {
        let file = gguf::GgufFile::open(&path).unwrap();
        let tok = Tokenizer::from_gguf(&file).unwrap();
        assert_eq!((tok.bos_token_id(), tok.eos_token_id()), (Some(1), Some(2)));
        assert_eq!(tok.vocab_size(), 49152);
        assert_eq!(tok.encode("<|im_start|>user").unwrap()[0], 1);
        assert!(tok.chat_template().unwrap().contains("im_start"));
    }
}

#[test]
fn pieces_are_readable_text_and_partial_characters_are_lossy() {
    let Some(path) = data_file("tokenizers/gpt2") else {
        return;
    };
    let tok = Tokenizer::from_spec(path.to_str().unwrap()).unwrap();
    let ids = tok.encode("Hello world").unwrap();
    assert_eq!(ids, [15496, 995]);
    assert_eq!(tok.piece(995).unwrap(), " world");
    assert_eq!(tok.id_to_token(995).unwrap(), "Ġworld");
    assert_eq!(tok.piece(50256).unwrap(), "<|endoftext|>");
    // 🙂 is four UTF-8 bytes; GPT-2 cuts it into byte tokens that are not text alone.
    let ids = tok.encode("🙂").unwrap();
    assert!(ids.len() > 1, "{ids:?}");
    let bytes: Vec<u8> = ids
        .iter()
        .flat_map(|&id| tok.piece_bytes(id).unwrap())
        .collect();
    assert_eq!(bytes, "🙂".as_bytes());
    assert!(tok.piece(ids[0]).unwrap().contains('\u{fffd}'));
    assert_eq!(tok.piece(60000), None);
    assert!(tok.decode(&[60000]).is_err());
}

#[test]
fn saved_tokenizer_loads_back_with_the_same_ids_and_specials() {
    let Some(path) = data_file("tokenizers/tiktoken/o200k_base.tiktoken") else {
        return;
    };
    let tok = Tokenizer::from_spec(path.to_str().unwrap()).unwrap();
    let scratch = Scratch::new("save");
    tok.save(&scratch.0).unwrap();
    let back = Tokenizer::from_spec(scratch.0.to_str().unwrap()).unwrap();
    for text in [
        "9.11 vs 9.3",
        "GPT-4o 说: \"Hello\" 🙂<|endoftext|>x",
        "  a\r\n\tb  ",
    ] {
        assert_eq!(
            back.encode(text).unwrap(),
            tok.encode(text).unwrap(),
            "{text:?}"
        );
    }
    assert_eq!(back.eos_token_id(), Some(199999));
    assert_eq!(back.vocab_size(), tok.vocab_size());
}

#[test]
fn a_tiny_gguf_tokenizer_is_read_and_an_unknown_model_is_named() {
    let scratch = Scratch::new("gguf");
    // 256 byte tokens, "ab", and a control token.
    let mut tokens: Vec<GgufValue> = (0..=255u8)
        .map(|b| GgufValue::Str(kindling_data::tokenizer::byte_level::bytes_to_token(&[b])))
        .collect();
    tokens.push(GgufValue::Str("ab".into()));
    tokens.push(GgufValue::Str("<|endoftext|>".into()));
    let mut types = vec![GgufValue::I32(1); 257];
    types.push(GgufValue::I32(3));
    let meta = |model: &str| {
        vec![
            ("tokenizer.ggml.model", GgufValue::Str(model.into())),
            ("tokenizer.ggml.tokens", GgufValue::Array(tokens.clone())),
            ("tokenizer.ggml.token_type", GgufValue::Array(types.clone())),
            (
                "tokenizer.ggml.merges",
                GgufValue::Array(vec![GgufValue::Str("a b".into())]),
            ),
            ("tokenizer.ggml.eos_token_id", GgufValue::U32(257)),
            (
                "tokenizer.chat_template",
                GgufValue::Str("{{ messages }}".into()),
            ),
        ]
    };
    let good = scratch.0.join("tiny.gguf");
    gguf::write(&good, &meta("gpt2"), &[]).unwrap();
    let tok = Tokenizer::from_spec(good.to_str().unwrap()).unwrap();
    assert_eq!(
        tok.encode("abc<|endoftext|>").unwrap(),
        [256, b'c' as u32, 257]
    );
    assert_eq!(tok.eos_token_id(), Some(257));
    assert_eq!(tok.chat_template(), Some("{{ messages }}"));

    let llama = scratch.0.join("sentencepiece.gguf");
    gguf::write(&llama, &meta("llama"), &[]).unwrap();
    let msg = Tokenizer::from_spec(llama.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&llama.display().to_string()), "{msg}");
    assert!(
        msg.contains("`llama`") && msg.contains("byte-level BPE"),
        "{msg}"
    );

    let none = scratch.0.join("weights-only.gguf");
    gguf::write(
        &none,
        &[("general.architecture", GgufValue::Str("llama".into()))],
        &[],
    )
    .unwrap();
    let msg = Tokenizer::from_spec(none.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no tokenizer"), "{msg}");
}

#[test]
fn a_file_of_the_wrong_kind_gets_one_line_naming_it_and_what_is_wrong() {
    let scratch = Scratch::new("bad");
    let mut safetensors = Vec::new();
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    safetensors.extend((header.len() as u64).to_le_bytes());
    safetensors.extend(header);
    safetensors.extend([0u8; 4]);
    let random: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();

    let cases: Vec<(PathBuf, &str)> = vec![
        (scratch.write("tokenizer.json", &safetensors), "safetensors"),
        (scratch.write("random.json", &random), "not JSON"),
        (
            scratch.write("config.json", br#"{"n_layer": 12, "vocab_size": "x"}"#),
            "no `model` field",
        ),
        (
            scratch.write("vocabish.json", br#"{"a": 0, "b": 1}"#),
            "vocab.json",
        ),
        (
            scratch.write("truncated.json", br#"{"model": {"#),
            "invalid JSON",
        ),
        (scratch.write("empty.json", b""), "empty"),
        (scratch.write("cl100k_base.tiktoken", &random), "line 1"),
        (
            scratch.write("mystery.tiktoken", b"IQ== 0\n"),
            "unknown tiktoken encoding `mystery`",
        ),
        (
            scratch.write("model.gguf", b"not a gguf at all"),
            "not a GGUF file",
        ),
    ];
    for (path, says) in cases {
        let err = Tokenizer::from_spec(path.to_str().unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()),
            "names the file: {msg}"
        );
        assert!(msg.contains(says), "says {says:?}: {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    let gpt2 = Scratch::new("bad-gpt2");
    gpt2.write("vocab.json", br#"{"a": 0, "b": 1}"#);
    let msg = Tokenizer::from_spec(gpt2.0.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no merges beside it"), "{msg}");
    gpt2.write("merges.txt", b"#version: 0.2\na b\n");
    let msg = Tokenizer::from_spec(gpt2.0.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("merges.txt") && msg.contains("makes `ab`"),
        "{msg}"
    );
    gpt2.write("merges.txt", b"#version: 0.2\nab\n");
    let msg = Tokenizer::from_spec(gpt2.0.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 2 is not `left right`"), "{msg}");

    let msg = Tokenizer::from_spec("no-such-tokenizer")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`no-such-tokenizer`") && msg.contains("cl100k_base"),
        "{msg}"
    );
    let empty = Scratch::new("bad-empty-dir");
    let msg = Tokenizer::from_spec(empty.0.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no tokenizer here"), "{msg}");
}
