//! `kindling`: train, inspect and run Kindling's models from the command line.
//! Progress and logs go to stderr; with `--json` the last line of stdout is
//! exactly one JSON object.

mod data_cmd;
mod demo;
mod gpt;
mod lab;
mod lab_attack;
mod lenet;
mod lm;
mod report;
mod stop;
mod tokenize_cmd;
mod train_lm;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kindling",
    version,
    about = "Kindling (火种): the story of modern AI, runnable and fast, in Rust"
)]
struct Cli {
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
    /// Test accuracy, per-class accuracy and confusion matrix of a checkpoint.
    Eval(lenet::Eval),
    /// Read handwritten digits from PNG/JPEG files with a trained LeNet-5.
    Predict(lenet::Predict),
    /// Continue a text with a trained GPT (--ckpt) or a pretrained model (--model), streaming as it is sampled.
    Generate(gpt::Generate),
    /// The next-token distribution of a language model for a text (top K).
    NextToken(lm::NextToken),
    /// Talk to a chat model: one answer with --message, else an interactive session.
    Chat(lm::Chat),
    /// Draw a GPT's attention matrix for a text as a heatmap.
    Attention(gpt::Attention),
    /// Measure training speed (compare with bench/pytorch in the same run).
    Bench {
        #[command(subcommand)]
        model: BenchModel,
    },
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
}

#[derive(Subcommand)]
enum TrainModel {
    /// LeNet-5 on MNIST (55,000 train / 5,000 validation / 10,000 test).
    Lenet5(lenet::TrainLenet5),
    /// A character-level GPT (decoder-only Transformer) on a text corpus.
    Gpt(gpt::TrainGpt),
    /// A LLaMA- or GPT-2-architecture language model with a BPE (or character) tokenizer.
    Lm(train_lm::TrainLm),
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
    let cli = match Cli::try_parse() {
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
    let result = match cli.command {
        Command::Demo { demo } => demo::run(demo),
        Command::Train {
            model: TrainModel::Lenet5(a),
        } => lenet::train(a),
        Command::Eval(a) => lenet::eval(a),
        Command::Predict(a) => lenet::predict(a),
        Command::Train {
            model: TrainModel::Gpt(a),
        } => gpt::train(a),
        Command::Train {
            model: TrainModel::Lm(a),
        } => train_lm::train(a),
        Command::Generate(a) => gpt::generate(a),
        Command::Attention(a) => gpt::attention(a),
        Command::NextToken(a) => lm::next_token(a),
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
        Command::Tokenize(a) => tokenize_cmd::tokenize(a),
        Command::Tokenizer { cmd } => tokenize_cmd::run(cmd),
        Command::Bench {
            model: BenchModel::Tokenizer(a),
        } => tokenize_cmd::bench(a),
        Command::Attack { attack } => lab_attack::attack(attack),
        Command::Inspect { model } => lab_attack::inspect(model),
        Command::Finetune { model } => lab::finetune(model),
        Command::Sweep { model } => lab::sweep(model),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            stop::exit_code().map_or(ExitCode::FAILURE, ExitCode::from)
        }
    }
}
