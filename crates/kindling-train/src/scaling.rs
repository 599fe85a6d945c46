//! `kindling lab scaling`: a scaling law that predicts. A family of small
//! LLaMA-style character models is trained on one corpus at several token
//! budgets; Chinchilla's form L(N, D) = E + A/N^α + B/D^β is fitted to the
//! final validation losses (Hoffmann et al. 2022, approach 3: Huber loss on
//! log L, minimised from a grid of starting points); the loss of a larger
//! run is predicted and written down **before** that run is trained; then it
//! is trained and the prediction error reported, with the compute-optimal
//! model size the fit gives for a budget C ≈ 6·N·D.
//!
//! N counts the parameters outside the embedding (Kaplan et al. 2020: the
//! token embedding, tied with the output layer, is a lookup, not compute);
//! D is the tokens trained on, each seen once at most for the default corpus.

use crate::lm_run::{self, LmData, LmModel, LmTrainOptions};
use crate::plot::{save_panels, Panel, Series};
use crate::run_dir::{RunDir, RunMode};
use crate::trainer::StopWhen;
use crate::{Error, Result};
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// A model of the family: `n_layer` blocks of width `n_embd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSize {
    pub n_layer: usize,
    pub n_embd: usize,
}

impl std::fmt::Display for ModelSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.n_layer, self.n_embd)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingOptions {
    pub data: String,
    pub sizes: Vec<ModelSize>,
    pub tokens: Vec<usize>,
    /// The larger run whose loss is predicted before it is trained.
    pub predict: ModelSize,
    pub predict_tokens: usize,
    pub head_dim: usize,
    pub batch_size: usize,
    pub block_size: usize,
    pub lr: f32,
    pub eval_iters: usize,
    pub seed: u64,
}

impl Default for ScalingOptions {
    fn default() -> Self {
        ScalingOptions {
            data: "alpaca".into(),
            sizes: parse_sizes("2x32,2x48,3x64,3x96,4x128").expect("valid"),
            tokens: parse_tokens("0.5M,1M,2M,4M").expect("valid"),
            predict: ModelSize {
                n_layer: 5,
                n_embd: 160,
            },
            predict_tokens: 4_000_000,
            head_dim: 16,
            batch_size: 16,
            block_size: 128,
            lr: 2e-3,
            eval_iters: 50,
            seed: 0,
        }
    }
}

/// `2x32,3x64`: layers × width, comma-separated.
pub fn parse_sizes(text: &str) -> Result<Vec<ModelSize>> {
    text.split(',')
        .map(|s| parse_size(s.trim(), "sizes"))
        .collect()
}

pub fn parse_size(s: &str, field: &'static str) -> Result<ModelSize> {
    let bad = || {
        Error::option(
            field,
            format!("`{s}`: give layers x width, e.g. 3x64 (both at least 1)"),
        )
    };
    let (l, w) = s.split_once('x').ok_or_else(bad)?;
    let n_layer: usize = l.trim().parse().map_err(|_| bad())?;
    let n_embd: usize = w.trim().parse().map_err(|_| bad())?;
    if n_layer == 0 || n_embd == 0 {
        return Err(bad());
    }
    Ok(ModelSize { n_layer, n_embd })
}

/// `500k,1M,2000000`: token counts with an optional k or M.
pub fn parse_tokens(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|s| parse_count(s.trim(), "tokens"))
        .collect()
}

pub fn parse_count(s: &str, field: &'static str) -> Result<usize> {
    let bad = || {
        Error::option(
            field,
            format!("`{s}`: give a token count such as 500k, 2M or 250000"),
        )
    };
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'M' | 'm')) => (&s[..i], 1e6),
        Some((i, 'G' | 'B')) => (&s[..i], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let n = (v * mult).round();
    if !(n >= 1.0 && n.is_finite()) {
        return Err(bad());
    }
    Ok(n as usize)
}

