//! GRPO (Shao et al. 2024, DeepSeekMath) with a reward computed by a
//! program: for each prompt the policy samples a group of answers, each is
//! scored right (1) or wrong (0) by checking its last number against the
//! known answer, and an answer's advantage is its reward standardized within
//! its group — no value model, no reward model. The loss per answer token is
//! `−(A · ρ_t − β · KL_t)` with `ρ_t = π/π_old` (1 in value, the policy's
//! gradient in effect: one update per group) and the `k3` estimate
//! `KL_t = e^(ref−π) − (ref−π) − 1` against the frozen starting model,
//! averaged over each answer's tokens and then over answers.

use crate::plot::{Panel, Series};
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::{Error, Result};
use kindling_data::tokenizer::Tokenizer;
use kindling_models::chat::{ChatTemplate, Message};
use kindling_models::generate::{GenerateOptions, Generator};
use kindling_models::llama::Llama;
use kindling_models::sampling::Sampling;
use kindling_nn::schedule::LrSchedule;
use kindling_nn::Module;
use kindling_tensor::{no_grad, Rng, Tensor};
use plotters::style::{BLUE, RED};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// A question whose answer a program can check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub question: String,
    pub answer: String,
}

/// Arithmetic problems from a seed: three-digit additions and "which is
/// bigger" comparisons of decimals such as 9.11 and 9.3 (the trap where
/// 11 > 3 misleads): `held_out` problems, then `train` others, no question
/// in both.
pub fn arithmetic_problems(
    train: usize,
    held_out: usize,
    seed: u64,
) -> (Vec<Problem>, Vec<Problem>) {
    let mut rng = trainer::stream(seed, 20, 0);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(train + held_out);
    while out.len() < train + held_out {
        let p = if rng.below(4) == 0 {
            let whole = 1 + rng.below(9);
            let a = rng.below(90) + 10; // two decimals, 10..99
            let b = 1 + rng.below(9); // one decimal
            let (x, y) = (format!("{whole}.{a}"), format!("{whole}.{b}"));
            let bigger = if (a as f64) / 100.0 > (b as f64) / 10.0 {
                &x
            } else {
                &y
            };
            let (first, second) = if rng.below(2) == 0 {
                (&x, &y)
            } else {
                (&y, &x)
            };
            Problem {
                question: format!("Which is bigger, {first} or {second}? Answer with the number."),
                answer: bigger.clone(),
            }
        } else {
            let (a, b) = (100 + rng.below(900), 100 + rng.below(900));
            Problem {
                question: format!("What is {a} + {b}? Answer with the number."),
                answer: (a + b).to_string(),
            }
        };
        if seen.insert(p.question.clone()) {
            out.push(p);
        }
    }
    let train_set = out.split_off(held_out);
    (train_set, out)
}

/// The last number in a text (`-12`, `3.5`, `1,234` read as 1234).
pub fn last_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut best = None;
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = if i > 0 && chars[i - 1] == '-' {
                i - 1
            } else {
                i
            };
            let mut j = i;
            let mut s = String::new();
            if start < i {
                s.push('-');
            }
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || ((chars[j] == '.' || chars[j] == ',')
                        && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                if chars[j] != ',' {
                    s.push(chars[j]);
                }
                j += 1;
            }
            best = Some(s);
            i = j;
        } else {
            i += 1;
        }
    }
    best
}

/// Whether `response` answers `answer`: its last number equals it.
pub fn is_correct(response: &str, answer: &str) -> bool {
    match (last_number(response), answer.trim().parse::<f64>()) {
        (Some(got), Ok(want)) => got.parse::<f64>().is_ok_and(|g| (g - want).abs() < 1e-9),
        (Some(got), Err(_)) => got == answer.trim(),
        (None, _) => false,
    }
}

