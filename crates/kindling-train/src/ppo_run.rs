//! RLHF with PPO (Schulman et al. 2017; Ouyang et al. 2022) on the one
//! training loop. Each rollout samples one answer per prompt from the
//! policy, scores it with a reward model, and charges every token a KL
//! penalty `β · (log π_old − log π_ref)` to the frozen starting model; a
//! value head on the policy's hidden states gives GAE advantages
//! (γ, λ). Then `ppo_epochs` passes over the rollout, in minibatches, take
//! clipped policy and value steps. One trainer step is one minibatch update,
//! so checkpoints fall on rollout boundaries and resume stays exact.
//!
//! What each rollout measured is recorded: the mean reward, the KL to the
//! reference and the policy's entropy per token — the rise in reward, the
//! bounded KL and the entropy drop that RLHF is known for.

use crate::gpt_run::loss_curves_by;
use crate::plot::{Panel, Series};
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::{self, Bar, Evaluated, Period, Plan, Task, Trainer};
use crate::Result;
use kindling_models::generate::{GenerateOptions, Generator};
use kindling_models::llama::Llama;
use kindling_models::sampling::Sampling;
use kindling_nn::module::{join_name, visit_child};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::{Linear, Module};
use kindling_tensor::{no_grad, Rng, Tensor};
use plotters::style::{BLUE, RED};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// The policy and its value head (`v_head`, hidden → 1, on every position).
pub struct ActorCritic {
    pub policy: Llama,
    pub v_head: Linear,
}

impl ActorCritic {
    /// A value head starting at zero, so early advantages are the rewards'.
    pub fn new(policy: Llama) -> ActorCritic {
        let c = policy.config.hidden_size;
        let v_head = Linear::from_tensors(
            Tensor::zeros(&[1, c]).requires_grad_(true),
            Some(Tensor::zeros(&[1]).requires_grad_(true)),
        )
        .expect("shapes built here");
        ActorCritic { policy, v_head }
    }
}

impl Module for ActorCritic {
    fn forward(&self, ids: &Tensor) -> kindling_tensor::Result<Tensor> {
        self.policy.forward(ids, None)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor)) {
        self.policy.visit_parameters(prefix, f);
        self.v_head
            .visit_parameters(&join_name(prefix, "v_head"), f);
    }
    fn visit_modules_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        self.policy.visit_modules_mut(prefix, f);
        visit_child(&mut self.v_head, &join_name(prefix, "v_head"), f);
    }
}

/// Scores a prompt's answer (token ids of both): a reward model, or a
/// program in tests.
pub trait Scorer: Sync {
    fn score(&self, prompt: &[u32], answer: &[u32]) -> Result<f32>;
}

