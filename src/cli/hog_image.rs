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
    let img = decode_gray(&a.image, resize)?;
    let (w, h) = img.dimensions();
    let vis = visualize::hog_image(
        &hog,
        ImageRef::gray_u8(img.as_raw(), h as usize, w as usize)?,
    )?;
    let png = vis.to_gray8();
    hogsvm::io::write_png_gray(&a.out, &png)?;
    println!("wrote {} ({w}x{h})", a.out.display());
    Ok(())
}
