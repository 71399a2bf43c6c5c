//! The `hogsvm._hogsvm` extension module: a thin layer over the `hogsvm` crate for the Python
//! package in `py/hogsvm/` (which does scikit-image's argument handling and dtype rules). The
//! library knows nothing of Python; this crate only converts arrays and errors.

use std::cell::RefCell;
use std::path::PathBuf;

use hogsvm::data::Dataset;
use hogsvm::hog::{visualize, Hog, HogParams, HogWorkspace, ImageRef, Pixels};
use hogsvm::model::AnyModel;
use hogsvm::onnx::{Batch, ExportOptions};
use hogsvm::pipeline::ClassicalConfig;
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArrayDyn, PyReadwriteArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A library error as Python's `ValueError` (what scikit-image raises for bad arguments).
fn value_error(e: hogsvm::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// HOG parameters as the Python side passes them: `(orientations, pixels_per_cell,
/// cells_per_block, block_norm, transform_sqrt)`.
#[derive(FromPyObject, Clone, PartialEq)]
struct HogArgs(usize, (usize, usize), (usize, usize), String, bool);

impl HogArgs {
    fn hog(&self) -> PyResult<Hog> {
        let HogArgs(orientations, cell, block, norm, sqrt) = self;
        let params = HogParams::default()
            .orientations(*orientations)
            .cell(cell.0, cell.1)
            .block(block.0, block.1)
            .block_norm(norm.parse().map_err(value_error)?)
            .transform_sqrt(*sqrt);
        Hog::new(params).map_err(value_error)
    }
}

/// Images of a dtype the core takes, C-contiguous: one `(rows, cols, channels)` or a batch
/// `(n, rows, cols, channels)`.
#[derive(FromPyObject)]
enum Images<'py> {
    U8(PyReadonlyArrayDyn<'py, u8>),
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

/// One view per image of `a` (3-D: one image; 4-D: a batch).
fn views<'a, T: numpy::Element>(
    a: &'a PyReadonlyArrayDyn<'_, T>,
    wrap: fn(&'a [T]) -> Pixels<'a>,
) -> PyResult<Vec<ImageRef<'a>>> {
    let s = a
        .as_slice()
        .map_err(|_| PyValueError::new_err("images must be C-contiguous"))?;
    let (n, dims) = match a.shape() {
        [r, c, ch] => (1, (*r, *c, *ch)),
        [n, r, c, ch] => (*n, (*r, *c, *ch)),
        other => {
            return Err(PyValueError::new_err(format!(
                "expected (rows, cols, channels) or (n, rows, cols, channels), got {other:?}"
            )))
        }
    };
    let per = dims.0 * dims.1 * dims.2;
    (0..n)
        .map(|i| {
            ImageRef::new(wrap(&s[i * per..(i + 1) * per]), dims.0, dims.1, dims.2)
                .map_err(value_error)
        })
        .collect()
}

impl Images<'_> {
    /// Call `f` with one view per image.
    fn with<R>(&self, f: impl FnOnce(&[ImageRef<'_>]) -> PyResult<R>) -> PyResult<R> {
        match self {
            Images::U8(a) => f(&views(a, Pixels::U8)?),
            Images::F32(a) => f(&views(a, Pixels::F32)?),
            Images::F64(a) => f(&views(a, Pixels::F64)?),
        }
    }
}

thread_local! {
    /// The extractor and workspace of the last `hog` call on this thread, reused while the
    /// parameters stay the same (a loop over images builds them once, not once per image).
    static LAST_HOG: RefCell<Option<(HogArgs, Hog, HogWorkspace)>> = const { RefCell::new(None) };
}

/// Run `f` with the extractor for `params` and a workspace, both kept for the next call.
fn with_hog<R>(
    params: HogArgs,
    f: impl FnOnce(&Hog, &mut HogWorkspace) -> PyResult<R>,
) -> PyResult<R> {
    LAST_HOG.with(|cell| {
        let (key, hog, mut ws) = match cell.take() {
            Some(last) if last.0 == params => last,
            _ => {
                let hog = params.hog()?;
                (params, hog, HogWorkspace::new())
            }
        };
        let r = f(&hog, &mut ws);
        cell.replace(Some((key, hog, ws)));
        r
    })
}

/// HOG of one image: the feature vector (float64 when `f64_out`, else float32: the same
/// values) and, with `visualize`, the HOG image (float64, `rows x cols`).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn hog<'py>(
    py: Python<'py>,
    image: Images<'py>,
    params: HogArgs,
    visualize: bool,
    f64_out: bool,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyArray2<f64>>>)> {
    let (features, vis) = with_hog(params, |hog, ws| {
        image.with(|refs| {
            let im = *refs
                .first()
                .ok_or_else(|| PyValueError::new_err("no image"))?;
            let mut f = vec![0f32; hog.feature_len(im.rows(), im.cols()).map_err(value_error)?];
            hog.compute_into(im, ws, &mut f).map_err(value_error)?;
            let v = if visualize {
                Some(visualize::hog_image(hog, im).map_err(value_error)?)
            } else {
                None
            };
            Ok((f, v))
        })
    })?;
    let vis = match vis {
        Some(v) => Some(
            Array2::from_shape_vec((v.rows, v.cols), v.data)
                .map_err(|e| PyValueError::new_err(e.to_string()))?
                .into_pyarray(py),
        ),
        None => None,
    };
    let features = if f64_out {
        let wide: Vec<f64> = features.iter().map(|&v| v as f64).collect();
        wide.into_pyarray(py).into_any()
    } else {
        features.into_pyarray(py).into_any()
    };
    Ok((features, vis))
}

/// HOG of every image of a batch, one row each (float32), computed in parallel on `n_jobs`
/// threads (all cores when `None`) with the GIL released. The rows do not depend on `n_jobs`.
/// With `out` (a C-contiguous float32 `(n, features)` array) the rows are written there and
/// nothing is returned; otherwise they come back as a new array.
#[pyfunction]
#[pyo3(signature = (images, params, n_jobs, out=None))]
fn hog_batch<'py>(
    py: Python<'py>,
    images: Images<'py>,
    params: HogArgs,
    n_jobs: Option<usize>,
    out: Option<PyReadwriteArray2<'py, f32>>,
) -> PyResult<Option<Bound<'py, PyArray2<f32>>>> {
    let hog = params.hog()?;
    let pool = pool(n_jobs)?;
    let pool = pool.as_ref();
    match out {
        Some(mut out) => {
            let dst = out
                .as_slice_mut()
                .map_err(|_| PyValueError::new_err("out must be C-contiguous"))?;
            images.with(|refs| {
                py.detach(|| in_pool(pool, || hog.compute_batch_into(refs, dst)))
                    .map_err(value_error)
            })?;
            Ok(None)
        }
        None => {
            let new = images.with(|refs| {
                py.detach(|| in_pool(pool, || hog.compute_batch(refs)))
                    .map_err(value_error)
            })?;
            Ok(Some(new.into_pyarray(py)))
        }
    }
}