impl Scorer for kindling_models::reward::RewardModel {
    fn score(&self, prompt: &[u32], answer: &[u32]) -> Result<f32> {
        Ok(self.reward(&[prompt, answer].concat())?)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PpoOptions {
    pub data: String,
    pub model: String,
    pub reward_model: String,
    /// Rollouts (each `rollout_size` prompts, one answer each).
    pub rollouts: usize,
    pub rollout_size: usize,
    pub ppo_epochs: usize,
    pub minibatch_size: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
    /// KL penalty per token.
    pub kl_coef: f32,
    pub gamma: f32,
    pub lam: f32,
    pub clip: f32,
    pub value_clip: f32,
    pub value_coef: f32,
    pub lr: f32,
    pub grad_clip: f32,
    pub seed: u64,
}

impl PpoOptions {
    pub fn defaults(model: &str, reward_model: &str, data: &str) -> PpoOptions {
        PpoOptions {
            data: data.to_string(),
            model: model.to_string(),
            reward_model: reward_model.to_string(),
            rollouts: 40,
            rollout_size: 8,
            ppo_epochs: 2,
            minibatch_size: 4,
            max_new_tokens: 48,
            temperature: 1.0,
            kl_coef: 0.05,
            gamma: 1.0,
            lam: 0.95,
            clip: 0.2,
            value_clip: 0.2,
            value_coef: 0.1,
            lr: 1e-5,
            grad_clip: 1.0,
            seed: 1337,
        }
    }

    /// Minibatch updates per rollout.
    pub fn updates_per_rollout(&self) -> usize {
        self.ppo_epochs * self.rollout_size.div_ceil(self.minibatch_size)
    }

    pub fn validate(&self) -> Result<()> {
        trainer::require_positive(
            "PPO",
            &[
                ("rollouts", self.rollouts),
                ("rollout_size", self.rollout_size),
                ("ppo_epochs", self.ppo_epochs),
                ("minibatch_size", self.minibatch_size),
                ("max_new_tokens", self.max_new_tokens),
            ],
        )?;
        if self.minibatch_size > self.rollout_size {
            return Err(format!(
                "PPO option `minibatch_size` ({}) exceeds `rollout_size` ({})",
                self.minibatch_size, self.rollout_size
            )
            .into());
        }
        crate::optimizer::check_settings(self.lr, None, None, Some(self.grad_clip))?;
        if !(self.temperature > 0.0 && self.clip > 0.0) {
            return Err("PPO options `temperature` and `clip` must be positive".into());
        }
        Ok(())
    }
}

/// One sampled answer with what the update needs.
struct Sample {
    ids: Tensor,
    positions: Tensor,
    targets: Tensor,
    old_logps: Tensor,
    old_values: Tensor,
    advantages: Tensor,
    returns: Tensor,
}

/// Per-position log-probabilities of the targets, entropies and values.
fn evaluate_tokens(
    ac: &ActorCritic,
    ids: &Tensor,
    positions: &Tensor,
    targets: &Tensor,
) -> kindling_tensor::Result<(Tensor, Tensor, Tensor)> {
    let t = ids.shape()[1];
    let h = ac.policy.hidden_packed(ids, &[t])?.squeeze(0)?;
    let rows = h.index_select(0, positions)?;
    let n = targets.numel();
    let logp_all = ac.policy.head_rows(&rows)?.log_softmax(-1)?;
    let logps = logp_all
        .gather(1, &targets.reshape(&[n, 1])?)?
        .reshape(&[n])?;
    let entropy = logp_all.exp()?.mul(&logp_all)?.sum(&[-1], false)?.neg()?;
    let values = ac.v_head.forward(&rows)?.reshape(&[n])?;
    Ok((logps, entropy, values))
}

fn token_logps(
    model: &Llama,
    ids: &Tensor,
    positions: &Tensor,
    targets: &Tensor,
) -> kindling_tensor::Result<Tensor> {
    let t = ids.shape()[1];
    let h = model.hidden_packed(ids, &[t])?.squeeze(0)?;
    let n = targets.numel();
    model
        .head_rows(&h.index_select(0, positions)?)?
        .log_softmax(-1)?
        .gather(1, &targets.reshape(&[n, 1])?)?
        .reshape(&[n])
}

/// GAE over one answer: per-token rewards and values → (advantages, returns).
pub fn gae(rewards: &[f32], values: &[f32], gamma: f32, lam: f32) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    let mut adv = vec![0f32; n];
    let mut next_adv = 0f32;
    for t in (0..n).rev() {
        let next_v = if t + 1 < n { values[t + 1] } else { 0.0 };
        let delta = rewards[t] + gamma * next_v - values[t];
        next_adv = delta + gamma * lam * next_adv;
        adv[t] = next_adv;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

fn clamp(x: &Tensor, lo: f32, hi: f32) -> kindling_tensor::Result<Tensor> {
    let lo = Tensor::full(x.shape(), lo);
    let hi = Tensor::full(x.shape(), -hi);
    x.maximum(&lo)?.neg()?.maximum(&hi)?.neg()
}

/// What a rollout measured.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RolloutStats {
    pub reward: f32,
    pub kl: f32,
    pub entropy: f32,
    pub answer_tokens: f32,
}

pub struct PpoTask<'a> {
    pub ac: &'a ActorCritic,
    pub reference: &'a Llama,
    pub scorer: &'a dyn Scorer,
    /// Prompt ids (already rendered with the chat template).
    pub prompts: &'a [Vec<u32>],
    pub stop_ids: &'a [u32],
    pub opts: &'a PpoOptions,
    samples: Vec<Sample>,
    /// Which rollout `samples` and `stats` are.
    samples_for: Option<usize>,
    stats: Option<RolloutStats>,
}

impl<'a> PpoTask<'a> {
    pub fn new(
        ac: &'a ActorCritic,
        reference: &'a Llama,
        scorer: &'a dyn Scorer,
        prompts: &'a [Vec<u32>],
        stop_ids: &'a [u32],
        opts: &'a PpoOptions,
    ) -> PpoTask<'a> {
        PpoTask {
            ac,
            reference,
            scorer,
            prompts,
            stop_ids,
            opts,
            samples: Vec::new(),
            samples_for: None,
            stats: None,
        }
    }

    /// Samples rollout `r` from the current policy, unless it is the one held.
    fn ensure_rollout(&mut self, r: usize) -> Result<()> {
        if self.samples_for != Some(r) {
            self.rollout(r)?;
            self.samples_for = Some(r);
        }
        Ok(())
    }

