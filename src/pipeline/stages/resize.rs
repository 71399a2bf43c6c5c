//! The resize stage: every image brought to `width x height` (triangle filter, as when a dataset
//! is loaded with a resize), so a model trained with `--resize` takes images of any size.
//! Images that already have the size pass through untouched.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::model::container::{ModelError, TensorReader};
use crate::onnx::Graph;
use crate::settings::{is_none, Configure, Setting};
use crate::stage::{Cost, Flow, Learned, Shape, Stage, StagePlan};

/// Resize to `width x height`; the stage is its own plan (nothing is learned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    /// Width after resizing.
    pub width: u32,
    /// Height after resizing.
    pub height: u32,
}

/// Parse `WxH` into `(width, height)`.
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let bad = |why: &str| Error::param("resize", format!("invalid size: {why}"), s);
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| bad("expected WxH, e.g. 64x64"))?;
    let w: u32 = w.trim().parse().map_err(|_| bad("invalid width"))?;
    let h: u32 = h.trim().parse().map_err(|_| bad("invalid height"))?;
    if w == 0 || h == 0 || w > 16384 || h > 16384 {
        return Err(bad("width and height must be in 1..=16384"));
    }
    Ok((w, h))
}

/// `resize` (`WxH` or `none`) sets `(width, height)`.
impl Configure for Resize {
    type Slot = Option<(u32, u32)>;
    const KEYS: &'static [&'static str] = &["resize"];

    fn set(slot: &mut Self::Slot, key: &str, v: &str) -> Result<Setting> {
        if key != "resize" {
            return Ok(Setting::Unknown);
        }
        *slot = if is_none(v) {
            None
        } else {
            Some(parse_size(v)?)
        };
        Ok(Setting::Set)
    }

    fn plan(slot: &Self::Slot) -> Option<Self> {
        slot.map(|(width, height)| Resize { width, height })
    }
}

impl StagePlan for Resize {
    type Fitted = Resize;
    const NAME: &'static str = "resize";

    fn cost(&self, n: usize, input: Shape) -> Result<Cost> {
        let output = self.output_shape(input)?;
        Ok(Cost {
            rows: n,
            output,
            bytes: crate::budget::bytes_of(&[n, output.dim()]),
        })
    }

    fn fit<'a>(&self, x: Flow<'a>, _: &mut Vec<u32>) -> Result<(Resize, Flow<'a>)> {
        Ok((*self, self.transform(x)?))
    }

    fn read(&self, _: &TensorReader<'_>, _: Shape, _: bool) -> Result<Resize, ModelError> {
        Ok(*self)
    }
}

impl Stage for Resize {
    fn name(&self) -> &'static str {
        "resize"
    }

    fn transform<'a>(&self, x: Flow<'a>) -> Result<Flow<'a>> {
        let ds = x.into_images("resize")?;
        let (w, h) = (self.width as usize, self.height as usize);
        if (ds.cols, ds.rows) == (w, h) {
            return Ok(Flow::Images(ds));
        }
        Ok(Flow::Images(Cow::Owned(
            ds.resized(self.width, self.height),
        )))
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        match input {
            Shape::Image { .. } => Ok(Shape::Image {
                rows: self.height as usize,
                cols: self.width as usize,
            }),
            Shape::Features(_) => Err(Error::param("resize", "needs images", "features")),
        }
    }
}

impl Learned for Resize {
    fn shows_dim(&self) -> bool {
        false
    }

    /// Before the ONNX graph's input (the image size is in its metadata).
    fn to_onnx(&self, _: &mut Graph, _: &str) -> Result<Option<String>> {
        Ok(None)
    }
}
