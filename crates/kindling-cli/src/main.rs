//! `kindling`: train, inspect and run Kindling's models from the command line.
//! Progress and logs go to stderr; with `--json` the last line of stdout is
//! exactly one JSON object.

mod common;
mod compress;
mod data_cmd;
mod demo;
mod distributed_cmd;
mod eval_lm;
mod gpt;
mod lab;
mod lab_attack;
mod lab_bert;
mod lab_gradients;
mod lab_resnet;
mod lab_scaling;
mod lab_seq2seq;
mod lab_translate;
mod lab_word2vec;
mod lenet;
mod lm;
mod post_train;
mod report;
mod score_cmd;
#[cfg(feature = "serve")]
mod serve_cmd;
mod ship;
mod stop;
mod tokenize_cmd;
mod train_lm;
mod train_options;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kindling",
    version,
    about = "Kindling (火种): the story of modern AI, runnable and fast, in Rust"
)]
struct Cli {
    /// Train as one rank of an MPI job (`mpirun -np N kindling train ... --distributed mpi`,
    /// or `kindling launch`): each rank takes its part of every batch, rank 0 writes the run
    /// [default: one process].
    #[arg(long, global = true, value_name = "BACKEND")]
    distributed: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The first chapter: a neuron, the perceptron, XOR, gradient descent.
    Demo {
        #[command(subcommand)]
        demo: demo::Demo,
    },
    /// Train a model.
    Train {
        #[command(subcommand)]
        model: TrainModel,
    },
    /// Test accuracy, per-class accuracy and confusion matrix of a trained model: `eval lenet5 --ckpt DIR`.
    #[command(after_help = "The old spelling `kindling eval --ckpt DIR` still works.")]
    Eval {
        #[command(subcommand)]
        model: EvalModel,
    },
    /// Evaluate a language model: perplexity of a text, multiple-choice accuracy, contamination of a task.
    EvalLm {
        #[command(subcommand)]
        cmd: eval_lm::EvalLmCmd,
    },
    /// Read handwritten digits from PNG/JPEG files with a trained model: `predict lenet5 --ckpt DIR IMAGE...`.
    #[command(after_help = "The old spelling `kindling predict --ckpt DIR IMAGE...` still works.")]
    Predict {
        #[command(subcommand)]
        model: PredictModel,
    },
    /// Continue a text with a trained GPT (--ckpt) or a pretrained model (--model), streaming as it is sampled.
    Generate(gpt::Generate),
    /// The next-token distribution of a language model for a text (top K).
    NextToken(lm::NextToken),
    /// Talk to a chat model: one answer with --message, else an interactive session.
    Chat(lm::Chat),
    /// Draw a trained model's attention matrix for a text as a heatmap: `attention gpt --ckpt DIR`.
    #[command(
        after_help = "The old spelling `kindling attention --ckpt DIR --text TEXT --out FILE.png` still works."
    )]
    Attention {
        #[command(subcommand)]
        model: AttentionModel,
    },
    /// Measure training speed (compare with bench/pytorch in the same run).
    Bench {
        #[command(subcommand)]
        model: BenchModel,
    },
    /// Corpus BLEU, chrF and chrF++ of a hypothesis file against reference files, as sacreBLEU computes them.
    Score(score_cmd::Score),
    /// Cut a text into tokens with a byte-level BPE and show where it cuts.
    Tokenize(tokenize_cmd::Tokenize),
    /// Tokenizers: train a byte-level BPE.
    Tokenizer {
        #[command(subcommand)]
        cmd: tokenize_cmd::TokenizerCmd,
    },
    /// Datasets: list them, fetch one into the data root (SHA-256 checked).
    Data {
        #[command(subcommand)]
        cmd: data_cmd::DataCmd,
    },
    /// Adversarial examples against a trained LeNet-5.
    Attack {
        #[command(subcommand)]
        attack: lab_attack::Attack,
    },
    /// Lessons as experiments: `lab word2vec` and `lab analogy` (word vectors), `lab gradients`
    /// (vanishing gradients and the residual shortcut), `lab resnet` (the degradation problem),
    /// `lab seq2seq` (recurrent networks and why attention), `lab bert` (masked words and what 道
    /// means), `lab translate` (translation two ways), `lab scaling` (a scaling law that predicts).
    Lab {
        #[command(subcommand)]
        lab: lab_gradients::Lab,
    },
    /// Look inside a trained model: every layer's activations for one image.
    Inspect {
        #[command(subcommand)]
        model: lab_attack::Inspect,
    },
    /// Fine-tune a trained model on new data, against zero-shot and from-scratch baselines.
    Finetune {
        #[command(subcommand)]
        model: lab::FinetuneModel,
    },
    /// Choose layer sizes on the validation set; score the test set once, for the winner.
    Sweep {
        #[command(subcommand)]
        model: lab::SweepModel,
    },
    /// Score one answer to a prompt with a reward model (`train reward`).
    Reward(post_train::Reward),
    /// LoRA adapters: fold one into its base's weights.
    Lora {
        #[command(subcommand)]
        cmd: post_train::LoraCmd,
    },
    /// A chat's memory (`chat --memory DIR`): consolidate it into an adapter, or roll back.
    Memory {
        #[command(subcommand)]
        cmd: post_train::MemoryCmd,
    },
    /// Write a LLaMA as a GGUF file in llama.cpp's q8_0 / q4_0 / q4_1 (or f16, f32)
    Quantize(ship::Quantize),
    /// Train a small student on a teacher's next-token distributions (knowledge distillation).
    Distill(compress::Distill),
    /// Zero the smallest weights of a model's block linear layers (magnitude or 2:4), optionally fine-tune after.
    Prune(compress::Prune),
    /// Run a training command as an MPI job, restarting it from its last checkpoint when a rank dies.
    Launch(distributed_cmd::Launch),
    /// Back-of-the-envelope simulations: `sim goodput` (training time lost to failures at scale).
    Sim {
        #[command(subcommand)]
        cmd: distributed_cmd::SimCmd,
    },
    /// Serve a language model: OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models) and a web chat at /.
    #[cfg(feature = "serve")]
    Serve(serve_cmd::Serve),
}