impl ScalingOptions {
    pub fn validate(&self) -> Result<()> {
        if self.head_dim == 0 {
            return Err(Error::option("head_dim", "must be at least 1"));
        }
        for (field, s) in self
            .sizes
            .iter()
            .map(|s| ("sizes", s))
            .chain([("predict", &self.predict)])
        {
            if s.n_embd % self.head_dim != 0 {
                return Err(Error::option(
                    field,
                    format!(
                        "`{s}`: the width {} is not a multiple of the head size {}",
                        s.n_embd, self.head_dim
                    ),
                ));
            }
        }
        let mut sizes = self.sizes.clone();
        sizes.sort_by_key(|s| (s.n_layer, s.n_embd));
        sizes.dedup();
        if sizes.len() != self.sizes.len() {
            return Err(Error::option("sizes", "lists a size twice"));
        }
        let mut tokens = self.tokens.clone();
        tokens.sort();
        tokens.dedup();
        if tokens.len() != self.tokens.len() {
            return Err(Error::option("tokens", "lists a budget twice"));
        }
        let runs = self.sizes.len() * self.tokens.len();
        if self.sizes.len() < 2 || self.tokens.len() < 2 || runs < 6 {
            return Err(Error::option(
                "sizes",
                format!(
                    "{} sizes × {} token budgets give {runs} runs; the law has 5 constants and needs at least 2 sizes, 2 budgets and 6 runs",
                    self.sizes.len(),
                    self.tokens.len()
                ),
            ));
        }
        if self.sizes.contains(&self.predict) && self.tokens.contains(&self.predict_tokens) {
            return Err(Error::option(
                "predict",
                "is one of the fitted runs; a prediction must be of a run the fit has not seen",
            ));
        }
        if self.eval_iters == 0 {
            return Err(Error::option("eval_iters", "must be at least 1"));
        }
        Ok(())
    }

    fn tokens_per_step(&self) -> usize {
        self.batch_size * self.block_size
    }

    /// The training options of one run: LLaMA block, characters, AdamW,
    /// warmup then cosine decay to a tenth of the peak over the run's own
    /// length (Chinchilla matches the schedule to the budget).
    pub fn run_options(&self, size: ModelSize, tokens: usize) -> LmTrainOptions {
        let steps = tokens.div_ceil(self.tokens_per_step()).max(1);
        LmTrainOptions {
            arch: "llama".into(),
            tokenizer: "char".into(),
            data: self.data.clone(),
            n_layer: size.n_layer,
            n_head: (size.n_embd / self.head_dim).max(1),
            n_kv_head: 0,
            n_embd: size.n_embd,
            intermediate: 0,
            block_size: self.block_size,
            batch_size: self.batch_size,
            max_iters: steps,
            lr: self.lr,
            min_lr: self.lr / 10.0,
            warmup_iters: (steps / 10).clamp(1, 100),
            weight_decay: 0.1,
            beta2: 0.99,
            grad_clip: 1.0,
            eval_interval: steps,
            eval_iters: self.eval_iters,
            seed: self.seed,
            tie_weights: true,
            rope_theta: 10000.0,
            accum_steps: 1,
            schedule: "cosine".into(),
            cooldown_frac: 0.0,
            zero_init_residual: false,
            qk_norm: false,
        }
    }
}

/// One trained run: its size, the tokens it saw and its final validation loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub n_layer: usize,
    pub n_embd: usize,
    /// Parameters outside the (tied) embedding.
    pub params: usize,
    pub tokens: usize,
    pub flops: f64,
    pub loss: f64,
    pub seconds: f64,
}

/// L(N, D) = E + A / N^α + B / D^β.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Law {
    #[serde(rename = "E")]
    pub e: f64,
    #[serde(rename = "A")]
    pub a: f64,
    pub alpha: f64,
    #[serde(rename = "B")]
    pub b: f64,
    pub beta: f64,
}