    fn rollout(&mut self, r: usize) -> Result<()> {
        let o = self.opts;
        let _g = no_grad();
        let mut options = GenerateOptions::greedy(o.max_new_tokens);
        options.sampling = Sampling {
            temperature: o.temperature,
            top_k: None,
            top_p: None,
        };
        options.stop_ids = self.stop_ids.to_vec();
        options.seed = trainer::stream(o.seed, 30, r).next_u64();
        let mut gen = Generator::new(&self.ac.policy, options)?;
        let decode = |_: &[u32]| String::new();
        let mut drafts = Vec::new();
        let (mut stats, mut tokens) = (RolloutStats::default(), 0usize);
        for k in 0..o.rollout_size {
            let prompt = &self.prompts[(r * o.rollout_size + k) % self.prompts.len()];
            gen.reset();
            let answer = gen.generate(prompt, &decode, &mut |_| true)?.ids;
            if answer.is_empty() {
                continue;
            }
            let score = self.scorer.score(prompt, &answer)?;
            let all: Vec<i64> = prompt.iter().chain(&answer).map(|&i| i as i64).collect();
            let (t, n, lp) = (all.len(), answer.len(), prompt.len());
            let ids = Tensor::from_vec_i64(all, &[1, t])?;
            let positions =
                Tensor::from_vec_i64((0..n).map(|j| (lp + j - 1) as i64).collect(), &[n])?;
            let targets = Tensor::from_vec_i64(answer.iter().map(|&x| x as i64).collect(), &[n])?;
            let (old_logps, entropy, old_values) =
                evaluate_tokens(self.ac, &ids, &positions, &targets)?;
            let ref_logps = token_logps(self.reference, &ids, &positions, &targets)?;
            let (lp_v, ref_v, val_v) = (
                old_logps.to_vec_f32()?,
                ref_logps.to_vec_f32()?,
                old_values.to_vec_f32()?,
            );
            let kl: Vec<f32> = lp_v.iter().zip(&ref_v).map(|(a, b)| a - b).collect();
            let mut rewards: Vec<f32> = kl.iter().map(|k| -o.kl_coef * k).collect();
            *rewards.last_mut().expect("n >= 1") += score;
            let (adv, ret) = gae(&rewards, &val_v, o.gamma, o.lam);
            stats.reward += score;
            stats.kl += kl.iter().sum::<f32>();
            stats.entropy += entropy.to_vec_f32()?.iter().sum::<f32>();
            tokens += n;
            drafts.push((ids, positions, targets, old_logps, old_values, adv, ret));
        }
        if drafts.is_empty() {
            return Err(format!("rollout {r}: every answer was empty").into());
        }
        // Advantages whitened over the rollout's tokens.
        let all: Vec<f32> = drafts.iter().flat_map(|d| d.5.iter().copied()).collect();
        let mean = all.iter().sum::<f32>() / all.len() as f32;
        let std = (all.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / all.len() as f32).sqrt();
        let count = drafts.len() as f32;
        self.samples = drafts
            .into_iter()
            .map(
                |(ids, positions, targets, old_logps, old_values, adv, ret)| {
                    let n = adv.len();
                    let white: Vec<f32> = adv.iter().map(|a| (a - mean) / (std + 1e-8)).collect();
                    Ok(Sample {
                        ids,
                        positions,
                        targets,
                        old_logps,
                        old_values,
                        advantages: Tensor::from_vec(white, &[n])?,
                        returns: Tensor::from_vec(ret, &[n])?,
                    })
                },
            )
            .collect::<Result<_>>()?;
        self.stats = Some(RolloutStats {
            reward: stats.reward / count,
            kl: stats.kl / count,
            entropy: stats.entropy / tokens as f32,
            answer_tokens: tokens as f32 / count,
        });
        Ok(())
    }
}

