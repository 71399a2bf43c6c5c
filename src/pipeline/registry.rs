//! The one list of classical stages, in pipeline order. Each line names a stage: its variant,
//! the accessors [`ClassicalModel`] gets for it, its configured and fitted types, and which part
//! of [`ClassicalConfig`] turns it on. Fitting, transforming, the model file and the report all
//! walk [`plan`] or [`ClassicalModel::stages`]; an exporter matches on [`FittedStage`].
//!
//! The order is the data's: images may be resized, then described by HOG; the feature map comes
//! right after HOG because the Hellinger and chi-squared maps need non-negative inputs (HOG is;
//! PCA outputs are not); per-sample normalisation follows the map; the scaler, PCA and one kernel
//! approximation (random Fourier features or Nystroem) come last.

use super::hog::{HogPlan, HogStage};
use super::normalize::Norm;
use super::resize::Resize;
use super::{ClassicalConfig, ClassicalModel};
use crate::error::Result;
use crate::featmap::{FeatureMap, Nystroem, NystroemParams, Rff, RffParams};
use crate::model::container::ModelError;
use crate::model::container::TensorReader;
use crate::reduce::{Pca, PcaParams, ScalerParams, StandardScaler};
use crate::stage::{Flow, Shape, Stage, StagePlan};

macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident($get:ident, $get_mut:ident): $plan:ty => $fitted:ty,
       if |$c:ident| $select:expr;)+) => {
        /// A configured stage of the classical pipeline.
        #[derive(Debug, Clone, PartialEq)]
        pub enum PlannedStage {
            $($(#[$doc])* $variant($plan),)+
        }

        /// A fitted stage of the classical pipeline.
        #[derive(Debug, Clone, PartialEq)]
        pub enum FittedStage {
            $($(#[$doc])* $variant($fitted),)+
        }

        /// The stages a configuration has, in pipeline order.
        pub fn plan(config: &ClassicalConfig) -> Vec<PlannedStage> {
            let mut out = Vec::new();
            $(
                let select = |$c: &ClassicalConfig| -> Option<$plan> { $select };
                if let Some(p) = select(config) {
                    out.push(PlannedStage::$variant(p));
                }
            )+
            out
        }

        impl PlannedStage {
            /// Fit on `x` (labels `y`), see [`StagePlan::fit`].
            pub fn fit<'a>(&self, x: Flow<'a>, y: &mut Vec<u32>) -> Result<(FittedStage, Flow<'a>)> {
                match self {
                    $(PlannedStage::$variant(p) => {
                        let (f, x) = StagePlan::fit(p, x, y)?;
                        Ok((FittedStage::$variant(f), x))
                    })+
                }
            }

            /// Read from a model file, see [`StagePlan::read`].
            pub fn read(
                &self,
                t: &TensorReader<'_>,
                input: Shape,
                folded: bool,
            ) -> std::result::Result<FittedStage, ModelError> {
                match self {
                    $(PlannedStage::$variant(p) => StagePlan::read(p, t, input, folded).map(FittedStage::$variant),)+
                }
            }
        }

        impl FittedStage {
            /// The stage behind the variant.
            pub fn stage(&self) -> &dyn Stage {
                match self {
                    $(FittedStage::$variant(s) => s,)+
                }
            }

            /// The stage behind the variant, mutably.
            pub fn stage_mut(&mut self) -> &mut dyn Stage {
                match self {
                    $(FittedStage::$variant(s) => s,)+
                }
            }
        }

        impl ClassicalModel {
            $(
                #[doc = concat!("The fitted `", stringify!($get), "` stage, if the model has one.")]
                pub fn $get(&self) -> Option<&$fitted> {
                    self.stages.iter().find_map(|s| match s {
                        FittedStage::$variant(x) => Some(x),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    })
                }

                #[doc = concat!("The fitted `", stringify!($get), "` stage, mutably.")]
                pub fn $get_mut(&mut self) -> Option<&mut $fitted> {
                    self.stages.iter_mut().find_map(|s| match s {
                        FittedStage::$variant(x) => Some(x),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    })
                }
            )+
        }
    };
}

registry! {
    /// Resize the images.
    Resize(resize, resize_mut): Resize => Resize,
        if |c| c.resize.map(|(width, height)| Resize { width, height });
    /// HOG descriptors (images → features).
    Hog(hog, hog_mut): HogPlan => HogStage,
        if |c| Some(HogPlan::of(c));
    /// Hellinger or additive chi-squared map.
    FeatureMap(feature_map, feature_map_mut): FeatureMap => FeatureMap,
        if |c| (c.feature_map != FeatureMap::None).then_some(c.feature_map);
    /// Per-sample normalisation.
    Normalize(normalize, normalize_mut): Norm => Norm,
        if |c| c.normalize;
    /// Standard scaler.
    Scaler(scaler, scaler_mut): ScalerParams => StandardScaler,
        if |c| c.standardize.then_some(ScalerParams);
    /// PCA.
    Pca(pca, pca_mut): PcaParams => Pca,
        if |c| c.pca.clone();
    /// Random Fourier features.
    Rff(rff, rff_mut): RffParams => Rff,
        if |c| c.rff;
    /// Nystroem map.
    Nystroem(nystroem, nystroem_mut): NystroemParams => Nystroem,
        if |c| c.nystroem;
}
