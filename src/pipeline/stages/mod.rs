//! The one list of classical stages, in pipeline order. Each entry names a stage: its variant,
//! the accessors [`ClassicalModel`] gets for it, its configured and fitted types, and either the
//! field of [`ClassicalConfig`] it owns (`config { field }`: the field's type, its keys, its
//! validation and whether it turns the stage on come from the stage's [`Configure`] impl) or,
//! for HOG, how it is read off the fixed fields (`from |c| ...`). [`ClassicalConfig`] itself is
//! generated here: the HOG fields, then each stage's field in this order, then the flip flag and
//! the SVM. Fitting, transforming, the model file, the report and the key settings all walk this
//! list; an exporter matches on [`FittedStage`].
//!
//! Adding a stage: its own file (here, or beside its algorithm), implementing [`StagePlan`] and
//! [`Configure`]; its `mod` line and its entry below; its CLI flag; its test. Nothing else.
//!
//! The order is the data's: images may be resized, then described by HOG; the feature map comes
//! right after HOG because the Hellinger and chi-squared maps need non-negative inputs (HOG is;
//! PCA outputs are not); per-sample normalisation follows the map; the scaler, PCA and one kernel
//! approximation (random Fourier features or Nystroem) come last.

pub mod hog;
pub mod normalize;
pub mod resize;

use serde::{Deserialize, Serialize};

use super::ClassicalModel;
use crate::error::{Error, Result};
use crate::featmap::{FeatureMap, Nystroem, NystroemParams, Rff, RffParams};
use crate::hog::HogParams;
use crate::model::container::ModelError;
use crate::model::container::TensorReader;
use crate::reduce::{Pca, PcaParams, ScalerParams, StandardScaler};
use crate::settings::{Configure, Setting};
use crate::stage::{Cost, Flow, Shape, Stage, StagePlan};
use crate::svm::SvmParams;

macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident($get:ident, $get_mut:ident): $plan:ty => $fitted:ty,
       $(config { $(#[$fattr:meta])* $field:ident })?
       $(from |$c:ident| $select:expr)?;)+) => {
        /// Everything that defines a classical model before training. The stage fields come from
        /// [`pipeline::stages`](self), one per stage that has settings; [`ClassicalConfig::set`]
        /// sets them from `key=value` strings.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct ClassicalConfig {
            /// HOG parameters.
            pub hog: HogParams,
            /// More HOG descriptors of the same image (e.g. coarser cells), concatenated after
            /// the first: a multi-scale descriptor.
            #[serde(default)]
            pub hog_extra: Vec<HogParams>,
            $($($(#[$fattr])* pub $field: <$plan as Configure>::Slot,)?)+
            /// Also train on the horizontal mirror of every training image (twice the training
            /// set): the "virtual examples" way of teaching a linear model an invariance
            /// (Decoste & Schölkopf 2002). The test set is not touched.
            #[serde(default)]
            pub augment_flip: bool,
            /// The SVM.
            pub svm: SvmParams,
        }

        impl ClassicalConfig {
            /// HOG `hog` alone (no extra descriptor, no flip), every stage off, SVM `svm`.
            pub(super) fn from_core(hog: HogParams, svm: SvmParams) -> Self {
                ClassicalConfig {
                    hog,
                    hog_extra: Vec::new(),
                    $($($field: Default::default(),)?)+
                    augment_flip: false,
                    svm,
                }
            }
        }

        /// Give `key=value` to every stage's settings (see [`Configure::set`]); whether one took
        /// it. A refining key that no configured stage took is an error naming what it needs.
        pub(super) fn set_key(c: &mut ClassicalConfig, key: &str, v: &str) -> Result<bool> {
            let mut set = false;
            let mut needs: Vec<(&'static str, &'static str)> = Vec::new();
            $($(
                match <$plan as Configure>::set(&mut c.$field, key, v)? {
                    Setting::Set => set = true,
                    Setting::Needs(k) => needs.push((k, <$plan as Configure>::KEYS[0])),
                    Setting::Unknown => {}
                }
            )?)+
            match needs.first() {
                Some(&(k, _)) if !set => {
                    let stages: Vec<&str> = needs.iter().map(|n| n.1).collect();
                    Err(Error::param(k, format!("needs {}", stages.join(" or ")), v))
                }
                _ => Ok(set),
            }
        }

        // In `refines` and `keys`, `stringify!($field)` only tells the macro to repeat over the
        // entries that have a field.

        /// Whether `key` refines a stage (see [`Configure::REFINES`]).
        pub(super) fn refines(key: &str) -> bool {
            false $($(|| { let _ = stringify!($field); <$plan as Configure>::REFINES.contains(&key) })?)+
        }

        /// The stages' keys in pipeline order, each once (where it last appears).
        pub(super) fn keys() -> Vec<&'static str> {
            let all: Vec<&'static str> =
                [$($({ let _ = stringify!($field); <$plan as Configure>::KEYS },)?)+].concat();
            all.iter()
                .enumerate()
                .filter(|&(i, k)| !all[i + 1..].contains(k))
                .map(|(_, k)| *k)
                .collect()
        }

        /// Fit every stage's field to `rows` training rows (see [`Configure::fit_to`]); the
        /// notes of what changed.
        pub(super) fn fit_to(c: &mut ClassicalConfig, rows: usize) -> Vec<String> {
            let mut notes = Vec::new();
            $($(notes.extend(<$plan as Configure>::fit_to(&mut c.$field, rows));)?)+
            notes
        }

        /// Validate every stage's field.
        pub(super) fn validate(c: &ClassicalConfig) -> Result<()> {
            $($(<$plan as Configure>::validate(&c.$field)?;)?)+
            Ok(())
        }

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
                $(let select = |$c: &ClassicalConfig| -> Option<$plan> { $select };)?
                $(let select = |c: &ClassicalConfig| <$plan as Configure>::plan(&c.$field);)?
                if let Some(p) = select(config) {
                    out.push(PlannedStage::$variant(p));
                }
            )+
            out
        }

        impl PlannedStage {
            /// The stage's name (see [`StagePlan::NAME`]).
            pub fn name(&self) -> &'static str {
                match self {
                    $(PlannedStage::$variant(_) => <$plan as StagePlan>::NAME,)+
                }
            }

            /// What fitting it on `n` rows of shape `input` will take, see [`StagePlan::cost`].
            pub fn cost(&self, n: usize, input: Shape) -> Result<Cost> {
                match self {
                    $(PlannedStage::$variant(p) => StagePlan::cost(p, n, input),)+
                }
            }

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
    Resize(resize, resize_mut): resize::Resize => resize::Resize, config {
        /// Resize images to `(width, height)` before HOG.
        resize
    };
    /// HOG descriptors (images → features).
    Hog(hog, hog_mut): hog::HogPlan => hog::HogStage, from |c| Some(hog::HogPlan::of(c));
    /// Hellinger or additive chi-squared map.
    FeatureMap(feature_map, feature_map_mut): FeatureMap => FeatureMap, config {
        /// Feature map applied to the HOG features.
        feature_map
    };
    /// Per-sample normalisation.
    Normalize(normalize, normalize_mut): normalize::Norm => normalize::Norm, config {
        /// Per-sample normalisation after the feature map (scikit-learn's `Normalizer`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        normalize
    };
    /// Standard scaler.
    Scaler(scaler, scaler_mut): ScalerParams => StandardScaler, config {
        /// Standardise features before PCA / SVM.
        standardize
    };
    /// PCA.
    Pca(pca, pca_mut): PcaParams => Pca, config {
        /// PCA, if any.
        pca
    };
    /// Random Fourier features.
    Rff(rff, rff_mut): RffParams => Rff, config {
        /// Random Fourier features (RBF kernel approximation) after PCA, if any.
        #[serde(default)]
        rff
    };
    /// Nystroem map.
    Nystroem(nystroem, nystroem_mut): NystroemParams => Nystroem, config {
        /// Nystroem map (RBF kernel approximation) after PCA, if any; exclusive with `rff`.
        #[serde(default)]
        nystroem
    };
}
