//! The resize stage: every image brought to `width x height` (triangle filter, as when a dataset
//! is loaded with a resize), so a model trained with `--resize` takes images of any size.
//! Images that already have the size pass through untouched.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::model::container::{ModelError, TensorReader};
use crate::stage::{Flow, Learned, Shape, Stage, StagePlan};

/// Resize to `width x height`; the stage is its own plan (nothing is learned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    /// Width after resizing.
    pub width: u32,
    /// Height after resizing.
    pub height: u32,
}

impl StagePlan for Resize {
    type Fitted = Resize;

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
}
