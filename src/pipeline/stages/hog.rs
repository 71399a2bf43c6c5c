//! The HOG stage: images → the concatenated descriptors of [`ClassicalConfig::hog`] and
//! [`ClassicalConfig::hog_extra`]; when training with [`ClassicalConfig::augment_flip`], also the
//! descriptors of every mirrored training image (twice the rows, labels repeated).

use std::borrow::Cow;

use ndarray::{concatenate, s, Array2, Axis};

use super::ClassicalConfig;
use crate::classifier::check_size;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::hog::{Hog, HogParams};
use crate::model::container::ModelError;
use crate::model::container::TensorReader;
use crate::onnx::Graph;
use crate::stage::{Cost, Flow, Learned, Shape, Stage, StagePlan};

/// The configured HOG stage.
#[derive(Debug, Clone, PartialEq)]
pub struct HogPlan {
    /// The main descriptor.
    pub main: HogParams,
    /// More descriptors, concatenated after the main one.
    pub extra: Vec<HogParams>,
    /// Train on mirrored images too.
    pub flip: bool,
}

/// The fitted HOG stage: the descriptors and the image size they are computed for.
#[derive(Debug, Clone, PartialEq)]
pub struct HogStage {
    /// The descriptors, main first.
    pub params: Vec<HogParams>,
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
}

impl HogPlan {
    /// The HOG stage of a configuration.
    pub fn of(c: &ClassicalConfig) -> Self {
        HogPlan {
            main: c.hog,
            extra: c.hog_extra.clone(),
            flip: c.augment_flip,
        }
    }

    fn params(&self) -> impl Iterator<Item = &HogParams> {
        std::iter::once(&self.main).chain(&self.extra)
    }

    /// Every descriptor for every image, concatenated.
    pub fn features(&self, ds: &Dataset) -> Result<Array2<f32>> {
        describe(self.params(), ds)
    }

    /// Length of the concatenated descriptor for images of `rows x cols`.
    pub fn len(&self, rows: usize, cols: usize) -> Result<usize> {
        self.params().map(|p| p.feature_len(rows, cols)).sum()
    }
}

/// `hog` of every image of `ds` (colour HOG for RGB images, as scikit-image's
/// `channel_axis=-1`: per pixel, the channel with the largest gradient).
pub fn hog_of(hog: &Hog, ds: &Dataset) -> Result<Array2<f32>> {
    if ds.channels == 1 {
        hog.compute_batch_u8(&ds.pixels, ds.rows, ds.cols)
    } else {
        hog.compute_batch(&ds.image_refs())
    }
}

fn describe<'p>(params: impl Iterator<Item = &'p HogParams>, ds: &Dataset) -> Result<Array2<f32>> {
    let hogs = params.map(|p| Hog::new(*p)).collect::<Result<Vec<_>>>()?;
    match hogs.as_slice() {
        [] => Err(Error::param("hog", "no HOG descriptor", 0)),
        [one] => hog_of(one, ds),
        _ => {
            // Each descriptor into its own columns of one row-major array: the multi-scale
            // features stay in standard layout (what the stages after HOG and the ONNX input
            // expect) and no column-wise concatenation runs.
            let dims = hogs
                .iter()
                .map(|h| h.feature_len(ds.rows, ds.cols))
                .collect::<Result<Vec<_>>>()?;
            let mut x = Array2::<f32>::zeros((ds.len(), dims.iter().sum()));
            let mut at = 0;
            for (h, d) in hogs.iter().zip(dims) {
                let part = hog_of(h, ds)?;
                x.slice_mut(s![.., at..at + d]).assign(&part);
                at += d;
            }
            Ok(x)
        }
    }
}

impl StagePlan for HogPlan {
    type Fitted = HogStage;
    const NAME: &'static str = "hog";

    /// The descriptors of every image (twice as many rows with `flip`, held twice while the
    /// mirrored half is joined, with the mirrored images).
    fn cost(&self, n: usize, input: Shape) -> Result<Cost> {
        use crate::budget::bytes_of;
        let Shape::Image { rows, cols } = input else {
            return Err(Error::param(
                "pipeline",
                "the HOG stage needs images, but the data are already features",
                "hog",
            ));
        };
        let d = self.len(rows, cols)?;
        let copies = if self.flip { 4 } else { 1 };
        let out_rows = if self.flip { n.saturating_mul(2) } else { n };
        Ok(Cost {
            rows: out_rows,
            output: Shape::Features(d),
            bytes: bytes_of(&[n, d, 4 * copies]).saturating_add(bytes_of(&[
                n,
                rows,
                cols,
                usize::from(self.flip),
            ])),
        })
    }

    fn fit<'a>(&self, x: Flow<'a>, y: &mut Vec<u32>) -> Result<(HogStage, Flow<'a>)> {
        let ds = x.into_images("hog")?;
        let mut f = self.features(&ds)?;
        if self.flip {
            let flipped = self.features(&ds.mirrored())?;
            f = concatenate(Axis(0), &[f.view(), flipped.view()]).expect("same number of columns");
            y.extend_from_within(..);
        }
        let fitted = HogStage {
            params: self.params().copied().collect(),
            rows: ds.rows,
            cols: ds.cols,
        };
        Ok((fitted, Flow::Features(f)))
    }

    fn read(&self, _: &TensorReader<'_>, input: Shape, _: bool) -> Result<HogStage, ModelError> {
        match input {
            Shape::Image { rows, cols } => Ok(HogStage {
                params: self.params().copied().collect(),
                rows,
                cols,
            }),
            Shape::Features(_) => Err(ModelError::invalid(
                "model config: the HOG stage needs images",
            )),
        }
    }
}

impl Stage for HogStage {
    fn name(&self) -> &'static str {
        "hog"
    }

    fn transform<'a>(&self, x: Flow<'a>) -> Result<Flow<'a>> {
        let ds: Cow<'a, Dataset> = x.into_images("hog")?;
        check_size(&ds, self.rows, self.cols)?;
        Ok(Flow::Features(describe(self.params.iter(), &ds)?))
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        match input {
            Shape::Image { rows, cols } => Ok(Shape::Features(
                self.params
                    .iter()
                    .map(|p| p.feature_len(rows, cols))
                    .sum::<Result<usize>>()?,
            )),
            Shape::Features(_) => Err(Error::param("hog", "needs images", "features")),
        }
    }
}

impl Learned for HogStage {
    /// Before the ONNX graph's input, which is the HOG features.
    fn to_onnx(&self, _: &mut Graph, _: &str) -> Result<Option<String>> {
        Ok(None)
    }
}