/// Commands that took no model word before the grammar became `kindling
/// <verb> <model>`: their old spelling (`kindling eval --ckpt DIR`) still
/// works, by inserting the one model word they can mean.
const OLD_SPELLINGS: &[(&str, &str)] = &[
    ("eval", "lenet5"),
    ("predict", "lenet5"),
    ("attention", "gpt"),
];

fn with_model_word(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let verb = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let next = args.get(2).and_then(|a| a.to_str());
    if let Some((_, model)) = OLD_SPELLINGS.iter().find(|(v, _)| *v == verb) {
        // `kindling eval --help` shows the verb's help; `kindling eval` alone
        // says, as it always did, that --ckpt is missing.
        if next.is_none_or(|n| n != *model && !matches!(n, "-h" | "--help" | "help")) {
            args.insert(2, model.into());
        }
    }
    args
}

#[derive(Subcommand)]
enum EvalModel {
    /// A LeNet-5 on the MNIST test set (10,000 images).
    Lenet5(lenet::Eval),
}

#[derive(Subcommand)]
enum PredictModel {
    /// A LeNet-5 reads each image as one digit.
    Lenet5(lenet::Predict),
}

#[derive(Subcommand)]
enum AttentionModel {
    /// A character GPT trained with `kindling train gpt`.
    Gpt(gpt::Attention),
}

#[derive(Subcommand)]
enum TrainModel {
    /// LeNet-5 on MNIST (55,000 train / 5,000 validation / 10,000 test).
    Lenet5(lenet::TrainLenet5),
    /// A character-level GPT (decoder-only Transformer) on a text corpus.
    Gpt(gpt::TrainGpt),
    /// A LLaMA- or GPT-2-architecture language model with a BPE (or character) tokenizer.
    Lm(train_lm::TrainLm),
    /// A reward model (scalar head on a LLaMA, Bradley-Terry loss) on preference pairs.
    Reward(post_train::TrainReward),
}

#[derive(Subcommand)]
enum BenchModel {
    /// LeNet-5 training steps on MNIST batches.
    Lenet5(lenet::BenchLenet5),
    /// GPT training iterations and KV-cache generation.
    Gpt(gpt::BenchGpt),
    /// A pretrained language model's prefill and KV-cached generation speed.
    Lm(lm::BenchLm),
    /// Tokenizer encoding throughput (MB/s) on a corpus.
    Tokenizer(tokenize_cmd::BenchTokenizer),
    /// Fine-tuning speed of a pretrained model (full or LoRA): tokens/s and peak memory.
    Sft(post_train::BenchSft),
    /// The gradient all-reduce of a distributed job (run under mpirun with --distributed mpi).
    Allreduce(distributed_cmd::BenchAllreduce),
}

