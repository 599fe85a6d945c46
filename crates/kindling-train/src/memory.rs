//! A chat model that keeps learning: what the user says is stored in a
//! memory directory, and consolidation turns the stored statements into
//! training conversations and fine-tunes a LoRA adapter on them, so a later
//! session answers from its weights, not from its context.
//!
//! The layout of a memory directory:
//! - `conversations.jsonl`: every turn, appended as it happens
//!   (`{"session", "role", "content"}`);
//! - `adapters/0001/`, `adapters/0002/`, …: each consolidation's adapter (a
//!   PEFT folder) with `consolidation.json` (what it was trained on and how
//!   it scored), never overwritten;
//! - `current`: the number of the adapter a chat loads (absent: none). Rolling
//!   back is pointing it at an earlier one.
//!
//! Facts are read from the user's statements by rule: a sentence of the form
//! "my K is V" (or "I am V", "I live in V", "I like V") becomes a question
//! and an answer in the second person ("What is my K?" → "Your K is V.");
//! every statement also goes into one "what do you remember about me?"
//! answer. The rules are simple on purpose: they are what a reader can check.

use crate::sft_data::Conversation;
use crate::Result;
use kindling_models::chat::Message;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONVERSATIONS: &str = "conversations.jsonl";
pub const ADAPTERS: &str = "adapters";
pub const CURRENT: &str = "current";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub session: u64,
    pub role: String,
    pub content: String,
}

/// A fact read from a statement, with a question that asks for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub statement: String,
    pub question: String,
    pub answer: String,
    /// The words an answer must contain to be right (the value).
    pub key_words: String,
}

pub struct Memory {
    pub dir: PathBuf,
}

impl Memory {
    /// Opens (creating if needed) a memory directory.
    pub fn open(dir: &Path) -> Result<Memory> {
        if dir.is_file() {
            return Err(format!("{}: is a file; a memory is a directory", dir.display()).into());
        }
        std::fs::create_dir_all(dir.join(ADAPTERS))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Memory {
            dir: dir.to_path_buf(),
        })
    }

    /// Appends a turn (one line, flushed to disk before returning).
    pub fn append(&self, turn: &Turn) -> Result<()> {
        let path = self.dir.join(CONVERSATIONS);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let line = serde_json::to_string(turn)? + "\n";
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| format!("{}: {e}", path.display()).into())
    }

    pub fn turns(&self) -> Result<Vec<Turn>> {
        let path = self.dir.join(CONVERSATIONS);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| {
                    format!("{}:{}: not a stored turn ({e})", path.display(), i + 1).into()
                })
            })
            .collect()
    }

    /// The next session number (one more than any stored).
    pub fn next_session(&self) -> Result<u64> {
        Ok(self
            .turns()?
            .iter()
            .map(|t| t.session + 1)
            .max()
            .unwrap_or(1))
    }

    /// The user's statements (sentences not asking anything), in order, once each.
    pub fn statements(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for t in self.turns()?.iter().filter(|t| t.role == "user") {
            for s in sentences(&t.content) {
                if !s.ends_with('?') && !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// The adapters made so far, oldest first.
    pub fn adapters(&self) -> Result<Vec<u32>> {
        let dir = self.dir.join(ADAPTERS);
        let mut out: Vec<u32> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    pub fn adapter_dir(&self, n: u32) -> PathBuf {
        self.dir.join(ADAPTERS).join(format!("{n:04}"))
    }

    /// The adapter a chat loads, if any.
    pub fn current(&self) -> Result<Option<u32>> {
        let path = self.dir.join(CURRENT);
        match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().map(Some).map_err(|_| {
                format!("{}: not an adapter number: `{}`", path.display(), s.trim()).into()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display()).into()),
        }
    }

    /// Points `current` at adapter `n` (which must exist), atomically.
    pub fn set_current(&self, n: u32) -> Result<()> {
        if !self.adapter_dir(n).is_dir() {
            return Err(format!(
                "{}: no adapter {n:04} (there are: {:?})",
                self.dir.display(),
                self.adapters()?
            )
            .into());
        }
        kindling_tensor::safetensors_io::write_atomic(
            &self.dir.join(CURRENT),
            format!("{n:04}\n").as_bytes(),
        )?;
        Ok(())
    }

    /// A fresh number for the next consolidation.
    pub fn next_adapter(&self) -> Result<u32> {
        Ok(self.adapters()?.last().map_or(1, |n| n + 1))
    }

    /// Writes `consolidation.json` for adapter `n`.
    pub fn write_record(&self, n: u32, record: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(record)? + "\n";
        kindling_tensor::safetensors_io::write_atomic(
            &self.adapter_dir(n).join("consolidation.json"),
            text.as_bytes(),
        )?;
        Ok(())
    }
}

/// Sentences of a message: split after `.`, `!` or `?`, trimmed.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if matches!(c, '.' | '!' | '?' | '。' | '！' | '？') {
            let s = cur.trim().to_string();
            if s.chars().count() > 2 {
                out.push(s);
            }
            cur.clear();
        }
    }
    let s = cur.trim().to_string();
    if s.chars().count() > 2 {
        out.push(s);
    }
    out
}

