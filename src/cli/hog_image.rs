//! `hogsvm hog-image`: the HOG visualisation of one image, as PNG.

use std::path::PathBuf;

use clap::Args;
use hogsvm::data::folder::decode_gray;
use hogsvm::hog::{visualize, Hog, ImageRef};

use super::options::{parse_size, HogArgs};

/// Arguments of `hog-image`.
#[derive(Debug, Args)]
pub struct HogImageArgs {
    /// Input image (any format the `image` crate decodes; converted to grayscale).
    image: PathBuf,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Resize to WxH first.
    #[arg(long, value_name = "WxH")]
    resize: Option<String>,
    #[command(flatten)]
    hog: HogArgs,
}

/// Run `hog-image`.
pub fn run(a: HogImageArgs) -> anyhow::Result<()> {
    let hog = Hog::new(a.hog.params()?)?;
    let resize = a.resize.as_deref().map(parse_size).transpose()?;
    hogsvm::io::check_outputs(&[("--out", &a.out)], &[("IMAGE", &a.image)])?;
    let img = decode_gray(&a.image, resize)?;
    let (w, h) = img.dimensions();
    let im = ImageRef::gray_u8(img.as_raw(), h as usize, w as usize)?;
    hogsvm::io::write_png_gray_rows(&a.out, w, h, |emit| {
        visualize::hog_image_gray8_rows(&hog, im, emit)
    })?;
    println!("wrote {} ({w}x{h})", a.out.display());
    Ok(())
}