/// Reads `{"question", "answer"}` JSONL.
pub fn read_problems(path: &Path) -> Result<Vec<Problem>> {
    let text = crate::sft_data::read_text_maybe_gz(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: not a JSON object ({e})", path.display(), i + 1))?;
        let field = |k: &str| -> Result<String> {
            match v.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(format!(
                    "{}:{}: field `{k}` is missing (a string or number)",
                    path.display(),
                    i + 1
                )
                .into()),
            }
        };
        out.push(Problem {
            question: field("question")?,
            answer: field("answer")?,
        });
    }
    if out.is_empty() {
        return Err(format!("{}: no problems", path.display()).into());
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoOptions {
    pub task: String,
    pub model: String,
    pub steps: usize,
    /// Prompts per step; each gets a group of `group_size` answers.
    pub prompts_per_step: usize,
    pub group_size: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub beta: f32,
    pub lr: f32,
    pub warmup_steps: usize,
    pub grad_clip: f32,
    pub eval_every: usize,
    /// Held-out problems scored (greedy) at each evaluation.
    pub eval_problems: usize,
    pub seed: u64,
}

impl GrpoOptions {
    pub fn defaults(model: &str, task: &str) -> GrpoOptions {
        GrpoOptions {
            task: task.to_string(),
            model: model.to_string(),
            steps: 60,
            prompts_per_step: 4,
            group_size: 8,
            max_new_tokens: 24,
            temperature: 1.0,
            beta: 0.04,
            lr: 1e-5,
            warmup_steps: 5,
            grad_clip: 1.0,
            eval_every: 20,
            eval_problems: 100,
            seed: 1337,
        }
    }

    pub fn validate(&self) -> Result<()> {
        trainer::require_positive(
            "GRPO",
            &[
                ("steps", self.steps),
                ("prompts_per_step", self.prompts_per_step),
                ("group_size", self.group_size),
                ("max_new_tokens", self.max_new_tokens),
                ("eval_every", self.eval_every),
                ("eval_problems", self.eval_problems),
            ],
        )?;
        if self.group_size < 2 {
            return Err("GRPO option `group_size` must be at least 2: advantages compare answers within a group".into());
        }
        if !(self.temperature > 0.0) {
            return Err("GRPO option `temperature` must be positive: a group of greedy answers is one answer".into());
        }
        crate::optimizer::check_settings(self.lr, None, None, Some(self.grad_clip))?;
        if !(self.beta >= 0.0) {
            return Err(Error::option(
                "beta",
                format!("must be >= 0, got {}", self.beta),
            ));
        }
        Ok(())
    }
}

/// A prompt's ids under the chat template (assistant turn opened).
pub fn prompt_ids(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    question: &str,
) -> Result<Vec<u32>> {
    let text = template.render(&[Message::new("user", question)?], true)?;
    Ok(tokenizer.encode(&text)?)
}

/// One sampled answer ready for the loss.
pub struct Rollout {
    ids: Tensor,
    positions: Tensor,
    targets: Tensor,
    advantage: f32,
    /// The reference model's log-probabilities of the answer's tokens.
    ref_logps: Tensor,
    pub reward: f32,
}

/// Per-token log-probabilities `[n]` of `row`'s answer tokens.
fn token_logps(
    model: &Llama,
    ids: &Tensor,
    positions: &Tensor,
    targets: &Tensor,
) -> kindling_tensor::Result<Tensor> {
    let t = ids.shape()[1];
    let h = model.hidden_packed(ids, &[t])?.squeeze(0)?;
    let logits = model.head_rows(&h.index_select(0, positions)?)?;
    let n = targets.numel();
    logits
        .log_softmax(-1)?
        .gather(1, &targets.reshape(&[n, 1])?)?
        .reshape(&[n])
}

/// Greedy exact-match accuracy on `problems`.
pub fn accuracy(
    model: &Llama,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    problems: &[Problem],
    stop_ids: &[u32],
    max_new_tokens: usize,
) -> Result<f32> {
    let mut options = GenerateOptions::greedy(max_new_tokens);
    options.stop_ids = stop_ids.to_vec();
    let mut g = Generator::new(model, options)?;
    let decode = |ids: &[u32]| tokenizer.decode(ids).unwrap_or_default();
    let mut right = 0;
    for p in problems {
        g.reset();
        let out = g.generate(
            &prompt_ids(tokenizer, template, &p.question)?,
            &decode,
            &mut |_| true,
        )?;
        right += is_correct(&out.text, &p.answer) as usize;
    }
    Ok(right as f32 / problems.len().max(1) as f32)
}

pub struct GrpoTask<'a> {
    pub policy: &'a Llama,
    pub reference: &'a Llama,
    pub tokenizer: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    pub stop_ids: &'a [u32],
    pub train: &'a [Problem],
    pub held_out: &'a [Problem],
    pub opts: &'a GrpoOptions,
    /// Mean rewards of the steps since the last evaluation.
    pub rewards: Vec<f32>,
}

