//! Model selection on the validation set: a grid of LeNet-5 layer sizes
//! (C1 maps, C3 maps, F6 units) and learning rates, each setting trained
//! with the same seed and budget on the 55,000 training images and scored on
//! the 5,000 validation images. The best validation accuracy wins (ties go to
//! the smaller model), and only the winner is scored on the test set, once:
//! choosing by test accuracy would make the test figure optimistic.

use crate::classify::evaluate;
use crate::fit::{fit, FitOptions};
use crate::lenet5_run::Splits;
use crate::run_dir::RunDir;
use crate::Result;
use kindling_data::Normalize;
use kindling_models::lenet5::{LeNet5, LeNet5Config};
use kindling_nn::{checkpoint, Module};
use kindling_tensor::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;
use std::time::Instant;

/// One point of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub c1: usize,
    pub c3: usize,
    pub f6: usize,
    /// Peak learning rate (f64 so that `0.002` stays `0.002` in JSON).
    pub lr: f64,
}

impl Default for Setting {
    /// The paper's sizes and the trainer's default learning rate.
    fn default() -> Self {
        let model = LeNet5Config::default();
        Setting {
            c1: model.c1,
            c3: model.c3,
            f6: model.f6,
            lr: 2e-3,
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "c1={} c3={} f6={} lr={}",
            self.c1, self.c3, self.f6, self.lr
        )
    }
}

impl Setting {
    /// `base` (activation, pooling) with this setting's layer sizes.
    pub fn model_config(&self, base: &LeNet5Config) -> LeNet5Config {
        LeNet5Config {
            c1: self.c1,
            c3: self.c3,
            f6: self.f6,
            ..base.clone()
        }
    }

    /// Multiply-adds of one image's forward pass: C1 28x28 outputs, C3
    /// 10x10, C5 1x1, then the two linear layers. Training time per image
    /// is roughly proportional, which is what the sweep's estimate uses.
    pub fn multiply_adds(&self) -> usize {
        let (c1, c3, f6) = (self.c1, self.c3, self.f6);
        28 * 28 * c1 * 25 + 10 * 10 * c3 * c1 * 25 + 120 * c3 * 25 + 120 * f6 + f6 * 10
    }
}

/// The keys a grid may set, in the order the product varies them (the
/// last fastest).
pub const GRID_KEYS: [&str; 4] = ["c1", "c3", "f6", "lr"];