impl Task for PpoTask<'_> {
    type Batch = Vec<usize>;

    fn model(&self) -> &dyn Module {
        self.ac
    }

    fn batch(&mut self, step: usize, _micro: usize, _rng: &mut Rng) -> Result<Vec<usize>> {
        let o = self.opts;
        let per = o.updates_per_rollout();
        let (r, u) = (step / per, step % per);
        self.ensure_rollout(r)?;
        let n = self.samples.len();
        let per_epoch = n.div_ceil(o.minibatch_size);
        let (epoch, mb) = (u / per_epoch.max(1), u % per_epoch.max(1));
        let mut order: Vec<usize> = (0..n).collect();
        trainer::stream(o.seed, 31, r * 1000 + epoch).shuffle(&mut order);
        let start = (mb * o.minibatch_size).min(n);
        let end = (start + o.minibatch_size).min(n);
        Ok(order[start..end.max(start + 1).min(n)].to_vec())
    }

    fn rows(&self, b: &Vec<usize>) -> usize {
        b.len()
    }

    fn loss(
        &self,
        b: &Vec<usize>,
        start: usize,
        len: usize,
        _rng: &mut Rng,
    ) -> kindling_tensor::Result<Tensor> {
        let o = self.opts;
        let mut total: Option<Tensor> = None;
        for &i in &b[start..start + len] {
            let s = &self.samples[i];
            let (logps, _, values) = evaluate_tokens(self.ac, &s.ids, &s.positions, &s.targets)?;
            let ratio = logps.sub(&s.old_logps)?.exp()?;
            let pg1 = ratio.mul(&s.advantages)?.neg()?;
            let pg2 = clamp(&ratio, 1.0 - o.clip, 1.0 + o.clip)?
                .mul(&s.advantages)?
                .neg()?;
            let pg = pg1.maximum(&pg2)?.mean_all()?;
            let v_clipped = s.old_values.add(&clamp(
                &values.sub(&s.old_values)?,
                -o.value_clip,
                o.value_clip,
            )?)?;
            let vl1 = values.sub(&s.returns)?.sqr()?;
            let vl2 = v_clipped.sub(&s.returns)?.sqr()?;
            let vl = vl1
                .maximum(&vl2)?
                .mean_all()?
                .affine(0.5 * o.value_coef, 0.0)?;
            let l = pg.add(&vl)?;
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
        let mut record =
            json!({ "step": p.step, "rollout": p.step / self.opts.updates_per_rollout() });
        let mut line = format!("rollout {:>3}", p.step / self.opts.updates_per_rollout());
        // The figures of the rollout the current policy makes next (after
        // the last update, one more rollout, only to measure it).
        self.ensure_rollout(p.step / self.opts.updates_per_rollout())?;
        if let Some(s) = self.stats {
            record["reward"] = json!(s.reward);
            record["kl"] = json!(s.kl);
            record["entropy"] = json!(s.entropy);
            record["answer_tokens"] = json!(s.answer_tokens);
            line.push_str(&format!(
                ": reward {:.3}, KL {:.3}, entropy {:.3} nats/token, {:.1} tokens",
                s.reward, s.kl, s.entropy, s.answer_tokens
            ));
        }
        Ok(Evaluated::with_train_loss(record, line, p))
    }

    fn identity(&self) -> Option<trainer::RunIdentity> {
        Some(trainer::RunIdentity {
            model: "ppo",
            what: "PPO",
            options: json!(self.opts),
            may_change: &["rollouts"],
            total_steps: self.opts.rollouts * self.opts.updates_per_rollout(),
        })
    }

    fn checkpoint_frozen(&self) -> bool {
        false
    }

    fn curves(&self, metrics: &[Value]) -> Vec<Panel<'static>> {
        let pts = |key: &str| crate::plot::points(metrics, "rollout", key);
        let panel = |title: &'static str, y: &'static str, key: &str, colour| Panel {
            title,
            x_label: "rollout",
            y_label: y,
            series: vec![Series::line(title, pts(key), colour)],
            log_y: false,
        };
        let mut out = vec![
            panel("mean reward", "reward-model score", "reward", RED),
            panel("KL to the reference", "nats per answer", "kl", BLUE),
            panel("policy entropy", "nats per token", "entropy", BLUE),
        ];
        out.extend(loss_curves_by(
            metrics,
            "step",
            "update",
            "PPO loss",
            "policy + value loss",
        ));
        out
    }
}

pub fn plan(opts: &PpoOptions) -> Plan {
    let per = opts.updates_per_rollout();
    Plan {
        total_steps: opts.rollouts * per,
        accum_steps: 1,
        schedule: LrSchedule::Constant { lr: opts.lr },
        grad_clip: (opts.grad_clip > 0.0).then_some(opts.grad_clip),
        // An evaluation (the rollout's figures) and a checkpoint at every
        // rollout boundary: resume never lands inside a rollout.
        eval_every: per,
        eval_at_start: true,
        seed: opts.seed,
        loss_records: Some(("step", 1)),
        log_every: per,
        step_name: "update",
        bar: Bar::Run {
            label: "finetune ppo".into(),
            unit: "update",
        },
        message_every: 1,
        throughput: ("answers", 1),
    }
}