/// Training allocates and frees the same large activation buffers every
/// step. glibc serves blocks above 128 KiB with fresh mmaps, so each step
/// would pay page faults and zeroing again; keeping them on the heap
/// (and not trimming it) lets freed buffers be reused.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`kindling … | head`)
/// would panic with "failed printing to stdout". The default action ends
/// the program quietly instead, as it does every Unix filter.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start-up, before any threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    tune_allocator();
    let cli = match Cli::try_parse_from(with_model_word(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line, keeping what says what is wrong: the missing
            // argument's name, the possible values, "did you mean", the tip
            // for negative numbers; not the usage block.
            let text = e.to_string();
            let first = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:"))
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let mut first = first.trim_start_matches("error: ").to_string();
            if first.starts_with("unexpected argument '-")
                && first
                    .chars()
                    .nth("unexpected argument '-".len())
                    .is_some_and(|c| c.is_ascii_digit() || c == '.')
            {
                first.push_str(" tip: a negative value goes after '=', e.g. --lr=-0.1");
            }
            eprintln!("error: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    let training = matches!(
        cli.command,
        Command::Train { .. }
            | Command::Finetune { .. }
            | Command::Sweep { .. }
            | Command::Distill(_)
            | Command::Prune(_)
            | Command::Bench {
                model: BenchModel::Allreduce(_)
            }
    );
    let _session = match distributed_cmd::setup(cli.distributed.as_deref(), training) {
        Ok(s) => s,
        Err(e) => {
            let msg = common::user_message(&e);
            distributed_cmd::fail(&msg);
            eprintln!("error: {msg}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Demo { demo } => demo::run(demo),
        Command::Train {
            model: TrainModel::Lenet5(a),
        } => lenet::train(a),
        Command::Eval {
            model: EvalModel::Lenet5(a),
        } => lenet::eval(a),
        Command::Predict {
            model: PredictModel::Lenet5(a),
        } => lenet::predict(a),
        Command::Attention {
            model: AttentionModel::Gpt(a),
        } => gpt::attention(a),
        Command::Train {
            model: TrainModel::Gpt(a),
        } => gpt::train(a),
        Command::Train {
            model: TrainModel::Lm(a),
        } => train_lm::train(a),
        Command::Generate(a) => gpt::generate(a),
        Command::NextToken(a) => lm::next_token(a),
        Command::EvalLm { cmd } => eval_lm::run(cmd),
        Command::Chat(a) => lm::chat(a),
        Command::Bench {
            model: BenchModel::Gpt(a),
        } => gpt::bench(a),
        Command::Bench {
            model: BenchModel::Lenet5(a),
        } => lenet::bench(a),
        Command::Bench {
            model: BenchModel::Lm(a),
        } => lm::bench(a),
        Command::Data { cmd } => data_cmd::run(cmd),
        Command::Score(a) => score_cmd::score(a),
        Command::Tokenize(a) => tokenize_cmd::tokenize(a),
        Command::Tokenizer { cmd } => tokenize_cmd::run(cmd),
        Command::Bench {
            model: BenchModel::Tokenizer(a),
        } => tokenize_cmd::bench(a),
        Command::Attack { attack } => lab_attack::attack(attack),
        Command::Inspect { model } => lab_attack::inspect(model),
        Command::Lab { lab } => lab_gradients::lab(lab),
        Command::Finetune { model } => lab::finetune(model),
        Command::Sweep { model } => lab::sweep(model),
        Command::Train {
            model: TrainModel::Reward(a),
        } => post_train::train_reward(a),
        Command::Bench {
            model: BenchModel::Sft(a),
        } => post_train::bench_sft(a),
        Command::Reward(a) => post_train::reward(a),
        Command::Lora { cmd } => post_train::lora(cmd),
        Command::Quantize(a) => ship::quantize(a),
        Command::Distill(a) => compress::distill(a),
        Command::Prune(a) => compress::prune(a),
        Command::Launch(a) => distributed_cmd::launch(a),
        Command::Bench {
            model: BenchModel::Allreduce(a),
        } => distributed_cmd::bench_allreduce(a),
        Command::Sim { cmd } => distributed_cmd::sim(cmd),
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve_cmd::run(a),
        Command::Memory { cmd } => post_train::memory_cmd(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = common::user_message(&e);
            distributed_cmd::fail(&msg);
            eprintln!("error: {msg}");
            stop::exit_code().map_or(ExitCode::FAILURE, ExitCode::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{ArgAction, CommandFactory};

    /// Every option of every command, with the command's path.
    fn options(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_positional() || a.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            out.push((path.to_string(), a.clone()));
        }
        for sub in cmd.get_subcommands() {
            options(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn the_command_tree_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_option_has_a_help_line_and_says_its_default() {
        let mut all = Vec::new();
        options(&Cli::command(), "kindling", &mut all);
        assert!(all.len() > 100, "walked {} options", all.len());
        let mut problems = Vec::new();
        for (path, a) in &all {
            let flag = format!("{path} --{}", a.get_long().unwrap_or("?"));
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            if help.trim().is_empty() {
                problems.push(format!("{flag}: no help"));
                continue;
            }
            if help.contains('\n') {
                problems.push(format!("{flag}: help is more than one line"));
            }
            // An option taking a value that may be left out says what it
            // then is: a clap default, or "[default: ...]" in the text, or
            // which other option is needed instead ("this or --x is required").
            let takes_value = matches!(a.get_action(), ArgAction::Set | ArgAction::Append);
            if takes_value
                && !a.is_required_set()
                && a.get_default_values().is_empty()
                && !help.contains("[default: ")
                && !help.contains("is required)")
            {
                problems.push(format!("{flag}: no default shown"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn json_and_threads_mean_the_same_on_every_command() {
        let mut all = Vec::new();
        options(&Cli::command(), "kindling", &mut all);
        for id in ["json", "threads"] {
            let helps: Vec<String> = all
                .iter()
                .filter(|(_, a)| a.get_id().as_str() == id)
                .map(|(_, a)| a.get_help().map(|h| h.to_string()).unwrap_or_default())
                .collect();
            assert!(helps.len() > 5, "--{id} on {} commands", helps.len());
            assert!(helps.iter().all(|h| *h == helps[0]), "--{id}: {helps:?}");
        }
    }
}
