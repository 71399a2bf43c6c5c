//! Fold the Nystroem projection of a classical model file into its SVM weights
//! (`ClassicalModel::fold_nystroem`): the same classifier up to rounding, without the `m x m`
//! matrix. `hogsvm train` writes folded models; this converts files written before it did.
//!
//! usage: cargo run --release --example fold_model -- IN.safetensors OUT.safetensors

use std::error::Error;
use std::path::Path;

use hogsvm::classifier::Classifier;
use hogsvm::pipeline::ClassicalModel;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = &args[..] else {
        return Err("usage: fold_model IN.safetensors OUT.safetensors".into());
    };
    let mut m = ClassicalModel::load(Path::new(input))?;
    let had = m.fold_nystroem()?;
    m.save(Path::new(output))?;
    println!(
        "{}: {output}",
        if had {
            "folded the Nystroem projection"
        } else {
            "nothing to fold; copied"
        }
    );
    Ok(())
}
