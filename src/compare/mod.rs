//! `hogsvm compare` as a library: the experiment runner that trains and measures pipelines on one
//! split and fills a [`crate::report::CompareReport`] (whose types and rendering live in
//! [`crate::report`]).
//!
//! * [`spec`]: pipelines from `key=value,...` specs or a TOML / JSON file;
//! * [`fingerprint`]: class counts and a SHA-256 of a dataset, so a reader can tell that every
//!   pipeline saw the same test images;
//! * [`run`]: trains and measures one pipeline (times per stage, throughput, latency, model
//!   size, peak memory, parameters), models only through [`crate::classifier::Classifier`];
//! * [`grid`]: optional k-fold cross-validated search over C (and the HOG cell size);
//! * [`mem`]: the process's peak memory;
//! * [`ort`]: the ONNX export of every pipeline, and onnxruntime's speed on it;
//! * [`significance`]: McNemar's exact test for every pair of pipelines;
//! * [`curve`]: the learning curve (`--train-sizes`, `--repeats`): every pipeline on nested
//!   stratified subsets of the training split, and where the CNN overtakes.

pub mod curve;
pub mod fingerprint;
pub mod grid;
pub mod mem;
pub mod ort;
pub mod run;
pub mod significance;
pub mod spec;