impl Law {
    pub fn loss(&self, n: f64, d: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta)
    }

    /// The N and D that minimise L for compute C = 6·N·D (Chinchilla's
    /// eq. 4): N_opt = G·(C/6)^(β/(α+β)), G = (αA / βB)^(1/(α+β)).
    pub fn compute_optimal(&self, c: f64) -> (f64, f64) {
        let s = self.alpha + self.beta;
        let g = (self.alpha * self.a / (self.beta * self.b)).powf(1.0 / s);
        let n = g * (c / 6.0).powf(self.beta / s);
        (n, c / 6.0 / n)
    }
}

fn huber(r: f64, delta: f64) -> f64 {
    if r.abs() <= delta {
        0.5 * r * r
    } else {
        delta * (r.abs() - 0.5 * delta)
    }
}

/// The objective of Chinchilla's approach 3 at θ = (ln A, ln B, ln E, α, β).
fn objective(theta: &[f64; 5], pts: &[(f64, f64, f64)]) -> f64 {
    let [a, b, e, alpha, beta] = *theta;
    // Keep the search where the constants mean something (A, B below e^60,
    // exponents in [0, 5]); outside, the objective is a wall.
    if !((-20.0..=60.0).contains(&a)
        && (-20.0..=60.0).contains(&b)
        && (-10.0..=10.0).contains(&e)
        && (0.0..=5.0).contains(&alpha)
        && (0.0..=5.0).contains(&beta))
    {
        return 1e300;
    }
    pts.iter()
        .map(|&(ln_n, ln_d, ln_l)| {
            let terms = [a - alpha * ln_n, b - beta * ln_d, e];
            let m = terms.iter().cloned().fold(f64::MIN, f64::max);
            let lse = m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln();
            huber(lse - ln_l, 1e-3)
        })
        .sum()
}