/// A step's rollouts.
pub struct GrpoBatch {
    rollouts: Vec<Rollout>,
}

impl Task for GrpoTask<'_> {
    type Batch = GrpoBatch;

    fn model(&self) -> &dyn Module {
        self.policy
    }

    fn batch(&mut self, step: usize, micro: usize, _rng: &mut Rng) -> Result<GrpoBatch> {
        let o = self.opts;
        let _g = no_grad();
        let mut options = GenerateOptions::greedy(o.max_new_tokens);
        options.sampling = Sampling {
            temperature: o.temperature,
            top_k: None,
            top_p: None,
        };
        options.stop_ids = self.stop_ids.to_vec();
        options.seed = trainer::stream(o.seed, 22, step * 1000 + micro).next_u64();
        let mut gen = Generator::new(self.policy, options)?;
        let decode = |ids: &[u32]| self.tokenizer.decode(ids).unwrap_or_default();
        let mut rollouts = Vec::new();
        let mut reward_sum = 0f32;
        for k in 0..o.prompts_per_step {
            let p = &self.train[((step * o.prompts_per_step) + k) % self.train.len()];
            let prompt = prompt_ids(self.tokenizer, self.template, &p.question)?;
            let mut group = Vec::with_capacity(o.group_size);
            for _ in 0..o.group_size {
                gen.reset();
                let out = gen.generate(&prompt, &decode, &mut |_| true)?;
                let reward = is_correct(&out.text, &p.answer) as u8 as f32;
                group.push((out.ids, reward));
            }
            let mean = group.iter().map(|g| g.1).sum::<f32>() / group.len() as f32;
            let var =
                group.iter().map(|g| (g.1 - mean).powi(2)).sum::<f32>() / (group.len() - 1) as f32;
            let std = var.sqrt();
            for (answer, reward) in group {
                reward_sum += reward;
                if answer.is_empty() {
                    continue;
                }
                let all: Vec<i64> = prompt.iter().chain(&answer).map(|&i| i as i64).collect();
                let t = all.len();
                let lp = prompt.len();
                let positions: Vec<i64> = (0..answer.len()).map(|j| (lp + j - 1) as i64).collect();
                let n = answer.len();
                let ids = Tensor::from_vec_i64(all, &[1, t])?;
                let positions = Tensor::from_vec_i64(positions, &[n])?;
                let targets =
                    Tensor::from_vec_i64(answer.iter().map(|&x| x as i64).collect(), &[n])?;
                let ref_logps = token_logps(self.reference, &ids, &positions, &targets)?;
                rollouts.push(Rollout {
                    ids,
                    positions,
                    targets,
                    advantage: (reward - mean) / (std + 1e-4),
                    ref_logps,
                    reward,
                });
            }
        }
        let mean_reward = reward_sum / (o.prompts_per_step * o.group_size) as f32;
        self.rewards.push(mean_reward);
        Ok(GrpoBatch { rollouts })
    }

    fn rows(&self, b: &GrpoBatch) -> usize {
        b.rollouts.len()
    }

    fn loss(
        &self,
        b: &GrpoBatch,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for r in &b.rollouts[start..start + len] {
            let lp = token_logps(self.policy, &r.ids, &r.positions, &r.targets)?;
            // ρ = exp(lp − lp.detach()): 1 in value, ∇lp in gradient.
            let ratio = lp.sub(&lp.detach())?.exp()?;
            let d = r.ref_logps.sub(&lp)?;
            let kl = d.exp()?.sub(&d)?.add_scalar(-1.0)?;
            let per_token = ratio
                .affine(r.advantage, 0.0)?
                .sub(&kl.affine(self.opts.beta, 0.0)?)?;
            let l = per_token.mean_all()?.neg()?;
            total = Some(match total {
                Some(t) => t.add(&l)?,
                None => l,
            });
        }
        total
            .expect("a shard has rows")
            .affine(1.0 / len as f32, 0.0)
    }

    fn evaluate(&mut self, p: &Period) -> Result<Evaluated> {
        let o = self.opts;
        let n = o.eval_problems.min(self.held_out.len());
        let acc = accuracy(
            self.policy,
            self.tokenizer,
            self.template,
            &self.held_out[..n],
            self.stop_ids,
            o.max_new_tokens,
        )?;
        let mut record = json!({ "step": p.step, "accuracy": acc });
        let mut line = format!("step {:>4}: held-out exact-match accuracy {acc:.3}", p.step);
        if !self.rewards.is_empty() {
            let r = self.rewards.iter().sum::<f32>() / self.rewards.len() as f32;
            self.rewards.clear();
            record["reward"] = json!(r);
            line.push_str(&format!(", sampled answers right {r:.3}"));
        }
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<trainer::RunIdentity> {
        Some(trainer::RunIdentity {
            model: "grpo",
            what: "GRPO",
            options: json!(self.opts),
            may_change: &["steps"],
            total_steps: self.opts.steps,
        })
    }

    fn checkpoint_frozen(&self) -> bool {
        false
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        let pts = |key: &str| crate::plot::points(metrics, "step", key);
        vec![
            Panel {
                title: "GRPO: held-out exact-match accuracy (greedy)",
                x_label: "step",
                y_label: "accuracy",
                series: vec![Series::line("held-out", pts("accuracy"), RED)],
                log_y: false,
            },
            Panel {
                title: "GRPO: mean reward of the sampled answers",
                x_label: "step",
                y_label: "reward (fraction right)",
                series: vec![Series::line("training groups", pts("reward"), BLUE)],
                log_y: false,
            },
        ]
    }
}