/// A pool of `n_jobs` threads (`None`: rayon's global pool, all cores), capped at the library's
/// threads per core ([`hogsvm::budget::cap_threads`]) with a Python `RuntimeWarning`.
fn pool(n_jobs: Option<usize>) -> PyResult<Option<rayon::ThreadPool>> {
    match n_jobs {
        Some(0) => Err(PyValueError::new_err("n_jobs must be at least 1")),
        Some(_) => {
            let (n, warning) = hogsvm::budget::cap_threads(n_jobs);
            if let Some(w) = warning {
                Python::attach(|py| {
                    let msg = std::ffi::CString::new(w.replace("threads requested", "n_jobs"))
                        .unwrap_or_default();
                    PyErr::warn(
                        py,
                        py.get_type::<pyo3::exceptions::PyRuntimeWarning>().as_any(),
                        &msg,
                        1,
                    )
                })?;
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map(Some)
                .map_err(|e| PyValueError::new_err(e.to_string()))
        }
        None => Ok(None),
    }
}

/// Run `f` in `pool`, or on the global pool.
fn in_pool<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// `(n, rows, cols)` gray or `(n, rows, cols, 3)` RGB uint8 images (and labels, when
/// training) as a dataset of `class_names`.
fn dataset(
    images: &PyReadonlyArrayDyn<'_, u8>,
    labels: Vec<u32>,
    class_names: Vec<String>,
) -> PyResult<Dataset> {
    let a = images.as_array();
    let (n, rows, cols, channels) = match *a.shape() {
        [n, r, c] => (n, r, c, 1),
        [n, r, c, ch @ (1 | 3)] => (n, r, c, ch),
        ref s => {
            return Err(PyValueError::new_err(format!(
                "images must have shape (n, H, W) or (n, H, W, 3), got {s:?}"
            )))
        }
    };
    let pixels = a
        .as_slice()
        .ok_or_else(|| PyValueError::new_err("images must be C-contiguous"))?
        .to_vec();
    let labels = if labels.is_empty() {
        vec![0; n]
    } else {
        labels
    };
    if labels.len() != n {
        return Err(PyValueError::new_err(format!(
            "{} labels for {n} images",
            labels.len()
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
        return Err(PyValueError::new_err(format!(
            "label {l} is not below the {} classes",
            class_names.len()
        )));
    }
    Ok(Dataset {
        rows,
        cols,
        channels,
        pixels,
        labels,
        class_names,
        sources: (0..n).map(|i| format!("array#{i}")).collect(),
    })
}

/// A model of either kind, from a file or trained from Python; used through the library's
/// `Classifier` trait.
#[pyclass(name = "Model", module = "hogsvm._hogsvm", frozen)]
struct PyModel {
    inner: AnyModel,
}

impl PyModel {
    /// `f` on the model and `images`, without the GIL. The images are read as the CLI reads
    /// files for the model: as its colour kind (`Dataset::with_channels`), and brought to its
    /// size when it resizes (a CNN, or a classical model trained with `resize`) or when `resize`
    /// is asked for; another size is an error naming both.
    fn run<R: Send>(
        &self,
        py: Python<'_>,
        images: &PyReadonlyArrayDyn<'_, u8>,
        resize: bool,
        f: impl FnOnce(&dyn hogsvm::classifier::Classifier, &Dataset) -> hogsvm::Result<R> + Send,
    ) -> PyResult<R> {
        let m = self.inner.classifier();
        let ds = dataset(images, Vec::new(), m.class_names().to_vec())?;
        let input = m.input();
        let size = (input.cols as u32, input.rows as u32);
        let to = m.load_resize().or(resize.then_some(size));
        py.detach(|| {
            let mut ds = ds.with_channels(input.channels).into_owned();
            match to {
                Some((w, h)) if (ds.cols as u32, ds.rows as u32) != (w, h) => ds = ds.resized(w, h),
                _ => {}
            }
            if (ds.cols as u32, ds.rows as u32) != size {
                return Err(hogsvm::Error::ShapeMismatch {
                    what: "images for this model".into(),
                    expected: format!(
                        "{}x{} (WxH) images; pass resize=True to bring them to that size",
                        size.0, size.1
                    ),
                    got: format!("{}x{}", ds.cols, ds.rows),
                });
            }
            f(m, &ds)
        })
        .map_err(value_error)
    }
}

#[pymethods]
impl PyModel {
    /// `classical` or `cnn`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.classifier().kind()
    }

    /// Class names, in label order.
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.inner.classifier().class_names().to_vec()
    }

    /// `(rows, cols)` of the images the model describes.
    #[getter]
    fn input_shape(&self) -> (usize, usize) {
        let i = self.inner.classifier().input();
        (i.rows, i.cols)
    }

    /// Values per pixel of the images it reads: 1 (gray) or 3 (RGB).
    #[getter]
    fn channels(&self) -> usize {
        self.inner.classifier().input().channels
    }

    /// Label index of each of `images` (`(n, rows, cols)` or `(n, rows, cols, 3)` uint8), as
    /// `hogsvm predict` gives it.
    #[pyo3(signature = (images, resize = false))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, u8>,
        resize: bool,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        Ok(self
            .run(py, &images, resize, |m, ds| m.predict(ds))?
            .into_pyarray(py))
    }

    /// Scores, `(n, classes)`: the SVM's decision values (one column for two classes) or the
    /// CNN's probabilities.
    #[pyo3(signature = (images, resize = false))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, u8>,
        resize: bool,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        Ok(self
            .run(py, &images, resize, |m, ds| m.scores(ds))?
            .into_pyarray(py))
    }

    /// The exported ONNX graph's input for `images`: its name (`hog` or `pixels`) and one
    /// float32 row per image (the HOG features with the model's settings, or the pixels).
    fn onnx_input<'py>(
        &self,
        py: Python<'py>,
        images: PyReadonlyArrayDyn<'py, u8>,
    ) -> PyResult<(&'static str, Bound<'py, PyArray2<f32>>)> {
        let (name, x) = self.run(py, &images, false, |m, ds| m.onnx_input(ds))?;
        Ok((name, x.as_standard_layout().into_owned().into_pyarray(py)))
    }

    /// Write the model as an ONNX file (what `hogsvm export` writes), atomically.
    #[pyo3(signature = (path, opset = hogsvm::onnx::DEFAULT_OPSET, batch = None))]
    fn export_onnx(&self, path: PathBuf, opset: i64, batch: Option<usize>) -> PyResult<()> {
        let batch = batch.map_or(Batch::Dynamic, Batch::Fixed);
        let opts = ExportOptions::default().opset(opset).batch(batch);
        self.inner
            .classifier()
            .export_onnx(&path, &opts)
            .map_err(value_error)
    }

    /// Write the model file (what `hogsvm train` writes), atomically.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.inner.classifier().save(&path).map_err(value_error)
    }
}