/// Parses `"c1=4,6,12 c3=8,16,32 f6=42,84,168"` into the cartesian product
/// of its values; keys left out keep `base`'s value. Every error quotes the
/// grid.
pub fn parse_grid(grid: &str, base: &Setting) -> Result<Vec<Setting>> {
    let bad = |what: String| crate::Error::option("grid", format!("\"{grid}\": {what}"));
    let example = "e.g. \"c1=4,6,12 c3=8,16,32 f6=42,84,168 lr=1e-3,2e-3\"";
    let mut axes: [Option<Vec<f64>>; 4] = Default::default();
    for term in grid.split_whitespace() {
        let Some((key, values)) = term.split_once('=') else {
            return Err(bad(format!("`{term}` is not KEY=V1,V2,... ({example})")));
        };
        let Some(k) = GRID_KEYS.iter().position(|&g| g == key) else {
            return Err(bad(format!(
                "unknown key `{key}` (known: {})",
                GRID_KEYS.join(", ")
            )));
        };
        if axes[k].is_some() {
            return Err(bad(format!("`{key}` is given twice")));
        }
        let mut parsed = Vec::new();
        for v in values.split(',') {
            if v.is_empty() {
                return Err(bad(format!("`{key}` has an empty value ({example})")));
            }
            let x =
                if key == "lr" {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && *x > 0.0)
                        .ok_or_else(|| bad(format!("`{v}` is not a positive number (lr)")))?
                } else {
                    v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                        bad(format!("`{v}` is not a positive whole number ({key})"))
                    })? as f64
                };
            if parsed.contains(&x) {
                return Err(bad(format!("`{key}` lists {v} twice")));
            }
            parsed.push(x);
        }
        axes[k] = Some(parsed);
    }
    if axes.iter().all(Option::is_none) {
        return Err(bad(format!("no settings ({example})")));
    }
    let defaults = [base.c1 as f64, base.c3 as f64, base.f6 as f64, base.lr];
    let axes: Vec<Vec<f64>> = axes
        .into_iter()
        .zip(defaults)
        .map(|(a, d)| a.unwrap_or_else(|| vec![d]))
        .collect();
    let mut settings = Vec::new();
    for &c1 in &axes[0] {
        for &c3 in &axes[1] {
            for &f6 in &axes[2] {
                for &lr in &axes[3] {
                    settings.push(Setting {
                        c1: c1 as usize,
                        c3: c3 as usize,
                        f6: f6 as usize,
                        lr,
                    });
                }
            }
        }
    }
    Ok(settings)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepOptions {
    /// The same budget for every setting.
    pub epochs: usize,
    pub batch_size: usize,
    /// "adam" or "sgd".
    pub optimizer: String,
    /// The same seed for every setting: initial weights and batch order.
    pub seed: u64,
    /// Activation and pooling; the sizes come from each setting.
    pub model: LeNet5Config,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            epochs: 2,
            batch_size: 64,
            optimizer: "adam".into(),
            seed: 0,
            model: LeNet5Config::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SettingResult {
    pub setting: Setting,
    pub params: usize,
    /// After the last epoch.
    pub val_accuracy: f32,
    pub val_loss: f32,
    pub seconds: f32,
}

impl SettingResult {
    pub fn to_json(&self) -> Value {
        json!({
            "setting": self.setting,
            "params": self.params,
            "val_accuracy": self.val_accuracy,
        })
    }
}

pub struct SweepOutcome {
    /// In grid order.
    pub results: Vec<SettingResult>,
    /// Index into `results` of the winner.
    pub best: usize,
    pub test_accuracy: f32,
    pub test_loss: f32,
    pub test_images: usize,
    pub seconds: f32,
}

impl SweepOutcome {
    pub fn to_json(&self) -> Value {
        json!({
            "results": self.results.iter().map(SettingResult::to_json).collect::<Vec<_>>(),
            "best": self.results[self.best].to_json(),
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "test_images": self.test_images,
        })
    }
}

/// The highest validation accuracy; among equals the fewest parameters,
/// then the first in grid order. `None` for no results.
pub fn pick_best(results: &[SettingResult]) -> Option<usize> {
    (0..results.len()).reduce(|best, i| {
        let (a, b) = (&results[i], &results[best]);
        let better = a.val_accuracy > b.val_accuracy
            || (a.val_accuracy == b.val_accuracy && a.params < b.params);
        if better {
            i
        } else {
            best
        }
    })
}

/// Trains every setting, writes a `metrics.jsonl` line as each finishes,
/// then scores the winner on `data.test` and writes `results.json` and the
/// winner's `model.safetensors` into `run`. Each setting's model is kept
/// (`setting-N.safetensors`) before its line is written, so `resume` (a run directory an
/// interrupted sweep left) skips the settings already done, after checking
/// the grid and options are the same; an interruption loses at most the
/// setting under way.
pub fn sweep(
    settings: &[Setting],
    opts: &SweepOptions,
    data: &Splits,
    run: &RunDir,
    resume: bool,
    log: &dyn Fn(&str),
) -> Result<SweepOutcome> {
    if settings.is_empty() {
        return Err("sweep: the grid has no settings".into());
    }
    if data.val.is_empty() {
        return Err("sweep: the validation set is empty; nothing to choose by".into());
    }
    let config = json!({ "options": opts, "settings": settings, "train_images": data.train.len(),
                         "val_images": data.val.len(), "test_images": data.test.len() });
    let mut results: Vec<SettingResult> = Vec::with_capacity(settings.len());
    let mut metrics: Vec<Value> = Vec::new();
    let mut best_model: Option<LeNet5> = None;
    if resume && run.file("config.json").exists() {
        let stored = run.read_json("config.json")?;
        let differ = crate::gpt_run::changed_options(&stored, &config, &[]);
        if !differ.is_empty() {
            return Err(format!(
                "{} holds a sweep with other settings ({}); use the same options or a new `out`",
                run.path.display(),
                differ.join(", ")
            )
            .into());
        }
        for line in run.read_metrics()? {
            let done = settings
                .get(results.len())
                .filter(|s| json!(s) == line["setting"]);
            let (Some(setting), Some(params), Some(acc), Some(loss)) = (
                done,
                line["params"].as_u64(),
                line["val_accuracy"].as_f64(),
                line["val_loss"].as_f64(),
            ) else {
                break;
            };
            results.push(SettingResult {
                setting: setting.clone(),
                params: params as usize,
                val_accuracy: acc as f32,
                val_loss: loss as f32,
                seconds: line["seconds"].as_f64().unwrap_or(0.0) as f32,
            });
            metrics.push(line);
        }
        if let Some(b) = pick_best(&results) {
            let path = run.file(&format!("setting-{b}.safetensors"));
            let model = LeNet5::new(
                results[b].setting.model_config(&opts.model),
                &mut Rng::new(opts.seed),
            )?;
            checkpoint::read(&path)?.load_into(&model, &path)?;
            best_model = Some(model);
        }
        log(&format!(
            "resuming the sweep in {}: {} of {} settings done",
            run.path.display(),
            results.len(),
            settings.len()
        ));
    }
    run.write_json("config.json", &config)?;
    log(&format!(
        "{} settings x {} x {} training images; validation on {} images",
        settings.len(),
        crate::progress::count(opts.epochs, "epoch"),
        data.train.len(),
        data.val.len()
    ));
    let total_work: f64 = settings
        .iter()
        .skip(results.len())
        .map(|s| s.multiply_adds() as f64)
        .sum();
    let (mut done_work, started) = (0f64, Instant::now());
    for (i, setting) in settings.iter().enumerate().skip(results.len()) {
        let model = LeNet5::new(setting.model_config(&opts.model), &mut Rng::new(opts.seed))?;
        let params = model.num_parameters();
        log(&format!(
            "[{}/{}] {setting}: {params} parameters",
            i + 1,
            settings.len()
        ));
        let fit_opts = FitOptions {
            epochs: opts.epochs,
            batch_size: opts.batch_size,
            lr: setting.lr as f32,
            optimizer: opts.optimizer.clone(),
            seed: opts.seed,
        };
        let t0 = Instant::now();
        let label = format!("[{}/{}]", i + 1, settings.len());
        let records = fit(
            &model,
            data.train,
            Some(data.val),
            &fit_opts,
            &label,
            &mut |_| Ok(()),
        )?;
        let last = records.last().expect("fit ran at least one epoch");
        let result = SettingResult {
            setting: setting.clone(),
            params,
            val_accuracy: last.val_accuracy.expect("a validation set was given"),
            val_loss: last.val_loss.expect("a validation set was given"),
            seconds: t0.elapsed().as_secs_f32(),
        };
        done_work += setting.multiply_adds() as f64;
        let left_s = started.elapsed().as_secs_f64() * (total_work - done_work) / done_work;
        log(&format!(
            "[{}/{}] {setting}: validation accuracy {:.2}% ({:.0} s){}",
            i + 1,
            settings.len(),
            result.val_accuracy * 100.0,
            result.seconds,
            if i + 1 < settings.len() {
                format!(
                    "; about {:.0} min left (estimated from the speed so far, scaled by multiply-adds)",
                    (left_s / 60.0).ceil()
                )
            } else {
                String::new()
            }
        ));
        let mut line = result.to_json();
        line["val_loss"] = json!(result.val_loss);
        line["seconds"] = json!(result.seconds);
        line["epochs"] = records.iter().map(|r| r.to_json()).collect();
        // The model first, then its line: a line on disk always has its model.
        let meta = json!({ "model": "lenet5", "lenet5": model.config, "sweep_setting": setting });
        checkpoint::save(
            &run.file(&format!("setting-{i}.safetensors")),
            &model,
            &meta,
            &[],
        )?;
        metrics.push(line);
        run.write_metrics(&metrics)?;
        results.push(result);
        if pick_best(&results) == Some(i) {
            best_model = Some(model);
        }
    }
    let best = pick_best(&results).expect("at least one setting ran");
    let model = best_model.expect("the best setting's model was kept");
    let test = evaluate(&model, data.test, 10, Normalize::MNIST)?;
    log(&format!(
        "winner {}: test accuracy {:.2}% on {} images (scored once, for the winner only)",
        results[best].setting,
        test.accuracy * 100.0,
        data.test.len()
    ));
    let meta = json!({
        "model": "lenet5",
        "lenet5": model.config,
        "sweep_setting": results[best].setting,
        "epochs_done": opts.epochs,
    });
    checkpoint::save(&run.file("model.safetensors"), &model, &meta, &[])?;
    let outcome = SweepOutcome {
        results,
        best,
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        test_images: data.test.len(),
        seconds: started.elapsed().as_secs_f32(),
    };
    run.write_json("results.json", &outcome.to_json())?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(text: &str) -> Result<Vec<Setting>> {
        parse_grid(text, &Setting::default())
    }

    #[test]
    fn the_default_grid_is_a_27_setting_product_varying_the_last_key_fastest() {
        let s = grid("c1=4,6,12 c3=8,16,32 f6=42,84,168").unwrap();
        assert_eq!(s.len(), 27);
        assert_eq!((s[0].c1, s[0].c3, s[0].f6), (4, 8, 42));
        assert_eq!((s[1].c1, s[1].c3, s[1].f6), (4, 8, 84));
        assert_eq!((s[26].c1, s[26].c3, s[26].f6), (12, 32, 168));
        assert!(s.iter().all(|x| x.lr == 2e-3));
    }

    #[test]
    fn keys_left_out_keep_the_defaults_and_lr_may_be_swept() {
        let s = grid("lr=1e-3,0.004  f6=84").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].c1, s[0].c3, s[0].f6, s[0].lr), (6, 16, 84, 1e-3));
        assert_eq!(s[1].lr, 0.004);
        assert_eq!(s[1].to_string(), "c1=6 c3=16 f6=84 lr=0.004");
    }

    #[test]
    fn malformed_grids_are_errors_that_quote_the_grid() {
        for (text, says) in [
            ("c1=", "empty value"),
            ("c1=4,,6", "empty value"),
            ("c9=3", "unknown key `c9`"),
            ("c1=a", "`a` is not a positive whole number"),
            ("c1=0", "not a positive whole number"),
            ("c1=2.5", "not a positive whole number"),
            ("lr=-1", "not a positive number (lr)"),
            ("c1", "not KEY=V1,V2"),
            ("c1=4 c1=6", "given twice"),
            ("c1=4,4", "lists 4 twice"),
            ("", "no settings"),
            ("   ", "no settings"),
        ] {
            // The library names the option's field; the CLI says --grid.
            let err = grid(text).unwrap_err();
            assert!(
                matches!(&err, crate::Error::Option { field: "grid", .. }),
                "{err}"
            );
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("grid \"{text}\"")), "{msg}");
            assert!(msg.contains(says), "{text}: {msg}");
        }
    }

    #[test]
    fn multiply_adds_of_the_paper_sizes() {
        // C1 28*28*6*25 + C3 10*10*16*6*25 + C5 120*16*25 + F6 120*84 + 84*10.
        assert_eq!(Setting::default().multiply_adds(), 416_520);
    }

    fn result(val_accuracy: f32, params: usize) -> SettingResult {
        SettingResult {
            setting: Setting::default(),
            params,
            val_accuracy,
            val_loss: 0.0,
            seconds: 0.0,
        }
    }

    #[test]
    fn best_is_the_highest_validation_accuracy_then_the_smallest_model() {
        assert_eq!(pick_best(&[]), None);
        let r = [
            result(0.98, 100),
            result(0.99, 300),
            result(0.99, 200),
            result(0.97, 10),
        ];
        assert_eq!(pick_best(&r), Some(2));
        let tie = [result(0.99, 200), result(0.99, 200)];
        assert_eq!(pick_best(&tie), Some(0), "first in grid order");
    }
}