pub fn plan(opts: &GrpoOptions) -> Plan {
    Plan {
        total_steps: opts.steps,
        accum_steps: 1,
        schedule: LrSchedule::WarmupCosine {
            lr: opts.lr,
            min_lr: opts.lr,
            warmup: opts.warmup_steps,
            total: opts.steps,
        },
        grad_clip: (opts.grad_clip > 0.0).then_some(opts.grad_clip),
        eval_every: opts.eval_every,
        eval_at_start: true,
        seed: opts.seed,
        loss_records: Some(("step", 1)),
        log_every: 1,
        step_name: "step",
        bar: Bar::Run {
            label: "finetune grpo".into(),
            unit: "step",
        },
        message_every: 1,
        throughput: ("answers", 1),
    }
}

#[derive(Debug, Serialize)]
pub struct GrpoOutcome {
    pub accuracy_before: Option<f32>,
    pub accuracy_after: f32,
    pub steps: usize,
    pub seconds: f64,
}

/// Runs GRPO on `policy` against the frozen `reference` (the same starting
/// weights, loaded separately) in `dir`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    policy: &Llama,
    reference: &Llama,
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    stop_ids: &[u32],
    train_set: &[Problem],
    held_out: &[Problem],
    opts: &GrpoOptions,
    dir: &Path,
    mode: impl Into<RunMode>,
    stop: trainer::StopWhen,
    log: &dyn Fn(&str),
) -> Result<GrpoOutcome> {
    opts.validate()?;
    let mode = mode.into();
    let run = RunDir::start(dir, mode)?;
    let opt = Box::new(crate::optimizer::adamw_groups(
        policy,
        opts.lr,
        0.0,
        0.999,
        &|_, _| false,
    ));
    let mut task = GrpoTask {
        policy,
        reference,
        tokenizer,
        template,
        stop_ids,
        train: train_set,
        held_out,
        opts,
        rewards: Vec::new(),
    };
    let mut trainer = Trainer::new(plan(opts), policy, opt, Some(&run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    let summary = trainer.run_until(&mut task, stop)?;
    let accs: Vec<(u64, f32)> = summary
        .records
        .iter()
        .filter_map(|r| Some((r["step"].as_u64()?, r.get("accuracy")?.as_f64()? as f32)))
        .collect();
    Ok(GrpoOutcome {
        accuracy_before: accs.iter().find(|(s, _)| *s == 0).map(|(_, a)| *a),
        accuracy_after: accs.last().map_or(f32::NAN, |(_, a)| *a),
        steps: opts.steps,
        seconds: summary.train_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_by_their_last_number() {
        assert!(is_correct("The answer is 1,234.", "1234"));
        assert!(!is_correct("9.11 is smaller than 9.3", "9.11"));
        assert!(is_correct(
            "Comparing 9.11 and 9.3: the bigger is 9.3",
            "9.3"
        ));
        assert!(is_correct("-5", "-5"));
        assert!(!is_correct("no number here", "7"));
        assert_eq!(last_number("x 12.5, then 3"), Some("3".into()));
        assert_eq!(last_number("version 2.0."), Some("2.0".into()));
    }

    #[test]
    fn arithmetic_problems_are_right_fixed_and_apart() {
        let (train, held) = arithmetic_problems(200, 50, 1);
        assert_eq!((train.len(), held.len()), (200, 50));
        assert_eq!(train, arithmetic_problems(200, 50, 1).0);
        assert!(held.iter().all(|h| !train.contains(h)));
        for p in train.iter().chain(&held) {
            if let Some(rest) = p.question.strip_prefix("What is ") {
                let sum: u32 = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<u32>().unwrap())
                    .sum();
                assert_eq!(sum.to_string(), p.answer, "{}", p.question);
            } else {
                let nums: Vec<f64> = p.question[..p.question.find('?').unwrap()]
                    .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .filter(|s| s.len() > 1)
                    .map(|s| s.trim_end_matches('.').parse().unwrap())
                    .collect();
                let max = nums.iter().cloned().fold(f64::MIN, f64::max);
                assert_eq!(p.answer.parse::<f64>().unwrap(), max, "{}", p.question);
            }
        }
        let kinds = train
            .iter()
            .filter(|p| p.question.starts_with("Which"))
            .count();
        assert!((20..90).contains(&kinds), "{kinds} comparisons of 200");
    }

    #[test]
    fn grpo_raises_the_reward_of_a_tiny_model_from_its_own_samples() {
        use kindling_models::chat::CHATML;
        use kindling_models::llama::LlamaConfig;
        let template = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let corpus = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n7<|im_end|>\n";
        let tok = kindling_data::tokenizer::train_bpe(
            std::iter::once(corpus),
            262,
            &["<|im_start|>", "<|im_end|>"],
        )
        .unwrap();
        let stop = vec![tok.token_to_id("<|im_end|>").unwrap()];
        let config: LlamaConfig = serde_json::from_value(json!({
            "vocab_size": tok.vocab_size(), "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 64, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        let policy = Llama::new(config.clone(), &mut Rng::new(2)).unwrap();
        let reference = Llama::new(config, &mut Rng::new(2)).unwrap();
        let problems: Vec<Problem> = (0..40)
            .map(|i| Problem {
                question: format!("q{i}"),
                answer: "7".into(),
            })
            .collect();
        let opts = GrpoOptions {
            steps: 30,
            prompts_per_step: 4,
            group_size: 16,
            max_new_tokens: 2,
            lr: 2e-2,
            warmup_steps: 1,
            eval_every: 15,
            eval_problems: 10,
            beta: 0.0,
            ..GrpoOptions::defaults("tiny", "sevens")
        };
        let dir = std::env::temp_dir().join(format!("kindling-grpo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = train(
            &policy,
            &reference,
            &tok,
            &template,
            &stop,
            &problems[..30],
            &problems[30..],
            &opts,
            &dir,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &|_| {},
        )
        .unwrap();
        let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(out.accuracy_before, Some(0.0));
        assert!(out.accuracy_after >= 0.9, "{out:?}\n{metrics}");
    }
}