#[derive(Debug, Serialize)]
pub struct PpoOutcome {
    pub first: Option<RolloutStats>,
    pub last: Option<RolloutStats>,
    pub rollouts: usize,
    pub seconds: f64,
}

/// Runs PPO on `ac` (its trainable parameters) against the frozen
/// `reference` in `dir`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    ac: &ActorCritic,
    reference: &Llama,
    scorer: &dyn Scorer,
    prompts: &[Vec<u32>],
    stop_ids: &[u32],
    opts: &PpoOptions,
    dir: &Path,
    mode: impl Into<RunMode>,
    stop: trainer::StopWhen,
    log: &dyn Fn(&str),
) -> Result<PpoOutcome> {
    opts.validate()?;
    if prompts.is_empty() {
        return Err(format!("{}: no prompts", opts.data).into());
    }
    let mode = mode.into();
    let run = RunDir::start(dir, mode)?;
    let opt = Box::new(crate::optimizer::adamw_groups(
        ac,
        opts.lr,
        0.0,
        0.999,
        &|_, _| false,
    ));
    let mut task = PpoTask::new(ac, reference, scorer, prompts, stop_ids, opts);
    let mut trainer = Trainer::new(plan(opts), ac, opt, Some(&run), log)?;
    trainer.begin(&mut task, mode, &serde_json::to_value(opts)?)?;
    let summary = trainer.run_until(&mut task, stop)?;
    let stats: Vec<RolloutStats> = summary
        .records
        .iter()
        .filter_map(|r| {
            Some(RolloutStats {
                reward: r.get("reward")?.as_f64()? as f32,
                kl: r.get("kl")?.as_f64()? as f32,
                entropy: r.get("entropy")?.as_f64()? as f32,
                answer_tokens: r.get("answer_tokens")?.as_f64()? as f32,
            })
        })
        .collect();
    Ok(PpoOutcome {
        first: stats.first().copied(),
        last: stats.last().copied(),
        rollouts: opts.rollouts,
        seconds: summary.train_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::llama::LlamaConfig;

    #[test]
    fn gae_with_lambda_one_is_the_return_minus_the_value() {
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let (adv, ret) = gae(&[0.0, 0.0, 1.0], &[0.5, 0.2, 0.1], 1.0, 1.0);
        assert!(close(&ret, &[1.0, 1.0, 1.0]), "{ret:?}");
        assert!(close(&adv, &[0.5, 0.8, 0.9]), "{adv:?}");
        let (adv, _) = gae(&[1.0, 1.0], &[0.0, 0.0], 0.5, 0.0);
        assert_eq!(adv, vec![1.0, 1.0], "λ = 0: one-step TD errors");
    }

    /// Rewards answers by how many of their tokens are `good`.
    struct Counts {
        good: u32,
    }
    impl Scorer for Counts {
        fn score(&self, _prompt: &[u32], answer: &[u32]) -> Result<f32> {
            Ok(answer.iter().filter(|&&t| t == self.good).count() as f32 / answer.len() as f32)
        }
    }

    #[test]
    fn ppo_raises_the_reward_with_bounded_kl_and_falling_entropy() {
        let config: LlamaConfig = serde_json::from_value(json!({
            "vocab_size": 12, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-5
        }))
        .unwrap();
        let ac = ActorCritic::new(Llama::new(config.clone(), &mut Rng::new(3)).unwrap());
        let reference = Llama::new(config, &mut Rng::new(3)).unwrap();
        let prompts: Vec<Vec<u32>> = (0..16).map(|i| vec![1 + (i % 9) as u32, 2]).collect();
        let opts = PpoOptions {
            rollouts: 25,
            rollout_size: 8,
            ppo_epochs: 2,
            minibatch_size: 4,
            max_new_tokens: 6,
            kl_coef: 0.02,
            lr: 1e-2,
            ..PpoOptions::defaults("tiny", "counts", "prompts")
        };
        let dir = std::env::temp_dir().join(format!("kindling-ppo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = train(
            &ac,
            &reference,
            &Counts { good: 5 },
            &prompts,
            &[],
            &opts,
            &dir,
            RunMode::Fresh,
            trainer::StopWhen::default(),
            &|_| {},
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let (first, last) = (out.first.unwrap(), out.last.unwrap());
        assert!(last.reward > first.reward + 0.4, "{first:?} -> {last:?}");
        assert!(last.entropy < first.entropy, "{first:?} -> {last:?}");
        assert!(
            first.kl.abs() < 1e-4,
            "the first rollout is the reference's own: {first:?}"
        );
        assert!(last.kl > 0.0 && last.kl.is_finite(), "{last:?}");
    }
}