/// Nelder–Mead on the 5 constants from one start.
fn nelder_mead(start: [f64; 5], pts: &[(f64, f64, f64)], iters: usize) -> ([f64; 5], f64) {
    let f = |x: &[f64; 5]| objective(x, pts);
    let mut simplex: Vec<([f64; 5], f64)> = (0..6)
        .map(|i| {
            let mut x = start;
            if i > 0 {
                x[i - 1] += if i <= 3 { 1.0 } else { 0.1 };
            }
            (x, f(&x))
        })
        .collect();
    for _ in 0..iters {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        if (simplex[5].1 - simplex[0].1).abs() < 1e-16 {
            break;
        }
        let mut centroid = [0.0; 5];
        for (x, _) in &simplex[..5] {
            for k in 0..5 {
                centroid[k] += x[k] / 5.0;
            }
        }
        let along = |t: f64| {
            let mut x = [0.0; 5];
            for k in 0..5 {
                x[k] = centroid[k] + t * (simplex[5].0[k] - centroid[k]);
            }
            x
        };
        let r = along(-1.0);
        let fr = f(&r);
        if fr < simplex[0].1 {
            let e = along(-2.0);
            let fe = f(&e);
            simplex[5] = if fe < fr { (e, fe) } else { (r, fr) };
        } else if fr < simplex[4].1 {
            simplex[5] = (r, fr);
        } else {
            let c = if fr < simplex[5].1 {
                along(-0.5)
            } else {
                along(0.5)
            };
            let fc = f(&c);
            if fc < simplex[5].1.min(fr) {
                simplex[5] = (c, fc);
            } else {
                let best = simplex[0].0;
                for (x, fx) in simplex.iter_mut().skip(1) {
                    for k in 0..5 {
                        x[k] = best[k] + 0.5 * (x[k] - best[k]);
                    }
                    *fx = f(x);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex[0]
}

/// Fits the law to the points: the best of Nelder–Mead runs from
/// Chinchilla's grid of starts (α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1},
/// a, b ∈ {0, 5, …, 25}), each polished once more from where it stopped.
pub fn fit(points: &[Point]) -> Result<(Law, f64)> {
    if points.len() < 6 {
        return Err(format!("the fit needs at least 6 runs, got {}", points.len()).into());
    }
    let pts: Vec<(f64, f64, f64)> = points
        .iter()
        .map(|p| ((p.params as f64).ln(), (p.tokens as f64).ln(), p.loss.ln()))
        .collect();
    let mut starts = Vec::new();
    for alpha in [0.0, 0.5, 1.0, 1.5, 2.0] {
        for beta in [0.0, 0.5, 1.0, 1.5, 2.0] {
            for e in [-1.0, -0.5, 0.0, 0.5, 1.0] {
                for a in [0.0, 5.0, 10.0, 15.0, 20.0, 25.0] {
                    for b in [0.0, 5.0, 10.0, 15.0, 20.0, 25.0] {
                        starts.push([a, b, e, alpha, beta]);
                    }
                }
            }
        }
    }
    use rayon::prelude::*;
    let best = starts
        .par_iter()
        .map(|&s| {
            let (x, _) = nelder_mead(s, &pts, 400);
            nelder_mead(x, &pts, 2000)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("starts");
    let [a, b, e, alpha, beta] = best.0;
    Ok((
        Law {
            e: e.exp(),
            a: a.exp(),
            alpha,
            b: b.exp(),
            beta,
        },
        best.1,
    ))
}

/// What `lab scaling` found.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingOutcome {
    pub points: Vec<Point>,
    pub law: Law,
    /// Root-mean-square of (fitted − measured) / measured over the family.
    pub fit_rms_relative: f64,
    pub prediction: Prediction,
    /// (C, N_opt, D_opt) for the predicted run's budget, 10× and 100× it.
    pub compute_optimal: Vec<(f64, f64, f64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prediction {
    pub n_layer: usize,
    pub n_embd: usize,
    pub params: usize,
    pub tokens: usize,
    pub flops: f64,
    pub predicted_loss: f64,
    /// Written when the run is done.
    pub actual_loss: Option<f64>,
    pub error_percent: Option<f64>,
    /// When the prediction was written (before the run began).
    pub predicted_at: String,
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("unix {secs}")
}

/// Parameters outside the embedding of a model of `size` (counted on the
/// model itself).
fn non_embedding_params(opts: &LmTrainOptions, vocab: usize) -> Result<usize> {
    let model = LmModel::new(opts, vocab)?;
    Ok(model.module().num_parameters() - vocab * opts.n_embd)
}

/// Trains the family and the predicted run in `dir` (each run in
/// `dir/runs/LxW-T`), resuming what an interrupted call left.
pub fn run(
    opts: &ScalingOptions,
    text: &str,
    dir: &Path,
    mode: RunMode,
    log: &dyn Fn(&str),
) -> Result<ScalingOutcome> {
    opts.validate()?;
    let run = RunDir::start(dir, mode)?;
    let config = serde_json::to_value(opts)?;
    if mode == RunMode::Resume && run.file("config.json").exists() {
        let stored = run.read_json("config.json")?;
        let differ = crate::gpt_run::changed_options(&stored, &config, &[]);
        if !differ.is_empty() {
            return Err(format!(
                "--resume: {} holds a scaling study with other settings ({}); use the same options or a new --out",
                dir.display(),
                differ.join(", ")
            )
            .into());
        }
    }
    run.write_json("config.json", &config)?;
    let vocab = LmData::new(text, &opts.run_options(opts.sizes[0], opts.tokens[0]))?
        .tokenizer
        .vocab_size();
    let mut done: Vec<Point> = if mode == RunMode::Resume {
        run.read_metrics()?
            .into_iter()
            .filter_map(|r| serde_json::from_value(r["point"].clone()).ok())
            .collect()
    } else {
        Vec::new()
    };
    let total = opts.sizes.len() * opts.tokens.len() + 1;
    let mut k = 0;
    let mut train_one = |size: ModelSize, tokens: usize, done: &mut Vec<Point>| -> Result<Point> {
        k += 1;
        if let Some(p) = done.iter().find(|p| {
            p.n_layer == size.n_layer
                && p.n_embd == size.n_embd
                && p.tokens >= tokens
                && p.tokens < tokens + opts.tokens_per_step()
        }) {
            log(&format!(
                "run {k} of {total}: {size} on {tokens} tokens done before (loss {:.4})",
                p.loss
            ));
            return Ok(p.clone());
        }
        let o = opts.run_options(size, tokens);
        let params = non_embedding_params(&o, vocab)?;
        let sub = run.file(&format!("runs/{size}-{tokens}"));
        let sub_mode = if mode == RunMode::Resume && sub.is_dir() {
            RunMode::Resume
        } else {
            RunMode::Fresh
        };
        log(&format!(
            "run {k} of {total}: {size} ({params} parameters outside the embedding), {} steps of {} tokens",
            o.max_iters,
            opts.tokens_per_step()
        ));
        let t0 = std::time::Instant::now();
        let out = lm_run::train(&o, text, &sub, sub_mode, StopWhen::default(), log)?;
        let trained = o.max_iters * opts.tokens_per_step();
        let p = Point {
            n_layer: size.n_layer,
            n_embd: size.n_embd,
            params,
            tokens: trained,
            flops: 6.0 * params as f64 * trained as f64,
            loss: out.val_loss as f64,
            seconds: t0.elapsed().as_secs_f64(),
        };
        if !p.loss.is_finite() {
            return Err(format!(
                "run {size} on {tokens} tokens ended with a loss of {}",
                p.loss
            )
            .into());
        }
        log(&format!(
            "  {size}: {} tokens, validation loss {:.4} ({:.0} s, {:.0} tokens/s)",
            trained, p.loss, p.seconds, out.tokens_per_sec
        ));
        done.push(p.clone());
        let records: Vec<Value> = done.iter().map(|p| json!({ "point": p })).collect();
        run.write_metrics(&records)?;
        Ok(p)
    };
    let mut family = Vec::new();
    for &size in &opts.sizes {
        for &tokens in &opts.tokens {
            family.push(train_one(size, tokens, &mut done)?);
        }
    }
    // The prediction is made and written before the larger run starts; a
    // resumed study keeps the one it wrote.
    let pred_opts = opts.run_options(opts.predict, opts.predict_tokens);
    let pred_tokens = pred_opts.max_iters * opts.tokens_per_step();
    let pred_params = non_embedding_params(&pred_opts, vocab)?;
    let (law, objective) = fit(&family)?;
    let mut prediction: Prediction = match run.read_json("prediction.json") {
        Ok(v) if mode == RunMode::Resume => serde_json::from_value(v)?,
        _ => {
            let p = Prediction {
                n_layer: opts.predict.n_layer,
                n_embd: opts.predict.n_embd,
                params: pred_params,
                tokens: pred_tokens,
                flops: 6.0 * pred_params as f64 * pred_tokens as f64,
                predicted_loss: law.loss(pred_params as f64, pred_tokens as f64),
                actual_loss: None,
                error_percent: None,
                predicted_at: now(),
            };
            let mut v = serde_json::to_value(&p)?;
            v["law"] = serde_json::to_value(law)?;
            v["objective"] = json!(objective);
            run.write_json("prediction.json", &v)?;
            p
        }
    };
    log(&format!(
        "fit: L(N, D) = {:.3} + {:.4e}/N^{:.3} + {:.4e}/D^{:.3}; predicted loss of {} ({} parameters) on {} tokens: {:.4} (written to prediction.json before training it)",
        law.e, law.a, law.alpha, law.b, law.beta, opts.predict, pred_params, pred_tokens, prediction.predicted_loss
    ));
    let actual = train_one(opts.predict, opts.predict_tokens, &mut done)?;
    prediction.actual_loss = Some(actual.loss);
    let err = (prediction.predicted_loss - actual.loss) / actual.loss * 100.0;
    prediction.error_percent = Some(err);
    let rms = (family
        .iter()
        .map(|p| {
            let r = (law.loss(p.params as f64, p.tokens as f64) - p.loss) / p.loss;
            r * r
        })
        .sum::<f64>()
        / family.len() as f64)
        .sqrt();
    let compute_optimal = [1.0, 10.0, 100.0]
        .iter()
        .map(|m| {
            let c = prediction.flops * m;
            let (n, d) = law.compute_optimal(c);
            (c, n, d)
        })
        .collect();
    let outcome = ScalingOutcome {
        points: family,
        law,
        fit_rms_relative: rms,
        prediction,
        compute_optimal,
    };
    run.write_json("results.json", &serde_json::to_value(&outcome)?)?;
    draw(&run.file("scaling.png"), &outcome, opts)
        .map_err(|e| format!("{}: {e}", run.file("scaling.png").display()))?;
    Ok(outcome)
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// `scaling.png`: loss against compute (log10 of 6·N·D) with the fitted
/// law through each size's budgets, and the larger run predicted and
/// measured; beside it, each run's fitted loss against its measured loss.
fn draw(path: &Path, o: &ScalingOutcome, opts: &ScalingOptions) -> crate::plot::PlotResult<()> {
    let labels: Vec<String> = opts
        .sizes
        .iter()
        .map(|s| {
            let n = o
                .points
                .iter()
                .find(|p| p.n_layer == s.n_layer && p.n_embd == s.n_embd);
            format!("{s} (N = {})", n.map_or(0, |p| p.params))
        })
        .collect();
    let pred_label = format!("{} predicted (N = {})", opts.predict, o.prediction.params);
    let actual_label = format!("{} measured", opts.predict);
    let mut left = Vec::new();
    for (i, s) in opts.sizes.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<&Point> = o
            .points
            .iter()
            .filter(|p| p.n_layer == s.n_layer && p.n_embd == s.n_embd)
            .collect();
        let mut measured = Series::line(
            &labels[i],
            pts.iter()
                .map(|p| (p.flops.log10() as f32, p.loss as f32))
                .collect(),
            color,
        );
        measured.dots = true;
        left.push(measured);
        if let (Some(first), Some(last)) = (pts.first(), pts.last()) {
            let n = first.params as f64;
            let curve: Vec<(f32, f32)> = (0..=40)
                .map(|j| {
                    let d = (first.tokens as f64).ln()
                        + (last.tokens as f64 / first.tokens as f64).ln() * j as f64 / 40.0;
                    let d = d.exp();
                    ((6.0 * n * d).log10() as f32, o.law.loss(n, d) as f32)
                })
                .collect();
            left.push(Series::line("", curve, color));
        }
    }
    let mut pred = Series::line(
        &pred_label,
        vec![(
            o.prediction.flops.log10() as f32,
            o.prediction.predicted_loss as f32,
        )],
        RGBColor(0, 0, 0),
    );
    pred.dots = true;
    left.push(pred);
    if let Some(a) = o.prediction.actual_loss {
        let mut m = Series::line(
            &actual_label,
            vec![(o.prediction.flops.log10() as f32, a as f32)],
            RGBColor(200, 0, 0),
        );
        m.dots = true;
        left.push(m);
    }
    let fitted: Vec<(f32, f32)> = o
        .points
        .iter()
        .map(|p| {
            (
                p.loss as f32,
                o.law.loss(p.params as f64, p.tokens as f64) as f32,
            )
        })
        .collect();
    let mut ends: Vec<f32> = fitted.iter().flat_map(|p| [p.0, p.1]).collect();
    ends.push(o.prediction.predicted_loss as f32);
    ends.extend(o.prediction.actual_loss.map(|a| a as f32));
    let lo = ends.iter().cloned().fold(f32::MAX, f32::min);
    let hi = ends.iter().cloned().fold(f32::MIN, f32::max);
    let mut right = vec![Series::line(
        "fitted = measured",
        vec![(lo, lo), (hi, hi)],
        RGBColor(150, 150, 150),
    )];
    let mut fam = Series::line("the fitted runs", fitted, PALETTE[0]);
    fam.dots = true;
    right.push(fam);
    if let Some(a) = o.prediction.actual_loss {
        let mut p = Series::line(
            "the predicted run",
            vec![(a as f32, o.prediction.predicted_loss as f32)],
            RGBColor(200, 0, 0),
        );
        p.dots = true;
        right.push(p);
    }
    save_panels(
        path,
        &[
            Panel {
                title: "loss against compute, L = E + A/N^α + B/D^β",
                x_label: "log10 compute C = 6·N·D (FLOPs)",
                y_label: "validation loss (nats/character)",
                series: left,
                log_y: false,
            },
            Panel {
                title: "the law against each run",
                x_label: "measured loss",
                y_label: "fitted / predicted loss",
                series: right,
                log_y: false,
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(law: &Law) -> Vec<Point> {
        let mut v = Vec::new();
        for n in [2e4, 5e4, 1e5, 3e5, 8e5] {
            for d in [5e5, 1e6, 2e6, 4e6] {
                v.push(Point {
                    n_layer: 1,
                    n_embd: 1,
                    params: n as usize,
                    tokens: d as usize,
                    flops: 6.0 * n * d,
                    loss: law.loss(n, d),
                    seconds: 0.0,
                });
            }
        }
        v
    }

    #[test]
    fn the_fit_recovers_a_known_law_and_predicts_beyond_it() {
        let truth = Law {
            e: 1.2,
            a: 40.0,
            alpha: 0.35,
            b: 300.0,
            beta: 0.4,
        };
        let (law, _) = fit(&synthetic(&truth)).unwrap();
        let (n, d) = (3e6, 1.6e7);
        let rel = (law.loss(n, d) - truth.loss(n, d)).abs() / truth.loss(n, d);
        assert!(
            rel < 1e-3,
            "{law:?}: predicted {} vs {}",
            law.loss(n, d),
            truth.loss(n, d)
        );
        assert!((law.alpha - truth.alpha).abs() < 0.02, "{law:?}");
    }

    #[test]
    fn compute_optimal_size_minimises_the_loss_along_the_budget() {
        let law = Law {
            e: 1.0,
            a: 400.0,
            alpha: 0.34,
            b: 410.0,
            beta: 0.28,
        };
        let c = 1e15;
        let (n, d) = law.compute_optimal(c);
        assert!((6.0 * n * d / c - 1.0).abs() < 1e-9);
        let l = law.loss(n, d);
        for f in [0.8, 0.9, 1.1, 1.25] {
            assert!(law.loss(n * f, d / f) > l, "factor {f}");
        }
    }

    #[test]
    fn specs_parse_and_bad_ones_name_their_option() {
        assert_eq!(
            parse_sizes("2x32, 3x64").unwrap(),
            vec![
                ModelSize {
                    n_layer: 2,
                    n_embd: 32
                },
                ModelSize {
                    n_layer: 3,
                    n_embd: 64
                }
            ]
        );
        assert_eq!(
            parse_tokens("500k,1.5M,2000").unwrap(),
            vec![500_000, 1_500_000, 2000]
        );
        assert!(parse_sizes("0x32")
            .unwrap_err()
            .to_string()
            .starts_with("sizes"));
        assert!(parse_tokens("lots")
            .unwrap_err()
            .to_string()
            .starts_with("tokens"));
        let o = ScalingOptions {
            sizes: parse_sizes("2x32,3x64").unwrap(),
            tokens: parse_tokens("1M,2M").unwrap(),
            ..ScalingOptions::default()
        };
        assert!(o.validate().unwrap_err().to_string().contains("at least"));
        let o = ScalingOptions {
            predict: ModelSize {
                n_layer: 2,
                n_embd: 40,
            },
            ..ScalingOptions::default()
        };
        assert!(o.validate().unwrap_err().to_string().starts_with("predict"));
    }
}
