//! Argument parsing and the subcommands. Each subcommand only calls the library.

mod bench_cnn;
mod bench_model;
mod classical_args;
mod cnn_args;
mod compare;
mod eval;
mod export;
mod extract;
mod hog_image;
mod options;
mod predict;
mod prune;
mod quantize;
mod train;

use clap::{Parser, Subcommand};

/// HOG features that match scikit-image, fast (and, later, PCA + linear SVM vs a small CNN).
#[derive(Debug, Parser)]
#[command(name = "hogsvm", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Extract HOG features of a dataset to NumPy .npy files (features and labels).
    Extract(extract::ExtractArgs),
    /// Draw the HOG visualisation of one image (like scikit-image's visualize=True) as PNG.
    HogImage(hog_image::HogImageArgs),
    /// Train the classical pipeline (HOG, feature map, PCA, linear SVM) or, with --model cnn,
    /// the small CNN, and save the model.
    Train(Box<train::TrainArgs>),
    /// Evaluate a model on labelled data: classification report and confusion matrix.
    Eval(eval::EvalArgs),
    /// Predict the class of image files or folders (CSV or JSON).
    Predict(predict::PredictArgs),
    /// Export a model file (either kind) as ONNX, for onnxruntime and other runtimes.
    Export(export::ExportArgs),
    /// Prune a CNN model: remove conv filters by L1 norm (or zero weights), then fine-tune.
    Prune(prune::PruneArgs),
    /// Quantise a CNN model to int8 (static, calibrated on training images, or dynamic).
    Quantize(quantize::QuantizeArgs),
    /// Train and evaluate the classical pipeline(s) and the CNN on the same split; write
    /// report.md, report.html and report.json.
    Compare(Box<compare::CompareArgs>),
    /// Time CNN training steps and inference (used by scripts/peer_cnn.py); prints JSON.
    #[command(hide = true)]
    BenchCnn(bench_cnn::BenchCnnArgs),
    /// Time HOG extraction on a dataset (used by scripts/peer_hog.py); prints JSON.
    BenchHog(extract::BenchArgs),
    /// Measure a saved model on a test set as compare does (used by scripts/prune_bench.sh);
    /// prints JSON.
    #[command(hide = true)]
    BenchModel(bench_model::BenchModelArgs),
}

/// Parse the command line and run the subcommand.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Extract(a) => extract::run(a),
        Command::HogImage(a) => hog_image::run(a),
        Command::Train(a) => train::train(*a),
        Command::Eval(a) => eval::eval(a),
        Command::Predict(a) => predict::predict(a),
        Command::Export(a) => export::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::BenchHog(a) => extract::bench(a),
        Command::Compare(a) => compare::run(*a),
        Command::BenchCnn(a) => bench_cnn::run(a),
        Command::BenchModel(a) => bench_model::run(a),
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks on every subcommand (duplicate flag names, conflicting
    /// definitions), which otherwise only debug builds run, at parse time.
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