/// First person to second: "my" → "your", "I am" → "you are", "I" → "you".
pub fn second_person(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let lower = w.to_lowercase();
        let next = words.get(i + 1).map(|n| n.to_lowercase());
        let swapped = match (lower.as_str(), next.as_deref()) {
            ("i", Some("am")) => {
                i += 1;
                "you are".to_string()
            }
            ("i'm", _) => "you're".to_string(),
            ("i", _) => "you".to_string(),
            ("my", _) => "your".to_string(),
            ("me", _) | ("me.", _) => lower.replace("me", "you"),
            ("mine", _) => "yours".to_string(),
            ("myself", _) => "yourself".to_string(),
            _ => w.to_string(),
        };
        out.push(swapped);
        i += 1;
    }
    let s = out.join(" ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// A fact with its question, for the statement shapes the rules know.
pub fn fact_of(statement: &str) -> Option<Fact> {
    let s = statement.trim().trim_end_matches(['.', '!']);
    let lower = s.to_lowercase();
    let fact = |question: String, answer: String, value: &str| Fact {
        statement: statement.to_string(),
        question,
        answer,
        key_words: value.trim().to_string(),
    };
    if let Some(rest) = lower.strip_prefix("my ") {
        let at = rest.find(" is ").or_else(|| rest.find(" are "))?;
        let verb = if rest[at..].starts_with(" is ") {
            "is"
        } else {
            "are"
        };
        let key = &s[3..3 + at];
        let value = &s[3 + at + verb.len() + 2..];
        if key.is_empty() || value.is_empty() {
            return None;
        }
        let q = if verb == "is" { "What is" } else { "What are" };
        return Some(fact(
            format!("{q} my {key}?"),
            format!("Your {key} {verb} {value}."),
            value,
        ));
    }
    for (prefix, question, answer) in [
        ("i live in ", "Where do I live?", "You live in"),
        ("i like ", "What do I like?", "You like"),
        ("i work as ", "What do I work as?", "You work as"),
        ("i am ", "Who am I?", "You are"),
    ] {
        if let Some(value) = lower.strip_prefix(prefix).map(|_| &s[prefix.len()..]) {
            if !value.is_empty() {
                return Some(fact(
                    question.to_string(),
                    format!("{answer} {value}."),
                    value,
                ));
            }
        }
    }
    None
}

/// The training conversations consolidation makes from statements: each
/// fact asked three ways, and one recall of everything.
pub fn consolidation_examples(statements: &[String]) -> (Vec<Fact>, Vec<Conversation>) {
    let facts: Vec<Fact> = statements.iter().filter_map(|s| fact_of(s)).collect();
    let mut out = Vec::new();
    let convo = |q: &str, a: &str| Conversation {
        messages: vec![
            Message::new("user", q).expect("known role"),
            Message::new("assistant", a).expect("known role"),
        ],
    };
    for f in &facts {
        out.push(convo(&f.question, &f.answer));
        out.push(convo(
            &format!("Do you remember this: {}", f.question),
            &f.answer,
        ));
        out.push(convo(&format!("Quick question. {}", f.question), &f.answer));
    }
    if !statements.is_empty() {
        let recall: Vec<String> = statements.iter().map(|s| second_person(s)).collect();
        out.push(convo("What do you remember about me?", &recall.join(" ")));
    }
    (facts, out)
}

/// Whether an answer recalls a fact: it contains the fact's value
/// (case-insensitive).
pub fn recalls(answer: &str, fact: &Fact) -> bool {
    answer
        .to_lowercase()
        .contains(&fact.key_words.to_lowercase())
}

/// The record of one consolidation, for `consolidation.json`.
pub fn record(
    facts: &[Fact],
    examples: usize,
    recall_before: f32,
    recall_after: f32,
    general_loss_before: Option<f32>,
    general_loss_after: Option<f32>,
) -> serde_json::Value {
    json!({
        "facts": facts.len(),
        "examples": examples,
        "recall_before": recall_before,
        "recall_after": recall_after,
        "general_loss_before": general_loss_before,
        "general_loss_after": general_loss_after,
        "questions": facts.iter().map(|f| &f.question).collect::<Vec<_>>(),
    })
}

/// How a consolidation trains.
#[derive(Clone, Debug)]
pub struct ConsolidateOptions {
    pub lora: kindling_nn::lora::LoraConfig,
    pub sft: crate::sft_run::SftOptions,
    /// Tokens a recall answer may take.
    pub max_new_tokens: usize,
    /// Recorded as the adapter's base model.
    pub base_name: String,
    /// General prompts whose answers by the base model itself are trained
    /// on beside the facts (pseudo-rehearsal, Robins 1995): they hold the
    /// adapter to what the base already did on everything else. 0: none.
    pub replay: usize,
}

/// Everyday requests for pseudo-rehearsal: the base model's own greedy
/// answers to them are replayed while the adapter learns the user's facts.
pub const REPLAY_PROMPTS: &[&str] = &[
    "Give three tips for staying healthy.",
    "What is the capital of Japan?",
    "Explain what photosynthesis is in two sentences.",
    "Write a short poem about the sea.",
    "How do I boil an egg?",
    "What is 12 times 7?",
    "Translate 'good morning' into French.",
    "Name three primary colours.",
    "Why is the sky blue?",
    "Suggest a name for a bakery.",
    "What does a computer's CPU do?",
    "Summarize the story of Cinderella in one sentence.",
    "List four kinds of fruit.",
    "What is the boiling point of water in Celsius?",
    "Give me a synonym for 'happy'.",
    "How many days are there in a leap year?",
    "Write one sentence about autumn.",
    "What is the largest planet in the solar system?",
    "Explain what a noun is.",
    "How can I improve my sleep?",
    "What language is spoken in Brazil?",
    "Describe a cat in one sentence.",
    "What is the opposite of 'cold'?",
    "Give an example of a renewable energy source.",
    "Who wrote Romeo and Juliet?",
    "What is the square root of 81?",
    "Suggest a healthy breakfast.",
    "What is machine learning, briefly?",
    "How do plants get water?",
    "Name a famous painting.",
    "What should I pack for a beach trip?",
    "Explain what a verb is.",
];

/// The base model's greedy answers to the first `n` replay prompts, as
/// conversations to train on.
pub fn replay_conversations(
    model: &kindling_models::llama::Llama,
    tokenizer: &kindling_data::tokenizer::Tokenizer,
    template: &kindling_models::chat::ChatTemplate,
    stop_ids: &[u32],
    n: usize,
) -> Result<Vec<Conversation>> {
    use kindling_models::generate::{GenerateOptions, Generator};
    let mut options = GenerateOptions::greedy(96);
    options.stop_ids = stop_ids.to_vec();
    let mut g = Generator::new(model, options)?;
    let decode = |ids: &[u32]| tokenizer.decode(ids).unwrap_or_default();
    let mut out = Vec::new();
    for p in REPLAY_PROMPTS.iter().take(n) {
        g.reset();
        let user = Message::new("user", *p)?;
        let prompt = template.render(std::slice::from_ref(&user), true)?;
        let answer = g.generate(&tokenizer.encode(&prompt)?, &decode, &mut |_| true)?;
        if answer.text.trim().is_empty() {
            continue;
        }
        out.push(Conversation {
            messages: vec![user, Message::new("assistant", answer.text)?],
        });
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Consolidation {
    pub adapter: u32,
    pub facts: usize,
    pub examples: usize,
    /// The base's own answers trained on beside the facts.
    pub replayed: usize,
    pub recall_before: f32,
    pub recall_after: f32,
    pub general_loss_before: Option<f32>,
    pub general_loss_after: Option<f32>,
}

/// Greedy answers to each fact's question with nothing else in the
/// context; the fraction that recall the fact.
pub fn recall(
    model: &kindling_models::llama::Llama,
    tokenizer: &kindling_data::tokenizer::Tokenizer,
    template: &kindling_models::chat::ChatTemplate,
    stop_ids: &[u32],
    facts: &[Fact],
    max_new_tokens: usize,
) -> Result<f32> {
    use kindling_models::generate::{GenerateOptions, Generator};
    let mut options = GenerateOptions::greedy(max_new_tokens);
    options.stop_ids = stop_ids.to_vec();
    let mut g = Generator::new(model, options)?;
    let decode = |ids: &[u32]| tokenizer.decode(ids).unwrap_or_default();
    let mut right = 0;
    for f in facts {
        g.reset();
        let prompt = template.render(&[Message::new("user", f.question.as_str())?], true)?;
        let out = g.generate(&tokenizer.encode(&prompt)?, &decode, &mut |_| true)?;
        right += recalls(&out.text, f) as usize;
    }
    Ok(right as f32 / facts.len().max(1) as f32)
}

/// Turns the stored statements into a new LoRA adapter on a fresh copy of
/// the base (`load_base`), saves it as the next `adapters/NNNN/`, points
/// `current` at it and records recall before and after, and, given general
/// held-out conversations, their answer loss before and after (what
/// consolidation made the model forget).
#[allow(clippy::too_many_arguments)]
pub fn consolidate(
    memory: &Memory,
    load_base: &dyn Fn() -> Result<kindling_models::llama::Llama>,
    tokenizer: &kindling_data::tokenizer::Tokenizer,
    template: &kindling_models::chat::ChatTemplate,
    stop_ids: &[u32],
    general: Option<&[crate::sft_data::SftExample]>,
    opts: &ConsolidateOptions,
    log: &dyn Fn(&str),
) -> Result<Consolidation> {
    let statements = memory.statements()?;
    if statements.is_empty() {
        return Err(format!(
            "{}: nothing to consolidate (no statements stored yet)",
            memory.dir.display()
        )
        .into());
    }
    let (facts, conversations) = consolidation_examples(&statements);
    let mut model = load_base()?;
    let seq = opts.sft.seq_len;
    let recall_before = recall(
        &model,
        tokenizer,
        template,
        stop_ids,
        &facts,
        opts.max_new_tokens,
    )?;
    let general_before = general
        .map(|g| crate::sft_run::heldout_loss(&model, g, seq))
        .transpose()?;
    let replay = replay_conversations(&model, tokenizer, template, stop_ids, opts.replay)?;
    kindling_nn::lora::install(
        &mut model,
        &opts.lora,
        &mut kindling_tensor::Rng::new(opts.sft.seed),
    )?;
    let mut facts_encoded = Vec::new();
    for c in &conversations {
        if let Some(ex) = crate::sft_data::encode(tokenizer, template, c, seq)? {
            facts_encoded.push(ex);
        }
    }
    let mut train = facts_encoded.clone();
    for c in &replay {
        if let Some(ex) = crate::sft_data::encode(tokenizer, template, c, seq)? {
            train.push(ex);
        }
    }
    let data = crate::sft_run::SftData {
        val: facts_encoded,
        train,
        val_conversations: conversations.clone(),
        dropped: 0,
    };
    let n = memory.next_adapter()?;
    let dir = memory.adapter_dir(n);
    log(&format!(
        "consolidating {} statements ({} facts) into adapter {n:04}: {} conversations from them, {} replayed answers of the base",
        statements.len(),
        facts.len(),
        conversations.len(),
        replay.len()
    ));
    crate::sft_run::train(
        &model,
        &data,
        &opts.sft,
        &dir.join("run"),
        crate::run_dir::RunMode::Fresh,
        crate::trainer::StopWhen::default(),
        log,
    )?;
    kindling_models::lora_files::save_peft(&dir, &model, &opts.lora, &opts.base_name)?;
    let recall_after = recall(
        &model,
        tokenizer,
        template,
        stop_ids,
        &facts,
        opts.max_new_tokens,
    )?;
    let general_after = general
        .map(|g| crate::sft_run::heldout_loss(&model, g, seq))
        .transpose()?;
    memory.write_record(
        n,
        &record(
            &facts,
            conversations.len(),
            recall_before,
            recall_after,
            general_before,
            general_after,
        ),
    )?;
    memory.set_current(n)?;
    Ok(Consolidation {
        adapter: n,
        facts: facts.len(),
        examples: conversations.len(),
        replayed: replay.len(),
        recall_before,
        recall_after,
        general_loss_before: general_before,
        general_loss_after: general_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_become_facts_questions_and_a_recall() {
        let f = fact_of("My dog's name is Rex.").unwrap();
        assert_eq!(f.question, "What is my dog's name?");
        assert_eq!(f.answer, "Your dog's name is Rex.");
        assert!(recalls("I believe it is rex!", &f));
        let f = fact_of("I live in Lisbon").unwrap();
        assert_eq!(
            (f.question.as_str(), f.answer.as_str()),
            ("Where do I live?", "You live in Lisbon.")
        );
        assert!(fact_of("The sky is blue.").is_none());
        assert_eq!(
            second_person("I am a baker and my oven is old."),
            "You are a baker and your oven is old."
        );
        let s = sentences("Hi! My cat is Tom. What is 2+2? I like tea");
        assert_eq!(s, ["Hi!", "My cat is Tom.", "What is 2+2?", "I like tea"]);
        let (facts, examples) =
            consolidation_examples(&["My cat is Tom.".into(), "I like tea".into()]);
        assert_eq!(facts.len(), 2);
        assert_eq!(examples.len(), 2 * 3 + 1);
        assert_eq!(
            examples.last().unwrap().messages[1].content,
            "Your cat is Tom. You like tea"
        );
    }

    #[test]
    fn a_memory_keeps_turns_and_adapter_history() {
        let dir = std::env::temp_dir().join(format!("kindling-memory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let m = Memory::open(&dir).unwrap();
        assert_eq!(m.next_session().unwrap(), 1);
        for (role, content) in [
            ("user", "My cat is Tom. Who are you?"),
            ("assistant", "A model."),
            ("user", "My cat is Tom."),
        ] {
            m.append(&Turn {
                session: 1,
                role: role.into(),
                content: content.into(),
            })
            .unwrap();
        }
        assert_eq!(m.next_session().unwrap(), 2);
        assert_eq!(m.statements().unwrap(), ["My cat is Tom."]);
        assert_eq!(m.current().unwrap(), None);
        assert!(m
            .set_current(1)
            .unwrap_err()
            .to_string()
            .contains("no adapter 0001"));
        for n in [1, 2] {
            assert_eq!(m.next_adapter().unwrap(), n);
            std::fs::create_dir_all(m.adapter_dir(n)).unwrap();
            m.set_current(n).unwrap();
        }
        assert_eq!(m.adapters().unwrap(), [1, 2]);
        m.set_current(1).unwrap();
        assert_eq!(m.current().unwrap(), Some(1), "rolled back");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn consolidation_puts_stated_facts_into_an_adapter_and_keeps_history() {
        use kindling_models::chat::{ChatTemplate, CHATML};
        use kindling_models::llama::{Llama, LlamaConfig};
        let dir = std::env::temp_dir().join(format!("kindling-memory-c-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let m = Memory::open(&dir).unwrap();
        for content in ["My cat is Tom.", "My city is Oslo."] {
            m.append(&Turn {
                session: 1,
                role: "user".into(),
                content: content.into(),
            })
            .unwrap();
        }
        let template = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let corpus = "<|im_start|>user\nWhat is my cat? What is my city?<|im_end|>\n<|im_start|>assistant\nYour cat is Tom. Your city is Oslo.<|im_end|>\n";
        let tok = kindling_data::tokenizer::train_bpe(
            std::iter::once(corpus),
            300,
            &["<|im_start|>", "<|im_end|>"],
        )
        .unwrap();
        let stop = vec![tok.token_to_id("<|im_end|>").unwrap()];
        let config: LlamaConfig = serde_json::from_value(json!({
            "vocab_size": tok.vocab_size(), "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 128, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        let opts = ConsolidateOptions {
            lora: kindling_nn::lora::LoraConfig {
                rank: 8,
                alpha: 16.0,
                targets: ["q", "k", "v", "o", "gate", "up", "down"]
                    .map(String::from)
                    .to_vec(),
                rslora: false,
            },
            sft: crate::sft_run::SftOptions {
                steps: 150,
                batch_size: 2,
                accum_steps: 1,
                seq_len: 128,
                lr: 1e-2,
                min_lr: 1e-3,
                warmup_steps: 5,
                eval_every: 150,
                ..crate::sft_run::SftOptions::defaults("tiny", "memory")
            },
            max_new_tokens: 12,
            base_name: "tiny".into(),
            replay: 0,
        };
        let load = || {
            Ok(Llama::new(
                config.clone(),
                &mut kindling_tensor::Rng::new(4),
            )?)
        };
        // Replay: the base's own greedy answers, one conversation per prompt
        // (no stop id here, so none is empty), at most the list's length.
        let base = load().unwrap();
        let r = replay_conversations(&base, &tok, &template, &[], 3).unwrap();
        assert_eq!(r.len(), 3);
        for (c, p) in r.iter().zip(REPLAY_PROMPTS) {
            assert_eq!(c.messages[0].content, *p);
            assert_eq!(c.messages[1].role, "assistant");
            assert!(!c.messages[1].content.is_empty());
        }
        let all = replay_conversations(&base, &tok, &template, &[], 1000).unwrap();
        assert_eq!(all.len(), REPLAY_PROMPTS.len());
        let c = consolidate(&m, &load, &tok, &template, &stop, None, &opts, &|_| {}).unwrap();
        assert_eq!((c.adapter, c.facts), (1, 2));
        assert_eq!(c.recall_before, 0.0);
        assert_eq!(c.recall_after, 1.0, "{c:?}");
        assert_eq!(m.current().unwrap(), Some(1));
        // The adapter alone, in a fresh copy of the base, answers from its weights.
        let mut fresh = load().unwrap();
        kindling_models::lora_files::load_peft(&m.adapter_dir(1), &mut fresh).unwrap();
        let (facts, _) = consolidation_examples(&m.statements().unwrap());
        assert_eq!(
            recall(&fresh, &tok, &template, &stop, &facts, 12).unwrap(),
            1.0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