/// Open a model file of either kind.
#[pyfunction]
fn load(path: PathBuf) -> PyResult<PyModel> {
    let inner = hogsvm::model::load_any(&path).map_err(value_error)?;
    Ok(PyModel { inner })
}

/// Train the classical pipeline on `(n, rows, cols)` gray or `(n, rows, cols, 3)` RGB uint8
/// images (colour HOG for RGB) with label indices into
/// `class_names`; `settings` are `ClassicalConfig::set` keys and values (`hogsvm train`'s flags).
#[pyfunction]
fn train_classical(
    py: Python<'_>,
    images: PyReadonlyArrayDyn<'_, u8>,
    labels: Vec<u32>,
    class_names: Vec<String>,
    settings: Vec<(String, String)>,
) -> PyResult<PyModel> {
    if labels.is_empty() {
        return Err(PyValueError::new_err("no training images"));
    }
    let ds = dataset(&images, labels, class_names)?;
    // The defaults follow the image size the HOG sees (after a resize stage), as `train`'s.
    let (rows, cols) = match ClassicalConfig::default()
        .with(&settings)
        .map_err(value_error)?
        .resize
    {
        Some((w, h)) => (h as usize, w as usize),
        None => (ds.rows, ds.cols),
    };
    let cfg = ClassicalConfig::default_for(rows, cols)
        .with(&settings)
        .map_err(value_error)?;
    let (m, _) = py.detach(|| cfg.fit(&ds)).map_err(value_error)?;
    Ok(PyModel {
        inner: AnyModel::Classical(m),
    })
}

/// The extension module.
#[pymodule]
fn _hogsvm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hog, m)?)?;
    m.add_function(wrap_pyfunction!(hog_batch, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(train_classical, m)?)?;
    m.add_class::<PyModel>()?;
    Ok(())
}
