//! `hogsvm hog-image`: the HOG visualisation of one image, as PNG.

use std::path::PathBuf;

use clap::Args;
use hogsvm::data::{folder, Color};
use hogsvm::hog::{visualize, Hog, ImageRef, Pixels};

use super::options::{parse_size, HogArgs};

/// Arguments of `hog-image`.
#[derive(Debug, Args)]
pub struct HogImageArgs {
    /// Input image (any format the `image` crate decodes).
    image: PathBuf,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Resize to WxH first.
    #[arg(long, value_name = "WxH")]
    resize: Option<String>,
    /// Colour: auto (the image's own kind), gray, or rgb (colour HOG: per pixel the channel
    /// with the largest gradient, as scikit-image's `channel_axis=-1`).
    #[arg(long, default_value = "auto", value_name = "auto|gray|rgb")]
    color: String,
    #[command(flatten)]
    hog: HogArgs,
}

/// Run `hog-image`.
pub fn run(a: HogImageArgs) -> anyhow::Result<()> {
    let hog = Hog::new(a.hog.params()?)?;
    let resize = a.resize.as_deref().map(parse_size).transpose()?;
    hogsvm::io::check_outputs(&[("--out", &a.out)], &[("IMAGE", &a.image)])?;
    let color: Color = a.color.parse()?;
    let channels = folder::channels_for(&[(a.image.clone(), 0)], color);
    let (w, h, px) = folder::decode_file(&a.image, resize, channels)?;
    let im = ImageRef::new(Pixels::U8(&px), h as usize, w as usize, channels)?;
    hogsvm::io::write_png_gray_rows(&a.out, w, h, |emit| {
        visualize::hog_image_gray8_rows(&hog, im, emit)
    })?;
    println!("wrote {} ({w}x{h})", a.out.display());
    Ok(())
}
